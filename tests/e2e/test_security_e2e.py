"""test_security_e2e.py — credentials work, wrong ones fail loudly but safely, none is logged.

Redis (own redis-server processes on free loopback ports, so their auth can be changed):
- requirepass: funneld with the password in redis.url processes a batch (transitions arrive,
  the group's lag drains);
- a wrong password: the daemon stays up, /readyz is 503, the log names the auth error and it
  keeps retrying; once the server accepts that password (CONFIG SET requirepass) it becomes
  ready and processes what waited;
- an ACL user restricted to funneld's key prefix, first with the rights of an install from
  before the step library (no FUNCTION LOAD, no FCALL): wrong password first, fixed by ACL
  SETUSER, then the steps run as a script (EVALSHA) and only FUNCTION LOAD was refused; then
  with the smallest command set it needs (the line deploy/SECURITY.md documents) and a
  reconnect: the steps go by FCALL, everything works — transitions, snapshots (analytics),
  timers — and Redis's ACL LOG shows no command or key refused.
Kafka (the SASL_PLAINTEXT and SSL listeners deploy/kafka.sh starts; skipped, saying so, when
the broker was started by an older kafka.sh that has none):
- SASL PLAIN and TLS (CA from kafka.sh): funneld consumes and produces over each;
- a wrong SASL password: the daemon stays up, funneld_kafka_up 0 and /readyz 503, the log
  names the authentication failure.
Every daemon runs with --log-level debug (and librdkafka's conf and security debug contexts
on the Kafka runs); no password (Redis, SASL, ssl.key.password) appears in any log line, in
/metrics or in /readyz.
"""
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import redis
from confluent_kafka import KafkaException

from harness import (Check, Stack, free_port, group_lag, kafka_sh, parse_metrics,
                     start_private_broker, ts, wait_for)
from harness import http_get as get

# What funneld sends to Redis: AUTH (always allowed), PING (idle check), SET NX/GET (the
# evaluation lock, the store's epoch marker), SCRIPT LOAD and EVALSHA (fire, read, merge, and
# the step where functions cannot be loaded), FUNCTION LOAD and FCALL (the step library),
# HSET/HDEL/ZREM (acknowledged outputs and triggers, bottleneck state), and inside the Lua
# scripts the hash and zset commands below. SELECT is needed only for a db other than 0.
ACL_SCRIPTS_ONLY = ("+ping +get +set +script|load +evalsha +eval +del +hdel +hget +hgetall +hmget "
                    "+hset +hincrby +hincrbyfloat +pexpire +pexpireat +zadd +zrange +zrangebyscore "
                    "+zrem +zremrangebyrank +zscore +exists +sadd +scard +smembers")
ACL_COMMANDS = ACL_SCRIPTS_ONLY + " +function|load +fcall"


def secret(tag):
    return f"{tag}-{uuid.uuid4().hex}"


def metrics(port):
    """/metrics as {series: value}, and its text."""
    code, text = get(port, "/metrics")
    return (parse_metrics(text) if code == 200 else {}), text


def log_lines(st, p):
    out = []
    for line in st.log_of(p).splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"msg": line, "level": "?"})
    return out


def http_port(st, p, timeout=20):
    """The endpoint's port, from the log line naming it (http.listen is 127.0.0.1:0)."""
    found = []

    def look():
        for e in log_lines(st, p):
            m = e.get("msg", "")
            if m.startswith("serving /metrics"):
                found.append(int(m.rsplit(":", 1)[1]))
                return True
        return False
    return found[0] if wait_for(look, timeout) else None


def start_redis(tmp, port, *args):
    d = tempfile.mkdtemp(dir=tmp)
    p = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", d, *args],
                         stdout=open(os.path.join(d, "redis.log"), "w"),
                         stderr=subprocess.STDOUT)
    return p


def wait_redis(client, timeout=10):
    def ok():
        try:
            return client.ping()
        except redis.exceptions.RedisError:
            return False
    return wait_for(ok, timeout)


