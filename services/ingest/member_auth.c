/* Member login (the app calls these with its tenant's app key, the only
 * scope they take; the member proves who they are with a code or a
 * password):
 *
 *   POST /v1/auth/sms-codes {phone}   a six-digit code goes out as a
 *       NotifyRequest (template login_code) on notify-requests; only its
 *       keyed hash is kept.
 *       Always 202, known phone or not, so the endpoint does not tell who is
 *       a member; at most one code per phone per 30 s (later requests are
 *       answered the same and send nothing).
 *   POST /v1/auth/sessions {phone, code | password, device_id}
 *       a code: unexpired, unused, fewer than 5 wrong tries, used once;
 *       a password: argon2id, at most 5 tries at once per member then 1 a
 *       second; the device must be known or under the device limit.
 *       → 201 {token, member_id, expires_in_s}: a session in Redis.
 *   DELETE /v1/auth/sessions          logout (the member's token). */
#include <assert.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/topics.h"
#include "http/validate.h"
#include "ingest.h"
#include "log/log.h"

#define CODE_DIGITS           6
#define CODE_TTL_S            300
#define CODE_ATTEMPTS_MAX     5
#define CODE_RESEND_S         30
#define SMS_PER_ADDRESS_PER_S 1
#define SMS_PER_ADDRESS_BURST 10
#define DEVICE_ID_MAX         64
#define TOKEN_PREFIX          "tsm_"
#define TOKEN_RANDOM_BYTES    32
#define TOKEN_TEXT_BYTES      (sizeof(TOKEN_PREFIX) + 2 * TOKEN_RANDOM_BYTES)
#define LOGIN_TRIES_PER_S     1
#define LOGIN_TRIES_BURST     5
/* An argon2id hash (interactive limits) of 16 random bytes that were
 * thrown away: nothing verifies against it. */
#define UNKNOWN_PASSWORD_HASH                                                                      \
    "$argon2id$v=19$m=65536,t=2,p=1$7a5qcEh+HOVlw+b1kgj26g$"                                       \
    "lCaU53yZKBkbkFsgwT44hhn93WqoCoDRWH4bO+8BrnA"
#define STR(x)  #x
#define XSTR(x) STR(x)

struct login {
    char index[PII_BLIND_INDEX_HEX_BYTES], previous[PII_BLIND_INDEX_HEX_BYTES];
    char code[CODE_DIGITS + 1];
    char code_hash[PII_BLIND_INDEX_HEX_BYTES];
    char device_id[DEVICE_ID_MAX + 1];
    char token[TOKEN_TEXT_BYTES];
    char token_hash[65];
};

static struct login *login_of(struct req *r)
{
    struct req_login *l = req_login_of(r);
    if (!l->state) {
        l->state = calloc(1, sizeof(struct login));
        assert(l->state);
        l->size = sizeof(struct login);
    }
    return l->state;
}

static bool phone_valid(const char *p)
{
    size_t digits = 0;
    if (p && *p == '+')
        p++;
    for (; p && *p; p++, digits++)
        if (*p < '0' || *p > '9')
            return false;
    return digits >= 5 && digits <= 20;
}

/* Reads the body and the phone's blind indexes; answers and returns false
 * when the body is not acceptable. */
static bool read_phone_body(struct req *r, const char *const *fields)
{
    if (!req_read_body(r))
        return false;
    struct validation v;
    validation_init(&v);
    const char *phone = NULL;
    validate_no_unknown_fields(&v, r->body, fields);
    if (validate_string(&v, r->body, "phone", true, 5, 24, &phone) && phone && !phone_valid(phone))
        validation_add(&v, "phone", "must be 5 to 20 digits, optionally after a +");
    if (!req_validated(r, &v))
        return false;
    struct login *l = login_of(r);
    if (!members_phone_indexes(r->app, r->caller.tenant_id, phone, l->index, l->previous)) {
        req_fail_db(r, "no key for the phone's blind index");
        return false;
    }
    return true;
}

