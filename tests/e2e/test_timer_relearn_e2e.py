"""test_timer_relearn_e2e.py — a timer armed by a step the owner did not send still fires.

A partition's owner fires the timers of that partition's zsets, and knows what is due there
from its own steps' replies and from its fire calls. A step it did not send can arm a timer
there too: after a rebalance, the old owner's steps still in flight finish, possibly after
the new owner's first fire call on that zset ("learned: nothing pending"). The owner learns
every zset of its partitions again every 30 s (daemon/timers/README.md), so such a timer
fires at most that much late instead of never (before, the zset was not looked at again
until another timer of it was learned of).

The old owner's late step is played by bench_redis_step, which builds the very command
funneld sends (fn_step_build) and applies it as consumed from the daemon's input topic,
partition 0, after the daemon has learned its zsets. Wall clock, one partition: the lead's
stall (2 s) must come out as a trigger with no further input.
"""
import json
import os
import subprocess
import time

from harness import (Check, Stack, build_dir, ev, http_port, ready, wait_for)
from test_retarget_e2e import SHOP, iso_ms

TIMEOUT_S = 90  # the 30 s relearning period, the 2 s stall, and room for a loaded machine


def main():
    check = Check("timer_relearn")
    shop = json.loads(json.dumps(SHOP))
    shop["stages"][1]["stale_after"] = "2s"
    st = Stack("timer-relearn", funnels=[shop], partitions=1, clock="wall")
    try:
        p = st.start()
        port = http_port(st, p)
        now = int(time.time() * 1000)
        # a visit arms nothing: the daemon's first fire calls learn that every zset is empty
        st.produce([ev("R-0", "v0", now, "web", "page_view")])
        check.eq(len(st.transitions(expect=1, idle=1, timeout=60)), 1, "the visit applied")
        check.true(port and wait_for(lambda: ready(port), 60), "daemon ready (Kafka up)")
        time.sleep(1)  # its tick (100 ms) has sent the learning calls by now

        events = os.path.join(st.tmp, "late-step.jsonl")
        armed_at = int(time.time() * 1000)
        with open(events, "w") as f:
            f.write(json.dumps(ev("R-1", "r1", armed_at, "email", "email_click")) + "\n")
        out = subprocess.run(
            [os.path.join(build_dir(), "tests/bench/bench_redis_step"), "-c", st.config_path,
             "-i", events, "-p", st.cfg["redis"]["key_prefix"], "-t", st.input, "-P", "1",
             "-w", "1"], capture_output=True, text=True, timeout=60)
        result = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT")]
        check.true(out.returncode == 0 and result and " ok=1 " in result[0] + " ",
                   f"the other step applied ({out.stdout.strip()} {out.stderr.strip()[-300:]})")

        got = [json.loads(m.value()) for m in
               st.consume(st.topics["retargeting"], expect=1, idle=2, timeout=TIMEOUT_S)]
        check.eq([(t["lead_id"], t["reason"], t["cause_event_id"], t["idle_ms"]) for t in got],
                 [("R-1", "stalled", "r1", 2000)], "the stall armed by the other step fired")
        if got:
            print(f"trigger due {iso_ms(got[0]['due_at']) - armed_at} ms after the step, seen "
                  f"{int(time.time() * 1000) - iso_ms(got[0]['due_at'])} ms after its due time")
        check.eq(st.stop(p), 0, "daemon exits 0")
    finally:
        st.close()
    check.done()


if __name__ == "__main__":
    main()
