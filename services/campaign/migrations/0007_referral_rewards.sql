-- Referral rewards other than points (issue 12, docs/rewards.md): per
-- side, a stored-value bonus (minor units; the ledger's TopUpStoredValue
-- bonus_grant) and a coupon from one of the tenant's coupon templates
-- (its terms read from ingest.read_coupon_templates when the reward is
-- paid). The scheduler reads them by the referral's rule_change_id.
ALTER TABLE referral_rules
    ADD COLUMN referrer_sv_bonus bigint NOT NULL DEFAULT 0 CHECK (referrer_sv_bonus >= 0),
    ADD COLUMN referee_sv_bonus  bigint NOT NULL DEFAULT 0 CHECK (referee_sv_bonus >= 0),
    ADD COLUMN referrer_coupon_template text NOT NULL DEFAULT '',
    ADD COLUMN referee_coupon_template  text NOT NULL DEFAULT '';
