-- The notification service's state (issue 11). Times ending in _us are
-- microseconds since the Unix epoch from the service clock (clock_now_us),
-- so a test that moves the clock moves quiet hours and caps with it.

-- A member's addresses, sealed at rest (crypto_secretbox under
-- TESSERA_NOTIFICATION_CONTACT_KEY: nonce || ciphertext). Erasure deletes
-- the row.
CREATE TABLE contacts (
    tenant_id   text   NOT NULL,
    member_id   text   NOT NULL,
    sealed      bytea  NOT NULL, -- JSON {"name","phone","email","push_tokens"}
    locale      text   NOT NULL DEFAULT '',
    updated_us  bigint NOT NULL,
    PRIMARY KEY (tenant_id, member_id)
);

-- Consent per member, channel and purpose; no row: not granted.
CREATE TABLE consents (
    tenant_id   text    NOT NULL,
    member_id   text    NOT NULL,
    channel     text    NOT NULL,
    purpose     text    NOT NULL,
    granted     boolean NOT NULL,
    source      text    NOT NULL,
    updated_us  bigint  NOT NULL,
    PRIMARY KEY (tenant_id, member_id, channel, purpose)
);

-- A tenant's saved templates; channel '' is every channel. No row: the
-- built-in template of libs/template (template_default).
CREATE TABLE templates (
    tenant_id   text   NOT NULL,
    name        text   NOT NULL,
    channel     text   NOT NULL,
    locale      text   NOT NULL,
    subject     text   NOT NULL,
    body        text   NOT NULL,
    version     bigint NOT NULL,
    change_id   text   NOT NULL,
    updated_us  bigint NOT NULL,
    PRIMARY KEY (tenant_id, name, channel, locale)
);

-- A tenant's delivery policy; no row: the defaults (Asia/Shanghai, quiet
-- 21:00-08:00, 3 marketing messages a week, zh-CN, CNY).
CREATE TABLE policies (
    tenant_id               text    NOT NULL PRIMARY KEY,
    time_zone               text    NOT NULL,
    quiet_start_minute      integer NOT NULL,
    quiet_end_minute        integer NOT NULL,
    marketing_cap_per_week  integer NOT NULL,
    default_locale          text    NOT NULL,
    currency                text    NOT NULL,
    change_id               text    NOT NULL,
    updated_us              bigint  NOT NULL
);

-- One row per request ever seen: the de-duplication of request ids.
CREATE TABLE requests (
    tenant_id    text    NOT NULL,
    request_id   text    NOT NULL,
    member_id    text    NOT NULL,
    template     text    NOT NULL,
    purpose      text    NOT NULL,
    priority     text    NOT NULL,
    received_us  bigint  NOT NULL,
    counts_for_cap boolean NOT NULL DEFAULT false, -- a marketing message that went out
    PRIMARY KEY (tenant_id, request_id)
);
CREATE INDEX requests_cap ON requests (tenant_id, member_id, received_us) WHERE counts_for_cap;

-- One row per request and channel: the decision (status, rule) and, for
-- external channels, the outbox of sends the delivery worker drains.
-- status: pending | held (quiet hours; next_attempt_us = when they end)
-- | sending (leased to a worker until lease_until) | delivered | failed
-- | suppressed. lane 0 is high priority (codes), 1 normal, 2 bulk.
CREATE TABLE deliveries (
    id              bigserial PRIMARY KEY,
    tenant_id       text    NOT NULL,
    request_id      text    NOT NULL,
    member_id       text    NOT NULL,
    channel         text    NOT NULL,
    message_id      text    NOT NULL UNIQUE,
    template        text    NOT NULL,
    lane            smallint NOT NULL,
    status          text    NOT NULL,
    rule            text    NOT NULL,
    address         bytea,           -- sealed like contacts
    subject         text,
    body            text,            -- cleared once the delivery is over
    html            text,
    attempts        integer NOT NULL DEFAULT 0,
    next_attempt_us bigint  NOT NULL DEFAULT 0,
    expires_at_us   bigint  NOT NULL DEFAULT 0,
    lease_until     timestamptz,
    last_error      text,
    created_us      bigint  NOT NULL,
    updated_us      bigint  NOT NULL,
    UNIQUE (tenant_id, request_id, channel)
);
-- The delivery worker's queue: per provider (channel) and lane, due first.
CREATE INDEX deliveries_due ON deliveries (channel, lane, next_attempt_us)
    WHERE status IN ('pending', 'held', 'sending');

-- The in-app inbox.
CREATE TABLE inbox (
    tenant_id   text   NOT NULL,
    message_id  text   NOT NULL,
    member_id   text   NOT NULL,
    request_id  text   NOT NULL,
    template    text   NOT NULL,
    title       text   NOT NULL,
    body        text   NOT NULL,
    created_us  bigint NOT NULL,
    read_us     bigint,
    PRIMARY KEY (tenant_id, message_id)
);
CREATE INDEX inbox_member ON inbox (tenant_id, member_id, created_us DESC, message_id);

-- Read contract (docs/read-contracts.md).
CREATE VIEW read_inbox AS
    SELECT tenant_id, member_id, message_id, request_id, template, title, body, created_us,
           read_us
    FROM inbox;

CREATE VIEW read_templates AS
    SELECT tenant_id, name, channel, locale, subject, body, version, updated_us
    FROM templates;

CREATE VIEW read_policies AS
    SELECT tenant_id, time_zone, quiet_start_minute, quiet_end_minute, marketing_cap_per_week,
           default_locale, currency, change_id, updated_us
    FROM policies;
