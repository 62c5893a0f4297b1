"""sse.py — a server-sent events client on a plain socket, for the live view's tests
(tests/e2e/test_live_api_e2e.py, tests/browser/): it sends the request itself, so a test
controls every header (Authorization, Last-Event-ID) and can stop reading at will."""
import socket
import time


class Stream:
    """GET path on host:port as an event stream; events() yields (event, id, data)."""

    def __init__(self, port, path="/api/stream", headers=None, host="127.0.0.1"):
        self.sock = socket.create_connection((host, port), timeout=10)
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}", "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buf += chunk
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode(errors="replace")
        self.status = int(self.head.split(" ", 2)[1]) if self.head.startswith("HTTP/") else None

    def events(self, timeout):
        """Events as they come, for at most timeout seconds (then it stops yielding)."""
        deadline = time.time() + timeout
        event, eid, data = "message", None, []
        while time.time() < deadline:
            while b"\n" in self.buf:
                line, _, self.buf = self.buf.partition(b"\n")
                line = line.rstrip(b"\r").decode()
                if not line:
                    if data:
                        yield event, eid, "\n".join(data)
                    event, data = "message", []
                elif line.startswith(":"):
                    continue
                else:
                    k, _, v = line.partition(":")
                    v = v[1:] if v.startswith(" ") else v
                    if k == "event":
                        event = v
                    elif k == "data":
                        data.append(v)
                    elif k == "id":
                        eid = v
            self.sock.settimeout(max(0.05, min(1.0, deadline - time.time())))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                return
            self.buf += chunk

    def close(self):
        self.sock.close()
