"""Integration-test harness for larder, in the spirit of varnishtest: a scripted origin, a scripted DNS
server, a TCP echo server, the real larder binary, and clients that speak HTTP/1.1 byte by byte.

Python 3 standard library only (pytest drives it). Everything listens on loopback port 0, every socket
operation has a timeout, every process and thread this module starts is stopped at test end (see
conftest.py), and larder is stopped by the PID this module started, never by name.

Waiting: events the test can observe (the origin received a request, a DNS query arrived, a connection
closed) are awaited with threading.Condition. Only what no socket can tell us (a line appearing in a log
file, a counter catching up on the metrics endpoint) is polled, and always with a bound.
"""

import hashlib
import os
import re
import select
import shutil
import socket
import struct
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from signal import SIGKILL, SIGTERM
from typing import Callable, Iterable, List, Optional, Tuple, Union
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
DEFAULT_TIMEOUT = 10.0
READY_TIMEOUT = 10.0
CRLF = b"\r\n"

# Set by conftest.py's autouse fixture: everything started during one test is stopped at its end.
_registry: List[object] = []


def _register(obj):
    _registry.append(obj)
    return obj


def cleanup_all():
    """Stops what the current test started, clients first, larder next, servers last. Returns a list
    of problems found (e.g. larder died during the test), for the fixture to report."""
    problems = []
    order = {"client": 0, "larder": 1}
    items = sorted(_registry, key=lambda o: order.get(getattr(o, "_kind", ""), 2))
    _registry.clear()
    for obj in items:
        try:
            p = obj._cleanup()
            if p:
                problems.append(p)
        except Exception as e:  # keep stopping the others
            problems.append(f"cleanup of {obj!r} failed: {e!r}")
    return problems


def _wait_cond(cond: threading.Condition, pred: Callable[[], bool], timeout: float) -> bool:
    with cond:
        return cond.wait_for(pred, timeout)


def poll_until(pred: Callable[[], object], timeout: float = 5.0, interval: float = 0.02):
    """Bounded poll, only for state no socket can report (log files, counters). Returns the first truthy
    value of pred(), or None after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def free_port(host: str = LOOPBACK) -> int:
    """A port on which nothing listens: bind, read the port, close. (A race with another process taking
    it is possible but vanishingly rare on loopback.)"""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def ipv6_loopback_available() -> bool:
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def _hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _reset_close(sock: socket.socket):
    """Close with RST instead of FIN (SO_LINGER with a zero timeout)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


# ----------------------------------------------------------------------------------------------------
# Header lists

Headers = List[Tuple[str, str]]


def _norm_headers(h) -> Headers:
    if h is None:
        return []
    if isinstance(h, dict):
        return [(str(k), str(v)) for k, v in h.items()]
    return [(str(k), str(v)) for k, v in h]


class _HeaderAccess:
    headers: Headers

    def header(self, name: str, default=None) -> Optional[str]:
        """First value of a field (case-insensitive), or default."""
        n = name.lower()
        for k, v in self.headers:
            if k.lower() == n:
                return v
        return default

    def headers_named(self, name: str) -> List[str]:
        n = name.lower()
        return [v for k, v in self.headers if k.lower() == n]

    def has(self, name: str) -> bool:
        return bool(self.headers_named(name))

    def header_names(self) -> set:
        return {k.lower() for k, _ in self.headers}

    def tokens(self, name: str) -> List[str]:
        """Comma-separated list field as lower-case tokens (Connection, TE, Transfer-Encoding...)."""
        out = []
        for v in self.headers_named(name):
            out += [t.strip().lower() for t in v.split(",") if t.strip()]
        return out


# ----------------------------------------------------------------------------------------------------
# Byte-level reading shared by the client and the origin

class ProtocolError(Exception):
    pass


class _BytesSource:
    """Lets a Reader parse bytes already in memory (raw_request results)."""

    def __init__(self, data: bytes):
        self.data = data

    def recv(self, n):
        d, self.data = self.data[:n], self.data[n:]
        return d


class Reader:
    """Buffered reader over a socket (or a _BytesSource). Raises EOFError on a premature end of stream,
    socket.timeout when the peer is silent for the socket's timeout."""

    def __init__(self, sock, bufsize: int = 65536):
        self.sock = sock
        self.buf = bytearray()
        self.eof = False
        self.bufsize = bufsize
        self.raw: Optional[bytearray] = None  # when not None, every byte handed out is appended here

    def _fill(self) -> bool:
        if self.eof:
            return False
        d = self.sock.recv(self.bufsize)
        if not d:
            self.eof = True
            return False
        self.buf += d
        return True

    def _take(self, n: int) -> bytes:
        d = bytes(self.buf[:n])
        del self.buf[:n]
        if self.raw is not None:
            self.raw += d
        return d

    def read_until(self, delim: bytes, limit: int = 1 << 20) -> bytes:
        start = 0
        while True:
            i = self.buf.find(delim, start)
            if i >= 0:
                return self._take(i + len(delim))
            if len(self.buf) > limit:
                raise ProtocolError(f"no {delim!r} within {limit} bytes")
            start = max(0, len(self.buf) - len(delim) + 1)
            if not self._fill():
                raise EOFError(f"EOF before {delim!r}; have {bytes(self.buf[:200])!r}")

    def read_line(self) -> bytes:
        """One CRLF-terminated line without its CRLF (a bare LF is accepted too)."""
        line = self.read_until(b"\n")
        return line[:-2] if line.endswith(b"\r\n") else line[:-1]

    def read_some(self, maxn: int) -> bytes:
        """Up to maxn bytes, at least one unless at EOF (then b'')."""
        if not self.buf and not self._fill():
            return b""
        return self._take(min(maxn, len(self.buf)))

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"EOF after {len(self.buf)} of {n} bytes")
        return self._take(n)

    def read_to_eof(self) -> bytes:
        while self._fill():
            pass
        return self._take(len(self.buf))

    def read_head_lines(self, limit: int = 1 << 20) -> List[bytes]:
        """Start line plus header lines of a message (up to the empty line)."""
        lines = []
        total = 0
        while True:
            line = self.read_line()
            total += len(line)
            if total > limit:
                raise ProtocolError("head too large")
            if not line:
                if not lines:  # RFC 9112 s2.2: ignore at least one empty line before the start line
                    continue
                return lines
            lines.append(line)

    def iter_chunked(self, trailers_out: Optional[Headers] = None, piece: int = 65536):
        """Decodes a chunked body (RFC 9112 s7.1), yielding data; trailer fields go to trailers_out."""
        while True:
            size_line = self.read_line()
            size_txt = size_line.split(b";", 1)[0].strip()
            try:
                size = int(size_txt, 16)
            except ValueError:
                raise ProtocolError(f"bad chunk size line {size_line!r}")
            if size == 0:
                break
            left = size
            while left:
                d = self.read_some(min(left, piece))
                if not d:
                    raise EOFError(f"EOF inside a chunk ({left} bytes missing)")
                left -= len(d)
                yield d
            if self.read_line() != b"":
                raise ProtocolError("chunk data not followed by CRLF")
        while True:
            line = self.read_line()
            if not line:
                return
            if trailers_out is not None:
                trailers_out.append(_split_field(line))

    def iter_length(self, n: int, piece: int = 65536):
        left = n
        while left:
            d = self.read_some(min(left, piece))
            if not d:
                raise EOFError(f"EOF with {left} of {n} body bytes missing")
            left -= len(d)
            yield d

    def iter_to_eof(self, piece: int = 65536):
        while True:
            d = self.read_some(piece)
            if not d:
                return
            yield d


