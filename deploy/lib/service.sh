# shellcheck shell=bash
# deploy/lib/service.sh - sourced, not run: what the service scripts in deploy/
# (redis.sh, redis-cluster.sh, kafka.sh, services.sh) share, one copy of each.
# Messages carry the sourcing script's name.
#
#   log MSG...              "<script>: MSG" on stderr
#   die MSG...              "<script>: error: MSG" on stderr, then exit 1
#   usage                   the script's header comment (up to `set -euo`) on
#                           stderr, then exit 2
#   wait_exit SECS PID      wait until PID is gone; false if it still runs after SECS
#   reap SECS PID...        wait until every PID is gone; one still running SECS
#                           after the call gets SIGKILL
#   wait_port_closed SECS PORT  wait until nothing accepts on 127.0.0.1:PORT (at most SECS)
#   keep_data_flag CMD ARGS...  a stop command's one option: prints 1 for --keep-data,
#                           0 for none; dies naming CMD on anything else
# and from deploy/lib/ports.sh: port_open, pid_alive, free_ports N.

SERVICE_NAME="${0##*/}"

log() { printf '%s: %s\n' "$SERVICE_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$SERVICE_NAME" "$*" >&2; exit 1; }

usage() {
    sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "$0" >&2
    exit 2
}

# shellcheck source=deploy/lib/ports.sh
source "$(dirname "${BASH_SOURCE[0]}")/ports.sh"

wait_exit() { # SECS PID
    local deadline=$((SECONDS + $1))
    while pid_alive "$2" && ((SECONDS < deadline)); do sleep 0.1; done
    ! pid_alive "$2"
}

reap() { # SECS PID...
    local secs="$1" deadline=$((SECONDS + $1)) pid
    shift
    for pid in "$@"; do
        while pid_alive "$pid" && ((SECONDS < deadline)); do sleep 0.1; done
        if pid_alive "$pid"; then
            log "pid $pid did not exit after ${secs}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        while pid_alive "$pid"; do sleep 0.05; done
    done
}

wait_port_closed() { # SECS PORT
    local deadline=$((SECONDS + $1))
    while port_open "$2" && ((SECONDS < deadline)); do sleep 0.2; done
}

keep_data_flag() { # CMD ARGS...
    local cmd="$1" keep=0
    shift
    while (($#)); do
        case "$1" in
            --keep-data) keep=1; shift ;;
            *) die "$cmd: unknown argument '$1'" ;;
        esac
    done
    echo "$keep"
}
