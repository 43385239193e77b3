#!/usr/bin/env bash
# The read-path scenario (1r of `make bench`) alone, for iterating on it:
# a private runtime (.local-bench-read/, ports moved by BENCH_PORT_OFFSET),
# READ_MEMBERS members made in SQL and topped up (so the ledger caches
# their balances, as after scenario 2 of `make bench`), the bare libevent
# server as the baseline, then GET /v1/members/{id} closed loop with 64
# connections after one warming pass over every member (--each). With READ_PERF=1 a `perf record -g`
# of tessera-ingest is taken during the measured run (perf.data in the
# runtime's directory, the top of its report on stderr). The CPU that
# ingest and Redis spent per request goes to stderr. With READ_STRACE=1
# the system calls per reply of ingest (and of the bare server) are
# counted by `strace -c` over a further 5 s of load, after the measured
# run (strace slows what it traces): unlike req/s they do not move with
# the machine's load. Prints one JSON object: {"bare":{...},"member":{...}}.
#   READ_MEMBERS (20000), READ_SECONDS (10), READ_KEEP=1 leaves it running,
#   READ_REUSE=1 uses the runtime a READ_KEEP=1 run left, READ_STRACE=1.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
export TESSERA_LOCAL_DIR=$repo/.local-bench-read
port_offset=${BENCH_PORT_OFFSET:-0}
export TESSERA_LOCAL_PG_PORT=$((25632 + port_offset))
export TESSERA_LOCAL_REDIS_PORT=$((26579 + port_offset))
export TESSERA_LOCAL_API_PORT=$((18180 + port_offset))
export TESSERA_LOCAL_ADMIN_PORT_BASE=$((19200 + port_offset))
export TESSERA_LOCAL_KAFKA_PORT=$((29192 + port_offset))
export TESSERA_LOCAL_KAFKA_HEAP=${TESSERA_LOCAL_KAFKA_HEAP:-512m}
export TESSERA_LOCAL_PARTITIONS=${BENCH_PARTITIONS:-4}
export TESSERA_RATE_KEY_PER_S=1000000 TESSERA_RATE_KEY_BURST=1000000
export TESSERA_RATE_IP_PER_S=1000000 TESSERA_RATE_IP_BURST=1000000
runtime=$repo/deploy/local/runtime.sh
bin=$repo/build/bin
members=${READ_MEMBERS:-20000}
seconds=${READ_SECONDS:-10}
api_port=$TESSERA_LOCAL_API_PORT
bare_port=$((TESSERA_LOCAL_API_PORT + 919))
work=$TESSERA_LOCAL_DIR/bench
say() { echo "read: $*" >&2; }
psql_read() { psql -qtA -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$TESSERA_LOCAL_PG_PORT user=tessera dbname=tessera" "$@"; }

# CPU ticks (user + system) of ingest, of every PostgreSQL process, of Redis.
ticks_of() { awk '{s += $14 + $15} END {print s + 0}' "$@" 2>/dev/null || echo 0; }
cpu_ticks() {
  local pm pg_stats
  pm=$(head -1 "$TESSERA_LOCAL_DIR/pg/data/postmaster.pid")
  pg_stats=$(for p in "$pm" $(pgrep -P "$pm"); do echo "/proc/$p/stat"; done)
  echo "$(ticks_of "/proc/$(cat "$TESSERA_LOCAL_DIR/pids/ingest.pid")/stat")" \
    "$(ticks_of $pg_stats)" \
    "$(ticks_of "/proc/$(pgrep -f "redis-server 127.0.0.1:$TESSERA_LOCAL_REDIS_PORT\$" | head -1)/stat")"
}
bare_pid=
cleanup() {
  [ -n "$bare_pid" ] && kill "$bare_pid" 2>/dev/null || true
  [ "${READ_KEEP:-0}" = 1 ] || { "$runtime" stop >/dev/null 2>&1 || true; "$runtime" destroy >/dev/null 2>&1 || true; }
}
trap cleanup EXIT

if [ "${READ_REUSE:-0}" != 1 ]; then
  say "starting a private runtime in $TESSERA_LOCAL_DIR"
  "$runtime" stop >/dev/null 2>&1 || true
  rm -rf "$TESSERA_LOCAL_DIR"
  "$runtime" start >/dev/null
  mkdir -p "$work"
  say "creating $members members"
  psql_read -c "INSERT INTO ingest.members (tenant_id, member_id, member_no, name, phone, branch_id, referral_code)
    SELECT 'demo', gen_random_uuid()::text, 'R' || n, 'Reader ' || n, '18' || lpad(n::text, 9, '0'), 'hq', 'R' || lpad(n::text, 9, '0')
    FROM generate_series(1, $members) AS n"
  psql_read -c "SELECT member_id FROM ingest.members WHERE member_no LIKE 'R%' ORDER BY member_no" >"$work/members.txt"
  say "topping up every member (the ledger caches their balances, as after scenario 2)"
  key=$(cat "$TESSERA_LOCAL_DIR/api-key")
  split -l 5000 "$work/members.txt" "$work/chunk."
  for f in "$work"/chunk.??; do
    awk '{printf "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"read-%s\",\"amount\":1000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n", $1, $1}' "$f" |
      curl -fsS -o /dev/null -X POST "http://127.0.0.1:$api_port/v1/events:batch" -H "Authorization: Bearer $key" \
        -H 'Content-Type: application/x-ndjson' -H 'Prefer: wait=60' --data-binary @-
  done
fi
key=$(cat "$TESSERA_LOCAL_DIR/api-key")

"$bin/tessera-bench-bare" "$bare_port" >/dev/null 2>&1 &
bare_pid=$!
sleep 0.2
bare=$("$bin/tessera-loadgen" --target bare --port "$bare_port" --connections 64 --duration "$seconds")
kill "$bare_pid" 2>/dev/null || true
bare_pid=

"$bin/tessera-loadgen" --target member --port "$api_port" --key "$key" \
  --members "$work/members.txt" --connections 64 --duration 600 --each >/dev/null
perf_pid=
if [ "${READ_PERF:-0}" = 1 ]; then
  perf record -g -o "$TESSERA_LOCAL_DIR/perf.data" -p "$(cat "$TESSERA_LOCAL_DIR/pids/ingest.pid")" \
    -- sleep "$seconds" >/dev/null 2>&1 &
  perf_pid=$!
fi
cpu0=$(cpu_ticks)
member=$("$bin/tessera-loadgen" --target member --port "$api_port" --key "$key" \
  --members "$work/members.txt" --connections 64 --duration "$seconds")
cpu1=$(cpu_ticks)
if [ -n "$perf_pid" ]; then
  wait "$perf_pid" || true
  { perf report -i "$TESSERA_LOCAL_DIR/perf.data" --stdio --no-children -g none --sort dso,sym 2>/dev/null |
      grep -v '^#' | grep -v '^$' | head -40 >&2; } || true
fi
read -r i0 p0 r0 <<<"$cpu0"
read -r i1 p1 r1 <<<"$cpu1"
cores() { echo "scale=2; ($2 - $1) / $(getconf CLK_TCK) / $seconds" | bc -l; }
# CPU per request: steadier than req/s on a shared machine (a starved
# ingest answers fewer requests, but each costs about the same).
requests=$(echo "$member" | sed -n 's/.*"requests":\([0-9]*\).*/\1/p')
per_request() { echo "scale=1; ($2 - $1) * 1000000 / $(getconf CLK_TCK) / ${requests:-1}" | bc -l; }
# System calls per reply under `strace -c` for 5 s of a 7 s closed loop.
syscalls_per_request() { # pid, loadgen options...
  local pid=$1 out
  shift
  "$bin/tessera-loadgen" "$@" --connections 64 --duration 7 >"$work/strace-load.json" &
  local load=$!
  sleep 1
  out=$(timeout 5 strace -c -f -p "$pid" 2>&1 >/dev/null | grep -v 'attached\|detached' || true)
  wait "$load" || true
  # per reply: each reply is one writev(2) in both servers (strace slows
  # the traced process, so the load generator's request count over the
  # whole run does not apply to the traced window)
  echo "$out" | awk '$NF ~ /^[a-z_0-9]+$/ && $4 ~ /^[0-9]+$/ && $NF != "total" {n[$NF] = $4}
    END {for (s in n) if (n["writev"] > 0 && n[s] / n["writev"] >= 0.01)
      printf "%s %.2f  ", s, n[s] / n["writev"]}'
  echo
}
if [ "${READ_STRACE:-0}" = 1 ]; then
  say "system calls per reply, ingest: $(syscalls_per_request "$(cat "$TESSERA_LOCAL_DIR/pids/ingest.pid")" \
    --target member --port "$api_port" --key "$key" --members "$work/members.txt")"
  "$bin/tessera-bench-bare" "$bare_port" >/dev/null 2>&1 &
  bare_pid=$!
  sleep 0.2
  say "system calls per reply, bare server: $(syscalls_per_request "$bare_pid" --target bare --port "$bare_port")"
  kill "$bare_pid" 2>/dev/null || true
  bare_pid=
fi
say "CPU during the run (cores): ingest $(cores "$i0" "$i1"), postgres $(cores "$p0" "$p1"), redis $(cores "$r0" "$r1"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
say "CPU per request (us): ingest $(per_request "$i0" "$i1"), redis $(per_request "$r0" "$r1")"
echo "{\"bare\":$bare,\"member\":$member}"