def leads_events(prefix, n, base=0):
    """n leads, each page_view → email_click → purchase: in the demo config 3 transitions per
    lead in each of its two funnels (entered, interest, converted)."""
    out = []
    for i in range(n):
        lead = f"{prefix}-{i}"
        for j, (ch, ty) in enumerate((("web", "page_view"), ("email", "email_click"),
                                      ("web", "purchase"))):
            out.append({"event_id": f"{lead}-e{j}", "lead_id": lead, "ts": ts(base + 10 * i + j),
                        "channel": ch, "type": ty})
    return out


def write_config(st):
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f, indent=1)


def drained(st, timeout=120):
    """The group's lag is 0 (a broker just started may not have its group coordinator yet:
    such answers count as not drained)."""
    def lag0():
        try:
            return group_lag(st.brokers, st.name, st.input) == 0
        except KafkaException:
            return False
    return wait_for(lag0, timeout)


@contextlib.contextmanager
def debug_daemon(name, partitions, unset, **cfg):
    """A stack whose config takes cfg's sections (merged into "redis" / "kafka" /
    "kafka.properties"), and its daemon at --log-level debug without the environment
    variable unset (which would override the config); yields (stack, process), closes the
    stack on exit."""
    st = Stack(name, partitions=partitions)
    try:
        st.cfg["redis"].update(cfg.get("redis", {}))
        st.cfg["kafka"].update(cfg.get("kafka", {}))
        st.cfg["kafka"]["properties"].update(cfg.get("properties", {}))
        write_config(st)
        yield st, st.start("--log-level", "debug", unset=(unset,))
    finally:
        st.close()


def expect_processed(check, st, n_leads, what, hport=None):
    check.true(drained(st), f"{what}: input drained (lag 0)")
    trans = st.transitions(expect=6 * n_leads, idle=2, timeout=60)
    check.eq(len(trans), 6 * n_leads, f"{what}: transitions")
    check.eq(sum(1 for t in trans if t["type"] == "converted"), 2 * n_leads,
             f"{what}: conversions")
    if hport:
        check.true(wait_for(lambda: get(hport, "/readyz")[0] == 200, 20), f"{what}: /readyz 200")
    return trans


class Secrets:
    """Every credential the test hands out, and every text the daemons showed, checked at
    the end: none may contain any of them."""

    def __init__(self):
        self.values, self.texts = [], []

    def add(self, *v):
        self.values.extend(v)

    def seen(self, where, text):
        self.texts.append((where, text))

    def check(self, check):
        for where, text in self.texts:
            for v in self.values:
                check.true(v not in text, f"{where}: no secret {v[:6]}… in it")


def scrape(secrets, what, hport):
    m, text = metrics(hport)
    secrets.seen(f"{what} /metrics", text)
    secrets.seen(f"{what} /readyz", get(hport, "/readyz")[1])
    return m


def finish(check, secrets, st, p, what):
    """Stops the daemon (exit 0) and hands its log to the secret check."""
    check.eq(st.stop(p), 0, f"{what}: exit code")
    lines = log_lines(st, p)
    check.true(any(e.get("level") == "debug" for e in lines), f"{what}: debug lines logged")
    secrets.seen(f"{what} log", st.log_of(p))


def wrong_then_fixed(check, secrets, st, p, what, admin, fix, n_leads, error="WRONGPASS"):
    """The daemon runs with a password the server refuses (or none where one is wanted): up,
    not ready, saying why (Redis's `error`), trying again; `fix` makes the server accept it;
    then it catches up."""
    hport = http_port(st, p)
    check.true(hport is not None, f"{what}: endpoint port in the log")
    st.produce(leads_events(st.name, n_leads))

    def auth_errors():
        return [e for e in log_lines(st, p) if e.get("component") == "redis" and
                error in e.get("msg", "")]
    # several connection attempts (backoff 100 ms → 5 s), each refused
    wait_for(lambda: len(auth_errors()) >= 2, 30)
    check.true(p.poll() is None, f"{what}: still running")
    check.eq(get(hport, "/healthz")[0], 200, f"{what}: /healthz 200")
    code, why = get(hport, "/readyz")
    check.eq(code, 503, f"{what}: /readyz 503")
    check.true("redis down" in why, f"{what}: /readyz says redis is down ({why.strip()!r})")
    m = scrape(secrets, what, hport)
    check.eq(m.get("funneld_redis_up"), 0.0, f"{what}: funneld_redis_up 0")
    auth = auth_errors()
    check.true(len(auth) >= 2, f"{what}: auth error logged on each attempt ({len(auth)})")
    check.true(all(e.get("level") in ("warn", "error") for e in auth),
               f"{what}: at warn/error level")
    if auth:
        print(f"{what}: logged: {auth[0]['msg']}")
    fix(admin)
    expect_processed(check, st, n_leads, f"{what} after the fix", hport)
    m = scrape(secrets, what, hport)
    check.eq(m.get("funneld_redis_up"), 1.0, f"{what}: funneld_redis_up 1 after the fix")
    return hport


