"""test_retarget_e2e.py — retargeting triggers (SPEC §4, §5) through the real broker and Redis.

Event clock, 3 partitions:
  phase A  one daemon schedules stalled and cart_abandoned timers (nothing is due yet), plus
           a conversion, an opt-out and an erasure that must cancel theirs; it is stopped.
  phase B  two new daemons in the same group get later events: a lead's next event fires its
           due timer, a frequency cap suppresses two nudges, and a tick on every partition
           moves each partition's clock past every due time. Exactly the expected triggers
           come out, once each, scheduled before the restart and fired after it.
  phase C  a third daemon, in a new group with a new key prefix, replays the whole input at
           full speed: the same triggers, with the same ids and times.
Wall clock: a lead stalled for 2 s gets its trigger from the wall clock with no other input.
Every trigger validates against schemas/retarget.schema.json.
"""
import json
import os
import time

import jsonschema
from confluent_kafka import Producer

from harness import REPO, Check, Stack, check_backend, ev, wait_drained

T = 1795000000000
M, H = 60000, 3600000

SHOP = {"name": "shop", "allow_skip": True, "stages": [
    {"name": "visit", "on": [{"type": "page_view"}]},
    {"name": "interest", "on": [{"type": "email_click"}], "stale_after": "1h"},
    {"name": "cart", "on": [{"type": "cart_add"}], "stale_after": "2h"},
    {"name": "buy", "on": [{"type": "purchase"}], "conversion": True}],
    "retarget": [{"name": "cart_abandoned", "after": {"type": "cart_add"},
                  "unless": [{"type": "purchase"}], "within": "30m"}]}
CAPPED = {"name": "capped", "stages": [{"name": "s", "on": [{"type": "signup"}]}],
          "retarget": [{"name": "nudge", "after": {"type": "ping"}, "within": "1m"}],
          "trigger_cap": {"max": 2, "per": "1h"}}

PHASE_A = [
    ev("L-stall", "s1", T, "web", "page_view"),
    ev("L-stall", "s2", T + 1 * M, "email", "email_click", props={"value": 900}),
    ev("L-rearm", "r1", T, "email", "email_click"),
    ev("L-rearm", "r2", T + 5 * M, "email", "email_open"),
    ev("L-cart", "c1", T + 2 * M, "web", "cart_add"),
    ev("L-bought", "b1", T, "web", "cart_add"),
    ev("L-bought", "b2", T + 8 * M, "web", "purchase"),
    ev("L-optout", "o1", T, "web", "cart_add"),
    ev("L-optout", "o2", T + 3 * M, "web", "consent", props={"marketing": False}),
    ev("L-erase", "x1", T, "web", "cart_add"),
    ev("L-erase", "x2", T + 4 * M, "web", "erase"),
    ev("L-late", "l1", T + 1 * M, "web", "cart_add"),
]
PHASE_B = [ev("L-late", "l2", T + 40 * M, "web", "page_view")] + [
    ev("L-cap", "p%d" % i, T + H + 2 * i * M, "web", "ping", funnel="capped") for i in range(4)]
EXPECTED = {
    ("L-stall", "shop", "stalled", "s2", T + M + H),
    ("L-rearm", "shop", "stalled", "r2", T + 5 * M + H),
    ("L-cart", "shop", "cart_abandoned", "c1", T + 2 * M + 30 * M),
    ("L-cart", "shop", "stalled", "c1", T + 2 * M + 2 * H),
    ("L-late", "shop", "cart_abandoned", "l1", T + M + 30 * M),
    ("L-late", "shop", "stalled", "l2", T + 40 * M + 2 * H),
    ("L-cap", "capped", "nudge", "p0", T + H + M),
    ("L-cap", "capped", "nudge", "p1", T + H + 3 * M),
}


