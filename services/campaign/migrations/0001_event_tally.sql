-- Events seen per tenant and type (libs/service/event_tally.c): the first
-- projection of this service, kept exactly once with its offsets.
CREATE TABLE event_tally (
    tenant_id      text   NOT NULL,
    event_type     text   NOT NULL,
    events         bigint NOT NULL,
    last_event_at  timestamptz,
    PRIMARY KEY (tenant_id, event_type)
);
