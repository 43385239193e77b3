/* Member registration and look-ups. A registration is one statement: the
 * member row, the MemberRegistered event in ingest's outbox and, with an
 * Idempotency-Key, the answer, so either all of it happened or none. Name,
 * phone, email, birthday, gender and attributes are sealed before they
 * reach the database (pii.h); the
 * phone's uniqueness per tenant is a unique constraint on its keyed blind
 * index, so two registrations racing for one phone get exactly one member. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "datetime/datetime.h"
#include "bus/topics.h"
#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"
#include "notify_out.h"

#define REFERRAL_CODE_LEN  8
#define EMAIL_INDEX_PREFIX "email:" /* keeps an email's index apart from a phone's */

static const char *const register_fields[] = {
    "name",          "phone",      "email",  "birthday", "gender", "branch_id",
    "referral_code", "attributes", "locale", "consents", NULL};
const char *const member_genders[] = {"female", "male", "other", "undisclosed", NULL};

/* ------------------------------------------------------------ validation */
bool members_phone_ok(const char *p)
{
    size_t digits = 0;
    if (*p == '+')
        p++;
    for (; *p; p++, digits++)
        if (*p < '0' || *p > '9')
            return false;
    return digits >= 5 && digits <= 20;
}

bool members_birthday_ok(const char *d)
{
    int y, m, day;
    return datetime_parse_date(d, &y, &m, &day) && y >= 1900 && y <= 2100;
}

struct registration {
    const char *name, *phone, *email, *birthday, *gender, *branch_id, *referred_by;
    char *attributes; /* JSON text, malloc'ed */
};

static bool validate_registration(struct req *r, struct registration *g)
{
    struct validation v;
    validation_init(&v);
    json_t *b = r->body;
    validate_no_unknown_fields(&v, b, register_fields);
    *g = (struct registration){0};
    validate_string(&v, b, "name", true, 1, MEMBER_NAME_MAX, &g->name);
    if (validate_string(&v, b, "phone", true, 1, 24, &g->phone) && g->phone &&
        !members_phone_ok(g->phone))
        validation_add(&v, "phone", "must be 5 to 20 digits, optionally after a +");
    if (validate_string(&v, b, "email", false, 3, MEMBER_EMAIL_MAX, &g->email) && g->email &&
        !strchr(g->email, '@'))
        validation_add(&v, "email", "must be an email address");
    if (validate_string(&v, b, "birthday", false, 10, 10, &g->birthday) && g->birthday &&
        !members_birthday_ok(g->birthday))
        validation_add(&v, "birthday", "must be a date YYYY-MM-DD");
    validate_enum(&v, b, "gender", false, member_genders, &g->gender);
    ingest_validate_id(&v, b, "branch_id", true, &g->branch_id);
    validate_string(&v, b, "referral_code", false, 4, 16, &g->referred_by);
    const char *locale = NULL;
    validate_enum(&v, b, "locale", false, notify_locales, &locale);
    struct notify_consent_set consents;
    notify_parse_consents(&v, b, false, &consents);
    json_t *attrs = json_object_get(b, "attributes");
    if (attrs && !json_is_object(attrs))
        validation_add(&v, "attributes", "must be an object");
    else {
        g->attributes = attrs ? json_dumps(attrs, JSON_COMPACT) : strdup("{}");
        if (g->attributes && strlen(g->attributes) > MEMBER_ATTRIBUTES_MAX)
            validation_add(&v, "attributes", "must be at most 4096 bytes of JSON");
    }
    if (g->branch_id && validation_ok(&v) && !auth_may_use_branch(r, g->branch_id)) {
        validation_free(&v);
        free(g->attributes);
        req_fail(r, 403, "forbidden", "this key acts only for its own branch");
        return false;
    }
    if (!validation_ok(&v)) {
        free(g->attributes);
        req_fail_validation(r, &v);
        return false;
    }
    validation_free(&v);
    return true;
}

static const char *body_string(struct req *r, const char *field)
{
    return json_string_value(json_object_get(r->body, field));
}

