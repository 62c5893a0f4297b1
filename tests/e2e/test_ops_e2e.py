"""test_ops_e2e.py — the operations endpoint (SPEC §7) on a running daemon:

- /metrics counters agree with what was sent and what came out (consumed, outcomes, dead
  letters by reason, transitions by funnel and type, histogram counts), /healthz answers;
- /readyz turns 503 while the daemon's Redis is stopped and 200 again once it is back;
- `funnelctl lead` shows a lead whose campaign, source, channel and event id carry terminal
  escape sequences, C1 controls and a bidi override as visible escapes (text and --json),
  never as raw bytes, and keeps printable UTF-8 as it is;
- HEAD gets GET's headers (the same Content-Length) and no body;
- 100 idle connections (more than the endpoint keeps open) do not lock out the probes:
  /healthz and /readyz answer 200 while they are held;
- 1000 idle connections held open and a 10 MB request head neither stop the event path (a
  second batch is processed meanwhile) nor the endpoint (it answers right after).
Runs its own redis-server so that it can stop it.
"""
import json
import os
import resource
import shutil
import socket
import subprocess
import tempfile
import time

from harness import (Check, Stack, build_dir, ev, free_port, gen_stream, metrics, start_redis,
                     wait_drained, wait_for)
from harness import http_get as get


# What a terminal acts on: ESC, BEL, the C1 CSI (U+009B) and a right-to-left override.
HOSTILE = "\x1b]0;pwned\x07\x1b[2J\u009b31m\u202espring"
RAW_CONTROLS = [b"\x1b", b"\x07", "\u009b".encode(), "\u202e".encode()]


def funnelctl_escapes(check, st):
    """A lead whose texts came from hostile UTM values, shown by funnelctl lead."""
    now = int(time.time() * 1000)
    lead = "ESC-\x1b[1mlead"
    st.produce([ev(lead, "e1\x1b[31m", now, "web\u202e", "page_view",
                   props={"campaign": HOSTILE + " caf\u00e9 \U0001F680", "source": "\x1b[5m"}),
                ev(lead, "e2\u009b2J", now + 1, "web", "cart_add")])
    check.true(wait_drained(st, timeout=60), "the hostile lead's events processed")
    ctl = os.path.join(build_dir(), "funnelctl")
    env = {k: v for k, v in os.environ.items() if k != "FUNNELD_REDIS_URL"}  # the config's Redis
    for extra in ([], ["--json"]):
        out = subprocess.run([ctl, "-c", st.config_path, *extra, "lead", "b2b", lead], env=env,
                             capture_output=True, timeout=30)
        what = "funnelctl " + " ".join(extra + ["lead"])
        check.eq(out.returncode, 0, f"{what}: exit code ({out.stderr[-300:]!r})")
        found = [c for c in RAW_CONTROLS if c in out.stdout + out.stderr]
        check.eq(found, [], f"{what}: no raw control bytes in its output")
        text = out.stdout.decode("utf-8", "replace")
        if extra:
            j = json.loads(text) if out.returncode == 0 else {}
            first = j.get("attribution", {}).get("first", {})
            check.eq((first.get("campaign"), first.get("source"), first.get("channel")),
                     (HOSTILE + " caf\u00e9 \U0001F680", "\x1b[5m", "web\u202e"),
                     f"{what}: the same texts, once the JSON is parsed")
            check.eq([t["cause_event_id"] for t in j.get("triggers", [])], ["e2\u009b2J"],
                     f"{what}: the trigger's cause event id")
        else:
            for shown in ("\\x1b]0;pwned\\x07\\x1b[2J\\u009b31m\\u202espring caf\u00e9 \U0001F680",
                          "web\\u202e", "e2\\u009b2J", "lead ESC-\\x1b[1mlead in"):
                check.true(shown in text, f"{what}: shows {shown!r} ({text!r})")


