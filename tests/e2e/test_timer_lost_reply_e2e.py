"""test_timer_lost_reply_e2e.py — a timer armed by a step whose reply was lost still fires
(issue 16 item 4).

A TCP proxy between funneld and Redis swallows everything Redis answers once it has seen the
step of one event, so that step is applied but its reply (which carries the due time it
armed) never arrives; the daemon's watchdog drops the silent connection and reconnects, and
the step sent again answers "dup", without the due time. Before the fix the daemon kept what
it had learned of that zset before ("no timer"), so its tick never looked at it again and the
timer never fired. Now a reconnect forgets every known due time, and the tick learns them
again.

The event clock, one partition. Lead X enters the funnel (its stall timer, due in 30 days, is
learned from that step's reply); then X's cart_add, a touch that arms the cart_abandoned timer
due one hour later, is the step whose reply is lost (a touch stores no result, so the step
sent again answers "dup"). A later event of another lead (a touch that arms nothing) moves the
partition's clock two hours on; X's cart_abandoned trigger must then come.
"""
import json
import socket
import threading
import time
import uuid
from urllib.parse import urlparse

from harness import Check, Stack, ev, free_port, http_get, metrics, ts, wait_for

T0 = 0  # seconds after harness.ts's base


class SwallowingProxy:
    """Forwards loopback TCP to Redis; once armed with a marker, the first connection whose
    client sends bytes containing it gets no more replies (the connection stays open until
    the client gives up on it). Later connections are forwarded normally."""

    def __init__(self, host, port):
        self.target = (host, port)
        self.marker = None
        self.swallowed = 0
        self.connections = 0
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            s = socket.create_connection(self.target)
            self.connections += 1
            state = {"mute": False}
            threading.Thread(target=self._up, args=(c, s, state), daemon=True).start()
            threading.Thread(target=self._down, args=(s, c, state), daemon=True).start()

    def _up(self, c, s, state):
        tail = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    break
                with self.lock:
                    if self.marker and self.marker in tail + data:
                        self.marker = None
                        state["mute"] = True
                        self.swallowed += 1
                tail = data[-256:]
                s.sendall(data)
        except OSError:
            pass
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _down(self, s, c, state):
        try:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                if not state["mute"]:
                    c.sendall(data)
        except OSError:
            pass
        for x in (c, s):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.srv.close()


FUNNELS = [{
    "name": "lr",
    "stages": [
        {"name": "interest", "on": [{"type": "email_click"}], "stale_after": "30d"},
        {"name": "bought", "on": [{"type": "purchase"}], "conversion": True},
    ],
    "retarget": [{"name": "cart_abandoned", "after": {"type": "cart_add"},
                  "unless": [{"type": "purchase"}], "within": "1h"}],
}]


def main():
    check = Check("test_timer_lost_reply_e2e")
    st = Stack("lost-reply", funnels=FUNNELS, partitions=1, clock="event")
    u = urlparse(st.redis_url)
    proxy = SwallowingProxy(u.hostname or "127.0.0.1", u.port or 6379)
    hport = free_port()
    st.cfg["http"] = {"listen": f"127.0.0.1:{hport}"}
    st.cfg["redis"]["url"] = f"redis://127.0.0.1:{proxy.port}{u.path or ''}"
    with open(st.config_path, "w") as f:
        json.dump(st.cfg, f)
    x, y = "x-" + uuid.uuid4().hex[:8], "y-" + uuid.uuid4().hex[:8]
    x_event = "ev-x-" + uuid.uuid4().hex
    try:
        p = st.start(unset=("FUNNELD_REDIS_URL",))  # the environment would win over the proxy
        check.true(wait_for(lambda: http_get(hport, "/readyz")[0] == 200, 60), "ready")
        time.sleep(1.0)  # the tick has looked at every zset once: they are known empty
        st.produce([ev(x, "ev-x0-" + uuid.uuid4().hex, ts(T0), "email", "email_click")])
        check.eq(len(st.consume(st.topics["transitions"], expect=1, idle=0.5, timeout=60)), 1,
                 "X entered the funnel")
        proxy.marker = x_event.encode()
        st.produce([ev(x, x_event, ts(T0 + 10), "web", "cart_add")])
        check.true(wait_for(lambda: proxy.swallowed == 1 and proxy.connections >= 2, 60),
                   "the step's reply was swallowed and the daemon reconnected")
        check.true(wait_for(lambda: metrics(hport).get('funneld_events_total{outcome="duplicate"}', 0) >= 1, 60),
                   "the step sent again after the reconnect answered dup")
        # Another lead's touch two hours later moves the partition's event clock past the due
        # time (one hour after X's event) without arming anything of its own.
        st.produce([ev(y, "ev-y-" + uuid.uuid4().hex, ts(T0 + 7200), "web", "page_view")])
        got = st.consume(st.topics["retargeting"], expect=1, idle=1.0, timeout=45)
        trig = [json.loads(m.value()) for m in got]
        check.eq([(t["lead_id"], t["reason"]) for t in trig], [(x, "cart_abandoned")],
                 "the timer armed by the step whose reply was lost fired")
        check.eq(st.stop(p), 0, "exits 0 on SIGTERM")
        if check.failed:
            print(f"proxy: {proxy.connections} connection(s), {proxy.swallowed} swallowed")
            print(st.log_of(p)[-3000:])
    finally:
        st.close()
        proxy.close()
    check.done()


if __name__ == "__main__":
    main()