static void make_referral_code(char out[REFERRAL_CODE_LEN + 1])
{
    /* No 0/O or 1/I: codes are read aloud and typed. */
    static const char alphabet[] = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
    for (int i = 0; i < REFERRAL_CODE_LEN; i++)
        out[i] = alphabet[randombytes_uniform(sizeof(alphabet) - 1)];
    out[REFERRAL_CODE_LEN] = '\0';
}

/* The member's personal fields, encoded and sealed under its data key
 * (what MemberRegistered carries instead of them); malloc'ed, or NULL. */
static uint8_t *seal_personal(struct req *r, const unsigned char key[PII_DATA_KEY_BYTES],
                              size_t *len)
{
    Tessera__Member__V1__MemberPersonalData d;
    tessera__member__v1__member_personal_data__init(&d);
#define OPT(f) (body_string(r, f) ? (char *)body_string(r, f) : (char *)"")
    d.name = OPT("name");
    d.phone = OPT("phone");
    d.email = OPT("email");
    d.birthday = OPT("birthday");
    d.gender = OPT("gender");
#undef OPT
    d.attributes_json = req_registration_of(r)->attributes_json;
    size_t plain_len = tessera__member__v1__member_personal_data__get_packed_size(&d);
    uint8_t *plain = malloc(plain_len ? plain_len : 1);
    if (!plain)
        return NULL;
    tessera__member__v1__member_personal_data__pack(&d, plain);
    uint8_t *sealed = pii_box_seal(key, r->caller.tenant_id, r->member_id,
                                   PII_MEMBER_REGISTERED_FIELD, plain, plain_len, len);
    sodium_memzero(plain, plain_len);
    free(plain);
    return sealed;
}

/* The MemberRegistered envelope as bytea text ("\x..."), malloc'ed; its
 * personal fields sealed under the member's data key. */
static char *encode_registered(struct req *r, const unsigned char key[PII_DATA_KEY_BYTES])
{
    struct event_meta meta = {.tenant_id = r->caller.tenant_id,
                              .branch_id = body_string(r, "branch_id"),
                              .member_id = r->member_id,
                              .actor_kind = "api_key",
                              .actor_id = r->caller.key_id,
                              .traceparent = r->traceparent};
    Envelope env;
    Actor actor;
    MemberRegistered m;
    envelope_init(&env, &actor, &meta);
    tessera__member__v1__member_registered__init(&m);
    m.member_no = req_registration_of(r)->member_no;
    m.referred_by_code =
        body_string(r, "referral_code") ? (char *)body_string(r, "referral_code") : (char *)"";
    m.referral_code = req_registration_of(r)->referral_code;
    m.referrer_member_id = req_registration_of(r)->referrer_member_id;
    m.personal_sealed.data = seal_personal(r, key, &m.personal_sealed.len);
    if (!m.personal_sealed.data)
        return NULL;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_REGISTERED;
    env.member_registered = &m;
    size_t len = 0;
    uint8_t *bin = envelope_encode(&env, &len);
    free(m.personal_sealed.data);
    if (!bin)
        return NULL;
    r->command = bin; /* kept to publish after commit */
    r->command_len = len;
    return db_bytea_text(bin, len);
}

static json_t *registration_answer(struct req *r)
{
    const struct req_registration *reg = req_registration_of(r);
    return json_pack("{s:s, s:s, s:s}", "member_id", r->member_id, "member_no", reg->member_no,
                     "referral_code", reg->referral_code);
}

static void reply_duplicate_phone(struct req *r)
{
    req_fail(r, 409, "duplicate_phone", "a member with this phone is already registered");
}

static void on_inserted(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        bool unique = strcmp(sqlstate, "23505") == 0;
        if (unique && r->idem_key[0] && strstr(err, "idempotency_keys")) {
            /* the same key raced us and won: answer as it did */
            idem_lookup_then(r, NULL);
            return;
        }
        if (unique && strstr(err, "members_tenant_phone")) {
            reply_duplicate_phone(r);
            return;
        }
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        /* the phone is registered under the previous key (a rotation is
         * under way): the insert's NOT EXISTS refused it */
        reply_duplicate_phone(r);
        return;
    }
    outbox_events_publish_rows(r->app, res, 0);
    char location[200];
    snprintf(location, sizeof(location), "/v1/members/%s", r->member_id);
    req_finish_with(r, 201, registration_answer(r), "Location", location, NULL);
}

