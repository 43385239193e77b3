/* Members' cards in the Redis cache (see cache.h): the encoding of one
 * card's state as a hash value, reading a member's hash back, and the
 * card's state at read time. The versioned write script and its pipeline
 * are in cache.c beside the balances' script, whose machinery they share.
 *
 * The encoding is text, one line of '|'-separated fields, the version
 * first so the Lua script can compare versions without decoding the rest
 * (string.match '^(%d+)|'). Everything here is pure except
 * cache_get_cards; the unit tests hold it to its contract
 * (tests/unit/test_cache_cards.c). */
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "cache/cache_internal.h"
#include "metrics/metrics.h"

#define CARD_INT_DIGITS_MAX 20 /* "-9223372036854775808" */
#define CARD_NUMERIC_FIELDS 7  /* after version and kind, before the product id */

int cache_cards_key(char *out, size_t out_len, const char *tenant_id, const char *member_id)
{
    return cache_member_key(out, out_len, tenant_id, member_id, "cards");
}

static bool kind_ok(const char *s, size_t len)
{
    if (len == 0 || len >= CACHE_CARD_KIND_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || s[i] == '_'))
            return false;
    return true;
}

/* An id as a field name or the last value field: 1..CACHE_CARD_ID_MAX-1
 * bytes, no NUL. A card id never starts with '#' (the count's field). */
static bool id_ok(const char *s, size_t len)
{
    return len > 0 && len < CACHE_CARD_ID_MAX && memchr(s, '\0', len) == NULL;
}

int cache_card_encode(const struct cache_card *c, char *out, size_t out_len)
{
    assert(c != NULL && out != NULL);
    size_t kind_len = strnlen(c->kind, CACHE_CARD_KIND_MAX);
    size_t product_len = strnlen(c->product_id, CACHE_CARD_ID_MAX);
    size_t card_len = strnlen(c->card_id, CACHE_CARD_ID_MAX);
    if (c->version < 0 || !kind_ok(c->kind, kind_len) || !id_ok(c->product_id, product_len) ||
        !id_ok(c->card_id, card_len) || c->card_id[0] == '#')
        return -1;
    int n = snprintf(out, out_len,
                     "%" PRId64 "|%s|%" PRId64 "|%" PRId64 "|%" PRId64 "|%" PRId64 "|%" PRId64
                     "|%" PRId64 "|%" PRId64 "|%s",
                     c->version, c->kind, c->uses_left, c->valid_from_us, c->valid_to_us,
                     c->frozen_until_us, c->freeze_days_left, c->discount_bp, c->created_us,
                     c->product_id);
    return n < 0 || (size_t)n >= out_len ? -1 : n;
}

/* Parses [s, s+len) as a whole decimal int64: an optional '-' only when
 * signed_ok, digits only, no overflow. */
static bool parse_int(const char *s, size_t len, bool signed_ok, int64_t *out)
{
    if (len == 0 || len > CARD_INT_DIGITS_MAX)
        return false;
    char text[CARD_INT_DIGITS_MAX + 1];
    memcpy(text, s, len);
    text[len] = '\0';
    size_t i = text[0] == '-' && signed_ok ? 1 : 0;
    if (i == len)
        return false;
    for (; i < len; i++)
        if (text[i] < '0' || text[i] > '9')
            return false;
    errno = 0;
    long long v = strtoll(text, NULL, 10);
    if (errno == ERANGE)
        return false;
    *out = v;
    return true;
}

/* The next '|'-separated token of [*s, end): its start and length; moves
 * *s past the separator. False when there is no separator left. */
static bool next_token(const char **s, const char *end, const char **tok, size_t *len)
{
    const char *bar = memchr(*s, '|', (size_t)(end - *s));
    if (bar == NULL)
        return false;
    *tok = *s;
    *len = (size_t)(bar - *s);
    *s = bar + 1;
    return true;
}

