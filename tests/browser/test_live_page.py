#!/usr/bin/env python3
"""test_live_page.py — the live view in a real browser (issue 22, SPEC §12): Debian's
chromium, headless, driven over the DevTools protocol (cdp.py), loads the page a running
daemon serves against the real stack and checks what a person sees:

- every configured funnel drawn, its stages in order;
- each stage's population as /api/funnels/NAME and the snapshot topic give it;
- the live feed advancing as new events come in;
- a bottleneck highlighted once one is raised (a stage whose flow stopped over the last hour
  against a steady day before it), with its rate against the baseline, and its segment's
  (b2b broken down by channel) listed;
- the lead search showing a lead's journey as the API gives it;
- a screenshot into the build directory (browser-live-page.png) for people to look at.
"""
import json
import os
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "e2e"))
from cdp import Browser  # noqa: E402
from harness import (REPO, Check, Stack, build_dir, http_port, iso,  # noqa: E402
                     latest_snapshot, wait_drained, wait_for)

H = 3600 * 1000


def waited(b, js, timeout):
    """b.wait, as a truth value: False when the condition did not come true in time."""
    try:
        return bool(b.wait(js, timeout))
    except TimeoutError as e:
        print(f"note: {e}")
        return False


def api(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
        return json.loads(r.read())


def touch(lead, n, t, type_, channel="web"):
    return {"event_id": f"{lead}-{n}", "lead_id": lead, "ts": iso(t), "channel": channel,
            "type": type_, "props": {"campaign": "spring"}}


def main():
    c = Check("test_live_page")
    with open(os.path.join(REPO, "deploy/config/demo.json")) as f:
        funnels = json.load(f)["funnels"]
    for f in funnels:
        if f["name"] == "b2b":
            f["breakdowns"] = ["channel"]  # the stalled stage's segment is lit as well
    st = Stack("live-page", funnels=funnels)
    try:
        now = int(time.time() * 1000)
        # b2b's awareness stage: a steady day (80 leads in, 60 of them on to interest), then
        # 60 leads in over the last half hour and none on: its flow dropped, a bottleneck
        events = []
        for i in range(80):
            t = now - 20 * H + i * 10 * 60000
            events.append(touch(f"steady-{i}", 1, t, "page_view"))
            if i < 60:
                events.append(touch(f"steady-{i}", 2, t + 20 * 60000, "email_click", "email"))
        for i in range(60):
            events.append(touch(f"stuck-{i}", 1, now - 30 * 60000 + i * 20000, "page_view"))
        st.produce(events)
        p = st.start()
        port = http_port(st, p)
        c.true(port, "the daemon serves")
        c.true(wait_drained(st, 120), "the events are consumed")
        want = [(f["name"], [s["name"] for s in f["stages"]]) for f in st.cfg["funnels"]]
        shot = os.path.join(build_dir(), "browser-live-page.png")
        with Browser() as b:
            b.navigate(f"http://127.0.0.1:{port}/")
            c.true(waited(b, "document.body.dataset.ready === '1'", 30), "the page draws itself")
            drawn = b.eval("""[...document.querySelectorAll('section.funnel')].map(s =>
                [s.dataset.funnel, [...s.querySelectorAll('.stage')].map(x => x.dataset.stage)])""")
            c.eq([(f, st_) for f, st_ in drawn], want, "every funnel drawn, its stages in order")

            # populations: the page's, the API's and the latest snapshot's
            def populations_agree():
                page = b.eval("""Object.fromEntries([...document.querySelectorAll('section.funnel')]
                    .map(s => [s.dataset.funnel, [...s.querySelectorAll('.stage')]
                    .map(x => Number(x.dataset.population))]))""")
                for name, _ in want:
                    from_api = [s["population"] for s in api(port, f"/api/funnels/{name}")["stages"]]
                    snap = latest_snapshot(st, name)
                    if not snap or page.get(name) != from_api or \
                            from_api != [s["population"] for s in snap["stages"]]:
                        return False
                return True
            c.true(wait_for(populations_agree, 60, every=1),
                   "each stage's population on the page is the API's and the snapshot's")
            total = b.eval("Number(document.querySelector('section.funnel[data-funnel=\"b2b\"] "
                           "[data-total=\"leads\"]').dataset.value)")
            c.eq(total, api(port, "/api/funnels")["funnels"][0]["leads"], "b2b's lead total")

            # the bottleneck, highlighted with its rate against the baseline
            lit = "document.querySelector('section.funnel[data-funnel=\"b2b\"] " \
                  ".stage[data-stage=\"awareness\"]').classList.contains('bottleneck')"
            c.true(waited(b, lit, 90), "the awareness stage is highlighted as a bottleneck")
            text = b.eval("document.querySelector('section.funnel[data-funnel=\"b2b\"] "
                          ".stage[data-stage=\"awareness\"]').textContent")
            c.true("%" in text, f"the stage shows its rates ({text[:120]!r})")
            body = api(port, "/api/funnels/b2b")
            c.true(any(x["stage"] == "awareness" and x["breakdown"] is None
                       for x in body["bottlenecks"]), "the API lists the same bottleneck")
            seg = "document.querySelector('section.funnel[data-funnel=\"b2b\"] " \
                  "li.segment-bottleneck[data-stage=\"awareness\"][data-dimension=\"channel\"]" \
                  "[data-value=\"web\"]')"
            c.true(waited(b, seg + " !== null", 60), "the web segment's bottleneck is listed")
            c.true(any(x["breakdown"] == {"dimension": "channel", "value": "web"}
                       for x in api(port, "/api/funnels/b2b")["bottlenecks"]),
                   "the API lists the segment's bottleneck")

            # the live feed advances as events come in
            before = b.eval("Number(document.getElementById('feed').dataset.received || 0)")
            time.sleep(3)  # the feed's consumer takes its partitions from their end
            more = [touch(f"new-{i}", 1, now + i * 1000, "page_view") for i in range(30)]
            st.produce(more)
            c.true(waited(b, f"Number(document.getElementById('feed').dataset.received) > {before}",
                          60), "the live feed advances")
            newest = b.eval("(document.querySelector('#feed li') || {dataset: {}}).dataset.type")
            c.eq(newest, "transition", "the newest feed line is a transition")
            feed_text = b.eval("document.getElementById('feed').textContent")
            c.true("new-" in feed_text, "the feed names the new leads")
            b.screenshot(shot)

            # the lead search shows a journey, as the API has it
            lead = "steady-3"
            journey = api(port, f"/api/funnels/b2b/leads/{lead}")
            b.navigate(f"http://127.0.0.1:{port}/#lead={lead}&funnel=b2b")
            c.true(waited(b, f"(document.getElementById('journey') || {{dataset: {{}}}})"
                          f".dataset.lead === '{lead}'", 30), "the lead search shows the lead")
            got = b.eval("({...document.getElementById('journey').dataset})")
            c.eq((got.get("status"), got.get("stage")), (journey["status"], journey["stage"]),
                 "the journey's status and stage are the API's")
            b.navigate(f"http://127.0.0.1:{port}/#lead=nobody-at-all&funnel=b2b")
            c.true(waited(b, "(document.getElementById('journey') || {dataset: {}})"
                          ".dataset.status === 'none'", 30), "an unknown lead says so")
            errors = [e for e in b.logs() if e.startswith(("exception:", "console.error"))]
            c.eq(errors, [], "the page logged no error")
        print(f"screenshot: {shot}")
        c.eq(st.stop(p), 0, "the daemon stops cleanly after the page left")
    finally:
        st.close()
    c.done()


if __name__ == "__main__":
    main()
