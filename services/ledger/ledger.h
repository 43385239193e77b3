/* The ledger service's shared state: what one batch loaded and what it
 * will write. Only the pipeline thread touches it, except the atomics the
 * admin port reads. */
#ifndef TESSERA_LEDGER_H
#define TESSERA_LEDGER_H

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "batch_index.h"
#include "db/copy.h"
#include "db/db.h"
#include "db/pipeline.h"
#include "events/codec.h"
#include "events/text_limits.h"
#include "ids/uuid7.h"
#include "rules.h"
#include "rules_cards.h"
#include "rules_firstday.h"
#include "rules_points.h"
#include "rules_pricing.h"
#include "rules_refunds.h"
#include "service/common.h"
#include "service/pipeline.h"
#include "settings.h"
#include "util/array.h"

struct ledger_member {
    char *tenant_id;
    char *member_id;
    struct sv_balance sv;
    int64_t points;
    int64_t points_pending; /* earned, still in the lock period */
    int64_t version;
    int64_t loaded_version; /* as the batch loaded it; -1: no row yet (store.c) */
    bool dirty;             /* changed in this batch: write to PostgreSQL and Redis */
    /* the first-day limit (firstday.c): set for members that spend stored
     * value in the batch, in tenants with a limit */
    bool fd_noted, fd_tracked;
    int32_t fd_offset_s;   /* the tenant's UTC offset, from the member's first spend */
    int64_t fd_since_us;   /* local midnight of that spend's day */
    struct sv_fresh fresh; /* today's fresh value: loaded, then kept current */
};

/* A tenant's first-day limit as the batch decides with it (firstday.c). */
struct ledger_fd_tenant {
    char *tenant_id;
    int64_t limit;     /* card_limits.first_day_topup_spend_max; 0: none */
    bool set_in_batch; /* a SetCardLimits of the batch names it */
};

/* Per tenant of the batch: its top-up ladder, and its outstanding prepaid
 * value as the batch began (prepaid.c checks what commands add to it). */
struct ledger_ladder {
    char *tenant_id;
    struct bonus_step steps[RULES_BONUS_STEPS_MAX];
    size_t count;
    int64_t prepaid_outstanding;
};

/* A points lot of a batch member (points.c); loaded with remaining > 0. */
struct ledger_lot {
    char *tenant_id;
    char *member_id;
    char *branch_id;
    char lot_id[UUID_STR_SIZE];
    char posting_id[UUID_STR_SIZE];
    int64_t granted, remaining;
    int64_t expires_at_us;     /* 0: never */
    bool pending;              /* remaining counts in points_pending until it vests */
    int64_t vests_at_us;       /* 0: vested at grant */
    char *purchase_command_id; /* earned lots: the purchase that earned them ("" none) */
    char *rule;                /* earned lots: the earning rule ("" none) */
    int64_t earned;            /* earned lots: what the rule awarded (>= granted); else 0 */
    bool is_new, dirty;        /* to insert / to update */
};

struct ledger_points_policy {
    char *tenant_id;
    struct points_policy policy;         /* kind never when the tenant has none */
    struct points_payment_terms payment; /* points as payment (rules_pricing.h) */
};

/* A tenant's refund fee rule (refunds.c); zero when the tenant has none. */
struct ledger_fee_rule {
    char *tenant_id;
    int64_t fee_bp, fee_min;
};

/* A purchase a refund or an earning in the batch names (refunds.c), with
 * what its earlier refunds and earnings did (before or earlier in the
 * batch: decisions keep it current). */
struct ledger_refundable {
    char *tenant_id;
    char *purchase_command_id;
    char *member_id; /* NULL: no such posted purchase */
    struct purchase_refund_state state;
};

/* A verdict already given: from the database or earlier in the batch. */
struct ledger_verdict {
    char *tenant_id;
    char *command_id;
    uint8_t *envelope; /* encoded LedgerPosted/LedgerRejected envelope */
    size_t len;
};

/* Stored value a batch moved in or out of one tenant's members' balances
 * (prepaid.c), and the last command that moved it. */
struct ledger_prepaid_delta {
    char *tenant_id;
    int64_t delta;
    char *last_command_id;
};

#define LEDGER_COMMAND_COLUMNS 8
#define LEDGER_JOURNAL_COLUMNS 10

/* Rows one batch writes: verdicts and journal lines as COPY rows (the
 * journal is most of what the ledger writes) or, for a small batch
 * (by_insert), as column arrays; and the per-tenant prepaid deltas summed
 * as lines are added. */
