/* `tessera-ledger --audit`: proves the ledger's invariants from its own
 * tables and the cache, read-only, and says exactly what differs.
 *
 * The PostgreSQL checks run in one REPEATABLE READ READ ONLY transaction,
 * so a live ledger committing meanwhile never makes the journal and the
 * balances look different: they are read from one snapshot. The Redis
 * checks (balances, then cards) run afterwards against fresh reads,
 * because the cache is written after commit; a member whose cache is
 * older than PostgreSQL is re-read for a short while before it counts as
 * a difference (a batch may be between its commit and its cache write).
 *
 * Exit status: 0 every invariant holds, 1 some do not (the report names
 * them, with up to AUDIT_EXAMPLES_MAX examples each), 2 the audit could
 * not run (no database). */
#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "cache/cache.h"
#include "db/db.h"
#include "events/codec.h"
#include "util/sleep.h"

#define AUDIT_EXAMPLES_MAX          20
#define AUDIT_FETCH_ROWS            2000
#define AUDIT_SCAN_COUNT            1000
#define AUDIT_CACHE_RECHECK_MS      3000
#define AUDIT_CACHE_RECHECK_STEP_MS 100
#define AUDIT_CACHE_DIFFS_MAX       10000

struct audit {
    PGconn *pg;
    FILE *out;
    const char *redis_host;
    int redis_port;
    int failed_checks;
    int checks;
};

static void audit_result(struct audit *a, const char *name, long long problems, const char *what_ok)
{
    a->checks++;
    if (problems == 0) {
        fprintf(a->out, "audit: ok    %s (%s)\n", name, what_ok);
        return;
    }
    a->failed_checks++;
    fprintf(a->out, "audit: FAIL  %s: %lld problem(s)\n", name, problems);
}

/* Runs a query whose rows are examples of one broken invariant; column 0
 * is the total count of problems (count(*) OVER ()), the others are
 * printed as "name=value". Returns the number of problems or -1. */
static long long audit_examples(struct audit *a, const char *name, const char *sql,
                                const char *what_ok)
{
    char err[512];
    PGresult *res = db_query(a->pg, sql, 0, NULL, err, sizeof(err), NULL);
    if (!res) {
        fprintf(a->out, "audit: ERROR %s: %s\n", name, err);
        a->checks++;
        a->failed_checks++;
        return -1;
    }
    long long problems = PQntuples(res) > 0 ? db_int_at(res, 0, 0) : 0;
    audit_result(a, name, problems, what_ok);
    for (int i = 0; i < PQntuples(res); i++) {
        fprintf(a->out, "         ");
        for (int c = 1; c < PQnfields(res); c++)
            fprintf(a->out, " %s=%s", PQfname(res, c),
                    PQgetisnull(res, i, c) ? "NULL" : PQgetvalue(res, i, c));
        fprintf(a->out, "\n");
    }
    PQclear(res);
    return problems;
}

static long long audit_count(struct audit *a, const char *sql)
{
    char err[256];
    PGresult *res = db_query(a->pg, sql, 0, NULL, err, sizeof(err), NULL);
    long long n = res && PQntuples(res) == 1 ? db_int_at(res, 0, 0) : -1;
    PQclear(res);
    return n;
}

/* Each member's balances equal the sum of its journal lines per asset;
 * a balance row without lines, or lines without a balance row, differ. */
static void check_balances(struct audit *a)
{
    char ok[64];
    snprintf(ok, sizeof(ok), "%lld members", audit_count(a, "SELECT count(*) FROM balances"));
    audit_examples(
        a, "balances equal the journal",
        "WITH j AS (SELECT tenant_id, member_id, "
        "  coalesce(sum(amount) FILTER (WHERE asset = 'points'), 0) AS points, "
        "  coalesce(sum(amount) FILTER (WHERE asset = 'points_pending'), 0) AS points_pending, "
        "  coalesce(sum(amount) FILTER (WHERE asset = 'sv_principal'), 0) AS sv_principal, "
        "  coalesce(sum(amount) FILTER (WHERE asset = 'sv_bonus'), 0) AS sv_bonus "
        "  FROM journal WHERE member_id IS NOT NULL GROUP BY 1, 2) "
        "SELECT count(*) OVER () AS n, coalesce(b.tenant_id, j.tenant_id) AS tenant, "
        "  coalesce(b.member_id, j.member_id) AS member, "
        "  b.points, j.points AS journal_points, b.points_pending, "
        "  j.points_pending AS journal_points_pending, b.sv_principal, "
        "  j.sv_principal AS journal_sv_principal, b.sv_bonus, j.sv_bonus AS journal_sv_bonus "
        "FROM balances b FULL JOIN j USING (tenant_id, member_id) "
        "WHERE coalesce(b.points, 0) <> coalesce(j.points, 0) "
        "   OR coalesce(b.points_pending, 0) <> coalesce(j.points_pending, 0) "
        "   OR coalesce(b.sv_principal, 0) <> coalesce(j.sv_principal, 0) "
        "   OR coalesce(b.sv_bonus, 0) <> coalesce(j.sv_bonus, 0) "
        "ORDER BY 2, 3 LIMIT 20",
        ok);
}

