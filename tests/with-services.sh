#!/usr/bin/env bash
# Runs a test with the addresses of the services that deploy/services.sh started
# (FUNNELD_BROKERS, FUNNELD_REDIS_URL), so every test finds the same Redis and Kafka.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -f "$repo/deploy/.run/env" ]; then
  # shellcheck disable=SC1091
  . "$repo/deploy/.run/env"
fi
exec "$@"
