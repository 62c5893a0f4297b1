"""test_backfill_bottleneck_e2e.py — a back-fill raises the bottlenecks its day raised (SPEC §5,
issue 16 item 7), on the real broker and Redis, event clock, 3 input partitions.

A 27.5-hour stream is produced as a backlog before funneld starts, so the clock crosses the
whole day at once: hours 0-23 healthy (40 leads an hour enter "visit", 80 % click 5 minutes
later), hour 24 a clear drop (40 enter, nobody clicks), hours 25-26 healthy again, then one
last visit at 27:30, where the window holds too few leads to judge. Every event is 37 s past
its minute, so the clock's own ticks (10 s) are never a minute's first tick.

Expected: one `bottleneck` (at visit) and one `bottleneck_cleared`, each at the first tick of
the minute where the daemon's rule changes its mind, as computed here from the input (window
= the whole minutes [t - 1 h, t), baseline [t - 24 h, t), min_entered in both; raised below
(1 - drop) x the baseline rate, cleared at (1 - drop / 2) x or above); their ids hash those
ticks. The same stream paced (40 events a second, one partition), as the day itself would
arrive, gives the same events with the same ids. Before the fix only the latest tick was
judged: nothing (its window is nearly empty), or a change at a tick the replay landed on.
"""
import json
import signal
import time

from harness import (Check, Stack, bottleneck_model, ev, iso, produce_paced, wait_drained,
                     wait_for)

M, H = 60000, 3600000
EVERY = 10000
# Recent enough that the flow buckets (kept 32 days, by Redis's clock) are stored.
T = (int(time.time() * 1000) - 30 * H) // H * H
OFF = 37000  # events 37 s into their minute

FUNNEL = {"name": "flow", "allow_skip": True, "stages": [
    {"name": "visit", "on": [{"type": "page_view"}]},
    {"name": "interest", "on": [{"type": "email_click"}]}],
    "bottleneck": {"window": "1h", "baseline": "24h", "min_entered": 20, "drop": 0.5,
                   "evaluate_every": "10s"}}


def stream():
    out = []
    for h in range(27):
        for i in range(40):
            lead, t0 = "L-%02d-%02d" % (h, i), T + h * H + i * M + OFF
            out.append(ev(lead, "v", t0, "web", "page_view"))
            if h != 24 and i % 10 < 8:
                out.append(ev(lead, "c", t0 + 5 * M, "email", "email_click"))
    out.append(ev("L-last", "v", T + 27 * H + 30 * M + OFF, "web", "page_view"))
    return sorted(out, key=lambda e: e["ts"])


def expected_changes(events):
    """[(type, tick)]: the daemon's rule (fn_judge) judged at every minute's first tick."""
    return bottleneck_model(events, "page_view", events[0]["ts"], events[-1]["ts"])


def run(check, events, partitions, paced):
    """Bottleneck events of one daemon fed the stream as a backlog or paced."""
    st = Stack("backfill", funnels=[FUNNEL], partitions=partitions, clock="event")
    st.cfg["redis"]["shards"] = 4
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f)
    how = "paced" if paced else "backlog"
    try:
        if paced:
            p = st.start()
            produce_paced(st, [(e["lead_id"], json.dumps(e)) for e in events], 40)
        else:
            st.produce(events)  # the whole day is waiting before the daemon starts
            p = st.start()
        check.true(wait_drained(st, timeout=300), f"{how}: stream processed")
        last_tick = events[-1]["ts"] // EVERY * EVERY
        snaps = []
        # The day's ~10,000 evaluations, each read from Redis, follow the drain: on a machine
        # busy with other tests they once took more than 120 s.
        deadline = time.time() + 360
        while time.time() < deadline:
            snaps = [json.loads(m.value()) for m in st.consume(st.topics["snapshots"], idle=2)]
            if any(s["at"] == iso(last_tick) for s in snaps):
                break
        check.true(any(s["at"] == iso(last_tick) for s in snaps),
                   f"{how}: snapshot of the clock's last tick {iso(last_tick)}")
        bns = [json.loads(m.value()) for m in st.consume(st.topics["bottlenecks"], idle=4)]
        if not paced:
            # A reload starts the evaluations afresh: they must not judge the day again.
            p.send_signal(signal.SIGHUP)
            check.true(wait_for(lambda: "generation 2 applied" in st.log_of(p), 30),
                       "reload applied")
            again = [json.loads(m.value()) for m in st.consume(st.topics["bottlenecks"], idle=4)]
            check.eq([b["id"] for b in again], [b["id"] for b in bns],
                     "after a reload: no decision made again")
        print(how, "bottleneck events:", [(b["type"], b["stage"], b["at"], b["entered"],
                                           b["advanced"], round(b["rate"], 3),
                                           round(b["baseline_rate"], 3)) for b in bns])
        check.eq(st.stop(p), 0, f"{how}: exit code")
        return bns
    finally:
        st.close()


def main():
    check = Check("test_backfill_bottleneck_e2e")
    events = stream()
    want = expected_changes(events)
    check.true([t for t, _ in want] == ["bottleneck", "bottleneck_cleared"] and
               T + 24 * H < want[0][1] < T + 25 * H + 30 * M < want[1][1] < T + 27 * H,
               f"the model raises during the drop and clears after ({want})")
    backlog = run(check, events, 3, paced=False)
    check.eq([(b["type"], b["stage"], b["at"]) for b in backlog],
             [(t, "visit", iso(at)) for t, at in want],
             "backlog: raised and cleared at the ticks the day itself did")
    paced = run(check, events, 1, paced=True)
    check.eq([(b["type"], b["at"], b["id"]) for b in paced],
             [(b["type"], b["at"], b["id"]) for b in backlog],
             "paced: the same events with the same ids")
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
