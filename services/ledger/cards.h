/* Cards in the ledger: products, tenant card limits, cards sold, used and
 * frozen. Same shape as the money commands: the batch loads what it needs
 * in a fixed number of statements, decides every command in memory in
 * order (rules_cards.c), and writes through unnest(); verdicts and journal
 * lines go into the ledger's own rows (ledger.h) so duplicates, offsets
 * and the outbox work exactly as for top-ups. */
#ifndef TESSERA_LEDGER_CARDS_H
#define TESSERA_LEDGER_CARDS_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "db/db.h"
#include "events/codec.h"
#include "rules_cards.h"
#include "rules_pricing.h"
#include "service/pipeline.h"
#include "events/card_types.h"

#define CARD_BRANCHES_MAX 32 /* branches a product may be restricted to */

struct ledger_ctx;
struct ledger_cards;

/* Batch state of the card commands; the ledger owns one. */
struct ledger_cards *cards_new(void);
void cards_free(struct ledger_cards *c);
void cards_begin_batch(struct ledger_cards *c);

/* The command id of a card command, NULL for any other payload. */
const char *cards_command_id(const Envelope *env);
/* True for commands about the whole tenant (no member_id). */
bool cards_is_tenant_command(const Envelope *env);

/* Notes what a command will need loaded (its card, product, limits). */
void cards_note(struct ledger_ctx *l, const Envelope *env);
int cards_load(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len);
/* The command type a card command's verdict and journal name. */
const char *cards_command_type(const Envelope *env);

struct outcome;
/* Decides one card command (not a duplicate: apply.c answered those) into
 * o; apply.c gives the verdict and calls the two below. */
void cards_decide(struct ledger_ctx *l, struct outcome *o);
/* What a posted card command's verdict carries beyond the common fields
 * (its card or product, its coupon); borrows from o into cs and coupon. */
void cards_fill_posted(const struct outcome *o, LedgerPosted *posted, CardState *cs,
                       CouponState *coupon);
/* The facts of a posted card command (CardChanged, CardFraudAlert); the
 * CardChanged's event id goes to change_id ("" when none was emitted). */
void cards_emit_facts(struct pipeline_batch *b, const struct outcome *o, const char *key,
                      char change_id[UUID_STR_SIZE]);
/* Writes the batch's card rows, then reads back every card of each member
 * whose cards changed, for the cache. */
int cards_write(PGconn *pg, struct ledger_ctx *l, char *err, size_t err_len);

struct cache_member_cards;
/* Loads into c, for the cache, every card of the members named by the two
 * arrays (tenant and member per element; the resync's pages use it too). */
int cards_cache_load(PGconn *pg, struct ledger_cards *c, struct db_array *tenants,
                     struct db_array *members, char *err, size_t err_len);
/* After commit (cache_sync.c): the members whose cards the batch changed,
 * each with its whole committed set; *out stays valid until the next
 * batch begins. Returns how many. */
size_t cards_cache_state(struct ledger_cards *c, const struct cache_member_cards **out);

/* The discount card and coupon a purchase names (apply.c), for the
 * pricing rules (rules_price_purchase): NULL with *card and *coupon set
 * (each NULL when the purchase names none; they borrow the batch state),
 * or card_not_found / coupon_not_found for one that is not the member's.
 * Changes nothing. */
const char *cards_purchase_terms(struct ledger_ctx *l, const Envelope *cmd,
                                 struct price_card *card_out, const struct price_card **card,
                                 const struct coupon_state **coupon);

struct ledger_coupon;
/* A coupon as verdicts carry it; borrows strings from k. */
void cards_coupon_state(const struct ledger_coupon *k, CouponState *cs);
/* The purchase was posted: its coupon is used. */
void cards_purchase_coupon_commit(struct ledger_ctx *l, const Envelope *cmd, int64_t discount);

#endif
