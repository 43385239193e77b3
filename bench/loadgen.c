/* tessera-loadgen: an HTTP load generator on libevent for `make bench`.
 *
 *   --target bare       GET / (the bare libevent baseline server)
 *   --target purchase   POST /v1/members/{id}/purchases over the members in
 *                       --members FILE (one id a line), paid by cash or by
 *                       stored value (--stored-value-pct)
 *   --target member     GET /v1/members/{id} over the members in --members
 *                       FILE: the read path
 *   --target entitlement GET /v1/members/{id}/entitlements?resource=R over
 *                       the members in --members FILE, R from --resource
 *                       (default course:bench): the entitlement check
 *   --target activity   POST /v1/members/{id}/activities over the members in
 *                       --members FILE, types taken in turn from
 *                       --activity-types a,b,... (default comment), each
 *                       with an activity_id of its own
 *   --count N           stop once N requests were answered (0: no limit)
 *   --rate R            open loop at R requests/s (latency counted from
 *                       when each request was due, so a stall is not
 *                       hidden); 0 = closed loop, as fast as it answers
 *   --each              the members in file order, each once, then stop
 *                       (closed loop): a warming pass that leaves every
 *                       member's view in the cache
 *   --visible-every N   every Nth purchase is followed by GETs of the
 *                       member until its balance shows the purchase: the
 *                       accepted-to-visible latency
 *
 * Prints one JSON object: requests, errors, status counts, rps and latency
 * percentiles in milliseconds. Bounded by --duration; stops by itself. */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <getopt.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECTIONS_MAX 512
#define MEMBERS_MAX     2000000
#define SAMPLES_MAX     20000000

#define ACTIVITY_TYPES_MAX 16

struct options {
    const char *host;
    int port;
    const char *target;
    const char *key;
    const char *members_file;
    int connections;
    int duration_s;
    int rate;
    int stored_value_pct;
    int visible_every;
    const char *resource; /* --target entitlement */
    bool each;
    long count;
    char *activity_types[ACTIVITY_TYPES_MAX];
    int activity_type_count;
};

struct samples {
    double *ms;
    size_t count, cap;
};

struct conn;

struct gen {
    struct options o;
    struct event_base *base;
    struct conn *conns;
    char **members;
    size_t member_count;
    double start, end;
    long due; /* open loop: requests that should have started */
    long issued;
    long done, errors;
    long status[6]; /* by hundreds */
    double *due_at; /* open loop: when request n was due */
    struct samples latency, visible;
    long visible_retries;
    bool stopping;
};

struct conn {
    struct gen *g;
    struct evhttp_connection *evcon;
    bool busy;
    long seq; /* request number in flight */
    double sent_at;
    char member[64];
    int64_t expect_sv; /* visibility check: the stored value to see */
    bool checking;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sample_add(struct samples *s, double ms)
{
    if (s->count == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 65536;
        if (s->cap > SAMPLES_MAX)
            return;
        s->ms = realloc(s->ms, s->cap * sizeof(double));
    }
    s->ms[s->count++] = ms;
}

static void issue(struct conn *c);

static void conn_next(struct conn *c)
{
    struct gen *g = c->g;
    c->busy = false;
    bool all_read = g->o.each && (size_t)g->done >= g->member_count;
    if (all_read || (g->o.count && g->done >= g->o.count)) {
        g->stopping = true;
        event_base_loopexit(g->base, &(struct timeval){0, 0});
    }
    if (g->stopping || (g->o.count && g->issued >= g->o.count))
        return;
    if (g->o.rate == 0 || g->issued < g->due)
        issue(c);
}

static json_t *body_json(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    return json_loadb((const char *)evbuffer_pullup(in, -1), len, 0, NULL);
}

static void check_visible(struct conn *c);

static void on_visible(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;
    struct gen *g = c->g;
    json_t *b = req ? body_json(req) : NULL;
    json_t *sv = json_object_get(json_object_get(b, "balances"), "stored_value");
    bool seen = json_is_integer(sv) && json_integer_value(sv) == c->expect_sv;
    json_decref(b);
    if (seen || g->stopping || now_s() - c->sent_at > 5) {
        if (seen)
            sample_add(&g->visible, (now_s() - c->sent_at) * 1000);
        c->checking = false;
        conn_next(c);
        return;
    }
    g->visible_retries++;
    check_visible(c);
}

static void check_visible(struct conn *c)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/members/%s", c->member);
    struct evhttp_request *req = evhttp_request_new(on_visible, c);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    char auth[256];
    snprintf(auth, sizeof(auth), "Bearer %s", c->g->o.key);
    evhttp_add_header(h, "Host", "localhost");
    evhttp_add_header(h, "Authorization", auth);
    evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, path);
}

