#!/usr/bin/env bash
# Runs a test against a real Redis Cluster (deploy/redis-cluster.sh: three masters, one
# replica each, on loopback) with FUNNELD_REDIS_CLUSTER_URL and FUNNELD_REDIS_CLUSTER_NODES
# exported. When FUNNELD_REDIS_CLUSTER_URL is already set, that cluster is used and left
# alone; otherwise one is started in a private run directory and stopped, the directory
# removed, when the test ends, fails or is killed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${FUNNELD_REDIS_CLUSTER_URL:-}" ]; then
    exec "$@"
fi
run_dir=$(mktemp -d "${TMPDIR:-/tmp}/funneld-cluster-test.XXXXXX")
export FUNNELD_RUN_DIR="$run_dir"
stop() {
    bash "$repo/deploy/redis-cluster.sh" stop >/dev/null 2>&1 || true
    rm -rf "$run_dir"
}
child=""
# The test runs in the background so a TERM (ctest's stop, a Ctrl-C) is handled at once:
# the test is ended first, then the cluster is stopped by the EXIT trap.
on_signal() {
    [ -n "$child" ] && kill -TERM "$child" 2>/dev/null || true
    exit "$1"
}
trap stop EXIT
trap 'on_signal 143' TERM
trap 'on_signal 130' INT
eval "$(bash "$repo/deploy/redis-cluster.sh" start)"
"$@" &
child=$!
wait "$child"
