#!/usr/bin/env bash
# The tier scenarios of `make bench` (bench/run.sh runs it on its private
# runtime; it also runs alone against any started runtime: export the
# runtime's TESSERA_LOCAL_* settings and the variables below). Prints one
# JSON object.
#
# 7. Entitlement checks: GET /v1/members/{id}/entitlements?resource=
#    course:bench (a tier rule: Basic or above) over members tiering has
#    cached, closed loop with 64 connections, then open loop at half the
#    rate measured; the bare libevent server of the same moment is the
#    baseline. PostgreSQL reads by the checks are counted
#    (tessera_entitlement_pg_reads_total): the path measured is memory and
#    Redis only.
# 8. Tier evaluations while the ledger is under load: purchases offered at
#    ENT_LOAD_RATE/s for ENT_LOAD_SECONDS with tiering stopped for the
#    first half, so it starts behind a backlog while the load goes on; its
#    rate of purchases evaluated (tessera_tiering_purchases_counted_total)
#    from its first until it has caught up (or the load ends), next to the
#    ledger's apply rate in the same window (tessera_consumer_messages_total).
#
#   ENT_KEY (an admin key of tenant demo), ENT_MEMBERS_FILE (the demo
#   members to check and to buy for), ENT_BARE_PORT, ENT_LOAD_RATE (2000),
#   ENT_LOAD_SECONDS (40)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/build/bin
runtime=$repo/deploy/local/runtime.sh
key=${ENT_KEY:?an admin key of the demo tenant}
members_file=${ENT_MEMBERS_FILE:?members of the demo tenant, one id a line}
bare_port=${ENT_BARE_PORT:?a free port for the bare server}
load_rate=${ENT_LOAD_RATE:-2000}
load_s=${ENT_LOAD_SECONDS:-40}
api_port=${TESSERA_LOCAL_API_PORT:?}
admin_base=${TESSERA_LOCAL_ADMIN_PORT_BASE:?}
ingest_admin=$admin_base
ledger_admin=$((admin_base + 1))
tiering_admin=$((admin_base + 2))
work=$(mktemp -d)
trap 'kill "${bare:-}" 2>/dev/null || true; rm -rf "$work"' EXIT

jget() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" <<<"$2"; }
metric_sum() { # admin port, metric name prefix: the sum of its samples
  { curl -fsS "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } |
    awk -v m="$2" 'index($1, m) == 1 {s += $2} END {printf "%.0f", s + 0}'
}
now() { date +%s.%N; }

# ---------------------------------------------------------------- 7
curl -fsS -X PUT "http://127.0.0.1:$api_port/v1/resources/course:bench" \
  -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
  -d '{"rules":[{"kind":"tier","min_tier":"Basic"}]}' >/dev/null
"$bin/tessera-bench-bare" "$bare_port" >/dev/null 2>&1 &
bare=$!
sleep 0.2
bare_out=$("$bin/tessera-loadgen" --target bare --port "$bare_port" --connections 64 --duration 10)
kill "$bare" 2>/dev/null || true
run_checks() { # extra loadgen options
  "$bin/tessera-loadgen" --target entitlement --resource course:bench --port "$api_port" \
    --key "$key" --members "$members_file" --connections 64 "$@"
}
run_checks --duration 3 >/dev/null # the rules into memory, connections warm
pg0=$(metric_sum "$ingest_admin" tessera_entitlement_pg_reads_total)
closed=$(run_checks --duration 10)
half_rate=$(printf '%.0f' "$(echo "$(jget rps "$closed") / 2" | bc -l)")
half=$(run_checks --duration 10 --rate "$half_rate")
# the baseline of the latency: the bare server offered the same rate
"$bin/tessera-bench-bare" "$bare_port" >/dev/null 2>&1 &
bare=$!
sleep 0.2
bare_half=$("$bin/tessera-loadgen" --target bare --port "$bare_port" --connections 64 --duration 10 \
  --rate "$half_rate")
kill "$bare" 2>/dev/null || true
pg_reads=$(( $(metric_sum "$ingest_admin" tessera_entitlement_pg_reads_total) - pg0 ))

# ---------------------------------------------------------------- 8
"$runtime" stop-service tiering >/dev/null
"$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" \
  --members "$members_file" --connections 128 --duration "$load_s" --rate "$load_rate" \
  >"$work/load.json" &
load=$!
sleep $((load_s / 2))
"$runtime" launch-service tiering >/dev/null # not start-service: ready means caught up
c_prev=$(metric_sum "$tiering_admin" tessera_tiering_purchases_counted_total)
t0="" c0=0 l0=0 t1="" c1=0 l1=0
while kill -0 "$load" 2>/dev/null; do
  c=$(metric_sum "$tiering_admin" tessera_tiering_purchases_counted_total)
  l=$(metric_sum "$ledger_admin" tessera_consumer_messages_total)
  lag=$(metric_sum "$tiering_admin" tessera_consumer_total_lag_messages)
  t=$(now)
  if [ -z "$t0" ] && [ "$c" -gt "$c_prev" ]; then t0=$t c0=$c l0=$l; fi
  if [ -n "$t0" ]; then t1=$t c1=$c l1=$l; fi
  [ -n "$t0" ] && [ "$lag" = "0" ] && [ "$c1" -gt "$c0" ] && break
  sleep 0.2
done
wait "$load" || true
if [ -n "$t0" ] && [ "$c1" -gt "$c0" ]; then
  span=$(echo "$t1 - $t0" | bc -l)
  tier_rate=$(echo "($c1 - $c0) / $span" | bc -l)
  ledger_rate=$(echo "($l1 - $l0) / $span" | bc -l)
else
  span=0 tier_rate=0 ledger_rate=0
fi

printf '{"bare":%s,"bare_half":%s,"checks":%s,"checks_half_rate":%d,"checks_half":%s,"checks_pg_reads":%d,' \
  "$bare_out" "$bare_half" "$closed" "$half_rate" "$half" "$pg_reads"
printf '"tier_load":%s,"tier_evaluations_per_s":%.1f,"ledger_applied_per_s":%.1f,"tier_window_s":%.2f}\n' \
  "$(cat "$work/load.json")" "$tier_rate" "$ledger_rate" "$span"
