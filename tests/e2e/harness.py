"""harness.py — what every end-to-end test needs: the real services' addresses, a funneld
process with its own config, topics, consumer group and Redis key prefix (so tests never see
each other's data), producing input and reading output topics until they are quiet.

Runs on Debian's python3 (python3-confluent-kafka, python3-redis), which talk to the same
broker and Redis that deploy/services.sh started.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
import redis
from redis.cluster import RedisCluster

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

# Every Stack's private directory (its config and its daemons' logs) in this process:
# Check.done() removes them when every check passed and names them when one failed.
STACK_DIRS = []


def env(name):
    v = os.environ.get(name)
    if not v:
        sys.exit(f"{name} is not set: run under ctest (services fixture) or tests/run.sh")
    return v


# The fault tests' volume: 1 (default) is what README reports; tests/run.sh runs the
# ASan+UBSan build with less, since the sanitizers make every event several times dearer.
SCALE = float(os.environ.get("FUNNELD_FAULT_SCALE", "1"))


def scaled(n):
    """n events (or events a second) at FUNNELD_FAULT_SCALE."""
    return max(1, int(n * SCALE))


def build_dir():
    return os.environ.get("FUNNELD_BUILD_DIR", os.path.join(REPO, "build"))


def iso(ms):
    """Epoch milliseconds as funneld writes times: 2026-11-22T10:15:00.250Z."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def bottleneck_model(events, entered_type, first_ms, last_ms, min_entered=20, drop=0.5):
    """[(type, tick)]: the daemon's bottleneck rule (fn_judge; window 1 h, baseline 24 h, whole
    minutes) judged at the first tick of every minute from first_ms to last_ms, over `events`:
    those of entered_type enter the stage, the others advance from it."""
    M = 60000
    entered, advanced = {}, {}
    for e in events:
        d = entered if e["type"] == entered_type else advanced
        d[e["ts"] // M] = d.get(e["ts"] // M, 0) + 1
    raised, out = False, []
    for m in range(first_ms // M + 1, last_ms // M + 1):
        def s(d, span):
            return sum(d.get(x, 0) for x in range(m - span, m))
        we, wa, be, ba = s(entered, 60), s(advanced, 60), s(entered, 1440), s(advanced, 1440)
        if we < min_entered or be < min_entered or ba == 0:
            continue
        now = wa / we < (1 - (drop / 2 if raised else drop)) * (ba / be)
        if now != raised:
            out.append(("bottleneck" if now else "bottleneck_cleared", m * M))
        raised = now
    return out


def latest_snapshot(st, funnel=None):
    """The newest funnel_snapshot on st's snapshot topic (of `funnel`, when given), or {}."""
    snaps = [json.loads(m.value()) for m in st.read_all(st.topics["snapshots"])]
    snaps = [s for s in snaps if funnel is None or s.get("funnel") == funnel]
    return max(snaps, key=lambda s: s["at"]) if snaps else {}


def funnelctl(st, *args):
    """Runs funnelctl on st's config: (exit code, stdout, stderr)."""
    out = subprocess.run([os.path.join(build_dir(), "funnelctl"), "-c", st.config_path, *args],
                         capture_output=True, text=True, timeout=30)
    return out.returncode, out.stdout, out.stderr


class Stack:
    """One test's private slice of the shared Kafka and Redis."""

    def __init__(self, name, funnels=None, partitions=3, **engine):
        self.brokers = env("FUNNELD_BROKERS")
        # registered a second time as e2e.on-cluster.NAME (tests/e2e/CMakeLists.txt), a test
        # runs on the rcluster fixture's Redis Cluster (with-services.sh points
        # FUNNELD_REDIS_URL at a node of it) instead of the single redis-server
        self.on_cluster = bool(os.environ.get("FUNNELD_E2E_REDIS_CLUSTER_ENV"))
        self.redis_url = env("FUNNELD_REDIS_URL")
        self.name = f"{name}-{uuid.uuid4().hex[:8]}"
        self.tmp = tempfile.mkdtemp(prefix="funneld-e2e-")
        STACK_DIRS.append(self.tmp)
        t = lambda s: f"{self.name}.{s}"
        self.topics = {k: t(k) for k in ("transitions", "retargeting", "bottlenecks",
                                          "snapshots", "dlq")}
        self.input = t("touchpoints")
        with open(os.path.join(REPO, "deploy/config/demo.json")) as f:
            cfg = json.load(f)
        cfg["kafka"].update({"brokers": self.brokers, "group_id": self.name,
                             "input_topics": [self.input], "topics": self.topics})
        cfg["kafka"]["properties"] = {"session.timeout.ms": "6000",
                                      "topic.metadata.refresh.interval.ms": "2000"}
        cfg["redis"] = {"url": self.redis_url, "key_prefix": self.name}
        if self.on_cluster:
            cfg["redis"]["cluster"] = True
            cfg["redis"]["seeds"] = [n for n in os.environ.get("FUNNELD_REDIS_CLUSTER_NODES",
                                                                "").split(",") if n]
        # many daemons share this machine: each gets a free port (printed in its log)
        cfg["http"] = {"listen": "127.0.0.1:0"}
        if funnels is not None:
            cfg["funnels"] = funnels
        cfg.update(engine)
        self.cfg = cfg
        self.config_path = os.path.join(self.tmp, "config.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f, indent=1)
        self.create_topics([(self.input, partitions)] +
                           [(v, partitions) for v in self.topics.values()])
        self.redis = (RedisCluster.from_url(self.redis_url) if self.on_cluster
                      else redis.Redis.from_url(self.redis_url))
        self.procs = []

    def use_redis(self, port, http_port):
        """Points this stack's daemons at the test's own redis-server on `port` and their
        endpoint at `http_port`, and writes the config again (for tests that stop, freeze or
        slow the Redis they run on)."""
        self.redis = redis.Redis(port=port)
        self.on_cluster = False
        self.cfg["redis"].pop("cluster", None)
        self.cfg["redis"]["url"] = f"redis://127.0.0.1:{port}/0"
        self.cfg["http"] = {"listen": f"127.0.0.1:{http_port}"}
        with open(self.config_path, "w") as f:
            json.dump(self.cfg, f, indent=1)

    def create_topics(self, specs):
        admin = AdminClient({"bootstrap.servers": self.brokers})
        fs = admin.create_topics([NewTopic(n, p, 1) for n, p in specs])
        for f in fs.values():
            f.result(30)
        # wait until every partition has a leader, or the first produce may stall
        deadline = time.time() + 30
        while time.time() < deadline:
            md = admin.list_topics(timeout=10)
            if all(n in md.topics and len(md.topics[n].partitions) == p and
                   all(pp.leader >= 0 for pp in md.topics[n].partitions.values())
                   for n, p in specs):
                return
            time.sleep(0.2)
        raise RuntimeError("topics did not get leaders")

    # --- the daemon ---
    def start(self, *extra, unset=(), wrapper=()):
        """Starts funneld on this stack's config; `unset` drops environment variables (the
        FUNNELD_* overrides would otherwise win over the config); `wrapper` is a command
        funneld runs under (e.g. valgrind and its options)."""
        log = open(os.path.join(self.tmp, f"funneld-{len(self.procs)}.log"), "w")
        env = {k: v for k, v in os.environ.items() if k not in unset}
        p = subprocess.Popen([*wrapper, os.path.join(build_dir(), "funneld"), "-c",
                              self.config_path, *extra], stderr=log, stdout=log, env=env)
        p.log_path = log.name
        self.procs.append(p)
        return p

    def replay_config(self, partitions):
        """Points start() at a config that replays the same input from the beginning in a
        new group, key prefix and retargeting topic (created with `partitions`), for
        comparing a run with an uninterrupted one. Returns (group, retargeting topic)."""
        cfg = json.loads(json.dumps(self.cfg))
        group, topic = self.name + "-replay", self.topics["retargeting"] + ".replay"
        cfg["kafka"]["group_id"] = group
        cfg["redis"]["key_prefix"] = self.name + "-r"
        cfg["kafka"]["topics"] = dict(cfg["kafka"]["topics"], retargeting=topic)
        self.create_topics([(topic, partitions)])
        self.config_path = os.path.join(self.tmp, "replay.json")
        with open(self.config_path, "w") as f:
            json.dump(cfg, f)
        return group, topic

    def stop(self, p, sig=signal.SIGTERM, timeout=60):
        p.send_signal(sig)
        return p.wait(timeout)

    def log_of(self, p):
        with open(p.log_path) as f:
            return f.read()

    # --- Kafka ---
    def produce(self, records, topic=None):
        """records: list of (key or None, value bytes/str) or dicts (JSON, key = lead_id)."""
        prod = Producer({"bootstrap.servers": self.brokers, "linger.ms": 5,
                         "enable.idempotence": True})
        for r in records:
            if isinstance(r, dict):
                key, value = str(r.get("lead_id", "")).encode(), json.dumps(r).encode()
            else:
                key, value = r
                if isinstance(value, str):
                    value = value.encode()
                if isinstance(key, str):
                    key = key.encode()
            while True:
                try:
                    prod.produce(topic or self.input, value=value, key=key)
                    break
                except BufferError:
                    prod.poll(0.1)
            prod.poll(0)
        assert prod.flush(60) == 0, "input not fully produced"

    def consume(self, topic, expect=None, idle=4.0, timeout=120):
        """Reads topic from the beginning until `expect` messages arrived and nothing more
        came for `idle` seconds (or, without expect, until it is quiet for `idle`)."""
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": "reader-" + uuid.uuid4().hex,
                      "auto.offset.reset": "earliest", "enable.auto.commit": False})
        c.subscribe([topic])
        out, last, start = [], time.time(), time.time()
        while time.time() - start < timeout:
            m = c.poll(0.5)
            if m is None:
                if time.time() - last > idle and (expect is None or len(out) >= expect):
                    break
                continue
            if m.error():
                continue
            out.append(m)
            last = time.time()
        c.close()
        return out

    def read_all(self, topic, timeout=120):
        """Everything in topic now, from the beginning up to each partition's end as it is at
        the call (for outputs of a daemon that has stopped): no consumer group and no wait
        for quiet, unlike consume()."""
        from confluent_kafka import OFFSET_BEGINNING, TopicPartition
        c = Consumer({"bootstrap.servers": self.brokers, "group.id": "reader-" + uuid.uuid4().hex,
                      "enable.auto.commit": False})
        try:
            md = c.list_topics(topic, timeout=10)
            ends = {}
            for p in md.topics[topic].partitions:
                lo, hi = watermarks(c, TopicPartition(topic, p))
                if hi > lo:
                    ends[p] = hi
            c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in ends])
            out, deadline = [], time.time() + timeout
            while ends and time.time() < deadline:
                m = c.poll(0.5)
                if m is None or m.error():
                    continue
                out.append(m)
                if m.offset() + 1 >= ends.get(m.partition(), 0):
                    ends.pop(m.partition(), None)
            if ends:
                raise RuntimeError(f"{topic}: partitions {sorted(ends)} not read to their end")
            return out
        finally:
            c.close()

    def transitions(self, **kw):
        return [json.loads(m.value()) for m in self.consume(self.topics["transitions"], **kw)]

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def check_backend(st, check):
    """Where the stack ran: on the cluster (e2e.on-cluster.*), its keys must be on every
    master, which a daemon that quietly talked to one node could not do; on the single
    redis-server, that its keys are there."""
    if st.on_cluster:
        per = [sum(1 for _ in n.redis_connection.scan_iter(f"{st.name}:*", count=1000))
               for n in st.redis.get_primaries()]
        check.true(len(per) >= 3 and all(per), f"keys on every master of the cluster ({per})")
    else:
        check.true(any(True for _ in st.redis.scan_iter(f"{st.name}:*", count=1000)),
                   "keys in the redis-server")


