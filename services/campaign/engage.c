/* The engagement part of the campaign's batch (engage.h): picks the
 * member-events facts it applies by their CloudEvents type, decodes them
 * and applies each in the batch's order. */
#undef NDEBUG /* asserts stay on in production builds */
#include <assert.h>
#include <string.h>

#include "campaign.h"
#include "engage.h"

static bool type_is(const void *v, size_t n, const ProtobufCMessageDescriptor *d)
{
    return n == strlen(d->name) && memcmp(v, d->name, n) == 0;
}

/* Without a type header: decode and see. */
static bool may_concern_engage(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v = NULL;
    size_t n = 0;
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        rd_kafka_header_get_last(h, "ce_type", &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR || !v)
        return true;
    return type_is(v, n, &tessera__engage__v1__activity_recorded__descriptor) ||
           type_is(v, n, &tessera__engage__v1__activity_rules_changed__descriptor) ||
           type_is(v, n, &tessera__engage__v1__member_birthday_set__descriptor) ||
           type_is(v, n, &tessera__member__v1__member_registered__descriptor);
}

static int apply_one(struct campaign_ctx *c, PGconn *pg, const Envelope *env,
                     struct pipeline_batch *b, size_t i, char *err, size_t err_len)
{
    switch (env->payload_case) {
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ACTIVITY_RULES_CHANGED:
        return engage_store_rules(pg, env, b, i, err, err_len);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_ACTIVITY_RECORDED:
        return engage_apply_activity(c, pg, env, b, i, err, err_len);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_BIRTHDAY_SET:
        if (!env->member_id[0]) {
            pipeline_mark_poison(b, i, "birthday fact without member");
            return 0;
        }
        return engage_store_birthday(pg, env, b, i, err, err_len);
    case TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_MEMBER_REGISTERED:
        return env->member_id[0] ? engage_member_registered(c, pg, env, b, err, err_len) : 0;
    default:
        return 0;
    }
}

int engage_apply_batch(struct campaign_ctx *c, PGconn *pg, struct pipeline_batch *b, char *err,
                       size_t err_len)
{
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < b->count; i++) {
        if (b->poison[i] || !may_concern_engage(b->msgs[i]))
            continue;
        char why[128];
        Envelope *env = envelope_decode(b->msgs[i]->payload, b->msgs[i]->len, why, sizeof(why));
        if (!env)
            continue; /* the tally marked it poison already */
        rc = apply_one(c, pg, env, b, i, err, err_len);
        envelope_free(env);
    }
    return rc;
}
