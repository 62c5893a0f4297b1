"""test_cost_e2e.py — cost, new leads, CPL, CPA and ROAS (SPEC §11) through the real broker
and Redis: cost events of known channels and campaigns, inside the window and days before it,
one of them twice; 90 leads whose first touches, entries and conversions (with values) fall
inside or before the window, some entering before it and converting in it. The snapshot's
`marketing` (first model: first_touch) equals what this test computes from the input, per
channel and per campaign, over the window and all time, to the cent. Hostile costs are
dead-lettered with their reason: negative, a string, a NaN token, a huge amount, none, one
routed to a funnel without attribution. A flood of 100,000 costs with distinct campaign names
stays bounded by max_breakdown in Redis and in the snapshot while the sums stay exact; the
schema holds, and funnelctl roi --json shows the snapshot's figures.
"""
import json
import os
import random
import time

import jsonschema

from harness import (REPO, Check, Stack, ev, funnelctl, latest_snapshot, scaled, wait_drained,
                     wait_for)

MIN, HOUR, DAY = 60000, 3600000, 86400000
MAX_BREAKDOWN = 5
FUNNELS = [
    {"name": "shop", "allow_skip": True, "max_breakdown": MAX_BREAKDOWN,
     "stages": [{"name": "visit", "on": [{"type": "page_view"}]},
                {"name": "cart", "on": [{"type": "cart_add"}]},
                {"name": "won", "on": [{"type": "purchase"}], "conversion": True}],
     "attribution": {"models": ["first_touch", "linear"]},
     "bottleneck": {"evaluate_every": "1s", "window": "1h"}},
    {"name": "plain", "stages": [{"name": "seen", "on": [{"type": "page_view"}]}]},
]
FIRST = [("search", "c1"), ("social", "c2"), ("email", "")]
SPANS = ("window", "all_time")


def zero():
    return {"cost": 0, "leads": 0, "conv": 0, "revenue": 0}


def stream(now, seed=11):
    """The events and, per side (channel, campaign) and name, per span, the cents spent, the
    leads, the conversions and the cents of revenue first_touch credits."""
    rnd = random.Random(seed)
    want = {side: {} for side in ("by_channel", "by_campaign")}

    def add(ch, cp, t, what, n):
        for side, name in (("by_channel", ch), ("by_campaign", cp or "(none)")):
            w = want[side].setdefault(name, {s: zero() for s in SPANS})
            w["all_time"][what] += n
            if now - 40 * MIN <= t <= now - 5 * MIN:
                w["window"][what] += n
            else:
                assert t < now - 2 * HOUR  # far from the window's edges
    events = []
    costs = [("search", "c1", now - 30 * MIN, 200.00), ("search", "c1", now - 3 * DAY, 300.25),
             ("social", "c2", now - 10 * MIN, 150.50), ("social", "c2", now - 5 * DAY, 1000.00),
             ("search", "", now - 20 * MIN, 12.34)]
    for i, (ch, cp, t, amount) in enumerate(costs):
        props = {"amount": amount}
        if cp:
            props["campaign"] = cp
        events.append(ev("acct-%d" % (i % 2), "cost-%d" % i, t, ch, "cost", props=props))
        add(ch, cp, t, "cost", round(amount * 100))
    events.append(dict(events[0]))  # a copy: counted once
    for i in range(90):
        lead = "M-%02d" % i
        ch, cp = FIRST[i % 3]
        kind = rnd.choice(["window", "before", "enter-before-convert-in"])
        t = now - rnd.randrange(10, 35) * MIN if kind == "window" else \
            now - rnd.randrange(3 * HOUR, 10 * DAY)
        props = {"campaign": cp} if cp else {}
        events.append(ev(lead, lead + "-1", t, ch, "page_view", props=props))
        add(ch, cp, t, "leads", 1)
        later = rnd.choice(["web", "email", "ads"])
        events.append(ev(lead, lead + "-2", t + MIN, later, "cart_add"))
        if i % 2 == 0:
            at = t + 2 * MIN
            if kind == "enter-before-convert-in":
                at = now - rnd.randrange(10, 35) * MIN
            value = rnd.randrange(1000, 100000) / 100
            events.append(ev(lead, lead + "-3", at, later, "purchase", props={"value": value}))
            add(ch, cp, at, "conv", 1)
            add(ch, cp, at, "revenue", round(value * 100))
    return events, want


def expected(w):
    """A span of the snapshot as the test computes it."""
    cost, conv, revenue = w["cost"] / 100, w["conv"], w["revenue"] / 100
    return {"cost": cost, "leads": w["leads"], "conversions": conv, "revenue": revenue,
            "cpl": cost / w["leads"] if w["leads"] else None,
            "cpa": cost / conv if conv else None,
            "roas": revenue / cost if cost else None}


# How far a figure may be from the exact one: money to the cent, ROAS and conversions to a
# millionth, rounded to the nearest (CPL and CPA are shown rounded, cost and revenue are sums
# of cents).
TOLERANCE = {"cpl": 0.005, "cpa": 0.005, "roas": 5e-7}


def same(got, want):
    if set(got) != set(want):
        return False
    for k, v in want.items():
        g = got[k]
        if (g is None) != (v is None) or \
                (v is not None and abs(g - v) > TOLERANCE.get(k, 0) + 1e-9 * max(1, abs(v))):
            return False
    return True


