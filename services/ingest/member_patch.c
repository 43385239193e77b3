/* PATCH /v1/members/{member_id}: a member's profile (name, phone, email,
 * birthday, gender, attributes), by an admin or pos key.
 *
 * The row is read, every personal field opened, the body laid over them,
 * and the whole profile sealed again under the current master key (so a
 * row never mixes key versions), with the phone's and email's blind
 * indexes. One statement then writes it as a compare-and-set on
 * profile_version (a change read from an older profile answers 409
 * edit_conflict, never overwrites a concurrent one), queues
 * MemberProfileChanged (sealed under the member's data key, like
 * MemberRegistered) in the outbox and writes the audit row (field names
 * only, no personal data). A new phone is checked like a registration's:
 * the unique blind index under the current key, and during a rotation the
 * previous key's index, answer 409 duplicate_phone.
 *
 * When the name, phone or email changed, the same statement also queues a
 * MemberContactChanged on notify-requests (keyed by member) for the
 * notification service: its addresses, in the clear as notification needs
 * them to deliver (notify-requests keeps 7 days; restrict who reads it). */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "http/validate.h"
#include "ingest.h"
#include "profile_cache.h"
#include "notify_out.h"
#include "log/log.h"

#define PROFILE_FIELDS               6
#define MEMBER_PROFILE_CHANGED_FIELD "member_profile_changed" /* the seal's associated field */

/* The personal fields in row order (pii_reencrypt.c uses the same). */
static const char *const profile_fields[PROFILE_FIELDS + 1] = {
    "name", "phone", "email", "birthday", "gender", "attributes", NULL};
enum { F_NAME, F_PHONE, F_EMAIL, F_BIRTHDAY, F_GENDER, F_ATTRIBUTES };

/* Columns of load_profile's query. */
#define COL_VERSION   0
#define COL_PLAIN(i)  (1 + (i))
#define COL_SEALED(i) (1 + PROFILE_FIELDS + (i))
#define COL_PROFILE_V 13
#define COL_ERASED    14
#define COL_KEY_V     15
#define COL_DATA_KEY  16
#define COL_BRANCH    17

/* ------------------------------------------------------------ validation */
static bool present(json_t *b, const char *field)
{
    return json_object_get(b, field) != NULL;
}

static bool is_null(json_t *b, const char *field)
{
    return json_is_null(json_object_get(b, field));
}

/* name and phone cannot be removed; email, birthday and gender can (null). */
static void validate_required_kept(struct validation *v, json_t *b)
{
    const char *s = NULL;
    if (is_null(b, "name"))
        validation_add(v, "name", "cannot be removed");
    else
        validate_string(v, b, "name", false, 1, MEMBER_NAME_MAX, &s);
    const char *phone = NULL;
    if (is_null(b, "phone"))
        validation_add(v, "phone", "cannot be removed");
    else if (validate_string(v, b, "phone", false, 1, 24, &phone) && phone &&
             !members_phone_ok(phone))
        validation_add(v, "phone", "must be 5 to 20 digits, optionally after a +");
}

static bool validate_patch(struct req *r)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    const char *s = NULL, *birthday = NULL, *gender = NULL;
    validate_no_unknown_fields(&v, b, profile_fields);
    if (json_object_size(b) == 0)
        validation_add(&v, "body",
                       "give at least one of name, phone, email, birthday, gender, "
                       "attributes");
    validate_required_kept(&v, b);
    if (validate_string(&v, b, "email", false, 3, MEMBER_EMAIL_MAX, &s) && s && !strchr(s, '@'))
        validation_add(&v, "email", "must be an email address");
    if (validate_string(&v, b, "birthday", false, 10, 10, &birthday) && birthday &&
        !members_birthday_ok(birthday))
        validation_add(&v, "birthday", "must be a date YYYY-MM-DD");
    validate_enum(&v, b, "gender", false, member_genders, &gender);
    json_t *attrs = json_object_get(b, "attributes");
    if (attrs && !json_is_object(attrs))
        validation_add(&v, "attributes", "must be an object");
    else if (attrs) {
        char *text = json_dumps(attrs, JSON_COMPACT);
        if (!text || strlen(text) > MEMBER_ATTRIBUTES_MAX)
            validation_add(&v, "attributes", "must be at most 4096 bytes of JSON");
        free(text);
    }
    return req_validated(r, &v);
}

