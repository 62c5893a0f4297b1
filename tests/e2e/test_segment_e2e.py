"""test_segment_e2e.py — Segment-spec input through a real broker and Redis (issue 20, item 5).

One daemon consumes two topics: funneld's own format, and one read as Segment calls
(kafka.input_formats). The same realistic stream goes to both, the second written as
Segment track and page calls would carry it (messageId, userId or anonymousId, timestamp,
event names mapped by segment.events, campaign in context.campaign with the channel as its
utm medium, money as properties.revenue) for twin leads. Checked:

- every twin lead's transitions equal its native lead's, field by field (ids and lead ids
  apart, which name the lead), in the same order, and there are many of them;
- the hostile Segment messages are dead-lettered once each, with the code, a reason naming
  the Segment field, and the Segment topic as their source;
- group calls and identify calls of one id are counted on /metrics as ignored, not
  dead-lettered, and an identify of two ids merges the anonymous id into the user;
- both topics are committed to their end (nothing left behind).
"""
import json

from harness import Check, Stack, gen_stream, group_lag, http_port, metrics, wait_for

NATIVE = gen_stream(3000, 300, seed=20, dup_rate=0.01, bad_rate=0)
EVENT_NAMES = {"purchase": "Order Completed", "demo_request": "Demo Requested",
               "checkout_start": "Checkout Started"}
MEDIUM = {"email": "email", "ads": "cpc", "social": "social", "crm": "crm", "web": None}
SEGMENT_CFG = {"events": {v: k for k, v in EVENT_NAMES.items()},
               "channels": {"email": "email", "cpc": "ads", "social": "social", "crm": "crm"},
               "default_channel": "web"}


def twin(lead):
    return "S-" + lead


def as_segment(e, i):
    """The Segment call a native touchpoint stands for."""
    lead = twin(e["lead_id"])
    call = {"messageId": e["event_id"], "timestamp": e["ts"], "sentAt": "2026-01-01T00:00:00Z",
            "context": {"library": {"name": "analytics.js"}}}
    # half of the twins are known users, the others anonymous visitors
    if i % 2:
        call.update({"userId": lead, "anonymousId": None})
    else:
        call.update({"userId": None, "anonymousId": lead})
    if e["type"] == "page_view":
        call["type"] = "page"
        call["name"] = "Pricing"
    else:
        call.update({"type": "track", "event": EVENT_NAMES.get(e["type"], e["type"])})
    props = dict(e.get("props", {}))
    campaign = {}
    if "campaign" in props:
        campaign["name"] = props.pop("campaign")
    if MEDIUM[e["channel"]]:
        campaign["medium"] = MEDIUM[e["channel"]]
    if campaign:
        call["context"]["campaign"] = campaign
    if "value" in props and e["type"] == "purchase":
        props["revenue"] = props.pop("value")
    if props or call["type"] == "track":
        call["properties"] = props
    return call


def segment_stream():
    out = []
    for i, (key, value) in enumerate(NATIVE):
        e = json.loads(value)
        out.append((twin(key.decode()).encode(), json.dumps(as_segment(e, i)).encode()))
    return out


TS = "2026-11-20T10:00:00Z"
HOSTILE = [  # (message, code, text the reason must hold)
    ({"type": "track", "userId": "h1", "event": "x", "timestamp": TS}, "missing_field",
     "messageId (event_id)"),
    ({"messageId": "h2", "userId": "h2", "event": "x", "timestamp": TS}, "missing_field", "type"),
    ({"type": "alias", "messageId": "h3", "userId": "h3", "timestamp": TS}, "missing_field",
     "previousId"),
    ({"type": "track", "messageId": "h4", "userId": 42, "event": "x", "timestamp": TS},
     "wrong_type", "userId (lead_id)"),
    ({"type": "track", "messageId": "h5", "userId": "h5", "event": "x", "timestamp": TS,
      "properties": [1]}, "wrong_type", "properties"),
    ({"type": "track", "messageId": "h6", "userId": "h6", "event": "x", "timestamp": "soon"},
     "invalid_value", "timestamp (ts)"),
    (b'{"type":"track","messageId":"h7","userId":"h7","ev', "invalid_json", ""),
]
IGNORED = [
    {"type": "group", "messageId": "g1", "userId": "X-1", "groupId": "acme", "timestamp": TS},
    {"type": "group", "messageId": "g2", "anonymousId": "X-2", "groupId": "acme", "timestamp": TS},
    {"type": "group", "messageId": "g3", "userId": "X-3", "groupId": "initech", "timestamp": TS},
    {"type": "identify", "messageId": "i1", "userId": "X-1", "timestamp": TS,
     "traits": {"plan": "pro"}},
    {"type": "identify", "messageId": "i2", "anonymousId": "X-2", "timestamp": TS},
]
# an anonymous visit, then the identify naming both ids: a merge
IDENTIFY = [{"type": "page", "messageId": "v1", "anonymousId": "X-anon-4", "timestamp": TS},
            {"type": "identify", "messageId": "i3", "userId": "X-4", "anonymousId": "X-anon-4",
             "timestamp": "2026-11-20T10:05:00Z"}]


