/* Integration tests of libs/bus against the runtime's Apache Kafka broker
 * (TESSERA_KAFKA_BOOTSTRAP). Every wait is a poll with a deadline. Messages carry a run id, so
 * a shared broker holding older messages does not confuse the checks. */
#include <setjmp.h> /* cmocka needs these first */
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h>

#include "bus/bus.h"
#include "bus/topics.h"
#include "log/log.h"

#include <errno.h>
#include <poll.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define TEST_DEADLINE_MS    30000
#define TEST_POLL_STEP_MS   20
#define TEST_MESSAGES       120
#define TEST_BATCH_MAX      64
#define TEST_PARTITIONS_MAX 256
/* 6 s, the smallest session Kafka brokers accept by default
 * (group.min.session.timeout.ms): a killed member is noticed after it. */
#define TEST_SESSION_TIMEOUT_MS 6000
#define TEST_TAKEOVER_MS_MAX    15000

static struct {
    char bootstrap[256];
    char run_id[64];
} env;

/* ------------------------------------------------------------- helpers */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The pause between two looks at something a poll is waiting for. */
static void poll_step(void)
{
    struct timespec step = {0, TEST_POLL_STEP_MS * 1000000L};
    nanosleep(&step, NULL);
}

static struct bus_config test_config(const char *client_id)
{
    struct bus_config cfg = {.bootstrap = env.bootstrap,
                             .client_id = client_id,
                             .session_timeout_ms = TEST_SESSION_TIMEOUT_MS,
                             .linger_ms = 5};
    return cfg;
}

static void make_key(char *out, size_t len, int i)
{
    snprintf(out, len, "member-%s-%d", env.run_id, i);
}

/* Index i of a message of this run, from its payload "<run>:<i>"; -1 for
 * anything else. */
static int payload_index(const rd_kafka_message_t *rkm)
{
    char text[128];
    size_t run_len = strlen(env.run_id);
    if (rkm->len >= sizeof(text) || rkm->len <= run_len + 1)
        return -1;
    memcpy(text, rkm->payload, rkm->len);
    text[rkm->len] = '\0';
    if (strncmp(text, env.run_id, run_len) != 0 || text[run_len] != ':')
        return -1;
    return atoi(text + run_len + 1);
}

/* Produces indexes [from, to) to topic with a blocking producer and waits
 * for every delivery. */
static void produce_range(const char *topic, int from, int to)
{
    char err[256], key[96], payload[96];
    struct bus_config cfg = test_config("test-producer");
    struct bus_producer *p = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(p);
    for (int i = from; i < to; i++) {
        make_key(key, sizeof(key), i);
        int n = snprintf(payload, sizeof(payload), "%s:%d", env.run_id, i);
        assert_int_equal(bus_produce(p, topic, key, payload, (size_t)n, NULL, NULL), 0);
    }
    assert_int_equal(bus_producer_flush(p, TEST_DEADLINE_MS), 0);
    assert_int_equal(bus_producer_outstanding(p), 0);
    bus_producer_free(p);
}

/* ------------------------------------------------- consumer bookkeeping */

/* What a test consumer has processed. stored[] plays the offsets a
 * service keeps in PostgreSQL: next offset per partition, or -1. */
struct seen {
    int count[TEST_MESSAGES];
    int partition_of[TEST_MESSAGES];
    int total;
    int64_t stored[TEST_PARTITIONS_MAX];
    int assign_refusals_left; /* on_assign fails this many times first */
    int assign_calls;
};

static void seen_init(struct seen *s)
{
    memset(s, 0, sizeof(*s));
    for (int i = 0; i < TEST_MESSAGES; i++)
        s->partition_of[i] = -1;
    for (int i = 0; i < TEST_PARTITIONS_MAX; i++)
        s->stored[i] = -1;
}

static int on_assign_stored(void *ctx, rd_kafka_topic_partition_list_t *parts)
{
    struct seen *s = ctx;
    s->assign_calls++;
    if (s->assign_refusals_left > 0) {
        s->assign_refusals_left--;
        return -1;
    }
    for (int i = 0; i < parts->cnt; i++) {
        int32_t part = parts->elems[i].partition;
        assert_true(part >= 0 && part < TEST_PARTITIONS_MAX);
        parts->elems[i].offset = s->stored[part] >= 0 ? s->stored[part] : RD_KAFKA_OFFSET_BEGINNING;
    }
    return 0;
}

