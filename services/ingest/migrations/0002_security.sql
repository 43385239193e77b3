-- Identity and security (issue 4).
--
-- Member PII at rest: name, phone, email, birthday, gender and the
-- tenant's attributes are sealed by ingest
-- (XChaCha20-Poly1305 under a per-tenant key derived from the operator's
-- master key); the phone is found and kept unique through a keyed blind
-- index. pii_key_version names the master key that sealed the row (0: a
-- row from before this migration, still in the plaintext columns until
-- `tessera-ingest --reencrypt-pii` seals it; the local runtime runs it at
-- every start).
ALTER TABLE members
    ADD COLUMN name_enc bytea,
    ADD COLUMN phone_enc bytea,
    ADD COLUMN email_enc bytea,
    ADD COLUMN birthday_enc bytea,
    ADD COLUMN gender_enc bytea,
    ADD COLUMN attributes_enc bytea,
    ADD COLUMN phone_bidx bytea,
    ADD COLUMN pii_key_version int NOT NULL DEFAULT 0,
    ALTER COLUMN name DROP NOT NULL,
    ALTER COLUMN phone DROP NOT NULL;
ALTER TABLE members DROP CONSTRAINT members_tenant_phone_key;
ALTER TABLE members
    ADD CONSTRAINT members_tenant_phone_bidx_key UNIQUE (tenant_id, phone_bidx),
    -- a row is either legacy plaintext or sealed, never both
    ADD CONSTRAINT members_pii_sealed_or_legacy
        CHECK (num_nonnulls(phone, phone_enc) = 1 AND num_nonnulls(name, name_enc) = 1);

-- API keys get a public id (for revocation and audit), their creator and
-- optionally their own rate limit (requests per second; NULL: the
-- instance's TESSERA_RATE_KEY_PER_S).
ALTER TABLE api_keys
    ADD COLUMN key_id text,
    ADD COLUMN created_by text,
    ADD COLUMN rate_limit_per_s int CHECK (rate_limit_per_s BETWEEN 1 AND 100000);
UPDATE api_keys SET key_id = 'key_' || left(key_hash, 16) WHERE key_id IS NULL;
-- Keys inserted by SQL (the demo seed) get a random public id.
ALTER TABLE api_keys
    ALTER COLUMN key_id SET DEFAULT 'key_' || left(replace(gen_random_uuid()::text, '-', ''), 16),
    ALTER COLUMN key_id SET NOT NULL,
    ADD CONSTRAINT api_keys_key_id_key UNIQUE (key_id);

-- The audit log of admin actions: who (the key's public id), from where
-- (the client address), what, and the record before and after. Written in
-- the same statement as the action, so an action without its audit row
-- cannot commit. Append-only: updates and deletes are refused.
CREATE TABLE audit_log (
    audit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id    text NOT NULL,
    occurred_at  timestamptz NOT NULL DEFAULT now(),
    actor_key_id text NOT NULL,
    actor_ip     text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    before       jsonb,
    after        jsonb
);
CREATE INDEX audit_log_tenant_idx ON audit_log (tenant_id, audit_id DESC);

CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only' USING ERRCODE = 'insufficient_privilege';
END $$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();

-- Member login. Passwords: argon2id strings from crypto_pwhash_str.
CREATE TABLE member_credentials (
    tenant_id      text NOT NULL,
    member_id      text NOT NULL,
    password_hash  text NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id),
    FOREIGN KEY (tenant_id, member_id) REFERENCES members
);

-- Login codes sent by SMS: only a keyed hash of the code is kept; a code
-- expires, is used at most once and allows a few wrong attempts.
CREATE TABLE sms_codes (
    code_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id   text NOT NULL,
    member_id   text NOT NULL,
    phone_bidx  bytea NOT NULL,
    code_hash   bytea NOT NULL,
    expires_at  timestamptz NOT NULL,
    attempts    int NOT NULL DEFAULT 0,
    used_at     timestamptz,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sms_codes_phone_idx ON sms_codes (tenant_id, phone_bidx, code_id DESC);

-- Devices a member has logged in from; at most TESSERA_MEMBER_DEVICES_MAX.
CREATE TABLE member_devices (
    tenant_id   text NOT NULL,
    member_id   text NOT NULL,
    device_id   text NOT NULL,
    first_seen  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, device_id)
);