def ts(i, base=1795342500000):
    """Event time i seconds after a fixed instant, as RFC 3339 text."""
    ms = base + i * 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def ev(lead, eid, t, channel, type_, **extra):
    e = {"event_id": eid, "lead_id": lead, "ts": t, "channel": channel, "type": type_}
    e.update(extra)
    return e


class Check:
    """Collects failures so one run reports all of them; exit code for ctest."""

    def __init__(self, name):
        self.name, self.n, self.failed = name, 0, 0

    def eq(self, got, want, what):
        self.n += 1
        if got != want:
            self.failed += 1
            print(f"FAIL {what}: got {got!r}, want {want!r}", flush=True)

    def true(self, cond, what):
        self.eq(bool(cond), True, what)

    def done(self):
        print(f"{self.name}: {self.n} checks, {self.failed} failed")
        if self.failed and STACK_DIRS:
            print("daemon logs kept in " + " ".join(STACK_DIRS))
        elif not self.failed:
            for d in STACK_DIRS:
                shutil.rmtree(d, ignore_errors=True)
        sys.exit(1 if self.failed else 0)


def gen_stream(n, leads, seed=1, dup_rate=0.01, bad_rate=0.005, base=1795000000000):
    """A deterministic realistic stream: leads walk the demo b2b funnel with touches between
    stages, drop off, get lost or convert; some messages are duplicated or malformed.
    Returns a list of (key bytes, value bytes)."""
    import random
    rnd = random.Random(seed)
    stage_types = [["page_view", "ad_click"], ["email_click", "content_download"],
                   ["demo_request", "trial_start"], ["checkout_start", "deal_stage"],
                   ["purchase"]]
    touches = [("email", "email_open"), ("web", "page_view"), ("social", "post_like"),
               ("ads", "impression")]
    state = {}
    out = []
    seq = 0
    while len(out) < n:
        lid = "L-%06d" % rnd.randrange(leads)
        st = state.setdefault(lid, {"stage": -1, "t": base + rnd.randrange(86400000), "n": 0,
                                    "done": False})
        st["t"] += rnd.randrange(1000, 3600000)
        st["n"] += 1
        seq += 1
        e = {"event_id": "e-%d" % st["n"], "lead_id": lid, "ts": st["t"]}
        r = rnd.random()
        if st["done"] or r < 0.55:
            ch, ty = rnd.choice(touches)
        elif r < 0.58:
            ch, ty = "crm", "deal_lost"
            st["done"] = True
        else:
            nxt = min(st["stage"] + 1 + (1 if rnd.random() < 0.1 else 0), 4)
            ty = rnd.choice(stage_types[nxt])
            ch = "crm" if ty == "deal_stage" else rnd.choice(["web", "email", "ads"])
            st["stage"] = nxt
            st["done"] = nxt == 4
        e.update({"channel": ch, "type": ty})
        props = {"campaign": rnd.choice(["spring", "nurture-1", "nurture-2", "retarget-a"])}
        if ty == "deal_stage":
            props["stage"] = "proposal"
        if ty in ("demo_request", "purchase", "deal_stage"):
            props["value"] = rnd.randrange(500, 50000)
        e["props"] = props
        if rnd.random() < 0.2:
            e["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(e["ts"] // 1000)) + \
                ".%03dZ" % (e["ts"] % 1000)
        raw = json.dumps(e).encode()
        if rnd.random() < bad_rate:
            raw = raw[: len(raw) // 2]  # truncated
        out.append((lid.encode(), raw))
        if rnd.random() < dup_rate and len(out) < n:
            out.append((lid.encode(), raw))
    return out[:n]


def watermarks(c, tp, timeout=30):
    """A partition's low and high offsets, asked again while the broker answers that it is
    not (yet) the partition's leader: a topic just created, or a leader just moved, answers
    that for a moment, and a test must not fail on it."""
    from confluent_kafka import KafkaException
    deadline = time.time() + timeout
    while True:
        try:
            return c.get_watermark_offsets(tp, timeout=10, cached=False)
        except KafkaException:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


def committed(c, parts, timeout=30):
    """A group's committed offsets of parts, asked again while the read fails: a group's
    coordinator is found, or moves, after __consumer_offsets' leaders settle (the broker
    answers NOT_COORDINATOR meanwhile), and a test must not fail on that moment. Any error
    is asked again; one that lasts is raised after timeout seconds."""
    from confluent_kafka import KafkaException
    deadline = time.time() + timeout
    while True:
        try:
            return c.committed(parts, timeout=10)
        except KafkaException:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


class LagMeter:
    """group_lag() with one consumer kept open, so that a call takes milliseconds (for tests
    that act at a given point of a group's progress); close() it after. complete=True: the
    topic gets no more input, so its ends are read once and a call is one request."""

    def __init__(self, brokers, group, topic, complete=False):
        from confluent_kafka import TopicPartition
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": group,
                           "enable.auto.commit": False})
        md = self.c.list_topics(topic, timeout=10)
        self.parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
        self.ends = None
        if complete:
            self.ends = {tp.partition: watermarks(self.c, tp) for tp in self.parts}

    def __call__(self):
        lag = 0
        for tp in committed(self.c, self.parts):
            if self.ends:
                lo, hi = self.ends[tp.partition]
            else:
                lo, hi = watermarks(self.c, tp)
            lag += hi - (tp.offset if tp.offset >= 0 else lo)
        return lag

    def close(self):
        self.c.close()


