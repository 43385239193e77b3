-- Tiering's read contract (docs/read-contracts.md): the only name of this
-- schema another service's SQL may use. A plain projection (PostgreSQL
-- inlines it; the primary key serves the readers). The tables may change
-- freely as long as the view keeps its columns and their meaning.

-- Each member's current tier; no row: the member has none.
CREATE VIEW read_member_tiers AS
    SELECT tenant_id, member_id, rank, name, discount_bp, points_multiplier_bp
    FROM member_tiers;