int cache_card_decode(const char *field, size_t field_len, const char *value, size_t value_len,
                      struct cache_card *out)
{
    assert(field != NULL && value != NULL && out != NULL);
    if (!id_ok(field, field_len) || field[0] == '#' || value_len >= CACHE_CARD_VALUE_MAX)
        return -1;
    memset(out, 0, sizeof(*out));
    memcpy(out->card_id, field, field_len);
    const char *s = value, *end = value + value_len, *tok;
    size_t len;
    if (!next_token(&s, end, &tok, &len) || !parse_int(tok, len, false, &out->version))
        return -1;
    if (!next_token(&s, end, &tok, &len) || !kind_ok(tok, len))
        return -1;
    memcpy(out->kind, tok, len);
    int64_t *numbers[CARD_NUMERIC_FIELDS] = {
        &out->uses_left,        &out->valid_from_us, &out->valid_to_us, &out->frozen_until_us,
        &out->freeze_days_left, &out->discount_bp,   &out->created_us};
    for (size_t i = 0; i < CARD_NUMERIC_FIELDS; i++)
        if (!next_token(&s, end, &tok, &len) || !parse_int(tok, len, true, numbers[i]))
            return -1;
    size_t product_len = (size_t)(end - s); /* the rest, '|' and all */
    if (!id_ok(s, product_len))
        return -1;
    memcpy(out->product_id, s, product_len);
    return 0;
}

int64_t cache_card_version(const char *value, size_t value_len)
{
    const char *bar = value ? memchr(value, '|', value_len) : NULL;
    int64_t v;
    return bar != NULL && parse_int(value, (size_t)(bar - value), false, &v) ? v : -1;
}

bool cache_card_replaces(const char *cached, size_t cached_len, const char *incoming,
                         size_t incoming_len)
{
    int64_t in = cache_card_version(incoming, incoming_len);
    assert(in >= 0); /* writers encode through cache_card_encode */
    int64_t old = cached != NULL ? cache_card_version(cached, cached_len) : -1;
    return old < 0 || old < in;
}

static int card_order(const void *a, const void *b)
{
    const struct cache_card *x = a, *y = b;
    if (x->created_us != y->created_us)
        return x->created_us < y->created_us ? -1 : 1;
    return strcmp(x->card_id, y->card_id);
}

int cache_cards_from_reply(const redisReply *reply, struct cache_cards_read *out)
{
    assert(out != NULL);
    out->card_count = -1;
    out->n_cards = out->n_bad = 0;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *f = reply->element[i], *v = reply->element[i + 1];
        if (f->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            out->n_bad++;
            continue;
        }
        if (f->len == strlen(CACHE_CARDS_COUNT_FIELD) &&
            memcmp(f->str, CACHE_CARDS_COUNT_FIELD, f->len) == 0) {
            int64_t n;
            if (parse_int(v->str, v->len, false, &n))
                out->card_count = n;
            else
                out->n_bad++;
            continue;
        }
        if (out->n_cards == CACHE_CARDS_PER_MEMBER_MAX ||
            cache_card_decode(f->str, f->len, v->str, v->len, &out->cards[out->n_cards]) != 0) {
            out->n_bad++;
            continue;
        }
        out->n_cards++;
    }
    qsort(out->cards, out->n_cards, sizeof(out->cards[0]), card_order);
    return out->card_count >= 0 && out->card_count <= CACHE_CARDS_PER_MEMBER_MAX &&
                   out->n_bad == 0 && (int64_t)out->n_cards == out->card_count
               ? 1
               : 0;
}

const char *cache_card_status(const struct cache_card *c, int64_t now_us)
{
    assert(c != NULL);
    if (now_us >= c->valid_to_us || now_us < c->valid_from_us)
        return "expired";
    if (now_us < c->frozen_until_us)
        return "frozen";
    if (strcmp(c->kind, "count") == 0 && c->uses_left <= 0)
        return "used_up";
    return "active";
}

int cache_get_cards(redisContext *rc, const char *tenant_id, const char *member_id,
                    struct cache_cards_read *out)
{
    assert(rc != NULL && out != NULL);
    char key[CACHE_KEY_MAX];
    if (cache_cards_key(key, sizeof key, tenant_id, member_id) != 0)
        return -1;
    double started_s = metrics_now_seconds();
    redisReply *r = redisCommand(rc, "HGETALL %s", key);
    int status = cache_cards_from_reply(r, out);
    if (r != NULL)
        cache_observe("get_cards", metrics_now_seconds() - started_s);
    freeReplyObject(r);
    return status;
}
