"""s: the store on disk (DESIGN: LMDB, meta records apart from body chunks). Objects survive a restart;
a 304 rewrites the meta record only, even for a 64 MiB object; a body that did not arrive whole is never
visible (upstream reset, short Content-Length, kill -9 in the middle of fills); a damaged data.mdb
disables the cache instead of stopping larder."""

import hashlib
import threading

import pytest

from harness import (Client, Larder, Raw, Response, access_results, advance_clock, cache_status, fetch,
                     fetch_stored, is_conditional, pattern_body, random_bytes)

MIB = 1 << 20


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def proc_io(pid):
    """/proc/PID/io as a dict (write_bytes: bytes this process caused to be sent to storage)."""
    with open(f"/proc/{pid}/io") as f:
        return {k.strip(): int(v) for k, v in (line.split(":", 1) for line in f if ":" in line)}


def stream_sha256(l, url, method="GET", headers=None, timeout=60.0):
    """One request; the body is hashed as it streams (never held). Returns (response head, sha256, length)."""
    with Client(l, timeout) as c:
        c.send_request(method, url, headers)
        r = c.read_head(method)
        h = hashlib.sha256()
        n = 0
        for piece in c.iter_body(r):
            h.update(piece)
            n += len(piece)
        return r, h.hexdigest(), n


def pattern_sha256(total):
    h = hashlib.sha256()
    for p in pattern_body(total):
        h.update(p)
    return h.hexdigest()


# ---- restart ------------------------------------------------------------------------------------------

def test_objects_survive_a_restart(tmp_path, origin):
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=3600"), ("ETag", f'"{req.target}"')],
                                          body=f"persistent {req.target}".encode() * 100)
    l1 = cache_larder(tmp_path)
    paths = ["/p1", "/p2", "/dir/p3?q=1"]
    for p in paths:
        assert cache_status(fetch_stored(l1, origin.url(p))).get("stored")
    l1.expect("store_entries", 3)
    assert l1.stop() == 0

    l2 = cache_larder(tmp_path, "--cache-dir", str(l1.cache_dir))
    for p in paths:
        r = fetch(l2, origin.url(p))
        assert r.status == 200 and cache_status(r).get("hit"), (p, r)
        assert r.body == f"persistent {p}".encode() * 100 and r.header("etag") == f'"{p}"', r
    assert len(origin.requests) == 3, "the origin was contacted after the restart"
    assert access_results(l2, origin.url("/p1"), 1) == ["TCP_HIT/200"]
    l2.expect("store_entries", 3)
    l2.expect("store_reclaimed_bodies", 0)  # a clean stop leaves no unfinished body
    l2.expect("store_body_bytes_written", 0)


def test_key_filter_answers_misses_and_never_hides_a_stored_object(tmp_path, origin):
    # store_filter.h: a URL with nothing stored is answered "miss" from memory, without a B-tree walk; a
    # stored one must always be found, also right after a restart, before the writer has rebuilt the
    # filter from the store, and after it has.
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=3600")], body=req.target.encode() * 10)
    l1 = cache_larder(tmp_path)
    l1.expect("store_filter_builds", ">=", 1, timeout=10)  # the empty store's filter, built when idle
    neg0 = l1.metrics()["store_filter_negatives"]
    paths = [f"/kf{i}" for i in range(40)]
    for p in paths:
        assert cache_status(fetch_stored(l1, origin.url(p))).get("stored")
    # Each first request was a miss the filter answered; the hits after the commit were not ruled out.
    l1.expect("store_filter_negatives", neg0 + len(paths))
    for p in paths[:5]:
        assert cache_status(fetch(l1, origin.url(p))).get("hit")
    l1.expect("store_filter_negatives", neg0 + len(paths))
    assert l1.stop() == 0

    l2 = cache_larder(tmp_path, "--cache-dir", str(l1.cache_dir))
    for p in paths[:20]:  # whether or not the new filter is built yet
        r = fetch(l2, origin.url(p))
        assert cache_status(r).get("hit") and r.body == p.encode() * 10, (p, r)
    l2.expect("store_filter_builds", ">=", 1, timeout=10)
    for p in paths:
        r = fetch(l2, origin.url(p))
        assert cache_status(r).get("hit") and r.body == p.encode() * 10, (p, r)
    assert len(origin.requests) == len(paths), "a stored object was fetched again"
    neg = l2.metrics()["store_filter_negatives"]
    assert not cache_status(fetch(l2, origin.url("/kf-new"))).get("hit")
    l2.expect("store_filter_negatives", neg + 1)


