-- Read contract (issue 12, referrals): every refund, so the campaign
-- service can see whether a referee's first purchase was refunded before
-- it rewards the referral. A plain projection of the append-only refunds
-- table; refunds_purchase_idx (tenant_id, purchase_command_id) serves it.
CREATE VIEW read_refunds AS
    SELECT refund_id, tenant_id, member_id, kind, purchase_command_id, command_id, created_at
    FROM refunds;

-- Points as payment (issue 12): the tenant's rate (points_per_unit points
-- are worth unit_minor minor units; default 100 points = 1 yuan) and the
-- largest share of a bill's charge points may pay (default half). A
-- tenant without a points_policy row gets the same defaults
-- (rules_pricing.h POINTS_PAYMENT_TERMS_DEFAULT).
ALTER TABLE points_policy
    ADD COLUMN payment_points_per_unit bigint NOT NULL DEFAULT 100
        CHECK (payment_points_per_unit BETWEEN 1 AND 1000000),
    ADD COLUMN payment_unit_minor bigint NOT NULL DEFAULT 100
        CHECK (payment_unit_minor BETWEEN 1 AND 1000000),
    ADD COLUMN payment_max_share_bp bigint NOT NULL DEFAULT 5000
        CHECK (payment_max_share_bp BETWEEN 0 AND 10000);

-- A purchase refund gives back its share of the points the purchase was
-- paid with, as a new lot (refunds.c).
ALTER TABLE refunds ADD COLUMN points_returned bigint NOT NULL DEFAULT 0
    CHECK (points_returned >= 0);
