/* Members' contacts and consents (MemberContactChanged, ConsentChanged),
 * gathered while they come one after another in a batch and written in one
 * statement when something else comes (a request must see every fact
 * before it) or the batch ends: one round trip for a run of facts instead
 * of one per message.
 *
 * Last writer wins by message order, as when each was written alone: each
 * row carries its place in the run (WITH ORDINALITY) and only the last
 * change of a member's contact (of a member's channel and purpose) is
 * written, which ON CONFLICT needs anyway (a statement may not touch a row
 * twice). An erasure anywhere in the run empties the member's inbox even
 * when a later change brings a contact back, as the two statements did. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock/clock.h"
#include "db/db.h"
#include "notification.h"
#include "rules_policy.h"

#define FACT_PUSH_TOKENS_MAX 8

static const char *const CHANNELS[] = {"inbox", "email", "sms", "push", NULL};
static const char *const PURPOSES[] = {"marketing", "transactional", NULL};

static bool one_of(const char *s, const char *const *set)
{
    for (; *set; set++)
        if (strcmp(s, *set) == 0)
            return true;
    return false;
}

bool notify_is_fact(const Envelope *env)
{
    return env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED ||
           env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_CONSENT_CHANGED;
}

void notify_facts_init(struct notify_facts *f)
{
    for (int i = 0; i < NOTIFY_CONTACT_COLUMNS; i++)
        db_array_init(&f->contact[i]);
    for (int i = 0; i < NOTIFY_CONSENT_COLUMNS; i++)
        db_array_init(&f->consent[i]);
    f->count = 0;
}

void notify_facts_free(struct notify_facts *f)
{
    for (int i = 0; i < NOTIFY_CONTACT_COLUMNS; i++)
        db_array_free(&f->contact[i]);
    for (int i = 0; i < NOTIFY_CONSENT_COLUMNS; i++)
        db_array_free(&f->consent[i]);
    f->count = 0;
}

/* The contact as sealed JSON {"name","phone","email","push_tokens"}; NULL
 * when out of memory. */
static unsigned char *seal_contact(const MemberContactChanged *c, size_t *len)
{
    json_t *j = json_pack("{s:s, s:s, s:s, s:[]}", "name", c->name, "phone", c->phone, "email",
                          c->email, "push_tokens");
    for (size_t i = 0; j && i < c->n_push_tokens && i < FACT_PUSH_TOKENS_MAX; i++)
        json_array_append_new(json_object_get(j, "push_tokens"), json_string(c->push_tokens[i]));
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    unsigned char *sealed = text ? notify_seal(text, len) : NULL;
    free(text);
    return sealed;
}

static int add_contact(struct notify_facts *f, const Envelope *env, const char **poison, char *err,
                       size_t err_len)
{
    const MemberContactChanged *c = env->member_contact_changed;
    if (!env->member_id[0]) {
        *poison = "contact without a member";
        return 1;
    }
    unsigned char *sealed = NULL;
    size_t sealed_len = 0;
    if (!c->erased) {
        if (strlen(c->email) > NOTIFY_ADDRESS_MAX || strlen(c->phone) > NOTIFY_ADDRESS_MAX ||
            strlen(c->name) > NOTIFY_NAME_MAX || strlen(c->locale) > POLICY_LOCALE_MAX) {
            *poison = "contact field too long";
            return 1;
        }
        sealed = seal_contact(c, &sealed_len);
        if (!sealed) {
            snprintf(err, err_len, "out of memory sealing a contact");
            return -1;
        }
    }
    db_array_add(&f->contact[0], env->tenant_id);
    db_array_add(&f->contact[1], env->member_id);
    if (sealed)
        db_array_add_bytea(&f->contact[2], sealed, sealed_len);
    else
        db_array_add(&f->contact[2], NULL); /* an erasure: no contact */
    db_array_add(&f->contact[3], c->erased ? "" : c->locale);
    db_array_add(&f->contact[4], c->erased ? "t" : "f");
    free(sealed);
    f->count++;
    return 0;
}

