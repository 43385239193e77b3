#!/usr/bin/env bash
# `make bench`: Tessera against the limits of the parts it is built on,
# each figure next to a baseline measured in the same run on the same
# machine. Runs on a private runtime (.local-bench/, its own ports), takes
# about 5 minutes, prints a Markdown table and writes it with a JSON file
# to bench/results/. Never part of `make test`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

export TESSERA_LOCAL_DIR=$repo/.local-bench
# BENCH_PORT_OFFSET moves every port, so benchmarks of two worktrees can
# run side by side on one machine.
port_offset=${BENCH_PORT_OFFSET:-0}
export TESSERA_LOCAL_PG_PORT=$((25632 + port_offset))
export TESSERA_LOCAL_REDIS_PORT=$((26579 + port_offset))
export TESSERA_LOCAL_API_PORT=$((18180 + port_offset))
export TESSERA_LOCAL_ADMIN_PORT_BASE=$((19200 + port_offset))
export TESSERA_LOCAL_KAFKA_PORT=$((29192 + port_offset))
export TESSERA_LOCAL_KAFKA_HEAP=1g
export TESSERA_LOCAL_PARTITIONS=${BENCH_PARTITIONS:-12}
export TESSERA_LOCAL_PG_OPTIONS="-c shared_buffers=256MB"
runtime=$repo/deploy/local/runtime.sh
# The load comes from one key and one address: lift ingest's per-key and
# per-address rate limits (defaults 1 000 and 2 000 requests/s) so the
# benchmark measures the service, not the limiter.
export TESSERA_RATE_KEY_PER_S=${TESSERA_RATE_KEY_PER_S:-1000000}
export TESSERA_RATE_KEY_BURST=${TESSERA_RATE_KEY_BURST:-1000000}
export TESSERA_RATE_IP_PER_S=${TESSERA_RATE_IP_PER_S:-1000000}
export TESSERA_RATE_IP_BURST=${TESSERA_RATE_IP_BURST:-1000000}
bin=$repo/build/bin
members=${BENCH_MEMBERS:-100000}
big_members=${BENCH_BIG_MEMBERS:-1000000}
read_members=${BENCH_READ_MEMBERS:-20000}
e2e_rate=${BENCH_E2E_RATE:-2000}
e2e_seconds=${BENCH_E2E_SECONDS:-60}
# Seconds of purchases before the measured purchase scenarios (1, 4), not
# counted: a fresh runtime gets faster for minutes (docs/benchmarks.md).
warmup_s=${BENCH_WARMUP_S:-25}
work=$TESSERA_LOCAL_DIR/bench
results_dir=$repo/bench/results
stamp=$(date -u +%Y%m%dT%H%M%SZ)
api_port=$TESSERA_LOCAL_API_PORT
ledger_admin=$((TESSERA_LOCAL_ADMIN_PORT_BASE + 1))
# The bench's own servers take ports ending in 99 and 97 (with offsets in
# hundreds), which no runtime uses: see docs/ports.md. (+ 920 ended in 00,
# the ingest admin port of a test runtime at the same offset.)
bare_port=$((TESSERA_LOCAL_API_PORT + 919))
# Scenario 6: notification sends SMS to a bare local server (bench/notify.sh).
export NOTIFY_SINK_PORT=$((TESSERA_LOCAL_API_PORT + 917))
export TESSERA_NOTIFICATION_SMS_URL=http://127.0.0.1:$NOTIFY_SINK_PORT/sms
export TESSERA_NOTIFICATION_WEBHOOK_SECRET=bench

say() { echo "bench: $*" >&2; }
now() { date +%s.%N; }
elapsed() { echo "$2 - $1" | bc -l; }
ratio() { echo "scale=3; $1 / $2" | bc -l; }
jget() { sed -n "s/.*\"$1\":\([-0-9.e]*\).*/\1/p" <<<"$2"; }
psql_bench() { psql -qtA -v ON_ERROR_STOP=1 "host=127.0.0.1 port=$TESSERA_LOCAL_PG_PORT user=tessera dbname=tessera" "$@"; }
metric() { curl -fsS "http://127.0.0.1:$1/metrics" | awk -v m="$2" '$1 == m {print $2}'; }
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$(cat "$TESSERA_LOCAL_DIR/pids/$1.pid")/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$(cat "$TESSERA_LOCAL_DIR/pids/$1.pid")/status"; }

