#!/usr/bin/env bash
# `make test`: unit tests, then integration and end-to-end tests against a
# fresh local runtime of their own (.local-test/, other ports, so `make
# run`'s data is never touched). Ends with one line "N passed, M failed".
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

# TESSERA_TEST_PORT_OFFSET moves every port, so several checkouts can
# test at once on one machine.
off=${TESSERA_TEST_PORT_OFFSET:-0}
export TESSERA_LOCAL_DIR=$repo/.local-test
export TESSERA_LOCAL_PG_PORT=$((25532 + off))
export TESSERA_LOCAL_REDIS_PORT=$((26479 + off))
export TESSERA_LOCAL_API_PORT=$((18080 + off))
export TESSERA_LOCAL_ADMIN_PORT_BASE=$((19100 + off))
# Kafka: the client listener, the controller (+1) and a SASL listener for
# the security tests (+2).
export TESSERA_LOCAL_KAFKA_PORT=$((29092 + off))
export TESSERA_LOCAL_KAFKA_SASL_PORT=$((29094 + off))
# The notification providers (tests/support/notify_sinks.py): SMTP here,
# the SMS/push webhook on the next port.
export TESSERA_LOCAL_NOTIFY_SINKS_PORT=$((25025 + off))
export TESSERA_LOCAL_PG_OPTIONS="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
export TESSERA_KAFKA_SESSION_TIMEOUT_MS=6000
# Expired Idempotency-Keys are purged every half second (test_idempotency_purge).
export TESSERA_IDEMPOTENCY_PURGE_INTERVAL_MS=500
export TESSERA_RUNTIME=$repo/deploy/local/runtime.sh
# The test clock (libs/clock): every service and test of the run reads
# this file's offset; tests/support/test_clock.h moves it. No file (the
# runtime starts empty): wall time.
export TESSERA_CLOCK_OFFSET_FILE=$TESSERA_LOCAL_DIR/clock-offset-us
export CMOCKA_MESSAGE_OUTPUT=TAP

passed=0
failed=0
log_dir=$repo/build/test-logs
mkdir -p "$log_dir"

# Sanitizers (make test SAN=...): every process of the run (tests and the
# services they start) writes its reports under $san_dir instead of
# stderr, keeps going after a UBSan report, and the run fails if any report
# was written: a service's report would otherwise vanish into its log.
san_dir=$log_dir/san
rm -rf "$san_dir"
if [ -n "${TESSERA_SAN:-}" ]; then
  mkdir -p "$san_dir"
  export ASAN_OPTIONS="log_path=$san_dir/asan:log_exe_name=1:fast_unwind_on_malloc=0:detect_leaks=1:abort_on_error=0:detect_stack_use_after_return=0"
  export LSAN_OPTIONS="suppressions=$repo/tests/lsan.supp:print_suppressions=0"
  export UBSAN_OPTIONS="log_path=$san_dir/ubsan:log_exe_name=1:print_stacktrace=1:halt_on_error=0"
  echo "== sanitizers: $TESSERA_SAN (reports go to $san_dir)"
fi

# Runs one cmocka binary with TAP output and counts its results; a binary
# that dies before reporting every test counts as one more failure.
run_binary() {
  local bin=$1 name out status ok notok planned
  name=$(basename "$bin")
  out=$log_dir/$name.tap
  "$bin" >"$out" 2>&1
  status=$?
  ok=$(grep -c '^ok ' "$out")
  notok=$(grep -c '^not ok ' "$out")
  planned=$(sed -n 's/^1\.\.\([0-9]*\).*/\1/p' "$out" | head -n 1)
  passed=$((passed + ok))
  failed=$((failed + notok))
  if [ "$status" -ne 0 ] && [ "$notok" -eq 0 ]; then
    failed=$((failed + 1))
    echo "FAIL $name: exited $status without reporting a failure (see $out)"
  elif [ -n "$planned" ] && [ $((ok + notok)) -lt "$planned" ]; then
    failed=$((failed + 1))
    echo "FAIL $name: ran $((ok + notok)) of $planned tests (see $out)"
  fi
  grep '^not ok ' "$out" | sed "s/^/FAIL $name: /"
  echo "  $name: ok=$ok not_ok=$notok"
}

echo "== unit tests"
for bin in build/tests/unit/test_*; do
  [ -x "$bin" ] && run_binary "$bin"
done

# docs/openapi.yaml checked by an outside tool (tests/openapi/validate.sh).
echo "== openapi document"
if tests/openapi/validate.sh >"$log_dir/openapi-validate.txt" 2>&1; then
  passed=$((passed + 1))
  echo "  openapi-spec-validator: ok"
