"""c: invalidation by unsafe methods (RFC 9111 s4.4): a non-error response to an unsafe request
invalidates the target URI, and may invalidate same-origin Location and Content-Location URIs; an
error response does not, and another origin's URIs never are."""

import pytest

from harness import Larder, Origin, Response, access_results, cache_status, fetch, fetch_stored


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


class Site:
    """Origin handler: GETs are cacheable and numbered (so a refetch is visible); unsafe requests get
    the status and header fields scripted in `unsafe`."""

    def __init__(self):
        self.n = 0
        self.unsafe = Response(status=200, body=b"done")

    def __call__(self, req):
        if req.method in ("GET", "HEAD"):
            self.n += 1
            return Response(headers=[("Cache-Control", "max-age=600"), ("Content-Type", "text/plain")],
                            body=f"{req.target} v{self.n}".encode())
        return self.unsafe


def stored_urls(l, origin, *paths):
    for p in paths:
        r = fetch_stored(l, origin.url(p))
        assert r.status == 200 and cache_status(r).get("stored"), r
    for p in paths:
        assert cache_status(fetch(l, origin.url(p))).get("hit"), p


def is_hit(l, url):
    r = fetch_stored(l, url)
    assert r.status == 200, r
    return bool(cache_status(r).get("hit"))


@pytest.mark.parametrize("method,status", [("POST", 200), ("PUT", 201), ("DELETE", 204), ("PATCH", 200),
                                           ("POST", 303), ("DELETE", 202)])
def test_unsafe_success_invalidates_target(tmp_path, origin, method, status):
    site = Site()
    site.unsafe = Response(status=status, body=b"" if status == 204 else b"ok")
    origin.handler = site
    l = cache_larder(tmp_path)
    url = origin.url("/doc")
    stored_urls(l, origin, "/doc", "/other")
    l.expect("store_entries", 2)
    r = fetch(l, url, method=method, body=b"x" if method != "DELETE" else b"")
    assert r.status == status, r
    l.expect("cache_invalidations", ">=", 1)
    l.expect("store_entries", 1)  # the writer has deleted it
    r = fetch_stored(l, url)
    assert not cache_status(r).get("hit") and cache_status(r).get("fwd") == "uri-miss", r
    assert r.body == b"/doc v3", r
    assert is_hit(l, origin.url("/other")), "an unrelated URI was invalidated"
    assert [q.method for q in origin.requests if q.target == "/doc"] == ["GET", method, "GET"]
    assert access_results(l, url, 3) == ["TCP_MISS/200", "TCP_HIT/200", "TCP_MISS/200"]
    assert access_results(l, url, 1, method=method) == [f"TCP_MISS/{status}"]


def test_invalidation_drops_every_variant(tmp_path, origin):
    # s4.4 invalidates "the target URI": all responses stored for it, whatever their Vary variant.
    origin.handler = lambda req: (Response(body=b"posted") if req.method == "POST" else Response(
        headers=[("Cache-Control", "max-age=600"), ("Vary", "Accept-Language")],
        body=f"lang {req.header('accept-language')}".encode()))
    l = cache_larder(tmp_path)
    url = origin.url("/v")
    for lang in ("en", "fr"):
        fetch_stored(l, url, headers=[("Accept-Language", lang)])
    l.expect("store_entries", 2)
    assert fetch(l, url, method="POST", body=b"x").status == 200
    l.expect("store_entries", 0)
    for lang in ("en", "fr"):
        r = fetch_stored(l, url, headers=[("Accept-Language", lang)])
        assert not cache_status(r).get("hit") and r.body == f"lang {lang}".encode(), r


def test_same_origin_location_and_content_location_invalidated(tmp_path, origin):
    site = Site()
    origin.handler = site
    l = cache_larder(tmp_path)
    stored_urls(l, origin, "/form", "/items/1", "/items/2", "/items/3")
    # Location relative, Content-Location absolute (same origin): both invalidated, with the target.
    site.unsafe = Response(status=201, headers=[("Location", "/items/1"),
                                                ("Content-Location", origin.url("/items/2"))], body=b"created")
    assert fetch(l, origin.url("/form"), method="POST", body=b"x").status == 201
    l.expect("store_entries", 1)
    assert not is_hit(l, origin.url("/items/1"))
    assert not is_hit(l, origin.url("/items/2"))
    assert not is_hit(l, origin.url("/form"))
    assert is_hit(l, origin.url("/items/3"))


