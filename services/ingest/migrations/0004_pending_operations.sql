-- Commands answered 202 (issue 10 item 12). The waiter that held such a
-- command is gone once it answered, and other ingest instances never had
-- it, so GET /v1/operations/{id} reads this row to answer "pending" on
-- every instance until the ledger's verdict (ledger.commands) is stored.
-- Written before the 202 goes out, only for commands that got one.
CREATE TABLE pending_operations (
    tenant_id   text NOT NULL,
    command_id  text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, command_id)
);
