-- The coupon.issued notice of an issued grant (services/ingest/coupon_issuer.c)
-- is owed until the broker acknowledged it: noticed_at stays NULL until the
-- producer's delivery report says the NotifyRequest is written, so a crash or
-- a refused produce between the settle and the send only delays the notice.
-- notice_sent_at is the last send, so a send without a report (a crash) is
-- sent again a while later; notification de-duplicates by request id.
ALTER TABLE coupon_grants ADD COLUMN noticed_at timestamptz,
                          ADD COLUMN notice_sent_at timestamptz;
-- Grants issued before this migration were noticed by the old code.
UPDATE coupon_grants SET noticed_at = coalesce(settled_at, now()) WHERE status = 'issued';
CREATE INDEX coupon_grants_notice_owed ON coupon_grants (coupon_id)
    WHERE status = 'issued' AND noticed_at IS NULL;