static const struct bus_consumer_ops stored_ops = {on_assign_stored, NULL};

/* Records one message of this run; returns its index or -1. */
static int seen_record(struct seen *s, const rd_kafka_message_t *rkm)
{
    int i = payload_index(rkm);
    if (i < 0 || i >= TEST_MESSAGES)
        return -1;
    s->count[i]++;
    s->total++;
    assert_true(rkm->partition >= 0 && rkm->partition < TEST_PARTITIONS_MAX);
    s->stored[rkm->partition] = rkm->offset + 1;
    if (s->partition_of[i] >= 0) /* the same key always lands alike */
        assert_int_equal(s->partition_of[i], rkm->partition);
    s->partition_of[i] = rkm->partition;
    return i;
}

/* Polls c until s->total reaches want (processing at most want messages
 * of this run; any further ones in a batch are dropped unprocessed, like a
 * crash would) or the deadline passes. */
static void consume_until(struct bus_consumer *c, struct seen *s, int want)
{
    rd_kafka_message_t *msgs[TEST_BATCH_MAX];
    int64_t deadline = now_ms() + TEST_DEADLINE_MS;

    while (s->total < want && now_ms() < deadline) {
        size_t n = bus_consumer_poll_batch(c, msgs, TEST_BATCH_MAX, 200);
        for (size_t k = 0; k < n; k++) {
            if (s->total < want)
                seen_record(s, msgs[k]);
            rd_kafka_message_destroy(msgs[k]);
        }
    }
    assert_int_equal(s->total, want);
}

static struct bus_consumer *consumer_new(const char *group, const char *topic, struct seen *s)
{
    char err[256];
    const char *topics[] = {topic};
    struct bus_config cfg = test_config("test-consumer");
    struct bus_consumer *c =
        bus_consumer_new(&cfg, group, topics, 1, &stored_ops, s, err, sizeof(err));
    if (c == NULL)
        fail_msg("bus_consumer_new: %s", err);
    return c;
}

static void group_name(char *out, size_t len, const char *what)
{
    snprintf(out, len, "test-%s-%s", what, env.run_id);
}

/* --------------------------------------------------------------- tests */

/* Keyed messages all arrive, each once, each key on one partition; the
 * lag then drains to 0 and the cluster id matches bus_cluster_id. */
static void test_produce_consume_all(void **state)
{
    char group[128], cluster_id[128];
    struct seen s;

    seen_init(&s);
    produce_range(TOPIC_MEMBER_EVENTS, 0, TEST_MESSAGES / 2);
    /* The same keys again: must land on the partitions of the first round. */
    produce_range(TOPIC_MEMBER_EVENTS, 0, TEST_MESSAGES / 2);
    group_name(group, sizeof(group), "all");
    struct bus_consumer *c = consumer_new(group, TOPIC_MEMBER_EVENTS, &s);
    consume_until(c, &s, TEST_MESSAGES);
    for (int i = 0; i < TEST_MESSAGES / 2; i++)
        assert_int_equal(s.count[i], 2);
    assert_true(bus_consumer_assigned_count(c) > 0);

    int64_t lag = -1;
    for (int64_t deadline = now_ms() + TEST_DEADLINE_MS; now_ms() < deadline; poll_step()) {
        rd_kafka_message_t *msgs[TEST_BATCH_MAX];
        size_t n = bus_consumer_poll_batch(c, msgs, TEST_BATCH_MAX, 0);
        for (size_t k = 0; k < n; k++)
            rd_kafka_message_destroy(msgs[k]);
        if ((lag = bus_consumer_lag(c)) == 0)
            break;
    }
    assert_int_equal(lag, 0);

    struct bus_config cfg = test_config("test-cluster-id");
    assert_int_equal(bus_cluster_id(&cfg, cluster_id, sizeof(cluster_id), TEST_DEADLINE_MS), 0);
    assert_true(cluster_id[0] != '\0');
    assert_string_equal(cluster_id, bus_consumer_cluster_id(c));
    bus_consumer_close(c);
}

/* A consumer that stops half way and a successor starting from the stored
 * offsets process every message exactly once between them. The successor's
 * on_assign refuses once first, so the retry path runs too. */