class Tail:
    """A reader of one topic from its beginning, kept open, for tests that wait for a given
    output instead of sleeping (a sleep long enough on an idle machine is too short on a
    loaded one); close() it after."""

    def __init__(self, brokers, topic):
        self.c = Consumer({"bootstrap.servers": brokers, "group.id": "tail-" + uuid.uuid4().hex,
                           "auto.offset.reset": "earliest", "enable.auto.commit": False})
        self.c.subscribe([topic])
        self.values = []  # every message value read so far, in arrival order

    def until(self, cond, timeout=60):
        """Reads until cond(self.values) is true (True) or timeout seconds passed (False)."""
        deadline = time.time() + timeout
        while not cond(self.values):
            if time.time() >= deadline:
                return False
            m = self.c.poll(0.3)
            if m is not None and not m.error():
                self.values.append(m.value())
        return True

    def close(self):
        self.c.close()


def group_lag(brokers, group, topic):
    """Messages in topic not yet committed by group (all of them if it has no commits)."""
    meter = LagMeter(brokers, group, topic)
    try:
        return meter()
    finally:
        meter.close()


def free_port():
    """A TCP port free on loopback right now."""
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_for(cond, timeout, every=0.3):
    """Polls cond every `every` seconds until it is true (True) or timeout seconds passed
    (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(every)
    return False


def wait_drained(st, timeout=600):
    """Waits until the daemon's group has committed everything in the input topic."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        lag = group_lag(st.brokers, st.name, st.input)
        if lag == 0:
            return True
        time.sleep(1)
    return False


