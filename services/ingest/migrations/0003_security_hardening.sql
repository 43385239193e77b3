-- Issue 10, security: the app scope, members' data keys (crypto-shredding)
-- and the idempotency retention.

-- An app key is publishable: a member app ships it, it serves only the
-- member login routes (/v1/auth/*).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('admin', 'pos', 'analytics:read', 'app'));

-- Each member's data key (random, 32 bytes), wrapped under the tenant's
-- key of master key version key_version. Personal data that leaves ingest
-- (MemberRegistered on member-events, kept forever) is sealed under it:
-- deleting the row makes every copy unreadable (crypto-shredding).
CREATE TABLE member_keys (
    tenant_id     text NOT NULL,
    member_id     text NOT NULL,
    key_version   int NOT NULL,
    data_key_enc  bytea NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id)
);

-- Erasure (DELETE /v1/members/{id}/personal-data) empties the personal
-- columns and the blind index; balances, journal and the member id stay.
ALTER TABLE members ADD COLUMN personal_data_erased_at timestamptz;
ALTER TABLE members DROP CONSTRAINT members_pii_sealed_or_legacy;
ALTER TABLE members ADD CONSTRAINT members_pii_sealed_or_legacy CHECK (
    (personal_data_erased_at IS NULL
        AND num_nonnulls(phone, phone_enc) = 1 AND num_nonnulls(name, name_enc) = 1)
    OR (personal_data_erased_at IS NOT NULL
        AND num_nonnulls(phone, phone_enc, name, name_enc, email, email_enc, birthday,
                         birthday_enc, gender, gender_enc, attributes_enc, phone_bidx) = 0));

-- Idempotency-Keys and their stored answers are purged after
-- TESSERA_IDEMPOTENCY_RETENTION_S (7 days by default), in batches that find
-- expired rows through this index.
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
