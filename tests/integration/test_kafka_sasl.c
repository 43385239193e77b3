/* Kafka client security against the runtime's broker, which tests/run.sh
 * starts with a SASL_PLAINTEXT listener (TESSERA_LOCAL_KAFKA_SASL_PORT)
 * taking SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN for the user "tessera";
 * the password is made at format time, in $TESSERA_LOCAL_DIR/kafka/sasl-password.
 *
 * The bus library connects with each mechanism; a consumer service joins
 * its group through the listener with the settings from its config table
 * (and never logs the password); a wrong password fails with the broker's
 * reason, not a bare timeout. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bus/bus.h"
#include "log/log.h"
#include "../support/api_client.h"
#include "../support/ops_client.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SASL_PROBE_MS          10000
#define SASL_READY_DEADLINE_MS 60000
#define SASL_STOP_DEADLINE_MS  30000
#define SASL_ADMIN_PORT_SHIFT  60 /* past the runtime's instances (+10 each) */
#define SASL_OUTPUT_MAX        16384
#define SASL_USER              "tessera"

static struct {
    char bootstrap[64];
    char password[128];
} sasl;

static int sasl_setup(void **state)
{
    const char *port = getenv("TESSERA_LOCAL_KAFKA_SASL_PORT");
    const char *dir = getenv("TESSERA_LOCAL_DIR");
    if (!port || !*port || !dir) {
        fprintf(stderr, "TESSERA_LOCAL_KAFKA_SASL_PORT / TESSERA_LOCAL_DIR unset (make test)\n");
        return -1;
    }
    snprintf(sasl.bootstrap, sizeof(sasl.bootstrap), "127.0.0.1:%s", port);
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka/sasl-password", dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(sasl.password, sizeof(sasl.password), f)) {
        fprintf(stderr, "cannot read %s\n", path);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    sasl.password[strcspn(sasl.password, "\n")] = '\0';
    return 0;
}

static int cluster_id_with(const char *mechanism, const char *password, char *out, size_t len)
{
    struct bus_config cfg = {.bootstrap = sasl.bootstrap,
                             .client_id = "test-kafka-sasl",
                             .security_protocol = "sasl_plaintext",
                             .sasl_mechanism = mechanism,
                             .sasl_username = SASL_USER,
                             .sasl_password = password};
    return bus_cluster_id(&cfg, out, len, SASL_PROBE_MS);
}

/* Every mechanism reaches the same cluster as the plaintext listener. */
static void test_each_mechanism_connects(void **state)
{
    char plain_id[128], id[128];
    struct bus_config cfg = {.bootstrap = getenv("TESSERA_KAFKA_BOOTSTRAP"),
                             .client_id = "test-kafka-sasl"};
    assert_int_equal(bus_cluster_id(&cfg, plain_id, sizeof(plain_id), SASL_PROBE_MS), 0);
    const char *mechanisms[] = {"SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"};
    for (size_t i = 0; i < sizeof(mechanisms) / sizeof(mechanisms[0]); i++) {
        assert_int_equal(cluster_id_with(mechanisms[i], sasl.password, id, sizeof(id)), 0);
        assert_string_equal(id, plain_id);
    }
}

/* tessera-topics with a wrong password: exit 1 and the broker's reason. */
static void test_wrong_password_fails_clearly(void **state)
{
    char cmd[1024], out[SASL_OUTPUT_MAX];
    snprintf(
        cmd, sizeof(cmd),
        "TESSERA_KAFKA_SECURITY_PROTOCOL=sasl_plaintext "
        "TESSERA_KAFKA_SASL_MECHANISM=SCRAM-SHA-256 TESSERA_KAFKA_SASL_USERNAME=%s "
        "TESSERA_KAFKA_SASL_PASSWORD=not-the-password build/bin/tessera-topics "
        "--bootstrap %s --partitions 6 --replication-factor 1 --dry-run --timeout-ms 3000 2>&1",
        SASL_USER, sasl.bootstrap);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 1);
    assert_non_null(strstr(out, "Authentication failed"));
    char id[128];
    assert_int_equal(cluster_id_with("SCRAM-SHA-256", "not-the-password", id, sizeof(id)), -1);
}

/* A second notification instance, configured only through its table. */
static pid_t spawn_notification(int admin_port, const char *log_path)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char admin[16];
        snprintf(admin, sizeof(admin), "%d", admin_port);
        setenv("TESSERA_KAFKA_BOOTSTRAP", sasl.bootstrap, 1);
        setenv("TESSERA_KAFKA_SECURITY_PROTOCOL", "sasl_plaintext", 1);
        setenv("TESSERA_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512", 1);
        setenv("TESSERA_KAFKA_SASL_USERNAME", SASL_USER, 1);
        setenv("TESSERA_KAFKA_SASL_PASSWORD", sasl.password, 1);
        setenv("TESSERA_ADMIN_PORT", admin, 1);
        setenv("TESSERA_INSTANCE_ID", "notification-sasl", 1);
        if (!freopen(log_path, "w", stderr))
            _exit(126);
        execl("build/bin/tessera-notification", "tessera-notification", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static bool ready_at(void *arg)
{
    long status;
    free(ops_http_get(arg, &status));
    return status == 200;
}

static void stop_child(pid_t pid)
{
    assert_int_equal(kill(pid, SIGTERM), 0);
    int wstatus = 0;
    struct timespec step = {0, 20 * 1000 * 1000};
    for (int waited = 0; waitpid(pid, &wstatus, WNOHANG) == 0; waited += 20) {
        if (waited > SASL_STOP_DEADLINE_MS) {
            kill(pid, SIGKILL);
            fail_msg("the service did not stop within %d ms", SASL_STOP_DEADLINE_MS);
        }
        nanosleep(&step, NULL);
    }
    assert_true(WIFEXITED(wstatus));
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* The service gets partitions (readyz) over SCRAM-SHA-512; its log shows
 * the settings with the password redacted. */
static void test_service_joins_through_sasl(void **state)
{
    int port = ops_admin_port("notification") + SASL_ADMIN_PORT_SHIFT;
    char url[128], log_path[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/readyz", port);
    snprintf(log_path, sizeof(log_path), "%s/logs/notification-sasl.log",
             getenv("TESSERA_LOCAL_DIR"));
    pid_t pid = spawn_notification(port, log_path);
    bool ready = poll_until(ready_at, url, SASL_READY_DEADLINE_MS);
    stop_child(pid);
    char *log = read_file(log_path);
    if (!ready)
        fprintf(stderr, "# service log:\n%s\n", log);
    assert_true(ready);
    assert_non_null(strstr(log, "SCRAM-SHA-512"));
    assert_non_null(strstr(log, "TESSERA_KAFKA_SASL_PASSWORD"));
    assert_null(strstr(log, sasl.password));
    free(log);
}

int main(void)
{
    log_init("test_kafka_sasl", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_each_mechanism_connects),
        cmocka_unit_test(test_wrong_password_fails_clearly),
        cmocka_unit_test(test_service_joins_through_sasl),
    };
    return cmocka_run_group_tests_name("kafka_sasl", tests, sasl_setup, NULL);
}
