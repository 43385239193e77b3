#!/usr/bin/env bash
# Scenario 3 of `make bench` alone, to iterate on the ledger's apply rate:
# the same method as bench/run.sh (top-ups produced while the ledger is
# stopped, the rate between 10% and 90% of the backlog from the ledger's own
# counter, a vacuumed database, COPY of the same journal rows in the same
# run), on a private runtime in .local-bench/ (BENCH_PORT_OFFSET moves its
# ports). The first round primes every member's balance (as scenario 2 does
# in `make bench`) and is not counted.
#   LEDGER_APPLY_WORKERS ("default 1"): one measured round per worker count
#     ("default": the ledger's own); "1/2000" also sets TESSERA_LEDGER_BATCH_MAX
#   LEDGER_APPLY_ROUNDS (1): rounds per worker count
#   LEDGER_APPLY_KEEP (unset): leave the runtime running (reused next time)
#   LEDGER_APPLY_PERF (unset): `perf record -g` the ledger in the first round
#   LEDGER_APPLY_PGSS (unset): PostgreSQL with pg_stat_statements (a new
#     runtime); each round's statements go to $work/pgss.<workers>.txt
#   LEDGER_APPLY_SQL (unset): SQL run before each measured round (after
#     the commands are produced), e.g. to try a storage setting
#   LEDGER_APPLY_SQL_<label> (unset): the same, only before the rounds of
#     the build labelled <label> (see LEDGER_APPLY_BIN_DIRS), e.g. to drop
#     an index the other build's start creates
#   LEDGER_APPLY_NO_COPY (unset): skip the COPY baselines
#   LEDGER_APPLY_BIN_DIRS (unset): "label=dir ..." to compare builds in one
#     run: each round runs the ledger from each dir in turn (TESSERA_BIN_DIR;
#     e.g. a copy of build/bin made before a change). Builds that differ in
#     migrations cannot share a database: compare those in separate runs.
# Prints one line per round and the COPY baseline.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

export TESSERA_LOCAL_DIR=$repo/.local-bench
port_offset=${BENCH_PORT_OFFSET:-0}
export TESSERA_LOCAL_PG_PORT=$((25632 + port_offset))
export TESSERA_LOCAL_REDIS_PORT=$((26579 + port_offset))
export TESSERA_LOCAL_API_PORT=$((18180 + port_offset))
export TESSERA_LOCAL_ADMIN_PORT_BASE=$((19200 + port_offset))
export TESSERA_LOCAL_KAFKA_PORT=$((29192 + port_offset))
export TESSERA_LOCAL_KAFKA_HEAP=1g
export TESSERA_LOCAL_PARTITIONS=${BENCH_PARTITIONS:-12}
export TESSERA_LOCAL_PG_OPTIONS="-c shared_buffers=256MB"
# pg_stat_statements shows the time of each statement of the batch
# (only for this script; run.sh measures without it).
[ -z "${LEDGER_APPLY_PGSS:-}" ] ||
  TESSERA_LOCAL_PG_OPTIONS+=" -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_utility=on"
runtime=$repo/deploy/local/runtime.sh
bin=$repo/build/bin
members=${BENCH_MEMBERS:-100000}
work=$TESSERA_LOCAL_DIR/bench
ledger_admin=$((TESSERA_LOCAL_ADMIN_PORT_BASE + 1))

