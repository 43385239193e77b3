-- Tenants by API (docs/tenants.md). A platform key may create tenants
-- (POST /v1/tenants) and nothing else; it is made by the bootstrap command
-- `tessera-ingest --create-platform-key NAME`, shown once, and only its
-- SHA-256 is kept, like a tenant's API keys.
CREATE TABLE platform_keys (
    key_hash    text        PRIMARY KEY,
    key_id      text        NOT NULL UNIQUE,
    name        text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);

-- Each tenant-creation, audited (the tenant's own audit_log gets the row
-- too, with the platform key as its actor).
ALTER TABLE tenants
    ADD COLUMN template text CHECK (template IN ('education', 'fitness', 'restaurant', 'retail')),
    ADD COLUMN created_by text;

-- A closed branch keeps its history (members, journal lines name it) but
-- refuses new transactions (problem code branch_closed).
ALTER TABLE branches ADD COLUMN closed_at timestamptz;