def test_age_keeps_counting_across_a_restart(tmp_path, origin):
    # The stored response_time is on disk: a restart does not make an object younger (s4.2.3).
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=100"), ("ETag", '"a"')], body=b"aging")
    l1 = cache_larder(tmp_path)
    fetch_stored(l1, origin.url("/age"))
    assert l1.stop() == 0
    l2 = cache_larder(tmp_path, "--cache-dir", str(l1.cache_dir))
    advance_clock(l2, 60)
    r = fetch(l2, origin.url("/age"))
    assert cache_status(r).get("hit") and 60 <= int(r.header("age")) <= 62, r


# ---- a 304 refresh of a large object writes no body ----------------------------------------------------

@pytest.mark.time_limit(180)
def test_304_refresh_of_64mib_object_writes_only_metadata(tmp_path, origin):
    size = 64 * MIB
    want = pattern_sha256(size)

    def handler(req):
        h = [("Cache-Control", "max-age=10"), ("ETag", '"big"'), ("Content-Type", "application/octet-stream")]
        if req.header("if-none-match") == '"big"':
            return Response(status=304, headers=h + [("X-Refreshed", str(len(origin.requests)))])
        if req.method == "HEAD":
            return Response(headers=h + [("Content-Length", str(size))], framing="none")
        return Response(headers=h, body=pattern_body(size), length=size)

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/big")

    r, digest, n = stream_sha256(l, url)
    assert r.status == 200 and n == size and digest == want, r
    assert cache_status(r).get("stored"), r
    l.expect("store_entries", 1, timeout=30)
    l.expect("store_body_bytes_written", size)
    chunks = l.expect("store_body_chunk_writes", ">=", size // (256 * 1024))

    # Stale now. A GET is validated (304) and then served from the store: count exactly that.
    advance_clock(l, 11)
    m0 = l.metrics()
    io0 = proc_io(l.pid)
    r, digest, n = stream_sha256(l, url)
    assert r.status == 200 and n == size and digest == want, r
    assert r.header("x-refreshed") == "2", r
    assert [is_conditional(q) for q in origin.requests] == [False, True], origin.requests
    l.expect("cache_revalidated_304", 1)
    l.expect("store_meta_writes", m0["store_meta_writes"] + 1, timeout=10)
    io1 = proc_io(l.pid)
    m1 = l.metrics()
    assert m1["store_body_bytes_written"] == size, "a 304 refresh rewrote body bytes"
    assert m1["store_body_chunk_writes"] == chunks, "a 304 refresh rewrote body chunks"
    # Reads: the one serving of the body to this client, nothing for the refresh itself.
    assert m1["store_body_bytes_read"] - m0["store_body_bytes_read"] == size, (m0, m1)
    wrote = io1["write_bytes"] - io0["write_bytes"]
    assert wrote < 4 * MIB, f"the process wrote {wrote} bytes to storage for a 304 refresh of a 64 MiB object"

    # A HEAD after the next expiry: no body is served at all; whatever larder does upstream (HEAD or
    # a conditional GET), it must neither read nor write the body, nor write 64 MiB to disk.
    advance_clock(l, 11)
    m2 = l.metrics()
    io2 = proc_io(l.pid)
    r = fetch(l, url, method="HEAD")
    assert r.status == 200 and r.body == b"" and r.header("content-length") == str(size), r
    assert access_results(l, url, 1, method="HEAD")[0].endswith("/200")
    io3 = proc_io(l.pid)
    m3 = l.metrics()
    assert m3["store_body_bytes_written"] == size and m3["store_body_chunk_writes"] == chunks, m3
    assert m3["store_body_bytes_read"] == m2["store_body_bytes_read"], "a HEAD read body bytes from the store"
    assert io3["write_bytes"] - io2["write_bytes"] < 4 * MIB


# ---- incomplete bodies are never visible ----------------------------------------------------------------

def test_upstream_reset_mid_body_stores_nothing(tmp_path, origin):
    body = random_bytes(2 * MIB, seed=3)
    origin.respond(Response(headers=[("Cache-Control", "max-age=600")], body=body, drip=64 * 1024,
                            reset="mid_body", reset_after=MIB + 1234))
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")], body=body)
    l = cache_larder(tmp_path)
    url = origin.url("/reset")
    with Client(l) as c:
        c.send_request("GET", url)
        r = c.read_head()
        assert r.status == 200 and r.header("content-length") == str(len(body)), r
        got = bytearray()
        with pytest.raises((EOFError, ConnectionError)):
            for piece in c.iter_body(r):
                got += piece
        assert len(got) < len(body) and bytes(got) == body[:len(got)]
    l.expect("cache_store_aborts", 1)
    l.expect("store_entries", 0)
    l.expect("store_pending_bodies", 0)  # the chunks written before the reset are gone
    l.expect("store_used_bytes", 0)
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == body and cache_status(r).get("fwd") == "uri-miss", r
    assert len(origin.requests) == 2
    assert access_results(l, url, 2)[1] == "TCP_MISS/200"
    r = fetch(l, url)
    assert cache_status(r).get("hit") and r.body == body


@pytest.mark.parametrize("kind", ["content-length", "chunked"])
def test_truncated_body_not_stored(tmp_path, origin, kind):
    full = random_bytes(600 * 1024, seed=5)
    if kind == "content-length":
        head = (b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nContent-Length: %d\r\n\r\n" % len(full))
        raw = head + full[:400 * 1024]  # then the origin closes: 200 KiB short
    else:
        head = b"HTTP/1.1 200 OK\r\nCache-Control: max-age=600\r\nTransfer-Encoding: chunked\r\n\r\n"
        raw = head + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (full[:300 * 1024], full[300 * 1024:400 * 1024]))
        # no last chunk: the close cuts the body
    origin.respond(Raw(raw))
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")], body=full)
    l = cache_larder(tmp_path)
    url = origin.url("/trunc")
    with Client(l) as c:
        c.send_request("GET", url)
        r = c.read_head()
        assert r.status == 200, r
        with pytest.raises((EOFError, ConnectionError)):
            b"".join(c.iter_body(r))
    l.expect("cache_store_aborts", 1)
    l.expect("store_entries", 0)
    l.expect("store_pending_bodies", 0)
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == full and cache_status(r).get("fwd") == "uri-miss", r
    assert len(origin.requests) == 2


def test_client_leaving_does_not_store_a_partial_body(tmp_path, origin):
    # The client that started the fetch goes away mid-body. larder may finish the fill without it, or
    # abandon it; what it must not do is store less than the whole body.
    body = random_bytes(3 * MIB, seed=9)
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")], body=body, drip=128 * 1024,
                                          chunk_delay=0.01)
    l = cache_larder(tmp_path)
    url = origin.url("/leave")
    c = Client(l)
    c.send_request("GET", url)
    r = c.read_head()
    c.reader.read_exact(256 * 1024)
    c.close()
    l.wait_access_log(lambda s: f" {url} " in s)
    # Whichever way it went, the fill is over once nothing is pending any more.
    l.expect("store_pending_bodies", 0, timeout=10)
    r2 = fetch_stored(l, url)
    assert r2.status == 200 and r2.body == body, r2
    r3 = fetch(l, url)
    assert r3.body == body and cache_status(r3).get("hit"), r3


