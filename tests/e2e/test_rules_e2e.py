"""test_rules_e2e.py — a recorded stream covering every rule of SPEC §1–§4, valid and
hostile, through a real Kafka broker and Redis: the transitions topic must hold exactly the
transitions SPEC prescribes (fields, order per lead, deterministic ids), the DLQ every hostile
message with its original bytes and reason, and a second run on fresh state the same ids.
"""
import json
import os
import re

import jsonschema

from harness import REPO, Check, Stack, check_backend, ev, ts

with open(os.path.join(REPO, "schemas/transition.schema.json")) as f:
    TRANSITION = jsonschema.Draft202012Validator(json.load(f))

with open(os.path.join(REPO, "deploy/config/demo.json")) as f:
    DEMO_B2B = [x for x in json.load(f)["funnels"] if x["name"] == "b2b"][0]
# beside it, a strict funnel: no skipping, regress allowed, no lost rules
STRICT = {"name": "strict", "allow_skip": False, "allow_regress": True, "stages": [
    {"name": "s_aware", "on": [{"type": "page_view"}]},
    {"name": "s_interest", "on": [{"type": "email_click"}]},
    {"name": "s_eval", "on": [{"type": "demo_request"}]},
    {"name": "s_buy", "on": [{"type": "purchase"}], "conversion": True}]}

STREAM = [
    # lead A: entry, touch, skip, regress (strict), conversion, touch after conversion
    ev("A", "a1", ts(0), "ads", "ad_click", props={"campaign": "spring", "source": "google"}),
    ev("A", "a2", ts(60), "email", "email_open"),
    ev("A", "a3", ts(3600), "web", "demo_request", props={"value": 1200}),
    ev("A", "a4", ts(3700), "email", "email_click", props={"campaign": "nurture-3"}),
    ev("A", "a5", ts(7200), "web", "purchase", props={"value": 1500.5}),
    ev("A", "a6", ts(7300), "web", "page_view"),
    ev("A", "a3", ts(3600), "web", "demo_request", props={"value": 1200}),  # duplicate
    # lead B: CRM matcher with props, lost, terminal lost, one-step forward without skip
    ev("B", "b1", ts(10), "web", "page_view"),
    ev("B", "b2", ts(20), "crm", "deal_stage", props={"stage": "negotiation"}),
    ev("B", "b3", ts(30), "crm", "deal_stage", props={"stage": "proposal"}),
    ev("B", "b4", ts(40), "crm", "deal_lost"),
    ev("B", "b5", ts(50), "web", "purchase"),
    # lead C: integer epoch ts, funnel routing, a late event
    ev("C", "c1", 1795342500000 + 100_000, "web", "page_view", funnel="strict"),
    ev("C", "c2", ts(50), "email", "email_click"),
    # lead D: consent, erasure, and a new life after erasure
    ev("D", "d1", ts(0), "web", "page_view"),
    ev("D", "d2", ts(1), "web", "consent", props={"marketing": False}),
    ev("D", "d3", ts(2), "web", "erase"),
    ev("D", "d4", ts(5), "web", "page_view"),
]

