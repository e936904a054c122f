"""Single flight when the shared response stops being storable after followers have part of it.

Followers read a shared fetch from the store. When the fill is abandoned in the middle of the body
while the origin is still fine (the body grows past max_object_size, or the store fails), a follower
that has already sent the head and some of the body asks the origin for the rest itself (txn_fetch.c
txn__follow_resume): `Range: bytes=N-` under an If-Range with the response's strong validator
(RFC 9110 s13.1.5). Only a 206 for exactly those bytes continues its response; a 200 (the
representation changed) or no strong validator ends the connection short, as before, so a client never
gets a mix of two representations (RFC 9110 s14.4)."""

import re

import pytest

from harness import Download, GatedBody, Larder, Response, random_bytes

KIB = 1 << 10
MIB = 1 << 20


def range_start(req, last=None) -> int:
    """The first byte a resume asks for: open-ended when the length is unknown, else up to `last`."""
    m = re.fullmatch(r"bytes=(\d+)-" + ("" if last is None else str(last)), req.header("range", ""))
    assert m, f"resume must ask for the rest of the body: {req.header('range')!r}"
    return int(m.group(1))


def start_stampede(l, origin, url, data, g, followers=3):
    """The leader's download, then followers once the origin has sent `g`'s first stop, each with part
    of the body before the gate opens."""
    leader = Download(l, url, expect=data)
    origin.wait_for_requests(1)
    others = [Download(l, url, expect=data) for _ in range(followers)]
    l.expect("flight_followers", followers, timeout=10)
    assert g.reached(g.stops[0]).wait(20)
    for d in others:
        d.wait_bytes(64 * KIB, 20)
    return leader, others


def assert_followers_cut_short(leader, others, data):
    """The leader has the whole body from the origin; each follower ends short with a prefix of it."""
    leader.join(30)
    assert leader.complete and leader.nbytes == len(data) and leader.first_mismatch is None, leader
    for d in others:
        d.join(30)
        assert not d.complete and d.first_mismatch is None and d.nbytes < len(data), d