/* ------------------------------------------------------------ SMS codes */
/* The login code as a NotifyRequest (template login_code, transactional,
 * priority high: a lane of its own at notification, never behind a
 * campaign), by SMS only, not delivered after it expires. Its request_id
 * is "login_code:<code id>" (the sms_codes row: one per code asked for).
 *
 * The phone travels as the variable recipient.phone: a member's first
 * login may come before notification has stored the contact that
 * registration sent (or the member registered before contacts were
 * sent at all), and the phone the member typed is the one that must
 * get the code. Notification sends to recipient.phone when it is given.
 *
 * Not through the outbox: a code lost with a crash is simply asked for
 * again, and a code must never outlive its purpose in a table. */
static void send_code(struct req *r, const char *member_id, const char *code_id,
                      int64_t expires_at_us)
{
    struct login *l = login_of(r);
    struct event_meta meta = {.tenant_id = r->caller.tenant_id,
                              .member_id = member_id,
                              .actor_kind = "member",
                              .actor_id = member_id,
                              .traceparent = r->traceparent};
    Envelope env;
    Actor actor;
    Tessera__Notification__V1__NotifyRequest m;
    Tessera__Notification__V1__Variable vars[4],
        *var_ptrs[4] = {&vars[0], &vars[1], &vars[2], &vars[3]};
    char *channels[] = {"sms"};
    char request_id[64];
    snprintf(request_id, sizeof(request_id), "login_code:%s", code_id);
    envelope_init(&env, &actor, &meta);
    tessera__notification__v1__notify_request__init(&m);
    for (size_t i = 0; i < 4; i++)
        tessera__notification__v1__variable__init(&vars[i]);
    vars[0].name = "code";
    vars[0].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    vars[0].text = l->code;
    vars[1].name = "expires_at";
    vars[1].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US;
    vars[1].time_us = expires_at_us;
    vars[2].name = "recipient.phone";
    vars[2].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    vars[2].text = (char *)json_string_value(json_object_get(r->body, "phone"));
    vars[3].name = "expires_minutes"; /* what the default template shows */
    vars[3].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    vars[3].number = CODE_TTL_S / 60;
    m.request_id = request_id;
    m.template_ = "login_code";
    m.purpose = "transactional";
    m.priority = "high";
    m.n_channels = 1;
    m.channels = channels;
    m.n_variables = 4;
    m.variables = var_ptrs;
    m.expires_at_us = expires_at_us;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = &m;
    size_t len = 0;
    uint8_t *bin = envelope_encode(&env, &len);
    rd_kafka_headers_t *headers =
        bin ? envelope_cloudevents_headers(&env, "/tessera/ingest") : NULL;
    rd_kafka_resp_err_t e = bin ? bus_produce(r->app->producer, TOPIC_NOTIFY_REQUESTS, member_id,
                                              bin, len, headers, NULL)
                                : RD_KAFKA_RESP_ERR__FAIL;
    if (e != RD_KAFKA_RESP_ERR_NO_ERROR)
        log_fields(LOG_WARN, "login code not sent", "member_id", member_id, "error",
                   rd_kafka_err2str(e), NULL);
    if (bin)
        sodium_memzero(bin, len);
    free(bin);
}

static void on_code_stored(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    /* One row when a code was stored; none for an unknown phone or within
     * the resend interval. The answer is the same either way. */
    if (PQntuples(res) == 1)
        send_code(r, PQgetvalue(res, 0, 0), PQgetvalue(res, 0, 2),
                  strtoll(PQgetvalue(res, 0, 1), NULL, 10));
    req_finish(
        r, 202,
        json_pack("{s:i, s:i}", "expires_in_s", CODE_TTL_S, "resend_after_s", CODE_RESEND_S));
}

