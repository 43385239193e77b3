-- Ingest's read contract (docs/read-contracts.md): the views another
-- service's SQL may use are named read_*. The earning rule changes view
-- (0005) was the first; it takes the name every published view has.
ALTER VIEW earning_rule_changes RENAME TO read_earning_rule_changes;
