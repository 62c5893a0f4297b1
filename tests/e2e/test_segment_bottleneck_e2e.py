"""test_segment_bottleneck_e2e.py — a segment's flow drops while the funnel's holds (SPEC §11
breakdowns, §5 back-fill), on the real broker and Redis, event clock.

A 27.5-hour stream, as in test_backfill_bottleneck_e2e: every hour 20 leads of segment "paid"
and 20 of "organic" enter "visit" (props.segment), 80 % of each click 5 minutes later; in
hour 24 no paid lead clicks while every organic one does. The funnel as a whole keeps half
its flow (20 of 40, against 80 %: above (1 - drop) x the baseline), so it raises nothing;
"paid" falls to nothing and raises a `bottleneck` carrying breakdown {props.segment, paid},
cleared once it recovers. Expected: exactly the changes this test computes from the input for
each segment and for the funnel (the daemon's rule at every minute's first tick), with those
ticks; fed as a backlog and paced, the same events with the same ids; the schema holds.
"""
import json
import os
import time

import jsonschema

from harness import (REPO, Check, Stack, bottleneck_model, ev, iso, produce_paced, wait_drained,
                     wait_for)

M, H = 60000, 3600000
EVERY = 10000
T = (int(time.time() * 1000) - 30 * H) // H * H  # recent: the flows are kept 32 days
OFF = 37000  # events 37 s into their minute: the clock's ticks are never a minute's first
SEGMENTS = ["paid", "organic"]

FUNNEL = {"name": "flow", "allow_skip": True, "breakdowns": ["props.segment"], "stages": [
    {"name": "visit", "on": [{"type": "page_view"}]},
    {"name": "interest", "on": [{"type": "email_click"}]}],
    "bottleneck": {"window": "1h", "baseline": "24h", "min_entered": 20, "drop": 0.5,
                   "evaluate_every": "10s"}}


def stream():
    out = []
    for h in range(27):
        for i in range(40):
            seg = SEGMENTS[i % 2]
            lead, t0 = "S-%02d-%02d" % (h, i), T + h * H + i * M + OFF
            out.append(ev(lead, "v", t0, "web", "page_view", props={"segment": seg}))
            clicks = (i // 2) % 10 < 8
            if h == 24:
                clicks = seg == "organic"
            if clicks:
                out.append(ev(lead, "c", t0 + 5 * M, "email", "email_click"))
    out.append(ev("S-last", "v", T + 27 * H + 30 * M + OFF, "web", "page_view",
                  props={"segment": "paid"}))
    return sorted(out, key=lambda e: e["ts"])


def expected_changes(events, segment):
    """[(type, tick)] of one segment (None: the whole funnel), by the daemon's rule judged
    at every minute's first tick."""
    seg_of = {e["lead_id"]: e.get("props", {}).get("segment") for e in events
              if e["type"] == "page_view"}
    mine = [e for e in events if segment is None or seg_of[e["lead_id"]] == segment]
    return bottleneck_model(mine, "page_view", events[0]["ts"], events[-1]["ts"])


def run(check, schema, events, partitions, paced):
    st = Stack("segbn", funnels=[FUNNEL], partitions=partitions, clock="event")
    st.cfg["redis"]["shards"] = 4
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f)
    how = "paced" if paced else "backlog"
    try:
        if paced:
            p = st.start()
            produce_paced(st, [(e["lead_id"], json.dumps(e)) for e in events], 60)
        else:
            st.produce([(e["lead_id"], json.dumps(e)) for e in events])
            p = st.start()
        check.true(wait_drained(st, timeout=300), f"{how}: stream processed")
        last_tick = events[-1]["ts"] // EVERY * EVERY

        def last_snapshot():
            return any(json.loads(m.value())["at"] == iso(last_tick)
                       for m in st.read_all(st.topics["snapshots"]))
        check.true(wait_for(last_snapshot, 120), f"{how}: snapshot of the clock's last tick")
        bns = [json.loads(m.value()) for m in st.read_all(st.topics["bottlenecks"])]
        for b in bns:
            check.eq([e.message for e in schema.iter_errors(b)][:1], [], f"{how}: schema")
        print(how, "bottleneck events:", [(b["type"], b.get("breakdown"), b["at"], b["entered"],
                                           b["advanced"], round(b["rate"], 3),
                                           round(b["baseline_rate"], 3)) for b in bns])
        check.eq(st.stop(p), 0, f"{how}: exit code")
        return bns
    finally:
        st.close()


def main():
    check = Check("test_segment_bottleneck_e2e")
    with open(os.path.join(REPO, "schemas/bottleneck.schema.json")) as f:
        schema = jsonschema.Draft202012Validator(json.load(f))
    events = stream()
    want = {seg: expected_changes(events, seg) for seg in SEGMENTS}
    check.eq(expected_changes(events, None), [], "the model: the funnel as a whole raises nothing")
    check.eq(want["organic"], [], "the model: organic raises nothing")
    check.true([t for t, _ in want["paid"]] == ["bottleneck", "bottleneck_cleared"] and
               T + 24 * H < want["paid"][0][1] < T + 25 * H + 30 * M < want["paid"][1][1],
               f"the model: paid raises during the drop and clears after ({want['paid']})")
    backlog = run(check, schema, events, 3, paced=False)
    check.eq([(b["type"], b["stage"], b.get("breakdown"), b["at"]) for b in backlog],
             [(t, "visit", {"dimension": "props.segment", "value": "paid"}, iso(at))
              for t, at in want["paid"]],
             "backlog: paid raised and cleared at the model's ticks, nothing else")
    paced = run(check, schema, events, 1, paced=True)
    check.eq([(b["type"], b["at"], b["id"]) for b in paced],
             [(b["type"], b["at"], b["id"]) for b in backlog],
             "paced: the same events with the same ids")
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
