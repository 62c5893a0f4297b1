#!/usr/bin/env python3
"""test_live_api_e2e.py — the live view's API (issue 22, SPEC §12) on the real stack.

Three daemons of one group, each with its own endpoint: one on loopback without a token, one
on a non-loopback address without a token (lead ids hidden from its listeners), one with
http.auth_token. Checked:
- GET / is the page, self-contained (no asset from elsewhere), open even with a token;
- /api/funnels and /api/funnels/NAME match their schemas, list every configured funnel with
  its stages in order, and show the group's figures whichever daemon answers: the same
  populations as funnelctl stats and the snapshot topic, and every daemon counted;
- /api/funnels/NAME/leads/ID is what funnelctl lead --json shows; 404, 400 and 403 where due;
- /api/stream sends the figures, then the group's transitions (schema-valid, ids rising), and
  a reconnect with Last-Event-ID resumes right after the last event seen;
- the token: 401 without it on the API and /metrics, the page and the probes open;
- hostile clients: 1,000 idle connections and a huge header leave /healthz answering, event
  streams beyond the budget are refused (503), streams that never read are cut off and
  counted (funneld_live_dropped_total) while the daemon keeps consuming, and its memory stays
  bounded;
- nobody watching for 30 s, the feed passes nothing on.
"""
import json
import os
import re
import resource
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import jsonschema

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REPO, Check, Stack, funnelctl, gen_stream, http_port, latest_snapshot,  # noqa: E402
                     metrics, wait_drained, wait_for)
from sse import Stream  # noqa: E402

TOKEN = "live-view-token-0123456789"


