#include "login_code.h"

#include <stdio.h>
#include <string.h>

#include "api_client.h"
#include "bus/topics.h"
#include "topic_reader.h"

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

struct code_scan {
    const char *member_id;
    char code[8];
};

static void code_of(void *ctx, const rd_kafka_message_t *m)
{
    struct code_scan *c = ctx;
    char why[128];
    Envelope *e = envelope_decode(m->payload, m->len, why, sizeof(why));
    struct login_code lc;
    if (e && strcmp(e->member_id, c->member_id) == 0 && login_code_of(e, &lc))
        snprintf(c->code, sizeof(c->code), "%s", lc.code);
    envelope_free(e);
}

static bool code_found(void *arg)
{
    struct code_scan *c = arg;
    return topic_read_all(TOPIC_NOTIFY_REQUESTS, code_of, c) >= 0 && c->code[0];
}

bool login_code_wait(const char *member_id, char code[8], int timeout_ms)
{
    struct code_scan c = {.member_id = member_id};
    if (!poll_until(code_found, &c, timeout_ms))
        return false;
    memcpy(code, c.code, sizeof(c.code));
    return true;
}
