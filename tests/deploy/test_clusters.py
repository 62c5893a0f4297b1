"""test_clusters.py — the real clusters of the scale-out tests (issue 18, SPEC §9) survive
the loss of one node, with no daemon involved: what those tests will rely on.

(a) Redis Cluster (deploy/redis-cluster.sh): a key in each of the 16384 slots, written
    through the cluster; one master SIGKILLed; after the failover every key reads back
    through the cluster (redis-cli -c, and redis-py's cluster client), and the killed node,
    restarted, rejoins as a replica of the promoted one with all of its slots' keys; 1,000
    slots, keys included, moved to another master (redis-cluster.sh reshard) still read back.
(b) Three-broker KRaft Kafka (deploy/kafka.sh cluster-*): a topic with replication factor 3
    and min.insync.replicas 2; N messages produced with acks=all (idempotent), the leader
    of partition 0 SIGKILLed half-way with messages in flight, production going on through
    the failover; every message is delivered
    and consumed exactly once, each partition in the order produced. The killed broker,
    restarted, is back in every partition's ISR.

Everything runs in a private FUNNELD_RUN_DIR, so it runs beside the services fixture and
other tests; both clusters are stopped, and the directory removed, also on a failure, on
SIGTERM and when the test's own deadline passes. Runs on Debian's python3
(python3-redis, python3-confluent-kafka).
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import AdminClient, ConfigResource
from redis.cluster import RedisCluster
from redis.crc import key_slot
import redis

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
REDIS_CLUSTER = os.path.join(REPO, "deploy/redis-cluster.sh")
KAFKA = os.path.join(REPO, "deploy/kafka.sh")
MESSAGES = int(os.environ.get("FUNNELD_CLUSTER_TEST_MESSAGES", "20000"))
DEADLINE_S = 240  # below ctest's TIMEOUT, so the cleanup still runs

failed = 0


def check(cond, what):
    global failed
    print(f"{'ok  ' if cond else 'FAIL'}    {what}", flush=True)
    if not cond:
        failed += 1
    return cond


def run(env, *cmd, timeout=200, ok=True):
    """Runs a deploy script; its progress (stderr) goes to ours, its stdout is returned."""
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=sys.stderr, text=True,
                       timeout=timeout)
    if ok and p.returncode != 0:
        raise RuntimeError(f"{' '.join(os.path.basename(c) for c in cmd[:2])} "
                           f"{' '.join(cmd[2:])}: exit status {p.returncode}")
    return p.stdout if ok else p.returncode


def exports(out):
    return dict(line[len("export "):].split("=", 1) for line in out.splitlines()
                if line.startswith("export "))


def nodes_table(env):
    """redis-cluster.sh nodes → {addr: (role, slots or master, state)}."""
    return {f[0]: tuple(f[1:]) for f in (l.split() for l in
                                         run(env, REDIS_CLUSTER, "nodes").splitlines())}


# ------------------------------------------------------------------------ Redis Cluster
def one_key_per_slot():
    keys = [None] * 16384
    left, i = 16384, 0
    while left:
        k = f"clusters:{i}"
        s = key_slot(k.encode())
        if keys[s] is None:
            keys[s] = k
            left -= 1
        i += 1
    return keys


def replicas_caught_up(table):
    """Every replica's acknowledged offset equals its master's. Replication is asynchronous:
    a write the master acknowledged but had not yet sent is lost in a failover, so the test
    kills only once nothing is in flight (a writer that cares uses WAIT)."""
    for addr, (role, _, _) in table.items():
        if role != "master":
            continue
        host, port = addr.split(":")
        info = redis.Redis(host=host, port=int(port)).info("replication")
        offs = [v["offset"] for k, v in info.items() if k.startswith("slave") and
                isinstance(v, dict)]
        if not offs or min(offs) != info["master_repl_offset"]:
            return False
    return True


def slot_count(ranges):
    """'0-999,10923-16383' → 6461."""
    return sum(int(r.split("-")[-1]) - int(r.split("-")[0]) + 1 for r in ranges.split(","))


def read_with_cli(env, keys):
    """GET every key with redis-cli -c (it follows MOVED and ASK; its notes on the redirects
    are not values); None if redis-cli failed."""
    p = subprocess.run([REDIS_CLUSTER, "cli"], env=env, text=True, stdout=subprocess.PIPE,
                       stderr=sys.stderr, input="".join(f"GET {k}\n" for k in keys),
                       timeout=120)
    if p.returncode != 0:
        return None
    return [l for l in p.stdout.splitlines() if not l.startswith("-> Redirected")]


def redis_part(env):
    t0 = time.monotonic()
    e = exports(run(env, REDIS_CLUSTER, "start"))
    seed = e["FUNNELD_REDIS_CLUSTER_URL"]
    nodes = e["FUNNELD_REDIS_CLUSTER_NODES"].split(",")
    table = nodes_table(env)
    masters = {a: v for a, v in table.items() if v[0] == "master"}
    check(len(nodes) == 6 and len(masters) == 3 and
          sorted(v[1] for v in masters.values()) == ["0-5460", "10923-16383", "5461-10922"] and
          sorted(v[1] for a, v in table.items() if v[0] == "replica") == sorted(masters),
          f"redis: 3 masters (slots 0-16383) each with 1 replica, seed {seed} "
          f"({time.monotonic() - t0:.1f} s)")

    keys = one_key_per_slot()
    host, port = seed[len("redis://"):].split(":")
    rc = RedisCluster(host=host, port=int(port))
    pipe = rc.pipeline()
    for k in keys:
        pipe.set(k, "v:" + k)
    pipe.execute()
    total = sum(redis.Redis(host=a.split(":")[0], port=int(a.split(":")[1])).dbsize()
                for a in masters)
    check(total == 16384, f"redis: {total} keys written, one in each of the 16384 slots")
    rc.close()

    deadline = time.monotonic() + 30
    while not replicas_caught_up(table) and time.monotonic() < deadline:
        time.sleep(0.1)
    check(replicas_caught_up(table), "redis: every replica caught up before the kill")

    t0 = time.monotonic()
    killed, promoted = run(env, REDIS_CLUSTER, "kill-master").split()
    after = nodes_table(env)
    check(after.get(f"127.0.0.1:{killed}", ("",))[0] == "master" and
          after[f"127.0.0.1:{killed}"][2] == "fail" and
          after.get(f"127.0.0.1:{promoted}", ("",))[:2] == ("master",
                                                            table[f"127.0.0.1:{killed}"][1]),
          f"redis: master {killed} SIGKILLed, replica {promoted} took over its slots "
          f"{table[f'127.0.0.1:{killed}'][1]} ({time.monotonic() - t0:.1f} s)")

    # Every key through the cluster with redis-cli -c, then with a fresh redis-py cluster
    # client.
    t0 = time.monotonic()
    got = read_with_cli(env, keys)
    check(got == ["v:" + k for k in keys],
          f"redis: all 16384 keys read back with redis-cli -c after the failover "
          f"({sum(g == 'v:' + k for g, k in zip(got or [], keys))} right, "
          f"{time.monotonic() - t0:.1f} s)")
    rc = RedisCluster(host=host, port=int(promoted))
    pipe = rc.pipeline()
    for k in keys:
        pipe.get(k)
    vals = pipe.execute()
    rc.close()
    check(vals == [("v:" + k).encode() for k in keys],
          "redis: all 16384 keys read back with redis-py's cluster client")

    t0 = time.monotonic()
    run(env, REDIS_CLUSTER, "restart-node", killed)
    back = nodes_table(env)
    r_killed = redis.Redis(host="127.0.0.1", port=int(killed))
    r_prom = redis.Redis(host="127.0.0.1", port=int(promoted))
    check(back.get(f"127.0.0.1:{killed}") == ("replica", f"127.0.0.1:{promoted}", "connected")
          and r_killed.dbsize() == r_prom.dbsize() > 0,
          f"redis: {killed} restarted, rejoined as a replica of {promoted} with its "
          f"{r_prom.dbsize()} keys ({time.monotonic() - t0:.1f} s)")
    c = subprocess.run(["redis-cli", "--cluster", "check", f"127.0.0.1:{promoted}"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    check(c.returncode == 0 and "[OK] All 16384 slots covered." in c.stdout,
          "redis: redis-cli --cluster check: all 16384 slots covered, nodes agree")

    other = next(a.split(":")[1] for a, v in back.items()
                 if v[0] == "master" and a != f"127.0.0.1:{promoted}")
    t0 = time.monotonic()
    run(env, REDIS_CLUSTER, "reshard", promoted, other, "1000")
    moved = nodes_table(env)
    got = read_with_cli(env, keys)
    check([slot_count(moved[f"127.0.0.1:{p}"][1]) - slot_count(back[f"127.0.0.1:{p}"][1])
           for p in (promoted, other)] == [-1000, 1000] and got == ["v:" + k for k in keys],
          f"redis: 1000 slots moved from {promoted} to {other} "
          f"({moved[f'127.0.0.1:{other}'][1]}), all keys read back with redis-cli -c "
          f"({time.monotonic() - t0:.1f} s)")

    run(env, REDIS_CLUSTER, "stop")
    check(run(env, REDIS_CLUSTER, "status", ok=False) != 0 and
          not any(os.path.exists(os.path.join(env["FUNNELD_RUN_DIR"], f))
                  for f in ("redis-cluster", "redis-cluster.env")),
          "redis: stop leaves no node and no state behind")


# ------------------------------------------------------------------------ Kafka cluster
def partitions(admin, topic):
    return admin.list_topics(topic, timeout=10).topics[topic].partitions


def kafka_part(env):
    run(env, KAFKA, "fetch")  # nothing to do when the jars are there
    t0 = time.monotonic()
    e = exports(run(env, KAFKA, "cluster-start"))
    brokers = e["FUNNELD_BROKERS_CLUSTER"]
    check(len(brokers.split(",")) == 3,
          f"kafka: three nodes up at {brokers} ({time.monotonic() - t0:.1f} s)")
    topic = "clusters-test"
    run(dict(env, FUNNELD_BROKERS_CLUSTER=brokers), KAFKA, "cluster-topics", f"{topic}:3")
    admin = AdminClient({"bootstrap.servers": brokers})
    parts = partitions(admin, topic)
    cfg = admin.describe_configs([ConfigResource("topic", topic)])
    isr_cfg = list(cfg.values())[0].result(timeout=10)["min.insync.replicas"].value
    check(len(parts) == 3 and all(len(p.replicas) == 3 and len(p.isrs) == 3
                                  for p in parts.values()) and isr_cfg == "2",
          f"kafka: topic {topic}: 3 partitions, each 3 replicas in sync, "
          f"min.insync.replicas={isr_cfg}")
    victim = parts[0].leader  # node N has node.id N

    delivered = {0: [], 1: [], 2: []}
    errors = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        else:
            delivered[msg.partition()].append((msg.offset(), msg.value().decode()))

    prod = Producer({"bootstrap.servers": brokers, "acks": "all", "enable.idempotence": True,
                     "linger.ms": 5, "message.timeout.ms": 120000})
    # Paced (about 2,000 a second), so production goes on through the kill and the ~6 s
    # until the dead node is fenced and its partitions get a new leader. The kill runs
    # beside the producing loop, which does not wait for it: what is in flight then must
    # not be lost (nor written twice) either.
    t0 = time.monotonic()
    killer = kill_done = None
    for i in range(MESSAGES):
        if i == MESSAGES // 2:
            killer = subprocess.Popen([KAFKA, "cluster-kill", str(victim)], env=env,
                                      stdout=subprocess.DEVNULL, stderr=sys.stderr)
        if killer is not None and kill_done is None and killer.poll() is not None:
            kill_done, killed_at = i, time.monotonic()
            acked = sum(len(v) for v in delivered.values())
        prod.produce(topic, value=str(i).encode(), partition=i % 3, on_delivery=on_delivery)
        if i % 100 == 99:
            prod.poll(0)
            time.sleep(0.05)
    killer.wait(30)
    if kill_done is None:
        kill_done, killed_at, acked = MESSAGES, time.monotonic(), -1
    left = prod.flush(120)
    done = time.monotonic()
    n = sum(len(v) for v in delivered.values())
    check(killer.returncode == 0 and kill_done < MESSAGES,
          f"kafka: node {victim}, partition 0's leader, SIGKILLed mid-production: the kill "
          f"began after message {MESSAGES // 2} and was done at {kill_done}, when {acked} "
          f"were acknowledged (acks=all)")
    check(left == 0 and not errors and n == MESSAGES,
          f"kafka: all {n} of {MESSAGES} delivered, {len(errors)} delivery errors"
          f"{': ' + errors[0] if errors else ''} (the last {done - killed_at:.1f} s after the "
          f"kill; {done - t0:.1f} s in all)")
    # The node that answers may learn of the fencing a moment after the leaders did.
    deadline = time.monotonic() + 15
    while True:
        parts = partitions(admin, topic)
        isrs = [sorted(parts[p].isrs) for p in range(3)]
        shrunk = parts[0].leader != victim and all(victim not in i and len(i) == 2
                                                    for i in isrs)
        if shrunk or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check(run(env, KAFKA, "cluster-status", ok=False) != 0 and shrunk,
          f"kafka: node {victim} down, partition 0 now led by node {parts[0].leader}, "
          f"the ISRs {isrs} without it")

    # Read every partition from the beginning (assigned, no group rebalance needed).
    cons = Consumer({"bootstrap.servers": brokers, "group.id": "clusters-test",
                     "enable.auto.commit": False, "enable.partition.eof": False})
    cons.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    got = {0: [], 1: [], 2: []}
    deadline = time.monotonic() + 60
    while sum(len(v) for v in got.values()) < n and time.monotonic() < deadline:
        for m in cons.consume(num_messages=1000, timeout=1):
            if m.error() is None:
                got[m.partition()].append((m.offset(), m.value().decode()))
    time.sleep(1)  # anything beyond N would be a duplicate
    for m in cons.consume(num_messages=1000, timeout=1):
        if m.error() is None:
            got[m.partition()].append((m.offset(), m.value().decode()))
    cons.close()
    want = {p: [str(i) for i in range(MESSAGES) if i % 3 == p] for p in range(3)}
    check(all([v for _, v in got[p]] == want[p] and got[p] == delivered[p] for p in range(3)),
          f"kafka: consumed {sum(len(v) for v in got.values())} messages, exactly those "
          f"produced, each partition in produce order and at its delivered offsets")

    t0 = time.monotonic()
    run(env, KAFKA, "cluster-restart", str(victim))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        parts = partitions(admin, topic)
        if all(len(p.isrs) == 3 for p in parts.values()):
            break
        time.sleep(0.5)
    check(run(env, KAFKA, "cluster-status", ok=False) == 0 and
          all(len(p.isrs) == 3 for p in parts.values()),
          f"kafka: node {victim} restarted, back in every partition's ISR "
          f"({time.monotonic() - t0:.1f} s)")

    del prod, admin  # no clients left retrying a stopped cluster
    run(env, KAFKA, "cluster-stop")
    check(run(env, KAFKA, "cluster-status", ok=False) != 0 and
          not os.path.exists(os.path.join(env["FUNNELD_RUN_DIR"], "kafka-cluster")),
          "kafka: cluster-stop leaves no node and no state behind")


# ------------------------------------------------------------------------ main
class Deadline(Exception):
    pass


def main():
    run_dir = tempfile.mkdtemp(prefix="funneld-clusters-")
    env = dict(os.environ, FUNNELD_RUN_DIR=run_dir)

    def on_signal(sig, _frame):
        raise SystemExit(f"signal {sig}: cleaning up")

    def on_alarm(_sig, _frame):
        raise Deadline(f"the test's own deadline of {DEADLINE_S} s passed")

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(DEADLINE_S)
    t0 = time.monotonic()
    try:
        redis_part(env)
        kafka_part(env)
    except Exception as e:  # a failed step is a failed check; cleanup follows
        check(False, f"{type(e).__name__}: {e}")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for cmd in ((REDIS_CLUSTER, "stop"), (KAFKA, "cluster-stop")):
            subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=60)
        shutil.rmtree(run_dir, ignore_errors=True)
    print(f"{'FAILED' if failed else 'passed'}: {failed} check(s) failed, "
          f"{time.monotonic() - t0:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
