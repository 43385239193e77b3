#include "api_client.h"

#include <assert.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *env_or_die(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "test: %s is not set (run through make test)\n", name);
        abort();
    }
    return v;
}

struct buffer {
    char *data;
    size_t len;
};

static size_t on_body(char *ptr, size_t size, size_t n, void *arg)
{
    struct buffer *b = arg;
    size_t add = size * n;
    b->data = realloc(b->data, b->len + add + 1);
    assert(b->data);
    memcpy(b->data + b->len, ptr, add);
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

struct api_response api_call(const char *method, const char *path, const char *body,
                             const char *key, const char *const *headers)
{
    char url[1024], auth[512];
    snprintf(url, sizeof(url), "%s%s", env_or_die("TESSERA_API_URL"), path);
    CURL *curl = curl_easy_init();
    assert(curl);
    struct curl_slist *list = NULL;
    if (!key)
        key = env_or_die("TESSERA_API_KEY");
    if (*key) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        list = curl_slist_append(list, auth);
    }
    bool typed = false;
    for (const char *const *h = headers; h && *h; h++) {
        list = curl_slist_append(list, *h);
        typed |= strncasecmp(*h, "Content-Type:", 13) == 0;
    }
    if (body && !typed)
        list = curl_slist_append(list, "Content-Type: application/json");
    struct buffer buf = {0};
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &buf);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    struct api_response r = {0};
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        fprintf(stderr, "test: %s %s: %s\n", method, path, curl_easy_strerror(rc));
        abort();
    }
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    char *ct = NULL;
    curl_easy_getinfo(curl, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.content_type, sizeof(r.content_type), "%s", ct ? ct : "");
    r.raw = buf.data ? buf.data : strdup("");
    r.body = json_loads(r.raw, 0, NULL);
    curl_slist_free_all(list);
    curl_easy_cleanup(curl);
    return r;
}

void api_response_free(struct api_response *r)
{
    json_decref(r->body);
    free(r->raw);
    *r = (struct api_response){0};
}

struct api_response api_post(const char *path, const char *body, const char *idem_key)
{
    char header[256];
    const char *headers[2] = {NULL, NULL};
    if (idem_key) {
        snprintf(header, sizeof(header), "Idempotency-Key: %s", idem_key);
        headers[0] = header;
    }
    return api_call("POST", path, body, NULL, headers);
}

struct api_response api_get(const char *path)
{
    return api_call("GET", path, NULL, NULL, NULL);
}

const char *test_app_key(void)
{
    static char key[128];
    if (key[0])
        return key;
    struct api_response r =
        api_call("POST", "/v1/api-keys", "{\"name\":\"test app\",\"scope\":\"app\"}", NULL, NULL);
    if (r.status != 201) {
        fprintf(stderr, "test: app key creation answered %ld: %s\n", r.status, r.raw);
        abort();
    }
    snprintf(key, sizeof(key), "%s", json_str_at(r.body, "key"));
    api_response_free(&r);
    return key;
}

struct api_response api_app_post(const char *path, const char *body)
{
    return api_call("POST", path, body, test_app_key(), NULL);
}

void test_unique_phone(char out[16])
{
    static unsigned counter;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long v =
        ((unsigned long)ts.tv_nsec / 1000 + (unsigned long)getpid() * 7919 + counter++ * 104729) %
        100000000UL;
    snprintf(out, 16, "139%08lu", v);
}

void test_register_member(char member_id[64])
{
    char phone[16], body[256];
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Test Member\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);
    struct api_response r = api_post("/v1/members", body, NULL);
    if (r.status != 201) {
        fprintf(stderr, "test: registration answered %ld: %s\n", r.status, r.raw);
        abort();
    }
    snprintf(member_id, 64, "%s", json_str_at(r.body, "member_id"));
    api_response_free(&r);
}

static json_t *json_at(json_t *obj, const char *path)
{
    char part[128];
    const char *p = path;
    json_t *cur = obj;
    while (cur && *p) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        snprintf(part, sizeof(part), "%.*s", (int)n, p);
        cur = json_object_get(cur, part);
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

int64_t json_int_at(json_t *obj, const char *path)
{
    json_t *v = json_at(obj, path);
    if (!json_is_integer(v)) {
        fprintf(stderr, "test: no integer at %s\n", path);
        abort();
    }
    return json_integer_value(v);
}

const char *json_str_at(json_t *obj, const char *path)
{
    json_t *v = json_at(obj, path);
    if (!json_is_string(v)) {
        fprintf(stderr, "test: no string at %s\n", path);
        abort();
    }
    return json_string_value(v);
}

int runtime_do(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s %s >/dev/null 2>&1", env_or_die("TESSERA_RUNTIME"), args);
    return system(cmd);
}

PGconn *test_pg(void)
{
    PGconn *pg = PQconnectdb(env_or_die("TESSERA_PG_DSN"));
    assert(PQstatus(pg) == CONNECTION_OK);
    return pg;
}

int64_t test_pg_int(PGconn *pg, const char *sql, int nparams, const char *const *params)
{
    PGresult *res = PQexecParams(pg, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        fprintf(stderr, "test: %s: %s\n", sql, PQerrorMessage(pg));
        abort();
    }
    int64_t v = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return v;
}

bool poll_until(bool (*pred)(void *arg), void *arg, int timeout_ms)
{
    struct timespec start, now, pause = {0, 20 * 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (pred(arg))
            return true;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long elapsed = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed > timeout_ms)
            return false;
        nanosleep(&pause, NULL);
    }
}

void test_put_setting(const char *kind, const char *body, const char *key)
{
    char path[96];
    snprintf(path, sizeof(path), "/v1/config/%s", kind);
    const char *headers[] = {"Prefer: wait=10", NULL};
    struct api_response r = api_call("PUT", path, body, key, headers);
    const char *status = r.body ? json_string_value(json_object_get(r.body, "status")) : NULL;
    if (r.status != 200 || !status || strcmp(status, "applied") != 0) {
        fprintf(stderr, "test: PUT %s answered %ld: %s\n", path, r.status, r.raw);
        abort();
    }
    api_response_free(&r);
}
