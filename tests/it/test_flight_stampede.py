"""Single flight (proxy/flight.h): a stampede of clients for one uncached URL costs one upstream fetch.
The first client's transaction leads the fetch; the others follow it and are served from the store
while the writer commits the body, so every client streams before the origin has finished, a late
joiner gets the body from byte 0, and followers on other event loops share the fetch too. (Clients that
leave or stall: test_flight_orphan.py.)

The origin sends a large random body through a GatedBody: it stops part-way until the test releases
it, so "before the origin has finished" is a fact the test controls, not a timing guess. What only
larder knows (how many transactions followed) is read from its counters, with the harness's bounded
retries. Counts at the origin are exact."""

import re
import threading

import pytest

from harness import Client, Download, GatedBody, Larder, Response, cache_status, random_bytes

MIB = 1 << 20
BIG = 8 * MIB
HALF = BIG // 2


def cacheable(g: GatedBody, framing: str = "length", chunk_delay: float = 0.0) -> Response:
    return Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=300")], body=g,
                    length=g.length, framing=framing, chunk_delay=chunk_delay)


def collapsed(d: Download) -> bool:
    return bool(cache_status(d.head).get("collapsed"))


def assert_whole(d: Download, g: GatedBody):
    assert d.head is not None and d.head.status == 200, d
    assert d.complete and d.error is None, d
    assert d.nbytes == g.length and d.first_mismatch is None and d.sha256 == g.sha256, d


# ---- the stampede ----------------------------------------------------------------------------------

@pytest.mark.time_limit(90)
def test_thirty_clients_one_upstream_fetch(tmp_path, origin):
    # 30 threads released together by a barrier, each on its own connection, for an 8 MiB object the
    # origin sends in 64 KiB pieces every 20 ms and holds at the half until every client has streamed
    # at least 1 MiB: the bodies reach the clients while the one upstream fetch is still running.
    g = GatedBody(random_bytes(BIG, seed=30), stops=[HALF])
    origin.respond(cacheable(g, chunk_delay=0.02))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/stampede")
    barrier = threading.Barrier(30)
    dls = [Download(l, url, barrier=barrier, expect=g.data, timeout=30) for _ in range(30)]
    assert g.reached(HALF).wait(30), "origin never got to the half"
    for d in dls:
        d.wait_bytes(MIB, 30)
    l.expect("flight_followers", 29, timeout=10)
    g.release()
    for d in dls:
        d.join(60)
    for d in dls:
        assert_whole(d, g)
    assert len(origin.requests) == 1, origin.requests
    assert sum(collapsed(d) for d in dls) == 29, [d.head.header("cache-status") for d in dls]
    leader = [d for d in dls if not collapsed(d)][0]
    assert cache_status(leader.head).get("stored") and cache_status(leader.head).get("fwd") == "uri-miss", leader.head
    for d in dls:
        if collapsed(d):
            cs = cache_status(d.head)
            assert cs.get("fwd") == "uri-miss" and not cs.get("hit"), d.head
            assert d.head.header("content-length") == str(BIG), d.head
    l.expect("flight_leaders", 1)
    l.expect("flight_followers", 29)
    l.expect("flight_fallbacks", 0)
    l.expect("upstream_requests", 1)
    l.expect("cache_misses", 30)
    l.expect("cache_stores", 1)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_leader_and_follower_stream_before_the_origin_finishes(tmp_path, origin, framing):
    # With chunked framing from the origin the length is unknown while the follower starts: it gets a
    # chunked response whose end is settled when the fill completes.
    g = GatedBody(random_bytes(BIG, seed=2), stops=[HALF])
    origin.respond(cacheable(g, framing))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url(f"/stream-{framing}")
    leader = Download(l, url, expect=g.data)
    origin.wait_for_requests(1)
    follower = Download(l, url, expect=g.data)
    assert g.reached(HALF).wait(20)
    # Both get body bytes while the origin is held at the half (the gate is still closed).
    leader.wait_bytes(MIB, 20)
    follower.wait_bytes(MIB, 20)
    assert not leader.finished and not follower.finished
    assert collapsed(follower) and not collapsed(leader), (leader.head, follower.head)
    if framing == "chunked":
        assert follower.head.tokens("transfer-encoding") == ["chunked"], follower.head
    else:
        assert follower.head.header("content-length") == str(BIG), follower.head
    g.release()
    assert_whole(leader.join(30), g)
    assert_whole(follower.join(30), g)
    assert len(origin.requests) == 1, origin.requests
    l.expect("flight_followers", 1)
    l.expect("cache_stores", 1)


