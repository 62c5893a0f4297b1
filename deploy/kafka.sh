#!/usr/bin/env bash
# deploy/kafka.sh - owns the local, loopback-only, single-node Apache Kafka
# broker (KRaft, combined broker+controller) used by tests, demos and CI, and
# the three-node cluster of the scale-out tests (cluster-* below).
# The broker jars come from Maven Central (deploy/kafka/pom.xml); nothing else
# is downloaded.
#
#   kafka.sh fetch                    jars -> ${FUNNELD_KAFKA_HOME:-deploy/.kafka}/libs
#   kafka.sh start [--port P]         start a broker (or resume one stopped with
#                                     --keep-data); prints `export FUNNELD_BROKERS=...`
#                                     and the SASL/TLS lines below
#   kafka.sh stop [--keep-data]       stop it (and delete its data unless --keep-data)
#   kafka.sh restart                  stop the JVM, start it again on the same port/data
#   kafka.sh topics NAME:PARTS...     create topics (idempotent), replication factor 1,
#                                     on $FUNNELD_BROKERS if set, else the broker from start
#   kafka.sh status                   exit 0 if the broker from `start` is running
#
# The three-node cluster (deploy/CLUSTER.md; independent of the single broker,
# both can run at once):
#   kafka.sh cluster-start            start three broker+controller nodes (or resume
#                                     them after cluster-stop --keep-data); prints
#                                     `export FUNNELD_BROKERS_CLUSTER=h:p,h:p,h:p`
#                                     (node N = node.id N = the Nth address)
#   kafka.sh cluster-stop [--keep-data]  stop all three (SIGKILL, data deleted; with
#                                     --keep-data a controlled shutdown)
#   kafka.sh cluster-status           one line per node; exit 0 if all three run
#   kafka.sh cluster-kill N           SIGKILL node N (1-3) and wait until it is gone
#   kafka.sh cluster-restart N        (stop and) start node N again on its data; waits
#                                     until it is back in the cluster
#   kafka.sh cluster-topics NAME:PARTS...  create topics (idempotent) with replication
#                                     factor 3 and min.insync.replicas 2, on
#                                     $FUNNELD_BROKERS_CLUSTER if set, else the cluster;
#                                     waits until every node has them, 3 replicas in sync
# Defaults (environment): FUNNELD_KAFKA_CLUSTER_HEAP="-Xmx256m -Xms64m" per node;
# FUNNELD_KAFKA_CLUSTER_SESSION_MS=6000, after which a dead node is fenced (its
# partitions' leadership and ISR move on).
#
# Besides PLAINTEXT (port P) the broker listens on loopback with SASL_PLAINTEXT
# (mechanism PLAIN, one user with a random password) and with SSL (a self-signed
# certificate for 127.0.0.1 and localhost made with the JDK's keytool), so the
# clients' security settings can be tested. kafka.env then also exports
#   FUNNELD_BROKERS_SASL        host:port of the SASL_PLAINTEXT listener
#   FUNNELD_KAFKA_SASL_USER     its PLAIN user
#   FUNNELD_KAFKA_SASL_PASSWORD that user's password
#   FUNNELD_BROKERS_SSL         host:port of the SSL listener
#   FUNNELD_KAFKA_CA            the certificate to trust, PEM (ssl.ca.location)
# The password and the keystore are made once per data dir (kafka-<port>/tls).
#
# State lives in ${FUNNELD_RUN_DIR:-deploy/.run}: kafka.env, kafka.pid, kafka.port
# and kafka-<port>/{server.properties,log4j.properties,security.env,tls/,kafka.log,gc.log,
# data/} (gc.log: the JVM's pauses, where Java 9 or later runs the broker);
# the cluster's in kafka-cluster.env and kafka-cluster/ (above).
# Progress goes to stderr; stdout only carries the export lines, so
# `eval "$(deploy/kafka.sh start)"` works.
set -euo pipefail

