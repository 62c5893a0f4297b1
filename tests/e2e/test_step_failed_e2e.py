"""test_step_failed_e2e.py — an event whose Redis step fails for good is dead-lettered with
code step_failed at once, never retried, the daemon keeps running, and events after the fault
is repaired are applied normally (nothing silently dropped, no partition held forever).

The fault: every shard's counter hash is replaced by a string, so each step's first counter
update answers WRONGTYPE — a deterministic error, unlike NOSCRIPT or LOADING, which are
retried for as long as they last. Then a key met half-way through the step (the hour's flow
counters of a funnel) is made a string: Redis keeps what a failing script wrote before its
error, and the step is not retried, so those writes count once, not three times (issue 16
item 3; the step checks everything else that could fail before its first write).
"""

from harness import Check, Stack, ev, wait_drained


def main():
    check = Check("test_step_failed_e2e")
    st = Stack("stepfail", partitions=2)
    try:
        shards = 64
        for s in range(shards):
            st.redis.set(f"{st.name}:{{{s}}}:stats", "not a hash")
        p = st.start()
        bad = [ev("F-%d" % i, "f%d" % i, 1795000000000 + i, "web", "page_view") for i in range(6)]
        st.produce(bad)
        dlq = st.consume(st.topics["dlq"], expect=len(bad), idle=3, timeout=90)
        codes = sorted(dict(m.headers() or []).get("funneld.error", b"").decode() for m in dlq)
        check.eq(codes, ["step_failed"] * len(bad), "each failing event dead-lettered once")
        reason = dict(dlq[0].headers() or []).get("funneld.reason", b"").decode() if dlq else ""
        check.true("WRONGTYPE" in reason and "attempts" not in reason, f"reason names it: {reason}")
        check.true("trying again" not in st.log_of(p), "a failed step is not retried")
        check.true(p.poll() is None, "funneld keeps running")
        for s in range(shards):
            st.redis.delete(f"{st.name}:{{{s}}}:stats")
        good = [ev("G-%d" % i, "g%d" % i, 1795000000000 + i, "web", "page_view") for i in range(6)]
        st.produce(good)
        check.true(wait_drained(st, timeout=90), "every offset committed")
        out = st.transitions(idle=3)
        check.eq(sorted({t["lead_id"] for t in out}), sorted(e["lead_id"] for e in good),
                 "events after the repair are applied")

        hour = 1795100000000 // 3600000
        for s in range(shards):
            st.redis.set(f"{st.name}:{{{s}}}:flow:b2b:{hour}", "not a hash")
        half = [ev("H-%d" % i, "h%d" % i, 1795100000000 + i, "web", "page_view")
                for i in range(4)]
        st.produce(half)
        dlq = st.consume(st.topics["dlq"], expect=len(bad) + len(half), idle=3, timeout=90)
        check.eq(len(dlq), len(bad) + len(half), "each failing event dead-lettered once")
        leads = sum(int(st.redis.hget(f"{st.name}:{{{s}}}:stats", "b2b|leads") or 0)
                    for s in range(shards))
        check.eq(leads, len(good) + len(half), "a step cut short half-way is applied once")
        check.eq(st.stop(p), 0, "exit code")
    finally:
        st.close()
    check.done()


if __name__ == "__main__":
    main()
