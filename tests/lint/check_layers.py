#!/usr/bin/env python3
"""check_layers.py: the daemon's include graph, in one place, and its check.

Each source file of daemon/ (tools apart) belongs to one row of MAY_INCLUDE below, which names
the funneld headers it may include. The layers (daemon/README.md): foundation < pure logic <
I/O modules (input, store, output) < modules built on them (timers, evaluation, http, reload)
< the spine (core/daemon.c, core/pipeline.c, core/main.c). A module includes its own header,
headers below it and, for timers and evaluation, the I/O modules they send through; never a
module beside it or above it, and never daemon.h. http reads the status view (status.h)
only. The check also fails on an include cycle among include/funneld/ headers, and on a source
file or header no row knows (a new one must be placed in the graph).

Usage: check_layers.py [repo root]. Exit status 1 and one line per violation when broken.
"""
import fnmatch
import os
import re
import sys

FOUNDATION = {"common.h", "hash.h", "log.h", "config.h", "kafka_bridge.h", "redis_loop.h"}
# Pure logic and plain data types: no I/O, any module may use them.
PURE = FOUNDATION | {
    "event.h", "json_view.h", "segment.h", "rules.h", "merge.h", "merge_step.h", "step.h", "fast.h", "trigger.h", "analytics.h", "window.h", "sketch.h",
    "markov.h",
    "emit.h", "cluster.h", "offsets.h", "msg.h", "stats.h", "host.h", "status.h",
    "kafka_common.h", "keys.h", "judge.h", "lead_queue.h", "lead_view.h", "lead_pos.h", "reply_arena.h",
}
# The modules' own headers.
MODULES = {"input.h", "output.h", "store.h", "timers.h", "evaluate.h", "http.h", "reload.h",
           "live.h", "live_feed.h"}
SPINE = {"daemon.h", "pipeline.h", "merge_flow.h"}
EVERY = PURE | MODULES | SPINE

# (glob of daemon/ paths, headers it may include); the first matching row decides.
MAY_INCLUDE = [
    ("foundation/*.c", FOUNDATION),
    ("decode/*.c", PURE),
    ("rules/*.c", PURE),
    ("analytics/analytics.c", PURE),
    ("analytics/window.c", PURE),
    ("analytics/sketch.c", PURE),
    ("analytics/markov.c", PURE),
    ("state/step.c", PURE),
    ("state/merge_step.c", PURE),
    ("state/fast.c", PURE),
    ("state/cluster.c", PURE),
    ("state/keys.c", PURE),
    ("state/lead_queue.c", PURE),
    ("state/lead_view.c", PURE),
    ("state/lead_pos.c", PURE),
    ("state/reply_arena.c", PURE),
    ("analytics/judge.c", PURE),
    ("output/emit.c", PURE),
    ("timers/trigger.c", PURE),
    ("core/kafka_common.c", PURE),
    ("core/offsets.c", PURE),
    ("core/stats.c", PURE),
    # I/O modules
    ("input/*.c", PURE | {"input.h"}),
    ("output/*.c", PURE | {"output.h"}),
    ("state/*.c", PURE | {"store.h"}),
    # built on them
    ("timers/*.c", PURE | {"timers.h", "store.h", "output.h", "input.h"}),
    ("analytics/evaluate.c", PURE | {"evaluate.h", "store.h", "output.h", "input.h"}),
    ("http/*.c", PURE | {"http.h"}),
    ("live/feed.c", PURE | {"live_feed.h"}),
    ("live/live.c", PURE | {"live.h", "live_feed.h", "store.h", "input.h", "http.h"}),
    ("core/reload.c", PURE | {"reload.h"}),
    # the spine: the composition root may include everything
    ("core/daemon.c", EVERY),
    ("core/pipeline.c", EVERY),
    ("core/merge_flow.c", EVERY),
    ("core/main.c", EVERY),
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"funneld/([^"]+)"', re.M)


def includes(path):
    with open(path, encoding="utf-8") as f:
        return INCLUDE.findall(f.read())


def check_sources(root, errors):
    base = os.path.join(root, "daemon")
    for dirpath, dirnames, filenames in os.walk(base):
        rel_dir = os.path.relpath(dirpath, base)
        if rel_dir == "tools" or rel_dir.startswith("tools" + os.sep):
            continue
        for name in sorted(filenames):
            if not name.endswith(".c"):
                continue
            rel = os.path.normpath(os.path.join(rel_dir, name)).replace(os.sep, "/")
            row = next((h for g, h in MAY_INCLUDE if fnmatch.fnmatch(rel, g)), None)
            if row is None:
                errors.append(f"daemon/{rel}: in no row of MAY_INCLUDE (tests/lint/check_layers.py)")
                continue
            allowed = row
            for h in includes(os.path.join(dirpath, name)):
                if h not in allowed:
                    errors.append(f"daemon/{rel} includes funneld/{h}, above or beside it")


def check_headers(root, errors):
    inc = os.path.join(root, "include", "funneld")
    graph = {}
    for name in sorted(os.listdir(inc)):
        if name.endswith(".h"):
            graph[name] = includes(os.path.join(inc, name))
            if name not in EVERY:
                errors.append(f"include/funneld/{name}: unknown to tests/lint/check_layers.py")
    state = {}  # 1 on the current path, 2 done

    def visit(h, path):
        state[h] = 1
        for nxt in graph.get(h, []):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                errors.append("include cycle: " + " -> ".join(cycle))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[h] = 2

    for h in graph:
        if h not in state:
            visit(h, [h])


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    errors = []
    check_sources(root, errors)
    check_headers(root, errors)
    for e in errors:
        print(e)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
