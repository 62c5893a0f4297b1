#!/usr/bin/env bash
# Runs a test with the addresses of the services that deploy/services.sh started
# (FUNNELD_BROKERS, FUNNELD_REDIS_URL), so every test finds the same Redis and Kafka; with
# FUNNELD_E2E_REDIS_CLUSTER_ENV (deploy/redis-cluster.sh's env file), FUNNELD_REDIS_URL is a
# node of the rcluster fixture's Redis Cluster instead.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$repo/deploy/.run/env" ]; then
  # shellcheck disable=SC1091
  . "$repo/deploy/.run/env"
fi
if [ -n "${FUNNELD_E2E_REDIS_CLUSTER_ENV:-}" ]; then
  # shellcheck disable=SC1090
  . "$FUNNELD_E2E_REDIS_CLUSTER_ENV"
  export FUNNELD_REDIS_URL="$FUNNELD_REDIS_CLUSTER_URL"
fi
exec "$@"