static void check_postings(struct audit *a)
{
    char ok[64];
    snprintf(ok, sizeof(ok), "%lld postings",
             audit_count(a, "SELECT count(DISTINCT posting_id) FROM journal"));
    audit_examples(a, "every posting sums to zero per asset",
                   "SELECT count(*) OVER () AS n, posting_id, asset, sum(amount) AS sum "
                   "FROM journal GROUP BY posting_id, asset HAVING sum(amount) <> 0 "
                   "ORDER BY 2 LIMIT 20",
                   ok);
    audit_examples(a, "the journal sums to zero per tenant and asset",
                   "SELECT count(*) OVER () AS n, tenant_id, asset, sum(amount) AS sum "
                   "FROM journal GROUP BY tenant_id, asset HAVING sum(amount) <> 0 "
                   "ORDER BY 2, 3 LIMIT 20",
                   "every asset, points_pending included");
    audit_examples(a, "member lines name their member's account",
                   "SELECT count(*) OVER () AS n, line_id, member_id, account FROM journal "
                   "WHERE (member_id IS NULL) <> (account NOT LIKE 'member:%') "
                   "   OR (member_id IS NOT NULL AND account <> 'member:' || member_id) "
                   "ORDER BY 2 LIMIT 20",
                   "every line");
}

/* No balance is negative now, and none ever was: the running sum of a
 * member's lines per asset, in journal order, never dips below zero. */
static void check_negative(struct audit *a)
{
    audit_examples(a, "no negative balance now",
                   "SELECT count(*) OVER () AS n, tenant_id, member_id, points, points_pending, "
                   "sv_principal, sv_bonus FROM balances "
                   "WHERE least(points, points_pending, sv_principal, sv_bonus) < 0 "
                   "ORDER BY 2, 3 LIMIT 20",
                   "every member");
    audit_examples(a, "no balance was ever negative",
                   "SELECT count(*) OVER () AS n, tenant_id, member_id, asset, min(run) AS lowest "
                   "FROM (SELECT tenant_id, member_id, asset, sum(amount) OVER (PARTITION BY "
                   "tenant_id, member_id, asset ORDER BY line_id) AS run FROM journal "
                   "WHERE member_id IS NOT NULL) s GROUP BY 2, 3, 4 HAVING min(run) < 0 "
                   "ORDER BY 2, 3 LIMIT 20",
                   "every journal prefix");
}

/* Journal lines belong to a posted command of the same posting; rejected
 * commands have no posting. */
static void check_commands_sql(struct audit *a)
{
    audit_examples(a, "every journal line has its posted command",
                   "SELECT count(*) OVER () AS n, j.posting_id, j.command_id, c.status, "
                   "c.posting_id AS command_posting FROM journal j LEFT JOIN commands c "
                   "ON c.tenant_id = j.tenant_id AND c.command_id = j.command_id "
                   "WHERE c.command_id IS NULL OR c.status <> 'posted' "
                   "   OR c.posting_id IS DISTINCT FROM j.posting_id "
                   "GROUP BY j.posting_id, j.command_id, c.status, c.posting_id "
                   "ORDER BY 2 LIMIT 20",
                   "every line");
    audit_examples(a, "posted commands have a posting, rejected ones a code",
                   "SELECT count(*) OVER () AS n, tenant_id, command_id, status, code, posting_id "
                   "FROM commands WHERE (status = 'posted' AND (posting_id IS NULL OR code IS "
                   "NOT NULL)) OR (status = 'rejected' AND (posting_id IS NOT NULL OR code IS "
                   "NULL)) ORDER BY 2, 3 LIMIT 20",
                   "every command");
}

