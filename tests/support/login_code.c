#include "login_code.h"

#include <stdio.h>
#include <string.h>

bool login_code_of(const Envelope *env, struct login_code *out)
{
    if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_NOTIFY_REQUEST ||
        strcmp(env->notify_request->template_, "login_code") != 0)
        return false;
    const Tessera__Notification__V1__NotifyRequest *q = env->notify_request;
    memset(out, 0, sizeof(*out));
    snprintf(out->priority, sizeof(out->priority), "%s", q->priority);
    snprintf(out->purpose, sizeof(out->purpose), "%s", q->purpose);
    snprintf(out->request_id, sizeof(out->request_id), "%s", q->request_id);
    snprintf(out->channel, sizeof(out->channel), "%s", q->n_channels == 1 ? q->channels[0] : "");
    out->expires_at_us = q->expires_at_us;
    for (size_t i = 0; i < q->n_variables; i++) {
        const Tessera__Notification__V1__Variable *v = q->variables[i];
        bool text = v->value_case == TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT;
        if (strcmp(v->name, "code") == 0 && text)
            snprintf(out->code, sizeof(out->code), "%s", v->text);
        else if (strcmp(v->name, "recipient.phone") == 0 && text)
            snprintf(out->phone, sizeof(out->phone), "%s", v->text);
        else if (strcmp(v->name, "expires_at") == 0 &&
                 v->value_case == TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US)
            out->expires_var_us = v->time_us;
    }
    return true;
}
