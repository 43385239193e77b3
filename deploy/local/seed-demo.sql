-- The demo tenant `make run` creates: branches hq and branch-1, the
-- default tier ladder, the top-up bonus ladder (1 000 -> +100,
-- 2 000 -> +300, 5 000 -> +1 000 yuan; amounts in fen), the purchase
-- earning rule (1 point per yuan) and the admin key (only its SHA-256 is
-- stored). Safe to run again.

INSERT INTO ingest.tenants (tenant_id, name) VALUES ('demo', 'Demo Chain')
    ON CONFLICT DO NOTHING;
INSERT INTO ingest.branches (tenant_id, branch_id, name) VALUES
    ('demo', 'hq', 'Headquarters'),
    ('demo', 'branch-1', 'Branch 1')
    ON CONFLICT DO NOTHING;
INSERT INTO ingest.api_keys (key_hash, tenant_id, name, scope)
    VALUES (encode(sha256(convert_to(:'api_key', 'UTF8')), 'hex'), 'demo', 'demo admin', 'admin')
    ON CONFLICT DO NOTHING;

INSERT INTO ledger.topup_bonus_steps (tenant_id, threshold, bonus) VALUES
    ('demo', 100000, 10000),
    ('demo', 200000, 30000),
    ('demo', 500000, 100000)
    ON CONFLICT DO NOTHING;

INSERT INTO tiering.tier_levels
    (tenant_id, rank, name, min_cumulative_spend, min_annual_spend, invitation_only, discount_bp)
VALUES
    ('demo', 1, 'Basic', 50000, NULL, false, 8500),
    ('demo', 2, 'Advanced', 200000, 500000, false, 8000),
    ('demo', 3, 'Premium', 2000001, NULL, false, 7000)
    ON CONFLICT DO NOTHING;

-- Points expire at the end of the 12th month after the month they became
-- spendable, in Shanghai time (rules_points.h); points earned by purchases
-- stay pending (not spendable, reversed cleanly by a refund) for a 7-day
-- lock period (604 800 s).
INSERT INTO ledger.points_policy (tenant_id, kind, periods, utc_offset_minutes, lock_seconds)
    VALUES ('demo', 'end_of_month', 12, 480, 604800)
    ON CONFLICT DO NOTHING;

-- Purchases earn 1 point per yuan (100 fen) charged, rounded down, in
-- force since the beginning (effective_from_us 0). PUT
-- /v1/config/earning-rules replaces it for purchases recorded after.
INSERT INTO campaign.earning_rules (tenant_id, change_id, effective_from_us, purchase_enabled,
                                    purchase_unit_amount, purchase_points_per_unit)
    VALUES ('demo', 'seed', 0, true, 100, 1)
    ON CONFLICT DO NOTHING;
