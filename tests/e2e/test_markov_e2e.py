"""test_markov_e2e.py — data-driven attribution (SPEC §11 "markov") through the real broker
and Redis: 240 journeys over five channels, some converting (with values), some lost, some
still open, with touches after the end that must count nothing. This test builds the chain
from its own input (moves from the start, between channels, to conversion and to null) and
solves it with exact fractions, by a method of its own (the absorbing chain's fundamental
matrix by Gauss-Jordan elimination over the rationals, removal by rewiring the channel's
moves in to null): every channel's removal effect, the conversion probability and the shared
conversions and revenue in the snapshot equal it; the schema holds; funnelctl attribution
--model markov shows the same.
"""
import json
import os
import random
import time
from fractions import Fraction

import jsonschema

from harness import REPO, Check, Stack, ev, funnelctl, latest_snapshot, wait_drained, wait_for

CHANNELS = ["search", "social", "email", "display", "referral"]
# max_breakdown as many as the channels: every channel stays by name, however many touches
FUNNELS = [{"name": "deal", "allow_skip": True, "max_breakdown": 5,
            "stages": [{"name": "visit", "on": [{"type": "page_view"}]},
                       {"name": "demo", "on": [{"type": "demo_request"}]},
                       {"name": "won", "on": [{"type": "purchase"}], "conversion": True}],
            "lost": {"on": [{"type": "unsubscribe"}]},
            "attribution": {"models": ["linear", "markov"]},
            "bottleneck": {"evaluate_every": "1s"}}]


def stream(now, seed=5):
    rnd = random.Random(seed)
    events, journeys = [], []
    weights = {"search": 5, "social": 3, "email": 4, "display": 2, "referral": 1}
    for i in range(240):
        lead = "K-%03d" % i
        t = now - 3 * 86400000 + i * 60000
        n = rnd.randrange(1, 6)
        chans = rnd.choices(CHANNELS, [weights[c] for c in CHANNELS], k=n)
        # conversions favour journeys through email, losses those through display
        score = rnd.random() + 0.3 * ("email" in chans) - 0.3 * ("display" in chans)
        end = "conv" if score > 0.8 else "null" if score < 0.35 else "open"
        if end == "null" and n == 1:
            end = "open"  # an unsubscribe before entering loses nothing: it is a touch
        types = ["page_view"] + ["demo_request" if k % 2 else "page_view" for k in range(1, n)]
        value = None
        if end == "conv":
            types[-1] = "purchase"
            value = rnd.randrange(500, 50000) / 100
        elif end == "null":
            types[-1] = "unsubscribe"
        for k, (ch, ty) in enumerate(zip(chans, types)):
            extra = {"props": {"value": value}} if ty == "purchase" else {}
            events.append(ev(lead, "%s-%d" % (lead, k), t + k * 1000, ch, ty, **extra))
        if end != "open":  # after the end: no move counts
            events.append(ev(lead, lead + "-after", t + 9000, rnd.choice(CHANNELS), "page_view"))
        journeys.append((chans, end, value))
    return events, journeys