def test_other_origins_location_not_invalidated(tmp_path, origin):
    # s4.4: "MUST NOT trigger an invalidation ... if the origin of the URI ... differs": one site must
    # not be able to flush another's objects.
    other = Origin()
    other_site = Site()
    other.handler = other_site
    site = Site()
    site.unsafe = Response(status=200, headers=[("Location", other.url("/victim")),
                                                ("Content-Location", other.url("/victim2"))], body=b"ok")
    origin.handler = site
    l = cache_larder(tmp_path)
    fetch_stored(l, other.url("/victim"))
    fetch_stored(l, other.url("/victim2"))
    fetch_stored(l, origin.url("/t"))
    l.expect("store_entries", 3)
    assert fetch(l, origin.url("/t"), method="POST", body=b"x").status == 200
    l.expect("store_entries", 2)  # the target only
    assert is_hit(l, other.url("/victim")), "another origin's Location was invalidated"
    assert is_hit(l, other.url("/victim2")), "another origin's Content-Location was invalidated"
    assert len(other.requests) == 2


def test_same_host_other_port_is_another_origin(tmp_path, origin):
    # An origin is scheme, host AND port (RFC 9110 s4.3.1): http://127.0.0.1:P2/x is not ours.
    other = Origin()
    other.handler = Site()
    site = Site()
    site.unsafe = Response(status=200, headers=[("Location", f"http://127.0.0.1:{other.port}/x")], body=b"ok")
    origin.handler = site
    l = cache_larder(tmp_path)
    fetch_stored(l, other.url("/x"))
    assert fetch(l, origin.url("/t"), method="PUT", body=b"x").status == 200
    assert is_hit(l, other.url("/x"))


@pytest.mark.parametrize("status", [400, 404, 409, 500, 503])
def test_error_response_does_not_invalidate(tmp_path, origin, status):
    # s4.4: only a non-error (2xx, 3xx) response invalidates.
    site = Site()
    site.unsafe = Response(status=status, headers=[("Location", "/loc")], body=b"no")
    origin.handler = site
    l = cache_larder(tmp_path)
    stored_urls(l, origin, "/doc", "/loc")
    r = fetch(l, origin.url("/doc"), method="POST", body=b"x")
    assert r.status == status, r
    # Let a later, storable write pass through the writer: it runs after anything the POST queued.
    fetch_stored(l, origin.url("/sentinel"))
    l.expect("store_entries", 3)
    l.expect("cache_invalidations", 0)
    assert is_hit(l, origin.url("/doc"))
    assert is_hit(l, origin.url("/loc"))


def test_safe_methods_do_not_invalidate(tmp_path, origin):
    site = Site()
    origin.handler = lambda req: Response(body=b"opts") if req.method == "OPTIONS" else site(req)
    l = cache_larder(tmp_path)
    stored_urls(l, origin, "/doc")
    assert fetch(l, origin.url("/doc"), method="OPTIONS").status == 200
    fetch_stored(l, origin.url("/sentinel"))
    l.expect("cache_invalidations", 0)
    assert is_hit(l, origin.url("/doc"))


def test_invalidating_an_uncached_uri_is_not_a_store_failure(tmp_path, origin):
    # A POST to a URI that was never stored: nothing to delete. That is the normal case for most
    # POSTs and must not count as a failed store write or log a warning.
    origin.handler = Site()
    l = cache_larder(tmp_path)
    for i in range(3):
        assert fetch(l, origin.url(f"/never-cached/{i}"), method="POST", body=b"x").status == 200
    fetch_stored(l, origin.url("/sentinel"))  # everything queued before it has been applied
    l.expect("cache_store_failures", 0)
    assert "store write failed" not in l.error_log_text(), l.error_log_text()[-2000:]
