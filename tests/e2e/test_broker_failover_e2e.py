"""test_broker_failover_e2e.py — a Kafka broker dies mid-stream under two daemons (issue 18,
SPEC §9): nothing is lost.

A three-broker KRaft cluster of the test's own (deploy/kafka.sh cluster-*, in a private run
dir) and a redis-server of its own. Every topic has replication factor 3 and
min.insync.replicas 2 (kafka.sh cluster-topics), and funneld produces with acks=all (its
idempotent producer; kafka.properties cannot lower it). First a reference: the stream
produced at once, one daemon, no kill. Then the same stream, paced, to two daemons in one
group; a few seconds in, the broker that leads the most input and transitions partitions is
SIGKILLed, and restarted some seconds later while the stream still flows. The second run's
transitions and triggers must equal the reference's: every id present (nothing lost), none
invented, an id seen twice only as an exact copy, each lead's transitions in the same order,
the same dead letters; both daemons stay up, are ready again, drain the input (nothing left
uncommitted) and exit 0 on SIGTERM.

Labels e2e, cluster and fault: tests/run.sh's sanitizer suite skips the cluster label (three
JVMs beside a sanitized daemon). The brokers and Redis are stopped, and the run dir removed,
also on a failure, on SIGTERM and at the test's own deadline.
"""
import os
import shutil
import sys
import tempfile
import time

from confluent_kafka.admin import AdminClient, ConfigResource

from harness import (Check, LagMeter, Stack, check_same_outputs, deadline, free_port, gen_stream,
                     fired_count, group_under_stream, kafka_sh, ready, run_outputs, scaled,
                     short_timer_funnels, start_redis, timers_settled, wait_drained, wait_for,
                     where_triggers)

N = scaled(16000)
RATE = scaled(1600)   # the paced run's stream lasts about 10 s
PARTS = 6
KILL_AT = 3.0         # seconds into the paced stream
DOWN = 6.0            # seconds between the kill and the restart
DEADLINE_S = 280      # below ctest's TIMEOUT, so the cleanup still runs


class ClusterStack(Stack):
    """A Stack whose topics are made by kafka.sh cluster-topics: replication factor 3,
    min.insync.replicas 2, and ready only once all three replicas are in sync."""
    run_dir = None

    def __init__(self, name):
        # The event clock, with stall and rule windows short enough for timers to fall due
        # within the stream: its triggers depend on the input only, not on when it arrived
        # (the reference gets it at once, the other run paced) nor on which member fired them.
        super().__init__(name, partitions=PARTS, funnels=short_timer_funnels(), clock="event")

    def create_topics(self, specs):
        kafka_sh(self.run_dir, "cluster-topics", *[f"{n}:{p}" for n, p in specs])


def leaders(brokers, topics):
    """{node id: partitions it leads} over topics."""
    md = AdminClient({"bootstrap.servers": brokers}).list_topics(timeout=10)
    count = {}
    for t in topics:
        for p in md.topics[t].partitions.values():
            count[p.leader] = count.get(p.leader, 0) + 1
    return count


def check_topic_config(st, check):
    admin = AdminClient({"bootstrap.servers": st.brokers})
    md = admin.list_topics(timeout=10)
    for name in [st.input, st.topics["transitions"]]:
        parts = md.topics[name].partitions.values()
        check.eq(sorted({len(p.replicas) for p in parts}), [3], f"{name}: replication factor 3")
        res = ConfigResource(ConfigResource.Type.TOPIC, name)
        cfg = list(admin.describe_configs([res]).values())[0].result(30)
        check.eq(cfg["min.insync.replicas"].value, "2", f"{name}: min.insync.replicas 2")


def reference(stream, check):
    st = ClusterStack("failover-ref")
    try:
        st.produce(stream)
        p = st.start()
        check.true(wait_drained(st, 180), "reference: drains the input")
        check.true(wait_for(lambda: timers_settled(st, wall_clock=False), 120),
                   "reference: fires what fell due")
        check.eq(st.stop(p), 0, "reference: exits 0")
        return run_outputs(st, check, "reference"), fired_count(st)
    finally:
        st.close()


