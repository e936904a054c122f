#!/usr/bin/env python3
"""Scenario 6 client: N clients ask a proxy for one object at the same moment and read it whole.

Connects all N sockets first, then sends the N requests back to back, then reads every response with
one epoll loop (recv_into a 1 MiB buffer, so the client is not the bottleneck). Prints one JSON line:
time until the last client had its whole body, per-client completion times, failures.

    herd.py --port P --target URL --host H --clients N [--timeout S]
"""

import argparse
import json
import os
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
    ap.add_argument("--clients", type=int, default=100)
    ap.add_argument("--timeout", type=float, default=120.0)
    a = ap.parse_args()

    socks = [socket.create_connection(("127.0.0.1", a.port), timeout=10) for _ in range(a.clients)]
    req = request_bytes(a.target, a.host)
    sel = selectors.DefaultSelector()
    readers = {}
    t0 = time.monotonic()
    for s in socks:
        s.sendall(req)
        s.setblocking(False)
        readers[s.fileno()] = (s, ResponseReader())
        sel.register(s, selectors.EVENT_READ)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    times, statuses, failed, lengths = [], [], 0, []
    first_byte = None
    deadline = t0 + a.timeout
    while readers and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=1.0):
            s, r = readers[key.fd]
            try:
                n = s.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = -1
            if first_byte is None and n > 0:
                first_byte = time.monotonic() - t0
            if n > 0:
                r.feed(bytes(view[:n]) if r.status is None or r.framing == "chunked" else view[:n])
            finished = r.done or (n == 0 and r.eof())
            if finished or n <= 0:
                sel.unregister(s)
                del readers[key.fd]
                s.close()
                if finished and r.status == 200:
                    times.append(time.monotonic() - t0)
                    lengths.append(r.body_len)
                else:
                    failed += 1
                statuses.append(r.status)
    failed += len(readers)  # still unfinished at the deadline
    for s, _ in readers.values():
        s.close()
    out = {
        "clients": a.clients,
        "complete": len(times),
        "failed": failed,
        "t_last": max(times) if times and not failed else None,
        "t_last_ok": max(times) if times else None,
        "t_first_complete": min(times) if times else None,
        "t_first_byte": first_byte,
        "body_lengths": sorted(set(lengths)),
        "statuses": sorted({str(s) for s in statuses}),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
