"""b: message bodies in both directions, under every framing (RFC 9112 s6, s7)."""

import hashlib
import socket

import pytest

from harness import (Client, Download, GatedBody, Larder, Response, build_request, curl, random_bytes, raw_request,
                     parse_response)


def assert_single_framing(req):
    """RFC 9112 s6.2/s6.3: a forwarded request carries Content-Length or chunked, never both."""
    assert not (req.has("content-length") and req.has("transfer-encoding")), req.headers


def test_request_body_content_length(tmp_path, origin):
    payload = random_bytes(1 << 20, seed=1)
    l = Larder(tmp_path)
    r = Client(l).request("POST", origin.url("/upload"), [("Content-Type", "application/octet-stream")], payload)
    assert r.status == 200, r
    req = origin.wait_for_requests(1)[0]
    assert req.body_len == len(payload) and req.body == payload
    assert req.header("content-length") == str(len(payload))
    assert_single_framing(req)


def test_request_body_chunked_with_trailers(tmp_path, origin):
    chunks = [b"first chunk|", random_bytes(70000, seed=2), b"|", b"last"]
    l = Larder(tmp_path)
    with Client(l) as c:
        c.send(build_request("PUT", origin.url("/chunked"), [("Content-Type", "application/octet-stream")],
                             chunked=chunks, trailers=[("X-Checksum", "abc")]))
        r = c.read_response("PUT")
    assert r.status == 200, r
    req = origin.wait_for_requests(1)[0]
    # larder may forward chunked as is or re-frame it with a Content-Length; either way the bytes match.
    assert req.body == b"".join(chunks)
    assert_single_framing(req)
    if not req.chunked:
        assert req.header("content-length") == str(len(req.body))


def test_response_chunked_with_trailers_to_http11_client(tmp_path, origin):
    pieces = [b"alpha ", b"beta ", random_bytes(100000, seed=3), b" omega"]
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream"), ("Trailer", "X-Trailer")],
                            body=pieces, framing="chunked", trailers=[("X-Trailer", "done")], chunk_delay=0.01))
    l = Larder(tmp_path)
    r = Client(l).request("GET", origin.url("/chunked-response"))
    assert r.status == 200, r
    assert r.body == b"".join(pieces)
    if r.framing == "chunked":
        # RFC 9110 s6.5: trailers survive when the chunked framing does.
        assert r.trailer("x-trailer") == "done", f"trailers lost: {r.trailers}"
    else:
        assert r.framing in ("length", "close"), r


def test_response_chunked_to_http10_client(tmp_path, origin):
    pieces = [b"one ", b"two ", b"three"]
    origin.respond(Response(body=pieces, framing="chunked", trailers=[("X-T", "1")]))
    l = Larder(tmp_path)
    data = raw_request(l, f"GET {origin.url('/c10')} HTTP/1.0\r\nHost: {origin.addr}\r\n\r\n".encode())
    r = parse_response(data)
    assert r.status == 200, r
    assert not r.has("transfer-encoding"), "RFC 9112 s6.1: never chunked to an HTTP/1.0 recipient"
    assert r.body == b"one two three", data[:400]


@pytest.mark.parametrize("client_version", ["HTTP/1.0", "HTTP/1.1"])
def test_response_delimited_by_close(tmp_path, origin, client_version):
    payload = random_bytes(200000, seed=4)
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream")], body=payload,
                            framing="close", drip=16384))
    l = Larder(tmp_path)
    with Client(l) as c:
        c.send(build_request("GET", origin.url("/eof"), version=client_version))
        r = c.read_response()
    assert r.status == 200, r
    assert r.body == payload, f"framing={r.framing} got {len(r.body)} of {len(payload)} bytes"
    if client_version == "HTTP/1.0":
        assert not r.has("transfer-encoding")


def test_expect_100_continue(tmp_path, origin):
    payload = random_bytes(50000, seed=5)
    l = Larder(tmp_path)
    with Client(l, timeout=5) as c:
        c.send(build_request("POST", origin.url("/expect"), [("Expect", "100-continue"),
                                                             ("Content-Length", str(len(payload)))]))
        # RFC 9110 s10.1.1: the client waits for 100 Continue (or a final status) before the body.
        try:
            first = c.read_response("POST", return_interim=True)
        except socket.timeout:
            raise AssertionError("no 100 Continue (nor a final status) within 5 s of Expect: 100-continue")
        assert first.status == 100, f"expected 100 Continue before the body, got {first!r}"
        c.send(payload)
        r = c.read_response("POST")
    assert r.status == 200, r
    req = origin.wait_for_requests(1)[0]
    assert req.body == payload


def test_curl_post_with_expect(tmp_path, origin):
    payload = random_bytes(2 << 20, seed=6)
    data = tmp_path / "post.bin"
    data.write_bytes(payload)
    l = Larder(tmp_path)
    p = curl(l, origin.url("/curl-post"), "--data-binary", f"@{data}", "-H", "Expect: 100-continue",
             "-H", "Content-Type: application/octet-stream", "-w", "\\n%{http_code}")
    assert p.returncode == 0, p.stderr
    assert p.stdout.endswith(b"\n200"), p.stdout[-200:]
    req = origin.wait_for_requests(1)[0]
    assert req.method == "POST" and req.body_len == len(payload) and req.body == payload


@pytest.mark.parametrize("cacheable", [True, False])
@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_head_reaches_the_client_while_the_body_waits(tmp_path, origin, framing, cacheable):
    """larder holds a response head back while the read that brought it is parsed, so that head and
    body leave in one write; a head that came alone must still go out when that read is done, not
    when the first body byte arrives (a stream or a slow origin would keep the client waiting)."""
    g = GatedBody(random_bytes(4096, seed=21), stops=[0])
    cc = "max-age=300" if cacheable else "no-store"
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream"), ("Cache-Control", cc)], body=g,
                            length=g.length, framing=framing))
    l = Larder(tmp_path)
    d = Download(l, origin.url(f"/head-first-{framing}-{cacheable}"), expect=g.data)
    assert g.reached(0).wait(10), "the origin never sent its head"
    head = d.wait_head(timeout=10)  # the body is still held at the origin
    assert head.status == 200 and d.nbytes == 0, d
    g.release()
    d.join()
    assert d.complete and d.nbytes == g.length and d.first_mismatch is None, d


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_large_response_sha256(tmp_path, origin, framing):
    size = 20 << 20
    payload = random_bytes(size, seed=9)
    want = hashlib.sha256(payload).hexdigest()
    blocks = [payload[i:i + 65536] for i in range(0, size, 65536)]
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream")], body=blocks, length=size,
                            framing=framing))
    l = Larder(tmp_path)
    with Client(l, timeout=30) as c:
        c.send_request("GET", origin.url("/big"))
        r = c.read_head()
        assert r.status == 200, r
        h = hashlib.sha256()
        n = 0
        for piece in c.iter_body(r):
            h.update(piece)
            n += len(piece)
    assert n == size
    assert h.hexdigest() == want