say() { echo "ledger_apply: $*" >&2; }
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
psql_bench() { psql -qtA -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$TESSERA_LOCAL_PG_PORT user=tessera dbname=tessera" "$@"; }
applied() { { curl -fsS "http://127.0.0.1:$ledger_admin/metrics" 2>/dev/null || true; } |
  awk '$1 ~ /^tessera_consumer_messages_total/ {s += $2} END {print s + 0}'; }
settle() { psql_bench -c "VACUUM ANALYZE ledger.balances, ledger.commands, ledger.journal, ledger.outbox"; }

if ! curl -fsS "http://127.0.0.1:$ledger_admin/metrics" >/dev/null 2>&1; then
  say "starting a private runtime in $TESSERA_LOCAL_DIR"
  "$runtime" stop >/dev/null 2>&1 || true
  rm -rf "$TESSERA_LOCAL_DIR"
  "$runtime" start
  mkdir -p "$work"
  psql_bench -c "INSERT INTO ingest.members (tenant_id, member_id, member_no, name, phone, branch_id, referral_code)
    SELECT 'demo', gen_random_uuid()::text, 'B' || n, 'Bench ' || n, '17' || lpad(n::text, 9, '0'), 'hq', 'B' || lpad(n::text, 9, '0')
    FROM generate_series(1, $members) AS n"
  psql_bench -c "SELECT member_id FROM ingest.members WHERE member_no LIKE 'B%' ORDER BY member_no" >"$work/members.txt"
  primed=0
else
  primed=1
fi
[ "${LEDGER_APPLY_KEEP:-}" ] || trap '"$runtime" stop >/dev/null 2>&1 || true' EXIT
bootstrap=$(cat "$TESSERA_LOCAL_DIR/kafka.bootstrap")

# apply_run N: as bench/run.sh; sets apply_rate.
apply_run() {
  "$runtime" stop-service ledger
  local before n n0 n1 t0="" t1="" deadline=$((SECONDS + 300)) verdicts perf_pid=""
  before=$(psql_bench -c "SELECT count(*) FROM ledger.commands")
  "$bin/tessera-bench-produce" "$bootstrap" "$work/members.txt" "$members" ledger-commands 100000 >/dev/null
  [ -z "${LEDGER_APPLY_SQL:-}" ] || psql_bench -c "$LEDGER_APPLY_SQL"
  local per_build=LEDGER_APPLY_SQL_${LEDGER_APPLY_LABEL:-current}
  [ -z "${!per_build:-}" ] || psql_bench -c "${!per_build}"
  settle
  [ -z "${LEDGER_APPLY_PGSS:-}" ] || psql_bench -c "CREATE EXTENSION IF NOT EXISTS pg_stat_statements; SELECT pg_stat_statements_reset()" >/dev/null
  local workers=${1%/*} batch_max=${TESSERA_LEDGER_BATCH_MAX:-}
  case $1 in */*) batch_max=${1#*/} ;; esac
  [ "$workers" != default ] || workers=""
  env ${workers:+TESSERA_LEDGER_WORKERS=$workers} ${batch_max:+TESSERA_LEDGER_BATCH_MAX=$batch_max} "$runtime" launch-service ledger # ready would mean caught up
  if [ -n "${2:-}" ]; then
    perf record -g -o "$2" -p "$(cat "$TESSERA_LOCAL_DIR/pids/ledger.pid")" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  top -b -d 2 -n 1000 >"$work/top.${1/\//-}${LEDGER_APPLY_LABEL:+.$LEDGER_APPLY_LABEL}.log" 2>&1 &
  local top_pid=$!
  while :; do
    n=$(applied)
    [ -z "$t0" ] && [ "$n" -ge $((members / 10)) ] && { t0=$(now); n0=$n; }
    [ -n "$t0" ] && [ "$n" -ge $((members * 9 / 10)) ] && { t1=$(now); n1=$n; break; }
    [ $SECONDS -lt $deadline ] || { say "ledger did not finish in time"; t0=${t0:-$(now)}; n0=${n0:-0}; t1=$(now); n1=$n; break; }
    sleep 0.05
  done
  [ -n "$perf_pid" ] && { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  kill "$top_pid" 2>/dev/null || true
  until [ "$(applied)" -ge "$members" ] || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
  verdicts=$(($(psql_bench -c "SELECT count(*) FROM ledger.commands") - before))
  [ "$verdicts" -eq "$members" ] || say "WARNING: $verdicts verdicts for $members commands"
  apply_rate=$(echo "($n1 - $n0) / $(elapsed "$t0" "$t1")" | bc -l)
  curl -fsS "http://127.0.0.1:$ledger_admin/metrics" >"$work/metrics.${1/\//-}${LEDGER_APPLY_LABEL:+.$LEDGER_APPLY_LABEL}.txt" || true
  [ -z "${LEDGER_APPLY_PGSS:-}" ] || psql_bench -c "SELECT calls, round(total_exec_time::numeric) AS ms,
      round((total_exec_time / calls)::numeric, 2) AS ms_per_call, rows, left(regexp_replace(query, '\s+', ' ', 'g'), 150)
    FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = 'tessera')
    ORDER BY total_exec_time DESC LIMIT 40" >"$work/pgss.${1/\//-}${LEDGER_APPLY_LABEL:+.$LEDGER_APPLY_LABEL}.txt"
}

if [ "$primed" = 0 ]; then
  say "priming: every member's first top-up (not counted)"
  apply_run 1
fi
perf_file=${LEDGER_APPLY_PERF:+$work/perf.data}
for w in ${LEDGER_APPLY_WORKERS:-default 1}; do
  for r in $(seq 1 "${LEDGER_APPLY_ROUNDS:-1}"); do
    for build in ${LEDGER_APPLY_BIN_DIRS:-current=$bin}; do
      TESSERA_BIN_DIR=${build#*=} LEDGER_APPLY_LABEL=${build%%=*} apply_run "$w" "$perf_file"
      perf_file=""
      printf 'workers %s round %s build %s: %.0f postings/s (load %s)\n' "$w" "$r" "${build%%=*}" \
        "$apply_rate" "$(cut -d' ' -f1-3 /proc/loadavg)"
    done
  done
done
"$runtime" stop-service ledger
"$runtime" start-service ledger
# The COPY baselines (bench/journal_rows.sh): the ledger's own kind of
# rows, then the synthetic rows of earlier runs.
[ -z "${LEDGER_APPLY_NO_COPY:-}" ] || exit 0
for kind in same synthetic; do
  flag=""
  [ "$kind" = same ] || flag=--synthetic
  "$repo/bench/journal_rows.sh" "$work/members.txt" "$members" $flag >"$work/journal.tsv"
  settle
  t0=$(now)
  psql_bench -c "\\copy ledger.journal (posting_id, command_id, tenant_id, member_id, branch_id, account, asset, amount, reason, actor) FROM '$work/journal.tsv'"
  t1=$(now)
  printf 'COPY (%s rows): %.0f postings/s\n' "$kind" "$(echo "$members / $(elapsed "$t0" "$t1")" | bc -l)"
  psql_bench -c "DELETE FROM ledger.journal WHERE actor = 'service:bcopy'"
done