def iso_ms(s):
    return int(time.mktime(time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone) * 1000 + \
        int(s[20:23])


def triggers(st, topic, **kw):
    return [json.loads(m.value()) for m in st.consume(topic, **kw)]


def key_of(t):
    return (t["lead_id"], t["funnel"], t["reason"], t["cause_event_id"], iso_ms(t["due_at"]))


def tick_every_partition(st, when, n):
    prod = Producer({"bootstrap.servers": st.brokers})
    for p in range(n):
        e = ev("tick-%d" % p, "tick-%d-%d" % (p, when), when, "system", "tick")
        prod.produce(st.input, json.dumps(e).encode(), key=e["lead_id"].encode(), partition=p)
    assert prod.flush(30) == 0


def stat_sum(st, prefix, field):
    total = 0
    for k in st.redis.scan_iter(f"{prefix}:*:stats"):
        v = st.redis.hget(k, field)
        total += int(v) if v else 0
    return total


def main():
    check = Check("test_retarget_e2e")
    with open(os.path.join(REPO, "schemas", "retarget.schema.json")) as f:
        schema = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("retarget", funnels=[SHOP, CAPPED], partitions=3, clock="event")
    rt = st.topics["retargeting"]
    try:
        # --- phase A: schedule, then stop ---
        st.produce(PHASE_A)
        a = st.start()
        check.true(wait_drained(st, timeout=120), "phase A processed")
        time.sleep(2)  # several ticks: nothing is due by any partition's clock
        check.eq(len(triggers(st, rt, idle=2)), 0, "no trigger before anything is due")
        check.eq(st.stop(a), 0, "phase A daemon exits 0")
        pending = sum(st.redis.zcard(k) for k in st.redis.scan_iter(f"{st.name}:*:due:*"))
        check.eq(pending, 6, "timers waiting in Redis across the restart")
        check.eq(stat_sum(st, st.name, "shop|sup|opted_out"), 2, "opt-out cancelled 2 timers")
        check.eq(stat_sum(st, st.name, "shop|sup|erased"), 2, "erasure cancelled 2 timers")

        # --- phase B: two daemons, later events, then every partition's clock moves on ---
        b1, b2 = st.start(), st.start()
        st.produce(PHASE_B)
        tick_every_partition(st, T + 3 * H, 3)
        check.true(wait_drained(st, timeout=120), "phase B processed")
        got = triggers(st, rt, expect=len(EXPECTED), idle=4)
        ids = [t["id"] for t in got]
        check.eq(len(ids), len(set(ids)), "no trigger fired twice")
        check.eq({key_of(t) for t in got}, EXPECTED, "exactly the expected triggers")
        for t in got:
            errs = [e.message for e in schema.iter_errors(t)]
            check.eq(errs, [], f"trigger {t['lead_id']}/{t['reason']} validates")
            check.eq(t["at"], t["due_at"], "at is the due time")
        by = {(t["lead_id"], t["reason"]): t for t in got}
        s = by.get(("L-stall", "stalled"), {})
        check.eq(s.get("stage"), "interest", "stalled stage")
        check.eq(s.get("idle_ms"), H, "idle_ms is the stale_after")
        check.eq(s.get("value"), 900, "the lead's value")
        check.eq((s.get("last_touch") or {}).get("type"), "email_click", "last touch")
        check.eq(by.get(("L-cart", "cart_abandoned"), {}).get("stage"), "cart", "rule's stage")
        check.eq(stat_sum(st, st.name, "capped|sup|capped"), 2, "cap suppressed 2 nudges")
        check.eq(stat_sum(st, st.name, "shop|trig|stalled"), 4, "stalled counter")
        outbox = sum(st.redis.hlen(k) for k in st.redis.scan_iter(f"{st.name}:*:outbox"))
        check.eq(outbox, 0, "every delivered trigger left the outbox")
        for p in (b1, b2):
            check.eq(st.stop(p), 0, "phase B daemon exits 0")

        # --- phase C: replay everything at full speed in a new group and key space ---
        group, replay_rt = st.replay_config(3)
        c = st.start()
        name = st.name
        st.name = group
        check.true(wait_drained(st, timeout=120), "replay processed")
        st.name = name
        again = triggers(st, replay_rt, expect=len(EXPECTED), idle=4)
        check.eq(sorted((t["id"], t["due_at"]) for t in again),
                 sorted((t["id"], t["due_at"]) for t in got), "replay: same ids and times")
        check.eq(st.stop(c), 0, "replay daemon exits 0")
        check_backend(st, check)
    finally:
        st.close()

    # --- wall clock: the stall fires with no further input ---
    shop = json.loads(json.dumps(SHOP))
    shop["stages"][1]["stale_after"] = "2s"
    w = Stack("retarget-wall", funnels=[shop], partitions=1, clock="wall")
    try:
        p = w.start()
        now = int(time.time() * 1000)
        w.produce([ev("W-1", "w1", now, "email", "email_click")])
        got = triggers(w, w.topics["retargeting"], expect=1, idle=3, timeout=60)
        check.eq([(t["lead_id"], t["reason"], t["idle_ms"]) for t in got],
                 [("W-1", "stalled", 2000)], "wall clock stall")
        if got:
            lag = int(time.time() * 1000) - iso_ms(got[0]["due_at"])
            print(f"wall-clock trigger seen {lag} ms after its due time")
        check.eq(w.stop(p), 0, "wall daemon exits 0")
    finally:
        w.close()
    check.done()


if __name__ == "__main__":
    main()
