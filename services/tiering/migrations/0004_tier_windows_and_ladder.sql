-- Tiers that live (issue 13): qualifying spend per window net of refunds,
-- card and subscription sales when the tenant counts them, the ladder as
-- versioned configuration from ingest (TierLadderChanged), and the notes
-- that explain a tier that did not move.

-- Every qualifying fact, not only purchases: a card or subscription sale
-- (positive), a refund of a purchase (negative, counted at the refunded
-- purchase's time so it lowers the windows that purchase was counted in).
-- refund_of names the purchase a refund lowers.
ALTER TABLE qualifying_purchases
    ADD COLUMN kind      text NOT NULL DEFAULT 'purchase'
        CHECK (kind IN ('purchase', 'card', 'subscription', 'refund')),
    ADD COLUMN refund_of text;
CREATE INDEX qualifying_purchases_member_idx
    ON qualifying_purchases (tenant_id, member_id, occurred_at);

ALTER TABLE member_spend
    ADD COLUMN rolling_spend bigint NOT NULL DEFAULT 0 CHECK (rolling_spend >= 0);

-- A level may be reached by any of three windows; NULL: not by that one.
ALTER TABLE tier_levels
    ALTER COLUMN min_cumulative_spend DROP NOT NULL,
    ADD COLUMN min_rolling_spend bigint CHECK (min_rolling_spend IS NULL OR min_rolling_spend >= 0),
    ADD COLUMN birthday_gift_points bigint NOT NULL DEFAULT 0 CHECK (birthday_gift_points >= 0),
    ADD COLUMN priority_booking boolean NOT NULL DEFAULT false,
    ADD COLUMN entitlements text[] NOT NULL DEFAULT '{}',
    ADD COLUMN upgrade_skus text[] NOT NULL DEFAULT '{}',
    ADD COLUMN referrals_required int NOT NULL DEFAULT 0 CHECK (referrals_required >= 0),
    ADD COLUMN membership_years int NOT NULL DEFAULT 0 CHECK (membership_years >= 0);

-- The tenant's tier policy beside the zone: what counts, what a refund
-- does, and the review (qualifying period in months, grace days after it,
-- warning days before it).
ALTER TABLE tier_policies
    ADD COLUMN count_card_sales boolean NOT NULL DEFAULT false,
    ADD COLUMN count_subscription_sales boolean NOT NULL DEFAULT false,
    ADD COLUMN refund_rule text NOT NULL DEFAULT 'at_review'
        CHECK (refund_rule IN ('at_review', 'immediately')),
    ADD COLUMN review_months int NOT NULL DEFAULT 12 CHECK (review_months BETWEEN 1 AND 60),
    ADD COLUMN grace_days int NOT NULL DEFAULT 0 CHECK (grace_days BETWEEN 0 AND 365),
    ADD COLUMN warning_days int NOT NULL DEFAULT 30 CHECK (warning_days BETWEEN 0 AND 365);

-- A member that falls to no tier keeps its member_tiers row (the version
-- goes on): rank -1 and an empty name mean "none". period_end: the end of
-- the qualifying period of the level held (NULL: never reviewed: no tier,
-- an invitation or an override); the review scheduler reads it.
ALTER TABLE member_tiers ADD COLUMN period_end timestamptz;
UPDATE member_tiers SET period_end = changed_at + interval '12 months' WHERE name <> '';
CREATE INDEX member_tiers_period_end_idx ON member_tiers (period_end)
    WHERE period_end IS NOT NULL;

-- A level set by hand (reason 'override' or 'invitation'): why, by whom,
-- and when an override ends (NULL: until cleared). The review scheduler
-- ends expired overrides.
ALTER TABLE member_tiers
    ADD COLUMN override_reason text,
    ADD COLUMN override_by text,
    ADD COLUMN override_expires_at timestamptz;

-- When each member registered (MemberRegistered), for levels reached by
-- years of membership, and the anniversaries already looked at.
CREATE TABLE memberships (
    tenant_id      text        NOT NULL,
    member_id      text        NOT NULL,
    registered_at  timestamptz NOT NULL,
    years_done     int         NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, member_id)
);

-- Successful referrals per referrer, each counted once.
CREATE TABLE member_referrals (
    tenant_id    text        NOT NULL,
    member_id    text        NOT NULL,
    referral_id  text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, referral_id)
);
CREATE INDEX member_referrals_member_idx ON member_referrals (tenant_id, member_id);

-- Each warning and review applied, once per member, period and kind: the
-- scheduler may ask twice, the second finds the row and changes nothing.
CREATE TABLE tier_reviews (
    tenant_id    text        NOT NULL,
    member_id    text        NOT NULL,
    period_end   timestamptz NOT NULL,
    kind         text        NOT NULL
        CHECK (kind IN ('warning', 'review', 'override_expired', 'anniversary')),
    event_id     text        NOT NULL,
    recorded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, period_end, kind)
);

-- Every ladder a tenant has had, as ingest published it: the version, the
-- change that made it, the time it is in force from and the whole
-- configuration as JSON (what GET /v1/config/tiers answers).
CREATE TABLE tier_ladders (
    tenant_id       text        NOT NULL,
    version         bigint      NOT NULL CHECK (version > 0),
    change_id       text        NOT NULL,
    effective_from  timestamptz NOT NULL,
    config          jsonb       NOT NULL,
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version),
    UNIQUE (tenant_id, change_id)
);

-- What happened to a member's tier that was not a change: a refund that
-- left the member below the level kept until the review, a warning sent.
CREATE TABLE tier_notes (
    tenant_id    text        NOT NULL,
    member_id    text        NOT NULL,
    kind         text        NOT NULL,
    detail       text        NOT NULL,
    event_id     text        NOT NULL,
    occurred_at  timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, member_id, event_id)
);

-- Read contract additions (docs/read-contracts.md).
CREATE VIEW read_tier_ladders AS
    SELECT tenant_id, version, change_id, effective_from, config FROM tier_ladders;
-- Every counted qualifying fact (ingest sums them per window for a
-- ladder's dry-run, exactly as tiering does when it applies one).
CREATE VIEW read_qualifying_facts AS
    SELECT tenant_id, member_id, purchase_command_id AS command_id, kind, amount, occurred_at
    FROM qualifying_purchases;
-- The reason a member holds its tier (an invitation or an override is not
-- moved by spend): a column added at the end of the published view.
CREATE OR REPLACE VIEW read_member_tiers AS
    SELECT tenant_id, member_id, rank, name, discount_bp, points_multiplier_bp, reason, version,
           changed_at, period_end, override_reason, override_by, override_expires_at
    FROM member_tiers;
-- The member's tier history: every change with its rule, and the notes
-- that explain a level that did not move (the member view).
CREATE VIEW read_tier_changes AS
    SELECT tenant_id, member_id, version, from_name, to_name, reason, lifetime_spend,
           annual_spend, event_id, occurred_at
    FROM tier_changes;
CREATE VIEW read_tier_notes AS
    SELECT tenant_id, member_id, kind, detail, event_id, occurred_at FROM tier_notes;