bool members_phone_indexes(const struct ingest *app, const char *tenant_id, const char *phone,
                           char current[PII_BLIND_INDEX_HEX_BYTES],
                           char previous[PII_BLIND_INDEX_HEX_BYTES])
{
    previous[0] = '\0';
    if (app->pii.previous_version &&
        !pii_blind_index(&app->pii, app->pii.previous_version, tenant_id, phone, previous))
        return false;
    return pii_blind_index(&app->pii, app->pii.current_version, tenant_id, phone, current);
}

/* The text an email's index is taken of: the prefix and the address in
 * lower case (ASCII: mail hosts are case-blind, local parts nearly always). */
static bool email_index_text(const char *email, char out[MEMBER_EMAIL_INDEX_TEXT_MAX])
{
    size_t n = strlen(EMAIL_INDEX_PREFIX), len = strlen(email);
    if (n + len + 1 > MEMBER_EMAIL_INDEX_TEXT_MAX)
        return false;
    memcpy(out, EMAIL_INDEX_PREFIX, n);
    for (size_t i = 0; i <= len; i++)
        out[n + i] = (email[i] >= 'A' && email[i] <= 'Z') ? (char)(email[i] + 32) : email[i];
    return true;
}

bool members_email_index(const struct pii_keyring *k, int version, const char *tenant_id,
                         const char *email, char out[PII_BLIND_INDEX_HEX_BYTES])
{
    char text[MEMBER_EMAIL_INDEX_TEXT_MAX];
    return email_index_text(email, text) && pii_blind_index(k, version, tenant_id, text, out);
}

bool members_email_indexes(const struct ingest *app, const char *tenant_id, const char *email,
                           char current[PII_BLIND_INDEX_HEX_BYTES],
                           char previous[PII_BLIND_INDEX_HEX_BYTES])
{
    previous[0] = '\0';
    if (app->pii.previous_version &&
        !members_email_index(&app->pii, app->pii.previous_version, tenant_id, email, previous))
        return false;
    return members_email_index(&app->pii, app->pii.current_version, tenant_id, email, current);
}

/* The member's personal fields sealed for its row; NULL entries when
 * sealing failed (only absent optional fields are NULL on success). */
struct sealed_pii {
    char *name, *phone, *email, *birthday, *gender, *attributes;
    char *data_key; /* the member's data key, wrapped under the tenant key */
    char index[PII_BLIND_INDEX_HEX_BYTES], previous_index[PII_BLIND_INDEX_HEX_BYTES];
    char email_index[PII_BLIND_INDEX_HEX_BYTES]; /* "" without an email */
    char version[16];
};

/* Seals field of the body (optional: NULL stays NULL); false on failure. */
static bool seal_field(struct req *r, const char *field, const char *value, char **out)
{
    *out = value ? pii_seal(&r->app->pii, r->caller.tenant_id, r->member_id, field, value) : NULL;
    return *out || !value;
}

static bool seal_registration(struct req *r, const unsigned char key[PII_DATA_KEY_BYTES],
                              struct sealed_pii *s)
{
    const char *t = r->caller.tenant_id;
    bool ok = seal_field(r, "name", body_string(r, "name"), &s->name) &&
              seal_field(r, "phone", body_string(r, "phone"), &s->phone) &&
              seal_field(r, "email", body_string(r, "email"), &s->email) &&
              seal_field(r, "birthday", body_string(r, "birthday"), &s->birthday) &&
              seal_field(r, "gender", body_string(r, "gender"), &s->gender) &&
              seal_field(r, "attributes", req_registration_of(r)->attributes_json, &s->attributes);
    snprintf(s->version, sizeof(s->version), "%d", r->app->pii.current_version);
    s->data_key = ok ? pii_data_key_wrap(&r->app->pii, t, r->member_id, key) : NULL;
    const char *email = body_string(r, "email");
    s->email_index[0] = '\0';
    if (ok && email)
        ok = members_email_index(&r->app->pii, r->app->pii.current_version, t, email,
                                 s->email_index);
    return ok && s->data_key &&
           members_phone_indexes(r->app, t, body_string(r, "phone"), s->index, s->previous_index);
}

