"""A minimal HTTP/1.1 client for the bench's own clients (priming, probes, the herd and idle clients).

It speaks to a proxy either in absolute form (forward proxies) or origin form (reverse proxies); the
caller passes the request target. Responses are parsed incrementally so that one reader can serve
many non-blocking sockets: Content-Length, chunked and close-delimited bodies.
"""

import socket
import time


def request_bytes(target, host, extra=""):
    return f"GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: larder-bench\r\n{extra}\r\n".encode()


class ResponseReader:
    """Feed bytes in; `done` becomes True at the end of one response. Body bytes are counted, not kept."""

    def __init__(self):
        self.head = b""
        self.status = None
        self.headers = {}
        self.body_len = 0
        self.done = False
        self.framing = None  # "length", "chunked", "close"
        self._left = 0  # bytes left in the body (length) or in the current chunk (chunked)
        self._chunk_state = "size"  # size | data | crlf | trailer
        self._line = b""

    def feed(self, data):
        """Consumes data; returns the number of bytes used (the rest belongs to a next response)."""
        used = 0
        if self.status is None:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return len(data)
            rest = self.head[end + 4:]
            used = len(data) - len(rest)
            self._parse_head(self.head[:end].decode("latin-1"))
            self.head = b""
            data = rest
            if self.done:
                return used
        if self.framing == "length":
            take = min(self._left, len(data))
            self._left -= take
            self.body_len += take
            used += take
            if self._left == 0:
                self.done = True
            return used
        if self.framing == "close":
            self.body_len += len(data)
            return used + len(data)
        return used + self._feed_chunked(data)

    def eof(self):
        """The peer closed: completes a close-delimited body; anything else is truncated."""
        if self.framing == "close" and self.status is not None:
            self.done = True
        return self.done

    def _parse_head(self, text):
        lines = text.split("\r\n")
        self.status = int(lines[0].split(" ", 2)[1])
        for line in lines[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        if self.status in (204, 304) or 100 <= self.status < 200:
            self.done = True
        elif "chunked" in self.headers.get("transfer-encoding", "").lower():
            self.framing = "chunked"
        elif "content-length" in self.headers:
            self.framing = "length"
            self._left = int(self.headers["content-length"])
            self.done = self._left == 0
        else:
            self.framing = "close"

    def _feed_chunked(self, data):
        i, n = 0, len(data)
        while i < n and not self.done:
            if self._chunk_state == "data":
                take = min(self._left, n - i)
                self._left -= take
                self.body_len += take
                i += take
                if self._left == 0:
                    self._chunk_state = "crlf"
                continue
            j = data.find(b"\n", i)
            if j < 0:
                self._line += data[i:]
                return n
            line = (self._line + data[i:j]).strip()
            self._line = b""
            i = j + 1
            if self._chunk_state == "size":
                self._left = int(line.split(b";")[0], 16)
                self._chunk_state = "data" if self._left else "trailer"
            elif self._chunk_state == "crlf":
                self._chunk_state = "size"
            elif self._chunk_state == "trailer" and line == b"":
                self.done = True
        return i


class Client:
    """A blocking keep-alive connection to a proxy, for priming and probes (not for load)."""

    def __init__(self, port, timeout=30.0):
        self.port = port
        self.timeout = timeout
        self.sock = None

    def get(self, target, host, extra=""):
        """Returns (status, headers, body_len). Reconnects once if a kept-alive connection was closed."""
        for attempt in (0, 1):
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            try:
                return self._get(target, host, extra)
            except (ConnectionError, socket.timeout, OSError, ValueError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _get(self, target, host, extra):
        self.sock.sendall(request_bytes(target, host, extra))
        r = ResponseReader()
        while not r.done:
            data = self.sock.recv(1 << 20)
            if not data:
                if r.eof():
                    break
                raise ConnectionError("closed mid-response")
            r.feed(data)
        if r.headers.get("connection", "").lower() == "close" or r.framing == "close":
            self.close()
        return r.status, r.headers, r.body_len

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def wait_port(port, deadline, alive=lambda: True):
    while time.monotonic() < deadline and alive():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def free_port():
    """An unused TCP port on 127.0.0.1 (the kernel's choice; closed again at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
