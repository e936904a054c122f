"""Single flight when the shared fetch cannot serve everyone: a response that must not be shared, and an
upstream that fails before or during the body.

What larder does (proxy/flight.h, txn_serve.c follow_fallback):
- A response the cache may not store (Cache-Control: private or no-store, or Set-Cookie without
  private="set-cookie") is meant for the client that asked. The leader's client gets it; every follower
  then sends a request of its own upstream (flight_fallbacks), so the origin sees one request per client
  and each client gets the answer to its own request, never a neighbour's.
- An upstream failure before the response head: the leader's client gets larder's error; followers are
  told the shared fetch failed (502) and do not retry on their own (one failed request, not N).
- An upstream failure in the middle of the body: every client that has the head sees its connection
  close before the body is complete (RFC 9112 s8: an incomplete message is never passed off as a
  complete one), and nothing is stored: the next request is a miss that reaches the origin."""

import threading

import pytest

from harness import Download, GatedBody, Larder, Reset, Response, cache_status, fetch, free_port, random_bytes

MIB = 1 << 20


def collapsed(d: Download) -> bool:
    return bool(cache_status(d.head).get("collapsed"))


# ---- responses that are not shared -----------------------------------------------------------------

NOT_SHARED = {
    "private": [("Cache-Control", "private, max-age=60")],
    "no-store": [("Cache-Control", "no-store")],
    "set-cookie": [("Cache-Control", "max-age=60")],  # plus a Set-Cookie per client, below
}


@pytest.mark.parametrize("kind", sorted(NOT_SHARED))
def test_not_storable_response_each_follower_fetches_its_own(tmp_path, origin, kind):
    """Six clients ask at once; the leader's request is held at the origin until the five others have
    joined its flight. The response is not storable, so the flight ends NOT_SHARED and each follower
    falls back to a request of its own: 6 requests at the origin, flight_fallbacks == 5, and each client
    gets the body (and cookie) made for its own request."""
    n = 6
    go = threading.Event()

    def handler(req):
        if req.seq == 0 and req.conn == 0:
            go.wait(20)  # the first (leader's) request: answered once the others follow it
        who = req.header("x-client")
        h = list(NOT_SHARED[kind])
        if kind == "set-cookie":
            h.append(("Set-Cookie", f"session={who}"))
        return Response(headers=[("Content-Type", "text/plain"), *h], body=f"for client {who}\n".encode() * 1000)

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url(f"/own-{kind}")
    leader = Download(l, url, headers=[("X-Client", "0")], keep=True)
    origin.wait_for_requests(1)
    others = [Download(l, url, headers=[("X-Client", str(i))], keep=True) for i in range(1, n)]
    l.expect("flight_followers", n - 1, timeout=10)
    go.set()
    for i, d in enumerate([leader, *others]):
        d.join(20)
        assert d.complete and d.head.status == 200, d
        assert bytes(d.body) == f"for client {i}\n".encode() * 1000, (i, bytes(d.body[:40]))
        if kind == "set-cookie":
            assert d.head.headers_named("set-cookie") == [f"session={i}"], d.head
        assert not cache_status(d.head).get("hit") and not cache_status(d.head).get("stored"), d.head
    assert sorted(r.header("x-client") for r in origin.requests) == [str(i) for i in range(n)], origin.requests
    assert len(origin.requests) == n
    l.expect("flight_leaders", 1)
    l.expect("flight_followers", n - 1)
    l.expect("flight_fallbacks", n - 1)
    l.expect("upstream_requests", n)
    l.expect("cache_stores", 0)
    l.expect("cache_not_storable", n)


# ---- upstream failures -----------------------------------------------------------------------------

def test_upstream_reset_before_the_head(tmp_path, origin):
    go = threading.Event()

    def handler(req):
        go.wait(20)
        return Reset()

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/reset-early")
    leader = Download(l, url, keep=True)
    origin.wait_for_requests(1)
    others = [Download(l, url, keep=True) for _ in range(4)]
    l.expect("flight_followers", 4, timeout=10)
    go.set()
    for d in [leader, *others]:
        d.join(20)
        assert d.complete and d.head.status == 502, d
        assert bytes(d.body).startswith(b"larder: "), d.body
    assert len(origin.requests) == 1, origin.requests
    l.expect("flight_fallbacks", 0)
    l.expect("cache_stores", 0)


