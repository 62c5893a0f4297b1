"""test_clock_handover_e2e.py — a partition's event clock survives a handover (SPEC §5).

Event clock, 1 partition, a funnel whose first stage goes stale after 1 h:
  phase A  daemon A consumes X at T and Y at T+3h: the partition's clock reaches T+3h, X's
           stalled timer (due T+1h) fires; A stops and commits.
  phase B  daemon B, same group, gets a later lead L whose events are older than the clock
           (out of order across leads, as merged streams are): L at T+10m arms its stalled
           timer, due T+1h10m, which the clock has passed; L's touch at T+20m fires it and
           arms the next, due T+1h20m, which fires as well.
  replay   one daemon in a new group and key space reads the whole input without a
           handover: the same triggers, with the same ids and times.
Before the clock travelled with the committed offset (commit metadata), B's clock started
over at L's own event times, no timer of L was due, and L got no trigger at all.
"""
import datetime
import json

from harness import Check, Stack, ev, wait_drained

T = 1795000000000
M, H = 60000, 3600000

FUNNEL = {"name": "shop", "stages": [
    {"name": "visit", "on": [{"type": "page_view"}], "stale_after": "1h"},
    {"name": "buy", "on": [{"type": "purchase"}], "conversion": True}]}

PHASE_A = [ev("L-x", "x1", T, "web", "page_view"),
           ev("L-y", "y1", T + 3 * H, "web", "page_view")]
PHASE_B = [ev("L", "l1", T + 10 * M, "web", "page_view"),
           ev("L", "l2", T + 20 * M, "email", "email_open")]
EXPECTED = {("L-x", "x1", T + H), ("L", "l1", T + 10 * M + H), ("L", "l2", T + 20 * M + H)}


def triggers(st, topic, expect):
    return [json.loads(m.value()) for m in st.consume(topic, expect=expect, idle=3, timeout=60)]


def due_ms(t):
    d = datetime.datetime.strptime(t["due_at"][:23], "%Y-%m-%dT%H:%M:%S.%f")
    return int(d.replace(tzinfo=datetime.timezone.utc).timestamp() * 1000)


def main():
    check = Check("test_clock_handover_e2e")
    st = Stack("handover", funnels=[FUNNEL], partitions=1, clock="event")
    rt = st.topics["retargeting"]
    try:
        # --- phase A: the clock moves to T+3h, then the daemon stops and commits ---
        st.produce(PHASE_A)
        a = st.start()
        got = triggers(st, rt, 1)
        check.eq([(t["lead_id"], t["reason"]) for t in got], [("L-x", "stalled")],
                 "phase A: X's timer fired by the clock")
        check.true(wait_drained(st, timeout=120), "phase A committed")
        check.eq(st.stop(a), 0, "phase A daemon exits 0")

        # --- phase B: a new daemon in the same group, events older than the clock ---
        b = st.start()
        st.produce(PHASE_B)
        check.true(wait_drained(st, timeout=120), "phase B processed")
        got = triggers(st, rt, len(EXPECTED))
        check.eq({(t["lead_id"], t["cause_event_id"], due_ms(t)) for t in got}, EXPECTED,
                 "after the handover: the triggers of an uninterrupted run")
        check.eq(st.stop(b), 0, "phase B daemon exits 0")
        check.true("event clock resumed from the commit for 1 of 1 partition(s)" in
                   st.log_of(b), "B resumed the clock from A's commit")

        # --- replay: the whole input, one daemon, no handover ---
        _, replay_rt = st.replay_config(1)
        c = st.start()
        again = triggers(st, replay_rt, len(EXPECTED))
        check.eq(sorted((t["id"], t["due_at"]) for t in again),
                 sorted((t["id"], t["due_at"]) for t in got),
                 "replay without a handover: same ids and times")
        check.eq(st.stop(c), 0, "replay daemon exits 0")
    finally:
        st.close()
    check.done()


if __name__ == "__main__":
    main()
