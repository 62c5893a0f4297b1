#!/usr/bin/env bash
# tests/bench/run.sh — the issue 7 benchmark in one command: it owns building the bench
# binaries, a private Redis + Kafka stack, the pre-filled input, the three measurements
# (funneld end to end, the Redis ceiling, the Kafka ceiling), the fixed-rate latency run
# and the summary table. It changes nothing outside its build directory.
#
#   bash tests/bench/run.sh [--help]
#
# Environment (defaults in brackets):
#   BENCH_EVENTS [1000000]      input messages (duplicates and malformed ones included)
#   BENCH_LEADS [EVENTS/10]     distinct leads
#   BENCH_SEED [7]              loadgen seed (the fixed-rate run uses SEED+1)
#   BENCH_DUP_RATE [0.01]       share of exact duplicates
#   BENCH_BAD_RATE [0.001]      share of malformed messages
#   BENCH_IDENTIFY_RATE [0]     share of leads that begin anonymous and are identified (an
#                               identify event each: issue 20's merge cost)
#   BENCH_MARKETING [off]       on: keep deploy/config/demo.json's marketing analytics
#                               (multi-touch attribution, entry cohorts: issue 21's cost);
#                               full adds markov and breakdowns by channel and campaign;
#                               off takes them out of the bench's config
#   BENCH_FAST_PATH [on]        off: redis.fast_path false, every event by the whole Lua
#                               step (the Redis ceiling below always measures the step)
#   BENCH_MODE [all]            all | max (backlog + ceilings only) | rate (fixed rate only)
#   BENCH_RATE [half of max]    fixed-rate mode input rate, events/s
#   BENCH_RATE_SECONDS [90]     fixed-rate mode duration
#   BENCH_WARMUP_SECONDS [30]   fixed-rate latency: outputs of the
#                               first seconds' inputs are shown apart (a new output topic
#                               delays the first outputs; a fresh broker's JVM is cold)
#   BENCH_REDIS_WINDOW [1000]   Redis ceiling: steps in flight
#   BENCH_KAFKA_PROPS []         librdkafka properties for funneld's kafka.properties,
#                               "key=value,key=value" (batching experiments)
#   BENCH_BUILD_TYPE [RelWithDebInfo], BENCH_BUILD_DIR [build-bench]
#   BENCH_PERF [0]              1: perf record (DWARF call graphs) funneld during the backlog
#                               run; this slows funneld, so take figures from a run without
#                               it. The profile goes to OUT/perf.txt
#   BENCH_REDIS_CLUSTER [0]     1: after the backlog run on one redis-server, the same backlog
#                               again on a Redis Cluster of three masters with one replica
#                               each (deploy/redis-cluster.sh), reporting events/s and each
#                               master's Redis CPU per event (backlog modes only)
#   BENCH_KEEP [0]              1: keep the services running and the events file
#   BENCH_PENDING_TIMERS [0]    > 0 (issue 3 item 8: pending timers must not slow the event
#                               path): that many pending retargeting timers, due in 2100 (never
#                               during the run), laid out as the daemon lays them out
#                               (tests/bench/bench_fill_timers.c), are written into the
#                               keyspace of each measurement before it runs; the Redis ceiling
#                               then runs before funneld, once without and once with them, and
#                               the summary adds both, the fire.lua calls of the backlog run
#                               and Redis memory. 0: as before
#
# The stack is private (FUNNELD_RUN_DIR=$BUILD/run, its own ports), so a concurrent test run
# using deploy/.run is neither disturbed nor counted, and it is stopped on exit.
#
# Timestamps: every bench topic uses LogAppendTime, so latency in fixed-rate mode is the
# output's broker append time minus its cause's broker append time (input available in
# Kafka → output available in Kafka). In backlog mode latency means nothing and is not shown.
set -euo pipefail

# Settings are environment variables; -h/--help prints the header above instead of running
# (other arguments are ignored, as they always were).
case "${1:-}" in
    -h | --help) sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0"; exit 0 ;;
