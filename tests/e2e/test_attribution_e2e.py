"""test_attribution_e2e.py — multi-touch attribution (SPEC §11) through the real broker and
Redis: 400 leads with journeys over five channels and four campaigns (some touches beyond the
lookback, some journeys longer than max_touches, some touches routed to another funnel, 1 %
duplicates), of which about 60 % buy. Every converted event's credit, per model, equals the
credit computed here independently from the input; the last snapshot's credited conversions
and revenue per channel and campaign equal their sums, counted exactly in millionths and
cents; every output validates against its
schema; funnelctl attribution shows the same; a replay on fresh state gives the same
credits, id for id. An anonymous id's touch counts for the person it is merged into.
"""
import json
import math
import os
import random
import subprocess
import time

import jsonschema

from harness import REPO, Check, Stack, build_dir, ev, wait_drained, wait_for

DAY = 86400000
LOOKBACK, MAX_TOUCHES, HALF = 30 * DAY, 5, DAY
MODELS = ["linear", "first_touch", "last_touch", "time_decay", "position_based"]
FUNNELS = [
    {"name": "shop", "allow_skip": True, "stages": [
        {"name": "visit", "on": [{"type": "page_view"}]},
        {"name": "cart", "on": [{"type": "cart_add"}]},
        {"name": "won", "on": [{"type": "purchase"}], "conversion": True}],
     "attribution": {"models": MODELS, "lookback": "30d", "max_touches": MAX_TOUCHES,
                     "half_life": "1d"},
     "bottleneck": {"evaluate_every": "1s"}},
    {"name": "other", "stages": [{"name": "seen", "on": [{"type": "page_view"}]}]}]
CHANNELS = ["ads", "email", "social", "web", "referral"]
CAMPAIGNS = ["spring", "summer", "brand", "retarget", None]
EDGES = {"routed": 0, "beyond lookback": 0, "over max_touches": 0}  # converting leads with


