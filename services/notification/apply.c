/* The notification batch: every message of notify-requests in order,
 * inside the pipeline's one transaction with the offsets and the outbox.
 * Consecutive requests and login codes are decided together, as one run
 * (decide.h); consecutive contacts and consents are written together too
 * (facts.c); inbox reads, templates and policy are stored (settings.c);
 * each kind ends the run before it so that a request sees every message
 * before it. A message that cannot be applied goes to
 * dead-letter; nothing else stops. */
#include <stdio.h>
#include <string.h>

#include <stdlib.h>

#include "decide.h"
#include "log/log.h"
#include "notification.h"
#include "service/pipeline_metrics.h"

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
static void request_of(const Envelope *env, struct notify_pending *q)
{
    const NotifyRequest *r = env->notify_request;
    q->r = (struct notify_request_in){
        .tenant_id = env->tenant_id,
        .member_id = env->member_id,
        .request_id = r->request_id,
        .template_name = r->template_,
        .purpose = r->purpose,
        .priority = r->priority,
        .channels = (const char *const *)r->channels,
        .channel_count = r->n_channels,
        .variables = (const NotifyVariable *const *)r->variables,
        .variable_count = r->n_variables,
        .locale = r->locale,
        .expires_at_us = r->expires_at_us,
        .phone = login_code_phone(r),
    };
}

/* A login code (identity.proto) is a transactional SMS of the high lane;
 * its request id comes from the event id, so a re-delivery sends once. */
static void login_code_of(const Envelope *env, struct notify_pending *q)
{
    static const char *const sms[] = {"sms"};
    const LoginCodeRequested *l = env->login_code_requested;
    snprintf(q->request_id, sizeof(q->request_id), LOGIN_CODE_REQUEST_PREFIX "%s", env->event_id);
    NotifyVariable *code = &q->vars[0], *minutes = &q->vars[1];
    *code = (NotifyVariable)TESSERA__NOTIFICATION__V1__VARIABLE__INIT;
    *minutes = *code;
    code->name = "code";
    code->value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    code->text = l->code;
    minutes->name = "expires_minutes";
    minutes->value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    int64_t left_us = l->expires_at_us - env->occurred_at_us;
    minutes->number = left_us > 0 ? (left_us + 59999999) / 60000000 : 0;
    q->var_ptrs[0] = code, q->var_ptrs[1] = minutes;
    q->r = (struct notify_request_in){.tenant_id = env->tenant_id,
                                      .member_id = env->member_id,
                                      .request_id = q->request_id,
                                      .template_name = "login_code",
                                      .purpose = "transactional",
                                      .priority = "high",
                                      .channels = sms,
                                      .channel_count = 1,
                                      .variables = q->var_ptrs,
                                      .variable_count = 2,
                                      .locale = "",
                                      .expires_at_us = l->expires_at_us,
                                      .phone = l->phone};
}

/* The requests of the batch not decided yet, with their envelopes (the
 * requests point into them). */
struct pending_run {
    struct notify_pending *p;
    Envelope **env;
    size_t n;
};

/* Decides the run (unless the batch already failed) and empties it. */
static int run_flush(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                     struct pending_run *run, bool failed, char *err, size_t err_len)
{
    int rc = run->n && !failed ? notify_decide_run(c, pg, b, run->p, run->n, err, err_len) : 0;
    for (size_t i = 0; i < run->n; i++)
        envelope_free(run->env[i]);
    run->n = 0;
    return rc;
}

/* Takes env: a request joins the run of requests, a contact or consent
 * the run of facts, each after the other run is written (a request sees
 * every fact before it); any other setting is applied after both. 0, or
 * -1 for a database error. */
static int apply_one(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b, size_t i,
                     Envelope *env, struct pending_run *run, struct notify_facts *facts, char *err,
                     size_t err_len)
{
    bool request = env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    if (request ||
        env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LOGIN_CODE_REQUESTED) {
        if (notify_facts_flush(facts, pg, err, err_len) < 0) {
            envelope_free(env);
            return -1;
        }
        struct notify_pending *q = &run->p[run->n];
        memset(q, 0, sizeof(*q));
        q->msg = i;
        request ? request_of(env, q) : login_code_of(env, q);
        run->env[run->n++] = env;
        return 0;
    }
    int rc = run_flush(c, pg, b, run, false, err, err_len);
    const char *poison = NULL;
    if (rc == 0 && notify_is_fact(env))
        rc = notify_facts_add(facts, env, &poison, err, err_len);
    else if (rc == 0 && (rc = notify_facts_flush(facts, pg, err, err_len)) == 0)
        rc = notify_apply_setting(pg, env, &poison, err, err_len);
    envelope_free(env);
    if (rc > 0)
        pipeline_mark_poison(b, i, poison);
    return rc < 0 ? -1 : 0;
}

int notify_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
{
    struct notify_ctx *c = ctx;
    struct pending_run run = {.p = malloc((b->count ? b->count : 1) * sizeof(*run.p)),
                              .env = malloc((b->count ? b->count : 1) * sizeof(*run.env))};
    struct notify_facts facts;
    notify_facts_init(&facts);
    int rc = run.p && run.env ? 0 : -1;
    if (rc < 0)
        snprintf(err, err_len, "out of memory");
    for (size_t i = 0; rc == 0 && i < b->count; i++) {
        if (b->poison[i])
            continue;
        char why[128];
        Envelope *env = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
        if (!env)
            pipeline_mark_poison(b, i, "undecodable envelope");
        else
            rc = apply_one(c, pg, b, i, env, &run, &facts, err, err_len);
    }
    if (run.p && run.env && run_flush(c, pg, b, &run, rc < 0, err, err_len) < 0)
        rc = -1;
    if (rc == 0 && notify_facts_flush(&facts, pg, err, err_len) < 0)
        rc = -1;
    notify_facts_free(&facts);
    free(run.p), free(run.env);
    return rc;
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
