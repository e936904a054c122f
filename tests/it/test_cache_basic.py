"""c: the basic cache (RFC 9111 s3, s4): a miss is stored and the next request is a hit; HEAD is
answered from a stored GET; cache keys are normalised URIs (RFC 9110 s4.2.3); responses that must not
be stored are not, and responses that may be stored without explicit freshness are (s4.2.2).

Every test counts what reached the origin, reads Cache-Status (RFC 9211), the access-log result codes
and larder's counters. --workers 1 keeps every request on one event loop, so counters and upstream
requests can be attributed exactly."""

import random
import socket
import time

import pytest

from harness import (Client, DnsResponder, Larder, Origin, Response, access_results, advance_clock, cache_status, fetch,
                     fetch_stored, http_date, is_conditional)


def cache_larder(tmp_path, *args):
    return Larder(tmp_path, "--workers", "1", "--test-hooks", "on", *args)


def body_for(req):
    return f"body of {req.target}\n".encode()


def fresh_handler(cc="max-age=60", extra=()):
    """Origin answering 200 with Cache-Control `cc` and a body naming the target."""
    return lambda req: Response(headers=[("Content-Type", "text/plain"), ("Cache-Control", cc), *extra],
                                body=body_for(req))


# ---- miss, then hit --------------------------------------------------------------------------------

def test_miss_then_hit(tmp_path, origin):
    origin.handler = fresh_handler("max-age=60", [("ETag", '"e1"')])
    l = cache_larder(tmp_path)
    url = origin.url("/a")

    r1 = fetch_stored(l, url)
    assert r1.status == 200 and r1.body == b"body of /a\n", r1
    cs1 = cache_status(r1)
    assert cs1.get("cache") == "larder" and cs1.get("fwd") == "uri-miss" and cs1.get("stored"), r1
    assert cs1.get("fwd-status") == 200, r1
    assert not cs1.get("hit"), r1

    advance_clock(l, 10)
    r2 = fetch(l, url)
    assert r2.status == 200 and r2.body == r1.body, r2
    cs2 = cache_status(r2)
    assert cs2.get("hit") is True and "fwd" not in cs2, r2
    # s4.2.3: ten seconds resident, no Age from upstream, no delay: Age 10 (a second of slack for the
    # request/response times, which are whole seconds of larder's clock).
    assert r2.has("age") and 10 <= int(r2.header("age")) <= 11, r2
    assert 49 <= cs2.get("ttl", -1) <= 50, r2
    assert r2.header("etag") == '"e1"' and r2.header("content-type") == "text/plain", r2
    assert r2.header("content-length") == str(len(r1.body)), r2

    assert len(origin.requests) == 1, origin.requests
    assert access_results(l, url, 2) == ["TCP_MISS/200", "TCP_HIT/200"]
    l.expect("cache_misses", 1)
    l.expect("cache_hits", 1)
    l.expect("cache_stores", 1)
    l.expect("store_entries", 1)
    l.expect("store_body_bytes_written", len(r1.body))
    l.expect("cache_body_bytes_served", len(r1.body))


def test_hits_on_one_kept_alive_connection_and_on_fresh_ones(tmp_path, origin):
    # One fill, then hits on a kept-alive connection and on fresh ones: nothing more upstream. A hit
    # says nothing about closing (no "Connection: close"), so the connection must stay usable
    # (RFC 9112 s9.3): the second request on it gets an answer, not EOF.
    origin.handler = fresh_handler()
    l = cache_larder(tmp_path)
    url = origin.url("/many")
    fetch_stored(l, url)
    with Client(l) as c:
        for i in range(3):
            try:
                r = c.request("GET", url)
            except EOFError:
                raise AssertionError(f"request #{i} on the connection got EOF: larder closed it after the "
                                     f"previous hit, which did not say Connection: close") from None
            assert r.status == 200 and r.body == b"body of /many\n" and cache_status(r).get("hit"), r
            assert "close" not in r.tokens("connection"), r
    for _ in range(3):
        r = fetch(l, url)
        assert r.status == 200 and cache_status(r).get("hit"), r
    assert len(origin.requests) == 1, origin.requests
    l.expect("cache_hits", 6)


