# The local Apache Kafka broker: one JVM in KRaft mode, broker and
# controller in one process, its data and cluster id under
# $local_dir/kafka so a restart keeps every topic, message and offset.
# Sourced by deploy/local/runtime.sh (uses its repo, local_dir, say, die,
# wait_for, pid_alive, await_pidfile); see docs/kafka.md.
#
# Ports: the client listener ($kafka_port), the controller ($kafka_port + 1)
# and, when TESSERA_LOCAL_KAFKA_SASL_PORT is set, a SASL_PLAINTEXT listener
# taking SCRAM-SHA-256/512 and PLAIN for the user $kafka_sasl_user (the
# SCRAM credentials are written when the storage is formatted: turning the
# listener on for existing data gives PLAIN only).

kafka_port=${TESSERA_LOCAL_KAFKA_PORT:-59092}
kafka_controller_port=$((kafka_port + 1))
kafka_sasl_port=${TESSERA_LOCAL_KAFKA_SASL_PORT:-}
kafka_sasl_user=tessera
kafka_heap=${TESSERA_LOCAL_KAFKA_HEAP:-512m}
kafka_dir=$local_dir/kafka
kafka_start_timeout_s=${TESSERA_LOCAL_KAFKA_START_TIMEOUT_S:-90}
kafka_stop_timeout_s=60

kafka_bootstrap() { echo "127.0.0.1:$kafka_port"; }

# Fills the array kafka_cmd with the java command line (a main class follows).
kafka_java_cmd() {
  local libs
  libs=$("$repo/deploy/kafka/fetch.sh" --dir)/libs
  "$repo/deploy/kafka/fetch.sh" --check || die "no verified Kafka jars in $libs: run 'make deps'"
  kafka_cmd=(java -Xms128m "-Xmx$kafka_heap" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -Djava.awt.headless=true "-Dlog4j.configuration=file:$kafka_dir/log4j.properties"
    -cp "$libs/*")
}

# The SCRAM/PLAIN password of the local SASL listener: made once, kept
# (mode 600) beside the data like the API key.
kafka_sasl_password() {
  local file=$kafka_dir/sasl-password
  [ -s "$file" ] || (umask 077; od -An -N12 -tx1 /dev/urandom | tr -d ' \n' >"$file")
  cat "$file"
}

# Writes server.properties for the current ports (they may change between
# runs; the data does not depend on them).
kafka_write_config() {
  local listeners="PLAINTEXT://127.0.0.1:$kafka_port,CONTROLLER://127.0.0.1:$kafka_controller_port"
  local advertised="PLAINTEXT://127.0.0.1:$kafka_port"
  local map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [ -n "$kafka_sasl_port" ]; then
    listeners+=",SASL_PLAINTEXT://127.0.0.1:$kafka_sasl_port"
    advertised+=",SASL_PLAINTEXT://127.0.0.1:$kafka_sasl_port"
    map+=",SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi
  # Mode 600: with the SASL listener it holds the PLAIN password.
  install -m 600 /dev/null "$kafka_dir/server.properties"
  cat >"$kafka_dir/server.properties" <<PROPS
# Written by deploy/kafka/broker.sh at every start: edit that file instead.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$kafka_controller_port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=$map
log.dirs=$kafka_dir/data
# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=12
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=12
default.replication.factor=1
min.insync.replicas=1
# Topics are made by tessera-topics only.
auto.create.topics.enable=false
# A consumer group gets its partitions as soon as its first member joins.
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
log.retention.hours=168
log.segment.bytes=67108864
PROPS
  if [ -n "$kafka_sasl_port" ]; then
    cat >>"$kafka_dir/server.properties" <<PROPS
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512,PLAIN
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$kafka_sasl_user="$(kafka_sasl_password)";
PROPS
  fi
  cat >"$kafka_dir/log4j.properties" <<PROPS
# The broker logs to one file, warnings and up (plus the start line).
log4j.rootLogger=WARN, file
log4j.logger.kafka.server.KafkaRaftServer=INFO
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File=$local_dir/logs/kafka.log
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
PROPS
}

