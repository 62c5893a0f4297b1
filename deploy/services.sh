#!/usr/bin/env bash
# deploy/services.sh - owns bringing the whole local test stack (Redis + Kafka,
# both on loopback) up and down together, and the combined env file.
#
#   services.sh up       start redis, fetch kafka jars, start kafka (idempotent);
#                        writes deploy/.run/env and prints it on stdout
#   services.sh down     stop kafka and redis, delete their data
#   services.sh env      print deploy/.run/env
#   services.sh status   report both; exit 0 only if both run
#
# Usage: eval "$(deploy/services.sh up)"   or   . deploy/.run/env
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${FUNNELD_RUN_DIR:-$REPO/deploy/.run}"
ENV_FILE="$RUN_DIR/env"
KAFKA="$REPO/deploy/kafka.sh"
REDIS="$REPO/deploy/redis.sh"

# log, die, usage, wait_exit, reap, wait_port_closed; port_open, pid_alive, free_ports
# shellcheck source=deploy/lib/service.sh
source "$REPO/deploy/lib/service.sh"

cmd_up() {
    mkdir -p "$RUN_DIR"
    # Both start commands are themselves idempotent (they check that the pid
    # they recorded is alive and is theirs), so calling them again is safe.
    if "$REDIS" status 2>/dev/null; then
        log "redis already up"
    else
        "$REDIS" start >/dev/null || die "redis failed to start"
    fi
    "$KAFKA" fetch || die "fetching Kafka jars failed"
    if "$KAFKA" status 2>/dev/null; then
        log "kafka already up"
    else
        "$KAFKA" start >/dev/null || die "kafka failed to start"
    fi
    [[ -f "$RUN_DIR/redis.env" && -f "$RUN_DIR/kafka.env" ]] || die "env files missing after start"
    cat "$RUN_DIR/redis.env" "$RUN_DIR/kafka.env" >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    cat "$ENV_FILE"
}

cmd_down() {
    local rc=0
    "$KAFKA" stop || rc=1
    "$REDIS" stop || rc=1
    rm -f "$ENV_FILE"
    return "$rc"
}

cmd_env() {
    [[ -f "$ENV_FILE" ]] || die "no $ENV_FILE; run: deploy/services.sh up"
    cat "$ENV_FILE"
}

cmd_status() {
    local rc=0
    "$REDIS" status || rc=1
    "$KAFKA" status || rc=1
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    env) cmd_env ;;
    status) cmd_status ;;
    *) usage ;;
esac