def redis_part(check, secrets, tmp):
    # --- requirepass: right password, then a wrong one fixed on the server ---
    pw = secret("rp")
    port = free_port()
    srv = start_redis(tmp, port, "--requirepass", pw)
    admin = redis.Redis(host="127.0.0.1", port=port, password=pw)
    servers = [srv]
    try:
        check.true(wait_redis(admin), "requirepass server up")
        secrets.add(pw)
        url = {"url": f"redis://:{pw}@127.0.0.1:{port}/0"}
        with debug_daemon("sec-pass", 2, "FUNNELD_REDIS_URL", redis=url) as (st, p):
            hport = http_port(st, p)
            st.produce(leads_events(st.name, 20))
            expect_processed(check, st, 20, "requirepass", hport)
            m = scrape(secrets, "requirepass", hport)
            check.eq((m.get("funneld_redis_up"), m.get("funneld_ready")), (1.0, 1.0),
                     "requirepass: redis_up and ready")
            finish(check, secrets, st, p, "requirepass")

        wrong = secret("rp-wrong")
        secrets.add(wrong)
        url = {"url": f"redis://:{wrong}@127.0.0.1:{port}/0"}
        with debug_daemon("sec-passfix", 2, "FUNNELD_REDIS_URL", redis=url) as (st, p):
            wrong_then_fixed(check, secrets, st, p, "requirepass wrong", admin,
                             lambda a: a.config_set("requirepass", wrong), 10)
            finish(check, secrets, st, p, "requirepass wrong")

        # no password where the server wants one: NOAUTH, until the server stops asking
        admin = redis.Redis(host="127.0.0.1", port=port, password=wrong)
        url = {"url": f"redis://127.0.0.1:{port}/0"}
        with debug_daemon("sec-nopass", 1, "FUNNELD_REDIS_URL", redis=url) as (st, p):
            wrong_then_fixed(check, secrets, st, p, "no password", admin,
                             lambda a: a.config_set("requirepass", ""), 5, error="NOAUTH")
            finish(check, secrets, st, p, "no password")

        # --- an ACL user on the prefix only: first with the rights of an install from before
        # the step library (no FUNCTION LOAD, no FCALL), then with the commands funneld needs ---
        st = Stack("sec-acl", partitions=2)
        try:
            aport, upw, apw = free_port(), secret("acl"), secret("admin")
            wrong = secret("acl-wrong")
            secrets.add(upw, apw, wrong)
            acl = f"funneld on >{upw} resetkeys ~{st.name}:* resetchannels -@all {ACL_SCRIPTS_ONLY}"
            print(f"ACL: user {acl.replace(upw, 'PASSWORD')}")
            srv = start_redis(tmp, aport, "--user", "default", "off", "--user", *acl.split(),
                              "--user", "admin", "on", f">{apw}", "~*", "&*", "+@all")
            servers.append(srv)
            admin = redis.Redis(host="127.0.0.1", port=aport, username="admin", password=apw)
            check.true(wait_redis(admin), "ACL server up")
            # the default user is off: no access without the user's password
            anon = redis.Redis(host="127.0.0.1", port=aport)
            try:
                anon.get(f"{st.name}:x")
                check.true(False, "ACL: the default user refused")
            except redis.exceptions.RedisError:
                pass
            st.cfg["redis"]["url"] = f"redis://funneld:{wrong}@127.0.0.1:{aport}/0"
            write_config(st)
            p = st.start("--log-level", "debug", unset=("FUNNELD_REDIS_URL",))
            hport = wrong_then_fixed(check, secrets, st, p, "ACL wrong", admin,
                                     lambda a: a.execute_command("ACL", "SETUSER", "funneld",
                                                                 f">{wrong}"), 20)

            def calls(cmd):
                return admin.info("commandstats").get(f"cmdstat_{cmd}", {}).get("calls", 0)
            # FUNCTION LOAD refused: the same step, called as a script
            check.true(any("steps run as a script" in e.get("msg", "") for e in log_lines(st, p)),
                       "ACL without FUNCTION: the daemon says its steps run as a script")
            raw = admin.execute_command("ACL", "LOG", "128")
            check.true(any(acl_reason(e) == "auth" for e in raw),
                       "ACL: the wrong password was logged by Redis")
            refused = {acl_entry(e).get("object") for e in raw if acl_reason(e) != "auth"}
            check.eq(refused, {"function|load"}, "ACL without FUNCTION: only FUNCTION LOAD refused")
            check.true(calls("evalsha") >= 60 and calls("fcall") == 0,
                       f"ACL without FUNCTION: steps by EVALSHA ({calls('evalsha')}), "
                       f"none by FCALL ({calls('fcall')})")
            # the rights documented: once reconnected, the daemon steps by FCALL
            admin.execute_command("ACL", "SETUSER", "funneld", "resetkeys", f"~{st.name}:*",
                                  "resetchannels", "-@all", *ACL_COMMANDS.split())
            admin.execute_command("ACL", "LOG", "RESET")
            admin.execute_command("CLIENT", "KILL", "USER", "funneld")
            st.produce(leads_events(f"{st.name}-b", 10, base=1000))
            expect_processed(check, st, 30, "ACL with FUNCTION", hport)
            check.true(calls("fcall") >= 30, f"ACL with FUNCTION: steps by FCALL ({calls('fcall')})")
            check.true(any("ready (step function" in e.get("msg", "") for e in log_lines(st, p)),
                       "ACL with FUNCTION: the daemon says its steps go to the function")
            # analytics (read.lua, SET NX locks, bottleneck state) and the timer tick run
            # every 10 s: wait for snapshots, then look at what Redis refused
            snaps = st.consume(st.topics["snapshots"], expect=2, idle=1, timeout=40)
            check.true(len(snaps) >= 2, f"ACL: snapshots emitted ({len(snaps)})")
            raw = admin.execute_command("ACL", "LOG", "128")
            denied = [e for e in raw if acl_reason(e) != "auth"]
            check.eq([acl_entry(e) for e in denied], [], "ACL: nothing refused by the ACL")
            keys = admin.keys("*")
            check.true(keys and all(k.startswith(f"{st.name}:".encode()) for k in keys),
                       f"ACL: every key under the prefix ({len(keys)})")
            nope = [e for e in log_lines(st, p)
                    if "NOPERM" in e.get("msg", "") and "FUNCTION LOAD" not in e.get("msg", "")]
            check.eq(nope, [], "ACL: no NOPERM in the daemon's log but the refused FUNCTION LOAD")
            finish(check, secrets, st, p, "ACL")
        finally:
            st.close()
    finally:
        for s in servers:
            s.terminate()
            s.wait()


