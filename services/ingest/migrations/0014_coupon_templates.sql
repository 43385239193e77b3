-- Coupons as campaigns (issue 12, docs/coupons.md). Ingest owns the
-- templates, the issues (bulk jobs) and one grant row per coupon given:
-- the grant row is the decision, made once per (template, member, source)
-- by its primary key, in the same statement that counts it against the
-- template's budget (issued_count, under a row lock of the template). The
-- ledger then issues the coupon (IssueCoupon, command id = coupon id); the
-- sweep (coupon_issuer.c) reads the verdicts and tells the member.
CREATE TABLE coupon_templates (
    tenant_id         text   NOT NULL,
    template_id       text   NOT NULL,
    name              text   NOT NULL,
    kind              text   NOT NULL CHECK (kind IN ('value', 'percent', 'free_item')),
    value             bigint NOT NULL DEFAULT 0 CHECK (value >= 0),
    percent_bp        bigint NOT NULL DEFAULT 0 CHECK (percent_bp BETWEEN 0 AND 10000),
    free_sku          text   NOT NULL DEFAULT '',
    min_spend         bigint NOT NULL DEFAULT 0 CHECK (min_spend >= 0),
    valid_days        bigint NOT NULL DEFAULT 0,  -- 0: the fixed window below
    valid_from_us     bigint NOT NULL DEFAULT 0,
    valid_to_us       bigint NOT NULL DEFAULT 0,
    per_member_limit  bigint NOT NULL DEFAULT 1 CHECK (per_member_limit > 0),
    total_count       bigint CHECK (total_count > 0),  -- NULL: no budget
    issued_count      bigint NOT NULL DEFAULT 0,
    public            boolean NOT NULL DEFAULT false,  -- members may claim it
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, template_id),
    CHECK (total_count IS NULL OR issued_count <= total_count)
);

-- A bulk issue: to a list of members or to everyone matching a filter,
-- walked in member id order after cursor, a chunk per round.
CREATE TABLE coupon_issues (
    tenant_id        text   NOT NULL,
    issue_id         text   NOT NULL,
    template_id      text   NOT NULL,
    member_ids       text[],          -- NULL: the filter
    tier             text,            -- filter: tier name (tiering.read_member_tiers)
    branch_id        text,            -- filter: home branch
    registered_from  timestamptz,     -- filter: registered in [from, to)
    registered_to    timestamptz,
    cursor           text   NOT NULL DEFAULT '',
    status           text   NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'done')),
    issued           bigint NOT NULL DEFAULT 0,
    skipped          bigint NOT NULL DEFAULT 0,  -- at the per-member limit, or already given
    over_budget      bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    PRIMARY KEY (tenant_id, issue_id),
    FOREIGN KEY (tenant_id, template_id) REFERENCES coupon_templates (tenant_id, template_id)
);
CREATE INDEX coupon_issues_running ON coupon_issues (created_at) WHERE status = 'running';

-- One row per coupon given. source: the issue id, or 'claim:<n>' for the
-- member's n-th claim. sent: IssueCoupon sent, no verdict yet; issued: the
-- ledger posted it and the member was told; refused: the ledger refused.
CREATE TABLE coupon_grants (
    tenant_id    text   NOT NULL,
    template_id  text   NOT NULL,
    member_id    text   NOT NULL,
    source       text   NOT NULL,
    coupon_id    text   NOT NULL,
    branch_id    text   NOT NULL,
    sent_at      timestamptz,  -- last IssueCoupon sent (NULL: not yet)
    status       text   NOT NULL DEFAULT 'sent' CHECK (status IN ('sent', 'issued', 'refused')),
    created_at   timestamptz NOT NULL DEFAULT now(),
    settled_at   timestamptz,
    PRIMARY KEY (tenant_id, template_id, member_id, source),
    UNIQUE (tenant_id, coupon_id)
);
CREATE INDEX coupon_grants_open ON coupon_grants (created_at) WHERE status = 'sent';

-- One round of one running issue: the next p_chunk members after the
-- cursor that the issue targets; each not yet given this issue's coupon
-- and under the per-member limit is given one while the budget lasts
-- (issued), the others counted (skipped, over_budget). The template's row
-- lock serialises this with claims and other issues of the template, so
-- the budget and the per-member limit hold under concurrency. Returns the
-- grants made (to be sent to the ledger).
CREATE FUNCTION coupon_issue_round(p_chunk int)
RETURNS TABLE (tenant_id text, member_id text, coupon_id text)
LANGUAGE plpgsql AS $$
DECLARE
    j coupon_issues%ROWTYPE;
    t coupon_templates%ROWTYPE;
    cand text[];
    ok text[];
    room bigint;
    n_new bigint;
    n_ok bigint;