def failover(stream, run_dir, fired, check):
    st = ClusterStack("failover")
    fig = {}
    try:
        check_topic_config(st, check)
        daemons, ports, feeder = group_under_stream(st, 2, stream, RATE, check, "failover",
                                                    KILL_AT)
        lead = leaders(st.brokers, [st.input, st.topics["transitions"]])
        victim = max(sorted(n for n in lead if n > 0), key=lambda n: lead[n])
        lag = LagMeter(st.brokers, st.name, st.input)
        try:
            fig["lag_at_kill"] = lag()
        finally:
            lag.close()
        kafka_sh(run_dir, "cluster-kill", str(victim))
        killed = time.time()
        fig["victim"], fig["victim_led"] = victim, lead[victim]
        check.true(fig["lag_at_kill"] > 0 and feeder.is_alive(), "the kill came mid-stream")
        # the victim's partitions get new leaders once it is fenced
        check.true(wait_for(lambda: victim not in leaders(st.brokers, [st.input]), 60),
                   "its partitions got new leaders")
        time.sleep(max(0.0, killed + DOWN - time.time()))
        check.eq([p.poll() for p in daemons], [None, None], "both daemons up while it is away")
        kafka_sh(run_dir, "cluster-restart", str(victim))
        fig["restarted_after_s"] = round(time.time() - killed, 1)
        feeder.join()
        check.true(wait_drained(st, 180), "the group drains the input: nothing uncommitted")
        # as many as the reference fired: a daemon held up for a moment (a loaded machine,
        # a 2 s wait for a coordinator) must not look like one with nothing left to fire
        check.true(wait_for(lambda: timers_settled(st, wall_clock=False, fired=fired), 120),
                   "fires what fell due")
        check.eq([p.poll() for p in daemons], [None, None], "both daemons stayed up")
        check.true(wait_for(lambda: all(ready(port) for port in ports), 60),
                   "both ready again once the broker is back")
        for i, p in enumerate(daemons):
            check.eq(st.stop(p), 0, f"daemon {i} exits 0 on SIGTERM")
        check.eq(wait_drained(st, 10), True, "nothing uncommitted after they stopped")
        return run_outputs(st, check, "failover") + (fig, st)
    finally:
        st.close()


def main():
    check = Check("test_broker_failover_e2e")
    run_dir = tempfile.mkdtemp(prefix="funneld-failover-")
    redis_proc = None

    cancel = deadline(DEADLINE_S)
    t0 = time.time()
    try:
        env = {}
        for line in kafka_sh(run_dir, "cluster-start").splitlines():
            if line.startswith("export ") and "=" in line:
                k, v = line[len("export "):].split("=", 1)
                env[k] = v.strip("'\"")
        ClusterStack.run_dir = run_dir
        rport = free_port()
        redis_proc = start_redis(rport, run_dir)
        # Stacks read these, and the daemons' environment overrides their config with them
        os.environ["FUNNELD_BROKERS"] = env["FUNNELD_BROKERS_CLUSTER"]
        os.environ["FUNNELD_REDIS_URL"] = f"redis://127.0.0.1:{rport}/0"
        stream = gen_stream(N, N // 8, seed=18)
        want, fired = reference(stream, check)
        *got, fig, st = failover(stream, run_dir, fired, check)
        # Where a trigger the reference fired is, if not on the topic: read while this run's
        # Redis is still there, so that a failure says which stage of firing held it.
        for line in where_triggers(st, [want[3][i] for i in sorted(set(want[3]) - set(got[3]))]):
            print(line, flush=True)
    finally:
        cancel()
        try:
            kafka_sh(run_dir, "cluster-stop")
        finally:
            if redis_proc:
                redis_proc.kill()
                redis_proc.wait()
            shutil.rmtree(run_dir, ignore_errors=True)
    check.true(len(want[0]) > N // 10, "the stream makes transitions")
    check.true(len(want[3]) > 0, "the stream makes triggers fall due")
    check.true(len(want[4]) > 0, "the stream makes dead letters")
    check_same_outputs(check, "failover", want, got)
    print(f"events {N} at {RATE}/s, {PARTS} partitions, node {fig.get('victim')} "
          f"(leader of {fig.get('victim_led')} input/transitions partitions) SIGKILLed "
          f"{KILL_AT:.0f}s in with {fig.get('lag_at_kill')} input uncommitted, restarted "
          f"{fig.get('restarted_after_s')}s later; transitions {len(want[0])} ({got[2]} repeated "
          f"deliveries), triggers {len(want[3])}, dead letters {len(want[4])}; "
          f"{time.time() - t0:.0f}s", flush=True)
    check.done()


if __name__ == "__main__":
    sys.exit(main())