/* One stored verdict row against its journal lines: the verdict decodes,
 * names this command, has the kind its status says, and (when posted)
 * lists exactly the lines the journal holds. NULL when it agrees, else
 * what is wrong. */
static const char *verdict_problem(const PGresult *res, int i)
{
    const char *command_id = PQgetvalue(res, i, 1);
    bool posted = strcmp(PQgetvalue(res, i, 2), "posted") == 0;
    long long lines = db_int_at(res, i, 4);
    long long abs_sum = db_int_at(res, i, 5);
    size_t len = 0;
    unsigned char *raw = PQunescapeBytea((const unsigned char *)PQgetvalue(res, i, 3), &len);
    char why[128];
    Envelope *env = raw ? envelope_decode(raw, len, why, sizeof(why)) : NULL;
    PQfreemem(raw);
    const char *problem = NULL;
    if (!env) {
        problem = "the stored verdict does not decode";
    } else if (posted) {
        const LedgerPosted *v = env->ledger_posted;
        long long verdict_abs = 0;
        if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_POSTED)
            problem = "status posted but the verdict is not LedgerPosted";
        else if (strcmp(v->command_id, command_id) != 0)
            problem = "the verdict names another command";
        else {
            for (size_t k = 0; k < v->n_lines; k++)
                verdict_abs += llabs(v->lines[k]->amount);
            if ((long long)v->n_lines != lines || verdict_abs != abs_sum)
                problem = "the journal does not hold the verdict's lines";
        }
    } else if (env->payload_case != TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_LEDGER_REJECTED) {
        problem = "status rejected but the verdict is not LedgerRejected";
    } else if (strcmp(env->ledger_rejected->command_id, command_id) != 0) {
        problem = "the verdict names another command";
    }
    envelope_free(env);
    return problem;
}

/* Every command's stored verdict against the journal, through a cursor so
 * memory stays bounded whatever the table's size. */
static void check_verdicts(struct audit *a)
{
    char err[512];
    long long commands = 0, problems = 0;
    PGresult *res =
        db_query(a->pg,
                 "DECLARE audit_verdicts NO SCROLL CURSOR FOR "
                 "SELECT c.tenant_id, c.command_id, c.status, c.verdict, count(j.line_id), "
                 "coalesce(sum(abs(j.amount)), 0) FROM commands c LEFT JOIN journal j "
                 "ON j.posting_id = c.posting_id AND j.tenant_id = c.tenant_id "
                 "GROUP BY c.tenant_id, c.command_id",
                 0, NULL, err, sizeof(err), NULL);
    if (!res) {
        fprintf(a->out, "audit: ERROR verdicts: %s\n", err);
        a->checks++, a->failed_checks++;
        return;
    }
    PQclear(res);
    char examples[AUDIT_EXAMPLES_MAX][300];
    int shown = 0;
    for (;;) {
        res = db_query(a->pg, "FETCH 2000 FROM audit_verdicts", 0, NULL, err, sizeof(err), NULL);
        if (!res || PQntuples(res) == 0)
            break;
        for (int i = 0; i < PQntuples(res); i++, commands++) {
            const char *problem = verdict_problem(res, i);
            if (!problem)
                continue;
            if (problems++ < AUDIT_EXAMPLES_MAX)
                snprintf(examples[shown++], sizeof(examples[0]), "tenant=%s command_id=%s: %s",
                         PQgetvalue(res, i, 0), PQgetvalue(res, i, 1), problem);
        }
        PQclear(res);
    }
    PQclear(res);
    char ok[64];
    snprintf(ok, sizeof(ok), "%lld commands", commands);
    audit_result(a, "every command has one verdict matching the journal", problems, ok);
    for (int i = 0; i < shown; i++)
        fprintf(a->out, "          %s\n", examples[i]);
    if (db_exec(a->pg, "CLOSE audit_verdicts", err, sizeof(err)) < 0)
        fprintf(a->out, "audit: note: %s\n", err);
}

/* Points live in lots: a member's points equal the remaining points of
 * its vested lots, its points_pending those of its pending lots.
 * Every posted refund has its row in the refund trail, with its posting.
 * Each tenant's tracked prepaid total is its members' stored value. */
