-- The delivery worker's claim (issue 11's benchmark): the old queue index
-- also held the rows being sent, so every claim walked past the whole
-- slice in flight (and their dead versions) to reach the next due row.
-- Now the claim reads only rows waiting to go (pending, or held past
-- quiet hours), and a row whose lease ran out (its worker died) is found
-- by its lease, a cheap sweep now and then that puts it back to pending.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_waiting ON deliveries (channel, lane, next_attempt_us)
    WHERE status IN ('pending', 'held');
CREATE INDEX deliveries_leased ON deliveries (lease_until) WHERE status = 'sending';
