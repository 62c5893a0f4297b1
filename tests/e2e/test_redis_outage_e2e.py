"""test_redis_outage_e2e.py — Redis away for 10 s mid-stream (SPEC §6), three ways, each with
its own redis-server while input keeps arriving at a steady rate:

- frozen: the server is stopped with SIGSTOP and resumed (connections hang, nothing answers);
- restarted: it shuts down and comes back on the same port from its append-only file;
- emptied: it is killed and a new, empty one takes its port (what a restart without
  persistence or a FLUSHALL looks like).

In every case the daemon must report not ready (/readyz 503, funneld_redis_up 0) while Redis
is away, hold consumption at its in-flight bound, reconnect with backoff, become ready again
and drain the input, and exit 0 on SIGTERM. Frozen and restarted lose nothing: transitions
and Redis state equal a run without an outage. Emptied cannot keep what Redis forgot: the
daemon must notice (an error log line naming both epochs, funneld_redis_data_lost_total 1)
and go on processing, with every input message consumed and no event dead-lettered for it.
"""
import json
import shutil
import signal
import tempfile

import redis

from harness import (Check, Stack, fired_count, free_port, gen_stream, metrics, outputs,
                     redis_state, scaled, short_timer_funnels, start_redis,
                     stream_through_outage, triggers)

N = scaled(24000)
RATE = scaled(2000)  # input messages per second: the stream takes 12 s
OUTAGE_AT = 3.0  # seconds into the stream
OUTAGE = 10.0


def run(stream, kind, check, fired=None):
    """One run with the given outage kind (None: no outage). Returns the transitions by id,
    the dead letters, the lead state and figures."""
    data = tempfile.mkdtemp(prefix="funneld-redis-")
    rport, hport = free_port(), free_port()
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    srv = start_redis(rport, data, *aof)
    # The event clock, with stall and rule windows short enough for timers to fall due
    # within the stream: its triggers depend on the input only, not on when the input
    # arrived or how far behind the outage left the daemon (the wall clock's would).
    st = Stack(f"outage-{kind or 'none'}", partitions=6, max_in_flight=256,
               funnels=short_timer_funnels(), clock="event")
    st.use_redis(rport, hport)  # the test's own server
    label = kind or "no outage"
    srv_of = {"srv": srv, "data": data}

    def away():
        if kind == "frozen":
            srv_of["srv"].send_signal(signal.SIGSTOP)
        elif kind == "restarted":
            redis.Redis(port=rport).shutdown()  # writes and closes the AOF
            srv_of["srv"].wait()
        else:
            srv_of["srv"].kill()
            srv_of["srv"].wait()

    def while_away():
        m = metrics(hport)
        check.eq(m.get("funneld_redis_up"), 0.0, f"{label}: funneld_redis_up 0")
        check.true(m.get("funneld_in_flight", 1e9) <= 256,
                   f"{label}: in flight stays within the bound ({m.get('funneld_in_flight')})")

    def back():
        if kind == "frozen":
            srv_of["srv"].send_signal(signal.SIGCONT)
            return
        if kind == "emptied":
            shutil.rmtree(srv_of["data"])
            srv_of["data"] = tempfile.mkdtemp(prefix="funneld-redis-")
        srv_of["srv"] = start_redis(rport, srv_of["data"], *aof)

    try:
        p = st.start("--log-level", "debug", unset=("FUNNELD_REDIS_URL",))
        fig = stream_through_outage(st, hport, stream, RATE, check, label,
                                    (OUTAGE_AT, OUTAGE, away, back, while_away) if kind else None,
                                    fired)
        m = metrics(hport)
        fig["data_lost"] = m.get("funneld_redis_data_lost_total")
        check.eq(st.stop(p), 0, f"{label}: exits 0 on SIGTERM")
        log = st.log_of(p)
        # emptied: what Redis forgot cannot be repeated exactly (harness.outputs)
        trans, fig["repeats"] = outputs(st, "transitions", check, label, kind != "emptied")
        trig, fig["trigger_repeats"] = triggers(st, check, label, kind != "emptied")
        dlq = sorted(bytes(m.value() or b"") for m in st.read_all(st.topics["dlq"]))
        state = redis_state(st)
        fig["in_flight_bound_hits"] = log.count("in-flight bound reached")
        return trans, dlq, state, trig, log, fig, fired_count(st)
    finally:
        st.close()
        if srv_of["srv"].poll() is None:
            srv_of["srv"].send_signal(signal.SIGCONT)
            srv_of["srv"].kill()
            srv_of["srv"].wait()
        shutil.rmtree(srv_of["data"], ignore_errors=True)


