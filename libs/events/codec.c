#include "events/codec.h"

#include "clock/clock.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int64_t event_now_us(void)
{
    return clock_now_us();
}

void event_format_time(int64_t unix_us, char out[32])
{
    time_t secs = (time_t)(unix_us / 1000000);
    int ms = (int)((unix_us % 1000000) / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char base[24];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, ms < 0 ? 0 : ms);
}

static char *or_empty(const char *s)
{
    return (char *)(s ? s : protobuf_c_empty_string);
}

void envelope_init(Envelope *env, Actor *actor, struct event_meta *meta)
{
    assert(env && actor && meta && meta->tenant_id);
    tessera__envelope__v1__envelope__init(env);
    tessera__envelope__v1__actor__init(actor);
    uuid7_generate(meta->event_id);
    int64_t now = event_now_us();
    env->event_id = meta->event_id;
    env->tenant_id = or_empty(meta->tenant_id);
    env->branch_id = or_empty(meta->branch_id);
    env->member_id = or_empty(meta->member_id);
    env->causation_id = or_empty(meta->causation_id);
    env->correlation_id = or_empty(meta->correlation_id);
    env->traceparent = or_empty(meta->traceparent);
    env->occurred_at_us = meta->occurred_at_us ? meta->occurred_at_us : now;
    env->recorded_at_us = now;
    actor->kind = or_empty(meta->actor_kind);
    actor->id = or_empty(meta->actor_id);
    env->actor = actor;
}

/* The payload's descriptor, found through the oneof's field number. */
static const ProtobufCMessageDescriptor *payload_descriptor(const Envelope *env)
{
    if (env->payload_case == TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD__NOT_SET)
        return NULL;
    const ProtobufCFieldDescriptor *f = protobuf_c_message_descriptor_get_field(
        &tessera__envelope__v1__envelope__descriptor, (unsigned)env->payload_case);
    return f ? (const ProtobufCMessageDescriptor *)f->descriptor : NULL;
}

const char *envelope_payload_type(const Envelope *env)
{
    const ProtobufCMessageDescriptor *d = payload_descriptor(env);
    return d ? d->name : "";
}

uint8_t *envelope_encode(Envelope *env, size_t *len)
{
    const ProtobufCMessageDescriptor *d = payload_descriptor(env);
    if (!d)
        return NULL;
    /* A decoded envelope owns its type string (and decode checked it
     * matches): only a built one gets the static name. */
    if (!env->type || strcmp(env->type, d->name) != 0)
        env->type = (char *)d->name;
    size_t size = tessera__envelope__v1__envelope__get_packed_size(env);
    if (size == 0 || size > EVENT_ENCODED_MAX)
        return NULL;
    uint8_t *buf = malloc(size);
    if (!buf)
        return NULL;
    size_t packed = tessera__envelope__v1__envelope__pack(env, buf);
    assert(packed == size);
    *len = size;
    return buf;
}

static bool id_ok(const char *s, bool required)
{
    size_t n = s ? strlen(s) : 0;
    return n < EVENT_ID_FIELD_MAX && (!required || n > 0);
}

/* True when text is well-formed UTF-8 (no overlong forms, surrogates or
 * code points past U+10FFFF). */
static bool utf8_ok(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        unsigned char c = *p;
        int extra = c < 0x80             ? 0
                    : (c & 0xe0) == 0xc0 ? 1
                    : (c & 0xf0) == 0xe0 ? 2
                    : (c & 0xf8) == 0xf0 ? 3
                                         : -1;
        if (extra < 0 || (extra == 1 && c < 0xc2) || (c == 0xf4 && p[1] > 0x8f) || c > 0xf4)
            return false;
        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90))
            return false; /* overlong, surrogate, overlong */
        for (int i = 1; i <= extra; i++)
            if ((p[i] & 0xc0) != 0x80)
                return false;
        p += 1 + extra;
    }
    return true;
}

/* Every string field of m and of the messages it holds is UTF-8. protobuf-c
 * does not check: an event carrying bytes PostgreSQL refuses as text would
 * fail its batch on every retry instead of going to the dead-letter topic. */
