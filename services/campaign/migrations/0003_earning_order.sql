-- Earning in the order the README promises (issue 10 item 13): a purchase
-- recorded after an earning rule change that ingest published but this
-- service has not stored yet (its event is late) waits here, its fact
-- kept, and earns when the change is stored, under that change.
CREATE TABLE deferred_purchases (
    tenant_id            text   NOT NULL,
    purchase_command_id  text   NOT NULL,
    occurred_at_us       bigint NOT NULL,
    fact                 bytea  NOT NULL, -- the PurchaseRecorded envelope
    deferred_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, purchase_command_id)
);

-- Changes this service dead-lettered (out of bounds): nothing waits for
-- them.
CREATE TABLE refused_rule_changes (
    tenant_id   text NOT NULL,
    change_id   text NOT NULL,
    refused_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, change_id)
);
