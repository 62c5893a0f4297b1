#!/usr/bin/env bash
# deploy/redis-cluster.sh - owns the local, loopback-only Redis Cluster (three
# masters, each with one replica; Debian's redis-server) of the scale-out tests
# (SPEC §9, issue 18). The single Redis of the other tests is deploy/redis.sh's.
#
#   redis-cluster.sh start        start six redis-server --cluster-enabled yes nodes
#                                 on free 127.0.0.1 ports, `redis-cli --cluster create
#                                 ... --cluster-replicas 1`, wait until every node says
#                                 cluster_state:ok; prints the export lines below
#   redis-cluster.sh stop         SHUTDOWN NOSAVE every node (else kill), delete the data
#   redis-cluster.sh status       one line per node; exit 0 if all six run
#   redis-cluster.sh cli [ARGS...]  redis-cli -c (follows MOVED/ASK) against a live node
#   redis-cluster.sh nodes        print the node list, one line each:
#                                 `127.0.0.1:PORT master 0-5460 connected`,
#                                 `127.0.0.1:PORT replica 127.0.0.1:MASTER connected`
#                                 (last word: connected, or fail / pfail / down)
#   redis-cluster.sh kill-master [PORT]  SIGKILL a master (PORT, or the first live one),
#                                 wait until a replica has taken over its slots and the
#                                 cluster is ok again; prints `KILLED_PORT PROMOTED_PORT`
#   redis-cluster.sh restart-node PORT   start a stopped/killed node again on its data
#                                 and nodes.conf; wait until it has rejoined (a killed
#                                 master comes back as a replica) and the cluster is ok
#   redis-cluster.sh reshard FROM TO N   move N slots, keys included, from master port
#                                 FROM to master port TO (`redis-cli --cluster reshard`:
#                                 MIGRATE, so clients meanwhile meet ASK and then MOVED)
#
# The env file exports
#   FUNNELD_REDIS_CLUSTER_URL    redis://127.0.0.1:PORT, one seed node (the first master)
#   FUNNELD_REDIS_CLUSTER_NODES  all six as host:port,host:port,...
# Each node: appendonly yes, no RDB saves, its cluster bus on a port of its own
# (cluster-port, also free and below the ephemeral range), cluster-node-timeout
# ${FUNNELD_REDIS_CLUSTER_NODE_TIMEOUT:-2000} ms (a dead master is failed over a
# little after it), cluster-replica-validity-factor 0 (a replica always may take over),
# repl-diskless-sync-delay 0 (a replica's full sync starts at once, not after 5 s).
#
# State lives in ${FUNNELD_RUN_DIR:-deploy/.run}: redis-cluster.env and
# redis-cluster/{ports,node-timeout,node-<port>/{redis.pid,redis.log,nodes.conf,
# appendonlydir/}}. Progress goes to stderr; stdout only carries the export
# lines (start) and the answers of nodes, kill-master and cli.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
RUN_DIR="${FUNNELD_RUN_DIR:-$REPO/deploy/.run}"
DIR="$RUN_DIR/redis-cluster"
ENV_FILE="$RUN_DIR/redis-cluster.env"
NODE_TIMEOUT="${FUNNELD_REDIS_CLUSTER_NODE_TIMEOUT:-2000}"
START_TIMEOUT=20
STOP_TIMEOUT=10

# log, die, usage, wait_exit, reap, wait_port_closed; port_open, pid_alive, free_ports
# shellcheck source=deploy/lib/service.sh
source "$REPO/deploy/lib/service.sh"
# need_redis_bins, redis_server_start
# shellcheck source=deploy/lib/redis-server.sh
source "$REPO/deploy/lib/redis-server.sh"

rcli() { # port ARGS...: one command against one node, no redirects followed
    local port="$1"
    shift
    redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null | tr -d '\r'
}