static void sealed_pii_free(struct sealed_pii *s)
{
    free(s->name);
    free(s->phone);
    free(s->email);
    free(s->birthday);
    free(s->gender);
    free(s->attributes);
    free(s->data_key);
}

/* What the registration tells notification (notify_out.c): the member's
 * contact, then each initial consent, as arrays of outbox topics and
 * payloads ($23, $24) and the consents' rows ($25-$28). False when an
 * envelope could not be encoded. */
struct registration_notify {
    struct db_array topics, payloads;
    struct notify_consent_arrays consents;
    char changed_at_us[24];
};

static bool registration_notify(struct req *r, struct registration_notify *n)
{
    struct validation ignored; /* validated before: the body has not changed */
    validation_init(&ignored);
    struct notify_consent_set set;
    notify_parse_consents(&ignored, r->body, false, &set);
    validation_free(&ignored);
    db_array_init(&n->topics);
    db_array_init(&n->payloads);
    snprintf(n->changed_at_us, sizeof(n->changed_at_us), "%lld", (long long)event_now_us());
    struct notify_contact contact = {.name = body_string(r, "name"),
                                     .phone = body_string(r, "phone"),
                                     .email = body_string(r, "email"),
                                     .locale = body_string(r, "locale")};
    size_t len = 0;
    uint8_t *bin = notify_encode_contact(&r->caller, r->member_id, r->traceparent, &contact, &len);
    /* the contact first: the consents are of a member notification knows */
    if (bin) {
        db_array_add(&n->topics, TOPIC_NOTIFY_REQUESTS);
        db_array_add_bytea(&n->payloads, bin, len);
        free(bin);
    }
    bool ok = notify_consent_arrays(&r->caller, r->member_id, r->traceparent, &set, "registration",
                                    &n->consents, &n->topics, &n->payloads);
    return bin && ok;
}

static void registration_notify_free(struct registration_notify *n)
{
    db_array_free(&n->topics);
    db_array_free(&n->payloads);
    notify_consent_arrays_free(&n->consents);
}

/* The member row (PII sealed), its data key, its MemberRegistered in the
 * outbox and the idempotency record, in one statement. During a rotation
 * the phone's index under the previous key must not exist either ($18);
 * the unique constraint covers the current key. */
