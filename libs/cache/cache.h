/* The Redis member-state cache. Balances live in a hash per member,
 * "tessera:<tenant>:member:<member>:balances" with fields points,
 * sv_principal, sv_bonus, version and points_pending (a hash without
 * points_pending, written before it was cached, reads as a miss). Writes
 * go through a Lua script that only replaces an older version, so a late
 * write never undoes a newer one.
 * A member's cards live in a second hash, "...:member:<member>:cards": one
 * field per card (card id -> its encoded state, version first, see
 * cache_card_encode) plus "#count", the number of cards the member has;
 * each card is versioned on its own by a second script of the same kind.
 * The cache can be flushed at any time: readers fall back to PostgreSQL. */
#ifndef TESSERA_CACHE_H
#define TESSERA_CACHE_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CACHE_KEY_MAX      256
#define CACHE_PASSWORD_MAX 512

/* ---- AUTH (cache_auth.c) ----
 * Sets the password every connection opened afterwards by this process
 * (cache_connect, cache_async_new, the session store) sends with AUTH;
 * NULL or "" sends none. Call once at start-up, before threads start
 * (service_init does, from TESSERA_REDIS_PASSWORD). -1 when too long. */
int cache_set_password(const char *password) __attribute__((warn_unused_result));
/* Sends AUTH on a blocking connection (nothing without a password).
 * 0, or -1 with err (a wrong password, or Redis wants none). */
int cache_auth(redisContext *rc, char *err, size_t err_len) __attribute__((warn_unused_result));
/* Queues AUTH as the first command of a new asynchronous link; a refusal
 * is logged and the link's later commands fail. 0, or -1. */
struct redisAsyncContext;
int cache_async_auth(struct redisAsyncContext *ac) __attribute__((warn_unused_result));

struct cache_balances {
    const char *tenant_id;
    const char *member_id;
    int64_t points;
    int64_t sv_principal;
    int64_t sv_bonus;
    int64_t version;
    int64_t points_pending;
};

/* Writes the key of a member's balances hash; -1 when it does not fit. */
int cache_balances_key(char *out, size_t out_len, const char *tenant_id, const char *member_id);

/* ---- blocking, for consumer threads ---- */
/* Connects with a timeout on connect and on every command. NULL with err. */
redisContext *cache_connect(const char *host, int port, int timeout_ms, char *err, size_t err_len);
/* Pipelines one versioned write per element (one round trip for all).
 * Returns the number of hashes actually replaced, or -1 with err (the
 * caller reconnects; the cache is only a cache). */
int cache_put_balances(redisContext *rc, const struct cache_balances *items, size_t count,
                       char *err, size_t err_len);
/* 1 hit (tenant_id/member_id of out are left untouched), 0 miss, -1 error. */
int cache_get_balances(redisContext *rc, const char *tenant_id, const char *member_id,
                       struct cache_balances *out);

/* ---- cards (cache_cards.c) ----
 * Cards are never deleted (a card is refunded or expires, it stays a row),
 * so a member's card count only grows: the script keeps the larger
 * "#count", and readers serve the hash only when it holds exactly that
 * many readable cards (a hash half-refilled after a flush is a miss). */
#define CACHE_CARDS_PER_MEMBER_MAX 100 /* more: only "#count" is cached, readers ask PostgreSQL */
#define CACHE_CARD_ID_MAX          128 /* card and product ids, with their NUL */
#define CACHE_CARD_KIND_MAX        16
#define CACHE_CARD_VALUE_MAX       512      /* one encoded card */
#define CACHE_CARDS_COUNT_FIELD    "#count" /* never a card id: those are UUIDs */

/* One card as the cache holds it: what a reader shows, nothing that goes
 * stale with time. Validity is cached as valid_from/valid_to and frozen
 * as frozen_until, so "expired" and "frozen" are computed at read time
 * (cache_card_status), never cached. */
struct cache_card {
    char card_id[CACHE_CARD_ID_MAX];
    char product_id[CACHE_CARD_ID_MAX];
    char kind[CACHE_CARD_KIND_MAX]; /* count, time, discount, subscription */
    int64_t version;                /* the ledger's cards.version */
    int64_t uses_left;
    int64_t valid_from_us, valid_to_us;
    int64_t frozen_until_us; /* 0: never frozen */
    int64_t freeze_days_left;
    int64_t discount_bp;
    int64_t created_us; /* readers list cards by (created_us, card_id), like PostgreSQL */
};

/* One member's cards for one versioned write: card_count is every card
 * the member has; cards holds all of them (n_cards == card_count, at most
 * CACHE_CARDS_PER_MEMBER_MAX), or none: the count alone, which readers
 * take for a miss (a member past the limit). Borrowed pointers. */
