#!/usr/bin/env bash
# tests/fuzz/run-long.sh — the long fuzzing run whose figures README.md reports (issue 6 item 6).
#
#   bash tests/fuzz/run-long.sh [SECONDS] [TARGET...]
#
# Builds the libFuzzer targets with clang in build-fuzz/ (FUZZ_BUILD_DIR overrides), then runs
# each target in turn — one fuzzer at a time, under `nice -n 19` (FUZZ_NICE overrides) — for
# SECONDS (default 300) on a fresh copy of its seed corpus, and prints per target: executions,
# executions per second, coverage (edges) and features, corpus size, peak RSS and the crashes
# found. A crash stops that target's run (libFuzzer's default); the input is kept under
# build-fuzz/fuzz-long/<target>/artifacts/ and named in the summary. Exit status 1 when any
# target found something. TARGET is fuzz_event, fuzz_config or fuzz_rules (default: all).
# FUZZ_JOBS=N runs N fuzzing processes per target instead of one (libFuzzer -fork=N).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
secs=${1:-300}
[ $# -gt 0 ] && shift
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(fuzz_event fuzz_config fuzz_rules)
build=${FUZZ_BUILD_DIR:-$root/build-fuzz}
nice_level=${FUZZ_NICE:-19}
jobs=${FUZZ_JOBS:-1}

case $secs in '' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [fuzz_event|fuzz_config|fuzz_rules ...]" >&2
    exit 2
    ;;
esac
if ! command -v clang >/dev/null; then
    echo "run-long.sh: clang not found; on Debian: apt-get install -y clang libclang-rt-dev" \
        "(bash deploy/install-deps.sh installs both; Debian 12's clang-14 does not pull in" \
        "libFuzzer's runtime, libclang-rt-14-dev)" >&2
    exit 2
fi

# A build directory configured with another compiler cannot be switched to clang in place.
if [ -f "$build/CMakeCache.txt" ] &&
    ! grep -q '^CMAKE_C_COMPILER:.*clang' "$build/CMakeCache.txt"; then
    echo "run-long.sh: $build was configured with another compiler; remove it or set" \
        "FUZZ_BUILD_DIR" >&2
    exit 2
fi
gen=()
[ -f "$build/CMakeCache.txt" ] || ! command -v ninja >/dev/null || gen=(-G Ninja)
mkdir -p "$build"
CC=clang cmake -S "$root" -B "$build" "${gen[@]}" -DFUNNELD_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build/configure.log" 2>&1 ||
    { cat "$build/configure.log" >&2; exit 1; }
cmake --build "$build" --target "${targets[@]}"

max_len_of() {
    case $1 in fuzz_event) echo 4096 ;; fuzz_config) echo 16384 ;; *) echo 2048 ;; esac
}

summary=()
found_any=0
for t in "${targets[@]}"; do
    bin=$build/tests/fuzz/$t
    work=$build/fuzz-long/$t
    rm -rf "$work"
    mkdir -p "$work/corpus" "$work/artifacts"
    cp "$root/tests/fuzz/corpus/$t/"* "$work/corpus/"
    args=(-max_total_time="$secs" -rss_limit_mb=1024 -timeout=10 -max_len="$(max_len_of "$t")"
        -print_final_stats=1 -artifact_prefix="$work/artifacts/")
    [ -f "$root/tests/fuzz/$t.dict" ] && args+=(-dict="$root/tests/fuzz/$t.dict")
    [ "$jobs" -gt 1 ] && args+=(-fork="$jobs")
    echo "== $t: ${secs}s, log in $work/log"
    start=$(date +%s)
    rc=0
    nice -n "$nice_level" "$bin" "${args[@]}" "$work/corpus" >"$work/log" 2>&1 || rc=$?
    elapsed=$(($(date +%s) - start))

    # The last status line ("#N DONE cov: C ft: F corp: U/S ... exec/s: E rss: R"), or in
    # fork mode "#N: cov: C ft: F corp: U exec/s: E ...", and the final stats, when printed.
    last=$(grep -E '^#[0-9]+.* cov: ' "$work/log" | tail -1 || true)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
    [ -n "$execs" ] || execs=$(sed -E -n 's/^#([0-9]+).*/\1/p' <<<"$last")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
    [ -n "$rate" ] || rate=$(( ${execs:-0} / (elapsed > 0 ? elapsed : 1) ))
    cov=$(sed -E -n 's/.* cov: ([0-9]+).*/\1/p' <<<"$last")
    ft=$(sed -E -n 's/.* ft: ([0-9]+).*/\1/p' <<<"$last")
    corp=$(sed -E -n 's/.* corp: ([0-9]+(\/[0-9]+[a-zA-Z]*)?).*/\1/p' <<<"$last")
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$work/log" | tail -1)
    [ -n "$rss" ] || rss=$(sed -E -n 's/.* rss: ([0-9]+)Mb.*/\1/p' <<<"$last")
    crashes=$(find "$work/artifacts" -type f | wc -l)
    [ "$rc" -eq 0 ] || [ "$crashes" -gt 0 ] || crashes="exit $rc"
    [ "$crashes" = 0 ] || found_any=1
    summary+=("$(printf '%-12s %6ss %12s %9s %6s %7s %14s %7s  %s' "$t" "$elapsed" "${execs:-?}" \
        "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "${rss:-?}MB" "$crashes")")
    find "$work/artifacts" -type f -printf '   found: %p\n'
done

echo
printf '%-12s %7s %12s %9s %6s %7s %14s %7s  %s\n' target time execs exec/s cov ft corpus rss \
    crashes
printf '%s\n' "${summary[@]}"
echo "($(nproc) cores, clang $(clang -dumpversion), nice $nice_level, $jobs job(s) per target," \
    "$(date -u +%Y-%m-%dT%H:%MZ))"
exit $found_any
