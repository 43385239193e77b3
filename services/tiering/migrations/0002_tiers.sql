-- Tier evaluation: the calendar-year spend beside the lifetime one, the
-- tenant's tier policy, each member's current tier (versioned, for the
-- cache) and every change of it.

ALTER TABLE member_spend
    ADD COLUMN annual_spend bigint NOT NULL DEFAULT 0 CHECK (annual_spend >= 0),
    ADD COLUMN spend_year   int    NOT NULL DEFAULT 0;

-- A level's rate is the share of the price paid: 0 would make everything
-- free (and means "no tier" in RecordPurchase), so it is refused.
ALTER TABLE tier_levels
    ADD CONSTRAINT tier_levels_discount_positive CHECK (discount_bp > 0),
    ADD CONSTRAINT tier_levels_name_length CHECK (length(name) BETWEEN 1 AND 64),
    ADD CONSTRAINT tier_levels_annual_positive CHECK (min_annual_spend IS NULL OR min_annual_spend >= 0);

-- Per tenant; no row: calendar years in UTC+8 (Asia/Shanghai, the default
-- time zone), which is what min_annual_spend counts.
CREATE TABLE tier_policies (
    tenant_id           text PRIMARY KEY,
    utc_offset_minutes  int  NOT NULL DEFAULT 480 CHECK (utc_offset_minutes BETWEEN -840 AND 840)
);

-- The member's current tier, with a copy of the level's benefits at the
-- time it was reached (what ingest prices with, from here or the cache).
-- version grows by one per change: cache writes refuse older versions.
CREATE TABLE member_tiers (
    tenant_id             text   NOT NULL,
    member_id             text   NOT NULL,
    rank                  int    NOT NULL,
    name                  text   NOT NULL,
    discount_bp           int    NOT NULL CHECK (discount_bp BETWEEN 1 AND 10000),
    points_multiplier_bp  int    NOT NULL CHECK (points_multiplier_bp >= 0),
    reason                text   NOT NULL,
    version               bigint NOT NULL CHECK (version > 0),
    changed_at            timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, member_id)
);

-- Every change, one row per member version: the trail a later downgrade,
-- an invitation or a manual override adds to.
CREATE TABLE tier_changes (
    tenant_id            text   NOT NULL,
    member_id            text   NOT NULL,
    version              bigint NOT NULL,
    from_rank            int,
    from_name            text,
    to_rank              int    NOT NULL,
    to_name              text   NOT NULL,
    reason               text   NOT NULL,
    lifetime_spend       bigint NOT NULL,
    annual_spend         bigint NOT NULL,
    spend_year           int    NOT NULL,
    purchase_command_id  text   NOT NULL DEFAULT '',
    event_id             text   NOT NULL,
    occurred_at          timestamptz NOT NULL,
    recorded_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, version)
);

-- Every purchase counted, once: the ledger's outbox relays at least once,
-- so a PurchaseRecorded may arrive twice; its command id is counted the
-- first time only. It is also the spend's history, which a rolling window
-- or a period-end downgrade will sum.
CREATE TABLE qualifying_purchases (
    tenant_id            text   NOT NULL,
    purchase_command_id  text   NOT NULL,
    member_id            text   NOT NULL,
    amount               bigint NOT NULL,
    occurred_at          timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, purchase_command_id)
);
