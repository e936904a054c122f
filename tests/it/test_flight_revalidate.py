"""Revalidation coalescing (RFC 9111 s4.3 with single flight): when a stored response goes stale and
many clients ask for it at once, one conditional request goes upstream and every client is answered
from its outcome. The stored entry has max-age=1 and an ETag; larder's clock is moved forward with the
test hook instead of sleeping. The origin holds its answer until the other requests have joined the
flight (counted by larder's flight_followers), so the overlap is certain."""

import threading

import pytest

from harness import (Download, Larder, Response, access_results, advance_clock, cache_status, fetch_stored,
                     is_conditional, random_bytes)

N = 20


def stale_setup(tmp_path, origin, workers, answer):
    """Stores v1 (max-age=1, ETag "v1"), makes it stale, and sets the origin to answer conditional
    requests with answer() once `go` is set. Returns (larder, url, v1 body, go)."""
    v1 = random_bytes(300 * 1024, seed=21)
    go = threading.Event()

    def handler(req):
        if not is_conditional(req):
            return Response(headers=[("Cache-Control", "max-age=1"), ("ETag", '"v1"'), ("Content-Type", "text/x-v")],
                            body=v1)
        go.wait(20)
        return answer(req)

    origin.handler = handler
    l = Larder(tmp_path, "--workers", str(workers), "--test-hooks", "on")
    url = origin.url("/stale")
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == v1 and cache_status(r).get("stored"), r
    advance_clock(l, 5)
    return l, url, v1, go


@pytest.mark.parametrize("workers", [1, 2])
def test_twenty_stale_requests_one_conditional_request(tmp_path, origin, workers):
    l, url, v1, go = stale_setup(tmp_path, origin, workers,
                                 lambda req: Response(304, headers=[("Cache-Control", "max-age=1"), ("ETag", '"v1"')]))
    barrier = threading.Barrier(N)
    dls = [Download(l, url, barrier=barrier, keep=True) for _ in range(N)]
    origin.wait_for_requests(2)
    l.expect("flight_followers", N - 1, timeout=10)
    go.set()
    for d in dls:
        d.join(20)
        assert d.complete and d.head.status == 200 and bytes(d.body) == v1, d
        assert d.head.header("etag") == '"v1"', d.head
    assert len(origin.requests) == 2, origin.requests
    cond = origin.requests[1]
    assert is_conditional(cond) and cond.header("if-none-match") == '"v1"', cond
    assert sum(bool(cache_status(d.head).get("collapsed")) for d in dls) == N - 1
    l.expect("cache_revalidations", 1)
    l.expect("cache_revalidated_304", 1)
    l.expect("flight_leaders", 2)  # the first fetch, and the revalidation
    l.expect("upstream_requests", 2)
    assert sorted(access_results(l, url, N + 1)[1:]) == ["TCP_REFRESH_UNMODIFIED/200"] * N


def test_twenty_stale_requests_one_refetch_when_modified(tmp_path, origin):
    # The origin has a new version: the one conditional request gets 200 with it, and every client gets
    # the new body (streamed from the store as it is stored). In the access log that is a
    # modified refresh for every client, not "unmodified".
    v2 = random_bytes(600 * 1024, seed=22)
    l, url, v1, go = stale_setup(tmp_path, origin, 1,
                                 lambda req: Response(headers=[("Cache-Control", "max-age=60"), ("ETag", '"v2"')],
                                                      body=v2))
    barrier = threading.Barrier(N)
    dls = [Download(l, url, barrier=barrier, keep=True) for _ in range(N)]
    origin.wait_for_requests(2)
    l.expect("flight_followers", N - 1, timeout=10)
    go.set()
    for d in dls:
        d.join(20)
        assert d.complete and d.head.status == 200 and bytes(d.body) == v2, d
        assert d.head.header("etag") == '"v2"', d.head
    assert len(origin.requests) == 2, origin.requests
    l.expect("cache_refresh_modified", 1)
    l.expect("cache_stores", 2)
    results = access_results(l, url, N + 1)[1:]
    assert "TCP_REFRESH_UNMODIFIED/200" not in results, results
    assert results.count("TCP_REFRESH_MODIFIED/200") == N, results
