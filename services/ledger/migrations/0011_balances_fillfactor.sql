-- Every batch rewrites the balance rows of its members (only columns no
-- index covers). With full pages each new row version goes to another page
-- and adds an index entry; with free room on its page the update is HOT
-- (heap-only: no index write) and the old version is pruned in place
-- (docs/ledger-performance.md). Applies to pages written from now on; an
-- existing table gets the room as VACUUM frees its dead versions.
ALTER TABLE balances SET (fillfactor = 80);
