/* Abuse limits and a second ingest instance: per-key and per-address
 * token buckets answer 429 rate_limited with Retry-After; a revocation
 * made through one instance holds at once on another; oversized bodies,
 * headers and deeply nested JSON are refused. The second instance is a
 * child process of this test (its own ports, a low per-address limit),
 * stopped by its pid at the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../support/api_client.h"

#define SECOND_PORT_SHIFT 50 /* the second instance: API port + 50, admin + 51 */

extern char **environ;

static pid_t second_pid;
static int second_api_port;

struct reply {
    long status;
    char retry_after[16];
    char body[2048];
};

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n;
    if (len > 13 && strncasecmp(line, "Retry-After:", 12) == 0)
        sscanf(line + 12, " %15s", r->retry_after);
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct reply *r = arg;
    size_t len = size * n, used = strlen(r->body);
    if (used + len < sizeof(r->body)) {
        memcpy(r->body + used, data, len);
        r->body[used + len] = '\0';
    }
    return len;
}

/* A request to any port, with headers visible (api_call hides them). */
static struct reply http_do(int port, const char *method, const char *path, const char *key,
                            const char *body, const char *extra_header)
{
    struct reply r = {0};
    char url[512], auth[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *curl = curl_easy_init();
    struct curl_slist *h = NULL;
    if (key) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", key);
        h = curl_slist_append(h, auth);
    }
    if (body)
        h = curl_slist_append(h, "Content-Type: application/json");
    if (extra_header)
        h = curl_slist_append(h, extra_header);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(curl, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 10L);
    if (body)
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(curl) == CURLE_OK)
        curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(h);
    curl_easy_cleanup(curl);
    return r;
}

static int main_api_port(void)
{
    const char *url = getenv("TESSERA_API_URL");
    const char *colon = url ? strrchr(url, ':') : NULL;
    assert_non_null(colon);
    return atoi(colon + 1);
}