def _split_field(line: bytes) -> Tuple[str, str]:
    if b":" not in line:
        raise ProtocolError(f"header line without colon: {line!r}")
    k, v = line.split(b":", 1)
    return k.decode("latin-1"), v.strip(b" \t").decode("latin-1")


# ----------------------------------------------------------------------------------------------------
# Responses as a client sees them

@dataclass
class HttpResponse(_HeaderAccess):
    version: str
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    trailers: Headers = field(default_factory=list)
    framing: str = "none"  # "length" | "chunked" | "close" | "none"
    interim: List["HttpResponse"] = field(default_factory=list)  # 1xx seen before this one
    raw: bytes = b""
    method: str = "GET"

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def trailer(self, name: str) -> Optional[str]:
        n = name.lower()
        for k, v in self.trailers:
            if k.lower() == n:
                return v
        return None

    def __repr__(self):
        return (f"<HttpResponse {self.version} {self.status} {self.reason!r} framing={self.framing} "
                f"headers={self.headers} body[{len(self.body)}]={self.body[:120]!r}>")


def _response_framing(method: str, status: int, h: _HeaderAccess) -> Tuple[str, int]:
    """RFC 9112 s6.3: how the body of this response is delimited."""
    if method == "HEAD" or 100 <= status < 200 or status in (204, 304):
        return "none", 0
    if method == "CONNECT" and 200 <= status < 300:
        return "none", 0
    if h.has("transfer-encoding"):
        if h.tokens("transfer-encoding")[-1:] == ["chunked"]:
            return "chunked", 0
        return "close", 0
    if h.has("content-length"):
        vals = {v.strip() for v in ",".join(h.headers_named("content-length")).split(",")}
        if len(vals) != 1 or not next(iter(vals)).isdigit():
            raise ProtocolError(f"bad Content-Length {h.headers_named('content-length')}")
        return "length", int(next(iter(vals)))
    return "close", 0


def read_response_head(reader: Reader, method: str = "GET") -> HttpResponse:
    """Reads one status line and header section. The body is left in the reader: use iter_body()."""
    lines = reader.read_head_lines()
    m = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ProtocolError(f"bad status line {lines[0]!r}")
    headers = [_split_field(l) for l in lines[1:]]
    r = HttpResponse(m.group(1).decode(), int(m.group(2)), (m.group(3) or b"").decode("latin-1"), headers,
                     method=method)
    r.framing, r._length = _response_framing(method, r.status, r)
    return r


def iter_body(reader: Reader, resp: HttpResponse, piece: int = 65536):
    """Yields the body of a response whose head was read with read_response_head()."""
    if resp.framing == "length":
        return reader.iter_length(resp._length, piece)
    if resp.framing == "chunked":
        return reader.iter_chunked(resp.trailers, piece)
    if resp.framing == "close":
        return reader.iter_to_eof(piece)
    return iter(())


def read_response(reader: Reader, method: str = "GET", return_interim: bool = False) -> HttpResponse:
    """Reads one complete response. 1xx interim responses (RFC 9110 s15.2) are collected in .interim
    unless return_interim, in which case the first one is returned as is (to send a body after 100)."""
    interim = []
    while True:
        reader.raw = bytearray()
        try:
            r = read_response_head(reader, method)
            if 100 <= r.status < 200 and r.status != 101:
                r.raw = bytes(reader.raw)
                if return_interim:
                    return r
                interim.append(r)
                continue
            r.body = b"".join(iter_body(reader, r))
            r.raw = bytes(reader.raw)
        finally:
            reader.raw = None
        r.interim = interim
        return r


def parse_response(data: bytes, method: str = "GET") -> HttpResponse:
    return read_response(Reader(_BytesSource(data)), method)


def parse_responses(data: bytes, methods: Iterable[str]) -> List[HttpResponse]:
    rd = Reader(_BytesSource(data))
    return [read_response(rd, m) for m in methods]


# ----------------------------------------------------------------------------------------------------
# Requests as a client sends them

def build_request(method: str, url: str, headers=None, body: bytes = b"", version: str = "HTTP/1.1",
                  host: Union[bool, str, None] = True, chunked: Optional[List[bytes]] = None,
                  trailers=None) -> bytes:
    """Serialises a request with `url` as the request-target, verbatim (absolute-form for a proxy).
    host=True derives Host from the URL authority; a string sets it; None/False omits it.
    chunked: a list of chunks sent with Transfer-Encoding: chunked (and `trailers`), instead of body.
    Content-Length is added for a non-empty body (and for POST/PUT/PATCH) unless the caller gave one."""
    h = _norm_headers(headers)
    names = {k.lower() for k, _ in h}
    pre = []
    if host is True and "host" not in names:
        u = urlsplit(url)
        if u.netloc:
            pre.append(("Host", u.netloc))
    elif isinstance(host, str):
        pre.append(("Host", host))
    h = pre + h
    if chunked is not None:
        if "transfer-encoding" not in names:
            h.append(("Transfer-Encoding", "chunked"))
        data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunked if c) + b"0\r\n"
        data += b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in _norm_headers(trailers)) + CRLF
    else:
        data = body
        if "content-length" not in names and "transfer-encoding" not in names and (
                body or method in ("POST", "PUT", "PATCH")):
            h.append(("Content-Length", str(len(body))))
    head = f"{method} {url} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in h) + "\r\n"
    return head.encode("latin-1") + data


def _addr_of(target) -> Tuple[str, int]:
    if isinstance(target, tuple):
        return target
    return (target.host, target.port)


