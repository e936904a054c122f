"""Hits leave the store without a copy in larder (proxy/txn_serve.c): the pump points a writev at the
LMDB map under a read snapshot that ends before it returns. Only when the client's socket is full is a
small part of the rest copied and queued (cache_body_bytes_copied); its write completing says there is
room again. These tests hold clients still so that their sockets fill, then check every byte, the
memory, and that the copied part stays small. Whether a socket is full is read from the counter, not
guessed from time."""

import pytest

from harness import Download, GatedBody, Larder, Response, RssSampler, cache_status, random_bytes

MIB = 1 << 20
SIZE = 24 * MIB


def stored_object(origin, body: bytes, framing: str = "length") -> Response:
    return Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=300")],
                    body=body, framing=framing)


def assert_whole(d: Download, want: bytes):
    assert d.head is not None and d.head.status == 200, d
    assert d.complete and d.error is None, d
    assert d.nbytes == len(want) and d.first_mismatch is None, d


def fill(l: Larder, origin, path: str, body: bytes) -> str:
    origin.respond(stored_object(origin, body))
    url = origin.url(path)
    before = l.metrics().get("store_meta_writes", 0)
    assert_whole(Download(l, url, expect=body).join(30), body)
    # Written asynchronously: the next request is a hit once the writer has committed the record.
    l.expect("store_meta_writes", ">=", before + 1, timeout=10)
    return url


def test_stalled_client_of_a_large_hit_gets_every_byte(tmp_path, origin):
    body = random_bytes(SIZE, seed=11)
    l = Larder(tmp_path, "--workers", "1")
    url = fill(l, origin, "/big", body)
    with RssSampler(l, field="RssAnon") as rss:
        start = l.rss_kib("RssAnon")
        d = Download(l, url, expect=body, stop_after=MIB)
        # The client reads nothing more: the socket fills and the pump queues a copy of the next part.
        l.expect("cache_body_bytes_copied", ">", 0, timeout=20)
        d.resume()
        assert_whole(d.join(60), body)
    assert cache_status(d.head).get("hit"), d.head
    assert len(origin.requests) == 1, origin.requests
    m = l.metrics()
    assert m["cache_body_bytes_served"] >= SIZE, m
    # Only parts that met a full socket are copied (16 KiB each), not the body.
    assert 0 < m["cache_body_bytes_copied"] < SIZE // 2, m
    # The map's pages are the kernel's page cache (RssFile); larder's own memory stays flat.
    assert rss.peak <= start + 16 * 1024, f"RssAnon {start} -> {rss.peak} KiB"


def test_concurrent_stalled_and_fast_hits_are_exact(tmp_path, origin):
    body = random_bytes(8 * MIB, seed=12)
    l = Larder(tmp_path, "--workers", "1")
    url = fill(l, origin, "/shared", body)
    stalled = [Download(l, url, expect=body, stop_after=k * MIB + 123) for k in range(3)]
    fast = [Download(l, url, expect=body) for _ in range(3)]
    for d in fast:
        assert_whole(d.join(30), body)
    l.expect("cache_body_bytes_copied", ">", 0, timeout=20)
    for d in stalled:
        d.resume()
    for d in stalled:
        assert_whole(d.join(30), body)
    assert len(origin.requests) == 1, origin.requests


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_stalled_follower_of_a_fill_gets_every_byte(tmp_path, origin, framing):
    # A follower is served from the store while the fill runs; with chunked framing from the origin its
    # response is chunked too, and a chunk whose size line went out must be completed even when the
    # socket takes only part of it.
    g = GatedBody(random_bytes(SIZE, seed=13), stops=[SIZE // 2])
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=300")],
                            body=g, length=g.length, framing=framing))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url(f"/fill-{framing}")
    leader = Download(l, url, expect=g.data)
    origin.wait_for_requests(1)
    follower = Download(l, url, expect=g.data, stop_after=MIB)
    assert g.reached(SIZE // 2).wait(20)
    g.release()
    assert_whole(leader.join(30), g.data)
    l.expect("cache_body_bytes_copied", ">", 0, timeout=20)
    follower.resume()
    assert_whole(follower.join(60), g.data)
    assert cache_status(follower.head).get("collapsed"), follower.head
    if framing == "chunked":
        assert follower.head.tokens("transfer-encoding") == ["chunked"], follower.head
    assert len(origin.requests) == 1, origin.requests
