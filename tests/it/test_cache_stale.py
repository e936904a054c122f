"""c: serving stale responses by the origin's leave (RFC 5861 with RFC 9111 s4.2.4):
stale-while-revalidate answers at once and refreshes in the background; stale-if-error stands in for
an origin that is down or failing, within its window only, and never against must-revalidate."""

import threading

import pytest

from harness import (Larder, Response, access_results, advance_clock, cache_status, fetch, fetch_stored,
                     is_conditional)

LM = "Mon, 01 Jan 2024 00:00:00 GMT"


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def kinds(origin):
    return ["cond" if is_conditional(q) else "plain" for q in origin.requests]


# ---- stale-while-revalidate -------------------------------------------------------------------------

def test_stale_while_revalidate_serves_at_once_and_refreshes_once(tmp_path, origin):
    cc = "max-age=10, stale-while-revalidate=60"
    release = threading.Event()

    def handler(req):
        if is_conditional(req):
            # Hold the background validation until the test has seen the stale answers: they must
            # not wait for it.
            release.wait(10)
            return Response(status=304, headers=[("Cache-Control", cc), ("ETag", '"v1"'), ("X-Version", "2")])
        return Response(headers=[("Cache-Control", cc), ("ETag", '"v1"'), ("X-Version", "1")], body=b"swr body")

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/swr")
    fetch_stored(l, url)
    advance_clock(l, 15)  # 5 s stale, inside the 60 s window

    stale = [fetch(l, url, timeout=5) for _ in range(3)]
    for r in stale:
        assert r.status == 200 and r.body == b"swr body" and r.header("x-version") == "1", r
        assert cache_status(r).get("hit"), r
        assert 15 <= int(r.header("age")) <= 16, r
    origin.wait_for_requests(2)
    assert kinds(origin) == ["plain", "cond"], "one background validation for all stale hits"
    assert origin.requests[1].header("if-none-match") == '"v1"'
    m0 = l.metrics()
    release.set()
    l.expect("cache_revalidated_304", 1)
    l.expect("store_meta_writes", m0["store_meta_writes"] + 1, timeout=5)

    r = fetch(l, url)
    assert r.status == 200 and r.body == b"swr body" and cache_status(r).get("hit"), r
    assert r.header("x-version") == "2", f"the background 304's fields are served afterwards: {r!r}"
    assert int(r.header("age")) <= 1 and 9 <= cache_status(r)["ttl"] <= 10, r
    assert len(origin.requests) == 2
    assert access_results(l, url, 5, client="127.0.0.1") == (["TCP_MISS/200"] + ["TCP_STALE_HIT/200"] * 3
                                                              + ["TCP_HIT/200"])
    l.expect("cache_stale_served", 3)
    l.expect("store_body_bytes_written", len(b"swr body"))


def test_background_revalidation_access_log_line(tmp_path, origin):
    # The background validation has no client; if larder logs it (client "-"), the line must still
    # say what happened upstream: a refresh answered 304, not a status of 000.
    cc = "max-age=10, stale-while-revalidate=60"
    origin.handler = lambda req: (Response(status=304, headers=[("ETag", '"v1"'), ("Cache-Control", cc)])
                                  if is_conditional(req) else
                                  Response(headers=[("Cache-Control", cc), ("ETag", '"v1"')], body=b"b"))
    l = cache_larder(tmp_path)
    url = origin.url("/bglog")
    fetch_stored(l, url)
    advance_clock(l, 15)
    assert cache_status(fetch(l, url)).get("hit")
    origin.wait_for_requests(2)
    l.expect("cache_revalidated_304", 1)
    bg = access_results(l, url, 1, client="-")
    assert len(bg) == 1 and bg[0].startswith("TCP_REFRESH_UNMODIFIED/") and bg[0] != "TCP_REFRESH_UNMODIFIED/000", \
        f"background line: {bg}"


def test_stale_while_revalidate_background_200_replaces(tmp_path, origin):
    cc = "max-age=10, stale-while-revalidate=60"
    n = {"v": 0}

    def handler(req):
        n["v"] += 1
        return Response(headers=[("Cache-Control", cc), ("ETag", f'"v{n["v"]}"')], body=f"version {n['v']}".encode())

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/swr200")
    fetch_stored(l, url)
    advance_clock(l, 15)
    m0 = l.metrics()
    r = fetch(l, url)
    assert r.body == b"version 1" and cache_status(r).get("hit"), r
    origin.wait_for_requests(2)
    l.expect("store_meta_writes", m0["store_meta_writes"] + 1, timeout=5)
    r = fetch(l, url)
    assert r.body == b"version 2" and cache_status(r).get("hit") and r.header("etag") == '"v2"', r
    assert kinds(origin) == ["plain", "cond"]


