"""c: the client's own conditionals (RFC 9110 s13, RFC 9111 s4.3.2) and Range requests (RFC 9110 s14)
answered from a stored response, without contacting the origin."""

import re

import pytest

from harness import (Larder, Response, access_results, advance_clock, cache_status, fetch, fetch_stored, is_conditional,
                     random_bytes)

LM = "Mon, 01 Jan 2024 00:00:00 GMT"
BODY = bytes((i * 7 + 3) % 256 for i in range(1000))


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def stored(origin, tmp_path, body=BODY, etag='"v1"', path="/obj", extra=()):
    """Origin with one fresh object (ETag, Last-Modified), larder with it stored. Returns (larder, url)."""
    hdrs = [("Cache-Control", "max-age=600"), ("Content-Type", "application/x-test"), ("Last-Modified", LM)]
    if etag:
        hdrs.append(("ETag", etag))
    origin.handler = lambda req: Response(headers=hdrs + list(extra), body=body)
    l = cache_larder(tmp_path)
    url = origin.url(path)
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == body and cache_status(r).get("stored"), r
    return l, url


def no_more_upstream(origin, n=1):
    assert len(origin.requests) == n, f"the origin was contacted: {origin.requests}"


# ---- conditionals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("inm", ['"v1"', 'W/"v1"', '"other", "v1"', "*"])
def test_if_none_match_matching_gives_304_from_cache(tmp_path, origin, inm):
    # RFC 9110 s13.1.2: If-None-Match compares weakly; "*" matches any current representation.
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("If-None-Match", inm)])
    assert r.status == 304 and r.body == b"", r
    assert r.header("etag") == '"v1"', r  # RFC 9110 s15.4.5: the 304 carries the ETag
    assert r.header("cache-control") == "max-age=600", r
    assert not r.has("content-type") and not r.has("last-modified"), r  # not among the 304 fields
    assert cache_status(r).get("hit"), r
    no_more_upstream(origin)
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_IMS_HIT/304"]
    l.expect("cache_client_304", 1)
    l.expect("store_body_bytes_read", 0)


def test_if_none_match_not_matching_gives_full_hit(tmp_path, origin):
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("If-None-Match", '"v0", "v2"')])
    assert r.status == 200 and r.body == BODY and cache_status(r).get("hit"), r
    no_more_upstream(origin)
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_HIT/200"]
    l.expect("cache_client_304", 0)


@pytest.mark.parametrize("ims,want", [
    (LM, 304),                                 # not modified since exactly then
    ("Tue, 02 Jan 2024 00:00:00 GMT", 304),    # later
    ("Sun, 31 Dec 2023 23:59:59 GMT", 200),    # earlier: modified since
    ("not a date", 200),                       # invalid: ignored (RFC 9110 s13.1.3)
])
def test_if_modified_since(tmp_path, origin, ims, want):
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("If-Modified-Since", ims)])
    assert r.status == want, r
    assert r.body == (b"" if want == 304 else BODY), r
    assert cache_status(r).get("hit"), r
    no_more_upstream(origin)
    assert access_results(l, url, 2)[1] == ("TCP_IMS_HIT/304" if want == 304 else "TCP_HIT/200")


def test_if_none_match_takes_precedence_over_if_modified_since(tmp_path, origin):
    # RFC 9110 s13.2.2: If-Modified-Since is evaluated only without If-None-Match.
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("If-None-Match", '"nope"'), ("If-Modified-Since", "Tue, 02 Jan 2024 00:00:00 GMT")])
    assert r.status == 200 and r.body == BODY, r
    no_more_upstream(origin)


