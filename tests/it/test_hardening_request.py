"""Hardening, request side: larder refuses hostile HTTP/1.1 requests and never smuggles.

Every case sends raw bytes (absolute-form targets pointing at a scripted Origin) followed, in the SAME
send, by a second, valid request for /smuggled. A refused request must get exactly one short text/plain
error with `Connection: close`, then EOF: larder reads nothing more from that connection, so the origin
sees nothing at all (not even a connection). A request larder accepts must reach the origin as exactly
one well-formed request, and then the follow-up is an ordinary pipelined request that is forwarded too.

Row ids name the RFC section the rule comes from (RFC 9112 unless said otherwise).
"""

import re

import pytest

from harness import Client, Larder, exchange_raw, fetch, parse_response

FOLLOW_PATH = "/smuggled"


def follow_up(origin) -> bytes:
    """A valid request appended after the hostile one: it must never be read after a refusal."""
    return f"GET {origin.url(FOLLOW_PATH)} HTTP/1.1\r\nHost: {origin.addr}\r\nConnection: close\r\n\r\n".encode()


def fill(tpl: bytes, origin) -> bytes:
    """{U} = http://127.0.0.1:PORT (no trailing slash), {A} = 127.0.0.1:PORT."""
    return tpl.replace(b"{U}", f"http://{origin.addr}".encode()).replace(b"{A}", origin.addr.encode())


def assert_error_page(r, statuses, reason=None):
    """A larder error: status, Connection: close, text/plain, one short line "larder: <reason>"."""
    assert r.status in statuses, r
    assert "close" in r.tokens("connection"), f"an error that ends the connection must say so: {r.headers}"
    assert (r.header("content-type") or "").startswith("text/plain"), r.headers
    assert r.text.startswith("larder: ") and r.text.endswith("\n") and r.text.count("\n") == 1, r.text
    assert len(r.body) < 600, f"error body is not short: {len(r.body)} bytes"
    if reason:
        assert reason in r.text.lower(), f"expected {reason!r} in {r.text!r}"


