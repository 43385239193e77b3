/* Tiering's NotifyRequests (the notification contract,
 * proto/tessera/notification/v1): "tier.changed" for every move and
 * "tier.downgrade_warning" before a review, produced through tiering's
 * outbox in the transaction of their cause, so each is sent exactly once;
 * request_id "<template>:<cause event id>" lets notification drop a
 * repeat. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>

#include "bus/topics.h"
#include "tiering.h"

typedef Tessera__Notification__V1__NotifyRequest NotifyRequest;
typedef Tessera__Notification__V1__Variable Variable;

#define TIERING_NOTIFY_VARS_MAX 8

void tiering_notify(struct pipeline_batch *b, const char *tenant_id, const char *member_id,
                    const char *template_name, const char *cause_event_id,
                    const struct tiering_var *vars, size_t n)
{
    assert(n <= TIERING_NOTIFY_VARS_MAX);
    char request_id[128];
    snprintf(request_id, sizeof(request_id), "%s:%s", template_name, cause_event_id);
    struct event_meta meta = {.tenant_id = tenant_id,
                              .branch_id = "",
                              .member_id = member_id,
                              .causation_id = cause_event_id,
                              .correlation_id = cause_event_id,
                              .actor_kind = "service",
                              .actor_id = "tiering"};
    Envelope env;
    Actor actor;
    NotifyRequest req;
    Variable v[TIERING_NOTIFY_VARS_MAX], *vp[TIERING_NOTIFY_VARS_MAX];
    envelope_init(&env, &actor, &meta);
    tessera__notification__v1__notify_request__init(&req);
    req.request_id = request_id;
    req.template_ = (char *)template_name;
    req.purpose = "transactional";
    req.priority = "normal";
    for (size_t i = 0; i < n; i++) {
        tessera__notification__v1__variable__init(&v[i]);
        v[i].name = (char *)vars[i].name;
        if (vars[i].text) {
            v[i].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
            v[i].text = (char *)vars[i].text;
        } else if (vars[i].is_time) {
            v[i].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US;
            v[i].time_us = vars[i].money;
        } else {
            v[i].value_case = TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR;
            v[i].money_minor = vars[i].money;
        }
        vp[i] = &v[i];
    }
    req.n_variables = n;
    req.variables = vp;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST;
    env.notify_request = &req;
    size_t len = 0;
    uint8_t *out = envelope_encode(&env, &len);
    assert(out); /* bounded fields */
    pipeline_emit(b, TOPIC_NOTIFY_REQUESTS, member_id, out, len);
}
