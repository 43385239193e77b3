/* The reads and writes of a run of requests (decide.h), set-based: each
 * is one statement over the whole run, its rows passed as arrays
 * (unnest ... WITH ORDINALITY gives every row its request's place), so a
 * run of a thousand requests costs about five round trips instead of
 * seven per request. */
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "decide.h"
#include "decide_sql.h"

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

/* The run's place of ordinal i (1-based) of a statement over `of`, or NULL. */
static struct notify_pending *place(struct notify_pending **of, size_t n, int64_t i)
{
    return i >= 1 && (size_t)i <= n ? of[i - 1] : NULL;
}

/* Records every valid request's id; the first sight of an id (in the
 * table or earlier in the run) is fresh, any other a duplicate. */
int decide_record_requests(PGconn *pg, struct notify_pending *p, size_t n, int64_t now, char *err,
                           size_t err_len)
{
    struct notify_pending **of = calloc(n ? n : 1, sizeof(*of));
    if (!of) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    struct db_array col[6];
    for (int k = 0; k < 6; k++)
        db_array_init(&col[k]);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        const struct notify_request_in *r = &p[i].r;
        if (!p[i].valid)
            continue;
        of[m++] = &p[i];
        db_array_add(&col[0], r->tenant_id), db_array_add(&col[1], r->request_id);
        db_array_add(&col[2], r->member_id), db_array_add(&col[3], r->template_name);
        db_array_add(&col[4], r->purpose), db_array_add(&col[5], r->priority);
    }
    char nows[24];
    snprintf(nows, sizeof(nows), "%lld", (long long)now);
    const char *params[7] = {db_array_finish(&col[0]),
                             db_array_finish(&col[1]),
                             db_array_finish(&col[2]),
                             db_array_finish(&col[3]),
                             db_array_finish(&col[4]),
                             db_array_finish(&col[5]),
                             nows};
    PGresult *res =
        m == 0
            ? NULL
            : db_query(pg,
                       "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[], "
                       " $4::text[], $5::text[], $6::text[]) WITH ORDINALITY "
                       " AS u(tenant_id, request_id, member_id, template, purpose, priority, i)), "
                       "ins AS (INSERT INTO requests (tenant_id, request_id, member_id, template, "
                       " purpose, priority, received_us) SELECT tenant_id, request_id, member_id, "
                       " template, purpose, priority, $7::bigint FROM u "
                       " ON CONFLICT DO NOTHING RETURNING tenant_id, request_id) "
                       "SELECT min(u.i) FROM u JOIN ins USING (tenant_id, request_id) "
                       "GROUP BY u.tenant_id, u.request_id",
                       7, params, err, err_len, NULL);
    for (int k = 0; k < 6; k++)
        db_array_free(&col[k]);
    int rc = m == 0 || res ? 0 : -1;
    for (int row = 0; res && row < PQntuples(res); row++) {
        struct notify_pending *q = place(of, m, db_int_at(res, row, 0));
        if (q)
            q->fresh = true;
    }
    PQclear(res);
    free(of);
    return rc;
}

static void facts_of(struct member_facts *m, const PGresult *res, int row)
{
    memset(m, 0, sizeof(*m));
    policy_defaults(&m->policy);
    if (!PQgetisnull(res, row, 1))
        unseal_contact(m, PQgetvalue(res, row, 1));
    snprintf(m->locale, sizeof(m->locale), "%s", PQgetvalue(res, row, 2));
    if (!PQgetisnull(res, row, 3)) {
        struct notify_policy *pol = &m->policy;
        snprintf(pol->time_zone, sizeof(pol->time_zone), "%s", PQgetvalue(res, row, 3));
        pol->quiet_start_minute = atoi(PQgetvalue(res, row, 4));
        pol->quiet_end_minute = atoi(PQgetvalue(res, row, 5));
        pol->marketing_cap_per_week = atoi(PQgetvalue(res, row, 6));
        snprintf(pol->default_locale, sizeof(pol->default_locale), "%s", PQgetvalue(res, row, 7));
        snprintf(pol->currency, sizeof(pol->currency), "%s", PQgetvalue(res, row, 8));
    }
    m->cap_used = (int)db_int_at(res, row, 9);
    snprintf(m->consents, sizeof(m->consents), "%s", PQgetvalue(res, row, 10));
    m->delivery_ids = db_int_at(res, row, 11);
}

/* Each fresh request's member contact, consents for its purpose, the
 * week's marketing count (before the run), its tenant's policy and its
 * delivery ids (DECIDE_FACTS_SQL, decide_sql.h). */
