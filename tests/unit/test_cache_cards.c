/* Unit tests for the cached card state (libs/cache/cache_cards.c): the
 * encoding round trip, refusal of malformed values, the version rule the
 * write script applies (an older version never replaces a newer one),
 * reading a member's hash back (complete or a miss) and the card's status
 * computed at read time. The script itself is held to the same rule
 * against a real Redis in tests/integration/test_cache.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cache/cache.h"

#define US_PER_DAY (86400LL * 1000000LL)

static struct cache_card card(const char *id, const char *kind, int64_t version)
{
    struct cache_card c = {.version = version,
                           .uses_left = 7,
                           .valid_from_us = 1700000000000000LL,
                           .valid_to_us = 1700000000000000LL + 90 * US_PER_DAY,
                           .frozen_until_us = 0,
                           .freeze_days_left = 14,
                           .discount_bp = 0,
                           .created_us = 1700000000123456LL};
    snprintf(c.card_id, sizeof c.card_id, "%s", id);
    snprintf(c.product_id, sizeof c.product_id, "ten-classes");
    snprintf(c.kind, sizeof c.kind, "%s", kind);
    return c;
}

static void assert_cards_equal(const struct cache_card *a, const struct cache_card *b)
{
    assert_string_equal(a->card_id, b->card_id);
    assert_string_equal(a->product_id, b->product_id);
    assert_string_equal(a->kind, b->kind);
    assert_int_equal(a->version, b->version);
    assert_int_equal(a->uses_left, b->uses_left);
    assert_int_equal(a->valid_from_us, b->valid_from_us);
    assert_int_equal(a->valid_to_us, b->valid_to_us);
    assert_int_equal(a->frozen_until_us, b->frozen_until_us);
    assert_int_equal(a->freeze_days_left, b->freeze_days_left);
    assert_int_equal(a->discount_bp, b->discount_bp);
    assert_int_equal(a->created_us, b->created_us);
}

static void roundtrip(const struct cache_card *in)
{
    char value[CACHE_CARD_VALUE_MAX];
    int len = cache_card_encode(in, value, sizeof value);
    assert_true(len > 0);
    assert_int_equal((size_t)len, strlen(value));
    struct cache_card out;
    memset(&out, 0x5a, sizeof out);
    assert_int_equal(cache_card_decode(in->card_id, strlen(in->card_id), value, (size_t)len, &out),
                     0);
    assert_cards_equal(in, &out);
    assert_int_equal(cache_card_version(value, (size_t)len), in->version);
}

static void test_roundtrip_every_kind(void **state)
{
    static const char *const kinds[] = {"count", "time", "discount", "subscription"};
    for (size_t i = 0; i < 4; i++) {
        struct cache_card c =
            card("0190a1b2-0000-7000-8000-000000000001", kinds[i], (int64_t)i + 1);
        c.discount_bp = i == 2 ? 8500 : 0;
        c.frozen_until_us = i == 1 ? c.valid_from_us + 3 * US_PER_DAY : 0;
        roundtrip(&c);
    }
}

static void test_roundtrip_extremes(void **state)
{
    struct cache_card c = card("c", "count", INT64_MAX);
    c.uses_left = 0;
    c.valid_from_us = INT64_MIN; /* signed fields keep their sign */
    c.valid_to_us = INT64_MAX;
    c.frozen_until_us = -1;
    c.created_us = 0;
    /* a product id may hold the separator: it is the last field */
    snprintf(c.product_id, sizeof c.product_id, "a|b||c|");
    roundtrip(&c);
    /* the longest ids fit the value bound */
    memset(c.product_id, 'p', CACHE_CARD_ID_MAX - 1);
    c.product_id[CACHE_CARD_ID_MAX - 1] = '\0';
    memset(c.card_id, 'k', CACHE_CARD_ID_MAX - 1);
    c.card_id[CACHE_CARD_ID_MAX - 1] = '\0';
    roundtrip(&c);
}

static void test_encode_refuses(void **state)
{
    char value[CACHE_CARD_VALUE_MAX];
    struct cache_card c = card("c1", "count", 1);
    c.version = -1;
    assert_int_equal(cache_card_encode(&c, value, sizeof value), -1);
    c = card("c1", "Count", 1); /* kinds are lower-case words */
    assert_int_equal(cache_card_encode(&c, value, sizeof value), -1);
    c = card("c1", "", 1);
    assert_int_equal(cache_card_encode(&c, value, sizeof value), -1);
    c = card("#count", "count", 1); /* the count's field is never a card */
    assert_int_equal(cache_card_encode(&c, value, sizeof value), -1);
    c = card("", "count", 1);
    assert_int_equal(cache_card_encode(&c, value, sizeof value), -1);
    c = card("c1", "count", 1);
    c.product_id[0] = '\0';
    assert_int_equal(cache_card_encode(&c, value, sizeof value), -1);
    c = card("c1", "count", 1);
    assert_int_equal(cache_card_encode(&c, value, 10), -1); /* too small: no partial value */
}

