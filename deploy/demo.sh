#!/usr/bin/env bash
# deploy/demo.sh — from a fresh clone to leads moving through a funnel, in one command.
#
# Installs what is missing, builds funneld, starts Redis and a Kafka broker on loopback,
# creates the topics, runs funneld with deploy/config/demo.json, prints the live view's
# address (open it: the funnels fill up as you watch), feeds it a synthetic stream from the
# load generator for a minute or two, and prints the transitions as they arrive, then a
# summary. Everything it started is stopped at the end (pass --keep to leave the stack and
# the page running).
#
#   bash deploy/demo.sh [--keep] [--events N] [--leads N] [--rate EPS]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

keep=0 events=20000 leads=2000 rate=200
while [ $# -gt 0 ]; do
  case "$1" in
    --keep) keep=1 ;;
    --events) events=$2; shift ;;
    --leads) leads=$2; shift ;;
    --rate) rate=$2; shift ;;
    *) echo "usage: $0 [--keep] [--events N] [--leads N] [--rate EPS]" >&2; exit 2 ;;
  esac
  shift
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run_dir=deploy/.run
pid=

stop_all() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  if [ "$keep" = 0 ]; then bash deploy/services.sh down >/dev/null 2>&1 || true; fi
}
trap stop_all EXIT

say "installing what is missing"
bash deploy/install-deps.sh

say "building"
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j "$(nproc)"

say "starting Redis and Kafka on loopback"
bash deploy/services.sh up >/dev/null
# shellcheck disable=SC1091
. "$run_dir/env"
echo "FUNNELD_BROKERS=$FUNNELD_BROKERS FUNNELD_REDIS_URL=$FUNNELD_REDIS_URL"
bash deploy/kafka.sh topics touchpoints:6 funnel.transitions:6 funnel.retargeting:6 \
  funnel.bottlenecks:1 funnel.snapshots:1 funnel.dlq:1

# The synthetic stream's event time runs far ahead of the wall clock (days of journeys in
# seconds), so the demo runs the event clock (SPEC §5): retargeting timers fire as the
# stream's own time passes them, as a back-fill would.
say "starting funneld with deploy/config/demo.json (clock: event)"
/usr/bin/python3 -c 'import json,sys; c=json.load(open(sys.argv[1])); c["clock"]="event"; json.dump(c,open(sys.argv[2],"w"),indent=1)' \
  deploy/config/demo.json "$run_dir/demo-event.json"
build/funneld --check-config -c "$run_dir/demo-event.json"
build/funneld -c "$run_dir/demo-event.json" >"$run_dir/funneld.log" 2>&1 &
pid=$!
echo "funneld pid $pid, logs in $run_dir/funneld.log"
live=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["http"]["listen"])' \
  deploy/config/demo.json)
say "live view: http://$live/  (open it now: leads move as the stream comes in)"
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ] && command -v xdg-open >/dev/null 2>&1; then
  xdg-open "http://$live/" >/dev/null 2>&1 || true
fi

say "producing $events touchpoints for $leads leads at $rate/s (1% duplicates, 0.5% malformed)"
build/funneld-loadgen -t touchpoints -n "$events" -l "$leads" -r "$rate" --start-ts now \
  --dup-rate 0.01 --bad-rate 0.005 -q &
gen=$!

say "transitions as they happen (first 40)"
/usr/bin/python3 - "$FUNNELD_BROKERS" <<'PY'
import json, sys
from confluent_kafka import Consumer
c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "demo-tail",
              "auto.offset.reset": "earliest", "enable.auto.commit": False})
c.subscribe(["funnel.transitions"])
shown = 0
while shown < 40:
    m = c.poll(15)
    if m is None:
        break
    if m.error():
        continue
    e = json.loads(m.value())
    arrow = f"{e.get('from') or '(new)':>12} -> {e.get('to') or 'LOST':<12}"
    print(f"{e['at']}  {e['funnel']:<5} {e['lead_id']:<9} {arrow} {e['type']:<14}"
          f" via {e.get('channel','')}/{e.get('cause_event_id','')}")
    shown += 1
c.close()
PY
say "the stream runs for about $((events / rate)) s in all: watch it at http://$live/"
wait "$gen"
sleep 3

say "summary"
/usr/bin/python3 - "$FUNNELD_BROKERS" <<'PY'
import collections, json, sys
from confluent_kafka import Consumer
def drain(topic):
    c = Consumer({"bootstrap.servers": sys.argv[1], "group.id": "demo-sum-" + topic,
                  "auto.offset.reset": "earliest", "enable.auto.commit": False})
    c.subscribe([topic]); out = []; idle = 0
    while idle < 3:
        m = c.poll(1)
        if m is None: idle += 1; continue
        if not m.error(): out.append(m)
    c.close(); return out
tr = [json.loads(m.value()) for m in drain("funnel.transitions")]
dlq = drain("funnel.dlq")
by = collections.Counter((e["funnel"], e["type"], e.get("to") or "-") for e in tr)
for (f, t, to), n in sorted(by.items()):
    print(f"  {f:<6} {t:<14} to {to:<12} {n}")
reasons = collections.Counter(dict(m.headers() or []).get("funneld.error", b"?").decode() for m in dlq)
print(f"  transitions: {len(tr)}   dead letters: {len(dlq)} {dict(reasons)}")
rt = [json.loads(m.value()) for m in drain("funnel.retargeting")]
for (f, r), n in sorted(collections.Counter((e["funnel"], e["reason"]) for e in rt).items()):
    print(f"  {f:<6} retarget {r:<16} {n}")
print(f"  retargeting triggers: {len(rt)}")
for e in rt[:3]:
    lt = e.get("last_touch") or {}
    print(f"    {e['due_at']} {e['funnel']}/{e['lead_id']} {e['reason']} in {e.get('stage')}"
          f" idle {e['idle_ms'] / 3600000:.1f} h, last touch {lt.get('channel')}/{lt.get('type')}")
won = [e["lead_id"] for e in tr if e["funnel"] == "b2b" and e["type"] == "converted"][:3]
for lead in won:
    steps = [e for e in tr if e["lead_id"] == lead and e["funnel"] == "b2b"]
    path = " -> ".join([steps[0]["from"] or "(new)"] + [e["to"] for e in steps])
    last = steps[-1]
    print(f"\n  journey of {lead} in b2b: {path}")
    print(f"    cycle {last['cycle_ms'] / 3600000:.1f} h, {last['touches']} touches, value {last['value']},"
          f" first touch {last['attribution']['first']['channel']}/{last['attribution']['first']['campaign']}")
PY
echo
if [ "$keep" = 1 ]; then
  echo "stack left running (--keep), the live view at http://$live/: funneld pid $pid;"
  echo "stop with: kill $pid; bash deploy/services.sh down"
  pid=
fi
