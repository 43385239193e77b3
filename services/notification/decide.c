/* One request, decided per channel inside the batch's transaction:
 *
 *  1. its request_id is recorded (requests); a request seen before is a
 *     duplicate and does nothing more: delivered once;
 *  2. the member's contact, consents, marketing count of the week and the
 *     tenant's policy are read in one statement;
 *  3. per channel, policy_decide (rules_policy.h) says send, hold or
 *     suppress and names its rule; the text is rendered with the tenant's
 *     template (or the built-in one) in the member's locale;
 *  4. the inbox gets its row at once; an external channel gets a delivery
 *     row (pending, or held until quiet hours end) that the delivery
 *     worker sends; a suppression is recorded with its rule. Outcomes of
 *     the inbox and suppressions go to notify-events in this transaction.
 */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus/topics.h"
#include "clock/clock.h"
#include "db/db.h"
#include "log/log.h"
#include "notification.h"
#include "rules_policy.h"
#include "template/template.h"

#define CHANNELS_MAX 4
#define HTML_HEAD    "<!DOCTYPE html><html><body><p>"
#define HTML_TAIL    "</p></body></html>"

/* What step 2 reads. */
struct member_facts {
    char name[NOTIFY_NAME_MAX + 1], phone[NOTIFY_ADDRESS_MAX + 1], email[NOTIFY_ADDRESS_MAX + 1];
    char push[NOTIFY_ADDRESS_MAX + 1], locale[POLICY_LOCALE_MAX + 1];
    char consents[64]; /* ",email,sms," granted for the request's purpose */
    int cap_used;
    struct notify_policy policy;
};

void notify_message_id(const char *tenant_id, const char *request_id, const char *channel,
                       char *out)
{
    unsigned char h[NOTIFY_MESSAGE_ID_LEN / 2];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof(h));
    crypto_generichash_update(&st, (const unsigned char *)tenant_id, strlen(tenant_id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)request_id, strlen(request_id) + 1);
    crypto_generichash_update(&st, (const unsigned char *)channel, strlen(channel));
    crypto_generichash_final(&st, h, sizeof(h));
    sodium_bin2hex(out, NOTIFY_MESSAGE_ID_LEN + 1, h, sizeof(h));
}

static void copy_json(char *dst, size_t len, json_t *j, const char *key)
{
    const char *v = json_string_value(json_object_get(j, key));
    snprintf(dst, len, "%s", v ? v : "");
}

static void unseal_contact(struct member_facts *m, const char *hex)
{
    size_t len = 0;
    unsigned char *bin = PQunescapeBytea((const unsigned char *)hex, &len);
    char *text = bin ? notify_unseal(bin, len) : NULL;
    PQfreemem(bin);
    json_t *j = text ? json_loads(text, 0, NULL) : NULL;
    if (text)
        sodium_memzero(text, strlen(text));
    free(text);
    if (!j)
        return; /* unreadable (key changed): no addresses */
    copy_json(m->name, sizeof(m->name), j, "name");
    copy_json(m->phone, sizeof(m->phone), j, "phone");
    copy_json(m->email, sizeof(m->email), j, "email");
    const char *push = json_string_value(json_array_get(json_object_get(j, "push_tokens"), 0));
    snprintf(m->push, sizeof(m->push), "%s", push ? push : "");
    json_decref(j);
}

