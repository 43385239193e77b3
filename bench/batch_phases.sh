#!/usr/bin/env bash
# Where a batch request's time goes (scenario 2 of `make bench`): posts
# BATCH_PHASES_REQUESTS (3) requests of 10 000 top-ups, one after another
# as run.sh does, against a runtime started by bench/ledger_apply.sh with
# LEDGER_APPLY_KEEP (same BENCH_PORT_OFFSET), and splits each by the
# ledger's own counter (polled every 20 ms): before the ledger applies the
# first line (ingest: parse, check members, claim keys, produce), while it
# applies them, and after the last (verdicts back, answers recorded, reply).
# Meanwhile a GET /v1/members/{id} is timed in a loop: its p50 and max show
# whether the batch stalls other requests on ingest's event loop.
#   BATCH_PHASES_BIN_DIRS (unset): "label=dir ..." to compare ingest builds
#     on one runtime: before each request ingest is restarted from the next
#     dir in turn (TESSERA_BIN_DIR; e.g. a copy of build/bin made before a
#     change), so the builds alternate request by request.
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
# The runtime's environment, as bench/ledger_apply.sh sets it.
runtime_env() {
  export TESSERA_LOCAL_DIR=$local_dir
  export TESSERA_LOCAL_PG_PORT=$((25632 + port_offset)) TESSERA_LOCAL_REDIS_PORT=$((26579 + port_offset))
  export TESSERA_LOCAL_API_PORT=$api_port TESSERA_LOCAL_ADMIN_PORT_BASE=$((19200 + port_offset))
  export TESSERA_LOCAL_KAFKA_PORT=$((29192 + port_offset)) TESSERA_LOCAL_PARTITIONS=${BENCH_PARTITIONS:-12}
}
# Restarts ingest from dir (a build's bin directory).
use_ingest() {
  (runtime_env && "$repo/deploy/local/runtime.sh" stop-service ingest >/dev/null &&
    TESSERA_BIN_DIR=$1 "$repo/deploy/local/runtime.sh" start-service ingest >/dev/null)
}
# Times GET /v1/members/{id} until the file stop appears; one line a call (s).
time_gets() {
  local member
  member=$(head -1 "$members")
  while [ ! -e "$1" ]; do
    curl -sS -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$api_port/v1/members/$member" \
      -H "Authorization: Bearer $key" || true
    sleep 0.05
  done
}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
read -r -a builds <<<"${BATCH_PHASES_BIN_DIRS:-current=}"
stamp=$(date +%s%N)
for r in $(seq 1 "${BATCH_PHASES_REQUESTS:-3}"); do
  build=${builds[$(((r - 1) % ${#builds[@]}))]}
  label=${build%%=*} dir=${build#*=}
  [ -z "$dir" ] || use_ingest "$dir"
  shuf -n 10000 "$members" | awk -v run="$stamp-$r" '{printf "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"phase-%s-%s\",\"amount\":100,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n", $1, run, $1}' >"$work/body"
  rm -f "$work/stop"
  time_gets "$work/stop" >"$work/gets" &
  getter=$!
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
  touch "$work/stop"
  wait "$getter"
  t_first=${t_first:-$t1} t_last=${t_last:-$t1}
  gets=$(sort -n "$work/gets" | awk '{v[NR] = $1} END {if (NR) printf "%d GETs p50 %.0f ms max %.0f ms", NR, v[int((NR + 1) / 2)] * 1000, v[NR] * 1000}')
  printf 'request %s (%s): %.2f s: before the ledger %.2f s, ledger applying %.2f s, after %.2f s; %s (load %s)\n' "$r" \
    "$label" "$(echo "$t1 - $t0" | bc -l)" "$(echo "$t_first - $t0" | bc -l)" "$(echo "$t_last - $t_first" | bc -l)" \
    "$(echo "$t1 - $t_last" | bc -l)" "$gets" "$(cut -d' ' -f1-3 /proc/loadavg)"
done