# Formats the data directory once, with a cluster id kept in
# $kafka_dir/cluster-id (and the SCRAM user when the SASL listener is on).
kafka_format() {
  [ -f "$kafka_dir/data/meta.properties" ] && return 0
  [ -s "$kafka_dir/cluster-id" ] ||
    "${kafka_cmd[@]}" kafka.tools.StorageTool random-uuid >"$kafka_dir/cluster-id" 2>>"$local_dir/logs/kafka.out"
  local scram=()
  if [ -n "$kafka_sasl_port" ]; then
    local pw
    pw=$(kafka_sasl_password)
    scram=(--add-scram "SCRAM-SHA-256=[name=$kafka_sasl_user,password=$pw]"
           --add-scram "SCRAM-SHA-512=[name=$kafka_sasl_user,password=$pw]")
  fi
  say "formatting Kafka storage in $kafka_dir/data (cluster id $(cat "$kafka_dir/cluster-id"))"
  "${kafka_cmd[@]}" kafka.tools.StorageTool format --ignore-formatted -t "$(cat "$kafka_dir/cluster-id")" \
    -c "$kafka_dir/server.properties" "${scram[@]}" >>"$local_dir/logs/kafka.out" 2>&1 ||
    die "formatting Kafka storage failed (see $local_dir/logs/kafka.out)"
}

# Starts the broker (when not running), waits until it answers, then makes
# or grows the topics with tessera-topics.
start_broker() {
  mkdir -p "$kafka_dir" "$local_dir/pids" "$local_dir/logs"
  if ! pid_alive "$local_dir/pids/broker.pid"; then
    rm -f "$local_dir/kafka.bootstrap"
    kafka_java_cmd
    kafka_write_config
    kafka_format
    # Its own session, like the services: Ctrl-C on `make run` reaches
    # run.sh only, which stops everything in order.
    setsid "${kafka_cmd[@]}" kafka.Kafka "$kafka_dir/server.properties" \
      >>"$local_dir/logs/kafka.out" 2>&1 </dev/null &
    echo $! >"$local_dir/pids/broker.pid"
  fi
  local deadline=$((SECONDS + kafka_start_timeout_s))
  until "$repo/build/bin/tessera-topics" --bootstrap "$(kafka_bootstrap)" --partitions "$partitions" \
      --replication-factor 1 --timeout-ms 2000 >>"$local_dir/logs/topics.log" 2>&1; do
    pid_alive "$local_dir/pids/broker.pid" || die "the Kafka broker exited (see $local_dir/logs/kafka.log and kafka.out)"
    [ $SECONDS -lt $deadline ] || die "the Kafka broker did not answer in ${kafka_start_timeout_s}s (see $local_dir/logs/kafka.log)"
    sleep 0.2
  done
  kafka_bootstrap >"$local_dir/kafka.bootstrap"
}

# SIGTERM, then wait: the broker flushes its logs and closes cleanly.
stop_broker() {
  local file=$local_dir/pids/broker.pid
  pid_alive "$file" && kill -TERM "$(cat "$file")" 2>/dev/null
  await_pidfile broker "$kafka_stop_timeout_s"
  rm -f "$local_dir/kafka.bootstrap"
}

# SIGKILL (crash tests): the next start recovers from the same data.
kill_broker() {
  local file=$local_dir/pids/broker.pid
  if pid_alive "$file"; then
    local pid
    pid=$(cat "$file")
    kill -KILL "$pid"
    wait_for "the broker to die" 30 bash -c "! kill -0 $pid 2>/dev/null"
  fi
  rm -f "$file" "$local_dir/kafka.bootstrap"
}

# Throws the broker's data and cluster id away (it must be stopped): the
# next start is a new, empty cluster (the "lost the Kafka cluster" test).
forget_broker_data() {
  pid_alive "$local_dir/pids/broker.pid" && die "stop the broker before forgetting its data"
  rm -rf "$kafka_dir/data" "$kafka_dir/cluster-id"
}