def test_request_right_after_a_cut_fill_gets_a_whole_response(tmp_path, origin):
    # The first fetch dies mid-body; the client is told (EOF). A request that arrives after that must
    # not join the dead fetch (single flight): it gets a whole response of its own. The writer's
    # report of the abort may come tens of milliseconds later (a commit with fsync): no waiting here.
    full = random_bytes(900 * 1024, seed=6)
    origin.respond(Response(headers=[("Cache-Control", "max-age=600")], body=full, drip=64 * 1024,
                            reset="mid_body", reset_after=600 * 1024))
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")], body=full)
    l = cache_larder(tmp_path)
    url = origin.url("/again")
    for attempt in range(3):
        with Client(l) as c:
            c.send_request("GET", url)
            r = c.read_head()
            with pytest.raises((EOFError, ConnectionError)):
                b"".join(c.iter_body(r))
        try:
            r = fetch(l, url)
        except (EOFError, ConnectionError) as e:
            raise AssertionError(f"attempt {attempt}: the request after a cut fill got a broken response "
                                 f"({e}); it joined the failed fetch") from None
        assert r.status == 200 and r.body == full, \
            f"attempt {attempt}: the request after a cut fill got {r.status}, {len(r.body)} of {len(full)} bytes"
        assert r.header("content-length") == str(len(full)), r
        # Set up the next round: a new URL state (the object is stored now), so cut it again.
        origin.respond(Response(headers=[("Cache-Control", "max-age=600")], body=full, drip=64 * 1024,
                                reset="mid_body", reset_after=600 * 1024))
        url = origin.url(f"/again{attempt}")