def test_head_answered_from_stored_get(tmp_path, origin):
    body = b"0123456789" * 10
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=60"), ("Content-Type", "text/x-test")],
                                          body=body)
    l = cache_larder(tmp_path)
    url = origin.url("/h")
    assert fetch_stored(l, url).body == body

    r = fetch(l, url, method="HEAD")
    assert r.status == 200, r
    assert r.framing == "none" and r.body == b"", r
    # RFC 9110 s9.3.2 / s8.6: HEAD carries the Content-Length the GET would have had.
    assert r.header("content-length") == str(len(body)), r
    assert r.header("content-type") == "text/x-test", r
    assert cache_status(r).get("hit") is True and r.has("age"), r
    assert [q.method for q in origin.requests] == ["GET"], origin.requests
    assert access_results(l, url, 1, method="HEAD") == ["TCP_HIT/200"]
    l.expect("cache_hits", 1)
    # No body was read out of the store for a HEAD.
    l.expect("store_body_bytes_read", 0)


def test_head_miss_is_not_stored(tmp_path, origin):
    # s3: only GET responses are stored here; a HEAD on a miss goes upstream as HEAD and stores nothing.
    origin.handler = fresh_handler()
    l = cache_larder(tmp_path)
    url = origin.url("/headmiss")
    r = fetch(l, url, method="HEAD")
    assert r.status == 200 and r.body == b"" and not cache_status(r).get("stored"), r
    r = fetch_stored(l, url)
    assert r.status == 200 and r.body == b"body of /headmiss\n" and cache_status(r).get("fwd") == "uri-miss", r
    assert [q.method for q in origin.requests] == ["HEAD", "GET"], origin.requests


# ---- cache keys --------------------------------------------------------------------------------------

class _Port80Origin(Origin):
    """An Origin bound to port 80 of `host` (root only), for the default-port rule of RFC 9110 s4.2.3."""

    def _start_listener(self, host, typ=socket.SOCK_STREAM):
        super()._start_listener(host, typ)
        self.lsock.close()
        self.lsock = socket.socket(socket.AF_INET, typ)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 80))
        self.lsock.listen(128)
        self.port = 80


def _port80_origin():
    # A random 127/8 address keeps us off anyone else's port 80.
    for _ in range(5):
        host = f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"
        try:
            return _Port80Origin(host=host)
        except OSError:
            continue
    return None


def test_default_port_shares_one_entry(tmp_path):
    # RFC 9110 s4.2.3: http://h:80/a and http://h/a are the same resource; RFC 9111 s4: same cache key.
    try:
        o = _port80_origin()
    except PermissionError:
        o = None
    if o is None:
        pytest.skip("cannot bind a loopback port 80 here (needs root or CAP_NET_BIND_SERVICE)")
    o.handler = fresh_handler()
    l = cache_larder(tmp_path)
    r1 = fetch_stored(l, f"http://{o.host}:80/a")
    assert r1.status == 200 and cache_status(r1).get("stored"), r1
    r2 = fetch(l, f"http://{o.host}/a")
    assert r2.status == 200 and r2.body == b"body of /a\n" and cache_status(r2).get("hit"), r2
    assert len(o.requests) == 1, o.requests
    # The access log names the normalised URI, without the default port.
    assert access_results(l, f"http://{o.host}/a", 2) == ["TCP_MISS/200", "TCP_HIT/200"]


def test_host_case_and_unreserved_percent_encoding_share_one_entry(tmp_path, origin):
    # RFC 9110 s4.2.3: the host is case-insensitive, and %7E is "~" (an unreserved character).
    origin.handler = fresh_handler()
    dns = DnsResponder({"origin.test": ["127.0.0.1"]})
    l = cache_larder(tmp_path, "--dns-servers", dns.server_arg)
    r1 = fetch_stored(l, origin.url_for("Origin.TEST", "/%7euser/x"))
    assert r1.status == 200 and cache_status(r1).get("stored"), r1
    for variant in ("origin.test", "ORIGIN.test"):
        for path in ("/~user/x", "/%7Euser/x", "/%7euser/x"):
            r = fetch(l, origin.url_for(variant, path))
            assert r.status == 200 and cache_status(r).get("hit"), (variant, path, r)
            assert r.body == r1.body, r
    assert len(origin.requests) == 1, origin.requests
    l.expect("cache_hits", 6)


