/* Short names for the tessera.cards.v1 messages (like codec.h's). */
#ifndef TESSERA_CARD_TYPES_H
#define TESSERA_CARD_TYPES_H

#include "tessera/cards/v1/cards.pb-c.h"

typedef Tessera__Cards__V1__DefineProduct DefineProduct;
typedef Tessera__Cards__V1__SetCardLimits SetCardLimits;
typedef Tessera__Cards__V1__IssueCard IssueCard;
typedef Tessera__Cards__V1__UseCard UseCard;
typedef Tessera__Cards__V1__FreezeCard FreezeCard;
typedef Tessera__Cards__V1__CardState CardState;
typedef Tessera__Cards__V1__CardChanged CardChanged;
typedef Tessera__Cards__V1__CardFraudAlert CardFraudAlert;
typedef Tessera__Cards__V1__IssueCoupon IssueCoupon;
typedef Tessera__Cards__V1__RedeemCoupon RedeemCoupon;
typedef Tessera__Cards__V1__CouponState CouponState;

#endif