# (lead, cause, funnel, type, from, to, skipped, direction, at) in per-lead order
EXPECTED = [
    ("A", "a1", "b2b", "stage_changed", None, "awareness", [], "forward", ts(0)),
    ("A", "a3", "b2b", "stage_changed", "awareness", "evaluation", ["interest"], "forward", ts(3600)),
    ("A", "a3", "strict", "stage_changed", None, "s_eval", ["s_aware", "s_interest"], "forward", ts(3600)),
    ("A", "a4", "strict", "stage_changed", "s_eval", "s_interest", [], "back", ts(3700)),
    ("A", "a5", "b2b", "converted", "evaluation", "purchase", ["decision"], "forward", ts(7200)),
    ("A", "a5", "strict", "stage_changed", "s_interest", "s_eval", [], "forward", ts(7200)),
    ("A", "a6", "strict", "stage_changed", "s_eval", "s_aware", [], "back", ts(7300)),
    ("B", "b1", "b2b", "stage_changed", None, "awareness", [], "forward", ts(10)),
    ("B", "b1", "strict", "stage_changed", None, "s_aware", [], "forward", ts(10)),
    ("B", "b3", "b2b", "stage_changed", "awareness", "decision", ["interest", "evaluation"], "forward", ts(30)),
    ("B", "b4", "b2b", "lost", "decision", None, [], "lost", ts(40)),
    ("B", "b5", "strict", "stage_changed", "s_aware", "s_interest", [], "forward", ts(50)),
    ("C", "c1", "strict", "stage_changed", None, "s_aware", [], "forward", ts(100)),
    ("C", "c2", "b2b", "stage_changed", None, "interest", ["awareness"], "forward", ts(100)),
    ("C", "c2", "strict", "stage_changed", "s_aware", "s_interest", [], "forward", ts(100)),
    ("D", "d1", "b2b", "stage_changed", None, "awareness", [], "forward", ts(0)),
    ("D", "d1", "strict", "stage_changed", None, "s_aware", [], "forward", ts(0)),
    ("D", "d3", "b2b", "lead_erased", None, None, None, None, ts(2)),
    ("D", "d3", "strict", "lead_erased", None, None, None, None, ts(2)),
    ("D", "d4", "b2b", "stage_changed", None, "awareness", [], "forward", ts(5)),
    ("D", "d4", "strict", "stage_changed", None, "s_aware", [], "forward", ts(5)),
]

GOOD = json.dumps(ev("Z", "z1", ts(0), "web", "email_open"))
HOSTILE = [
    (b"not json", "invalid_json"),
    (b"", "invalid_json"),
    (b'{"event_id":"h1","lead_id":"\xc3\x28","ts":1,"channel":"web","type":"x"}', "invalid_utf8"),
    (b"[]", "not_object"),
    (json.dumps({"event_id": "h2", "ts": 1, "channel": "web", "type": "x"}).encode(), "missing_field"),
    (json.dumps(ev("H", "h3", [], "web", "x")).encode(), "wrong_type"),
    (json.dumps(ev("H", "h4", "2026-02-30T00:00:00Z", "web", "x")).encode(), "invalid_value"),
    (json.dumps(ev("H", "h5", "2999-01-01T00:00:00Z", "web", "x")).encode(), "ts_out_of_range"),
    (json.dumps(ev("H", "h6", ts(0), "web", "page_view", funnel="nope")).encode(), "unknown_funnel"),
    (b'{"event_id":"h7","event_id":"h8","lead_id":"H","ts":1,"channel":"web","type":"x"}', "invalid_json"),
    (json.dumps(ev("H", "h9", ts(0), "web", "x", props={"pad": "x" * 70000})).encode(), "oversize"),
    (json.dumps(ev("", "h10", ts(0), "web", "x")).encode(), "invalid_value"),
    (json.dumps(ev("H", "h11", ts(0), "web", "consent")).encode(), "missing_field"),
]


