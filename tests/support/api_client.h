/* What the integration and end-to-end tests share: a small HTTP client
 * for the API (libcurl, JSON through jansson), access to the private
 * runtime (start/kill services) and to PostgreSQL for invariants. */
#ifndef TESSERA_TEST_API_CLIENT_H
#define TESSERA_TEST_API_CLIENT_H

#include <jansson.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct api_response {
    long status;
    json_t *body; /* NULL when the body is not JSON */
    char *raw;
    char content_type[128];
};

/* Sends method path (relative to TESSERA_API_URL) with the demo key (or
 * key, when not NULL; "" sends no Authorization header), an optional body
 * (sent as application/json unless headers name a Content-Type) and extra
 * headers ("Name: value", NULL-terminated). */
struct api_response api_call(const char *method, const char *path, const char *body,
                             const char *key, const char *const *headers);
void api_response_free(struct api_response *r);

/* Shorthand: POST JSON with an optional Idempotency-Key. */
struct api_response api_post(const char *path, const char *body, const char *idem_key);
struct api_response api_get(const char *path);

/* The demo tenant's app key (made once per process with the demo admin
 * key): what a member app sends to the member login routes. */
const char *test_app_key(void);
/* POST JSON to a member login route with test_app_key(). */
struct api_response api_app_post(const char *path, const char *body);

/* A phone number unique to this run, e.g. "139" + 8 digits. */
void test_unique_phone(char out[16]);
/* Registers a member at hq and writes its id; asserts 201. */
void test_register_member(char member_id[64]);
/* json integer at a dotted path ("balances.stored_value"); asserts it exists. */
int64_t json_int_at(json_t *obj, const char *path);
const char *json_str_at(json_t *obj, const char *path);

/* PUT /v1/config/<kind> with the demo key (or key); asserts 200 applied
 * (the ledger has applied it: what follows is decided under it). */
void test_put_setting(const char *kind, const char *body, const char *key);

/* Runs `deploy/local/runtime.sh <args>` for the test runtime; exit status. */
int runtime_do(const char *args);

/* A connection to the test database (asserts). */
PGconn *test_pg(void);
/* Single integer from a query with text params (asserts success). */
int64_t test_pg_int(PGconn *pg, const char *sql, int nparams, const char *const *params);

/* Polls until pred(arg) or the deadline; true if it held. */
bool poll_until(bool (*pred)(void *arg), void *arg, int timeout_ms);

#endif
