"""Single flight in the window between the end of a download and its commit.

The writer paces its commits (at most one batch per 100 ms under load), so for a moment after the last
byte has arrived from the origin the object is not yet in the store while its flight is still open. A
request arriving then follows the flight; it must send nothing until the commit, because the store
may still fail to keep the object (proxy/flight.h, flight_upstream_done):
- commit succeeds: the follower serves the whole stored object, and the origin saw one request;
- commit fails (here: the file-size limit of a full disk): the follower fetches for itself, since
  the origin answered and only the store did not, and its client gets the whole body all the same.

The test hook POST /larder/writer?pause=1 holds the writer, so the window lasts as long as the test
needs instead of being raced."""

import hashlib
import resource

import pytest

from harness import (Client, Download, Larder, Response, advance_clock, cache_status, fetch, fetch_stored, is_conditional,
                     random_bytes)


def writer(larder: Larder, pause: bool) -> None:
    with Client(larder) as c:
        r = c.request("POST", f"/larder/writer?pause={1 if pause else 0}",
                      [("Host", larder.addr), ("Connection", "close")], host=None)
    assert r.status == 200 and r.text.strip() == ("paused" if pause else "running"), r


def hooks_larder(tmp_path, *args) -> Larder:
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def test_request_in_commit_window_waits_for_the_commit(tmp_path, origin):
    body = random_bytes(300 * 1024, seed=5)  # two store chunks
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=60"), ("ETag", '"w"')], body=body)
    l = hooks_larder(tmp_path)
    url = origin.url("/window")
    writer(l, True)
    r1 = fetch(l, url)  # the first client reads the origin's bytes directly: nothing waits on the store
    assert r1.status == 200 and r1.body == body, r1
    f0 = l.metrics()["flight_followers"]
    d = Download(l, url, keep=True)
    l.expect("flight_followers", f0 + 1)
    # The follower joined (same loop, same callback as any head it would send) a metrics round trip
    # ago, and has sent nothing: the commit is held.
    l.metrics()
    assert d.head is None and d.nbytes == 0, d.head
    writer(l, False)
    d.join()
    assert d.head.status == 200 and d.complete and bytes(d.body) == body, d.head
    cs = cache_status(d.head)
    assert cs.get("collapsed"), d.head
    assert len(origin.requests) == 1, origin.requests
    l.expect("store_entries", 1)
    r3 = fetch(l, url)
    assert cache_status(r3).get("hit") and r3.body == body, r3


def test_commit_failing_in_the_window_makes_the_follower_fetch_for_itself(tmp_path, origin):
    big = random_bytes(6 << 20, seed=8)
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=60")], body=big)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, hard))  # data.mdb cannot grow past 3 MiB
    try:
        l = hooks_larder(tmp_path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    url = origin.url("/too-big-for-the-disk")
    writer(l, True)
    r1 = fetch(l, url, timeout=60)
    assert r1.status == 200 and hashlib.sha256(r1.body).digest() == hashlib.sha256(big).digest(), r1
    m0 = l.metrics()
    d = Download(l, url, expect=big, timeout=60)
    l.expect("flight_followers", m0["flight_followers"] + 1)
    l.metrics()
    assert d.head is None and d.nbytes == 0, d.head
    writer(l, False)  # the chunks now hit the file-size limit: the fill fails, the flight with it
    d.join(timeout=60)
    assert d.head.status == 200 and d.complete and d.first_mismatch is None and d.nbytes == len(big), d.head
    assert not cache_status(d.head).get("collapsed"), d.head  # served by its own fetch
    assert [q.target for q in origin.requests].count("/too-big-for-the-disk") == 2, origin.requests
    l.expect("flight_fallbacks", m0["flight_fallbacks"] + 1)
    assert l.wait_error_log(r"(not stored|store write failed|EFBIG|too large|No space|Input/output)")


@pytest.mark.parametrize("response_cc,request_headers", [
    ("max-age=0", []),                              # never fresh (RFC 9111 s4.2)
    ("max-age=60", [("Cache-Control", "no-cache")]),  # fresh, but the request forbids reuse (s5.2.1.4)
])
def test_second_request_does_not_reuse_a_complete_flight_it_may_not(tmp_path, origin, response_cc, request_headers):
    """A flight whose whole response has arrived is, to a request arriving afterwards, a stored
    response: reusable only while fresh and only by a request that allows reuse without validation.
    The second request fetches for itself instead of following, so it needs no commit to finish."""
    body = random_bytes(300 * 1024, seed=6)
    origin.handler = lambda req: Response(headers=[("Cache-Control", response_cc), ("ETag", '"z"')], body=body)
    l = hooks_larder(tmp_path)
    url = origin.url("/window-reuse")
    writer(l, True)
    r1 = fetch(l, url)
    assert r1.status == 200 and r1.body == body, r1
    r2 = fetch(l, url, headers=request_headers)  # would wait for the held commit if it followed
    assert r2.status == 200 and r2.body == body, r2
    assert not cache_status(r2).get("collapsed"), r2.headers
    assert len(origin.requests) == 2, origin.requests
    writer(l, False)


def test_each_request_revalidates_a_never_fresh_response_in_the_window(tmp_path, origin):
    """A 304 that leaves the response stale (max-age=0) must not serve the requests that arrive after it
    while its metadata update waits for the writer: each revalidates (RFC 9111 s4.2, s4.3). Requests
    arriving while the conditional request is out are still combined with it (test_flight_revalidate)."""
    body = random_bytes(1000, seed=8)

    def handler(req):
        if is_conditional(req):
            return Response(304, headers=[("Cache-Control", "max-age=0"), ("ETag", '"r"')])
        return Response(headers=[("Cache-Control", "max-age=0"), ("ETag", '"r"')], body=body)

    origin.handler = handler
    l = hooks_larder(tmp_path)
    url = origin.url("/window-304")
    r0 = fetch_stored(l, url)
    assert r0.status == 200 and r0.body == body, r0
    advance_clock(l, 5)  # the 304's response_time must be newer than the stored one's
    writer(l, True)
    for i in range(2):
        r = fetch(l, url)
        assert r.status == 200 and r.body == body, r
        assert not cache_status(r).get("collapsed"), r.headers
    assert len(origin.requests) == 3, origin.requests
    assert all(is_conditional(q) for q in origin.requests[1:]), origin.requests
    writer(l, False)
