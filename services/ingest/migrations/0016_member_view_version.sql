-- The member-view cache (services/ingest/profile_cache.h): every change of
-- what the member view shows from this table or member_tags (a PATCH, a
-- tag put or removed, an erasure, a re-encryption) adds one to the row's
-- view_version in the statement of the change; the profile cached in
-- Redis carries the version it was read at, and a cached copy is never
-- replaced by an older one. Kept apart from profile_version, the PATCH's
-- compare-and-set, so a tag change does not make a concurrent PATCH
-- conflict.
ALTER TABLE members ADD COLUMN view_version bigint NOT NULL DEFAULT 0;
