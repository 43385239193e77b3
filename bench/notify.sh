#!/usr/bin/env bash
# The notification scenario of `make bench` (bench/run.sh runs it on its
# private runtime; it also runs alone against any started runtime whose
# notification service sends SMS to http://127.0.0.1:$NOTIFY_SINK_PORT/sms):
# COUNT receipts (inbox + SMS, typed variables, rendered with the built-in
# template) produced straight to notify-requests, then the time until every
# SMS is delivered to a bare local HTTP server (tessera-bench-bare: the
# provider costs nothing), and the service's resident memory sampled over
# the run. Prints one JSON object: the rate, when the last request was
# decided (decided_s: the consumer's stage) against when the last SMS went
# (seconds: the delivery worker's), and the service's memory, sampled each
# second and its peak since start (VmHWM: rss_peak_kb).
#   NOTIFY_COUNT (100000), NOTIFY_MEMBERS (10000), NOTIFY_SINK_PORT
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bin=$repo/build/bin
count=${NOTIFY_COUNT:-100000}
members=${NOTIFY_MEMBERS:-10000}
sink_port=${NOTIFY_SINK_PORT:?the port the notification service sends SMS to}
timeout_s=${NOTIFY_TIMEOUT_S:-900}
local_dir=${TESSERA_LOCAL_DIR:?}
bootstrap=$(cat "$local_dir/kafka.bootstrap")
pg="host=127.0.0.1 port=${TESSERA_LOCAL_PG_PORT:?} user=tessera dbname=tessera"
tenant=bench-notify-$(date +%s)
pid=$(cat "$local_dir/pids/notification.pid")
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
# While it runs, progress is read from the service's own counter of SMS
# delivered (committed with the rows: cheap); a count over the table
# grew with every run and, at 100 000 messages, took PostgreSQL most of
# a core (0.7 s a sample). The figure reported is counted in the table
# once at the end.
admin=http://127.0.0.1:$((${TESSERA_LOCAL_ADMIN_PORT_BASE:?} + 4))/metrics
metric() { # name
  curl -fsS "$admin" | awk -v m="$1" '$1 == m {n = $2} END {printf "%d", n}'
}
sent_metric() { metric 'tessera_notification_sends_total{channel="sms",outcome="delivered"}'; }
decided_metric() { metric tessera_notification_requests_total; }
delivered() {
  psql -qtA "$pg" -c "SELECT count(*) FROM notification.deliveries WHERE tenant_id = '$tenant'
    AND channel = 'sms' AND status = 'delivered'"
}
sent_before=$(sent_metric)
decided_before=$(decided_metric)
decided_s=0

"$bin/tessera-bench-bare" "$sink_port" >/dev/null 2>&1 &
sink=$!
trap 'kill $sink 2>/dev/null || true' EXIT
rss_start=$(rss_kb)
t0=$(date +%s.%N)
"$bin/tessera-bench-notify" "$bootstrap" "$tenant" "$members" "$count" >/dev/null 2>&1
samples=()
done_n=0
while :; do
  done_n=$(($(sent_metric) - sent_before))
  samples+=("$(rss_kb)")
  if [ "$decided_s" = 0 ] && [ $(($(decided_metric) - decided_before)) -ge "$count" ]; then
    decided_s=$(echo "$(date +%s.%N) - $t0" | bc -l)
  fi
  [ "$done_n" -ge "$count" ] && break
  [ "$(echo "$(date +%s.%N) - $t0 < $timeout_s" | bc -l)" = 1 ] || break
  sleep 1
done
t1=$(date +%s.%N)
seconds=$(echo "$t1 - $t0" | bc -l)
[ "$decided_s" != 0 ] || decided_s=$seconds # decided within the last sample
done_n=$(delivered)
# memory flat: the largest sample of the second half against the first half's
half=$((${#samples[@]} / 2))
max_first=0 max_second=0
for i in "${!samples[@]}"; do
  if [ "$i" -lt "$half" ]; then
    [ "${samples[$i]}" -gt "$max_first" ] && max_first=${samples[$i]}
  else
    [ "${samples[$i]}" -gt "$max_second" ] && max_second=${samples[$i]}
  fi
done
printf '{"messages":%d,"delivered":%d,"seconds":%.2f,"decided_s":%.2f,"rate":%.1f,"rss_start_kb":%d,"rss_max_first_half_kb":%d,"rss_max_second_half_kb":%d,"rss_end_kb":%d,"rss_peak_kb":%d}\n' \
  "$count" "$done_n" "$seconds" "$decided_s" "$(echo "$done_n / $seconds" | bc -l)" "$rss_start" \
  "$max_first" "$max_second" "$(rss_kb)" "$(hwm_kb)"
