-- Every change to an API key's row (made, revoked, altered, deleted) is
-- announced on the channel api_key_changes with the key's hash, in the
-- same transaction: every ingest instance LISTENs and drops the key from
-- its cache when the change commits (services/ingest/key_listen.c). A
-- TRUNCATE announces '' (drop every key). Changes by hand in psql are
-- covered as much as the API's own.
CREATE FUNCTION api_keys_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('api_key_changes', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('api_key_changes', OLD.key_hash);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('api_key_changes', NEW.key_hash);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER api_keys_announce_row AFTER INSERT OR UPDATE OR DELETE ON api_keys
    FOR EACH ROW EXECUTE FUNCTION api_keys_announce();
CREATE TRIGGER api_keys_announce_truncate AFTER TRUNCATE ON api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION api_keys_announce();
