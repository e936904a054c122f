"""c: secondary cache keys (RFC 9111 s4.1): a response with Vary is stored per variant of the request
fields it names, each variant is selected only by a request that matches it, and "Vary: *" never
matches."""

from harness import Larder, Response, access_results, advance_clock, cache_status, fetch, fetch_stored, is_conditional


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def by_encoding(vary="Accept-Encoding", cc="max-age=60"):
    """Origin handler: the body and ETag depend on Accept-Encoding (and Accept-Language when varied on)."""

    def handler(req):
        ae = req.header("accept-encoding") or "none"
        al = req.header("accept-language") or "none"
        tag = f'"{ae}|{al}"'.replace(" ", "")
        if req.header("if-none-match") == tag:
            return Response(status=304, headers=[("ETag", tag), ("Cache-Control", cc), ("Vary", vary),
                                                 ("X-Revalidated", ae)])
        return Response(headers=[("Cache-Control", cc), ("Vary", vary), ("ETag", tag), ("Content-Type", "text/plain")],
                        body=f"variant ae={ae} al={al}".encode())

    return handler


def test_two_variants_side_by_side(tmp_path, origin):
    origin.handler = by_encoding()
    l = cache_larder(tmp_path)
    url = origin.url("/v")
    gz = [("Accept-Encoding", "gzip")]
    br = [("Accept-Encoding", "br")]

    r1 = fetch_stored(l, url, headers=gz)
    assert r1.body == b"variant ae=gzip al=none" and cache_status(r1).get("fwd") == "uri-miss", r1
    r2 = fetch_stored(l, url, headers=br)
    assert r2.body == b"variant ae=br al=none", r2
    cs2 = cache_status(r2)
    assert cs2.get("fwd") == "vary-miss" and cs2.get("stored"), f"a stored variant that does not match: {r2!r}"
    assert [q.header("accept-encoding") for q in origin.requests] == ["gzip", "br"]

    gz_body, br_body = b"variant ae=gzip al=none", b"variant ae=br al=none"
    for hdrs, want in ((gz, gz_body), (br, br_body), (gz, gz_body)):
        r = fetch(l, url, headers=hdrs)
        assert cache_status(r).get("hit") and r.body == want, (hdrs, r)
        assert r.header("vary") == "Accept-Encoding", r
    assert len(origin.requests) == 2
    assert access_results(l, url, 5) == ["TCP_MISS/200", "TCP_MISS/200", "TCP_HIT/200", "TCP_HIT/200", "TCP_HIT/200"]
    l.expect("store_entries", 2)
    l.expect("cache_hits", 3)
    l.expect("cache_misses", 2)


def test_absent_field_is_its_own_variant(tmp_path, origin):
    # s4.1: a field absent from the request only matches a stored request that also lacked it.
    origin.handler = by_encoding()
    l = cache_larder(tmp_path)
    url = origin.url("/absent")
    fetch_stored(l, url)
    r = fetch_stored(l, url, headers=[("Accept-Encoding", "gzip")])
    assert cache_status(r).get("fwd") == "vary-miss" and r.body == b"variant ae=gzip al=none", r
    r = fetch(l, url)
    assert cache_status(r).get("hit") and r.body == b"variant ae=none al=none", r
    # Present but empty is not absent (an empty Accept-Encoding means "identity only").
    r = fetch(l, url, headers=[("Accept-Encoding", "")])
    assert cache_status(r).get("fwd") == "vary-miss", r
    assert len(origin.requests) == 3


def test_whitespace_and_case_normalised(tmp_path, origin):
    # s4.1: values may be normalised by adding or removing whitespace where allowed; field names
    # are case-insensitive (RFC 9110 s5.1).
    origin.handler = by_encoding()
    l = cache_larder(tmp_path)
    url = origin.url("/ws")
    fetch_stored(l, url, headers=[("Accept-Encoding", "gzip, br")])
    for v in ("gzip,br", "gzip ,  br", "gzip,\tbr"):
        r = fetch(l, url, headers=[("accept-encoding", v)])
        assert cache_status(r).get("hit"), (v, r)
    # Different members, or a different order, are a different variant.
    r = fetch_stored(l, url, headers=[("Accept-Encoding", "br, gzip")])
    assert cache_status(r).get("fwd") == "vary-miss", r
    assert len(origin.requests) == 2


