/* Short names for the ledger's tenant settings (settings.proto) and their
 * bounds: ingest refuses a setting outside them at the edge (422), the
 * ledger refuses one that got past (a rejected command), so both read
 * them from here. */
#ifndef TESSERA_SETTINGS_TYPES_H
#define TESSERA_SETTINGS_TYPES_H

#include <stdint.h>

#include "tessera/ledger/v1/settings.pb-c.h"

typedef Tessera__Ledger__V1__BonusStep BonusStep;
typedef Tessera__Ledger__V1__TopUpBonusSetting TopUpBonusSetting;
typedef Tessera__Ledger__V1__PointsPolicySetting PointsPolicySetting;
typedef Tessera__Ledger__V1__RefundFeeSetting RefundFeeSetting;
typedef Tessera__Ledger__V1__PrepaidSetting PrepaidSetting;
typedef Tessera__Ledger__V1__SetLedgerSetting SetLedgerSetting;

#define SETTINGS_BONUS_STEPS_MAX      32                    /* rungs of one ladder */
#define SETTINGS_MONEY_MAX            INT64_C(100000000000) /* minor units: 1e9 yuan */
#define SETTINGS_EXPIRY_PERIODS_MAX   1200
#define SETTINGS_UTC_OFFSET_MIN_MAX   840               /* minutes, either side */
#define SETTINGS_LOCK_SECONDS_MAX     INT64_C(31622400) /* 366 days */
#define SETTINGS_PAYMENT_PER_UNIT_MAX INT64_C(1000000)
#define SETTINGS_PAYMENT_UNIT_MAX     INT64_C(1000000) /* minor units a unit of points pays */
/* Points as payment when a tenant says nothing: 100 points pay 100 fen
 * (1 yuan), for at most half of a bill. max_share_bp 0: points never pay. */
#define SETTINGS_PAYMENT_PER_UNIT_DEFAULT 100
#define SETTINGS_PAYMENT_UNIT_DEFAULT     100
#define SETTINGS_PAYMENT_SHARE_BP_DEFAULT 5000
#define SETTINGS_BP_MAX                   10000 /* 100% */

/* The setting kinds, as the API paths and the ledger's rows name them. */
#define SETTING_TOPUP_BONUS   "topup-bonus"
#define SETTING_POINTS_POLICY "points-policy"
#define SETTING_REFUND_FEES   "refund-fees"
#define SETTING_PREPAID       "prepaid"
#define SETTING_CARD_LIMITS   "card-limits" /* SetCardLimits (cards.proto): versioned alike */

#endif
