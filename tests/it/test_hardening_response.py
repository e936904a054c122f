"""Hardening, response side: larder refuses hostile upstream responses (502), never stores them, never
hands bytes an origin sent beyond a response to a later request, and cannot be made to serve one
request's cached response for another (cache poisoning).

The scripted origin sends raw bytes (harness Raw()); each bad response carries Cache-Control: max-age=600
so it would be stored if larder accepted it. Row ids name the RFC section (RFC 9112 unless said otherwise).
"""

import re
import socket
import threading
from urllib.parse import urlsplit

import pytest

from harness import (Client, DnsResponder, Larder, Raw, Response, build_request, cache_status, exchange_raw, fetch,
                     fetch_stored, raw_request)

CC = b"Cache-Control: max-age=600\r\n"


def cache_larder(tmp_path, *args):
    # One loop: store writes and lookups are then ordered with the requests of a test.
    return Larder(tmp_path, "--workers", "1", *args)


def assert_502_page(r):
    assert r.status == 502, r
    assert (r.header("content-type") or "").startswith("text/plain"), r.headers
    assert r.text.startswith("larder: ") and r.text.endswith("\n") and len(r.body) < 600, r.text
    assert not cache_status(r).get("hit"), r


def assert_not_stored(l, origin, url, n_before):
    """The next request for the same URL reaches the origin again (nothing was stored)."""
    r = fetch(l, url, headers=[("Connection", "close")])
    assert r.status == 200 and r.text == f"GET {urlsplit(url).path}\n", r
    assert not cache_status(r).get("hit"), r
    assert len(origin.requests) == n_before + 1, f"the follow-up was answered without the origin: {r!r}"


# ---------------------------------------------------------------------------------------------------
# Malformed responses: 502, not stored

S200 = b"HTTP/1.1 200 OK\r\n" + CC

