"""Hardening, resource limits: oversized heads, too many fields, oversized bodies, slow clients and
connection floods are refused early, with the right status, without reaching the origin, and without
hurting other clients.

Limits under test (RFC 9110 s15.5.14 413, s15.5.9 408, RFC 6585 s5 431, RFC 9112 s3 414):
request_header_max_bytes, request_header_max_count, request_body_max_bytes, request_header_timeout,
max_client_connections, max_connections_per_client.
"""

import threading
import time

import pytest

from harness import Client, Larder, exchange_raw, fetch, parse_response, poll_until


def assert_error_page(r, statuses, reason=None):
    assert r.status in statuses, r
    assert "close" in r.tokens("connection"), r.headers
    assert (r.header("content-type") or "").startswith("text/plain"), r.headers
    assert r.text.startswith("larder: ") and r.text.endswith("\n") and len(r.body) < 600, r.text
    if reason:
        assert reason in r.text.lower(), r.text


def follow_up(origin) -> bytes:
    return f"GET {origin.url('/smuggled')} HTTP/1.1\r\nHost: {origin.addr}\r\nConnection: close\r\n\r\n".encode()


def get_head(origin, path="/g", extra: bytes = b"") -> bytes:
    return f"GET {origin.url(path)} HTTP/1.1\r\nHost: {origin.addr}\r\n".encode() + extra + b"\r\n"


def post_head(origin, extra: bytes, path="/p") -> bytes:
    return f"POST {origin.url(path)} HTTP/1.1\r\nHost: {origin.addr}\r\n".encode() + extra + b"\r\n"


def assert_refused(l, origin, data, statuses, reason=None):
    """Exactly one error then EOF; the follow-up appended to the same send is never read; the origin
    sees nothing at all."""
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert len(resps) == 1 and rest == b"", f"{resps} + {rest[:200]!r}"
    assert_error_page(resps[0], statuses, reason)
    assert origin.connections == 0, origin.requests
    return resps[0]


def assert_served(l, origin, data, path):
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b"" and [r.status for r in resps] == [200, 200], resps
    assert [q.target for q in origin.wait_for_requests(2)] == [path, "/smuggled"]


# ---------------------------------------------------------------------------------------------------
# Request head size and field count (RFC 6585 s5: 431)

HDR_MAX = "4096"


@pytest.mark.parametrize("extra", [
    pytest.param(b"X-Big: " + b"a" * 5000 + b"\r\n", id="rfc6585-s5-one-large-field"),
    pytest.param(b"".join(b"X-F%02d: %s\r\n" % (i, b"b" * 150) for i in range(40)), id="rfc6585-s5-many-fields-total"),
    pytest.param(b"X-" + b"n" * 5000 + b": v\r\n", id="rfc6585-s5-large-field-name"),
    pytest.param(b"Cookie: " + b"c=1; " * 1000 + b"\r\n", id="rfc6585-s5-large-cookie"),
])
def test_head_over_max_bytes_is_431(tmp_path, origin, extra):
    l = Larder(tmp_path, "--request-header-max-bytes", HDR_MAX)
    assert_refused(l, origin, get_head(origin, extra=extra), {431})


def test_head_under_max_bytes_is_served(tmp_path, origin):
    l = Larder(tmp_path, "--request-header-max-bytes", HDR_MAX)
    assert_served(l, origin, get_head(origin, extra=b"X-Big: " + b"a" * 2500 + b"\r\n"), "/g")


def test_long_target_under_uri_limit_but_over_head_limit(tmp_path, origin):
    # The request-target counts toward the head as well: 414 (URI limit) or 431 (head limit), never served.
    l = Larder(tmp_path, "--request-header-max-bytes", HDR_MAX)
    data = get_head(origin, path="/" + "u" * 6000)
    assert_refused(l, origin, data, {414, 431})


def test_head_limit_holds_when_sent_in_pieces(tmp_path, origin):
    # The limit is on the accumulated head, not on one read: a client sending an endless field (no CRLF
    # ever) in pieces is cut off at the limit with 431, not left hanging until the header timeout.
    l = Larder(tmp_path, "--request-header-max-bytes", HDR_MAX, "--request-header-timeout", "20s",
               "--shutdown-timeout", "1s")
    with Client(l) as c:
        c.send(get_head(origin)[:-2] + b"X-Endless: " + b"z" * 1000)
        threading.Event().wait(0.1)  # pacing: the rest arrives in later reads
        sent = 0
        try:
            while sent < 64 * 1024:
                c.send(b"z" * 512)
                sent += 512
        except (BrokenPipeError, ConnectionResetError):
            pass
        t0 = time.monotonic()
        closed, got = c.wait_closed(5)
    assert closed, "larder neither refused nor closed an endless header within 5 s (header timeout is 20 s)"
    assert time.monotonic() - t0 < 5
    assert_error_page(parse_response(got), {431})
    assert origin.connections == 0


