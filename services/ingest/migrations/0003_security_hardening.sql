-- Issue 10, security: the app scope, members' data keys (crypto-shredding)
-- and the idempotency retention.

-- An app key is publishable: a member app ships it, it serves only the
-- member login routes (/v1/auth/*).
ALTER TABLE api_keys DROP CONSTRAINT api_keys_scope_check;
ALTER TABLE api_keys ADD CONSTRAINT api_keys_scope_check
    CHECK (scope IN ('admin', 'pos', 'analytics:read', 'app'));