def get(port, path, headers=None, host="127.0.0.1"):
    req = urllib.request.Request(f"http://{host}:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers
    except OSError as e:
        return None, str(e), {}


def get_json(port, path, deadline_s=60, **kw):
    """(status, parsed body) of an API request, asked again while it is 503 (the figures or
    the lead are read from Redis, which a loaded machine's shared Redis can make answer later
    than the endpoint's 5 s: then 503 with Retry-After) or unanswered, as a client would."""
    end = time.monotonic() + deadline_s
    while True:
        code, body, _ = get(port, path, **kw)
        if code not in (None, 503) or time.monotonic() > end:
            break
        time.sleep(1)
    try:
        return code, json.loads(body)
    except ValueError:
        return code, None


def outside_address():
    """An address of this machine that is not loopback, or None."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))
        a = s.getsockname()[0]
        return None if a.startswith("127.") else a
    except OSError:
        return None
    finally:
        s.close()


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def populations(body):
    return [s["population"] for s in body["stages"]]


def main():
    c = Check("test_live_api_e2e")
    schemas = {}
    for n in ("api-funnels", "api-funnel", "api-lead", "transition"):
        with open(os.path.join(REPO, "schemas", f"{n}.schema.json")) as f:
            schemas[n] = jsonschema.Draft202012Validator(json.load(f))

    def valid(name, doc, what):
        errs = [e.message for e in schemas[name].iter_errors(doc)]
        c.eq(errs[:3], [], f"{what} matches {name}.schema.json")

    st = Stack("live-api")
    try:
        base = int(time.time() * 1000) - 40 * 3600 * 1000
        stream = gen_stream(3000, 200, seed=5, base=base, bad_rate=0)
        st.produce(stream[:2000])
        p1 = st.start()
        port1 = http_port(st, p1)
        c.true(port1, "the first daemon serves")
        c.true(wait_drained(st, 120), "the first 2,000 events are consumed")

        # --- the page ---
        code, page, h = get(port1, "/")
        c.eq(code, 200, "GET / answers")
        c.true("text/html" in h.get("Content-Type", ""), "GET / is HTML")
        c.true("<html" in page.lower() and "</html>" in page.lower(), "GET / is a whole page")
        c.eq(re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", page, re.I), [],
             "the page loads nothing from elsewhere")
        code, _, _ = get(port1, "/nothing-here")
        c.eq(code, 404, "an unknown path is 404")

        # --- figures: schemas, every funnel in order, the same as funnelctl and snapshots ---
        code, summary = get_json(port1, "/api/funnels")
        c.eq(code, 200, "/api/funnels answers")
        valid("api-funnels", summary, "/api/funnels")
        want = [(f["name"], [s["name"] for s in f["stages"]]) for f in st.cfg["funnels"]]
        c.eq([(f["name"], f["stages"]) for f in summary["funnels"]], want,
             "every configured funnel, its stages in order")
        for name, _ in want:
            code, body = get_json(port1, f"/api/funnels/{name}")
            c.eq(code, 200, f"/api/funnels/{name} answers")
            valid("api-funnel", body, f"/api/funnels/{name}")

            def same():
                _, b = get_json(port1, f"/api/funnels/{name}")
                rc, out, _ = funnelctl(st, "--json", "stats", name)
                snap = latest_snapshot(st, name)
                return (b and rc == 0 and snap and
                        populations(b) == populations(json.loads(out)) == populations(snap))
            c.true(wait_for(same, 60, every=1), f"{name}: the API's populations are "
                   "funnelctl's and the latest snapshot's")
        code, body = get_json(port1, "/api/funnels/no-such-funnel")
        c.eq(code, 404, "an unknown funnel is 404")

        # --- a lead, as funnelctl shows it ---
        lead = json.loads(stream[0][1])["lead_id"]
        code, got = get_json(port1, f"/api/funnels/b2b/leads/{urllib.parse.quote(lead)}")
        c.eq(code, 200, "a known lead answers")
        valid("api-lead", got, "a lead")
        rc, out, _ = funnelctl(st, "--json", "lead", "b2b", lead)
        c.eq(got, json.loads(out) if rc == 0 else None, "the lead is what funnelctl lead shows")
        c.eq(get_json(port1, "/api/funnels/b2b/leads/nobody-at-all")[0], 404, "unknown lead: 404")
        c.eq(get_json(port1, "/api/funnels/b2b/leads/%zz")[0], 400, "bad percent-encoding: 400")
        c.eq(get_json(port1, "/api/funnels/b2b/leads/a%00b")[0], 400, "a NUL in the id: 400")
        c.eq(get_json(port1, "/api/funnels/nope/leads/x")[0], 404, "a lead of no funnel: 404")

        # --- the stream: figures, then the group's transitions; a reconnect resumes ---
        s = Stream(port1)
        c.eq(s.status, 200, "/api/stream answers")
        c.true("text/event-stream" in s.head, "/api/stream is an event stream")
        seen = set()
        for ev, _, data in s.events(20):
            seen.add(ev if ev != "funnel" else "funnel:" + json.loads(data)["funnel"])
            if {"summary", "funnel:b2b", "funnel:aida"} <= seen:
                break
        c.true({"summary", "funnel:b2b", "funnel:aida"} <= seen,
               f"the stream opens with the figures (got {sorted(seen)})")
        time.sleep(3)  # the feed's group takes its partitions from their end
        st.produce(stream[2000:2600])
        ids, first_feed = [], []
        for ev, eid, data in s.events(60):
            if ev == "transition":
                doc = json.loads(data)
                valid("transition", doc, f"transition {eid} on the stream")
                c.true(doc["lead_id"], "a loopback listener sees lead ids")
                ids.append(eid)
                if len(ids) >= 12:
                    break
        s.close()
        c.true(len(ids) >= 12, f"the stream carries the group's transitions (got {len(ids)})")
        seqs = [int(i.rsplit("-", 1)[1]) for i in ids]
        c.eq(seqs, sorted(set(seqs)), "feed ids rise")
        last = ids[5] if len(ids) > 5 else None
        if last:
            s = Stream(port1, headers={"Last-Event-ID": last})
            for ev, eid, _ in s.events(20):
                if ev in ("transition", "retargeting", "bottleneck"):
                    first_feed.append(eid)
                    break
            s.close()
            c.eq(first_feed[:1], [ids[6]], "a reconnect resumes right after Last-Event-ID")

        # --- the other daemons: non-loopback without a token, and with a token ---
        outside = outside_address()
        cfg2 = json.loads(json.dumps(st.cfg))
        cfg2["http"] = {"listen": f"{outside or '127.0.0.1'}:0"}
        cfg3 = json.loads(json.dumps(st.cfg))
        cfg3["http"] = {"listen": "127.0.0.1:0", "auth_token": TOKEN}
        procs = []
        for i, cfg in ((2, cfg2), (3, cfg3)):
            path = os.path.join(st.tmp, f"config{i}.json")
            with open(path, "w") as f:
                json.dump(cfg, f)
            st.config_path = path
            procs.append(st.start())
        p2, p3 = procs
        port2 = wait_port(st, p2)
        port3 = http_port(st, p3)
        auth = {"Authorization": f"Bearer {TOKEN}"}
        c.eq(get(port3, "/api/funnels")[0], 401, "with a token: /api/funnels needs it")
        c.eq(get(port3, "/metrics")[0], 401, "with a token: /metrics needs it")
        c.eq(get(port3, "/api/funnels", headers={"Authorization": "Bearer wrong"})[0], 401,
             "with a token: a wrong one is refused")
        c.eq(get(port3, "/")[0], 200, "with a token: the page is open (it holds no data)")
        c.eq(get(port3, "/healthz")[0], 200, "with a token: /healthz is open")
        c.eq(Stream(port3).status, 401, "with a token: the stream needs it")

        def whole_group():
            _, a = get_json(port1, "/api/funnels")
            code, b = get_json(port3, "/api/funnels", headers=auth)
            return (code == 200 and a and b and a["group"] and a["group"]["daemons"] == 3 and
                    [f["leads"] for f in a["funnels"]] == [f["leads"] for f in b["funnels"]])
        c.true(wait_for(whole_group, 60, every=1), "every daemon shows the whole group's "
               "figures and counts the three daemons")
        code, got3 = get_json(port3, f"/api/funnels/b2b/leads/{urllib.parse.quote(lead)}",
                              headers=auth)
        c.eq(code, 200, "with the token a lead is shown")
        if outside:
            code, _ = get_json(port2, f"/api/funnels/b2b/leads/{urllib.parse.quote(lead)}",
                               host=outside)
            c.eq(code, 403, "no token, a listener beyond loopback: no lead search")
            s = Stream(port2, host=outside)
            time.sleep(3)
            st.produce(stream[2600:3000])
            hidden = []
            for ev, _, data in s.events(60):
                if ev == "transition":
                    doc = json.loads(data)
                    hidden.append(doc["lead_id"] or doc["id"] or doc["cause_event_id"])
                    if len(hidden) >= 5:
                        break
            s.close()
            c.true(hidden and all(x is None for x in hidden),
                   f"no token, a listener beyond loopback: lead ids and the event ids hidden "
                   f"(got {hidden[:3]})")
        else:
            print("note: this machine has no address beyond loopback; the hidden-id checks "
                  "did not run")
            st.produce(stream[2600:3000])

        # --- hostile clients ---
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
        before = rss_kb(p1.pid)
        idle = [socket.create_connection(("127.0.0.1", port1)) for _ in range(1000)]
        code, _, _ = get(port1, "/healthz")
        c.eq(code, 200, "1,000 idle connections: /healthz still answers")
        for x in idle:
            x.close()
        with socket.create_connection(("127.0.0.1", port1), timeout=10) as x:
            x.sendall(b"GET /api/funnels HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n")
            reply = x.recv(200)
        c.true(reply.startswith(b"HTTP/1.1 431"), f"a huge header: 431 (got {reply[:40]!r})")
        # streams that never read, with a tiny receive buffer: cut off once their backlog
        # passes the budget; one more than the budget is refused
        sleepers, refused = [], 0
        for _ in range(40):
            x = socket.socket()
            x.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
            x.connect(("127.0.0.1", port1))
            x.sendall(b"GET /api/stream HTTP/1.1\r\n\r\n")
            sleepers.append(x)
        time.sleep(2)
        for x in sleepers:
            x.setblocking(False)
            try:
                head = x.recv(12, socket.MSG_PEEK)
            except BlockingIOError:
                head = b""
            refused += head.startswith(b"HTTP/1.1 503")
        c.true(refused >= 8, f"streams beyond the budget are refused (503 to {refused} of 40)")
        extra = gen_stream(20000, 2000, seed=9, base=base, bad_rate=0)
        st.produce(extra)

        def dropped():
            return metrics(port1).get("funneld_live_dropped_total", 0) >= 1
        c.true(wait_for(dropped, 240, every=2),
               "streams that never read are cut off and counted")
        c.true(wait_drained(st, 300), "the group keeps consuming meanwhile")
        for x in sleepers:
            x.close()
        grown = rss_kb(p1.pid) - before
        if os.environ.get("ASAN_OPTIONS"):
            # the sanitizer keeps freed memory in quarantine (256 MB by default): RSS says
            # nothing there; the normal build's run checks it
            print(f"note: under ASan RSS grew {grown} KB; not checked")
        else:
            c.true(grown < 64 * 1024, f"memory stays bounded (RSS grew {grown} KB)")
        c.eq(get(port1, "/healthz")[0], 200, "the endpoint still answers")
        # nobody watching (no stream, no API request for 30 s): the feed is paused
        time.sleep(36)
        fed = metrics(port1).get("funneld_live_feed_total")
        st.produce(gen_stream(2000, 500, seed=11, base=base, bad_rate=0))
        c.true(wait_drained(st, 300), "the last events are consumed")
        time.sleep(3)
        c.eq(metrics(port1).get("funneld_live_feed_total"), fed,
             "nobody watching: the feed passes nothing on")
        for p in (p1, p2, p3):
            c.eq(st.stop(p), 0, "a daemon with streams open stops cleanly")
    finally:
        st.close()
    c.done()


def wait_port(st, p, timeout=30):
    """The endpoint port of a daemon on any address (http_port reads loopback ones)."""
    found = []

    def look():
        m = re.search(r'"serving /metrics[^"]* on [0-9.]+:(\d+)"', st.log_of(p))
        if m:
            found.append(int(m.group(1)))
        return bool(m)
    return found[0] if wait_for(look, timeout) else None


if __name__ == "__main__":
    main()
