"""bench_tools.py — the Kafka/Redis bookkeeping tests/bench/run.sh needs around the three
measurements (funneld, the Redis ceiling, the Kafka ceiling): creating topics, writing the
bench config, waiting for a consumer group to commit the whole input, reading output
counts and timestamps, Redis command statistics, the latency of fixed-rate mode, and the
final summary table. It measures nothing itself while the others run.

Runs on Debian's /usr/bin/python3 (python3-confluent-kafka, python3-redis).

  bench_tools.py topics BROKERS NAME:PARTS[:logappend] ...
  bench_tools.py config DEMO.json OUT.json BROKERS REDIS_URL PREFIX GROUP INPUT TOPIC_PREFIX
  bench_tools.py drained BROKERS GROUP TOPIC TIMEOUT_S      -> prints the wall time (epoch s)
  bench_tools.py wait-log FILE TEXT TIMEOUT_S               -> prints the line's ts (epoch s)
  bench_tools.py outputs BROKERS TRANSITIONS DLQ            -> key=value lines
  bench_tools.py redis-stats REDIS_URL                      -> JSON snapshot
  bench_tools.py redis-diff BEFORE.json AFTER.json EVENTS   -> key=value lines
  bench_tools.py fire-calls BEFORE.json AFTER.json CONFIG   -> key=value lines
  bench_tools.py timer-stats REDIS_URL CONFIG TOPIC PARTS FAR_MS -> key=value lines
  bench_tools.py redis-del-prefix REDIS_URL PREFIX          -> key=value lines
  bench_tools.py redis-slowlog REDIS_URL reset|read         -> key=value lines
  bench_tools.py latency BROKERS INPUT TRANSITIONS [WARMUP_S] -> key=value lines
  bench_tools.py stoplog FILE                               -> key=value lines
  bench_tools.py scrape FUNNELD.log                         -> funneld's /metrics text
  bench_tools.py hist-quantiles METRICS.txt [BASE.txt]      -> key=value lines
  bench_tools.py summary RESULTS.env                        -> the table
"""
import datetime
import json
import os
import re
import sys
import time
import uuid

from confluent_kafka import Consumer, KafkaException, TopicPartition, TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import AdminClient, NewTopic


def die(msg):
    sys.exit(f"bench_tools.py: {msg}")


def kv(**items):
    for k, v in items.items():
        print(f"{k}={v}")


def reader(brokers, **extra):
    conf = {"bootstrap.servers": brokers, "group.id": "bench-reader-" + uuid.uuid4().hex,
            "enable.auto.commit": False, "auto.offset.reset": "earliest",
            "enable.partition.eof": False}
    conf.update(extra)
    return Consumer(conf)


def partitions(c, topic):
    md = c.list_topics(topic, timeout=10)
    t = md.topics.get(topic)
    if t is None or t.error is not None:
        die(f"topic {topic}: {t.error if t else 'missing'}")
    return sorted(t.partitions)


# ------------------------------------------------------------------ topics / config
def cmd_topics(brokers, *specs):
    admin = AdminClient({"bootstrap.servers": brokers})
    want = []
    for s in specs:
        parts = s.split(":")
        cfg = {}
        if len(parts) > 2 and parts[2] == "logappend":
            # broker append time on both sides: latency is from "input available in Kafka"
            # to "output available in Kafka", whatever the producers' batching
            cfg["message.timestamp.type"] = "LogAppendTime"
        want.append(NewTopic(parts[0], int(parts[1]), 1, config=cfg))
    for name, f in admin.create_topics(want).items():
        f.result(30)
    deadline = time.time() + 30
    names = {t.topic: t.num_partitions for t in want}
    while time.time() < deadline:
        md = admin.list_topics(timeout=10)
        if all(n in md.topics and len(md.topics[n].partitions) == p and
               all(pp.leader >= 0 for pp in md.topics[n].partitions.values())
               for n, p in names.items()):
            return
        time.sleep(0.2)
    die("topics did not get leaders")