static void test_resume_from_stored_offsets(void **state)
{
    char group[128];
    struct seen s;

    seen_init(&s);
    produce_range(TOPIC_LEDGER_COMMANDS, 0, TEST_MESSAGES);
    group_name(group, sizeof(group), "resume");

    struct bus_consumer *first = consumer_new(group, TOPIC_LEDGER_COMMANDS, &s);
    consume_until(first, &s, TEST_MESSAGES / 2);
    bus_consumer_close(first);

    s.assign_refusals_left = 1;
    struct bus_consumer *second = consumer_new(group, TOPIC_LEDGER_COMMANDS, &s);
    consume_until(second, &s, TEST_MESSAGES);
    assert_true(s.assign_calls >= 3); /* first, refused, retried */
    for (int i = 0; i < TEST_MESSAGES; i++)
        assert_int_equal(s.count[i], 1);
    bus_consumer_close(second);
}

/* ------------------------------------------------------------------ tail */

struct tail_seen {
    int after; /* messages of this run with index >= TAIL_FIRST_AFTER */
    int before;
    int delivered;
    int delivery_errors;
};

#define TAIL_BEFORE 10
#define TAIL_AFTER  10

static void on_tail_message(void *ctx, const rd_kafka_message_t *rkm)
{
    struct tail_seen *ts = ctx;
    int i = payload_index(rkm);
    if (i < 0)
        return;
    if (i < TAIL_BEFORE)
        ts->before++;
    else
        ts->after++;
}

static void on_loop_delivery(void *ctx, void *msg_opaque, rd_kafka_resp_err_t err)
{
    struct tail_seen *ts = ctx;
    ts->delivered++;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        ts->delivery_errors++;
}

/* Runs base until the tail saw want messages and the loop producer had
 * want reports, or the deadline passes. */
static void loop_until(struct event_base *base, struct tail_seen *ts, int want)
{
    for (int64_t deadline = now_ms() + TEST_DEADLINE_MS;
         (ts->after < want || ts->delivered < want) && now_ms() < deadline;)
        event_base_loop(base, EVLOOP_ONCE); /* the safety timer bounds each turn */
}

/* The tail sees what is produced after it is ready and nothing from
 * before; the producer on the same loop gets its reports there. */
static void test_tail_follows_end(void **state)
{
    char err[256], key[96], payload[96];
    struct tail_seen ts = {0};

    produce_range(TOPIC_LEDGER_EVENTS, 0, TAIL_BEFORE);
    struct event_base *base = event_base_new();
    assert_non_null(base);
    struct bus_config cfg = test_config("test-tail");
    struct bus_tail *t =
        bus_tail_new(&cfg, base, TOPIC_LEDGER_EVENTS, on_tail_message, &ts, err, sizeof(err));
    if (t == NULL)
        fail_msg("bus_tail_new: %s", err);
    assert_true(bus_tail_ready(t));

    struct bus_producer *p = bus_producer_new(&cfg, base, on_loop_delivery, &ts, err, sizeof(err));
    assert_non_null(p);
    for (int i = TAIL_BEFORE; i < TAIL_BEFORE + TAIL_AFTER; i++) {
        make_key(key, sizeof(key), i);
        int n = snprintf(payload, sizeof(payload), "%s:%d", env.run_id, i);
        assert_int_equal(bus_produce(p, TOPIC_LEDGER_EVENTS, key, payload, (size_t)n, NULL, NULL),
                         0);
    }
    loop_until(base, &ts, TAIL_AFTER);
    assert_int_equal(ts.after, TAIL_AFTER);
    assert_int_equal(ts.delivered, TAIL_AFTER);
    assert_int_equal(ts.delivery_errors, 0);
    assert_int_equal(ts.before, 0);
    assert_int_equal(bus_producer_outstanding(p), 0);
    bus_producer_free(p);
    bus_tail_free(t);
    event_base_free(base);
}

/* ----------------------------------------------------------- dead letter */

static const char *header_value(const rd_kafka_message_t *rkm, const char *name, char *out,
                                size_t len)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *value = NULL;
    size_t size = 0;
    out[0] = '\0';
    if (rd_kafka_message_headers(rkm, &hdrs) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        size >= len)
        return out;
    memcpy(out, value, size);
    out[size] = '\0';
    return out;
}

/* Takes the first message of this run from a fresh group on topic. The
 * caller destroys it, then closes *cp (rd_kafka_destroy waits for every
 * message of its handle to be destroyed). */
/* The dead-letter test's own payload index: the services of a shared
 * runtime dead-letter other tests' payloads (index 0...) too. */
#define DEAD_LETTER_INDEX 999999