BAD_RESPONSES = [
    ("s6.1-cl-with-te", S200 + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("s6.1-te-with-cl", S200 + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("s6.3-two-different-cl", S200 + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"),
    ("s6.3-cl-list", S200 + b"Content-Length: 5, 6\r\n\r\nhello!"),
    ("s6.3-cl-plus", S200 + b"Content-Length: +5\r\n\r\nhello"),
    ("s6.3-cl-negative", S200 + b"Content-Length: -5\r\n\r\nhello"),
    ("s6.3-cl-hex", S200 + b"Content-Length: 0x5\r\n\r\nhello"),
    ("s6.3-cl-overflow", S200 + b"Content-Length: 99999999999999999999\r\n\r\nhello"),
    ("s4-status-not-digits", b"HTTP/1.1 2OO OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s4-status-two-digits", b"HTTP/1.1 20 OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s4-status-four-digits", b"HTTP/1.1 2000 OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s4-status-line-no-version", b"200 OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s4-status-line-lowercase-version", b"http/1.1 200 OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s4-status-line-garbage", b"SPROING\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s2.3-http-2.0", b"HTTP/2.0 200 OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s2.3-http-2", b"HTTP/2 200 OK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello"),
    ("s2.3-http-0.9-style", b"hello, no head at all"),
    ("s5.2-obs-fold", S200 + b"X-A: a\r\n b\r\nContent-Length: 5\r\n\r\nhello"),
    ("s5.2-obs-fold-of-cl", S200 + b"Content-Length:\r\n 5\r\n\r\nhello"),
    ("rfc9110-s5.5-nul-in-value", S200 + b"X-A: a\x00b\r\nContent-Length: 5\r\n\r\nhello"),
    ("rfc9110-s5.1-nul-in-name", S200 + b"X-\x00A: b\r\nContent-Length: 5\r\n\r\nhello"),
    ("rfc9110-s5.5-bare-cr-in-value", S200 + b"X-A: a\rb\r\nContent-Length: 5\r\n\r\nhello"),
    ("s5-line-without-colon", S200 + b"NoColon\r\nContent-Length: 5\r\n\r\nhello"),
    ("rfc9110-s15.2.2-101-without-upgrade-request",
     b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nHTTP/1.1 200 OK\r\n"
     + CC + b"Content-Length: 4\r\n\r\nevil"),
    ("rfc9110-s15.2-100-then-garbage", b"HTTP/1.1 100 Continue\r\n\r\nSPROING\r\n\r\n"),
    ("s5-response-head-too-large", S200 + b"X-Big: " + b"h" * (256 * 1024) + b"\r\nContent-Length: 5\r\n\r\nhello"),
]


@pytest.mark.parametrize("raw", [pytest.param(d, id=n) for n, d in BAD_RESPONSES])
def test_malformed_response_is_502_and_not_stored(tmp_path, origin, raw):
    origin.respond(Raw(raw))
    l = cache_larder(tmp_path)
    url = origin.url("/bad")
    resps, rest = exchange_raw(l, build_request("GET", url, [("Connection", "close")]))
    assert len(resps) == 1 and rest == b"", f"{resps} + {rest[:200]!r}"
    assert_502_page(resps[0])
    assert len(origin.requests) == 1, "a GET that got an invalid response must not be replayed"
    assert_not_stored(l, origin, url, 1)
    l.expect("errors_upstream_response", ">=", 1)


BAD_BODIES = [
    ("s7.1-chunk-size-not-hex", S200 + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-chunk-size-overflow", S200 + b"Transfer-Encoding: chunked\r\n\r\n10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-chunk-size-leading-sp", S200 + b"Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-chunk-data-missing-crlf", S200 + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n"),
    ("s7.1-chunk-ext-ctl", S200 + b"Transfer-Encoding: chunked\r\n\r\n5;a\x01\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-last-chunk-missing-then-close", S200 + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"),
    ("s7.1.2-trailer-obs-fold", S200 + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
    ("s6.3-cl-body-cut-short", S200 + b"Content-Length: 50\r\n\r\nhello"),
]


@pytest.mark.parametrize("raw", [pytest.param(d, id=n) for n, d in BAD_BODIES])
def test_malformed_response_body_is_never_delivered_whole_nor_stored(tmp_path, origin, raw):
    # The head was valid, so larder may already have sent it to the client when the body turns out bad.
    # Then it can only cut the response short (no last chunk / fewer bytes than Content-Length, then
    # close). Either way: never a complete response, never stored.
    origin.respond(Raw(raw))
    l = cache_larder(tmp_path)
    url = origin.url("/badbody")
    resps, rest = exchange_raw(l, build_request("GET", url, [("Connection", "close")]))
    if resps:
        assert len(resps) == 1 and rest == b"", resps
        assert_502_page(resps[0])
    else:
        assert rest.startswith(b"HTTP/1.1 200 "), f"neither a 502 nor a visibly truncated response: {rest[:300]!r}"
    assert_not_stored(l, origin, url, 1)


@pytest.mark.parametrize("raw,ok", [
    # RFC 9112 s5.1: "A proxy MUST remove any such whitespace from a response message before forwarding".
    pytest.param(S200 + b"X-Sp : v\r\nContent-Length: 5\r\n\r\nhello", None, id="s5.1-sp-before-colon"),
    # RFC 9112 s6.3 item 3 lets an intermediary forward CL+TE after dropping CL; identical CL values are
    # allowed by RFC 9110 s8.6. Both: 502, or forwarded with one sane framing.
    pytest.param(S200 + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", None, id="rfc9110-s8.6-identical-cls"),
    # RFC 9112 s4: reason-phrase = *( HTAB / SP / VCHAR / obs-text ): a CTL is not allowed. 502, or a
    # status line rebuilt without it; never the CTL relayed to the client.
    pytest.param(b"HTTP/1.1 200 O\x01K\r\n" + CC + b"Content-Length: 5\r\n\r\nhello", None, id="s4-ctl-in-reason"),
    pytest.param(b"HTTP/1.1 200 O\x7fK\r\n" + CC + b"Content-Length: 5\r\n\r\nhello", None, id="s4-del-in-reason"),
])
def test_questionable_response_is_502_or_cleaned(tmp_path, origin, raw, ok):
    origin.respond(Raw(raw))
    l = cache_larder(tmp_path)
    url = origin.url("/q")
    resps, rest = exchange_raw(l, build_request("GET", url, [("Connection", "close")]))
    assert len(resps) == 1 and rest == b"", resps
    r = resps[0]
    if r.status == 502:
        assert_502_page(r)
        assert_not_stored(l, origin, url, 1)
        return
    assert r.status == 200 and r.body == b"hello", r
    head = r.raw.split(b"\r\n\r\n")[0]
    assert b"X-Sp :" not in head and b" :" not in head, r.raw
    assert not re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", head.replace(b"\r\n", b"")), f"CTL relayed: {head!r}"
    assert len(r.headers_named("content-length")) <= 1, r.headers


@pytest.mark.time_limit(60)
def test_request_after_a_failed_fetch_is_not_collapsed_into_it(tmp_path, origin):
    # The origin promises 50 bytes, sends 5 and closes. The first client gets a visibly truncated
    # response. A request for the same URL sent after that client saw the end must be a new fetch: it
    # must not join the dead fetch's flight and receive a 200 head with no body ("collapsed"). The window
    # is short, so the pair is repeated on 80 URLs.
    l = cache_larder(tmp_path)
    bad = []
    for i in range(80):
        origin.respond(Raw(S200 + b"Content-Length: 50\r\n\r\nhello"))
        url = origin.url(f"/cut{i}")
        resps, rest = exchange_raw(l, build_request("GET", url, [("Connection", "close")]))
        assert not resps and rest.startswith(b"HTTP/1.1 200 "), (resps, rest)
        second = raw_request(l, build_request("GET", url, [("Connection", "close")]))
        if not second.endswith(f"GET /cut{i}\n".encode()):
            bad.append(second)
    assert not bad, f"{len(bad)}/80 follow-ups were handed the failed fetch, e.g. {bad[0]!r}"


# ---------------------------------------------------------------------------------------------------
# Bytes beyond a response are never a response to anything else

STRAY = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n" + CC + b"\r\nEVIL!"


@pytest.mark.parametrize("first,method", [
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok", "GET",
                 id="s6.3-extra-after-content-length"),
    pytest.param(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nCache-Control: no-store\r\n\r\n"
                 b"2\r\nok\r\n0\r\n\r\n", "GET", id="s7.1-extra-after-last-chunk"),
    pytest.param(b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello", "GET", id="s6.3-body-after-204"),
    pytest.param(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello", "GET", id="s6.3-body-after-304"),
    pytest.param(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\nhello", "HEAD",
                 id="s6.3-body-after-head-response"),
])
def test_bytes_after_a_response_never_answer_the_next_request(tmp_path, origin, first, method):
    # The origin sends a complete response followed by more bytes (here a whole second response) on a
    # connection it keeps open. larder must deliver exactly the first response and must not keep that
    # connection for another request: the client's next request reaches the origin and gets its answer.
    extra = b"" if method == "HEAD" or b"204" in first[:13] or b"304" in first[:13] else STRAY
    origin.respond(Raw(first + extra, keep_open=True))
    l = cache_larder(tmp_path)
    with Client(l) as c:
        hdrs = [("If-None-Match", '"x"')] if b"304" in first[:13] else []
        r1 = c.request(method, origin.url("/first"), hdrs)
        expected = {"GET": b"ok", "HEAD": b""}[method] if b" 200 " in first[:13] else b""
        assert r1.body == expected and r1.status in (200, 204, 304), r1
        r2 = c.request("GET", origin.url("/second"))
    assert r2.status == 200 and r2.text == "GET /second\n", f"the next request got stray bytes: {r2!r}"
    reqs = origin.wait_for_requests(2)
    assert [q.target for q in reqs] == ["/first", "/second"], reqs
    assert reqs[1].conn != reqs[0].conn, "the connection that sent extra bytes was reused"
    r3 = fetch(l, origin.url("/second"))
    assert b"EVIL" not in r3.body and b"hello" not in r3.body, r3


class _StrayOrigin:
    """A raw origin that answers the first request on each connection with "ok", then, once the response
    is out, sends an unsolicited second response on the idle connection. Later requests on a fresh
    connection get "fresh <target>". Records every request line and whether larder closed the poisoned
    connection."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.requests = []
        self.stray_sent = threading.Event()
        self.poisoned_closed = threading.Event()
        self.stop = threading.Event()
        self.conns = 0
        self.t = threading.Thread(target=self._loop, daemon=True)
        self.t.start()

    @property
    def addr(self):
        return f"127.0.0.1:{self.port}"

    def _loop(self):
        while not self.stop.is_set():
            try:
                c, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.conns += 1
            threading.Thread(target=self._serve, args=(c, self.conns == 1), daemon=True).start()

    def _serve(self, c, poison):
        c.settimeout(10)
        buf = b""
        try:
            while not self.stop.is_set():
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        if poison:
                            self.poisoned_closed.set()
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                line = head.split(b"\r\n", 1)[0].decode()
                self.requests.append((line, poison))
                if poison and len([r for r in self.requests if r[1]]) == 1:
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nCache-Control: no-store\r\n\r\nok")
                    self.stop.wait(0.2)  # pacing: larder has pooled the connection by now
                    c.sendall(STRAY)
                    self.stray_sent.set()
                else:
                    body = f"fresh {line.split(' ')[1]}\n".encode()
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            if poison:
                self.poisoned_closed.set()
        finally:
            c.close()

    def _cleanup(self):
        self.stop.set()
        self.lsock.close()
        self.t.join(2)


def test_unsolicited_bytes_on_an_idle_pooled_connection(tmp_path):
    # RFC 9112 s9.3.2/s9.6: a response with no request outstanding is not an answer to the next one. An
    # idle pooled connection on which the origin sends anything is dead: larder closes it (or at least
    # never reads the stray bytes as the response to a later request).
    o = _StrayOrigin()
    try:
        l = cache_larder(tmp_path)
        with Client(l) as c:
            r1 = c.request("GET", f"http://{o.addr}/first")
            assert r1.status == 200 and r1.body == b"ok", r1
            assert o.stray_sent.wait(5)
            o.poisoned_closed.wait(2)  # larder should notice and close; go on either way
            r2 = c.request("GET", f"http://{o.addr}/second")
        assert r2.body == b"fresh /second\n", f"stray bytes answered a later request: {r2!r}"
        assert o.poisoned_closed.is_set(), "larder kept a pooled connection on which the origin sent stray bytes"
        r3 = fetch(l, f"http://{o.addr}/second")
        assert b"EVIL" not in r3.body, r3
    finally:
        o._cleanup()


# ---------------------------------------------------------------------------------------------------
# Cache poisoning: only the URI (and Vary) selects a stored response

def echo_handler(req):
    """200, cacheable for 10 min, body naming what the origin saw: target, Host and the unkeyed fields."""
    seen = " ".join(f"{k}={req.header(k)}" for k in ("host", "x-forwarded-host", "x-original-url",
                                                      "x-rewrite-url", "x-http-method-override")
                    if req.header(k) is not None)
    return Response(headers=[("Cache-Control", "max-age=600"), ("Content-Type", "text/plain")],
                    body=f"{req.method} {req.target} {seen}\n".encode())


@pytest.mark.parametrize("name", ["X-Forwarded-Host", "X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override"])
def test_unkeyed_header_never_selects_another_uri(tmp_path, origin, name):
    origin.handler = echo_handler
    l = cache_larder(tmp_path)
    ua, ub = origin.url("/a"), origin.url("/b")
    val = {"X-HTTP-Method-Override": "POST"}.get(name, "/a")
    ra = fetch_stored(l, ua)
    # A request for /b that names /a in an unkeyed field: a miss, answered by the origin for /b.
    rb = fetch_stored(l, ub, headers=[(name, val)])
    assert not cache_status(rb).get("hit"), rb
    assert rb.text.startswith("GET /b "), rb
    assert [q.target for q in origin.requests] == ["/a", "/b"]
    # The unkeyed field is not part of the key: /a is still /a's entry, whatever it says.
    ra2 = fetch(l, ua, headers=[(name, "/b")])
    assert cache_status(ra2).get("hit") and ra2.body == ra.body, ra2
    rb2 = fetch(l, ub)
    assert cache_status(rb2).get("hit") and rb2.body == rb.body, rb2
    assert len(origin.requests) == 2


def test_host_header_never_changes_which_entry_is_used(tmp_path, origin):
    # RFC 9112 s3.2.2: the target's authority wins; the Host a client sends must not route the request
    # nor pick the cache entry. Two names for the same origin make two distinct URIs.
    dns = DnsResponder({"a.test": ["127.0.0.1"], "b.test": ["127.0.0.1"]})
    origin.handler = echo_handler
    l = cache_larder(tmp_path, "--dns-servers", dns.server_arg)
    ua, ub = origin.url_for("a.test", "/x"), origin.url_for("b.test", "/x")
    ha, hb = f"a.test:{origin.port}", f"b.test:{origin.port}"

    r1 = fetch_stored(l, ua, headers=[("Host", "evil.test")], host=None)
    assert r1.text == f"GET /x host={ha}\n", r1
    # Same URI, another Host: served from a.test's entry.
    r2 = fetch(l, ua, headers=[("Host", hb)], host=None)
    assert cache_status(r2).get("hit") and r2.body == r1.body, r2
    # b.test's URI with a.test's Host: a miss, answered by the origin as b.test.
    r3 = fetch_stored(l, ub, headers=[("Host", ha)], host=None)
    assert not cache_status(r3).get("hit") and r3.text == f"GET /x host={hb}\n", r3
    # And each entry still answers for its own URI.
    assert fetch(l, ua).body == r1.body
    assert fetch(l, ub).body == r3.body
    assert [q.header("host") for q in origin.requests] == [ha, hb]


def test_distinct_paths_never_share_an_entry(tmp_path, origin):
    # RFC 3986 s6.2.2: only unreserved percent-encodings may be decoded for comparison; "/a%2Fb" is not
    # "/a/b", and dot-segments are the origin's to interpret.
    origin.handler = echo_handler
    l = cache_larder(tmp_path)
    base = fetch_stored(l, origin.url("/a/b"))
    for path in ("/a%2Fb", "/x/../a/b", "/a/./b", "/a/b/", "/a//b", "/a/b?", "/A/b"):
        r = fetch_stored(l, origin.url(path))
        assert not cache_status(r).get("hit") and r.body != base.body, (path, r)
        assert r.text.startswith(f"GET {path} "), (path, r)
    assert len(origin.requests) == 8


def test_vary_fields_select_entries(tmp_path, origin):
    # RFC 9111 s4.1: a stored response is used only for requests whose Vary-named fields match.
    def handler(req):
        lang = req.header("accept-language") or "none"
        return Response(headers=[("Cache-Control", "max-age=600"), ("Vary", "Accept-Language")],
                        body=f"lang={lang}\n".encode())

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/v")
    en = fetch_stored(l, url, headers=[("Accept-Language", "en")])
    fr = fetch_stored(l, url, headers=[("Accept-Language", "fr")])
    assert (en.body, fr.body) == (b"lang=en\n", b"lang=fr\n")
    for lang, want in (("en", en.body), ("fr", fr.body), ("en", en.body)):
        r = fetch(l, url, headers=[("Accept-Language", lang)])
        assert cache_status(r).get("hit") and r.body == want, (lang, r)
    r = fetch(l, url, headers=[("Accept-Language", "de")])
    assert not cache_status(r).get("hit") and r.body == b"lang=de\n", r
    assert len(origin.requests) == 3


@pytest.mark.parametrize("cc,shared", [
    pytest.param("max-age=600", False, id="rfc9111-s3.5-authorization-not-shared"),
    pytest.param("private, max-age=600", False, id="rfc9111-s5.2.2.7-private"),
    pytest.param("public, max-age=600", True, id="rfc9111-s3.5-public"),
    pytest.param("s-maxage=600", True, id="rfc9111-s3.5-s-maxage"),
    pytest.param("must-revalidate, max-age=600", True, id="rfc9111-s3.5-must-revalidate"),
])
def test_authorized_response_reuse(tmp_path, origin, cc, shared):
    # RFC 9111 s3.5: a shared cache stores a response to a request with Authorization only when the
    # response explicitly allows it; otherwise another client (or the same one) never gets it from cache.
    def handler(req):
        return Response(headers=[("Cache-Control", cc)], body=f"for {req.header('authorization')}\n".encode())

    origin.handler = handler
    l = cache_larder(tmp_path)
    url = origin.url("/secret")
    r1 = fetch(l, url, headers=[("Authorization", "Bearer alice")])
    assert r1.body == b"for Bearer alice\n"
    if shared:
        l.expect("store_meta_writes", ">=", 1, timeout=5.0)
    # (The request without Authorization comes last: its own response may be stored, legitimately.)
    other = [[("Authorization", "Bearer mallory")], []]
    for hdrs in other:
        r = fetch(l, url, headers=hdrs)
        if shared:
            assert r.body == r1.body, r
        else:
            assert not cache_status(r).get("hit") and r.body != r1.body, f"alice's response served to {hdrs}: {r!r}"
    assert len(origin.requests) == (1 if shared else 3), origin.requests


def test_502_from_a_bad_response_is_not_stored_for_others(tmp_path, origin):
    # A client that triggers a bad upstream response must not leave an error behind for the next one.
    origin.respond(Raw(S200 + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"))
    l = cache_larder(tmp_path)
    url = origin.url("/once")
    assert fetch(l, url).status == 502
    r = fetch(l, url)
    assert r.status == 200 and r.text == "GET /once\n" and not cache_status(r).get("hit"), r
