#!/usr/bin/env python3
"""Soak test: mixed traffic through larder for a bounded time, reporting errors, open file descriptors
and RSS over time. Everything runs on 127.0.0.1.

    bench/soak.py [--larder build/larder] [--seconds 120] [--clients 16] [--workers 2]

Traffic mix (each client thread picks at random, weighted):
  hit         GET of one of 50 cacheable URLs (max-age=3600)          -> mostly TCP_HIT
  miss        GET of a unique URL                                      -> TCP_MISS, stored
  revalidate  GET of one of 20 URLs with max-age=1 and an ETag         -> 304 refreshes
  big         GET of one of 5 objects of 2 MiB                         -> hits after the first
  abort       GET of a 4 MiB object, closing the socket after 64 KiB   -> client abort
  reset       origin resets mid-body                                   -> truncated, never stored
  garbage     origin answers garbage                                   -> 502
  slow        origin drips 4 KiB slowly                                -> still 200
  connect     CONNECT to a loopback echo server, echo 1 KiB, close     -> TCP_TUNNEL
It samples larder every few seconds and prints one table. The run fails (exit 1) when a request got an
unexpected answer, or when, after the traffic stops and idle connections close, open descriptors do
not return to their level after warm-up or RSS grew by more than --rss-slack MiB over warm-up.
"""
import argparse
import hashlib
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIG = 2 << 20
ABORT_SIZE = 4 << 20


