#!/usr/bin/env bash
# The local runtime: PostgreSQL and Redis from Debian's packages and an
# Apache Kafka broker (deploy/kafka/), all with their data under
# $TESSERA_LOCAL_DIR (default .local/), and the five services. Used by `make run`, `make stop` and the
# tests (which point TESSERA_LOCAL_DIR and the ports elsewhere).
#
#   runtime.sh start            infrastructure, migrations, demo tenant, services
#   runtime.sh stop             ordered: ingest, drain consumers, consumers, broker, Redis, PostgreSQL
#   runtime.sh start-service S  start one service (ingest ledger tiering campaign notification)
#   runtime.sh stop-service S   SIGTERM one service and wait for it
#   runtime.sh kill-service S   SIGKILL one service (crash tests)
#   runtime.sh launch-service S start one service without waiting for it to be ready
#   runtime.sh start-instance S N   start instance N (2, 3, ...) of a service beside the
#                               first: same group, admin port + 10*(N-1) (ingest: its API port
#                               too), pids/S-N.pid, logs/S-N.log, TESSERA_INSTANCE_ID=S-N
#   runtime.sh stop-instance S N | kill-instance S N   SIGTERM / SIGKILL one instance
#   runtime.sh stop-postgres|start-postgres|stop-redis|start-redis
#                               take one dependency away and back (resilience tests)
#   runtime.sh restart-kafka    stop the services in order, restart the broker on the same
#                               data, start the services again
#   runtime.sh recreate-kafka   the same with the broker's data thrown away: a new, empty
#                               cluster with a new id (a lost cluster)
#   runtime.sh stop-kafka|start-kafka|kill-kafka
#                               SIGTERM (and wait) / start on the same data / SIGKILL the
#                               broker, services left running (broker restart tests)
#   runtime.sh audit            tessera-ledger --audit against this runtime (exit 0: all holds)
#   runtime.sh rotate-master-key  new PII master key (the old one kept as previous),
#                               restart ingest, reseal every member row, drop the old key
#   runtime.sh destroy          remove the (stopped) runtime's data, logs kept: PostgreSQL's
#                               also where it lives outside the local dir (see pg_data_dir)
#   runtime.sh env              print the environment services and tests use
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
local_dir=${TESSERA_LOCAL_DIR:-$repo/.local}
pg_port=${TESSERA_LOCAL_PG_PORT:-55432}
redis_port=${TESSERA_LOCAL_REDIS_PORT:-56379}
api_port=${TESSERA_LOCAL_API_PORT:-8080}
admin_base=${TESSERA_LOCAL_ADMIN_PORT_BASE:-9100}
partitions=${TESSERA_LOCAL_PARTITIONS:-6}
# The services' binaries (`make tsan` points this at its instrumented build).
bin_dir=${TESSERA_BIN_DIR:-$repo/build/bin}
pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
services=(ingest ledger tiering campaign notification)
consumers=(ledger tiering campaign notification)
ready_timeout_s=${TESSERA_LOCAL_READY_TIMEOUT_S:-180} # ready = caught up: a backlog takes time
# Tests: the local notification providers (tests/support/notify_sinks.py),
# SMTP on this port and the SMS/push webhook on the next one. Unset (make
# run): no provider, so email, SMS and push are suppressed ("no_provider").
sinks_port=${TESSERA_LOCAL_NOTIFY_SINKS_PORT:-}

say() { echo "runtime: $*" >&2; }

# One start or stop at a time per runtime: `make stop` from another shell
# and make run's own stop (when it sees the API go) must not interleave,
# nor may a late stop meet the next start half-way. flock -o: the services
# and servers started here do not inherit the lock.
case ${1:-} in
  start | stop | restart-kafka | recreate-kafka | destroy)
    if [ -z "${TESSERA_RUNTIME_LOCKED:-}" ] && { [ -d "$local_dir" ] || [ "$1" = start ]; }; then
      mkdir -p "$local_dir"
      TESSERA_RUNTIME_LOCKED=1 exec flock -o "$local_dir/.runtime.lock" "$0" "$@"
    fi
    ;;
esac
die() { say "error: $*"; exit 1; }

admin_port_of() {
  case $1 in
    ingest) echo $((admin_base + 0)) ;; ledger) echo $((admin_base + 1)) ;;
    tiering) echo $((admin_base + 2)) ;; campaign) echo $((admin_base + 3)) ;;
    notification) echo $((admin_base + 4)) ;; *) die "unknown service '$1'" ;;
  esac
}