struct cache_member_cards {
    const char *tenant_id;
    const char *member_id;
    int64_t card_count;
    const struct cache_card *cards;
    size_t n_cards;
};

/* A member's cards hash as read back. */
struct cache_cards_read {
    int64_t card_count; /* "#count"; -1 when absent or unreadable */
    size_t n_cards;     /* decoded into cards[], sorted by (created_us, card_id) */
    size_t n_bad;       /* fields that do not decode (or past the array) */
    struct cache_card cards[CACHE_CARDS_PER_MEMBER_MAX];
};

/* Writes the key of a member's cards hash; -1 when it does not fit. */
int cache_cards_key(char *out, size_t out_len, const char *tenant_id, const char *member_id);
/* Encodes a card's state as a hash value: "<version>|<kind>|<uses_left>|
 * <valid_from_us>|<valid_to_us>|<frozen_until_us>|<freeze_days_left>|
 * <discount_bp>|<created_us>|<product_id>" (the version first, where the
 * script reads it; the product id last, so it may hold '|'). Returns the
 * length, or -1 when a field is out of range or out is too small. */
int cache_card_encode(const struct cache_card *c, char *out, size_t out_len);
/* Decodes field (the card id) and value into out; 0, or -1 when either is
 * malformed (out is then undefined). Both need no NUL. */
int cache_card_decode(const char *field, size_t field_len, const char *value, size_t value_len,
                      struct cache_card *out);
/* The version an encoded value starts with; -1 when it has none. */
int64_t cache_card_version(const char *value, size_t value_len);
/* The rule the write script applies to one field: an incoming value
 * replaces the cached one (NULL: none) only when the cached one has no
 * readable version or an older one. Kept beside the script so tests can
 * hold the two to the same table. */
bool cache_card_replaces(const char *cached, size_t cached_len, const char *incoming,
                         size_t incoming_len);
/* Reads an HGETALL reply. 1 when it is a complete set a reader may serve
 * ("#count" present, within CACHE_CARDS_PER_MEMBER_MAX, exactly that many
 * cards, all readable), 0 when absent or not complete (a miss; out still
 * says what was there, for the audit), -1 when the reply is not a hash. */
int cache_cards_from_reply(const redisReply *reply, struct cache_cards_read *out);
/* The card's state at now_us, as the ledger's rules would judge a use:
 * "expired" outside [valid_from, valid_to), "frozen" before frozen_until,
 * "used_up" for a count card without uses, else "active". */
const char *cache_card_status(const struct cache_card *c, int64_t now_us);

/* Pipelines the versioned writes of balances and of members' cards, one
 * EVALSHA per member hash, all in ONE round trip. Returns the number of
 * balance hashes and card fields actually replaced, or -1 with err (the
 * caller reconnects; the cache is only a cache). */
int cache_put_member_state(redisContext *rc, const struct cache_balances *balances, size_t nb,
                           const struct cache_member_cards *cards, size_t nc, char *err,
                           size_t err_len);
/* The cards part alone (resync). */
int cache_put_cards(redisContext *rc, const struct cache_member_cards *cards, size_t count,
                    char *err, size_t err_len);
/* 1 complete, 0 miss (out says what was there), -1 error. */
int cache_get_cards(redisContext *rc, const char *tenant_id, const char *member_id,
                    struct cache_cards_read *out);

/* ---- asynchronous, for the ingest loop ---- */
struct cache_async;
/* status: 1 hit, 0 miss, -1 error (not connected, timeout). */
typedef void (*cache_balances_cb)(void *arg, int status, const struct cache_balances *b);

/* Connects on base and reconnects with back-off when the link drops. */
struct cache_async *cache_async_new(struct event_base *base, const char *host, int port, char *err,
                                    size_t err_len);
/* Calls cb on the loop exactly once (immediately with -1 when down). */
void cache_async_get_balances(struct cache_async *c, const char *tenant_id, const char *member_id,
                              cache_balances_cb cb, void *arg);
/* status: 1 complete set, 0 miss, -1 error; cards lives during the call. */
typedef void (*cache_cards_cb)(void *arg, int status, const struct cache_cards_read *cards);
/* Calls cb on the loop exactly once (immediately with -1 when down). */
void cache_async_get_cards(struct cache_async *c, const char *tenant_id, const char *member_id,
                           cache_cards_cb cb, void *arg);
bool cache_async_connected(const struct cache_async *c);
void cache_async_free(struct cache_async *c);

#endif
