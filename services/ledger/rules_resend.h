/* What the points scheduler (expiry.c) already sent, so a ledger that lags
 * behind ledger-commands is not sent every due lot again every round.
 * Pure rules, no I/O: time is passed in (a monotonic clock in ms), so the
 * back-off is unit-tested without waiting (tests/unit/test_ledger_resend.c).
 *
 * A command delivered to Kafka will be applied by the partition owner, in
 * order, however late; sending it again only guards against it being lost
 * on the way (a topic that lost data, a dead-lettered message). So a lot
 * delivered at t goes again no sooner than t + RESEND_FIRST_MS, then after
 * twice that, and so on up to RESEND_MAX_MS between copies. A lot that is
 * no longer due (the ledger applied it) is forgotten at the end of the
 * round that no longer finds it; a send that was not delivered is not
 * remembered, so the next round tries it again.
 *
 * The memory is one per kind of command and holds at most
 * RESEND_ENTRIES_MAX lots (a round finds at most that many); lookups are
 * linear, a few million comparisons per round at worst. It lives as long
 * as the scheduler thread: another instance that takes over sends each
 * due lot once more, which the ledger answers as a duplicate. */
#ifndef TESSERA_LEDGER_RULES_RESEND_H
#define TESSERA_LEDGER_RULES_RESEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RESEND_FIRST_MS    60000LL   /* a delivered lot's first copy, at the earliest */
#define RESEND_MAX_MS      3600000LL /* the longest wait between copies */
#define RESEND_ENTRIES_MAX 1000      /* = the scheduler's lots per round */
#define RESEND_KEY_MAX     48        /* "vest:" + a UUID, with room */

struct resend_entry {
    char key[RESEND_KEY_MAX];
    int64_t next_ms;    /* not sent again before this */
    int64_t backoff_ms; /* the wait that led to next_ms */
    bool seen;          /* found due in the current round */
};

struct resend_memory {
    struct resend_entry entries[RESEND_ENTRIES_MAX];
    size_t count;
};

/* Starts a round: every entry unseen until resend_due finds it again. */
void resend_round_begin(struct resend_memory *m);
/* A lot found due at now_ms: true when it must be sent now (never sent,
 * not delivered, or its back-off is over). Marks it seen. */
bool resend_due(struct resend_memory *m, const char *key, int64_t now_ms);
/* The command for key was delivered at now_ms: remembered, with the next
 * back-off. Returns false (and remembers nothing) when the memory is full
 * or the key too long: the lot is then simply sent again next round. */
bool resend_delivered(struct resend_memory *m, const char *key, int64_t now_ms);
/* Ends a round: forgets the lots it did not find due (applied). */
void resend_round_end(struct resend_memory *m);

#endif
