/* Money as int64 minor units (fen for CNY). Never floats. Every operation
 * that could overflow is checked and says so. */
#ifndef TESSERA_MONEY_H
#define TESSERA_MONEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Largest amount accepted at the edge: 10^13 minor units (100 billion yuan). */
#define MONEY_AMOUNT_MAX INT64_C(10000000000000)

/* Checked arithmetic; false on overflow (out untouched). */
bool money_add(int64_t a, int64_t b, int64_t *out) __attribute__((warn_unused_result));
bool money_sub(int64_t a, int64_t b, int64_t *out) __attribute__((warn_unused_result));

/* Splits total between two balances in proportion to them, so that
 * part_a + part_b == total exactly, part_a <= balance_a, part_b <= balance_b.
 * The part of b is rounded down, so a fen of rounding is always drawn from a
 * (the principal, by convention): no fen is created or lost.
 * Requires 0 <= total <= balance_a + balance_b and balances >= 0. */
void money_split_pro_rata(int64_t total, int64_t balance_a, int64_t balance_b, int64_t *part_a,
                          int64_t *part_b);

/* Applies a rate in basis points (8000 = 80%) rounding half up:
 * money_apply_bp(12345, 8000) == 9876. */
int64_t money_apply_bp(int64_t amount, int32_t rate_bp);

/* Formats minor units as "1100.00" / "-0.05" (two decimals). Returns the
 * length written, or -1 when buf is too small. */
int money_format(int64_t minor, char *buf, size_t buf_len);

#endif
