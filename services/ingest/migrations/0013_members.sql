-- Members managed by API (issue 14): profile changes, search by email,
-- listing, manual tags.

-- The email's keyed blind index (the phone's scheme, pii.h: BLAKE2b under
-- the tenant's index key, over "email:" and the address in lower case), so
-- GET /v1/members?email= finds a member without the database ever seeing
-- the address. Not unique: two members may share one address. Rows from
-- before this migration get theirs from `tessera-ingest --reencrypt-pii`.
ALTER TABLE members ADD COLUMN email_bidx bytea;
CREATE INDEX members_tenant_email_bidx_idx ON members (tenant_id, email_bidx)
    WHERE email_bidx IS NOT NULL;

-- PATCH /v1/members/{id} is a compare-and-set on this version: a change
-- read from an older profile is refused (409 edit_conflict), never lost.
ALTER TABLE members ADD COLUMN profile_version int NOT NULL DEFAULT 0;

-- Listing: the member number is looked up exactly; registration ranges
-- and branches filter a tenant's members in member id order (UUIDv7, so
-- registration order).
CREATE INDEX members_tenant_member_no_idx ON members (tenant_id, member_no);
CREATE INDEX members_tenant_branch_idx ON members (tenant_id, branch_id, member_id);

-- Manual tags an operator puts on members ("vip", "lapsed-2026"): no
-- personal data, the tag text is the operator's.
CREATE TABLE member_tags (
    tenant_id   text NOT NULL,
    member_id   text NOT NULL,
    tag         text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, member_id, tag),
    FOREIGN KEY (tenant_id, member_id) REFERENCES members
);
CREATE INDEX member_tags_tenant_tag_idx ON member_tags (tenant_id, tag, member_id);