/* ------------------------------------------------------------ the new profile */
struct profile {
    char *clear[PROFILE_FIELDS]; /* after the change; NULL: absent */
    char *sealed[PROFILE_FIELDS];
    json_t *changed; /* names of the fields that changed */
    char phone_index[PII_BLIND_INDEX_HEX_BYTES], previous_index[PII_BLIND_INDEX_HEX_BYTES];
    char email_index[PII_BLIND_INDEX_HEX_BYTES];
    unsigned char data_key[PII_DATA_KEY_BYTES];
    char *new_data_key; /* wrapped, when the member had none (rows from before keys) */
    long long version;  /* profile_version read */
};

static void profile_free(struct profile *p)
{
    for (int i = 0; i < PROFILE_FIELDS; i++) {
        if (p->clear[i])
            sodium_memzero(p->clear[i], strlen(p->clear[i]));
        free(p->clear[i]);
        free(p->sealed[i]);
    }
    json_decref(p->changed);
    sodium_memzero(p->data_key, sizeof(p->data_key));
    free(p->new_data_key);
}

/* Field i as stored: the legacy column (key version 0) or opened. */
static char *stored_clear(struct req *r, const PGresult *res, int i, bool *ok)
{
    int version = atoi(PQgetvalue(res, 0, COL_VERSION));
    if (version == 0)
        return PQgetisnull(res, 0, COL_PLAIN(i)) ? NULL : strdup(PQgetvalue(res, 0, COL_PLAIN(i)));
    if (PQgetisnull(res, 0, COL_SEALED(i)))
        return NULL;
    char *clear = pii_open(&r->app->pii, version, r->caller.tenant_id, r->member_id,
                           profile_fields[i], PQgetvalue(res, 0, COL_SEALED(i)));
    *ok = *ok && clear;
    return clear;
}