def stream(n, seed=5):
    rnd = random.Random(seed)
    t0 = (int(time.time() * 1000) - 60 * DAY) // 1000 * 1000
    out = []
    for i in range(n):
        lead, t = "L-%03d" % i, t0 + rnd.randrange(5 * DAY)
        for k in range(rnd.randrange(1, 9)):
            # a long gap now and then puts the first touches beyond the lookback
            t += rnd.choice([3600000, 5 * 3600000, DAY, 2 * DAY, 35 * DAY if k == 1 else DAY])
            props = {}
            camp = rnd.choice(CAMPAIGNS)
            if camp:
                props["campaign"] = camp
            e = ev(lead, "%s-%d" % (lead, k), t, rnd.choice(CHANNELS),
                   rnd.choice(["page_view", "page_view", "cart_add", "email_open"]), props=props)
            if rnd.random() < 0.1:
                e["funnel"] = "other"  # routed: not a touch of shop
                e["type"] = "page_view"
            out.append(e)
        if rnd.random() < 0.6:
            t += rnd.choice([3600000, DAY])
            props = {"value": rnd.randrange(10, 500)}
            camp = rnd.choice(CAMPAIGNS)
            if camp:
                props["campaign"] = camp
            out.append(ev(lead, "%s-buy" % lead, t, rnd.choice(CHANNELS), "purchase",
                          props=props))
    dups = [dict(e) for e in rnd.sample(out, len(out) // 100)]
    return out + dups


def weights(model, touches):
    n = len(touches)
    if model == "first_touch":
        return [1.0] + [0.0] * (n - 1)
    if model == "last_touch":
        return [0.0] * (n - 1) + [1.0]
    if model == "linear":
        return [1.0 / n] * n
    if model == "time_decay":
        raw = [2 ** (-(touches[-1][0] - t) / HALF) for t, _, _ in touches]
        return [w / sum(raw) for w in raw]
    if n == 1:
        return [1.0]
    if n == 2:
        return [0.5, 0.5]
    return [0.4] + [0.2 / (n - 2)] * (n - 2) + [0.4]


def apportion(total, ws):
    """attribution.lua's largest-remainder split of an integer total by weights."""
    sign, total = (-1, -total) if total < 0 else (1, total)
    xs = [w * total for w in ws]
    parts = [math.floor(x) for x in xs]
    rems = [x - p for x, p in zip(xs, parts)]
    order = sorted(range(len(ws)), key=lambda j: (-rems[j], j))
    for k in order[:min(total - sum(parts), len(ws))]:
        parts[k] += 1
    return [sign * p for p in parts]


def expected(events):
    """Per converting lead: {model: {(channel, campaign): weight}}, and its value."""
    seen, by_lead = set(), {}
    for e in events:
        if (e["lead_id"], e["event_id"]) in seen:
            continue
        seen.add((e["lead_id"], e["event_id"]))
        by_lead.setdefault(e["lead_id"], []).append(e)
    want = {}
    for lead, es in by_lead.items():
        buy = [e for e in es if e["type"] == "purchase"]
        if not buy:
            continue
        at = max(e["ts"] for e in es)
        mine = [e for e in es if e.get("funnel") in (None, "shop")]
        touches = sorted((e["ts"], e["channel"], e["props"].get("campaign") or "")
                         for e in mine if at - LOOKBACK <= e["ts"] <= at)
        # equal times keep the step's order of their members; the stream has none
        EDGES["routed"] += len(mine) < len(es)
        EDGES["beyond lookback"] += len(touches) < len(mine)
        EDGES["over max_touches"] += len(touches) > MAX_TOUCHES
        touches = touches[-MAX_TOUCHES:]
        credit = {}
        for m in MODELS:
            parts = {}
            for (t, ch, cp), w in zip(touches, weights(m, touches)):
                if w > 0:
                    parts[(ch, cp)] = parts.get((ch, cp), 0) + w
            credit[m] = parts
        want[lead] = (credit, buy[0]["props"]["value"])
    return want


def got_credit(e):
    return {m: {(p["channel"], p["campaign"] or ""): p["weight"] for p in parts}
            for m, parts in e.get("credit", {}).items()}


def same(a, b):
    return a.keys() == b.keys() and all(
        a[m].keys() == b[m].keys() and all(abs(a[m][k] - b[m][k]) < 1e-9 for k in a[m])
        for m in a)


def merged_touches(st, check):
    """An anonymous id's touches count for the person it is merged into (SPEC §10, §11)."""
    t = int(time.time() * 1000) - 3 * DAY
    st.produce([("M", json.dumps(e)) for e in [
        ev("anon-1", "m-1", t, "ads", "page_view", props={"campaign": "spring"}),
        ev("user-1", "m-2", t + DAY, "email", "email_open"),
        ev("user-1", "m-3", t + DAY + 1000, "web", "identify", props={"previous_id": "anon-1"}),
        ev("user-1", "m-4", t + 2 * DAY, "web", "purchase", props={"value": 90})]])
    check.true(wait_drained(st, timeout=60), "merge phase processed")
    conv = [e for e in st.transitions(idle=2) if e["cause_event_id"] == "m-4" and
            e["funnel"] == "shop"]
    check.eq([got_credit(e)["linear"] for e in conv],
             [{("ads", "spring"): 1 / 3, ("email", ""): 1 / 3, ("web", ""): 1 / 3}],
             "the merged anonymous touch shares the person's conversion")


def main():
    check = Check("attribution_e2e")
    with open(os.path.join(REPO, "schemas/transition.schema.json")) as f:
        transition = jsonschema.Draft202012Validator(json.load(f))
    with open(os.path.join(REPO, "schemas/snapshot.schema.json")) as f:
        snapshot = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("attribution", funnels=FUNNELS, partitions=3)
    events = stream(400)
    want = expected(events)
    print("converting leads", len(want), EDGES)
    check.true(len(want) > 200 and min(EDGES.values()) >= 10, "the stream has every edge")
    try:
        p = st.start()
        st.produce([(e["lead_id"], json.dumps(e)) for e in events])
        check.true(wait_drained(st, timeout=300), "input processed")
        conv = {}
        for e in st.transitions(idle=3):
            if e["type"] == "converted" and e["funnel"] == "shop":
                conv[e["lead_id"]] = e
            check.eq([x.message for x in transition.iter_errors(e)][:1], [], "transition schema")
        check.eq(sorted(conv), sorted(want), "one converted event per buying lead")
        wrong = [lead for lead in want if lead in conv and
                 not same(got_credit(conv[lead]), want[lead][0])]
        check.eq(wrong[:5], [], f"credits equal the independent computation ({len(want)} leads)")
        for lead in wrong[:2]:
            print(lead, "got", got_credit(conv[lead]), "want", want[lead][0])

        # the snapshot's credited sums, after the last conversion
        def last_snapshot():
            snaps = [json.loads(m.value()) for m in st.consume(st.topics["snapshots"], idle=2)]
            snaps = [s for s in snaps if s["funnel"] == "shop"]
            return max(snaps, key=lambda s: s["at"]) if snaps else None
        snap = {}
        check.true(wait_for(lambda: snap.update(last_snapshot() or {}) or
                            snap.get("converted") == len(want), 60),
                   "a snapshot after the last conversion")
        check.eq([x.message for x in snapshot.iter_errors(snap)][:1], [], "snapshot schema")
        for m in MODELS:
            for side, pick in (("by_channel", 0), ("by_campaign", 1)):
                # counted exactly in millionths of a conversion and in cents
                sums = {}
                for credit, value in want.values():
                    ws = list(credit[m].values())
                    conv = apportion(1000000, ws)
                    cents = apportion(math.floor(value * 100 + 0.5), ws)
                    for j, k in enumerate(credit[m]):
                        name = k[pick] or "(none)"
                        c, r = sums.get(name, (0, 0))
                        sums[name] = (c + conv[j], r + cents[j])
                got = snap.get("attribution", {}).get(m, {}).get(side, {})
                off = [k for k in set(got) | set(sums) if k not in got or k not in sums or
                       round(got[k]["conversions"] * 1e6) != sums[k][0] or
                       round(got[k]["revenue"] * 100) != sums[k][1]]
                check.eq(sorted(off), [], f"snapshot {m} {side}")
                for k in sorted(off)[:2]:
                    print(m, side, k, got.get(k), sums.get(k))
        # funnelctl shows the same figures from Redis
        ctl = [os.path.join(build_dir(), "funnelctl"), "-c", st.config_path]
        out = subprocess.run(ctl + ["--json", "attribution", "shop", "--model", "linear"],
                             capture_output=True, text=True, timeout=30)
        check.eq(out.returncode, 0, f"funnelctl attribution: {out.stderr.strip()}")
        if out.returncode == 0:
            j = json.loads(out.stdout)
            check.eq((j["converted"], j["attribution"]),
                     (snap.get("converted"), {"linear": snap.get("attribution", {}).get("linear")}),
                     "funnelctl attribution --model linear equals the snapshot's")
        out = subprocess.run(ctl + ["attribution", "shop"], capture_output=True, text=True,
                             timeout=30)
        check.true(out.returncode == 0 and all(m in out.stdout for m in MODELS) and
                   "referral" in out.stdout, "funnelctl attribution prints every model")
        out = subprocess.run(ctl + ["attribution", "other"], capture_output=True, text=True,
                             timeout=30)
        check.true(out.returncode == 2 and "no attribution" in out.stderr,
                   "funnelctl attribution of a funnel without it: exit 2")
        merged_touches(st, check)
        check.eq(st.stop(p), 0, "the daemon exits 0")

        # a replay on fresh state credits the same, id for id
        st.replay_config(3)
        p = st.start()
        check.true(wait_for(lambda: len([e for e in st.transitions(idle=2)
                                         if e["type"] == "converted"]) >= 2 * len(conv), 120),
                   "the replay converts the same leads")
        by_id = {}
        for e in st.transitions(idle=2):
            if e["type"] == "converted":
                by_id.setdefault(e["id"], []).append(json.dumps(e.get("credit"), sort_keys=True))
        check.eq(sorted(k for k, v in by_id.items() if len(v) != 2 or v[0] != v[1])[:5], [],
                 "the replay's credits equal the first run's, id for id")
        check.eq(st.stop(p), 0, "the replay exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