static void sms_code_authenticated(struct req *r)
{
    static const char *const fields[] = {"phone", NULL};
    /* Every code is a paid SMS: one address may not spray codes over many
     * phones (SMS pumping), whatever the per-phone interval allows. */
    char bucket[RATE_NAME_MAX];
    snprintf(bucket, sizeof(bucket), "sms:%s", http_peer(r->ex));
    if (!auth_within_rate(r, bucket, SMS_PER_ADDRESS_PER_S, SMS_PER_ADDRESS_BURST))
        return;
    if (!read_phone_body(r, fields))
        return;
    struct login *l = login_of(r);
    snprintf(l->code, sizeof(l->code), "%06u", randombytes_uniform(1000000));
    if (!pii_code_hash(&r->app->pii, r->caller.tenant_id, l->index, l->code, l->code_hash)) {
        req_fail_db(r, "no key for the code hash");
        return;
    }
    const char *p[4] = {r->caller.tenant_id, l->index, l->previous[0] ? l->previous : NULL,
                        l->code_hash};
    if (pg_pool_query(
            r->app->pg,
            "WITH m AS (SELECT member_id FROM members WHERE tenant_id = $1 AND phone_bidx IN "
            "($2::bytea, $3::bytea) LIMIT 1) "
            "INSERT INTO sms_codes (tenant_id, member_id, phone_bidx, code_hash, expires_at) "
            "SELECT $1, member_id, $2::bytea, $4::bytea, now() + interval '" XSTR(
                CODE_TTL_S) " seconds' FROM m WHERE NOT EXISTS (SELECT 1 FROM sms_codes WHERE "
                            "tenant_id = $1 "
                            "AND phone_bidx = $2::bytea AND created_at > now() - interval '" XSTR(
                                CODE_RESEND_S) " seconds') RETURNING member_id, (extract(epoch "
                                               "FROM expires_at) * 1000000)::bigint, code_id",
            4, p, on_code_stored, r) < 0)
        req_fail_db(r, "queue full");
}

void member_auth_sms_code(struct http_exchange *ex, void *app)
{
    auth_app_then(req_new(app, ex), sms_code_authenticated);
}

/* ------------------------------------------------------------ sessions */
static void reply_bad_credentials(struct req *r, const char *code)
{
    req_fail(r, 401, code,
             strcmp(code, "invalid_code") == 0
                 ? "the code is wrong, expired, used or tried too often"
                 : "the phone or the password is wrong");
}

static void on_session_stored(void *arg, redisReply *reply)
{
    struct req *r = arg;
    struct login *l = login_of(r);
    if (!reply || reply->type == REDIS_REPLY_ERROR) {
        req_fail(r, 503, "unavailable", "sessions are unavailable; retry shortly");
        return;
    }
    req_finish_with(r, 201,
                    json_pack("{s:s, s:s, s:s, s:I}", "token", l->token, "member_id", r->member_id,
                              "device_id", l->device_id, "expires_in_s",
                              (json_int_t)r->app->session_ttl_s),
                    "Cache-Control", "no-store", NULL);
}