BEGIN
    SELECT * INTO j FROM coupon_issues i WHERE i.status = 'running'
        ORDER BY i.created_at LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    SELECT * INTO t FROM coupon_templates c
        WHERE c.tenant_id = j.tenant_id AND c.template_id = j.template_id FOR UPDATE;
    SELECT array_agg(x.member_id ORDER BY x.member_id) INTO cand FROM (
        SELECT m.member_id FROM members m
        WHERE m.tenant_id = j.tenant_id AND m.member_id > j.cursor
          AND (j.member_ids IS NULL OR m.member_id = ANY (j.member_ids))
          AND (j.branch_id IS NULL OR m.branch_id = j.branch_id)
          AND (j.registered_from IS NULL OR m.created_at >= j.registered_from)
          AND (j.registered_to IS NULL OR m.created_at < j.registered_to)
          AND (j.tier IS NULL OR EXISTS (SELECT 1 FROM tiering.read_member_tiers r
               WHERE r.tenant_id = m.tenant_id AND r.member_id = m.member_id AND r.name = j.tier))
        ORDER BY m.member_id LIMIT p_chunk) x;
    IF cand IS NULL THEN
        -- listed ids that are no member of the tenant count as skipped
        UPDATE coupon_issues i SET status = 'done', finished_at = now(),
            skipped = i.skipped + CASE WHEN i.member_ids IS NULL THEN 0 ELSE
                greatest(cardinality(i.member_ids) - i.issued - i.skipped - i.over_budget, 0) END
            WHERE i.tenant_id = j.tenant_id AND i.issue_id = j.issue_id;
        RETURN;
    END IF;
    room := CASE WHEN t.total_count IS NULL THEN p_chunk
                 ELSE greatest(t.total_count - t.issued_count, 0) END;
    SELECT array_agg(c ORDER BY c) INTO ok FROM unnest(cand) c
        WHERE NOT EXISTS (SELECT 1 FROM coupon_grants g
            WHERE g.tenant_id = j.tenant_id AND g.template_id = j.template_id
              AND g.member_id = c AND g.source = j.issue_id)
          AND (SELECT count(*) FROM coupon_grants g WHERE g.tenant_id = j.tenant_id
               AND g.template_id = j.template_id AND g.member_id = c) < t.per_member_limit;
    n_ok := coalesce(cardinality(ok), 0);
    RETURN QUERY
    INSERT INTO coupon_grants AS g (tenant_id, template_id, member_id, source, coupon_id, branch_id)
        SELECT j.tenant_id, j.template_id, o.id, j.issue_id, gen_random_uuid()::text, m.branch_id
        FROM unnest(ok[1:room]) AS o(id)
        JOIN members m ON m.tenant_id = j.tenant_id AND m.member_id = o.id
        RETURNING g.tenant_id, g.member_id, g.coupon_id;
    GET DIAGNOSTICS n_new = ROW_COUNT;
    UPDATE coupon_templates c SET issued_count = c.issued_count + n_new
        WHERE c.tenant_id = j.tenant_id AND c.template_id = j.template_id;
    UPDATE coupon_issues i SET cursor = cand[cardinality(cand)], issued = i.issued + n_new,
        over_budget = i.over_budget + (n_ok - n_new),
        skipped = i.skipped + (cardinality(cand) - n_ok)
        WHERE i.tenant_id = j.tenant_id AND i.issue_id = j.issue_id;
END $$;

-- A member's claim of a public template: one coupon when the template is
-- claimable now, the member is under its per-member limit and the budget
-- has room; else the reason. Serialised per template by its row lock.
CREATE FUNCTION coupon_claim(p_tenant text, p_template text, p_member text, p_now_us bigint,
                             OUT outcome text, OUT coupon_id text)
LANGUAGE plpgsql AS $$
DECLARE
    t coupon_templates%ROWTYPE;
    n bigint;
    home text;
BEGIN
    SELECT m.branch_id INTO home FROM members m
        WHERE m.tenant_id = p_tenant AND m.member_id = p_member;
    IF NOT FOUND THEN
        outcome := 'not_found';
        RETURN;
    END IF;
    SELECT * INTO t FROM coupon_templates c
        WHERE c.tenant_id = p_tenant AND c.template_id = p_template FOR UPDATE;
    IF NOT FOUND THEN
        outcome := 'coupon_template_not_found';
        RETURN;
    END IF;
    IF NOT t.public OR (t.valid_to_us > 0 AND t.valid_to_us <= p_now_us) THEN
        outcome := 'coupon_template_not_claimable';
        RETURN;
    END IF;
    SELECT count(*) INTO n FROM coupon_grants g
        WHERE g.tenant_id = p_tenant AND g.template_id = p_template AND g.member_id = p_member;
    IF n >= t.per_member_limit THEN
        outcome := 'coupon_limit_reached';
        RETURN;
    END IF;
    IF t.total_count IS NOT NULL AND t.issued_count >= t.total_count THEN
        outcome := 'coupon_budget_exhausted';
        RETURN;
    END IF;
    coupon_id := gen_random_uuid()::text;
    INSERT INTO coupon_grants (tenant_id, template_id, member_id, source, coupon_id, branch_id)
        VALUES (p_tenant, p_template, p_member, 'claim:' || (n + 1), coupon_id, home);
    UPDATE coupon_templates c SET issued_count = c.issued_count + 1
        WHERE c.tenant_id = p_tenant AND c.template_id = p_template;
    outcome := 'ok';
END $$;

-- Read contract (docs/read-contracts.md): the campaign pays a referral's
-- coupon reward with a template's terms.
CREATE VIEW read_coupon_templates AS
    SELECT tenant_id, template_id, name, kind, value, percent_bp, free_sku, min_spend,
           valid_days, valid_from_us, valid_to_us
    FROM coupon_templates;
