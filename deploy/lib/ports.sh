# shellcheck shell=bash
# deploy/lib/ports.sh - sourced, not run: the loopback port and process helpers
# shared by deploy/kafka.sh and deploy/redis-cluster.sh (one copy of each).
#
#   port_open PORT     true if something accepts on 127.0.0.1:PORT
#   pid_alive PID      true if PID exists (and is ours to signal)
#   free_ports N       print N distinct free loopback TCP ports on one line
#
# Needs a `die` function from the script that sources it.

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# The ports are drawn from 20000-32767, below Linux's default ephemeral range
# (32768-60999), so an outgoing client connection cannot grab one between a
# node's stop and its restart on the same port. All N are held bound until the
# last is found, so they are distinct.
free_ports() {
    local n="$1"
    if command -v python3 >/dev/null 2>&1; then
        python3 - "$n" <<'PY'
import random, socket, sys
n = int(sys.argv[1]); held = []; ports = []
for _ in range(5000):
    p = random.randint(20000, 32767)
    if p in ports:
        continue
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", p))   # no SO_REUSEADDR: TIME_WAIT counts as busy
    except OSError:
        s.close(); continue
    held.append(s); ports.append(p)
    if len(ports) == n:
        break
if len(ports) < n:
    sys.exit("no free loopback port found")
print(" ".join(map(str, ports)))
PY
    else
        local out=() p tries=0
        while ((${#out[@]} < n)); do
            ((tries++ < 5000)) || die "no free loopback port found"
            p=$((20000 + RANDOM % 12768))
            [[ " ${out[*]} " == *" $p "* ]] && continue
            port_open "$p" && continue
            out+=("$p")
        done
        echo "${out[*]}"
    fi
}
