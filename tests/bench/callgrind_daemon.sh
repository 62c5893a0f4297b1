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
#
# CG_PERF_STAT=1: instead of callgrind, `perf stat --per-thread` of the running funneld (CPU
# time and system calls by thread: the loop's thread, and librdkafka's, whose names say
# which), attached once its threads exist. CG_EVENTS / CG_LEADS size the backlog (default
# 20000 / 2000); BENCH_KAFKA_PROPS="k=v,..." goes to kafka.properties (bench_tools.py config).
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
N=${CG_EVENTS:-20000}
# within max_future (1 d) of the clock, as run.sh spreads its streams: 18 h at most
STEP=$((64800000 / N)); ((STEP > 1000)) && STEP=1000; ((STEP < 1)) && STEP=1
"$BUILD/funneld-loadgen" -b "$FUNNELD_BROKERS" -t "$T.in" -n "$N" \
    -l "${CG_LEADS:-2000}" --seed 7 --start-ts now --step-ms "$STEP" --dup-rate 0.01 \
    --bad-rate 0.001 2>/dev/null
if [[ "${CG_PERF_STAT:-0}" == 1 ]]; then
    "$BUILD/funneld" -c "$FUNNELD_RUN_DIR/cg.json" 2>"$FUNNELD_RUN_DIR/funneld.log" &
    P=$!
    # librdkafka starts its threads with each client: attach once both clients have theirs
    for _ in $(seq 200); do
        (($(ls "/proc/$P/task" | wc -l) >= 8)) && break
        sleep 0.05
    done
    perf stat --per-thread -p "$P" -o "$OUTF" -e task-clock,raw_syscalls:sys_enter \
        -e syscalls:sys_enter_epoll_ctl,syscalls:sys_enter_epoll_wait,syscalls:sys_enter_poll \
        -e syscalls:sys_enter_read,syscalls:sys_enter_write,syscalls:sys_enter_futex &
    PS=$!
else
    valgrind --tool=callgrind --callgrind-out-file="$OUTF" \
        "$BUILD/funneld" -c "$FUNNELD_RUN_DIR/cg.json" 2>"$FUNNELD_RUN_DIR/funneld.log" &
    P=$!
    PS=""
fi
$PY drained "$FUNNELD_BROKERS" "$T" "$T.in" 900 >/dev/null
if [[ -n "$PS" ]]; then
    kill -INT "$PS"
    wait "$PS" || true
fi
kill -TERM "$P"
wait "$P" || true
P=""
echo "callgrind_daemon.sh: $OUTF"
