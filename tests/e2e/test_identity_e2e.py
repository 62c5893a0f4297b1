"""test_identity_e2e.py — identity merges (SPEC §10) through a real broker and Redis.

The scenarios of SPEC §10 in one stream, on the demo config's two funnels (b2b, aida) with
identity.max_ids 3, and every message keyed so that one person's events share a partition:

- an anonymous journey, then identify, then the anonymous id's events: one lead_merged per
  funnel, and the old id's later events count for the kept lead (transitions keyed and named
  by it), first touch the anonymous one, touches added up;
- a merge that moves the kept lead (an implied stage_changed) and one that converts it (an
  implied converted);
- repeats and loops change nothing (counted on /metrics); chains resolve (A into B, B into C:
  A's events count for C);
- blocked ids, a fourth id beyond max_ids, and an id that belongs to another person are
  dead-lettered as merge_refused with the rule named;
- erase of a merged person erases the ids merged into it and the set naming them: the old
  id later starts over;
- the people counters (population, leads) count each person once;
- a replay of the same stream on fresh state gives the same output ids and contents.
"""
import json
import os
import subprocess

import jsonschema

from harness import (REPO, Check, Stack, build_dir, ev, group_lag, http_port, metrics, ts,
                     wait_for)

with open(os.path.join(REPO, "schemas/transition.schema.json")) as f:
    TRANSITION = jsonschema.Draft202012Validator(json.load(f))


def ident(lead, eid, t, prev):
    return ev(lead, eid, t, "web", "identify", props={"previous_id": prev})


# (person key, event): the key keeps one person's events in one partition, as producers
# keying by a person's stable id do
STREAM = [
    # 1: anonymous a1 reaches interest, known u1 evaluation; then identify; then a1 again
    ("p1", ev("a1", "a1-1", ts(0), "ads", "page_view", props={"campaign": "spring"})),
    ("p1", ev("a1", "a1-2", ts(10), "email", "email_click")),
    ("p1", ev("u1", "u1-1", ts(20), "web", "demo_request", props={"value": 900})),
    ("p1", ident("u1", "id-1", ts(30), "a1")),
    ("p1", ev("a1", "a1-3", ts(40), "web", "checkout_start")),
    # 2: the kept lead moves forward: u2 awareness, a2 interest
    ("p2", ev("a2", "a2-1", ts(0), "web", "page_view")),
    ("p2", ev("a2", "a2-2", ts(5), "email", "content_download")),
    ("p2", ev("u2", "u2-1", ts(6), "web", "page_view")),
    ("p2", ident("u2", "id-2", ts(7), "a2")),
    # 3: the anonymous lead had bought: the kept one converts
    ("p3", ev("a3", "a3-1", ts(0), "web", "purchase", props={"value": 50})),
    ("p3", ev("u3", "u3-1", ts(1), "web", "page_view")),
    ("p3", ident("u3", "id-3", ts(2), "a3")),
    # 4: a repeat (already true) and a loop change nothing
    ("p1", ident("u1", "id-4", ts(50), "a1")),
    ("p1", ident("a1", "id-5", ts(51), "u1")),
    # 5: a chain: a6 into u6, then u6 into c6; a6's next event counts for c6
    ("p6", ev("a6", "a6-1", ts(0), "web", "page_view")),
    ("p6", ident("u6", "id-6", ts(1), "a6")),
    ("p6", ident("c6", "id-7", ts(2), "u6")),
    ("p6", ev("a6", "a6-2", ts(3), "email", "email_click")),
    # 6: guard rails
    ("p7", ident("u7", "id-8", ts(0), "Anonymous")),
    ("p8", ident("m8", "id-9", ts(0), "x8-1")),
    ("p8", ident("m8", "id-10", ts(1), "x8-2")),
    ("p8", ident("m8", "id-11", ts(2), "x8-3")),
    ("p2", ident("u10", "id-12", ts(20), "a2")),
    # 7: erase of a merged person: a2's later event starts a new lead
    ("p2", ev("u2", "u2-e", ts(30), "web", "erase")),
    ("p2", ev("a2", "a2-3", ts(40), "web", "page_view")),
]
REFUSED = {"id-8": "identity.blocked", "id-11": "identity.max_ids",
           "id-12": "already merged into another lead"}


def run(st, check, label, group, produce=True):
    p = st.start()
    port = http_port(st, p)
    if produce:
        st.produce([(k, json.dumps(e)) for k, e in STREAM])
    check.true(wait_for(lambda: group_lag(st.brokers, group, st.input) == 0, 120),
               f"{label}: input committed")
    out = st.transitions(idle=4)
    dlq = st.consume(st.topics["dlq"], idle=2)
    m = metrics(port)
    lead = subprocess.run([os.path.join(build_dir(), "funnelctl"), "-c", st.config_path,
                           "--json", "lead", "b2b", "a1"], capture_output=True, text=True)
    stats = subprocess.run([os.path.join(build_dir(), "funnelctl"), "-c", st.config_path,
                            "--json", "stats", "b2b"], capture_output=True, text=True)
    check.eq(st.stop(p), 0, f"{label}: the daemon exits 0")
    return out, dlq, m, lead, stats


def of(out, lead, type_=None, funnel="b2b"):
    return [e for e in out if e["lead_id"] == lead and e["funnel"] == funnel and
            (type_ is None or e["type"] == type_)]


