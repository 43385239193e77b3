#include "rules_cap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t hash_of(const char *tenant_id, const char *member_id)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *s = tenant_id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* ("ab","c") differs from ("a","bc") */
    for (const char *s = member_id; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

bool cap_tally_init(struct cap_tally *t, size_t requests_max)
{
    size_t size = 16;
    while (size <= 2 * requests_max)
        size *= 2;
    t->slots = calloc(size, sizeof(*t->slots));
    t->size = t->slots ? size : 0;
    return t->slots != NULL;
}

void cap_tally_free(struct cap_tally *t)
{
    free(t->slots);
    *t = (struct cap_tally){0};
}

/* The member's slot, or the empty one where it goes. The table is never
 * more than half full, so the probe ends. */
static struct cap_slot *slot_of(const struct cap_tally *t, const char *tenant_id,
                                const char *member_id)
{
    size_t i = hash_of(tenant_id, member_id) & (t->size - 1);
    for (;; i = (i + 1) & (t->size - 1)) {
        struct cap_slot *s = &t->slots[i];
        if (!s->tenant_id ||
            (strcmp(s->tenant_id, tenant_id) == 0 && strcmp(s->member_id, member_id) == 0))
            return s;
    }
}

int cap_tally_used(const struct cap_tally *t, const char *tenant_id, const char *member_id)
{
    return slot_of(t, tenant_id, member_id)->count;
}

void cap_tally_add(struct cap_tally *t, const char *tenant_id, const char *member_id)
{
    struct cap_slot *s = slot_of(t, tenant_id, member_id);
    s->tenant_id = tenant_id, s->member_id = member_id;
    s->count++;
}
