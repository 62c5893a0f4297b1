#!/usr/bin/env bash
# lua_profile.sh — where the step's time in Redis goes, line by line of the script Redis runs
# (timer.lua, sketch.lua, analytics.lua, attribution.lua and step.lua, as embedded):
#
#   git clone -q --depth 1 --branch 7.0.15 https://github.com/redis/redis REDIS_SRC
#   bash tests/bench/lua_profile.sh REDIS_SRC OUT [BUILD]    (BUILD: default build/)
#
# Builds REDIS_SRC with lua_profile.patch, a Lua hook on every VM instruction that charges
# the time-stamp counter's cycles since the last one to the line it was on (so a C function
# or a redis.call counts for the line that called it), and drives it with bench_redis_step on
# a 20,000-event stream of the bench's config (2,000 leads), the step called as a script
# (`-x evalsha`, so the lines are the script's: the library's text puts two more before
# step.lua's; FCALL runs the same lines, less the preludes' closures made per call). Prints
# the lines by cycles per step, less an estimate of the hook's own cost per instruction (0.8
# of the cheapest line's cycles per instruction: the cheapest line does some work of its own,
# so not all of it). The hook makes a step several times slower: the shares tell where to
# look; compare builds with callgrind (tests/bench/README.md), not with these cycles.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/../.." && pwd)
SRC=$(realpath "$1")
OUT=$(realpath -m "$2")
BUILD=$(realpath "${3:-$REPO/build}")
PORT=${LUA_PROFILE_PORT:-6513}
mkdir -p "$OUT"
if ! grep -q profHook "$SRC/src/script_lua.c"; then
    patch -d "$SRC" -p1 <"$REPO/tests/bench/lua_profile.patch"
fi
make -C "$SRC" -j2 BUILD_TLS=no USE_SYSTEMD=no >"$OUT/redis-build.log" 2>&1 ||
    { tail -20 "$OUT/redis-build.log" >&2; exit 1; }
"$BUILD/funneld-loadgen" -n 20000 -l 2000 --seed 7 --dup-rate 0.01 --bad-rate 0.001 \
    --step-ms 1000 --no-kafka --start-ts now --out "$OUT/events.jsonl" 2>/dev/null
# the bench's config: demo.json's funnels, marketing analytics off (bench_tools.py config)
/usr/bin/python3 "$REPO/tests/bench/bench_tools.py" config "$REPO/deploy/config/demo.json" \
    "$OUT/config.json" 127.0.0.1:1 "redis://127.0.0.1:$PORT" lp lp lp.in lp
rm -f "$OUT/lines.txt"
FNPROF="$OUT/lines.txt" "$SRC/src/redis-server" --port "$PORT" --save '' --appendonly no \
    --hash-max-listpack-value 128 >"$OUT/redis.log" 2>&1 &
RP=$!
trap 'kill $RP 2>/dev/null || true' EXIT
for _ in $(seq 1 50); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
"$BUILD/tests/bench/bench_redis_step" -c "$OUT/config.json" -i "$OUT/events.jsonl" -w 256 \
    -x evalsha -u "redis://127.0.0.1:$PORT" | grep RESULT >"$OUT/result.txt"
redis-cli -p "$PORT" shutdown nosave >/dev/null 2>&1 || true
wait $RP 2>/dev/null || true # the hook writes lines.txt at exit
python3 - "$BUILD/generated/step_lua.c" "$OUT/lines.txt" "$OUT/result.txt" <<'PY'
import re, sys
c = open(sys.argv[1]).read()
body = re.search(r'fn_lua_step_src\[\] = \{(.*?)\};', c, re.S).group(1)
src = bytes(int(x, 16) for x in body.split(',') if x.strip()).rstrip(b'\0')
lines = src.decode('utf-8', 'replace').split('\n')
steps = int(re.search(r'events=(\d+)', open(sys.argv[3]).read()).group(1))
rows = [tuple(map(int, l.split())) for l in open(sys.argv[2])]
hook = min(c / o for _, o, c in rows if o >= steps) * 0.8  # cycles the hook adds per instruction
total = sum(c - hook * o for _, o, c in rows)
print(f"{steps} steps; per step {sum(o for _, o, _ in rows) / steps:.0f} Lua instructions, "
      f"{total / steps:.0f} cycles less the hook's ({hook:.0f} per instruction)")
for ln, o, c in sorted(rows, key=lambda r: -(r[2] - hook * r[1]))[:40]:
    adj = c - hook * o
    text = lines[ln - 1].strip() if 0 < ln <= len(lines) else '?'
    print(f"{ln:5d} {o / steps:6.1f} ins {adj / steps:7.0f} cyc {100 * adj / total:5.1f}% | {text[:90]}")
PY
