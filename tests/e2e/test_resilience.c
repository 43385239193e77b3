/* Dependencies that come and go: ingest starts with PostgreSQL stopped and
 * becomes ready when it appears; the services survive a PostgreSQL
 * restart; with Redis restarted under traffic no write fails and reads
 * fall back to PostgreSQL. Each test leaves every service ready. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "../support/api_client.h"
#include "../support/ops_client.h"

#define READY_DEADLINE_MS  30000
#define TRAFFIC_WHILE_DOWN 10 /* writes that must succeed while Redis is down */
#define TOPUP_AMOUNT       100

struct probe {
    const char *service;
    long want;
};

static bool readyz_is(void *arg)
{
    struct probe *p = arg;
    long status;
    free(ops_admin_get(p->service, "/readyz", &status));
    return status == p->want;
}

static void wait_readyz(const char *service, long want)
{
    struct probe p = {service, want};
    if (!poll_until(readyz_is, &p, READY_DEADLINE_MS))
        fail_msg("%s: /readyz never answered %ld", service, want);
}

/* Ingest keeps serving without Redis, so /readyz stays 200 while its
 * Redis client is still in reconnect back-off (up to 5 s) after Redis is
 * back; only checks.redis tells. The next test's session and cache
 * writes need that client, so a restart test waits for it. */
static bool ingest_redis_connected(void *arg)
{
    long status;
    char *body = ops_admin_get("ingest", "/readyz", &status);
    json_t *doc = body ? json_loads(body, 0, NULL) : NULL;
    bool connected = json_is_true(json_object_get(json_object_get(doc, "checks"), "redis"));
    json_decref(doc);
    free(body);
    return connected;
}

static void wait_all_ready(void)
{
    for (int i = 0; i < OPS_SERVICES_COUNT; i++)
        wait_readyz(ops_services[i], 200);
}

static void topup(const char *member_id, const char *idem_key, long *status)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member_id);
    struct api_response r = api_post(
        path, "{\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}", idem_key);
    *status = r.status;
    api_response_free(&r);
}

static int64_t stored_value(const char *member_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    struct api_response r = api_get(path);
    assert_int_equal(r.status, 200);
    int64_t v = json_int_at(r.body, "balances.stored_value");
    api_response_free(&r);
    return v;
}

/* Ingest and the ledger started while PostgreSQL is down answer /livez,
 * say 503 on /readyz, and serve once PostgreSQL is back; the other
 * consumers, which kept running, survive the restart. */
static void test_services_start_without_postgres(void **state)
{
    assert_int_equal(runtime_do("stop-service ingest"), 0);
    assert_int_equal(runtime_do("stop-service ledger"), 0);
    assert_int_equal(runtime_do("stop-postgres"), 0);
    assert_int_equal(runtime_do("launch-service ledger"), 0);
    assert_int_equal(runtime_do("launch-service ingest"), 0);

    static const char *const started[] = {"ingest", "ledger"};
    for (int i = 0; i < 2; i++) {
        wait_readyz(started[i], 503);
        long status;
        char *body = ops_admin_get(started[i], "/readyz", &status);
        assert_non_null(strstr(body, "\"startup\":false"));
        free(body);
        free(ops_admin_get(started[i], "/livez", &status));
        assert_int_equal(status, 200);
    }
    long status;

    assert_int_equal(runtime_do("start-postgres"), 0);
    wait_all_ready();
    char member_id[64];
    test_register_member(member_id);
    topup(member_id, NULL, &status);
    assert_int_equal(status, 201);
    assert_int_equal(stored_value(member_id), TOPUP_AMOUNT);
}

struct traffic {
    char member_id[64];
    atomic_int done, failed;
    atomic_bool stop;
    char first_failure[64];
};

/* Sequential top-ups until told to stop; each has its own key, so a
 * retry inside the client could never count twice. */
static void *traffic_main(void *arg)
{
    struct traffic *t = arg;
    char key[128];
    for (int i = 0; !atomic_load(&t->stop); i++) {
        long status;
        snprintf(key, sizeof(key), "redis-restart-%s-%d", t->member_id, i);
        topup(t->member_id, key, &status);
        if (status != 201) {
            if (atomic_fetch_add(&t->failed, 1) == 0)
                snprintf(t->first_failure, sizeof(t->first_failure), "status %ld", status);
        }
        atomic_fetch_add(&t->done, 1);
    }
    return NULL;
}

struct progress {
    struct traffic *t;
    int at_least;
};

static bool traffic_reached(void *arg)
{
    struct progress *p = arg;
    return atomic_load(&p->t->done) >= p->at_least;
}

static void wait_traffic(struct traffic *t, int more)
{
    struct progress p = {t, atomic_load(&t->done) + more};
    assert_true(poll_until(traffic_reached, &p, READY_DEADLINE_MS));
}

/* Verdicts that reached a waiting request by the ledger's Redis publish
 * (the fast path, services/ledger/verdict_publish.c). */
static double fast_verdicts(void)
{
    return fmax(0, ops_metric("ingest", "tessera_ledger_verdicts_fast_total", NULL));
}

static bool fast_verdicts_above(void *arg)
{
    return fast_verdicts() > *(double *)arg;
}

/* The fast path carries verdicts while the traffic flows (it may lose a
 * race to the Kafka verdict now and then, never all of them). */