int decide_load_facts(PGconn *pg, struct notify_pending *p, size_t n, int64_t now, char *err,
                      size_t err_len)
{
    struct notify_pending **of = calloc(n ? n : 1, sizeof(*of));
    if (!of) {
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    struct db_array col[3];
    for (int k = 0; k < 3; k++)
        db_array_init(&col[k]);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!p[i].fresh)
            continue;
        of[m++] = &p[i];
        db_array_add(&col[0], p[i].r.tenant_id), db_array_add(&col[1], p[i].r.member_id);
        db_array_add(&col[2], p[i].r.purpose);
    }
    char since[24];
    snprintf(since, sizeof(since), "%lld", (long long)(now - POLICY_WEEK_US));
    const char *params[4] = {db_array_finish(&col[0]), db_array_finish(&col[1]),
                             db_array_finish(&col[2]), since};
    PGresult *res = m == 0 ? NULL : db_query(pg, DECIDE_FACTS_SQL, 4, params, err, err_len, NULL);
    for (int k = 0; k < 3; k++)
        db_array_free(&col[k]);
    int rc = m == 0 || res ? 0 : -1;
    for (int row = 0; res && row < PQntuples(res); row++) {
        struct notify_pending *q = place(of, m, db_int_at(res, row, 0));
        if (q)
            facts_of(&q->facts, res, row);
    }
    PQclear(res);
    free(of);
    return rc;
}

PGresult *decide_load_templates(PGconn *pg, const struct notify_pending *p, size_t n, char *err,
                                size_t err_len)
{
    struct db_array tenants, names;
    db_array_init(&tenants), db_array_init(&names);
    for (size_t i = 0; i < n; i++)
        if (p[i].fresh)
            db_array_add(&tenants, p[i].r.tenant_id), db_array_add(&names, p[i].r.template_name);
    const char *params[2] = {db_array_finish(&tenants), db_array_finish(&names)};
    PGresult *res =
        db_query(pg,
                 "SELECT tenant_id, name, channel, locale, subject, body FROM templates "
                 "WHERE (tenant_id, name) IN "
                 "(SELECT * FROM unnest($1::text[], $2::text[]))",
                 2, params, err, err_len, NULL);
    db_array_free(&tenants), db_array_free(&names);
    return res;
}

bool decide_template_find(const PGresult *t, const char *tenant_id, const char *name,
                          const char *channel, const char *locale, const char **subject,
                          const char **body)
{
    int any = -1;
    for (int row = 0; row < PQntuples(t); row++) {
        if (strcmp(PQgetvalue(t, row, 0), tenant_id) != 0 ||
            strcmp(PQgetvalue(t, row, 1), name) != 0 || strcmp(PQgetvalue(t, row, 3), locale) != 0)
            continue;
        const char *ch = PQgetvalue(t, row, 2);
        if (strcmp(ch, channel) == 0) {
            any = row;
            break; /* the channel's own wins */
        }
        if (ch[0] == '\0')
            any = row;
    }
    if (any < 0)
        return false;
    *subject = PQgetvalue(t, any, 4);
    *body = PQgetvalue(t, any, 5);
    return true;
}

void decide_rows_init(struct decide_rows *w)
{
    db_copy_init(&w->deliveries), db_copy_init(&w->inbox), db_copy_init(&w->queue);
    db_array_init(&w->counted[0]), db_array_init(&w->counted[1]);
}

void decide_rows_free(struct decide_rows *w)
{
    db_copy_free(&w->deliveries), db_copy_free(&w->inbox), db_copy_free(&w->queue);
    db_array_free(&w->counted[0]), db_array_free(&w->counted[1]);
}

/* Every decision is a delivery row, but a message put in the inbox: its
 * inbox row (with the rule) records it. A delivery to send also gets its
 * send_queue row (migration 0006). */
int decide_rows_write(PGconn *pg, struct decide_rows *w, char *err, size_t err_len)
{
    int rc =
        db_copy_send(pg,
                     "COPY deliveries (id, tenant_id, request_id, member_id, channel, message_id, "
                     "template, lane, status, rule, address, subject, body, html, "
                     "next_attempt_us, expires_at_us, created_us, updated_us) FROM STDIN",
                     &w->deliveries, err, err_len);
    if (rc == 0)
        rc = db_copy_send(pg,
                          "COPY inbox (tenant_id, message_id, member_id, request_id, template, "
                          "title, body, created_us, rule) FROM STDIN",
                          &w->inbox, err, err_len);
    if (rc == 0)
        rc = db_copy_send(
            pg, "COPY send_queue (delivery_id, channel, lane, next_attempt_us) FROM STDIN",
            &w->queue, err, err_len);
    if (rc == 0)
        rc = db_write_columns(pg,
                              "UPDATE requests q SET counts_for_cap = true "
                              "FROM unnest($1::text[], $2::text[]) AS u(t, r) "
                              "WHERE q.tenant_id = u.t AND q.request_id = u.r",
                              w->counted, 2, err, err_len);
    decide_rows_free(w);
    return rc;
}
