/* A run of requests (decide.h), decided per request and channel in
 * memory between one set of reads and one set of writes:
 *
 *  1. every request_id is recorded (requests); a request seen before, in
 *     the table or earlier in the run, is a duplicate and does nothing
 *     more: delivered once;
 *  2. the members' contacts, consents, marketing counts of the week and
 *     the tenants' policies are read in one statement, the tenants'
 *     templates of the run in another;
 *  3. per channel, policy_decide (rules_policy.h) says send, hold or
 *     suppress and names its rule (the cap counting the run's earlier
 *     messages to the member too, rules_cap.h); the text is rendered with
 *     the tenant's template (or the built-in one) in the member's locale;
 *  4. the inbox gets its row at once (with the rule: no delivery row); an
 *     external channel gets a delivery row (pending, or held until quiet
 *     hours end) that the delivery worker sends; a suppression is a
 *     delivery row with its rule. Rows of the
 *     run go in one statement per table; outcomes of the inbox and
 *     suppressions go to notify-events in this transaction.
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
#include "decide.h"
#include "rules_cap.h"
#include "rules_policy.h"
#include "template/template.h"

#define CHANNELS_MAX 4
#define HTML_HEAD    "<!DOCTYPE html><html><body><p>"
#define HTML_TAIL    "</p></body></html>"

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

static int render(const PGresult *templates, const struct notify_request_in *r,
                  const struct member_facts *m, const char *channel, const char *locale,
                  struct rendered *out, char *err, size_t err_len)
{
    const char *subject = NULL, *body = NULL;
    if (!decide_template_find(templates, r->tenant_id, r->template_name, channel, locale, &subject,
                              &body) &&
        !template_default(r->template_name, locale, &subject, &body))
        subject = body = "";
    struct template_value v[NOTIFY_VARIABLES_MAX + 1];
    size_t n = values_of(r, m, v);
    struct template_render_opts o = {.currency = m->policy.currency,
                                     .time_zone = m->policy.time_zone};
    char why[TEMPLATE_ERR_MAX] = "";
    out->subject = template_render(subject, v, n, &o, why, sizeof(why));
    out->body = template_render(body, v, n, &o, why, sizeof(why));
    if (strcmp(channel, "email") == 0) {
        o.html = true;
        char *inner = template_render(body, v, n, &o, why, sizeof(why));
        if (inner && asprintf(&out->html, "%s%s%s", HTML_HEAD, inner, HTML_TAIL) < 0)
            out->html = NULL;
        free(inner);
    }
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

/* One channel's decision as rows of the run: a delivery row for every
 * decision, except a message put in the inbox, whose inbox row records it
 * (with its rule): one row fewer per request. */
static void add_rows(struct decide_rows *w, const struct notify_request_in *r, int64_t id,
                     const char *channel, const char *mid, const struct policy_decision *d,
                     const char *address, const struct rendered *t, int64_t now)
{
    bool inbox = strcmp(channel, "inbox") == 0;
    if (inbox && d->status == POLICY_SEND) {
        struct db_copy *i = &w->inbox;
        db_copy_text(i, r->tenant_id), db_copy_text(i, mid), db_copy_text(i, r->member_id);
        db_copy_text(i, r->request_id), db_copy_text(i, r->template_name);
        db_copy_text(i, t->subject), db_copy_text(i, t->body), db_copy_int(i, now);
        db_copy_text(i, d->rule);
        db_copy_end_row(i);
        return;
    }
    const char *status = d->status == POLICY_SUPPRESS ? "suppressed"
                         : d->status == POLICY_HOLD   ? "held"
                                                      : "pending";
    bool queued = d->status != POLICY_SUPPRESS && !inbox;
    struct db_copy *c = &w->deliveries;
    db_copy_int(c, id), db_copy_text(c, r->tenant_id), db_copy_text(c, r->request_id);
    db_copy_text(c, r->member_id), db_copy_text(c, channel), db_copy_text(c, mid);
    db_copy_text(c, r->template_name), db_copy_int(c, lane_of(r->priority));
    db_copy_text(c, status), db_copy_text(c, d->rule);
    size_t sealed_len = 0;
    unsigned char *sealed = queued ? notify_seal(address, &sealed_len) : NULL;
    if (sealed)
        db_copy_bytea(c, sealed, sealed_len);
    else
        db_copy_text(c, NULL);
    free(sealed);
    db_copy_text(c, queued ? t->subject : NULL), db_copy_text(c, queued ? t->body : NULL);
    db_copy_text(c, queued ? t->html : NULL);
    int64_t due = d->status == POLICY_HOLD ? d->hold_until_us : now;
    db_copy_int(c, due);
    db_copy_int(c, r->expires_at_us), db_copy_int(c, now), db_copy_int(c, now);
    db_copy_end_row(c);
    if (!queued)
        return;
    struct db_copy *q = &w->queue;
    db_copy_int(q, id), db_copy_text(q, channel), db_copy_int(q, lane_of(r->priority));
    db_copy_int(q, due);
    db_copy_end_row(q);
}

