"""test_trigger_outage_e2e.py — retargeting triggers that fall due while Kafka is away are
produced once each, the daemon stays responsive, and it claims no more than it can hand to
Kafka (issue 16 item 1; SPEC §6: memory stays bounded whatever happens).

A broker of the test's own (deploy/kafka.sh, private run directory) is frozen with SIGSTOP
while N stall timers fall due on the wall clock, and the producer's queue is small
(queue.buffering.max.messages = QUEUE), so the triggers cannot all be queued. While it is
frozen:
- /healthz must answer every time it is asked (main waited on the loop for room in the full
  queue, up to 10 s per trigger);
- funneld_triggers_total must not grow. To make the outage outlast the 60 s lease without a
  test lasting minutes, the test ages every lease in the outboxes by AGE_S seconds, as if the
  outage had lasted that much longer: a daemon that renews the leases of what it holds
  (every 10 s) keeps them, one that does not (main) hands them out again at its next sweep.
  AGE_S is below the lease less the renewal period, so a renewed lease never runs out.
Once the broker is back, every trigger must arrive exactly once (one id per trigger, no
repeats) and the daemon must exit 0 on SIGTERM.

The input's N transitions are produced through the same small queue before the outage, so
outputs of consumed messages waiting for room (no longer a wait on the loop) are covered too:
each arrives once.
"""
import json
import os
import shutil
import signal
import tempfile
import time
import uuid

from harness import (Check, Stack, ev, free_port, http_get, kafka_sh, metrics,
                     start_private_broker, wait_for)

N = 300
QUEUE = 40
STALE_S = 15
AGE_S = 45

FUNNELS = [{
    "name": "to",
    "stages": [
        {"name": "interest", "on": [{"type": "email_click"}], "stale_after": f"{STALE_S}s"},
        {"name": "bought", "on": [{"type": "purchase"}], "conversion": True},
    ],
}]


def rfc3339(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def triggers_total(hport):
    m = metrics(hport)
    if not m:
        return None
    return sum(v for k, v in m.items() if k.startswith("funneld_triggers_total{"))


def age_leases(st, seconds):
    """Moves every outbox lease `seconds` earlier; returns how many there were."""
    n = 0
    for k in st.redis.scan_iter(f"{st.name}:*:leases", count=1000):
        for member, score in st.redis.zrange(k, 0, -1, withscores=True):
            st.redis.zadd(k, {member: score - seconds * 1000}, xx=True)
            n += 1
    return n


def expired_leases(st):
    now = int(time.time() * 1000)
    return sum(st.redis.zcount(k, "-inf", now)
               for k in st.redis.scan_iter(f"{st.name}:*:leases", count=1000))


def main():
    check = Check("test_trigger_outage_e2e")
    run_dir = tempfile.mkdtemp(prefix="funneld-kafka-")
    frozen = None
    p = st = None
    try:
        start_private_broker(run_dir)
        with open(os.path.join(run_dir, "kafka.pid")) as f:
            broker = int(f.read().strip())
        st = Stack("trigger-outage", funnels=FUNNELS, partitions=2, clock="wall")
        hport = free_port()
        st.cfg["http"] = {"listen": f"127.0.0.1:{hport}"}
        st.cfg["kafka"]["properties"].update({
            "queue.buffering.max.messages": str(QUEUE),
            "reconnect.backoff.max.ms": "1000",
            "session.timeout.ms": "60000",  # the group outlasts the freeze
        })
        with open(st.config_path, "w") as f:
            json.dump(st.cfg, f)
        p = st.start()
        check.true(wait_for(lambda: http_get(hport, "/readyz")[0] == 200, 60), "ready")

        now = int(time.time() * 1000)
        leads = [f"lead-{i}-{uuid.uuid4().hex[:6]}" for i in range(N)]
        st.produce([ev(lead, "ev-" + uuid.uuid4().hex, rfc3339(now), "email", "email_click")
                    for lead in leads])
        trans = st.consume(st.topics["transitions"], expect=N, idle=1.0, timeout=60)
        check.eq(len({json.loads(m.value())["id"] for m in trans}), N,
                 "every transition produced through the small queue")
        check.eq(len(trans), N, "each transition once")
        due = now + STALE_S * 1000

        os.kill(broker, signal.SIGSTOP)
        frozen = time.time()
        unanswered = 0

        def healthz_answers():
            nonlocal unanswered
            if http_get(hport, "/healthz")[0] != 200:
                unanswered += 1
            return False

        # the timers fall due and fire (as far as the daemon can hand them to Kafka)
        wait_for(healthz_answers, max(0.0, due / 1000 - time.time()) + 6, every=1.0)
        fired = triggers_total(hport)
        check.true(fired is not None and fired > 0, "triggers fired while the broker is frozen")
        check.true(metrics(hport).get("funneld_triggers_in_flight", QUEUE + 1) <= QUEUE,
                   "no more triggers claimed than the producer's queue takes")
        aged = age_leases(st, AGE_S)
        check.true(aged > 0, "leases held while the broker is frozen")
        # the daemon's next lease renewal and sweep (every 10 s) come and go
        wait_for(healthz_answers, 14, every=1.0)
        check.eq(unanswered, 0, "/healthz answered every time while the broker was frozen")
        check.eq(expired_leases(st), 0, "the leases of the triggers it holds were renewed")
        check.eq(triggers_total(hport), fired,
                 "funneld_triggers_total does not grow with the outage")
        print(f"fired while frozen: {fired}, leases aged: {aged}, "
              f"frozen {time.time() - frozen:.0f} s")

        os.kill(broker, signal.SIGCONT)
        frozen = None
        got = st.consume(st.topics["retargeting"], expect=N, idle=3.0, timeout=90)
        trig = [json.loads(m.value()) for m in got]
        check.eq(sorted({t["lead_id"] for t in trig}), sorted(leads), "every lead's trigger")
        check.eq(len({t["id"] for t in trig}), N, "one id per trigger")
        check.eq(len(trig), N, "each trigger delivered once")
        check.eq(triggers_total(hport), N, "funneld_triggers_total counts each trigger once")
        check.eq(st.stop(p), 0, "exits 0 on SIGTERM")
        if check.failed:
            print(st.log_of(p)[-3000:])
    finally:
        try:
            if frozen is not None:
                os.kill(broker, signal.SIGCONT)
            if st:
                st.close()
            kafka_sh(run_dir, "stop")
        finally:
            shutil.rmtree(run_dir, ignore_errors=True)
    check.done()


if __name__ == "__main__":
    main()