def test_conditional_on_a_miss_with_origin_ignoring_it(tmp_path, origin):
    # On a miss the client's If-None-Match may travel upstream. An origin that ignores it answers 200:
    # larder stores that and evaluates the client's precondition itself (s4.3.2): the client gets 304.
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600"), ("ETag", '"v1"')], body=BODY)
    l = cache_larder(tmp_path)
    url = origin.url("/missinm")
    r = fetch_stored(l, url, headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.body == b"" and r.header("etag") == '"v1"', r
    assert cache_status(r).get("stored"), r
    r = fetch(l, url)
    assert r.status == 200 and r.body == BODY and cache_status(r).get("hit"), r
    no_more_upstream(origin)


def test_conditional_on_a_miss_with_origin_answering_304(tmp_path, origin):
    # The origin's 304 goes to the client; nothing is stored (a 304 is not a representation, s3), so
    # the next plain GET is a miss that fills the cache.
    def handler(req):
        h = [("Cache-Control", "max-age=600"), ("ETag", '"v1"')]
        if req.header("if-none-match") == '"v1"':
            return Response(status=304, headers=h)
        return Response(headers=h, body=BODY)

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/miss304")
    r = fetch(l, url, headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and r.body == b"" and not cache_status(r).get("stored"), r
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == BODY and cache_status(r).get("fwd") == "uri-miss", r
    assert not is_conditional(origin.requests[1]), origin.requests[1]
    r = fetch(l, url, headers=[("If-None-Match", '"v1"')])
    assert r.status == 304 and cache_status(r).get("hit"), r
    assert len(origin.requests) == 2
    assert access_results(l, url, 3) == ["TCP_MISS/304", "TCP_MISS/200", "TCP_IMS_HIT/304"]


# ---- ranges -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,first,last", [
    ("bytes=0-9", 0, 9),
    ("bytes=-5", 995, 999),
    ("bytes=5-", 5, 999),
    ("bytes=990-5000", 990, 999),  # last-pos past the end is clipped (RFC 9110 s14.1.2)
    ("bytes=500-500", 500, 500),
])
def test_single_range_from_cache(tmp_path, origin, spec, first, last):
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("Range", spec)])
    assert r.status == 206, r
    assert r.header("content-range") == f"bytes {first}-{last}/{len(BODY)}", r
    assert r.header("content-length") == str(last - first + 1), r
    assert r.body == BODY[first:last + 1], r
    assert r.header("content-type") == "application/x-test", r
    assert cache_status(r).get("hit"), r
    no_more_upstream(origin)
    assert access_results(l, url, 2)[1] == "TCP_HIT/206"
    l.expect("cache_range_hits", 1)
    l.expect("store_body_bytes_read", last - first + 1)


@pytest.mark.parametrize("spec", ["bytes=1000-", "bytes=5000-6000"])
def test_unsatisfiable_range(tmp_path, origin, spec):
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("Range", spec)])
    assert r.status == 416, r
    assert r.header("content-range") == f"bytes */{len(BODY)}", r  # RFC 9110 s15.5.17
    assert r.body == b"", r
    no_more_upstream(origin)
    assert access_results(l, url, 2)[1] == "TCP_HIT/416"


@pytest.mark.parametrize("spec", ["bytes=abc", "items=0-5", "bytes=9-2"])
def test_invalid_range_ignored(tmp_path, origin, spec):
    # RFC 9110 s14.2: a Range the server does not understand (or an invalid one) is ignored: 200.
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("Range", spec)])
    assert r.status == 200 and r.body == BODY, r
    no_more_upstream(origin)


@pytest.mark.parametrize("if_range,partial", [
    ('"v1"', True),
    ('"v2"', False),
    (LM, True),                              # a strong date: Date is well after Last-Modified
    ("Tue, 02 Jan 2024 00:00:00 GMT", False),
])
def test_if_range(tmp_path, origin, if_range, partial):
    # RFC 9110 s13.1.5: the range only if the validator matches, else the whole representation.
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("Range", "bytes=0-9"), ("If-Range", if_range)])
    if partial:
        assert r.status == 206 and r.body == BODY[:10], r
    else:
        assert r.status == 200 and r.body == BODY and not r.has("content-range"), r
    no_more_upstream(origin)


def test_if_range_with_weak_etag_sends_everything(tmp_path, origin):
    # RFC 9110 s13.1.5: If-Range needs a strong comparison; a weak entity-tag never matches.
    l, url = stored(origin, tmp_path, etag='W/"w1"')
    r = fetch(l, url, headers=[("Range", "bytes=0-9"), ("If-Range", 'W/"w1"')])
    assert r.status == 200 and r.body == BODY, r
    no_more_upstream(origin)


def parse_multipart(resp):
    m = re.match(r'^multipart/byteranges;\s*boundary=("?)([^";]+)\1\s*$', resp.header("content-type") or "")
    assert m, f"not multipart/byteranges: {resp!r}"
    boundary = m.group(2).encode()
    body = resp.body
    parts = []
    pieces = body.split(b"--" + boundary)
    assert pieces[-1].strip() in (b"--", b"--\r\n".strip()), f"no closing delimiter: {body[-80:]!r}"
    for p in pieces[1:-1]:
        assert p.startswith(b"\r\n"), p[:40]
        head, _, data = p[2:].partition(b"\r\n\r\n")
        assert data.endswith(b"\r\n"), data[-10:]
        fields = dict((k.strip().lower(), v.strip()) for k, v in
                      (line.split(b":", 1) for line in head.split(b"\r\n") if line))
        parts.append((fields, data[:-2]))
    return parts