def main():
    check = Check("identity_e2e")
    st = Stack("identity", partitions=3)
    st.cfg["identity"] = {"max_ids": 3}
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f, indent=1)
    try:
        out, dlq, m, lead, stats = run(st, check, "run", st.name)
        bad = [(e["type"], [x.message for x in TRANSITION.iter_errors(e)][:2]) for e in out
               if list(TRANSITION.iter_errors(e))]
        check.eq(bad[:3], [], "every output matches schemas/transition.schema.json")
        merged = [e for e in out if e["type"] == "lead_merged"]
        # 1: one lead_merged per funnel; the old id's event counts for u1
        m1 = [e for e in merged if e["cause_event_id"] == "id-1"]
        check.eq(sorted((e["funnel"], e["lead_id"], e["merged_lead_id"], e["from"], e["to"])
                        for e in m1),
                 [("aida", "u1", "a1", "desire", "desire"),
                  ("b2b", "u1", "a1", "evaluation", "evaluation")], "lead_merged of id-1")
        after = [e for e in of(out, "u1") if e["cause_event_id"] == "a1-3"]
        check.eq([(e["type"], e["from"], e["to"]) for e in after],
                 [("stage_changed", "evaluation", "decision")], "a1's later event moves u1")
        if after:
            check.eq(after[0]["attribution"]["first"]["channel"], "ads",
                     "first touch is the anonymous lead's")
            check.eq(after[0]["touches"], 4, "touches of both ids add up")
        check.eq([e for e in out if e["lead_id"] == "a1" and e["cause_event_id"] == "a1-3"],
                 [], "nothing for a1 after the merge")
        check.eq(lead.returncode, 0, f"funnelctl lead a1: {lead.stderr}")
        if lead.returncode == 0:
            doc = json.loads(lead.stdout)
            check.eq((doc["lead_id"], doc["merged_from"], doc["merged_ids"], doc["stage"],
                      doc["touches"]), ("u1", "a1", ["a1"], "decision", 4),
                     "funnelctl lead a1 shows the person a1 is part of")
        # 2: the kept lead moves: an implied stage_changed
        m2 = [(e["type"], e["funnel"], e["from"], e["to"]) for e in out
              if e["cause_event_id"] == "id-2" and e["type"] != "lead_merged"]
        check.eq(sorted(m2), [("stage_changed", "aida", "attention", "interest"),
                              ("stage_changed", "b2b", "awareness", "interest")],
                 "id-2 implies u2's move")
        # 3: converted
        m3 = [(e["type"], e["funnel"], e["lead_id"]) for e in out
              if e["cause_event_id"] == "id-3" and e["type"] != "lead_merged"]
        check.eq(sorted(m3), [("converted", "aida", "u3"), ("converted", "b2b", "u3")],
                 "id-3 converts u3")
        # 4: repeat and loop: no outputs, counted
        check.eq([e for e in out if e["cause_event_id"] in ("id-4", "id-5")], [],
                 "repeat and loop emit nothing")
        check.eq(m.get('funneld_merges_total{result="repeat"}'), 1.0, "one repeat")
        check.eq(m.get('funneld_merges_total{result="loop"}'), 1.0, "one loop")
        # 5: chain
        chain = [(e["type"], e["to"]) for e in of(out, "c6") if e["cause_event_id"] == "a6-2"]
        check.eq(chain, [("stage_changed", "interest")], "a6's event counts for c6")
        # 6: refusals
        got = {}
        for d in dlq:
            h = {k: v.decode() for k, v in (d.headers() or [])}
            got[json.loads(d.value())["event_id"]] = (h.get("funneld.error"),
                                                       h.get("funneld.reason", ""))
        check.eq(sorted(got), sorted(REFUSED), "exactly the refused identifies dead-lettered")
        for eid, rule in REFUSED.items():
            code, reason = got.get(eid, (None, ""))
            check.eq(code, "merge_refused", f"{eid}: code")
            check.true(rule in reason, f"{eid}: reason {reason!r} names {rule!r}")
        check.eq(m.get('funneld_merges_total{result="merged"}'), 7.0,
                 "merged: id-1, 2, 3, 6, 7, 9, 10")
        # 7: erase
        erased = [e for e in out if e["type"] == "lead_erased" and e["lead_id"] == "u2"]
        check.eq(len(erased), 2, "u2 erased in both funnels")
        again = of(out, "a2")
        check.true(any(e["cause_event_id"] == "a2-3" and e["from"] is None for e in again),
                   f"a2 starts over after the erasure: {[e['cause_event_id'] for e in again]}")
        holders = [k for k in st.redis.scan_iter(f"{st.name}:*:ids:*", count=1000)
                   if st.redis.sismember(k, "a2")]
        check.eq(holders, [], "no set of merged ids names a2 after u2's erasure")
        # the people counters count each person once: b2b holds a2 (awareness, again), c6
        # (interest), u1 (decision) and u3 (converted); the absorbed ids left them
        check.eq(stats.returncode, 0, f"funnelctl stats b2b: {stats.stderr}")
        if stats.returncode == 0:
            s = json.loads(stats.stdout)
            print("stats", json.dumps({k: v for k, v in s.items() if k != "stages"}))
            check.eq([x["population"] for x in s["stages"]], [1, 1, 0, 1, 1],
                     "b2b population per stage")

        # a replay on fresh state: the same outputs, ids and contents (emitted_at apart)
        group, _ = st.replay_config(3)
        out2, dlq2, _, _, _ = run(st, check, "replay", group, produce=False)
        strip = lambda es: sorted(json.dumps({k: v for k, v in e.items() if k != "emitted_at"},
                                             sort_keys=True) for e in es)
        check.eq(strip(out2), sorted(strip(out) * 2),
                 "the replay's transitions equal the first run's, id for id")
        check.eq(len(dlq2), 2 * len(dlq), "the same dead letters")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