static void on_response(struct evhttp_request *req, void *arg)
{
    struct conn *c = arg;
    struct gen *g = c->g;
    double t = now_s();
    int code = req ? evhttp_request_get_response_code(req) : 0;
    g->done++;
    if (code < 100 || code > 599) {
        g->errors++;
    } else {
        g->status[code / 100]++;
        double from = g->o.rate ? g->due_at[c->seq] : c->sent_at;
        sample_add(&g->latency, (t - from) * 1000);
    }
    if (code == 201 && g->o.visible_every && c->seq % g->o.visible_every == 0) {
        json_t *b = body_json(req);
        json_t *sv = json_object_get(json_object_get(b, "balances"), "stored_value");
        if (json_is_integer(sv)) {
            c->expect_sv = json_integer_value(sv);
            c->checking = true;
        }
        json_decref(b);
        if (c->checking) {
            check_visible(c);
            return;
        }
    }
    conn_next(c);
}

static void issue(struct conn *c)
{
    struct gen *g = c->g;
    if (g->o.each && strcmp(g->o.target, "bare") != 0 && (size_t)g->issued >= g->member_count)
        return; /* every member asked: this connection rests */
    c->busy = true;
    c->seq = g->issued++;
    c->sent_at = now_s();
    struct evhttp_request *req = evhttp_request_new(on_response, c);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", "localhost");
    if (strcmp(g->o.target, "bare") == 0) {
        evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, "/");
        return;
    }
    char auth[256], path[512], body[256];
    snprintf(auth, sizeof(auth), "Bearer %s", g->o.key);
    evhttp_add_header(h, "Authorization", auth);
    evhttp_add_header(h, "Content-Type", "application/json");
    size_t pick = g->o.each ? (size_t)c->seq : (size_t)random() % g->member_count;
    snprintf(c->member, sizeof(c->member), "%s", g->members[pick]);
    if (strcmp(g->o.target, "entitlement") == 0) {
        snprintf(path, sizeof(path), "/v1/members/%s/entitlements?resource=%s", c->member,
                 g->o.resource);
        evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, path);
        return;
    }
    if (strcmp(g->o.target, "member") == 0) {
        snprintf(path, sizeof(path), "/v1/members/%s", c->member);
        evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, path);
        return;
    }
    if (strcmp(g->o.target, "activity") == 0) {
        snprintf(path, sizeof(path), "/v1/members/%s/activities", c->member);
        snprintf(body, sizeof(body), "{\"type\":\"%s\",\"activity_id\":\"lg-%ld-%ld\"}",
                 g->o.activity_types[c->seq % g->o.activity_type_count], (long)g->start, c->seq);
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
        evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, path);
        return;
    }
    snprintf(path, sizeof(path), "/v1/members/%s/purchases", c->member);
    bool sv = (random() % 100) < g->o.stored_value_pct;
    snprintf(body, sizeof(body),
             "{\"amount\":%ld,\"branch_id\":\"hq\",\"payment\":{\"method\":\"%s\"}}",
             100 + random() % 900, sv ? "stored_value" : "cash");
    evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, path);
}

