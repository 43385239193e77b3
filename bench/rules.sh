#!/usr/bin/env bash
# Scenario 9 of `make bench` (bench/run.sh), or alone against a started
# runtime: rule evaluations per second in the campaign for a tenant with
# the largest rule set the API takes, while the ledger is under a purchase
# load, next to the same evaluations with one rule in the same run.
#
# One evaluation is one activity applied by the campaign: its type's
# points, its limits per day/week/month, the monthly cap, the check-in
# streak, the welcome tasks and every promotion in force (rules_activities.c
# and promotions.c), committed with its grant. The large set ("many"):
# 8 activity types each with points and 3 limits (32), 64 promotions
# (PROMOTIONS_MAX) of 32 categories and 32 branches each, a streak, a
# monthly cap, a birthday gift, 3 welcome tasks, and an earning rule with 32
# excluded categories (33): 135 rule clauses, the most the API accepts (the
# issue's "a tenant with 100 active rules"). The baseline ("one"): comment
# +5 and nothing else.
#
# Each run: the campaign is stopped, BENCH_RULES_ACTIVITIES activities
# are accepted by ingest (tessera-loadgen --target activity), then the
# campaign is started while tessera-loadgen --target purchase offers
# BENCH_RULES_LEDGER_RATE purchases/s (the ledger's load; the campaign
# earns on them too), and the rate is taken between 10% and 90% of the
# backlog applied, from the campaign's tessera_campaign_activities_total.
#
# Needs: API_PORT, KEY (the demo admin key), MEMBERS_FILE, ADMIN_PORT_BASE,
# RUNTIME (deploy/local/runtime.sh with the runtime's environment), BIN.
# Prints one JSON object.
set -euo pipefail

activities=${BENCH_RULES_ACTIVITIES:-20000}
promotions=64 # PROMOTIONS_MAX (libs/events/engage_types.h)
clauses=$((8 * 4 + promotions + 1 + 1 + 1 + 3 + 33))
ledger_rate=${BENCH_RULES_LEDGER_RATE:-300}
campaign_admin=$((ADMIN_PORT_BASE + 3))
say() { echo "bench rules: $*" >&2; }
now() { date +%s.%N; }
applied() { { curl -fsS "http://127.0.0.1:$campaign_admin/metrics" 2>/dev/null || true; } |
  awk '$1 == "tessera_campaign_activities_total" {v = $2} END {printf "%d\n", v}'; }

put() { # path body
  curl -fsS -X PUT "http://127.0.0.1:$API_PORT$1" -H "Authorization: Bearer $KEY" \
    -H 'Content-Type: application/json' -H 'Prefer: wait=30' -d "$2" >/dev/null
}

list32() { # prefix: 32 quoted words
  local out="" i
  for i in $(seq 1 32); do out+="\"$1$i\","; done
  echo "${out%,}"
}

many_rules() {
  local cats branches promos="" i t acts=""
  cats=$(list32 cat-)
  branches="\"hq\",$(list32 branch- | cut -d, -f2-)"
  for i in $(seq 1 "$promotions"); do
    promos+="{\"name\":\"promo $i\",\"multiplier_bp\":$((10000 + i * 1000)),\"day_of_month\":0,"
    promos+="\"categories\":[$cats],\"branches\":[$branches],\"applies_to\":[\"activities\",\"purchases\"]},"
  done
  for t in comment share course_completed exam_passed profile_completed check_in login trial_booked; do
    acts+="\"$t\":{\"points\":5,\"per_day\":100000,\"per_week\":100000,\"per_month\":100000},"
  done
  echo "{\"activities\":{${acts%,}},\"streak\":{\"days\":7,\"points\":50},\"monthly_cap\":1000000000,"\
"\"promotions\":[${promos%,}],\"birthday\":{\"points\":188},"\
"\"welcome\":{\"days\":30,\"tasks\":{\"profile_completed\":50,\"check_in\":20,\"course_completed\":30}}}"
}

one_rule='{"activities":{"comment":{"points":5},"share":{"points":0},"course_completed":{"points":0},"exam_passed":{"points":0},"profile_completed":{"points":0},"check_in":{"points":0},"login":{"points":0},"trial_booked":{"points":0}},"streak":{"days":7,"points":0},"monthly_cap":0,"promotions":[],"birthday":{"points":0},"welcome":{"days":30,"tasks":{}}}'

# run NAME ACTIVITY_RULES EARNING_RULES: prints evaluations/s.
run() {
  put /v1/config/activity-rules "$2"
  put /v1/config/earning-rules "$3"
  "$RUNTIME" stop-service campaign >/dev/null
  say "$1: $activities activities accepted while the campaign is stopped"
  "$BIN/tessera-loadgen" --target activity --activity-types "$4" --port "$API_PORT" --key "$KEY" \
    --members "$MEMBERS_FILE" --connections 64 --rate 0 --count "$activities" --duration 600 >/dev/null
  "$BIN/tessera-loadgen" --target purchase --port "$API_PORT" --key "$KEY" \
    --members "$MEMBERS_FILE" --connections 32 --rate "$ledger_rate" --duration 600 >/dev/null &
  local load=$! start end t10="" t90="" n base
  "$RUNTIME" launch-service campaign >/dev/null # not start-service: ready means caught up
  base=$(applied)
  start=$(now)
  while :; do
    n=$(( $(applied) - base ))
    [ -n "$t10" ] || { [ "$n" -ge $((activities / 10)) ] && t10=$(now); }
    [ "$n" -ge $((activities * 9 / 10)) ] && { t90=$(now); break; }
    [ "$(echo "$(now) - $start > 300" | bc)" = 0 ] || { say "$1: timed out at $n"; break; }
    sleep 0.05
  done
  kill "$load" 2>/dev/null || true
  wait "$load" 2>/dev/null || true
  if [ -z "$t90" ] || [ -z "$t10" ]; then echo 0; return; fi
  echo "scale=1; ($activities * 8 / 10) / ($t90 - $t10)" | bc -l
}

earning_many="{\"purchase\":{\"unit_amount\":100,\"points_per_unit\":1,\"excluded_categories\":[$(list32 excl-)]}}"
earning_one='{"purchase":{"unit_amount":100,"points_per_unit":1}}'
one=$(run one "$one_rule" "$earning_one" comment)
many=$(run many "$(many_rules)" "$earning_many" comment,share,check_in,course_completed,exam_passed)
load=$(uptime | sed 's/.*load average: //')
echo "{\"activities\":$activities,\"ledger_rate\":$ledger_rate,\"rule_clauses\":$clauses,\"evaluations_per_s_many\":$many,\"evaluations_per_s_one\":$one,\"load_average\":\"$load\"}"
