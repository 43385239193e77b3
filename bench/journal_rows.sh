#!/usr/bin/env bash
# The COPY baseline of the ledger's apply rate (scenario 3 of `make bench`,
# bench/ledger_apply.sh): prints COUNT top-up postings as journal rows in
# COPY's text format, four lines a posting, shaped like the rows the ledger
# writes for the same top-ups: the members' own ids (from MEMBERS_FILE, in
# the order the commands were produced), time-ordered UUIDs for the posting
# and command ids (uuid7, as the ledger's), the ledger's accounts, reason
# and actor. Only the actor differs ("service:bcopy", so the rows can be
# deleted after). With --synthetic, the baseline used before 2026-12-06
# 23:00 ("m<n>" member ids in index order, "bench-copy-<n>" ids): its index
# inserts all land at the end of the indexes, which costs less than the
# ledger's rows do, so it is printed beside the real one for comparison.
#   journal_rows.sh MEMBERS_FILE COUNT [--synthetic]
set -euo pipefail
members_file=$1 count=$2
if [ "${3:-}" = --synthetic ]; then
  awk -v n="$count" 'BEGIN { for (i = 0; i < n; i++) {
      p = sprintf("bench-copy-%d", i);
      printf "%s\tbench-copy-%d\tdemo\tm%d\thq\tmember:m%d\tsv_principal\t100000\tbench-copy\tservice:bcopy\n", p, i, i, i, i;
      printf "%s\tbench-copy-%d\tdemo\t\\N\thq\ttenant:demo:branch:hq:sv_sold\tsv_principal\t-100000\tbench-copy\tservice:bcopy\n", p, i;
      printf "%s\tbench-copy-%d\tdemo\tm%d\thq\tmember:m%d\tsv_bonus\t10000\tbench-copy\tservice:bcopy\n", p, i, i, i;
      printf "%s\tbench-copy-%d\tdemo\t\\N\thq\ttenant:demo:sv_bonus_issued\tsv_bonus\t-10000\tbench-copy\tservice:bcopy\n", p, i } }'
  exit 0
fi
ms=$(($(date +%s) * 1000))
head -n "$count" "$members_file" | awk -v ms="$ms" '{
    # uuid7: 48 bits of milliseconds, version 7, variant 10; one ms a
    # thousand postings apart, counters after, so ids rise like the ledger'"'"'s.
    t = ms + int(NR / 1000);
    p = sprintf("%08x-%04x-7%03x-8%03x-%012x", int(t / 65536), t % 65536, NR % 4096, 1, NR);
    c = sprintf("%08x-%04x-7%03x-8%03x-%012x", int(t / 65536), t % 65536, NR % 4096, 2, NR);
    printf "%s\t%s\tdemo\t%s\thq\tmember:%s\tsv_principal\t100000\ttopup:cash\tservice:bcopy\n", p, c, $1, $1;
    printf "%s\t%s\tdemo\t\\N\thq\ttenant:demo:branch:hq:sv_sold\tsv_principal\t-100000\ttopup:cash\tservice:bcopy\n", p, c;
    printf "%s\t%s\tdemo\t%s\thq\tmember:%s\tsv_bonus\t10000\ttopup:cash\tservice:bcopy\n", p, c, $1, $1;
    printf "%s\t%s\tdemo\t\\N\thq\ttenant:demo:sv_bonus_issued\tsv_bonus\t-10000\ttopup:cash\tservice:bcopy\n", p, c }'