FIELD_LINE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[ \t]*([\x21-\x7e\x80-\xff]([ \t\x21-\x7e\x80-\xff]*"
                        rb"[\x21-\x7e\x80-\xff])?)?[ \t]*$")


def assert_well_formed_head(raw: bytes):
    """What larder sends upstream: CRLF lines only, a clean request line, token ":" field-value lines
    (RFC 9112 s2.1, s3, s5.1; RFC 9110 s5.5), no bare CR/LF, NUL or other CTL anywhere."""
    assert raw.endswith(b"\r\n\r\n"), raw[-40:]
    lines = raw[:-4].split(b"\r\n")
    for ln in lines:
        assert b"\r" not in ln and b"\n" not in ln, f"bare CR/LF in forwarded head: {ln!r}"
    assert re.match(rb"^[A-Z]+ \S+ HTTP/1\.1$", lines[0]), lines[0]
    for ln in lines[1:]:
        assert FIELD_LINE.match(ln), f"malformed field line forwarded: {ln!r}"


def assert_refused(l, origin, data: bytes, statuses, reason=None):
    """One error response then EOF; the appended follow-up is never read; the origin sees nothing."""
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert len(resps) == 1, f"expected exactly one response then EOF, got {resps} + {rest[:200]!r}"
    assert rest == b"", f"bytes after the error response: {rest[:200]!r}"
    assert_error_page(resps[0], statuses, reason)
    assert origin.connections == 0 and not origin.requests, f"origin was contacted: {origin.requests}"
    return resps[0]


def assert_forwarded(l, origin, data: bytes, target: str, body: bytes = b""):
    """Accepted: the origin gets exactly this request (well-formed, with `body`) and then the follow-up,
    each once; the client gets both answers in order."""
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b"", rest[:200]
    assert [r.status for r in resps] == [200, 200], resps
    reqs = origin.wait_for_requests(2)
    assert [q.target for q in reqs] == [target, FOLLOW_PATH], reqs
    assert len(origin.requests) == 2, origin.requests
    for q in reqs:
        assert_well_formed_head(q.raw_head)
    assert reqs[0].body == body, reqs[0]
    assert resps[0].text == f"{reqs[0].method} {target}\n", resps[0]
    return reqs[0]


# ---------------------------------------------------------------------------------------------------
# Message framing: Content-Length and Transfer-Encoding (RFC 9112 s6)

P = b"POST {U}/p HTTP/1.1\r\nHost: {A}\r\n"
P10 = b"POST {U}/p HTTP/1.0\r\n"

FRAMING_REFUSED = [
    ("s6.1-cl-with-te", P + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("s6.1-te-with-cl", P + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", {400}),
    ("s6.1-cl-0-with-te", P + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", {400}),
    ("s6.3-two-different-cl", P + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", {400}),
    ("s6.3-cl-list-5-6", P + b"Content-Length: 5, 6\r\n\r\nhello!", {400}),
    ("s6.3-cl-plus-sign", P + b"Content-Length: +5\r\n\r\nhello", {400}),
    ("s6.3-cl-negative", P + b"Content-Length: -1\r\n\r\n", {400}),
    ("s6.3-cl-hex", P + b"Content-Length: 0x10\r\n\r\n0123456789abcdef", {400}),
    ("s6.3-cl-20-digits", P + b"Content-Length: 99999999999999999999\r\n\r\nhello", {400}),
    ("s6.3-cl-2pow64", P + b"Content-Length: 18446744073709551616\r\n\r\nhello", {400}),
    ("s6.3-cl-space-inside", P + b"Content-Length: 5 5\r\n\r\nhello", {400}),
    ("s6.3-cl-empty", P + b"Content-Length: \r\n\r\n", {400}),
    ("s6.3-cl-trailing-junk", P + b"Content-Length: 5x\r\n\r\nhello", {400}),
    ("s6.1-te-chunked-chunked", P + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", {400}),
    # RFC 9112 s6.1: a coding larder does not apply is refused (400, or 501 "not implemented").
    ("s6.1-te-gzip-chunked", P + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    # s6.3 item 4: chunked not last in a request: "MUST respond with 400 and then close".
    ("s6.3-te-chunked-gzip", P + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", {400}),
    ("s6.1-te-identity", P + b"Transfer-Encoding: identity\r\n\r\n", {400, 501}),
    ("s6.1-te-unknown-501", P + b"Transfer-Encoding: foo\r\n\r\n0\r\n\r\n", {501}),
    ("s6.1-te-unknown-then-chunked", P + b"Transfer-Encoding: foo, chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-two-lines", P + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", {400}),
    ("s6.1-te-two-lines-gzip", P + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     {400, 501}),
    ("s6.1-te-in-http10", P10 + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", {400}),
    ("s6.1-te-in-http10-with-cl", P10 + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello", {400}),
    # obs-text / CTL glued to the coding: must not be read as "chunked" (RFC 9110 s5.5, s5.6.2).
    ("s6.1-te-nbsp-chunked", P + b"Transfer-Encoding: \xa0chunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-chunked-nbsp", P + b"Transfer-Encoding: chunked\xa0\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-xff-chunked", P + b"Transfer-Encoding: \xffchunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-vt-chunked", P + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-chunked-ff", P + b"Transfer-Encoding: chunked\x0c\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-chunk", P + b"Transfer-Encoding: chunk\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-quoted-chunked", P + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-chunked-param", P + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", {400, 501}),
    ("s6.1-te-empty", P + b"Transfer-Encoding: \r\n\r\n0\r\n\r\n", {400, 501}),
]


@pytest.mark.parametrize("tpl,statuses", [pytest.param(d, s, id=n) for n, d, s in FRAMING_REFUSED])
def test_framing_refused(tmp_path, origin, tpl, statuses):
    l = Larder(tmp_path)
    assert_refused(l, origin, fill(tpl, origin), statuses)


FRAMING_ACCEPTED = [
    # RFC 9112 s7: coding names are case-insensitive; OWS around a field value is not part of it.
    ("s7-te-Chunked-case-insensitive", P + b"Transfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("s7-te-CHUNKED", P + b"Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("rfc9110-s5.5-te-leading-ows", P + b"Transfer-Encoding:\t  chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("rfc9110-s5.5-te-trailing-sp", P + b"Transfer-Encoding: chunked  \r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    ("rfc9110-s5.5-cl-ows", P + b"Content-Length:  5 \r\n\r\nhello"),
    ("s6.2-cl-leading-zeros", P + b"Content-Length: 005\r\n\r\nhello"),
    ("s7.1-chunk-size-uppercase-hex", P + b"Transfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-chunk-ext-ignored", P + b"Transfer-Encoding: chunked\r\n\r\n5;name=value\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-chunk-ext-quoted", P + b"Transfer-Encoding: chunked\r\n\r\n5;x=\"q s;t\"\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-chunk-ext-two-names", P + b"Transfer-Encoding: chunked\r\n\r\n5;a;b\r\nhello\r\n0\r\n\r\n"),
]


# Valid by the RFCs, refused by larder: llhttp 8.1 (strict mode) does not parse these, and larder
# does not second-guess its parser (README, "Known limitations"). What matters is that the refusal is
# clean: no desync, the origin never sees a complete request.
FRAMING_VALID_BUT_REFUSED = [
    # RFC 9110 s5.5 allows trailing HTAB in a field value; llhttp does not take "chunked\t" as chunked,
    # so larder refuses the request rather than read its body as the next request.
    ("rfc9110-s5.5-te-trailing-htab", P + b"Transfer-Encoding: chunked\t\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    # A quoted-pair (RFC 9110 s5.6.4) inside a quoted chunk-ext-val.
    ("s7.1.1-chunk-ext-quoted-pair", P + b"Transfer-Encoding: chunked\r\n\r\n5;x=\"q\\\"s\"\r\nhello\r\n0\r\n\r\n"),
    # A second extension after one with a value.
    ("s7.1.1-chunk-ext-two-with-values", P + b"Transfer-Encoding: chunked\r\n\r\n5;a=b;c=d\r\nhello\r\n0\r\n\r\n"),
]


@pytest.mark.parametrize("tpl", [pytest.param(d, id=n) for n, d in FRAMING_VALID_BUT_REFUSED])
def test_framing_valid_but_refused_cleanly(tmp_path, origin, tpl):
    l = Larder(tmp_path)
    assert_body_refused(l, origin, fill(tpl, origin))


@pytest.mark.parametrize("tpl", [pytest.param(d, id=n) for n, d in FRAMING_ACCEPTED])
def test_framing_accepted(tmp_path, origin, tpl):
    l = Larder(tmp_path)
    q = assert_forwarded(l, origin, fill(tpl, origin), "/p", b"hello")
    # Exactly one framing goes upstream: never both (RFC 9112 s6.2), never a list.
    assert len(q.headers_named("content-length")) + len(q.headers_named("transfer-encoding")) == 1, q.headers
    if q.has("transfer-encoding"):
        assert q.tokens("transfer-encoding") == ["chunked"], q.headers
    else:
        assert q.header("content-length") == "5", q.headers


@pytest.mark.parametrize("te", [
    pytest.param(b"chunked\t", id="rfc9110-s5.5-te-trailing-htab"),
    pytest.param(b"chunked\t ", id="rfc9110-s5.5-te-trailing-htab-sp"),
])
def test_te_framing_disagreement_never_reaches_origin(tmp_path, origin, te):
    # larder and its parser must agree on the framing before anything goes upstream. With a pooled
    # upstream connection the request head is written at once, so if larder's view ("chunked", after
    # trimming OWS) and llhttp's (no chunked coding recognised: no body) differ, the origin gets a
    # complete POST without its body while the client's connection is dropped without an answer.
    # Acceptable: the request forwarded with its body, or refused with nothing complete upstream.
    # One loop: the next client connection lands where the pooled upstream connection is.
    l = Larder(tmp_path, "--workers", "1")
    warm = fetch(l, origin.url("/warm"))  # leaves an idle pooled connection to the origin
    assert warm.status == 200
    data = fill(P + b"Transfer-Encoding: " + te + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n", origin)
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b""
    if [r.status for r in resps] == [200, 200]:
        reqs = origin.wait_for_requests(3)
        assert [q.target for q in reqs] == ["/warm", "/p", FOLLOW_PATH] and reqs[1].body == b"hello", reqs
        return
    assert l.stop() == 0  # closes larder's pooled connections: the origin has then read all it ever gets
    origin.wait_for_closed(origin.connections)
    assert [q.target for q in origin.requests] == ["/warm"], \
        f"origin received a request the client never sent in that form: {origin.requests[1:]}"
    assert len(resps) == 1, f"no answer at all to the client: {resps}"
    assert_error_page(resps[0], {400, 501})


@pytest.mark.parametrize("dup", [
    pytest.param(b"Content-Length: 5, 5\r\n", id="rfc9110-s8.6-cl-list-5-5"),
    pytest.param(b"Content-Length: 5\r\nContent-Length: 5\r\n", id="rfc9110-s8.6-cl-two-lines-5"),
])
def test_identical_content_lengths(tmp_path, origin, dup):
    # RFC 9110 s8.6 lets a recipient either reject "5, 5" or treat it as 5. larder refuses it with 400
    # (llhttp strict mode refuses a list and a repeated field alike); if that ever changes, what goes
    # upstream must be exactly one request with one "Content-Length: 5".
    l = Larder(tmp_path)
    data = fill(P + dup + b"\r\nhello", origin)
    resps, rest = exchange_raw(l, data + follow_up(origin))
    if len(resps) == 1:
        assert rest == b""
        assert_error_page(resps[0], {400})
        assert origin.connections == 0
        return
    assert [r.status for r in resps] == [200, 200], resps
    q = origin.wait_for_requests(2)[0]
    assert q.target == "/p" and q.body == b"hello"
    assert q.headers_named("content-length") == ["5"], q.headers
    assert_well_formed_head(q.raw_head)


# ---------------------------------------------------------------------------------------------------
# Field syntax (RFC 9112 s2.2, s5; RFC 9110 s5.1, s5.5)

G = b"GET {U}/g HTTP/1.1\r\nHost: {A}\r\n"

FIELDS_REFUSED = [
    ("s5.2-obs-fold-sp", G + b"X-A: a\r\n b\r\n\r\n"),
    ("s5.2-obs-fold-htab", G + b"X-A: a\r\n\tb\r\n\r\n"),
    ("s5.2-obs-fold-empty-first", G + b"X-A:\r\n b\r\n\r\n"),
    ("s5.2-obs-fold-of-host", b"GET {U}/g HTTP/1.1\r\nHost:\r\n {A}\r\n\r\n"),
    ("s2.2-ws-before-first-field", b"GET {U}/g HTTP/1.1\r\n X-A: b\r\nHost: {A}\r\n\r\n"),
    ("s5.1-sp-before-colon", G + b"X-A : b\r\n\r\n"),
    ("s5.1-htab-before-colon", G + b"X-A\t: b\r\n\r\n"),
    ("s5.1-sp-before-colon-te", P + b"Transfer-Encoding : chunked\r\nContent-Length: 5\r\n\r\nhello"),
    ("s5.1-sp-before-colon-cl", P + b"Content-Length : 5\r\n\r\nhello"),
    ("s2.2-bare-cr-in-value", G + b"X-A: a\rb\r\n\r\n"),
    ("s2.2-bare-cr-line-end", G + b"X-A: a\r\r\n\r\n"),
    ("s2.2-cr-alone-as-line-end", G + b"X-A: a\rX-B: b\r\n\r\n"),
    ("rfc9110-s5.5-nul-in-value", G + b"X-A: a\x00b\r\n\r\n"),
    ("rfc9110-s5.5-ctl-01-in-value", G + b"X-A: a\x01b\r\n\r\n"),
    ("rfc9110-s5.5-ctl-1f-in-value", G + b"X-A: a\x1fb\r\n\r\n"),
    ("rfc9110-s5.5-del-in-value", G + b"X-A: a\x7fb\r\n\r\n"),
    ("rfc9110-s5.5-nul-in-host", b"GET {U}/g HTTP/1.1\r\nHost: {A}\x00.evil\r\n\r\n"),
    ("rfc9110-s5.1-nul-in-name", G + b"X-\x00A: b\r\n\r\n"),
    ("rfc9110-s5.1-ctl-in-name", G + b"X-\x01A: b\r\n\r\n"),
    ("rfc9110-s5.1-del-in-name", G + b"X-\x7fA: b\r\n\r\n"),
    ("rfc9110-s5.1-obs-text-in-name", G + b"X-\xe9A: b\r\n\r\n"),
    ("rfc9110-s5.1-empty-name", G + b": x\r\n\r\n"),
    ("rfc9110-s5.1-sp-in-name", G + b"X A: b\r\n\r\n"),
] + [
    # RFC 9110 s5.6.2: field-name = token; delimiters are not tchar.
    (f"rfc9110-s5.6.2-delimiter-{ord(c):02x}-{c}-in-name", G + b"X" + c.encode() + b"A: b\r\n\r\n")
    for c in '"(),/;<=>?@[\\]{}'
] + [
    ("s5-line-without-colon", G + b"NoColonHere\r\n\r\n"),
    ("s5-name-only-cr", G + b"X-A\r\n\r\n"),
]


@pytest.mark.parametrize("tpl", [pytest.param(d, id=n) for n, d in FIELDS_REFUSED])
def test_field_syntax_refused(tmp_path, origin, tpl):
    l = Larder(tmp_path)
    assert_refused(l, origin, fill(tpl, origin), {400})


def test_obs_text_in_value_is_accepted(tmp_path, origin):
    # RFC 9110 s5.5: field-vchar includes obs-text (0x80-0xFF); it is opaque data, forwarded unchanged.
    l = Larder(tmp_path)
    q = assert_forwarded(l, origin, fill(G + b"X-Latin: caf\xe9 \xff\r\n\r\n", origin), "/g")
    assert b"X-Latin: caf\xe9 \xff\r\n" in q.raw_head, q.raw_head


@pytest.mark.parametrize("tpl,refused", [
    pytest.param(b"GET {U}/lf HTTP/1.1\nHost: {A}\n\n", True, id="s2.2-bare-lf-everywhere"),
    pytest.param(b"GET {U}/lf HTTP/1.1\r\nHost: {A}\nX-A: b\r\n\r\n", True, id="s2.2-bare-lf-one-field"),
    pytest.param(b"GET {U}/lf HTTP/1.1\nHost: {A}\r\n\r\n", False, id="s2.2-bare-lf-request-line"),
    pytest.param(b"GET {U}/lf HTTP/1.1\r\nHost: {A}\r\n\n", False, id="s2.2-bare-lf-empty-line"),
])
def test_bare_lf_never_desyncs(tmp_path, origin, tpl, refused):
    # RFC 9112 s2.2: a recipient MAY recognise a single LF as a line terminator. What matters is that the
    # follow-up is either never read (refusal) or read as exactly one request at the right place
    # (acceptance), never as part of something else. larder (llhttp strict) refuses a bare LF after a
    # field line but accepts one after the request line and as the empty line that ends the head;
    # `refused` pins that, so a change is noticed.
    l = Larder(tmp_path)
    data = fill(tpl, origin)
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b""
    if len(resps) == 1:
        assert_error_page(resps[0], {400})
        assert origin.connections == 0
    else:
        assert [r.status for r in resps] == [200, 200], resps
        reqs = origin.wait_for_requests(2)
        assert [q.target for q in reqs] == ["/lf", FOLLOW_PATH]
        for q in reqs:
            assert_well_formed_head(q.raw_head)
    assert (len(resps) == 1) == refused, "larder's bare-LF behaviour changed: update the pinned expectation"


@pytest.mark.parametrize("tpl,refused", [
    pytest.param(b"GET  {U}/ws HTTP/1.1\r\nHost: {A}\r\n\r\n", False, id="s3-double-sp-after-method"),
    pytest.param(b"GET {U}/ws  HTTP/1.1\r\nHost: {A}\r\n\r\n", False, id="s3-double-sp-before-version"),
])
def test_request_line_extra_spaces_never_desync(tmp_path, origin, tpl, refused):
    # RFC 9112 s3: recipients MAY parse the request-line on whitespace-delimited word boundaries. llhttp
    # tolerates repeated SP; larder then forwards a request-line it rebuilt (single SP), which is fine.
    l = Larder(tmp_path)
    resps, rest = exchange_raw(l, fill(tpl, origin) + follow_up(origin))
    assert rest == b""
    if refused:
        assert len(resps) == 1
        assert_error_page(resps[0], {400})
        assert origin.connections == 0
    else:
        assert [r.status for r in resps] == [200, 200], resps
        reqs = origin.wait_for_requests(2)
        assert [q.target for q in reqs] == ["/ws", FOLLOW_PATH]
        for q in reqs:
            assert_well_formed_head(q.raw_head)


# ---------------------------------------------------------------------------------------------------
# Chunked request bodies (RFC 9112 s7.1). The head is valid, so larder may already have forwarded it
# when it meets the bad chunk: then it can only abort. Either way the client gets one 400 or a plain
# close, the origin never receives a complete request, and the follow-up is never read.

C = P + b"Transfer-Encoding: chunked\r\n\r\n"

CHUNKED_REFUSED = [
    ("s7.1-size-not-hex", C + b"zz\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-empty", C + b"\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-leading-sp", C + b" 5\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-trailing-sp", C + b"5 \r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-leading-htab", C + b"\t5\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-0x-prefix", C + b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-negative", C + b"-5\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-17-hex-digits", C + b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-ffff-overflow", C + b"ffffffffffffffffff\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-size-bare-lf", C + b"5\nhello\r\n0\r\n\r\n"),
    ("s7.1-data-longer-than-size", C + b"5\r\nhelloX\r\n0\r\n\r\n"),
    ("s7.1-data-missing-crlf", C + b"5\r\nhello0\r\n\r\n"),
    ("s7.1-data-bare-lf", C + b"5\r\nhello\n0\r\n\r\n"),
    ("s7.1-data-bare-cr", C + b"5\r\nhello\r0\r\n\r\n"),
    ("s7.1.1-ext-empty-name", C + b"5;\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-ext-name-eq-nothing", C + b"5;a=\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-ext-unterminated-quote", C + b"5;a=\"x\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-ext-ctl", C + b"5;a\x01b\r\nhello\r\n0\r\n\r\n"),
    ("s7.1.1-ext-nul", C + b"5;a=b\x00\r\nhello\r\n0\r\n\r\n"),
    ("s7.1-last-chunk-missing", C + b"5\r\nhello\r\n"),  # the follow-up then stands where a size should
    ("s7.1-trailer-section-unterminated", C + b"5\r\nhello\r\n0\r\nX-T: 1\r\n"),
    ("s7.1.2-trailer-obs-fold", C + b"5\r\nhello\r\n0\r\nX-T: 1\r\n 2\r\n\r\n"),
    ("s7.1.2-trailer-nul", C + b"5\r\nhello\r\n0\r\nX-T: a\x00b\r\n\r\n"),
    ("s7.1.2-trailer-sp-before-colon", C + b"5\r\nhello\r\n0\r\nX-T : 1\r\n\r\n"),
]


def assert_body_refused(l, origin, data: bytes):
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert len(resps) <= 1 and rest == b"", f"expected one 400 or a close: {resps} + {rest[:200]!r}"
    if resps:
        assert_error_page(resps[0], {400})
    # Whatever reached the origin was cut short: it never saw a complete request, nor the follow-up.
    origin.wait_for_closed(origin.connections)
    assert not origin.requests, f"origin received a complete request: {origin.requests}"


@pytest.mark.parametrize("tpl", [pytest.param(d, id=n) for n, d in CHUNKED_REFUSED])
def test_chunked_body_refused(tmp_path, origin, tpl):
    l = Larder(tmp_path)
    assert_body_refused(l, origin, fill(tpl, origin))


def test_chunked_last_chunk_missing_then_half_close(tmp_path, origin):
    # RFC 9112 s8: a body cut short by the client's close is incomplete; it must not be completed
    # upstream as if it had ended.
    l = Larder(tmp_path)
    with Client(l) as c:
        c.send(fill(C + b"5\r\nhello\r\n", origin))
        c.shutdown_write()
        closed, got = c.wait_closed(10)
    assert closed
    if got:
        assert_error_page(parse_response(got), {400})
    origin.wait_for_closed(origin.connections)
    assert not origin.requests, origin.requests


def test_long_chunk_extension(tmp_path, origin):
    # RFC 9112 s7.1.1: a recipient MUST ignore unrecognised chunk extensions, but "a server ought to
    # limit the total length of chunk extensions received". 64 KiB of extension: either refused
    # (400/413/431, or a close), or ignored; it must never be copied upstream nor desync the stream.
    l = Larder(tmp_path)
    ext = b";" + b"a" * 16384 + b"=" + b"b" * (48 * 1024)
    data = fill(C + b"5" + ext + b"\r\nhello\r\n0\r\n\r\n", origin)
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b""
    if len(resps) <= 1:
        if resps:
            assert_error_page(resps[0], {400, 413, 431})
        origin.wait_for_closed(origin.connections)
        assert not origin.requests, origin.requests
        return
    assert [r.status for r in resps] == [200, 200], resps
    reqs = origin.wait_for_requests(2)
    assert [q.target for q in reqs] == ["/p", FOLLOW_PATH] and reqs[0].body == b"hello"
    assert origin.connections >= 1
    # The origin's reader drops extensions; check larder did not send them by looking at what it would
    # have had to buffer: the forwarded body was re-framed (no 64 KiB chunk-size line survived).
    assert reqs[0].body_len == 5


@pytest.mark.parametrize("trailer", [
    pytest.param(b"Content-Length: 40\r\n", id="s7.1.2-trailer-content-length"),
    pytest.param(b"Transfer-Encoding: chunked\r\n", id="s7.1.2-trailer-transfer-encoding"),
    pytest.param(b"Content-Length: 40\r\nTransfer-Encoding: identity\r\nHost: evil.test\r\n",
                 id="s7.1.2-trailer-cl-te-host"),
])
def test_trailer_fields_never_change_framing(tmp_path, origin, trailer):
    # RFC 9112 s7.1.2 / RFC 9110 s6.5.1: framing fields in a trailer section are not allowed and must
    # never be merged into the header section; the body is "hello", and the follow-up after the trailer
    # section is a separate request (or never read, if larder refuses such trailers).
    l = Larder(tmp_path)
    data = fill(C + b"5\r\nhello\r\n0\r\n" + trailer + b"\r\n", origin)
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b""
    if len(resps) <= 1:
        if resps:
            assert_error_page(resps[0], {400})
        origin.wait_for_closed(origin.connections)
        assert not origin.requests
        return
    assert [r.status for r in resps] == [200, 200], resps
    reqs = origin.wait_for_requests(2)
    assert [q.target for q in reqs] == ["/p", FOLLOW_PATH]
    q = reqs[0]
    assert q.body == b"hello"
    assert q.header("host") == origin.addr and q.headers_named("content-length") in ([], ["5"]), q.headers
    bad = {k.lower() for k, _ in q.trailers} & {"content-length", "transfer-encoding", "host"}
    assert not bad, f"framing/routing fields forwarded in the trailer section: {q.trailers}"


# ---------------------------------------------------------------------------------------------------
# Request line and request-target (RFC 9112 s3, s3.2; RFC 9110 s4.2)

TARGET_REFUSED = [
    ("s3.2-raw-sp-in-target", b"GET {U}/a b HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-htab-in-target", b"GET {U}/a\tb HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-ctl-in-target", b"GET {U}/a\x01b HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-nul-in-target", b"GET {U}/a\x00b HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-del-in-target", b"GET {U}/a\x7fb HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-non-ascii-in-target", b"GET {U}/caf\xc3\xa9 HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-bare-cr-in-target", b"GET {U}/a\rb HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2-fragment", b"GET {U}/a#frag HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc9110-s4.2.4-userinfo", b"GET http://user:pass@{A}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc9110-s4.2.4-empty-userinfo", b"GET http://@{A}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc9110-s4.2.4-userinfo-phish", b"GET http://{A}@evil.test/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc3986-backslash-in-authority", b"GET http://{A}\\@evil.test/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc3986-pct-in-host", b"GET http://127.0.0.%31:1/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc3986-bad-pct-in-path", b"GET {U}/a%zz HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc3986-port-overflow", b"GET http://127.0.0.1:99999/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc3986-two-ports", b"GET http://{A}:80/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc3986-decimal-ip", b"GET http://2130706433:1/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc9110-s4.2-no-authority", b"GET http:/x HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("rfc9110-s4.2-empty-host", b"GET http:///x HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2.2-scheme-ftp", b"GET ftp://{A}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400, 501}),
    ("s3.2.2-scheme-https", b"GET https://{A}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400, 501}),
    ("s3.2.2-scheme-file", b"GET file:///etc/passwd HTTP/1.1\r\nHost: {A}\r\n\r\n", {400, 501}),
    ("s3.2.2-scheme-gopher", b"GET gopher://{A}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400, 501}),
    ("s3.2.2-scheme-ws", b"GET ws://{A}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400, 501}),
    ("s3.2.4-asterisk-get", b"GET * HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3.2.3-authority-form-get", b"GET {A} HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3-trailing-sp", b"GET {U}/ HTTP/1.1 \r\nHost: {A}\r\n\r\n", {400}),
    ("s3-htab-separator", b"GET\t{U}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s3-lowercase-method", b"get {U}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", {400, 501}),
    ("s2.3-lowercase-version", b"GET {U}/ http/1.1\r\nHost: {A}\r\n\r\n", {400}),
    ("s2.3-version-2", b"GET {U}/ HTTP/2.0\r\nHost: {A}\r\n\r\n", {400, 505}),
    ("s2.3-version-1.2", b"GET {U}/ HTTP/1.2\r\nHost: {A}\r\n\r\n", {400, 505}),
    ("s2.3-version-two-digits", b"GET {U}/ HTTP/1.10\r\nHost: {A}\r\n\r\n", {400, 505}),
    ("s3-no-version", b"GET {U}/\r\nHost: {A}\r\n\r\n", {400, 505}),
]


@pytest.mark.parametrize("tpl,statuses", [pytest.param(d, s, id=n) for n, d, s in TARGET_REFUSED])
def test_request_line_refused(tmp_path, origin, tpl, statuses):
    l = Larder(tmp_path)
    assert_refused(l, origin, fill(tpl, origin), statuses)


def test_origin_form_names_forward_proxy(tmp_path, origin):
    # RFC 9112 s3.2.1: origin-form is for origin servers; larder is a forward proxy and says so.
    l = Larder(tmp_path)
    r = assert_refused(l, origin, fill(b"GET /x HTTP/1.1\r\nHost: {A}\r\n\r\n", origin), {400})
    assert "forward proxy" in r.text, r.text


def test_scheme_is_case_insensitive(tmp_path, origin):
    # RFC 9110 s4.2.3 / RFC 3986 s3.1: "HTTP://" is the http scheme.
    l = Larder(tmp_path)
    q = assert_forwarded(l, origin, fill(b"GET HTTP://{A}/case HTTP/1.1\r\nHost: {A}\r\n\r\n", origin), "/case")
    assert q.header("host") == origin.addr


def test_options_asterisk_answered_locally(tmp_path, origin):
    # RFC 9110 s9.3.7: "OPTIONS *" to a proxy is about the proxy; the follow-up is then read normally.
    l = Larder(tmp_path)
    resps, rest = exchange_raw(l, fill(b"OPTIONS * HTTP/1.1\r\nHost: {A}\r\n\r\n", origin) + follow_up(origin))
    assert rest == b"" and [r.status for r in resps] == [200, 200], resps
    reqs = origin.wait_for_requests(1)
    assert [q.target for q in reqs] == [FOLLOW_PATH]


@pytest.mark.parametrize("limit,length,status", [
    pytest.param(None, 9000, 414, id="s3-default-max-uri-8192"),
    pytest.param("1024", 1100, 414, id="s3-max-uri-1024-over"),
    pytest.param("1024", 900, 200, id="s3-max-uri-1024-under"),
])
def test_uri_length(tmp_path, origin, limit, length, status):
    # RFC 9112 s3: a server that receives a request-target longer than it wishes to parse MUST respond
    # with 414. The limit counts the whole target as sent.
    l = Larder(tmp_path, *(["--max-uri-length", limit] if limit else []))
    base = f"http://{origin.addr}/".encode()
    target = base + b"a" * (length - len(base))
    data = b"GET " + target + b" HTTP/1.1\r\nHost: " + origin.addr.encode() + b"\r\n\r\n"
    if status == 414:
        assert_refused(l, origin, data, {414})
    else:
        assert_forwarded(l, origin, data, target[len(base) - 1:].decode())


# ---------------------------------------------------------------------------------------------------
# Host (RFC 9112 s3.2, s3.2.2)

def test_absolute_uri_authority_wins_over_host(tmp_path, origin):
    # RFC 9112 s3.2.2: a proxy MUST ignore the received Host and send one made from the target.
    l = Larder(tmp_path)
    q = assert_forwarded(l, origin, fill(b"GET {U}/h HTTP/1.1\r\nHost: evil.test:666\r\n\r\n", origin), "/h")
    assert q.headers_named("host") == [origin.addr], q.headers


@pytest.mark.parametrize("tpl", [
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: {A}\r\nHost: evil.test\r\n\r\n", id="s3.2-two-hosts"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: {A}\r\nHost: {A}\r\n\r\n", id="s3.2-two-identical-hosts"),
    # RFC 9112 s3.2: "A server MUST respond with a 400 ... to any request message that contains ... a
    # Host header field with an invalid field value" (Host = uri-host [ ":" port ], RFC 9110 s7.2).
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: {A}, evil.test\r\n\r\n", id="s3.2-invalid-host-list"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: evil test\r\n\r\n", id="s3.2-invalid-host-space"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: evil.test/x\r\n\r\n", id="s3.2-invalid-host-slash"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: user@{A}\r\n\r\n", id="s3.2-invalid-host-userinfo"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\nHost: evil.test:port\r\n\r\n", id="s3.2-invalid-host-port"),
    pytest.param(b"GET {U}/h HTTP/1.0\r\nHost: {A}\r\nHost: evil.test\r\n\r\n", id="s3.2-two-hosts-http10"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\n\r\n", id="s3.2-missing-host-http11"),
    pytest.param(b"GET {U}/h HTTP/1.1\r\nX-A: b\r\n\r\n", id="s3.2-missing-host-http11-with-fields"),
])
def test_host_refused(tmp_path, origin, tpl):
    # "Host: a, b" is not a valid Host (a single uri-host [":" port], RFC 9110 s7.2); larder may refuse
    # it or ignore it in favour of the target, but never route by it: refusal is what it does.
    l = Larder(tmp_path)
    assert_refused(l, origin, fill(tpl, origin), {400})


def test_http10_without_host_gets_host_from_target(tmp_path, origin):
    l = Larder(tmp_path)
    q = assert_forwarded(l, origin, fill(b"GET {U}/h10 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", origin), "/h10")
    assert q.headers_named("host") == [origin.addr], q.headers


# ---------------------------------------------------------------------------------------------------
# CONNECT refused: what follows the head is never interpreted (RFC 9110 s9.3.6)

@pytest.mark.parametrize("head", [
    pytest.param(b"CONNECT {A} HTTP/1.1\r\nHost: {A}\r\n\r\n", id="rfc9110-s9.3.6-port-not-allowed"),
    pytest.param(b"CONNECT {A} HTTP/1.1\r\nHost: {A}\r\nContent-Length: 5\r\n\r\n",
                 id="rfc9110-s9.3.6-port-not-allowed-with-cl"),
])
def test_connect_refused_bytes_after_never_interpreted(tmp_path, origin, head):
    l = Larder(tmp_path)  # connect_ports defaults to 443
    inner = f"GET {origin.url('/via-connect')} HTTP/1.1\r\nHost: {origin.addr}\r\n\r\n".encode()
    r = assert_refused(l, origin, fill(head, origin) + inner, {403}, "not allowed")
    assert "connect" in r.text.lower()


@pytest.mark.parametrize("head", [
    pytest.param(b"CONNECT /x HTTP/1.1\r\nHost: {A}\r\n\r\n", id="s3.2.3-connect-origin-form"),
    pytest.param(b"CONNECT {U}/ HTTP/1.1\r\nHost: {A}\r\n\r\n", id="s3.2.3-connect-absolute-form"),
    pytest.param(b"CONNECT 127.0.0.1 HTTP/1.1\r\nHost: {A}\r\n\r\n", id="s3.2.3-connect-no-port"),
    pytest.param(b"CONNECT user@127.0.0.1:443 HTTP/1.1\r\nHost: {A}\r\n\r\n", id="s3.2.3-connect-userinfo"),
])
def test_connect_malformed_target(tmp_path, origin, head):
    l = Larder(tmp_path, "--connect-ports", f"443 {origin.port}")
    inner = f"GET {origin.url('/via-connect')} HTTP/1.1\r\nHost: {origin.addr}\r\n\r\n".encode()
    assert_refused(l, origin, fill(head, origin) + inner, {400})


# ---------------------------------------------------------------------------------------------------
# Pipelining across a body: the body is never read as a request, a request never eats the next one

def test_cl_body_holding_a_request_is_data(tmp_path, origin):
    # RFC 9112 s6.2: Content-Length bytes are body, whatever they look like.
    l = Larder(tmp_path)
    inner = f"GET {origin.url('/inner')} HTTP/1.1\r\nHost: {origin.addr}\r\n\r\n".encode()
    data = fill(P + b"Content-Length: %d\r\n\r\n" % len(inner), origin) + inner
    q = assert_forwarded(l, origin, data, "/p", inner)
    assert not origin.requests_for("/inner")
    assert q.body == inner


def test_chunked_body_holding_a_request_is_data(tmp_path, origin):
    l = Larder(tmp_path)
    inner = f"GET {origin.url('/inner')} HTTP/1.1\r\nHost: {origin.addr}\r\n\r\n".encode()
    data = fill(C, origin) + b"%x\r\n" % len(inner) + inner + b"\r\n0\r\n\r\n"
    assert_forwarded(l, origin, data, "/p", inner)
    assert not origin.requests_for("/inner")


def test_get_with_body_is_framed(tmp_path, origin):
    # RFC 9110 s9.3.1: content in a GET has no defined semantics, but its framing still holds: the five
    # bytes are never parsed as the start of the next request.
    l = Larder(tmp_path)
    data = fill(b"GET {U}/gb HTTP/1.1\r\nHost: {A}\r\nContent-Length: 5\r\n\r\nGET /", origin)
    resps, rest = exchange_raw(l, data + follow_up(origin))
    assert rest == b""
    # larder may refuse a GET with content (400) or forward it; never a desync.
    if len(resps) == 1:
        assert_error_page(resps[0], {400})
        assert origin.connections == 0
        return
    assert [r.status for r in resps] == [200, 200], resps
    reqs = origin.wait_for_requests(2)
    assert [q.target for q in reqs] == ["/gb", FOLLOW_PATH]
    assert reqs[0].body in (b"GET /", b""), reqs[0]


def test_rejection_counts_and_logs(tmp_path, origin):
    # A refusal is visible to operators: errors_bad_request, client_requests_rejected, one access-log
    # line with no upstream (HIER_NONE/-).
    l = Larder(tmp_path)
    assert_refused(l, origin, fill(P + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", origin), {400})
    l.expect("errors_bad_request", ">=", 1)
    l.expect("client_requests_rejected", ">=", 1)
    line = l.wait_access_log(lambda s: "/400 " in s)[0]
    assert "HIER_NONE/-" in line, line


def test_other_connections_unaffected_by_refusal(tmp_path, origin):
    # A refusal closes only the offending connection: an open keep-alive connection is still served.
    l = Larder(tmp_path)
    with Client(l) as good:
        r = good.request("GET", origin.url("/before"))
        assert r.status == 200
        resps, _ = exchange_raw(l, fill(b"GET {U}/a b HTTP/1.1\r\nHost: {A}\r\n\r\n", origin))
        assert [x.status for x in resps] == [400]
        r = good.request("GET", origin.url("/after"))
        assert r.status == 200 and r.text == "GET /after\n"
    assert [q.target for q in origin.requests] == ["/before", "/after"]