static rd_kafka_message_t *take_one(const char *what, const char *topic, struct bus_consumer **cp)
{
    char group[128];
    struct seen s;
    rd_kafka_message_t *found = NULL;

    seen_init(&s);
    group_name(group, sizeof(group), what);
    struct bus_consumer *c = consumer_new(group, topic, &s);
    for (int64_t deadline = now_ms() + TEST_DEADLINE_MS; !found && now_ms() < deadline;) {
        rd_kafka_message_t *msgs[TEST_BATCH_MAX];
        size_t n = bus_consumer_poll_batch(c, msgs, TEST_BATCH_MAX, 200);
        for (size_t k = 0; k < n; k++) {
            if (!found && payload_index(msgs[k]) == DEAD_LETTER_INDEX)
                found = msgs[k];
            else
                rd_kafka_message_destroy(msgs[k]);
        }
    }
    *cp = c;
    assert_non_null(found);
    return found;
}

/* bus_produce refuses the dead-letter topic: its delivery report would
 * write through the caller's msg_opaque as if it were a result cell. The
 * refusal leaves the opaque untouched and nothing outstanding. */
static void test_dead_letter_only_through_bus_dead_letter(void **state)
{
    char err[256];
    struct bus_config cfg = test_config("test-dead-letter-refused");
    struct bus_producer *p = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(p);
    struct {
        long canary[4];
    } not_a_result = {{1, 2, 3, 4}};
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "ce_type", -1, "x", -1);
    assert_int_equal(bus_produce(p, TOPIC_DEAD_LETTER, "k", "v", 1, hdrs, &not_a_result),
                     RD_KAFKA_RESP_ERR__INVALID_ARG);
    assert_int_equal(bus_producer_flush(p, TEST_DEADLINE_MS), 0);
    assert_int_equal(not_a_result.canary[0], 1);
    assert_int_equal(not_a_result.canary[3], 4);
    bus_producer_free(p);
}

static void test_dead_letter_headers(void **state)
{
    char err[256], key[96], payload[96], value[128], expect[32];

    /* An original with a routing header that must survive. */
    struct bus_config cfg = test_config("test-dead-letter");
    struct bus_producer *p = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    assert_non_null(p);
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(1);
    rd_kafka_header_add(hdrs, "ce_type", -1, "tessera.tier.v1.TierChanged", -1);
    make_key(key, sizeof(key), DEAD_LETTER_INDEX);
    int n = snprintf(payload, sizeof(payload), "%s:%d", env.run_id, DEAD_LETTER_INDEX);
    rd_kafka_resp_err_t result = RD_KAFKA_RESP_ERR__IN_PROGRESS;
    assert_int_equal(bus_produce(p, TOPIC_TIER_EVENTS, key, payload, (size_t)n, hdrs, &result), 0);
    assert_int_equal(bus_producer_flush(p, TEST_DEADLINE_MS), 0);
    assert_int_equal(result, RD_KAFKA_RESP_ERR_NO_ERROR);

    struct bus_consumer *c_src, *c_dst;
    rd_kafka_message_t *orig = take_one("dl-src", TOPIC_TIER_EVENTS, &c_src);
    assert_int_equal(bus_dead_letter(p, orig, "test-svc", "cannot decode"), 0);
    rd_kafka_message_t *dl = take_one("dl-dst", TOPIC_DEAD_LETTER, &c_dst);

    assert_int_equal(dl->key_len, strlen(key));
    assert_memory_equal(dl->key, key, dl->key_len);
    assert_string_equal(header_value(dl, "x-original-topic", value, sizeof(value)),
                        TOPIC_TIER_EVENTS);
    snprintf(expect, sizeof(expect), "%" PRId32, orig->partition);
    assert_string_equal(header_value(dl, "x-original-partition", value, sizeof(value)), expect);
    snprintf(expect, sizeof(expect), "%" PRId64, orig->offset);
    assert_string_equal(header_value(dl, "x-original-offset", value, sizeof(value)), expect);
    assert_string_equal(header_value(dl, "x-dead-letter-reason", value, sizeof(value)),
                        "cannot decode");
    assert_string_equal(header_value(dl, "x-dead-letter-service", value, sizeof(value)),
                        "test-svc");
    assert_string_equal(header_value(dl, "ce_type", value, sizeof(value)),
                        "tessera.tier.v1.TierChanged");
    rd_kafka_message_destroy(dl);
    rd_kafka_message_destroy(orig);
    bus_consumer_close(c_dst);
    bus_consumer_close(c_src);
    bus_producer_free(p);
}

