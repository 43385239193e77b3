-- The first-day limit on freshly topped-up stored value (a fraud control:
-- value topped up today, say with a stolen bank card, cannot all be spent
-- the same day). Part of the tenant's limits; 0 means no limit. What was
-- topped up today is read from the journal (services/ledger/firstday.c),
-- so nothing else is stored.
ALTER TABLE card_limits
    ADD COLUMN first_day_topup_spend_max bigint NOT NULL DEFAULT 0
        CHECK (first_day_topup_spend_max >= 0);