pg_dsn() { echo "host=127.0.0.1 port=$pg_port user=tessera dbname=tessera"; }

# Runs a command as the postgres user when we are root (PostgreSQL refuses
# to run as root), as ourselves otherwise.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Polls until a command succeeds or the deadline passes.
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { say "timed out waiting for $what"; return 1; }
    sleep 0.1
  done
}

# Admin port of instance n of a service (instance 1 is the service itself).
instance_admin_port() { echo $(($(admin_port_of "$1") + 10 * ($2 - 1))); }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# ---------------------------------------------------------------- PostgreSQL
pg_data_dir() {
  # The data lives under the local dir; if the postgres user cannot reach
  # it (a checkout under a private home, any mktemp -d), it lives in
  # /var/lib/tessera/<hash of the local dir> and the local dir holds a
  # link to it. `runtime.sh destroy` (make test and make bench at their
  # end, make clean) removes it.
  local want=$local_dir/pg
  if [ "$(id -u)" -eq 0 ] && [ ! -L "$want" ]; then
    mkdir -p "$want"
    chown postgres "$want"
    if ! runuser -u postgres -- test -w "$want"; then
      local alt
      alt=$(pg_outside_dir)/pg
      # No link: this local dir is new (or was deleted to start from zero),
      # so whatever an earlier runtime at the same path left there is not
      # ours to reuse.
      rm -rf "$alt"
      mkdir -p "$alt"
      chown postgres "$alt"
      rmdir "$want" 2>/dev/null || true
      ln -sfn "$alt" "$want"
    fi
  fi
  mkdir -p "$want"
  # The real path: the postgres user may not traverse the link's directory.
  readlink -f "$want"
}

pg_outside_dir() { echo "/var/lib/tessera/$(echo "$local_dir" | md5sum | cut -c1-12)"; }

start_postgres() {
  local dir
  dir=$(pg_data_dir)
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "initialising PostgreSQL in $dir/data"
    as_pg "$pg_bin/initdb" -D "$dir/data" -U tessera --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
  fi
  mkdir -p "$dir/run"
  [ "$(id -u)" -eq 0 ] && chown postgres "$dir/run"
  if ! as_pg "$pg_bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-p $pg_port -k $dir/run -c listen_addresses=127.0.0.1 -c max_connections=200 ${TESSERA_LOCAL_PG_OPTIONS:-}" \
      start >/dev/null
  fi
  wait_for "PostgreSQL" 30 psql "host=127.0.0.1 port=$pg_port user=tessera dbname=postgres" -c 'select 1'
  if ! psql -tA "host=127.0.0.1 port=$pg_port user=tessera dbname=postgres" \
      -c "select 1 from pg_database where datname = 'tessera'" | grep -q 1; then
    createdb -h 127.0.0.1 -p "$pg_port" -U tessera tessera
  fi
}

