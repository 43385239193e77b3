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

-- points_policy's payment_* columns (points paying part of a purchase)
-- come from 0007_rewards.sql; the points-policy setting writes them.

-- Read contract (docs/read-contracts.md): each tenant's setting in force,
-- one row per kind, and every version.
CREATE VIEW read_settings_versions AS
    SELECT tenant_id, kind, change_id, effective_from_us, setting
    FROM settings_changes;
CREATE VIEW read_settings AS
    SELECT DISTINCT ON (tenant_id, kind) tenant_id, kind, change_id, effective_from_us, setting
    FROM settings_changes
    ORDER BY tenant_id, kind, effective_from_us DESC, change_id DESC;