static void test_decode_refuses(void **state)
{
    static const char *const bad[] = {
        "",                                           /* nothing */
        "1|count|7|1|2|0|0|0|5",                      /* no product id */
        "1|count|7|1|2|0|0|0|5|",                     /* empty product id */
        "-1|count|7|1|2|0|0|0|5|p",                   /* negative version */
        "x|count|7|1|2|0|0|0|5|p",                    /* not a number */
        "1|count|7a|1|2|0|0|0|5|p",                   /* trailing garbage */
        "1|count||1|2|0|0|0|5|p",                     /* empty number */
        "1|count|-|1|2|0|0|0|5|p",                    /* a sign alone */
        "1|count|+7|1|2|0|0|0|5|p",                   /* no plus signs */
        "1|co unt|7|1|2|0|0|0|5|p",                   /* kind */
        "1|count|7|1|99999999999999999999|0|0|0|5|p", /* overflow */
        "1|count|7|1|2|0|0|5|p",                      /* a field short */
        " 1|count|7|1|2|0|0|0|5|p",                   /* leading space */
    };
    struct cache_card out;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (cache_card_decode("c1", 2, bad[i], strlen(bad[i]), &out) != -1)
            fail_msg("decoded: \"%s\"", bad[i]);
    }
    const char *ok = "1|count|7|1|2|0|0|0|5|p";
    assert_int_equal(cache_card_decode("c1", 2, ok, strlen(ok), &out), 0);
    assert_int_equal(cache_card_decode("#count", 6, ok, strlen(ok), &out), -1);
    assert_int_equal(cache_card_decode("", 0, ok, strlen(ok), &out), -1);
    char with_nul[] = "1|count|7|1|2|0|0|0|5|p\0q";
    assert_int_equal(cache_card_decode("c1", 2, with_nul, sizeof with_nul - 1, &out), -1);
}

/* The write rule: absent or unreadable cached values are replaced, an
 * older version is replaced, the same or a newer one never is. */
static void test_version_ordering(void **state)
{
    char v3[CACHE_CARD_VALUE_MAX], v4[CACHE_CARD_VALUE_MAX], v10[CACHE_CARD_VALUE_MAX];
    struct cache_card c = card("c1", "count", 3);
    int l3 = cache_card_encode(&c, v3, sizeof v3);
    c.version = 4;
    c.uses_left = 6;
    int l4 = cache_card_encode(&c, v4, sizeof v4);
    c.version = 10; /* compared as numbers, not text: "10" < "4" as strings */
    c.uses_left = 0;
    int l10 = cache_card_encode(&c, v10, sizeof v10);
    assert_true(cache_card_replaces(NULL, 0, v3, (size_t)l3));
    assert_true(cache_card_replaces(v3, (size_t)l3, v4, (size_t)l4));
    assert_false(cache_card_replaces(v4, (size_t)l4, v3, (size_t)l3)); /* older never wins */
    assert_false(cache_card_replaces(v4, (size_t)l4, v4, (size_t)l4)); /* same: left alone */
    assert_true(cache_card_replaces(v4, (size_t)l4, v10, (size_t)l10));
    assert_false(cache_card_replaces(v10, (size_t)l10, v4, (size_t)l4));
    const char *junk = "garbage";
    assert_true(cache_card_replaces(junk, strlen(junk), v3, (size_t)l3)); /* a repair */
    assert_int_equal(cache_card_version(junk, strlen(junk)), -1);
    assert_int_equal(cache_card_version("12|", 3), 12);
    assert_int_equal(cache_card_version("12", 2), -1);
}

/* ---- reading a member's hash (an HGETALL reply built by hand) ---- */
struct fake_reply {
    redisReply top;
    redisReply *elems[2 * (CACHE_CARDS_PER_MEMBER_MAX + 4)];
    redisReply strs[2 * (CACHE_CARDS_PER_MEMBER_MAX + 4)];
    char text[2 * (CACHE_CARDS_PER_MEMBER_MAX + 4)][CACHE_CARD_VALUE_MAX];
};

static void fake_init(struct fake_reply *f)
{
    memset(f, 0, sizeof(*f));
    f->top.type = REDIS_REPLY_ARRAY;
    f->top.element = f->elems;
}

static void fake_add(struct fake_reply *f, const char *field, const char *value)
{
    const char *parts[2] = {field, value};
    for (int k = 0; k < 2; k++) {
        size_t i = f->top.elements++;
        snprintf(f->text[i], sizeof f->text[i], "%s", parts[k]);
        f->strs[i] =
            (redisReply){.type = REDIS_REPLY_STRING, .str = f->text[i], .len = strlen(f->text[i])};
        f->elems[i] = &f->strs[i];
    }
}

static void fake_add_card(struct fake_reply *f, const struct cache_card *c)
{
    char value[CACHE_CARD_VALUE_MAX];
    assert_true(cache_card_encode(c, value, sizeof value) > 0);
    fake_add(f, c->card_id, value);
}

