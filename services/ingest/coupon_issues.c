/* Issuing coupons from a template (docs/coupons.md):
 *
 *  - POST /v1/coupon-templates/{id}/issues (admin) records an issue: to
 *    member_ids (1 to 1000) or to everyone matching a filter (tier,
 *    branch_id, registered_from / registered_to). It answers 202 at once;
 *    the sweep (coupon_issuer.c) walks the members a chunk per round. An
 *    Idempotency-Key is stored with its answer in the statement that
 *    records the issue (like a registration's), so a retry is answered
 *    with the first issue and makes no second one.
 *  - GET /v1/coupon-templates/{id}/issues/{issue_id}: its progress
 *    (status running | done; issued, skipped, over_budget).
 *  - POST /v1/coupon-templates/{id}/claims (a member session): the member
 *    claims a public template; the coupon id is answered at once and the
 *    ledger issues it within a round of the sweep.
 *
 * Each grant is decided once by a PostgreSQL function of migration 0014
 * under the template's row lock: the budget and per-member limit hold
 * however many instances and requests run at once. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "coupon_templates.h"
#include "datetime/datetime.h"
#include "db/db.h"
#include "http/validate.h"
#include "ingest.h"

static const char *const issue_fields[] = {"member_ids", "filter", NULL};
static const char *const filter_fields[] = {"tier", "branch_id", "registered_from", "registered_to",
                                            NULL};

static bool template_param(struct req *r, const char **id)
{
    *id = http_param(r->ex, "template_id");
    if (*id && uuid_is_valid(*id))
        return true;
    req_fail(r, 404, "coupon_template_not_found", "no such coupon template");
    return false;
}

/* member_ids as a PostgreSQL array (into ids), or a problem in v. */
static void validate_member_ids(struct validation *v, json_t *list, struct db_array *ids)
{
    size_t n = json_is_array(list) ? json_array_size(list) : 0;
    if (n < 1 || n > COUPON_ISSUE_IDS_MAX) {
        validation_add(v, "member_ids", "must be an array of 1 to 1000 member ids");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *id = json_string_value(json_array_get(list, i));
        if (!id || !uuid_is_valid(id)) {
            validation_add(v, "member_ids", "every item must be a member id");
            return;
        }
        db_array_add(ids, id);
    }
}

struct issue_filter {
    const char *tier, *branch;
    char from[32], to[32]; /* RFC 3339 as given, "" when absent */
};

static void validate_time_text(struct validation *v, json_t *f, const char *field, char *out)
{
    const char *text = NULL;
    int64_t us = 0;
    out[0] = '\0';
    if (!validate_string(v, f, field, false, 1, 31, &text) || !text)
        return;
    if (!datetime_parse_rfc3339_us(text, &us) || us <= 0)
        validation_add(v, field, "must be an RFC 3339 time");
    else
        event_format_time(us, out);
}

static void validate_filter(struct validation *v, json_t *f, struct issue_filter *out)
{
    if (!json_is_object(f)) {
        validation_add(v, "filter", "must be an object");
        return;
    }
    validate_no_unknown_fields(v, f, filter_fields);
    validate_text(v, f, "tier", false, 1, TEXT_NAME_CHARS_MAX, TEXT_NAME_BYTES_MAX, &out->tier);
    ingest_validate_id(v, f, "branch_id", false, &out->branch);
    validate_time_text(v, f, "registered_from", out->from);
    validate_time_text(v, f, "registered_to", out->to);
}

/* The 202 answer of a new issue (also what its Idempotency-Key replays). */
static json_t *issue_answer(struct req *r)
{
    return json_pack("{s:s, s:s, s:s, s:i, s:i, s:i}", "issue_id", r->command_id, "template_id",
                     http_param(r->ex, "template_id"), "status", "running", "issued", 0, "skipped",
                     0, "over_budget", 0);
}

static void on_issue_inserted(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res && sqlstate && strcmp(sqlstate, "23505") == 0 && r->idem_key[0] &&
        strstr(err, "idempotency_keys")) {
        idem_lookup_then(r, NULL); /* the same key raced us and won: answer as it did */
        return;
    }
    if (!res && sqlstate && strcmp(sqlstate, "23503") == 0) {
        req_fail(r, 404, "coupon_template_not_found", "no such coupon template");
        return;
    }
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    req_finish(r, 202, issue_answer(r));
}