def test_reserved_percent_encoding_is_a_different_key(tmp_path, origin):
    # %2F is not "/": decoding a reserved character changes the URI (RFC 3986 s2.2), so another key.
    origin.handler = fresh_handler()
    l = cache_larder(tmp_path)
    fetch_stored(l, origin.url("/a/b"))
    r = fetch_stored(l, origin.url("/a%2Fb"))
    assert cache_status(r).get("fwd") == "uri-miss", r
    assert [q.target for q in origin.requests] == ["/a/b", "/a%2Fb"]


def test_query_strings_are_distinct_keys(tmp_path, origin):
    origin.handler = fresh_handler()
    l = cache_larder(tmp_path)
    r1 = fetch_stored(l, origin.url("/q?a=1"))
    r2 = fetch_stored(l, origin.url("/q?a=2"))
    r3 = fetch_stored(l, origin.url("/q"))
    assert (r1.body, r2.body, r3.body) == (b"body of /q?a=1\n", b"body of /q?a=2\n", b"body of /q\n")
    assert [cache_status(r).get("fwd") for r in (r1, r2, r3)] == ["uri-miss"] * 3
    for path, want in (("/q?a=2", r2.body), ("/q?a=1", r1.body), ("/q", r3.body)):
        r = fetch(l, origin.url(path))
        assert cache_status(r).get("hit") and r.body == want, (path, r)
    assert [q.target for q in origin.requests] == ["/q?a=1", "/q?a=2", "/q"]
    l.expect("store_entries", 3)


# ---- methods -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_unsafe_method_never_served_from_cache(tmp_path, origin, method):
    # s4: a cache MUST write unsafe requests through; their responses are not stored here (s3).
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=600")],
                                          body=f"{req.method} {req.target} #{len(origin.requests)}".encode())
    l = cache_larder(tmp_path)
    url = origin.url("/u")
    bodies = []
    for i in range(2):
        r = fetch(l, url, method=method, body=b"payload")
        assert r.status == 200 and not cache_status(r).get("hit"), r
        assert cache_status(r).get("fwd") == "method" and not cache_status(r).get("stored"), r
        bodies.append(r.body)
    assert bodies == [f"{method} /u #1".encode(), f"{method} /u #2".encode()]
    # A later GET is not answered with the stored response of the unsafe request either.
    r = fetch_stored(l, url)
    assert r.body == b"GET /u #3" and cache_status(r).get("fwd") == "uri-miss", r
    assert [q.method for q in origin.requests] == [method, method, "GET"]
    assert access_results(l, url, 2, method=method) == ["TCP_MISS/200", "TCP_MISS/200"]
    l.expect("cache_hits", 0)
    l.expect("cache_misses", 1)  # the GET only: an unsafe request never looks the cache up
    l.expect("store_entries", 1)


# ---- not storable ------------------------------------------------------------------------------------

def assert_not_stored_twice(l, origin, url, headers=None, n_before=0):
    """Two GETs of url: both reach the origin; neither is marked stored; nothing is in the store."""
    for i in range(2):
        r = fetch(l, url, headers=headers)
        assert r.status in (200, 206), r
        cs = cache_status(r)
        assert not cs.get("hit") and not cs.get("stored"), r
    got = [q for q in origin.requests if q.target == url.split(origin.addr, 1)[1]]
    assert len(got) == 2, origin.requests
    assert access_results(l, url, 2) == [f"TCP_MISS/{r.status}"] * 2
    l.expect("store_entries", n_before)
    l.expect("cache_stores", n_before)
    return r


@pytest.mark.parametrize("cc", ["no-store", "max-age=60, no-store", "private", "max-age=60, private",
                                "public, max-age=60, private"])
def test_response_directive_forbids_storing(tmp_path, origin, cc):
    # s5.2.2.5 no-store; s5.2.2.7 (unqualified) private: a shared cache MUST NOT store.
    origin.handler = fresh_handler(cc)
    l = cache_larder(tmp_path)
    r = assert_not_stored_twice(l, origin, origin.url("/ns"))
    assert r.body == b"body of /ns\n"
    l.expect("cache_not_storable", 2)


def test_request_no_store_is_not_stored(tmp_path, origin):
    # s5.2.1.5: request no-store: nothing of this exchange is stored.
    origin.handler = fresh_handler()
    l = cache_larder(tmp_path)
    assert_not_stored_twice(l, origin, origin.url("/rns"), headers=[("Cache-Control", "no-store")])


