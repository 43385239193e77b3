/* The ingest service: Tessera's HTTP front door. Everything runs on one
 * libevent loop: HTTP, PostgreSQL (pg_pool), Redis (cache_async), the
 * Kafka producer and the tail of ledger-events that brings verdicts. */
#ifndef TESSERA_INGEST_H
#define TESSERA_INGEST_H

#include <event2/event.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "bus/bus.h"
#include "bus/topics.h"
#include "cache/cache.h"
#include "cache/cache_sub.h"
#include "caller.h"
#include "db/pg_listen.h"
#include "db/pg_pool.h"
#include "events/codec.h"
#include "events/settings_types.h"
#include "events/text_limits.h"
#include "http/http.h"
#include "http/validate.h"
#include "idempotency_purge.h"
#include "key_cache.h"
#include "command_producers.h"
#include "pii.h"
#include "pwhash.h"
#include "resource_cache.h"
#include "ratelimit.h"
#include "sessions.h"
#include "service/common.h"
#include "trace/trace.h"

#define INGEST_WAITERS_BUCKETS 4096
#define INGEST_WAIT_MAX_MS     30000
/* POST /v1/events:batch takes bodies this large (every other route: TESSERA_BODY_MAX_BYTES). */
#define BATCH_BODY_MAX_BYTES (8 * 1024 * 1024)

/* An id a request names (branch, coupon, card, operation): 1 to
 * TEXT_ID_BYTES_MAX bytes, what an event's id may hold. */
static inline bool ingest_validate_id(struct validation *v, json_t *obj, const char *field,
                                      bool required, const char **out)
{
    return validate_text(v, obj, field, required, 1, TEXT_ID_BYTES_MAX, TEXT_ID_BYTES_MAX, out);
}

struct waiter;

struct ingest {
    struct event_base *base;
    struct service_common_config common;
    long long api_port;
    const char *api_addr;
    long long wait_default_ms;
    long long pg_pool_size;
    long long body_max_bytes;
    long long connections_max;
    const char *master_key_hex;          /* secret; wiped from the keyring only */
    const char *master_key_previous_hex; /* secret; "" when not rotating */
    long long master_key_version;
    struct pii_keyring pii;
    long long rate_key_per_s, rate_key_burst, rate_ip_per_s, rate_ip_burst;
    struct rate_limiter limiter;
    long long session_ttl_s, member_devices_max;
    struct session_store *sessions;
    struct pwhash_pool pwhash;
    struct pg_pool *pg;
    long long key_cache_max;        /* 0: no API key cache */
    struct key_cache *keys;         /* NULL without a cache (key_listen.c) */
    struct pg_listen *key_listener; /* hears api_keys changes for keys */
    struct cache_async *cache;
    struct resource_cache *resources;                   /* entitlement rules (resource_listen.c) */
    struct pg_listen *resource_listener;                /* hears entitlement_resources changes */
    long long entitlement_checks, entitlement_pg_reads; /* answered; of which read PostgreSQL */
    struct bus_producer *producer;
    /* Ledger commands go by these (command_producers.h); the first is
     * producer itself. */
    long long command_producer_count;
    long long command_linger_ms; /* linger.ms of every producer here (commands wait on it) */
    struct bus_producer *command_producers[INGEST_COMMAND_PRODUCERS_MAX];
    struct bus_tail *verdicts;
    struct cache_sub *verdicts_fast; /* the same verdicts, straight from the ledger (Redis) */
    struct http_server *api;
    struct event *outbox_timer;
    struct event *redemption_timer; /* redemption_settle.c */
    struct event *coupon_timer;     /* coupon_issuer.c */
    long long idem_retention_s, idem_purge_interval_ms;
    struct idem_purge *idem_purge;
    struct event *idem_purge_timer;
    struct member_relay *relay; /* member events in flight (member_events.c) */
    struct waiter *waiters[INGEST_WAITERS_BUCKETS];
    bool stopping;
    /* counters for /metrics */
    long long rate_limited;
    long long requests, commands_sent, verdicts_matched, wait_timeouts, relayed_events;
    long long fast_verdicts; /* of verdicts_matched: those that came by Redis first */
    long long idem_purged;
    /* struct req alive (req_new minus their ends in req.c): 0 when idle, so a leaked
     * request shows on /metrics (tessera_ingest_requests_live). */
    long long requests_live;
};

/* The producer of member_id's ledger commands (command_producers.h). */
static inline struct bus_producer *ingest_command_producer(struct ingest *app,
                                                           const char *member_id)
{
    size_t count = app->command_producer_count > 0 ? (size_t)app->command_producer_count : 1;
    struct bus_producer *p = app->command_producers[command_producer_index(member_id, count)];
    return p ? p : app->producer;
}

/* The producer for a message to topic keyed by member_id: ledger commands go
 * by the member's command producer (their order kept), the rest by the main one. */
static inline struct bus_producer *ingest_producer_for(struct ingest *app, const char *topic,
                                                       const char *member_id)
{
    return strcmp(topic, TOPIC_LEDGER_COMMANDS) == 0 ? ingest_command_producer(app, member_id)
                                                     : app->producer;
}

