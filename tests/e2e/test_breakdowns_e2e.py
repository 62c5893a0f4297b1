"""test_breakdowns_e2e.py — per-value stage figures (SPEC §11 breakdowns) through the real
broker and Redis: 240 leads over three dimensions (channel by first touch, campaign by last
touch, props.segment), each first touched outside the funnel, then entering it, moving
forward (skips), back (regress) and forward again, converting, being lost or erased, and
anonymous leads merged into a known id that takes their place. This test follows every lead
itself; the snapshot's breakdowns equal its figures per dimension, value and stage
(population, entered in all, entered and advanced in the window, flow rate); the
population of each stage summed over a dimension's values equals the stage's population;
the schema holds; funnelctl stats --by shows the same. Then 1,000 leads of distinct segments:
Redis keeps at most max_breakdown of them by name per shard, the snapshot as many and
"(other)", the largest kept, the populations still adding up.
"""
import json
import os
import random
import time

import jsonschema

from harness import REPO, Check, Stack, ev, funnelctl, latest_snapshot, wait_drained, wait_for

MIN = 60000
TYPES = ["page_view", "signup", "trial_start", "purchase"]
STAGES = ["visit", "signup", "trial", "paid"]
DIMS = ["channel", "campaign", "props.segment"]
MAX = 5
FUNNELS = [{"name": "saas", "allow_skip": True, "allow_regress": True, "max_breakdown": MAX,
            "stages": [{"name": s, "on": [{"type": t}]} for s, t in zip(STAGES, TYPES)],
            "lost": {"on": [{"type": "unsubscribe"}]},
            "breakdowns": ["channel", {"dimension": "campaign", "touch": "last"},
                           "props.segment"],
            "bottleneck": {"evaluate_every": "1s", "window": "1h"}}]
FUNNELS[0]["stages"][-1]["conversion"] = True


class Sim:
    """Per dimension, value and stage: [population, entered in all, advanced]."""

    def __init__(self):
        self.fig = {d: {} for d in DIMS}
        self.pop = [0] * 4

    def row(self, d, v):
        return self.fig[d].setdefault(v, [[0, 0, 0] for _ in STAGES])

    def move(self, vals, frm, to, back=False):
        for d, v in vals.items():
            r = self.row(d, v)
            if frm >= 0:
                r[frm][0] -= 1
            if to >= 0:
                r[to][0] += 1
                for s in ([to] if back else range(frm + 1, to + 1)):
                    r[s][1] += 1
                if not back:
                    for s in range(max(frm, 0), to):
                        r[s][2] += 1
        if frm >= 0:
            self.pop[frm] -= 1
        if to >= 0:
            self.pop[to] += 1


def stream(now, seed=9):
    rnd = random.Random(seed)
    sim, events = Sim(), []
    for i in range(240):
        lead = "B-%03d" % i
        t = now - rnd.randrange(20, 40) * MIN + i * 10
        first_ch = rnd.choice(["ads", "social", "email"])
        ch, cp, seg = rnd.choice(["web", "ads"]), rnd.choice(["spring", "fall"]), \
            rnd.choice(["smb", "mid", "ent", None])
        anon = i % 12 == 5  # entered as an anonymous id, merged into a known one below
        who = "anon-" + lead if anon else lead
        # a first touch that enters nothing: channel's first touch, not campaign's last
        events.append(ev(who, lead + "-0", t, first_ch, "email_open",
                         props={"campaign": "pre"}))
        props = {"campaign": cp}
        if seg:
            props["segment"] = seg
        vals = {"channel": first_ch, "campaign": cp, "props.segment": seg or "(none)"}
        # the path: a stage sequence, forward with skips, sometimes back and forward again
        target = rnd.randrange(0, 4)
        path = [rnd.randrange(0, target + 1)]
        while path[-1] < target:
            path.append(rnd.randrange(path[-1] + 1, target + 1))
        if target >= 2 and rnd.random() < 0.3:
            path += [target - 1, target]
        k, cur = 1, -1
        for s in path:
            if s == cur:
                continue
            e = ev(who, "%s-%d" % (lead, k), t + k * 1000, ch, TYPES[s], props=dict(props))
            events.append(e)
            sim.move(vals, cur, s, back=0 <= s < cur)
            cur, k = s, k + 1
            if s == 3:
                break  # converted
        end = rnd.random()
        if cur < 3 and end < 0.2:
            events.append(ev(who, lead + "-lost", t + 9000, ch, "unsubscribe"))
            sim.move(vals, cur, -1)
        elif end > 0.9:
            events.append(ev(who, lead + "-erase", t + 9000, ch, "erase"))
            sim.move(vals, cur, -1)
        elif anon:
            events.append(ev(lead, lead + "-identify", t + 9500, "web", "identify",
                             props={"previous_id": who}))
    return events, sim


