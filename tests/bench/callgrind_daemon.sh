#!/usr/bin/env bash
# callgrind_daemon.sh — funneld's instructions per event, counted by valgrind's callgrind while
# it drains a 20,000-event backlog (2,000 leads, the bench's duplicates and malformed share)
# from a private Redis and Kafka (deploy/services.sh, FUNNELD_RUN_DIR=$BUILD/cgrun):
#
#   bash tests/bench/callgrind_daemon.sh OUT [BUILD]     (BUILD: a build dir, default build/)
#   callgrind_annotate --inclusive=yes OUT | grep -E 'fn_step_build|flush_conn|...'
#
# Instruction counts do not move with the machine's load, as times do: compare two builds
# function by function (the totals also hold the timer ticks, which come per second, and a
# run under callgrind lasts as long as it lasts). Needs valgrind (Debian's package).
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
OUTF=$(realpath -m "$1")
BUILD=$(realpath "${2:-$REPO/build}")
export FUNNELD_RUN_DIR=$BUILD/cgrun
mkdir -p "$FUNNELD_RUN_DIR"
eval "$(bash deploy/services.sh up 2>"$FUNNELD_RUN_DIR/services.log")"
P=""
# a failed step (a topic, the pre-fill, a drain that times out) leaves nothing running
cleanup() {
    [[ -n "$P" ]] && kill -TERM "$P" 2>/dev/null && wait "$P" 2>/dev/null
    bash deploy/services.sh down >/dev/null 2>&1 || true
}
trap cleanup EXIT
T=cg$RANDOM
PY="/usr/bin/python3 tests/bench/bench_tools.py"
$PY topics "$FUNNELD_BROKERS" "$T.in:6:logappend" "$T.transitions:6:logappend" "$T.dlq:1" \
    "$T.retargeting:1" "$T.bottlenecks:1" "$T.snapshots:1" >/dev/null
# the bench's config: demo.json's funnels, marketing analytics off (bench_tools.py config)
$PY config deploy/config/demo.json "$FUNNELD_RUN_DIR/cg.json" "$FUNNELD_BROKERS" \
    "$FUNNELD_REDIS_URL" "$T" "$T" "$T.in" "$T"
"$BUILD/funneld-loadgen" -b "$FUNNELD_BROKERS" -t "$T.in" -n 20000 -l 2000 --seed 7 \
    --start-ts now --step-ms 1000 --dup-rate 0.01 --bad-rate 0.001 2>/dev/null
valgrind --tool=callgrind --callgrind-out-file="$OUTF" \
    "$BUILD/funneld" -c "$FUNNELD_RUN_DIR/cg.json" 2>"$FUNNELD_RUN_DIR/funneld.log" &
P=$!
$PY drained "$FUNNELD_BROKERS" "$T" "$T.in" 900 >/dev/null
kill -TERM "$P"
wait "$P" || true
P=""
echo "callgrind_daemon.sh: $OUTF"
