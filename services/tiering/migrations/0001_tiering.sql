-- Tiering's own schema: the tenant's tier ladder and each member's
-- qualifying spend, projected from PurchaseRecorded events.

CREATE TABLE tier_levels (
    tenant_id               text    NOT NULL,
    rank                    int     NOT NULL CHECK (rank >= 0),
    name                    text    NOT NULL,
    min_cumulative_spend    bigint  NOT NULL CHECK (min_cumulative_spend >= 0),
    min_annual_spend        bigint,
    invitation_only         boolean NOT NULL DEFAULT false,
    discount_bp             int     NOT NULL DEFAULT 10000 CHECK (discount_bp BETWEEN 0 AND 10000),
    points_multiplier_bp    int     NOT NULL DEFAULT 10000 CHECK (points_multiplier_bp >= 0),
    PRIMARY KEY (tenant_id, rank)
);

CREATE TABLE member_spend (
    tenant_id         text   NOT NULL,
    member_id         text   NOT NULL,
    lifetime_spend    bigint NOT NULL DEFAULT 0,
    purchases         bigint NOT NULL DEFAULT 0,
    last_purchase_at  timestamptz,
    PRIMARY KEY (tenant_id, member_id)
);