def run_once(check, label):
    st = Stack("rules", funnels=[DEMO_B2B, STRICT], partitions=3)
    try:
        p = st.start()
        records = []
        for e in STREAM:
            records.append((e["lead_id"], json.dumps(e).encode()))
        for raw, _ in HOSTILE:
            records.append((b"H", raw))
        records.append((b"Z", GOOD.encode()))
        st.produce(records)
        out = st.transitions(expect=len(EXPECTED))
        dlq = st.consume(st.topics["dlq"], expect=len(HOSTILE))
        rc = st.stop(p)
        check.eq(rc, 0, f"{label}: exit code after SIGTERM")

        got = [(e["lead_id"], e["cause_event_id"], e["funnel"], e["type"], e.get("from"),
                e.get("to"), e.get("skipped"), e.get("direction"), e["at"]) for e in out]
        # order is guaranteed per lead (and per funnel), not across leads
        for lead in "ABCD":
            check.eq([g for g in got if g[0] == lead], [x for x in EXPECTED if x[0] == lead],
                     f"{label}: transitions of lead {lead}")
        check.eq(len(got), len(EXPECTED), f"{label}: number of transitions")
        for e in out:
            check.true(re.fullmatch(r"[0-9a-f]{32}", e["id"]), f"{label}: id format {e['id']}")
            check.true(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["emitted_at"]),
                       f"{label}: emitted_at format")
        check.eq(len({e["id"] for e in out}), len(out), f"{label}: ids are unique")
        for e in out:
            errs = [x.message for x in TRANSITION.iter_errors(e)]
            check.eq(errs, [], f"{label}: {e['type']} {e['cause_event_id']} matches transition.schema.json")

        conv = [e for e in out if e["type"] == "converted"][0]
        check.eq(conv["value"], 1500.5, f"{label}: value on conversion")
        check.eq(conv["touches"], 5, f"{label}: touches at conversion (a1 a2 a3 a4 a5)")
        check.eq(conv["time_in_stage_ms"], 3600_000, f"{label}: time in evaluation")
        check.eq(conv["cycle_ms"], 7200_000, f"{label}: cycle time")
        check.eq(conv["attribution"]["first"]["campaign"], "spring", f"{label}: first touch")
        check.eq(conv["attribution"]["first"]["source"], "google", f"{label}: first source")
        check.eq(conv["attribution"]["last"]["channel"], "web", f"{label}: last touch channel")
        check.eq(conv["channel"], "web", f"{label}: channel of the cause")
        late = [e for e in out if e["cause_event_id"] == "c2" and e["funnel"] == "strict"][0]
        check.eq(late["time_in_stage_ms"], 0, f"{label}: a late event never runs time backwards")

        # dead letters: original bytes, reason headers, source coordinates
        check.eq(len(dlq), len(HOSTILE), f"{label}: number of dead letters")
        by_bytes = {bytes(m.value() or b""): m for m in dlq}
        for raw, code in HOSTILE:
            m = by_bytes.get(raw)
            check.true(m is not None, f"{label}: dead letter for {raw[:40]!r}")
            if m is None:
                continue
            h = {k: v.decode() for k, v in (m.headers() or [])}
            check.eq(h.get("funneld.error"), code, f"{label}: error code for {raw[:40]!r}")
            check.true(h.get("funneld.reason"), f"{label}: reason for {raw[:40]!r}")
            check.true(re.fullmatch(re.escape(st.input) + r"/\d+/\d+", h.get("funneld.source", "")),
                       f"{label}: source header {h.get('funneld.source')}")

        # counters in Redis: one conversion, one lost, populations match the final positions
        def total(field):
            s = 0
            for k in st.redis.scan_iter(f"{st.name}:*:stats"):
                v = st.redis.hget(k, field)
                s += int(v) if v else 0
            return s
        check.eq(total("b2b|conv"), 1, f"{label}: b2b conversions")
        check.eq(total("b2b|lost"), 1, f"{label}: b2b lost")
        # A converted (purchase), C in interest, D in awareness; B lost
        check.eq([total(f"b2b|p|{k}") for k in range(5)], [1, 1, 0, 0, 1], f"{label}: b2b populations")
        check.eq([total(f"b2b|e|{k}") for k in range(5)], [5, 3, 2, 2, 1], f"{label}: b2b entered")
        check_backend(st, check)
        return {(e["lead_id"], e["cause_event_id"], e["funnel"], e["type"]): e["id"] for e in out}
    finally:
        st.close()


def main():
    check = Check("test_rules_e2e")
    first = run_once(check, "run 1")
    second = run_once(check, "run 2")
    check.eq(second, first, "a second run on fresh state yields the same ids")
    check.done()


if __name__ == "__main__":
    main()