static void test_read_complete_and_sorted(void **state)
{
    static struct fake_reply f;
    static struct cache_cards_read out;
    fake_init(&f);
    struct cache_card a = card("b-second", "count", 2), b = card("a-third", "time", 1),
                      c = card("z-first", "discount", 5);
    a.created_us = 200;
    b.created_us = 200; /* same instant: by card id */
    c.created_us = 100;
    fake_add_card(&f, &a);
    fake_add(&f, CACHE_CARDS_COUNT_FIELD, "3");
    fake_add_card(&f, &b);
    fake_add_card(&f, &c);
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 1);
    assert_int_equal(out.card_count, 3);
    assert_int_equal(out.n_cards, 3);
    assert_int_equal(out.n_bad, 0);
    assert_string_equal(out.cards[0].card_id, "z-first");
    assert_string_equal(out.cards[1].card_id, "a-third");
    assert_string_equal(out.cards[2].card_id, "b-second");
    assert_cards_equal(&out.cards[2], &a);
}

/* Anything short of a complete set is a miss, never a partial answer. */
static void test_read_incomplete_is_a_miss(void **state)
{
    static struct fake_reply f;
    static struct cache_cards_read out;
    struct cache_card a = card("c1", "count", 1), b = card("c2", "count", 1);

    fake_init(&f); /* absent key: HGETALL answers an empty array */
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 0);
    assert_int_equal(out.card_count, -1);

    fake_init(&f); /* cards without the count (written by hand?) */
    fake_add_card(&f, &a);
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 0);

    fake_init(&f); /* refilled after a flush with one of two cards */
    fake_add(&f, CACHE_CARDS_COUNT_FIELD, "2");
    fake_add_card(&f, &a);
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 0);
    assert_int_equal(out.card_count, 2);
    assert_int_equal(out.n_cards, 1);

    fake_init(&f); /* one card unreadable */
    fake_add(&f, CACHE_CARDS_COUNT_FIELD, "2");
    fake_add_card(&f, &a);
    fake_add(&f, b.card_id, "7|count|not-a-number|1|2|0|0|0|5|p");
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 0);
    assert_int_equal(out.n_bad, 1);

    fake_init(&f); /* more cards than the limit: only the count is cached */
    char count[16];
    snprintf(count, sizeof count, "%d", CACHE_CARDS_PER_MEMBER_MAX + 1);
    fake_add(&f, CACHE_CARDS_COUNT_FIELD, count);
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 0);

    fake_init(&f); /* the count unreadable */
    fake_add(&f, CACHE_CARDS_COUNT_FIELD, "-1");
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 0);

    redisReply not_a_hash = {.type = REDIS_REPLY_ERROR, .str = "WRONGTYPE", .len = 9};
    assert_int_equal(cache_cards_from_reply(&not_a_hash, &out), -1);
    assert_int_equal(cache_cards_from_reply(NULL, &out), -1);
}

static void test_read_zero_cards(void **state)
{
    static struct fake_reply f;
    static struct cache_cards_read out;
    fake_init(&f);
    fake_add(&f, CACHE_CARDS_COUNT_FIELD, "0");
    assert_int_equal(cache_cards_from_reply(&f.top, &out), 1);
    assert_int_equal(out.n_cards, 0);
}

/* Only valid_to is cached: the same cached bytes say "active" today and
 * "expired" once time passes it, with no write in between. */
static void test_status_at_read_time(void **state)
{
    struct cache_card c = card("c1", "time", 1);
    int64_t from = c.valid_from_us, to = c.valid_to_us;
    assert_string_equal(cache_card_status(&c, from), "active");
    assert_string_equal(cache_card_status(&c, to - 1), "active");
    assert_string_equal(cache_card_status(&c, to), "expired");
    assert_string_equal(cache_card_status(&c, to + US_PER_DAY), "expired");
    assert_string_equal(cache_card_status(&c, from - 1), "expired");
    c.frozen_until_us = from + 5 * US_PER_DAY;
    assert_string_equal(cache_card_status(&c, from + US_PER_DAY), "frozen");
    assert_string_equal(cache_card_status(&c, from + 5 * US_PER_DAY), "active");
    struct cache_card n = card("c2", "count", 1);
    n.uses_left = 0;
    assert_string_equal(cache_card_status(&n, from), "used_up");
    assert_string_equal(cache_card_status(&n, to), "expired"); /* expiry says more */
}

static void test_key(void **state)
{
    char key[CACHE_KEY_MAX];
    assert_int_equal(cache_cards_key(key, sizeof key, "demo", "m1"), 0);
    assert_string_equal(key, "tessera:demo:member:m1:cards");
    char small[12];
    assert_int_equal(cache_cards_key(small, sizeof small, "demo", "m1"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_every_kind),
        cmocka_unit_test(test_roundtrip_extremes),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_refuses),
        cmocka_unit_test(test_version_ordering),
        cmocka_unit_test(test_read_complete_and_sorted),
        cmocka_unit_test(test_read_incomplete_is_a_miss),
        cmocka_unit_test(test_read_zero_cards),
        cmocka_unit_test(test_status_at_read_time),
        cmocka_unit_test(test_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