/* The body's value of field i (a copy; NULL for JSON null). */
static char *given(json_t *b, int i)
{
    json_t *value = json_object_get(b, profile_fields[i]);
    if (json_is_string(value))
        return strdup(json_string_value(value));
    return json_is_object(value) ? json_dumps(value, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
}

static bool same_value(int i, const char *a, const char *b)
{
    if (!a || !b)
        return a == b;
    if (i != F_ATTRIBUTES)
        return strcmp(a, b) == 0;
    json_t *ja = json_loads(a, 0, NULL), *jb = json_loads(b, 0, NULL);
    bool same = ja && jb && json_equal(ja, jb);
    json_decref(ja);
    json_decref(jb);
    return same;
}

/* Lays the body over the stored profile: p->clear and p->changed. */
static bool merge(struct req *r, const PGresult *res, struct profile *p)
{
    bool ok = true;
    p->changed = json_array();
    for (int i = 0; i < PROFILE_FIELDS && ok; i++) {
        char *old = stored_clear(r, res, i, &ok);
        if (!present(r->body, profile_fields[i])) {
            p->clear[i] = old;
            continue;
        }
        p->clear[i] = given(r->body, i);
        if (!same_value(i, old, p->clear[i]))
            json_array_append_new(p->changed, json_string(profile_fields[i]));
        if (old)
            sodium_memzero(old, strlen(old));
        free(old);
    }
    return ok;
}

/* Seals every field under the current key, with the blind indexes. */
static bool seal(struct req *r, struct profile *p)
{
    const struct pii_keyring *k = &r->app->pii;
    const char *t = r->caller.tenant_id;
    for (int i = 0; i < PROFILE_FIELDS; i++) {
        p->sealed[i] =
            p->clear[i] ? pii_seal(k, t, r->member_id, profile_fields[i], p->clear[i]) : NULL;
        if (p->clear[i] && !p->sealed[i])
            return false;
    }
    p->email_index[0] = '\0';
    if (p->clear[F_EMAIL] &&
        !members_email_index(k, k->current_version, t, p->clear[F_EMAIL], p->email_index))
        return false;
    return p->clear[F_PHONE] && p->clear[F_NAME] &&
           members_phone_indexes(r->app, t, p->clear[F_PHONE], p->phone_index, p->previous_index);
}

/* The member's data key: unwrapped, or a new one (wrapped in
 * p->new_data_key) for a member registered before data keys. */
static bool data_key(struct req *r, const PGresult *res, struct profile *p)
{
    if (PQgetisnull(res, 0, COL_DATA_KEY)) {
        pii_data_key_new(p->data_key);
        p->new_data_key =
            pii_data_key_wrap(&r->app->pii, r->caller.tenant_id, r->member_id, p->data_key);
        return p->new_data_key != NULL;
    }
    return pii_data_key_unwrap(&r->app->pii, atoi(PQgetvalue(res, 0, COL_KEY_V)),
                               r->caller.tenant_id, r->member_id, PQgetvalue(res, 0, COL_DATA_KEY),
                               p->data_key);
}

/* ------------------------------------------------------------ the event */
static uint8_t *seal_event_profile(struct req *r, const struct profile *p, size_t *len)
{
    Tessera__Member__V1__MemberPersonalData d;
    tessera__member__v1__member_personal_data__init(&d);
#define OR_EMPTY(i) (p->clear[i] ? p->clear[i] : (char *)"")
    d.name = OR_EMPTY(F_NAME);
    d.phone = OR_EMPTY(F_PHONE);
    d.email = OR_EMPTY(F_EMAIL);
    d.birthday = OR_EMPTY(F_BIRTHDAY);
    d.gender = OR_EMPTY(F_GENDER);
    d.attributes_json = p->clear[F_ATTRIBUTES] ? p->clear[F_ATTRIBUTES] : (char *)"{}";
#undef OR_EMPTY
    size_t plain_len = tessera__member__v1__member_personal_data__get_packed_size(&d);
    uint8_t *plain = malloc(plain_len ? plain_len : 1);
    if (!plain)
        return NULL;
    tessera__member__v1__member_personal_data__pack(&d, plain);
    uint8_t *sealed = pii_box_seal(p->data_key, r->caller.tenant_id, r->member_id,
                                   MEMBER_PROFILE_CHANGED_FIELD, plain, plain_len, len);
    sodium_memzero(plain, plain_len);
    free(plain);
    return sealed;
}

/* MemberProfileChanged as bytea text, malloc'ed; the encoded envelope is
 * kept in r->command to publish after commit. */
static char *encode_changed(struct req *r, const struct profile *p, const char *branch_id)
{
    struct event_meta meta = {.tenant_id = r->caller.tenant_id,
                              .branch_id = branch_id,
                              .member_id = r->member_id,
                              .actor_kind = "api_key",
                              .actor_id = r->caller.key_id,
                              .traceparent = r->traceparent};
    Envelope env;
    Actor actor;
    Tessera__Member__V1__MemberProfileChanged m;
    envelope_init(&env, &actor, &meta);
    tessera__member__v1__member_profile_changed__init(&m);
    size_t n = json_array_size(p->changed);
    char *names[PROFILE_FIELDS];
    for (size_t i = 0; i < n; i++)
        names[i] = (char *)json_string_value(json_array_get(p->changed, i));
    m.n_changed_fields = n;
    m.changed_fields = names;
    m.profile_version = p->version + 1;
    m.personal_sealed.data = seal_event_profile(r, p, &m.personal_sealed.len);
    if (!m.personal_sealed.data)
        return NULL;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_PROFILE_CHANGED;
    env.member_profile_changed = &m;
    size_t len = 0;
    uint8_t *bin = envelope_encode(&env, &len);
    free(m.personal_sealed.data);
    if (!bin)
        return NULL;
    r->command = bin;
    r->command_len = len;
    return db_bytea_text(bin, len);
}

/* MemberContactChanged as bytea text (malloc'ed), or NULL when neither
 * name, phone nor email changed (*failed: it could not be encoded). */
static char *encode_contact(struct req *r, const struct profile *p, bool *failed)
{
    bool contact = false;
    for (size_t i = 0; i < json_array_size(p->changed); i++) {
        const char *f = json_string_value(json_array_get(p->changed, i));
        contact = contact || !strcmp(f, "name") || !strcmp(f, "phone") || !strcmp(f, "email");
    }
    if (!contact)
        return NULL;
    struct notify_contact now = {
        .name = p->clear[F_NAME], .phone = p->clear[F_PHONE], .email = p->clear[F_EMAIL]};
    size_t len = 0;
    uint8_t *bin = notify_encode_contact(&r->caller, r->member_id, r->traceparent, &now, &len);
    char *hex = bin ? db_bytea_text(bin, len) : NULL;
    if (bin)
        sodium_memzero(bin, len);
    free(bin);
    *failed = !hex;
    return hex;
}

/* After commit: the contact change's outbox row (id, payload) to
 * notify-requests, when there is one. */
static void publish_contact(struct req *r, const PGresult *res)
{
    if (PQgetisnull(res, 0, 2))
        return;
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, 0, 3), &len);
    if (!raw)
        return; /* the sweep sends it */
    outbox_publish_to(r->app, PQgetvalue(res, 0, 2), TOPIC_NOTIFY_REQUESTS, r->member_id, raw, len);
    PQfreemem(raw);
}

