/* Outcome events for notify-events (keyed by member id), encoded for the
 * outbox of whoever decided them: the pipeline for suppressions and inbox
 * deliveries, the delivery worker for sends. */
#include "notification.h"

static uint8_t *encode(const char *tenant_id, const char *member_id, Envelope *env, size_t *len)
{
    Actor actor;
    struct event_meta meta = {.tenant_id = tenant_id,
                              .member_id = member_id,
                              .actor_kind = "service",
                              .actor_id = "notification"};
    Tessera__Envelope__V1__Envelope__PayloadCase pc = env->payload_case;
    void *payload = env->notification_delivered; /* the union's one pointer */
    envelope_init(env, &actor, &meta);
    env->payload_case = pc;
    env->notification_delivered = payload;
    return envelope_encode(env, len);
}

uint8_t *notify_outcome_suppressed(const char *tenant_id, const char *member_id,
                                   const char *request_id, const char *channel, const char *rule,
                                   size_t *len)
{
    Tessera__Notification__V1__NotificationSuppressed m;
    tessera__notification__v1__notification_suppressed__init(&m);
    m.request_id = (char *)request_id;
    m.channel = (char *)channel;
    m.rule = (char *)rule;
    Envelope env = {.payload_case =
                        TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_SUPPRESSED,
                    .notification_suppressed = &m};
    return encode(tenant_id, member_id, &env, len);
}

uint8_t *notify_outcome_delivered(const char *tenant_id, const char *member_id,
                                  const char *request_id, const char *message_id,
                                  const char *channel, int attempts, size_t *len)
{
    Tessera__Notification__V1__NotificationDelivered m;
    tessera__notification__v1__notification_delivered__init(&m);
    m.request_id = (char *)request_id;
    m.message_id = (char *)message_id;
    m.channel = (char *)channel;
    m.attempts = attempts;
    Envelope env = {.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_DELIVERED,
                    .notification_delivered = &m};
    return encode(tenant_id, member_id, &env, len);
}

uint8_t *notify_outcome_failed(const char *tenant_id, const char *member_id, const char *request_id,
                               const char *message_id, const char *channel, int attempts,
                               const char *reason, bool permanent, size_t *len)
{
    Tessera__Notification__V1__NotificationFailed m;
    tessera__notification__v1__notification_failed__init(&m);
    m.request_id = (char *)request_id;
    m.message_id = (char *)message_id;
    m.channel = (char *)channel;
    m.attempts = attempts;
    m.reason = (char *)reason;
    m.permanent = permanent;
    Envelope env = {.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFICATION_FAILED,
                    .notification_failed = &m};
    return encode(tenant_id, member_id, &env, len);
}
