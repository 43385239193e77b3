/* Engagement messages to members (the welcome message at registration,
 * the birthday gift, activity.reward and streak.reward for each grant of
 * points, request id "<template>:<grant id>"): a NotifyRequest on notify-requests keyed by member,
 * through the outbox in the transaction of its cause, with a request id
 * derived from the cause ("<kind>:<cause event id>") so notification
 * sends it once however often the cause is applied. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "campaign.h"
#include "db/db.h"
#include "engage.h"

typedef Tessera__Notification__V1__NotifyRequest NotifyRequest;
typedef Tessera__Notification__V1__Variable Variable;

/* Sends n about cause's member: emitted with the batch b, or through the
 * outbox of pg's transaction (the schedulers). */
static int notify_emit(PGconn *pg, struct pipeline_batch *b, const Envelope *cause,
                       NotifyRequest *n, char *err, size_t err_len)
{
    struct event_meta meta = {.tenant_id = cause->tenant_id,
                              .branch_id = cause->branch_id,
                              .member_id = cause->member_id,
                              .causation_id = cause->event_id,
                              .correlation_id = cause->correlation_id[0] ? cause->correlation_id
                                                                         : cause->event_id,
                              .actor_kind = "service",
                              .actor_id = "campaign",
                              .traceparent = cause->traceparent};
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, &meta);
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = n;
    size_t len = 0;
    uint8_t *payload = envelope_encode(&env, &len);
    assert(payload); /* bounded fields */
    if (b) {
        pipeline_emit(b, TOPIC_NOTIFY_REQUESTS, cause->member_id, payload, len);
        return 0;
    }
    int rc =
        engage_outbox_now(pg, TOPIC_NOTIFY_REQUESTS, cause->member_id, payload, len, err, err_len);
    free(payload);
    return rc;
}

int engage_notify(PGconn *pg, struct pipeline_batch *b, const Envelope *cause,
                  const char *template_name, const char *purpose, const char *request_id,
                  const char *points_name, int64_t points, char *err, size_t err_len)
{
    NotifyRequest n;
    Variable v, *vars[1] = {&v};
    tessera__notification__v1__notify_request__init(&n);
    tessera__notification__v1__variable__init(&v);
    n.request_id = (char *)request_id;
    n.template_ = (char *)template_name;
    n.purpose = (char *)purpose;
    n.priority = "normal";
    if (points_name) {
        v.name = (char *)points_name;
        v.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
        v.number = points;
        n.variables = vars;
        n.n_variables = 1;
    }
    return notify_emit(pg, b, cause, &n, err, err_len);
}

int engage_notify_reward(PGconn *pg, struct pipeline_batch *b, const Envelope *cause,
                         const struct engage_grant *g, const char *activity_name, char *err,
                         size_t err_len)
{
    char template_name[32], request_id[EVENT_ID_FIELD_MAX + 32];
    snprintf(template_name, sizeof(template_name), "%s.reward", g->kind);
    snprintf(request_id, sizeof(request_id), "%s:%s", template_name, g->grant_id);
    NotifyRequest n;
    Variable points, name, *vars[2] = {&points, &name};
    tessera__notification__v1__notify_request__init(&n);
    tessera__notification__v1__variable__init(&points);
    tessera__notification__v1__variable__init(&name);
    points.name = "reward.points";
    points.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER;
    points.number = g->points;
    name.name = "activity.name";
    name.value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
    name.text = (char *)activity_name;
    n.request_id = request_id;
    n.template_ = template_name;
    n.purpose = "transactional";
    n.priority = "normal";
    n.variables = vars;
    n.n_variables = 2;
    return notify_emit(pg, b, cause, &n, err, err_len);
}

int engage_member_registered(struct campaign_ctx *c, PGconn *pg, const Envelope *env,
                             struct pipeline_batch *b, char *err, size_t err_len)
{
    (void)c;
    if (engage_store_member(pg, env, err, err_len) < 0)
        return -1;
    char request_id[EVENT_ID_FIELD_MAX];
    snprintf(request_id, sizeof(request_id), "welcome:%s", env->event_id);
    return engage_notify(pg, b, env, "welcome", "transactional", request_id, NULL, 0, err, err_len);
}
