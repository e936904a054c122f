"""Range requests and single flight (RFC 9110 s14): a Range on an object that is still being filled is
answered 206 from the store as soon as the bytes are there; a Range on a cold URL makes larder fetch
the whole object once, without the client's Range (so it can be stored and shared), serve the range
from it, and answer later requests from the store.

The origin holds the body at a gate after the range's bytes have been sent: the 206 must be complete
while the origin is still waiting, so the test knows it was served during the fill."""

from harness import Download, GatedBody, Larder, Response, cache_status, fetch, random_bytes

MIB = 1 << 20
BIG = 8 * MIB


def cacheable(g: GatedBody, framing: str = "length") -> Response:
    return Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=300"),
                             ("ETag", '"big"')], body=g, length=g.length, framing=framing)


def assert_206(d: Download, first: int, last: int, total: int, data: bytes):
    assert d.complete and d.head.status == 206, d
    assert d.head.header("content-range") == f"bytes {first}-{last}/{total}", d.head
    assert d.head.header("content-length") == str(last - first + 1), d.head
    assert bytes(d.body) == data[first:last + 1]


def test_range_of_an_object_being_filled(tmp_path, origin):
    # A first client is downloading the whole object; the origin waits at 3 MiB. A second client asks
    # for 1 MB inside what has arrived: a complete 206 while the origin still waits. A third asks for
    # bytes beyond the gate: its 206 head comes at once, its body when the origin goes on.
    gate = 3 * MIB
    g = GatedBody(random_bytes(BIG, seed=11), stops=[gate])
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/filling")
    whole = Download(l, url, expect=g.data)
    assert g.reached(gate).wait(20)
    whole.wait_bytes(2 * MIB, 20)
    inside = Download(l, url, headers=[("Range", "bytes=1000000-1999999")], keep=True)
    inside.join(20)  # before the gate opens
    assert_206(inside, 1000000, 1999999, BIG, g.data)
    assert cache_status(inside.head).get("collapsed"), inside.head
    beyond = Download(l, url, headers=[("Range", "bytes=6000000-6099999")], keep=True)
    assert beyond.wait_head(20).status == 206, beyond
    assert not beyond.finished
    g.release()
    assert beyond.join(20) and whole.join(30)
    assert_206(beyond, 6000000, 6099999, BIG, g.data)
    assert whole.complete and whole.sha256 == g.sha256 and whole.first_mismatch is None, whole
    assert len(origin.requests) == 1 and not origin.requests[0].has("range"), origin.requests
    l.expect("flight_followers", 2)
    l.expect("cache_range_hits", 2)


def test_range_on_a_cold_url_fetches_the_whole_object_once(tmp_path, origin):
    gate = 1 * MIB
    g = GatedBody(random_bytes(BIG, seed=12), stops=[gate])
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/cold-range")
    d = Download(l, url, headers=[("Range", "bytes=100-199"), ("If-Range", '"big"')], keep=True)
    d.join(20)  # served while the origin waits at 1 MiB
    assert_206(d, 100, 199, BIG, g.data)
    assert g.reached(gate).is_set() and len(origin.requests) == 1
    up = origin.requests[0]
    assert not up.has("range") and not up.has("if-range"), up
    g.release()
    l.expect("store_meta_writes", ">=", 1, timeout=20)
    r = fetch(l, url)
    assert r.status == 200 and cache_status(r).get("hit"), r
    assert r.body == g.data
    r2 = fetch(l, url, headers=[("Range", "bytes=-100")])
    assert r2.status == 206 and r2.body == g.data[-100:] and cache_status(r2).get("hit"), r2
    assert len(origin.requests) == 1, origin.requests
    l.expect("flight_leaders", 1)
    l.expect("cache_stores", 1)


def test_suffix_range_on_a_cold_url_waits_for_the_end(tmp_path, origin):
    # bytes=-100 needs the end of the object: the 206 comes once the origin has sent it all.
    g = GatedBody(random_bytes(2 * MIB, seed=13), stops=[MIB])
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/suffix")
    d = Download(l, url, headers=[("Range", "bytes=-100")], keep=True)
    assert g.reached(MIB).wait(20)
    assert d.wait_head(20).status == 206, d  # the length is known from the head
    g.release()
    d.join(20)
    assert_206(d, g.length - 100, g.length - 1, g.length, g.data)
    assert len(origin.requests) == 1 and not origin.requests[0].has("range")


def test_range_while_length_unknown_is_answered_in_full(tmp_path, origin):
    # A chunked response of unknown length: larder may ignore the Range (RFC 9110 s14.2) and send the
    # whole body with 200; it still fetches once and stores the object.
    g = GatedBody(random_bytes(MIB, seed=14))
    origin.respond(cacheable(g, framing="chunked"))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/unknown-length")
    d = Download(l, url, headers=[("Range", "bytes=10-19")], keep=True)
    d.join(20)
    assert d.complete, d
    if d.head.status == 206:
        assert bytes(d.body) == g.data[10:20], d.head
    else:
        assert d.head.status == 200 and bytes(d.body) == g.data, d
    l.expect("store_meta_writes", ">=", 1, timeout=10)
    r = fetch(l, url, headers=[("Range", "bytes=10-19")])
    assert r.status == 206 and r.body == g.data[10:20] and cache_status(r).get("hit"), r
    assert len(origin.requests) == 1 and not origin.requests[0].has("range")


def test_conditional_follower_gets_304(tmp_path, origin):
    # A follower whose If-None-Match matches the response being fetched gets 304 (RFC 9110 s13.1.2)
    # as soon as the head is known, while the body is still arriving.
    g = GatedBody(random_bytes(2 * MIB, seed=15), stops=[MIB])
    origin.respond(cacheable(g))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/inm")
    leader = Download(l, url, expect=g.data)
    assert g.reached(MIB).wait(20)
    d = Download(l, url, headers=[("If-None-Match", '"big"')], keep=True)
    d.join(20)
    assert d.complete and d.head.status == 304 and d.nbytes == 0, d
    assert d.head.header("etag") == '"big"', d.head
    g.release()
    leader.join(20)
    assert leader.complete and leader.sha256 == g.sha256, leader
    assert len(origin.requests) == 1 and not origin.requests[0].has("if-none-match")