static void insert_member(struct req *r)
{
    struct sealed_pii sealed = {0};
    struct registration_notify notify;
    unsigned char key[PII_DATA_KEY_BYTES];
    pii_data_key_new(key);
    char *payload = NULL;
    bool notify_ok = registration_notify(r, &notify);
    if (!notify_ok || !seal_registration(r, key, &sealed) ||
        !(payload = encode_registered(r, key))) {
        sodium_memzero(key, sizeof(key));
        sealed_pii_free(&sealed);
        registration_notify_free(&notify);
        req_fail_db(r, notify_ok ? "could not seal the member's PII"
                                 : "could not encode the member's notification events");
        return;
    }
    sodium_memzero(key, sizeof(key));
    json_t *answer = registration_answer(r);
    char *answer_text = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    /* the birthday's month and day for the campaign (member_birthday.c) */
    const char *birthday = body_string(r, "birthday");
    int by = 0, bm = 0, bd = 0;
    char *birthday_fact =
        birthday && datetime_parse_date(birthday, &by, &bm, &bd)
            ? member_birthday_fact_hex(&r->caller, r->member_id, body_string(r, "branch_id"),
                                       r->traceparent, bm, bd)
            : NULL;
    const char *p[28] = {r->caller.tenant_id,
                         r->member_id,
                         req_registration_of(r)->member_no,
                         sealed.name,
                         sealed.phone,
                         sealed.email,
                         sealed.birthday,
                         sealed.gender,
                         body_string(r, "branch_id"),
                         req_registration_of(r)->referral_code,
                         body_string(r, "referral_code"),
                         sealed.attributes,
                         payload,
                         r->idem_key[0] ? r->idem_key : NULL,
                         r->request_hash,
                         answer_text,
                         sealed.index,
                         sealed.previous_index[0] ? sealed.previous_index : NULL,
                         sealed.version,
                         sealed.data_key,
                         sealed.email_index[0] ? sealed.email_index : NULL,
                         birthday_fact,
                         db_array_finish(&notify.topics),
                         db_array_finish(&notify.payloads),
                         db_array_finish(&notify.consents.channels),
                         db_array_finish(&notify.consents.purposes),
                         db_array_finish(&notify.consents.granted),
                         notify.changed_at_us};
    int rc = pg_pool_query(
        r->app->pg,
        "WITH m AS (INSERT INTO members (tenant_id, member_id, member_no, name_enc, phone_enc, "
        "email_enc, birthday_enc, gender_enc, branch_id, referral_code, referred_by, "
        "attributes_enc, phone_bidx, pii_key_version, email_bidx) SELECT $1, $2, $3, $4::bytea, "
        "$5::bytea, $6::bytea, $7::bytea, $8::bytea, $9, $10, $11, $12::bytea, $17::bytea, "
        "$19::int, $21::bytea "
        "WHERE NOT EXISTS (SELECT 1 FROM members WHERE tenant_id = $1 "
        "AND phone_bidx = $18::bytea) RETURNING member_id), "
        "k AS (INSERT INTO member_keys (tenant_id, member_id, key_version, data_key_enc) "
        "SELECT $1, member_id, $19::int, $20::bytea FROM m), "
        "o AS (INSERT INTO outbox (topic, key, payload) SELECT '" TOPIC_MEMBER_EVENTS
        "', member_id, $13::bytea FROM m RETURNING id, topic, key, payload), "
        /* what notification hears, in order: the contact, then consents */
        "n AS (INSERT INTO outbox (topic, key, payload) SELECT x.topic, m.member_id, x.payload "
        "FROM m, unnest($23::text[], $24::bytea[]) WITH ORDINALITY AS x(topic, payload, i) "
        "ORDER BY x.i RETURNING id, topic, key, payload), "
        "c AS (INSERT INTO member_consents (tenant_id, member_id, channel, purpose, granted, "
        "source, changed_at_us) SELECT $1, m.member_id, x.channel, x.purpose, x.granted, "
        "'registration', $28::bigint FROM m, unnest($25::text[], $26::text[], $27::bool[]) "
        "AS x(channel, purpose, granted)), "
        "i AS (INSERT INTO idempotency_keys (tenant_id, idempotency_key, request_hash, "
        "response_status, response_body) SELECT $1, $14, $15, 201, $16 FROM m "
        "WHERE $14::text IS NOT NULL), "
        "bd AS (INSERT INTO outbox (topic, key, payload, lease_until) SELECT '" TOPIC_MEMBER_EVENTS
        "', member_id, $22::bytea, now() FROM m WHERE $22::bytea IS NOT NULL) "
        "SELECT id, topic, key, payload FROM o UNION ALL SELECT id, topic, key, payload FROM n "
        "ORDER BY id",
        28, p, on_inserted, r);
    free(birthday_fact);
    sealed_pii_free(&sealed);
    registration_notify_free(&notify);
    free(payload);
    free(answer_text);
    if (rc < 0)
        req_fail_db(r, "queue full");
}

/* The referral code given, checked: it must be a member's of this tenant
 * (column 2 of the prepare query: that member's id, NULL when none), and
 * not the registering person's own (column 3: that member has the phone
 * being registered). One referrer per member, fixed at registration, so
 * referrals form a forest: no loop is possible. false when answered. */
static bool referral_checked(struct req *r, PGresult *res)
{
    if (!body_string(r, "referral_code"))
        return true;
    if (PQgetisnull(res, 0, 2)) {
        req_fail(r, 422, "unknown_referral_code",
                 "no member of this tenant has this referral code");
        return false;
    }
    if (strcmp(PQgetvalue(res, 0, 3), "t") == 0) {
        req_fail(r, 422, "self_referral", "a member cannot refer themself");
        return false;
    }
    struct req_registration *reg = req_registration_of(r);
    snprintf(reg->referrer_member_id, sizeof(reg->referrer_member_id), "%s", PQgetvalue(res, 0, 2));
    return true;
}

