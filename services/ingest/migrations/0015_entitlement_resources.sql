-- Entitlements (issue 13, docs/entitlements.md): the resources a tenant
-- guards (a course, a door) and the rules that open them, set through
-- PUT /v1/resources/{resource}. rules is the normalized JSON the API
-- answers with (tier rules carry the rank of their level).
CREATE TABLE entitlement_resources (
    tenant_id  text NOT NULL,
    resource   text NOT NULL,
    rules      jsonb NOT NULL,
    version    bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, resource)
);

-- Every change is announced on resource_changes as "<tenant> <resource>"
-- in the same transaction (a TRUNCATE: ''), so every ingest instance drops
-- the cached rules when the change commits (services/ingest/resource_listen.c),
-- changes by hand in psql included.
CREATE FUNCTION entitlement_resources_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        PERFORM pg_notify('resource_changes', '');
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        PERFORM pg_notify('resource_changes', OLD.tenant_id || ' ' || OLD.resource);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM pg_notify('resource_changes', NEW.tenant_id || ' ' || NEW.resource);
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER entitlement_resources_announce_row
    AFTER INSERT OR UPDATE OR DELETE ON entitlement_resources
    FOR EACH ROW EXECUTE FUNCTION entitlement_resources_announce();
CREATE TRIGGER entitlement_resources_announce_truncate AFTER TRUNCATE ON entitlement_resources
    FOR EACH STATEMENT EXECUTE FUNCTION entitlement_resources_announce();