# Peak resident memory of every service during one scenario: sampled every
# 0.2 s in the background (VmHWM covers the whole life of a process).
services=(ingest ledger tiering campaign notification)
sample_start() {
  rm -f "$work/rss.samples"
  ( while :; do
      for s in "${services[@]}"; do echo "$s $(rss_kb "$s" 2>/dev/null || echo 0)"; done
      sleep 0.2
    done >>"$work/rss.samples" ) &
  sampler=$!
}
sample_stop() { # prints "ingest 70 MiB, ledger 63 MiB, ..."
  kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
  awk '{ if ($2 > m[$1]) m[$1] = $2 } END {
         n = split("ingest ledger tiering campaign notification", order, " ");
         for (i = 1; i <= n; i++) printf "%s%s %d", (i > 1 ? ", " : ""), order[i], m[order[i]] / 1024;
         printf " MiB" }' "$work/rss.samples"
}
# p-th percentile (0-100) of the numbers in a file, one per line.
percentile_of() { sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int(p / 100 * (NR - 1) + 0.5) + 1; printf "%.1f", v[i] * 1000 }'; }

command -v bc >/dev/null || "$repo/deploy/local/install-deps.sh" bench

cleanup() { "$runtime" stop >/dev/null 2>&1 || true; "$runtime" destroy >/dev/null 2>&1 || true; pkill -f "tessera-bench-bare $bare_port" 2>/dev/null || true; }
trap cleanup EXIT

say "starting a private runtime in $TESSERA_LOCAL_DIR ($TESSERA_LOCAL_PARTITIONS partitions)"
"$runtime" stop >/dev/null 2>&1 || true
rm -rf "$TESSERA_LOCAL_DIR"
"$runtime" start
mkdir -p "$work" "$results_dir"
key=$(cat "$TESSERA_LOCAL_DIR/api-key")
bootstrap=$(cat "$TESSERA_LOCAL_DIR/kafka.bootstrap")

# Members are made in bulk with SQL: registration is not what is measured.
make_members() { # from to
  psql_bench -c "INSERT INTO ingest.members (tenant_id, member_id, member_no, name, phone, branch_id, referral_code)
    SELECT 'demo', gen_random_uuid()::text, 'B' || n, 'Bench ' || n, '17' || lpad(n::text, 9, '0'), 'hq', 'B' || lpad(n::text, 9, '0')
    FROM generate_series($1, $2) AS n"
}
say "creating $members members"
make_members 1 "$members"
psql_bench -c "SELECT member_id FROM ingest.members WHERE member_no LIKE 'B%' ORDER BY member_no" >"$work/members.txt"

# ---------------------------------------------------------------- scenario 2
say "scenario 2: batch ingest (top up every member, 10 000 lines a request)"
split -l 10000 "$work/members.txt" "$work/chunk."
for f in "$work"/chunk.*; do
  awk -v run="$stamp" '{printf "{\"type\":\"topup\",\"member_id\":\"%s\",\"idempotency_key\":\"bench-%s-%s\",\"amount\":100000,\"branch_id\":\"hq\",\"payment_method\":\"cash\"}\n", $1, run, $1}' "$f" >"$f.ndjson"
done
sample_start
t0=$(now)
batch_refused=0
: >"$work/batch.seconds"
for f in "$work"/chunk.*.ndjson; do
  b0=$(now)
  curl -fsS -o "$work/batch.out" -X POST "http://127.0.0.1:$api_port/v1/events:batch" -H "Authorization: Bearer $key" \
    -H 'Content-Type: application/x-ndjson' -H 'Prefer: wait=30' --data-binary @"$f"
  elapsed "$b0" "$(now)" >>"$work/batch.seconds"
  # Only the summary: jget's sed over the whole 2.6 MB answer (twice) cost
  # seconds a request on a busy machine, counted in the scenario's rate
  # (20261207T080707Z: 66 s in requests, 122 s in all).
  out=$(grep -o '"summary":{[^}]*}' "$work/batch.out")
  batch_refused=$((batch_refused + $(jget refused "$out") + $(jget pending "$out")))