static void on_prepared(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (!req_branch_exists(r, res, 1))
        return;
    if (!referral_checked(r, res))
        return;
    struct req_registration *reg = req_registration_of(r);
    snprintf(reg->member_no, sizeof(reg->member_no), "M%s", PQgetvalue(res, 0, 0));
    uuid7_generate(r->member_id);
    make_referral_code(reg->referral_code);
    insert_member(r);
}

/* After the idempotency look-up found nothing: a member number, the
 * branch checked and the referrer found, in one round trip. The phone is
 * compared by its keyed blind indexes (current and, during a rotation,
 * previous key). */
static void prepare(struct req *r)
{
    char index[PII_BLIND_INDEX_HEX_BYTES], previous[PII_BLIND_INDEX_HEX_BYTES];
    if (!members_phone_indexes(r->app, r->caller.tenant_id, body_string(r, "phone"), index,
                               previous)) {
        req_fail_db(r, "no key for the phone's blind index");
        return;
    }
    const char *p[5] = {r->caller.tenant_id, body_string(r, "branch_id"),
                        body_string(r, "referral_code"), index, previous[0] ? previous : NULL};
    if (pg_pool_query(
            r->app->pg,
            "SELECT nextval('member_no_seq'), " BRANCH_STATE_SQL(
                "$1", "$2") ", ref.member_id, "
                            "coalesce(ref.phone_bidx IN ($4::bytea, $5::bytea), false) "
                            "FROM (SELECT 1) one LEFT JOIN members ref ON ref.tenant_id = $1 "
                            "AND ref.referral_code = $3",
            5, p, on_prepared, r) < 0)
        req_fail_db(r, "queue full");
}

bool members_text_utf8(const char *text)
{
    json_t *s = json_string(text); /* jansson refuses a string that is not UTF-8 */
    bool ok = s != NULL;
    json_decref(s);
    return ok;
}

bool auth_may_manage_members(struct req *r)
{
    if (strcmp(r->caller.scope, "admin") == 0 || strcmp(r->caller.scope, "pos") == 0)
        return true;
    req_fail(r, 403, "forbidden", "this key may not change members");
    return false;
}

static void register_authenticated(struct req *r)
{
    if (!auth_may_manage_members(r))
        return;
    if (!req_read_body(r))
        return;
    struct registration g;
    if (!validate_registration(r, &g))
        return;
    req_registration_of(r)->attributes_json = g.attributes;
    idem_lookup_then(r, prepare);
}

void members_register(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), register_authenticated);
}

/* ------------------------------------------------------------ look-ups */
static void get_authenticated(struct req *r)
{
    if (!req_member_from_path(r))
        return;
    member_view_reply(r, r->member_id);
}

void members_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), get_authenticated);
}

static void on_found(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "not_found", "no member with this phone");
        return;
    }
    char id[INGEST_KEY_MAX];
    snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
    member_view_reply(r, id);
}

static void find_authenticated(struct req *r)
{
    const char *phone = http_query(r->ex, "phone");
    if (!phone) { /* no exact look-up: the filtered list */
        members_list(r);
        return;
    }
    if (!members_phone_ok(phone)) {
        req_reply_invalid(r, "phone", "query parameter phone is required: 5 to 20 digits");
        return;
    }
    char index[PII_BLIND_INDEX_HEX_BYTES], previous[PII_BLIND_INDEX_HEX_BYTES];
    if (!members_phone_indexes(r->app, r->caller.tenant_id, phone, index, previous)) {
        req_fail_db(r, "no key for the phone's blind index");
        return;
    }
    /* Only the keyed index is compared: the database never sees the phone.
     * During a rotation a row may still carry the previous key's index. */
    const char *p[3] = {r->caller.tenant_id, index, previous[0] ? previous : NULL};
    if (pg_pool_query(r->app->pg,
                      "SELECT member_id FROM members WHERE tenant_id = $1 "
                      "AND phone_bidx IN ($2::bytea, $3::bytea)",
                      3, p, on_found, r) < 0)
        req_fail_db(r, "queue full");
}

void members_find(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), find_authenticated);
}
