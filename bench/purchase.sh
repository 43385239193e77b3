#!/usr/bin/env bash
# The synchronous purchase's scenarios (1, 1b and a short 4 of `make bench`)
# alone, for iterating on the purchase path, with where each request's time
# went: every hop's histogram of ingest's and the ledger's /metrics, read
# before and after each run (mean over the run, in ms). A private runtime
# (.local-bench-purchase/, ports moved by BENCH_PORT_OFFSET), PURCHASE_MEMBERS
# members made in SQL and topped up (stored value for scenario 4's half).
#   PURCHASE_MEMBERS (20000), PURCHASE_SECONDS (10), PURCHASE_E2E_RATE (2000),
#   PURCHASE_E2E_SECONDS (20), PURCHASE_KEEP=1 leaves the runtime running,
#   PURCHASE_REUSE=1 runs against the one left running.
#   PURCHASE_LEDGER_BIN_DIR: first restart the runtime's ledger from this
#     build dir (with PURCHASE_REUSE=1, two builds of the ledger compare
#     round by round on one runtime; they must share migrations).
#   PURCHASE_RATES (unset): open-loop rounds at these rates first, e.g.
#     "30 235" (a quiet and a busy purchase path: batches of about 1 and
#     10 messages), each as "rate<N>" in the JSON.
#   PURCHASE_ONLY_RATES=1: only those rounds.
#   BENCH_WARMUP_S (25): seconds of purchases before the measured runs, not
#   counted (0: none; docs/benchmarks.md, Method).
# Prints the hops per run on stderr and one JSON object on stdout:
# {"closed":{...},"half":{...},"e2e":{...}} (tessera-loadgen's figures).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export TESSERA_LOCAL_DIR=$repo/.local-bench-purchase
port_offset=${BENCH_PORT_OFFSET:-0}
export TESSERA_LOCAL_PG_PORT=$((25632 + port_offset))
export TESSERA_LOCAL_REDIS_PORT=$((26579 + port_offset))
export TESSERA_LOCAL_API_PORT=$((18180 + port_offset))
export TESSERA_LOCAL_ADMIN_PORT_BASE=$((19200 + port_offset))
export TESSERA_LOCAL_KAFKA_PORT=$((29192 + port_offset))
export TESSERA_LOCAL_KAFKA_HEAP=${TESSERA_LOCAL_KAFKA_HEAP:-512m}
export TESSERA_LOCAL_PARTITIONS=${BENCH_PARTITIONS:-12}
export TESSERA_LOCAL_PG_OPTIONS="-c shared_buffers=256MB"
export TESSERA_RATE_KEY_PER_S=1000000 TESSERA_RATE_KEY_BURST=1000000
export TESSERA_RATE_IP_PER_S=1000000 TESSERA_RATE_IP_BURST=1000000
runtime=$repo/deploy/local/runtime.sh
bin=$repo/build/bin
members=${PURCHASE_MEMBERS:-20000}
warmup_s=${BENCH_WARMUP_S:-25}
seconds=${PURCHASE_SECONDS:-10}
e2e_rate=${PURCHASE_E2E_RATE:-2000}
e2e_seconds=${PURCHASE_E2E_SECONDS:-20}
api_port=$TESSERA_LOCAL_API_PORT
ingest_admin=$TESSERA_LOCAL_ADMIN_PORT_BASE
ledger_admin=$((TESSERA_LOCAL_ADMIN_PORT_BASE + 1))
work=$TESSERA_LOCAL_DIR/bench
say() { echo "purchase: $*" >&2; }
jget() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" <<<"$2"; }
psql_p() { psql -qtA -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$TESSERA_LOCAL_PG_PORT user=tessera dbname=tessera" "$@"; }

cleanup() {
  [ "${PURCHASE_KEEP:-0}" = 1 ] || { "$runtime" stop >/dev/null 2>&1 || true; "$runtime" destroy >/dev/null 2>&1 || true; }
}
trap cleanup EXIT

if [ "${PURCHASE_REUSE:-0}" != 1 ]; then
  say "starting a private runtime in $TESSERA_LOCAL_DIR ($TESSERA_LOCAL_PARTITIONS partitions)"
  "$runtime" stop >/dev/null 2>&1 || true
  rm -rf "$TESSERA_LOCAL_DIR"
  "$runtime" start >/dev/null
  mkdir -p "$work"
  say "creating $members members and topping each up"
  psql_p -c "INSERT INTO ingest.members (tenant_id, member_id, member_no, name, phone, branch_id, referral_code)
    SELECT 'demo', gen_random_uuid()::text, 'P' || n, 'Buyer ' || n, '16' || lpad(n::text, 9, '0'), 'hq', 'P' || lpad(n::text, 9, '0')
    FROM generate_series(1, $members) AS n"
  psql_p -c "SELECT member_id FROM ingest.members WHERE member_no LIKE 'P%' ORDER BY member_no" >"$work/members.txt"
  key=$(cat "$TESSERA_LOCAL_DIR/api-key")
  split -l 5000 "$work/members.txt" "$work/chunk."
  for f in "$work"/chunk.??; do
    awk '{printf "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"pp-%s\",\"amount\":10000000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n", $1, $1}' "$f" |
      curl -fsS -o /dev/null -X POST "http://127.0.0.1:$api_port/v1/events:batch" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/x-ndjson' -H 'Prefer: wait=60' --data-binary @-
  done
fi
key=$(cat "$TESSERA_LOCAL_DIR/api-key")
if [ -n "${PURCHASE_LEDGER_BIN_DIR:-}" ]; then
  say "restarting the ledger from $PURCHASE_LEDGER_BIN_DIR"
  "$runtime" stop-service ledger >/dev/null
  TESSERA_BIN_DIR=$PURCHASE_LEDGER_BIN_DIR "$runtime" start-service ledger >/dev/null
fi

# The histograms of every hop, both services, as "name{labels} sum count".
hops() {
  { curl -fsS "http://127.0.0.1:$ingest_admin/metrics"; curl -fsS "http://127.0.0.1:$ledger_admin/metrics"; } |
    awk '$1 ~ /^(tessera_ledger_wait_stage_seconds|tessera_consumer_fetch_delay_seconds|tessera_consumer_batch_duration_seconds|tessera_consumer_batch_messages|tessera_consumer_batch_step_seconds|tessera_pg_query_duration_seconds|tessera_redis_command_duration_seconds|tessera_outbox_relay_ack_seconds)_(sum|count)/ {
           name = $1; kind = name ~ /_sum/ ? "sum" : "count"
           sub(/_(sum|count)/, "", name)
           if (kind == "sum") s[name] += $2; else c[name] += $2 }
         END { for (n in s) print n, s[n], c[n] }' | sort
}
# Mean per observation of each series between two snapshots (ms, or the
# plain mean for the batch size), and how many were observed.
hops_delta() { # before after
  join -a 2 -e 0 -o 0,1.2,1.3,2.2,2.3 "$1" "$2" |
    awk '{ n = $5 - $3; if (n <= 0) next; m = ($4 - $2) / n
           if ($1 !~ /batch_messages/) m *= 1000
           printf "  %-70s %9.2f  (n=%d)\n", $1, m, n }' >&2
}
run() { # label, loadgen args...
  local label=$1 out
  shift
  hops >"$work/hops.before"
  out=$("$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" --members "$work/members.txt" "$@")
  hops >"$work/hops.after"
  say "$label: $(tr -d '\n' <<<"$out")"
  say "$label, mean per hop (ms; batch_messages: messages):"
  hops_delta "$work/hops.before" "$work/hops.after"
  echo "$out"
}

