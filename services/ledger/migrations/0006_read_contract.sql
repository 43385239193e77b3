-- The ledger's read contract (docs/read-contracts.md): the only names of
-- this schema another service's SQL may use. Each view is a plain
-- projection, so PostgreSQL inlines it and the tables' indexes serve the
-- readers as before. The tables may change freely; a change that would
-- alter a view's columns or their meaning adds a new view instead (or
-- keeps the old one's columns by computing them), because PostgreSQL
-- refuses to drop or retype a column a view uses.

-- Each member's balances (minor units and points).
CREATE VIEW read_balances AS
    SELECT tenant_id, member_id, points, points_pending, sv_principal, sv_bonus
    FROM balances;

-- The journal, append-only: one row per posted line.
CREATE VIEW read_journal AS
    SELECT line_id, posting_id, command_id, tenant_id, member_id, branch_id, account, asset,
           amount, reason, actor, created_at
    FROM journal;

-- Every command the ledger decided, with its verdict.
CREATE VIEW read_commands AS
    SELECT tenant_id, command_id, command_type, member_id, status, verdict
    FROM commands;

-- Each member's cards (count, time, discount, subscription).
CREATE VIEW read_cards AS
    SELECT tenant_id, card_id, member_id, product_id, kind, uses_left, uses_total, paid_total,
           valid_from_us, valid_to_us, frozen_until_us, freeze_days_left, discount_bp, branch_ids,
           sold_branch_id, created_at
    FROM cards;

-- Each member's coupons, redeemed or not.
CREATE VIEW read_coupons AS
    SELECT tenant_id, coupon_id, member_id, kind, value, percent_bp, valid_from_us, valid_to_us,
           redeemed_by
    FROM coupons;