static void check_points_and_refunds(struct audit *a)
{
    audit_examples(a, "points balances equal their lots",
                   "WITH x AS (SELECT tenant_id, member_id, "
                   "sum(remaining) FILTER (WHERE NOT pending) AS lots, "
                   "sum(remaining) FILTER (WHERE pending) AS pending_lots "
                   "FROM point_lots GROUP BY 1, 2) "
                   "SELECT count(*) OVER () AS n, coalesce(b.tenant_id, x.tenant_id) AS tenant, "
                   "coalesce(b.member_id, x.member_id) AS member, b.points, x.lots, "
                   "b.points_pending, x.pending_lots "
                   "FROM balances b FULL JOIN x USING (tenant_id, member_id) "
                   "WHERE coalesce(b.points, 0) <> coalesce(x.lots, 0) "
                   "   OR coalesce(b.points_pending, 0) <> coalesce(x.pending_lots, 0) "
                   "ORDER BY 2, 3 LIMIT 20",
                   "every member, vested and pending");
    audit_examples(a, "every refund is in the refund trail",
                   "SELECT count(*) OVER () AS n, c.tenant_id, c.command_id, r.refund_id, "
                   "r.posting_id FROM commands c LEFT JOIN refunds r ON r.tenant_id = "
                   "c.tenant_id AND r.command_id = c.command_id WHERE c.status = 'posted' AND "
                   "c.command_type LIKE 'refund\\_%' AND (r.refund_id IS NULL OR "
                   "r.posting_id <> c.posting_id) ORDER BY 2, 3 LIMIT 20",
                   "every refund");
    audit_examples(a, "tenant prepaid totals equal the members' balances",
                   "WITH b AS (SELECT tenant_id, sum(sv_principal + sv_bonus) AS s FROM balances "
                   "GROUP BY 1) SELECT count(*) OVER () AS n, coalesce(t.tenant_id, b.tenant_id) "
                   "AS tenant, t.outstanding, b.s AS balances FROM tenant_prepaid t FULL JOIN b "
                   "USING (tenant_id) WHERE coalesce(t.outstanding, 0) <> coalesce(b.s, 0) "
                   "ORDER BY 2 LIMIT 20",
                   "every tenant");
}

/* ------------------------------------------------------------ Redis */
struct cached {
    char tenant_id[CACHE_KEY_MAX];
    char member_id[CACHE_KEY_MAX];
};

/* "tessera:<tenant>:member:<member><suffix>" -> tenant, member. */
static bool parse_key(const char *key, const char *suffix, struct cached *c)
{
    const char *prefix = "tessera:";
    size_t len = strlen(key), plen = strlen(prefix), slen = strlen(suffix);
    const char *mid = strstr(key, ":member:");
    if (len <= plen + slen || strncmp(key, prefix, plen) != 0 || !mid ||
        strcmp(key + len - slen, suffix) != 0)
        return false;
    size_t tlen = (size_t)(mid - key) - plen;
    const char *member = mid + strlen(":member:");
    size_t mlen = (size_t)(key + len - slen - member);
    if (tlen == 0 || mlen == 0 || tlen >= CACHE_KEY_MAX || mlen >= CACHE_KEY_MAX)
        return false;
    memcpy(c->tenant_id, key + plen, tlen);
    c->tenant_id[tlen] = '\0';
    memcpy(c->member_id, member, mlen);
    c->member_id[mlen] = '\0';
    return true;
}

enum cache_verdict { CACHE_AGREES, CACHE_BEHIND, CACHE_WRONG };

#define AUDIT_WHY_MAX 512 /* one member's difference, as reported */

/* What one kind of cached hash is checked with. */
struct cache_check {
    const char *name;    /* the check, as the report names it */
    const char *pattern; /* SCAN MATCH */
    const char *suffix;  /* of the key, after the member id */
    const char *what;    /* "cached members" */
    enum cache_verdict (*compare)(struct audit *a, redisContext *rc, const struct cached *c,
                                  char *why, size_t why_len);
};

/* Compares one cached member with its row in PostgreSQL (fresh read). A
 * cache older than PostgreSQL may be a write in flight (CACHE_BEHIND); a
 * cache with another value at the same or a newer version, or for a
 * member the ledger does not know, is wrong. */