/* A member's tier as the API shows it and a purchase carries it. */
struct member_tier {
    bool has; /* false: no tier */
    char name[65];
    int32_t rank;
    int64_t discount_bp;          /* share of the price paid: 8500 = 85% */
    int64_t points_multiplier_bp; /* 10000 = x1 */
};

/* Where a request is in its life, as pgbouncer's client states: only
 * req_change_state() (req.c) moves it, along the edges its table allows.
 * Each state names who holds r, that is whose callback runs it next. */
enum req_state {
    REQ_AUTHENTICATING, /* auth.c, member_auth.c: the API key or session is looked up */
    REQ_ROUTE,          /* the route's own handler: its checks and statements */
    REQ_TIER,           /* tier.c: the member's tier (cache, then tiering) */
    REQ_IDEMPOTENCY,    /* idempotency.c: the Idempotency-Key claimed or looked up */
    REQ_WAITING,        /* waiters.c: the command sent; its waiter holds r until the
                         * verdict, the time-out or the shutdown */
    REQ_RECORDING,      /* operations.c, audit.c: a pending operation or a verdict's
                         * audit row written before the answer goes out */
    REQ_ENDED,          /* req.c: answered, and freed before req_change_state returns */
};
#define REQ_STATES (REQ_ENDED + 1)

/* The data of one kind of route, in r->route: the accessor of its kind
 * claims it on first use (a request is of one kind for its life), and the
 * end of the request releases it. */
enum req_route_kind {
    REQ_KIND_PLAIN, /* nothing of its own (most routes) */
    REQ_KIND_REGISTRATION,
    REQ_KIND_LIST,
    REQ_KIND_API_KEY,
    REQ_KIND_LOGIN,
};
struct req_registration { /* members.c: POST /v1/members */
    char member_no[32];
    char referral_code[16];
    char referrer_member_id[INGEST_KEY_MAX]; /* whose referral_code was given; "" none */
    char *attributes_json;                   /* malloc'ed */
};
struct req_list {        /* history.c: one page */
    long long limit;     /* page size */
    long long before_id; /* the page ends before this key; 0: newest */
};
struct req_api_key {             /* api_keys.c */
    char *secret;                /* a new key until shown; wiped when r ends */
    char target[INGEST_KEY_MAX]; /* the key revoked */
};
struct req_login { /* member_auth.c's own state (logins, sessions); wiped when r ends */
    void *state;
    size_t size;
};

/* One API request through its asynchronous steps. */
struct req {
    struct ingest *app;
    enum req_state state;
    struct http_exchange *ex;
    struct caller caller;
    json_t *body;
    char member_id[INGEST_KEY_MAX];
    char idem_key[INGEST_KEY_MAX]; /* "" when the client sent none */
    char request_hash[65];
    char command_id[UUID_STR_SIZE];
    char traceparent[TRACEPARENT_SIZE]; /* this request's span; copied into its events */
    int wait_ms;
    /* the command, encoded, while it is (re)sent */
    uint8_t *command;
    size_t command_len;
    rd_kafka_headers_t *headers; /* CloudEvents headers of the command, until produced */
    char branch_id[INGEST_KEY_MAX];
    int32_t utc_offset_s;    /* card uses, purchases: the tenant's time zone when checked */
    struct member_tier tier; /* tier_lookup_then's answer */
    void (*next)(struct req *r);
    void (*admin_next)(struct req *r);     /* auth_admin_then's continuation */
    bool with_tier_view;                   /* GET /v1/me: the member view embeds the tier view */
    struct member_view *view;              /* member_view.c, while the view is built */
    void (*tier_view_next)(struct req *r); /* tier_view.c: what the embedded view continues */
    char key_hash[KEY_CACHE_HASH_HEX];     /* auth.c: the bearer key's SHA-256 */
    uint64_t key_generation;               /* auth.c: the key cache's, when PostgreSQL was asked */
    bool app_route;                        /* the route takes app keys (auth_app_then) */
    const char *audit_action;              /* money commands whose verdict is audited */
    const char *setting_kind;              /* settings.c: the SETTING_* a path names */
    int audit_status;                      /* the verdict, while its audit row is written */
    json_t *audit_result;
    /* what only one kind of route carries: see req_route_kind */
    enum req_route_kind route_kind;
    union {
        struct req_registration registration;
        struct req_list list;
        struct req_api_key api_key;
        struct req_login login;
    } route;
};

/* req.c: a request's life. req_new starts it; it ends in exactly one of
 * the req_finish* / req_fail* calls below, each of which answers the
 * exchange and frees r (the reply frees the exchange): handlers never free
 * a request themselves, and r is gone once one of them returns. */
struct req *req_new(struct ingest *app, struct http_exchange *ex);
/* Moves r to state; an edge the table does not allow is a programming
 * error (assert). REQ_ENDED only through the ends below. */
