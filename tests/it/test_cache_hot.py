"""Repeated hits reuse the decoded stored head kept per loop (proxy/cache_hot.h) while no meta record has
changed (store_meta_generation). These tests check that the table is used (cache_hot_lookups) and,
above all, that it never serves what the store no longer holds: after a 304 refresh, an unsafe-method
invalidation, a replacement and on another worker, the next response is the store's current one. Each
step waits for the writer's commit (store_meta_writes) before the next request, as a client would see
it through the store."""

import pytest

from harness import Larder, Response, cache_status, fetch, fetch_stored

ETAG_V1 = '"v1"'


def counting(origin, state):
    """Origin whose body and X-Version follow state["v"]; answers If-None-Match with 304 while the
    version is unchanged, and the 304 carries the current X-Refreshed."""
    def handler(req):
        v = state["v"]
        etag = f'"v{v}"'
        if req.header("if-none-match") == etag:
            return Response(status=304, headers=[("ETag", etag), ("Cache-Control", state["cc"]),
                                                 ("X-Refreshed", str(state["refreshed"]))], body=b"")
        return Response(headers=[("Content-Type", "text/plain"), ("Cache-Control", state["cc"]), ("ETag", etag),
                                 ("X-Version", str(v)), ("X-Refreshed", str(state["refreshed"]))],
                        body=f"version {v}\n".encode())
    origin.handler = handler


def hot(l):
    return l.metrics()["cache_hot_lookups"]


def test_repeated_hits_use_the_hot_table(tmp_path, origin):
    state = {"v": 1, "cc": "max-age=600", "refreshed": 0}
    counting(origin, state)
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/hot")
    assert fetch_stored(l, url).status == 200
    for _ in range(3):
        r = fetch(l, url)
        assert r.status == 200 and r.body == b"version 1\n" and cache_status(r).get("hit"), r
    assert hot(l) >= 2  # the first hit decodes and keeps the head, the next ones reuse it
    assert len(origin.requests) == 1


def test_a_304_refresh_is_seen_by_the_next_hit(tmp_path, origin):
    state = {"v": 1, "cc": "max-age=0", "refreshed": 0}
    counting(origin, state)
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/refresh")
    assert fetch_stored(l, url).status == 200
    for i in range(1, 4):
        state["refreshed"] = i
        before = l.metrics()["store_meta_writes"]
        r = fetch(l, url)  # stale: revalidated, 304, head refreshed
        assert r.status == 200 and r.header("x-refreshed") == str(i), r
        l.expect("store_meta_writes", ">=", before + 1, timeout=5)
    state["cc"] = "max-age=600"
    state["refreshed"] = 9
    before = l.metrics()["store_meta_writes"]
    assert fetch(l, url).header("x-refreshed") == "9"
    l.expect("store_meta_writes", ">=", before + 1, timeout=5)
    for _ in range(3):
        r = fetch(l, url)
        assert cache_status(r).get("hit") and r.header("x-refreshed") == "9", r
    assert hot(l) >= 2


def test_invalidation_and_replacement_are_seen(tmp_path, origin):
    state = {"v": 1, "cc": "max-age=600", "refreshed": 0}
    counting(origin, state)
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/replaced")
    assert fetch_stored(l, url).status == 200
    assert fetch(l, url).body == b"version 1\n"
    assert fetch(l, url).body == b"version 1\n"
    assert hot(l) >= 1
    # A new version fetched past the cache (request no-cache, RFC 9111 s5.2.1.4) replaces the entry.
    state["v"] = 2
    r = fetch_stored(l, url, headers=[("Cache-Control", "no-cache")])
    assert r.body == b"version 2\n", r
    for _ in range(2):
        r = fetch(l, url)
        assert r.body == b"version 2\n" and cache_status(r).get("hit"), r
    # A POST to the URL invalidates it (s4.4): the next GET goes to the origin.
    n = len(origin.requests)
    before = l.metrics()["store_meta_writes"]
    assert fetch(l, url, method="POST", body=b"x").status == 200
    l.expect("cache_invalidations", ">=", 1, timeout=5)
    state["v"] = 3
    r = fetch(l, url)
    assert r.body == b"version 3\n" and not cache_status(r).get("hit"), r
    assert len(origin.requests) == n + 2, origin.requests
    del before


def test_vary_responses_are_not_kept(tmp_path, origin):
    origin.handler = lambda req: Response(
        headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=600"), ("Vary", "Accept-Language")],
        body=f"lang {req.header('accept-language')}\n".encode())
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/vary")
    for lang in ("en", "fr"):
        assert fetch_stored(l, url, headers=[("Accept-Language", lang)]).status == 200
    for _ in range(2):
        for lang in ("en", "fr"):
            r = fetch(l, url, headers=[("Accept-Language", lang)])
            assert r.body == f"lang {lang}\n".encode() and cache_status(r).get("hit"), r
    assert hot(l) == 0


@pytest.mark.parametrize("workers", [2, 4])
def test_a_replacement_is_seen_on_every_worker(tmp_path, origin, workers):
    state = {"v": 1, "cc": "max-age=600", "refreshed": 0}
    counting(origin, state)
    l = Larder(tmp_path, "--workers", str(workers))
    url = origin.url("/everywhere")
    assert fetch_stored(l, url).status == 200
    for _ in range(8 * workers):  # new connections land on every loop (SO_REUSEPORT)
        assert fetch(l, url).body == b"version 1\n"
    state["v"] = 2
    assert fetch_stored(l, url, headers=[("Cache-Control", "no-cache")]).body == b"version 2\n"
    for _ in range(8 * workers):
        r = fetch(l, url)
        assert r.body == b"version 2\n" and r.header("x-version") == "2", r