done
t1=$(now)
mem_s2=$(sample_stop)
batch_p50=$(percentile_of "$work/batch.seconds" 50)
batch_p95=$(percentile_of "$work/batch.seconds" 95)
batch_p99=$(percentile_of "$work/batch.seconds" 99)
batch_rate=$(echo "$members / $(elapsed "$t0" "$t1")" | bc -l)
raw=$("$bin/tessera-bench-produce" "$bootstrap" "$work/members.txt" "$members" notify-events 100000)
raw_rate=$(jget rate "$raw")

# ---------------------------------------------------------------- scenario 3
say "scenario 3: ledger apply rate, exactly once, vs COPY of the same journal rows"
# The rate is taken between 10% and 90% of the backlog applied, from the
# ledger's own committed-messages counter (polled every 50 ms: cheap, unlike
# counting rows, which would take PostgreSQL CPU from the ledger): neither
# joining the group nor the last partial batches are in it.
# One number, 0 while the ledger's admin port is not up (curl's failure is
# swallowed before the pipe: `... | awk || echo 0` printed a second "0").
applied() { { curl -fsS "http://127.0.0.1:$ledger_admin/metrics" 2>/dev/null || true; } |
  awk '$1 ~ /^tessera_consumer_messages_total/ {s += $2} END {print s + 0}'; }
# Every measurement of scenario 3 (and its COPY baseline) starts on a
# settled database: the previous run's dead rows vacuumed, else autovacuum
# works through them in the middle of the next run. (No CHECKPOINT: right
# after one, the first change to every page writes a full-page image,
# which costs the ledger's scattered balance updates far more than COPY's
# appends.)
settle() {
  psql_bench -c "VACUUM ANALYZE ledger.balances, ledger.commands, ledger.journal, ledger.outbox"
}
# apply_run [N]: $members top-ups produced while the ledger is stopped, then
# applied by a ledger with N workers (its default without N); sets
# apply_rate and mem_s3.
apply_run() {
  "$runtime" stop-service ledger
  local before n n0 n1 t0="" t1="" deadline=$((SECONDS + 300)) verdicts
  before=$(psql_bench -c "SELECT count(*) FROM ledger.commands")
  "$bin/tessera-bench-produce" "$bootstrap" "$work/members.txt" "$members" ledger-commands 100000 >/dev/null
  settle
  env ${1:+TESSERA_LEDGER_WORKERS=$1} "$runtime" launch-service ledger # ready would mean caught up
  sample_start
  while :; do
    n=$(applied)
    [ -z "$t0" ] && [ "$n" -ge $((members / 10)) ] && { t0=$(now); n0=$n; }
    [ -n "$t0" ] && [ "$n" -ge $((members * 9 / 10)) ] && { t1=$(now); n1=$n; break; }
    [ $SECONDS -lt $deadline ] || { say "ledger did not finish in time"; t0=${t0:-$(now)}; n0=${n0:-0}; t1=$(now); n1=$n; break; }
    sleep 0.05
  done
  until [ "$(applied)" -ge "$members" ] || [ $SECONDS -ge $deadline ]; do sleep 0.1; done
  mem_s3=$(sample_stop)
  # Exactly once: one verdict per command, no more, no less.
  verdicts=$(( $(psql_bench -c "SELECT count(*) FROM ledger.commands") - before ))
  [ "$verdicts" -eq "$members" ] || say "WARNING: $verdicts verdicts for $members commands"
  apply_rate=$(echo "($n1 - $n0) / $(elapsed "$t0" "$t1")" | bc -l)
}
# The default worker count (two since 2026-12-06: two pipelines in the
# process, each with its own partitions and PostgreSQL connection), and one.
apply_run
apply_rate_default=$apply_rate
apply_run 1
apply_rate_1=$apply_rate
"$runtime" stop-service ledger
"$runtime" start-service ledger # the default again for the scenarios below
lines_per_posting=4
# COPY of the same journal rows the ledger wrote for these top-ups (members'
# ids, uuid7 ids: bench/journal_rows.sh), and of the synthetic rows earlier
# runs used (sequential ids: cheaper index inserts), for comparison.
copy_baseline() { # [--synthetic]; prints postings/s
  "$repo/bench/journal_rows.sh" "$work/members.txt" "$members" "$@" >"$work/journal.tsv"
  settle >/dev/null
  local t0 t1
  t0=$(now)
  psql_bench -c "\\copy ledger.journal (posting_id, command_id, tenant_id, member_id, branch_id, account, asset, amount, reason, actor) FROM '$work/journal.tsv'" >/dev/null
  t1=$(now)
  psql_bench -c "DELETE FROM ledger.journal WHERE actor = 'service:bcopy'" >/dev/null
  echo "$members / $(elapsed "$t0" "$t1")" | bc -l
}
copy_rate=$(copy_baseline)
copy_rate_synthetic=$(copy_baseline --synthetic)