# The six client ports, then their six cluster bus ports.
PORTS=()
BUS=()
read_ports() {
    [[ -f "$DIR/ports" ]] || return 1
    local all
    read -r -a all <"$DIR/ports"
    ((${#all[@]} == 12)) || die "corrupt $DIR/ports"
    PORTS=("${all[@]:0:6}") BUS=("${all[@]:6:6}")
}

need_cluster() { read_ports || die "no cluster started from this checkout (run: deploy/redis-cluster.sh start)"; }

bus_of() { # port
    local i
    for i in "${!PORTS[@]}"; do [[ "${PORTS[$i]}" == "$1" ]] && { echo "${BUS[$i]}"; return 0; }; done
    die "127.0.0.1:$1 is not a node of this cluster (nodes: ${PORTS[*]})"
}

node_pid() { # port: the running redis-server of that node, else fail
    local f="$DIR/node-$1/redis.pid" pid
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    pid_alive "$pid" || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "redis-server.*:$1" || return 1
    echo "$pid"
}

live_ports() { local p; for p in "${PORTS[@]}"; do node_pid "$p" >/dev/null && echo "$p"; done; true; }

any_live() { # a node that answers, for cli and nodes
    local p
    for p in $(live_ports); do
        [[ "$(rcli "$p" ping)" == PONG ]] && { echo "$p"; return 0; }
    done
    die "no node of the cluster answers"
}

start_node() { # port
    local port="$1" bus dir="$DIR/node-$1"
    bus="$(bus_of "$port")"
    port_open "$port" && die "port $port is already in use"
    mkdir -p "$dir"
    log "starting node 127.0.0.1:$port (bus $bus, log: $dir/redis.log)"
    redis_server_start "$dir" "$port" "$START_TIMEOUT" --appendonly yes \
        --cluster-enabled yes --cluster-config-file nodes.conf \
        --cluster-port "$bus" --cluster-node-timeout "$(cat "$DIR/node-timeout")" \
        --cluster-replica-validity-factor 0 --repl-diskless-sync-delay 0
}

# The cluster is whole again when every live node says so: state ok, all
# 16384 slots served by a reachable master, and its view agrees with what
# runs: every live node connected, three masters with slots, the others
# replicas (just after `--cluster create` a node's gossip may still show a
# replica-to-be as a master without slots), and a replica has its copy: until
# its first sync is done its master_link_status is down, and a failover then
# would lose every write since the cluster was created.
node_ok() { # port live-count
    local info repl
    info="$(rcli "$1" cluster info)"
    repl="$(rcli "$1" info replication)"
    grep -q '^cluster_state:ok$' <<<"$info" && grep -q '^cluster_slots_ok:16384$' <<<"$info" \
        && { grep -q '^role:master$' <<<"$repl" || grep -q '^master_link_status:up$' <<<"$repl"; } \
        && nodes_table "$1" | awk -v live="$2" '
            $4 == "connected" { up++; if ($2 == "master") { if ($3 == "-") empty++; else full++ } }
            END { exit !(up == live && full == 3 && empty == 0) }'
}

wait_ok() { # seconds what
    local deadline=$((SECONDS + $1)) p bad live
    while :; do
        bad=""
        live="$(live_ports | wc -l)"
        for p in $(live_ports); do node_ok "$p" "$live" || bad+=" $p"; done
        [[ -z "$bad" ]] && return 0
        ((SECONDS < deadline)) || die "$2: cluster_state not ok after $1 s on:$bad (see: deploy/redis-cluster.sh nodes)"
        sleep 0.2
    done
}

# Seconds to allow for a failover or a rejoin: a few node timeouts, at least 30.
failover_wait() {
    local s=$(($(cat "$DIR/node-timeout") * 5 / 1000 + 10))
    ((s >= 30)) || s=30
    echo "$s"
}

# CLUSTER NODES, one line per node: address role slots-or-master state.
# Roles come from the flags; a replica names its master by address.
nodes_table() { # from-port
    rcli "$1" cluster nodes | awk '
        { id[NR] = $1; split($2, a, "@"); addr[NR] = a[1]; flags[NR] = $3; master[NR] = $4
          s = ""; for (i = 9; i <= NF; i++) s = s (s == "" ? "" : ",") $i; slots[NR] = s
          byid[$1] = a[1] }
        END {
            for (n = 1; n <= NR; n++) {
                f = flags[n]; state = "connected"
                if (f ~ /(^|,)fail\??(,|$)/) state = (f ~ /fail\?/) ? "pfail" : "fail"
                if (f ~ /noaddr|handshake/) state = "down"
                if (f ~ /master/) print addr[n], "master", (slots[n] == "" ? "-" : slots[n]), state
                else print addr[n], "replica", (master[n] in byid ? byid[master[n]] : master[n]), state
            }
        }' | sort -t: -k2n
}

cmd_start() {
    (($# == 0)) || die "start takes no arguments"
    need_redis_bins
    mkdir -p "$RUN_DIR"
    local p up=0
    if read_ports; then
        for p in "${PORTS[@]}"; do node_pid "$p" >/dev/null && up=$((up + 1)); done
        if ((up == 6)) && [[ -f "$ENV_FILE" ]]; then
            log "cluster already running"
            cat "$ENV_FILE"
            return 0
        fi
        ((up == 0)) || die "only $up of 6 nodes run: use restart-node PORT, or stop first"
    fi
    [[ "$NODE_TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "FUNNELD_REDIS_CLUSTER_NODE_TIMEOUT must be milliseconds (got '$NODE_TIMEOUT')"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    echo "$NODE_TIMEOUT" >"$DIR/node-timeout"
    free_ports 12 >"$DIR/ports" # from here on, `stop` cleans up even a failed start
    read_ports
    for p in "${PORTS[@]}"; do start_node "$p"; done

    local addrs=()
    for p in "${PORTS[@]}"; do addrs+=("127.0.0.1:$p"); done
    log "creating the cluster (3 masters, 1 replica each; log: $DIR/create.log)"
    if ! redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes \
            >"$DIR/create.log" 2>&1; then
        tail -n 30 "$DIR/create.log" >&2
        die "redis-cli --cluster create failed"
    fi
    wait_ok 30 "after create"

    local seed
    seed="$(nodes_table "${PORTS[0]}" | awk '$2 == "master" && $3 != "-" { print $1; exit }')"
    {
        echo "export FUNNELD_REDIS_CLUSTER_URL=redis://$seed"
        echo "export FUNNELD_REDIS_CLUSTER_NODES=$(IFS=,; echo "${addrs[*]}")"
    } >"$ENV_FILE"
    log "cluster ready:"
    nodes_table "${PORTS[0]}" | sed 's/^/    /' >&2
    cat "$ENV_FILE"
}

cmd_stop() {
    (($# == 0)) || die "stop takes no arguments"
    if ! read_ports; then
        log "no cluster started from this checkout"
        rm -rf "$ENV_FILE" "$DIR"
        return 0
    fi
    local p pid pids=()
    for p in "${PORTS[@]}"; do
        if pid="$(node_pid "$p")"; then
            redis-cli -h 127.0.0.1 -p "$p" shutdown nosave >/dev/null 2>&1 || true
            pids+=("$pid")
        fi
    done
    log "stopping ${#pids[@]} node(s)"
    reap "$STOP_TIMEOUT" "${pids[@]}"
    rm -f "$ENV_FILE"
    rm -rf "${DIR:?}"
}

cmd_status() {
    read_ports || { log "no cluster"; return 1; }
    local p pid up=0 role
    for p in "${PORTS[@]}"; do
        if pid="$(node_pid "$p")"; then
            role="$(rcli "$p" role | head -n 1)"
            log "127.0.0.1:$p: running (pid $pid), ${role:-no answer}"
            up=$((up + 1))
        else
            log "127.0.0.1:$p: down"
        fi
    done
    ((up == 6))
}

cmd_cli() {
    need_cluster
    exec redis-cli -c -h 127.0.0.1 -p "$(any_live)" "$@"
}

cmd_nodes() {
    (($# == 0)) || die "nodes takes no arguments"
    need_cluster
    nodes_table "$(any_live)"
}

cmd_kill_master() {
    need_cluster
    local port="${1:-}" table from pid
    from="$(any_live)"
    table="$(nodes_table "$from")"
    if [[ -z "$port" ]]; then
        port="$(awk '$2 == "master" && $3 != "-" && $4 == "connected" { sub(/.*:/, "", $1); print $1; exit }' <<<"$table")"
        [[ -n "$port" ]] || die "no live master with slots"
    fi
    awk -v a="127.0.0.1:$port" '$1 == a && $2 == "master" && $3 != "-" { f = 1 } END { exit !f }' <<<"$table" \
        || die "127.0.0.1:$port is not a master serving slots"
    local slots replicas
    slots="$(awk -v a="127.0.0.1:$port" '$1 == a { print $3 }' <<<"$table")"
    replicas="$(awk -v a="127.0.0.1:$port" '$2 == "replica" && $3 == a { print $1 }' <<<"$table")"
    [[ -n "$replicas" ]] || die "127.0.0.1:$port has no replica to take over"
    pid="$(node_pid "$port")" || die "node 127.0.0.1:$port is not running"

    log "killing master 127.0.0.1:$port (pid $pid, slots $slots) with SIGKILL"
    kill -KILL "$pid"
    while pid_alive "$pid"; do sleep 0.05; done

    # Promoted: one of its replicas is a live master serving those slots.
    local wait_s deadline promoted=""
    wait_s="$(failover_wait)"
    deadline=$((SECONDS + wait_s))
    while [[ -z "$promoted" ]]; do
        ((SECONDS < deadline)) || die "no replica of 127.0.0.1:$port promoted after ${wait_s}s"
        sleep 0.2
        from="$(any_live)"
        promoted="$(nodes_table "$from" | awk -v r="$replicas" -v s="$slots" '
            BEGIN { n = split(r, rs, "\n"); for (i = 1; i <= n; i++) want[rs[i]] = 1 }
            $1 in want && $2 == "master" && $3 == s && $4 == "connected" { sub(/.*:/, "", $1); print $1; exit }')"
    done
    wait_ok "$wait_s" "after the failover of 127.0.0.1:$port"
    log "127.0.0.1:$promoted took over slots $slots"
    echo "$port $promoted"
}

cmd_restart_node() {
    need_cluster
    local port="${1:-}" pid
    [[ -n "$port" ]] || die "usage: redis-cluster.sh restart-node PORT"
    bus_of "$port" >/dev/null
    if pid="$(node_pid "$port")"; then
        die "127.0.0.1:$port is running (pid $pid)"
    fi
    start_node "$port"

    # Rejoined: the others see it connected again, and a replica's link to its
    # master is up (the full resync is done).
    local wait_s deadline row
    wait_s="$(failover_wait)"
    deadline=$((SECONDS + wait_s))
    while :; do
        row="$(nodes_table "$(any_live)" | awk -v a="127.0.0.1:$port" '$1 == a')"
        if [[ "$row" == *" connected" ]]; then
            [[ "$row" == *" master "* ]] && break
            [[ "$(rcli "$port" info replication)" == *"master_link_status:up"* ]] && break
        fi
        ((SECONDS < deadline)) || die "127.0.0.1:$port has not rejoined after ${wait_s}s (now: ${row:-unknown})"
        sleep 0.2
    done
    wait_ok "$wait_s" "after restarting 127.0.0.1:$port"
    log "127.0.0.1:$port rejoined: ${row#* }"
}

cmd_reshard() {
    need_cluster
    if (($# != 3)) || [[ ! "$3" =~ ^[1-9][0-9]*$ ]]; then
        die "usage: redis-cluster.sh reshard FROM-PORT TO-PORT SLOTS"
    fi
    local from="$1" to="$2" n="$3" p table ids=()
    table="$(nodes_table "$(any_live)")"
    for p in "$from" "$to"; do
        bus_of "$p" >/dev/null
        awk -v a="127.0.0.1:$p" '$1 == a && $2 == "master" && $4 == "connected" { f = 1 } END { exit !f }' \
            <<<"$table" || die "127.0.0.1:$p is not a live master"
        ids+=("$(rcli "$p" cluster myid)")
    done
    log "moving $n slots from 127.0.0.1:$from to 127.0.0.1:$to (log: $DIR/reshard.log)"
    if ! redis-cli --cluster reshard "127.0.0.1:$from" --cluster-from "${ids[0]}" \
            --cluster-to "${ids[1]}" --cluster-slots "$n" --cluster-yes \
            --cluster-pipeline 100 >"$DIR/reshard.log" 2>&1; then
        tail -n 30 "$DIR/reshard.log" >&2
        die "redis-cli --cluster reshard failed"
    fi
    wait_ok "$(failover_wait)" "after the reshard"
    log "resharded:"
    nodes_table "$from" | sed 's/^/    /' >&2
}

case "${1:-}" in
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    status) shift; cmd_status "$@" ;;
    cli) shift; cmd_cli "$@" ;;
    nodes) shift; cmd_nodes "$@" ;;
    kill-master) shift; cmd_kill_master "$@" ;;
    restart-node) shift; cmd_restart_node "$@" ;;
    reshard) shift; cmd_reshard "$@" ;;
    -h|--help|help) usage ;;
    *) usage ;;
esac