def hostile(now):
    """(event, the start of the reason it must be dead-lettered with)"""
    base = dict(lead_id="acct-x", ts=now - 15 * MIN, channel="search", type="cost")
    cases = [
        ({"amount": -20}, None, "invalid_value", "props.amount: -20 is out of range"),
        ({"amount": "12.50"}, None, "wrong_type", "props.amount: expected number, got string"),
        ({"amount": 1e11}, None, "invalid_value", "props.amount: 100000000000 is out of range"),
        ({"campaign": "c1"}, None, "missing_field", "props.amount: missing"),
        ({"amount": 5}, "plain", "invalid_value", "funnel: plain keeps no cost figures"),
    ]
    out = []
    for i, (props, funnel, code, reason) in enumerate(cases):
        e = dict(base, event_id="bad-%d" % i, props=props)
        if funnel:
            e["funnel"] = funnel
        out.append((json.dumps(e), code, reason))
    nan = json.dumps(dict(base, event_id="bad-nan", props={"amount": 0})).replace(
        '"amount": 0', '"amount": NaN')
    out.append((nan, "invalid_json", ""))
    return out


def check_figures(check, snap, want, sides, what):
    mk = snap.get("marketing", {})
    for side in sides:
        for name, w in want[side].items():
            for span in SPANS:
                got = mk.get(side, {}).get(name, {}).get(span, {})
                check.true(same(got, expected(w[span])),
                           f"{what}: {side} {name} {span}: {got} == {expected(w[span])}")


def main():
    check = Check("cost_e2e")
    with open(os.path.join(REPO, "schemas/snapshot.schema.json")) as f:
        schema = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("cost", funnels=FUNNELS, partitions=3)
    now = int(time.time() * 1000)
    events, want = stream(now)
    bad = hostile(now)
    try:
        p = st.start()
        st.produce([(e["lead_id"], json.dumps(e)) for e in events] +
                   [("acct-x", v) for v, _, _ in bad])
        check.true(wait_drained(st, timeout=120), "input processed")
        snap = {}
        sides = ("by_channel", "by_campaign")

        def figures_match():
            snap.clear()
            snap.update(latest_snapshot(st, "shop"))
            return all(same(snap.get("marketing", {}).get(side, {}).get(name, {}).get(span, {}),
                            expected(w[span]))
                       for side in sides for name, w in want[side].items() for span in SPANS)
        check.true(wait_for(figures_match, 60), "the snapshot's cost figures equal the input's")
        check_figures(check, snap, want, sides, "snapshot")
        check.eq(snap.get("marketing", {}).get("model"), "first_touch", "the first model")
        check.eq([e.message for e in schema.iter_errors(snap)][:1], [], "snapshot schema")
        rc, out, err = funnelctl(st, "--json", "roi", "shop")
        check_figures(check, json.loads(out) if rc == 0 else {"error": err}, want, sides,
                      "funnelctl roi --json")
        rc, out, err = funnelctl(st, "roi", "shop")
        print(out)
        check.true(rc == 0 and "search" in out and "ROAS" in out, "funnelctl roi prints the table")

        dlq = st.consume(st.topics["dlq"], expect=len(bad), idle=2)
        got = {}
        for m in dlq:
            h = {k: v.decode() for k, v in (m.headers() or [])}
            got[m.value().decode()] = (h.get("funneld.error"), h.get("funneld.reason", ""))
        check.eq(len(dlq), len(bad), "one dead letter per hostile cost")
        for value, code, reason in bad:
            g = got.get(value, (None, ""))
            check.true(g[0] == code and g[1].startswith(reason),
                       f"dead letter {value[:60]}: {g} starts with {(code, reason)}")

        # 100,000 campaigns: Redis keeps at most max_breakdown of them by name per shard
        n = scaled(100000)
        flood = [ev("acct-f", "flood-%d" % i, now - 20 * MIN, "display", "cost",
                    props={"amount": 0.01, "campaign": "flood-%06d" % i}) for i in range(n)]
        st.produce([(e["lead_id"], json.dumps(e)) for e in flood])
        check.true(wait_drained(st, timeout=300), "the flood processed")
        disp = want["by_channel"]["display"] = {s: zero() for s in SPANS}
        for s in SPANS:
            disp[s]["cost"] = n
        kept = 0
        for s in range(64):
            fields = st.redis.hkeys(f"{st.name}:{{{s}}}:stats")
            names = [f for f in fields if f.startswith(b"shop|$p|")]
            check.true(len(names) <= MAX_BREAKDOWN + 1, f"shard {s} keeps {len(names)} campaigns")
            kept += len(names)
        check.true(kept < n, f"{kept} campaign fields for {n} campaigns")

        def flood_counted():
            snap.clear()
            snap.update(latest_snapshot(st, "shop"))
            d = snap.get("marketing", {}).get("by_channel", {}).get("display", {})
            return same(d.get("all_time", {}), expected(disp["all_time"]))
        check.true(wait_for(flood_counted, 60), "the flood's spend is counted")
        check_figures(check, snap, want, ("by_channel",), "after the flood")
        camp = snap.get("marketing", {}).get("by_campaign", {})
        check.true(len(camp) <= MAX_BREAKDOWN + 1, f"{len(camp)} campaigns in the snapshot")
        for name in ("c1", "c2"):  # the largest spenders stay by name
            for span in SPANS:
                check.true(same(camp.get(name, {}).get(span, {}),
                                expected(want["by_campaign"][name][span])), f"{name} {span}")
        total = sum(w["all_time"]["cost"] for w in want["by_campaign"].values()) + n
        got_total = round(sum(v["all_time"]["cost"] for v in camp.values()) * 100)
        check.eq(got_total, total, "the campaigns' spend adds up to every cost, to the cent")
        leads = sum(w["all_time"]["leads"] for w in want["by_campaign"].values())
        check.eq(sum(v["all_time"]["leads"] for v in camp.values()), leads, "every lead counted")
        check.eq(st.stop(p), 0, "the daemon exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
