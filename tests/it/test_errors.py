"""b: error responses. Each failure gives the client a text/plain "larder: <reason>" page with the right
status, bumps its counter, and leaves one error-log line and one access-log line."""

import time

import pytest

from harness import (Client, Close, DnsResponder, Hang, Larder, Raw, Response, build_request, fetch, free_port,
                     parse_access_line, parse_response, raw_request)


def assert_error_page(r, status, reason):
    assert r.status == status, r
    assert r.header("content-type", "").startswith("text/plain"), r.headers
    assert r.text.startswith("larder: "), r.text
    assert reason in r.text.lower(), f"expected {reason!r} in {r.text!r}"


def access_line_for(l, needle, status):
    line = l.wait_access_log(lambda s: needle in s)[0]
    assert f"/{status} " in line, line
    return line


# Port 1 on loopback: if a malformed request were forwarded, the client would see 502, not 400.
# Each row: RFC 9112 section and what is wrong, the bytes, the acceptable statuses.
H = b"GET http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
P = b"POST http://127.0.0.1:1/x HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"
MALFORMED = [
    ("s3 garbage request line", b"THIS IS NOT HTTP\r\n\r\n", {400}),
    ("s3 junk after the version", b"GET http://127.0.0.1:1/ HTTP/1.1 extra\r\n\r\n", {400}),
    # An HTTP/0.9-style line has no version: refusing that version with 505 is also fair (s2.3).
    ("s3 missing version", b"GET http://127.0.0.1:1/\r\n\r\n", {400, 505}),
    ("s5.1 space inside a field name", H + b"Bad Header: x\r\n\r\n", {400}),
    ("s5.1 whitespace before the colon", H + b"X-Sp : x\r\n\r\n", {400}),
    ("s5.1 field without colon", H + b"NoColonHere\r\n\r\n", {400}),
    ("s6.3 two different content-lengths", P + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\nab", {400}),
    ("s6.3 chunked not the last coding", P + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400}),
]


@pytest.mark.parametrize("data,statuses", [pytest.param(d, st, id=n) for n, d, st in MALFORMED])
def test_malformed_request_is_400(tmp_path, data, statuses):
    l = Larder(tmp_path)
    r = parse_response(raw_request(l, data, read_until_close=False))
    assert r.status in statuses, r
    assert_error_page(r, r.status, "")
    l.expect("errors_bad_request", 1)
    l.wait_error_log(r"malformed|bad request|invalid|parse")
    line = l.wait_access_log(lambda s: f"/{r.status} " in s)[0]
    assert parse_access_line(line), f"not 10 Squid fields: {line!r}"
    assert "HIER_NONE/-" in line, line


def test_obs_fold_and_leading_whitespace_never_forwarded(tmp_path, origin):
    # RFC 9112 s5.2: obs-fold is rejected (400) or replaced by SP before forwarding; s2.2: a
    # whitespace-preceded line right after the request line is rejected or dropped, never forwarded.
    l = Larder(tmp_path)
    for data in (build_request("GET", origin.url("/fold"), [("X-Folded", "a\r\n b")]),
                 f"GET {origin.url('/lead')} HTTP/1.1\r\n X-Lead: 1\r\nHost: {origin.addr}\r\n\r\n".encode()):
        r = parse_response(raw_request(l, data, read_until_close=False))
        assert r.status in (200, 400), r
    for req in origin.requests:
        assert b"\r\n " not in req.raw_head and b"\r\n\t" not in req.raw_head, req.raw_head
        assert not req.has("x-lead") and not req.has(" x-lead"), req.headers
        if req.has("x-folded"):
            assert req.header("x-folded").split() == ["a", "b"], req.headers


def test_unknown_name_is_502(tmp_path):
    dns = DnsResponder({})
    l = Larder(tmp_path, "--dns-servers", dns.server_arg)
    r = fetch(l, "http://nosuch.test:8080/missing")
    assert_error_page(r, 502, "name not found")
    assert dns.count("nosuch.test") >= 1
    l.expect("errors_dns", 1)
    l.wait_error_log(r"nosuch\.test")
    line = access_line_for(l, "nosuch.test", 502)
    assert "HIER_NONE/-" in line, "no upstream was contacted"


def test_connection_refused_is_502(tmp_path):
    port = free_port()
    l = Larder(tmp_path)
    r = fetch(l, f"http://127.0.0.1:{port}/refused")
    assert_error_page(r, 502, "connection refused")
    l.expect("errors_connect", 1)
    l.wait_error_log(r"refused")
    access_line_for(l, "/refused", 502)


def test_garbage_from_origin_is_502(tmp_path, origin):
    origin.respond(Raw(b"SPROING! this is not a status line\r\n\r\n"))
    l = Larder(tmp_path)
    r = fetch(l, origin.url("/garbage"))
    assert_error_page(r, 502, "invalid upstream response")
    assert len(origin.requests) == 1
    l.expect("errors_upstream_response", 1)
    l.wait_error_log(r"invalid|malformed|parse")
    access_line_for(l, "/garbage", 502)


def test_origin_closes_without_response_is_502(tmp_path, origin):
    origin.respond(Close())
    l = Larder(tmp_path)
    r = fetch(l, origin.url("/closed"))
    assert r.status == 502, r
    # A fresh connection that fails says nothing about a stale one: no retry expected, at most one.
    assert 1 <= len(origin.requests_for("/closed")) <= 2
    access_line_for(l, "/closed", 502)


def test_first_byte_timeout_is_504(tmp_path, origin):
    origin.respond(Hang())
    l = Larder(tmp_path, "--first-byte-timeout", "500ms")
    t0 = time.monotonic()
    r = fetch(l, origin.url("/slow"))
    waited = time.monotonic() - t0
    assert_error_page(r, 504, "upstream timeout")
    assert 0.4 <= waited <= 5, f"504 after {waited:.2f}s for a 500ms first-byte timeout"
    assert len(origin.requests_for("/slow")) == 1, "a timed-out GET must not be replayed"
    l.expect("errors_timeout", 1)
    l.wait_error_log(r"time")
    access_line_for(l, "/slow", 504)


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_upstream_reset_mid_body_is_not_a_complete_response(tmp_path, origin, framing):
    # Once the head is sent, larder can only cut the client off: the body must come out visibly
    # truncated (short Content-Length, or no last chunk), never as a complete message.
    body = bytes(range(256)) * 1024
    origin.respond(Response(body=[body[i:i + 16384] for i in range(0, len(body), 16384)], length=len(body),
                            framing=framing, reset="mid_body", reset_after=100000, chunk_delay=0.001))
    l = Larder(tmp_path)
    with Client(l) as c:
        c.send(build_request("GET", origin.url("/cut")))
        try:
            r = c.read_response()
        except (EOFError, ConnectionResetError):
            pass
        else:
            if r.framing == "close":
                assert len(r.body) < len(body), "truncated body delivered as if whole"
            else:
                raise AssertionError(f"a truncated upstream body was delivered as a complete response: {r!r}")
