#!/usr/bin/env python3
"""lead_memory.py — Redis memory per lead, by feature, of one funneld data set (issue 19).

  /usr/bin/python3 tests/bench/lead_memory.py REDIS_PORT KEY_PREFIX [SAMPLE]

Reads only, except for one scratch key per sampled lead (KEY_PREFIX:{memtest}:..., deleted
again). Reports, from MEMORY USAGE (SAMPLES 0, so exact) of every key under the prefix:
each kind of key (daemon/state/keys.def) in bytes per lead, and for SAMPLE lead hashes
(default 500) what each group of fields costs: a copy of the hash is made, the group's fields
deleted from it, and the difference measured, so listpack headers and per-entry overheads
are counted where they fall. used_memory per lead is printed too (it includes what MEMORY
USAGE leaves out: the keyspace's own tables and the allocator's slack).
"""
import re
import sys
from collections import defaultdict

import redis

# (group, the lead-hash fields it holds; a funnel's fields are "<funnel>|<suffix>")
GROUPS = [
    ("identity (id)", lambda f: f == b"id"),
    ("latest event (ts, l.ty)", lambda f: f in (b"ts", b"l.ty")),
    ("consent (c)", lambda f: f == b"c"),
    ("value (v, vt)", lambda f: f in (b"v", b"vt")),
    ("first touch (f.*)", lambda f: f.startswith(b"f.")),
    ("last touch (l.ch, l.cp, l.src, l.at)", lambda f: f in (b"l.ch", b"l.cp", b"l.src", b"l.at")),
    ("seen-set expiry (sx)", lambda f: f == b"sx"),
    ("timers (tn, <f>|t|*, <f>|cap)", lambda f: f == b"tn" or b"|t|" in f or f.endswith(b"|cap")),
    # one field "<f>|p" since 2026-12-07 (daemon/state/position.lua), six before
    ("position, touches, activity per funnel (<f>|p; before: |k |x |e |b |n |a)",
     lambda f: re.search(rb"\|[pkxebna]$", f) is not None),
]
KINDS = ["lead", "seen", "out", "due", "stats", "flow", "sk", "outbox", "leases", "tl", "ids", "other"]


def kind_of(key, prefix):
    rest = key[len(prefix) + 1:]
    m = re.match(rb"\{[^}]*\}:([a-z]+)", rest)
    name = (m.group(1) if m else rest.split(b":")[0]).decode("latin-1")
    return name if name in KINDS else "other"


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__)
    r = redis.Redis(port=int(sys.argv[1]))
    prefix = sys.argv[2].encode()
    sample = int(sys.argv[3]) if len(sys.argv) == 4 else 500
    keys = list(r.scan_iter(match=prefix + b":*", count=5000))
    sizes, counts, leads = defaultdict(int), defaultdict(int), []
    for i in range(0, len(keys), 1000):
        chunk = keys[i:i + 1000]
        p = r.pipeline(transaction=False)
        for k in chunk:
            p.execute_command("MEMORY", "USAGE", k, "SAMPLES", 0)
        for k, n in zip(chunk, p.execute()):
            kind = kind_of(k, prefix)
            sizes[kind] += n or 0
            counts[kind] += 1
            if kind == "lead":
                leads.append(k)
    if not leads:
        sys.exit(f"lead_memory.py: no lead hash under {prefix.decode()}")
    n = len(leads)
    print(f"{n} leads, {len(keys)} keys under {prefix.decode()}")
    for kind in KINDS:
        if counts[kind]:
            print(f"  {kind:8} {counts[kind]:8} keys  {sizes[kind] / n:8.1f} B per lead")
    print(f"  all keys          {sum(sizes.values()) / n:8.1f} B per lead (MEMORY USAGE)")
    print(f"  used_memory       {r.info('memory')['used_memory'] / n:8.1f} B per lead "
          "(the whole server: only this data set if nothing else is stored)")

    cost, fields, base = defaultdict(int), 0, 0
    scratch = prefix + b":{memtest}:lead"
    step = max(1, n // sample)
    picked = leads[::step][:sample]
    for k in picked:
        h = r.hgetall(k)
        fields += len(h)
        r.delete(scratch)
        r.hset(scratch, mapping=h)
        full = r.execute_command("MEMORY", "USAGE", scratch, "SAMPLES", 0)
        base += full
        for name, match in GROUPS:
            group = [f for f in h if match(f)]
            if not group:
                continue
            r.delete(scratch)
            r.hset(scratch, mapping=h)
            r.hdel(scratch, *group)
            left = r.execute_command("MEMORY", "USAGE", scratch, "SAMPLES", 0) if len(group) < len(h) else 0
            cost[name] += full - left
    r.delete(scratch)
    m = len(picked)
    print(f"lead hash, {m} sampled: {base / m:.1f} B, {fields / m:.1f} fields; by group of fields:")
    for name, _ in GROUPS:
        print(f"  {name:42} {cost[name] / m:7.1f} B")


if __name__ == "__main__":
    main()
