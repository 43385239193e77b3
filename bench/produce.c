/* tessera-bench-produce: sends ledger commands straight to Kafka with the
 * project's own producer and codec, for two baselines of `make bench`:
 *   - the ledger apply rate (commands produced while the ledger is down,
 *     then applied as fast as it can), and
 *   - the raw producer rate next to the batch endpoint (--topic elsewhere).
 * Usage: tessera-bench-produce BOOTSTRAP MEMBERS_FILE COUNT TOPIC [AMOUNT]
 * Prints {"produced":N,"seconds":S,"rate":R}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "events/codec.h"

#define MEMBERS_MAX 2000000

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char **read_members(const char *path, size_t *count)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char **ids = calloc(MEMBERS_MAX, sizeof(char *)), line[128];
    while (*count < MEMBERS_MAX && fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0])
            ids[(*count)++] = strdup(line);
    }
    fclose(f);
    return ids;
}

static uint8_t *encode_topup(const char *member, int64_t amount, size_t *len)
{
    char command_id[UUID_STR_SIZE];
    uuid7_generate(command_id);
    struct event_meta meta = {.tenant_id = "demo",
                              .branch_id = "hq",
                              .member_id = member,
                              .actor_kind = "service",
                              .actor_id = "bench"};
    Envelope env;
    Actor actor;
    TopUpStoredValue t;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__top_up_stored_value__init(&t);
    t.command_id = command_id;
    t.amount = amount;
    t.payment_method = "cash";
    t.currency = "CNY";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE;
    env.top_up_stored_value = &t;
    return envelope_encode(&env, len);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP MEMBERS_FILE COUNT TOPIC [AMOUNT]\n", argv[0]);
        return 2;
    }
    size_t member_count = 0;
    char **members = read_members(argv[2], &member_count);
    long count = atol(argv[3]);
    int64_t amount = argc > 5 ? atoll(argv[5]) : 100000;
    if (!members || member_count == 0 || count <= 0) {
        fprintf(stderr, "bench-produce: no members in %s, or a bad count\n", argv[2]);
        return 2;
    }
    struct bus_config cfg = {.bootstrap = argv[1], .client_id = "bench-produce", .linger_ms = 5};
    char err[256];
    struct bus_producer *p = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "bench-produce: %s\n", err);
        return 1;
    }
    const char *topics[1] = {argv[4]};
    bus_producer_prepare_topics(p, topics, 1, 5000);
    double t0 = now_s();
    for (long i = 0; i < count; i++) {
        size_t len = 0;
        const char *member = members[(size_t)i % member_count];
        uint8_t *buf = encode_topup(member, amount, &len);
        Envelope *env = envelope_decode(buf, len, err, sizeof(err));
        rd_kafka_headers_t *h = envelope_cloudevents_headers(env, "/tessera/bench");
        envelope_free(env);
        if (bus_produce(p, argv[4], member, buf, len, h, NULL) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            fprintf(stderr, "bench-produce: produce failed at %ld\n", i);
            return 1;
        }
        free(buf);
    }
    if (bus_producer_flush(p, 120000) < 0) {
        fprintf(stderr, "bench-produce: not everything was delivered\n");
        return 1;
    }
    double secs = now_s() - t0;
    printf("{\"produced\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", count, secs,
           (double)count / secs);
    bus_producer_free(p);
    return 0;
}
