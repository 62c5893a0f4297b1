"""cdp.py — a minimal Chrome DevTools Protocol client, Python 3 standard library only.

Starts Debian's headless chromium on a fresh profile, finds its page target and drives it
over the DevTools websocket, which this file speaks itself (RFC 6455, client side): no
websocket package, no selenium or playwright, so the browser test needs nothing beyond
`chromium` and `python3`.

    with Browser() as b:
        b.navigate("http://127.0.0.1:9464/")
        b.wait("document.body.dataset.ready === '1'", 20)
        n = b.eval("document.querySelectorAll('.stage').length")
        b.screenshot("/tmp/live-page.png")

Every blocking read has a deadline: chromium's stderr (read by a thread), the HTTP request
for the target list and each websocket frame. Replies are matched to requests by id; events
that arrive in between are kept (bounded) for navigate() and for the logs a failing test
prints. Leaving the `with` block kills chromium and removes its profile, also on error.
"""
import base64
import collections
import hashlib
import json
import os
import queue
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--remote-debugging-port=0"]
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 §1.3


class CDPError(RuntimeError):
    """A protocol error reply, a JS exception, or chromium misbehaving."""


class WebSocket:
    """The client half of RFC 6455 over one TCP connection: text frames out (masked, as a
    client must), whole messages in (continuations joined, pings answered)."""

    def __init__(self, url, timeout):
        u = urllib.parse.urlparse(url)
        if u.scheme != "ws":
            raise CDPError(f"not a ws:// url: {url}")
        self.sock = socket.create_connection((u.hostname, u.port or 80), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        path = u.path + ("?" + u.query if u.query else "")
        # No Origin header: chromium refuses websocket origins it was not told to allow,
        # but a client without one (like this) is accepted.
        req = (f"GET {path} HTTP/1.1\r\nHost: {u.hostname}:{u.port}\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(req.encode())
        deadline = time.monotonic() + timeout
        while b"\r\n\r\n" not in self.buf:
            self._fill(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        if not re.match(r"HTTP/1\.1 101\b", lines[0]):
            raise CDPError(f"websocket handshake refused: {lines[0]}")
        headers = {k.strip().lower(): v.strip()
                   for k, _, v in (ln.partition(":") for ln in lines[1:])}
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        if headers.get("sec-websocket-accept") != want:
            raise CDPError("websocket handshake: wrong Sec-WebSocket-Accept")

    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("websocket read timed out")
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("websocket read timed out") from None
        if not data:
            raise CDPError("websocket closed by chromium")
        self.buf += data

    def _take(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send_frame(self, opcode, payload):
        head = bytes([0x80 | opcode])
        n = len(payload)
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 1 << 16:
            head += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        # XOR with the repeated mask in one big-integer operation: fast enough for any
        # message CDP needs, without a per-byte Python loop.
        reps = mask * (n // 4 + 1)
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes(reps[:n], "big")).to_bytes(n, "big")
        self.sock.settimeout(30)
        self.sock.sendall(head + mask + masked)

    def send_text(self, text):
        self._send_frame(0x1, text.encode())

    def recv_message(self, deadline):
        """One whole text or binary message, or raises TimeoutError at the deadline."""
        parts = []
        while True:
            b0, b1 = self._take(2, deadline)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._take(2, deadline))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._take(8, deadline))[0]
            mask = self._take(4, deadline) if b1 & 0x80 else None  # servers never mask; tolerate
            payload = self._take(n, deadline)
            if mask:
                payload = bytes(c ^ mask[i % 4] for i, c in enumerate(payload))
            if opcode == 0x9:          # ping: answer, keep reading
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:          # unsolicited pong
                continue
            if opcode == 0x8:
                raise CDPError("websocket closed by chromium")
            parts.append(payload)      # 0x1/0x2 start a message, 0x0 continues it
            if fin:
                return b"".join(parts).decode("utf-8", "replace")

    def close(self):
        try:
            self._send_frame(0x8, struct.pack("!H", 1000))
        except OSError:
            pass
        self.sock.close()


class Browser:
    """Headless chromium with one page, driven over CDP. Use as a context manager."""

    def __init__(self, binary=CHROMIUM, window="1400,1000", timeout=30):
        self.binary, self.window, self.timeout = binary, window, timeout
        self.proc = self.ws = self.profile = self.drainer = None
        self.next_id = 0
        self.events = collections.deque(maxlen=2000)   # CDP events read while waiting
        self.console = collections.deque(maxlen=500)   # console messages, JS exceptions
        self.stderr_tail = collections.deque(maxlen=200)

    # ---- lifetime -------------------------------------------------------------------

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _start(self):
        self.profile = tempfile.mkdtemp(prefix="funneld-chromium-")
        args = [self.binary, *FLAGS, f"--user-data-dir={self.profile}",
                f"--window-size={self.window}", "about:blank"]
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, start_new_session=True)
        lines = queue.Queue()

        # A thread keeps draining stderr for chromium's whole life: a full pipe would
        # block it. The last lines are kept for error messages.
        def drain():
            for raw in self.proc.stderr:
                line = raw.decode("utf-8", "replace").rstrip()
                self.stderr_tail.append(line)
                lines.put(line)
            lines.put(None)
        self.drainer = threading.Thread(target=drain, daemon=True)
        self.drainer.start()

        deadline = time.monotonic() + self.timeout
        browser_ws = None
        while browser_ws is None:
            try:
                line = lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"chromium did not print its DevTools address in "
                                   f"{self.timeout} s: {self._tail()}") from None
            if line is None:
                raise CDPError(f"chromium exited ({self.proc.wait()}): {self._tail()}")
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                browser_ws = m.group(1)
        port = urllib.parse.urlparse(browser_ws).port

        # The page target may show up a moment after the browser's address is printed.
        page = None
        while page is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as r:
                    targets = json.load(r)
            except OSError as e:   # not answering yet: try again until the deadline
                targets = [str(e)]
            page = next((t for t in targets if isinstance(t, dict) and t.get("type") == "page"
                         and t.get("webSocketDebuggerUrl")), None)
            if page is None:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"no page target in {targets}")
                time.sleep(0.1)
        self.ws = WebSocket(page["webSocketDebuggerUrl"], self.timeout)
        self.call("Page.enable")
        self.call("Runtime.enable")  # console messages and uncaught exceptions, for logs()

    def close(self):
        if self.ws:
            try:
                self.ws.close()
            except OSError:
                pass
            self.ws = None
        if self.proc:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, 15)   # its own session: the helpers go too
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(self.proc.pid, 9)
                    except ProcessLookupError:
                        pass
                    self.proc.wait(5)
            # Helpers (renderer, GPU, zygote) may outlive the browser for a moment; they
            # share its process group, so they go before the profile is removed.
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            if self.drainer:
                self.drainer.join(2)   # stderr is at its end once chromium is gone
            self.proc.stderr.close()
            self.proc = None
        if self.profile:
            shutil.rmtree(self.profile, ignore_errors=True)
            self.profile = None

    def _tail(self):
        return " | ".join(list(self.stderr_tail)[-10:])

    # ---- protocol -------------------------------------------------------------------

    def call(self, method, params=None, timeout=None):
        """Send one command, return its result; events read meanwhile are kept."""
        self.next_id += 1
        mid = self.next_id
        self.ws.send_text(json.dumps({"id": mid, "method": method, "params": params or {}}))
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self._read(deadline, f"reply to {method}")
            if msg.get("id") == mid:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def _read(self, deadline, what):
        try:
            msg = json.loads(self.ws.recv_message(deadline))
        except TimeoutError:
            raise TimeoutError(f"chromium: no {what} in time") from None
        if msg.get("method") in ("Runtime.consoleAPICalled", "Runtime.exceptionThrown"):
            self.console.append(msg)  # apart, so a chatty page cannot push out a load event
        elif "method" in msg:
            self.events.append(msg)
        return msg

    def wait_event(self, method, timeout=None):
        """The first kept or next event named method (removed from the kept ones)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            for ev in self.events:
                if ev["method"] == method:
                    self.events.remove(ev)
                    return ev.get("params", {})
            self._read(deadline, f"event {method}")

    # ---- what tests use -------------------------------------------------------------

    def navigate(self, url, timeout=None):
        """Load url and wait for its load event (only the URL's #hash changing: no wait)."""
        self.events = collections.deque((e for e in self.events
                                         if e["method"] != "Page.loadEventFired"), maxlen=2000)
        r = self.call("Page.navigate", {"url": url}, timeout)
        if r.get("errorText"):
            raise CDPError(f"navigate {url}: {r['errorText']}")
        if r.get("loaderId"):  # none for a same-document move (a new #hash): no load event
            self.wait_event("Page.loadEventFired", timeout)

    def eval(self, js, timeout=None):
        """The value of a JS expression (promises awaited), as JSON brings it over."""
        r = self.call("Runtime.evaluate", {"expression": js, "returnByValue": True,
                                           "awaitPromise": True}, timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text", "exception")
            raise CDPError(f"JS exception in {js!r}: {text}")
        return r.get("result", {}).get("value")

    def wait(self, js_condition, timeout=10, every=0.3):
        """Poll a JS expression until it is truthy; return its value. A JS exception counts
        as not yet (the element may not exist yet) and is quoted if time runs out."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                v = self.eval(js_condition)
            except CDPError as e:
                v = e
            if v and not isinstance(v, CDPError):
                return v
            if time.monotonic() + every > deadline:
                raise TimeoutError(f"not true within {timeout} s: {js_condition} (last: {v!r})")
            time.sleep(every)

    def screenshot(self, path, full_page=False):
        """A PNG of the viewport, or of the whole page when full_page."""
        params = {"format": "png"}
        if full_page:
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params.update(captureBeyondViewport=True, clip={
                "x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        r = self.call("Page.captureScreenshot", params)
        with open(path, "wb") as f:
            f.write(base64.b64decode(r["data"]))

    def logs(self):
        """Console messages and uncaught exceptions seen so far, as text lines."""
        out = []
        for ev in self.console:
            p = ev.get("params", {})
            if ev["method"] == "Runtime.consoleAPICalled":
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))
                out.append(f"console.{p.get('type')}: {args}")
            elif ev["method"] == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append("exception: " + (d.get("exception", {}).get("description") or d.get("text", "")))
        return out