def test_beyond_stale_while_revalidate_window_validates_first(tmp_path, origin):
    cc = "max-age=10, stale-while-revalidate=20"
    origin.handler = lambda req: (Response(status=304, headers=[("ETag", '"v1"'), ("Cache-Control", cc),
                                                                 ("X-Version", "2")])
                                  if is_conditional(req) else
                                  Response(headers=[("Cache-Control", cc), ("ETag", '"v1"')], body=b"body"))
    l = cache_larder(tmp_path)
    url = origin.url("/swrlate")
    fetch_stored(l, url)
    advance_clock(l, 40)  # 30 s stale > 20
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == b"body" and not cache_status(r).get("hit"), r
    assert r.header("x-version") == "2", "validated before answering"
    assert kinds(origin) == ["plain", "cond"]
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_REFRESH_UNMODIFIED/200"]


def test_must_revalidate_cancels_stale_while_revalidate(tmp_path, origin):
    cc = "max-age=10, stale-while-revalidate=60, must-revalidate"
    origin.handler = lambda req: (Response(status=304, headers=[("ETag", '"v1"'), ("X-Version", "2")])
                                  if is_conditional(req) else
                                  Response(headers=[("Cache-Control", cc), ("ETag", '"v1"')], body=b"body"))
    l = cache_larder(tmp_path)
    url = origin.url("/swrmr")
    fetch_stored(l, url)
    advance_clock(l, 15)
    r = fetch_stored(l, url)
    assert not cache_status(r).get("hit") and r.header("x-version") == "2", r
    l.expect("cache_stale_served", 0)


# ---- stale-if-error -----------------------------------------------------------------------------------

def sie_larder(tmp_path, origin, cc="max-age=10, stale-if-error=60", fail=None):
    """An object stored with `cc`; afterwards the origin answers `fail` (a Response) to everything."""
    state = {"fail": None}

    def handler(req):
        if state["fail"] is not None:
            return state["fail"]
        return Response(headers=[("Cache-Control", cc), ("ETag", '"v1"'), ("Last-Modified", LM)], body=b"the old body")

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/sie")
    r = fetch_stored(l, url)
    assert cache_status(r).get("stored"), r
    state["fail"] = fail
    return l, url


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_stale_if_error_on_5xx(tmp_path, origin, status):
    l, url = sie_larder(tmp_path, origin, fail=Response(status=status, body=b"origin broke"))
    advance_clock(l, 30)  # 20 s stale, inside the 60 s window
    r = fetch(l, url)
    assert r.status == 200 and r.body == b"the old body", f"stale-if-error should serve the stored body: {r!r}"
    assert cache_status(r).get("hit"), r
    assert kinds(origin) == ["plain", "cond"]
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_REFRESH_FAIL_OLD/200"]
    l.expect("cache_stale_served", 1)
    # Outside the window the error is passed on.
    advance_clock(l, 60)  # 80 s stale
    r = fetch(l, url)
    assert r.status == status and r.body == b"origin broke", r
    assert len(origin.requests) == 3


def test_stale_if_error_origin_down(tmp_path, origin):
    l, url = sie_larder(tmp_path, origin)
    origin.close()  # connection refused from now on (and the pooled connection is gone)
    advance_clock(l, 30)
    r = fetch(l, url)
    assert r.status == 200 and r.body == b"the old body" and cache_status(r).get("hit"), r
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_REFRESH_FAIL_OLD/200"]
    advance_clock(l, 60)
    r = fetch(l, url)
    assert r.status == 502 and b"larder:" in r.body, r
    assert r.body != b"the old body"
    l.expect("cache_stale_served", 1)


def test_stale_if_error_from_the_request(tmp_path, origin):
    # RFC 5861 s4: the request directive works too.
    l, url = sie_larder(tmp_path, origin, cc="max-age=10", fail=Response(status=503, body=b"down"))
    advance_clock(l, 30)
    r = fetch(l, url)
    assert r.status == 503, "no stale-if-error anywhere: the error is passed on"
    r = fetch(l, url, headers=[("Cache-Control", "stale-if-error=60")])
    assert r.status == 200 and r.body == b"the old body", r
    r = fetch(l, url, headers=[("Cache-Control", "stale-if-error=5")])
    assert r.status == 503, "20 s stale is beyond the 5 s the client allows"


def test_4xx_is_not_an_error_for_stale_if_error(tmp_path, origin):
    # RFC 5861 s4: "an error is any situation that would result in a 500, 502, 503, or 504".
    l, url = sie_larder(tmp_path, origin, fail=Response(status=404, body=b"gone"))
    advance_clock(l, 30)
    r = fetch(l, url)
    assert r.status == 404 and r.body == b"gone", r


@pytest.mark.parametrize("cc", ["max-age=10, stale-if-error=60, must-revalidate",
                                "max-age=10, stale-if-error=60, proxy-revalidate",
                                "s-maxage=10, stale-if-error=60"])
def test_must_revalidate_forbids_stale_if_error(tmp_path, origin, cc):
    # RFC 9111 s5.2.2.2: once stale, "the cache MUST NOT reuse it ... without successful validation";
    # disconnected, it generates an error (504 SHOULD; larder says 502 for a refused connection).
    l, url = sie_larder(tmp_path, origin, cc=cc)
    origin.close()
    advance_clock(l, 30)
    r = fetch(l, url)
    assert r.status in (502, 504) and r.body != b"the old body", r
    l.expect("cache_stale_served", 0)