def test_authorization_without_permission_not_stored(tmp_path, origin):
    # s3.5: a response to a request with Authorization is stored by a shared cache only with
    # must-revalidate, public or s-maxage. max-age alone is not enough.
    origin.handler = fresh_handler("max-age=60")
    l = cache_larder(tmp_path)
    url = origin.url("/auth")
    assert_not_stored_twice(l, origin, url, headers=[("Authorization", "Basic dTpw")])
    assert all(q.header("authorization") == "Basic dTpw" for q in origin.requests)
    l.expect("cache_not_storable", 2)


@pytest.mark.parametrize("cc", ["s-maxage=60", "public, max-age=60", "max-age=60, must-revalidate"])
def test_authorization_with_permission_is_stored(tmp_path, origin, cc):
    origin.handler = fresh_handler(cc)
    l = cache_larder(tmp_path)
    url = origin.url("/authok")
    r1 = fetch_stored(l, url, headers=[("Authorization", "Basic dTpw")])
    assert cache_status(r1).get("stored"), r1
    r2 = fetch(l, url, headers=[("Authorization", "Basic dTpw")])
    assert r2.status == 200 and cache_status(r2).get("hit") and r2.body == r1.body, r2
    assert len(origin.requests) == 1, origin.requests
    l.expect("store_entries", 1)


def test_set_cookie_not_stored(tmp_path, origin):
    # One user's cookie must not be handed to the next (RFC 9111 s7.3; larder's rule, see txn_fetch.c).
    origin.handler = fresh_handler("max-age=60", [("Set-Cookie", "sid=secret")])
    l = cache_larder(tmp_path)
    r = assert_not_stored_twice(l, origin, origin.url("/cookie"))
    assert r.header("set-cookie") == "sid=secret", r  # still forwarded to the client that asked
    l.expect("cache_not_storable", 2)


def test_set_cookie_stored_without_it_when_private_names_it(tmp_path, origin):
    # s5.2.2.7: private="set-cookie": the response is storable without that field.
    origin.handler = fresh_handler('max-age=60, private="set-cookie"', [("Set-Cookie", "sid=secret"),
                                                                       ("X-Kept", "yes")])
    l = cache_larder(tmp_path)
    url = origin.url("/pcookie")
    r1 = fetch_stored(l, url)
    assert cache_status(r1).get("stored"), r1
    # private="set-cookie" keeps the field out of the *store*; the client that asked still gets it.
    assert r1.header("set-cookie") == "sid=secret", f"Set-Cookie stripped from the origin's response: {r1!r}"
    r2 = fetch(l, url)
    assert cache_status(r2).get("hit"), r2
    assert not r2.has("set-cookie"), f"a stored Set-Cookie was served to another client: {r2!r}"
    assert r2.header("x-kept") == "yes" and r2.body == r1.body, r2
    assert len(origin.requests) == 1


def test_206_from_origin_not_stored(tmp_path, origin):
    # s3.3, s3.4: partial content is never stored as an object (larder does not combine partial
    # responses). Here the origin answers 206 even to a plain GET: passed on, not stored.
    full = b"abcdefghijklmnopqrstuvwxyz"
    origin.handler = lambda req: Response(status=206, headers=[("Cache-Control", "max-age=60"), ("ETag", '"p"'),
                                                                ("Content-Range", f"bytes 0-9/{len(full)}")],
                                          body=full[:10])
    l = cache_larder(tmp_path)
    url = origin.url("/partial")
    for _ in range(2):
        r = fetch(l, url)
        assert r.status == 206 and r.body == full[:10] and not cache_status(r).get("stored"), r
        assert r.header("content-range") == "bytes 0-9/26", r
    assert len(origin.requests) == 2
    assert access_results(l, url, 2) == ["TCP_MISS/206", "TCP_MISS/206"]
    l.expect("cache_not_storable", 2)
    l.expect("store_entries", 0)


def test_vary_star_not_stored(tmp_path, origin):
    # s4.1: "Vary: *" always fails to match, so storing it is useless (and larder does not).
    origin.handler = fresh_handler("max-age=60", [("Vary", "*")])
    l = cache_larder(tmp_path)
    assert_not_stored_twice(l, origin, origin.url("/vstar"))
    l.expect("cache_not_storable", 2)


