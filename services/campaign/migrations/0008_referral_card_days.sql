-- Days on a membership card as a referral reward (issue 12,
-- docs/rewards.md): per side, the product whose active time card gets the
-- days ('' / 0: none). The ledger picks the card (ExtendCard).
ALTER TABLE referral_rules
    ADD COLUMN referrer_card_product text   NOT NULL DEFAULT '',
    ADD COLUMN referrer_card_days    bigint NOT NULL DEFAULT 0
        CHECK (referrer_card_days BETWEEN 0 AND 3660),
    ADD COLUMN referee_card_product  text   NOT NULL DEFAULT '',
    ADD COLUMN referee_card_days     bigint NOT NULL DEFAULT 0
        CHECK (referee_card_days BETWEEN 0 AND 3660);

-- Why a side's card days were not given, recorded with the decision
-- ('' when given or not in the rule): 'no_active_card' when the member
-- held no valid time card of the product at the decision
-- (ledger.read_cards). The rest of that side's reward stands.
ALTER TABLE referrals
    ADD COLUMN referrer_card_note text NOT NULL DEFAULT '',
    ADD COLUMN referee_card_note  text NOT NULL DEFAULT '';