def raw(port, request):
    """Everything the daemon sends back for request until it closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


def head_request(check, port, path):
    """HEAD path: the headers GET has, Content-Length included, and not one byte after."""
    reply = raw(port, f"HEAD {path} HTTP/1.1\r\nHost: funneld\r\n\r\n".encode())
    head, sep, rest = reply.partition(b"\r\n\r\n")
    check.eq((sep, len(rest), rest[:40]), (b"\r\n\r\n", 0, b""),
             f"HEAD {path}: headers and no body (bytes after the headers, the first of them)")
    fields = dict(line.split(b": ", 1) for line in head.split(b"\r\n")[1:] if b": " in line)
    return head.split(b"\r\n")[0], int(fields.get(b"Content-Length", b"-1"))


def head_and_idle(check, hport):
    """HEAD answers, and probes get through while idle connections fill every slot."""
    for path in ("/healthz", "/readyz"):
        code, body = get(hport, path)
        status, length = head_request(check, hport, path)
        check.eq((status, length), (b"HTTP/1.1 200 OK", len(body.encode())),
                 f"HEAD {path}: status and GET's Content-Length")
    status, length = head_request(check, hport, "/metrics")
    check.true(status == b"HTTP/1.1 200 OK" and length > 1000,
               f"HEAD /metrics: status and the length of the page ({status!r}, {length})")
    # More idle connections than the endpoint keeps open (64): each sends nothing.
    idle = [socket.create_connection(("127.0.0.1", hport), timeout=5) for _ in range(100)]
    try:
        for path in ("/healthz", "/readyz", "/healthz"):
            check.eq(get(hport, path)[0], 200, f"{path} answers while 100 idle connections are held")
    finally:
        for s in idle:
            s.close()


def main():
    check = Check("test_ops_e2e")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    rport, hport = free_port(), free_port()
    data = tempfile.mkdtemp()
    srv = start_redis(rport, data)
    st = Stack("ops", partitions=3)
    try:
        st.use_redis(rport, hport)  # the test's own server
        time.sleep(0.5)
        p = st.start(unset=("FUNNELD_REDIS_URL",))
        stream = gen_stream(1000, 150, seed=5, dup_rate=0.02, bad_rate=0.02)
        st.produce(stream)
        check.true(wait_drained(st, timeout=120), "first batch processed")
        check.eq(get(hport, "/healthz")[0], 200, "/healthz")
        check.true(wait_for(lambda: get(hport, "/readyz")[0] == 200, 20), "/readyz 200")
        trans = st.transitions(idle=3)
        dlq = st.consume(st.topics["dlq"], idle=2)
        m = metrics(hport)
        topic = st.input
        check.eq(m.get(f'funneld_events_consumed_total{{topic="{topic}"}}'), 1000.0, "consumed")
        outcomes = sum(v for k, v in m.items() if k.startswith("funneld_events_total{"))
        check.eq(outcomes, 1000.0, "every message has one outcome")
        check.eq(m.get('funneld_events_total{outcome="rejected"}'), float(len(dlq)), "rejected")
        check.eq(m.get("funneld_dlq_total"), float(len(dlq)), "dead letters acknowledged")
        by_reason = {}
        for msg in dlq:
            code = dict(msg.headers() or []).get("funneld.error", b"").decode()
            by_reason[code] = by_reason.get(code, 0) + 1
        for code, n in by_reason.items():
            check.eq(m.get(f'funneld_rejected_total{{reason="{code}"}}'), float(n), f"rejected {code}")
        for f in ("b2b", "aida"):
            for t in ("stage_changed", "converted", "lost"):
                want = sum(1 for e in trans if e["funnel"] == f and e["type"] == t)
                check.eq(m.get(f'funneld_transitions_total{{funnel="{f}",type="{t}"}}'),
                         float(want), f"transitions {f}/{t}")
        check.eq(m.get("funneld_end_to_end_seconds_count"), 1000.0, "end-to-end histogram count")
        check.true(m.get("funneld_redis_roundtrip_seconds_count", 0) >= 1000 - len(dlq),
                   "a Redis round trip per applied event")
        node = f'node="127.0.0.1:{rport}"'
        check.eq((m.get(f"funneld_redis_node_up{{{node}}}"),
                  m.get(f"funneld_redis_node_roundtrip_seconds_count{{{node}}}"),
                  m.get(f'funneld_redis_node_roundtrip_seconds_bucket{{{node},le="+Inf"}}')),
                 (1.0, m.get("funneld_redis_roundtrip_seconds_count"),
                  m.get("funneld_redis_roundtrip_seconds_count")),
                 "the one node: up, every round trip in its histogram")
        check.eq(m.get("funneld_in_flight"), 0.0, "nothing in flight")
        check.eq((m.get("funneld_redis_up"), m.get("funneld_kafka_up"), m.get("funneld_ready")),
                 (1.0, 1.0, 1.0), "up and ready gauges")
        lags = [v for k, v in m.items() if k.startswith("funneld_consumer_lag{")]
        check.true(wait_for(lambda: [v for k, v in metrics(hport).items()
                                     if k.startswith("funneld_consumer_lag{")] == [0.0] * 3, 15),
                   f"lag per partition reported, 0 when drained (first scrape {lags})")

        funnelctl_escapes(check, st)

        # Redis away: not ready; back: ready
        srv.terminate()
        srv.wait()
        check.true(wait_for(lambda: get(hport, "/readyz")[0] == 503, 20), "/readyz 503 without Redis")
        check.eq(metrics(hport).get("funneld_redis_up"), 0.0, "redis_up 0")
        check.eq(get(hport, "/healthz")[0], 200, "still alive")
        srv = start_redis(rport, data)
        check.true(wait_for(lambda: get(hport, "/readyz")[0] == 200, 30), "/readyz 200 again")
        head_and_idle(check, hport)

        # hostile clients: a 10 MB request head, then 1000 idle connections while a batch flows
        big = socket.socket()
        big.settimeout(10)
        big.connect(("127.0.0.1", hport))
        sent = 0
        try:
            big.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: ")
            chunk = b"a" * 65536
            while sent < 10 * 1024 * 1024:
                big.sendall(chunk)
                sent += len(chunk)
        except OSError:
            pass  # the daemon answered 431 and closed: expected
        reply = b""
        try:
            reply = big.recv(200)
        except OSError as e:
            reply = str(e).encode()  # a reset can overtake the 431 when unread bytes remain
        big.close()
        check.true(reply.startswith(b"HTTP/1.1 431") or b"reset" in reply,
                   f"oversized head refused ({sent} bytes sent, reply {reply[:30]!r})")
        check.true(sent < 10 * 1024 * 1024, "the daemon stopped reading long before 10 MB")
        check.eq(get(hport, "/healthz")[0], 200, "alive after the oversized head")
        socks = []
        for _ in range(1000):
            s = socket.socket()
            s.settimeout(5)
            try:
                s.connect(("127.0.0.1", hport))
                socks.append(s)
            except OSError:
                s.close()
        st.produce(gen_stream(1000, 150, seed=6, dup_rate=0, bad_rate=0))
        check.true(wait_drained(st, timeout=120), "second batch processed with 1000 connections open")
        for s in socks:
            s.close()
        check.true(wait_for(lambda: get(hport, "/healthz")[0] == 200, 10),
                   "endpoint answers once they are gone")
        print(f"held {len(socks)} connections; big head: {sent} bytes sent before the refusal")
        check.eq(st.stop(p), 0, "exit code")
    finally:
        st.close()
        srv.terminate()
        srv.wait()
        shutil.rmtree(data, ignore_errors=True)
    check.done()


if __name__ == "__main__":
    main()