# ---------------------------------------------------------------- scenario 1
say "scenario 1: single requests over keep-alive HTTP vs a bare libevent server"
"$bin/tessera-bench-bare" "$bare_port" &
sleep 0.2
bare=$("$bin/tessera-loadgen" --target bare --port "$bare_port" --connections 64 --duration 10)
pkill -f "tessera-bench-bare $bare_port" || true
# The read path: GET /v1/members/{id}, served from Redis, over
# $read_members of the members (BENCH_READ_MEMBERS). One pass over each of
# them first (--each), so what is measured is the cache, not its first
# fill (a miss reads four statements from PostgreSQL and puts them back).
head -n "$read_members" "$work/members.txt" >"$work/read-members.txt"
"$bin/tessera-loadgen" --target member --port "$api_port" --key "$key" \
  --members "$work/read-members.txt" --connections 64 --duration 600 --each >/dev/null
sample_start
read_closed=$("$bin/tessera-loadgen" --target member --port "$api_port" --key "$key" \
  --members "$work/read-members.txt" --connections 64 --duration 10)
read_half_rate=$(printf '%.0f' "$(echo "$(jget rps "$read_closed") / 2" | bc -l)")
read_half=$("$bin/tessera-loadgen" --target member --port "$api_port" --key "$key" \
  --members "$work/read-members.txt" --connections 64 --duration 10 --rate "$read_half_rate")
mem_s1r=$(sample_stop)
if [ "$warmup_s" -gt 0 ]; then
  say "warm-up: $warmup_s s of purchases, not counted"
  "$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" \
    --members "$work/members.txt" --connections 64 --duration "$warmup_s" >/dev/null
fi
sample_start
single=$("$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" \
  --members "$work/members.txt" --connections 64 --duration 10)
half_rate=$(printf '%.0f' "$(echo "$(jget rps "$single") / 2" | bc -l)")
half=$("$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" \
  --members "$work/members.txt" --connections 64 --duration 10 --rate "$half_rate")
mem_s1=$(sample_stop)

# ---------------------------------------------------------------- scenario 4
say "scenario 4: end to end at $e2e_rate purchases/s for $e2e_seconds s (cash and stored value)"
rss_before=$(for s in ingest ledger tiering campaign notification; do echo "$s:$(rss_kb $s)"; done)
sample_start
e2e=$("$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" \
  --members "$work/members.txt" --connections 128 --duration "$e2e_seconds" --rate "$e2e_rate" \
  --stored-value-pct 50 --visible-every 20)
t0=$(now)
until [ "$(metric "$ledger_admin" tessera_consumer_total_lag_messages)" = "0" ] && \
      [ "$(metric $((TESSERA_LOCAL_ADMIN_PORT_BASE + 2)) tessera_consumer_total_lag_messages)" = "0" ]; do
  sleep 0.05
  [ "$(elapsed "$t0" "$(now)" | cut -d. -f1)" -lt 60 ] || break
done
drain_s=$(elapsed "$t0" "$(now)")
mem_s4=$(sample_stop)
rss_after=$(for s in ingest ledger tiering campaign notification; do echo "$s:$(rss_kb $s)"; done)

# ---------------------------------------------------------------- scenario 5
say "scenario 5: memory with $big_members members known"
make_members $((members + 1)) "$big_members"
psql_bench -c "SELECT member_id FROM ingest.members ORDER BY random() LIMIT 200000" >"$work/all-members.txt"
"$bin/tessera-loadgen" --target purchase --port "$api_port" --key "$key" \
  --members "$work/all-members.txt" --connections 64 --duration 15 --rate 1000 >/dev/null