def test_late_joiner_gets_the_body_from_byte_zero(tmp_path, origin):
    g = GatedBody(random_bytes(BIG, seed=3), stops=[HALF])
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/late")
    first = Download(l, url, expect=g.data)
    assert g.reached(HALF).wait(20)
    first.wait_bytes(2 * MIB, 20)  # the object is well under way when the late client arrives
    late = Download(l, url, expect=g.data)
    late.wait_bytes(MIB, 20)  # what is already stored, from the start, before the origin goes on
    assert not late.finished and late.first_mismatch is None, late
    assert collapsed(late), late.head
    g.release()
    assert_whole(first.join(30), g)
    assert_whole(late.join(30), g)
    assert len(origin.requests) == 1, origin.requests
    l.expect("flight_followers", 1)


def test_http10_follower_of_an_object_of_unknown_length(tmp_path, origin):
    # The origin's body is chunked, so its length is unknown while the follower starts: an HTTP/1.0
    # client cannot take chunked (RFC 9112 s6.1), so it gets a close-delimited body (RFC 9112 s6.3).
    g = GatedBody(random_bytes(2 * MIB, seed=10), stops=[MIB])
    origin.respond(cacheable(g, framing="chunked"))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/http10")
    leader = Download(l, url, expect=g.data)
    assert g.reached(MIB).wait(20)
    leader.wait_bytes(256 * 1024, 20)
    with Client(l) as c:
        c.send_request("GET", url, version="HTTP/1.0")
        head = c.read_head()
        assert head.status == 200 and cache_status(head).get("collapsed"), head
        assert not head.has("transfer-encoding") and not head.has("content-length"), head
        g.release()
        body = c.read_to_eof()
    assert body == g.data
    assert_whole(leader.join(20), g)
    assert len(origin.requests) == 1, origin.requests


# ---- across event loops ----------------------------------------------------------------------------

def workers_seen(l: Larder, url: str) -> set:
    """Worker ids of the transactions for `url`, from the debug log's "[txn N] GET <url>: <decision>"
    lines: each worker numbers its transactions from worker_id << 48 (proxy/worker.c)."""
    rx = re.compile(r"\[txn (\d+)\] GET (\S+): ")
    out = set()
    for line in l.error_log_text().splitlines():
        m = rx.search(line)
        if m and m.group(2) == url:
            out.add(int(m.group(1)) >> 48)
    return out


@pytest.mark.time_limit(60)
@pytest.mark.parametrize("workers", [2, 4])
def test_one_upstream_fetch_across_workers(tmp_path, origin, workers):
    # 40 connections at once: SO_REUSEPORT spreads them over the workers' loops; followers on every
    # loop share the one fetch.
    g = GatedBody(random_bytes(4 * MIB, seed=6), stops=[2 * MIB])
    origin.respond(cacheable(g, chunk_delay=0.01))
    l = Larder(tmp_path, "--workers", str(workers))
    url = origin.url(f"/workers{workers}")
    barrier = threading.Barrier(40)
    dls = [Download(l, url, barrier=barrier, expect=g.data, timeout=30) for _ in range(40)]
    assert g.reached(2 * MIB).wait(30)
    for d in dls:
        d.wait_bytes(256 * 1024, 30)
    l.expect("flight_followers", 39, timeout=10)
    g.release()
    for d in dls:
        assert_whole(d.join(60), g)
    assert len(origin.requests) == 1, origin.requests
    assert sum(collapsed(d) for d in dls) == 39
    l.expect("flight_leaders", 1)
    l.expect("upstream_requests", 1)
    l.expect("cache_stores", 1)
    seen = workers_seen(l, url)
    assert len(seen) >= 2 and seen <= set(range(workers)), f"transactions ran on workers {seen}"