static void read_file(const char *name, char *out, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", getenv("TESSERA_LOCAL_DIR"), name);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    assert_non_null(fgets(out, (int)len, f));
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

static bool second_ready(void *arg)
{
    struct reply r = http_do(second_api_port + 1, "GET", "/readyz", NULL, NULL, NULL);
    return r.status == 200;
}

/* The second instance: the same database, Kafka and Redis, its own ports,
 * at most 1 request a second (burst 8) per client address. */
static int start_second_ingest(void **state)
{
    static char env_buf[16][640];
    char key[128], version[16];
    read_file("master-key", key, sizeof(key));
    read_file("master-key.version", version, sizeof(version));
    second_api_port = main_api_port() + SECOND_PORT_SHIFT;
    int n = 0;
    const char *pass[] = {"TESSERA_PG_DSN",         "TESSERA_REDIS_HOST",      "TESSERA_REDIS_PORT",
                          "TESSERA_REDIS_PASSWORD", "TESSERA_KAFKA_BOOTSTRAP", "PATH"};
    for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++)
        snprintf(env_buf[n++], sizeof(env_buf[0]), "%s=%s", pass[i], getenv(pass[i]));
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_API_PORT=%d", second_api_port);
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_ADMIN_PORT=%d", second_api_port + 1);
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_MASTER_KEY=%s", key);
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_MASTER_KEY_VERSION=%s", version);
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_RATE_IP_PER_S=1");
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_RATE_IP_BURST=8");
    snprintf(env_buf[n++], sizeof(env_buf[0]), "TESSERA_LOG_LEVEL=warn");
    char *envp[17];
    for (int i = 0; i < n; i++)
        envp[i] = env_buf[i];
    envp[n] = NULL;
    char *argv[] = {"build/bin/tessera-ingest", NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "build/test-logs/ingest-second.log",
                                     O_WRONLY | O_CREAT | O_APPEND, 0644);
    int rc = posix_spawn(&second_pid, argv[0], &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    return poll_until(second_ready, NULL, 30000) ? 0 : -1;
}

static int stop_second_ingest(void **state)
{
    if (second_pid > 0) {
        kill(second_pid, SIGTERM);
        waitpid(second_pid, NULL, 0);
    }
    return 0;
}

static void make_key(const char *body, char key[128], char key_id[64])
{
    struct api_response r = api_call("POST", "/v1/api-keys", body, NULL, NULL);
    assert_int_equal(r.status, 201);
    snprintf(key, 128, "%s", json_str_at(r.body, "key"));
    snprintf(key_id, 64, "%s", json_str_at(r.body, "key_id"));
    api_response_free(&r);
}

struct limited {
    char key[128];
    int port;
};

static bool allowed_again(void *arg)
{
    struct limited *l = arg;
    return http_do(l->port, "GET", "/v1/api-keys", l->key, NULL, NULL).status == 200;
}

/* A key of 1 request a second (burst 2): the third at once is refused with
 * Retry-After, other keys are not affected, and the key recovers. */
static void test_key_rate_limit(void **state)
{
    struct limited l = {.port = main_api_port()};
    char key_id[64];
    make_key("{\"name\":\"slow\",\"scope\":\"admin\",\"rate_limit_per_s\":1}", l.key, key_id);
    assert_int_equal(http_do(l.port, "GET", "/v1/api-keys", l.key, NULL, NULL).status, 200);
    assert_int_equal(http_do(l.port, "GET", "/v1/api-keys", l.key, NULL, NULL).status, 200);
    struct reply r = http_do(l.port, "GET", "/v1/api-keys", l.key, NULL, NULL);
    assert_int_equal(r.status, 429);
    assert_non_null(strstr(r.body, "\"code\":\"rate_limited\""));
    assert_string_equal(r.retry_after, "1");
    /* a refused request changes nothing: a POST refused by the limit
     * creates no branch */
    r = http_do(l.port, "POST", "/v1/branches", l.key, "{\"branch_id\":\"never\",\"name\":\"N\"}",
                NULL);
    assert_int_equal(r.status, 429);
    struct api_response other = api_get("/v1/api-keys");
    assert_int_equal(other.status, 200);
    assert_null(strstr(other.raw, "\"never\""));
    api_response_free(&other);
    PGconn *pg = test_pg();
    assert_int_equal(test_pg_int(pg,
                                 "SELECT count(*) FROM ingest.branches WHERE branch_id = "
                                 "'never'",
                                 0, NULL),
                     0);
    PQfinish(pg);
    assert_true(poll_until(allowed_again, &l, 5000));
}

static bool refused_by_second(void *key)
{
    return http_do(second_api_port, "GET", "/v1/api-keys", key, NULL, NULL).status == 401;
}

/* Revoked through the first instance, refused by the second within a
 * second: the second instance caches keys and hears the revocation through
 * PostgreSQL's NOTIFY (docs/api-key-cache.md). */
static void test_revocation_across_instances(void **state)
{
    char key[128], key_id[64], path[128];
    make_key("{\"name\":\"two instances\",\"scope\":\"admin\"}", key, key_id);
    assert_int_equal(http_do(second_api_port, "GET", "/v1/api-keys", key, NULL, NULL).status, 200);
    snprintf(path, sizeof(path), "/v1/api-keys/%s", key_id);
    struct api_response r = api_call("DELETE", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_response_free(&r);
    assert_true(poll_until(refused_by_second, key, 1000));
}

/* The second instance allows 8 requests at once per address, then 1 a
 * second: a burst of unauthenticated requests (key guessing) is cut off
 * before the database is asked. */
static void test_address_rate_limit(void **state)
{
    int refused = 0, unauthorized = 0;
    struct reply last = {0};
    for (int i = 0; i < 12; i++) {
        struct reply r = http_do(second_api_port, "GET", "/v1/api-keys", "tsk_guess", NULL, NULL);
        unauthorized += r.status == 401;
        if (r.status == 429) {
            refused++;
            last = r;
        }
    }
    assert_true(refused >= 2);
    assert_true(unauthorized >= 1 && unauthorized <= 9);
    assert_non_null(strstr(last.body, "rate_limited"));
    assert_true(atoi(last.retry_after) >= 1);
    /* the main instance has its own buckets (limits are per instance) */
    assert_int_equal(http_do(main_api_port(), "GET", "/v1/api-keys", NULL, NULL, NULL).status, 401);
}

static bool nested_refused(int depth)
{
    char *body = malloc((size_t)depth * 2 + 16);
    size_t n = 0;
    n += (size_t)sprintf(body, "{\"name\":");
    for (int i = 0; i < depth; i++)
        body[n++] = '[';
    for (int i = 0; i < depth; i++)
        body[n++] = ']';
    body[n++] = '}';
    body[n] = '\0';
    struct api_response r = api_post("/v1/branches", body, NULL);
    bool refused = r.status == 400 && strcmp(json_str_at(r.body, "code"), "malformed_json") == 0;
    api_response_free(&r);
    free(body);
    return refused;
}

static void test_request_size_and_depth_limits(void **state)
{
    /* JSON deeper than 16 levels: 400 before any field is looked at */
    assert_true(nested_refused(40));
    assert_false(nested_refused(3)); /* shallow: a validation answer instead */
    /* a body over 64 KiB: 413 payload_too_large */
    size_t big = 70 * 1024;
    char *body = malloc(big + 64);
    int n = sprintf(body, "{\"branch_id\":\"b\",\"name\":\"");
    memset(body + n, 'x', big);
    strcpy(body + n + big, "\"}");
    struct api_response r = api_post("/v1/branches", body, NULL);
    assert_int_equal(r.status, 413);
    assert_string_equal(json_str_at(r.body, "code"), "payload_too_large");
    api_response_free(&r);
    free(body);
    /* headers over 16 KiB are refused by the server, which stays up */
    char *header = malloc(20 * 1024);
    n = sprintf(header, "X-Padding: ");
    memset(header + n, 'h', 20 * 1024 - n - 1);
    header[20 * 1024 - 1] = '\0';
    struct reply big_headers = http_do(main_api_port(), "GET", "/v1/api-keys", NULL, NULL, header);
    free(header);
    assert_true(big_headers.status >= 400 && big_headers.status < 500);
    r = api_get("/v1/api-keys");
    assert_int_equal(r.status, 200);
    api_response_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_rate_limit),
        cmocka_unit_test(test_revocation_across_instances),
        cmocka_unit_test(test_address_rate_limit),
        cmocka_unit_test(test_request_size_and_depth_limits),
    };
    return cmocka_run_group_tests(tests, start_second_ingest, stop_second_ingest);
}
