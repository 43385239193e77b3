-- A message delivered to the inbox is recorded by its inbox row alone
-- (issue 11's benchmark: one row fewer written per request); the row
-- keeps the rule that let it through (transactional, or consent for
-- marketing), as a delivery row does. Suppressed inbox messages still get
-- a delivery row with their rule. Rows from before have none.
ALTER TABLE inbox ADD COLUMN rule text;