def acl_fields(e):
    """ACL LOG entries come back as flat [k, v, ...] lists (or dicts, by client version)."""
    if isinstance(e, dict):
        return {(k.decode() if isinstance(k, bytes) else k): v for k, v in e.items()}
    return {(e[i].decode() if isinstance(e[i], bytes) else e[i]): e[i + 1]
            for i in range(0, len(e) - 1, 2)}


def acl_reason(e):
    v = acl_fields(e).get("reason")
    return v.decode() if isinstance(v, bytes) else v


def acl_entry(e):
    f = acl_fields(e)
    return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.items()
            if k in ("reason", "context", "object", "username")}


def kafka_part(check, secrets, run_dir):
    need = ("FUNNELD_BROKERS_SASL", "FUNNELD_KAFKA_SASL_USER", "FUNNELD_KAFKA_SASL_PASSWORD",
            "FUNNELD_BROKERS_SSL", "FUNNELD_KAFKA_CA")
    if any(not os.environ.get(n) for n in need):
        # the shared broker was started by a kafka.sh without these listeners: use one of
        # this test's own
        print("the shared broker has no SASL/TLS listeners: starting one of this test's own")
        start_private_broker(run_dir)
    env = {n: os.environ[n] for n in need}
    secrets.add(env["FUNNELD_KAFKA_SASL_PASSWORD"])
    key_pw = secret("keypw")  # never used by PLAIN, only there to prove it is not logged
    secrets.add(key_pw)
    debug = {"debug": "conf,security"}
    sasl = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN",
            "sasl.username": env["FUNNELD_KAFKA_SASL_USER"],
            "sasl.password": env["FUNNELD_KAFKA_SASL_PASSWORD"], "ssl.key.password": key_pw}
    tls = {"security.protocol": "SSL", "ssl.ca.location": env["FUNNELD_KAFKA_CA"]}
    for what, brokers, props in (("SASL", env["FUNNELD_BROKERS_SASL"], sasl),
                                 ("TLS", env["FUNNELD_BROKERS_SSL"], tls)):
        with debug_daemon(f"sec-{what.lower()}", 2, "FUNNELD_BROKERS",
                          kafka={"brokers": brokers}, properties=dict(props, **debug)) as (st, p):
            hport = http_port(st, p)
            st.produce(leads_events(st.name, 20))
            expect_processed(check, st, 20, f"Kafka {what}", hport)
            m = scrape(secrets, f"Kafka {what}", hport)
            check.eq(m.get("funneld_kafka_up"), 1.0, f"Kafka {what}: funneld_kafka_up 1")
            log = st.log_of(p)
            marks = (("sasl_plaintext://", "Sending SASL PLAIN") if what == "SASL" else
                     ("ssl://", "Loading CA certificate"))
            check.true(all(m in log for m in marks),
                       f"Kafka {what}: librdkafka's debug lines show {' and '.join(marks)}")
            finish(check, secrets, st, p, f"Kafka {what}")

    wrong = secret("sasl-wrong")
    secrets.add(wrong)
    with debug_daemon("sec-saslbad", 1, "FUNNELD_BROKERS",
                      kafka={"brokers": env["FUNNELD_BROKERS_SASL"]},
                      properties=dict(sasl, **{"sasl.password": wrong}, **debug)) as (st, p):
        hport = http_port(st, p)
        check.true(hport is not None, "Kafka wrong SASL: endpoint port in the log")
        time.sleep(12)  # librdkafka's statistics come every 5 s; several auth attempts
        check.true(p.poll() is None, "Kafka wrong SASL: still running")
        m = scrape(secrets, "Kafka wrong SASL", hport)
        check.eq(m.get("funneld_kafka_up"), 0.0, "Kafka wrong SASL: funneld_kafka_up 0")
        code, why = get(hport, "/readyz")
        check.eq(code, 503, "Kafka wrong SASL: /readyz 503")
        check.true("kafka down" in why, f"Kafka wrong SASL: /readyz says kafka is down ({why.strip()!r})")
        auth = [e for e in log_lines(st, p) if "Authentication failed" in e.get("msg", "") or
                "_AUTHENTICATION" in e.get("msg", "")]
        check.true(any(e.get("level") in ("warn", "error") for e in auth),
                   f"Kafka wrong SASL: authentication failure logged ({len(auth)} lines)")
        if auth:
            print(f"Kafka wrong SASL: logged: {auth[0]['msg']}")
        finish(check, secrets, st, p, "Kafka wrong SASL")


def main():
    check = Check("test_security_e2e")
    secrets = Secrets()
    tmp = tempfile.mkdtemp(prefix="funneld-sec-")
    try:
        redis_part(check, secrets, tmp)
        kafka_part(check, secrets, os.path.join(tmp, "kafka"))
        secrets.check(check)
        print(f"secret check: {len(secrets.values)} secrets against {len(secrets.texts)} texts")
    finally:
        if os.path.exists(os.path.join(tmp, "kafka")):
            try:
                kafka_sh(os.path.join(tmp, "kafka"), "stop")
            except RuntimeError as e:
                print(e)
        shutil.rmtree(tmp, ignore_errors=True)
    check.done()


if __name__ == "__main__":
    main()