def test_no_freshness_and_non_heuristic_status_not_stored(tmp_path, origin):
    # s3: without public, Expires, max-age or s-maxage, only heuristically cacheable statuses
    # (RFC 9110 s15.1) may be stored. 302 is not one.
    origin.handler = lambda req: Response(status=302, headers=[("Location", "/elsewhere")], body=b"moved")
    l = cache_larder(tmp_path)
    for _ in range(2):
        r = fetch(l, origin.url("/redir"))
        assert r.status == 302 and not cache_status(r).get("stored"), r
    assert len(origin.requests) == 2
    l.expect("cache_not_storable", 2)
    l.expect("store_entries", 0)


# ---- storable without explicit freshness, and error statuses ----------------------------------------

def test_heuristic_freshness_from_last_modified(tmp_path, origin):
    # s4.2.2: no explicit expiry, a Last-Modified 10 days before Date: larder uses 10 % of that,
    # capped at one day (cp_limits_default): fresh for 86400 s.
    now = time.time()
    lm = http_date(now - 10 * 86400)

    def handler(req):
        if is_conditional(req):
            return Response(status=304, headers=[("Date", http_date(time.time())), ("Last-Modified", lm)])
        return Response(headers=[("Date", http_date(now)), ("Last-Modified", lm)], body=b"heuristic")

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/heur")
    r1 = fetch_stored(l, url)
    assert r1.status == 200 and cache_status(r1).get("stored"), r1
    r2 = fetch(l, url)
    assert cache_status(r2).get("hit") and r2.body == b"heuristic", r2
    assert 86390 <= cache_status(r2)["ttl"] <= 86400, r2
    advance_clock(l, 86000)
    r3 = fetch(l, url)
    assert cache_status(r3).get("hit"), f"heuristically fresh for a day, stale after 86000 s: {r3!r}"
    assert len(origin.requests) == 1
    advance_clock(l, 600)
    r4 = fetch(l, url)
    assert r4.status == 200 and r4.body == b"heuristic" and not cache_status(r4).get("hit"), r4
    assert len(origin.requests) == 2 and is_conditional(origin.requests[1]), origin.requests
    assert origin.requests[1].header("if-modified-since") == lm
    assert access_results(l, url, 4) == ["TCP_MISS/200", "TCP_HIT/200", "TCP_HIT/200", "TCP_REFRESH_UNMODIFIED/200"]


def test_heuristic_needs_last_modified(tmp_path, origin):
    # A 200 with neither explicit freshness nor Last-Modified has a lifetime of 0: storable (s3) but
    # never fresh, so every request goes upstream.
    origin.handler = lambda req: Response(body=b"plain")
    l = cache_larder(tmp_path)
    url = origin.url("/plain")
    fetch_stored(l, url)
    r = fetch(l, url)
    assert r.status == 200 and r.body == b"plain" and not cache_status(r).get("hit"), r
    assert len(origin.requests) == 2


@pytest.mark.parametrize("status", [404, 410, 500, 503])
def test_error_status_with_explicit_freshness_is_stored(tmp_path, origin, status):
    # s3: any final status the cache understands may be stored when it has explicit freshness
    # (404/410 are also heuristically cacheable; 500/503 only with explicit freshness).
    origin.handler = lambda req: Response(status=status, headers=[("Cache-Control", "max-age=60")],
                                          body=f"error {status}".encode())
    l = cache_larder(tmp_path)
    url = origin.url("/err")
    r1 = fetch_stored(l, url)
    assert r1.status == status and cache_status(r1).get("stored"), r1
    r2 = fetch(l, url)
    assert r2.status == status and r2.body == f"error {status}".encode() and cache_status(r2).get("hit"), r2
    assert len(origin.requests) == 1
    assert access_results(l, url, 2) == [f"TCP_MISS/{status}", f"TCP_HIT/{status}"]


def test_404_without_freshness_is_not_served_from_cache(tmp_path, origin):
    origin.handler = lambda req: Response(status=404, body=b"nope")
    l = cache_larder(tmp_path)
    url = origin.url("/gone")
    for _ in range(2):
        r = fetch_stored(l, url)
        assert r.status == 404 and not cache_status(r).get("hit"), r
    assert len(origin.requests) == 2
