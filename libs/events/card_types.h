/* Short names for the tessera.cards.v1 messages (like codec.h's). */
#ifndef TESSERA_CARD_TYPES_H
#define TESSERA_CARD_TYPES_H

#include "tessera/cards/v1/cards.pb-c.h"

typedef Tessera__Cards__V1__DefineProduct DefineProduct;
typedef Tessera__Cards__V1__SetCardLimits SetCardLimits;
typedef Tessera__Cards__V1__IssueCard IssueCard;
typedef Tessera__Cards__V1__UseCard UseCard;
typedef Tessera__Cards__V1__FreezeCard FreezeCard;
typedef Tessera__Cards__V1__ExtendCard ExtendCard;
typedef Tessera__Cards__V1__CardState CardState;
typedef Tessera__Cards__V1__CardChanged CardChanged;
typedef Tessera__Cards__V1__CardFraudAlert CardFraudAlert;
typedef Tessera__Cards__V1__IssueCoupon IssueCoupon;
typedef Tessera__Cards__V1__RedeemCoupon RedeemCoupon;
typedef Tessera__Cards__V1__CouponState CouponState;

/* A tenant's card limits until it sets its own (the domain brief's: 3 uses
 * a day, no prepaid cap, an alert on 3 uses within 10 minutes or two
 * branches within 30): the ledger decides with them, GET
 * /v1/config/card-limits shows them. */
#define CARD_LIMITS_DEFAULT_DAILY_USES     3
#define CARD_LIMITS_DEFAULT_BURST_USES     3
#define CARD_LIMITS_DEFAULT_BURST_WINDOW_S 600
#define CARD_LIMITS_DEFAULT_FAR_BRANCH_S   1800

#endif