REPO="$(cd "$(dirname "$0")/.." && pwd)"
KAFKA_HOME="${FUNNELD_KAFKA_HOME:-$REPO/deploy/.kafka}"
RUN_DIR="${FUNNELD_RUN_DIR:-$REPO/deploy/.run}"
POM="$REPO/deploy/kafka/pom.xml"
LIBS="$KAFKA_HOME/libs"
MARKER="$KAFKA_HOME/.fetched"
ENV_FILE="$RUN_DIR/kafka.env"
PID_FILE="$RUN_DIR/kafka.pid"
PORT_FILE="$RUN_DIR/kafka.port"
START_TIMEOUT="${FUNNELD_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=20
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
CLUSTER_DIR="$RUN_DIR/kafka-cluster"
CLUSTER_ENV="$RUN_DIR/kafka-cluster.env"
CLUSTER_HEAP="${FUNNELD_KAFKA_CLUSTER_HEAP:--Xmx256m -Xms64m}"
CLUSTER_SESSION_MS="${FUNNELD_KAFKA_CLUSTER_SESSION_MS:-6000}"

# log, die, usage, wait_exit, reap, wait_port_closed; port_open, pid_alive, free_ports
# shellcheck source=deploy/lib/service.sh
source "$REPO/deploy/lib/service.sh"

need_java() {
    command -v java >/dev/null 2>&1 || die "java not found on PATH (run deploy/install-deps.sh)"
}

