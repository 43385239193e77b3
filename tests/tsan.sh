#!/usr/bin/env bash
# `make tsan`: ThreadSanitizer over the ledger running two workers (two
# pipelines in one process, TESSERA_LEDGER_WORKERS=2) and its other
# threads (points scheduler, cache repair), through the end-to-end tests
# that drive card sales and uses, the crash test's mix and the scale-out
# test. Every service runs from the instrumented build (argument 1, made
# by `make tsan`); the tests are the ordinary binaries, except
# test_ledger_card_workers, whose two ledger workers run in the test
# process and are instrumented themselves. A
# private runtime in .local-tsan/, ports moved by TESSERA_TEST_PORT_OFFSET
# + 50 so it can run beside `make test`. Any ThreadSanitizer report (one
# file per process under .local-tsan/tsan/) fails the run. Ends with one
# line "N passed, M failed" like tests/run.sh.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
tsan_build=${1:-build-tsan}

off=$((${TESSERA_TEST_PORT_OFFSET:-0} + 50))
export TESSERA_LOCAL_DIR=$repo/.local-tsan
export TESSERA_LOCAL_PG_PORT=$((25532 + off))
export TESSERA_LOCAL_REDIS_PORT=$((26479 + off))
export TESSERA_LOCAL_API_PORT=$((18080 + off))
export TESSERA_LOCAL_ADMIN_PORT_BASE=$((19100 + off))
export TESSERA_LOCAL_PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
export TESSERA_LOCAL_READY_TIMEOUT_S=180 # instrumented services start slower
export TESSERA_KAFKA_SESSION_TIMEOUT_MS=6000
export TESSERA_RUNTIME=$repo/deploy/local/runtime.sh
export TESSERA_BIN_DIR=$repo/$tsan_build/bin
export TESSERA_LEDGER_WORKERS=2
export CMOCKA_MESSAGE_OUTPUT=TAP
reports=$TESSERA_LOCAL_DIR/tsan
# halt_on_error=0: a report does not stop the service (the tests go on and
# every report is collected); the run fails on any report file.
export TSAN_OPTIONS="log_path=$reports/report halt_on_error=0 second_deadlock_stack=1 suppressions=$repo/tests/tsan/suppressions.txt"

# Instrumented tests (from the TSan build): two ledger workers in the test
# process itself, selling cards at once.
instrumented=(integration/test_ledger_card_workers)
# TESSERA_TSAN_TESTS overrides the list (paths under build/tests).
read -r -a tests <<<"${TESSERA_TSAN_TESTS:-e2e/test_cards e2e/test_card_cache e2e/test_ledger_crash_audit e2e/test_scaleout}"
log_dir=$repo/build/test-logs/tsan
mkdir -p "$log_dir"
passed=0
failed=0

"$TESSERA_RUNTIME" stop >/dev/null 2>&1
rm -rf "$TESSERA_LOCAL_DIR"
mkdir -p "$reports"
cleanup() { "$TESSERA_RUNTIME" stop >/dev/null 2>&1; }
trap cleanup EXIT
echo "== ThreadSanitizer: services from $tsan_build, ledger with $TESSERA_LEDGER_WORKERS workers"
if ! "$TESSERA_RUNTIME" start; then
  echo "FAIL runtime: the local runtime did not start; logs in $TESSERA_LOCAL_DIR/logs"
  echo "0 passed, 1 failed"
  exit 1
fi
eval "$("$TESSERA_RUNTIME" env | sed 's/^/export /')"
for t in "${instrumented[@]/#/$tsan_build/tests/}" "${tests[@]/#/build/tests/}"; do
  name=$(basename "$t")
  out=$log_dir/$name.tap
  "$t" >"$out" 2>&1
  status=$?
  ok=$(grep -c '^ok ' "$out")
  notok=$(grep -c '^not ok ' "$out")
  passed=$((passed + ok))
  failed=$((failed + notok))
  if [ "$status" -ne 0 ] && [ "$notok" -eq 0 ]; then
    failed=$((failed + 1))
    echo "FAIL $name: exited $status (see $out)"
  fi
  grep '^not ok ' "$out" | sed "s/^/FAIL $name: /"
  echo "  $name: ok=$ok not_ok=$notok"
done
"$TESSERA_RUNTIME" stop >/dev/null 2>&1
trap - EXIT

found=$(ls "$reports" 2>/dev/null | wc -l)
if [ "$found" -eq 0 ]; then
  passed=$((passed + 1))
  echo "  ThreadSanitizer: no report"
else
  failed=$((failed + 1))
  echo "FAIL ThreadSanitizer: $found report file(s) in $reports; first:"
  grep -h -A12 'WARNING: ThreadSanitizer' "$reports"/* | head -n 40 | sed 's/^/  /'
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