struct ledger_rows {
    bool by_insert; /* set before the first row is added */
    struct db_copy commands;
    struct db_copy journal;
    struct db_array command_cols[LEDGER_COMMAND_COLUMNS];
    struct db_array journal_cols[LEDGER_JOURNAL_COLUMNS];
    size_t journal_lines;
    struct ledger_prepaid_delta *prepaid;
    size_t prepaid_count, prepaid_cap;
    bool out_of_memory; /* a row could not be kept: the batch fails (and is retried) */
};

struct ledger_ctx {
    /* configuration */
    const char *redis_host;
    int redis_port;
    const struct service_common_config *common;
    /* A batch of up to this many commands writes its verdicts and journal
     * lines with INSERTs from arrays, in one round trip with the balances
     * and lots (store_write); a larger one with COPY, two round trips each
     * but cheaper per row (TESSERA_LEDGER_INSERT_BATCH_MAX, 0: always COPY;
     * docs/ledger-performance.md). */
    size_t insert_batch_max;
    long long cache_resync_s;
    redisContext *rc;
    atomic_bool redis_ok;
    /* the cache while Redis is away (cache_sync.c) */
    double cache_down_since_s; /* pipeline thread: wall clock; 0 while Redis answers */
    double cache_retry_at_s;   /* pipeline thread: monotonic, next connect attempt */
    int cache_backoff_ms;
    atomic_llong repair_since_us; /* the repair thread's: oldest write skipped; 0 none */
    atomic_bool repair_running;
    atomic_bool redis_back; /* set by the repair thread: connect now, backoff or not */
    /* counters for /metrics, moved only after a commit: a retried batch
     * decides its commands again and must not count them twice */
    atomic_llong posted, rejected, duplicates;
    long long batch_posted, batch_rejected, batch_duplicates; /* the batch in hand */
    /* the batch in hand (reset by ledger_begin_batch) */
    struct ledger_member *members;
    size_t member_count, member_cap;
    struct ledger_ladder *ladders;
    size_t ladder_count, ladder_cap;
    struct ledger_verdict *verdicts;
    size_t verdict_count, verdict_cap;
    struct batch_index member_index, verdict_index; /* (tenant, id) -> position */
    struct ledger_rows rows;
    /* points (points.c): lots of the batch's members, tenants' policies */
    bool lots_wanted;
    struct ledger_lot *lots;
    size_t lot_count, lot_cap;
    struct ledger_points_policy *policies;
    size_t policy_count, policy_cap;
    /* refunds (refunds.c) */
    bool refunds_wanted;
    struct ledger_fee_rule *fee_rules;
    size_t fee_rule_count, fee_rule_cap;
    struct ledger_refundable *refundables;
    size_t refundable_count, refundable_cap;
    struct db_array r_id, r_tenant, r_member, r_branch, r_command, r_posting, r_kind, r_purchase,
        r_principal, r_bonus, r_fee, r_payout, r_reason, r_actor, r_amount, r_points_reversed,
        r_points_unrecovered, r_points_returned;
    struct ledger_cards *cards; /* card commands' batch state (cards.c) */
    /* tenant settings changed in the batch (settings.c) */
    struct ledger_setting_change *settings;
    size_t setting_count, setting_cap;
    /* the first-day limit (firstday.c) */
    bool fd_wanted;    /* a stored-value spend in the batch */
    int64_t fd_now_us; /* the batch's clock: its local day is "today" */
    struct ledger_fd_tenant *fd_tenants;
    size_t fd_tenant_count, fd_tenant_cap;
};

#define LEDGER_ACCOUNT_MAX 300
#define LEDGER_LINES_MAX   8
/* A journal reason: "<command kind>:" and the command's text, which
 * ledger_command_text_problem keeps within its limit: it always fits. */
#define LEDGER_REASON_PREFIX_MAX 64
#define LEDGER_REASON_MAX        (LEDGER_REASON_PREFIX_MAX + TEXT_REASON_BYTES_MAX + 1)

/* What one command produced, before it is encoded: every command kind
 * fills one (apply.c decides top-ups and purchases, points.c, refunds.c
 * and cards.c their commands) and apply.c gives every verdict from it. */