/* The member is who they say and the device is allowed: a new session. */
static void open_session(struct req *r)
{
    struct login *l = login_of(r);
    unsigned char raw[TOKEN_RANDOM_BYTES];
    randombytes_buf(raw, sizeof(raw));
    memcpy(l->token, TOKEN_PREFIX, sizeof(TOKEN_PREFIX) - 1);
    sodium_bin2hex(l->token + sizeof(TOKEN_PREFIX) - 1, 2 * TOKEN_RANDOM_BYTES + 1, raw,
                   sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
    auth_hash_key(l->token, l->token_hash);
    char value[3 * INGEST_KEY_MAX];
    snprintf(value, sizeof(value), "%s\n%s\n%s", r->caller.tenant_id, r->member_id, l->device_id);
    char session_key[96], device_key[3 * INGEST_KEY_MAX + 32];
    snprintf(session_key, sizeof(session_key), "tessera:session:%s", l->token_hash);
    snprintf(device_key, sizeof(device_key), DEVICE_SESSIONS_KEY, r->caller.tenant_id, r->member_id,
             l->device_id);
    session_command(r->app->sessions, on_session_stored, r, "EVAL %s 2 %s %s %s %lld %s",
                    SESSION_OPEN_LUA, session_key, device_key, value, r->app->session_ttl_s,
                    l->token_hash);
}

static void on_device(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (strcmp(PQgetvalue(res, 0, 0), "0") == 0) {
        req_fail(r, 403, "device_limit_reached",
                 "this member uses the most devices allowed; log out of one first");
        return;
    }
    open_session(r);
}

/* A known device is always let in (and its last_seen moves); a new one
 * only below the limit. Two new devices racing may both get in: the limit
 * is a fraud signal, not a lock. */
static void check_device(struct req *r)
{
    char max[24];
    snprintf(max, sizeof(max), "%lld", r->app->member_devices_max);
    const char *p[4] = {r->caller.tenant_id, r->member_id, login_of(r)->device_id, max};
    if (pg_pool_query(r->app->pg,
                      "WITH ins AS (INSERT INTO member_devices (tenant_id, member_id, device_id) "
                      "SELECT $1, $2, $3 WHERE (SELECT count(*) FROM member_devices WHERE "
                      "tenant_id = $1 AND member_id = $2 AND device_id <> $3) < $4::int "
                      "ON CONFLICT (tenant_id, member_id, device_id) DO UPDATE SET last_seen = "
                      "now() RETURNING 1) SELECT count(*) FROM ins",
                      4, p, on_device, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_code_checked(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0 || strcmp(PQgetvalue(res, 0, 0), "t") != 0) {
        reply_bad_credentials(r, "invalid_code");
        return;
    }
    snprintf(r->member_id, sizeof(r->member_id), "%s", PQgetvalue(res, 0, 1));
    check_device(r);
}

/* The newest live code of the phone takes one try; a match also uses it
 * up. Wrong codes count, so a code dies after CODE_ATTEMPTS_MAX tries. */
static void login_with_code(struct req *r, const char *code)
{
    struct login *l = login_of(r);
    if (!pii_code_hash(&r->app->pii, r->caller.tenant_id, l->index, code, l->code_hash)) {
        req_fail_db(r, "no key for the code hash");
        return;
    }
    const char *p[3] = {r->caller.tenant_id, l->index, l->code_hash};
    if (pg_pool_query(
            r->app->pg,
            "WITH c AS (SELECT code_id, code_hash = $3::bytea AS matched FROM sms_codes WHERE "
            "tenant_id = $1 AND phone_bidx = $2::bytea AND used_at IS NULL AND expires_at > "
            "now() AND attempts < " XSTR(
                CODE_ATTEMPTS_MAX) " ORDER BY code_id DESC LIMIT 1 "
                                   "FOR UPDATE) UPDATE sms_codes s SET attempts = s.attempts + 1, "
                                   "used_at = CASE WHEN "
                                   "c.matched THEN now() END FROM c WHERE s.code_id = c.code_id "
                                   "RETURNING c.matched, s.member_id",
            3, p, on_code_checked, r) < 0)
        req_fail_db(r, "queue full");
}

static void on_password_checked(void *arg, int result, const char *hash)
{
    struct req *r = arg;
    if (result != 1) {
        reply_bad_credentials(r, "invalid_credentials");
        return;
    }
    check_device(r);
}

static void on_password_row(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        /* No such member or no password: spend the same argon2id time on a
         * hash whose password nobody knows, so the answer's timing does
         * not tell which phones have a password. */
        const char *password = json_string_value(json_object_get(r->body, "password"));
        if (pwhash_verify(&r->app->pwhash, UNKNOWN_PASSWORD_HASH, password, on_password_checked,
                          r) < 0) {
            req_fail_retry_after(r, 503, "busy", "too many logins at once", 1);
        }
        return;
    }
    snprintf(r->member_id, sizeof(r->member_id), "%s", PQgetvalue(res, 0, 0));
    char bucket[RATE_NAME_MAX];
    snprintf(bucket, sizeof(bucket), "login:%.50s", r->member_id); /* a UUID: 36 characters */
    if (!auth_within_rate(r, bucket, LOGIN_TRIES_PER_S, LOGIN_TRIES_BURST))
        return;
    const char *password = json_string_value(json_object_get(r->body, "password"));
    if (pwhash_verify(&r->app->pwhash, PQgetvalue(res, 0, 1), password, on_password_checked, r) <
        0) {
        req_fail_retry_after(r, 503, "busy", "too many logins at once", 1);
    }
}

static void login_with_password(struct req *r)
{
    struct login *l = login_of(r);
    const char *p[3] = {r->caller.tenant_id, l->index, l->previous[0] ? l->previous : NULL};
    if (pg_pool_query(r->app->pg,
                      "SELECT m.member_id, c.password_hash FROM members m JOIN "
                      "member_credentials c USING (tenant_id, member_id) WHERE m.tenant_id = $1 "
                      "AND m.phone_bidx IN ($2::bytea, $3::bytea)",
                      3, p, on_password_row, r) < 0)
        req_fail_db(r, "queue full");
}

static void login_authenticated(struct req *r)
{
    static const char *const fields[] = {"phone", "code", "password", "device_id", NULL};
    if (!read_phone_body(r, fields))
        return;
    struct validation v;
    validation_init(&v);
    const char *code = NULL, *password = NULL, *device = NULL;
    validate_string(&v, r->body, "code", false, CODE_DIGITS, CODE_DIGITS, &code);
    validate_string(&v, r->body, "password", false, 1, PWHASH_PASSWORD_MAX, &password);
    validate_string(&v, r->body, "device_id", true, 1, DEVICE_ID_MAX, &device);
    if (!code == !password)
        validation_add(&v, "code", "send either code or password");
    if (!req_validated(r, &v))
        return;
    snprintf(login_of(r)->device_id, DEVICE_ID_MAX + 1, "%s", device);
    if (code)
        login_with_code(r, code);
    else
        login_with_password(r);
}

void member_auth_login(struct http_exchange *ex, void *app)
{
    auth_app_then(req_new(app, ex), login_authenticated);
}

/* ------------------------------------------------------------ logout */
static void on_logged_out(void *arg, redisReply *reply)
{
    struct req *r = arg;
    if (!reply) {
        req_fail(r, 503, "unavailable", "sessions are unavailable; retry shortly");
        return;
    }
    req_finish_no_content(r);
}

static void logout_authenticated(struct req *r)
{
    session_command(r->app->sessions, on_logged_out, r, "DEL tessera:session:%s",
                    login_of(r)->token_hash);
}

void member_auth_logout(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), logout_authenticated);
}