@pytest.mark.parametrize("how", ["reset", "refused"])
def test_url_usable_after_a_fetch_that_failed_before_the_head(tmp_path, origin, how):
    # One client at a time. The first fetch fails before any response (the origin resets, or nothing
    # listens); the next request for the URL must be a fresh attempt, not a wait on the failed one.
    l = Larder(tmp_path, "--workers", "1")
    if how == "reset":
        origin.respond(Reset(), Response(headers=[("Cache-Control", "max-age=60")], body=b"up again\n"))
        url = origin.url("/flaky")
    else:
        url = f"http://127.0.0.1:{free_port()}/down"
    r1 = fetch(l, url, timeout=5)
    assert r1.status == 502, r1
    r2 = fetch(l, url, timeout=5)
    if how == "reset":
        assert r2.status == 200 and r2.body == b"up again\n", r2
        assert len(origin.requests) == 2, origin.requests
    else:
        assert r2.status == 502 and "connection refused" in r2.text, r2
    l.expect("flight_followers", 0)
    l.expect("flight_leaders", 2)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_upstream_reset_mid_body_under_a_stampede(tmp_path, origin, framing):
    # The origin sends 4 MiB of 8, waits until every client has part of the body, then sends one more
    # byte and resets the connection.
    half = 4 * MIB
    g = GatedBody(random_bytes(2 * half, seed=9), stops=[half])
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", "max-age=300")],
                            body=g, length=g.length, framing=framing, reset="mid_body", reset_after=half + 1))
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url(f"/reset-{framing}")
    leader = Download(l, url, expect=g.data)
    origin.wait_for_requests(1)
    others = [Download(l, url, expect=g.data) for _ in range(4)]
    assert g.reached(half).wait(20)
    for d in [leader, *others]:
        d.wait_bytes(MIB, 20)
    l.expect("flight_followers", 4)
    g.release()
    for d in [leader, *others]:
        d.join(20)
        assert d.head.status == 200, d
        # Closed without a complete body: fewer bytes than announced, or no last chunk.
        assert not d.complete and isinstance(d.error, (EOFError, ConnectionResetError)), d
        assert d.nbytes <= half + 1 and d.first_mismatch is None, d
        if framing == "length":
            assert d.head.header("content-length") == str(g.length), d.head
        else:
            assert d.head.tokens("transfer-encoding") == ["chunked"], d.head
    assert sum(collapsed(d) for d in [leader, *others]) == 4
    l.expect("cache_stores", 0)
    l.expect("cache_store_aborts", 1)
    l.expect("store_entries", 0)
    # Nothing was stored and the flight is over: the next request is a miss that reaches the origin.
    origin.respond(Response(headers=[("Cache-Control", "max-age=300")], body=b"second try\n"))
    r = fetch(l, url)
    assert r.status == 200 and r.body == b"second try\n", r
    cs = cache_status(r)
    assert cs.get("fwd") == "uri-miss" and not cs.get("hit") and not cs.get("collapsed"), r
    assert len(origin.requests) == 2, origin.requests


# ---- another variant -------------------------------------------------------------------------------

def test_followers_asking_for_another_variant_fetch_their_own(tmp_path, origin):
    """The response varies on Accept-Language (RFC 9111 s4.1). Followers that asked for the leader's
    language share its fetch; those that asked for another one cannot use it and each fetch their own
    (flight_fallbacks), getting their own language."""
    go = threading.Event()

    def handler(req):
        lang = req.header("accept-language")
        if req.conn == 0 and req.seq == 0:
            go.wait(20)
        return Response(headers=[("Cache-Control", "max-age=60"), ("Vary", "Accept-Language")],
                        body=f"in {lang}\n".encode() * 5000)

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1")
    url = origin.url("/vary")
    leader = Download(l, url, headers=[("Accept-Language", "en")], keep=True)
    origin.wait_for_requests(1)
    langs = ["en", "fr", "en", "fr"]
    others = [Download(l, url, headers=[("Accept-Language", x)], keep=True) for x in langs]
    l.expect("flight_followers", 4, timeout=10)
    go.set()
    for lang, d in zip(["en", *langs], [leader, *others]):
        d.join(20)
        assert d.complete and d.head.status == 200 and bytes(d.body) == f"in {lang}\n".encode() * 5000, d
    assert sorted(r.header("accept-language") for r in origin.requests) == ["en", "fr", "fr"], origin.requests
    l.expect("flight_fallbacks", 2)
