#!/usr/bin/env bash
# tests/run.sh — the one command that runs every test (README.md; .ci/run calls it).
#
# Installs what is missing, fetches Kafka, builds funneld twice (a normal build and an
# ASan+UBSan build), and runs the whole ctest suite on both: unit, integration (real Redis)
# and end-to-end (real Kafka broker + Redis), several tests at a time (FUNNELD_TEST_JOBS,
# default cores + 2). The services are started by the ctest fixture and always stopped
# again, also when a test fails. Then a third, Clang build (build-fuzz) runs the libFuzzer
# targets briefly (tests/fuzz: 20 s each plus their saved inputs, one per core; no services
# needed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

jobs=$(nproc 2>/dev/null || echo 2)
# Tests at once: the end-to-end tests wait much of their time (outages, backoff, paced
# input), so two more than the cores keep the machine busy; none may depend on how fast it
# goes (tests/README.md has the runs that found the ones that did).
test_jobs=${FUNNELD_TEST_JOBS:-$((jobs + 2))}
labels=${FUNNELD_TEST_LABELS:-}   # e.g. "unit|integration" to run a subset

step() { printf '\n=== %s\n' "$*"; }

cleanup() { bash deploy/services.sh down >/dev/null 2>&1 || true; }
trap cleanup EXIT

step "dependencies"
bash deploy/install-deps.sh
bash deploy/kafka.sh fetch

run_suite() {
    local dir=$1; shift
    step "configure $dir ($*)"
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
    step "build $dir"
    cmake --build "$dir" -j "$jobs"
    step "test $dir"
    local args=(--test-dir "$dir" --output-on-failure --timeout 900 -j "$test_jobs")
    [ -n "$labels" ] && args+=(-L "services|$labels")
    [ -n "${exclude:-}" ] && args+=(-LE "$exclude")
    ctest "${args[@]}"
}

run_suite build
# The same suite under the sanitizers, the fault tests at a quarter of their volume (every
# event costs several times more there; README's figures are the normal build's). The tests
# labelled cluster start three JVMs or test only the deploy scripts: once is enough. The Redis
# Cluster test (label redis-failover) runs in both.
exclude=cluster FUNNELD_FAULT_SCALE=0.25 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 run_suite build-asan -DFN_SANITIZE=ON

# The fuzz targets need Clang (libFuzzer) and only run when no label subset was asked for, or
# when the subset names them (FUNNELD_TEST_LABELS=fuzz runs just these, plus the two builds'
# service fixtures).
run_fuzz() {
    local dir=build-fuzz
    step "configure $dir (clang, -DFUNNELD_FUZZ=ON)"
    CC=clang cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFUNNELD_FUZZ=ON \
        >/dev/null
    step "build $dir (fuzz targets)"
    cmake --build "$dir" -j "$jobs" --target fuzz_event fuzz_config fuzz_rules
    step "test $dir (fuzz)"
    # one fuzzer per core at a time (each takes a whole one)
    ctest --test-dir "$dir" --output-on-failure --timeout 300 -L fuzz -j "$jobs"
}
if [ -z "$labels" ] || grep -Eq "$labels" <<<fuzz; then
    run_fuzz
fi
step "all tests passed"
