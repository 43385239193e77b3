/* DELETE /v1/members/{member_id}/personal-data (admin): a member's right
 * to erasure. One statement, audited in it:
 *
 *   - the member row loses name, phone, email, birthday, gender,
 *     attributes and the phone's and email's blind indexes (so the phone is free again
 *     and nobody finds the member by it); personal_data_erased_at is set;
 *   - the member's data key is deleted: every MemberRegistered of the
 *     member on member-events (kept forever, copied to any consumer) was
 *     sealed under it and can no longer be opened (crypto-shredding);
 *   - the member's password hash, login codes and devices go too.
 *
 *   - notification is told (MemberContactChanged with erased = true, on
 *     notify-requests through the outbox, in the same statement) and
 *     forgets every address it holds for the member.
 *
 * The member id, member number, branch, balances, cards, consents and the
 * ledger's journal stay: money is never erased, and they hold no personal
 * data (a consent record is kept as the proof of what was agreed).
 * Erasing again answers the same (the first erasure's time). */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "bus/topics.h"
#include "ids/uuid7.h"
#include "ingest.h"
#include "profile_cache.h"
#include "notify_out.h"

static void answer_erased(struct req *r)
{
    req_finish(r, 200, json_incref(r->body));
}

static void on_erased(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    outbox_events_publish_rows(r->app, res, 2);
    json_decref(r->body);
    r->body = json_pack("{s:s, s:b, s:s}", "member_id", PQgetvalue(res, 0, 0),
                        "personal_data_erased", 1, "erased_at", PQgetvalue(res, 0, 1));
    /* the sealed copy of the profile in Redis goes before the answer */
    profile_cache_forget_then(r, strtoll(PQgetvalue(res, 0, 6), NULL, 10), answer_erased);
}

static void erase_authorized(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    struct notify_contact erased = {.erased = true};
    size_t len = 0;
    uint8_t *bin = notify_encode_contact(&r->caller, r->member_id, r->traceparent, &erased, &len);
    char *contact = bin ? db_bytea_text(bin, len) : NULL;
    free(bin);
    /* the campaign forgets the birthday's month and day too */
    char *forget =
        contact ? member_birthday_fact_hex(&r->caller, r->member_id, "", r->traceparent, 0, 0)
                : NULL;
    if (!contact || !forget) {
        free(contact);
        req_fail_db(r, "could not encode the erasure for notification and the campaign");
        return;
    }
    const char *p[6] = {r->caller.tenant_id, r->caller.key_id, http_peer(r->ex),
                        r->member_id,        contact,          forget};
    if (pg_pool_query(
            r->app->pg,
            "WITH b AS (SELECT member_id, personal_data_erased_at AS was FROM members "
            "WHERE tenant_id = $1 AND member_id = $4 FOR UPDATE), "
            "m AS (UPDATE members SET name = NULL, phone = NULL, email = NULL, birthday = NULL, "
            "gender = NULL, attributes = '{}', name_enc = NULL, phone_enc = NULL, "
            "email_enc = NULL, birthday_enc = NULL, gender_enc = NULL, attributes_enc = NULL, "
            "phone_bidx = NULL, email_bidx = NULL, view_version = view_version + 1, "
            "personal_data_erased_at = "
            "coalesce(personal_data_erased_at, "
            "now()) WHERE tenant_id = $1 AND member_id = (SELECT member_id FROM b) "
            "RETURNING member_id, personal_data_erased_at AS erased_at, view_version), "
            "k AS (DELETE FROM member_keys WHERE tenant_id = $1 AND member_id = $4), "
            "c AS (DELETE FROM member_credentials WHERE tenant_id = $1 AND member_id = $4), "
            "s AS (DELETE FROM sms_codes WHERE tenant_id = $1 AND member_id = $4), "
            "d AS (DELETE FROM member_devices WHERE tenant_id = $1 AND member_id = $4), "
            "o AS (INSERT INTO outbox (topic, key, payload) SELECT '" TOPIC_NOTIFY_REQUESTS
            "', member_id, $5::bytea FROM m RETURNING id, topic, key, payload), "
            "bd AS (INSERT INTO outbox (topic, key, payload, lease_until) SELECT "
            "'" TOPIC_MEMBER_EVENTS "', member_id, $6::bytea, now() FROM m), "
            "changed AS (SELECT m.member_id AS target, jsonb_build_object("
            "'personal_data_erased_at', b.was) AS before, jsonb_build_object("
            "'personal_data_erased_at', m.erased_at, 'data_key', 'destroyed') AS after "
            "FROM m JOIN b USING (member_id)), " AUDIT_CTE(
                "member.personal_data.erase") "SELECT member_id, to_char(erased_at AT TIME ZONE "
                                              "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), "
                                              "o.id, o.topic, o.key, o.payload, "
                                              "m.view_version FROM m, o",
            6, p, on_erased, r) < 0)
        req_fail_db(r, "queue full");
    free(contact);
    free(forget);
}

void members_erase_personal_data(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), erase_authorized);
}