esac

REPO=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$REPO/tests/bench"
PY=/usr/bin/python3
TOOLS=("$PY" "$HERE/bench_tools.py")

N=${BENCH_EVENTS:-1000000}
LEADS=${BENCH_LEADS:-$((N / 10))}
SEED=${BENCH_SEED:-7}
DUP=${BENCH_DUP_RATE:-0.01}
BAD=${BENCH_BAD_RATE:-0.001}
IDENTIFY=${BENCH_IDENTIFY_RATE:-0}
MODE=${BENCH_MODE:-all}
# The fixed-rate run starts slow: BENCH_MODE=rate alone has a fresh broker whose JVM is still
# compiling its hot paths, and even after the full mode's backlog run the new funneld on its
# new topics was slow for its first seconds (tests/bench/README.md has the figures). Both
# modes run 90 s and leave the first 30 s out, so they measure a steady state.
RATE_SECS=${BENCH_RATE_SECONDS:-90}
WARMUP=${BENCH_WARMUP_SECONDS:-30}
WINDOW=${BENCH_REDIS_WINDOW:-1000}
BUILD_TYPE=${BENCH_BUILD_TYPE:-RelWithDebInfo}
BUILD=${BENCH_BUILD_DIR:-$REPO/build-bench}
PERF=${BENCH_PERF:-0}
KEEP=${BENCH_KEEP:-0}
PENDING=${BENCH_PENDING_TIMERS:-0}
CLUSTER=${BENCH_REDIS_CLUSTER:-0}
case "$CLUSTER" in 0 | 1) ;; *) echo "run.sh: BENCH_REDIS_CLUSTER must be 0 or 1" >&2; exit 2 ;; esac
case "$MODE" in all | max | rate) ;; *) echo "run.sh: BENCH_MODE must be all, max or rate" >&2; exit 2 ;; esac
((N >= 1000)) || { echo "run.sh: BENCH_EVENTS must be at least 1000" >&2; exit 2; }
[[ "$PENDING" =~ ^[0-9]+$ ]] || { echo "run.sh: BENCH_PENDING_TIMERS must be a whole number" >&2; exit 2; }
PENDING=$((10#$PENDING))
FAR_MS=4102444800000 # 2100-01-01T00:00Z: bench_fill_timers' default due time

export FUNNELD_RUN_DIR=$BUILD/run
RUN_ID=bench-$(date +%Y%m%d-%H%M%S)-$$
OUT=$BUILD/out/$RUN_ID
RES=$OUT/results.env
TCK=$(getconf CLK_TCK)
T_BEGIN=$(date +%s)

log() { printf '[%4ds] %s\n' "$(($(date +%s) - T_BEGIN))" "$*" >&2; }
die() { printf 'run.sh: error: %s\n' "$*" >&2; exit 1; }
res() { printf '%s=%s\n' "$1" "$2" >>"$RES"; }
get() { sed -n "s/^$1=//p" "$RES" | tail -n 1; }
calc() { awk "BEGIN { printf \"%.3f\", $* }"; }
cpu_s() { awk -v t="$TCK" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat"; }
# CPU seconds the whole machine spent busy (all cores; idle and iowait excluded)
machine_busy_s() { awk -v t="$TCK" '/^cpu / { printf "%.3f", ($2 + $3 + $4 + $7 + $8 + $9) / t }' /proc/stat; }
# Time in µs that some runnable task waited for a CPU (Linux PSI; the caller checks for it).
cpu_wait_us() { sed -n 's/^some .*total=\([0-9]*\)$/\1/p' /proc/pressure/cpu 2>/dev/null; }
rss_mb() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
# "RESULT name k=v k=v ..." → results lines "<prefix>_k=v"
result_lines() { sed -n 's/^RESULT [a-z_]* //p' "$2" | tr ' ' '\n' | sed "s/^/$1_/" >>"$RES"; }

FPID="" PERFPID="" LGPID="" HICPID=""
cleanup() {
    local rc=$?
    set +e
    for p in $PERFPID $LGPID $HICPID $FPID; do
        kill -TERM "$p" 2>/dev/null && wait "$p" 2>/dev/null
    done
    if [[ "$KEEP" != 1 ]]; then
        [[ "$CLUSTER" == 1 ]] && FUNNELD_RUN_DIR=$FUNNELD_RUN_DIR/rc \
            bash "$REPO/deploy/redis-cluster.sh" stop >/dev/null 2>&1
        bash "$REPO/deploy/services.sh" down >/dev/null 2>&1 || true
        rm -f "$OUT/events.jsonl"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$OUT"
: >"$RES"
log "run $RUN_ID: $N events, $LEADS leads, mode $MODE; output in $OUT"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
res host "$(nproc) cores, load $LOAD at start"
res date "$(date -u +%Y-%m-%dT%H:%MZ)"
res build_type "$BUILD_TYPE"
res events "$N"
res leads "$LEADS"
res seed "$SEED"
res dup_rate "$DUP"
res bad_rate "$BAD"
res kafka_props "${BENCH_KAFKA_PROPS:-}"
((PENDING == 0)) || res pending_timers "$PENDING"
if awk -v l="${LOAD%% *}" 'BEGIN { exit !(l > 1.5) }'; then
    log "WARNING: load average $LOAD is above 1.5: other work will skew the figures"
fi

# ------------------------------------------------------------------ build and services
# A fresh clone must bench with this one command, as it tests with tests/run.sh.
bash "$REPO/deploy/install-deps.sh" >"$OUT/install.log" 2>&1 ||
    { cat "$OUT/install.log" >&2; die "installing packages failed"; }
log "building ($BUILD_TYPE) in $BUILD"
cmake -S "$REPO" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE="$BUILD_TYPE" >"$OUT/cmake.log" 2>&1 ||
    { cat "$OUT/cmake.log" >&2; die "cmake configure failed"; }
TARGETS=(funneld funneld-loadgen bench_redis_step bench_kafka_ceiling bench_hiccup)
((PENDING == 0)) || TARGETS+=(bench_fill_timers)
cmake --build "$BUILD" --target "${TARGETS[@]}" \
    >>"$OUT/cmake.log" 2>&1 || { tail -n 40 "$OUT/cmake.log" >&2; die "build failed"; }

log "starting a private Redis + Kafka (FUNNELD_RUN_DIR=$FUNNELD_RUN_DIR)"
ENV_TEXT=$(bash "$REPO/deploy/services.sh" up 2>"$OUT/services.log") ||
    { cat "$OUT/services.log" >&2; die "services did not start"; }
eval "$ENV_TEXT"
REDIS_PID=$(cat "$FUNNELD_RUN_DIR/redis-$(cat "$FUNNELD_RUN_DIR/redis.port")/redis.pid")
KAFKA_PID=$(cat "$FUNNELD_RUN_DIR/kafka.pid")
B=$FUNNELD_BROKERS

# Events must stay within max_future (1 d) of the wall clock: spread the stream over 18 h.
step_ms() { local s=$((64800000 / $1)); ((s > 1000)) && s=1000; ((s < 1)) && s=1; echo "$s"; }

make_stack() { # tag → topics and config for one funneld run
    local t="$RUN_ID-$1"
    "${TOOLS[@]}" topics "$B" "$t.in:6:logappend" "$t.transitions:6:logappend" "$t.dlq:1" \
        "$t.retargeting:1" "$t.bottlenecks:1" "$t.snapshots:1"
    "${TOOLS[@]}" config "$REPO/deploy/config/demo.json" "$OUT/$1.json" "$B" \
        "$FUNNELD_REDIS_URL" "$t" "$t" "$t.in" "$t"
}

start_funneld() { # tag
    "$BUILD/funneld" -c "$OUT/$1.json" 2>"$OUT/funneld-$1.log" &
    FPID=$!
}

fill_timers() { # results prefix, config, bench_fill_timers options → $PENDING pending timers
    "$BUILD/tests/bench/bench_fill_timers" -c "$2" -n "$PENDING" "${@:3}" >"$OUT/$1.out" \
        2>"$OUT/$1.log" || { cat "$OUT/$1.log" >&2; die "bench_fill_timers failed"; }
    result_lines "$1" "$OUT/$1.out"
    log "$(sed 's/^bench_fill_timers: //' "$OUT/$1.log")"
}

redis_ceiling() { # results prefix, key prefix
    "$BUILD/tests/bench/bench_redis_step" -c "$OUT/max.json" -i "$OUT/events.jsonl" \
        -p "$2" -w "$WINDOW" >"$OUT/$1-ceiling.out" 2>"$OUT/$1-ceiling.log" ||
        { cat "$OUT/$1-ceiling.log" >&2; die "bench_redis_step failed"; }
    result_lines "$1" "$OUT/$1-ceiling.out"
}

stop_funneld() {
    kill -TERM "$FPID"
    local rc=0
    wait "$FPID" || rc=$?
    FPID=""
    ((rc == 0)) || die "funneld exited $rc (log: $OUT/funneld-*.log)"
}

# ------------------------------------------------------------------ backlog mode
if [[ "$MODE" != rate ]]; then
    make_stack max
    T=$RUN_ID-max
    STEP=$(step_ms "$N")
    log "pre-filling $T.in with $N events (--step-ms $STEP, dup $DUP, bad $BAD)"
    t0=$(date +%s.%N)
    "$BUILD/funneld-loadgen" -t "$T.in" -n "$N" -l "$LEADS" --seed "$SEED" --start-ts now \
        --step-ms "$STEP" --dup-rate "$DUP" --bad-rate "$BAD" --identify-rate "$IDENTIFY" \
        --out "$OUT/events.jsonl" \
        2>"$OUT/loadgen-max.log" || { cat "$OUT/loadgen-max.log" >&2; die "pre-fill failed"; }
    log "pre-filled in $(calc "$(date +%s.%N) - $t0") s: $(grep -m 1 'produced' "$OUT/loadgen-max.log")"

    if ((PENDING > 0)); then
        # The Redis ceiling (below without BENCH_PENDING_TIMERS) runs here, twice, back to
        # back so that only the timers differ: with no timer, then with $PENDING pending
        # timers in the very zsets its steps arm theirs in (bench_redis_step uses topic
        # "touchpoints", 6 partitions). Each keyspace is deleted after its run, so funneld
        # sees an empty Redis plus its own $PENDING timers.
        log "Redis ceiling with 0 pending timers (window $WINDOW)"
        redis_ceiling redis0 "$RUN_ID-redis0"
        log "Redis ceiling with 0 pending timers: $(get redis0_eps) steps/s," \
            "$(get redis0_redis_cpu_us_per_event) us Redis CPU per step"
        "${TOOLS[@]}" redis-del-prefix "$FUNNELD_REDIS_URL" "$RUN_ID-redis0" >/dev/null
        log "writing $PENDING pending timers into the Redis ceiling's keyspace"
        fill_timers fillc "$OUT/max.json" -p "$RUN_ID-redis" -t touchpoints -P 6
        log "Redis ceiling with $PENDING pending timers (window $WINDOW)"
        redis_ceiling redis "$RUN_ID-redis"
        res redis_window "$WINDOW"
        log "Redis ceiling with $PENDING pending timers: $(get redis_eps) steps/s," \
            "$(get redis_redis_cpu_us_per_event) us Redis CPU per step"
        "${TOOLS[@]}" redis-del-prefix "$FUNNELD_REDIS_URL" "$RUN_ID-redis" >/dev/null
        log "writing $PENDING pending timers into funneld's keyspace ($T.in, 6 partitions)"
        fill_timers fill "$OUT/max.json" -t "$T.in" -P 6
    fi

    "${TOOLS[@]}" redis-stats "$FUNNELD_REDIS_URL" >"$OUT/redis-before.json"
    k0=$(cpu_s "$KAFKA_PID")
    m0=$(machine_busy_s)
    t_exec=$(date +%s.%N)
    start_funneld max
    if [[ "$PERF" == 1 ]]; then
        perf record -F 299 --call-graph dwarf,16384 -o "$OUT/perf.data" -p "$FPID" >"$OUT/perf.log" 2>&1 &
        PERFPID=$!
    fi
    log "funneld (pid $FPID) draining the backlog"
    t_assigned=$("${TOOLS[@]}" wait-log "$OUT/funneld-max.log" "assigned" 120)
    t_drained=$("${TOOLS[@]}" drained "$B" "$T" "$T.in" 3600)
    res funneld_cpu_s "$(cpu_s "$FPID")"
    res funneld_rss_mb "$(rss_mb "$FPID")"
    res funneld_kafka_cpu_s "$(calc "$(cpu_s "$KAFKA_PID") - $k0")"
    res funneld_machine_cores "$(calc "($(machine_busy_s) - $m0) / ($t_drained - $t_exec)")"
    "${TOOLS[@]}" redis-stats "$FUNNELD_REDIS_URL" >"$OUT/redis-after.json"
    if [[ -n "$PERFPID" ]]; then
        kill -INT "$PERFPID"
        wait "$PERFPID" || true
        PERFPID=""
    fi
    stop_funneld
    "${TOOLS[@]}" stoplog "$OUT/funneld-max.log" | sed 's/^/funneld_/' >>"$RES"
    if ((PENDING > 0)); then
        "${TOOLS[@]}" fire-calls "$OUT/redis-before.json" "$OUT/redis-after.json" \
            "$OUT/max.json" | sed 's/^/fire_/' >>"$RES"
        "${TOOLS[@]}" timer-stats "$FUNNELD_REDIS_URL" "$OUT/max.json" "$T.in" 6 "$FAR_MS" |
            sed 's/^/timers_/' >>"$RES"
        log "with $PENDING pending timers: $(get fire_fire_calls) fire.lua calls" \
            "($(get fire_fire_tick_calls) on due zsets, $(get fire_fire_sweep_calls) lease sweeps)," \
            "$(get timers_triggers_fired) triggers fired, $(get timers_pending_far) timers due in 2100 still pending"
        [[ "$(get timers_pending_far)" == "$PENDING" ]] ||
            log "WARNING: $(get timers_pending_far) of the $PENDING filled timers are still pending"
    fi
    "${TOOLS[@]}" redis-diff "$OUT/redis-before.json" "$OUT/redis-after.json" "$N" |
        sed 's/^/funneld_/' >>"$RES"
    "${TOOLS[@]}" outputs "$B" "$T.transitions" "$T.dlq" >"$OUT/outputs-max.env"
    sed -n 's/^transition_avg_bytes=/transition_avg_bytes=/p' "$OUT/outputs-max.env" >>"$RES"
    sed -n 's/^\(dlq.*\)=/funneld_\1=/p' "$OUT/outputs-max.env" >>"$RES"
    out_last_ms=$(sed -n 's/^out_last_ms=//p' "$OUT/outputs-max.env")
    res funneld_wall_s "$(calc "$t_drained - $t_exec")"
    res funneld_span_s "$(calc "$out_last_ms / 1000 - $t_assigned")"
    res funneld_eps "$(calc "$N / $(get funneld_span_s)")"
    res funneld_eps_wall "$(calc "$N / $(get funneld_wall_s)")"
    res funneld_cpu_per_m "$(calc "$(get funneld_cpu_s) * 1000000 / $N")"
    [[ "$(get funneld_consumed)" == "$N" ]] || log "WARNING: funneld consumed $(get funneld_consumed) of $N"
    [[ "$(get funneld_dlq_ts_out_of_range)" == 0 ]] ||
        log "WARNING: $(get funneld_dlq_ts_out_of_range) event(s) dead-lettered as ts_out_of_range"
    log "funneld: $(get funneld_eps) events/s, $(get funneld_transitions) transitions," \
        "$(get funneld_dlq) dead letters [$(get funneld_dlq_reasons)]"
    if [[ "$PERF" == 1 ]]; then
        {
            echo "== flat profile (self time)"
            perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso,symbol \
                2>/dev/null | grep -v '^#' | grep -v '^$' | head -n 50
            echo "== by library"
            perf report -i "$OUT/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null |
                grep -v '^#' | grep -v '^$' | head -n 12
            echo "== inclusive, by caller chain"
            perf report -i "$OUT/perf.data" --stdio --children -g caller,0.5,callee,function,percent \
                --sort symbol 2>/dev/null | grep -v '^$' | head -n 400
        } >"$OUT/perf.txt" || true
        log "profile: $OUT/perf.txt"
    fi

    # -------------------------------------------------------------- Redis ceiling
    if ((PENDING == 0)); then # else it ran before funneld, with and without the timers
        log "Redis ceiling: the same steps, pipelined on one connection (window $WINDOW)"
        redis_ceiling redis "$RUN_ID-redis"
        res redis_window "$WINDOW"
    fi
    log "Redis ceiling: $(get redis_eps) steps/s, $(get redis_cmds_per_event) commands per step," \
        "$(get redis_transitions) transitions (funneld: $(get funneld_transitions))"

    # -------------------------------------------------------------- on a Redis Cluster
    if [[ "$CLUSTER" == 1 ]]; then
        log "starting a Redis Cluster (three masters, one replica each)"
        CL_ENV=$(FUNNELD_RUN_DIR=$FUNNELD_RUN_DIR/rc bash "$REPO/deploy/redis-cluster.sh" start \
            2>"$OUT/redis-cluster.log") || { cat "$OUT/redis-cluster.log" >&2; die "the cluster did not start"; }
        eval "$CL_ENV"
        # the same input topic, read again by a group and a key prefix of its own
        TC=$RUN_ID-cl
        "${TOOLS[@]}" topics "$B" "$TC.transitions:6:logappend" "$TC.dlq:1" "$TC.retargeting:1" \
            "$TC.bottlenecks:1" "$TC.snapshots:1"
        "${TOOLS[@]}" config "$REPO/deploy/config/demo.json" "$OUT/cl.json" "$B" \
            "$FUNNELD_REDIS_CLUSTER_URL" "$TC" "$TC" "$T.in" "$TC" cluster
        # the masters' pids, by port (redis-cluster.sh nodes: "127.0.0.1:P master ...")
        MASTERS=$(FUNNELD_RUN_DIR=$FUNNELD_RUN_DIR/rc bash "$REPO/deploy/redis-cluster.sh" nodes |
            awk '$2 == "master" { sub(/.*:/, "", $1); print $1 }')
        declare -A MC0
        for p in $MASTERS; do
            MC0[$p]=$(cpu_s "$(cat "$FUNNELD_RUN_DIR/rc/redis-cluster/node-$p/redis.pid")")
        done
        # FUNNELD_REDIS_URL (the services' one server) would override the config's URL
        env -u FUNNELD_REDIS_URL "$BUILD/funneld" -c "$OUT/cl.json" 2>"$OUT/funneld-cl.log" &
        FPID=$!
        log "funneld (pid $FPID) draining the same backlog on the cluster"
        t_assigned=$("${TOOLS[@]}" wait-log "$OUT/funneld-cl.log" "assigned" 120)
        "${TOOLS[@]}" drained "$B" "$TC" "$T.in" 3600 >/dev/null
        res cluster_cpu_s "$(cpu_s "$FPID")"
        per=""
        for p in $MASTERS; do
            c=$(calc "($(cpu_s "$(cat "$FUNNELD_RUN_DIR/rc/redis-cluster/node-$p/redis.pid")") - ${MC0[$p]}) * 1000000 / $N")
            per="$per${per:+,}$c"
        done
        res cluster_master_cpu_us_per_event "$per"
        stop_funneld
        "${TOOLS[@]}" outputs "$B" "$TC.transitions" "$TC.dlq" >"$OUT/outputs-cl.env"
        out_last_ms=$(sed -n 's/^out_last_ms=//p' "$OUT/outputs-cl.env")
        res cluster_transitions "$(sed -n 's/^transitions=//p' "$OUT/outputs-cl.env")"
        res cluster_span_s "$(calc "$out_last_ms / 1000 - $t_assigned")"
        res cluster_eps "$(calc "$N / $(get cluster_span_s)")"
        log "on the cluster: $(get cluster_eps) events/s, Redis CPU us per event per master" \
            "$(get cluster_master_cpu_us_per_event)"
    fi

    # -------------------------------------------------------------- Kafka ceiling
    BYTES=$(get transition_avg_bytes)
    OUTS=$(($(get funneld_transitions) + $(get funneld_dlq)))
    "${TOOLS[@]}" topics "$B" "$RUN_ID-kafka.out:6" "$RUN_ID-kafka1.out:6"
    log "Kafka ceiling: consume $T.in, produce $OUTS outputs of $BYTES B (as funneld did)"
    "$BUILD/tests/bench/bench_kafka_ceiling" -b "$B" -t "$T.in" -o "$RUN_ID-kafka.out" \
        -g "$RUN_ID-kafka" -m "$OUTS" -s "$BYTES" >"$OUT/kafka-ceiling.out" \
        2>"$OUT/kafka-ceiling.log" || { cat "$OUT/kafka-ceiling.log" >&2; die "bench_kafka_ceiling failed"; }
    result_lines kafka "$OUT/kafka-ceiling.out"
    res kafka_bytes "$BYTES"
    log "Kafka ceiling: $(get kafka_eps) events/s"
    log "Kafka ceiling: consume $T.in, produce one output of $BYTES B per input"
    "$BUILD/tests/bench/bench_kafka_ceiling" -b "$B" -t "$T.in" -o "$RUN_ID-kafka1.out" \
        -g "$RUN_ID-kafka1" -s "$BYTES" >"$OUT/kafka1-ceiling.out" \
        2>"$OUT/kafka1-ceiling.log" || { cat "$OUT/kafka1-ceiling.log" >&2; die "bench_kafka_ceiling failed"; }
    result_lines kafka1 "$OUT/kafka1-ceiling.out"
    log "Kafka ceiling (1 per input): $(get kafka1_eps) events/s"
fi

# ------------------------------------------------------------------ fixed-rate mode
if [[ "$MODE" != max ]]; then
    RATE=${BENCH_RATE:-}
    if [[ -z "$RATE" ]]; then
        [[ -n "$(get funneld_eps)" ]] || die "BENCH_MODE=rate needs BENCH_RATE"
        RATE=$(awk -v e="$(get funneld_eps)" 'BEGIN { printf "%d", e / 2 }')
    fi
    RN=$((RATE * RATE_SECS))
    make_stack rate
    T=$RUN_ID-rate
    if ((PENDING > 0)); then
        log "writing $PENDING pending timers into the fixed-rate run's keyspace ($T.in, 6 partitions)"
        fill_timers rate_fill "$OUT/rate.json" -t "$T.in" -P 6
    fi
    start_funneld rate
    "${TOOLS[@]}" wait-log "$OUT/funneld-rate.log" "assigned" 120 >/dev/null
    sleep 1
    log "fixed rate: $RN events at $RATE events/s into a running funneld (pid $FPID)"
    c0=$(cpu_s "$FPID")
    t0=$(date +%s.%N)
    "$BUILD/funneld-loadgen" -t "$T.in" -n "$RN" -l "$((RN / 10 > 1 ? RN / 10 : 1))" \
        --seed "$((SEED + 1))" --start-ts now --step-ms "$(step_ms "$RN")" -r "$RATE" \
        --dup-rate "$DUP" --bad-rate "$BAD" 2>"$OUT/loadgen-rate.log" &
    LGPID=$!
    # What explains the latency is measured over the same span as the latency: from the end
    # of the warm-up to the end of the input (the histograms and the slowlog also see the
    # drain of the last second's input).
    ((WARMUP < RATE_SECS)) && sleep "$WARMUP"
    "${TOOLS[@]}" redis-slowlog "$FUNNELD_REDIS_URL" reset
    "${TOOLS[@]}" scrape "$OUT/funneld-rate.log" >"$OUT/metrics-warm.txt" ||
        log "could not read funneld's /metrics at the end of the warm-up"
    "$BUILD/tests/bench/bench_hiccup" >"$OUT/hiccup.out" &
    HICPID=$!
    w0=$(cpu_wait_us)
    cw=$(cpu_s "$FPID") r0=$(cpu_s "$REDIS_PID") k0=$(cpu_s "$KAFKA_PID") m0=$(machine_busy_s)
    tw=$(date +%s.%N)
    wait "$LGPID" || { LGPID=""; cat "$OUT/loadgen-rate.log" >&2; die "loadgen failed"; }
    LGPID=""
    t1=$(date +%s.%N)
    el=$(calc "$t1 - $tw")
    if [[ -r /proc/pressure/cpu ]]; then
        res rate_cpu_wait_pct "$(calc "($(cpu_wait_us) - ${w0:-0}) / 10000 / $el")"
    else
        res rate_cpu_wait_pct "n/a (no /proc/pressure/cpu)"
    fi
    kill -TERM "$HICPID" && wait "$HICPID"
    HICPID=""
    result_lines hic "$OUT/hiccup.out"
    res rate_cores "$(calc "($(cpu_s "$FPID") - $cw) / $el")/$(calc "($(cpu_s "$REDIS_PID") - $r0) / $el")/$(calc "($(cpu_s "$KAFKA_PID") - $k0) / $el")/$(calc "($(machine_busy_s) - $m0) / $el")"
    res rate_measured_s "$el"
    "${TOOLS[@]}" drained "$B" "$T" "$T.in" 600 >/dev/null
    "${TOOLS[@]}" redis-slowlog "$FUNNELD_REDIS_URL" read | sed 's/^/rate_/' >>"$RES"
    res rate_target "$RATE"
    res rate_events "$RN"
    res rate_achieved "$(calc "$RN / ($t1 - $t0)")"
    res rate_cpu_per_m "$(calc "($(cpu_s "$FPID") - $c0) * 1000000 / $RN")"
    res rate_rss_mb "$(rss_mb "$FPID")"
    "${TOOLS[@]}" scrape "$OUT/funneld-rate.log" >"$OUT/metrics-rate.txt" &&
        "${TOOLS[@]}" hist-quantiles "$OUT/metrics-rate.txt" "$OUT/metrics-warm.txt" |
        sed 's/^/rate_/' >>"$RES" || log "could not read funneld's /metrics"
    stop_funneld
    log "measuring latency (output append time − input append time)"
    "${TOOLS[@]}" latency "$B" "$T.in" "$T.transitions" "$WARMUP" | sed 's/^/lat_/' >>"$RES"
    log "latency p50 $(get lat_p50_ms) ms, p99 $(get lat_p99_ms) ms, p99.9 $(get lat_p999_ms) ms"
fi

log "done in $(($(date +%s) - T_BEGIN)) s; results in $RES"
echo
"${TOOLS[@]}" summary "$RES" | tee "$OUT/summary.txt"
