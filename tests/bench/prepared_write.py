#!/usr/bin/env python3
"""prepared_write.py — what Redis would spend per event if the daemon decided each step in C
and Redis only applied the writes (issue 19's question; tests/bench/README.md has the run).

It replays the writes the real Lua step made, captured with MONITOR, through a minimal Lua
applier that keeps what must stay atomic in Redis (a version check on the lead, the seen-id
check) and does no deciding, and reports its Redis cost per event from INFO commandstats.

Capture (a private redis-server on PORT; MONITOR slows it, which does not matter here):
  redis-cli -p PORT flushall; redis-cli -p PORT monitor > mon.txt &
  build/tests/bench/bench_redis_step -c CONFIG -i EVENTS.jsonl -w 256 -u redis://127.0.0.1:PORT/0
  kill %1
Then:
  /usr/bin/python3 tests/bench/prepared_write.py mon.txt PORT
Each step's writes (every command its Lua called except the reads) become one EVALSHA of the
applier; the lead's HSET also writes a version field. Run twice: without and with an HGETALL
of the lead before each applier call (a daemon that holds the lead's state does not need it;
one that does not reads it first). It FLUSHALLs the server: never point it at real data.
"""
import re
import sys
import time

import redis

READS = {b"HMGET", b"ZSCORE", b"HGET", b"HGETALL", b"ZRANGEBYSCORE", b"EXISTS"}
APPLIER = b"""
local v = redis.call('HGET', KEYS[1], 'ver')
if (v or '') ~= ARGV[1] then return {'conflict', v or ''} end
if redis.call('ZSCORE', KEYS[2], ARGV[2]) then return {'dup'} end
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
end
return {'ok'}
"""
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


def unquote(s):
    return s.encode("latin-1", "backslashreplace").decode("unicode_escape").encode("latin-1", "ignore")


def steps(path):
    """[(lead key, seen key, event id, [write command, ...])] in the order they ran."""
    out, cur = [], None
    for line in open(path, encoding="latin-1"):
        if '] "EVALSHA"' in line or '] "FCALL"' in line:
            a = [unquote(x) for x in QUOTED.findall(line)]
            keys, argv = a[3:10], a[10:]  # EVALSHA sha (FCALL name) 7 KEYS[1..7] ARGV...; ARGV[4]: event id
            cur = [keys[0], keys[1], argv[3], []]
            out.append(cur)
        elif "[0 lua]" in line and cur is not None:
            a = [unquote(x) for x in QUOTED.findall(line)]
            if a[0].upper() not in READS:
                cur[3].append(a)
    return out


def run(r, sha, events, read_first):
    r.flushall()
    r.script_load(APPLIER)
    r.config_resetstat()
    version, pipe, n = {}, r.pipeline(transaction=False), 0
    for lead, seen, event_id, writes in events:
        v = version.get(lead, 0)
        argv = [str(v) if v else "", event_id]
        for w in writes:
            if w[0].upper() == b"HSET" and w[1] == lead:
                w = w + [b"ver", str(v + 1).encode()]
                version[lead] = v + 1
            argv.append(str(len(w)))
            argv.extend(w)
        if read_first:
            pipe.hgetall(lead)
        pipe.evalsha(sha, 2, lead, seen, *argv)
        n += 1
        if n % 256 == 0:
            # 'dup': a copy of an event in the stream, as the real step found it too
            bad = [x for x in pipe.execute() if isinstance(x, list) and x[0] == b"conflict"]
            if bad:
                sys.exit(f"prepared_write.py: the applier refused: {bad[0]}")
            pipe = r.pipeline(transaction=False)
    pipe.execute()
    st = r.info("commandstats")
    ev = st["cmdstat_evalsha"]
    hg = st.get("cmdstat_hgetall", {"usec": 0})
    writes = sum(len(e[3]) for e in events) / len(events)
    print(f"RESULT prepared_write events={len(events)} read_first={int(read_first)} "
          f"writes_per_event={writes:.2f} applier_us={ev['usec_per_call']:.2f} "
          f"read_us={hg['usec'] / len(events):.2f} "
          f"total_us={(ev['usec'] + hg['usec']) / len(events):.2f}")


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    events = steps(sys.argv[1])
    if not events:
        sys.exit(f"prepared_write.py: no step (EVALSHA or FCALL) in {sys.argv[1]}")
    r = redis.Redis(port=int(sys.argv[2]))
    sha = r.script_load(APPLIER)
    t0 = time.time()
    run(r, sha, events, False)
    run(r, sha, events, True)
    print(f"prepared_write.py: {len(events)} steps, {time.time() - t0:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