def test_two_ranges_multipart(tmp_path, origin):
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("Range", "bytes=0-9, 100-149")])
    assert r.status == 206 and not r.has("content-range"), r
    assert r.header("content-length") == str(len(r.body)), r
    parts = parse_multipart(r)
    assert [f[b"content-range"] for f, _ in parts] == [b"bytes 0-9/1000", b"bytes 100-149/1000"], parts
    assert [f.get(b"content-type") for f, _ in parts] == [b"application/x-test"] * 2
    assert [d for _, d in parts] == [BODY[0:10], BODY[100:150]]
    no_more_upstream(origin)
    assert access_results(l, url, 2)[1] == "TCP_HIT/206"


def test_range_across_store_chunks(tmp_path, origin):
    # Bodies are stored in 256 KiB chunks: a range spanning a chunk boundary is assembled from both.
    big = random_bytes(600 * 1024, seed=7)
    l, url = stored(origin, tmp_path, body=big, path="/big")
    k = 256 * 1024
    r = fetch(l, url, headers=[("Range", f"bytes={k - 100}-{k + 99}")])
    assert r.status == 206 and r.body == big[k - 100:k + 100], r
    r = fetch(l, url, headers=[("Range", f"bytes=-{len(big) - 2 * k + 10}")])  # starts in chunk 1, ends in 2
    assert r.status == 206 and r.body == big[2 * k - 10:], (len(r.body), r.header("content-range"))
    r = fetch(l, url)
    assert r.status == 200 and r.body == big and cache_status(r).get("hit")
    no_more_upstream(origin)


def test_precondition_before_range(tmp_path, origin):
    # RFC 9110 s13.2.2: If-None-Match is evaluated before Range: a match gives 304, not 206.
    l, url = stored(origin, tmp_path)
    r = fetch(l, url, headers=[("Range", "bytes=0-9"), ("If-None-Match", '"v1"')])
    assert r.status == 304 and r.body == b"", r
    no_more_upstream(origin)


def range_honouring(body, etag='"v1"', cc="max-age=600"):
    """Origin handler that honours a single "bytes=a-b" Range with 206, and If-None-Match with 304."""
    def handler(req):
        base = [("Cache-Control", cc), ("ETag", etag)]
        if req.header("if-none-match") == etag:
            return Response(status=304, headers=base)
        m = re.fullmatch(r"bytes=(\d+)-(\d+)", req.header("range") or "")
        if m:
            a, b = int(m.group(1)), int(m.group(2))
            return Response(status=206, headers=base + [("Content-Range", f"bytes {a}-{b}/{len(body)}")],
                            body=body[a:b + 1])
        return Response(headers=base, body=body)
    return handler


def test_range_on_miss_fetches_the_whole_object(tmp_path, origin):
    # larder's design (single flight): a Range that misses fetches the whole object upstream (so it
    # can be stored and shared) and serves the client's range from it.
    origin.handler = range_honouring(BODY)
    l = cache_larder(tmp_path)
    url = origin.url("/rmiss")
    r = fetch(l, url, headers=[("Range", "bytes=10-19")])
    assert r.status == 206 and r.body == BODY[10:20], r
    assert r.header("content-range") == "bytes 10-19/1000", r
    assert origin.requests[0].header("range") is None, "the whole object is fetched, not the range"
    l.expect("store_entries", 1)
    r = fetch(l, url)
    assert r.status == 200 and r.body == BODY and cache_status(r).get("hit"), r
    r = fetch(l, url, headers=[("Range", "bytes=20-29")])
    assert r.status == 206 and r.body == BODY[20:30] and cache_status(r).get("hit"), r
    assert len(origin.requests) == 1


def test_206_from_origin_on_revalidation_is_not_stored(tmp_path, origin):
    # A stale stored object, a client Range: larder validates with the stored ETag and passes the Range
    # on. The object changed, so the origin answers 206 with new bytes: the client gets them, but a
    # partial response is never stored (s3.3) and the stored entry is not replaced by it.
    old = BODY
    new = bytes(reversed(BODY))
    v = {"h": range_honouring(old, '"v1"', "max-age=10")}
    origin.handler = lambda req: v["h"](req)
    l = cache_larder(tmp_path)
    url = origin.url("/r206")
    fetch_stored(l, url)
    advance_clock(l, 11)
    v["h"] = range_honouring(new, '"v2"', "max-age=10")
    r = fetch(l, url, headers=[("Range", "bytes=0-9")])
    assert r.status == 206 and r.body == new[0:10] and not cache_status(r).get("stored"), r
    assert is_conditional(origin.requests[1]), origin.requests[1]
    l.expect("cache_not_storable", 1)
    m = l.metrics()
    assert m["store_body_bytes_written"] == len(BODY), "the 206 body was written to the store"
    # The next full GET validates the old entry again and replaces it with the new 200.
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == new, r
    r = fetch(l, url)
    assert r.status == 200 and r.body == new and cache_status(r).get("hit"), r
    assert len(origin.requests) == 3
