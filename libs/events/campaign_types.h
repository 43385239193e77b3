/* Short names for the tessera.campaign.v1 messages (like codec.h's), and
 * the bounds of an earning rule: ingest refuses a rule outside them at the
 * edge (422), the campaign service refuses one that got past (dead
 * letter), so both read them from here. */
#ifndef TESSERA_CAMPAIGN_TYPES_H
#define TESSERA_CAMPAIGN_TYPES_H

#include <stdint.h>

#include "tessera/campaign/v1/campaign.pb-c.h"
#include "tessera/campaign/v1/referrals.pb-c.h"

typedef Tessera__Campaign__V1__PurchaseEarningRule PurchaseEarningRule;
typedef Tessera__Campaign__V1__EarningRulesChanged EarningRulesChanged;

#define EARNING_UNIT_AMOUNT_MAX     INT64_C(100000000) /* minor units: 1 000 000 yuan */
#define EARNING_POINTS_PER_UNIT_MAX INT64_C(1000000)
#define EARNING_CATEGORIES_MAX      32 /* excluded categories of one rule */
#define EARNING_CATEGORY_LEN_MAX    64 /* characters, like a purchase item's category */
/* A purchase's tier multiplier (10000 = x1; 0 on the fact means x1). */
#define EARNING_MULTIPLIER_BP_MAX INT64_C(100000)
/* Points one purchase may earn: the ledger's bound on one grant. */
#define EARNING_POINTS_MAX INT64_C(1000000000)
/* "earn:" + the purchase's command id. */
#define EARNING_COMMAND_ID_PREFIX "earn:"
#define EARNING_RULE_PURCHASE     "purchase"

typedef Tessera__Campaign__V1__ReferralReward ReferralReward;
typedef Tessera__Campaign__V1__ReferralRulesChanged ReferralRulesChanged;
typedef Tessera__Campaign__V1__ReferralCounted ReferralCounted;

/* Bounds of a referral rule (ingest: 422; campaign: dead letter). */
#define REFERRAL_LOCK_DAYS_MAX 365
#define REFERRAL_POINTS_MAX    INT64_C(1000000)   /* one side's points */
#define REFERRAL_SV_BONUS_MAX  INT64_C(100000000) /* one side's stored-value bonus, minor units */
#define REFERRAL_CARD_DAYS_MAX                                                                     \
    3660 /* one side's card days: the ledger's CARD_VALIDITY_DAYS_MAX                              \
          */

#endif