# ---- kill -9 during fills ---------------------------------------------------------------------------------

def _size_for(i):
    return (2 + (i * 5) % 7) * MIB  # 2..8 MiB


@pytest.mark.time_limit(240)
def test_kill9_during_concurrent_fills_then_restart(tmp_path, origin):
    n = 20
    bodies = {f"/obj{i}": random_bytes(_size_for(i), seed=100 + i) for i in range(n)}
    digests = {p: hashlib.sha256(b).hexdigest() for p, b in bodies.items()}
    fast = {f"/obj{i}" for i in range(0, n, 2)}  # half complete before the kill, half are cut
    state = {"slow": True}

    def handler(req):
        h = [("Cache-Control", "max-age=3600"), ("Content-Type", "application/octet-stream")]
        if state["slow"] and req.target not in fast:
            # 6..26 s per object: still running when larder is killed
            return Response(headers=h, body=bodies[req.target], drip=64 * 1024, chunk_delay=0.2)
        return Response(headers=h, body=bodies[req.target])

    origin.handler = handler
    l1 = cache_larder(tmp_path, "--workers", "2")
    results = {}

    def client(path):
        try:
            r, digest, length = stream_sha256(l1, origin.url(path), timeout=30)
            results[path] = (r.status, digest, length)
        except Exception as e:  # the kill cuts most of them
            results[path] = ("cut", repr(e), 0)

    threads = [threading.Thread(target=client, args=(p,), daemon=True) for p in bodies]
    for t in threads:
        t.start()
    origin.wait_for_requests(n, timeout=30)
    # The fast half is stored, and the slow half is mid-body, with chunks already in the store.
    l1.expect("store_entries", len(fast), timeout=60)
    l1.expect("store_pending_bodies", ">=", 3, timeout=30)
    assert l1.kill9() == -9
    for t in threads:
        t.join(30)
    for p in fast:
        assert results[p][0] == 200 and results[p][1] == digests[p], (p, results[p])

    state["slow"] = False
    l2 = cache_larder(tmp_path, "--cache-dir", str(l1.cache_dir))
    m = l2.metrics()
    assert m["store_reclaimed_bodies"] >= 3, f"unfinished fills must be reclaimed at open: {m}"
    assert m["store_pending_bodies"] == 0 and m["store_entries"] == len(fast), m
    before = len(origin.requests)
    hits = 0
    for p in sorted(bodies):
        r, digest, length = stream_sha256(l2, origin.url(p))
        assert r.status == 200 and length == len(bodies[p]), (p, r)
        assert digest == digests[p], f"{p}: the body served after the crash differs from the origin's"
        hits += bool(cache_status(r).get("hit"))
    assert hits == len(fast), f"{hits} hits after the restart, expected the {len(fast)} objects finished before it"
    assert len(origin.requests) - before == n - len(fast)
    # And everything is whole in the store once the writer has caught up (a few hundred MiB with fsync).
    l2.expect("store_entries", n, timeout=60)
    l2.expect("store_pending_bodies", 0, timeout=60)
    for p in sorted(bodies):
        r, digest, _ = stream_sha256(l2, origin.url(p))
        assert cache_status(r).get("hit") and digest == digests[p], p


# ---- a damaged store ---------------------------------------------------------------------------------------

def test_corrupt_data_mdb_disables_the_cache_but_not_larder(tmp_path, origin):
    cache_dir = tmp_path / "broken-cache"
    cache_dir.mkdir()
    (cache_dir / "data.mdb").write_bytes(random_bytes(256 * 1024, seed=11))
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")], body=b"from the origin")
    l = cache_larder(tmp_path, "--cache-dir", str(cache_dir))
    # An ERROR line that names the file and what is wrong with it.
    line = l.wait_error_log(r"\bERROR\b.*cache")
    assert "data.mdb" in line and ("LMDB" in line or "corrupt" in line.lower()), \
        f"the error should name the problem: {line!r}"
    for _ in range(2):
        r = fetch(l, origin.url("/nocache"))
        assert r.status == 200 and r.body == b"from the origin", r
        assert not cache_status(r).get("hit") and not cache_status(r).get("stored"), r
        assert cache_status(r).get("fwd") == "bypass", r
    assert len(origin.requests) == 2
    # The damaged file is left for the operator to look at, not silently replaced.
    assert (cache_dir / "data.mdb").read_bytes() == random_bytes(256 * 1024, seed=11)
