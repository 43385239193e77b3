#!/usr/bin/env bash
# `make run`: starts the local runtime and the five services, prints where
# the API is and the demo admin key once every service is ready (consumers
# hold their partitions: runtime.sh start waits for each /readyz), and
# stops everything in order on Ctrl-C (or `make stop` from another shell).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
local_dir=${TESSERA_LOCAL_DIR:-$repo/.local}
api_port=${TESSERA_LOCAL_API_PORT:-8080}
kafka_port=${TESSERA_LOCAL_KAFKA_PORT:-59092}

# Ctrl-C reaches everything in the terminal's process group at once; a
# pipe reader (`make run | tee`) may be gone before we print, and printing
# must not kill the stop half-way.
trap '' PIPE

stopping=0
stop() {
  [ $stopping -eq 0 ] || return 0
  stopping=1
  echo 2>/dev/null || true
  echo "Stopping Tessera..." 2>/dev/null || true
  "$here/runtime.sh" stop 2>/dev/null
  echo "Stopped." 2>/dev/null || true
  exit 0
}
trap stop INT TERM HUP

"$here/runtime.sh" start
cat <<INFO

Tessera is running.
  API:            http://127.0.0.1:$api_port
  Demo admin key: $(cat "$local_dir/api-key")   (also in $local_dir/api-key)
  Tenant:         demo (branches hq, branch-1), created through POST /v1/tenants
  Platform key:   in $local_dir/platform-key (creates tenants: docs/tenants.md)
  Kafka:          127.0.0.1:$kafka_port (Apache Kafka, data in $local_dir/kafka)
  Logs:           $local_dir/logs/
Press Ctrl-C to stop (or run 'make stop' in another shell).
INFO

# Stay in the foreground until a signal, or until the API exits on its own.
while [ -f "$local_dir/pids/ingest.pid" ] && kill -0 "$(cat "$local_dir/pids/ingest.pid")" 2>/dev/null; do
  sleep 1 &
  wait $! || true
done
[ $stopping -eq 1 ] || { echo "The API stopped; stopping the rest." >&2; "$here/runtime.sh" stop; }