def expected(sim):
    out = {}
    for d, values in sim.fig.items():
        out[d] = {}
        for v, rows in values.items():
            out[d][v] = [{"stage": STAGES[k], "population": r[0], "entered_total": r[1],
                          "entered": r[1], "advanced": r[2],
                          "flow_rate": r[2] / r[1] if r[1] else 0.0}
                         for k, r in enumerate(rows)]
    return out


def close(got, want):
    if isinstance(want, dict):
        return isinstance(got, dict) and set(got) == set(want) and \
            all(close(got[k], want[k]) for k in want)
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and \
            all(close(g, w) for g, w in zip(got, want))
    if isinstance(want, float):
        return isinstance(got, (int, float)) and abs(got - want) < 1e-9
    return got == want


def main():
    check = Check("breakdowns_e2e")
    with open(os.path.join(REPO, "schemas/snapshot.schema.json")) as f:
        schema = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("breakdowns", funnels=FUNNELS, partitions=3)
    now = int(time.time() * 1000)
    events, sim = stream(now)
    want = expected(sim)
    check.true(all(len(want[d]) >= 2 for d in DIMS), "several values per dimension")
    try:
        p = st.start()
        st.produce([(e["lead_id"] if e["type"] != "identify" else e["props"]["previous_id"],
                     json.dumps(e)) for e in events])
        check.true(wait_drained(st, timeout=120), "input processed")
        snap = {}

        def matches():
            snap.clear()
            snap.update(latest_snapshot(st))
            return close(snap.get("breakdowns"), want)
        check.true(wait_for(matches, 60), "the snapshot's breakdowns equal the input's")
        got = snap.get("breakdowns", {})
        for d in DIMS:
            for v, stages in want[d].items():
                check.true(close(got.get(d, {}).get(v), stages),
                           f"{d}={v}: {got.get(d, {}).get(v)} == {stages}")
        pops = [s["population"] for s in snap.get("stages", [])]
        check.eq(pops, sim.pop, "the stages' populations")
        for d in DIMS:
            summed = [sum(rows[k]["population"] for rows in got.get(d, {}).values())
                      for k in range(4)]
            check.eq(summed, pops, f"{d}: the values' populations add up to the stage's")
        check.eq([e.message for e in schema.iter_errors(snap)][:1], [], "snapshot schema")
        rc, out, err = funnelctl(st, "--json", "stats", "saas", "--by", "props.segment")
        doc = json.loads(out) if rc == 0 else {}
        check.true(close(doc.get("values"), want["props.segment"]), "funnelctl stats --by --json")
        rc, out, err = funnelctl(st, "stats", "saas", "--by", "campaign")
        print(out)
        check.true(rc == 0 and "spring" in out and "trial" in out,
                   "funnelctl stats --by prints the values")
        rc, out, err = funnelctl(st, "stats", "saas", "--by", "medium")
        check.true(rc == 2 and "no breakdown" in err, f"an unknown dimension: {rc} {err}")

        flood = [ev("F-%04d" % i, "f-%d" % i, now - 15 * MIN, "web", "page_view",
                    props={"segment": "seg-%04d" % i}) for i in range(1000)]
        st.produce([(e["lead_id"], json.dumps(e)) for e in flood])
        check.true(wait_drained(st, timeout=120), "the flood processed")
        for shard in range(64):
            kept = [f for f in st.redis.hkeys(f"{st.name}:{{{shard}}}:stats")
                    if f.startswith(b"saas|bd:props.segment|")]
            check.true(len(kept) <= MAX + 1, f"shard {shard} keeps {len(kept)} segments")

        def flooded():
            snap.clear()
            snap.update(latest_snapshot(st))
            return snap.get("stages", [{}])[0].get("population") == sim.pop[0] + 1000
        check.true(wait_for(flooded, 60), "the flood counted")
        seg = snap.get("breakdowns", {}).get("props.segment", {})
        check.true(len(seg) <= MAX + 1 and "(other)" in seg, f"{len(seg)} segments shown")
        for v in want["props.segment"]:
            check.true(v in seg, f"segment {v} stays by name")
        check.eq([sum(rows[k]["population"] for rows in seg.values()) for k in range(4)],
                 [s["population"] for s in snap["stages"]], "the populations still add up")
        check.eq(st.stop(p), 0, "the daemon exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
