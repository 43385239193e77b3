-- Activities, streaks, promotions, birthdays and the welcome month (issue
-- 12). Written only by this service, from member-events facts
-- (ActivityRulesChanged, ActivityRecorded, MemberRegistered,
-- MemberBirthdaySet) and its own scheduler, in the batch's transaction
-- with the consumed offsets and the outbox.

-- Activity rules per tenant, kept as versions like earning_rules: a
-- version is in force for activities that occurred at or after
-- effective_from_us. time_zone is the tenant's when the rules were set.
CREATE TABLE activity_rules (
    tenant_id          text    NOT NULL,
    change_id          text    NOT NULL,
    version            bigint  NOT NULL,
    effective_from_us  bigint  NOT NULL,
    time_zone          text    NOT NULL,
    activities         jsonb   NOT NULL, -- {type: {points, per_day, per_week, per_month}}
    streak_days        bigint  NOT NULL,
    streak_points      bigint  NOT NULL,
    monthly_cap        bigint  NOT NULL,
    promotions         jsonb   NOT NULL, -- [{multiplier_bp, day_of_month, from_us, to_us, ...}]
    birthday_points    bigint  NOT NULL,
    welcome_days       bigint  NOT NULL,
    welcome_tasks      jsonb   NOT NULL, -- {type: points}
    applied_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, change_id)
);
CREATE INDEX activity_rules_in_force ON activity_rules
    (tenant_id, effective_from_us DESC, change_id DESC);

-- Every activity applied, once per member and caller's activity id (the
-- key is the de-duplication), with its local day in the tenant's zone
-- and what it earned (outcome: earned, no_points, day_limit, ...).
CREATE TABLE activities (
    tenant_id       text   NOT NULL,
    member_id       text   NOT NULL,
    activity_id     text   NOT NULL,
    type            text   NOT NULL,
    occurred_at_us  bigint NOT NULL,
    local_day       date   NOT NULL,
    points          bigint NOT NULL CHECK (points >= 0),
    multiplier_bp   bigint NOT NULL,
    outcome         text   NOT NULL,
    rule_change_id  text,             -- NULL: the defaults (no rules set yet)
    event_id        text   NOT NULL,
    applied_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, activity_id)
);
CREATE INDEX activities_by_type_day ON activities (tenant_id, member_id, type, local_day);

-- Every grant sent to the ledger (EarnPoints, command id = grant_id): the
-- key makes each fire once however often its cause is delivered. kind:
-- activity, streak, welcome, birthday; the monthly cap counts activity
-- and streak grants of the local month.
CREATE TABLE activity_grants (
    tenant_id   text   NOT NULL,
    grant_id    text   NOT NULL,
    member_id   text   NOT NULL,
    kind        text   NOT NULL,
    rule        text   NOT NULL, -- the journal reason's rule name
    points      bigint NOT NULL CHECK (points > 0),
    local_day   date   NOT NULL,
    granted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, grant_id)
);
CREATE INDEX activity_grants_by_month ON activity_grants (tenant_id, member_id, local_day);

-- A member's current run of consecutive check-in days (local days).
CREATE TABLE check_in_streaks (
    tenant_id  text   NOT NULL,
    member_id  text   NOT NULL,
    last_day   date   NOT NULL,
    length     bigint NOT NULL CHECK (length > 0),
    PRIMARY KEY (tenant_id, member_id)
);

-- What the welcome month and the birthday gift need of a member: when
-- they registered (MemberRegistered) and the month and day of their
-- birthday (MemberBirthdaySet; NULL: unknown or forgotten on erasure).
CREATE TABLE engage_members (
    tenant_id         text   NOT NULL,
    member_id         text   NOT NULL,
    branch_id         text   NOT NULL DEFAULT '',
    registered_at_us  bigint,
    birth_month       int CHECK (birth_month BETWEEN 1 AND 12),
    birth_day         int CHECK (birth_day BETWEEN 1 AND 31),
    last_birthday_year int,   -- the last year a birthday gift was granted
    PRIMARY KEY (tenant_id, member_id)
);
CREATE INDEX engage_members_birthday ON engage_members (birth_month, birth_day)
    WHERE birth_month IS NOT NULL;

-- Read contract: every activity rule change stored (ingest's PUT answers
-- "applied" once its change is listed here).
CREATE VIEW read_activity_rules AS
    SELECT tenant_id, change_id, version, effective_from_us
    FROM activity_rules;
