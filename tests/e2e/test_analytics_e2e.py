"""test_analytics_e2e.py — bottlenecks and snapshots (SPEC §4) through the real broker and Redis,
on the event clock, with a stream whose flow is known:

  hours 0-5   40 leads an hour enter "visit"; 80 % click (interest) 5 min later, half of those
              ask for a demo 10 min in, half of those buy 15 min in (value 1000 + i)
  hours 6-7   the same arrivals, but nobody clicks: the visit -> interest flow collapses
  hours 8-10  healthy again

After the drop exactly one bottleneck is raised, at "visit", and none elsewhere; after the
recovery exactly one bottleneck_cleared follows. The last snapshot's figures equal those
computed here independently from the same input, and every event validates against its
schema. funnelctl shows the same funnel from Redis (stats and one lead, --json).
"""
import json
import os
import statistics
import subprocess
import time

import jsonschema

from harness import REPO, Check, Stack, Tail, build_dir, check_backend, ev, wait_drained

T = 1795000000000 - 1795000000000 % 3600000  # on an hour
M, H = 60000, 3600000

FUNNEL = {"name": "flow", "allow_skip": True, "stages": [
    {"name": "visit", "on": [{"type": "page_view"}], "probability": 0.05},
    {"name": "interest", "on": [{"type": "email_click"}], "probability": 0.2},
    {"name": "demo", "on": [{"type": "demo_request"}], "probability": 0.5},
    {"name": "won", "on": [{"type": "purchase"}], "conversion": True}],
    "bottleneck": {"window": "1h", "baseline": "6h", "min_entered": 20, "drop": 0.5,
                   "evaluate_every": "10m"}}


def hour(h, healthy):
    out = []
    for i in range(40):
        lead = "L-%02d-%02d" % (h, i)
        t0 = T + h * H + i * M
        out.append(ev(lead, "v", t0, ["web", "ads"][i % 2], "page_view",
                      props={"campaign": "c%d" % (i % 3)}))
        if healthy and i % 10 < 8:
            out.append(ev(lead, "c", t0 + 5 * M, "email", "email_click"))
            if i % 10 < 4:
                out.append(ev(lead, "d", t0 + 10 * M, "web", "demo_request",
                              props={"value": 500 + i}))
                if i % 10 < 2:
                    out.append(ev(lead, "p", t0 + 15 * M, "web", "purchase",
                                  props={"value": 1000 + i}))
    return out


