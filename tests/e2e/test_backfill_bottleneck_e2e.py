"""test_backfill_bottleneck_e2e.py — a back-fill raises the bottlenecks its day raised (SPEC §5,
issue 16 item 7), on the real broker and Redis, event clock, 3 input partitions.

A 25.5-hour stream is produced as a backlog before funneld starts, so the clock crosses the
whole day at once: hours 0-23 healthy (40 leads an hour enter "visit", 80 % click 5 minutes
later), hour 24 a clear drop (40 enter, nobody clicks), then one last visit at 25:30, an hour
after the drop, where the window holds too few leads to judge. Every event is 37 s past its
minute, so the clock's own ticks (10 s) are never a minute's first tick.

Expected: exactly one `bottleneck` (at visit), at the first tick of the first minute whose
window shows the drop, as computed here from the input with the daemon's rule (window = the
whole minutes [t - 1 h, t), baseline [t - 24 h, t), min_entered in both, rate below
(1 - drop) x baseline rate); its id is the hash of that tick, the one the day itself raised.
Before the fix only the latest tick was judged: no bottleneck (its window is nearly empty),
or one at a tick the replay happened to land on.
"""
import json
import time

from harness import Check, Stack, ev, wait_drained

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
    for h in range(25):
        for i in range(40):
            lead, t0 = "L-%02d-%02d" % (h, i), T + h * H + i * M + OFF
            out.append(ev(lead, "v", t0, "web", "page_view"))
            if h < 24 and i % 10 < 8:
                out.append(ev(lead, "c", t0 + 5 * M, "email", "email_click"))
    out.append(ev("L-last", "v", T + 25 * H + 30 * M + OFF, "web", "page_view"))
    return sorted(out, key=lambda e: e["ts"])


def expected_raise(events):
    """The first minute tick at which the daemon's rule raises visit -> interest."""
    entered, advanced = {}, {}
    for e in events:
        m = e["ts"] // M
        d = entered if e["type"] == "page_view" else advanced
        d[m] = d.get(m, 0) + 1
    first, last = events[0]["ts"] // M, events[-1]["ts"] // M
    for m in range(first + 1, last + 1):
        def s(d, span):
            return sum(d.get(x, 0) for x in range(m - span, m))
        we, wa, be, ba = s(entered, 60), s(advanced, 60), s(entered, 1440), s(advanced, 1440)
        if we < 20 or be < 20 or ba == 0:
            continue
        if wa / we < 0.5 * (ba / be):
            return m * M
    return None


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def main():
    check = Check("test_backfill_bottleneck_e2e")
    st = Stack("backfill", funnels=[FUNNEL], partitions=3, clock="event")
    st.cfg["redis"]["shards"] = 4
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f)
    try:
        events = stream()
        want = expected_raise(events)
        check.true(want is not None and T + 24 * H < want < T + 25 * H + 30 * M,
                   f"the model raises during the drop ({want and iso(want)})")
        st.produce(events)  # the whole day is a backlog before the daemon starts
        p = st.start()
        check.true(wait_drained(st, timeout=300), "backlog processed")
        last_tick = events[-1]["ts"] // EVERY * EVERY
        snaps = []
        deadline = time.time() + 120
        while time.time() < deadline:
            snaps = [json.loads(m.value()) for m in st.consume(st.topics["snapshots"], idle=2)]
            if any(s["at"] == iso(last_tick) for s in snaps):
                break
        check.true(any(s["at"] == iso(last_tick) for s in snaps),
                   f"snapshot of the clock's last tick {iso(last_tick)}")
        bns = [json.loads(m.value()) for m in st.consume(st.topics["bottlenecks"], idle=4)]
        print("bottleneck events:", [(b["type"], b["stage"], b["at"], b["entered"], b["advanced"],
                                      round(b["rate"], 3), round(b["baseline_rate"], 3))
                                     for b in bns])
        check.eq([(b["type"], b["stage"], b["at"]) for b in bns],
                 [("bottleneck", "visit", iso(want))] if want else [],
                 "one bottleneck, at the tick the day itself raised it")
        check.eq(len({b["id"] for b in bns}), len(bns), "distinct ids")
        check.eq(st.stop(p), 0, "exit code")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
