#!/usr/bin/env bash
# deploy/redis.sh - owns the local, loopback-only Redis (Debian's redis-server)
# used by tests, demos and CI.
#
#   redis.sh start [--port P] [-- REDIS-SERVER-ARGS...]
#                             start redis-server on a free 127.0.0.1 port (or resume
#                             one stopped with --keep-data); prints
#                             `export FUNNELD_REDIS_URL=redis://127.0.0.1:PORT/0`.
#                             Defaults: --save "" --appendonly no; extra args after
#                             `--` override them (e.g. -- --appendonly yes).
#   redis.sh stop [--keep-data]   SHUTDOWN (NOSAVE unless --keep-data), else kill via pidfile
#   redis.sh restart          stop and start again on the same port, args and data
#   redis.sh status           exit 0 if the server from `start` is running
#   redis.sh cli [ARGS...]    redis-cli against it
#
# State lives in ${FUNNELD_RUN_DIR:-deploy/.run}: redis.env, redis.port and
# redis-<port>/{redis.pid,redis.log,args,<data files>}. Progress goes to stderr;
# stdout only carries the export line.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${FUNNELD_RUN_DIR:-$REPO/deploy/.run}"
ENV_FILE="$RUN_DIR/redis.env"
PORT_FILE="$RUN_DIR/redis.port"
START_TIMEOUT=20
STOP_TIMEOUT=10

# log, die, usage, wait_exit, reap, wait_port_closed; port_open, pid_alive, free_ports
# shellcheck source=deploy/lib/service.sh
source "$REPO/deploy/lib/service.sh"
# need_redis_bins, redis_server_start
# shellcheck source=deploy/lib/redis-server.sh
source "$REPO/deploy/lib/redis-server.sh"

cur_port() { [[ -f "$PORT_FILE" ]] && cat "$PORT_FILE"; }

running_pid() { # port
    local port="$1" pid f="$RUN_DIR/redis-$1/redis.pid"
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redis-server.*:$port" || return 1
    echo "$pid"
}

cmd_start() {
    local port="" extra=()
    while (($#)); do
        case "$1" in
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            --) shift; extra=("$@"); break ;;
            *) die "start: unknown argument '$1' (redis-server args go after --)" ;;
        esac
    done
    need_redis_bins
    mkdir -p "$RUN_DIR"

    local old
    old="$(cur_port || true)"
    if [[ -n "$old" ]] && running_pid "$old" >/dev/null; then
        if [[ -z "$port" || "$port" == "$old" ]]; then
            log "redis already running on port $old (pid $(running_pid "$old"))"
            cat "$ENV_FILE"
            return 0
        fi
        die "another redis from this checkout runs on port $old; stop it first"
    fi

    local dir
    if [[ -z "$port" && -n "$old" && -f "$RUN_DIR/redis-$old/args" ]]; then
        port="$old" # stopped with --keep-data: resume
    fi
    [[ -n "$port" ]] || port="$(free_ports 1)"
    dir="$RUN_DIR/redis-$port"
    port_open "$port" && die "port $port is already in use"
    if [[ -f "$dir/args" ]]; then
        # Kept from `stop --keep-data`: same data; same args unless new ones given.
        log "resuming redis in $dir"
        if ((${#extra[@]} == 0)); then
            eval "extra=($(cat "$dir/args"))"
        fi
    else
        rm -rf "$dir"
        mkdir -p "$dir"
    fi
    if ((${#extra[@]})); then printf '%q ' "${extra[@]}" >"$dir/args"; else : >"$dir/args"; fi
    echo "$port" >"$PORT_FILE" # from here on, `stop` cleans up even a failed start

    log "starting redis-server on 127.0.0.1:$port (log: $dir/redis.log)"
    redis_server_start "$dir" "$port" "$START_TIMEOUT" --appendonly no "${extra[@]}"
    echo "export FUNNELD_REDIS_URL=redis://127.0.0.1:$port/0" >"$ENV_FILE"
    log "redis ready (pid $(cat "$dir/redis.pid" 2>/dev/null || echo '?'))"
    cat "$ENV_FILE"
}

cmd_stop() {
    local keep
    keep="$(keep_data_flag stop "$@")"
    local port pid
    port="$(cur_port || true)"
    if [[ -z "$port" ]]; then
        log "no redis started from this checkout"
        rm -f "$ENV_FILE"
        return 0
    fi
    if pid="$(running_pid "$port")"; then
        log "stopping redis on port $port (pid $pid)"
        # --keep-data: plain SHUTDOWN honours the configured persistence
        # (RDB save points / AOF); otherwise nothing is worth saving.
        local how=NOSAVE
        ((keep)) && how=""
        # shellcheck disable=SC2086
        redis-cli -h 127.0.0.1 -p "$port" shutdown $how >/dev/null 2>&1 || true
        if ! wait_exit "$STOP_TIMEOUT" "$pid"; then
            log "redis did not exit; sending SIGTERM"
            kill -TERM "$pid" 2>/dev/null || true
            reap "$STOP_TIMEOUT" "$pid"
        fi
    else
        log "redis on port $port is not running"
    fi
    rm -f "$ENV_FILE"
    if ((keep)); then
        log "kept data in $RUN_DIR/redis-$port"
    else
        rm -rf "${RUN_DIR:?}/redis-$port"
        rm -f "$PORT_FILE"
    fi
}

cmd_restart() {
    local port
    port="$(cur_port || true)"
    [[ -n "$port" ]] || die "restart: no redis to restart; use start"
    cmd_stop --keep-data
    cmd_start --port "$port"
}

cmd_status() {
    local port pid
    port="$(cur_port || true)"
    if [[ -n "$port" ]] && pid="$(running_pid "$port")"; then
        log "running on port $port (pid $pid)"
    else
        log "not running"
        return 1
    fi
}

cmd_cli() {
    local port
    port="$(cur_port || true)"
    [[ -n "$port" ]] || die "no redis started from this checkout"
    exec redis-cli -h 127.0.0.1 -p "$port" "$@"
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    restart) shift; cmd_restart "$@" ;;
    status) shift; cmd_status "$@" ;;
    cli) shift; cmd_cli "$@" ;;
    *) usage ;;
esac