static void wait_fast_verdicts(void)
{
    double before = fast_verdicts();
    if (!poll_until(fast_verdicts_above, &before, READY_DEADLINE_MS))
        fail_msg("no verdict came by the Redis fast path (still %.0f)", before);
}

/* Redis stops and starts while top-ups flow: every write answers 201 (the
 * verdicts come from Kafka while the fast path is down), reads during the
 * outage come from PostgreSQL with the right balance, ingest stays ready
 * (Redis is only a cache), and once Redis is back the ledger and ingest
 * take up the verdicts' fast path again. */
static void test_redis_restart_under_traffic(void **state)
{
    static struct traffic t;
    memset(&t, 0, sizeof(t));
    test_register_member(t.member_id);
    pthread_t thread;
    assert_int_equal(pthread_create(&thread, NULL, traffic_main, &t), 0);
    wait_traffic(&t, 3);
    wait_fast_verdicts();

    assert_int_equal(runtime_do("stop-redis"), 0);
    wait_traffic(&t, TRAFFIC_WHILE_DOWN);
    int64_t during = stored_value(t.member_id); /* served without the cache */
    long status;
    free(ops_admin_get("ingest", "/readyz", &status));
    assert_int_equal(status, 200);

    assert_int_equal(runtime_do("start-redis"), 0);
    wait_traffic(&t, 3);
    wait_fast_verdicts();
    atomic_store(&t.stop, true);
    pthread_join(thread, NULL);

    if (atomic_load(&t.failed) != 0)
        fail_msg("%d of %d writes failed (first: %s)", atomic_load(&t.failed), atomic_load(&t.done),
                 t.first_failure);
    assert_true(during >= 3 * TOPUP_AMOUNT);
    assert_int_equal(stored_value(t.member_id), (int64_t)atomic_load(&t.done) * TOPUP_AMOUNT);
    wait_all_ready();
    if (!poll_until(ingest_redis_connected, NULL, READY_DEADLINE_MS))
        fail_msg("ingest's Redis client did not reconnect");
}

/* An ingest of its own (other ports) whose broker address answers
 * nothing: it stays alive and unready, keeps retrying, and a SIGTERM
 * during start-up ends it promptly with status 0. */
#define NOKAFKA_PORT_SHIFT 50 /* beside the runtime's ports, inside this offset's range of 100 */
#define NOKAFKA_STOP_MS    10000

/* ingest needs the runtime's PII master key (and its version) to start:
 * both live in the runtime's directory, never in the repository. */
static void use_runtime_master_key(void)
{
    const char *names[2][2] = {{"master-key", "TESSERA_MASTER_KEY"},
                               {"master-key.version", "TESSERA_MASTER_KEY_VERSION"}};
    for (int i = 0; i < 2; i++) {
        char path[512], value[128] = "";
        snprintf(path, sizeof(path), "%s/%s", getenv("TESSERA_LOCAL_DIR"), names[i][0]);
        FILE *f = fopen(path, "r");
        if (f && fgets(value, sizeof(value), f))
            value[strcspn(value, "\n")] = '\0';
        if (f)
            fclose(f);
        if (value[0])
            setenv(names[i][1], value, 1);
    }
}

static pid_t spawn_ingest_without_kafka(int admin_port, const char *log_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char admin[16], api[16];
        snprintf(admin, sizeof(admin), "%d", admin_port);
        snprintf(api, sizeof(api), "%d", admin_port + 1);
        setenv("TESSERA_KAFKA_BOOTSTRAP", "127.0.0.1:1", 1);
        setenv("TESSERA_ADMIN_PORT", admin, 1);
        setenv("TESSERA_API_PORT", api, 1);
        use_runtime_master_key();
        FILE *log = freopen(log_path, "w", stderr);
        (void)log;
        execl("build/bin/tessera-ingest", "tessera-ingest", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool url_answers(void *arg)
{
    long status;
    free(ops_http_get(arg, &status));
    return status == 503;
}

static void test_ingest_waits_for_an_absent_broker(void **state)
{
    int port = ops_admin_port("ingest") + NOKAFKA_PORT_SHIFT;
    char url[128], log_path[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
    snprintf(log_path, sizeof(log_path), "%s/logs/ingest-nokafka.log", getenv("TESSERA_LOCAL_DIR"));
    pid_t pid = spawn_ingest_without_kafka(port, log_path);
    assert_true(poll_until(url_answers, url, READY_DEADLINE_MS));
    long status;
    char *body = ops_http_get(url, &status);
    assert_int_equal(status, 503);
    assert_non_null(strstr(body, "\"startup\":false"));
    free(body);

    assert_int_equal(kill(pid, SIGTERM), 0);
    int wstatus = 0;
    struct timespec pause = {0, 20 * 1000 * 1000};
    for (int waited = 0; waitpid(pid, &wstatus, WNOHANG) == 0; waited += 20) {
        if (waited > NOKAFKA_STOP_MS) {
            kill(pid, SIGKILL);
            fail_msg("ingest did not stop within %d ms of SIGTERM", NOKAFKA_STOP_MS);
        }
        nanosleep(&pause, NULL);
    }
    assert_true(WIFEXITED(wstatus));
    assert_int_equal(WEXITSTATUS(wstatus), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_services_start_without_postgres),
        cmocka_unit_test(test_redis_restart_under_traffic),
        cmocka_unit_test(test_ingest_waits_for_an_absent_broker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