SPLIT_REQ = "GET {u} HTTP/1.1\r\nHost: {a}\r\nX-One: 1\r\nX-Two: 2\r\n\r\n"


@pytest.mark.parametrize("cut", [
    pytest.param(lambda h: 3, id="s3-inside-method"),
    pytest.param(lambda h: h.index(b"HTTP/1.1") - 4, id="s3-inside-target"),
    pytest.param(lambda h: h.index(b"X-One") + 3, id="s5-inside-field-name"),
    pytest.param(lambda h: h.index(b": 1") + 1, id="s5-after-colon"),
    pytest.param(lambda h: len(h) - 1, id="s2.1-between-cr-and-lf-of-last-line"),
    pytest.param(lambda h: len(h) - 2, id="s2.1-before-final-crlf"),
])
def test_head_split_across_reads_is_served(tmp_path, origin, cut):
    # TCP gives no message boundaries (RFC 9112 s2.1 "a sequence of octets"): a head that arrives in two
    # reads is an ordinary request and must be answered as soon as its last byte arrives, not after
    # request_header_timeout (408).
    l = Larder(tmp_path, "--request-header-timeout", "3s", "--shutdown-timeout", "1s")
    head = SPLIT_REQ.format(u=origin.url("/split"), a=origin.addr).encode()
    i = cut(head)
    with Client(l, 10) as c:
        c.send(head[:i])
        threading.Event().wait(0.1)  # pacing: make the second part a separate read
        t0 = time.monotonic()
        c.send(head[i:])
        r = c.read_response()
        waited = time.monotonic() - t0
    assert r.status == 200 and r.text == "GET /split\n", r
    assert waited < 1.5, f"answered {waited:.2f}s after the head completed"


@pytest.mark.parametrize("n,ok", [
    pytest.param(10, True, id="rfc6585-s5-count-at-limit"),
    pytest.param(11, False, id="rfc6585-s5-count-over-limit"),
    pytest.param(200, False, id="rfc6585-s5-count-far-over-limit"),
])
def test_field_count_limit(tmp_path, origin, n, ok):
    # n fields in all, Host included.
    l = Larder(tmp_path, "--request-header-max-count", "10")
    extra = b"".join(b"X-F%03d: v\r\n" % i for i in range(n - 1))
    data = get_head(origin, extra=extra)
    if ok:
        assert_served(l, origin, data, "/g")
    else:
        assert_refused(l, origin, data, {431})


@pytest.mark.parametrize("trailers", [
    pytest.param(b"".join(b"X-T%03d: v\r\n" % i for i in range(50)), id="rfc9112-s7.1.2-trailer-count"),
    pytest.param(b"X-T: " + b"t" * 8000 + b"\r\n", id="rfc9112-s7.1.2-trailer-size"),
])
def test_trailer_section_is_limited_too(tmp_path, origin, trailers):
    # A trailer section is a second header section (RFC 9112 s7.1.2): the same limits bound it, or it
    # is a way around them. The head was valid and may be forwarded already; the request must then be
    # cut: the origin never sees it complete, the client gets 431/400 or a close.
    l = Larder(tmp_path, "--request-header-max-bytes", HDR_MAX, "--request-header-max-count", "10")
    data = post_head(origin, b"Transfer-Encoding: chunked\r\n") + b"5\r\nhello\r\n0\r\n" + trailers + b"\r\n"
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert len(resps) <= 1 and rest == b"", resps
    if resps:
        assert_error_page(resps[0], {400, 431})
    origin.wait_for_closed(origin.connections)
    assert not origin.requests, origin.requests


# ---------------------------------------------------------------------------------------------------
# Request body size (RFC 9110 s15.5.14: 413)

BODY_MAX = 1000


def test_body_over_limit_with_content_length_is_413_before_forwarding(tmp_path, origin):
    l = Larder(tmp_path, "--request-body-max-bytes", str(BODY_MAX))
    body = b"x" * (BODY_MAX + 1)
    assert_refused(l, origin, post_head(origin, b"Content-Length: %d\r\n" % len(body)) + body, {413})