/* ------------------------------------------------------ member killed */

/* Child process: joins group on topic, reports its assigned partition
 * count on fd once it has some, then keeps polling until killed. */
static _Noreturn void member_run(const char *group, const char *topic, int fd)
{
    char err[256];
    const char *topics[] = {topic};
    struct seen s;
    rd_kafka_message_t *msgs[TEST_BATCH_MAX];
    bool told = false;

    seen_init(&s);
    struct bus_config cfg = test_config("test-doomed");
    struct bus_consumer *c =
        bus_consumer_new(&cfg, group, topics, 1, &stored_ops, &s, err, sizeof(err));
    if (c == NULL)
        _exit(1);
    for (;;) {
        size_t n = bus_consumer_poll_batch(c, msgs, TEST_BATCH_MAX, 100);
        for (size_t k = 0; k < n; k++)
            rd_kafka_message_destroy(msgs[k]);
        unsigned char count = (unsigned char)bus_consumer_assigned_count(c);
        if (!told && count > 0)
            told = write(fd, &count, 1) == 1;
    }
}

/* A member killed with SIGKILL (no LeaveGroup) is replaced by a new one,
 * which gets every partition within TEST_TAKEOVER_MS_MAX. */
static void test_group_recovers_after_sigkill(void **state)
{
    char group[128];
    int fds[2];
    unsigned char partitions = 0;
    struct seen s;

    group_name(group, sizeof(group), "killed");
    assert_int_equal(pipe(fds), 0);
    pid_t child = fork(); /* no librdkafka handle is alive here */
    assert_true(child >= 0);
    if (child == 0) {
        close(fds[0]);
        member_run(group, TOPIC_NOTIFY_REQUESTS, fds[1]);
    }
    close(fds[1]);
    struct pollfd pfd = {fds[0], POLLIN, 0};
    assert_int_equal(poll(&pfd, 1, TEST_DEADLINE_MS), 1);
    assert_int_equal(read(fds[0], &partitions, 1), 1);
    close(fds[0]);
    kill(child, SIGKILL);
    waitpid(child, NULL, 0);

    int64_t killed_ms = now_ms();
    seen_init(&s);
    struct bus_consumer *c = consumer_new(group, TOPIC_NOTIFY_REQUESTS, &s);
    while (bus_consumer_assigned_count(c) < partitions && now_ms() - killed_ms < TEST_DEADLINE_MS) {
        rd_kafka_message_t *msgs[TEST_BATCH_MAX];
        size_t n = bus_consumer_poll_batch(c, msgs, TEST_BATCH_MAX, 100);
        for (size_t k = 0; k < n; k++)
            rd_kafka_message_destroy(msgs[k]);
    }
    int64_t took_ms = now_ms() - killed_ms;
    fprintf(stderr, "# takeover after SIGKILL: %" PRId64 " ms (session %d ms)\n", took_ms,
            TEST_SESSION_TIMEOUT_MS);
    assert_int_equal(bus_consumer_assigned_count(c), partitions);
    assert_true(took_ms < TEST_TAKEOVER_MS_MAX);
    bus_consumer_close(c);
}

/* ---------------------------------------------------------------- broker */

/* The broker is the runtime's (make test exports TESSERA_KAFKA_BOOTSTRAP). */
static int broker_setup(void **state)
{
    const char *given = getenv("TESSERA_KAFKA_BOOTSTRAP");

    snprintf(env.run_id, sizeof(env.run_id), "%ld-%ld", (long)getpid(), (long)time(NULL));
    if (given == NULL || given[0] == '\0') {
        fprintf(stderr, "TESSERA_KAFKA_BOOTSTRAP is not set (run through make test)\n");
        return -1;
    }
    snprintf(env.bootstrap, sizeof(env.bootstrap), "%s", given);
    return 0;
}

int main(void)
{
    log_init("test_bus", LOG_WARN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_produce_consume_all),
        cmocka_unit_test(test_resume_from_stored_offsets),
        cmocka_unit_test(test_tail_follows_end),
        cmocka_unit_test(test_dead_letter_headers),
        cmocka_unit_test(test_dead_letter_only_through_bus_dead_letter),
        cmocka_unit_test(test_group_recovers_after_sigkill),
    };
    return cmocka_run_group_tests_name("bus", tests, broker_setup, NULL);
}
