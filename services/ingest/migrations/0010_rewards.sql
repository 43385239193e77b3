-- The rewards catalogue and its redemptions (issue 12). Ingest owns both:
-- a reward's stock is reserved by a conditional UPDATE (stock > 0) in the
-- statement that records the redemption, before its points are debited
-- by the ledger (AdjustPoints, command id = redemption id); the
-- redemption settle sweep (redemption_settle.c) reads the ledger's
-- verdict (ledger.read_commands) and releases the reservation when the
-- ledger refused, or delivers the reward when it posted.
CREATE TABLE rewards (
    tenant_id          text   NOT NULL,
    reward_id          text   NOT NULL,
    name               text   NOT NULL,
    kind               text   NOT NULL CHECK (kind IN ('coupon', 'gift')),
    points_price       bigint NOT NULL CHECK (points_price > 0),
    stock              bigint CHECK (stock >= 0),          -- NULL: unlimited
    coupon_kind        text   CHECK (coupon_kind IN ('value', 'percent')),
    coupon_value       bigint NOT NULL DEFAULT 0,
    coupon_percent_bp  bigint NOT NULL DEFAULT 0,
    coupon_valid_days  bigint NOT NULL DEFAULT 0,
    active_from_us     bigint NOT NULL,
    active_to_us       bigint,                             -- NULL: no end
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, reward_id),
    CHECK ((kind = 'coupon') = (coupon_kind IS NOT NULL))
);

-- reserved: stock taken, points debit sent; delivering: the ledger posted
-- the debit, the coupon is being issued; done; refused: the ledger
-- refused the debit and the stock went back.
CREATE TABLE redemptions (
    tenant_id      text   NOT NULL,
    redemption_id  text   NOT NULL,
    member_id      text   NOT NULL,
    branch_id      text   NOT NULL,
    reward_id      text   NOT NULL,
    kind           text   NOT NULL,
    points         bigint NOT NULL CHECK (points > 0),
    status         text   NOT NULL DEFAULT 'reserved'
        CHECK (status IN ('reserved', 'delivering', 'done', 'refused')),
    delivery_id    text   NOT NULL,  -- the IssueCoupon command's id (coupon rewards)
    created_at     timestamptz NOT NULL DEFAULT now(),
    settled_at     timestamptz,
    PRIMARY KEY (tenant_id, redemption_id),
    FOREIGN KEY (tenant_id, reward_id) REFERENCES rewards (tenant_id, reward_id)
);
CREATE INDEX redemptions_open ON redemptions (created_at)
    WHERE status IN ('reserved', 'delivering');
