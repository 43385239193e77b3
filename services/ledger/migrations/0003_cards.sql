-- Cards: the tenants' card products and limits (configuration the ledger
-- decides with), and every card sold, with the terms it was sold under.
-- Card value moves in the journal as assets card_uses and card_days.

-- Extends whatever asset list the journal allows (other migrations add
-- assets too) with the card assets, instead of replacing it.
DO $$
DECLARE
    c record;
    assets text[] := ARRAY['card_uses', 'card_days'];
BEGIN
    FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = 'journal'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%asset%' LOOP
        assets := assets || ARRAY(SELECT m[1] FROM regexp_matches(c.def, '''([a-z_]+)''', 'g') AS m);
        EXECUTE format('ALTER TABLE journal DROP CONSTRAINT %I', c.conname);
    END LOOP;
    assets := ARRAY(SELECT DISTINCT a FROM unnest(assets) AS a ORDER BY a);
    EXECUTE format('ALTER TABLE journal ADD CONSTRAINT journal_asset_check '
                   'CHECK (asset = ANY (%L::text[]))', assets);
END $$;

CREATE TABLE card_products (
    tenant_id        text   NOT NULL,
    product_id       text   NOT NULL,
    kind             text   NOT NULL CHECK (kind IN ('count', 'time', 'discount', 'subscription')),
    name             text   NOT NULL,
    price            bigint NOT NULL CHECK (price >= 0),
    uses             bigint NOT NULL CHECK (uses >= 0),
    validity_days    bigint NOT NULL CHECK (validity_days > 0),
    branch_ids       text[] NOT NULL DEFAULT '{}',
    freeze_days_max  bigint NOT NULL DEFAULT 0 CHECK (freeze_days_max >= 0),
    discount_bp      bigint NOT NULL DEFAULT 0 CHECK (discount_bp BETWEEN 0 AND 10000),
    defined_by       text   NOT NULL,  -- the command that last defined it
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, product_id)
);

-- One row per tenant that changed a default (daily_uses_max 3, no caps).
CREATE TABLE card_limits (
    tenant_id            text   PRIMARY KEY,
    daily_uses_max       bigint NOT NULL CHECK (daily_uses_max > 0),
    prepaid_days_max     bigint NOT NULL CHECK (prepaid_days_max >= 0),
    prepaid_uses_max     bigint NOT NULL CHECK (prepaid_uses_max >= 0),
    burst_uses           bigint NOT NULL CHECK (burst_uses > 1),
    burst_window_s       bigint NOT NULL CHECK (burst_window_s > 0),
    far_branch_window_s  bigint NOT NULL CHECK (far_branch_window_s >= 0),
    updated_at           timestamptz NOT NULL DEFAULT now()
);

-- A card keeps its own copy of the product's terms: redefining a product
-- changes future sales, never cards already sold.
CREATE TABLE cards (
    tenant_id         text   NOT NULL,
    card_id           text   NOT NULL,
    member_id         text   NOT NULL,
    product_id        text   NOT NULL,
    kind              text   NOT NULL,
    price             bigint NOT NULL CHECK (price >= 0),
    uses_left         bigint NOT NULL CHECK (uses_left >= 0),
    valid_from_us     bigint NOT NULL,
    valid_to_us       bigint NOT NULL CHECK (valid_to_us >= valid_from_us),
    frozen_until_us   bigint NOT NULL DEFAULT 0,
    freeze_days_left  bigint NOT NULL CHECK (freeze_days_left >= 0),
    discount_bp       bigint NOT NULL DEFAULT 0,
    branch_ids        text[] NOT NULL DEFAULT '{}',
    use_day           bigint NOT NULL DEFAULT 0,   -- local day number of uses_on_day
    uses_on_day       bigint NOT NULL DEFAULT 0,
    recent_uses_us    bigint[] NOT NULL DEFAULT '{}',  -- newest last, for burst alerts
    last_branch_id    text,
    sold_branch_id    text   NOT NULL,
    paid_total        bigint NOT NULL DEFAULT 0 CHECK (paid_total >= 0),  -- every sale and renewal
    uses_total        bigint NOT NULL DEFAULT 0 CHECK (uses_total >= 0),  -- count cards: uses bought
    version           bigint NOT NULL DEFAULT 0,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, card_id)
);
CREATE INDEX cards_member_idx ON cards (tenant_id, member_id);

-- Single-use coupons: issued to a member, redeemed once (alone or inside
-- a purchase), refused after valid_to.
CREATE TABLE coupons (
    tenant_id       text   NOT NULL,
    coupon_id       text   NOT NULL,
    member_id       text   NOT NULL,
    kind            text   NOT NULL CHECK (kind IN ('value', 'percent')),
    name            text   NOT NULL DEFAULT '',
    value           bigint NOT NULL DEFAULT 0 CHECK (value >= 0),
    percent_bp      bigint NOT NULL DEFAULT 0 CHECK (percent_bp BETWEEN 0 AND 10000),
    valid_from_us   bigint NOT NULL,
    valid_to_us     bigint NOT NULL CHECK (valid_to_us > valid_from_us),
    redeemed_by     text,            -- the command that used it
    redeemed_at_us  bigint,
    discount        bigint NOT NULL DEFAULT 0 CHECK (discount >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, coupon_id)
);
CREATE INDEX coupons_member_idx ON coupons (tenant_id, member_id);
