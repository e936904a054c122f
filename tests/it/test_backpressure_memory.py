"""s: back-pressure. larder never reads a peer faster than the other side drains (DESIGN.md habit 8), so
its memory stays flat however large the body and however slow the reader.

The response is marked no-store so that the store is not involved: this measures buffering only."""

import os
import time

import pytest

from harness import Client, Larder, Origin, Response, RssSampler, build_request, pattern_body

MIB = 1 << 20
SLACK_KIB = 16 * 1024
# Under AddressSanitizer freed memory sits in a quarantine before reuse (tests/run-all.sh caps it at
# 16 MiB) and every allocation has redzones: the bound stays far below the 200 MiB that buffering the
# body would take, but needs more room than a plain build.
if os.environ.get("LARDER_SANITIZED") in ("1", "ON", "TRUE", "true"):
    SLACK_KIB = 64 * 1024


@pytest.mark.time_limit(120)
def test_slow_client_large_download_memory_flat(tmp_path, origin):
    size = 200 * MIB
    rate = 15 * MIB  # bytes/s the client reads at: ~13 s for the whole body
    l = Larder(tmp_path, "--workers", "1")
    # Warm up allocator and code paths with a small request so the baseline is not an empty process.
    with Client(l) as w:
        assert w.request("GET", origin.url("/warm")).status == 200
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "no-store")],
                            body=pattern_body(size), length=size))
    start = l.rss_kib()
    with Client(l, timeout=30) as c, RssSampler(l) as rss:
        c.send(build_request("GET", origin.url("/huge")))
        r = c.read_head()
        assert r.status == 200, r
        got = 0
        t0 = time.monotonic()
        for piece in c.iter_body(r, piece=32768):
            got += len(piece)
            ahead = got / rate - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)  # pacing a slow reader, not synchronisation
            assert time.monotonic() - t0 < 60, f"transfer too slow: {got} bytes in 60 s"
        elapsed = time.monotonic() - t0
    print(f"download: {got} bytes in {elapsed:.1f} s; larder VmRSS start {start} KiB, peak {rss.peak} KiB "
          f"(+{rss.peak - start} KiB) over {len(rss.samples)} samples")
    assert got == size
    assert len(rss.samples) >= 10
    assert rss.peak <= start + SLACK_KIB, f"larder buffered: RSS {start} -> {rss.peak} KiB"


@pytest.mark.time_limit(120)
def test_slow_origin_large_upload_memory_flat(tmp_path):
    size = 100 * MIB
    slow = Origin(read_rate=15 * MIB, max_record_body=0)
    l = Larder(tmp_path, "--workers", "1")
    with Client(l) as w:
        assert w.request("GET", slow.url("/warm")).status == 200
    start = l.rss_kib()
    block = bytes(range(256)) * 1024
    with Client(l, timeout=30) as c, RssSampler(l) as rss:
        c.send(build_request("PUT", slow.url("/upload"), [("Content-Length", str(size))]))
        t0 = time.monotonic()
        for _ in range(size // len(block)):
            c.send(block)
        r = c.read_response("PUT")
        elapsed = time.monotonic() - t0
    print(f"upload: {size} bytes in {elapsed:.1f} s; larder VmRSS start {start} KiB, peak {rss.peak} KiB "
          f"(+{rss.peak - start} KiB) over {len(rss.samples)} samples")
    assert r.status == 200, r
    req = slow.requests_for("/upload")[0]
    assert req.body_len == size
    assert rss.peak <= start + SLACK_KIB, f"larder buffered the upload: RSS {start} -> {rss.peak} KiB"


@pytest.mark.skipif(os.environ.get("LARDER_SANITIZED") in ("1", "ON", "TRUE", "true"),
                    reason="AddressSanitizer's redzones and quarantine change every allocation's size")
def test_idle_keepalive_connections_hold_no_buffers(tmp_path, origin):
    # An idle keep-alive connection keeps its structures, not the buffers its last response was built
    # in: a 4 KiB scratch block per connection once made 10,000 idle clients cost 66 MiB instead of 27.
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 4096)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    n = 800
    origin.respond(Response(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600")], body=b"x" * 1024))
    l = Larder(tmp_path, "--workers", "1", "--max-client-connections", "5000", "--max-connections-per-client", "5000")
    url = origin.url("/small")
    with Client(l) as w:
        for _ in range(3):
            assert w.request("GET", url).status == 200
    start = l.rss_kib("RssAnon")
    clients = []
    try:
        for _ in range(n):
            c = Client(l)
            r = c.request("GET", url)
            assert r.status == 200 and len(r.body) == 1024, r
            clients.append(c)
        grown = l.rss_kib("RssAnon") - start
        print(f"{n} idle keep-alive connections: RssAnon +{grown} KiB ({grown / n:.2f} KiB each)")
        assert grown < n * 4, f"RssAnon grew by {grown} KiB for {n} idle connections"
    finally:
        for c in clients:
            c.close()
