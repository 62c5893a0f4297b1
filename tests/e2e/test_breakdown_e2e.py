"""test_breakdown_e2e.py — breakdown cardinality is bounded and a refused output is counted
(SPEC §11 max_breakdown, issue 16 item 5), on the real broker and Redis.

1. 5,000 leads convert, each from its own campaign (names of 200+ bytes, as UTM values can
   be) and one of 150 channels. Before the fix every value was a field of the shard counters
   for ever and the snapshot grew past the producer's message.max.bytes (1,000,000): from
   then on no snapshot was produced at all. Expected: snapshots keep coming; each names at
   most max_breakdown (default 100) campaigns and channels plus "(other)", and the counts add
   up to the conversions; Redis keeps at most max_breakdown names per shard.
2. With kafka.properties message.max.bytes at 2,000 a snapshot (larger) cannot be produced:
   /metrics counts it in funneld_produce_failures_total{topic=<snapshots>}, the daemon keeps
   running, and transitions still flow.
"""
import json
import time

from harness import Check, Stack, ev, free_port, metrics, wait_drained, wait_for

N, CHANNELS = 5000, 150
FUNNEL = {"name": "shop", "allow_skip": True, "stages": [
    {"name": "visit", "on": [{"type": "page_view"}]},
    {"name": "won", "on": [{"type": "purchase"}], "conversion": True}],
    "bottleneck": {"evaluate_every": "1s"}}


def stream(n):
    now = int(time.time() * 1000) - 60000
    out = []
    for i in range(n):
        lead, camp = "L-%05d" % i, "campaign-%05d-" % i + "x" * 200
        out.append(ev(lead, "v", now + i, "ch-%03d" % (i % CHANNELS), "page_view",
                      props={"campaign": camp}))
        out.append(ev(lead, "p", now + i + 1, "web", "purchase"))
    return out


def stack(name, **props):
    st = Stack(name, funnels=[FUNNEL], partitions=3)
    st.cfg["redis"]["shards"] = 4
    st.cfg["kafka"]["properties"].update(props)
    hport = free_port()
    st.cfg["http"] = {"listen": f"127.0.0.1:{hport}"}
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f)
    return st, hport


def snapshots(st, converted, timeout=120):
    """Reads snapshots until one counts `converted` conversions; returns them all."""
    deadline, snaps = time.time() + timeout, []
    while time.time() < deadline:
        snaps = [json.loads(m.value()) for m in st.consume(st.topics["snapshots"], idle=3)]
        if any(s["converted"] == converted for s in snaps):
            break
    return snaps


def bounded(check, st):
    st_events = stream(N)
    p = st.start()
    st.produce(st_events)
    check.true(wait_drained(st, timeout=300), "5,000 conversions processed")
    snaps = snapshots(st, N)
    done = [s for s in snaps if s["converted"] == N]
    check.true(bool(done), f"snapshots keep coming: one counts all {N} conversions")
    for s in done[-1:]:
        for what, names in (("campaign", s["conversions_by_campaign"]),
                            ("channel", s["conversions_by_channel"])):
            named = [k for k in names if k != "(other)"]
            print(what, len(named), "by name, (other):", names.get("(other)"))
            check.true(len(named) <= 100, f"at most 100 {what}s by name ({len(named)})")
            check.true(names.get("(other)", 0) > 0, f"the rest of the {what}s under (other)")
            check.eq(sum(names.values()), N, f"{what} counts add up to the conversions")
    fields = 0
    for key in st.redis.scan_iter(f"{st.name}:*stats"):
        kept = [f for f in st.redis.hkeys(key) if f.startswith(b"shop|conv_cp|")]
        fields = max(fields, len(kept))
    check.true(0 < fields <= 101, f"at most 100 campaigns + (other) per shard in Redis ({fields})")
    check.eq(st.stop(p), 0, "exit code")


def refused(check, st, hport):
    p = st.start()
    st.produce(stream(30))
    check.true(wait_drained(st, timeout=120), "input processed")
    topic = st.topics["snapshots"]
    series = f'funneld_produce_failures_total{{topic="{topic}"}}'
    check.true(wait_for(lambda: metrics(hport).get(series, 0) > 0, 30),
               f"/metrics counts the refused snapshot ({series})")
    check.eq(metrics(hport).get(f'funneld_produce_failures_total{{topic="{st.topics["transitions"]}"}}'),
             0.0, "no transition refused")
    check.eq(len(st.transitions(expect=60, idle=2)), 60, "transitions still produced")
    log = st.log_of(p)
    check.true("message.max.bytes" in log and "not produced" in log,
               "the log says why, with the limit")
    check.true(p.poll() is None, "the daemon keeps running")
    check.eq(st.stop(p), 0, "exit code")


def main():
    check = Check("test_breakdown_e2e")
    st, _ = stack("breakdown")
    try:
        bounded(check, st)
    finally:
        st.close()
    st, hport = stack("refused", **{"message.max.bytes": "2000"})
    try:
        refused(check, st, hport)
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