def comparable(e):
    return {k: v for k, v in e.items() if k not in ("id", "lead_id", "emitted_at")}


def main():
    check = Check("segment_e2e")
    st = Stack("segment")
    seg_topic = st.name + ".segment"
    st.create_topics([(seg_topic, 3)])
    st.cfg["kafka"]["input_topics"] = [st.input, seg_topic]
    st.cfg["kafka"]["input_formats"] = {seg_topic: "segment"}
    st.cfg["segment"] = SEGMENT_CFG
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f, indent=1)
    try:
        p = st.start()
        port = http_port(st, p)
        check.true(port is not None, "the daemon serves its endpoint")
        st.produce(NATIVE)
        extra = [(b"h", m if isinstance(m, bytes) else json.dumps(m).encode())
                 for m, _, _ in HOSTILE]
        extra += [(b"x", json.dumps(m).encode()) for m in IGNORED + IDENTIFY]
        st.produce(segment_stream() + extra, topic=seg_topic)

        drained = wait_for(lambda: group_lag(st.brokers, st.name, st.input) == 0 and
                           group_lag(st.brokers, st.name, seg_topic) == 0, 300, every=1)
        check.true(drained, "both input topics committed to their end")

        out = st.transitions(idle=5)
        by_lead = {}
        for e in out:
            by_lead.setdefault(e["lead_id"], []).append(comparable(e))
        natives = [lead for lead in by_lead if lead.startswith("L-")]
        check.true(len(natives) > 100, f"transitions for many native leads ({len(natives)})")
        n_trans = sum(len(by_lead[lead]) for lead in natives)
        check.true(n_trans > 300, f"many transitions to compare ({n_trans})")
        differ = [lead for lead in natives if by_lead.get(twin(lead)) != by_lead[lead]]
        check.eq((len(differ), differ[:3]), (0, []),
                 "each twin's transitions equal its native lead's, in order")
        if differ:
            lead = differ[0]
            print("native", json.dumps(by_lead[lead])[:800])
            print("segment", json.dumps(by_lead.get(twin(lead)))[:800])
        strays = [lead for lead in by_lead
                  if not lead.startswith(("L-", "X-")) and lead[2:] not in by_lead]
        check.eq(strays, [], "no transitions for any other lead")

        dlq = st.consume(st.topics["dlq"], expect=len(HOSTILE), idle=3)
        check.eq(len(dlq), len(HOSTILE), "one dead letter per hostile Segment message")
        got = {}
        for m in dlq:
            h = {k: v.decode() for k, v in (m.headers() or [])}
            got[m.value()] = h
        for msg, code, text in HOSTILE:
            raw = msg if isinstance(msg, bytes) else json.dumps(msg).encode()
            h = got.get(raw, {})
            check.eq(h.get("funneld.error"), code, f"{raw[:40]!r}: code")
            check.true(text in h.get("funneld.reason", ""),
                       f"{raw[:40]!r}: reason {h.get('funneld.reason')!r} names {text!r}")
            check.true(h.get("funneld.source", "").startswith(seg_topic + "/"),
                       f"{raw[:40]!r}: source {h.get('funneld.source')}")

        m = {}

        def counted():
            m.update(metrics(port))
            return m.get('funneld_ignored_total{reason="segment_group"}') == 3
        wait_for(counted, 30)
        check.eq(m.get('funneld_ignored_total{reason="segment_group"}'), 3.0, "group calls ignored")
        check.eq(m.get('funneld_ignored_total{reason="segment_identify"}'), 2.0,
                 "identify calls of one id ignored")
        check.eq(m.get('funneld_events_total{outcome="ignored"}'), 5.0, "ignored in the outcomes")
        # the identify of two ids merges the anonymous visitor into the user
        merged = [(e["type"], e["funnel"], e.get("merged_lead_id"), e["to"]) for e in out
                  if e["lead_id"] == "X-4"]
        check.eq(sorted(merged), [("lead_merged", "aida", "X-anon-4", "attention"),
                                  ("lead_merged", "b2b", "X-anon-4", "awareness"),
                                  ("stage_changed", "aida", None, "attention"),
                                  ("stage_changed", "b2b", None, "awareness")],
                 "the Segment identify merged the anonymous id into the user")
        check.eq(m.get('funneld_merges_total{result="merged"}'), 1.0, "one merge counted")
        check.eq(st.stop(p), 0, "the daemon exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