mem_rows=""
mem_json=""
for s in ingest ledger tiering campaign notification; do
  b=$(sed -n "s/^$s://p" <<<"$rss_before"); a=$(sed -n "s/^$s://p" <<<"$rss_after")
  peak=$(hwm_kb "$s"); now_kb=$(rss_kb "$s")
  mem_rows+="| $s | $((b / 1024)) MiB | $((a / 1024)) MiB | $((now_kb / 1024)) MiB | $((peak / 1024)) MiB |"$'\n'
  mem_json+="\"$s\":{\"rss_before_e2e_kb\":$b,\"rss_after_e2e_kb\":$a,\"rss_1m_members_kb\":$now_kb,\"peak_kb\":$peak},"
done

# ---------------------------------------------------------------- scenario 6
say "scenario 6: notifications, ${BENCH_NOTIFY_COUNT:-100000} receipts rendered, in the inbox and sent by SMS"
notify=$(NOTIFY_COUNT=${BENCH_NOTIFY_COUNT:-100000} "$repo/bench/notify.sh")

# ------------------------------------------------------------ scenarios 7, 8
say "scenarios 7 and 8: entitlement checks; tier evaluations while the ledger is under load"
psql_bench -c "SELECT member_id FROM tiering.member_spend WHERE tenant_id = 'demo' LIMIT $members" >"$work/tiered.txt"
tiers=$(ENT_KEY=$key ENT_MEMBERS_FILE=$work/tiered.txt ENT_BARE_PORT=$bare_port \
  ENT_LOAD_RATE=$e2e_rate ENT_LOAD_SECONDS=${BENCH_TIER_SECONDS:-40} "$repo/bench/entitlements.sh")