static int add_consent(struct notify_facts *f, const Envelope *env, const char **poison)
{
    const ConsentChanged *c = env->consent_changed;
    if (!env->member_id[0] || !one_of(c->channel, CHANNELS) || !one_of(c->purpose, PURPOSES) ||
        strlen(c->source) > EVENT_ID_FIELD_MAX) {
        *poison = "consent for an unknown channel or purpose";
        return 1;
    }
    const char *row[NOTIFY_CONSENT_COLUMNS] = {env->tenant_id, env->member_id,         c->channel,
                                               c->purpose,     c->granted ? "t" : "f", c->source};
    for (int i = 0; i < NOTIFY_CONSENT_COLUMNS; i++)
        db_array_add(&f->consent[i], row[i]);
    f->count++;
    return 0;
}

int notify_facts_add(struct notify_facts *f, const Envelope *env, const char **poison, char *err,
                     size_t err_len)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED)
        return add_contact(f, env, poison, err, err_len);
    return add_consent(f, env, poison);
}

/* $1-$5 the contacts (tenant, member, sealed, locale, erased), $6-$11 the
 * consents (tenant, member, channel, purpose, granted, source), $12 now. */
static const char FACTS_SQL[] =
    "WITH c AS (SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::text[], "
    "$5::boolean[]) WITH ORDINALITY AS c(tenant_id, member_id, sealed, locale, erased, ord)), "
    "last_c AS (SELECT DISTINCT ON (tenant_id, member_id) * FROM c "
    "ORDER BY tenant_id, member_id, ord DESC), "
    "erased AS (SELECT DISTINCT tenant_id, member_id FROM c WHERE erased), "
    /* the inbox too: its rendered text names the member (not sealed) */
    "gone_inbox AS (DELETE FROM inbox i USING erased e "
    "WHERE i.tenant_id = e.tenant_id AND i.member_id = e.member_id), "
    "gone AS (DELETE FROM contacts t USING last_c l "
    "WHERE l.erased AND t.tenant_id = l.tenant_id AND t.member_id = l.member_id), "
    "kept AS (INSERT INTO contacts (tenant_id, member_id, sealed, locale, updated_us) "
    "SELECT tenant_id, member_id, sealed, locale, $12 FROM last_c WHERE NOT erased "
    "ON CONFLICT (tenant_id, member_id) DO UPDATE SET sealed = EXCLUDED.sealed, "
    "locale = EXCLUDED.locale, updated_us = EXCLUDED.updated_us), "
    "k AS (SELECT * FROM unnest($6::text[], $7::text[], $8::text[], $9::text[], $10::boolean[], "
    "$11::text[]) WITH ORDINALITY AS k(tenant_id, member_id, channel, purpose, granted, source, "
    "ord)), "
    "last_k AS (SELECT DISTINCT ON (tenant_id, member_id, channel, purpose) * FROM k "
    "ORDER BY tenant_id, member_id, channel, purpose, ord DESC) "
    "INSERT INTO consents (tenant_id, member_id, channel, purpose, granted, source, updated_us) "
    "SELECT tenant_id, member_id, channel, purpose, granted, source, $12 FROM last_k "
    "ON CONFLICT (tenant_id, member_id, channel, purpose) DO UPDATE SET "
    "granted = EXCLUDED.granted, source = EXCLUDED.source, updated_us = EXCLUDED.updated_us";

int notify_facts_flush(struct notify_facts *f, PGconn *pg, char *err, size_t err_len)
{
    if (f->count == 0)
        return 0;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)clock_now_us());
    const char *p[NOTIFY_CONTACT_COLUMNS + NOTIFY_CONSENT_COLUMNS + 1];
    for (int i = 0; i < NOTIFY_CONTACT_COLUMNS; i++)
        p[i] = db_array_finish(&f->contact[i]);
    for (int i = 0; i < NOTIFY_CONSENT_COLUMNS; i++)
        p[NOTIFY_CONTACT_COLUMNS + i] = db_array_finish(&f->consent[i]);
    p[NOTIFY_CONTACT_COLUMNS + NOTIFY_CONSENT_COLUMNS] = now;
    PGresult *res = db_query(pg, FACTS_SQL, NOTIFY_CONTACT_COLUMNS + NOTIFY_CONSENT_COLUMNS + 1, p,
                             err, err_len, NULL);
    PQclear(res);
    notify_facts_free(f);
    notify_facts_init(f);
    return res ? 0 : -1;
}
