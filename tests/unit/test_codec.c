/* The envelope codec: round trip, size limits both ways, validation of
 * what arrives, and the CloudEvents headers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "events/codec.h"

static uint8_t *encode_topup(size_t *len, const char *tenant, int64_t amount)
{
    struct event_meta meta = {.tenant_id = tenant,
                              .branch_id = "hq",
                              .member_id = "m-1",
                              .actor_kind = "api_key",
                              .actor_id = "k"};
    Envelope env;
    Actor actor;
    TopUpStoredValue t;
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__top_up_stored_value__init(&t);
    t.command_id = "01a2a2a2-0000-7000-8000-000000000001";
    t.amount = amount;
    t.payment_method = "cash";
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_TOP_UP_STORED_VALUE;
    env.top_up_stored_value = &t;
    return envelope_encode(&env, len);
}

static void test_round_trip(void **state)
{
    size_t len = 0;
    uint8_t *buf = encode_topup(&len, "demo", 100000);
    assert_non_null(buf);
    char err[128];
    Envelope *env = envelope_decode(buf, len, err, sizeof(err));
    assert_non_null(env);
    assert_string_equal(env->type, "tessera.ledger.v1.TopUpStoredValue");
    assert_string_equal(env->tenant_id, "demo");
    assert_true(uuid_is_valid(env->event_id));
    assert_int_equal(env->top_up_stored_value->amount, 100000);
    assert_true(env->recorded_at_us > 0 && env->occurred_at_us > 0);
    envelope_free(env);
    free(buf);
}

static void test_rejects_garbage_and_limits(void **state)
{
    char err[128];
    static const uint8_t garbage[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
    assert_null(envelope_decode(garbage, sizeof(garbage), err, sizeof(err)));
    assert_null(envelope_decode(garbage, 0, err, sizeof(err)));
    assert_null(envelope_decode(garbage, EVENT_ENCODED_MAX + 1, err, sizeof(err)));
    assert_non_null(strstr(err, "size"));

    /* An envelope without a tenant is refused on arrival. */
    size_t len = 0;
    uint8_t *buf = encode_topup(&len, "", 5);
    assert_non_null(buf);
    assert_null(envelope_decode(buf, len, err, sizeof(err)));
    assert_non_null(strstr(err, "tenant"));
    free(buf);

    /* No payload: nothing to encode. */
    struct event_meta meta = {.tenant_id = "demo"};
    Envelope env;
    Actor actor;
    envelope_init(&env, &actor, &meta);
    assert_null(envelope_encode(&env, &len));
}

