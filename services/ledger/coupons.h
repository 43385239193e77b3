/* Single-use coupons in the ledger: issued to a member, redeemed once on
 * their own or inside a purchase, refused once used or past validity.
 * Batch state like cards.c's: loaded in one statement, decided in memory,
 * written in one. */
#ifndef TESSERA_LEDGER_COUPONS_H
#define TESSERA_LEDGER_COUPONS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "events/card_types.h"
#include "events/codec.h"
#include "events/text_limits.h"
#include "rules_cards.h"

#define COUPON_ID_MAX         EVENT_ID_FIELD_MAX
#define COUPON_NAME_MAX       TEXT_NAME_BYTES_MAX
#define COUPON_VALID_DAYS_MAX 3660

struct ledger_coupon {
    char tenant_id[COUPON_ID_MAX], coupon_id[COUPON_ID_MAX], member_id[COUPON_ID_MAX];
    char name[COUPON_NAME_MAX + 1];
    char redeemed_by[COUPON_ID_MAX];
    bool found, dirty;
    struct coupon_state st;
    int64_t redeemed_at_us, discount;
};

struct ledger_coupons;

struct ledger_coupons *coupons_new(void);
void coupons_free(struct ledger_coupons *c);
void coupons_begin_batch(struct ledger_coupons *c);
/* Notes a coupon the batch will need loaded. */
void coupons_note(struct ledger_coupons *c, const char *tenant_id, const char *coupon_id);
int coupons_load(PGconn *pg, struct ledger_coupons *c, char *err, size_t err_len);
int coupons_write(PGconn *pg, struct ledger_coupons *c, char *err, size_t err_len);

/* Issues the coupon of an IssueCoupon command: NULL and *out, or the
 * refusal's code. */
const char *coupons_issue(struct ledger_coupons *c, const Envelope *cmd,
                          struct ledger_coupon **out);
/* Checks that the member's coupon takes amount off a bill of amount now:
 * NULL with *out and *discount, or the refusal's code. Changes nothing. */
const char *coupons_plan_redeem(struct ledger_coupons *c, const Envelope *cmd,
                                const char *coupon_id, int64_t amount, struct ledger_coupon **out,
                                int64_t *discount);
/* The coupon noted for the batch, or NULL. */
struct ledger_coupon *coupons_get(struct ledger_coupons *c, const char *tenant_id,
                                  const char *coupon_id);
/* Marks a planned redemption done by command_id. */
void coupons_commit_redeem(struct ledger_coupon *k, const char *command_id, int64_t now_us,
                           int64_t discount);

#endif
