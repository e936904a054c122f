#!/usr/bin/env python3
"""Slowloris: does a fast client get prompt answers while thousands of slow ones hold connections?

    bench/slowloris.py [--larder build/larder] [--slow 2000] [--seconds 20]

Starts a loopback origin and larder, opens --slow connections that each send a request head one byte
at a time, a byte every second (never finishing within the header timeout), and meanwhile measures a
fast client's request latency (new connection per request, a fresh URL each time so every request goes
upstream). Prints latency percentiles for the fast client alone and with the slow ones attached, and how
larder ended the slow connections (408 answers, closes). Everything on 127.0.0.1.
"""
import argparse
import os
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time


def origin_server():
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(1024)

    def serve(c):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\nConnection: close\r\n\r\nok")
        finally:
            c.close()

    def loop():
        while True:
            c, _ = s.accept()
            threading.Thread(target=serve, args=(c,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return s.getsockname()[1]


def fast_latencies(port, oport, seconds, tag):
    lat = []
    end = time.time() + seconds
    i = 0
    while time.time() < end:
        i += 1
        t0 = time.perf_counter()
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(f"GET http://127.0.0.1:{oport}/{tag}/{i} HTTP/1.1\r\nHost: 127.0.0.1:{oport}\r\n"
                  f"Connection: close\r\n\r\n".encode())
        data = b""
        while True:
            d = c.recv(4096)
            if not d:
                break
            data += d
        c.close()
        if data.startswith(b"HTTP/1.1 200"):
            lat.append((time.perf_counter() - t0) * 1000)
    return lat


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p / 100))] if v else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--larder", default=os.path.join(os.path.dirname(__file__), "..", "build", "larder"))
    ap.add_argument("--slow", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=20)
    args = ap.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.slow * 2 + 1024), hard))
    oport = origin_server()
    tmp = tempfile.mkdtemp(prefix="larder-slowloris-")
    p = subprocess.Popen([args.larder, "--listen", "127.0.0.1:0", "--cache-dir", f"{tmp}/cache", "--access-log", "none",
                          "--error-log", f"{tmp}/error.log", "--workers", "1", "--request-header-timeout", "10s",
                          "--max-client-connections", str(args.slow + 1000)], stdout=subprocess.PIPE, text=True)
    port = None
    for line in p.stdout:
        if "listening on" in line:
            port = int(line.rsplit(":", 1)[1])
        if line.strip() == "larder: ready":
            break
    try:
        alone = fast_latencies(port, oport, 5, "alone")
        sel = selectors.DefaultSelector()
        slow = []
        for _ in range(args.slow):
            c = socket.create_connection(("127.0.0.1", port), timeout=10)
            c.setblocking(False)
            slow.append(c)
            sel.register(c, selectors.EVENT_READ)
        head = f"GET http://127.0.0.1:{oport}/slow HTTP/1.1\r\nHost: 127.0.0.1:{oport}\r\nX-Pad: ".encode() + b"a" * 64
        answers = {"408": 0, "closed": 0}
        stop = threading.Event()

        def drip():
            pos = 0
            while not stop.is_set():
                for c in list(slow):
                    try:
                        c.send(head[pos % len(head):pos % len(head) + 1])
                    except OSError:
                        pass
                pos += 1
                for key, _ in sel.select(timeout=1.0):
                    c = key.fileobj
                    try:
                        d = c.recv(4096)
                    except OSError:
                        d = b""
                    answers["408" if d.startswith(b"HTTP/1.1 408") else "closed"] += 1
                    sel.unregister(c)
                    slow.remove(c)
                    c.close()

        t = threading.Thread(target=drip, daemon=True)
        t.start()
        loaded = fast_latencies(port, oport, args.seconds, "loaded")
        stop.set()
        t.join(5)
        open_slow = len(slow)
        for c in slow:
            c.close()
    finally:
        p.terminate()
        p.wait(10)
    print(f"larder slowloris: {args.slow} slow connections dripping one byte a second, request_header_timeout 10s")
    print("| fast client | requests | p50 (ms) | p99 (ms) | max (ms) |")
    print("|---|---:|---:|---:|---:|")
    for name, v in (("alone", alone), (f"with {args.slow} slow", loaded)):
        print(f"| {name} | {len(v)} | {pct(v, 50):.2f} | {pct(v, 99):.2f} | {max(v) if v else float('nan'):.2f} |")
    print(f"slow connections: {answers['408']} answered 408, {answers['closed']} closed otherwise, "
          f"{open_slow} still open when the run ended")
    return 0


if __name__ == "__main__":
    sys.exit(main())
