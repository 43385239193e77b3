-- Read contract for the campaign service (issue 10 item 13): every
-- earning rule change ingest has published, with the time it is in force
-- from (ms precision, never later than the event's own). A change and its
-- audit row are written by one statement, so a change is listed here
-- before its EarningRulesChanged event can reach anyone. The campaign
-- holds back a purchase recorded after a change listed here that it has
-- not stored yet, instead of earning it under the old rules.
CREATE INDEX audit_log_earning_rules_idx ON audit_log (tenant_id)
    WHERE action = 'earning_rules.put';
CREATE VIEW earning_rule_changes AS
    SELECT tenant_id,
           after->>'change_id' AS change_id,
           (EXTRACT(EPOCH FROM (after->>'effective_from')::timestamptz) * 1000000)::bigint
               AS effective_from_us
    FROM audit_log
    WHERE action = 'earning_rules.put';