struct card;
struct product;
struct ledger_coupon;
struct outcome {
    const Envelope *cmd;
    struct ledger_member *member;
    char posting_id[UUID_STR_SIZE];
    JournalLine lines[LEDGER_LINES_MAX];
    JournalLine *line_ptrs[LEDGER_LINES_MAX];
    char accounts[LEDGER_LINES_MAX][LEDGER_ACCOUNT_MAX];
    size_t line_count;
    const char *reject_code; /* NULL: posted */
    const char *reject_detail;
    int64_t amount, charged, bonus, paid_principal, paid_bonus;
    int64_t discount;        /* purchases: the tier's, a discount card's and a coupon's */
    int64_t coupon_discount; /* the coupon's part */
    int64_t tier_discount;   /* purchases: the tier's part, taken first */
    char purchase_id[UUID_STR_SIZE];
    char reason[LEDGER_REASON_MAX]; /* journal reason; "" = "<type>:<method>" */
    /* points commands */
    int64_t points;
    char lot_id[UUID_STR_SIZE];
    int64_t lot_expires_at_us;
    int64_t lot_vests_at_us; /* earnings: 0 when the lot is spendable at once */
    /* refunds */
    bool is_refund;
    char refund_id[UUID_STR_SIZE];
    const char *refund_kind;
    int64_t refund_principal, refund_bonus, refund_fee, refund_payout;
    int64_t refund_amount, points_reversed, points_unrecovered; /* purchase refunds */
    int64_t points_returned;           /* purchase refunds: points it was paid with, given back */
    int64_t points_paid, points_value; /* purchases paid partly with points */
    /* card commands (cards*.c): amount is the card's price */
    const char *payment_method;
    struct card *card;            /* the card after (issue, renew, use, freeze) */
    struct product *product;      /* product_define */
    struct ledger_coupon *coupon; /* coupon commands */
    enum card_fraud fraud;
    int64_t fraud_in_window, previous_use_us;
    char previous_branch[EVENT_ID_FIELD_MAX];
};

/* Refuses the command: its verdict is LedgerRejected with code and detail
 * (static strings), and apply.c undoes what the decision changed. */
void outcome_reject(struct outcome *o, const char *code, const char *detail);
/* An event a command's outcome produces, being built: the envelope and
 * what it points into (keep it alive until encoded). */
struct outcome_event {
    struct event_meta meta;
    Envelope env;
    Actor actor;
    Balances bal; /* the member's after the command (empty for a tenant's) */
};
/* Starts an event of o: caused by its command, sent by the ledger, with
 * the member's balances ready to point at; a fact (not a verdict) also
 * carries when the command happened. */
void outcome_event_init(struct outcome_event *ev, const struct outcome *o, bool fact);
/* Moves from_p principal and from_b bonus out of the member's stored
 * value to the branch that redeemed it (journal lines and balances). */
void outcome_pay_from_sv(struct outcome *o, int64_t from_p, int64_t from_b);
/* Pays charge (> 0) from the member's stored value, pro rata, redeemed at
 * the command's branch like a purchase (the prepaid report and settlement
 * read sv_redeemed; the line's reason says what was bought). False, with
 * o rejected (uncovered_detail when the balance is short, invalid_detail
 * for a charge the rules refuse), when it may not: the balance does not
 * cover it or the first-day limit refuses it. */
bool outcome_spend_sv(struct ledger_ctx *l, struct outcome *o, int64_t charge,
                      const char *uncovered_detail, const char *invalid_detail)
    __attribute__((warn_unused_result));

/* Adds a journal line (none when amount is 0). */
void outcome_line(struct outcome *o, const char *account, const char *asset, int64_t amount);
/* Sets the journal reason from fmt. Asserts it fits: the command's text
 * was checked at the door (ledger_command_text_problem), and a cut could
 * split a character that PostgreSQL then refuses. */
void outcome_reason(struct outcome *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* command_text.c: why a command's text cannot be taken whole (longer than
 * the limits of events/text_limits.h), or NULL. The message goes to the
 * dead-letter topic: ingest never sends such text. */
const char *ledger_command_text_problem(const Envelope *env);

/* points.c */
bool points_is_command(const Envelope *env);
const char *points_command_id(const Envelope *env);
/* Why a points command's id is unusable, or NULL: earnings carry an id
 * derived from their cause, vestings "vest:<lot id>", the rest a UUID. */
const char *points_command_id_problem(const Envelope *env);
const char *points_command_type(const Envelope *env);
void points_decide(struct ledger_ctx *l, struct outcome *o);
/* The fact of a posted points command, encoded; env, actor and bal are
 * the caller's, already filled. */