static int load_facts(PGconn *pg, const struct notify_request_in *r, int64_t now,
                      struct member_facts *m, char *err, size_t err_len)
{
    memset(m, 0, sizeof(*m));
    policy_defaults(&m->policy);
    char since[24];
    snprintf(since, sizeof(since), "%lld", (long long)(now - POLICY_WEEK_US));
    const char *p[4] = {r->tenant_id, r->member_id, since, r->purpose};
    PGresult *res = db_query(
        pg,
        "SELECT c.sealed, c.locale, p.time_zone, p.quiet_start_minute, p.quiet_end_minute, "
        "p.marketing_cap_per_week, p.default_locale, p.currency, "
        "(SELECT count(*) FROM requests q WHERE q.tenant_id = $1 AND q.member_id = $2 AND "
        " q.counts_for_cap AND q.received_us > $3::bigint), "
        "(SELECT ',' || string_agg(channel, ',') || ',' FROM consents k WHERE k.tenant_id = $1 "
        " AND k.member_id = $2 AND k.purpose = $4 AND k.granted) "
        "FROM (SELECT 1) one LEFT JOIN contacts c ON c.tenant_id = $1 AND c.member_id = $2 "
        "LEFT JOIN policies p ON p.tenant_id = $1",
        4, p, err, err_len, NULL);
    if (!res)
        return -1;
    if (!PQgetisnull(res, 0, 0))
        unseal_contact(m, PQgetvalue(res, 0, 0));
    snprintf(m->locale, sizeof(m->locale), "%s", PQgetvalue(res, 0, 1));
    if (!PQgetisnull(res, 0, 2)) {
        struct notify_policy *pol = &m->policy;
        snprintf(pol->time_zone, sizeof(pol->time_zone), "%s", PQgetvalue(res, 0, 2));
        pol->quiet_start_minute = atoi(PQgetvalue(res, 0, 3));
        pol->quiet_end_minute = atoi(PQgetvalue(res, 0, 4));
        pol->marketing_cap_per_week = atoi(PQgetvalue(res, 0, 5));
        snprintf(pol->default_locale, sizeof(pol->default_locale), "%s", PQgetvalue(res, 0, 6));
        snprintf(pol->currency, sizeof(pol->currency), "%s", PQgetvalue(res, 0, 7));
    }
    m->cap_used = (int)db_int_at(res, 0, 8);
    snprintf(m->consents, sizeof(m->consents), "%s", PQgetvalue(res, 0, 9));
    PQclear(res);
    return 0;
}

/* The tenant's template for channel and locale (a channel's own first,
 * then the one for every channel), else the built-in one. Strings are
 * malloc'ed; the caller frees them. */
static int load_template(PGconn *pg, const char *tenant_id, const char *name, const char *channel,
                         const char *locale, char **subject, char **body, char *err, size_t err_len)
{
    const char *p[4] = {tenant_id, name, channel, locale};
    PGresult *res = db_query(pg,
                             "SELECT subject, body FROM templates WHERE tenant_id = $1 AND "
                             "name = $2 AND channel IN ($3, '') AND locale = $4 "
                             "ORDER BY channel DESC LIMIT 1",
                             4, p, err, err_len, NULL);
    if (!res)
        return -1;
    const char *s = NULL, *bd = NULL;
    if (PQntuples(res) == 1) {
        s = PQgetvalue(res, 0, 0);
        bd = PQgetvalue(res, 0, 1);
    } else if (!template_default(name, locale, &s, &bd)) {
        s = bd = "";
    }
    *subject = strdup(s);
    *body = strdup(bd);
    PQclear(res);
    return 0;
}

/* The request's variables as the renderer takes them, with member.name
 * from the contact unless the request brought its own. */
static size_t values_of(const struct notify_request_in *r, const struct member_facts *m,
                        struct template_value *v)
{
    size_t n = 0;
    bool has_name = false;
    for (size_t i = 0; i < r->variable_count && n < NOTIFY_VARIABLES_MAX; i++) {
        const NotifyVariable *x = r->variables[i];
        struct template_value *o = &v[n++];
        *o = (struct template_value){.name = x->name, .type = TEMPLATE_TEXT, .text = ""};
        switch (x->value_case) {
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TEXT:
            o->text = x->text;
            break;
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_MONEY_MINOR:
            o->type = TEMPLATE_MONEY, o->number = x->money_minor;
            break;
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_NUMBER:
            o->type = TEMPLATE_NUMBER, o->number = x->number;
            break;
        case TESSERA__NOTIFICATION__V1__VARIABLE__VALUE_TIME_US:
            o->type = TEMPLATE_TIME, o->number = x->time_us;
            break;
        default:
            break;
        }
        has_name |= strcmp(x->name, "member.name") == 0;
    }
    if (!has_name)
        v[n++] =
            (struct template_value){.name = "member.name", .type = TEMPLATE_TEXT, .text = m->name};
    return n;
}