pj() { python3 -c 'import json, sys
d = json.load(sys.stdin)
for k in sys.argv[1].split("."): d = d[k]
print(d)' "$1" <<<"$tiers"; }
ent_ratio=$(ratio "$(pj checks.rps)" "$(pj bare.rps)")
tier_ratio=$(ratio "$(pj tier_evaluations_per_s)" "$apply_rate_default")

# ---------------------------------------------------------------- scenario 9
say "scenario 9: rule evaluations/s in the campaign, 135 rule clauses vs 1, with the ledger under load"
rules=$(API_PORT=$api_port KEY=$key MEMBERS_FILE=$work/members.txt \
  ADMIN_PORT_BASE=$TESSERA_LOCAL_ADMIN_PORT_BASE RUNTIME=$runtime BIN=$bin "$repo/bench/rules.sh")

# ------------------------------------------------------------------- report
machine="$(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)"
verdict() { if [ "$(echo "$1" | bc -l)" = "1" ]; then echo "met"; else echo "**not met**"; fi; }
f1() { printf '%.1f' "$1"; }
# The goals of issue 15, each a ratio to a baseline of this run. "The
# ledger's apply rate" is its rate with the default worker count
# (apply_rate_default) wherever a goal is measured against it.
s1r_ratio=$(ratio "$(jget rps "$read_closed")" "$(jget rps "$bare")")
s1_ratio=$(ratio "$(jget rps "$single")" "$apply_rate_default")
s2_ratio=$(ratio "$batch_rate" "$apply_rate_default")
s2_raw_ratio=$(ratio "$batch_rate" "$raw_rate")
s3_ratio=$(ratio "$apply_rate_default" "$copy_rate")
s3_ratio_1=$(ratio "$apply_rate_1" "$copy_rate")
s3_ratio_synthetic=$(ratio "$apply_rate_default" "$copy_rate_synthetic")
s9_ratio=$(ratio "$(jget evaluations_per_s_many "$rules")" "$(jget evaluations_per_s_one "$rules")")
e2e_sustained=$(echo "$(jget rps "$e2e") >= $e2e_rate * 0.98" | bc -l)
md=$results_dir/$stamp.md
cat >"$md" <<MD
# Tessera benchmark, $stamp

Machine: $machine. Apache Kafka $("$repo/deploy/kafka/fetch.sh" --version) (one node, KRaft), $TESSERA_LOCAL_PARTITIONS partitions;
PostgreSQL 15 with fsync on; load generator on the same machine.

| scenario | Tessera | baseline (same run) | ratio | goal | |
|---|---|---|---|---|---|
| 1r. read path: GET /v1/members/{id} from Redis over $read_members members (warmed), closed loop, 64 connections | $(f1 "$(jget rps "$read_closed")") req/s, p50 $(jget p50_ms "$read_closed") ms, p99 $(jget p99_ms "$read_closed") ms | bare libevent: $(f1 "$(jget rps "$bare")") req/s, p99 $(jget p99_ms "$bare") ms | $s1r_ratio | ≥ 0.50, p99 < 5 ms | $(verdict "$s1r_ratio >= 0.50 && $(jget p99_ms "$read_closed") < 5") |
| 1r-b. read path at half that load ($read_half_rate req/s, open loop) | p50 $(jget p50_ms "$read_half") ms, p99 $(jget p99_ms "$read_half") ms | | | | |
| 1. single purchase (cash, synchronous verdict), closed loop, 64 connections | $(f1 "$(jget rps "$single")") req/s, p50 $(jget p50_ms "$single") ms, p95 $(jget p95_ms "$single") ms, p99 $(jget p99_ms "$single") ms | the ledger's exactly-once apply (3a): $(f1 "$apply_rate_default") postings/s | $s1_ratio | ≥ 0.50 | $(verdict "$s1_ratio >= 0.50") |
| 1b. same at half that load ($half_rate req/s, open loop) | p50 $(jget p50_ms "$half") ms, p95 $(jget p95_ms "$half") ms, p99 $(jget p99_ms "$half") ms | | | p99 ≤ 20 ms | $(verdict "$(jget p99_ms "$half") <= 20") |
| 2. batch ingest, 10 000 lines a request, $members top-ups (answered with verdicts) | $(f1 "$batch_rate") lines/s ($batch_refused lines not applied); a request of 10 000 lines p50 $batch_p50 ms, p95 $batch_p95 ms, p99 $batch_p99 ms | the ledger's exactly-once apply (3a): $(f1 "$apply_rate_default") postings/s; raw librdkafka producer: $(f1 "$raw_rate") events/s (ratio $s2_raw_ratio) | $s2_ratio | ≥ 0.80 | $(verdict "$s2_ratio >= 0.80") |
| 3a. ledger apply, exactly once, $members top-ups over $members members, the default ledger workers (2), rate between 10% and 90% applied | $(f1 "$apply_rate_default") postings/s | COPY of the same journal rows ($lines_per_posting a posting): $(f1 "$copy_rate") postings/s; of the synthetic rows of earlier runs (sequential ids): $(f1 "$copy_rate_synthetic") postings/s (ratio $s3_ratio_synthetic) | $s3_ratio | ≥ 0.50 | $(verdict "$s3_ratio >= 0.50") |
| 3b. the same with 1 ledger worker | $(f1 "$apply_rate_1") postings/s | the same COPY | $s3_ratio_1 | | |
| 4. end to end, $e2e_rate purchases/s offered for $e2e_seconds s, half stored value | $(jget requests "$e2e") requests ($(jget status_5xx "$e2e") 5xx, $(jget errors "$e2e") errors), $(f1 "$(jget rps "$e2e")") req/s; accepted p99 $(jget p99_ms "$e2e") ms; balance visible p50 $(jget visible_p50_ms "$e2e") ms, p99 $(jget visible_p99_ms "$e2e") ms | offered: $e2e_rate req/s | $(ratio "$(jget rps "$e2e")" "$e2e_rate") | sustained, visible p99 ≤ 100 ms | $(verdict "$e2e_sustained == 1 && $(jget visible_p99_ms "$e2e") <= 100") |
| 4b. consumer lag back to zero after the load | $(printf '%.2f' "$drain_s") s | | | ≤ 1 s | $(verdict "$drain_s <= 1") |
| 6. notifications: $(jget messages "$notify") receipts rendered, put in the inbox and sent by SMS to a bare local server | $(f1 "$(jget rate "$notify")") messages/s ($(jget delivered "$notify") delivered in $(jget seconds "$notify") s, the last request decided at $(jget decided_s "$notify") s); notification RSS $(( $(jget rss_start_kb "$notify") / 1024 )) MiB at start, max $(( $(jget rss_max_first_half_kb "$notify") / 1024 )) MiB in the first half, $(( $(jget rss_max_second_half_kb "$notify") / 1024 )) MiB in the second, peak $(( $(jget rss_peak_kb "$notify") / 1024 )) MiB | | | ≥ 5 000/s, memory flat (second half's max within 10 % of the first's) | $(verdict "$(jget rate "$notify") >= 5000 && $(jget rss_max_second_half_kb "$notify") <= 1.1 * $(jget rss_max_first_half_kb "$notify")") |
| 7. entitlement checks: GET /v1/members/{id}/entitlements (tier rule) over members tiering cached, closed loop, 64 connections | $(f1 "$(pj checks.rps)") req/s, p50 $(pj checks.p50_ms) ms, p99 $(pj checks.p99_ms) ms; $(pj checks_pg_reads) PostgreSQL reads by the checks | bare libevent: $(f1 "$(pj bare.rps)") req/s, p99 $(pj bare.p99_ms) ms | $ent_ratio | ≥ 0.50 | $(verdict "$ent_ratio >= 0.50") |
| 7b. entitlement checks at half that load ($(pj checks_half_rate) req/s, open loop) | p50 $(pj checks_half.p50_ms) ms, p99 $(pj checks_half.p99_ms) ms | bare libevent at the same rate: p50 $(pj bare_half.p50_ms) ms, p99 $(pj bare_half.p99_ms) ms | | p99 < 2 ms | $(verdict "$(pj checks_half.p99_ms) < 2") |
| 8. tier evaluations while the ledger is under load: tiering restarted behind a backlog while $e2e_rate purchases/s are offered ($(f1 "$(pj tier_load.rps)") answered/s) | $(f1 "$(pj tier_evaluations_per_s)") purchases evaluated/s over $(pj tier_window_s) s | the ledger's exactly-once apply (3a): $(f1 "$apply_rate_default") postings/s; the ledger in the same window: $(f1 "$(pj ledger_applied_per_s)") messages/s | $tier_ratio | ≥ 1.0 (tiering never lags the ledger) | $(verdict "$tier_ratio >= 1.0") |
| 9. rule evaluations: $(jget activities "$rules") activities applied by the campaign under the largest rule set the API takes ($(jget rule_clauses "$rules") clauses: 8 activity types with points and 3 limits, 64 promotions of 32 categories and branches, streak, cap, birthday, 3 welcome tasks, earning rule with 32 exclusions) while $(jget ledger_rate "$rules") purchases/s load the ledger | $(f1 "$(jget evaluations_per_s_many "$rules")") evaluations/s | the same activities under one rule (comment +5): $(f1 "$(jget evaluations_per_s_one "$rules")") evaluations/s | $s9_ratio | ≥ 0.50 | $(verdict "$s9_ratio >= 0.50") |

Peak resident memory of each service during each scenario (sampled every 0.2 s):

| scenario | peak resident memory |
|---|---|
| 1r. read path | $mem_s1r |
| 1. single purchases | $mem_s1 |
| 2. batch ingest | $mem_s2 |
| 3. ledger apply | $mem_s3 |
| 4. end to end | $mem_s4 |

Memory over the run (resident; peak is the process's high-water mark over its whole life):

| service | before scenario 4 | after scenario 4 | with $big_members members | peak |
|---|---|---|---|---|
$mem_rows
MD
cat >"$results_dir/$stamp.json" <<JSON
{"stamp":"$stamp","machine":"$machine","partitions":$TESSERA_LOCAL_PARTITIONS,
 "read":$read_closed,"read_half_load":$read_half,"single":$single,"single_half_load":$half,"bare":$bare,
 "batch":{"lines":$members,"lines_per_s":$batch_rate,"not_applied":$batch_refused,"request_p50_ms":$batch_p50,"request_p95_ms":$batch_p95,"request_p99_ms":$batch_p99},
 "peak_rss":{"read":"$mem_s1r","single":"$mem_s1","batch":"$mem_s2","ledger_apply":"$mem_s3","end_to_end":"$mem_s4"},"raw_producer":$raw,
 "ledger_apply_postings_per_s":$apply_rate_default,"ledger_apply_postings_per_s_1_worker":$apply_rate_1,"copy_postings_per_s":$copy_rate,"copy_synthetic_postings_per_s":$copy_rate_synthetic,
 "end_to_end":$e2e,"lag_drain_s":$drain_s,"notifications":$notify,"tiers":$tiers,"rules":$rules,
 "memory":{${mem_json%,}}}
JSON
cat "$md"
say "results in $md and ${md%.md}.json"