uint8_t *points_encode_fact(const struct outcome *o, Envelope *env, Balances *bal, size_t *len);
void points_begin_batch(struct ledger_ctx *l);
/* Queues the points policies and lots the batch needs (none when it
 * needs none) to store_load's pipeline. */
void points_queue_load(struct db_pipeline *pl, struct ledger_ctx *l);
/* Queues the upsert of the batch's new and changed lots to store_write's
 * pipeline. */
void points_queue_write(struct db_pipeline *pl, struct ledger_ctx *l);
/* A refund of purchase_command_id takes back `points` earned by it
 * (rules_points_plan_reversal): adds the journal lines to o, moves the
 * member's balances and lots, and returns what could not be taken back. */
/* Points as payment (issue 12), for decide_purchase and refunds. The
 * tenant's terms (defaults when it has no policy row). */
struct points_payment_terms points_payment_terms_of(struct ledger_ctx *l, const char *tenant_id);
/* Whether the member's spendable lots cover points now; false with o
 * refused (insufficient_points). Changes nothing. */
bool points_spend_check(struct ledger_ctx *l, struct outcome *o, int64_t points);
/* Spends them, soonest-expiring first: the lots, the balance and two
 * journal lines (member -> tenant:<t>:points_paid). Only after
 * points_spend_check held and nothing else can refuse the command. */
void points_spend_commit(struct ledger_ctx *l, struct outcome *o, int64_t points);
/* Gives points back as a new lot expiring by the tenant's policy from the
 * command's time (tenant:<t>:points_paid -> member). */
void points_return_for_refund(struct ledger_ctx *l, struct outcome *o, int64_t points);
int64_t points_reverse_for_refund(struct ledger_ctx *l, struct outcome *o,
                                  const char *purchase_command_id, int64_t points);

/* refunds.c */
bool refunds_is_command(const Envelope *env);
const char *refunds_command_id(const Envelope *env);
const char *refunds_command_type(const Envelope *env);
void refunds_note(struct ledger_ctx *l, const Envelope *env);
/* The purchase a refund or an earning of the batch names (noted by
 * refunds_note, loaded by refunds_queue_load); NULL when none was noted. */
struct ledger_refundable *refunds_purchase_find(struct ledger_ctx *l, const char *tenant_id,
                                                const char *purchase_command_id);
void refunds_decide(struct ledger_ctx *l, struct outcome *o);
uint8_t *refunds_encode_fact(const struct outcome *o, Envelope *env, Balances *bal, size_t *len);
void refunds_fill_detail(const struct outcome *o, RefundDetail *d);
void refunds_begin_batch(struct ledger_ctx *l);
void refunds_queue_load(struct db_pipeline *pl, struct ledger_ctx *l);
int refunds_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len);

/* firstday.c: the first-day limit on freshly topped-up stored value
 * (rules_firstday.h). Called from the pipeline thread, in the batch's
 * phases: note (decode), load (queued to store_load's pipeline), check (deciding a
 * stored-value spend), posted (after every posted command). */
void firstday_begin_batch(struct ledger_ctx *l);
void firstday_note(struct ledger_ctx *l, const Envelope *env);
void firstday_queue_load(struct db_pipeline *pl, struct ledger_ctx *l);
/* May m pay charge from stored value for cmd (a purchase or a card sale)?
 * NULL, or the rejection code "first_day_limit_exceeded". Changes nothing. */
const char *firstday_check(struct ledger_ctx *l, const Envelope *cmd, const struct ledger_member *m,
                           int64_t charge);
/* After a posted top-up or stored-value refund: keeps today's fresh value
 * of a tracked member current. */
void firstday_posted(struct ledger_ctx *l, const struct outcome *o);
/* A SetCardLimits of the batch changed the tenant's limit. */
void firstday_limit_set(struct ledger_ctx *l, const char *tenant_id, int64_t limit);

/* receipts.c: the NotifyRequest a posted command's fact (event id
 * fact_event_id, "" when none was emitted) asks notification to send the
 * member, into the batch's outbox on notify-requests; none for commands
 * that send no receipt. Pipeline thread, while applying the batch. */
void receipts_emit(struct ledger_ctx *l, struct pipeline_batch *b, const struct outcome *o,
                   const char *fact_event_id);

/* prepaid.c: last in the batch's transaction (ledger_before_commit): the tenants'
 * outstanding prepaid value and their threshold crossings (as events). */