/* Rendered text of one channel; the caller frees each string. */
struct rendered {
    char *subject, *body, *html;
};

static void rendered_free(struct rendered *t)
{
    free(t->subject), free(t->body), free(t->html);
    *t = (struct rendered){0};
}

static int render(PGconn *pg, const struct notify_request_in *r, const struct member_facts *m,
                  const char *channel, const char *locale, struct rendered *out, char *err,
                  size_t err_len)
{
    char *subject = NULL, *body = NULL;
    if (load_template(pg, r->tenant_id, r->template_name, channel, locale, &subject, &body, err,
                      err_len) < 0)
        return -1;
    struct template_value v[NOTIFY_VARIABLES_MAX + 1];
    size_t n = values_of(r, m, v);
    struct template_render_opts o = {.currency = m->policy.currency,
                                     .time_zone = m->policy.time_zone};
    char why[TEMPLATE_ERR_MAX];
    out->subject = subject ? template_render(subject, v, n, &o, why, sizeof(why)) : NULL;
    out->body = body ? template_render(body, v, n, &o, why, sizeof(why)) : NULL;
    if (strcmp(channel, "email") == 0 && body) {
        o.html = true;
        char *inner = template_render(body, v, n, &o, why, sizeof(why));
        if (inner && asprintf(&out->html, "%s%s%s", HTML_HEAD, inner, HTML_TAIL) < 0)
            out->html = NULL;
        free(inner);
    }
    free(subject), free(body);
    if (!out->subject || !out->body) {
        rendered_free(out);
        snprintf(err, err_len, "render: %s", why);
        return 1; /* the request cannot be rendered: poison */
    }
    return 0;
}

static const char *address_of(const struct notify_request_in *r, const struct member_facts *m,
                              const char *channel)
{
    if (strcmp(channel, "inbox") == 0)
        return "inbox";
    if (strcmp(channel, "sms") == 0)
        return r->phone ? r->phone : m->phone;
    if (strcmp(channel, "email") == 0)
        return m->email;
    return m->push;
}

static bool provider_of(const char *channel)
{
    if (strcmp(channel, "email") == 0)
        return notify_cfg.smtp_url[0] != '\0';
    if (strcmp(channel, "sms") == 0)
        return notify_cfg.sms_url[0] != '\0';
    if (strcmp(channel, "push") == 0)
        return notify_cfg.push_url[0] != '\0';
    return true;
}

static enum notify_lane lane_of(const char *priority)
{
    if (strcmp(priority, "high") == 0)
        return LANE_HIGH;
    return strcmp(priority, "bulk") == 0 ? LANE_BULK : LANE_NORMAL;
}

static void emit(struct pipeline_batch *b, const char *member_id, uint8_t *bin, size_t len)
{
    if (bin)
        pipeline_emit(b, TOPIC_NOTIFY_EVENTS, member_id, bin, len);
    else
        log_fields(LOG_ERROR, "could not encode a notification outcome", "member_id", member_id,
                   NULL);
}

/* The delivery row of one channel (every decision is recorded) and, for
 * the inbox, the message itself. */