else
  failed=$((failed + 1))
  echo "FAIL openapi-spec-validator (see $log_dir/openapi-validate.txt):"
  tail -n 20 "$log_dir/openapi-validate.txt" | sed 's/^/  /'
fi

# Every relative link of README.md and docs/*.md resolves, README.md stays
# the door (under 300 lines), problem type URLs name docs/errors.md rows.
echo "== docs links"
if /usr/bin/env python3 tests/docs/check_links.py --self-test >"$log_dir/docs-links.txt" 2>&1; then
  passed=$((passed + 1))
  echo "  $(tail -n 1 "$log_dir/docs-links.txt")"
else
  failed=$((failed + 1))
  echo "FAIL docs links (see $log_dir/docs-links.txt):"
  head -n 20 "$log_dir/docs-links.txt" | sed 's/^/  /'
fi

echo "== starting a private runtime in $TESSERA_LOCAL_DIR"
"$TESSERA_RUNTIME" stop >/dev/null 2>&1
rm -rf "$TESSERA_LOCAL_DIR"
# At the end nothing of the runtime stays but its logs (PostgreSQL's data
# may live outside the checkout: see runtime.sh destroy).
cleanup() { "$TESSERA_RUNTIME" stop >/dev/null 2>&1; "$TESSERA_RUNTIME" destroy >/dev/null 2>&1; }
trap cleanup EXIT
if "$TESSERA_RUNTIME" start; then
  eval "$("$TESSERA_RUNTIME" env | sed 's/^/export /')"
  echo "== integration and end-to-end tests"
  for bin in build/tests/integration/test_* build/tests/e2e/test_*; do
    # TESSERA_TEST_ONLY="test_a test_b": only those system tests (a
    # developer's loop; the run then says it was partial).
    if [ -n "${TESSERA_TEST_ONLY:-}" ] && [[ " $TESSERA_TEST_ONLY " != *" $(basename "$bin") "* ]]; then
      continue
    fi
    [ -x "$bin" ] && run_binary "$bin"
  done
  [ -z "${TESSERA_TEST_ONLY:-}" ] || echo "== partial run (TESSERA_TEST_ONLY): not a make test"
  # Generated requests against docs/openapi.yaml: no 5xx, every answer as
  # documented (tests/openapi/schemathesis.sh).
  echo "== schemathesis"
  if [ -n "${TESSERA_TEST_ONLY:-}" ]; then
    echo "  skipped (TESSERA_TEST_ONLY)"
  elif tests/openapi/schemathesis.sh >"$log_dir/schemathesis.txt" 2>&1; then
    passed=$((passed + 1))
    echo "  schemathesis: ok ($(grep -Eo '[0-9]+ generated, [0-9]+ passed' "$log_dir/schemathesis.txt"))"
  else
    failed=$((failed + 1))
    echo "FAIL schemathesis (see $log_dir/schemathesis.txt):"
    grep -E '^_{3,} |^- |^\[[0-9]{3}\]' "$log_dir/schemathesis.txt" | head -n 30 | sed 's/^/  /'
  fi
  # Whatever the tests did, the ledger's invariants must still hold.
  echo "== ledger audit"
  if "$TESSERA_RUNTIME" audit >"$log_dir/ledger-audit.txt" 2>&1; then
    passed=$((passed + 1))
    echo "  ledger audit: ok ($(tail -n 1 "$log_dir/ledger-audit.txt"))"
  else
    failed=$((failed + 1))
    echo "FAIL ledger audit (see $log_dir/ledger-audit.txt):"
    grep -v '^audit: ok' "$log_dir/ledger-audit.txt" | sed 's/^/  /'
  fi
else
  failed=$((failed + 1))
  echo "FAIL runtime: the local runtime did not start; logs in $TESSERA_LOCAL_DIR/logs"
  tail -n 20 "$TESSERA_LOCAL_DIR"/logs/*.log 2>/dev/null
fi

# Reports written by any process of the run, services included.
if [ -n "${TESSERA_SAN:-}" ]; then
  reports=$(find "$san_dir" -type f -size +0 2>/dev/null | sort)
  if [ -n "$reports" ]; then
    failed=$((failed + 1))
    echo "FAIL sanitizers: $(echo "$reports" | wc -l) report(s):"
    for r in $reports; do
      echo "  $r:"
      grep -m 5 -E 'ERROR|runtime error|SUMMARY' "$r" | sed 's/^/    /'
    done
  else
    passed=$((passed + 1))
    echo "  sanitizers ($TESSERA_SAN): no report"
  fi
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