int prepaid_track(PGconn *pg, struct ledger_ctx *l, struct pipeline_batch *b, char *err,
                  size_t err_len);
/* May a command add `in` (> 0) to its tenant's outstanding prepaid value?
 * What the tenant had when the batch began, plus what the batch moved so
 * far, plus in, must fit tenant_prepaid.outstanding (a bigint): NULL, or
 * the rejection code PREPAID_OVERFLOW_CODE. Changes nothing. */
#define PREPAID_OVERFLOW_CODE "prepaid_overflow"
#define PREPAID_OVERFLOW_DETAIL                                                                    \
    "the tenant's outstanding prepaid value would pass the most the ledger can hold"
const char *prepaid_check(const struct ledger_ctx *l, const char *tenant_id, int64_t in);

/* cache_resync.c: rewrites the cached balances and cards changed in the
 * last window_s seconds from PostgreSQL (versioned; 0 disables). Blocking;
 * run by the scheduler thread at start, and by cache_sync.c's repair
 * thread once Redis answers again after an outage. */
/* Returns 0, or -1 when PostgreSQL or Redis failed it (logged). */
int ledger_cache_resync(const struct service_common_config *c, long long window_s);

/* expiry.c: the points expiry scheduler (a thread of its own). */
int expiry_scheduler_start(const struct service_common_config *c, long long interval_ms,
                           long long cache_resync_s);

/* pipeline_ops callbacks (apply.c) */
void ledger_begin_batch(void *ctx);
int ledger_apply_batch(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len);
/* Last in the batch's transaction (prepaid_track): must follow
 * ledger_apply_batch before COMMIT. */
int ledger_before_commit(void *ctx, PGconn *pg, struct pipeline_batch *b, char *err, size_t err_len)
    __attribute__((warn_unused_result));
void ledger_after_commit(void *ctx, struct pipeline_batch *b);
/* ledger_after_commit, then the batch's verdicts published on Redis for
 * the waiting requests (verdict_publish.c). */
void ledger_after_commit_publish(void *ctx, struct pipeline_batch *b);

/* lookups in the batch state (apply.c) */
struct ledger_member *ledger_member_find(struct ledger_ctx *l, const char *tenant_id,
                                         const char *member_id, bool create);
struct ledger_verdict *ledger_verdict_find(struct ledger_ctx *l, const char *tenant_id,
                                           const char *command_id);
void ledger_verdict_add(struct ledger_ctx *l, const char *tenant_id, const char *command_id,
                        uint8_t *envelope, size_t len);
struct ledger_ladder *ledger_ladder_find(struct ledger_ctx *l, const char *tenant_id, bool create);

/* the database side (store.c) */
/* Loads the verdicts already given for the batch's command ids, the
 * balances of its members, the ladders of its tenants and what the
 * points, first-day and refund rules need, the first ones in one round
 * trip. */
int store_load(PGconn *pg, struct ledger_ctx *l, struct db_array *cmd_tenants,
               struct db_array *cmd_ids, char *err, size_t err_len);
int store_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len);
void store_rows_init(struct ledger_rows *r);
/* Queues sql, whose $1 and $2 are the batch's members' tenants and ids
 * (store_queue_batch_members) or $1 its tenants (..._tenants), with read
 * called on l. */
void store_queue_batch_members(struct db_pipeline *pl, struct ledger_ctx *l, const char *sql,
                               db_pipeline_read_fn read);
void store_queue_batch_tenants(struct db_pipeline *pl, struct ledger_ctx *l, const char *sql,
                               db_pipeline_read_fn read);
/* Adds a command's one verdict row and its journal lines (each with the
 * reason and the actor: the history answers "why") to the batch's rows. */
void store_add_verdict(struct ledger_rows *r, const Envelope *c, const char *cmd_id,
                       const char *cmd_type, const char *reject_code, const char *posting_id,
                       const uint8_t *verdict, size_t verdict_len, const JournalLine *lines,
                       size_t line_count, const char *reason);
void store_rows_free(struct ledger_rows *r);

/* the cache side (cache_sync.c) */
/* After commit: the batch's balances and cards to Redis, one round trip. */
void ledger_cache_sync(struct ledger_ctx *l);
/* Redis was not there at start: the first write that succeeds repairs
 * what changed since (including the start-up resync's window). */
void ledger_cache_down(struct ledger_ctx *l);

#endif