def ms(s):
    return int(time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000 + \
        int(s[20:23])


def model(events, tick, window):
    """The funnel's figures computed directly from the input, independently of funneld."""
    stage_of = {"page_view": 0, "email_click": 1, "demo_request": 2, "purchase": 3}
    prob = [0.05, 0.2, 0.5, 1.0]
    lead = {}
    entered_total = [0] * 4
    win_e, win_a = [0] * 4, [0] * 4
    time_in = [[] for _ in range(4)]
    for e in sorted(events, key=lambda e: e["ts"]):
        k = stage_of[e["type"]]
        L = lead.setdefault(e["lead_id"], {"k": -1, "since": None, "first": e, "value": None,
                                          "began": e["ts"]})
        if "value" in e.get("props", {}):
            L["value"] = e["props"]["value"]
        if k <= L["k"]:
            continue
        inwin = tick - window <= e["ts"] < tick
        lo = L["k"] + 1
        for s in range(lo, k + 1):
            entered_total[s] += 1
            win_e[s] += inwin
        for s in range(max(L["k"], 0), k):
            win_a[s] += inwin
        if L["k"] >= 0:
            time_in[L["k"]].append(e["ts"] - L["since"])
        L["k"], L["since"] = k, e["ts"]
        if k == 3:
            L["converted_at"] = e["ts"]
    pop = [0] * 4
    pipeline = 0.0
    for L in lead.values():
        pop[L["k"]] += 1
        if L["k"] < 3 and L["value"]:
            pipeline += L["value"] * prob[L["k"]]
    won = [L for L in lead.values() if L["k"] == 3]
    by_ch = {}
    for L in won:
        by_ch[L["first"]["channel"]] = by_ch.get(L["first"]["channel"], 0) + 1
    return {"pop": pop, "entered_total": entered_total, "win_e": win_e, "win_a": win_a,
            "leads": len(lead), "converted": len(won),
            "avg_sale": round(sum(L["value"] for L in won) / len(won), 2),
            "pipeline": round(pipeline, 2), "by_channel": by_ch,
            "avg_cycle": round(sum(L["converted_at"] - L["began"] for L in won) / len(won)),
            "median_in": [statistics.median_low(x) if x else None for x in time_in]}


def main():
    check = Check("test_analytics_e2e")
    schemas = {}
    for n in ("bottleneck", "snapshot"):
        with open(os.path.join(REPO, "schemas", n + ".schema.json")) as f:
            schemas[n] = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("analytics", funnels=[FUNNEL], partitions=1, clock="event")
    tail = Tail(st.brokers, st.topics["snapshots"])
    try:
        p = st.start()
        events = []
        phases = [range(0, 6), range(6, 8), range(8, 11)]
        for ph in phases:
            batch = [e for h in ph for e in hour(h, healthy=not (6 <= h <= 7))]
            batch.sort(key=lambda e: e["ts"])
            events += batch
            st.produce(batch)
            check.true(wait_drained(st, timeout=120), "phase processed")
            # The daemon's tick evaluates the latest 10-minute boundary of the event clock;
            # the next phase must not move the clock before it did.
            tick = max(e["ts"] for e in batch) // (10 * M) * (10 * M)
            check.true(tail.until(lambda vs: any(ms(json.loads(v)["at"]) == tick for v in vs)),
                       f"snapshot of the phase's last tick ({tick})")
        bns = [json.loads(m.value()) for m in st.consume(st.topics["bottlenecks"], idle=3)]
        snaps = [json.loads(m.value()) for m in st.consume(st.topics["snapshots"], idle=2)]
        print("bottleneck events:", [(b["type"], b["stage"], b["at"], round(b["rate"], 3),
                                      round(b["baseline_rate"], 3)) for b in bns])
        check.eq([(b["type"], b["stage"], b["next_stage"]) for b in bns],
                 [("bottleneck", "visit", "interest"), ("bottleneck_cleared", "visit", "interest")],
                 "one bottleneck at visit, then cleared, nothing elsewhere")
        if len(bns) == 2:
            raised, cleared = bns
            check.true(T + 6 * H < ms(raised["at"]) <= T + 8 * H + 40 * M, "raised during the drop")
            check.true(ms(cleared["at"]) > T + 8 * H, "cleared after the recovery began")
            check.true(raised["rate"] < 0.5 * raised["baseline_rate"], "raised below half the baseline")
            check.true(raised["entered"] >= 20 and raised["baseline_entered"] >= 20, "min_entered")
        for b in bns:
            check.eq([e.message for e in schemas["bottleneck"].iter_errors(b)], [], "bottleneck schema")
        check.true(len(snaps) >= 3, f"snapshots emitted ({len(snaps)})")
        for s in snaps:
            check.eq([e.message for e in schemas["snapshot"].iter_errors(s)], [], "snapshot schema")
        ids = [s["id"] for s in snaps]
        check.eq(len(ids), len(set(ids)), "one snapshot per tick")
        last = max(snaps, key=lambda s: ms(s["at"])) if snaps else None
        if last:
            want = model(events, ms(last["at"]), H)
            stages = last["stages"]
            check.eq([s["population"] for s in stages], want["pop"], "population per stage")
            check.eq([s["entered_total"] for s in stages], want["entered_total"], "entered ever")
            check.eq([s["entered"] for s in stages], want["win_e"], "entered in the window")
            check.eq([s["advanced"] for s in stages], want["win_a"], "advanced in the window")
            check.eq(last["leads"], want["leads"], "leads")
            check.eq(last["converted"], want["converted"], "converted")
            check.eq(round(last["conversion_rate"], 6), round(want["converted"] / want["leads"], 6),
                     "conversion rate")
            check.eq(last["avg_sale_value"], want["avg_sale"], "average sale value")
            check.eq(last["weighted_pipeline"], want["pipeline"], "weighted pipeline")
            check.eq(last["conversions_by_channel"], want["by_channel"], "conversions by channel")
            check.eq(last["avg_cycle_ms"], want["avg_cycle"], "average cycle time")
            for k, med in enumerate(want["median_in"]):
                got = stages[k]["median_time_in_stage_ms"]
                ok = (med is None and got is None) or (med is not None and got is not None and
                                                       abs(got - med) <= 0.02 * med + 1)
                check.true(ok, f"median time in stage {k}: {got} vs {med} (2 % sketch accuracy)")

        # funnelctl reads the same figures straight from Redis
        ctl = os.path.join(build_dir(), "funnelctl")
        env = dict(os.environ, FUNNELD_CONFIG=st.config_path)
        out = subprocess.run([ctl, "--json", "stats", "flow"], env=env, capture_output=True,
                             text=True, timeout=30)
        check.eq(out.returncode, 0, f"funnelctl stats: {out.stderr.strip()}")
        if out.returncode == 0 and last:
            j = json.loads(out.stdout)
            check.eq([s["population"] for s in j["stages"]],
                     [s["population"] for s in last["stages"]], "funnelctl population")
            check.eq(j["converted"], last["converted"], "funnelctl converted")
        out = subprocess.run([ctl, "stats", "flow"], env=env, capture_output=True, text=True,
                             timeout=30)
        check.true(out.returncode == 0 and "visit" in out.stdout and "█" in out.stdout,
                   "funnelctl draws the funnel")
        print(out.stdout)
        out = subprocess.run([ctl, "--json", "lead", "flow", "L-00-00"], env=env,
                             capture_output=True, text=True, timeout=30)
        j = json.loads(out.stdout) if out.returncode == 0 else {}
        check.eq((j.get("status"), j.get("stage"), j.get("value")), ("converted", "won", 1000.0),
                 "funnelctl lead")
        out = subprocess.run([ctl, "lead", "flow", "nobody"], env=env, capture_output=True,
                             text=True, timeout=30)
        check.eq(out.returncode, 1, "unknown lead: exit 1")
        out = subprocess.run([ctl, "stats", "nope"], env=env, capture_output=True, text=True,
                             timeout=30)
        check.true(out.returncode == 2 and "unknown funnel" in out.stderr, "unknown funnel: exit 2")
        check.eq(st.stop(p), 0, "exit code")
        check_backend(st, check)
    finally:
        tail.close()
        st.close()

    # wall clock, two daemons in one group: one snapshot per tick, never two
    f = json.loads(json.dumps(FUNNEL))
    f["bottleneck"]["evaluate_every"] = "1s"
    w = Stack("analytics-wall", funnels=[f], partitions=2, clock="wall")
    try:
        a, b = w.start(), w.start()
        # a minute ago: windows count whole minutes, so the current one is not in yet
        then = int(time.time() * 1000) - 60000
        w.produce([ev("W-%d" % i, "w", then, "web", "page_view") for i in range(20)])
        wtail = Tail(w.brokers, w.topics["snapshots"])
        try:
            check.true(wtail.until(lambda vs: sum(json.loads(v)["stages"][0]["entered"] == 20
                                                  for v in vs) >= 3),
                       "three snapshots that see the 20 entries")
        finally:
            wtail.close()
        for p in (a, b):  # stopped first: running, they publish every second, never idle
            check.eq(w.stop(p), 0, "exit code")
        snaps = [json.loads(m.value()) for m in w.consume(w.topics["snapshots"], idle=2)]
        ticks = [s["at"] for s in snaps]
        check.true(len(snaps) >= 3, f"wall-clock snapshots every second ({len(snaps)})")
        check.eq(len(ticks), len(set(ticks)), "two daemons: one snapshot per tick")
        check.true(all(ms(t) % 1000 == 0 for t in ticks), "ticks on multiples of evaluate_every")
        check.true(any(s["stages"][0]["entered"] == 20 for s in snaps),
                   "the window sees the 20 entries")
    finally:
        w.close()
    check.done()


if __name__ == "__main__":
    main()