def pattern(n, seed):
    rnd = random.Random(seed)
    block = bytes(rnd.getrandbits(8) for _ in range(4096))
    return (block * (n // 4096 + 1))[:n]


BIG_BODIES = [pattern(BIG, i) for i in range(5)]
ABORT_BODY = pattern(ABORT_SIZE, 99)


class Origin(threading.Thread):
    """A small scripted origin: the path says what to do."""

    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.stop = False

    def run(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                path = lines[0].split(" ")[1]
                inm = any(l.lower().startswith("if-none-match:") for l in lines[1:])
                if not self.answer(c, path, inm):
                    return
        except OSError:
            return
        finally:
            c.close()

    def answer(self, c, path, inm):
        def send(status, headers, body=b""):
            h = f"HTTP/1.1 {status}\r\nContent-Length: {len(body)}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            c.sendall(h.encode() + b"\r\n" + body)
            return True

        kind = path.split("/")[1]
        if kind == "hit":
            return send("200 OK", [("Cache-Control", "max-age=3600")], path.encode() * 8)
        if kind == "miss":
            return send("200 OK", [("Cache-Control", "max-age=3600")], b"m" * 512)
        if kind == "reval":
            if inm:
                return send("304 Not Modified", [("ETag", '"r"'), ("Cache-Control", "max-age=1")])
            return send("200 OK", [("ETag", '"r"'), ("Cache-Control", "max-age=1")], b"r" * 2048)
        if kind == "big":
            return send("200 OK", [("Cache-Control", "max-age=3600")], BIG_BODIES[int(path.split("/")[2]) % 5])
        if kind == "abort":
            return send("200 OK", [("Cache-Control", "no-store")], ABORT_BODY)
        if kind == "reset":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nCache-Control: max-age=60\r\n\r\n" + b"x" * 1000)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return False
        if kind == "garbage":
            c.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            return False
        if kind == "slow":
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 4096\r\nCache-Control: no-store\r\n\r\n")
            for _ in range(8):
                time.sleep(0.05)
                c.sendall(b"s" * 512)
            return True
        return send("404 Not Found", [])


class Echo(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]

    def run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.echo, args=(c,), daemon=True).start()

    @staticmethod
    def echo(c):
        c.settimeout(10)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        c.close()


def read_response(s, want_body=True):
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("closed before the head")
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    length = 0
    for l in lines[1:]:
        if l.lower().startswith("content-length:"):
            length = int(l.split(":")[1])
    while want_body and len(body) < length:
        d = s.recv(min(1 << 20, length - len(body)))
        if not d:
            raise EOFError(f"closed after {len(body)} of {length} body bytes")
        body += d
    return status, body


class Client(threading.Thread):
    KINDS = [("hit", 40), ("miss", 15), ("reval", 10), ("big", 8), ("abort", 5), ("reset", 5), ("garbage", 4),
             ("slow", 3), ("connect", 10)]

    def __init__(self, proxy_port, origin_port, echo_port, deadline, seed, stats):
        super().__init__(daemon=True)
        self.proxy = ("127.0.0.1", proxy_port)
        self.o = origin_port
        self.echo = echo_port
        self.deadline = deadline
        self.rnd = random.Random(seed)
        self.stats = stats
        self.seq = 0

    def run(self):
        kinds = [k for k, w in self.KINDS for _ in range(w)]
        while time.time() < self.deadline:
            kind = self.rnd.choice(kinds)
            try:
                ok = getattr(self, "do_" + kind)()
            except (OSError, EOFError, ValueError) as e:
                ok = kind in ("reset",) and "closed" in str(e)
                if not ok:
                    self.stats.note_error(kind, repr(e))
            self.stats.count(kind, ok)

    def get(self, path, read_all=True):
        s = socket.create_connection(self.proxy, timeout=30)
        try:
            s.sendall(f"GET http://127.0.0.1:{self.o}{path} HTTP/1.1\r\nHost: 127.0.0.1:{self.o}\r\nConnection: close\r\n\r\n".encode())
            return read_response(s, read_all)
        finally:
            s.close()

    def do_hit(self):
        path = f"/hit/{self.rnd.randrange(50)}"
        st, body = self.get(path)
        return st == 200 and body == path.encode() * 8

    def do_miss(self):
        self.seq += 1
        st, body = self.get(f"/miss/{id(self)}-{self.seq}-{time.time_ns()}")
        return st == 200 and body == b"m" * 512

    def do_reval(self):
        st, body = self.get(f"/reval/{self.rnd.randrange(20)}")
        return st == 200 and body == b"r" * 2048

    def do_big(self):
        i = self.rnd.randrange(5)
        st, body = self.get(f"/big/{i}")
        return st == 200 and hashlib.sha256(body).digest() == hashlib.sha256(BIG_BODIES[i]).digest()

    def do_abort(self):
        s = socket.create_connection(self.proxy, timeout=30)
        s.sendall(f"GET http://127.0.0.1:{self.o}/abort/x HTTP/1.1\r\nHost: 127.0.0.1:{self.o}\r\n\r\n".encode())
        got = 0
        while got < 65536:
            d = s.recv(65536)
            if not d:
                break
            got += len(d)
        s.close()
        return got >= 65536

    def do_reset(self):
        try:
            st, body = self.get(f"/reset/{self.rnd.randrange(10)}")
        except EOFError:
            return True  # the client sees the truncation: larder closed the connection
        return st == 502  # or an error page when nothing had been sent yet

    def do_garbage(self):
        st, _ = self.get("/garbage/x")
        return st == 502

    def do_slow(self):
        st, body = self.get("/slow/x")
        return st == 200 and body == b"s" * 4096

    def do_connect(self):
        s = socket.create_connection(self.proxy, timeout=30)
        try:
            s.sendall(f"CONNECT 127.0.0.1:{self.echo} HTTP/1.1\r\nHost: 127.0.0.1:{self.echo}\r\n\r\n".encode())
            st, _ = read_response(s, want_body=False)
            if st != 200:
                return False
            msg = bytes(self.rnd.getrandbits(8) for _ in range(1024))
            s.sendall(msg)
            got = b""
            while len(got) < len(msg):
                d = s.recv(4096)
                if not d:
                    break
                got += d
            return got == msg
        finally:
            s.close()


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = {}
        self.bad = {}
        self.errors = []

    def count(self, kind, ok):
        with self.lock:
            d = self.ok if ok else self.bad
            d[kind] = d.get(kind, 0) + 1

    def note_error(self, kind, msg):
        with self.lock:
            if len(self.errors) < 20:
                self.errors.append(f"{kind}: {msg}")


def rss_kib(pid, field="RssAnon:"):
    """RssAnon is the heap and stacks: what a leak would grow. RssFile also counts the pages of the
    LMDB map that were touched, which grows with the store's contents and is the kernel's to reclaim."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def n_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", default=os.path.join(os.path.dirname(__file__), "..", "build", "larder"))
    ap.add_argument("--seconds", type=int, default=120)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--rss-slack", type=int, default=16, help="MiB of anonymous RSS growth over warm-up tolerated")
    args = ap.parse_args()

    origin = Origin()
    origin.start()
    echo = Echo()
    echo.start()
    tmp = tempfile.mkdtemp(prefix="larder-soak-")
    cmd = [args.larder, "--listen", "127.0.0.1:0", "--cache-dir", f"{tmp}/cache", "--cache-size", "256M", "--max-object-size", "64M",
           "--access-log", f"{tmp}/access.log", "--error-log", f"{tmp}/error.log", "--workers", str(args.workers),
           "--connect-ports", str(echo.port), "--client-idle-timeout", "2s", "--upstream-idle-timeout", "2s"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    port = None
    for line in p.stdout:
        if "listening on" in line:
            port = int(line.rsplit(":", 1)[1])
        if line.strip() == "larder: ready":
            break
    if port is None:
        print("larder did not start", file=sys.stderr)
        return 2
    stats = Stats()
    deadline = time.time() + args.seconds
    clients = [Client(port, origin.port, echo.port, deadline, i, stats) for i in range(args.clients)]
    start = time.time()
    for c in clients:
        c.start()
    samples = []
    warm = None
    try:
        while time.time() < deadline:
            time.sleep(args.sample)
            t = time.time() - start
            with stats.lock:
                ok = sum(stats.ok.values())
                bad = sum(stats.bad.values())
            samples.append((t, rss_kib(p.pid), rss_kib(p.pid, "RssFile:"), n_fds(p.pid), ok, bad))
            if warm is None and t >= min(20, args.seconds / 4):
                warm = samples[-1]
        for c in clients:
            c.join(60)
        # Idle connections (client and upstream) time out after 2 s; then descriptors should be back.
        time.sleep(3)
        final = (time.time() - start, rss_kib(p.pid), rss_kib(p.pid, "RssFile:"), n_fds(p.pid), sum(stats.ok.values()),
                 sum(stats.bad.values()))
        samples.append(final)
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
    print(f"larder soak: {args.seconds}s, {args.clients} clients, {args.workers} workers")
    print("| t (s) | RSS anon (MiB) | RSS file/LMDB map (MiB) | open fds | requests ok | unexpected |")
    print("|---:|---:|---:|---:|---:|---:|")
    for t, rss, rssf, fds, ok, bad in samples:
        print(f"| {t:.0f} | {rss / 1024:.1f} | {rssf / 1024:.1f} | {fds} | {ok} | {bad} |")
    print("\nby kind (ok / unexpected):", {k: (stats.ok.get(k, 0), stats.bad.get(k, 0)) for k, _ in Client.KINDS})
    for e in stats.errors:
        print("  error:", e)
    failed = []
    bad_total = sum(stats.bad.values())
    if bad_total:
        failed.append(f"{bad_total} unexpected answers")
    if warm is not None:
        if final[3] > warm[3]:
            failed.append(f"open fds grew from {warm[3]} (warm-up) to {final[3]} (idle)")
        if final[1] - warm[1] > args.rss_slack * 1024:
            failed.append(f"anonymous RSS grew by {(final[1] - warm[1]) / 1024:.1f} MiB over warm-up")
    if rc != 0:
        failed.append(f"larder exited with {rc} on SIGTERM")
    print("result:", "FAIL: " + "; ".join(failed) if failed else "PASS (errors, descriptors and RSS flat)")
    print(f"logs in {tmp}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
