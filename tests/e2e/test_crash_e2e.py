"""test_crash_e2e.py — SPEC §6 at-least-once under SIGKILL: a 100k-event stream on 6
partitions is processed once cleanly and once while funneld is killed with SIGKILL at
random moments (5 times) and restarted. Afterwards the kill run's transitions must be the
clean run's — same ids, same contents, nothing missing — with repeats only as exact copies
(same id), every dead letter present, and the Redis state per lead and the counters equal.

FUNNELD_CRASH_EVENTS / FUNNELD_CRASH_KILLS scale it.
"""
import json
import os
import random
import signal
import time

from harness import Check, Stack, gen_stream, group_lag, wait_drained

N = int(os.environ.get("FUNNELD_CRASH_EVENTS", "100000"))
KILLS = int(os.environ.get("FUNNELD_CRASH_KILLS", "5"))
LEADS = N // 10


def strip(e):
    e = dict(e)
    e.pop("emitted_at")
    return e


def collect(st, check, label):
    msgs = st.consume(st.topics["transitions"], idle=5)
    by_id, repeats = {}, 0
    for m in msgs:
        e = strip(json.loads(m.value()))
        if e["id"] in by_id:
            repeats += 1
            check.eq(e, by_id[e["id"]], f"{label}: a repeat is an exact copy ({e['id']})")
        by_id[e["id"]] = e
    dlq = {(bytes(m.value() or b"")) for m in st.consume(st.topics["dlq"], idle=3)}
    return by_id, repeats, dlq


def redis_state(st):
    """Every lead hash and every counter, without the run's own prefix (in key names, and in
    the timer fields that name their zset)."""
    state = {}
    own = st.name.encode()
    for k in st.redis.scan_iter(f"{st.name}:*", count=1000):
        name = k.decode()[len(st.name):]
        if ":lead:" in name or name.endswith(":stats"):
            state[name] = {f: v.replace(own, b"<prefix>") for f, v in st.redis.hgetall(k).items()}
    return state


def main():
    check = Check("test_crash_e2e")
    stream = gen_stream(N, LEADS, seed=42)

    clean = Stack("crash-clean", partitions=6)
    try:
        clean.produce(stream)
        p = clean.start()
        check.true(wait_drained(clean), "clean run drains the input")
        check.eq(clean.stop(p), 0, "clean run exits 0 on SIGTERM")
        want, want_rep, want_dlq = collect(clean, check, "clean")
        want_state = redis_state(clean)
    finally:
        clean.close()

    crash = Stack("crash-kill", partitions=6)
    rnd = random.Random(7)
    try:
        crash.produce(stream)
        started = time.time()
        lags = []
        for i in range(KILLS):
            p = crash.start()
            # kill at a random moment after it got its partitions, i.e. mid-stream
            deadline = time.time() + 60
            while "assigned" not in crash.log_of(p) and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(rnd.uniform(0.5, 2.5))
            p.send_signal(signal.SIGKILL)
            p.wait()
            lags.append(group_lag(crash.brokers, crash.name, crash.input))
        p = crash.start()
        check.true(wait_drained(crash), "kill run drains the input after the last restart")
        check.eq(crash.stop(p), 0, "kill run exits 0 on SIGTERM")
        elapsed = time.time() - started
        got, got_rep, got_dlq = collect(crash, check, "kill")
        got_state = redis_state(crash)
    finally:
        crash.close()

    missing = set(want) - set(got)
    extra = set(got) - set(want)
    check.eq(len(missing), 0, "transitions lost by the kill run")
    check.eq(len(extra), 0, "transitions only the kill run has")
    diff = [i for i in set(want) & set(got) if want[i] != got[i]]
    check.eq(len(diff), 0, "transitions whose content differs")
    check.eq(want_rep, 0, "the clean run repeats nothing")
    check.eq(got_dlq, want_dlq, "the same dead letters")
    check.eq(len(got_state), len(want_state), "the same number of Redis hashes")
    bad = [k for k in want_state if got_state.get(k) != want_state[k]]
    for k in bad[:3]:
        w, g = want_state[k], got_state.get(k) or {}
        print(k, {f: (w.get(f), g.get(f)) for f in set(w) | set(g) if w.get(f) != g.get(f)})
    check.eq(bad[:5], [], "Redis lead state and counters equal the clean run's")
    check.true(any(0 < x < N for x in lags), f"kills landed mid-stream (uncommitted after each: {lags})")
    print(f"uncommitted input after each kill: {lags}")
    print(f"events {N}, kills {KILLS}, transitions {len(want)}, repeats after kills {got_rep}, "
          f"dead letters {len(want_dlq)}, kill run {elapsed:.1f}s")
    check.done()


if __name__ == "__main__":
    main()
