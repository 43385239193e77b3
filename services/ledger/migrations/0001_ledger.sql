-- The ledger's own schema: balances, the double-entry journal, one verdict
-- per command (the idempotency record) and the tenants' top-up ladders.

CREATE TABLE topup_bonus_steps (
    tenant_id  text   NOT NULL,
    threshold  bigint NOT NULL CHECK (threshold > 0),   -- minor units
    bonus      bigint NOT NULL CHECK (bonus >= 0),      -- minor units
    PRIMARY KEY (tenant_id, threshold)
);

CREATE TABLE balances (
    tenant_id     text   NOT NULL,
    member_id     text   NOT NULL,
    points        bigint NOT NULL DEFAULT 0 CHECK (points >= 0),
    sv_principal  bigint NOT NULL DEFAULT 0 CHECK (sv_principal >= 0),
    sv_bonus      bigint NOT NULL DEFAULT 0 CHECK (sv_bonus >= 0),
    version       bigint NOT NULL DEFAULT 0,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id)
);

-- Exactly one verdict per command id: a re-delivered or retried command
-- finds its row here and gets the stored verdict back.
CREATE TABLE commands (
    tenant_id     text NOT NULL,
    command_id    text NOT NULL,
    command_type  text NOT NULL,
    member_id     text NOT NULL,
    status        text NOT NULL CHECK (status IN ('posted', 'rejected')),
    code          text,
    posting_id    text,
    verdict       bytea NOT NULL,  -- the LedgerPosted/LedgerRejected envelope
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, command_id)
);

-- Every value that moves: lines of one posting sum to zero per asset.
CREATE TABLE journal (
    line_id     bigserial PRIMARY KEY,
    posting_id  text   NOT NULL,
    command_id  text   NOT NULL,
    tenant_id   text   NOT NULL,
    member_id   text,
    branch_id   text,
    account     text   NOT NULL,
    asset       text   NOT NULL CHECK (asset IN ('points', 'sv_principal', 'sv_bonus')),
    amount      bigint NOT NULL CHECK (amount <> 0),
    reason      text   NOT NULL,
    actor       text,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX journal_member_idx ON journal (tenant_id, member_id, line_id DESC);
CREATE INDEX journal_posting_idx ON journal (posting_id);
