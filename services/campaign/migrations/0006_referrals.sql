-- Referrals (issue 12). Written only by this service: rule versions from
-- ReferralRulesChanged (member-events, keyed by tenant), a row per referee
-- from MemberRegistered (referrer_member_id set by ingest after checking
-- the code), its first paid purchase from PurchaseRecorded, and the
-- decision made by the referral scheduler (referral_scheduler.c) once the
-- lock period after that purchase is over.
CREATE TABLE referral_rules (
    tenant_id          text    NOT NULL,
    change_id          text    NOT NULL,
    effective_from_us  bigint  NOT NULL,
    enabled            boolean NOT NULL,
    lock_days          integer NOT NULL CHECK (lock_days BETWEEN 0 AND 365),
    referrer_points    bigint  NOT NULL CHECK (referrer_points >= 0),
    referee_points     bigint  NOT NULL CHECK (referee_points >= 0),
    applied_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, change_id)
);
CREATE INDEX referral_rules_in_force ON referral_rules
    (tenant_id, effective_from_us DESC, change_id DESC);

-- One row per referee (one referrer per member): registered, then locked
-- by its first paid purchase (due_at_us = purchase + lock period), then
-- rewarded, refunded (the purchase was refunded before the decision) or
-- no_reward (no enabled rule when the purchase was recorded).
CREATE TABLE referrals (
    tenant_id            text   NOT NULL,
    referee_member_id    text   NOT NULL,
    referrer_member_id   text   NOT NULL,
    branch_id            text   NOT NULL DEFAULT '',
    status               text   NOT NULL DEFAULT 'registered'
        CHECK (status IN ('registered', 'locked', 'rewarded', 'refunded', 'no_reward')),
    purchase_command_id  text,
    purchase_event_id    text,
    purchased_at_us      bigint,
    due_at_us            bigint,
    rule_change_id       text,
    referrer_points      bigint,
    referee_points       bigint,
    decided_at_us        bigint,
    PRIMARY KEY (tenant_id, referee_member_id),
    CHECK (referrer_member_id <> referee_member_id)
);
CREATE INDEX referrals_due ON referrals (due_at_us) WHERE status = 'locked';

-- Each referrer's successful referrals (rewarded), published as
-- ReferralCounted with every change.
CREATE TABLE referral_counts (
    tenant_id   text   NOT NULL,
    member_id   text   NOT NULL,
    successful  bigint NOT NULL CHECK (successful > 0),
    PRIMARY KEY (tenant_id, member_id)
);

-- Read contract (docs/read-contracts.md).
CREATE VIEW read_referral_rules AS
    SELECT tenant_id, change_id, effective_from_us
    FROM referral_rules;
CREATE VIEW read_referral_counts AS
    SELECT tenant_id, member_id, successful
    FROM referral_counts;
