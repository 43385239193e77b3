-- Ingest's own schema: tenants and branches, API keys (hashes only), the
-- member directory, idempotency records, and the outbox of member events.

CREATE TABLE tenants (
    tenant_id   text PRIMARY KEY,
    name        text NOT NULL,
    currency    text NOT NULL DEFAULT 'CNY',
    time_zone   text NOT NULL DEFAULT 'Asia/Shanghai',
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE branches (
    tenant_id   text NOT NULL REFERENCES tenants,
    branch_id   text NOT NULL,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, branch_id)
);

-- Keys are shown once when made; only their SHA-256 is kept.
CREATE TABLE api_keys (
    key_hash    text PRIMARY KEY,
    tenant_id   text NOT NULL REFERENCES tenants,
    name        text NOT NULL,
    scope       text NOT NULL CHECK (scope IN ('admin', 'pos', 'analytics:read')),
    branch_id   text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz,
    revoked_at  timestamptz,
    CHECK (scope <> 'pos' OR branch_id IS NOT NULL)
);

CREATE SEQUENCE member_no_seq START 100001;

CREATE TABLE members (
    tenant_id      text NOT NULL REFERENCES tenants,
    member_id      text NOT NULL,
    member_no      text NOT NULL,
    name           text NOT NULL,
    phone          text NOT NULL,
    email          text,
    birthday       date,
    gender         text,
    branch_id      text NOT NULL,
    referral_code  text NOT NULL,
    referred_by    text,
    attributes     jsonb NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id),
    CONSTRAINT members_tenant_phone_key UNIQUE (tenant_id, phone),
    CONSTRAINT members_tenant_referral_code_key UNIQUE (tenant_id, referral_code)
);

-- One row per Idempotency-Key: the request's hash, the command it became
-- and, once known, the answer given.
CREATE TABLE idempotency_keys (
    tenant_id        text NOT NULL,
    idempotency_key  text NOT NULL,
    request_hash     text NOT NULL,
    command_id       text,
    response_status  int,
    response_body    text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, idempotency_key)
);