class Client:
    """One client connection to larder (or any (host, port)). Keeps one Reader so keep-alive and
    pipelined responses can be read back one after the other."""
    _kind = "client"

    def __init__(self, target, timeout: float = DEFAULT_TIMEOUT, source: Optional[str] = None):
        host, port = _addr_of(target)
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        if source:
            self.sock.bind((source, 0))
        self.sock.connect((host, port))
        self.reader = Reader(self.sock)
        _register(self)

    def settimeout(self, t: float):
        self.sock.settimeout(t)

    def send(self, data: bytes):
        self.sock.sendall(data)

    def send_request(self, method: str, url: str, headers=None, body: bytes = b"", **kw):
        self.send(build_request(method, url, headers, body, **kw))

    def read_response(self, method: str = "GET", return_interim: bool = False) -> HttpResponse:
        return read_response(self.reader, method, return_interim)

    def read_head(self, method: str = "GET") -> HttpResponse:
        return read_response_head(self.reader, method)

    def iter_body(self, resp: HttpResponse, piece: int = 65536):
        return iter_body(self.reader, resp, piece)

    def request(self, method: str, url: str, headers=None, body: bytes = b"", **kw) -> HttpResponse:
        self.send_request(method, url, headers, body, **kw)
        return self.read_response(method)

    def recv_some(self, n: int = 65536) -> bytes:
        """Bytes as they come (tunnels); b'' at EOF."""
        return self.reader.read_some(n)

    def recv_exact(self, n: int) -> bytes:
        return self.reader.read_exact(n)

    def read_to_eof(self) -> bytes:
        return self.reader.read_to_eof()

    def wait_closed(self, timeout: float) -> Tuple[bool, bytes]:
        """Reads until the peer closes, at most `timeout` seconds. Returns (closed, bytes received).
        A reset counts as closed."""
        old = self.sock.gettimeout()
        self.sock.settimeout(timeout)
        got = bytearray()
        try:
            while True:
                d = self.reader.read_some(65536)
                if not d:
                    return True, bytes(got)
                got += d
        except socket.timeout:
            return False, bytes(got)
        except ConnectionResetError:
            return True, bytes(got)
        finally:
            self.sock.settimeout(old)

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def _cleanup(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def fetch(target, url: str, method: str = "GET", headers=None, body: bytes = b"",
          timeout: float = DEFAULT_TIMEOUT, **kw) -> HttpResponse:
    """One request on a fresh connection; returns the parsed response."""
    with Client(target, timeout) as c:
        return c.request(method, url, headers, body, **kw)


def raw_request(target, data: bytes, read_until_close: bool = True, timeout: float = DEFAULT_TIMEOUT,
                method: Optional[str] = None) -> bytes:
    """Sends bytes verbatim on a fresh connection; returns the raw bytes of the response: everything
    until the peer closes (read_until_close), or exactly one response parsed by its framing."""
    with Client(target, timeout) as c:
        c.send(data)
        if read_until_close:
            try:
                return c.read_to_eof()
            except ConnectionResetError:
                return bytes(c.reader.buf)
        m = method or data.split(b" ", 1)[0].decode("latin-1")
        return c.read_response(m).raw


# ----------------------------------------------------------------------------------------------------
# External clients

_PROXY_ENV = ("http_proxy", "https_proxy", "ftp_proxy", "all_proxy", "no_proxy")


def clean_env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_ENV}
    env.update(extra)
    return env


