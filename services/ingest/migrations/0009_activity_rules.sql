-- The tenant's activity rules, one row per version (issue 12): what GET
-- /v1/config/activity-rules answers. Written in the same statement as
-- the audit row and the ActivityRulesChanged event's outbox row, so a
-- version is stored if and only if it is published. The campaign service
-- keeps its own copy from the event; this one is only what was asked.
CREATE TABLE activity_rules (
    tenant_id          text   NOT NULL REFERENCES tenants,
    version            bigint NOT NULL CHECK (version > 0),
    change_id          text   NOT NULL,
    effective_from_us  bigint NOT NULL,
    time_zone          text   NOT NULL,
    rules              jsonb  NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, version)
);