kcat_bin() {
    # Debian's `kafkacat` package ships /usr/bin/kcat (bookworm) or
    # /usr/bin/kafkacat (older releases).
    command -v kcat 2>/dev/null || command -v kafkacat 2>/dev/null || true
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

# ---------------------------------------------------------------- fetch
cmd_fetch() {
    [[ -f "$POM" ]] || die "missing $POM"
    local want
    want="$(pom_hash)"
    if [[ -f "$MARKER" && "$(cat "$MARKER")" == "$want" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
        log "jars already fetched in $LIBS"
        return 0
    fi
    command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (run deploy/install-deps.sh)"
    need_java
    mkdir -p "$KAFKA_HOME"
    # Fetch into a scratch dir and swap it in, so an interrupted fetch never
    # leaves a half-filled libs/ behind a valid marker.
    local tmp="$KAFKA_HOME/libs.tmp.$$" mlog="$KAFKA_HOME/fetch.log"
    rm -rf "$tmp" "$MARKER"
    log "fetching Kafka jars from Maven Central into $LIBS ..."
    if ! mvn -B -q -f "$POM" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$mlog" 2>&1; then
        tail -n 40 "$mlog" >&2 || true
        rm -rf "$tmp"
        die "mvn dependency:copy-dependencies failed (full log: $mlog)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || { rm -rf "$tmp"; die "mvn ran but no kafka_2.13 jar in $tmp"; }
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    echo "$want" >"$MARKER"
    log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars"
}

need_libs() {
    if [[ ! -f "$MARKER" ]] || ! compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
        die "Kafka jars not fetched; run: deploy/kafka.sh fetch"
    fi
    need_java
}

# log4j 1.x (reload4j) config for the command-line tools: warnings to stderr.
tools_log4j() {
    local f="$KAFKA_HOME/tools-log4j.properties"
    if [[ ! -f "$f" ]]; then
        cat >"$f" <<'EOF'
log4j.rootLogger=WARN, stderr
log4j.appender.stderr=org.apache.log4j.ConsoleAppender
log4j.appender.stderr.Target=System.err
log4j.appender.stderr.layout=org.apache.log4j.PatternLayout
log4j.appender.stderr.layout.ConversionPattern=[%d] %p %m (%c)%n
EOF
    fi
    printf '%s' "$f"
}

# Run a Kafka Java tool class from the fetched jars.
kjava() {
    local l4j
    l4j="$(tools_log4j)"
    java -Xmx256m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$l4j" -cp "$LIBS/*" "$@"
}

running_pid() {
    local pid
    [[ -f "$PID_FILE" ]] || return 1
    pid="$(cat "$PID_FILE")"
    pid_alive "$pid" || return 1
    # Guard against pid reuse: it must be our JVM.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'kafka\.Kafka' || return 1
    echo "$pid"
}

# ---------------------------------------------------------------- start
# A random secret of letters and digits (safe in JAAS, properties and env files).
secret() { head -c 24 /dev/urandom | base64 | tr -dc 'A-Za-z0-9'; }

# The SSL listener's keystore: one self-signed key pair for 127.0.0.1 and
# localhost (librdkafka checks the broker's name against the certificate by
# default), and its certificate as PEM for the clients to trust.
make_keystore() { # dir
    local tls="$1/tls" pass
    pass="$(cat "$tls/storepass")"
    keytool -genkeypair -alias broker -keyalg EC -groupname secp256r1 -validity 3650 \
        -dname "CN=localhost, O=funneld test broker" -ext "SAN=IP:127.0.0.1,DNS:localhost" \
        -keystore "$tls/broker.p12" -storetype PKCS12 -storepass "$pass" -keypass "$pass" \
        -noprompt >"$tls/keytool.log" 2>&1 &&
        keytool -exportcert -rfc -alias broker -keystore "$tls/broker.p12" -storetype PKCS12 \
            -storepass "$pass" -file "$tls/ca.pem" >>"$tls/keytool.log" 2>&1
}

write_config() { # dir port cport sport tport
    local dir="$1" port="$2" cport="$3" sport="$4" tport="$5"
    local spass kpass
    spass="$(secret)" kpass="$(secret)"
    mkdir -p "$dir/data" "$dir/tls"
    chmod 700 "$dir/tls"
    (umask 077; echo "$kpass" >"$dir/tls/storepass")
    (umask 077; cat >"$dir/security.env") <<EOF
export FUNNELD_BROKERS_SASL=127.0.0.1:$sport
export FUNNELD_KAFKA_SASL_USER=funneld
export FUNNELD_KAFKA_SASL_PASSWORD=$spass
export FUNNELD_BROKERS_SSL=127.0.0.1:$tport
export FUNNELD_KAFKA_CA=$dir/tls/ca.pem
EOF
    {
        cat <<EOF
# Generated by deploy/kafka.sh - single-node KRaft broker on loopback.
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport
advertised.listeners=PLAINTEXT://127.0.0.1:$port,SASL_PLAINTEXT://127.0.0.1:$sport,SSL://127.0.0.1:$tport
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_funneld="$spass";
ssl.keystore.type=PKCS12
ssl.keystore.location=$dir/tls/broker.p12
ssl.keystore.password=$kpass
ssl.key.password=$kpass
ssl.client.auth=none
EOF
        common_properties "$dir"
        replication_properties 1 1
    } | (umask 077; cat >"$dir/server.properties")
    write_log4j "$dir"
}

# The server.properties lines every broker here shares, single or one of the
# cluster's three: combined broker+controller roles, no auto-created topics,
# small thread pools and buffers (the machine is shared with the tests).
common_properties() { # dir
    cat <<EOF
process.roles=broker,controller
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$1/data
num.partitions=1
auto.create.topics.enable=false
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
log.segment.bytes=67108864
log.cleaner.dedupe.buffer.size=8388608
delete.topic.enable=true
EOF
}

# Replication: RF for new topics and Kafka's internal ones, and the ISR a
# write with acks=all needs (1 and 1 alone, 3 and 2 in the cluster).
replication_properties() { # replication-factor min-insync-replicas
    cat <<EOF
default.replication.factor=$1
min.insync.replicas=$2
offsets.topic.replication.factor=$1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=$1
transaction.state.log.min.isr=$2
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=$1
share.coordinator.state.topic.min.isr=$2
EOF
}

write_log4j() { # dir
    cat >"$1/log4j.properties" <<'EOF'
# Generated by deploy/kafka.sh - broker log goes to stdout (kafka.log).
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.clients=WARN
log4j.logger.org.apache.kafka.common.utils.AppInfoParser=WARN
EOF
}

# A Kafka cluster id is a base64url (unpadded) 16-byte UUID.
cluster_id() {
    local cid=-
    # One in 64 starts with '-', which StorageTool's argument parser takes for an option.
    while [[ "$cid" == -* ]]; do
        cid="$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    printf '%s' "$cid"
}

format_storage() { # dir [cluster-id]: the cluster's nodes share one id
    local dir="$1" cid="${2:-}"
    [[ -n "$cid" ]] || cid="$(cluster_id)"
    # Static quorum (controller.quorum.voters), so no --standalone here.
    if ! kjava kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" \
            >"$dir/format.log" 2>&1; then
        cat "$dir/format.log" >&2
        die "kafka.tools.StorageTool format failed"
    fi
}

# The SASL and SSL listeners' ports of a data dir (none for an older one).
extra_ports() { # dir
    [[ -f "$1/security.env" ]] || return 0
    sed -n 's/^export FUNNELD_BROKERS_\(SASL\|SSL\)=127\.0\.0\.1://p' "$1/security.env"
}

broker_ready() { # port [brokers]: ready once its metadata lists that many brokers
    local port="$1" n="${2:-1}" kc
    port_open "$port" || return 1
    kc="$(kcat_bin)"
    if [[ -n "$kc" ]]; then
        "$kc" -L -b "127.0.0.1:$port" -m 3 2>/dev/null | grep -q "^ *$n brokers:"
    else
        kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$port" \
            --list >/dev/null 2>&1
    fi
}

# Start the broker JVM of a data dir, detached; its pid goes to $SPAWNED_PID
# (not printed: a command substitution would make the JVM a grandchild).
SPAWNED_PID=
spawn_broker() { # dir heap-opts
    local dir="$1" heap="$2"
    local logf="$dir/kafka.log"
    # The GC log shows whether a latency spike was a broker pause; -Xlog needs Java 9+.
    local gclog=()
    if java -Xlog:disable -version >/dev/null 2>&1; then
        gclog=("-Xlog:gc:file=$dir/gc.log:time,uptime:filecount=2,filesize=10m")
    fi
    # setsid: the broker must outlive this script and its caller's process group.
    # In a non-interactive shell a background job is not a group leader, so
    # setsid execs in place and $! is the JVM's pid.
    # shellcheck disable=SC2086
    setsid java $heap -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 "${gclog[@]}" \
        -Djava.awt.headless=true \
        -Dlog4j.configuration="file:$dir/log4j.properties" \
        -Dkafka.logs.dir="$dir" \
        -cp "$LIBS/*" kafka.Kafka "$dir/server.properties" \
        </dev/null >>"$logf" 2>&1 &
    SPAWNED_PID=$!
}

launch() { # dir port
    local dir="$1" port="$2" pid
    local logf="$dir/kafka.log"
    log "starting broker on 127.0.0.1:$port (log: $logf)"
    spawn_broker "$dir" "$KAFKA_HEAP_OPTS"
    pid=$SPAWNED_PID
    echo "$pid" >"$PID_FILE"
    echo "$port" >"$PORT_FILE"

    local deadline=$((SECONDS + START_TIMEOUT))
    until broker_ready "$port"; do
        if ! pid_alive "$pid"; then
            tail -n 60 "$logf" >&2 || true
            rm -f "$PID_FILE"
            die "broker JVM (pid $pid) exited during startup; log: $logf"
        fi
        if ((SECONDS >= deadline)); then
            tail -n 60 "$logf" >&2 || true
            kill -9 "$pid" 2>/dev/null || true
            rm -f "$PID_FILE"
            die "broker not ready on 127.0.0.1:$port after ${START_TIMEOUT}s; log: $logf"
        fi
        sleep 0.5
    done
    # The other listeners open with the PLAINTEXT one; make sure before saying so.
    local p
    for p in $(extra_ports "$dir"); do
        until port_open "$p"; do
            ((SECONDS < deadline)) || die "listener 127.0.0.1:$p not open; log: $logf"
            sleep 0.2
        done
    done
    {
        echo "export FUNNELD_BROKERS=127.0.0.1:$port"
        # a data dir made by an older kafka.sh has no SASL/SSL listeners
        [[ -f "$dir/security.env" ]] && cat "$dir/security.env"
    } >"$ENV_FILE.tmp"
    chmod 600 "$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    log "broker ready (pid $pid)"
    cat "$ENV_FILE"
}

cmd_start() {
    local port="" cport="" sport="" tport=""
    while (($#)); do
        case "$1" in
            --port) port="${2:?--port needs a value}"; shift 2 ;;
            *) die "start: unknown argument '$1'" ;;
        esac
    done
    need_libs
    mkdir -p "$RUN_DIR"
    if running_pid >/dev/null; then
        log "broker already running (pid $(cat "$PID_FILE"))"
        cat "$ENV_FILE"
        return 0
    fi
    if [[ -z "$port" && -f "$PORT_FILE" ]]; then
        # Stopped earlier with --keep-data: resume it on the same port.
        local old
        old="$(cat "$PORT_FILE")"
        [[ -f "$RUN_DIR/kafka-$old/data/meta.properties" ]] && port="$old"
    fi
    if [[ -z "$port" ]]; then
        read -r port cport sport tport <<<"$(free_ports 4)"
    fi
    local dir="$RUN_DIR/kafka-$port"
    if [[ -f "$dir/server.properties" && -f "$dir/data/meta.properties" ]]; then
        # Resume a broker stopped with --keep-data (same ports, same data).
        log "reusing existing config and data in $dir"
    else
        port_open "$port" && die "port $port is already in use"
        if [[ -z "$cport" ]]; then
            # --port P: the other three anywhere else
            local p others=()
            for p in $(free_ports 4); do [[ "$p" != "$port" ]] && others+=("$p"); done
            cport="${others[0]}" sport="${others[1]}" tport="${others[2]}"
        fi
        rm -rf "$dir"
        write_config "$dir" "$port" "$cport" "$sport" "$tport"
        # keytool (a JVM of its own) runs while the storage is formatted
        make_keystore "$dir" &
        local kpid=$!
        format_storage "$dir"
        wait "$kpid" || { cat "$dir/tls/keytool.log" >&2; die "keytool failed"; }
    fi
    port_open "$port" && die "port $port is already in use by another process"
    launch "$dir" "$port"
}

# ---------------------------------------------------------------- stop
cmd_stop() {
    local keep
    keep="$(keep_data_flag stop "$@")"
    local pid port=""
    [[ -f "$PORT_FILE" ]] && port="$(cat "$PORT_FILE")"
    if pid="$(running_pid)"; then
        log "stopping broker (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        reap "$STOP_TIMEOUT" "$pid"
    else
        log "no running broker"
    fi
    rm -f "$PID_FILE" "$ENV_FILE"
    if ((keep)); then
        [[ -n "$port" ]] && log "kept data in $RUN_DIR/kafka-$port"
    else
        [[ -n "$port" ]] && rm -rf "${RUN_DIR:?}/kafka-$port"
        rm -f "$PORT_FILE"
    fi
}

cmd_restart() {
    [[ -f "$PORT_FILE" ]] || die "restart: no broker to restart (no $PORT_FILE); use start"
    local port
    port="$(cat "$PORT_FILE")"
    cmd_stop --keep-data
    # Wait for the listener to be released before rebinding the same port.
    wait_port_closed 10 "$port"
    cmd_start --port "$port"
}

cmd_status() {
    local pid
    if pid="$(running_pid)"; then
        log "running (pid $pid), $(head -n 1 "$ENV_FILE" 2>/dev/null)"
    else
        log "not running"
        return 1
    fi
}

# ---------------------------------------------------------------- topics
bootstrap() {
    [[ -n "${FUNNELD_BROKERS:-}" ]] && { echo "$FUNNELD_BROKERS"; return; }
    running_pid >/dev/null || die "no running broker (run: deploy/kafka.sh start)"
    sed -n 's/^export FUNNELD_BROKERS=//p' "$ENV_FILE"
}

cmd_topics() {
    (($#)) || die "usage: kafka.sh topics NAME:PARTITIONS [NAME:PARTITIONS...]"
    need_libs
    local b
    b="$(bootstrap)"
    [[ -n "$b" ]] || die "cannot determine the bootstrap address"
    create_topics "$b" 1 "" "$@"
}

# Create topics (idempotent) and wait until every partition has a leader.
# min-insync "" leaves the broker's default.
create_topics() { # bootstrap replication-factor min-insync NAME:PARTITIONS...
    local b="$1" rf="$2" isr="$3" spec name parts
    shift 3
    local cfg=()
    [[ -n "$isr" ]] && cfg=(--config "min.insync.replicas=$isr")
    for spec in "$@"; do
        [[ "$spec" =~ ^([A-Za-z0-9._-]+):([1-9][0-9]*)$ ]] \
            || die "bad topic spec '$spec' (want NAME:PARTITIONS, e.g. orders:6)"
    done
    # One JVM per topic, run concurrently (each takes ~1-2 s).
    local pids=() tmp
    tmp="$(mktemp -d)"
    for spec in "$@"; do
        name="${spec%:*}" parts="${spec##*:}"
        kjava org.apache.kafka.tools.TopicCommand --bootstrap-server "$b" --create \
            --if-not-exists --topic "$name" --partitions "$parts" \
            --replication-factor "$rf" "${cfg[@]}" >"$tmp/$name.out" 2>&1 &
        pids+=($!)
    done
    local i=0 fail=0
    for spec in "$@"; do
        name="${spec%:*}"
        if ! wait "${pids[$i]}"; then
            cat "$tmp/$name.out" >&2
            log "failed to create topic $name"
            fail=1
        fi
        i=$((i + 1))
    done
    rm -rf "$tmp"
    ((fail == 0)) || die "topic creation failed"

    # Wait until every partition has a leader, so producers can use the
    # topics right away.
    for spec in "$@"; do
        wait_topic "$b" "${spec%:*}" "${spec##*:}" 0
        log "topic ${spec%:*} ready"
    done
}

# Wait until the broker(s) at BOOTSTRAP know the topic and every partition has
# a leader and, if ISR > 0, at least that many in-sync replicas. Without kcat,
# nothing to wait with: return at once.
wait_topic() { # bootstrap name partitions isr
    local b="$1" name="$2" parts="$3" isr="$4" kc md have
    kc="$(kcat_bin)"
    [[ -n "$kc" ]] || return 0
    local deadline=$((SECONDS + 30))
    while :; do
        md="$("$kc" -L -b "$b" -t "$name" -m 3 2>/dev/null || true)"
        have="$(sed -n "s/^ *topic \"$name\" with \([0-9]*\) partitions:.*/\1/p" <<<"$md")"
        if [[ -n "$have" ]] && ! grep -qE 'leader -1|Broker: |Local: ' <<<"$md" &&
            awk -v n="$isr" '/^ *partition [0-9]+,/ && split($NF, r, ",") < n { bad = 1 } END { exit bad }' <<<"$md"; then
            ((have == parts)) || log "note: topic $name already existed with $have partitions (wanted $parts)"
            break
        fi
        ((SECONDS < deadline)) || die "topic $name on $b: no leader (or fewer than $isr in sync) after 30s"
        sleep 0.3
    done
}

# ---------------------------------------------------------------- cluster
# Three combined broker+controller KRaft nodes (node.id 1-3, one static
# quorum) from the same jars, PLAINTEXT only, for the scale-out tests (SPEC §9):
# replication factor 3 and min.insync.replicas 2 for every topic and for
# Kafka's own (offsets, transactions), so a write with acks=all survives one
# node's death. State: $CLUSTER_DIR/{ports,node-N/{server.properties,
# log4j.properties,kafka.pid,kafka.log,gc.log,data/}} and $CLUSTER_ENV.

# The nodes' client ports (three) then controller ports (three), from `ports`.
CPORTS=()
read_cluster_ports() {
    [[ -f "$CLUSTER_DIR/ports" ]] || return 1
    read -r -a CPORTS <"$CLUSTER_DIR/ports"
    ((${#CPORTS[@]} == 6)) || die "corrupt $CLUSTER_DIR/ports"
}

check_node() { # N
    [[ "${1:-}" =~ ^[123]$ ]] || die "node must be 1, 2 or 3 (got '${1:-}')"
}

node_pid() { # N: the running JVM of node N, else fail
    local f="$CLUSTER_DIR/node-$1/kafka.pid" pid
    [[ -f "$f" ]] || return 1
    pid="$(cat "$f")"
    pid_alive "$pid" || return 1
    # Guard against pid reuse: it must be this node's JVM.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
        | grep -qF "kafka.Kafka $CLUSTER_DIR/node-$1/server.properties" || return 1
    echo "$pid"
}

write_node_config() { # N
    local n="$1" dir="$CLUSTER_DIR/node-$1"
    local port="${CPORTS[$((n - 1))]}" cport="${CPORTS[$((n + 2))]}"
    local voters="1@127.0.0.1:${CPORTS[3]},2@127.0.0.1:${CPORTS[4]},3@127.0.0.1:${CPORTS[5]}"
    # A node that stops heartbeating is fenced after the session timeout: its
    # partitions get new leaders and it leaves their ISR, so acks=all writes
    # resume with two replicas. Kafka's 9 s default is long for a test.
    local hb=$((CLUSTER_SESSION_MS / 4))
    ((hb >= 100)) || hb=100
    mkdir -p "$dir/data"
    {
        cat <<EOF
# Generated by deploy/kafka.sh - node $n of the three-node KRaft cluster on loopback.
node.id=$n
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
broker.session.timeout.ms=$CLUSTER_SESSION_MS
broker.heartbeat.interval.ms=$hb
EOF
        common_properties "$dir"
        replication_properties 3 2
    } >"$dir/server.properties"
    write_log4j "$dir"
}

cluster_bootstrap() {
    local p out=()
    for p in "${CPORTS[@]:0:3}"; do out+=("127.0.0.1:$p"); done
    (IFS=,; echo "${out[*]}")
}

# Wait until node N answers and lists all three brokers (so it has joined
# and been unfenced); fail early if its JVM dies.
wait_node_ready() { # N deadline
    local n="$1" deadline="$2" port="${CPORTS[$(($1 - 1))]}" pid
    pid="$(cat "$CLUSTER_DIR/node-$n/kafka.pid")"
    until broker_ready "$port" 3; do
        # Not node_pid: right after the spawn the process may not have exec'd java yet, so
        # its command line is not the JVM's; only whether it still lives matters here.
        pid_alive "$pid" \
            || { tail -n 40 "$CLUSTER_DIR/node-$n/kafka.log" >&2 || true; die "node $n (127.0.0.1:$port) exited during startup; log: $CLUSTER_DIR/node-$n/kafka.log"; }
        if ((SECONDS >= deadline)); then
            tail -n 40 "$CLUSTER_DIR/node-$n/kafka.log" >&2 || true
            die "node $n not ready on 127.0.0.1:$port after ${START_TIMEOUT}s; log: $CLUSTER_DIR/node-$n/kafka.log"
        fi
        sleep 0.5
    done
}

spawn_node() { # N
    local n="$1" port="${CPORTS[$(($1 - 1))]}"
    port_open "$port" && die "port $port (node $n) is already in use"
    log "starting node $n on 127.0.0.1:$port (log: $CLUSTER_DIR/node-$n/kafka.log)"
    spawn_broker "$CLUSTER_DIR/node-$n" "$CLUSTER_HEAP"
    echo "$SPAWNED_PID" >"$CLUSTER_DIR/node-$n/kafka.pid"
}

cmd_cluster_start() {
    (($# == 0)) || die "cluster-start takes no arguments"
    need_libs
    mkdir -p "$RUN_DIR"
    local n up=0
    if read_cluster_ports; then
        for n in 1 2 3; do node_pid "$n" >/dev/null && up=$((up + 1)); done
        if ((up == 3)) && [[ -f "$CLUSTER_ENV" ]]; then
            log "cluster already running"
            cat "$CLUSTER_ENV"
            return 0
        fi
        ((up == 0)) || die "only $up of 3 nodes run: use cluster-restart N, or cluster-stop first"
    fi
    if read_cluster_ports && [[ -f "$CLUSTER_DIR/node-1/data/meta.properties" &&
        -f "$CLUSTER_DIR/node-2/data/meta.properties" &&
        -f "$CLUSTER_DIR/node-3/data/meta.properties" ]]; then
        log "resuming the cluster in $CLUSTER_DIR (stopped with --keep-data)"
    else
        rm -rf "$CLUSTER_DIR"
        mkdir -p "$CLUSTER_DIR"
        free_ports 6 >"$CLUSTER_DIR/ports"
        read_cluster_ports
        local cid pids=()
        cid="$(cluster_id)"
        for n in 1 2 3; do
            write_node_config "$n"
            # three StorageTool JVMs at once; each exits via die on failure
            (format_storage "$CLUSTER_DIR/node-$n" "$cid") &
            pids+=($!)
        done
        for n in 0 1 2; do wait "${pids[$n]}" || die "formatting node $((n + 1)) failed"; done
    fi
    for n in 1 2 3; do spawn_node "$n"; done
    local deadline=$((SECONDS + START_TIMEOUT))
    for n in 1 2 3; do wait_node_ready "$n" "$deadline"; done
    echo "export FUNNELD_BROKERS_CLUSTER=$(cluster_bootstrap)" >"$CLUSTER_ENV"
    log "cluster ready (pids $(cat "$CLUSTER_DIR"/node-{1,2,3}/kafka.pid | paste -sd " "))"
    cat "$CLUSTER_ENV"
}

# Signal the given nodes' JVMs and wait until they are gone: TERM first (a
# controlled shutdown, with a grace of STOP_TIMEOUT), or KILL right away.
stop_nodes() { # TERM|KILL N...
    local sig="$1" n pid pids=()
    shift
    for n in "$@"; do
        if pid="$(node_pid "$n")"; then
            log "stopping node $n (pid $pid, SIG$sig)"
            kill -"$sig" "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
    done
    reap "$STOP_TIMEOUT" "${pids[@]}"
}

cmd_cluster_stop() {
    local keep
    keep="$(keep_data_flag cluster-stop "$@")"
    if [[ ! -d "$CLUSTER_DIR" ]]; then
        log "no cluster started from this checkout"
        rm -f "$CLUSTER_ENV"
        return 0
    fi
    rm -f "$CLUSTER_ENV"
    if ((keep)); then
        stop_nodes TERM 1 2 3
        log "kept data in $CLUSTER_DIR"
    else
        # The data goes anyway: no need for a controlled shutdown.
        stop_nodes KILL 1 2 3
        rm -rf "${CLUSTER_DIR:?}"
    fi
}

cmd_cluster_status() {
    read_cluster_ports || { log "no cluster"; return 1; }
    local n pid up=0
    for n in 1 2 3; do
        if pid="$(node_pid "$n")"; then
            log "node $n: running (pid $pid) on 127.0.0.1:${CPORTS[$((n - 1))]}"
            up=$((up + 1))
        else
            log "node $n: down (127.0.0.1:${CPORTS[$((n - 1))]})"
        fi
    done
    ((up == 3))
}

cmd_cluster_kill() { # N
    check_node "${1:-}"
    read_cluster_ports || die "no cluster (run: deploy/kafka.sh cluster-start)"
    local pid
    pid="$(node_pid "$1")" || die "node $1 is not running"
    log "killing node $1 (pid $pid, 127.0.0.1:${CPORTS[$(($1 - 1))]}) with SIGKILL"
    stop_nodes KILL "$1"
}

cmd_cluster_restart() { # N
    check_node "${1:-}"
    read_cluster_ports || die "no cluster (run: deploy/kafka.sh cluster-start)"
    local n="$1" port="${CPORTS[$(($1 - 1))]}"
    stop_nodes TERM "$n"
    wait_port_closed 10 "$port"
    spawn_node "$n"
    wait_node_ready "$n" $((SECONDS + START_TIMEOUT))
    log "node $n ready (pid $(cat "$CLUSTER_DIR/node-$n/kafka.pid"))"
}

cmd_cluster_topics() {
    (($#)) || die "usage: kafka.sh cluster-topics NAME:PARTITIONS [NAME:PARTITIONS...]"
    need_libs
    local b="${FUNNELD_BROKERS_CLUSTER:-}"
    if [[ -z "$b" ]]; then
        [[ -f "$CLUSTER_ENV" ]] || die "no running cluster (run: deploy/kafka.sh cluster-start)"
        b="$(sed -n 's/^export FUNNELD_BROKERS_CLUSTER=//p' "$CLUSTER_ENV")"
    fi
    create_topics "$b" 3 2 "$@"
    # Each node learns of a new topic on its own time: one that has not yet
    # answers a client that asks it with UNKNOWN_TOPIC_OR_PART. Ready means
    # every node knows it, with all three replicas in sync.
    if read_cluster_ports && [[ "$b" == "$(cluster_bootstrap)" ]]; then
        local spec p
        for spec in "$@"; do
            for p in "${CPORTS[@]:0:3}"; do
                wait_topic "127.0.0.1:$p" "${spec%:*}" "${spec##*:}" 3
            done
            log "topic ${spec%:*} known to all three nodes, 3 replicas in sync"
        done
    fi
}

# ---------------------------------------------------------------- main
case "${1:-}" in
    fetch) shift; cmd_fetch "$@" ;;
    start) shift; cmd_start "$@" ;;
    stop) shift; cmd_stop "$@" ;;
    restart) shift; cmd_restart "$@" ;;
    topics) shift; cmd_topics "$@" ;;
    status) shift; cmd_status "$@" ;;
    cluster-start) shift; cmd_cluster_start "$@" ;;
    cluster-stop) shift; cmd_cluster_stop "$@" ;;
    cluster-status) shift; cmd_cluster_status "$@" ;;
    cluster-kill) shift; cmd_cluster_kill "$@" ;;
    cluster-restart) shift; cmd_cluster_restart "$@" ;;
    cluster-topics) shift; cmd_cluster_topics "$@" ;;
    -h|--help|help) usage ;;
    *) usage ;;
esac