stop_postgres() {
  local dir
  dir=$(readlink -f "$local_dir/pg")
  [ -f "$dir/data/PG_VERSION" ] || return 0
  as_pg "$pg_bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# --------------------------------------------------------------------- Redis
# Redis asks for a password (requirepass), generated on first start into
# $local_dir/redis-password (mode 600, like master-key) and handed to the
# services as TESSERA_REDIS_PASSWORD and to redis-cli as REDISCLI_AUTH. It
# reaches redis-server through a config file, never its command line.
ensure_redis_password() {
  local file=$local_dir/redis-password
  [ -s "$file" ] || (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$file")
  REDISCLI_AUTH=$(cat "$file")
  export REDISCLI_AUTH
}

start_redis() {
  mkdir -p "$local_dir/redis"
  ensure_redis_password
  if ! pid_alive "$local_dir/redis/redis.pid"; then
    (umask 077; echo "requirepass $REDISCLI_AUTH" >"$local_dir/redis/redis.conf")
    redis-server "$local_dir/redis/redis.conf" --port "$redis_port" --bind 127.0.0.1 \
      --dir "$local_dir/redis" --save "" --appendonly no --daemonize yes \
      --pidfile "$local_dir/redis/redis.pid" --logfile "$local_dir/redis/redis.log"
  fi
  wait_for "Redis" 30 redis-cli -p "$redis_port" ping
}

stop_redis() {
  ensure_redis_password
  redis-cli -p "$redis_port" shutdown nosave >/dev/null 2>&1 || true
}

# -------------------------------------------------------------------- Kafka
# start_broker, stop_broker, kill_broker: Apache Kafka in KRaft mode.
# shellcheck source=../kafka/broker.sh
. "$repo/deploy/kafka/broker.sh"

# Waits for the process of a pid file to exit (SIGKILL past the deadline).
# A service takes a second SIGTERM as "exit at once", so each gets one.
await_pidfile() {
  local name=$1 file=$local_dir/pids/$1.pid seconds=${2:-30}
  pid_alive "$file" || { rm -f "$file"; return 0; }
  if ! wait_for "$name to stop" "$seconds" bash -c "! kill -0 $(cat "$file") 2>/dev/null"; then
    say "$name did not stop in time; killing it"
    kill -KILL "$(cat "$file")" 2>/dev/null || true
  fi
  rm -f "$file"
}

stop_pidfile() {
  local file=$local_dir/pids/$1.pid
  pid_alive "$file" && kill -TERM "$(cat "$file")" 2>/dev/null
  await_pidfile "$@"
}

# ----------------------------------------------------------------- secrets
# The PII master key lives only in $local_dir (mode 600), like the demo API
# key: generated on first start, never in the repository.
new_master_key() { od -An -N32 -tx1 /dev/urandom | tr -d ' \n'; }

ensure_master_key() {
  local file=$local_dir/master-key
  if [ ! -s "$file" ]; then
    (umask 077; new_master_key >"$file"; echo 1 >"$local_dir/master-key.version")
  fi
}

# Appends ingest's key configuration to svc_env.
master_key_env() {
  svc_env+=("TESSERA_MASTER_KEY=$(cat "$local_dir/master-key")"
            "TESSERA_MASTER_KEY_VERSION=$(cat "$local_dir/master-key.version" 2>/dev/null || echo 1)")
  if [ -s "$local_dir/master-key.previous" ]; then
    svc_env+=("TESSERA_MASTER_KEY_PREVIOUS=$(cat "$local_dir/master-key.previous")")
  fi
}

# Seals rows not yet under the current key (plaintext rows of an older
# schema, or the previous key after a rotation).
reencrypt_pii() {
  service_env ingest
  env "${svc_env[@]}" "$bin_dir/tessera-ingest" --reencrypt-pii \
    >>"$local_dir/logs/ingest.log" 2>&1 || die "re-encryption failed (see $local_dir/logs/ingest.log)"
}

# A rotation as an operator does it: the new key current, the old one
# previous; restart ingest; reseal; then drop the old key and restart again.
rotate_master_key() {
  ensure_master_key
  local version
  version=$(cat "$local_dir/master-key.version" 2>/dev/null || echo 1)
  (umask 077
   cp "$local_dir/master-key" "$local_dir/master-key.previous"
   new_master_key >"$local_dir/master-key"
   echo $((version + 1)) >"$local_dir/master-key.version")
  stop_pidfile ingest
  start_service ingest
  wait_ready ingest || die "ingest is not ready after the key change"
  reencrypt_pii
  rm -f "$local_dir/master-key.previous"
  stop_pidfile ingest
  start_service ingest
  wait_ready ingest || die "ingest is not ready without the previous key"
}

# ----------------------------------------------------------------- services
# Fills the array svc_env with the environment of service $1.
service_env() {
  svc_env=(
    "TESSERA_KAFKA_BOOTSTRAP=$(kafka_bootstrap)"
    "TESSERA_PG_DSN=$(pg_dsn)"
    "TESSERA_REDIS_HOST=127.0.0.1"
    "TESSERA_REDIS_PORT=$redis_port"
    "TESSERA_REDIS_PASSWORD=$(cat "$local_dir/redis-password" 2>/dev/null)"
    "TESSERA_ADMIN_PORT=$(admin_port_of "$1")"
    "TESSERA_API_PORT=$api_port"
  )
  if [ "$1" = ingest ]; then master_key_env; fi
  if [ "$1" = notification ]; then notification_env; fi
}

# notification's own key for the addresses it keeps (mode 600, generated
# on first start like the PII master key) and, in tests, its providers.
notification_env() {
  local key=$local_dir/notification-contact-key
  if [ ! -s "$key" ]; then (umask 077; new_master_key >"$key"); fi
  svc_env+=("TESSERA_NOTIFICATION_CONTACT_KEY=$(cat "$key")")
  if [ -n "$sinks_port" ]; then
    svc_env+=("TESSERA_NOTIFICATION_SMTP_URL=smtp://127.0.0.1:$sinks_port"
              "TESSERA_NOTIFICATION_SMTP_TLS=none"
              "TESSERA_NOTIFICATION_SMS_URL=http://127.0.0.1:$((sinks_port + 1))/sms"
              "TESSERA_NOTIFICATION_PUSH_URL=http://127.0.0.1:$((sinks_port + 1))/push"
              "TESSERA_NOTIFICATION_WEBHOOK_SECRET=$(sinks_secret)"
              "TESSERA_NOTIFICATION_BACKOFF_BASE_MS=${TESSERA_NOTIFICATION_BACKOFF_BASE_MS:-200}"
              "TESSERA_NOTIFICATION_BACKOFF_MAX_MS=${TESSERA_NOTIFICATION_BACKOFF_MAX_MS:-1000}"
              "TESSERA_NOTIFICATION_BREAKER_OPEN_MS=${TESSERA_NOTIFICATION_BREAKER_OPEN_MS:-500}")
  fi
}

sinks_secret() {
  local f=$local_dir/notify-sinks-secret
  if [ ! -s "$f" ]; then (umask 077; new_master_key >"$f"); fi
  cat "$f"
}

# The notification tests' SMTP server and webhook sink: they record what
# they receive under $local_dir/sinks (see tests/support/notify_sinks.py).
start_sinks() {
  [ -n "$sinks_port" ] || return 0
  local file=$local_dir/pids/sinks.pid
  mkdir -p "$local_dir/sinks" "$local_dir/pids" "$local_dir/logs"
  pid_alive "$file" && return 0
  # Debian's python3, which has python3-aiosmtpd (install-deps.sh).
  setsid /usr/bin/python3 "$repo/tests/support/notify_sinks.py" --dir "$local_dir/sinks" \
    --smtp-port "$sinks_port" --http-port $((sinks_port + 1)) >>"$local_dir/logs/sinks.log" 2>&1 &
  echo $! >"$file"
  wait_for "the notification sinks (see $local_dir/logs/sinks.log)" 20 \
    curl -fsS "http://127.0.0.1:$((sinks_port + 1))/healthz"
}

migrate_all() {
  for svc in "${services[@]}"; do
    service_env "$svc"
    env "${svc_env[@]}" "$bin_dir/tessera-$svc" --migrate-only \
      >>"$local_dir/logs/$svc.log" 2>&1 || die "migrations of $svc failed (see $local_dir/logs/$svc.log)"
  done
}

start_service() {
  local svc=$1 file=$local_dir/pids/$1.pid
  mkdir -p "$local_dir/pids" "$local_dir/logs"
  pid_alive "$file" && return 0
  service_env "$svc"
  env "${svc_env[@]}" setsid "$bin_dir/tessera-$svc" >>"$local_dir/logs/$svc.log" 2>&1 &
  echo $! >"$file"
}

# Instance $2 (>= 2) of consumer service $1: the same consumer group, its
# own admin port, pid file, log and instance id.
start_instance() {
  local svc=$1 n=$2 name=$1-$2
  [ "$n" -ge 2 ] || die "instances start at 2 (1 is the service itself)"
  mkdir -p "$local_dir/pids" "$local_dir/logs"
  pid_alive "$local_dir/pids/$name.pid" && return 0
  service_env "$svc"
  # A second ingest serves the API on its own port too: api port + 10*(N-1).
  env "${svc_env[@]}" "TESSERA_ADMIN_PORT=$(instance_admin_port "$svc" "$n")" \
    "TESSERA_API_PORT=$((api_port + 10 * (n - 1)))" \
    "TESSERA_INSTANCE_ID=$name" setsid "$bin_dir/tessera-$svc" \
    >>"$local_dir/logs/$name.log" 2>&1 &
  echo $! >"$local_dir/pids/$name.pid"
  wait_for "$name to be ready (see $local_dir/logs/$name.log)" "$ready_timeout_s" \
    curl -fsS "http://127.0.0.1:$(instance_admin_port "$svc" "$n")/readyz"
}

# Every extra instance (pids/<svc>-<n>.pid), for stop.
extra_instances() {
  local f
  for f in "$local_dir"/pids/*-[0-9]*.pid; do
    if [ -e "$f" ]; then basename "$f" .pid; fi
  done
  return 0 # set -e: no instance is not a failure
}

wait_ready() {
  local svc=$1
  wait_for "$svc to be ready (see $local_dir/logs/$svc.log)" "$ready_timeout_s" \
    curl -fsS "http://127.0.0.1:$(admin_port_of "$svc")/readyz"
}

# The bootstrap of an installation (docs/tenants.md): a platform key,
# printed once on stdout; only its SHA-256 is stored.
create_platform_key() {
  service_env ingest
  env "${svc_env[@]}" "$bin_dir/tessera-ingest" --create-platform-key "$1" \
    2>>"$local_dir/logs/ingest.log"
}

# A JSON field of stdin, by a dotted path (python3 is in every Debian).
json_field() { python3 -c 'import json,sys
v=json.load(sys.stdin)
for k in sys.argv[1].split("."): v=v[int(k)] if isinstance(v, list) else v[k]
print("" if v is None else v)' "$1"; }

api() { # METHOD PATH KEY [BODY]
  curl -fsS -X "$1" "http://127.0.0.1:$api_port$2" -H "Authorization: Bearer $3" \
    -H 'Content-Type: application/json' ${4:+-d "$4"}
}

# Waits until the ledger has applied the tenant's template setting $2
# (change id $3): GET /v1/config/$2 names it.
wait_setting() {
  local key=$1 kind=$2 change=$3 deadline=$((SECONDS + ready_timeout_s))
  until [ "$(api GET "/v1/config/$kind" "$key" | json_field change_id)" = "$change" ]; do
    [ $SECONDS -lt $deadline ] || die "the demo tenant's $kind was not applied in time"
    sleep 0.2
  done
}

# The demo tenant, created once through the API like any tenant: the
# platform key bootstrap, POST /v1/tenants (template education, branch
# hq), then branch-1 with the new admin key, written to api-key.
create_demo() {
  local key_file=$local_dir/api-key pk answer key
  [ -s "$key_file" ] && return 0
  pk=$(create_platform_key "local runtime") || die "no platform key (see $local_dir/logs/ingest.log)"
  (umask 077; echo "$pk" >"$local_dir/platform-key")
  answer=$(api POST /v1/tenants "$pk" '{"tenant_id":"demo","name":"Demo Chain","template":"education","branch":{"branch_id":"hq","name":"Headquarters"}}') ||
    die "the demo tenant was not created (does it exist without $key_file?)"
  key=$(echo "$answer" | json_field admin_key.key)
  api POST /v1/branches "$key" '{"branch_id":"branch-1","name":"Branch 1"}' >/dev/null
  wait_setting "$key" topup-bonus "$(echo "$answer" | json_field settings.0.change_id)"
  wait_setting "$key" points-policy "$(echo "$answer" | json_field settings.1.change_id)"
  wait_tiers "$key"
  (umask 077; echo "$key" >"$key_file")
}

# Waits until tiering has applied the template's tier ladder (GET
# /v1/config/tiers answers it), so the walk-through's first purchase
# already climbs it.
wait_tiers() {
  local key=$1 deadline=$((SECONDS + ready_timeout_s))
  until api GET /v1/config/tiers "$key" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "the demo tenant's tier ladder was not applied in time"
    sleep 0.2
  done
}

# Waits until every consumer has read everything on its topics, so the
# broker can stop without losing an event.
drain_consumers() {
  local deadline=$((SECONDS + 30))
  for svc in "${consumers[@]}"; do
    pid_alive "$local_dir/pids/$svc.pid" || continue
    until [ "$(curl -fsS "http://127.0.0.1:$(admin_port_of "$svc")/metrics" 2>/dev/null |
               awk '/^tessera_consumer_total_lag_messages /{print $2}')" = "0" ]; do
      [ $SECONDS -lt $deadline ] || { say "$svc did not drain in time"; break; }
      sleep 0.1
    done
  done
}

cmd_start() {
  mkdir -p "$local_dir/logs" "$local_dir/pids"
  start_postgres
  start_redis
  start_broker
  ensure_master_key
  migrate_all
  reencrypt_pii
  start_sinks
  start_services
  create_demo
}

stop_services() {
  stop_pidfile ingest
  drain_consumers
  # The consumers leave their groups in parallel: signal all, then wait.
  local extra
  extra=$(extra_instances)
  for svc in "${consumers[@]}" $extra; do
    pid_alive "$local_dir/pids/$svc.pid" && kill -TERM "$(cat "$local_dir/pids/$svc.pid")" 2>/dev/null
  done
  for svc in "${consumers[@]}" $extra; do await_pidfile "$svc"; done
}

start_services() {
  for svc in "${consumers[@]}"; do start_service "$svc"; done
  start_service ingest
  for svc in "${services[@]}"; do wait_ready "$svc" || die "$svc is not ready"; done
}

# Removes everything this runtime keeps, logs excepted: the data of
# PostgreSQL (also when it lives outside, see pg_data_dir), Redis and
# Kafka, the keys and pid files. Refuses while any of it runs.
cmd_destroy() {
  local f
  for f in "$local_dir"/pids/*.pid "$local_dir/redis/redis.pid"; do
    if pid_alive "$f"; then die "the runtime in $local_dir is running ($(basename "$f")): stop it first"; fi
  done
  if [ -f "$(readlink -f "$local_dir/pg")/data/postmaster.pid" ]; then
    die "PostgreSQL of $local_dir is running: stop it first"
  fi
  if [ -L "$local_dir/pg" ]; then rm -rf "$(pg_outside_dir)"; fi
  [ -d "$local_dir" ] || return 0
  find "$local_dir" -mindepth 1 -maxdepth 1 ! -name logs -exec rm -rf {} +
}

cmd_stop() {
  stop_services
  stop_pidfile sinks
  stop_broker
  stop_redis
  stop_postgres
}

case ${1:-} in
  start) cmd_start ;;
  platform-key) create_platform_key "${2:-operator}" ;;
  rotate-master-key) rotate_master_key ;;
  restart-kafka) stop_services; stop_broker; start_broker; start_services ;;
  recreate-kafka) stop_services; stop_broker; forget_broker_data; start_broker; start_services ;;
  stop-kafka) stop_broker ;;
  start-kafka) start_broker ;;
  kill-kafka) kill_broker ;;
  stop) cmd_stop ;;
  destroy) cmd_destroy ;;
  start-service) start_service "$2"; wait_ready "$2" ;;
  stop-service) stop_pidfile "$2" ;;
  kill-service) kill -KILL "$(cat "$local_dir/pids/$2.pid")"; rm -f "$local_dir/pids/$2.pid" ;;
  launch-service) start_service "$2" ;;
  start-instance) start_instance "$2" "$3" ;;
  stop-instance) stop_pidfile "$2-$3" ;;
  kill-instance) kill -KILL "$(cat "$local_dir/pids/$2-$3.pid")"; rm -f "$local_dir/pids/$2-$3.pid" ;;
  stop-postgres) stop_postgres ;;
  start-postgres) start_postgres ;;
  stop-redis) stop_redis; wait_for "Redis to stop" 10 bash -c "! redis-cli -p $redis_port ping" ;;
  start-redis) start_redis ;;
  audit) service_env ledger; env "${svc_env[@]}" TESSERA_LOG_LEVEL=warn "$bin_dir/tessera-ledger" --audit ;;
  env)
    echo "TESSERA_PG_DSN='$(pg_dsn)'"
    echo "TESSERA_REDIS_HOST=127.0.0.1"
    echo "TESSERA_REDIS_PORT=$redis_port"
    echo "TESSERA_REDIS_PASSWORD=$(cat "$local_dir/redis-password" 2>/dev/null)"
    echo "REDISCLI_AUTH=$(cat "$local_dir/redis-password" 2>/dev/null)"
    echo "TESSERA_KAFKA_BOOTSTRAP=$(kafka_bootstrap)"
    echo "TESSERA_API_URL=http://127.0.0.1:$api_port"
    echo "TESSERA_API_KEY=$(cat "$local_dir/api-key" 2>/dev/null)"
    if [ -n "$sinks_port" ]; then
      echo "TESSERA_NOTIFY_SINKS_DIR=$local_dir/sinks"
      echo "TESSERA_NOTIFICATION_WEBHOOK_SECRET=$(sinks_secret)"
    fi
    ;;
  *) echo "usage: $0 start|stop|start-service S|stop-service S|kill-service S|launch-service S|start-instance S N|stop-instance S N|kill-instance S N|restart-kafka|recreate-kafka|stop-kafka|start-kafka|kill-kafka|stop-postgres|start-postgres|stop-redis|start-redis|audit|destroy|env" >&2; exit 2 ;;
esac