/* Open loop: every millisecond, what became due goes to idle connections. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    struct gen *g = arg;
    double t = now_s();
    if (t >= g->end) {
        g->stopping = true;
        event_base_loopexit(g->base, &(struct timeval){0, 0});
        return;
    }
    if (g->o.rate == 0)
        return;
    long should = (long)((t - g->start) * g->o.rate);
    while (g->due < should) {
        g->due_at[g->due] = g->start + (double)g->due / g->o.rate;
        g->due++;
    }
    for (int i = 0;
         i < g->o.connections && g->issued < g->due && (!g->o.count || g->issued < g->o.count); i++)
        if (!g->conns[i].busy)
            issue(&g->conns[i]);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(struct samples *s, double p)
{
    if (s->count == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(s->count - 1) + 0.5);
    return s->ms[i];
}

static void load_members(struct gen *g)
{
    FILE *f = fopen(g->o.members_file, "r");
    if (!f) {
        fprintf(stderr, "loadgen: cannot read %s\n", g->o.members_file);
        exit(2);
    }
    g->members = calloc(MEMBERS_MAX, sizeof(char *));
    char line[128];
    while (g->member_count < MEMBERS_MAX && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0])
            g->members[g->member_count++] = strdup(line);
    }
    fclose(f);
    if (g->member_count == 0) {
        fprintf(stderr, "loadgen: no members in %s\n", g->o.members_file);
        exit(2);
    }
}

static void parse_options(int argc, char **argv, struct options *o)
{
    static const struct option longs[] = {{"host", 1, 0, 'h'},
                                          {"port", 1, 0, 'p'},
                                          {"target", 1, 0, 't'},
                                          {"key", 1, 0, 'k'},
                                          {"members", 1, 0, 'm'},
                                          {"connections", 1, 0, 'c'},
                                          {"duration", 1, 0, 'd'},
                                          {"rate", 1, 0, 'r'},
                                          {"stored-value-pct", 1, 0, 's'},
                                          {"visible-every", 1, 0, 'v'},
                                          {"each", 0, 0, 'e'},
                                          {"resource", 1, 0, 'R'},
                                          {"count", 1, 0, 'n'},
                                          {"activity-types", 1, 0, 'a'},
                                          {0, 0, 0, 0}};
    *o = (struct options){.host = "127.0.0.1",
                          .port = 8080,
                          .target = "purchase",
                          .connections = 32,
                          .resource = "course:bench",
                          .duration_s = 10};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case 'h':
            o->host = optarg;
            break;
        case 'p':
            o->port = atoi(optarg);
            break;
        case 't':
            o->target = optarg;
            break;
        case 'k':
            o->key = optarg;
            break;
        case 'm':
            o->members_file = optarg;
            break;
        case 'c':
            o->connections = atoi(optarg);
            break;
        case 'd':
            o->duration_s = atoi(optarg);
            break;
        case 'r':
            o->rate = atoi(optarg);
            break;
        case 's':
            o->stored_value_pct = atoi(optarg);
            break;
        case 'v':
            o->visible_every = atoi(optarg);
            break;
        case 'e':
            o->each = true;
            break;
        case 'R':
            o->resource = optarg;
            break;
        case 'n':
            o->count = atol(optarg);
            break;
        case 'a':
            for (char *t = strtok(strdup(optarg), ",");
                 t && o->activity_type_count < ACTIVITY_TYPES_MAX; t = strtok(NULL, ","))
                o->activity_types[o->activity_type_count++] = t;
            break;
        default:
            fprintf(stderr, "usage: see the comment at the top of bench/loadgen.c\n");
            exit(2);
        }
    }
    if (o->connections < 1 || o->connections > CONNECTIONS_MAX || o->duration_s < 1 ||
        o->duration_s > 600 || o->rate < 0 || o->rate > 1000000) {
        fprintf(stderr, "loadgen: connections 1..512, duration 1..600 s, rate 0..1000000\n");
        exit(2);
    }
    if (o->activity_type_count == 0)
        o->activity_types[o->activity_type_count++] = "comment";
    if (strcmp(o->target, "bare") != 0 && (!o->key || !o->members_file)) {
        fprintf(stderr, "loadgen: --target purchase, member, entitlement or activity needs --key "
                        "and --members\n");
        exit(2);
    }
}

int main(int argc, char **argv)
{
    struct gen g = {0};
    parse_options(argc, argv, &g.o);
    srandom((unsigned)time(NULL));
    if (strcmp(g.o.target, "bare") != 0)
        load_members(&g);
    g.base = event_base_new();
    g.conns = calloc((size_t)g.o.connections, sizeof(*g.conns));
    if (g.o.rate)
        g.due_at = calloc((size_t)g.o.rate * (size_t)g.o.duration_s + 16, sizeof(double));
    for (int i = 0; i < g.o.connections; i++) {
        g.conns[i].g = &g;
        g.conns[i].evcon = evhttp_connection_base_new(g.base, NULL, g.o.host, (uint16_t)g.o.port);
        evhttp_connection_set_timeout(g.conns[i].evcon, 30);
    }
    g.start = now_s();
    g.end = g.start + g.o.duration_s;
    struct event *tick = event_new(g.base, -1, EV_PERSIST, on_tick, &g);
    event_add(tick, &(struct timeval){0, 1000});
    if (g.o.rate == 0)
        for (int i = 0; i < g.o.connections; i++)
            issue(&g.conns[i]);
    event_base_dispatch(g.base);
    double elapsed = now_s() - g.start;
    qsort(g.latency.ms, g.latency.count, sizeof(double), cmp_double);
    qsort(g.visible.ms, g.visible.count, sizeof(double), cmp_double);
    printf("{\"target\":\"%s\",\"rate\":%d,\"connections\":%d,\"duration_s\":%.2f,"
           "\"requests\":%ld,\"errors\":%ld,\"status_2xx\":%ld,\"status_4xx\":%ld,"
           "\"status_5xx\":%ld,\"rps\":%.1f,\"p50_ms\":%.3f,\"p95_ms\":%.3f,\"p99_ms\":%.3f,"
           "\"max_ms\":%.3f,\"visible_samples\":%zu,\"visible_p50_ms\":%.3f,"
           "\"visible_p99_ms\":%.3f,\"visible_retries\":%ld}\n",
           g.o.target, g.o.rate, g.o.connections, elapsed, g.done, g.errors, g.status[2],
           g.status[4], g.status[5], (double)g.done / elapsed, percentile(&g.latency, 50),
           percentile(&g.latency, 95), percentile(&g.latency, 99),
           g.latency.count ? g.latency.ms[g.latency.count - 1] : 0.0, g.visible.count,
           percentile(&g.visible, 50), percentile(&g.visible, 99), g.visible_retries);
    return 0;
}