void req_change_state(struct req *r, enum req_state state);
/* Back to the route: REQ_ROUTE, then r->next(r) (the continuation a step
 * was given: auth_then, idem_claim_then, tier_lookup_then ...). */
void req_continue(struct req *r);
/* r's route data of that kind (claimed on first use; another kind's is a
 * programming error). */
struct req_registration *req_registration_of(struct req *r);
struct req_list *req_list_of(struct req *r);
struct req_api_key *req_api_key_of(struct req *r);
struct req_login *req_login_of(struct req *r);
#define REQ_ANSWER_HEADERS_MAX 2 /* extra headers req_finish_with passes on */
/* Answers status with body (stolen) as JSON. */
void req_finish(struct req *r, int status, json_t *body);
/* The same with extra headers as name, value pairs ending in NULL. */
void req_finish_with(struct req *r, int status, json_t *body, ...) __attribute__((sentinel));
/* A verdict's answer: JSON, or problem+json for an error status (answer_json). */
void req_finish_verdict(struct req *r, int status, json_t *body);
void req_finish_raw(struct req *r, int status, const char *content_type, const char *body,
                    size_t len);
/* The same with a malloc'ed body handed over (http_reply_owned). */
void req_finish_owned(struct req *r, int status, const char *content_type, char *body, size_t len,
                      bool wipe);
/* 204 No Content. */
void req_finish_no_content(struct req *r);
/* Answers problem+json (RFC 9457) with a stable code. */
void req_fail(struct req *r, int status, const char *code, const char *detail);
void req_fail_retry_after(struct req *r, int status, const char *code, const char *detail,
                          int retry_after_s);
/* 422 validation_failed from v (its content freed). */
struct validation;
void req_fail_validation(struct req *r, struct validation *v);
/* The end of a request's validation: true (v freed) when it found no
 * problem; otherwise the request ended with 422 validation_failed. */
bool req_validated(struct req *r, struct validation *v) __attribute__((warn_unused_result));
/* The branch a command acts at (NULL or "": none): true with
 * r->branch_id set; false after 403 forbidden when the caller's key may
 * not act there (a pos key acts only for its own branch). */
bool req_at_branch(struct req *r, const char *branch) __attribute__((warn_unused_result));
/* Answers a failed pg_pool statement as 503 (logged). */
void req_fail_db(struct req *r, const char *err);
/* Answers 422 validation_failed for one field. */
void req_reply_invalid(struct req *r, const char *field, const char *message);
/* 404 not_found "no such member": a {member_id} that is not a UUID, or
 * that names no member of the caller's tenant. */
void req_fail_no_member(struct req *r);
/* The answer of a pg_pool statement whose rows are the member's: true
 * when it has a row; otherwise the request is ended (req_fail_db on a
 * failed statement, req_fail_no_member on no row) and false. */
bool req_member_row(struct req *r, const PGresult *res, const char *err)
    __attribute__((warn_unused_result));
/* The answer of a check whose first column says whether the member
 * exists ("t"): true when it does; otherwise the request is ended
 * (req_fail_db, or req_fail_no_member) and false. */
bool req_member_exists(struct req *r, const PGresult *res, const char *err)
    __attribute__((warn_unused_result));
/* Column col of the check's row says whether the named branch exists:
 * true when it does, else false after 422 on branch_id. */
bool req_branch_exists(struct req *r, const PGresult *res, int col)
    __attribute__((warn_unused_result));
/* Copies the {member_id} of the path into r->member_id; false after
 * req_fail_no_member when it is not a UUID. */
bool req_member_from_path(struct req *r) __attribute__((warn_unused_result));
/* Reads the JSON object body into r->body; false after the request ended
 * (400, 413 or 415, answered by http_read_json_object). */
bool req_read_body(struct req *r) __attribute__((warn_unused_result));

/* resource_listen.c: the entitlement rules cache and its LISTEN
 * connection. 0, or -1 with err. */
