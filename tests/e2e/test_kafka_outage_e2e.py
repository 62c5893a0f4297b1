"""test_kafka_outage_e2e.py — the Kafka broker goes away for 10 s mid-stream and comes back
with its data (SPEC §6). The test starts its own single-node broker (deploy/kafka.sh with a
private run directory), so the shared one stays up for the other tests.

While the broker is down the daemon must report not ready (/readyz 503, funneld_kafka_up 0);
afterwards it must drain the input and exit 0 on SIGTERM, with the transitions equal to a run
without an outage (nothing lost, nothing invented, repeats only as exact copies with the same
id) and the Redis state per lead and the counters equal (no state change applied twice).

The group's session (60 s) outlasts the outage, so this test covers a daemon that keeps its
partitions through it. Partitions that change hands are test_group_e2e's, and the event
clock across a handover (it resumes from the commit's metadata) test_clock_handover_e2e's.
"""
import json
import shutil
import tempfile

from harness import (Check, Stack, fired_count, free_port, gen_stream, kafka_sh, metrics, outputs,
                     redis_state, scaled, short_timer_funnels, start_private_broker,
                     stream_through_outage, triggers)

N = scaled(24000)
RATE = scaled(2000)
OUTAGE_AT = 3.0
OUTAGE = 10.0


def run(stream, outage, run_dir, check, fired=None):
    label = "outage" if outage else "no outage"
    hport = free_port()
    # The event clock, with stall and rule windows short enough for timers to fall due
    # within the stream: its triggers depend on the input only, not on when the input
    # arrived or how far behind the outage left the daemon (the wall clock's would).
    st = Stack(f"kafka-{'outage' if outage else 'none'}", partitions=6,
               funnels=short_timer_funnels(), clock="event")
    st.cfg["http"] = {"listen": f"127.0.0.1:{hport}"}
    # reconnect quickly once the broker is back (librdkafka's default backoff grows to 10 s)
    st.cfg["kafka"]["properties"]["reconnect.backoff.max.ms"] = "1000"
    st.cfg["kafka"]["properties"]["session.timeout.ms"] = "60000"  # see the top
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f)
    def while_away():
        check.eq(metrics(hport).get("funneld_kafka_up"), 0.0, f"{label}: funneld_kafka_up 0")

    try:
        p = st.start()
        fig = stream_through_outage(
            st, hport, stream, RATE, check, label,
            (OUTAGE_AT, OUTAGE, lambda: kafka_sh(run_dir, "stop", "--keep-data"),
             lambda: kafka_sh(run_dir, "start"), while_away) if outage else None, fired)
        check.eq(st.stop(p), 0, f"{label}: exits 0 on SIGTERM")
        check.eq(st.log_of(p).count("assigned 6 partition(s)"), 1,
                 f"{label}: the daemon kept its partitions")
        by_id, fig["repeats"] = outputs(st, "transitions", check, label)
        trig, fig["trigger_repeats"] = triggers(st, check, label)
        dlq = [bytes(m.value() or b"") for m in st.read_all(st.topics["dlq"])]
        fig["dlq_repeats"] = len(dlq) - len(set(dlq))
        dlq = set(dlq)
        return by_id, dlq, redis_state(st), trig, fig, fired_count(st)
    finally:
        st.close()


def main():
    check = Check("test_kafka_outage_e2e")
    run_dir = tempfile.mkdtemp(prefix="funneld-kafka-")
    try:
        start_private_broker(run_dir)
        stream = gen_stream(N, N // 8, seed=31)
        want, want_dlq, want_state, want_trig, _, fired = run(stream, False, run_dir, check)
        got, dlq, state, got_trig, fig, _ = run(stream, True, run_dir, check, fired)
    finally:
        try:
            kafka_sh(run_dir, "stop")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    check.true(len(want) > N // 10, "the stream makes transitions")
    check.eq(sorted(set(want) - set(got))[:5], [], "no transition lost")
    check.eq(sorted(set(got) - set(want))[:5], [], "no transition invented")
    check.eq([i for i in want if got.get(i, want[i]) != want[i]][:5], [], "identical transitions")
    check.true(len(want_trig) > 0, "the stream makes triggers fall due")
    check.eq(sorted(set(want_trig) - set(got_trig))[:5], [], "no trigger lost")
    check.eq(sorted(set(got_trig) - set(want_trig))[:5], [], "no trigger invented")
    check.eq(dlq, want_dlq, "the same dead letters (a repeat after the outage is a copy)")
    bad = [k for k in want_state if state.get(k) != want_state[k]]
    for k in bad[:3]:
        w, g = want_state[k], state.get(k) or {}
        print(k, {f: (w.get(f), g.get(f)) for f in set(w) | set(g) if w.get(f) != g.get(f)})
    check.eq((len(state), bad[:3]), (len(want_state), []),
             "Redis lead state and counters equal the run without an outage")
    print(f"events {N} at {RATE}/s, broker stopped {OUTAGE_AT:.0f}s into the stream, "
          f"transitions {len(want)}, triggers {len(want_trig)}, "
          f"lead hashes and counters {len(want_state)}, figures {json.dumps(fig)}")
    check.done()


if __name__ == "__main__":
    main()
