-- A referee's first paid purchase met before their registration (docs/
-- rewards.md, referrals): registration (member-events) and purchase
-- (ledger-events) are on different topics, so the campaign may apply the
-- purchase first (a lag, a replay, a restart). The earliest such purchase
-- of a member whose registration has not been applied yet is kept here;
-- the registration consumes the row (locking the referral from it when it
-- names a referrer) and deletes it in any case. A purchase of a member
-- whose registration was applied (engage_members.registered_at_us) or who
-- has a referrals row is never kept, so the rows are only the members
-- whose registration the campaign has not caught up with yet. As a
-- backstop (a registration the campaign never applies: dead-lettered, or
-- of a member registered before engage_members existed) the referral
-- scheduler forgets rows remembered REFERRAL_REMEMBER_DAYS (30) before the
-- service clock (remembered_at_us: clock_now_us when first met).
CREATE TABLE referral_first_purchases (
    tenant_id            text   NOT NULL,
    member_id            text   NOT NULL,
    purchase_command_id  text   NOT NULL,
    purchase_event_id    text   NOT NULL,
    occurred_at_us       bigint NOT NULL,
    remembered_at_us     bigint NOT NULL,
    PRIMARY KEY (tenant_id, member_id)
);
CREATE INDEX referral_first_purchases_age ON referral_first_purchases (remembered_at_us);
