-- Pending points and partial purchase refunds that reverse points.
--
-- Points earned by a rule (EarnPoints) wait in a pending lot for the
-- tenant's lock period before they can be spent; the journal keeps them
-- apart as the asset points_pending (member +N against the tenant's
-- points_earned account), and vesting moves them to points. A purchase
-- may now be refunded in several parts; each part reverses its share of
-- the points the purchase earned.

-- Extends whatever asset list the journal allows (as 0003 does) with
-- points_pending, instead of replacing it. The constraint reads either
-- ARRAY['points'::text, ...] (as 0001 wrote it) or '{card_days,...}'::text[]
-- (as 0003 rewrote it): every quoted literal, braces stripped, split at
-- commas, gives the names.
DO $$
DECLARE
    c record;
    assets text[] := ARRAY['points_pending'];
BEGIN
    FOR c IN SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint
             WHERE conrelid = 'journal'::regclass AND contype = 'c'
               AND pg_get_constraintdef(oid) LIKE '%asset%' LOOP
        assets := assets || ARRAY(
            SELECT a FROM regexp_matches(c.def, '''([^'']*)''', 'g') AS m,
                          unnest(string_to_array(btrim(m[1], '{}'), ',')) AS a
            WHERE a ~ '^[a-z_]+$');
        EXECUTE format('ALTER TABLE journal DROP CONSTRAINT %I', c.conname);
    END LOOP;
    assets := ARRAY(SELECT DISTINCT a FROM unnest(assets) AS a ORDER BY a);
    EXECUTE format('ALTER TABLE journal ADD CONSTRAINT journal_asset_check '
                   'CHECK (asset = ANY (%L::text[]))', assets);
END $$;

-- The lock period of earned points, in seconds (7 days = 604800). Seconds
-- rather than days so a tenant may lock for part of a day, and a test can
-- watch a lot vest. A tenant without a policy row: no lock.
ALTER TABLE points_policy
    ADD COLUMN lock_seconds bigint NOT NULL DEFAULT 0
        CHECK (lock_seconds BETWEEN 0 AND 31622400);  -- at most 366 days

-- Earned points still locked; never spendable, never negative.
ALTER TABLE balances
    ADD COLUMN points_pending bigint NOT NULL DEFAULT 0 CHECK (points_pending >= 0);

-- A lot is pending until vests_at; the scheduler then sends VestPoints.
-- An earned lot names its purchase and rule. earned is what the rule
-- awarded; granted is less only when part of the purchase had already been
-- refunded when the points arrived (that share was never granted).
ALTER TABLE point_lots
    ADD COLUMN pending boolean NOT NULL DEFAULT false,
    ADD COLUMN vests_at timestamptz,
    ADD COLUMN purchase_command_id text,
    ADD COLUMN rule text,
    ADD COLUMN earned bigint,
    ADD CONSTRAINT point_lots_pending_vests CHECK (NOT pending OR vests_at IS NOT NULL),
    ADD CONSTRAINT point_lots_earned CHECK (earned IS NULL OR earned >= granted);
CREATE INDEX point_lots_vest_idx ON point_lots (vests_at) WHERE pending AND remaining > 0;
CREATE INDEX point_lots_purchase_idx ON point_lots (tenant_id, purchase_command_id)
    WHERE purchase_command_id IS NOT NULL;

-- Refunds of a purchase: several partial ones now, so the once-only index
-- becomes a plain one. Each row records the charged amount it refunded and
-- the points it reversed (points_unrecovered of them had been spent and
-- were not taken back).
DROP INDEX refunds_purchase_once;
CREATE INDEX refunds_purchase_idx ON refunds (tenant_id, purchase_command_id)
    WHERE purchase_command_id IS NOT NULL;
ALTER TABLE refunds
    ADD COLUMN amount bigint NOT NULL DEFAULT 0 CHECK (amount >= 0),
    ADD COLUMN points_reversed bigint NOT NULL DEFAULT 0 CHECK (points_reversed >= 0),
    ADD COLUMN points_unrecovered bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT refunds_points_unrecovered
        CHECK (points_unrecovered BETWEEN 0 AND points_reversed);

-- Purchase refunds made before this migration were whole refunds of
-- stored-value purchases: their amount is what they returned. The trail
-- refuses UPDATE by trigger; this one backfill of a new column, inside the
-- migration's transaction, is the only exception.
ALTER TABLE refunds DISABLE TRIGGER refunds_no_change;
UPDATE refunds SET amount = principal + bonus WHERE kind = 'purchase';
ALTER TABLE refunds ENABLE TRIGGER refunds_no_change;
