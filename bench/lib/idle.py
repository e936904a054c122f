#!/usr/bin/env python3
"""Scenario 7 client: opens N keep-alive connections to a proxy, sends one request on each, reads the
response, then keeps every connection open and idle.

Protocol with the bench (stdout / stdin, one line each):
  prints  READY {"opened": n, "ok": n, "failed": n, "seconds": s}   once all N are idle
  reads   one line (the bench has measured RSS meanwhile)
  prints  DONE {"still_open": n, "closed": n}                       then closes everything and exits

    idle.py --port P --target URL --host H --conns N [--inflight K]
At most K connections are connecting or waiting for their response at once, so the proxy's accept
queue never overflows.
"""

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from httpc import ResponseReader, request_bytes  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--target", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--inflight", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    req = request_bytes(a.target, a.host)
    sel = selectors.DefaultSelector()
    pending = {}  # fd -> (sock, reader or None while connecting)
    idle = []
    failed = 0
    started = 0
    t0 = time.monotonic()
    deadline = t0 + a.timeout
    while (started < a.conns or pending) and time.monotonic() < deadline:
        while started < a.conns and len(pending) < a.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            rc = s.connect_ex(("127.0.0.1", a.port))
            started += 1
            if rc not in (0, errno.EINPROGRESS):
                s.close()
                failed += 1
                continue
            pending[s.fileno()] = (s, None)
            sel.register(s, selectors.EVENT_WRITE)
        for key, ev in sel.select(timeout=1.0):
            s, r = pending[key.fd]
            try:
                if r is None:
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        raise OSError(err, os.strerror(err))
                    s.send(req)  # a small request fits the empty send buffer
                    pending[key.fd] = (s, ResponseReader())
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                data = s.recv(65536)
                if not data:
                    raise ConnectionError("closed")
                r.feed(data)
                if r.done:
                    sel.unregister(s)
                    del pending[key.fd]
                    if r.status == 200 and r.headers.get("connection", "").lower() != "close":
                        idle.append(s)
                    else:
                        s.close()
                        failed += 1
            except (OSError, ValueError):
                sel.unregister(s)
                del pending[key.fd]
                s.close()
                failed += 1
    for s, _ in pending.values():
        s.close()
        failed += 1
    print("READY " + json.dumps({"opened": started, "ok": len(idle), "failed": failed,
                                  "seconds": round(time.monotonic() - t0, 3)}), flush=True)
    sys.stdin.readline()
    still, closed = 0, 0
    for s in idle:
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            if data:
                still += 1  # unexpected bytes, but open
            else:
                closed += 1
        except BlockingIOError:
            still += 1
        except OSError:
            closed += 1
    print("DONE " + json.dumps({"still_open": still, "closed": closed}), flush=True)
    for s in idle:
        s.close()


if __name__ == "__main__":
    main()
