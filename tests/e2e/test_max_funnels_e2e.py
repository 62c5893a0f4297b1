"""test_max_funnels_e2e.py — the largest config funneld accepts runs through the daemon: 64
funnels (the documented maximum), the first with 60 stages, a stale_after on each and 32
retarget rules, every funnel with a trigger cap (issue 16 item 2).

Each lead enters all 64 funnels, arms the 32 rules, converts in all 64 and is erased: every
step applies once (64 transitions per step, nothing dead-lettered, each counter counted once).
Before the fix the command was three words short at 64 funnels; every event failed after its
first 63 funnels' counters were written, was retried twice and dead-lettered, leaving
f0|leads at 3 per lead.
"""

from harness import Check, Stack, ev, wait_drained

FUNNELS, STAGES, RULES = 64, 60, 32
LEADS = 4


def max_funnels():
    out = []
    for f in range(FUNNELS):
        n = STAGES if f == 0 else 2
        stages = []
        for k in range(n):
            on = "page_view" if k == 0 else ("t%d" % k if f == 0 and k < n - 1 else "purchase")
            st = {"name": "s%d" % k, "stale_after": "1h", "on": [{"type": on}]}
            if k == n - 1:
                st["conversion"] = True
            stages.append(st)
        fun = {"name": "f%d" % f, "allow_skip": True, "stages": stages,
               "trigger_cap": {"max": 100, "per": "1d"}}
        if f == 0:
            fun["retarget"] = [{"name": "r%d" % r, "after": {"type": "cart_add"},
                                "unless": [{"type": "purchase"}], "within": "10m"}
                               for r in range(RULES)]
        out.append(fun)
    return out


def counter(st, field):
    total = 0
    for k in st.redis.scan_iter(f"{st.name}:*:stats", count=1000):
        v = st.redis.hget(k, field)
        total += int(v) if v is not None else 0
    return total


def main():
    check = Check("test_max_funnels_e2e")
    # the event clock: no timer comes due while the test runs, whatever the wall time
    st = Stack("maxfun", funnels=max_funnels(), partitions=2, clock="event")
    try:
        p = st.start()
        base = 1795000000000
        records = []
        for i in range(LEADS):
            lead = "M-%d" % i
            records += [ev(lead, "v", base + 1000 * i, "web", "page_view"),
                        ev(lead, "c", base + 1000 * i + 1, "web", "cart_add"),
                        ev(lead, "p", base + 1000 * i + 2, "web", "purchase"),
                        ev(lead, "x", base + 1000 * i + 3, "web", "erase")]
        st.produce(records)
        check.true(wait_drained(st, timeout=120), "every offset committed")
        out = st.transitions(expect=LEADS * 3 * FUNNELS, idle=3)
        kinds = {}
        for t in out:
            kinds[t["type"]] = kinds.get(t["type"], 0) + 1
        check.eq(kinds, {"stage_changed": LEADS * FUNNELS, "converted": LEADS * FUNNELS,
                         "lead_erased": LEADS * FUNNELS}, "transitions of every funnel")
        check.eq(len({t["funnel"] for t in out}), FUNNELS, "every funnel emitted")
        dlq = st.consume(st.topics["dlq"], idle=2, timeout=10)
        check.eq(len(dlq), 0, "nothing dead-lettered")
        check.eq(counter(st, "f0|leads"), LEADS, "f0|leads counts each lead once")
        check.eq(counter(st, "f63|leads"), LEADS, "f63|leads counts each lead once")
        check.eq(counter(st, "f0|conv"), LEADS, "f0|conv counts each lead once")
        check.eq(st.stop(p), 0, "exit code")
    finally:
        st.close()
    check.done()


if __name__ == "__main__":
    main()
