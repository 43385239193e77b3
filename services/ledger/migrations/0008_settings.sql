-- The tenants' ledger settings as versions (settings.c; card limits
-- too, from SetCardLimits): every change
-- the ledger applied, with the time it took effect (the change's own
-- occurred_at), in the form the API shows. The current tables
-- (topup_bonus_steps, points_policy, refund_fee_rules, prepaid_thresholds)
-- are written only from these changes, in the same transaction: no seed
-- or operator writes them any more.
CREATE TABLE settings_changes (
    tenant_id          text        NOT NULL,
    kind               text        NOT NULL
                       CHECK (kind IN ('topup-bonus', 'points-policy', 'refund-fees', 'prepaid',
                                     'card-limits')),
    change_id          text        NOT NULL,
    effective_from_us  bigint      NOT NULL,
    setting            jsonb       NOT NULL,
    recorded_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, change_id)
);
CREATE INDEX settings_changes_latest_idx
    ON settings_changes (tenant_id, kind, effective_from_us DESC, change_id DESC);

-- Room for points paying part of a purchase (the rewards work decides
-- with it): payment_points_per_unit points pay payment_unit_amount minor
-- units, for at most payment_max_share_bp of the charge. 0: points do not pay.
ALTER TABLE points_policy
    ADD COLUMN payment_points_per_unit bigint  NOT NULL DEFAULT 0
        CHECK (payment_points_per_unit >= 0),
    ADD COLUMN payment_unit_amount     bigint  NOT NULL DEFAULT 0
        CHECK (payment_unit_amount >= 0),
    ADD COLUMN payment_max_share_bp    integer NOT NULL DEFAULT 0
        CHECK (payment_max_share_bp BETWEEN 0 AND 10000);

-- Read contract (docs/read-contracts.md): each tenant's setting in force,
-- one row per kind, and every version.
CREATE VIEW read_settings_versions AS
    SELECT tenant_id, kind, change_id, effective_from_us, setting
    FROM settings_changes;
CREATE VIEW read_settings AS
    SELECT DISTINCT ON (tenant_id, kind) tenant_id, kind, change_id, effective_from_us, setting
    FROM settings_changes
    ORDER BY tenant_id, kind, effective_from_us DESC, change_id DESC;