static bool strings_ok(const ProtobufCMessage *m)
{
    const ProtobufCMessageDescriptor *d = m->descriptor;
    for (unsigned i = 0; i < d->n_fields; i++) {
        const ProtobufCFieldDescriptor *f = &d->fields[i];
        const char *at = (const char *)m + f->offset;
        if (f->type != PROTOBUF_C_TYPE_STRING && f->type != PROTOBUF_C_TYPE_MESSAGE)
            continue;
        if (f->flags & PROTOBUF_C_FIELD_FLAG_ONEOF) {
            uint32_t set = *(const uint32_t *)((const char *)m + f->quantifier_offset);
            if (set != f->id)
                continue;
        }
        size_t n = 1;
        const void *const *items = (const void *const *)at;
        if (f->label == PROTOBUF_C_LABEL_REPEATED) {
            n = *(const size_t *)((const char *)m + f->quantifier_offset);
            items = *(const void *const *const *)at;
        }
        for (size_t k = 0; k < n; k++) {
            const void *v = items[k];
            if (!v)
                continue;
            if (f->type == PROTOBUF_C_TYPE_STRING ? !utf8_ok(v) : !strings_ok(v))
                return false;
        }
    }
    return true;
}

Envelope *envelope_decode(const void *data, size_t len, char *err, size_t err_len)
{
    if (!data || len == 0 || len > EVENT_ENCODED_MAX) {
        snprintf(err, err_len, "event size %zu outside 1..%d bytes", len, EVENT_ENCODED_MAX);
        return NULL;
    }
    Envelope *env = tessera__envelope__v1__envelope__unpack(NULL, len, data);
    if (!env) {
        snprintf(err, err_len, "not a tessera.envelope.v1.Envelope");
        return NULL;
    }
    const char *why = NULL;
    if (!uuid_is_valid(env->event_id))
        why = "event_id is not a UUID";
    else if (!id_ok(env->tenant_id, true))
        why = "tenant_id missing or too long";
    else if (!id_ok(env->branch_id, false) || !id_ok(env->member_id, false) ||
             !id_ok(env->causation_id, false) || !id_ok(env->correlation_id, false) ||
             !id_ok(env->traceparent, false))
        why = "an id field is too long";
    else if (env->actor && (!id_ok(env->actor->kind, false) || !id_ok(env->actor->id, false)))
        why = "actor too long";
    else if (!payload_descriptor(env))
        why = "no payload";
    else if (strcmp(env->type, envelope_payload_type(env)) != 0)
        why = "type does not match payload";
    else if (!strings_ok(&env->base))
        why = "a string field is not UTF-8";
    if (why) {
        snprintf(err, err_len, "%s", why);
        envelope_free(env);
        return NULL;
    }
    return env;
}

void envelope_free(Envelope *env)
{
    if (env)
        tessera__envelope__v1__envelope__free_unpacked(env, NULL);
}

static void header_add(rd_kafka_headers_t *h, const char *name, const char *value)
{
    rd_kafka_resp_err_t e = rd_kafka_header_add(h, name, -1, value, -1);
    assert(e == RD_KAFKA_RESP_ERR_NO_ERROR);
}

rd_kafka_headers_t *envelope_cloudevents_headers(const Envelope *env, const char *source)
{
    char when[32];
    event_format_time(env->occurred_at_us, when);
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    header_add(h, "ce_specversion", "1.0");
    header_add(h, "ce_id", env->event_id);
    header_add(h, "ce_source", source);
    header_add(h, "ce_type", env->type);
    header_add(h, "ce_time", when);
    if (env->member_id && env->member_id[0])
        header_add(h, "ce_subject", env->member_id);
    /* The CloudEvents distributed-tracing extension in Kafka binary mode. */
    if (env->traceparent && env->traceparent[0])
        header_add(h, "ce_traceparent", env->traceparent);
    header_add(h, "content-type", "application/protobuf");
    return h;
}
