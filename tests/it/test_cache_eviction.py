"""s: the store's size limits: --cache-size bounds the bytes in use (objects are evicted to make room,
segmented LRU, see store/store.h), and --max-object-size keeps large objects out of the store while
they are still served in full."""

import pytest

from harness import Larder, Response, cache_status, fetch, fetch_stored, random_bytes

MIB = 1 << 20


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def objects(origin, size=MIB, framing="length"):
    bodies = {}

    def handler(req):
        if req.target not in bodies:
            bodies[req.target] = random_bytes(size, seed=len(bodies) + 1)
        return Response(headers=[("Cache-Control", "max-age=3600")], body=bodies[req.target], framing=framing)

    origin.handler = handler
    return bodies


def test_used_bytes_stay_under_cache_size(tmp_path, origin):
    bodies = objects(origin)
    cache_size = 4 * MIB
    l = cache_larder(tmp_path, "--cache-size", "4M", "--max-object-size", "2M")
    for i in range(10):
        url = origin.url(f"/o{i}")
        r = fetch_stored(l, url)
        assert r.status == 200 and r.body == bodies[f"/o{i}"] and cache_status(r).get("stored"), r
        m = l.metrics()
        assert m["store_used_bytes"] <= cache_size, f"after object {i}: {m['store_used_bytes']} > {cache_size}"
        assert m["store_entries"] <= 4, m
    m = l.metrics()
    # Four 1 MiB bodies plus their records and bookkeeping exceed 4 MiB: at most three fit.
    assert 1 <= m["store_entries"] <= 3, m
    assert m["store_evictions"] == 10 - m["store_entries"], m
    assert m["store_used_bytes"] >= m["store_entries"] * MIB, m
    # The newest objects are the ones kept (all were seen once); the oldest went first.
    r = fetch(l, origin.url("/o9"))
    assert cache_status(r).get("hit") and r.body == bodies["/o9"], r
    r = fetch_stored(l, origin.url("/o0"))
    assert not cache_status(r).get("hit") and r.body == bodies["/o0"], r
    assert len(origin.requests) == 11


def test_reused_object_survives_a_sweep(tmp_path, origin):
    # Segmented LRU (store/store.h): an object hit after its fill is protected; a sweep of objects seen
    # once only cycles through probation and leaves it alone. Plain LRU would evict it.
    bodies = objects(origin)
    l = cache_larder(tmp_path, "--cache-size", "4M", "--max-object-size", "2M")
    hot = origin.url("/hot")
    fetch_stored(l, hot)
    assert cache_status(fetch(l, hot)).get("hit")
    for i in range(8):
        fetch_stored(l, origin.url(f"/sweep{i}"))
    l.expect("store_evictions", ">=", 5)
    r = fetch(l, hot)
    assert cache_status(r).get("hit") and r.body == bodies["/hot"], "the reused object was evicted by a sweep"
    assert len(origin.requests_for("/hot")) == 1
    l.expect("store_promotions", ">=", 1)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_object_larger_than_max_object_size_is_served_not_stored(tmp_path, origin, framing):
    # With Content-Length the size is known at the head; chunked, only when the limit is crossed, after
    # the fill has begun (and other requests may have joined it: single flight). Each URL is fetched
    # twice back to back; both clients get the whole body, neither gets a stored copy.
    bodies = objects(origin, size=2 * MIB + 17, framing=framing)
    l = cache_larder(tmp_path, "--cache-size", "16M", "--max-object-size", "1M")
    paths = [f"/large{i}" for i in range(5)]
    for p in paths:
        for attempt in range(2):
            try:
                r = fetch(l, origin.url(p))
            except (EOFError, ConnectionError) as e:
                raise AssertionError(f"{p} request {attempt}: broken response ({e})") from None
            assert r.status == 200 and r.body == bodies[p], (p, attempt, len(r.body), r.headers)
            assert not cache_status(r).get("hit"), r
            if framing == "length":
                # Known at the head. (Chunked, the head, with its Cache-Status, is gone before the size is.)
                assert not cache_status(r).get("stored"), r
        assert len(origin.requests_for(p)) == 2
    l.expect("store_entries", 0)
    l.expect("store_pending_bodies", 0)
    l.expect("store_used_bytes", 0)


def test_object_of_exactly_max_object_size_is_stored(tmp_path, origin):
    bodies = objects(origin, size=MIB, framing="chunked")
    l = cache_larder(tmp_path, "--cache-size", "16M", "--max-object-size", "1M")
    url = origin.url("/exact")
    r = fetch_stored(l, url)
    assert r.body == bodies["/exact"] and cache_status(r).get("stored"), r
    r = fetch(l, url)
    assert cache_status(r).get("hit") and r.body == bodies["/exact"], r


def test_object_larger_than_cache_size_with_default_max_object_size(tmp_path, origin):
    # max_object_size 0 means cache_size (store/store.h): an object bigger than the whole cache is
    # streamed to the client and not stored, and what was stored before is not evicted for it.
    small = random_bytes(100 * 1024, seed=1)
    huge = random_bytes(3 * MIB, seed=2)
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=3600")],
                                          body=small if req.target == "/small" else huge, framing="chunked")
    l = cache_larder(tmp_path, "--cache-size", "2M", "--max-object-size", "0")
    fetch_stored(l, origin.url("/small"))
    r = fetch(l, origin.url("/huge"))
    assert r.status == 200 and r.body == huge, (len(r.body), r.headers)
    r = fetch(l, origin.url("/small"))
    assert cache_status(r).get("hit") and r.body == small, r
    l.expect("store_entries", 1)
    l.expect("store_evictions", 0)
    l.expect("store_pending_bodies", 0)
    r = fetch(l, origin.url("/huge"))
    assert r.body == huge and not cache_status(r).get("hit"), r
    assert len(origin.requests_for("/huge")) == 2
