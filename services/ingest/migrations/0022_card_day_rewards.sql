-- Issue 12, engagement: days on a membership card as a reward of the
-- catalogue, and the redemption.done notice owed until Kafka has it.
--
-- A card_days reward adds card_days to the member's active time card of
-- card_product_id; its redemption is one ledger command (ExtendCard, command
-- id = redemption id) that spends the points and adds the days in one
-- posting, so no active card refuses both (no_active_card).
ALTER TABLE rewards ADD COLUMN card_product_id text,
                    ADD COLUMN card_days bigint NOT NULL DEFAULT 0;
ALTER TABLE rewards DROP CONSTRAINT rewards_kind_check;
ALTER TABLE rewards ADD CONSTRAINT rewards_kind_check
    CHECK (kind IN ('coupon', 'gift', 'card_days'));
ALTER TABLE rewards ADD CONSTRAINT rewards_card_days_check
    CHECK ((kind = 'card_days') = (card_product_id IS NOT NULL)
           AND (kind = 'card_days') = (card_days > 0) AND card_days <= 3660);

-- The redemption.done notice of a done redemption (redemption_settle.c) is
-- owed until the producer's delivery report says Kafka has it (noticed_at),
-- like coupon_grants' in 0020: a crash between the move to done and the
-- send only delays it. notice_sent_at is the last send, so a send without
-- a report is sent again a while later; notification de-duplicates by
-- request id, so the member is told once.
ALTER TABLE redemptions ADD COLUMN noticed_at timestamptz,
                        ADD COLUMN notice_sent_at timestamptz;
-- Redemptions done before this migration were noticed by the old code.
UPDATE redemptions SET noticed_at = coalesce(settled_at, now()) WHERE status = 'done';
-- The owed ones, found by the settle round and by the delivery report's
-- mark (which knows only the redemption id).
CREATE INDEX redemptions_notice_owed ON redemptions (redemption_id)
    WHERE status = 'done' AND noticed_at IS NULL;
