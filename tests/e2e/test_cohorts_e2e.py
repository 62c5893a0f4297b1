"""test_cohorts_e2e.py — weekly entry cohorts (SPEC §11) through the real broker and Redis:
300 leads entering a funnel (with regress allowed) over the last five weeks, each going as
far as a known stage, some stepping back and forward again, some entering half-way. The last
snapshot's cohorts (the last 4 weeks) equal what this test computes from the input: per week
of entry, the leads that entered and how many reached each stage and converted, each lead
once per stage; a week with no entries shows zeros; the schema holds; funnelctl cohorts
--json shows the same, and its table prints.
"""
import json
import os
import random
import subprocess
import time

import jsonschema

from harness import REPO, Check, Stack, build_dir, ev, wait_drained, wait_for

DAY, WEEK, OFFSET = 86400000, 604800000, 345600000
STAGES = ["visit", "signup", "trial", "paid"]
TYPES = ["page_view", "signup", "trial_start", "purchase"]
FUNNEL = {"name": "saas", "allow_regress": True, "allow_skip": True, "cohorts": 4,
          "stages": [{"name": s, "on": [{"type": t}]} for s, t in zip(STAGES, TYPES)],
          "bottleneck": {"evaluate_every": "1s"}}
FUNNEL["stages"][-1]["conversion"] = True


def week(ms):
    return (ms - OFFSET) // WEEK


def stream(n, now, seed=3):
    rnd = random.Random(seed)
    out, want = [], {}
    for i in range(n):
        lead = "C-%03d" % i
        # entries spread over five weeks back, none in the week three back: a week of zeros
        t = now - rnd.randrange(34 * DAY) - DAY
        while week(t) == week(now) - 3:
            t -= 7 * DAY
        first = rnd.choice([0, 0, 0, 1, 2])  # some enter half-way: the stages before count
        last = rnd.randrange(first, 4)
        reached = set(range(0, last + 1))
        path = list(range(first, last + 1))
        if last >= 2 and rnd.random() < 0.3:
            path += [1, last]  # back and forward again: nothing new reached
        for k, s in enumerate(path):
            out.append(ev(lead, "%s-%d" % (lead, k), t + k * 3600000, "web", TYPES[s]))
        w = want.setdefault(week(t), [0, 0, 0, 0])
        for s in reached:
            w[s] += 1
    return out, want


def main():
    check = Check("cohorts_e2e")
    with open(os.path.join(REPO, "schemas/snapshot.schema.json")) as f:
        snapshot = jsonschema.Draft202012Validator(json.load(f))
    st = Stack("cohorts", funnels=[FUNNEL], partitions=3)
    now = int(time.time() * 1000)
    events, want = stream(300, now)

    def expect_at(t):
        """the last 4 weeks' cohorts as of time t (ms)"""
        return [{"week": time.strftime("%Y-%m-%d", time.gmtime((w * WEEK + OFFSET) // 1000)),
                 "entered": want.get(w, [0] * 4)[0], "reached": want.get(w, [0] * 4),
                 "converted": want.get(w, [0] * 4)[3]}
                for w in (week(t) - b for b in range(3, -1, -1))]

    # A run that crosses Monday 00:00 UTC sees the weeks move on once: whatever reads the
    # cohorts answers for the week of its own time, between the start and the check.
    def expectations():
        return expect_at(now), expect_at(int(time.time() * 1000))

    def expected(got):
        return got in expectations()
    expect = expect_at(now)
    print("expected cohorts", expect)
    check.true(sum(e["entered"] for e in expect) < 300 and expect[0]["entered"] == 0,
               "the stream has older weeks, and a week of zeros")
    try:
        p = st.start()
        st.produce([(e["lead_id"], json.dumps(e)) for e in events])
        check.true(wait_drained(st, timeout=120), "input processed")
        last = {}

        def latest():
            snaps = [json.loads(m.value()) for m in st.consume(st.topics["snapshots"], idle=2)]
            return max(snaps, key=lambda s: s["at"]) if snaps else {}
        check.true(wait_for(lambda: last.update(latest()) or
                            expected(last.get("cohorts")), 60),
                   f"the snapshot's cohorts equal the input's: {last.get('cohorts')}")
        check.eq([e.message for e in snapshot.iter_errors(last)][:1], [], "snapshot schema")
        ctl = [os.path.join(build_dir(), "funnelctl"), "-c", st.config_path]
        out = subprocess.run(ctl + ["--json", "cohorts", "saas"], capture_output=True, text=True,
                             timeout=30)
        got = json.loads(out.stdout)["cohorts"] if out.returncode == 0 else out.stderr
        check.true(expected(got), f"funnelctl cohorts --json: {got}")
        out = subprocess.run(ctl + ["cohorts", "saas"], capture_output=True, text=True,
                             timeout=30)
        print(out.stdout)
        check.true(out.returncode == 0 and
                   any(e[-1]["week"] in out.stdout for e in expectations()) and
                   "trial" in out.stdout, "funnelctl cohorts prints the weeks")
        check.eq(st.stop(p), 0, "the daemon exits 0")
    finally:
        st.close()
    return check.done()


if __name__ == "__main__":
    raise SystemExit(main())