/* ------------------------------------------------------------ the write */
static void reply_view(struct req *r)
{
    member_view_reply(r, r->member_id);
}

static void on_written(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        if (strcmp(sqlstate, "23505") == 0 && strstr(err, "members_tenant_phone"))
            req_fail(r, 409, "duplicate_phone", "a member with this phone is already registered");
        else
            req_fail_db(r, err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "t") == 0) {
        /* the phone is another member's under the previous key (a rotation) */
        req_fail(r, 409, "duplicate_phone", "a member with this phone is already registered");
        return;
    }
    if (PQgetisnull(res, 0, 1)) {
        req_fail(r, 409, "edit_conflict",
                 "the member changed since it was read (or was erased); read it and try again");
        return;
    }
    member_events_publish(r->app, PQgetvalue(res, 0, 1), r->member_id, r->command, r->command_len);
    publish_contact(r, res);
    /* the cached profile goes before the answer, so the next read shows the change */
    profile_cache_forget_then(r, strtoll(PQgetvalue(res, 0, 4), NULL, 10), reply_view);
}

/* The compare-and-set on profile_version, the data key of a member who had
 * none, the outbox row and the audit row, in one statement. */
static const char WRITE_SQL[] =
    "WITH dup AS (SELECT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 AND member_id <> $4 "
    "AND phone_bidx = $14::bytea) AS d), "
    "m AS (UPDATE members SET name = NULL, phone = NULL, email = NULL, birthday = NULL, "
    "gender = NULL, attributes = '{}', name_enc = $5::bytea, phone_enc = $6::bytea, "
    "email_enc = $7::bytea, birthday_enc = $8::bytea, gender_enc = $9::bytea, "
    "attributes_enc = $10::bytea, phone_bidx = $11::bytea, email_bidx = $12::bytea, "
    "pii_key_version = $13::int, profile_version = profile_version + 1, "
    "view_version = view_version + 1 "
    "WHERE tenant_id = $1 AND member_id = $4 AND profile_version = $15::int "
    "AND personal_data_erased_at IS NULL AND NOT (SELECT d FROM dup) "
    "RETURNING member_id, profile_version, view_version), "
    "k AS (INSERT INTO member_keys (tenant_id, member_id, key_version, data_key_enc) "
    "SELECT $1, member_id, $13::int, $16::bytea FROM m WHERE $16::bytea IS NOT NULL), "
    "o AS (INSERT INTO outbox (topic, key, payload) SELECT '" TOPIC_MEMBER_EVENTS
    "', member_id, $17::bytea FROM m RETURNING id), "
    "c AS (INSERT INTO outbox (topic, key, payload) SELECT '" TOPIC_NOTIFY_REQUESTS
    "', member_id, $19::bytea FROM m WHERE $19::bytea IS NOT NULL RETURNING id, payload), "
    "changed AS (SELECT member_id AS target, jsonb_build_object('profile_version', "
    "profile_version - 1) AS before, jsonb_build_object('profile_version', profile_version, "
    "'changed_fields', $18::jsonb) AS after FROM m), " AUDIT_CTE(
        "member.profile.update") "SELECT (SELECT d FROM dup), (SELECT id FROM o), "
                                 "(SELECT id FROM c), (SELECT payload FROM c), "
                                 "(SELECT view_version FROM m)";

