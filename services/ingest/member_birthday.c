/* MemberBirthdaySet: the month and day of a member's birthday, told to the
 * campaign service (the birthday gift) without the year and without the
 * sealed profile. Published on member-events keyed by the member at
 * registration, and with month 0 ("forget it") on erasure. Its outbox row
 * is inserted with its lease already over, so the next outbox sweep
 * (OUTBOX_SWEEP_S) relays it: the statements that write it publish only
 * their main event right after commit. See docs/engagement.md for the
 * privacy trade-off. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "events/engage_types.h"
#include "ingest.h"

char *member_birthday_fact_hex(const struct caller *c, const char *member_id, const char *branch_id,
                               const char *traceparent, int month, int day)
{
    struct event_meta meta = {.tenant_id = c->tenant_id,
                              .branch_id = branch_id ? branch_id : "",
                              .member_id = member_id,
                              .actor_kind = "api_key",
                              .actor_id = c->key_id,
                              .traceparent = traceparent};
    Envelope env;
    Actor actor;
    MemberBirthdaySet b;
    envelope_init(&env, &actor, &meta);
    tessera__engage__v1__member_birthday_set__init(&b);
    b.month = month;
    b.day = day;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_BIRTHDAY_SET;
    env.member_birthday_set = &b;
    size_t len = 0;
    uint8_t *bin = envelope_encode(&env, &len);
    if (!bin)
        return NULL;
    char *hex = db_bytea_text(bin, len);
    free(bin);
    return hex;
}
