-- Earning rules per tenant, kept as versions: a change is in force for
-- purchases recorded at or after effective_from_us (when ingest accepted
-- it, microseconds since the epoch), so purchases this service meets late
-- (lag, replay) earn under the rules of their time. Written only by this
-- service, from EarningRulesChanged on member-events (and by seeds).
CREATE TABLE earning_rules (
    tenant_id                     text    NOT NULL,
    change_id                     text    NOT NULL,
    effective_from_us             bigint  NOT NULL,
    purchase_enabled              boolean NOT NULL,
    purchase_unit_amount          bigint  NOT NULL CHECK (purchase_unit_amount > 0),
    purchase_points_per_unit      bigint  NOT NULL CHECK (purchase_points_per_unit >= 0),
    purchase_excluded_categories  jsonb   NOT NULL DEFAULT '[]'
        CHECK (jsonb_typeof(purchase_excluded_categories) = 'array'),
    applied_at                    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, change_id)
);
CREATE INDEX earning_rules_in_force ON earning_rules
    (tenant_id, effective_from_us DESC, change_id DESC);

-- One row per purchase that earned points: the EarnPoints command sent
-- for it (command_id "earn:<purchase command id>"), the rule version used.
-- The key is what makes a purchase earn once however often its fact is
-- delivered.
CREATE TABLE earnings (
    tenant_id            text   NOT NULL,
    purchase_command_id  text   NOT NULL,
    member_id            text   NOT NULL,
    command_id           text   NOT NULL,
    points               bigint NOT NULL CHECK (points > 0),
    charged              bigint NOT NULL,
    multiplier_bp        bigint NOT NULL,
    rule_change_id       text   NOT NULL,
    purchase_event_id    text   NOT NULL,
    earned_at            timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, purchase_command_id)
);