def http_get(port, path):
    """(status, body) of GET path on the daemon's HTTP endpoint; (None, error) if it did not
    answer."""
    import urllib.error
    import urllib.request
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError as e:
        return None, str(e)


def parse_metrics(text):
    """Prometheus text as {series: value}."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def metrics(port):
    """GET /metrics as {series: value}; empty if it did not answer."""
    code, text = http_get(port, "/metrics")
    return parse_metrics(text) if code == 200 else {}


def start_redis(port, data, *args):
    """A private redis-server on loopback port `port` with its files in `data` (no
    persistence unless args ask for it); the caller stops it."""
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", data, *args],
                         stdout=subprocess.DEVNULL)
    r = redis.Redis(port=port)
    if not wait_for(lambda: _pings(r), 20):
        raise RuntimeError(f"redis-server on {port} did not start")
    return p


def _pings(r):
    try:
        return r.ping()
    except redis.exceptions.RedisError:
        return False


def produce_paced(st, records, rate):
    """Produces (key, value) records to st's input at `rate` messages a second (a stream that
    is still arriving while a test breaks something)."""
    prod = Producer({"bootstrap.servers": st.brokers, "linger.ms": 5,
                     "enable.idempotence": True})
    start = time.time()
    for i, (key, value) in enumerate(records):
        ahead = i / rate - (time.time() - start)
        if ahead > 0:
            time.sleep(ahead)
        while True:
            try:
                prod.produce(st.input, key=key, value=value)
                break
            except BufferError:
                prod.poll(0.1)
        prod.poll(0)
    assert prod.flush(120) == 0, "input not fully produced"


def due_timers(r, key, bound):
    """How many timers of the zset `key` are due at or before `bound`. A member's score is a
    lower bound (daemon/timers/timer.lua: a step that moves a pending timer later writes the
    lead's field only); the field's due time is the timer's. A member whose field is gone is
    counted: the next fire call removes it. A member names its lead by the lead key's tail
    (in the zset's shard), or by the whole key when written before that (timer.lua)."""
    n = 0
    base = key.decode() if isinstance(key, bytes) else key
    base = base[: base.rindex(":due:") + 1]
    for m in r.zrangebyscore(key, "-inf", bound):
        lead, f, reason = m.decode().rsplit("|", 2)
        if ":" not in lead:
            lead = f"{base}lead:{lead}"
        v = r.hget(lead, f"{f}|t|{reason}")
        n += v is None or int(v.split(b"|", 1)[0]) <= bound
    return n


def timers_settled(st, wall_clock=True, fired=None):
    """True when nothing due is left unfired and every fired trigger was acknowledged: every
    outbox empty (an entry a killed daemon had leased is handed out again when its lease
    runs out) and, on the wall clock, no due timer at or before now. On the event clock
    (due times are compared with each partition's event time, not known here) it waits
    instead until the fired count holds still for 1.5 s with the outboxes empty, or, when
    `fired` is given (a reference run's fired_count of the same stream), until it reaches
    that: a daemon starved or blocked for a moment must not pass for one that is done."""
    def look():
        now = int(time.time() * 1000)
        for k in st.redis.scan_iter(f"{st.name}:*", count=1000):
            name = k.decode()
            if name.endswith(":outbox") and st.redis.hlen(k):
                return None
            if wall_clock and ":due:" in name and st.redis.zcount(k, "-inf", now):
                return None
        return 0 if wall_clock else fired_count(st)

    first = look()
    if first is None or wall_clock:
        return first is not None
    if fired is not None:
        return first >= fired
    time.sleep(1.5)
    return look() == first


def fired_count(st):
    """How many triggers st's daemons fired (the shards' |trig| counters)."""
    return sum(int(v) for k in st.redis.scan_iter(f"{st.name}:*:stats", count=1000)
               for f, v in st.redis.hgetall(k).items() if b"|trig|" in f)


def outputs(st, topic, check, label, exact=True):
    """The events on st's `topic` (a key of st.topics) by id, in the order of their first
    appearance, with emitted_at dropped, and how many deliveries repeated an id (read to the
    topic's end: call it once the daemons stopped). Checks that every repeat is an exact
    copy, unless not `exact` (after Redis lost its data, an event whose output was sent but
    whose offset was not yet committed is applied again to a lead that starts over: the same
    id, other figures)."""
    by_id, repeats = {}, 0
    for m in st.read_all(st.topics[topic]):
        e = json.loads(m.value())
        e.pop("emitted_at")
        if e["id"] in by_id:
            repeats += 1
            if exact:
                check.eq(e, by_id[e["id"]], f"{label}: a repeated {topic} event is an exact copy")
            continue
        by_id[e["id"]] = e
    return by_id, repeats


def triggers(st, check, label, exact=True):
    """outputs() of the retargeting topic, also checking that no trigger fired twice: one id
    per (funnel, lead, reason, cause event)."""
    by_id, repeats = outputs(st, "retargeting", check, label, exact)
    fired = {}
    for e in by_id.values():
        fired.setdefault((e["funnel"], e["lead_id"], e["reason"], e["cause_event_id"]),
                         []).append(e["id"])
    twice = [k for k, ids in fired.items() if len(ids) > 1]
    check.eq(twice[:3], [], f"{label}: no trigger fired twice (one id per funnel, lead, reason, "
             "cause)")
    return by_id, repeats


def redis_state(st, client=None):
    """Every lead hash and every counter hash (the shards' stats, the cost figures' and
    breakdowns' hour and minute hashes) of st's key prefix, keyed and valued without
    the prefix (timer fields name their zset), from `client` or the shared Redis.

    Leaves out a lead's `tn`, a cache of a lower bound of its pending due times: whether a
    due timer was fired by the clock's tick or by the lead's next event depends on how far
    behind the input the daemon was, and only the second path tidies the cache. Both fire
    the same trigger and leave the same timer fields. Leaves out `sx` too, the time the
    lead's seen set expires, which is bookkeeping of a key's TTL (TTLs are not compared
    either): it is the clock of the step that last moved it, the wall clock's (different in
    every run), or on the event clock the partition's, which after a restart or a rebalance
    can stand elsewhere for the same event. And `w`, the hash's version (moved on by every
    write, started from the clock of the step that made the hash: daemon/state/README.md),
    which tells whether the hash changed, not what it holds."""
    r = client or st.redis
    state = {}
    own = st.name.encode()
    for k in r.scan_iter(f"{st.name}:*", count=1000):
        name = k.decode()[len(st.name):]
        if ":lead:" in name or name.endswith(":stats") or \
                any(f":{k}:" in name for k in ("mkt", "mkm", "bfl", "bfm")):
            state[name] = {f: v.replace(own, b"<prefix>") for f, v in r.hgetall(k).items()
                           if f not in (b"tn", b"sx", b"w")}
    return state



def short_timer_funnels(stale="2h", within="1h"):
    """The demo config's funnels with every stale_after and retarget window shortened, so
    that timers fall due within the hours a gen_stream spans, on the event clock."""
    with open(os.path.join(REPO, "deploy/config/demo.json")) as f:
        funnels = json.load(f)["funnels"]
    for fn in funnels:
        for s in fn["stages"]:
            if "stale_after" in s:
                s["stale_after"] = stale
        for r in fn.get("retarget", []):
            r["within"] = within
    return funnels


def stream_through_outage(st, hport, stream, rate, check, label, outage=None, fired=None):
    """Feeds `stream` to st's input at `rate` a second while the daemon (HTTP on hport) runs,
    and waits until it drained the input and its timers settled. outage = (at, seconds,
    away, back, while_away): `at` seconds into the stream away() takes a service away;
    /readyz must turn 503 within `seconds`; while_away() checks more; back() restores it
    `seconds` after it went, and /readyz must answer 200 again. fired: how many triggers a
    reference run of the same stream fired (timers_settled). Returns figures."""
    fig = {}
    ready = lambda code: lambda: http_get(hport, "/readyz")[0] == code  # noqa: E731
    check.true(wait_for(ready(200), 60), f"{label}: ready before the stream")
    feeder = threading.Thread(target=produce_paced, args=(st, stream, rate))
    feeder.start()
    if outage:
        at, seconds, away, back, while_away = outage
        time.sleep(at)
        went = time.time()
        away()
        check.true(wait_for(ready(503), seconds), f"{label}: /readyz 503 while it is away")
        while_away()
        time.sleep(max(0.0, went + seconds - time.time()))
        back()
        returned = time.time()
        fig["away_s"] = round(returned - went, 1)
        check.true(wait_for(ready(200), 120), f"{label}: ready again once it is back")
        fig["ready_after_s"] = round(time.time() - returned, 1)
    feeder.join()
    check.true(wait_drained(st, timeout=300), f"{label}: drains the input")
    check.true(wait_for(lambda: timers_settled(st, st.cfg.get("clock") != "event", fired), 120),
               f"{label}: fires what fell due")
    if outage:
        fig["settled_after_s"] = round(time.time() - returned, 1)
    return fig


def kafka_sh(run_dir, *args):
    """Runs deploy/kafka.sh with its state in run_dir (a broker of the test's own); returns
    its stdout (`export NAME=value` lines for start)."""
    env = dict(os.environ, FUNNELD_RUN_DIR=run_dir)
    out = subprocess.run([os.path.join(REPO, "deploy/kafka.sh"), *args], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"kafka.sh {' '.join(args)} failed: {out.stderr[-2000:]}")
    return out.stdout


def start_private_broker(run_dir):
    """Starts a broker of the test's own (state in run_dir) and points this process's
    FUNNELD_BROKERS (and the SASL/TLS listener variables) at it, so that Stacks made from
    now on and the daemons they start use it. Stop it with kafka_sh(run_dir, "stop")."""
    for line in kafka_sh(run_dir, "start").splitlines():
        if line.startswith("export ") and "=" in line:
            name, value = line[len("export "):].split("=", 1)
            os.environ[name] = value.strip("'\"")


def http_port(st, p, timeout=30):
    """A daemon's endpoint port, from the log line naming it (http.listen is 127.0.0.1:0)."""
    found = []

    def look():
        m = re.search(r'"serving /metrics[^"]* on 127\.0\.0\.1:(\d+)"', st.log_of(p))
        if m:
            found.append(int(m.group(1)))
        return bool(m)
    return found[0] if wait_for(look, timeout) else None


def ready(port):
    return http_get(port, "/readyz")[0] == 200


def run_outputs(st, check, label):
    """A run's outputs to compare with a reference's: transitions by id, each (lead, funnel)'s
    ids in order of first appearance, how many deliveries repeated an id, triggers by id, and
    the set of dead letters (read once the daemons stopped)."""
    by_id, repeats = outputs(st, "transitions", check, label)
    order = {}
    for e in by_id.values():
        order.setdefault((e["lead_id"], e["funnel"]), []).append(e["id"])
    trig, _ = triggers(st, check, label)
    dlq = {bytes(m.value() or b"") for m in st.read_all(st.topics["dlq"])}
    return by_id, order, repeats, trig, dlq


def where_triggers(st, events, most=10):
    """Lines saying where each of these triggers (events of the retargeting topic that a run
    did not emit) is in st's Redis: its timer field and zset member if still armed, an
    outbox entry if fired and not acknowledged, or neither. For a failing test's output."""
    if not events:
        return []
    r = st.redis
    want = {e["lead_id"] for e in events[:most]}
    leads = {}
    for k in r.scan_iter(f"{st.name}:*:lead:*", count=1000):
        lid = r.hget(k, "id")
        if lid is not None and lid.decode() in want:
            leads[lid.decode()] = k.decode()
    outbox = {}
    for k in r.scan_iter(f"{st.name}:*:outbox", count=1000):
        for f, v in r.hgetall(k).items():
            outbox[f.decode()] = v.decode(errors="replace")
    lines = [f"{len(events)} trigger(s) missing; the first {min(most, len(events))}:"]
    for e in events[:most]:
        key = leads.get(e["lead_id"])
        what = (f"{e['funnel']} {e['lead_id']} {e['reason']} at {e['at']} "
                f"cause {e['cause_event_id']}")
        if not key:
            lines.append(f"  {what}: no lead hash")
            continue
        shard = key[len(st.name) + 1:key.index(":lead:")]
        tail = key[key.index(":lead:") + len(":lead:"):]
        timer = r.hget(key, f"{e['funnel']}|t|{e['reason']}")
        pos = (r.hget(key, f"{e['funnel']}|p") or b"").decode(errors="replace")
        place = "timer field absent"
        if timer is not None:
            parts = timer.decode().split("|")
            zset = f"{st.name}:{shard}:due:{parts[2]}" if len(parts) > 2 else "?"
            score = r.zscore(zset, f"{tail}|{e['funnel']}|{e['reason']}")
            place = f"timer {timer.decode()}, member score in {zset}: {score}"
        held = [f for f, v in outbox.items() if e["lead_id"] in v]
        lines.append(f"  {what}: {place}; position {pos}; outbox entries {held[:3]}")
    return lines


def check_same_outputs(check, label, want, got):
    """That a run's run_outputs() equal a reference's: every transition and trigger id present
    (nothing lost), none invented, the same contents, each lead's transitions in the same
    order, the same dead letters."""
    w_by, w_order, _, w_trig, w_dlq = want
    g_by, g_order, _, g_trig, g_dlq = got
    for what, w, g in (("transition", w_by, g_by), ("trigger", w_trig, g_trig)):
        lost, invented = sorted(set(w) - set(g)), sorted(set(g) - set(w))
        check.eq((len(lost), lost[:5]), (0, []), f"{label}: no {what} lost (how many, which)")
        check.eq((len(invented), invented[:5]), (0, []), f"{label}: no {what} invented")
        check.eq([i for i in w if g.get(i, w[i]) != w[i]][:5], [], f"{label}: identical {what}s")
    bad = [k for k in w_order if g_order.get(k) != w_order[k]]
    check.eq((len(bad), bad[:3]), (0, []), f"{label}: each lead's transitions in the same order")
    check.eq(g_dlq, w_dlq, f"{label}: the same dead letters")


def deadline(seconds):
    """SIGTERM or `seconds` passing raise SystemExit, so that a test's finally still stops
    what it started; returns a function that cancels the alarm."""
    def give_up(signum, frame):
        raise SystemExit(f"stopped by signal {signum}: cleaning up")
    signal.signal(signal.SIGTERM, give_up)
    signal.signal(signal.SIGALRM, give_up)
    signal.alarm(seconds)
    return lambda: signal.alarm(0)


def group_under_stream(st, n, stream, rate, check, label, after_s):
    """n daemons on st in one group, each assigned and ready, then `stream` produced at `rate`
    from a thread that has been running for after_s seconds when this returns (the moment to
    break something): (daemons, their endpoint ports, the feeding thread)."""
    daemons = [st.start() for _ in range(n)]
    ports = [http_port(st, p) for p in daemons]
    check.true(wait_for(lambda: all("assigned" in st.log_of(p) for p in daemons), 60),
               f"{label}: every member got partitions")
    check.true(wait_for(lambda: all(ready(port) for port in ports), 60),
               f"{label}: every member ready before the stream")
    feeder = threading.Thread(target=produce_paced, args=(st, stream, rate))
    feeder.start()
    time.sleep(after_s)
    return daemons, ports, feeder
