#!/usr/bin/env bash
# Where a batch request's time goes (scenario 2 of `make bench`): posts
# BATCH_PHASES_REQUESTS (3) requests of 10 000 top-ups, one after another
# as run.sh does, against a runtime started by bench/ledger_apply.sh with
# LEDGER_APPLY_KEEP (same BENCH_PORT_OFFSET), and splits each by the
# ledger's own counter (polled every 20 ms): before the ledger applies the
# first line (ingest: parse, check members, claim keys, produce), while it
# applies them, and after the last (verdicts back, answers recorded, reply).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
local_dir=$repo/.local-bench
port_offset=${BENCH_PORT_OFFSET:-0}
api_port=$((18180 + port_offset))
ledger_admin=$((19200 + port_offset + 1))
key=$(cat "$local_dir/api-key")
members=$local_dir/bench/members.txt
now() { date +%s.%N; }
applied() { curl -fsS "http://127.0.0.1:$ledger_admin/metrics" |
  awk '$1 ~ /^tessera_consumer_messages_total/ {s += $2} END {print s + 0}'; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
stamp=$(date +%s%N)
for r in $(seq 1 "${BATCH_PHASES_REQUESTS:-3}"); do
  shuf -n 10000 "$members" | awk -v run="$stamp-$r" '{printf "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"phase-%s-%s\",\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n", $1, run, $1}' >"$work/body"
  n0=$(applied)
  t0=$(now)
  curl -fsS -o "$work/out" -X POST "http://127.0.0.1:$api_port/v1/events:batch" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/x-ndjson' -H 'Prefer: wait=30' --data-binary @"$work/body" &
  req=$!
  t_first="" t_last=""
  while kill -0 "$req" 2>/dev/null; do
    n=$(applied)
    [ -z "$t_first" ] && [ "$n" -gt "$n0" ] && t_first=$(now)
    [ -z "$t_last" ] && [ "$n" -ge $((n0 + 10000)) ] && t_last=$(now)
    sleep 0.02
  done
  wait "$req"
  t1=$(now)
  t_first=${t_first:-$t1} t_last=${t_last:-$t1}
  printf 'request %s: %.2f s: before the ledger %.2f s, ledger applying %.2f s, after %.2f s (load %s)\n' "$r" \
    "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t_first - $t0" | bc -l)" "$(echo "$t_last - $t_first" | bc -l)" \
    "$(echo "$t1 - $t_last" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
