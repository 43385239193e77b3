#!/usr/bin/env bash
# `make fuzz`: every target first replays its committed inputs (the seed
# corpus and every past crash in tests/fuzz/regressions/<target>/), then
# fuzzes for a bounded time. New interesting inputs go to build/fuzz/ (the
# committed corpus is only read); a crash leaves its input in
# build/fuzz/crashes/ and fails the run: copy it into regressions/.
set -uo pipefail
seconds=$1; shift
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
failed=0
for bin in "$@"; do
  name=$(basename "$bin")
  seeds=tests/fuzz/corpus/$name
  regressions=tests/fuzz/regressions/$name
  work=build/fuzz/corpus-$name
  mkdir -p "$work" "$seeds" "$regressions" build/fuzz/crashes
  mapfile -t inputs < <(find "$regressions" "$seeds" -type f | sort)
  if [ "${#inputs[@]}" -gt 0 ]; then
    if ! "$bin" "${inputs[@]}" >"build/fuzz/$name.replay.log" 2>&1; then
      echo "FAIL $name: a committed input crashes (see build/fuzz/$name.replay.log)"
      failed=$((failed + 1))
      continue
    fi
  fi
  if "$bin" "$work" "$seeds" -max_total_time="$seconds" -max_len=8192 -timeout=10 \
       -rss_limit_mb=2048 -artifact_prefix=build/fuzz/crashes/"$name"- \
       >"build/fuzz/$name.log" 2>&1; then
    echo "  $name: $(grep -o 'Done [0-9]* runs' "build/fuzz/$name.log" | tail -n 1) in ${seconds}s, no crash"
  else
    echo "FAIL $name: crash (input in build/fuzz/crashes/, log build/fuzz/$name.log)"
    failed=$((failed + 1))
  fi
done
[ "$failed" -eq 0 ]
