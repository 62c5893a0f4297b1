# shellcheck shell=bash
# deploy/lib/redis-server.sh - sourced, not run: starting one loopback redis-server,
# shared by deploy/redis.sh and deploy/redis-cluster.sh. Needs deploy/lib/service.sh.
#
#   need_redis_bins                    die unless redis-server and redis-cli are on PATH
#   redis_server_start DIR PORT SECS ARGS...
#                                      start a daemonized redis-server on 127.0.0.1:PORT
#                                      with DIR/{redis.pid,redis.log} and its data in DIR,
#                                      no RDB saves, hash values up to 128 bytes kept in
#                                      listpacks (README, Sizing), then ARGS; return once it
#                                      answers PING and its pidfile is written (die after SECS)

need_redis_bins() {
    command -v redis-server >/dev/null 2>&1 || die "redis-server not found (run deploy/install-deps.sh)"
    command -v redis-cli >/dev/null 2>&1 || die "redis-cli not found (run deploy/install-deps.sh)"
}

redis_server_start() { # DIR PORT SECS ARGS...
    local dir="$1" port="$2" secs="$3"
    shift 3
    rm -f "$dir/redis.pid"
    if ! redis-server --port "$port" --bind 127.0.0.1 --protected-mode yes \
            --daemonize yes --pidfile "$dir/redis.pid" --dir "$dir" \
            --logfile "$dir/redis.log" --save "" --hash-max-listpack-value 128 "$@"; then
        tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
        die "redis-server failed to start on port $port"
    fi
    local deadline=$((SECONDS + secs))
    until [[ "$(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null)" == PONG ]]; do
        if ((SECONDS >= deadline)); then
            tail -n 30 "$dir/redis.log" >&2 2>/dev/null || true
            die "redis-server not answering PING on 127.0.0.1:$port after ${secs}s"
        fi
        sleep 0.1
    done
    # The pidfile is written just after the listener opens; wait for it.
    while [[ ! -s "$dir/redis.pid" ]] && ((SECONDS < deadline)); do sleep 0.05; done
}
