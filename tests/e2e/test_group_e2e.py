"""test_group_e2e.py — several daemons in one consumer group (SPEC §6): two funneld
processes share 6 partitions, a third joins mid-stream and one leaves with SIGTERM, so the
partitions are rebalanced twice while events flow. The transitions must equal a one-daemon
run's: nothing lost, nothing invented, per-lead order kept, repeats only as exact copies.
"""
import json
import time

from harness import Check, Stack, gen_stream, group_lag, wait_drained

N = 60000


def collect(st, check, label):
    by_id, order, repeats = {}, {}, 0
    for m in st.consume(st.topics["transitions"], idle=5):
        e = json.loads(m.value())
        e.pop("emitted_at")
        if e["id"] in by_id:
            repeats += 1
            check.eq(e, by_id[e["id"]], f"{label}: a repeat is an exact copy")
            continue
        by_id[e["id"]] = e
        order.setdefault((e["lead_id"], e["funnel"]), []).append(e["id"])
    return by_id, order, repeats


def main():
    check = Check("test_group_e2e")
    stream = gen_stream(N, N // 10, seed=11)

    one = Stack("group-one", partitions=6)
    try:
        one.produce(stream)
        p = one.start()
        check.true(wait_drained(one), "single daemon drains")
        check.eq(one.stop(p), 0, "single daemon exits 0")
        want, want_order, _ = collect(one, check, "one")
    finally:
        one.close()

    many = Stack("group-many", partitions=6)
    try:
        many.produce(stream)
        a, b = many.start(), many.start()
        # wait until the two have split the partitions and made some progress
        deadline = time.time() + 60
        while time.time() < deadline and group_lag(many.brokers, many.name, many.input) > N * 0.8:
            time.sleep(0.2)
        c = many.start()
        time.sleep(1.5)
        check.eq(many.stop(a), 0, "a leaving member exits 0 after draining its work")
        check.true(wait_drained(many), "the group drains the input")
        check.eq(many.stop(b), 0, "member b exits 0")
        check.eq(many.stop(c), 0, "member c exits 0")
        got, got_order, repeats = collect(many, check, "many")
        logs = [many.log_of(x) for x in (a, b, c)]
    finally:
        many.close()

    check.true(all("assigned" in lg for lg in logs), "every member got partitions")
    check.eq(sorted(set(want) - set(got))[:5], [], "nothing lost across rebalances")
    check.eq(sorted(set(got) - set(want))[:5], [], "nothing invented")
    check.eq([i for i in want if got.get(i) != want[i]][:5], [], "identical contents")
    bad = [k for k in want_order if got_order.get(k) != want_order[k]]
    check.eq(bad[:5], [], "per-lead, per-funnel order of first appearances kept")
    print(f"events {N}, transitions {len(want)}, repeats across rebalances {repeats}")
    check.done()


if __name__ == "__main__":
    main()