static void write_profile(struct req *r, struct profile *p, const char *payload,
                          const char *contact)
{
    char version[16], read_version[24];
    snprintf(version, sizeof(version), "%d", r->app->pii.current_version);
    snprintf(read_version, sizeof(read_version), "%lld", p->version);
    char *changed = json_dumps(p->changed, JSON_COMPACT);
    const char *params[19] = {r->caller.tenant_id,
                              r->caller.key_id,
                              http_peer(r->ex),
                              r->member_id,
                              p->sealed[F_NAME],
                              p->sealed[F_PHONE],
                              p->sealed[F_EMAIL],
                              p->sealed[F_BIRTHDAY],
                              p->sealed[F_GENDER],
                              p->sealed[F_ATTRIBUTES],
                              p->phone_index,
                              p->email_index[0] ? p->email_index : NULL,
                              version,
                              p->previous_index[0] ? p->previous_index : NULL,
                              read_version,
                              p->new_data_key,
                              payload,
                              changed,
                              contact};
    if (pg_pool_query(r->app->pg, WRITE_SQL, 19, params, on_written, r) < 0)
        req_fail_db(r, "queue full");
    free(changed);
}

static void on_loaded(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!req_member_row(r, res, err))
        return;
    if (strcmp(PQgetvalue(res, 0, COL_ERASED), "t") == 0) {
        req_fail(r, 409, "personal_data_erased",
                 "the member's personal data was erased; it cannot be changed");
        return;
    }
    struct profile p = {.version = strtoll(PQgetvalue(res, 0, COL_PROFILE_V), NULL, 10)};
    char *payload = NULL, *contact = NULL;
    bool ok = merge(r, res, &p), contact_failed = false;
    if (ok && json_array_size(p.changed) == 0) { /* nothing changes: nothing to publish */
        profile_free(&p);
        member_view_reply(r, r->member_id);
        return;
    }
    ok = ok && seal(r, &p) && data_key(r, res, &p) &&
         (payload = encode_changed(r, &p, PQgetvalue(res, 0, COL_BRANCH)));
    if (ok)
        contact = encode_contact(r, &p, &contact_failed);
    ok = ok && !contact_failed;
    if (!ok) {
        log_fields(LOG_ERROR, "member PII cannot be opened or sealed", "member_id", r->member_id,
                   "key_version", PQgetvalue(res, 0, COL_VERSION), NULL);
        req_fail(r, 500, "pii_unavailable", "the member's personal data cannot be decrypted");
    } else
        write_profile(r, &p, payload, contact);
    free(payload);
    free(contact);
    profile_free(&p);
}

static void patch_authenticated(struct req *r)
{
    if (!auth_may_manage_members(r) || !req_member_from_path(r) || !req_read_body(r) ||
        !validate_patch(r))
        return;
    const char *p[2] = {r->caller.tenant_id, r->member_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT m.pii_key_version, m.name, m.phone, m.email, m.birthday::text, "
                      "m.gender, m.attributes::text, m.name_enc, m.phone_enc, m.email_enc, "
                      "m.birthday_enc, m.gender_enc, m.attributes_enc, m.profile_version, "
                      "m.personal_data_erased_at IS NOT NULL, k.key_version, k.data_key_enc, "
                      "m.branch_id FROM members m LEFT JOIN member_keys k "
                      "USING (tenant_id, member_id) WHERE m.tenant_id = $1 AND m.member_id = $2",
                      2, p, on_loaded, r) < 0)
        req_fail_db(r, "queue full");
}

void members_patch(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), patch_authenticated);
}