static enum cache_verdict cache_compare(struct audit *a, redisContext *rc, const struct cached *c,
                                        char *why, size_t why_len)
{
    struct cache_balances cb = {0};
    int hit = cache_get_balances(rc, c->tenant_id, c->member_id, &cb);
    if (hit <= 0) {
        snprintf(why, why_len, "the cached hash is unreadable or gone");
        return hit == 0 ? CACHE_AGREES : CACHE_WRONG; /* gone meanwhile: a flush */
    }
    const char *p[2] = {c->tenant_id, c->member_id};
    char err[256];
    PGresult *res = db_query(a->pg,
                             "SELECT points, sv_principal, sv_bonus, version, points_pending "
                             "FROM balances "
                             "WHERE tenant_id = $1 AND member_id = $2",
                             2, p, err, sizeof(err), NULL);
    if (!res || PQntuples(res) == 0) {
        snprintf(why, why_len, "cached but the ledger has no balances (%.120s)",
                 res ? "no row" : err);
        PQclear(res);
        return CACHE_WRONG;
    }
    int64_t pg[5];
    for (int k = 0; k < 5; k++)
        pg[k] = db_int_at(res, 0, k);
    PQclear(res);
    snprintf(why, why_len,
             "redis points=%" PRId64 " points_pending=%" PRId64 " sv_principal=%" PRId64
             " sv_bonus=%" PRId64 " version=%" PRId64 ", postgres %" PRId64 "/%" PRId64 "/%" PRId64
             "/%" PRId64 " version=%" PRId64,
             cb.points, cb.points_pending, cb.sv_principal, cb.sv_bonus, cb.version, pg[0], pg[4],
             pg[1], pg[2], pg[3]);
    if (cb.points == pg[0] && cb.sv_principal == pg[1] && cb.sv_bonus == pg[2] &&
        cb.version == pg[3] && cb.points_pending == pg[4])
        return CACHE_AGREES;
    return cb.version < pg[3] ? CACHE_BEHIND : CACHE_WRONG;
}

/* Scans every cached member's hash of one kind; returns how many were
 * compared, fills diffs with those that did not agree at first sight. -1
 * when Redis fails. */