def test_body_at_limit_with_content_length_is_served(tmp_path, origin):
    l = Larder(tmp_path, "--request-body-max-bytes", str(BODY_MAX))
    body = b"x" * BODY_MAX
    assert_served(l, origin, post_head(origin, b"Content-Length: %d\r\n" % len(body)) + body, "/p")
    assert origin.requests[0].body == body


def test_body_over_limit_with_expect_100_is_413_without_reading_the_body(tmp_path, origin):
    # RFC 9110 s10.1.1: a server that will refuse the content answers the final status instead of 100.
    l = Larder(tmp_path, "--request-body-max-bytes", str(BODY_MAX))
    with Client(l) as c:
        c.send(post_head(origin, b"Content-Length: 1000000\r\nExpect: 100-continue\r\n"))
        r = c.read_response("POST", return_interim=True)
        assert r.status == 413, r
        assert_error_page(r, {413})
        closed, rest = c.wait_closed(5)
    assert closed and rest == b""
    assert origin.connections == 0


@pytest.mark.parametrize("chunks", [
    pytest.param([b"x" * (BODY_MAX + 1)], id="rfc9110-s15.5.14-chunked-one-chunk-over"),
    pytest.param([b"y" * 100] * 11, id="rfc9110-s15.5.14-chunked-many-chunks-over"),
    pytest.param([b"z" * 600, b"z" * 600], id="rfc9110-s15.5.14-chunked-second-chunk-over"),
])
def test_body_over_limit_chunked_never_completes_upstream(tmp_path, origin, chunks):
    # No length up front: larder may have forwarded the head and part of the body. It must cut the
    # request: 413 (when nothing was answered yet) or a close, and the origin never sees it complete.
    l = Larder(tmp_path, "--request-body-max-bytes", str(BODY_MAX))
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    resps, rest = exchange_raw(l, post_head(origin, b"Transfer-Encoding: chunked\r\n") + body + follow_up(origin))
    assert len(resps) <= 1 and rest == b"", resps
    if resps:
        assert_error_page(resps[0], {413})
    origin.wait_for_closed(origin.connections)
    assert not origin.requests, f"origin received a complete over-limit request: {origin.requests}"


def test_body_at_limit_chunked_is_served(tmp_path, origin):
    l = Larder(tmp_path, "--request-body-max-bytes", str(BODY_MAX))
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (BODY_MAX, b"w" * BODY_MAX)
    assert_served(l, origin, post_head(origin, b"Transfer-Encoding: chunked\r\n") + body, "/p")
    assert origin.requests[0].body == b"w" * BODY_MAX


# ---------------------------------------------------------------------------------------------------
# Slow clients (slowloris): request_header_timeout bounds the whole head from its first byte

def _assert_408_or_close(got: bytes):
    if got:
        r = parse_response(got)
        assert_error_page(r, {408})


def test_stalled_head_gets_408_while_others_are_served(tmp_path, origin):
    l = Larder(tmp_path, "--request-header-timeout", "1s")
    with Client(l) as slow:
        t0 = time.monotonic()
        slow.send(get_head(origin, "/slow")[:-2] + b"X-Partial: a")  # no end of head, ever
        # Meanwhile a fast client on another connection is served at once.
        r = fetch(l, origin.url("/fast"), timeout=5)
        assert r.status == 200 and r.text == "GET /fast\n"
        assert time.monotonic() - t0 < 0.9, "the fast client waited for the slow one"
        closed, got = slow.wait_closed(5)
        waited = time.monotonic() - t0
    assert closed, "stalled head not timed out within 5 s"
    assert 0.9 <= waited <= 4.0, f"closed after {waited:.2f}s for a 1s header timeout"
    _assert_408_or_close(got)
    assert [q.target for q in origin.requests] == ["/fast"]
    l.expect("errors_timeout", ">=", 1)