static int write_channel(PGconn *pg, const struct notify_request_in *r, const char *channel,
                         const struct policy_decision *d, const char *address,
                         const struct rendered *t, int64_t now, char *err, size_t err_len)
{
    char mid[NOTIFY_MESSAGE_ID_LEN + 1], lane[4], next[24], exp[24], nows[24];
    notify_message_id(r->tenant_id, r->request_id, channel, mid);
    bool inbox = strcmp(channel, "inbox") == 0;
    const char *status = d->status == POLICY_SUPPRESS ? "suppressed"
                         : d->status == POLICY_HOLD   ? "held"
                         : inbox                      ? "delivered"
                                                      : "pending";
    snprintf(lane, sizeof(lane), "%d", (int)lane_of(r->priority));
    snprintf(next, sizeof(next), "%lld",
             (long long)(d->status == POLICY_HOLD ? d->hold_until_us : now));
    snprintf(exp, sizeof(exp), "%lld", (long long)r->expires_at_us);
    snprintf(nows, sizeof(nows), "%lld", (long long)now);
    bool queued = d->status != POLICY_SUPPRESS && !inbox;
    struct db_array addr;
    db_array_init(&addr);
    size_t sealed_len = 0;
    unsigned char *sealed = queued ? notify_seal(address, &sealed_len) : NULL;
    if (sealed)
        db_array_add_bytea(&addr, sealed, sealed_len);
    else
        db_array_add(&addr, NULL);
    free(sealed);
    const char *p[14] = {r->tenant_id,
                         r->request_id,
                         r->member_id,
                         channel,
                         mid,
                         r->template_name,
                         lane,
                         status,
                         d->rule,
                         db_array_finish(&addr),
                         queued ? t->subject : NULL,
                         queued ? t->body : NULL,
                         queued ? t->html : NULL,
                         next};
    const char *p2[16];
    memcpy(p2, p, sizeof(p));
    p2[14] = exp, p2[15] = nows;
    PGresult *res = db_query(
        pg,
        "INSERT INTO deliveries (tenant_id, request_id, member_id, channel, message_id, "
        "template, lane, status, rule, address, subject, body, html, next_attempt_us, "
        "expires_at_us, created_us, updated_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, "
        "($10::bytea[])[1], $11, $12, $13, $14, $15, $16, $16) "
        "ON CONFLICT (tenant_id, request_id, channel) DO NOTHING",
        16, p2, err, err_len, NULL);
    db_array_free(&addr);
    PQclear(res);
    if (!res)
        return -1;
    if (!inbox || d->status != POLICY_SEND)
        return 0;
    const char *q[8] = {r->tenant_id,     mid,        r->member_id, r->request_id,
                        r->template_name, t->subject, t->body,      nows};
    res = db_query(pg,
                   "INSERT INTO inbox (tenant_id, message_id, member_id, request_id, template, "
                   "title, body, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
                   "ON CONFLICT DO NOTHING",
                   8, q, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}

/* Channels of the request: those it names, else its template's defaults. */
static size_t channels_of(const struct notify_request_in *r, const struct template_kind *kind,
                          const char **out)
{
    static const char *const names[] = {"inbox", "email", "sms", "push"};
    size_t n = 0;
    if (r->channel_count > 0) {
        for (size_t i = 0; i < r->channel_count && n < CHANNELS_MAX; i++)
            for (size_t k = 0; k < CHANNELS_MAX; k++)
                if (strcmp(r->channels[i], names[k]) == 0)
                    out[n++] = names[k];
        return n;
    }
    for (size_t k = 0; k < CHANNELS_MAX; k++)
        if (kind->default_channels & (1u << k))
            out[n++] = names[k];
    return n;
}

static int record_request(PGconn *pg, const struct notify_request_in *r, int64_t now, bool *fresh,
                          char *err, size_t err_len)
{
    char nows[24];
    snprintf(nows, sizeof(nows), "%lld", (long long)now);
    const char *p[7] = {r->tenant_id, r->request_id, r->member_id, r->template_name,
                        r->purpose,   r->priority,   nows};
    PGresult *res = db_query(pg,
                             "INSERT INTO requests (tenant_id, request_id, member_id, template, "
                             "purpose, priority, received_us) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                             "ON CONFLICT DO NOTHING RETURNING 1",
                             7, p, err, err_len, NULL);
    if (!res)
        return -1;
    *fresh = PQntuples(res) == 1;
    PQclear(res);
    return 0;
}

static const char *request_invalid(const struct notify_request_in *r)
{
    if (!r->member_id || !r->member_id[0])
        return "notify request without a member";
    if (!r->request_id[0] || strlen(r->request_id) > EVENT_ID_FIELD_MAX)
        return "notify request without a usable request_id";
    if (!template_kind_find(r->template_name))
        return "notify request for an unknown template";
    if (strcmp(r->purpose, "marketing") != 0 && strcmp(r->purpose, "transactional") != 0)
        return "notify request with an unknown purpose";
    if (r->variable_count > NOTIFY_VARIABLES_MAX || strlen(r->locale) > POLICY_LOCALE_MAX)
        return "notify request with too many variables";
    return NULL;
}

static int decide_channel(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                          const struct notify_request_in *r, const struct member_facts *m,
                          const char *channel, const char *locale, int64_t now, bool *counted,
                          const char **poison, char *err, size_t err_len)
{
    const char *address = address_of(r, m, channel);
    char needle[16];
    snprintf(needle, sizeof(needle), ",%s,", channel);
    bool marketing = strcmp(r->purpose, "marketing") == 0;
    struct policy_facts f = {.marketing = marketing,
                             .external = strcmp(channel, "inbox") != 0,
                             .provider = provider_of(channel),
                             .address = address && address[0],
                             .consent = strstr(m->consents, needle) != NULL,
                             .expires_at_us = r->expires_at_us,
                             .cap_used = m->cap_used,
                             .cap = m->policy.marketing_cap_per_week,
                             .quiet_until_us = policy_quiet_until(&m->policy, now),
                             .now_us = now};
    struct policy_decision d = policy_decide(&f);
    struct rendered t = {0};
    if (d.status != POLICY_SUPPRESS) {
        int rc = render(pg, r, m, channel, locale, &t, err, err_len);
        if (rc != 0) {
            if (rc > 0)
                *poison = "notify request cannot be rendered";
            return rc;
        }
    }
    int rc = write_channel(pg, r, channel, &d, address, &t, now, err, err_len);
    rendered_free(&t);
    if (rc < 0)
        return -1;
    size_t len = 0;
    char mid[NOTIFY_MESSAGE_ID_LEN + 1];
    notify_message_id(r->tenant_id, r->request_id, channel, mid);
    if (d.status == POLICY_SUPPRESS) {
        c->suppressed++;
        uint8_t *bin = notify_outcome_suppressed(r->tenant_id, r->member_id, r->request_id, channel,
                                                 d.rule, &len);
        emit(b, r->member_id, bin, len);
        return 0;
    }
    *counted |= marketing;
    if (!f.external) {
        c->inbox_delivered++;
        uint8_t *bin = notify_outcome_delivered(r->tenant_id, r->member_id, r->request_id, mid,
                                                channel, 1, &len);
        emit(b, r->member_id, bin, len);
    } else if (d.status == POLICY_HOLD) {
        c->held++;
    } else {
        c->queued++;
    }
    return 0;
}

int notify_decide(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                  const struct notify_request_in *r, const char **poison, char *err, size_t err_len)
{
    if ((*poison = request_invalid(r)) != NULL)
        return 1;
    int64_t now = clock_now_us();
    bool fresh = false;
    if (record_request(pg, r, now, &fresh, err, err_len) < 0)
        return -1;
    c->requests++;
    if (!fresh) {
        c->duplicates++;
        return 0;
    }
    struct member_facts m;
    if (load_facts(pg, r, now, &m, err, err_len) < 0)
        return -1;
    const char *locale = r->locale[0]  ? r->locale
                         : m.locale[0] ? m.locale
                                       : m.policy.default_locale;
    const char *channels[CHANNELS_MAX];
    size_t n = channels_of(r, template_kind_find(r->template_name), channels);
    bool counted = false;
    for (size_t i = 0; i < n; i++) {
        int rc = decide_channel(c, pg, b, r, &m, channels[i], locale, now, &counted, poison, err,
                                err_len);
        if (rc != 0)
            return rc;
    }
    if (!counted || strcmp(r->purpose, "marketing") != 0)
        return 0;
    const char *p[2] = {r->tenant_id, r->request_id};
    PGresult *res = db_query(pg,
                             "UPDATE requests SET counts_for_cap = true WHERE tenant_id = $1 AND "
                             "request_id = $2",
                             2, p, err, err_len, NULL);
    PQclear(res);
    return res ? 0 : -1;
}