/* After the Idempotency-Key (none, or not seen before). */
static void issue_new(struct req *r)
{
    const char *template_id = http_param(r->ex, "template_id");
    struct validation v;
    validation_init(&v);
    struct db_array ids;
    db_array_init(&ids);
    struct issue_filter f = {0};
    json_t *list = json_object_get(r->body, "member_ids"),
           *filter = json_object_get(r->body, "filter");
    validate_no_unknown_fields(&v, r->body, issue_fields);
    if (!list == !filter)
        validation_add(&v, "member_ids", "give either member_ids or a filter");
    else if (list)
        validate_member_ids(&v, list, &ids);
    else
        validate_filter(&v, filter, &f);
    if (!req_validated(r, &v)) {
        db_array_free(&ids);
        return;
    }
    uuid7_generate(r->command_id); /* the issue's id */
    r->audit_action = "coupon_template.issue";
    json_t *answer = issue_answer(r);
    char *answer_text = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    const char *p[11] = {r->caller.tenant_id,
                         r->command_id,
                         template_id,
                         list ? db_array_finish(&ids) : NULL,
                         f.tier,
                         f.branch,
                         f.from[0] ? f.from : NULL,
                         f.to[0] ? f.to : NULL,
                         r->idem_key[0] ? r->idem_key : NULL,
                         r->request_hash,
                         answer_text};
    if (pg_pool_query(r->app->pg,
                      "WITH i AS (INSERT INTO coupon_issues (tenant_id, issue_id, template_id, "
                      "member_ids, tier, branch_id, registered_from, registered_to) VALUES ($1, "
                      "$2, $3, $4::text[], $5, $6, $7::timestamptz, $8::timestamptz) "
                      "RETURNING issue_id), "
                      "k AS (INSERT INTO idempotency_keys (tenant_id, idempotency_key, "
                      "request_hash, command_id, response_status, response_body) SELECT $1, $9, "
                      "$10, issue_id, 202, $11 FROM i WHERE $9::text IS NOT NULL) "
                      "SELECT issue_id FROM i",
                      11, p, on_issue_inserted, r) < 0)
        req_fail_db(r, "queue full");
    free(answer_text); /* pg_pool_query copies its parameters */
    db_array_free(&ids);
}

static void issue_authorized(struct req *r)
{
    const char *template_id;
    if (!template_param(r, &template_id) || !req_read_body(r))
        return;
    idem_lookup_then(r, issue_new); /* a key seen before: its first answer */
}

void coupon_issues_create(struct http_exchange *ex, void *app)
{
    auth_admin_then(req_new(app, ex), issue_authorized);
}

static void on_issue(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    if (PQntuples(res) == 0) {
        req_fail(r, 404, "coupon_issue_not_found", "no such issue of this template");
        return;
    }
    req_finish(r, 200, json_loads(PQgetvalue(res, 0, 0), 0, NULL));
}

static void issue_get_authenticated(struct req *r)
{
    const char *template_id, *issue_id = http_param(r->ex, "issue_id");
    if (strcmp(r->caller.scope, "admin") != 0 && strcmp(r->caller.scope, "pos") != 0) {
        req_fail(r, 403, "forbidden", "this key may not read coupon issues");
        return;
    }
    if (!template_param(r, &template_id))
        return;
    if (!issue_id || !uuid_is_valid(issue_id)) {
        req_fail(r, 404, "coupon_issue_not_found", "no such issue of this template");
        return;
    }
    const char *p[3] = {r->caller.tenant_id, template_id, issue_id};
    if (pg_pool_query(r->app->pg,
                      "SELECT json_build_object('issue_id', issue_id, 'template_id', template_id, "
                      "'status', status, 'issued', issued, 'skipped', skipped, 'over_budget', "
                      "over_budget)::text FROM coupon_issues WHERE tenant_id = $1 "
                      "AND template_id = $2 AND issue_id = $3",
                      3, p, on_issue, r) < 0)
        req_fail_db(r, "queue full");
}

void coupon_issues_get(struct http_exchange *ex, void *app)
{
    auth_then(req_new(app, ex), issue_get_authenticated);
}

/* ------------------------------------------------------------ claims */
static void on_claimed(void *arg, PGresult *res, const char *err, const char *sqlstate)
{
    struct req *r = arg;
    if (!res) {
        req_fail_db(r, err);
        return;
    }
    const char *outcome = PQgetvalue(res, 0, 0);
    if (strcmp(outcome, "ok") == 0)
        req_finish(r, 201,
                   json_pack("{s:s, s:s, s:s}", "coupon_id", PQgetvalue(res, 0, 1), "template_id",
                             http_param(r->ex, "template_id"), "status", "issuing"));
    else if (strcmp(outcome, "coupon_template_not_found") == 0)
        req_fail(r, 404, outcome, "no such coupon template");
    else if (strcmp(outcome, "coupon_template_not_claimable") == 0)
        req_fail(r, 409, outcome, "this coupon is not open to claims");
    else if (strcmp(outcome, "coupon_limit_reached") == 0)
        req_fail(r, 409, outcome, "you hold as many of this coupon as one member may");
    else if (strcmp(outcome, "coupon_budget_exhausted") == 0)
        req_fail(r, 409, outcome, "every coupon of this template was given");
    else
        req_fail_no_member(r);
}

static void claim_authenticated(struct req *r)
{
    const char *template_id;
    if (!template_param(r, &template_id))
        return;
    char now[24];
    snprintf(now, sizeof(now), "%lld", (long long)event_now_us());
    const char *p[4] = {r->caller.tenant_id, template_id, r->member_id, now};
    if (pg_pool_query(r->app->pg, "SELECT * FROM coupon_claim($1, $2, $3, $4::bigint)", 4, p,
                      on_claimed, r) < 0)
        req_fail_db(r, "queue full");
}

void coupon_claims_create(struct http_exchange *ex, void *app)
{
    member_session_then(req_new(app, ex), claim_authenticated);
}