def cmd_config(demo, out, brokers, redis_url, prefix, group, input_topic, tprefix, cluster=""):
    with open(demo) as f:
        cfg = json.load(f)
    cfg["kafka"].update({
        "brokers": brokers, "group_id": group, "input_topics": [input_topic],
        "topics": {k: f"{tprefix}.{k}" for k in ("transitions", "retargeting", "bottlenecks",
                                                  "snapshots", "dlq")}})
    # BENCH_KAFKA_PROPS="key=value,..." (run.sh): librdkafka properties to try, e.g. batching
    items = [i.strip() for i in os.environ.get("BENCH_KAFKA_PROPS", "").split(",") if i.strip()]
    bad = [i for i in items if "=" not in i or not i.split("=", 1)[0].strip()]
    if bad:
        die(f"BENCH_KAFKA_PROPS: expected key=value items, got {bad}")
    cfg["kafka"]["properties"] = {k.strip(): v.strip() for k, v in
                                  (i.split("=", 1) for i in items)}
    # BENCH_MARKETING=on (run.sh) keeps the demo's marketing analytics (multi-touch
    # attribution, entry cohorts); full adds the markov model and breakdowns by channel and
    # campaign to every funnel with attribution; off (the default) takes them out, so the
    # plain path and the peer's semantics stay comparable
    marketing = os.environ.get("BENCH_MARKETING", "off")
    if marketing not in ("on", "off", "full"):
        die(f"BENCH_MARKETING: on, full or off, got {marketing!r}")
    for f in cfg["funnels"]:
        if marketing == "off":
            f.pop("attribution", None)
            f["cohorts"] = 0
        elif marketing == "full" and "attribution" in f:
            f["attribution"]["models"].append("markov")
            f["breakdowns"] = ["channel", "campaign"]
    cfg["redis"] = {"url": redis_url, "key_prefix": prefix}
    # BENCH_FAST_PATH=off (run.sh): every event by the whole Lua step (redis.fast_path false)
    fast = os.environ.get("BENCH_FAST_PATH", "on")
    if fast not in ("on", "off"):
        die(f"BENCH_FAST_PATH: on or off, got {fast!r}")
    if fast == "off":
        cfg["redis"]["fast_path"] = False
    if cluster == "cluster":
        cfg["redis"]["cluster"] = True
    cfg["http"] = {"listen": "127.0.0.1:0"}
    with open(out, "w") as f:
        json.dump(cfg, f, indent=1)


# ------------------------------------------------------------------ progress
def cmd_drained(brokers, group, topic, timeout):
    """Waits until group's committed offsets reach the topic's end; prints when (epoch s)."""
    c = reader(brokers, **{"group.id": group})
    parts = [TopicPartition(topic, p) for p in partitions(c, topic)]
    high = {}
    for tp in parts:
        high[tp.partition] = c.get_watermark_offsets(tp, timeout=10)[1]
    deadline = time.time() + float(timeout)
    last_print = 0
    while True:
        now = time.time()
        try:
            committed = c.committed(parts, timeout=10)
        except KafkaException as e:  # the group's coordinator not found yet, or moving
            if now > deadline:
                die(f"group {group}: committed offsets unreadable: {e}")
            time.sleep(0.2)
            continue
        lag = sum(high[tp.partition] - (tp.offset if tp.offset >= 0 else 0) for tp in committed)
        if lag <= 0:
            print(f"{now:.3f}")
            c.close()
            return
        if now > deadline:
            c.close()
            die(f"group {group} still {lag} behind on {topic} after {timeout} s")
        if now - last_print > 10:
            print(f"bench_tools.py: {group}: {lag} message(s) to go", file=sys.stderr)
            last_print = now
        time.sleep(0.1)


