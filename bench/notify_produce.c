/* tessera-bench-notify: the notification scenario's load. Sends a
 * MemberContactChanged for each of MEMBERS synthetic members of TENANT,
 * then COUNT NotifyRequests (receipt.top_up, transactional, bulk, inbox
 * and SMS, typed variables) round-robin over them, straight to
 * notify-requests with the project's producer and codec.
 * Usage: tessera-bench-notify BOOTSTRAP TENANT MEMBERS COUNT
 * Prints {"produced":N,"seconds":S,"rate":R}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bus/bus.h"
#include "bus/topics.h"
#include "events/codec.h"
#include "tessera/notification/v1/notification.pb-c.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int produce_one(struct bus_producer *p, Envelope *env, const char *key)
{
    size_t len = 0;
    uint8_t *buf = envelope_encode(env, &len);
    rd_kafka_headers_t *h = envelope_cloudevents_headers(env, "/tessera/bench");
    int rc = buf && bus_produce(p, TOPIC_NOTIFY_REQUESTS, key, buf, len, h, NULL) ==
                         RD_KAFKA_RESP_ERR_NO_ERROR
                 ? 0
                 : -1;
    free(buf);
    return rc;
}

static int send_contact(struct bus_producer *p, const char *tenant, const char *member, long i)
{
    struct event_meta meta = {.tenant_id = tenant, .member_id = member, .actor_kind = "bench"};
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, &meta);
    Tessera__Notification__V1__MemberContactChanged c =
        TESSERA__NOTIFICATION__V1__MEMBER_CONTACT_CHANGED__INIT;
    char phone[32];
    snprintf(phone, sizeof(phone), "+86139%08ld", i);
    c.name = "Bench Member", c.phone = phone, c.email = "", c.locale = "zh-CN";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_CONTACT_CHANGED;
    env.member_contact_changed = &c;
    return produce_one(p, &env, member);
}

static int send_request(struct bus_producer *p, const char *tenant, const char *member, long i)
{
    struct event_meta meta = {.tenant_id = tenant, .member_id = member, .actor_kind = "bench"};
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, &meta);
    Tessera__Notification__V1__NotifyRequest r = TESSERA__NOTIFICATION__V1__NOTIFY_REQUEST__INIT;
    Tessera__Notification__V1__Variable v[3] = {TESSERA__NOTIFICATION__V1__VARIABLE__INIT,
                                                TESSERA__NOTIFICATION__V1__VARIABLE__INIT,
                                                TESSERA__NOTIFICATION__V1__VARIABLE__INIT};
    v[0].name = "amount", v[0].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
    v[0].money_minor = 10000 + i % 1000;
    v[1].name = "balance.stored_value";
    v[1].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
    v[1].money_minor = 50000;
    v[2].name = "time", v[2].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US;
    v[2].time_us = env.occurred_at_us;
    Tessera__Notification__V1__Variable *vars[3] = {&v[0], &v[1], &v[2]};
    char *channels[2] = {"inbox", "sms"}, request_id[96];
    snprintf(request_id, sizeof(request_id), "bench:%s", env.event_id);
    r.request_id = request_id, r.template_ = "receipt.top_up", r.purpose = "transactional";
    r.priority = "bulk", r.n_channels = 2, r.channels = channels, r.n_variables = 3;
    r.variables = vars, r.locale = "";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = &r;
    return produce_one(p, &env, member);
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: %s BOOTSTRAP TENANT MEMBERS COUNT\n", argv[0]);
        return 2;
    }
    const char *tenant = argv[2];
    long members = atol(argv[3]), count = atol(argv[4]);
    if (members <= 0 || count <= 0)
        return 2;
    struct bus_config cfg = {.bootstrap = argv[1], .client_id = "bench-notify", .linger_ms = 5};
    char err[256];
    struct bus_producer *p = bus_producer_new(&cfg, NULL, NULL, NULL, err, sizeof(err));
    if (!p) {
        fprintf(stderr, "bench-notify: %s\n", err);
        return 1;
    }
    const char *topics[1] = {TOPIC_NOTIFY_REQUESTS};
    bus_producer_prepare_topics(p, topics, 1, 5000);
    double t0 = now_s();
    char member[64];
    for (long i = 0; i < members + count; i++) {
        long m = i < members ? i : (i - members) % members;
        snprintf(member, sizeof(member), "bench-%s-%ld", tenant, m);
        int rc = i < members ? send_contact(p, tenant, member, m)
                             : send_request(p, tenant, member, i - members);
        if (rc < 0) {
            fprintf(stderr, "bench-notify: produce failed at %ld\n", i);
            return 1;
        }
    }
    if (bus_producer_flush(p, 120000) < 0) {
        fprintf(stderr, "bench-notify: not everything was delivered\n");
        return 1;
    }
    double secs = now_s() - t0;
    printf("{\"produced\":%ld,\"seconds\":%.3f,\"rate\":%.1f}\n", count, secs,
           (double)count / secs);
    bus_producer_free(p);
    return 0;
}