def solve(journeys):
    """(conversion probability, {channel: removal effect}, conversions, revenue in cents)"""
    start, move, out_conv, out_null = {}, {}, {}, {}
    conversions, revenue = 0, 0
    for chans, end, value in journeys:
        prev = None
        for c in chans:
            if prev is None:
                start[c] = start.get(c, 0) + 1
            else:
                move[(prev, c)] = move.get((prev, c), 0) + 1
            prev = c
        if end == "conv":
            out_conv[prev] = out_conv.get(prev, 0) + 1
            conversions += 1
            revenue += round(value * 100)
        elif end == "null":
            out_null[prev] = out_null.get(prev, 0) + 1
    states = sorted(set(start) | {a for a, _ in move} | {b for _, b in move} | set(out_conv) |
                    set(out_null))

    def p_conv(removed):
        # transient states: the channels but `removed` (whose moves in go to null)
        tr = [s for s in states if s != removed]
        idx = {s: i for i, s in enumerate(tr)}
        n = len(tr)
        # (I - Q) X = R, R the one-step conversion probability; Gauss-Jordan over Fractions
        a = [[Fraction(0)] * (n + 1) for _ in range(n)]
        for s in tr:
            i = idx[s]
            total = out_conv.get(s, 0) + out_null.get(s, 0) + \
                sum(v for (x, _), v in move.items() if x == s)
            a[i][i] = Fraction(1)
            if total == 0:
                continue
            for (x, y), v in move.items():
                if x == s and y != removed:
                    a[i][idx[y]] -= Fraction(v, total)
            a[i][n] = Fraction(out_conv.get(s, 0), total)
        for col in range(n):
            piv = next(r for r in range(col, n) if a[r][col] != 0)
            a[col], a[piv] = a[piv], a[col]
            d = a[col][col]
            a[col] = [x / d for x in a[col]]
            for r in range(n):
                if r != col and a[r][col] != 0:
                    f = a[r][col]
                    a[r] = [x - f * y for x, y in zip(a[r], a[col])]
        total_start = sum(start.values())
        return sum(Fraction(v, total_start) * a[idx[s]][n]
                   for s, v in start.items() if s != removed)
    p = p_conv(None)
    return p, {s: 1 - p_conv(s) / p for s in states}, conversions, revenue


def main():
    check = Check("markov_e2e")
    with open(os.path.join(REPO, "schemas/snapshot.schema.json")) as f:
        schema = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("markov", funnels=FUNNELS, partitions=3)
    now = int(time.time() * 1000)
    events, journeys = stream(now)
    p, effect, conversions, revenue = solve(journeys)
    total = sum(effect.values())
    want = {c: {"removal_effect": float(e), "conversions": float(e / total * conversions),
                "revenue": float(e / total * revenue / 100)} for c, e in effect.items()}
    print("expected P", float(p), "effects", {c: round(float(e), 6) for c, e in effect.items()})
    ends = [e for _, e, _ in journeys]
    check.true(all(ends.count(x) > 20 for x in ("conv", "null", "open")),
               f"converting, lost and open journeys: {[ends.count(x) for x in ('conv', 'null', 'open')]}")
    check.true(len({round(float(e), 3) for e in effect.values()}) == len(effect),
               "the channels' effects differ")
    try:
        proc = st.start()
        st.produce([(e["lead_id"], json.dumps(e)) for e in events])
        check.true(wait_drained(st, timeout=120), "input processed")
        snap = {}

        def matches():
            snap.clear()
            snap.update(latest_snapshot(st))
            mk = snap.get("attribution", {}).get("markov", {})
            return mk.get("conversions") == conversions
        check.true(wait_for(matches, 60), "the snapshot's chain saw every conversion")
        mk = snap.get("attribution", {}).get("markov", {})
        check.true(abs(mk.get("conversion_probability", -1) - float(p)) < 1e-9,
                   f"conversion probability {mk.get('conversion_probability')} == {float(p)}")
        got = mk.get("by_channel", {})
        check.eq(sorted(got), sorted(want), "the channels")
        for c, w in want.items():
            for k, v in w.items():
                g = got.get(c, {}).get(k)
                check.true(g is not None and abs(g - v) < 1e-6 * max(1, abs(v)),
                           f"{c} {k}: {g} == {v}")
        check.eq([e.message for e in schema.iter_errors(snap)][:1], [], "snapshot schema")
        rc, out, err = funnelctl(st, "--json", "attribution", "deal", "--model", "markov")
        doc = json.loads(out) if rc == 0 else {}
        check.eq(doc.get("attribution", {}).get("markov"), mk, "funnelctl attribution --json")
        rc, out, err = funnelctl(st, "attribution", "deal", "--model", "markov")
        print(out)
        check.true(rc == 0 and "removal effect" in out and "email" in out,
                   "funnelctl attribution prints the chain")
        check.eq(st.stop(proc), 0, "the daemon exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