def log_ts(line):
    try:
        rec = json.loads(line)
    except ValueError:
        return None
    t = datetime.datetime.strptime(rec["ts"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return rec, t.replace(tzinfo=datetime.timezone.utc).timestamp()


def cmd_wait_log(path, text, timeout):
    deadline = time.time() + float(timeout)
    while time.time() < deadline:
        with open(path) as f:
            for line in f:
                r = log_ts(line)
                if r and text in r[0].get("msg", ""):
                    print(f"{r[1]:.3f}")
                    return
        time.sleep(0.05)
    die(f"no '{text}' in {path} after {timeout} s")


def cmd_stoplog(path):
    """The daemon's own counts from its 'stopping:' line."""
    with open(path) as f:
        for line in f:
            r = log_ts(line)
            if not r:
                continue
            m = re.search(r"consumed (\d+), transitions (\d+), duplicates (\d+), "
                          r"dead letters (\d+)", r[0].get("msg", ""))
            if m:
                kv(consumed=m[1], transitions=m[2], duplicates=m[3], dead_letters=m[4])
                return
    die(f"no 'stopping:' line in {path}")


# ------------------------------------------------------------------ outputs
def edge_timestamps(c, topic):
    """(messages, first ts, last ts) over all partitions, timestamps in epoch ms."""
    first, last, total = None, None, 0
    for p in partitions(c, topic):
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        total += hi - lo
        if hi <= lo:
            continue
        for off in (lo, hi - 1):
            c.assign([TopicPartition(topic, p, off)])
            deadline = time.time() + 10
            while time.time() < deadline:
                m = c.poll(0.5)
                if m is not None and not m.error():
                    ts = m.timestamp()[1]
                    first = ts if first is None else min(first, ts)
                    last = ts if last is None else max(last, ts)
                    break
    return total, first, last


def consume_all(c, topic, limit=None):
    parts = partitions(c, topic)
    ends, need = {}, 0
    for p in parts:
        lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        ends[p] = hi
        need += hi - lo
    if limit is not None:
        need = min(need, limit)
    c.assign([TopicPartition(topic, p, 0) for p in parts])
    out, idle_since = [], time.time()
    while len(out) < need and time.time() - idle_since < 15:
        for m in c.consume(10000, 0.5):
            if m.error():
                continue
            out.append(m)
            idle_since = time.time()
    return out


def cmd_outputs(brokers, transitions, dlq):
    c = reader(brokers)
    n, first, last = edge_timestamps(c, transitions)
    sample = consume_all(c, transitions, limit=20000)
    avg = sum(len(m.value() or b"") for m in sample) / len(sample) if sample else 0
    reasons = {}
    dl = consume_all(c, dlq)
    for m in dl:
        code = dict(m.headers() or []).get("funneld.error", b"?").decode()
        reasons[code] = reasons.get(code, 0) + 1
    c.close()
    kv(transitions=n, out_first_ms=first or 0, out_last_ms=last or 0,
       transition_avg_bytes=round(avg), dlq=len(dl),
       dlq_reasons=",".join(f"{k}:{v}" for k, v in sorted(reasons.items())) or "none",
       dlq_ts_out_of_range=reasons.get("ts_out_of_range", 0))


# ------------------------------------------------------------------ redis
def cmd_redis_stats(url):
    import redis
    r = redis.Redis.from_url(url)
    stats = r.info("commandstats")
    cpu = r.info("cpu")
    print(json.dumps({"calls": {k[len("cmdstat_"):] if k.startswith("cmdstat_") else k:
                                v["calls"] for k, v in stats.items()},
                      "cpu": cpu["used_cpu_user"] + cpu["used_cpu_sys"],
                      "used_memory": r.info("memory")["used_memory"]}))


def cmd_redis_diff(before, after, events):
    with open(before) as f:
        b = json.load(f)
    with open(after) as f:
        a = json.load(f)
    events = int(events)
    delta = {k: v - b["calls"].get(k, 0) for k, v in a["calls"].items() if k != "info"}
    delta = {k: v for k, v in delta.items() if v > 0 and k != "script|load"}
    total = sum(delta.values())
    kv(cmds_per_event=f"{total / events:.3f}",
       redis_cpu_s=f"{a['cpu'] - b['cpu']:.3f}",
       cmds=",".join(f"{k}:{v / events:.3f}" for k, v in
                     sorted(delta.items(), key=lambda x: -x[1])))


def config_shards(path):
    with open(path) as f:
        return int(json.load(f).get("redis", {}).get("shards", 64))


def cmd_fire_calls(before, after, config):
    """The daemon's fire.lua calls between two redis-stats snapshots, told apart from its
    other scripts by the commands only one script calls (Redis 7 counts the commands a
    script calls in commandstats): each step.lua call runs one ZSCORE (the de-duplication
    check), each fire.lua call that looks at a due zset one ZRANGE (its next due time; a
    lease sweep returns before it), each bottleneck evaluation one SET NX lock and then
    one read.lua call per shard. Whatever EVALSHA and FCALL is left over is fire.lua (the
    step goes by FCALL on Redis 7, by EVALSHA where its library cannot be loaded)."""
    with open(before) as f:
        b = json.load(f)
    with open(after) as f:
        a = json.load(f)

    def d(cmd):
        return a["calls"].get(cmd, 0) - b["calls"].get(cmd, 0)

    shards = config_shards(config)
    steps, reads, tick = d("zscore"), d("set") * shards, d("zrange")
    fire = d("evalsha") + d("fcall") - steps - reads
    kv(fire_calls=fire, fire_tick_calls=tick, fire_sweep_calls=fire - tick, steps=steps,
       analytics_reads=reads, used_memory_before=b.get("used_memory", ""),
       used_memory_after=a.get("used_memory", ""))


def cmd_timer_stats(url, config, topic, parts, far_ms):
    """Triggers fired and suppressed (the shard counters), and the timers still pending in
    the zsets of TOPIC's PARTS partitions: all of them, and those due at FAR_MS or later."""
    import redis
    with open(config) as f:
        prefix = json.load(f)["redis"]["key_prefix"]
    shards = config_shards(config)
    r = redis.Redis.from_url(url)
    p = r.pipeline(transaction=False)
    for s in range(shards):
        p.hgetall(f"{prefix}:{{{s}}}:stats")
        for q in range(int(parts)):
            key = f"{prefix}:{{{s}}}:due:{topic}:{q}"
            p.zcard(key)
            p.zcount(key, int(far_ms), "+inf")
    res = p.execute()
    fired = suppressed = pending = far = 0
    i = 0
    for s in range(shards):
        for k, v in res[i].items():
            if b"|trig|" in k:
                fired += int(v)
            elif b"|sup|" in k:
                suppressed += int(v)
        i += 1
        for q in range(int(parts)):
            pending += res[i]
            far += res[i + 1]
            i += 2
    kv(triggers_fired=fired, triggers_suppressed=suppressed, pending=pending, pending_far=far)


def cmd_redis_del_prefix(url, prefix):
    """Deletes every key under PREFIX: (a measurement's keyspace nobody needs any more)."""
    import redis
    r = redis.Redis.from_url(url)
    pattern = re.sub(r"([*?\[\]\\])", r"\\\1", prefix) + ":*"
    n, batch = 0, []
    for k in r.scan_iter(match=pattern, count=1000):
        batch.append(k)
        if len(batch) >= 1000:
            n += r.unlink(*batch)
            batch = []
    if batch:
        n += r.unlink(*batch)
    kv(deleted=n)


# ------------------------------------------------------------------ latency
def pct(sorted_vals, q):
    if not sorted_vals:
        return float("nan")
    i = min(len(sorted_vals) - 1, max(0, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[i]


def cmd_redis_slowlog(url, what):
    """Redis commands that ran 10 ms or longer (its slowlog): a command of a few µs that
    shows there was stalled by the machine, not by its own work."""
    import redis
    r = redis.Redis.from_url(url)
    if what == "reset":
        r.slowlog_reset()
        return
    log = r.slowlog_get(128)  # the newest 128; the count is the whole log's
    kv(slow_cmds=r.slowlog_len(), slow_max_ms=f"{max((e['duration'] for e in log), default=0) / 1000:.1f}",
       slow_at=",".join(f"{e['start_time']}:{e['duration'] // 1000}ms:"
                        f"{e['command'].split()[0].decode(errors='replace')}"
                        for e in sorted(log, key=lambda e: e['start_time'])) or "none")


def cmd_latency(brokers, input_topic, transitions, warmup_s="5"):
    """Output append time − its cause's input append time, per transition. Causes appended
    in the first warmup_s seconds of the input are reported apart: a fresh producer learns
    a new output topic's metadata only on librdkafka's 1 s topic scan, so the very first
    outputs wait up to a second (see the bench report)."""
    c = reader(brokers)
    cause = {}
    ts_types = set()
    for m in consume_all(c, input_topic):
        try:
            e = json.loads(m.value())
            key = (e["lead_id"], e["event_id"])
        except (ValueError, KeyError, TypeError):
            continue
        ts_types.add(m.timestamp()[0])
        cause.setdefault(key, m.timestamp()[1])
    t0 = min(cause.values()) if cause else 0
    cut = t0 + float(warmup_s) * 1000
    lat, warm, unmatched, per_s = [], [], 0, {}
    for m in consume_all(c, transitions):
        ts_types.add(m.timestamp()[0])
        e = json.loads(m.value())
        t_in = cause.get((e.get("lead_id"), e.get("cause_event_id")))
        if t_in is None:
            unmatched += 1
            continue
        d = m.timestamp()[1] - t_in
        (lat if t_in >= cut else warm).append(d)
        if t_in >= cut:
            sec = (t_in - t0) // 1000
            per_s.setdefault(sec, [0, 0])
            per_s[sec][0] += 1
            per_s[sec][1] += d > 25
    c.close()
    # Whether the slow outputs cluster in a few seconds (a stall: GC, fsync, a long script)
    # or spread evenly (queueing) is the first question about a tail.
    slow = sorted(per_s.items(), key=lambda x: -x[1][1])
    worst = ",".join(f"{s}s:{v[1]}/{v[0]}" for s, v in slow[:6] if v[1])
    lat.sort()
    warm.sort()
    every = sorted(lat + warm)
    kv(samples=len(lat), unmatched=unmatched, warmup_s=warmup_s, warmup_samples=len(warm),
       log_append_time=int(ts_types == {TIMESTAMP_LOG_APPEND_TIME}),
       p50_ms=pct(lat, 0.50), p99_ms=pct(lat, 0.99), p999_ms=pct(lat, 0.999),
       max_ms=lat[-1] if lat else "nan",
       mean_ms=f"{sum(lat) / len(lat):.1f}" if lat else "nan",
       warmup_max_ms=warm[-1] if warm else "nan",
       all_p99_ms=pct(every, 0.99), all_p999_ms=pct(every, 0.999),
       all_max_ms=every[-1] if every else "nan",
       seconds=len(per_s), slow_seconds=sum(1 for v in per_s.values() if v[1]),
       worst_seconds=worst or "none")


# ------------------------------------------------------------------ funneld's own view
def cmd_scrape(log):
    """GET /metrics from the funneld whose log is given (it logs the port it bound)."""
    import urllib.request
    with open(log) as f:
        m = re.findall(r"serving /metrics.* on ([0-9.]+):([0-9]+)", f.read())
    if not m:
        die(f"{log}: no 'serving /metrics' line")
    host, port = m[-1]
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=10) as r:
        sys.stdout.write(r.read().decode())


def read_buckets(path):
    buckets = {}
    with open(path) as f:
        for line in f:
            m = re.match(r'funneld_(\w+)_seconds_bucket\{le="([^"]+)"\} (\d+)', line)
            if m:
                buckets.setdefault(m.group(1), []).append((float(m.group(2)), int(m.group(3))))
    return buckets


def cmd_hist_quantiles(path, base_path=None):
    """Upper bucket bounds of p50/p99/p99.9 of funneld's two latency histograms: the Redis
    step round trip, and consumed → done (applied and every output acknowledged). Together
    with the broker-to-broker latency they show where the time goes. With base_path (an
    earlier scrape, e.g. at the end of the warm-up) only what came after it counts."""
    buckets = read_buckets(path)
    base = read_buckets(base_path) if base_path else {}
    for name, b in buckets.items():
        b0 = dict(base.get(name, []))
        buckets[name] = [(le, n - b0.get(le, 0)) for le, n in b]
    for name in ("redis_roundtrip", "end_to_end"):
        b = buckets.get(name)
        if not b or b[-1][1] == 0:
            continue
        total = b[-1][1]
        out = {}
        for q, tag in ((0.5, "p50"), (0.99, "p99"), (0.999, "p999")):
            le = next(le for le, n in b if n >= q * total)
            out[f"{name}_{tag}_le_ms"] = "inf" if le == float("inf") else f"{le * 1000:g}"
        out[f"{name}_count"] = total
        kv(**out)


# ------------------------------------------------------------------ summary
def cmd_summary(path):
    r = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line:
                k, v = line.split("=", 1)
                r[k] = v

    def g(k, default="-"):
        return r.get(k, default)

    def f(k):
        try:
            return float(r[k])
        except (KeyError, ValueError):
            return None

    def num(x, fmt="{:,.0f}"):
        return "-" if x is None else fmt.format(x)

    fe, rc, kc, kc1 = f("funneld_eps"), f("redis_eps"), f("kafka_eps"), f("kafka1_eps")
    rows = [
        ("input", f"{int(f('events') or 0):,} events, {int(f('leads') or 0):,} leads, "
                  f"6 partitions, seed {g('seed')}, dup {g('dup_rate')}, bad {g('bad_rate')}"),
        ("funneld, backlog: events/s (first→last input)",
         f"{num(fe)}  ({num(f('funneld_span_s'), '{:.1f}')} s from partitions assigned to "
         f"the last output)"),
        ("funneld, backlog: events/s incl. start + join",
         f"{num(f('funneld_eps_wall'))}  ({num(f('funneld_wall_s'), '{:.1f}')} s from exec to "
         f"all offsets committed)"),
        ("funneld: peak RSS", f"{num(f('funneld_rss_mb'), '{:.1f}')} MB (VmHWM)"),
        ("funneld: CPU s per million events",
         f"{num(f('funneld_cpu_per_m'), '{:.1f}')}  (total {num(f('funneld_cpu_s'), '{:.1f}')}"
         f" s; Redis {num(f('funneld_redis_cpu_s'), '{:.1f}')} s, Kafka broker "
         f"{num(f('funneld_kafka_cpu_s'), '{:.1f}')} s in the same window)"),
        ("whole machine during the backlog run",
         f"{num(f('funneld_machine_cores'), '{:.2f}')} cores busy on average"),
        ("funneld: outputs",
         f"{g('funneld_transitions')} transitions ({g('transition_avg_bytes')} B avg), "
         f"{g('funneld_dlq')} dead letters [{g('funneld_dlq_reasons')}], "
         f"{g('funneld_duplicates')} duplicates"),
        ("funneld: Redis commands per input event",
         f"{g('funneld_cmds_per_event')}  [{g('funneld_cmds')}]"),
        ("Redis ceiling: steps/s (1 conn, pipelined)",
         f"{num(rc)}  ({g('redis_events')} steps, window {g('redis_window')}, "
         f"{g('redis_redis_cpu_us_per_event')} us Redis CPU per step)"),
        ("Redis ceiling: commands per step", f"{g('redis_cmds_per_event')}  [{g('redis_cmds')}]"),
        ("Kafka ceiling: events/s (same outputs as funneld)",
         f"{num(kc)}  ({g('kafka_outputs')} outputs of {g('kafka_bytes')} B; "
         f"{num(f('kafka_eps_with_join'))}/s incl. join)"),
        ("Kafka ceiling: events/s (1 output per input)",
         f"{num(kc1)}  ({g('kafka1_outputs')} outputs of {g('kafka_bytes')} B; "
         f"{num(f('kafka1_eps_with_join'))}/s incl. join)"),
        ("ratio funneld ÷ Redis ceiling", num(fe / rc if fe and rc else None, "{:.2f}")),
        ("ratio funneld ÷ Kafka ceiling (same outputs)",
         num(fe / kc if fe and kc else None, "{:.2f}")),
        ("ratio funneld ÷ Kafka ceiling (1 per input)",
         num(fe / kc1 if fe and kc1 else None, "{:.2f}")),
    ]
    if f("cluster_eps"):
        rows += [
            ("on a Redis Cluster (3 masters): events/s",
             f"{num(f('cluster_eps'))}  ({g('cluster_transitions')} transitions; the same backlog)"),
            ("on a Redis Cluster: Redis CPU us per event per master",
             f"{g('cluster_master_cpu_us_per_event')}  (one server: "
             f"{num(f('funneld_redis_cpu_s') * 1e6 / f('events') if f('funneld_redis_cpu_s') and f('events') else None, '{:.1f}')})"),
        ]
    if f("pending_timers"):
        n = f("pending_timers")

        def mb(x):
            return num(x / 1e6 if x is not None else None, "{:,.1f}")
        fills = [(w, k) for w, k in (("funneld backlog", "fill"), ("Redis ceiling", "fillc"),
                                     ("fixed rate", "rate_fill")) if f(f"{k}_timers")]
        rows.append(("pending timers (due 2100, none during the run)",
                     f"{n:,.0f} in the keyspace of each of: "
                     f"{', '.join(w for w, _ in fills)} ({g(fills[0][1] + '_zsets')} zsets "
                     f"each), written at {num(f(fills[0][1] + '_rate'))} timers/s"
                     if fills else f"{n:,.0f}"))
        for w, k in fills:
            m0, m1 = f(f"{k}_used_memory_before"), f(f"{k}_used_memory_after")
            rows.append((f"Redis used_memory, timers for {w}",
                         f"{mb(m0)} MB before, {mb(m1)} MB after writing them "
                         f"({g(k + '_bytes_per_timer')} B per timer)"))
        if "fire_used_memory_after" in r:
            rows.append(("Redis used_memory after the backlog run",
                         f"{mb(f('fire_used_memory_after'))} MB"))
        if f("redis0_eps") is not None or rc is not None:
            rc0 = f("redis0_eps")
            rows += [
                ("Redis step ceiling vs pending timers",
                 f"{num(rc0)} steps/s with 0 pending timers, {num(rc)} with {n:,.0f} pending "
                 f"timers (ratio {num(rc / rc0 if rc and rc0 else None, '{:.2f}')})"),
                ("  Redis CPU per step, 0 vs N pending timers",
                 f"{g('redis0_redis_cpu_us_per_event')} us vs {g('redis_redis_cpu_us_per_event')}"
                 f" us (CPU time: less sensitive to other load than steps/s)"),
            ]
        if fe is not None:
            rcpu = f("funneld_redis_cpu_s")
            rows += [
                (f"funneld, backlog, with {n:,.0f} pending timers",
                 f"{num(fe)} events/s; Redis CPU "
                 f"{num(rcpu * 1e6 / f('events') if rcpu is not None else None, '{:.1f}')} us per"
                 f" input event; machine {num(f('funneld_machine_cores'), '{:.2f}')} cores busy"),
                ("fire.lua calls during the backlog run",
                 f"{g('fire_fire_calls')} = {g('fire_fire_tick_calls')} on due zsets (learn + "
                 f"due) + {g('fire_fire_sweep_calls')} lease sweeps  ({g('fire_steps')} steps, "
                 f"{g('fire_analytics_reads')} analytics reads)"),
                ("timers after the backlog run",
                 f"{g('timers_triggers_fired')} triggers fired, {g('timers_triggers_suppressed')} "
                 f"suppressed; {g('timers_pending')} pending, of which {g('timers_pending_far')} "
                 f"due in 2100 or later (filled: {n:,.0f})"),
            ]
    if g("kafka_props", ""):
        rows.append(("funneld kafka.properties (BENCH_KAFKA_PROPS)", g("kafka_props")))
    if "rate_target" in r:
        rows += [
            ("fixed rate: target / achieved input",
             f"{num(f('rate_target'))} / {num(f('rate_achieved'))} events/s for "
             f"{g('rate_events')} events"),
            ("fixed rate: latency p50 / p99 / p99.9 / max",
             f"{g('lat_p50_ms')} / {g('lat_p99_ms')} / {g('lat_p999_ms')} / {g('lat_max_ms')} ms"
             f"  ({g('lat_samples')} transitions after a {g('lat_warmup_s')} s warm-up, "
             f"unmatched {g('lat_unmatched')}, "
             f"LogAppendTime {'yes' if g('lat_log_append_time') == '1' else 'NO'})"),
            ("fixed rate: explaining rows below measured over",
             f"the last {num(f('rate_measured_s'), '{:.0f}')} s of input (after the "
             f"{g('lat_warmup_s')} s warm-up), as the latency"),
            ("fixed rate: inside funneld, bucket bounds p50/p99/p99.9",
             f"Redis step round trip ≤ {g('rate_redis_roundtrip_p50_le_ms')} / "
             f"{g('rate_redis_roundtrip_p99_le_ms')} / {g('rate_redis_roundtrip_p999_le_ms')} ms;"
             f" consumed → outputs acknowledged ≤ {g('rate_end_to_end_p50_le_ms')} / "
             f"{g('rate_end_to_end_p99_le_ms')} / {g('rate_end_to_end_p999_le_ms')} ms"),
            ("fixed rate: the machine's own stalls (bench_hiccup)",
             f"a 1 ms sleep woke late by p50/p99/p99.9/max {g('hic_p50_ms')} / "
             f"{g('hic_p99_ms')} / {g('hic_p999_ms')} / {g('hic_max_ms')} ms; "
             f"{g('hic_over10')} wake-ups ≥ 10 ms late, {g('hic_over25')} ≥ 25 ms; a "
             f"runnable task waited for a CPU {g('rate_cpu_wait_pct')} % of the time"),
            ("fixed rate: Redis commands ≥ 10 ms (slowlog)",
             f"{g('rate_slow_cmds')}, longest {g('rate_slow_max_ms')} ms (a command a script "
             f"calls and the script's FCALL or EVALSHA may both be listed)"),
            ("fixed rate: seconds holding outputs over 25 ms",
             f"{g('lat_slow_seconds')} of {g('lat_seconds')} input seconds; worst: "
             f"{g('lat_worst_seconds')}"),
            ("fixed rate: latency incl. warm-up p99 / p99.9 / max",
             f"{g('lat_all_p99_ms')} / {g('lat_all_p999_ms')} / {g('lat_all_max_ms')} ms  "
             f"({g('lat_warmup_samples')} transitions in the warm-up, max "
             f"{g('lat_warmup_max_ms')} ms)"),
            ("fixed rate: cores used funneld/Redis/Kafka/machine",
             " / ".join(g('rate_cores').split("/")) + "  (loadgen included in machine)"),
            ("fixed rate: funneld CPU s per million / peak RSS",
             f"{num(f('rate_cpu_per_m'), '{:.1f}')} s / "
             f"{num(f('rate_rss_mb'), '{:.1f}')} MB"),
        ]
    w = max(len(a) for a, _ in rows)
    bar = "-" * (w + 3 + 60)
    print(bar)
    print(f"funneld benchmark (issue 7) — {g('host')}, {g('date')}, build {g('build_type')}")
    print(bar)
    for a, b in rows:
        print(f"{a.ljust(w)} | {b}")
    print(bar)


def main():
    if len(sys.argv) < 2:
        die("usage: see the top of this file")
    cmds = {"topics": cmd_topics, "config": cmd_config, "drained": cmd_drained, "scrape": cmd_scrape,
            "redis-slowlog": cmd_redis_slowlog,
            "hist-quantiles": cmd_hist_quantiles,
            "wait-log": cmd_wait_log, "stoplog": cmd_stoplog, "outputs": cmd_outputs,
            "redis-stats": cmd_redis_stats, "redis-diff": cmd_redis_diff,
            "fire-calls": cmd_fire_calls, "timer-stats": cmd_timer_stats,
            "redis-del-prefix": cmd_redis_del_prefix,
            "latency": cmd_latency, "summary": cmd_summary}
    fn = cmds.get(sys.argv[1])
    if not fn:
        die(f"unknown command {sys.argv[1]}")
    fn(*sys.argv[2:])


if __name__ == "__main__":
    main()