def main():
    check = Check("test_redis_outage_e2e")
    stream = gen_stream(N, N // 8, seed=21)
    want, want_dlq, want_state, want_trig, _, _, fired = run(stream, None, check)
    check.true(len(want_trig) > 0, "the stream makes triggers fall due")
    check.true(len(want) > N // 10 and len(want_state) > N // 10,
               "the stream makes transitions")
    figures = {}
    for kind in ("frozen", "restarted", "emptied"):
        # emptied: the fired counters went with the data, so only the settling can be waited for
        got, dlq, state, trig, log, fig, _ = run(stream, kind, check,
                                                 None if kind == "emptied" else fired)
        figures[kind] = fig
        check.true("disconnected" in log or "not ready" in log or "no answer" in log,
                   f"{kind}: the daemon logged losing Redis")
        check.true("retrying" in log or "reconnecting" in log,
                   f"{kind}: the daemon logged its reconnect attempts")
        check.true(fig["in_flight_bound_hits"] >= 1,
                   f"{kind}: consumption was held at the in-flight bound")
        check.eq(dlq, want_dlq, f"{kind}: the same dead letters, none caused by the outage")
        if kind != "emptied":
            check.eq(sorted(set(want) - set(got))[:5], [], f"{kind}: no transition lost")
            check.eq(sorted(set(got) - set(want))[:5], [], f"{kind}: no transition invented")
            check.eq([i for i in want if got.get(i, want[i]) != want[i]][:5], [],
                     f"{kind}: identical transitions")
            check.eq(sorted(set(want_trig) ^ set(trig))[:5], [], f"{kind}: the same triggers")
            bad = [k for k in want_state if state.get(k) != want_state[k]]
            for k in bad[:2]:
                w, g = want_state[k], state.get(k) or {}
                print(kind, k, {f: (w.get(f), g.get(f)) for f in set(w) | set(g)
                                if w.get(f) != g.get(f)})
            check.eq((len(state), bad[:3]), (len(want_state), []),
                     f"{kind}: Redis lead state equals the run without an outage")
            check.eq(fig["data_lost"], 0.0, f"{kind}: no data loss reported")
            check.true("the store lost its data" not in log, f"{kind}: no data loss logged")
        else:
            check.eq(fig["data_lost"], 1.0, "emptied: funneld_redis_data_lost_total is 1")
            check.true("the store lost its data" in log, "emptied: the loss is logged")
            # what came after the loss was processed: those leads start over in the new store
            check.true(len(state) > 0, "emptied: processing went on in the new store")
            fig["transitions_vs_clean"] = {"same": len(set(got) & set(want)),
                                           "only_clean": len(set(want) - set(got)),
                                           "only_emptied": len(set(got) - set(want))}
    print(f"events {N} at {RATE}/s, Redis away {OUTAGE:.0f}s after {OUTAGE_AT:.0f}s, "
          f"transitions {len(want)}, triggers {len(want_trig)}, "
          f"lead hashes and counters {len(want_state)}")
    for kind, fig in figures.items():
        print(f"{kind}: {json.dumps(fig)}")
    check.done()


if __name__ == "__main__":
    main()
