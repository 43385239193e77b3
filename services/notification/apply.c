/* The notification batch: every message of notify-requests in order,
 * inside the pipeline's one transaction with the offsets and the outbox.
 * Requests and login codes are decided (decide.c); contacts, consents,
 * inbox reads, templates and policy are stored (settings.c). A message
 * that cannot be applied goes to dead-letter; nothing else stops. */
#include <stdio.h>
#include <string.h>

#include "log/log.h"
#include "notification.h"
#include "service/pipeline_metrics.h"

#define LOGIN_CODE_REQUEST_PREFIX "login_code:"

void notify_begin_batch(void *ctx)
{
    struct notify_ctx *c = ctx;
    *c = (struct notify_ctx){0};
}

/* A login code's own recipient (the text variable "recipient.phone"
 * ingest puts on it): the code goes there even before notification holds
 * the member's contact. Other templates go to the contact only. */
static const char *login_code_phone(const NotifyRequest *q)
{
    if (strcmp(q->template_, "login_code") != 0)
        return NULL;
    for (size_t i = 0; i < q->n_variables; i++) {
        const NotifyVariable *v = q->variables[i];
        if (strcmp(v->name, "recipient.phone") == 0 &&
            v->value_case == TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT && v->text[0])
            return v->text;
    }
    return NULL;
}

/* A NotifyRequest as decide.c takes it. */
static struct notify_request_in request_of(const Envelope *env)
{
    const NotifyRequest *q = env->notify_request;
    return (struct notify_request_in){
        .tenant_id = env->tenant_id,
        .member_id = env->member_id,
        .request_id = q->request_id,
        .template_name = q->template_,
        .purpose = q->purpose,
        .priority = q->priority,
        .channels = (const char *const *)q->channels,
        .channel_count = q->n_channels,
        .variables = (const NotifyVariable *const *)q->variables,
        .variable_count = q->n_variables,
        .locale = q->locale,
        .expires_at_us = q->expires_at_us,
        .phone = login_code_phone(q),
    };
}

/* A login code (identity.proto) is a transactional SMS of the high lane;
 * its request id comes from the event id, so a re-delivery sends once. */
static int apply_login_code(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                            const Envelope *env, const char **poison, char *err, size_t err_len)
{
    const LoginCodeRequested *l = env->login_code_requested;
    char request_id[sizeof(LOGIN_CODE_REQUEST_PREFIX) + EVENT_ID_FIELD_MAX];
    snprintf(request_id, sizeof(request_id), LOGIN_CODE_REQUEST_PREFIX "%s", env->event_id);
    NotifyVariable code = TESSERA__NOTIFICATION__V1__VARIABLE__INIT, minutes = code;
    code.name = "code";
    code.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    code.text = l->code;
    minutes.name = "expires_minutes";
    minutes.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    int64_t left_us = l->expires_at_us - env->occurred_at_us;
    minutes.number = left_us > 0 ? (left_us + 59999999) / 60000000 : 0;
    const NotifyVariable *vars[2] = {&code, &minutes};
    static const char *const sms[] = {"sms"};
    struct notify_request_in r = {.tenant_id = env->tenant_id,
                                  .member_id = env->member_id,
                                  .request_id = request_id,
                                  .template_name = "login_code",
                                  .purpose = "transactional",
                                  .priority = "high",
                                  .channels = sms,
                                  .channel_count = 1,
                                  .variables = vars,
                                  .variable_count = 2,
                                  .locale = "",
                                  .expires_at_us = l->expires_at_us,
                                  .phone = l->phone};
    return notify_decide(c, pg, b, &r, poison, err, err_len);
}

static int apply_one(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                     const Envelope *env, const char **poison, char *err, size_t err_len)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST: {
        struct notify_request_in r = request_of(env);
        return notify_decide(c, pg, b, &r, poison, err, err_len);
    }
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LOGIN_CODE_REQUESTED:
        return apply_login_code(c, pg, b, env, poison, err, err_len);
    default:
        return notify_apply_setting(pg, env, poison, err, err_len);
    }
}

int notify_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    struct notify_ctx *c = ctx;
    for (size_t i = 0; i < b->count; i++) {
        if (b->poison[i])
            continue;
        char why[128];
        Envelope *env = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
        if (!env) {
            pipeline_mark_poison(b, i, "undecodable envelope");
            continue;
        }
        const char *poison = NULL;
        int rc = apply_one(c, pg, b, env, &poison, err, err_len);
        envelope_free(env);
        if (rc < 0)
            return -1;
        if (rc > 0)
            pipeline_mark_poison(b, i, poison);
    }
    return 0;
}

void notify_after_commit(void *ctx, struct pipeline_batch *b)
{
    const struct notify_ctx *c = ctx;
    pipeline_metrics_count("tessera_notification_requests_total", "Requests decided.", c->requests);
    pipeline_metrics_count("tessera_notification_duplicates_total",
                           "Requests seen before (their request_id): not delivered again.",
                           c->duplicates);
    pipeline_metrics_count("tessera_notification_inbox_delivered_total",
                           "Messages put in members' inboxes.", c->inbox_delivered);
    pipeline_metrics_count("tessera_notification_queued_total",
                           "Messages queued for an external channel.", c->queued);
    pipeline_metrics_count("tessera_notification_held_total",
                           "Marketing messages held for the end of quiet hours.", c->held);
    pipeline_metrics_count("tessera_notification_suppressed_total",
                           "Messages suppressed by a rule (consent, cap, expiry, no address or "
                           "provider).",
                           c->suppressed);
}
