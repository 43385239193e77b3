/* The packed outbox row (issue 15, libs/outbox/outbox_pack.h): events go
 * in and come out in order with their topic, key and payload; a row
 * stops at its event and byte limits; bytes that are not a packed row
 * are refused, never read past their end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "outbox/outbox_pack.h"

#define EVENTS 4

static const uint8_t P0[] = {0}, P1[] = {1, 2, 3}, P3[] = {0xff, 0, 0xfe};

static void sample(struct outbox_row rows[EVENTS])
{
    rows[0] = (struct outbox_row){"ledger-events", "m-1", P0, sizeof(P0)};
    rows[1] = (struct outbox_row){"notify-requests", "m-2", P1, sizeof(P1)};
    rows[2] = (struct outbox_row){"ledger-verdicts", "", P1, 0}; /* empty key and payload */
    rows[3] = (struct outbox_row){"ledger-events", "m-1", P3, sizeof(P3)};
}

static void test_events_come_back_in_order(void **state)
{
    struct outbox_row rows[EVENTS], back[EVENTS];
    sample(rows);
    size_t len = 0;
    uint8_t *packed = outbox_pack(rows, EVENTS, &len);
    assert_non_null(packed);
    assert_true(outbox_unpack(packed, len, EVENTS, back));
    for (int i = 0; i < EVENTS; i++) {
        assert_string_equal(back[i].topic, rows[i].topic);
        assert_string_equal(back[i].key, rows[i].key);
        assert_int_equal(back[i].len, rows[i].len);
        if (rows[i].len > 0)
            assert_memory_equal(back[i].payload, rows[i].payload, rows[i].len);
        outbox_unpacked_free(&back[i]);
    }
    free(packed);
}

/* Every shorter prefix, a wrong count, trailing bytes, another version:
 * refused (under ASan a read past the end would also fail the test). */
static void test_malformed_rows_are_refused(void **state)
{
    struct outbox_row rows[EVENTS], back[EVENTS + 1];
    sample(rows);
    size_t len = 0;
    uint8_t *packed = outbox_pack(rows, EVENTS, &len);
    assert_non_null(packed);
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *part = malloc(cut ? cut : 1);
        memcpy(part, packed, cut);
        assert_false(outbox_unpack(part, cut, EVENTS, back));
        free(part);
    }
    assert_false(outbox_unpack(packed, len, EVENTS - 1, back)); /* bytes left over */
    assert_false(outbox_unpack(packed, len, EVENTS + 1, back)); /* one missing */
    packed[0] = OUTBOX_PACK_VERSION + 1;
    assert_false(outbox_unpack(packed, len, EVENTS, back));
    free(packed);
}

/* A row takes up to OUTBOX_PACK_EVENTS_MAX events, fewer when their bytes
 * would pass OUTBOX_PACK_BYTES_MAX, and always at least one. */
static void test_a_row_stops_at_its_limits(void **state)
{
    size_t n = OUTBOX_PACK_EVENTS_MAX + 10;
    struct outbox_row *rows = calloc(n, sizeof(*rows));
    uint8_t *big = calloc(1, OUTBOX_PACK_BYTES_MAX);
    for (size_t i = 0; i < n; i++)
        rows[i] = (struct outbox_row){"t", "k", P1, sizeof(P1)};
    assert_int_equal(outbox_pack_take(rows, n), OUTBOX_PACK_EVENTS_MAX);
    assert_int_equal(outbox_pack_take(rows, 7), 7);
    rows[3].payload = big;
    rows[3].len = OUTBOX_PACK_BYTES_MAX / 2;
    rows[4].payload = big;
    rows[4].len = OUTBOX_PACK_BYTES_MAX / 2;
    assert_int_equal(outbox_pack_take(rows, n), 4); /* the second half would pass the limit */
    rows[0].len = OUTBOX_PACK_BYTES_MAX;
    rows[0].payload = big;
    assert_int_equal(outbox_pack_take(rows, n), 1); /* alone, whatever its size */
    free(big);
    free(rows);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_events_come_back_in_order),
        cmocka_unit_test(test_malformed_rows_are_refused),
        cmocka_unit_test(test_a_row_stops_at_its_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
