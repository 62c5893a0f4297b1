"""test_identity_hostile_e2e.py — identity merges against hostile input (issue 20): a merge
storm (10,000 ids into one lead), a chain of 1,000 links, binary and maximal ids, self-merges.
Each stays bounded by identity.max_ids (default 100): the storm merges 99 ids and refuses
the rest as merge_refused, no lead's ids set grows past 99 (plus the lead itself), an event
of the chain's first id reaches its person in at most 99 hops, and the daemon stays up
and commits everything.

Then a merge that fails after it began (the kept lead's seen set replaced by a string, so
every step there answers WRONGTYPE once the absorbed id is linked): it is retried, not
dead-lettered (funneld_merge_retries_total), the absorbed id's later event waits for it, and
once the foreign key is gone the merge ends as if nothing had happened.
"""
import json

from harness import Check, Stack, ev, group_lag, http_port, metrics, ts, wait_for

STORM = 10000
CHAIN = 1000


def ident(lead, eid, prev):
    return ev(lead, eid, ts(1), "web", "identify", props={"previous_id": prev})


def lead_key(st, lead):
    for k in st.redis.scan_iter(f"{st.name}:*:lead:*", count=1000):
        if st.redis.hget(k, "id") == lead.encode():
            return k.decode()
    return None


def stuck_merge(st, check, port):
    # k-1 was merged into r-1 first, so the identify of k-1 and p-1 reaches r-1 only after
    # p-1 is detached (ROOT follows k-1's link without touching r-1's seen set)
    st.produce([("R", json.dumps(ev("r-1", "r1-page", ts(1), "web", "page_view"))),
                ("R", json.dumps(ev("k-1", "k1-page", ts(1), "web", "page_view"))),
                ("R", json.dumps(ev("p-1", "p1-page", ts(1), "web", "page_view"))),
                ("R", json.dumps(ident("r-1", "rk", "k-1")))])
    check.true(wait_for(lambda: group_lag(st.brokers, st.name, st.input) == 0, 60),
               "stuck merge: the first merge committed")
    seen = lead_key(st, "r-1").replace(":lead:", ":seen:")
    st.redis.delete(seen)
    st.redis.set(seen, "a foreign key of the wrong type")
    st.produce([("R", json.dumps(ident("k-1", "rp", "p-1"))),
                ("R", json.dumps(ev("p-1", "p1-demo", ts(3), "web", "demo_request")))])
    m = {}
    check.true(wait_for(lambda: m.update(metrics(port)) or
                        m.get("funneld_merge_retries_total", 0) >= 3, 60),
               "stuck merge: retried, not given up")
    check.true(group_lag(st.brokers, st.name, st.input) > 0,
               "stuck merge: the identify is not committed while it fails")
    st.redis.delete(seen)
    check.true(wait_for(lambda: group_lag(st.brokers, st.name, st.input) == 0, 60),
               "stuck merge: committed once the foreign key is gone")
    dlq = [json.loads(x.value()).get("event_id") if x.value().startswith(b"{") else None
           for x in st.consume(st.topics["dlq"], idle=2)]
    check.eq([e for e in dlq if e in ("rp", "p1-demo")], [], "stuck merge: nothing dead-lettered")
    out = st.transitions(idle=3)
    merged = sorted((e["funnel"], e["lead_id"], e["merged_lead_id"]) for e in out
                    if e["cause_event_id"] == "rp" and e["type"] == "lead_merged")
    check.eq(merged, [("aida", "r-1", "p-1"), ("b2b", "r-1", "p-1")],
             "stuck merge: p-1 merged into r-1 in the end")
    check.eq(sorted({e["lead_id"] for e in out if e["cause_event_id"] == "p1-demo"}), ["r-1"],
             "stuck merge: p-1's later event counts for r-1")
    check.eq(st.redis.hget(lead_key(st, "p-1"), "mp"), None, "stuck merge: no longer pending")


def main():
    check = Check("identity_hostile_e2e")
    st = Stack("idhostile", partitions=2)
    try:
        p = st.start()
        port = http_port(st, p)
        recs = [("S", json.dumps(ident("S", f"st-{i}", f"s-{i}"))) for i in range(STORM)]
        recs += [("C", json.dumps(ident(f"c-{k + 1}", f"ch-{k}", f"c-{k}"))) for k in range(CHAIN)]
        binary = "\u0001\u007f{}:*\n" + "é" * 20
        big = "x" * 128
        recs += [("B", json.dumps(ident("b-1", "bin-1", binary))),
                 ("B", json.dumps(ident("b-1", "bin-2", big))),
                 ("B", json.dumps(ident("b-1", "bin-3", big + "y"))),
                 ("B", json.dumps(ident("b-2", "self", "b-2"))),
                 # the first id of the chain: its event walks every link to its person
                 ("C", json.dumps(ev("c-0", "c0-page", ts(2), "web", "page_view")))]
        st.produce(recs)
        check.true(wait_for(lambda: group_lag(st.brokers, st.name, st.input) == 0, 600, every=1),
                   "everything committed")
        m = {}
        wait_for(lambda: m.update(metrics(port)) or
                 m.get('funneld_merges_total{result="merged"}', 0) > 0, 30)
        merged = m.get('funneld_merges_total{result="merged"}', 0)
        refused = m.get('funneld_rejected_total{reason="merge_refused"}', 0)
        invalid = m.get('funneld_rejected_total{reason="invalid_value"}', 0)
        # the storm: 99 ids join S (100 with S), 9,901 refused; the chain: every run of 99
        # links is one person, the 100th link refused (its root holds 100 ids), the next
        # starts a new person: 1,000 links, 10 refused
        check.eq(refused, STORM - 99 + CHAIN // 100, "refused: the storm's overflow and "
                 "the chain's every 100th link")
        check.eq(merged, 99 + CHAIN - CHAIN // 100 + 2, "merged: 99 storm ids, the chain's "
                 "other links, the binary and the 128-byte id")
        check.eq(invalid, 2, "the 129-byte id and the self-merge are invalid values")
        sizes = [st.redis.scard(k) for k in st.redis.scan_iter(f"{st.name}:*:ids:*", count=1000)]
        check.true(sizes and max(sizes) <= 99, f"no lead holds more than 99 merged ids "
                   f"({max(sizes) if sizes else None})")
        out = st.transitions(idle=3)
        walked = [e for e in out if e["cause_event_id"] == "c0-page"]
        check.eq(sorted({e["lead_id"] for e in walked}), ["c-99"],
                 "c-0's event counts for the person it is in, 99 links on")
        check.true(p.poll() is None, "the daemon is up")
        stuck_merge(st, check, port)
        check.true(p.poll() is None, "the daemon is up after the stuck merge")
        check.eq(st.stop(p), 0, "the daemon exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