/* ------------------------------------------------------------ tokens */
static void on_session(void *arg, redisReply *reply)
{
    struct req *r = arg;
    if (!reply) {
        req_fail(r, 503, "unavailable", "sessions are unavailable; retry shortly");
        return;
    }
    char tenant[INGEST_KEY_MAX], member[INGEST_KEY_MAX], device[DEVICE_ID_MAX + 1];
    if (reply->type != REDIS_REPLY_STRING ||
        sscanf(reply->str, "%127[^\n]\n%127[^\n]\n%64[^\n]", tenant, member, device) != 3) {
        req_fail(r, 401, "unauthorized", "the session is unknown or has ended");
        return;
    }
    snprintf(r->caller.tenant_id, sizeof(r->caller.tenant_id), "%s", tenant);
    snprintf(r->caller.scope, sizeof(r->caller.scope), "member");
    snprintf(r->caller.key_id, sizeof(r->caller.key_id), "member");
    snprintf(r->member_id, sizeof(r->member_id), "%s", member);
    snprintf(login_of(r)->device_id, DEVICE_ID_MAX + 1, "%s", device);
    req_continue(r);
}

void member_session_then(struct req *r, void (*next)(struct req *r))
{
    if (!auth_address_within_rate(r))
        return;
    const char *header = http_header(r->ex, "Authorization");
    const char *prefix = "Bearer " TOKEN_PREFIX;
    if (!header || strncasecmp(header, prefix, 7) != 0 ||
        strncmp(header + 7, TOKEN_PREFIX, strlen(TOKEN_PREFIX)) != 0 ||
        strlen(header) != strlen(prefix) + 2 * TOKEN_RANDOM_BYTES) {
        req_fail(r, 401, "unauthorized",
                 "send a member session token as 'Authorization: Bearer <token>'");
        return;
    }
    auth_hash_key(header + 7, login_of(r)->token_hash);
    r->next = next;
    session_command(r->app->sessions, on_session, r, "GET tessera:session:%s",
                    login_of(r)->token_hash);
}