static void test_cloudevents_headers(void **state)
{
    size_t len = 0;
    uint8_t *buf = encode_topup(&len, "demo", 1);
    char err[128];
    Envelope *env = envelope_decode(buf, len, err, sizeof(err));
    rd_kafka_headers_t *h = envelope_cloudevents_headers(env, "/tessera/test");
    const void *v;
    size_t n;
    assert_int_equal(rd_kafka_header_get_last(h, "ce_type", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_memory_equal(v, "tessera.ledger.v1.TopUpStoredValue", n);
    assert_int_equal(rd_kafka_header_get_last(h, "ce_id", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_memory_equal(v, env->event_id, n);
    assert_int_equal(rd_kafka_header_get_last(h, "ce_subject", &v, &n), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_memory_equal(v, "m-1", n);
    assert_int_equal(rd_kafka_header_get_last(h, "content-type", &v, &n),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_memory_equal(v, "application/protobuf", n);
    assert_int_equal(rd_kafka_header_get_last(h, "ce_specversion", &v, &n),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_headers_destroy(h);
    envelope_free(env);
    free(buf);
}

/* The ledger re-emits stored verdicts: decode, change, encode, free. */
static void test_reencode_decoded(void **state)
{
    size_t len = 0;
    uint8_t *buf = encode_topup(&len, "demo", 7);
    char err[128];
    Envelope *env = envelope_decode(buf, len, err, sizeof(err));
    assert_non_null(env);
    env->top_up_stored_value->amount = 8;
    size_t len2 = 0;
    uint8_t *again = envelope_encode(env, &len2);
    assert_non_null(again);
    envelope_free(env); /* must not free a string the encoder put in */
    Envelope *back = envelope_decode(again, len2, err, sizeof(err));
    assert_non_null(back);
    assert_int_equal(back->top_up_stored_value->amount, 8);
    envelope_free(back);
    free(again);
    free(buf);
}

/* A purchase fact whose strings are given: the payment method (a payload
 * field), the second item's category (a field of a repeated message) and
 * the actor id (a field of the envelope's own sub-message). */
static uint8_t *encode_purchase_strings(size_t *len, const char *method, const char *category,
                                        const char *actor_id)
{
    struct event_meta meta = {.tenant_id = "demo",
                              .branch_id = "hq",
                              .member_id = "m-1",
                              .actor_kind = "api_key",
                              .actor_id = actor_id};
    Envelope env;
    Actor actor;
    PurchaseRecorded p;
    PurchaseItem items[2], *item_ptrs[2] = {&items[0], &items[1]};
    envelope_init(&env, &actor, &meta);
    tessera__ledger__v1__purchase_recorded__init(&p);
    for (int i = 0; i < 2; i++) {
        tessera__ledger__v1__purchase_item__init(&items[i]);
        items[i].sku = "sku-1";
        items[i].quantity = 1;
    }
    items[0].category = "课程";
    items[1].category = (char *)category;
    p.command_id = "01a2a2a2-0000-7000-8000-000000000002";
    p.payment_method = (char *)method;
    p.n_items = 2;
    p.items = item_ptrs;
    env.payload_case = TESSERA__ENVELOPE__V1__ENVELOPE__PAYLOAD_PURCHASE_RECORDED;
    env.purchase_recorded = &p;
    return envelope_encode(&env, len);
}

/* protobuf-c does not check that strings are UTF-8; the codec does, in
 * every string of the envelope, so such an event is refused on arrival
 * (and dead-lettered) instead of failing its batch in PostgreSQL forever. */
static void test_decode_refuses_strings_that_are_not_utf8(void **state)
{
    const struct {
        const char *method, *category, *actor;
        bool ok;
    } cases[] = {
        {"stored_value", "饮品", "k", true},              /* multibyte is fine */
        {"caf\xc3\xa9 \xf0\x9f\x8d\xb5", "x", "k", true}, /* 2- and 4-byte sequences */
        {"cash\xff", "x", "k", false},                    /* not a UTF-8 byte */
        {"cash", "\xc0\x80", "k", false},                 /* overlong NUL, in a repeated message */
        {"cash", "x", "\xed\xa0\x80", false},             /* a surrogate, in the actor */
        {"cash", "\xe4\xbd", "k", false},                 /* truncated sequence */
        {"cash", "\xf4\x90\x80\x80", "k", false},         /* past U+10FFFF */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = 0;
        uint8_t *buf =
            encode_purchase_strings(&len, cases[i].method, cases[i].category, cases[i].actor);
        assert_non_null(buf);
        char err[128] = "";
        Envelope *env = envelope_decode(buf, len, err, sizeof(err));
        if (cases[i].ok) {
            assert_non_null(env);
        } else {
            assert_null(env);
            assert_non_null(strstr(err, "UTF-8"));
        }
        envelope_free(env);
        free(buf);
    }
}

static void test_time_format(void **state)
{
    char out[32];
    event_format_time(INT64_C(1700000000123456), out);
    assert_string_equal(out, "2023-11-14T22:13:20.123Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_rejects_garbage_and_limits),
        cmocka_unit_test(test_cloudevents_headers),
        cmocka_unit_test(test_reencode_decoded),
        cmocka_unit_test(test_decode_refuses_strings_that_are_not_utf8),
        cmocka_unit_test(test_time_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
