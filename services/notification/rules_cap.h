/* The weekly marketing cap inside one run of requests (pure, no I/O).
 *
 * The database tells how many marketing messages a member was sent this
 * week before the run; requests of the same member inside the run must see
 * the earlier ones of the run too, exactly as if each had been decided in
 * its own transaction. cap_tally counts, per (tenant, member), the run's
 * requests that went out so far. Sized for the run: an open-addressing
 * table of twice its requests, never grown. */
#ifndef TESSERA_NOTIFICATION_RULES_CAP_H
#define TESSERA_NOTIFICATION_RULES_CAP_H

#include <stdbool.h>
#include <stddef.h>

struct cap_slot {
    const char *tenant_id, *member_id; /* borrowed from the run's requests */
    int count;
};

struct cap_tally {
    struct cap_slot *slots;
    size_t size; /* a power of two, > 2 x the requests of the run */
};

/* For a run of at most requests_max requests. false: out of memory. */
bool cap_tally_init(struct cap_tally *t, size_t requests_max) __attribute__((warn_unused_result));
void cap_tally_free(struct cap_tally *t);

/* The member's messages of this run counted so far (0 if none). */
int cap_tally_used(const struct cap_tally *t, const char *tenant_id, const char *member_id);
/* One more message of the member went out. */
void cap_tally_add(struct cap_tally *t, const char *tenant_id, const char *member_id);

#endif