@pytest.mark.time_limit(20)
def test_dripping_head_is_cut_at_the_header_timeout(tmp_path, origin):
    # One byte every 50 ms keeps the connection "active" forever; the timeout runs from the head's first
    # byte, so the drip does not extend it.
    l = Larder(tmp_path, "--request-header-timeout", "500ms")
    stop = threading.Event()
    head = get_head(origin, "/drip") + b"X-Padding: " + b"p" * 10000

    with Client(l) as c:
        def drip():
            for b in head:
                if stop.wait(0.05):  # pacing a slow client, not synchronisation
                    return
                try:
                    c.send(bytes([b]))
                except OSError:
                    return

        t = threading.Thread(target=drip, daemon=True)
        t0 = time.monotonic()
        t.start()
        try:
            closed, got = c.wait_closed(6)
        finally:
            stop.set()
            t.join(5)
        waited = time.monotonic() - t0
    assert closed, "a dripping client kept its connection past the header timeout"
    assert waited <= 3.0, f"closed after {waited:.2f}s for a 500ms header timeout"
    _assert_408_or_close(got)
    assert origin.connections == 0


def test_stalled_body_does_not_hold_a_slot_forever(tmp_path, origin):
    # A body that stops arriving is bounded by client_idle_timeout (reset by progress); the origin never
    # sees a complete request and the client gets a close (or an error).
    l = Larder(tmp_path, "--client-idle-timeout", "700ms")
    with Client(l) as c:
        t0 = time.monotonic()
        c.send(post_head(origin, b"Content-Length: 100\r\n") + b"only ten b")
        closed, got = c.wait_closed(6)
        waited = time.monotonic() - t0
    assert closed and waited <= 4.0, f"stalled body held for {waited:.2f}s"
    if got:
        r = parse_response(got, "POST")
        assert r.status in (400, 408, 502, 504), r
    origin.wait_for_closed(origin.connections)
    assert not origin.requests, origin.requests


# ---------------------------------------------------------------------------------------------------
# Connection limits

def _open_served(l, origin, n, source=None, tag="c"):
    """n keep-alive client connections, each proven accepted by one request/response."""
    out = []
    for i in range(n):
        c = Client(l, 5, source=source)
        r = c.request("GET", origin.url(f"/{tag}{i}"))
        assert r.status == 200, r
        out.append(c)
    return out


def _refused(l, source=None) -> bool:
    """A connection larder accepts at the TCP level and closes at once, without answering."""
    c = Client(l, 5, source=source)
    try:
        try:
            c.send(b"GET http://127.0.0.1:1/ HTTP/1.1\r\nHost: 127.0.0.1:1\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            return True
        closed, got = c.wait_closed(5)
        return closed and got == b""
    finally:
        c.close()


def _served(l, origin, path, source=None) -> bool:
    try:
        with Client(l, 5, source=source) as c:
            r = c.request("GET", origin.url(path), [("Connection", "close")])
            return r.status == 200
    except (EOFError, ConnectionResetError, BrokenPipeError):
        return False


@pytest.mark.parametrize("workers", ["1", "2"])
def test_max_client_connections(tmp_path, origin, workers):
    # The limit is process-wide, across event loops.
    l = Larder(tmp_path, "--max-client-connections", "5", "--workers", workers)
    held = _open_served(l, origin, 5)
    for _ in range(3):
        assert _refused(l), "a 6th connection was served while 5 are open"
    held.pop().close()
    # The slot frees once larder has seen the close: bounded wait, observed through a socket.
    assert poll_until(lambda: _served(l, origin, "/after-free"), 5.0), "slot never freed"
    for c in held:
        c.close()
    l.expect("client_connections_refused", ">=", 3)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_max_connections_per_client(tmp_path, origin, workers):
    l = Larder(tmp_path, "--max-connections-per-client", "3", "--workers", workers)
    held = _open_served(l, origin, 3)
    assert _refused(l), "a 4th connection from 127.0.0.1 was served"
    # Another address is not affected (allow 127.0.0.0/8 is the default).
    assert _served(l, origin, "/other-client", source="127.0.0.2"), "127.0.0.2 refused"
    held.pop().close()
    assert poll_until(lambda: _served(l, origin, "/after-free"), 5.0), "per-client slot never freed"
    for c in held:
        c.close()
    # Scraped from another address: larder may not have seen those closes yet, and a fourth
    # connection from 127.0.0.1 would be refused.
    l.expect("client_connections_refused", ">=", 1, source="127.0.0.9")


def test_idle_connections_do_not_starve_other_addresses(tmp_path, origin):
    # Both limits at once: one address holding its quota of silent connections leaves room for others.
    l = Larder(tmp_path, "--max-client-connections", "6", "--max-connections-per-client", "3")
    idle = _open_served(l, origin, 3)  # now idle keep-alive connections
    assert _refused(l)
    for src in ("127.0.0.2", "127.0.0.3"):
        assert _served(l, origin, f"/from-{src}", source=src), src
    for c in idle:
        c.close()
