-- The campaign's read contract (docs/read-contracts.md): the only name of
-- this schema another service's SQL may use. A plain projection
-- (PostgreSQL inlines it; the primary key serves the readers). The tables
-- may change freely as long as the view keeps its columns and meaning.

-- Every earning rule change this service has stored (and so applies to
-- purchases recorded from effective_from_us on).
CREATE VIEW read_earning_rules AS
    SELECT tenant_id, change_id, effective_from_us
    FROM earning_rules;