static long long cache_scan(redisContext *rc, const struct cache_check *k, struct cached *diffs,
                            size_t *ndiff, struct audit *a)
{
    long long seen = 0;
    char cursor[32] = "0";
    do {
        redisReply *r =
            redisCommand(rc, "SCAN %s MATCH %s COUNT %d", cursor, k->pattern, AUDIT_SCAN_COUNT);
        if (!r || r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
            if (r)
                freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            struct cached c;
            char why[AUDIT_WHY_MAX];
            if (!parse_key(r->element[1]->element[i]->str, k->suffix, &c))
                continue;
            seen++;
            if (k->compare(a, rc, &c, why, sizeof(why)) != CACHE_AGREES &&
                *ndiff < AUDIT_CACHE_DIFFS_MAX)
                diffs[(*ndiff)++] = c;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    return seen;
}

/* ---- cards ---- */
enum {
    AC_CARD,
    AC_PRODUCT,
    AC_KIND,
    AC_USES,
    AC_FROM,
    AC_TO,
    AC_FROZEN,
    AC_FREEZE_LEFT,
    AC_DISCOUNT,
    AC_VERSION,
    AC_CREATED
};

static const struct cache_card *cached_card(const struct cache_cards_read *cr, const char *id)
{
    for (size_t i = 0; i < cr->n_cards; i++)
        if (strcmp(cr->cards[i].card_id, id) == 0)
            return &cr->cards[i];
    return NULL;
}

/* One PostgreSQL row against its cached card (same version): NULL when
 * every cached field agrees, else the name of the first that does not. */
static const char *card_field_differs(const PGresult *res, int i, const struct cache_card *k)
{
    if (strcmp(PQgetvalue(res, i, AC_PRODUCT), k->product_id) != 0)
        return "product_id";
    if (strcmp(PQgetvalue(res, i, AC_KIND), k->kind) != 0)
        return "kind";
    const struct {
        int col;
        int64_t cached;
        const char *name;
    } ints[] = {{AC_USES, k->uses_left, "uses_left"},
                {AC_FROM, k->valid_from_us, "valid_from_us"},
                {AC_TO, k->valid_to_us, "valid_to_us"},
                {AC_FROZEN, k->frozen_until_us, "frozen_until_us"},
                {AC_FREEZE_LEFT, k->freeze_days_left, "freeze_days_left"},
                {AC_DISCOUNT, k->discount_bp, "discount_bp"},
                {AC_CREATED, k->created_us, "created_us"}};
    for (size_t f = 0; f < sizeof(ints) / sizeof(ints[0]); f++)
        if (db_int_at(res, i, ints[f].col) != ints[f].cached)
            return ints[f].name;
    return NULL;
}

/* PostgreSQL's cards against the cached set, card by card (the count
 * already agrees). Fills why for the first difference. */
static enum cache_verdict cards_compare_each(const PGresult *res, const struct cache_cards_read *cr,
                                             char *why, size_t why_len)
{
    int rows = PQntuples(res);
    for (size_t i = 0; i < cr->n_cards; i++) {
        bool known = false;
        for (int r = 0; r < rows && !known; r++)
            known = strcmp(PQgetvalue(res, r, AC_CARD), cr->cards[i].card_id) == 0;
        if (!known) {
            snprintf(why, why_len, "card %s is cached but not in postgres", cr->cards[i].card_id);
            return CACHE_WRONG;
        }
    }
    enum cache_verdict v = CACHE_AGREES;
    for (int r = 0; r < rows; r++) {
        const char *id = PQgetvalue(res, r, AC_CARD);
        const struct cache_card *k = cached_card(cr, id);
        int64_t version = db_int_at(res, r, AC_VERSION);
        const char *field = k && k->version == version ? card_field_differs(res, r, k) : NULL;
        if (k && k->version == version && !field)
            continue;
        if (!k)
            snprintf(why, why_len, "card %s is missing from the cached set", id);
        else if (field)
            snprintf(why, why_len,
                     "card %s version %" PRId64 ": %s differs (redis uses_left=%" PRId64
                     ", postgres uses_left=%s)",
                     id, version, field, k->uses_left, PQgetvalue(res, r, AC_USES));
        else
            snprintf(why, why_len,
                     "card %s: redis version %" PRId64 " uses_left=%" PRId64
                     ", postgres version %" PRId64 " uses_left=%s",
                     id, k->version, k->uses_left, version, PQgetvalue(res, r, AC_USES));
        if (!k || field || k->version > version)
            return CACHE_WRONG;
        v = CACHE_BEHIND; /* keep looking: a wrong card elsewhere says more */
    }
    return v;
}

/* Compares a member's cached cards with PostgreSQL (fresh read): the
 * count, then every card by version and state. A count or a card older
 * than PostgreSQL may be a write in flight (CACHE_BEHIND); a card with
 * other values at its version, a newer one, one PostgreSQL does not have,
 * an unreadable field or a missing count is wrong. A member past
 * CACHE_CARDS_PER_MEMBER_MAX is only checked for its count: readers never
 * use its cards. */
static enum cache_verdict cards_compare(struct audit *a, redisContext *rc, const struct cached *c,
                                        char *why, size_t why_len)
{
    static struct cache_cards_read cr; /* large; the audit is one thread */
    if (cache_get_cards(rc, c->tenant_id, c->member_id, &cr) < 0) {
        snprintf(why, why_len, "the cached cards are unreadable");
        return CACHE_WRONG;
    }
    if (cr.card_count < 0 && cr.n_cards == 0 && cr.n_bad == 0)
        return CACHE_AGREES; /* gone meanwhile: a flush */
    if (cr.card_count < 0 || cr.n_bad > 0) {
        snprintf(why, why_len, "%s (%zu unreadable field(s))",
                 cr.card_count < 0 ? "no readable card count" : "unreadable cards", cr.n_bad);
        return CACHE_WRONG;
    }
    const char *p[2] = {c->tenant_id, c->member_id};
    char err[256];
    PGresult *res = db_query(a->pg,
                             "SELECT card_id, product_id, kind, uses_left, valid_from_us, "
                             "valid_to_us, frozen_until_us, freeze_days_left, discount_bp, "
                             "version, (extract(epoch FROM created_at) * 1000000)::bigint "
                             "FROM cards WHERE tenant_id = $1 AND member_id = $2",
                             2, p, err, sizeof(err), NULL);
    if (!res) {
        snprintf(why, why_len, "cannot read the cards (%.200s)", err);
        return CACHE_WRONG;
    }
    int rows = PQntuples(res);
    enum cache_verdict v = CACHE_AGREES;
    if (cr.card_count != rows) {
        snprintf(why, why_len, "redis card count %" PRId64 ", postgres %d", cr.card_count, rows);
        v = cr.card_count < rows ? CACHE_BEHIND : CACHE_WRONG;
    } else if (rows <= CACHE_CARDS_PER_MEMBER_MAX) {
        v = cards_compare_each(res, &cr, why, why_len);
    }
    PQclear(res);
    return v;
}

static const struct cache_check balances_check = {
    .name = "redis agrees with postgres",
    .pattern = "tessera:*:member:*:balances",
    .suffix = ":balances",
    .what = "cached members",
    .compare = cache_compare,
};

static const struct cache_check cards_check = {
    .name = "redis cards agree with postgres",
    .pattern = "tessera:*:member:*:cards",
    .suffix = ":cards",
    .what = "members with cached cards",
    .compare = cards_compare,
};

/* Redis agrees with PostgreSQL for every cached member, for one kind of
 * hash. */
static void check_cache(struct audit *a, const struct cache_check *k)
{
    char err[256];
    redisContext *rc = cache_connect(a->redis_host, a->redis_port, 2000, err, sizeof(err));
    if (!rc) {
        fprintf(a->out, "audit: ERROR %s: %s\n", k->name, err);
        a->checks++, a->failed_checks++;
        return;
    }
    struct cached *diffs = calloc(AUDIT_CACHE_DIFFS_MAX, sizeof(*diffs));
    size_t ndiff = 0;
    long long seen = cache_scan(rc, k, diffs, &ndiff, a);
    if (seen < 0) {
        fprintf(a->out, "audit: ERROR %s: SCAN failed\n", k->name);
        a->checks++, a->failed_checks++;
        goto done;
    }
    /* Members behind PostgreSQL get a few moments for a write in flight. */
    static char why[AUDIT_EXAMPLES_MAX][CACHE_KEY_MAX * 2 + AUDIT_WHY_MAX + 8];
    long long wrong = 0;
    for (int waited = 0; ndiff > 0; waited += AUDIT_CACHE_RECHECK_STEP_MS) {
        size_t keep = 0;
        wrong = 0;
        bool final = waited >= AUDIT_CACHE_RECHECK_MS;
        for (size_t i = 0; i < ndiff; i++) {
            char one[AUDIT_WHY_MAX];
            enum cache_verdict v = k->compare(a, rc, &diffs[i], one, sizeof(one));
            if (v == CACHE_AGREES)
                continue;
            if (v == CACHE_WRONG || final) {
                if (wrong < AUDIT_EXAMPLES_MAX)
                    snprintf(why[wrong], sizeof(why[0]), "%s/%s: %s", diffs[i].tenant_id,
                             diffs[i].member_id, one);
                wrong++;
            }
            diffs[keep++] = diffs[i];
        }
        ndiff = keep;
        if (final || (size_t)wrong == ndiff)
            break;
        sleep_ms(AUDIT_CACHE_RECHECK_STEP_MS);
    }
    char ok[64];
    snprintf(ok, sizeof(ok), "%lld %s", seen, k->what);
    audit_result(a, k->name, wrong, ok);
    for (long long i = 0; i < wrong && i < AUDIT_EXAMPLES_MAX; i++)
        fprintf(a->out, "          %s\n", why[i]);
done:
    free(diffs);
    redisFree(rc);
}

int ledger_audit_run(const char *pg_dsn, const char *redis_host, int redis_port, FILE *out)
{
    char err[512];
    struct audit a = {.out = out, .redis_host = redis_host, .redis_port = redis_port};
    a.pg = db_connect(pg_dsn, "ledger", "tessera-ledger-audit", 600000, err, sizeof(err));
    if (!a.pg) {
        fprintf(out, "audit: cannot connect to PostgreSQL: %s\n", err);
        return 2;
    }
    if (db_exec(a.pg, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err, sizeof(err)) < 0) {
        fprintf(out, "audit: cannot begin: %s\n", err);
        PQfinish(a.pg);
        return 2;
    }
    check_balances(&a);
    check_postings(&a);
    check_negative(&a);
    check_commands_sql(&a);
    check_verdicts(&a);
    check_points_and_refunds(&a);
    db_rollback(a.pg); /* read only: nothing to keep */
    check_cache(&a, &balances_check);
    check_cache(&a, &cards_check);
    PQfinish(a.pg);
    if (a.failed_checks == 0) {
        fprintf(out, "audit: passed (%d checks)\n", a.checks);
        return 0;
    }
    fprintf(out, "audit: FAILED (%d of %d checks)\n", a.failed_checks, a.checks);
    return 1;
}
