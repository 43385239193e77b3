/* W3C trace context end to end: the traceparent a client sends reaches
 * the events the request causes (MemberRegistered on member-events;
 * LedgerPosted and StoredValueToppedUp on ledger-events, copied by the
 * ledger from the command) and ingest's access-log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../support/api_client.h"
#include "bus/bus.h"
#include "bus/topics.h"
#include "events/codec.h"
#include "trace/trace.h"

#define DEADLINE_MS 15000
#define SEEN_MAX    16

/* What a tail saw carrying one trace id. */
struct seen {
    char trace_id[TRACE_ID_SIZE];
    char types[SEEN_MAX][96];
    char traceparents[SEEN_MAX][TRACEPARENT_SIZE];
    bool header_matches[SEEN_MAX];
    int count;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void random_trace(char traceparent[TRACEPARENT_SIZE], char trace_id[TRACE_ID_SIZE])
{
    trace_continue(NULL, traceparent); /* a fresh, valid trace */
    assert_true(trace_parse(traceparent, trace_id));
}

static void on_event(void *ctx, const rd_kafka_message_t *rkm)
{
    struct seen *s = ctx;
    char err[128], trace_id[TRACE_ID_SIZE];
    Envelope *env = envelope_decode(rkm->payload, rkm->len, err, sizeof(err));
    if (!env)
        return;
    trace_id_of(env->traceparent, trace_id);
    if (strcmp(trace_id, s->trace_id) == 0 && s->count < SEEN_MAX) {
        rd_kafka_headers_t *h = NULL;
        const void *v = NULL;
        size_t n = 0;
        bool header = rd_kafka_message_headers(rkm, &h) == 0 &&
                      rd_kafka_header_get_last(h, "ce_traceparent", &v, &n) == 0 &&
                      n == strlen(env->traceparent) && memcmp(v, env->traceparent, n) == 0;
        snprintf(s->types[s->count], sizeof(s->types[0]), "%s", env->type);
        snprintf(s->traceparents[s->count], TRACEPARENT_SIZE, "%s", env->traceparent);
        s->header_matches[s->count] = header;
        s->count++;
    }
    envelope_free(env);
}

static int find_type(const struct seen *s, const char *type)
{
    for (int i = 0; i < s->count; i++)
        if (strcmp(s->types[i], type) == 0)
            return i;
    return -1;
}

struct tail_run {
    struct event_base *base;
    struct bus_tail *tail;
    struct seen seen;
};

/* The broker's current address: other tests restart it (on a new port),
 * so the file the runtime writes wins over the environment. */
static const char *bootstrap(void)
{
    static char addr[256];
    char path[512];
    snprintf(path, sizeof(path), "%s/kafka.bootstrap", getenv("TESSERA_LOCAL_DIR"));
    FILE *f = fopen(path, "r");
    if (f && fgets(addr, sizeof(addr), f)) {
        addr[strcspn(addr, "\n")] = '\0';
        fclose(f);
        return addr;
    }
    if (f)
        fclose(f);
    return getenv("TESSERA_KAFKA_BOOTSTRAP");
}

static void tail_open(struct tail_run *t, const char *topic, const char *trace_id)
{
    static struct bus_config cfg;
    char err[256];
    cfg = (struct bus_config){.bootstrap = bootstrap(),
                              .client_id = "test-tracing",
                              .session_timeout_ms = 6000,
                              .linger_ms = 0};
    assert_non_null(cfg.bootstrap);
    memset(&t->seen, 0, sizeof(t->seen));
    snprintf(t->seen.trace_id, sizeof(t->seen.trace_id), "%s", trace_id);
    t->base = event_base_new();
    t->tail = bus_tail_new(&cfg, t->base, topic, on_event, &t->seen, err, sizeof(err));
    if (!t->tail)
        fail_msg("bus_tail_new: %s", err);
    assert_true(bus_tail_ready(t->tail));
}

/* Runs the tail's loop until it saw an event of each type, or the deadline. */
static void tail_wait(struct tail_run *t, const char *const *types)
{
    for (int64_t deadline = now_ms() + DEADLINE_MS; now_ms() < deadline;) {
        bool all = true;
        for (const char *const *ty = types; *ty; ty++)
            all = all && find_type(&t->seen, *ty) >= 0;
        if (all)
            return;
        event_base_loop(t->base, EVLOOP_ONCE); /* the tail's timer bounds each turn */
    }
}

static void tail_close(struct tail_run *t)
{
    bus_tail_free(t->tail);
    event_base_free(t->base);
}

/* The event carries the client's trace id under ingest's own span, and the
 * CloudEvents header says the same. */
static void assert_traced(const struct seen *s, const char *type, const char *sent)
{
    int i = find_type(s, type);
    if (i < 0)
        fail_msg("no %s event carried trace %s", type, s->trace_id);
    assert_true(s->header_matches[i]);
    assert_int_equal(strncmp(s->traceparents[i], sent, 35), 0);  /* version + trace id */
    assert_string_not_equal(s->traceparents[i] + 36, sent + 36); /* a span of ours */
}

struct log_search {
    const char *trace_id;
    const char *route;
    json_t *line;
};

/* Finds ingest's access-log line for the trace (the log is JSON lines). */
static bool log_has_trace(void *arg)
{
    struct log_search *q = arg;
    char path[512];
    snprintf(path, sizeof(path), "%s/logs/ingest.log", getenv("TESSERA_LOCAL_DIR"));
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    char line[8192];
    while (!q->line && fgets(line, sizeof(line), f)) {
        if (!strstr(line, q->trace_id))
            continue;
        json_t *j = json_loads(line, 0, NULL);
        const char *route = json_string_value(json_object_get(j, "route"));
        if (route && strcmp(route, q->route) == 0)
            q->line = j;
        else
            json_decref(j);
    }
    fclose(f);
    return q->line != NULL;
}

static json_t *access_line(const char *trace_id, const char *route)
{
    struct log_search q = {.trace_id = trace_id, .route = route};
    if (!poll_until(log_has_trace, &q, DEADLINE_MS))
        fail_msg("no access-log line with trace %s on %s", trace_id, route);
    return q.line;
}

static void test_traceparent_reaches_ledger_events_and_logs(void **state)
{
    char sent[TRACEPARENT_SIZE], trace_id[TRACE_ID_SIZE], header[128], member_id[64], path[128];
    random_trace(sent, trace_id);
    snprintf(header, sizeof(header), "traceparent: %s", sent);
    const char *headers[] = {header, NULL};
    test_register_member(member_id);

    struct tail_run t;
    tail_open(&t, TOPIC_LEDGER_EVENTS, trace_id);
    snprintf(path, sizeof(path), "/v1/members/%s/topups", member_id);
    struct api_response r =
        api_call("POST", path, "{\"amount\":2000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}",
                 NULL, headers);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    static const char *const types[] = {"tessera.ledger.v1.LedgerPosted",
                                        "tessera.ledger.v1.StoredValueToppedUp", NULL};
    tail_wait(&t, types);
    assert_traced(&t.seen, types[0], sent);
    assert_traced(&t.seen, types[1], sent);
    tail_close(&t);

    json_t *line = access_line(trace_id, "/v1/members/{member_id}/topups");
    assert_string_equal(json_string_value(json_object_get(line, "status")), "201");
    assert_string_equal(json_string_value(json_object_get(line, "member_id")), member_id);
    assert_string_equal(json_string_value(json_object_get(line, "tenant_id")), "demo");
    assert_non_null(json_string_value(json_object_get(line, "correlation_id")));
    assert_non_null(json_string_value(json_object_get(line, "instance")));
    json_decref(line);
}

static void test_registration_event_carries_the_trace(void **state)
{
    char sent[TRACEPARENT_SIZE], trace_id[TRACE_ID_SIZE], header[128], phone[16], body[256];
    random_trace(sent, trace_id);
    snprintf(header, sizeof(header), "traceparent: %s", sent);
    const char *headers[] = {header, NULL};
    test_unique_phone(phone);
    snprintf(body, sizeof(body), "{\"name\":\"Trace\",\"phone\":\"%s\",\"branch_id\":\"hq\"}",
             phone);

    struct tail_run t;
    tail_open(&t, TOPIC_MEMBER_EVENTS, trace_id);
    struct api_response r = api_call("POST", "/v1/members", body, NULL, headers);
    assert_int_equal(r.status, 201);
    api_response_free(&r);
    static const char *const types[] = {"tessera.member.v1.MemberRegistered", NULL};
    tail_wait(&t, types);
    assert_traced(&t.seen, types[0], sent);
    tail_close(&t);
}

struct member_search {
    const char *member_id;
    char trace_id[64]; /* of the newest line found */
};

/* Finds the newest access line of a GET of the member. */
static bool log_has_member_get(void *arg)
{
    struct member_search *q = arg;
    char path[512], line[8192];
    snprintf(path, sizeof(path), "%s/logs/ingest.log", getenv("TESSERA_LOCAL_DIR"));
    FILE *f = fopen(path, "r");
    if (!f)
        return false;
    q->trace_id[0] = '\0';
    while (fgets(line, sizeof(line), f)) {
        if (!strstr(line, q->member_id) || !strstr(line, "\"route\":\"/v1/members/{member_id}\""))
            continue;
        json_t *j = json_loads(line, 0, NULL);
        assert_non_null(j);
        snprintf(q->trace_id, sizeof(q->trace_id), "%s",
                 json_string_value(json_object_get(j, "trace_id")));
        json_decref(j);
    }
    fclose(f);
    return q->trace_id[0] != '\0';
}

/* A malformed traceparent is not propagated: the request gets a new,
 * valid trace, which its access-log line names. */
static void test_bad_traceparent_starts_a_new_trace(void **state)
{
    const char *headers[] = {"traceparent: 00-not-a-trace-01", NULL};
    char member_id[64], path[128];
    test_register_member(member_id);
    snprintf(path, sizeof(path), "/v1/members/%s", member_id);
    struct api_response r = api_call("GET", path, NULL, NULL, headers);
    assert_int_equal(r.status, 200);
    api_response_free(&r);

    /* The access line for this member's GET (written once per pass of
     * ingest's loop, so awaited) has a valid trace id. */
    struct member_search q = {.member_id = member_id};
    if (!poll_until(log_has_member_get, &q, DEADLINE_MS))
        fail_msg("no access-log line for the GET of %s", member_id);
    assert_int_equal(strlen(q.trace_id), 32);
    assert_string_not_equal(q.trace_id, "00000000000000000000000000000000");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_traceparent_reaches_ledger_events_and_logs),
        cmocka_unit_test(test_registration_event_carries_the_trace),
        cmocka_unit_test(test_bad_traceparent_starts_a_new_trace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
