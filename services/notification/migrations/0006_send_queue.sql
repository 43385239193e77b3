-- The delivery worker's queue, narrow and apart from the record (issue
-- 11's benchmark). Claiming a row of deliveries and recording its outcome
-- were two updates of a wide row whose status sat in the queue indexes'
-- predicates: neither could be HOT, so each re-inserted into every index
-- of deliveries (the text UNIQUE key included). Now a row waiting to be
-- sent has a queue row here; the claim leases it in place (this table's
-- small indexes only), the outcome deletes it (or puts it back with its
-- next attempt) and updates deliveries in no indexed column: a HOT
-- update, with the room fillfactor leaves on the page. Inbox messages
-- and suppressed decisions get no queue row at all.
CREATE TABLE send_queue (
    delivery_id     bigint   PRIMARY KEY, -- deliveries.id
    channel         text     NOT NULL,
    lane            smallint NOT NULL,
    next_attempt_us bigint   NOT NULL,    -- due (held: when quiet hours end)
    attempts        integer  NOT NULL DEFAULT 0,
    lease_until     timestamptz           -- claimed by a worker until then
);
-- The claim: per provider and lane, due first, only rows not leased.
CREATE INDEX send_queue_waiting ON send_queue (channel, lane, next_attempt_us)
    WHERE lease_until IS NULL;
-- The sweep of leases that ran out (their worker died).
CREATE INDEX send_queue_leased ON send_queue (lease_until) WHERE lease_until IS NOT NULL;

INSERT INTO send_queue (delivery_id, channel, lane, next_attempt_us, attempts, lease_until)
    SELECT id, channel, lane, next_attempt_us, attempts,
           CASE WHEN status = 'sending' THEN lease_until END
    FROM deliveries WHERE status IN ('pending', 'held', 'sending');
-- A row being sent stays pending (or held) in deliveries: its lease is
-- the queue row's.
UPDATE deliveries SET status = 'pending' WHERE status = 'sending';

DROP INDEX deliveries_waiting;
DROP INDEX deliveries_leased;
ALTER TABLE deliveries DROP COLUMN lease_until;
-- Room on each page for the outcome's new version of its rows (HOT).
ALTER TABLE deliveries SET (fillfactor = 70);