def test_several_varied_fields_must_all_match(tmp_path, origin):
    vary = "Accept-Encoding, Accept-Language"
    origin.handler = by_encoding(vary)
    l = cache_larder(tmp_path)
    url = origin.url("/multi")
    both = [("Accept-Encoding", "gzip"), ("Accept-Language", "fr")]
    fetch_stored(l, url, headers=both)
    assert cache_status(fetch(l, url, headers=both)).get("hit")
    for hdrs in ([("Accept-Encoding", "gzip"), ("Accept-Language", "de")], [("Accept-Encoding", "gzip")],
                 [("Accept-Language", "fr")]):
        r = fetch_stored(l, url, headers=hdrs)
        assert not cache_status(r).get("hit") and cache_status(r).get("fwd") == "vary-miss", (hdrs, r)
    assert len(origin.requests) == 4
    l.expect("store_entries", 4)


def test_unvaried_fields_do_not_matter(tmp_path, origin):
    origin.handler = by_encoding()
    l = cache_larder(tmp_path)
    url = origin.url("/other")
    fetch_stored(l, url, headers=[("Accept-Encoding", "gzip"), ("Accept-Language", "en")])
    r = fetch(l, url, headers=[("Accept-Encoding", "gzip"), ("Accept-Language", "ja"), ("User-Agent", "x")])
    assert cache_status(r).get("hit") and r.body == b"variant ae=gzip al=en", r
    assert len(origin.requests) == 1


def test_stale_variant_revalidated_with_its_own_etag(tmp_path, origin):
    # s4.3.1 / s4.3.4: validating one variant sends that variant's ETag, and the 304 refreshes it alone.
    origin.handler = by_encoding(cc="max-age=10")
    l = cache_larder(tmp_path)
    url = origin.url("/vr")
    fetch_stored(l, url, headers=[("Accept-Encoding", "gzip")])
    fetch_stored(l, url, headers=[("Accept-Encoding", "br")])
    advance_clock(l, 11)
    r = fetch_stored(l, url, headers=[("Accept-Encoding", "br")])
    assert r.status == 200 and r.body == b"variant ae=br al=none" and r.header("x-revalidated") == "br", r
    cond = origin.requests[2]
    assert is_conditional(cond) and cond.header("if-none-match") == '"br|none"', cond
    r = fetch(l, url, headers=[("Accept-Encoding", "br")])
    assert cache_status(r).get("hit") and r.header("x-revalidated") == "br", r
    # The gzip variant was not refreshed: it is still stale and is validated with its own ETag.
    r = fetch_stored(l, url, headers=[("Accept-Encoding", "gzip")])
    assert not cache_status(r).get("hit") and r.body == b"variant ae=gzip al=none", r
    assert origin.requests[3].header("if-none-match") == '"gzip|none"', origin.requests[3]
    assert len(origin.requests) == 4
    l.expect("store_body_bytes_written", len(b"variant ae=gzip al=none") + len(b"variant ae=br al=none"))


def test_vary_star_never_served_from_cache(tmp_path, origin):
    # s4.1: "A stored response with a Vary header field value containing a member "*" always fails to
    # match."
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=60"), ("Vary", "*")],
                                          body=f"#{len(origin.requests)}".encode())
    l = cache_larder(tmp_path)
    url = origin.url("/star")
    bodies = []
    for _ in range(3):
        r = fetch(l, url)
        assert r.status == 200 and not cache_status(r).get("hit") and not cache_status(r).get("stored"), r
        bodies.append(r.body)
    assert bodies == [b"#1", b"#2", b"#3"]
    assert access_results(l, url, 3) == ["TCP_MISS/200"] * 3
    l.expect("store_entries", 0)
    l.expect("cache_hits", 0)


def test_vary_star_replacing_a_stored_variant(tmp_path, origin):
    # A URL first stored without Vary; after expiry the origin answers with Vary: *. The old entry must
    # not be served again as a hit, and the new response is not stored.
    state = {"n": 0}

    def handler(req):
        state["n"] += 1
        if state["n"] == 1:
            return Response(headers=[("Cache-Control", "max-age=10")], body=b"plain")
        return Response(headers=[("Cache-Control", "max-age=60"), ("Vary", "*")], body=f"star {state['n']}".encode())

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/tostar")
    fetch_stored(l, url)
    advance_clock(l, 11)
    r = fetch(l, url)
    assert r.body == b"star 2" and not cache_status(r).get("stored"), r
    r = fetch(l, url)
    assert r.body == b"star 3" and not cache_status(r).get("hit"), r
