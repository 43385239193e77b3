/* What the card files of the ledger share (cards.h is the rest of the
 * ledger's view): the batch state of products, limits and cards, the
 * lookups into it, and each command kind's decision (cards_sale.c,
 * cards_use.c, cards_coupons.c), which fill the ledger's one outcome
 * (ledger.h) so every command kind takes the same verdict path (apply.c). */
#ifndef TESSERA_LEDGER_CARDS_INTERNAL_H
#define TESSERA_LEDGER_CARDS_INTERNAL_H

#include "cards.h"
#include "ledger.h"

#define ID_MAX       EVENT_ID_FIELD_MAX
#define NAME_MAX_LEN TEXT_NAME_BYTES_MAX
#define ACCOUNT_MAX  LEDGER_ACCOUNT_MAX
#define VALIDITY_OVERFLOW_DETAIL                                                                   \
    "the card's validity or uses would pass the most the ledger can hold"

struct branches {
    char ids[CARD_BRANCHES_MAX][ID_MAX];
    size_t count;
};

struct product {
    char tenant_id[ID_MAX], product_id[ID_MAX], name[NAME_MAX_LEN + 1];
    bool found, dirty;
    struct card_terms terms;
    int64_t price, discount_bp;
    struct branches branches;
    char defined_by[ID_MAX];
};

struct tenant_limits {
    char tenant_id[ID_MAX];
    struct card_limits lim;
    bool dirty;
};

struct card {
    char tenant_id[ID_MAX], card_id[ID_MAX], member_id[ID_MAX], product_id[ID_MAX];
    char last_branch[ID_MAX], sold_branch[ID_MAX];
    bool found, dirty;
    struct card_state st;
    int64_t price, discount_bp, version;
    int64_t paid_total, uses_total; /* every sale and renewal: for the unused value */
    struct branches branches;
};

/* A member whose cards changed in the batch, with every card it has as
 * the cache holds them (read back inside the batch's transaction, so what
 * goes to Redis is exactly what commits). */
struct cached_member {
    char tenant_id[ID_MAX], member_id[ID_MAX];
    int64_t card_count;
    size_t first, n; /* in ledger_cards.cached */
};

/* A member whose active card of a product a command asks for (ExtendCard
 * names the product, not the card): its cards of the product are loaded. */
struct member_product {
    char tenant_id[ID_MAX], member_id[ID_MAX], product_id[ID_MAX];
};

struct ledger_cards {
    struct member_product *wanted;
    size_t wanted_count, wanted_cap;
    struct product *products;
    size_t product_count, product_cap;
    struct tenant_limits *limits;
    size_t limit_count, limit_cap;
    struct card *cards;
    size_t card_count, card_cap;
    struct ledger_coupons *coupons;
    /* for the cache, after commit (cards_cache_state) */
    struct cached_member *cached_members;
    size_t cached_member_count, cached_member_cap;
    struct cache_card *cached;
    size_t cached_count, cached_cap;
    struct cache_member_cards *cache_items; /* built by cards_cache_state */
    size_t cache_item_cap;
    /* The card a sale or renewal plans before it is paid for (large, so
     * not on the stack). Per worker: each pipeline owns its ledger_cards,
     * and one shared card would let two workers' sales swap cards. */
    struct card planned;
};

/* Copies an id checked at the door; one that does not fit asserts. */
void cards_copy_id(char dst[ID_MAX], const char *src);
/* Lookups in the batch state (linear: a batch is small); create adds an
 * empty entry when there is none. */
struct product *cards_product_find(struct ledger_cards *c, const char *tenant_id,
                                   const char *product_id, bool create);
struct tenant_limits *cards_limits_find(struct ledger_cards *c, const char *tenant_id);
struct card *cards_card_find(struct ledger_cards *c, const char *tenant_id, const char *card_id,
                             bool create);
struct card *cards_own_card(struct ledger_ctx *l, const Envelope *e, const char *card_id);
bool cards_branch_allowed(const struct branches *b, const char *branch_id);

/* The decisions of each kind, called by cards_decide (cards.c). */
void cards_decide_issue(struct ledger_ctx *l, struct outcome *o);         /* cards_sale.c */
void cards_decide_use(struct ledger_ctx *l, struct outcome *o);           /* cards_use.c */
void cards_decide_freeze(struct ledger_ctx *l, struct outcome *o);        /* cards_use.c */
void cards_decide_issue_coupon(struct ledger_ctx *l, struct outcome *o);  /* cards_coupons.c */
void cards_decide_extend(struct ledger_ctx *l, struct outcome *o);        /* cards_extend.c */
void cards_decide_redeem_coupon(struct ledger_ctx *l, struct outcome *o); /* cards_coupons.c */

/* cards_store.c: adds to the batch state every card of the members and
 * products in c->wanted (one statement; none when nothing is wanted). */
int cards_load_wanted(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
    __attribute__((warn_unused_result));

/* cards_cache.c: reads back, in the batch's transaction, every card of
 * the members whose cards the batch changed (for the cache). */
int cards_cache_reload(PGconn *pg, struct ledger_cards *c, char *err, size_t err_len)
    __attribute__((warn_unused_result));

#endif