# A fresh runtime gets faster for minutes (the broker's JIT, caches,
# PostgreSQL's plans and buffers): without this pass the first runs
# measure a cold system and A/B comparisons mislead.
if [ "$warmup_s" -gt 0 ]; then
  say "warm-up: $warmup_s s of purchases, not counted"
  "$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" --members "$work/members.txt" \
    --connections 64 --duration "$warmup_s" >/dev/null
fi
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
rates=""
for r in ${PURCHASE_RATES:-}; do
  out=$(run "open loop at $r/s" --connections 64 --duration "$seconds" --rate "$r")
  rates+="\"rate$r\":$out,"
done
if [ "${PURCHASE_ONLY_RATES:-0}" = 1 ]; then
  echo "{${rates%,}}"
  exit 0
fi
closed=$(run "1. closed loop, 64 connections" --connections 64 --duration "$seconds")
half_rate=$(printf '%.0f' "$(echo "$(jget rps "$closed") / 2" | bc -l)")
half=$(run "1b. open loop at $half_rate/s" --connections 64 --duration "$seconds" --rate "$half_rate")
e2e=$(run "4. $e2e_rate/s offered, half stored value" --connections 128 --duration "$e2e_seconds" \
  --rate "$e2e_rate" --stored-value-pct 50 --visible-every 20)
say "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "{$rates\"closed\":$closed,\"half\":$half,\"e2e\":$e2e}"
