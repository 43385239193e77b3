-- Points in lots with expiry, the tenants' points policies, refund fee
-- rules and the immutable refund trail.

-- How a tenant's points expire (rules_points.h): never, N days after the
-- grant, at the end of the month N months after the grant's month, or at
-- the end of the year N years after the grant's year, in local time.
-- A tenant without a row: points never expire.
CREATE TABLE points_policy (
    tenant_id           text    PRIMARY KEY,
    kind                text    NOT NULL
                        CHECK (kind IN ('never', 'days', 'end_of_month', 'end_of_year')),
    periods             integer NOT NULL DEFAULT 0 CHECK (periods BETWEEN 0 AND 1200),
    utc_offset_minutes  integer NOT NULL DEFAULT 480 CHECK (utc_offset_minutes BETWEEN -840 AND 840)
);

-- A member's points are the sum of its lots' remaining points (the audit
-- checks it). Deductions spend soonest-expiring lots first; the expiry
-- scheduler finds due lots through point_lots_due_idx.
CREATE TABLE point_lots (
    lot_id      text        PRIMARY KEY,
    tenant_id   text        NOT NULL,
    member_id   text        NOT NULL,
    branch_id   text,
    posting_id  text        NOT NULL,
    granted     bigint      NOT NULL CHECK (granted > 0),
    remaining   bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= granted),
    expires_at  timestamptz,            -- NULL: never
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX point_lots_member_idx ON point_lots (tenant_id, member_id) WHERE remaining > 0;
CREATE INDEX point_lots_due_idx ON point_lots (expires_at)
    WHERE remaining > 0 AND expires_at IS NOT NULL;

-- The fee a tenant keeps on a stored-value refund: fee_bp of the refunded
-- principal, at least fee_min, never more than the principal. No row: no fee.
CREATE TABLE refund_fee_rules (
    tenant_id  text    PRIMARY KEY,
    fee_bp     integer NOT NULL CHECK (fee_bp BETWEEN 0 AND 10000),
    fee_min    bigint  NOT NULL DEFAULT 0 CHECK (fee_min >= 0)
);

-- Every refund, append-only: the trigger below refuses UPDATE, DELETE and
-- TRUNCATE for everyone, the ledger included.
CREATE TABLE refunds (
    refund_id            text        PRIMARY KEY,
    tenant_id            text        NOT NULL,
    member_id            text        NOT NULL,
    branch_id            text,
    command_id           text        NOT NULL,
    posting_id           text        NOT NULL,
    kind                 text        NOT NULL CHECK (kind IN ('stored_value', 'purchase')),
    purchase_command_id  text,
    principal            bigint      NOT NULL CHECK (principal >= 0),
    bonus                bigint      NOT NULL CHECK (bonus >= 0),
    fee                  bigint      NOT NULL CHECK (fee >= 0),
    payout               bigint      NOT NULL CHECK (payout >= 0),
    reason               text        NOT NULL CHECK (reason <> ''),
    actor                text,
    created_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant_id, command_id),
    CHECK ((kind = 'purchase') = (purchase_command_id IS NOT NULL))
);
-- A purchase is refunded at most once.
CREATE UNIQUE INDEX refunds_purchase_once ON refunds (tenant_id, purchase_command_id)
    WHERE purchase_command_id IS NOT NULL;
CREATE INDEX refunds_member_idx ON refunds (tenant_id, member_id, created_at);

CREATE FUNCTION refunds_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the refund trail is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER refunds_no_change BEFORE UPDATE OR DELETE ON refunds
    FOR EACH ROW EXECUTE FUNCTION refunds_append_only();
CREATE TRIGGER refunds_no_truncate BEFORE TRUNCATE ON refunds
    FOR EACH STATEMENT EXECUTE FUNCTION refunds_append_only();

-- Outstanding prepaid stored value per tenant (principal + bonus), kept
-- up to date by every batch in its own transaction, so crossing a
-- tenant's threshold is detected exactly once, as an event. The audit
-- checks it against the sum of the members' balances.
CREATE TABLE tenant_prepaid (
    tenant_id    text   PRIMARY KEY,
    outstanding  bigint NOT NULL
);
INSERT INTO tenant_prepaid (tenant_id, outstanding)
    SELECT tenant_id, sum(sv_principal + sv_bonus) FROM balances GROUP BY tenant_id;

-- A tenant's configured threshold (minor units); no row: no alert.
CREATE TABLE prepaid_thresholds (
    tenant_id  text   PRIMARY KEY,
    threshold  bigint NOT NULL CHECK (threshold > 0)
);

-- Every crossing, up or down, as recorded with the PrepaidThresholdCrossed
-- event it emitted.
CREATE TABLE prepaid_threshold_crossings (
    crossing_id  bigserial   PRIMARY KEY,
    tenant_id    text        NOT NULL,
    threshold    bigint      NOT NULL,
    outstanding  bigint      NOT NULL,
    above        boolean     NOT NULL,
    command_id   text        NOT NULL,  -- the batch's last command that moved the tenant's value
    created_at   timestamptz NOT NULL DEFAULT now()
);