@pytest.mark.parametrize("validator", ["etag", "last-modified"])
def test_too_big_mid_stream_followers_fetch_the_rest(tmp_path, origin, validator):
    # A chunked body of unknown length grows past max_object_size (1 MiB) while three followers have
    # part of it from the store: each asks for the rest with Range + If-Range and ends up with the
    # whole body, byte for byte; the leader streams straight from the origin throughout.
    data = random_bytes(3 * MIB, seed=31)
    g = GatedBody(data, stops=[512 * KIB])
    strong = {"etag": ("ETag", '"v1"'), "last-modified": ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT")}[validator]

    def handler(req):
        if req.header("range") is None:
            return Response(headers=[strong, ("Cache-Control", "max-age=300")], body=g, framing="chunked")
        start = range_start(req)
        assert req.header("if-range") == strong[1], req
        return Response(status=206, headers=[strong, ("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")],
                        body=data[start:])

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1", "--max-object-size", "1M")
    url = origin.url(f"/grows-{validator}")
    leader, others = start_stampede(l, origin, url, data, g)
    had = [d.nbytes for d in others]
    g.release()
    for d in [leader, *others]:
        d.join(30)
        assert d.complete and d.head.status == 200, d
        assert d.nbytes == len(data) and d.first_mismatch is None, d
    ranges = [q for q in origin.requests if q.header("range") is not None]
    assert len(origin.requests) == 4 and len(ranges) == 3, origin.requests
    # Each asked from where its client was: at least what it had when the gate opened, and at most
    # what the store could hold before the fill was abandoned.
    for q in ranges:
        assert min(had) <= range_start(q) <= 1 * MIB + 256 * KIB, (range_start(q), had)
        assert q.header("if-none-match") is None and q.header("if-modified-since") is None, q
    l.expect("flight_resumes", 3)
    l.expect("cache_stores", 0)
    l.expect("cache_store_aborts", 1)


def test_no_strong_validator_followers_are_cut_short(tmp_path, origin):
    # A weak ETag cannot make a Range safe (If-Range needs a strong validator): the followers' responses
    # end short, as they always did, and nothing more reaches the origin.
    data = random_bytes(3 * MIB, seed=32)
    g = GatedBody(data, stops=[512 * KIB])
    origin.handler = lambda req: Response(headers=[("ETag", 'W/"v1"'), ("Cache-Control", "max-age=300")], body=g,
                                          framing="chunked")
    l = Larder(tmp_path, "--workers", "1", "--max-object-size", "1M")
    url = origin.url("/weak")
    leader, others = start_stampede(l, origin, url, data, g)
    g.release()
    assert_followers_cut_short(leader, others, data)
    assert len(origin.requests) == 1, origin.requests
    l.expect("flight_resumes", 0)
    assert l.wait_error_log(r"cannot be fetched: the response has no strong validator"), l.error_log_text()[-2000:]


def test_representation_changed_followers_never_get_a_mix(tmp_path, origin):
    # By the time the followers ask for the rest, the origin has a new version: If-Range fails and it
    # answers 200 with the new body. Splicing that onto the old one would be a corrupt file: the
    # followers' connections end short instead, each with a prefix of the old body only.
    data = random_bytes(3 * MIB, seed=33)
    newer = random_bytes(3 * MIB, seed=34)
    g = GatedBody(data, stops=[512 * KIB])

    def handler(req):
        if req.header("range") is None:
            return Response(headers=[("ETag", '"v1"'), ("Cache-Control", "max-age=300")], body=g, framing="chunked")
        return Response(headers=[("ETag", '"v2"'), ("Cache-Control", "max-age=300")], body=newer)

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1", "--max-object-size", "1M")
    url = origin.url("/changed")
    leader, others = start_stampede(l, origin, url, data, g)
    g.release()
    assert_followers_cut_short(leader, others, data)
    assert len(origin.requests) == 4, origin.requests
    l.expect("flight_resumes", 3)
    assert l.wait_error_log(r"resuming from byte \d+ failed: the representation changed"), l.error_log_text()[-2000:]


def test_store_failure_with_content_length_followers_fetch_the_rest(tmp_path, origin):
    # Content-Length known, so the followers' responses are length-delimited; the store then fails
    # mid-fill (data.mdb may not grow past a file-size limit, as on a full disk). The followers resume
    # and their responses end exactly at the announced length.
    import resource
    data = random_bytes(8 * MIB, seed=35)
    g = GatedBody(data, stops=[512 * KIB])

    def handler(req):
        if req.header("range") is None:
            return Response(headers=[("ETag", '"v1"'), ("Cache-Control", "max-age=300")], body=g, length=g.length)
        start = range_start(req, last=len(data) - 1)
        return Response(status=206, headers=[("ETag", '"v1"'), ("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")],
                        body=data[start:])

    origin.handler = handler
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (3 * MIB, hard))
    try:
        l = Larder(tmp_path, "--workers", "1")  # the child inherits the limit at fork
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    url = origin.url("/disk-full")
    leader, others = start_stampede(l, origin, url, data, g)
    g.release()
    for d in [leader, *others]:
        d.join(60)
        assert d.complete and d.head.header("content-length") == str(len(data)), d
        assert d.nbytes == len(data) and d.first_mismatch is None, d
    # The leader too, when its client fell behind and it had switched to reading its own fill.
    own = l.metrics()["flight_self_follow"]
    assert len([q for q in origin.requests if q.header("range")]) == 3 + own, (own, origin.requests)
    l.expect("flight_resumes", 3 + own)
    l.expect("store_entries", 0)  # the fill was given up (mid-way) or its commit failed: nothing kept
    m = l.metrics()
    assert m["cache_store_aborts"] + m["cache_store_failures"] == 1, m