int resource_listen_open(struct ingest *app, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void resource_listen_close(struct ingest *app);
/* resources.c: PUT/GET /v1/resources/{resource} (admin). */
void resources_put(struct http_exchange *ex, void *app);
void resources_get(struct http_exchange *ex, void *app);
/* A resource name: "<kind>:<id>" (docs/entitlements.md). */
bool resource_name_ok(const char *name);
/* Stored (normalized) rules into out; false when they do not read. */
bool resource_rules_from_json(json_t *rules_json, struct ent_rules *out)
    __attribute__((warn_unused_result));
/* entitlements.c: GET /v1/members/{id}/entitlements and /v1/me/entitlements. */
void entitlements_get(struct http_exchange *ex, void *app);
void entitlements_me(struct http_exchange *ex, void *app);
/* key_listen.c: the API key cache and the LISTEN connection that keeps
 * it true (nothing when key_cache_max is 0). 0, or -1 with err. */
int key_listen_open(struct ingest *app, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void key_listen_close(struct ingest *app);
/* Unix ms by the loop's cached clock: what key expiry is checked against. */
int64_t key_listen_now_ms(struct ingest *app);

/* auth.c: checks the bearer key, then calls r->next (or answers 401; an
 * app key answers 403: it serves only the routes of auth_app_then). */
void auth_then(struct req *r, void (*next)(struct req *r));
/* The member login routes (/v1/auth/...): only an app key passes (403 for
 * every other scope), then next. */
void auth_app_then(struct req *r, void (*next)(struct req *r));
/* SHA-256 of a key as 64 hex digits: what api_keys.key_hash stores. */
void auth_hash_key(const char *key, char out[65]);
/* api_keys.c: a new API key (shown once) into req_api_key_of(r)->secret,
 * its SHA-256 into r->request_hash and its id into key_id. */
void api_keys_make(struct req *r, char key_id[32]);
/* tenants.c: POST /v1/tenants (platform key). */
void tenants_create(struct http_exchange *ex, void *app);
/* branches.c: GET /v1/branches, PATCH and DELETE (close) /v1/branches/{id}. */
void branches_list(struct http_exchange *ex, void *app);
void branches_rename(struct http_exchange *ex, void *app);
void branches_close(struct http_exchange *ex, void *app);
/* platform_keys.c: `tessera-ingest --create-platform-key NAME`; 0 or 1. */
int platform_key_create(const char *pg_dsn, const char *name);
/* Authenticates, then requires an admin key, then calls next. */
void auth_admin_then(struct req *r, void (*next)(struct req *r));
/* Takes a token from the client address's bucket; otherwise answers 429
 * and ends r. */
bool auth_address_within_rate(struct req *r);
/* A bucket by any name (login attempts per member): the same contract. */
bool auth_within_rate(struct req *r, const char *name, long long per_s, long long burst);
/* True for an admin key; otherwise answers 403 forbidden, ends r and
 * returns false. */
bool auth_require_admin(struct req *r);
/* True when the caller may act for branch_id (admin: any; pos: its own). */
bool auth_may_use_branch(struct req *r, const char *branch_id);

/* idempotency.c */
/* Hashes method, path and body into r->request_hash. */
void idem_hash_request(struct req *r);
/* With an Idempotency-Key: claims it for r->command_id, then calls
 * r->next; a known key is answered from its record (replay, 422, 409) or,
 * when its command has no answer yet, resumes waiting for it. Without a
 * key calls r->next directly. */
void idem_claim_then(struct req *r, void (*next)(struct req *r));
/* With an Idempotency-Key: answers from the record when there is one
 * (replay, 422), else calls next; the caller then stores the record with
 * its effect (registration does both in one statement). */
void idem_lookup_then(struct req *r, void (*next)(struct req *r));
/* Records the answer of an idempotent request (fire and forget). */
void idem_store_answer(struct ingest *app, const struct caller *c, const char *idem_key, int status,
                       json_t *body);

/* waiters.c: commands waiting for their verdict */
enum wait_outcome { WAIT_VERDICT, WAIT_TIMEOUT, WAIT_UNDELIVERED, WAIT_SHUTDOWN };
/* Called exactly once per waited command, on the loop; verdict is set
 * only with WAIT_VERDICT and lives during the call. */
typedef void (*waiter_done_fn)(void *arg, enum wait_outcome outcome, const Envelope *verdict);
/* Sends an encoded command (copied) to ledger-commands keyed by member and
 * waits up to wait_ms for its verdict. Takes headers in every case.
 * Returns 0; -1 when a waiter for command_id exists already; -2 when the
 * command could not be enqueued (done is not called for -1/-2). */
int waiter_send(struct ingest *app, const char *command_id, const char *member_id,
                const uint8_t *command, size_t len, rd_kafka_headers_t *headers, int wait_ms,
                waiter_done_fn done, void *arg);
/* Sends r->command to ledger-commands and waits for the verdict up to
 * r->wait_ms; answers 202 with an operation id past that. */
void waiter_send_and_wait(struct req *r);
bool waiter_pending(struct ingest *app, const char *command_id);
/* The same, only for a command of this tenant (what a caller may see). */
bool waiter_pending_in_tenant(struct ingest *app, const char *tenant_id, const char *command_id);
/* bus_tail callback for ledger-events. */
void waiters_on_event(void *ctx, const rd_kafka_message_t *rkm);
/* What a produced message was, for its delivery report (the opaque). */
struct delivery {
    enum {
        DELIVERY_COMMAND,
        DELIVERY_MEMBER_EVENT,
        DELIVERY_COUPON_NOTICE,
        DELIVERY_REDEMPTION_NOTICE
    } kind;
    char id[UUID_STR_SIZE]; /* command id, outbox row id, coupon or redemption id */
};
struct delivery *delivery_new(int kind, const char *id);
/* bus_producer delivery callback: dispatches on the kind. */
void ingest_on_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err);
/* A verdict the ledger published on CACHE_VERDICTS_CHANNEL after its
 * commit (cache_sub callback): ends its waiter, if any is still here. */
void waiters_on_published(void *ctx, const void *payload, size_t len);
void waiters_on_delivery(struct ingest *app, const char *command_id, rd_kafka_resp_err_t err);
void member_events_on_delivery(struct ingest *app, const char *outbox_id, rd_kafka_resp_err_t err);
/* coupon_issuer.c: the report of a coupon.issued notice; once the broker
 * has it, the grant's notice is no longer owed. */
void coupon_notice_on_delivery(struct ingest *app, const char *coupon_id, rd_kafka_resp_err_t err);
/* redemption_settle.c: the report of a redemption.done notice; once the
 * broker has it, the redemption's notice is no longer owed. */
void redemption_notice_on_delivery(struct ingest *app, const char *redemption_id,
                                   rd_kafka_resp_err_t err);
void waiters_fail_all(struct ingest *app);

/* verdicts.c: a ledger verdict as an HTTP answer */
int verdict_to_response(const Envelope *verdict, json_t **body);
/* Replies with body (stolen) as JSON, or problem+json for errors. */
void answer_json(struct http_exchange *ex, int status, json_t *body);

/* commands.c: money commands, shared with the batch endpoint */
struct validation;
void commands_check_fields(struct validation *v, json_t *body, bool purchase, const char **branch);
/* tier (NULL or none: no tier) and the tenant's UTC offset now (the
 * first-day limit's local day) go into a purchase's RecordPurchase. */
uint8_t *commands_encode(const struct caller *c, const char *member_id, const char *branch_id,
                         const char *command_id, const char *traceparent, json_t *body,
                         const struct member_tier *tier, int32_t utc_offset_s, size_t *len,
                         rd_kafka_headers_t **headers);

/* members.c, commands.c, operations.c: route handlers */
void members_register(struct http_exchange *ex, void *app);
void members_get(struct http_exchange *ex, void *app);
void members_find(struct http_exchange *ex, void *app);
/* member_patch.c: PATCH /v1/members/{id}, the profile (sealed, audited,
 * MemberProfileChanged on member-events). */
void members_patch(struct http_exchange *ex, void *app);
/* members.c: admin and pos keys manage members; otherwise answers 403 and
 * false. */
bool auth_may_manage_members(struct req *r) __attribute__((warn_unused_result));
/* member_list.c: GET /v1/members without phone=, filtered and paged. */
void members_list(struct req *r);
/* member_tags.c: manual tags. */
#define MEMBER_TAG_MAX  64 /* characters */
#define MEMBER_TAGS_MAX 32 /* per member */
#define MEMBER_TAG_RULE "1 to 64 of a-z, 0-9, - _ . :"
bool member_tag_ok(const char *tag);
/* members.c: text from a query or path is valid UTF-8 (PostgreSQL refuses
 * anything else: a 500 otherwise). */
bool members_text_utf8(const char *text);
void member_tags_put(struct http_exchange *ex, void *app);
void member_tags_delete(struct http_exchange *ex, void *app);
/* member_devices.c: the devices a member logs in from, and unbinding one. */
void member_devices_list(struct http_exchange *ex, void *app);
void member_devices_delete(struct http_exchange *ex, void *app);
/* erasure.c: DELETE /v1/members/{id}/personal-data (admin, audited). */
void members_erase_personal_data(struct http_exchange *ex, void *app);
void commands_topup(struct http_exchange *ex, void *app);
void commands_purchase(struct http_exchange *ex, void *app);
void operations_get(struct http_exchange *ex, void *app);
/* Records that r->command_id (r's tenant) was answered 202, so that GET
 * /v1/operations/{id} says pending on every instance, then calls then(r)
 * (also when the row could not be written: logged, the answer goes out). */
void operations_record_pending(struct req *r, void (*then)(struct req *r));
/* The same for many commands of one tenant (a text[] literal of their
 * ids); done is called as a pg_pool callback. Negative when not queued. */
int operations_record_pending_many(struct ingest *app, const char *tenant_id,
                                   const char *command_ids, pg_pool_cb done, void *arg)
    __attribute__((warn_unused_result));
/* api_keys.c, branches.c, audit.c: admin endpoints (each audited) */
void api_keys_create(struct http_exchange *ex, void *app);
void api_keys_list(struct http_exchange *ex, void *app);
void api_keys_revoke(struct http_exchange *ex, void *app);
void branches_create(struct http_exchange *ex, void *app);
void audit_list(struct http_exchange *ex, void *app);
/* Appends an audit row for a money command's verdict (r->audit_action,
 * the member as target, after = {request, status, result}), then answers
 * the verdict (result stolen) and ends r: the client hears of a refund
 * only once its audit row is written (or its failure logged). */
void audit_verdict_then_answer(struct req *r, int status, json_t *result);
/* member_auth.c, me.c: member login and self-service */
void member_auth_sms_code(struct http_exchange *ex, void *app);
void member_auth_login(struct http_exchange *ex, void *app);
void member_auth_logout(struct http_exchange *ex, void *app);
void me_get(struct http_exchange *ex, void *app);
void me_set_password(struct http_exchange *ex, void *app);
/* consents.c: GET/PUT /v1/members/{id}/consents and /v1/me/consents */
void consents_get(struct http_exchange *ex, void *app);
void consents_put(struct http_exchange *ex, void *app);
void consents_me_get(struct http_exchange *ex, void *app);
void consents_me_put(struct http_exchange *ex, void *app);
/* inbox_read.c: POST /v1/members/{id}/inbox/read and /v1/me/inbox/read */
void inbox_read_post(struct http_exchange *ex, void *app);
void inbox_read_me_post(struct http_exchange *ex, void *app);
/* Checks a member session token (Bearer tsm_...), fills r->caller (scope
 * "member") and r->member_id, then calls next; 401 otherwise. */
void member_session_then(struct req *r, void (*next)(struct req *r));
/* The SQL that appends an audit row for an admin action in the same
 * statement: a CTE named `audit` over a CTE `changed(target, before,
 * after)`, taking $1 tenant, $2 actor key id, $3 actor address and the
 * action as a literal. */
/* A branch's state as one column: 't' open, 'closed', 'f' no such branch
 * (req_branch_exists answers the last two). */
#define BRANCH_STATE_SQL(tenant, branch)                                                           \
    "coalesce((SELECT CASE WHEN closed_at IS NULL THEN 't' ELSE 'closed' END FROM branches "       \
    "WHERE tenant_id = " tenant " AND branch_id = " branch "), 'f')"
/* The tenant's UTC offset in seconds at the instant at_us (a parameter
 * holding clock_now_us() as text), for rules that need the local day.
 * The offset depends on the date (summer time), so it is read at the
 * service clock's date, never PostgreSQL's now(): a test that moves the
 * clock moves the offset with it. */
#define TENANT_UTC_OFFSET_SQL(zone, at_us)                                                         \
    "EXTRACT(EPOCH FROM (to_timestamp(" at_us "::bigint / 1000000.0) AT TIME ZONE " zone ") - "    \
    "(to_timestamp(" at_us "::bigint / 1000000.0) AT TIME ZONE 'UTC'))::int"
#define AUDIT_CTE(action)                                                                          \
    "audit AS (INSERT INTO audit_log (tenant_id, actor_key_id, actor_ip, action, target, "         \
    "before, after) SELECT $1, $2, $3, '" action "', target, before, after FROM changed) "
void batch_post(struct http_exchange *ex, void *app);
/* member_birthday.c: a MemberBirthdaySet event as a bytea literal
 * ("\\x..."; caller frees), month 0 to forget; NULL when out of memory. */
char *member_birthday_fact_hex(const struct caller *c, const char *member_id, const char *branch_id,
                               const char *traceparent, int month, int day);
/* activity_rules.c, activities.c: engagement (issue 12) */
void activity_rules_get(struct http_exchange *ex, void *app);
void activity_rules_put(struct http_exchange *ex, void *app);
void activities_record(struct http_exchange *ex, void *app);
void activities_record_me(struct http_exchange *ex, void *app);

/* commands.c: "Prefer: wait=N" (seconds) sets r->wait_ms, up to the maximum. */
void commands_read_prefer_wait(struct req *r);

/* ledger_requests.c: the steps points and refund requests share. */
/* Reads the member id of the path and the JSON body; answers (404, 400)
 * and ends r when either is wrong. */
bool ledger_request_member_path(struct req *r);
/* Confirms the member (404) and r->branch_id (422; "" takes the member's
 * home branch), assigns r->command_id, claims the Idempotency-Key, then
 * calls send. */
void ledger_request_check_then(struct req *r, void (*send)(struct req *r));
void ledger_request_meta(struct req *r, struct event_meta *meta);
/* The metadata of a command an API key sends for a member. */
void command_meta(struct event_meta *meta, const struct caller *c, const char *member_id,
                  const char *branch_id, const char *command_id, const char *traceparent);
/* Encodes a command envelope and its CloudEvents headers (caller owns
 * both); NULL when too large. */
uint8_t *command_encode(Envelope *env, size_t *len, rd_kafka_headers_t **headers);
/* Takes an encoded command (NULL: answers 413) and sends it for r,
 * waiting for the verdict. */
void req_send_command(struct req *r, uint8_t *command, size_t len, rd_kafka_headers_t *headers);
/* Encodes env as r's command and waits for the ledger's verdict. */
void ledger_request_send(struct req *r, Envelope *env);

/* points.c: adjustments, shared with the batch endpoint */
void points_check_fields(struct validation *v, json_t *body, const char **branch);
uint8_t *points_encode(const struct caller *c, const char *member_id, const char *branch_id,
                       const char *command_id, const char *traceparent, json_t *body, size_t *len,
                       rd_kafka_headers_t **headers);

/* points.c, refunds.c: route handlers */
void points_adjust(struct http_exchange *ex, void *app);
void refunds_create(struct http_exchange *ex, void *app);
/* history.c, reports.c: route handlers */
void history_get(struct http_exchange *ex, void *app);
void reports_prepaid_liability(struct http_exchange *ex, void *app);
/* products.c, cards.c: card products, tenant card limits, member cards */
void products_define(struct http_exchange *ex, void *app);
void card_limits_put(struct http_exchange *ex, void *app);
void cards_issue(struct http_exchange *ex, void *app);
void cards_renew(struct http_exchange *ex, void *app);
void cards_use(struct http_exchange *ex, void *app);
void cards_freeze(struct http_exchange *ex, void *app);
/* A card command's verdict as the HTTP answer; -1 when env is not one. */
int cards_verdict_to_response(const Envelope *env, json_t **body);
/* The member view's parts (member_view.c): a timestamp as the API shows
 * it (null for 0), and one card with its status at now_us. */
json_t *cards_time_or_null(int64_t us);
struct cache_card;
json_t *cards_view_card_json(const struct cache_card *k, int64_t now_us);
/* card_liability.c: GET /v1/reports/card-liability */
void reports_card_liability(struct http_exchange *ex, void *app);
/* cards.c: confirms member, branch and card, claims the Idempotency-Key,
 * then calls send (card and coupon commands). */
void cards_check_then_send(struct req *r, void (*send)(struct req *r));
/* settings.c: GET/PUT /v1/config/{topup-bonus,points-policy,refund-fees,
 * prepaid} (admin), sent to the ledger as SetLedgerSetting commands. */
struct setting_msg {
    SetLedgerSetting s;
    TopUpBonusSetting ladder;
    BonusStep steps[SETTINGS_BONUS_STEPS_MAX];
    BonusStep *step_ptrs[SETTINGS_BONUS_STEPS_MAX];
    PointsPolicySetting policy;
    RefundFeeSetting fees;
    PrepaidSetting prepaid;
};
void settings_put(struct http_exchange *ex, void *app);
void settings_get(struct http_exchange *ex, void *app);
struct validation;
/* Adds every bad field of body, a setting of kind (SETTING_*), to v. */
void settings_validate(struct validation *v, const char *kind, json_t *body);
/* The command for a validated body; m holds its storage, body its strings. */
void settings_fill(struct setting_msg *m, const char *kind, json_t *body, const char *change_id);
/* A posted SetLedgerSetting's answer (200), or -1 for another command. */
int settings_verdict_to_response(const LedgerPosted *v, json_t **body);

/* earning_rules.c: PUT /v1/config/earning-rules (admin), published to the
 * campaign service; answers once it has stored the change (or 202). */
void earning_rules_put(struct http_exchange *ex, void *app);

/* referral_rules.c: GET and PUT /v1/config/referrals (admin), published to
 * the campaign service as ReferralRulesChanged. */
void referral_rules_put(struct http_exchange *ex, void *app);
void referral_rules_get(struct http_exchange *ex, void *app);

/* rewards.c: POST /v1/rewards (admin), GET /v1/rewards: the catalogue. */
void rewards_create(struct http_exchange *ex, void *app);
void rewards_list(struct http_exchange *ex, void *app);
/* redemptions.c: POST /v1/members/{id}/redemptions, POST /v1/me/redemptions */
void redemptions_create(struct http_exchange *ex, void *app);
void redemptions_create_mine(struct http_exchange *ex, void *app);
/* What a redemption asks the ledger first (command id: the redemption
 * id): the points debit (AdjustPoints -points), or for a card_days reward
 * (card_product_id not "") the days and their points in one ExtendCard. */
struct redemption_debit {
    const char *redemption_id, *reward_id;
    int64_t points;
    const char *card_product_id; /* "" / NULL: not a card_days reward */
    int64_t card_days;
};
/* The command and its headers (caller owns both); NULL when too large. */
uint8_t *redemption_encode_debit(const struct event_meta *meta, const struct redemption_debit *d,
                                 size_t *len, rd_kafka_headers_t **headers);
/* redemption_settle.c: the timer that settles redemptions from verdicts. */
void redemption_settle_tick(evutil_socket_t fd, short what, void *arg);
/* tier_config.c: GET/PUT /v1/config/tiers and POST /v1/config/tiers:dry-run
 * (admin); the ladder is published to tiering as TierLadderChanged. */
void tiers_config_put(struct http_exchange *ex, void *app);
void tiers_config_get(struct http_exchange *ex, void *app);
void tiers_config_dry_run(struct http_exchange *ex, void *app);
/* tier_override.c: levels set by staff, sent to tiering (admin). */
void tier_override_put(struct http_exchange *ex, void *app);
void tier_override_delete(struct http_exchange *ex, void *app);
void tier_invitation_post(struct http_exchange *ex, void *app);
/* tier_view.c: GET /v1/members/{id}/tier: tier, progress, history. */
void tier_view_get(struct http_exchange *ex, void *app);
void tier_view_me(struct http_exchange *ex, void *app);
/* Adds the tier view to r->body as "tier_progress" (GET /v1/me), then
 * calls next; a database error ends r. */
void tier_view_embed_then(struct req *r, void (*next)(struct req *r));
/* coupons.c */
void coupons_issue(struct http_exchange *ex, void *app);
void coupons_redeem(struct http_exchange *ex, void *app);
int coupons_verdict_to_response(const LedgerPosted *v, json_t **body);
/* Sends a card command: encodes r->command with the payload the caller
 * set on env (from meta), then waits for the verdict. */
void cards_send_envelope(struct req *r, Envelope *env);

/* tier.c: the member's current tier (the cache, then tiering's table). */
/* Reads r->member_id's tier into r->tier, then calls next; answers 503
 * and ends r when the database fails. */
void tier_lookup_then(struct req *r, void (*next)(struct req *r));
/* {name, rank, discount_bp, points_multiplier_bp}, or null without one. */
json_t *tier_json(const struct member_tier *t);
/* Columns col.. of row: name (NULL: no tier), rank, discount_bp,
 * points_multiplier_bp. */
void tier_from_row(struct member_tier *t, const PGresult *res, int row, int col);
/* Sets RecordPurchase.tier_* (borrows t's name). */
void tier_fill_purchase(RecordPurchase *p, const struct member_tier *t);
/* quote.c: GET /v1/members/{id}/quote */
void quote_get(struct http_exchange *ex, void *app);

/* member_view.c: the member view (profile, balances, tier, cards,
 * coupons) from Redis in one round trip, each part missing there read
 * from its owner's read contract (and put back in the cache). */
json_t *balances_json(int64_t points, int64_t points_pending, int64_t principal, int64_t bonus);
/* The same from a verdict's or fact's Balances (all zero when NULL). */
json_t *balances_json_of(const Balances *b);
void member_view_reply(struct req *r, const char *member_id);
/* The view's state while it is built (r->view); freed with r. */
struct member_view;
void member_view_free(struct member_view *v);

/* inbox.c: GET /v1/members/{id}/inbox and GET /v1/me/inbox. */
void inbox_get(struct http_exchange *ex, void *app);
void inbox_get_mine(struct http_exchange *ex, void *app);
/* notify_config.c: templates and the notification policy. */
void notify_template_put(struct http_exchange *ex, void *app);
void notify_template_get(struct http_exchange *ex, void *app);
void notify_policy_put(struct http_exchange *ex, void *app);
void notify_policy_get(struct http_exchange *ex, void *app);

/* outbox_relay.c: member events from ingest's own outbox */
/* Like member_events_publish, to the row's topic (member-events,
 * ledger-commands, notify-requests), keyed by key (a member or tenant id). */
void outbox_publish_to(struct ingest *app, const char *outbox_id, const char *topic,
                       const char *key, const uint8_t *payload, size_t len);
void member_events_publish(struct ingest *app, const char *outbox_id, const char *member_id,
                           const uint8_t *payload, size_t len);
/* Produces the outbox rows of res: columns col.. are id, topic, key and
 * payload (bytea); rows with a NULL id are skipped. */
void outbox_events_publish_rows(struct ingest *app, const PGresult *res, int col);
void member_events_sweep(evutil_socket_t fd, short what, void *arg);
/* Frees what the relay keeps (at exit, after the last delivery report). */
void member_events_free(struct ingest *app);

/* pii_reencrypt.c: `tessera-ingest --reencrypt-pii` (blocking, a tool
 * run): seals every member row not yet under the current master key
 * (legacy plaintext or the previous key) and rewraps every member's data
 * key under it. Returns the number of rows resealed and keys rewrapped, or
 * -1 with err (rows under an unknown key count as failures). */
long long pii_reencrypt_all(const char *pg_dsn, const struct pii_keyring *k, char *err,
                            size_t err_len);
/* members.c: profile limits and checks shared by registration and PATCH. */
#define MEMBER_NAME_MAX             100
#define MEMBER_EMAIL_MAX            254
#define MEMBER_ATTRIBUTES_MAX       4096 /* bytes of JSON */
#define MEMBER_EMAIL_INDEX_TEXT_MAX (MEMBER_EMAIL_MAX * 4 + 16)
extern const char *const member_genders[];
bool members_phone_ok(const char *phone);
bool members_birthday_ok(const char *date);
/* An email's blind index under key version (the phone's scheme over
 * "email:" and the address in lower case); false without that key. */
bool members_email_index(const struct pii_keyring *k, int version, const char *tenant_id,
                         const char *email, char out[PII_BLIND_INDEX_HEX_BYTES])
    __attribute__((warn_unused_result));
/* The same for the current key and, during a rotation, the previous one. */
bool members_email_indexes(const struct ingest *app, const char *tenant_id, const char *email,
                           char current[PII_BLIND_INDEX_HEX_BYTES],
                           char previous[PII_BLIND_INDEX_HEX_BYTES])
    __attribute__((warn_unused_result));
/* members.c: the member's blind index as a bytea literal for the current
 * key and, during a rotation, the previous one ("" without one). */
bool members_phone_indexes(const struct ingest *app, const char *tenant_id, const char *phone,
                           char current[PII_BLIND_INDEX_HEX_BYTES],
                           char previous[PII_BLIND_INDEX_HEX_BYTES]);

/* reports.c: ?branch_id= of a report (pos keys: their own branch only);
 * false after answering and freeing r. */
bool report_branch_filter(struct req *r, const char **branch);

#endif