/* The channels, in the order of a request's delivery ids. */
static const char *const channel_names[CHANNELS_MAX] = {"inbox", "email", "sms", "push"};
_Static_assert(CHANNELS_MAX == DECIDE_IDS_PER_REQUEST, "one delivery id per channel");

/* The delivery id of the request's row for channel (one of channel_names). */
static int64_t delivery_id(const struct member_facts *m, const char *channel)
{
    int64_t k = 0;
    while (k < CHANNELS_MAX - 1 && strcmp(channel_names[k], channel) != 0)
        k++;
    return m->delivery_ids + k;
}

/* Channels of the request: those it names (each once, in its order),
 * else its template's defaults. */
static size_t channels_of(const struct notify_request_in *r, const struct template_kind *kind,
                          const char **out)
{
    unsigned seen = 0;
    size_t n = 0;
    if (r->channel_count > 0) {
        for (size_t i = 0; i < r->channel_count; i++)
            for (size_t k = 0; k < CHANNELS_MAX; k++)
                if (!(seen & (1u << k)) && strcmp(r->channels[i], channel_names[k]) == 0) {
                    seen |= 1u << k;
                    out[n++] = channel_names[k];
                }
        return n;
    }
    for (size_t k = 0; k < CHANNELS_MAX; k++)
        if (kind->default_channels & (1u << k))
            out[n++] = channel_names[k];
    return n;
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

/* What the decision of one request needs besides the request. */
struct run {
    struct notify_ctx *c;
    struct pipeline_batch *b;
    const PGresult *templates;
    struct decide_rows *w;
    int64_t now;
};

static int decide_channel(const struct run *x, struct notify_pending *q, const char *channel,
                          const char *locale, const char **poison, char *err, size_t err_len)
{
    const struct notify_request_in *r = &q->r;
    const struct member_facts *m = &q->facts;
    const char *address = address_of(r, m, channel);
    char needle[16], mid[NOTIFY_MESSAGE_ID_LEN + 1];
    snprintf(needle, sizeof(needle), ",%s,", channel);
    notify_message_id(r->tenant_id, r->request_id, channel, mid);
    bool marketing = strcmp(r->purpose, "marketing") == 0;
    struct policy_facts f = {.marketing = marketing,
                             .external = strcmp(channel, "inbox") != 0,
                             .provider = provider_of(channel),
                             .address = address && address[0],
                             .consent = strstr(m->consents, needle) != NULL,
                             .expires_at_us = r->expires_at_us,
                             .cap_used = m->cap_used,
                             .cap = m->policy.marketing_cap_per_week,
                             .quiet_until_us = policy_quiet_until(&m->policy, x->now),
                             .now_us = x->now};
    struct policy_decision d = policy_decide(&f);
    struct rendered t = {0};
    if (d.status != POLICY_SUPPRESS) {
        int rc = render(x->templates, r, m, channel, locale, &t, err, err_len);
        if (rc != 0) {
            *poison = "notify request cannot be rendered";
            return rc;
        }
    }
    add_rows(x->w, r, delivery_id(m, channel), channel, mid, &d, address, &t, x->now);
    rendered_free(&t);
    size_t len = 0;
    if (d.status == POLICY_SUPPRESS) {
        x->c->suppressed++;
        uint8_t *bin = notify_outcome_suppressed(r->tenant_id, r->member_id, r->request_id, channel,
                                                 d.rule, &len);
        emit(x->b, r->member_id, bin, len);
        return 0;
    }
    q->counted |= marketing;
    if (!f.external) {
        x->c->inbox_delivered++;
        uint8_t *bin = notify_outcome_delivered(r->tenant_id, r->member_id, r->request_id, mid,
                                                channel, 1, &len);
        emit(x->b, r->member_id, bin, len);
    } else if (d.status == POLICY_HOLD) {
        x->c->held++;
    } else {
        x->c->queued++;
    }
    return 0;
}

/* One fresh request: every channel decided from the facts read for the
 * run; its cap count includes the run's earlier messages to the member. */
static int decide_request(const struct run *x, struct cap_tally *tally, struct notify_pending *q,
                          const char **poison, char *err, size_t err_len)
{
    const struct notify_request_in *r = &q->r;
    struct member_facts *m = &q->facts;
    bool marketing = strcmp(r->purpose, "marketing") == 0;
    if (marketing)
        m->cap_used += cap_tally_used(tally, r->tenant_id, r->member_id);
    const char *locale = r->locale[0]   ? r->locale
                         : m->locale[0] ? m->locale
                                        : m->policy.default_locale;
    const char *channels[CHANNELS_MAX];
    size_t n = channels_of(r, template_kind_find(r->template_name), channels);
    for (size_t i = 0; i < n; i++) {
        int rc = decide_channel(x, q, channels[i], locale, poison, err, err_len);
        if (rc != 0)
            return rc;
    }
    if (q->counted && marketing) {
        cap_tally_add(tally, r->tenant_id, r->member_id);
        db_array_add(&x->w->counted[0], r->tenant_id);
        db_array_add(&x->w->counted[1], r->request_id);
    }
    return 0;
}

/* The fresh requests of the run, decided in order in memory, then
 * written. */
static int decide_fresh(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                        struct notify_pending *p, size_t n, int64_t now, char *err, size_t err_len)
{
    if (decide_load_facts(pg, p, n, now, err, err_len) < 0)
        return -1;
    PGresult *templates = decide_load_templates(pg, p, n, err, err_len);
    struct cap_tally tally;
    if (!templates || !cap_tally_init(&tally, n)) {
        if (templates)
            snprintf(err, err_len, "out of memory");
        PQclear(templates);
        return -1;
    }
    struct decide_rows w;
    decide_rows_init(&w);
    const struct run x = {.c = c, .b = b, .templates = templates, .w = &w, .now = now};
    for (size_t i = 0; i < n; i++) {
        if (!p[i].fresh)
            continue;
        const char *poison = NULL;
        int rc = decide_request(&x, &tally, &p[i], &poison, err, err_len);
        if (rc < 0)
            break;
        if (rc > 0) /* the batch is rolled back and applied again without it */
            pipeline_mark_poison(b, p[i].msg, poison);
    }
    cap_tally_free(&tally);
    PQclear(templates);
    return decide_rows_write(pg, &w, err, err_len);
}

int notify_decide_run(struct notify_ctx *c, PGconn *pg, struct pipeline_batch *b,
                      struct notify_pending *p, size_t n, char *err, size_t err_len)
{
    int64_t now = clock_now_us();
    size_t valid = 0, fresh = 0;
    for (size_t i = 0; i < n; i++) {
        const char *why = request_invalid(&p[i].r);
        p[i].valid = why == NULL;
        if (why)
            pipeline_mark_poison(b, p[i].msg, why);
        valid += p[i].valid;
    }
    if (valid == 0)
        return 0;
    if (decide_record_requests(pg, p, n, now, err, err_len) < 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        fresh += p[i].fresh;
    c->requests += (long long)valid;
    c->duplicates += (long long)(valid - fresh);
    return fresh == 0 ? 0 : decide_fresh(c, pg, b, p, n, now, err, err_len);
}