def curl(target, url: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """curl through larder; stdout is the body (bytes). Proxy variables cleared from the environment."""
    host, port = _addr_of(target)
    cmd = ["curl", "-sS", "--noproxy", "", "-x", f"http://{_hostport(host, port)}", "--max-time", str(int(timeout)),
           *args, url]
    return subprocess.run(cmd, capture_output=True, env=clean_env(), timeout=timeout + 5)


def wget(target, url: str, *args: str, timeout: float = 30.0) -> subprocess.CompletedProcess:
    """wget through larder with http_proxy set explicitly; stdout is the body (bytes)."""
    host, port = _addr_of(target)
    proxy = f"http://{_hostport(host, port)}/"
    cmd = ["wget", "--no-config", "-q", "-O", "-", "--tries=1", f"--timeout={int(timeout)}", "-e", "use_proxy=yes",
           "-e", f"http_proxy={proxy}", *args, url]
    return subprocess.run(cmd, capture_output=True, env=clean_env(http_proxy=proxy), timeout=timeout + 5)


# ----------------------------------------------------------------------------------------------------
# Scripted origin

@dataclass
class Response:
    """What the origin does with one request.

    action: "respond" (default), "close" (close the connection without a response), "reset" (RST
    without a response), "hang" (read the request, never answer; held until the origin stops),
    "raw" (send `raw` verbatim, then close unless keep_open).
    framing: "length" (Content-Length added unless in headers), "chunked" (Transfer-Encoding added),
    "close" (no length; the connection is closed after the body), "none" (no framing field added: the
    caller's headers say it all).
    body: bytes, or an iterable of bytes (with `length` for "length" framing).
    reset: "after_head" (RST right after the head) or "mid_body" (RST after `reset_after` body bytes,
    default half the body).
    delay: seconds before the head; chunk_delay: seconds between body pieces; drip: piece size in which
    the body is sent (each piece is one chunk with chunked framing).
    close: close the connection after this response without saying so (the origin going idle-away)."""
    status: int = 200
    headers: Headers = field(default_factory=list)
    body: Union[bytes, Iterable[bytes]] = b""
    reason: Optional[str] = None
    version: str = "HTTP/1.1"
    framing: str = "length"
    length: Optional[int] = None
    trailers: Headers = field(default_factory=list)
    delay: float = 0.0
    chunk_delay: float = 0.0
    drip: int = 0
    action: str = "respond"
    raw: bytes = b""
    keep_open: bool = False
    reset: Optional[str] = None
    reset_after: Optional[int] = None
    close: bool = False


def Close() -> Response:
    return Response(action="close")


def Reset() -> Response:
    return Response(action="reset")


def Hang() -> Response:
    return Response(action="hang")


def Raw(data: bytes, keep_open: bool = False) -> Response:
    return Response(action="raw", raw=data, keep_open=keep_open)


REASONS = {100: "Continue", 200: "OK", 201: "Created", 204: "No Content", 206: "Partial Content",
           301: "Moved Permanently", 302: "Found", 304: "Not Modified", 400: "Bad Request", 403: "Forbidden",
           404: "Not Found", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class RecordedRequest(_HeaderAccess):
    method: str
    target: str
    version: str
    headers: Headers
    body: Optional[bytes]  # None when larger than the origin's max_record_body
    body_len: int
    body_sha256: str
    trailers: Headers
    raw_head: bytes
    conn: int  # serial number of the connection it came on (0-based)
    seq: int  # index of the request on that connection (0-based)
    chunked: bool

    @property
    def path(self) -> str:
        return self.target

    def __repr__(self):
        return (f"<RecordedRequest {self.method} {self.target} {self.version} conn={self.conn} seq={self.seq} "
                f"headers={self.headers} body_len={self.body_len}>")


def _gen_bytes(total: int, block: bytes):
    """`total` bytes made of repeated `block`, generated on the fly."""
    left = total
    mv = memoryview(block)
    while left > 0:
        n = min(left, len(block))
        yield mv[:n]
        left -= n


def pattern_body(total: int, block_size: int = 256 * 1024):
    """A large body produced on the fly (no memory held) and its length. Not cryptographically random;
    good for size and back-pressure tests."""
    block = bytes(range(256)) * (block_size // 256)
    return _gen_bytes(total, block)


def random_bytes(n: int, seed: int = 1) -> bytes:
    import random
    return random.Random(seed).randbytes(n)


class _StoppableServer:
    """Accept loop with a wake-up pipe so close() never waits on a blocked accept()."""

    def _start_listener(self, host: str, typ=socket.SOCK_STREAM):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.lsock = socket.socket(fam, typ)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        if typ == socket.SOCK_STREAM:
            self.lsock.listen(128)
        self.host = host
        self.port = self.lsock.getsockname()[1]
        self._wake_r, self._wake_w = os.pipe()
        self._stop = threading.Event()
        self._threads: List[threading.Thread] = []
        self._conns: List[socket.socket] = []
        self._lock = threading.Lock()

    def _wait_readable(self) -> bool:
        r, _, _ = select.select([self.lsock, self._wake_r], [], [])
        return self.lsock in r and not self._stop.is_set()

    def _spawn(self, fn, *args):
        t = threading.Thread(target=fn, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _track(self, c: socket.socket):
        with self._lock:
            self._conns.append(c)

    def close(self):
        if self._stop.is_set():
            return
        self._stop.set()
        os.write(self._wake_w, b"x")
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(5)
        self.lsock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _cleanup(self):
        self.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    @property
    def addr(self) -> str:
        return _hostport(self.host, self.port)


class Origin(_StoppableServer):
    """Scripted HTTP/1.1 origin on loopback port 0, one thread per connection, raw sockets.

    What it answers, in order of precedence: the next canned Response queued with respond(); else
    handler(request) if set; else 200 text/plain "<METHOD> <target>\\n".
    It records every request fully read (chunked bodies decoded, trailers kept), counts connections and
    requests per connection, and answers Expect: 100-continue with 100 Continue unless expect_100=False."""
    _kind = "origin"

    def __init__(self, host: str = LOOPBACK, handler: Optional[Callable[[RecordedRequest], Response]] = None,
                 timeout: float = 30.0, max_record_body: int = 64 << 20, expect_100: bool = True,
                 read_rate: float = 0.0):
        self._start_listener(host)
        self.handler = handler
        self.timeout = timeout
        self.max_record_body = max_record_body
        self.expect_100 = expect_100
        self.read_rate = read_rate  # bytes/s for request bodies; 0 = as fast as possible
        self.requests: List[RecordedRequest] = []
        self.connections = 0
        self.closed_connections = 0
        self.requests_per_connection: List[int] = []
        self.errors: List[str] = []
        self._queue: List[Response] = []
        self._cond = threading.Condition()
        self._spawn(self._accept_loop)
        _register(self)

    # -- script

    def respond(self, *responses: Response):
        """Queue canned responses, used one per request in arrival order."""
        with self._cond:
            self._queue.extend(responses)

    def url(self, path: str = "/") -> str:
        """Absolute URL of `path` on this origin, by address: http://127.0.0.1:PORT/path."""
        return f"http://{self.addr}{path}"

    def url_for(self, name: str, path: str = "/") -> str:
        """URL naming this origin by a DNS name (with its port)."""
        return f"http://{name}:{self.port}{path}"

    # -- waiting

    def wait_for_requests(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> List[RecordedRequest]:
        if not _wait_cond(self._cond, lambda: len(self.requests) >= n, timeout):
            raise AssertionError(f"origin: waited {timeout}s for {n} requests, got {len(self.requests)}: "
                                 f"{self.requests}")
        return list(self.requests)

    def wait_for_connections(self, n: int, timeout: float = DEFAULT_TIMEOUT):
        if not _wait_cond(self._cond, lambda: self.connections >= n, timeout):
            raise AssertionError(f"origin: waited {timeout}s for {n} connections, got {self.connections}")

    def wait_for_closed(self, n: int, timeout: float = DEFAULT_TIMEOUT):
        """Waits until n connections have ended (by either side)."""
        if not _wait_cond(self._cond, lambda: self.closed_connections >= n, timeout):
            raise AssertionError(f"origin: waited {timeout}s for {n} closed connections, "
                                 f"got {self.closed_connections}")

    def requests_for(self, target: str) -> List[RecordedRequest]:
        with self._cond:
            return [r for r in self.requests if r.target == target]

    # -- machinery

    def _accept_loop(self):
        while self._wait_readable():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            c.settimeout(self.timeout)
            self._track(c)
            with self._cond:
                cid = self.connections
                self.connections += 1
                self.requests_per_connection.append(0)
                self._cond.notify_all()
            self._spawn(self._serve, c, cid)

    def _next_response(self, req: RecordedRequest) -> Response:
        with self._cond:
            if self._queue:
                return self._queue.pop(0)
        if self.handler is not None:
            return self.handler(req)
        return Response(headers=[("Content-Type", "text/plain")], body=f"{req.method} {req.target}\n".encode())

    def _serve(self, c: socket.socket, cid: int):
        rd = Reader(c)
        seq = 0
        reset = False
        try:
            while not self._stop.is_set():
                try:
                    req = self._read_request(rd, c, cid, seq)
                except EOFError:
                    return
                if req is None:
                    return
                with self._cond:
                    self.requests.append(req)
                    self.requests_per_connection[cid] += 1
                    self._cond.notify_all()
                seq += 1
                resp = self._next_response(req)
                keep = self._send_response(c, req, resp)
                if keep == "reset":
                    reset = True
                    return
                if not keep:
                    return
        except (socket.timeout, ConnectionError, OSError, ProtocolError) as e:
            if not self._stop.is_set():
                self.errors.append(f"conn {cid}: {e!r}")
        finally:
            if reset:
                _reset_close(c)
            else:
                try:
                    c.close()
                except OSError:
                    pass
            with self._cond:
                self.closed_connections += 1
                self._cond.notify_all()

    def _read_request(self, rd: Reader, c: socket.socket, cid: int, seq: int) -> Optional[RecordedRequest]:
        rd.raw = bytearray()
        try:
            lines = rd.read_head_lines()
        except EOFError:
            if rd.buf:
                self.errors.append(f"conn {cid}: EOF inside a request head: {bytes(rd.buf[:200])!r}")
            return None
        raw_head = bytes(rd.raw)
        rd.raw = None
        parts = lines[0].decode("latin-1").split(" ")
        if len(parts) != 3:
            raise ProtocolError(f"bad request line {lines[0]!r}")
        method, target, version = parts
        headers = [_split_field(l) for l in lines[1:]]
        tmp = _HeaderAccess()
        tmp.headers = headers
        if self.expect_100 and "100-continue" in tmp.tokens("expect"):
            c.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
        h = hashlib.sha256()
        body = bytearray()
        n = 0
        trailers: Headers = []
        chunked = False
        if tmp.has("transfer-encoding"):
            chunked = True
            pieces = rd.iter_chunked(trailers)
        elif tmp.has("content-length"):
            pieces = rd.iter_length(int(tmp.header("content-length")))
        else:
            pieces = iter(())
        t0 = time.monotonic()
        for d in pieces:
            n += len(d)
            h.update(d)
            if n <= self.max_record_body:
                body += d
            if self.read_rate:
                ahead = n / self.read_rate - (time.monotonic() - t0)
                if ahead > 0:
                    time.sleep(ahead)  # pacing a slow reader, not synchronisation
        return RecordedRequest(method, target, version, headers, bytes(body) if n <= self.max_record_body else None,
                               n, h.hexdigest(), trailers, raw_head, cid, seq, chunked)

    def _send_response(self, c: socket.socket, req: RecordedRequest, r: Response):
        """Returns True to keep the connection, False to close it, "reset" to RST it."""
        if r.delay:
            self._stop.wait(r.delay)
        if r.action == "close":
            return False
        if r.action == "reset":
            return "reset"
        if r.action == "hang":
            self._stop.wait(self.timeout)
            return False
        if r.action == "raw":
            c.sendall(r.raw)
            return r.keep_open
        headers = list(r.headers)
        names = {k.lower() for k, _ in headers}
        no_body = req.method == "HEAD" or r.status in (204, 304) or 100 <= r.status < 200
        body = r.body
        if isinstance(body, (bytes, bytearray, memoryview)):
            length = len(body)
            pieces = [bytes(body)] if not r.drip else [bytes(body[i:i + r.drip]) for i in range(0, len(body), r.drip)]
        else:
            length = r.length
            pieces = body
        if r.framing == "length" and "content-length" not in names and r.status not in (204, 304) and \
                not 100 <= r.status < 200:
            if length is None:
                raise ValueError("Response: a generated body with length framing needs length=")
            headers.append(("Content-Length", str(length)))
        elif r.framing == "chunked" and "transfer-encoding" not in names:
            headers.append(("Transfer-Encoding", "chunked"))
        reason = r.reason if r.reason is not None else REASONS.get(r.status, "Status")
        head = f"{r.version} {r.status} {reason}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        c.sendall(head.encode("latin-1"))
        if r.reset == "after_head":
            return "reset"
        sent = 0
        reset_at = r.reset_after if r.reset_after is not None else (length or 0) // 2
        if not no_body:
            first = True
            for p in pieces:
                if not p:
                    continue
                if r.chunk_delay and not first:
                    if self._stop.wait(r.chunk_delay):
                        return False
                first = False
                if r.reset == "mid_body" and sent + len(p) >= reset_at:
                    p = p[:max(0, reset_at - sent)]
                    self._send_piece(c, r, p)
                    return "reset"
                self._send_piece(c, r, p)
                sent += len(p)
            if r.framing == "chunked":
                c.sendall(b"0\r\n" + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in r.trailers) + CRLF)
        if r.reset == "mid_body":
            return "reset"
        if r.close or r.framing == "close":
            return False
        conn_tokens = [t.strip().lower() for k, v in headers if k.lower() == "connection" for t in v.split(",")]
        if "close" in conn_tokens or "close" in req.tokens("connection"):
            return False
        if req.version == "HTTP/1.0" and "keep-alive" not in req.tokens("connection"):
            return False
        if r.version == "HTTP/1.0" and "keep-alive" not in conn_tokens:
            return False
        return True

    @staticmethod
    def _send_piece(c: socket.socket, r: Response, p):
        if not p:
            return
        if r.framing == "chunked":
            c.sendall(b"%x\r\n" % len(p))
            c.sendall(p)
            c.sendall(CRLF)
        else:
            c.sendall(p)

    def __repr__(self):
        return f"<Origin {self.addr}>"


# ----------------------------------------------------------------------------------------------------
# TCP echo server (CONNECT tunnels)

class EchoServer(_StoppableServer):
    """Echoes every byte back. When the client half-closes, it sets eof_seen, sends `final`, and closes:
    so a test can check that data still flows server->client after client->server has ended."""
    _kind = "echo"

    def __init__(self, host: str = LOOPBACK, final: bytes = b"bye\n", timeout: float = 30.0):
        self._start_listener(host)
        self.final = final
        self.timeout = timeout
        self.connections = 0
        self.received = bytearray()
        self._cond = threading.Condition()
        self.eof_seen = False
        self._spawn(self._accept_loop)
        _register(self)

    def _accept_loop(self):
        while self._wait_readable():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            c.settimeout(self.timeout)
            self._track(c)
            with self._cond:
                self.connections += 1
                self._cond.notify_all()
            self._spawn(self._serve, c)

    def _serve(self, c: socket.socket):
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                with self._cond:
                    self.received += d
                c.sendall(d)
            with self._cond:
                self.eof_seen = True
                self._cond.notify_all()
            c.sendall(self.final)
        except OSError:
            pass
        finally:
            c.close()

    def wait_eof(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        return _wait_cond(self._cond, lambda: self.eof_seen, timeout)

    def wait_for_connections(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> bool:
        return _wait_cond(self._cond, lambda: self.connections >= n, timeout)


# ----------------------------------------------------------------------------------------------------
# Scripted DNS (UDP)

QTYPE_A, QTYPE_AAAA = 1, 28


class DnsResponder(_StoppableServer):
    """Authoritative-looking UDP DNS server on 127.0.0.1:0. names: {"origin.test": ["127.0.0.1", "::1"]}.
    Answers A/AAAA from that map with `ttl`, NODATA for a known name without that family, NXDOMAIN for
    an unknown name. Counts queries per name (lower-case, no trailing dot) and per (name, qtype)."""
    _kind = "dns"

    def __init__(self, names: Optional[dict] = None, ttl: int = 60, host: str = LOOPBACK):
        self._start_listener(host, socket.SOCK_DGRAM)
        self.names = {k.lower().rstrip("."): list(v) for k, v in (names or {}).items()}
        self.ttl = ttl
        self.queries: dict = {}
        self.queries_by_type: dict = {}
        self.total = 0
        self._cond = threading.Condition()
        self._spawn(self._loop)
        _register(self)

    @property
    def server_arg(self) -> str:
        """Value for --dns-servers."""
        return self.addr

    def count(self, name: str) -> int:
        with self._cond:
            return self.queries.get(name.lower(), 0)

    def wait_for_queries(self, name: str, n: int, timeout: float = DEFAULT_TIMEOUT) -> bool:
        return _wait_cond(self._cond, lambda: self.queries.get(name.lower(), 0) >= n, timeout)

    def _loop(self):
        while self._wait_readable():
            try:
                data, peer = self.lsock.recvfrom(4096)
            except OSError:
                continue
            try:
                reply = self._answer(data)
            except Exception:
                continue  # malformed query: drop it, as a server would
            if reply:
                self.lsock.sendto(reply, peer)

    def _answer(self, q: bytes) -> Optional[bytes]:
        qid, flags, qdcount = struct.unpack("!HHH", q[:6])
        if flags & 0x8000 or qdcount < 1:
            return None
        i = 12
        labels = []
        while True:
            ln = q[i]
            i += 1
            if ln == 0:
                break
            labels.append(q[i:i + ln].decode("ascii", "replace"))
            i += ln
        qtype, qclass = struct.unpack("!HH", q[i:i + 4])
        question = q[12:i + 4]
        name = ".".join(labels).lower()
        with self._cond:
            self.total += 1
            self.queries[name] = self.queries.get(name, 0) + 1
            self.queries_by_type[(name, qtype)] = self.queries_by_type.get((name, qtype), 0) + 1
            self._cond.notify_all()
        answers = []
        rcode = 0
        if name not in self.names:
            rcode = 3  # NXDOMAIN
        else:
            for a in self.names[name]:
                if qtype == QTYPE_A and ":" not in a:
                    answers.append((QTYPE_A, socket.inet_pton(socket.AF_INET, a)))
                elif qtype == QTYPE_AAAA and ":" in a:
                    answers.append((QTYPE_AAAA, socket.inet_pton(socket.AF_INET6, a)))
        rflags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | rcode  # QR AA RD RA
        out = struct.pack("!HHHHHH", qid, rflags, 1, len(answers), 0, 0) + question
        for t, rdata in answers:
            out += struct.pack("!HHHIH", 0xC00C, t, 1, self.ttl, len(rdata)) + rdata
        return out

    def __repr__(self):
        return f"<DnsResponder {self.addr}>"


# ----------------------------------------------------------------------------------------------------
# larder itself

ACCESS_RE = re.compile(
    r"^(?P<time>\d+\.\d{3})\s+(?P<elapsed>\d+) (?P<client>\S+) (?P<result>[A-Z_]+)/(?P<status>\d{3}) "
    r"(?P<bytes>\d+) (?P<method>\S+) (?P<url>\S+) (?P<user>\S+) (?P<hier>[A-Z_]+)/(?P<peer>\S+) (?P<type>\S+)$")


def parse_access_line(line: str) -> Optional[dict]:
    """Squid native format, 10 fields:
    time.ms elapsed client result/status bytes method URL user hierarchy/peer type"""
    m = ACCESS_RE.match(line.rstrip("\n"))
    return m.groupdict() if m else None


_OPS = {"==": lambda a, b: a == b, "!=": lambda a, b: a != b, ">=": lambda a, b: a >= b,
        "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, "<": lambda a, b: a < b}


def larder_bin() -> str:
    b = os.environ.get("LARDER_BIN")
    if not b:
        raise RuntimeError("LARDER_BIN is not set: point it at build/larder (ctest sets it)")
    if not os.access(b, os.X_OK):
        raise RuntimeError(f"LARDER_BIN={b} is not an executable file (is the proxy built?)")
    return b


class Larder:
    """The real larder binary, started on 127.0.0.1:0 with its cache and logs in tmp_path.

        l = Larder(tmp_path, "--first-byte-timeout", "500ms", conf="connect_ports 443\\n")
        l.port; fetch(l, origin.url("/a")); l.expect("client_requests", ">=", 1); l.stop() == 0

    Extra args are appended to the command line (so they override the inline config file, and a second
    --listen appends a listener). The process is stopped at test end by the conftest fixture."""
    _kind = "larder"

    def __init__(self, tmp_path, *args: str, conf: Optional[str] = None, listen: str = "127.0.0.1:0",
                 ready_timeout: float = READY_TIMEOUT, log_level: str = "debug"):
        base = Path(tmp_path)
        d = base / "larder"
        i = 1
        while d.exists():  # a second larder in the same test gets its own directory
            i += 1
            d = base / f"larder{i}"
        d.mkdir(parents=True)
        self.dir = d
        self.cache_dir = d / "cache"
        self.access_log = d / "access.log"
        self.error_log = d / "error.log"
        self.stdout_log = d / "stdout.log"
        self.stderr_log = d / "stderr.log"
        cmd = [larder_bin()]
        if conf is not None:
            cf = d / "larder.conf"
            cf.write_text(conf)
            cmd += ["-c", str(cf)]
        cmd += ["--listen", listen, "--cache-dir", str(self.cache_dir), "--access-log", str(self.access_log),
                "--error-log", str(self.error_log), "--log-level", log_level, *args]
        self.cmd = cmd
        self.stdout_lines: List[str] = []
        self.listeners: List[Tuple[str, int]] = []
        self._ready = False
        self._stdout_done = False
        self._stopped_by_test = False
        self._cond = threading.Condition()
        self._errf = open(self.stderr_log, "wb")
        # setpriv --pdeathsig: if pytest itself is killed (a CTest timeout), larder goes with it instead
        # of lingering. It execs larder, so the PID is larder's.
        wrap = ["setpriv", "--pdeathsig", "KILL", "--"] if shutil.which("setpriv") else []
        self.proc = subprocess.Popen(wrap + cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=self._errf, cwd=d)
        self.pid = self.proc.pid
        _register(self)
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        with self._cond:
            ok = self._cond.wait_for(lambda: self._ready or self._stdout_done, ready_timeout)
        if not (ok and self._ready):
            why = "exited" if self.proc.poll() is not None else f"not ready within {ready_timeout}s"
            self._kill()
            self._finish()
            self._stopped_by_test = True  # reported here; the end-of-test check need not repeat it
            raise RuntimeError(f"larder {why} (rc={self.proc.returncode})\n{self.diagnostics()}")
        self.host, self.port = self.listeners[0]

    def _read_stdout(self):
        with open(self.stdout_log, "w") as log:
            for raw in self.proc.stdout:
                line = raw.decode("utf-8", "replace").rstrip("\n")
                log.write(line + "\n")
                log.flush()
                with self._cond:
                    self.stdout_lines.append(line)
                    m = re.match(r"^larder: listening on (?:\[([0-9a-fA-F:.]+)\]|([^:\s]+)):(\d+)\s*$", line)
                    if m and not self._ready:
                        self.listeners.append((m.group(1) or m.group(2), int(m.group(3))))
                    if line.strip() == "larder: ready" and self.listeners:
                        self._ready = True
                    self._cond.notify_all()
        with self._cond:
            self._stdout_done = True
            self._cond.notify_all()

    # -- identity

    @property
    def addr(self) -> str:
        return _hostport(self.host, self.port)

    @property
    def proxy_url(self) -> str:
        return f"http://{self.addr}"

    def running(self) -> bool:
        return self.proc.poll() is None

    # -- observation

    def metrics(self, source: Optional[str] = None) -> dict:
        """GET /larder/metrics (origin-form) on a fresh connection. Note: this request itself counts in
        client_connections_accepted and client_requests."""
        with Client(self, DEFAULT_TIMEOUT, source=source) as c:
            r = c.request("GET", "/larder/metrics", [("Host", self.addr), ("Connection", "close")], host=None)
        if r.status != 200:
            raise AssertionError(f"metrics endpoint answered {r!r}")
        out = {}
        for line in r.text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 2:
                continue
            try:
                out[parts[0]] = int(parts[1])
            except ValueError:
                try:
                    out[parts[0]] = float(parts[1])
                except ValueError:
                    out[parts[0]] = parts[1]
        return out

    def expect(self, name: str, op_or_value, value=None, timeout: float = 2.0, source: Optional[str] = None) -> int:
        """varnishtest-style counter check: expect("tunnels_opened", 1) or expect("x", ">=", 4).
        Counters may be bumped just after the client got its last byte, so the check is retried for up to
        `timeout` seconds before failing. Returns the last value seen."""
        if value is None:
            op, want = "==", op_or_value
        else:
            op, want = op_or_value, value
        last = {}

        def ok():
            last.clear()
            last.update(self.metrics(source))
            return name in last and _OPS[op](last[name], want)

        if poll_until(ok, timeout, 0.05):
            return last[name]
        have = last.get(name, "<absent>")
        raise AssertionError(f"larder metric {name} {op} {want} failed: value is {have}\nall metrics: {last}")

    def access_log_lines(self) -> List[str]:
        try:
            return self.access_log.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return []

    def access_log_entries(self) -> List[dict]:
        return [e for e in (parse_access_line(l) for l in self.access_log_lines()) if e]

    def wait_access_log(self, pred: Callable[[str], bool] = lambda l: True, n: int = 1,
                        timeout: float = 5.0) -> List[str]:
        """Bounded poll until n access-log lines satisfy pred (the log line is written once the response
        is done: no socket event tells the client when). Returns the matching lines."""
        got = poll_until(lambda: (lambda m: m if len(m) >= n else None)([l for l in self.access_log_lines()
                                                                            if pred(l)]), timeout)
        if got is None:
            raise AssertionError(f"access log: waited {timeout}s for {n} matching line(s); log is:\n"
                                 + "\n".join(self.access_log_lines()))
        return got

    def error_log_text(self) -> str:
        try:
            return self.error_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_error_log(self, pattern: str, timeout: float = 5.0) -> str:
        """Bounded poll until a line of the error log matches the regex (case-insensitive); returns it."""
        rx = re.compile(pattern, re.I)

        def find():
            for l in self.error_log_text().splitlines():
                if rx.search(l):
                    return l
            return None

        line = poll_until(find, timeout)
        if line is None:
            raise AssertionError(f"error log: no line matching /{pattern}/ within {timeout}s; log is:\n"
                                 + self.error_log_text()[-4000:])
        return line

    def rss_kib(self, field: str = "VmRSS") -> int:
        """A size from /proc/PID/status. RssAnon leaves out the store's map, whose pages count in
        VmRSS once touched but are the kernel's page cache, not larder's memory."""
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        raise AssertionError(f"no {field} in /proc/PID/status")

    def diagnostics(self) -> str:
        def tail(p: Path, n=3000):
            try:
                return p.read_text(errors="replace")[-n:]
            except FileNotFoundError:
                return "<none>"
        def stderr_text():
            try:
                t = self.stderr_log.read_text(errors="replace")
            except FileNotFoundError:
                return "<none>"
            # A sanitizer report is most useful from its first line: show that rather than the tail.
            m = re.search(r"^.*(ERROR: (Address|Leak|Thread)Sanitizer|runtime error:).*$", t, re.M)
            return t[m.start():m.start() + 5000] if m else t[-3000:]

        return (f"command: {' '.join(self.cmd)}\n--- stdout ---\n" + "\n".join(self.stdout_lines[-50:])
                + f"\n--- stderr ---\n{stderr_text()}\n--- error log ---\n{tail(self.error_log)}")

    # -- control

    def signal(self, sig: int):
        """Sends a signal to the larder process this object started (by PID)."""
        if self.proc.poll() is None:
            os.kill(self.pid, sig)

    def wait(self, timeout: float = DEFAULT_TIMEOUT) -> int:
        """Waits for an exit the test caused (after signal()); returns the exit code (negative signal
        number if killed by one). The end-of-test check then leaves the process alone."""
        self._stopped_by_test = True
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(f"larder (pid {self.pid}) still running after {timeout}s\n{self.diagnostics()}")
        self._finish()
        return rc

    def stop(self, sig: int = SIGTERM, timeout: float = 15.0) -> int:
        """Signals larder and waits for it to exit; returns the exit code. On timeout it is killed with
        SIGKILL and the wait fails the test."""
        self._stopped_by_test = True
        self.signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError(f"larder did not exit within {timeout}s of signal {sig}\n{self.diagnostics()}")
        finally:
            self._finish()

    def kill9(self) -> int:
        self._stopped_by_test = True
        self._kill()
        self._finish()
        return self.proc.returncode

    def _kill(self):
        if self.proc.poll() is None:
            os.kill(self.pid, SIGKILL)
        self.proc.wait(10)

    def _finish(self):
        self._reader.join(5)
        if not self._errf.closed:
            self._errf.close()

    def _cleanup(self) -> Optional[str]:
        if self._stopped_by_test:
            return None
        rc_before = self.proc.poll()
        if rc_before is not None:
            self._finish()
            return f"larder exited during the test with rc={rc_before}\n{self.diagnostics()}"
        try:
            rc = self.stop(SIGTERM, 15.0)
        except AssertionError as e:
            return str(e)
        if rc != 0:
            return f"larder exited with rc={rc} on SIGTERM at test end\n{self.diagnostics()}"
        return None

    def __repr__(self):
        return f"<Larder pid={self.pid} {getattr(self, 'host', '?')}:{getattr(self, 'port', '?')}>"


class RssSampler:
    """Samples larder's VmRSS every `interval` seconds on a thread (pacing, not synchronisation)."""

    def __init__(self, larder: Larder, interval: float = 0.1, field: str = "VmRSS"):
        self.larder = larder
        self.interval = interval
        self.field = field
        self.samples: List[int] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.samples.append(self.larder.rss_kib(self.field))
            except (OSError, AssertionError):
                return
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *a):
        self._stop.set()
        self._t.join(5)

    @property
    def peak(self) -> int:
        return max(self.samples) if self.samples else 0


# ----------------------------------------------------------------------------------------------------
# Cache helpers (RFC 9111 tests): the clock hook, Cache-Status, validators, access-log results

def advance_clock(larder: Larder, seconds: int) -> int:
    """Moves larder's cache clock forward (needs --test-hooks on): POST /larder/clock?advance=N sent
    directly to the proxy. Returns the new total offset in seconds."""
    with Client(larder) as c:
        r = c.request("POST", f"/larder/clock?advance={int(seconds)}", [("Host", larder.addr), ("Connection", "close")],
                      host=None)
    m = re.match(r"^offset (\d+)\s*$", r.text)
    if r.status != 200 or not m:
        raise AssertionError(f"clock hook answered {r!r} (is larder started with --test-hooks on?)")
    return int(m.group(1))


def cache_status(resp) -> dict:
    """Cache-Status (RFC 9211) of a response as a dict: {"cache": "larder", "hit": True, "ttl": 60} or
    {"cache": "larder", "fwd": "uri-miss", "fwd-status": 200, "stored": True}. Empty if absent."""
    v = resp.header("cache-status")
    if v is None:
        return {}
    parts = [p.strip() for p in v.split(";")]
    out: dict = {"cache": parts[0]}
    for p in parts[1:]:
        if "=" in p:
            k, val = p.split("=", 1)
            out[k.strip()] = int(val) if re.fullmatch(r"-?\d+", val.strip()) else val.strip()
        elif p:
            out[p] = True
    return out


def is_conditional(req) -> bool:
    """Did a request the origin received carry a validator (RFC 9111 s4.3.1)?"""
    return req.has("if-none-match") or req.has("if-modified-since")


def access_results(larder: Larder, url: str, n: int, method: str = "GET", timeout: float = 5.0,
                   client: Optional[str] = None) -> List[str]:
    """Waits (bounded) for n access-log lines of `method url` (from `client` only, when given: "-" is
    larder's own background work); returns their "RESULT/status" fields in log order, e.g.
    ["TCP_MISS/200", "TCP_HIT/200"]."""
    def mine(line: str) -> bool:
        e = parse_access_line(line)
        return bool(e) and e["url"] == url and e["method"] == method and client in (None, e["client"])

    lines = larder.wait_access_log(mine, n, timeout)
    return [f"{e['result']}/{e['status']}" for e in (parse_access_line(l) for l in lines)]


def http_date(t: float) -> str:
    """IMF-fixdate (RFC 9110 s5.6.7) of a Unix time."""
    from email.utils import formatdate
    return formatdate(t, usegmt=True)


def fetch_stored(larder: Larder, url: str, **kw) -> HttpResponse:
    """fetch(); when the response says it is being stored (Cache-Status "stored"), waits until the store's
    writer has committed one more meta record, so the next request can find it. Store writes are
    asynchronous (a writer thread): without this a quick second request may still miss."""
    before = larder.metrics().get("store_meta_writes", 0)
    r = fetch(larder, url, **kw)
    if cache_status(r).get("stored"):
        larder.expect("store_meta_writes", ">=", before + 1, timeout=5.0)
    return r


# ----------------------------------------------------------------------------------------------------
# Hostile-input helpers (tests/it/test_hardening_*.py)

def exchange_raw(target, data: bytes, timeout: float = DEFAULT_TIMEOUT, source: Optional[str] = None,
                 methods: Optional[List[str]] = None) -> Tuple[List[HttpResponse], bytes]:
    """Sends `data` verbatim on a fresh connection (a peer that closes early may cut the send short),
    reads until the peer closes (a reset counts as closed; silence for `timeout` fails the test), and
    parses every complete response in what arrived. Returns (responses, bytes left unparsed)."""
    with Client(target, timeout, source=source) as c:
        try:
            c.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed, got = c.wait_closed(timeout)
        if not closed:
            raise AssertionError(f"connection still open {timeout}s after the request; received {got[:300]!r}")
    rd = Reader(_BytesSource(got))
    out: List[HttpResponse] = []
    ms = list(methods or [])
    while rd.buf or rd.sock.data:
        before = bytes(rd.buf) + rd.sock.data
        try:
            out.append(read_response(rd, ms.pop(0) if ms else "GET"))
        except (EOFError, ProtocolError):
            return out, before
    return out, b""


# ----------------------------------------------------------------------------------------------------
# Concurrency helpers (tests/it/test_flight_*.py): an origin body that stops part-way until the test
# lets it go on, and a download that runs on its own connection and thread while the test watches it

class GatedBody:
    """Body for Response(body=g, length=g.length): `data` in `piece`-byte pieces, stopping at each offset
    in `stops` until the test calls release(off) (release() opens every gate). reached(off) is an Event,
    set once the origin has handed bytes [0, off) to its socket and waits. One GatedBody per response.
    A gate still closed at test end (or after `timeout`) makes the origin drop the connection."""
    _kind = "client"  # stopped with the clients, so no origin thread is left waiting on a gate

    def __init__(self, data: bytes, piece: int = 65536, stops: Iterable[int] = (), timeout: float = 30.0):
        self.data = bytes(data)
        self.length = len(self.data)
        self.sha256 = hashlib.sha256(self.data).hexdigest()
        self.piece = piece
        self.timeout = timeout
        self.stops = sorted(set(stops))
        self._reached = {s: threading.Event() for s in self.stops}
        self._open = {s: threading.Event() for s in self.stops}
        self._aborted = False
        _register(self)

    def reached(self, off: int) -> threading.Event:
        return self._reached[off]

    def release(self, off: Optional[int] = None):
        for s in ([off] if off is not None else self.stops):
            self._open[s].set()

    def _cleanup(self):
        self._aborted = True
        self.release()

    def __iter__(self):
        mv = memoryview(self.data)
        off = 0
        for bound in self.stops + [self.length]:
            while off < bound:
                n = min(self.piece, bound - off)
                yield mv[off:off + n]
                off += n
            if bound in self._open:
                self._reached[bound].set()
                if not self._open[bound].wait(self.timeout) or self._aborted:
                    raise ConnectionAbortedError(f"GatedBody: the gate at {bound} was not released")


class Download:
    """One GET through larder on its own connection, read on a thread. The request goes out before the
    constructor returns (or, with `barrier`, when all the barrier's parties are ready). The body is
    hashed as it arrives and, with `expect`, compared with those bytes on the fly (first_mismatch).
    close_after=N: the client resets its connection once N body bytes have arrived. stop_after=N: it
    stops reading after N body bytes (a stalled client) until resume().
    wait_head()/wait_bytes() block (bounded) on progress; join() waits for the end."""
    _kind = "client"

    def __init__(self, target, url: str, headers=None, timeout: float = DEFAULT_TIMEOUT,
                 barrier: Optional[threading.Barrier] = None, expect: Optional[bytes] = None,
                 close_after: Optional[int] = None, stop_after: Optional[int] = None, keep: bool = False):
        self.url = url
        self.head: Optional[HttpResponse] = None
        self.nbytes = 0
        self.body = bytearray() if keep else None
        self.sha256: Optional[str] = None
        self.complete = False  # the body ended as its framing says it should
        self.aborted = False  # closed by us (close_after)
        self.error: Optional[BaseException] = None
        self.first_mismatch: Optional[int] = None
        self._expect = expect
        self._close_after = close_after
        self._stop_after = stop_after
        self._resume = threading.Event()
        self._hash = hashlib.sha256()
        self._cond = threading.Condition()
        self._finished = False
        self.client = Client(target, timeout)
        _registry.remove(self.client)  # this object stops it, after shutting it down under the reader
        _register(self)
        self._request = build_request("GET", url, headers)
        self._barrier = barrier
        if barrier is None:
            self.client.send(self._request)
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            if self._barrier is not None:
                self._barrier.wait(DEFAULT_TIMEOUT)
                self.client.send(self._request)
            head = self.client.read_head()
            with self._cond:
                self.head = head
                self._cond.notify_all()
            for d in self.client.iter_body(head):
                if self._expect is not None and self.first_mismatch is None and \
                        bytes(d) != self._expect[self.nbytes:self.nbytes + len(d)]:
                    self.first_mismatch = self.nbytes
                self._hash.update(d)
                if self.body is not None:
                    self.body += d
                with self._cond:
                    self.nbytes += len(d)
                    self._cond.notify_all()
                if self._close_after is not None and self.nbytes >= self._close_after:
                    self.aborted = True
                    _reset_close(self.client.sock)
                    return
                if self._stop_after is not None and self.nbytes >= self._stop_after:
                    self._resume.wait(self.client.sock.gettimeout() or DEFAULT_TIMEOUT)
                    self._stop_after = None
            self.complete = True
        except BaseException as e:
            self.error = e
        finally:
            with self._cond:
                self.sha256 = self._hash.hexdigest()
                self._finished = True
                self._cond.notify_all()

    def _wait(self, pred, timeout: float, what: str):
        if not _wait_cond(self._cond, lambda: pred() or self._finished, timeout) or not pred():
            raise AssertionError(f"{self.url}: waited {timeout}s for {what}; head={self.head!r} "
                                 f"bytes={self.nbytes} error={self.error!r}")

    def wait_head(self, timeout: float = DEFAULT_TIMEOUT) -> HttpResponse:
        self._wait(lambda: self.head is not None, timeout, "the response head")
        return self.head

    def wait_bytes(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> int:
        self._wait(lambda: self.nbytes >= n, timeout, f"{n} body bytes")
        return self.nbytes

    def join(self, timeout: float = DEFAULT_TIMEOUT) -> "Download":
        self._wait(lambda: self._finished, timeout, "the end of the response")
        self._t.join(1)
        return self

    @property
    def finished(self) -> bool:
        return self._finished

    def resume(self):
        self._resume.set()

    def close(self):
        """The client leaves now, whatever its reader thread is doing (shutdown wakes a blocked recv;
        a plain close() from another thread would not send the FIN until that recv returns)."""
        self._resume.set()
        try:
            self.client.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._t.join(5)
        self.client.close()

    def _cleanup(self):
        self._resume.set()
        try:
            self.client.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._t.join(5)
        self.client.close()

    def __repr__(self):
        return (f"<Download {self.url} status={self.head.status if self.head else None} bytes={self.nbytes} "
                f"complete={self.complete} error={self.error!r}>")
