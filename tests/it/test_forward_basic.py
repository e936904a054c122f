"""b: plain forwarding of absolute-form requests (RFC 9112 s3.2.2, RFC 9110 s7.6)."""

import pytest

from harness import Client, Larder, Response, curl, fetch, parse_response, random_bytes, raw_request, wget

# Fields a proxy must not forward (RFC 9110 s7.6.1: Connection and the fields it lists, plus the
# hop-by-hop fields that predate it; RFC 9112 s3.2.2 for Proxy-Connection as a legacy field).
HOP_BY_HOP_REQUEST = [
    ("Proxy-Connection", "keep-alive"),
    ("Connection", "keep-alive, X-Hop"),
    ("X-Hop", "must not pass"),
    ("Keep-Alive", "timeout=5"),
    ("TE", "trailers"),
    ("Trailer", "X-Checksum"),
    ("Upgrade", "websocket"),
    ("Proxy-Authorization", "Basic Zm9vOmJhcg=="),
]


def test_get_absolute_form_rewrites_target_host_and_via(tmp_path, origin):
    origin.respond(Response(headers=[("Content-Type", "text/plain"), ("X-End-To-End", "kept"),
                                     ("Connection", "X-Resp-Hop"), ("X-Resp-Hop", "drop me"),
                                     ("Keep-Alive", "timeout=10"), ("Upgrade", "h2c")],
                            body=b"hello, proxy\n"))
    l = Larder(tmp_path)
    url = origin.url("/path?q=1&r=%20")
    r = fetch(l, url, headers=[("Host", "wrong.example"), ("X-End-To-End", "yes")] + HOP_BY_HOP_REQUEST, host=None)

    assert r.status == 200, r
    assert r.body == b"hello, proxy\n"
    assert r.header("content-type") == "text/plain"
    assert r.header("x-end-to-end") == "kept"
    assert any("larder" in v for v in r.headers_named("via")), f"no Via on the response: {r.headers}"
    for name in ("x-resp-hop", "keep-alive", "upgrade"):
        assert not r.has(name), f"hop-by-hop {name} reached the client: {r.headers}"
    assert "x-resp-hop" not in r.tokens("connection")

    req = origin.wait_for_requests(1)[0]
    assert req.method == "GET"
    assert req.target == "/path?q=1&r=%20", "RFC 9112 s3.2.1: origin-form towards the origin"
    assert req.version == "HTTP/1.1"
    assert req.headers_named("host") == [origin.addr], "RFC 9112 s3.2.2: Host replaced by the URI authority"
    assert any("1.1 larder" in v for v in req.headers_named("via")), f"no Via: 1.1 larder: {req.headers}"
    assert req.header("x-end-to-end") == "yes"
    leaked = {"proxy-connection", "x-hop", "keep-alive", "te", "trailer", "upgrade",
              "proxy-authorization"} & req.header_names()
    assert not leaked, f"hop-by-hop fields reached the origin: {leaked}: {req.headers}"
    assert not {"keep-alive", "x-hop"} & set(req.tokens("connection")), req.headers


def test_empty_path_becomes_slash(tmp_path, origin):
    l = Larder(tmp_path)
    r = fetch(l, f"http://{origin.addr}")
    assert r.status == 200, r
    assert origin.wait_for_requests(1)[0].target == "/", "RFC 9112 s3.2.1: empty path is sent as /"


def test_options_empty_path_becomes_asterisk(tmp_path, origin):
    l = Larder(tmp_path)
    r = fetch(l, f"http://{origin.addr}", method="OPTIONS")
    assert r.status == 200, r
    assert origin.wait_for_requests(1)[0].target == "*", "RFC 9112 s3.2.4: OPTIONS with empty path -> *"


def test_http10_client(tmp_path, origin):
    origin.respond(Response(headers=[("Content-Type", "text/plain")], body=b"for a 1.0 client"))
    l = Larder(tmp_path)
    data = raw_request(l, f"GET {origin.url('/ten')} HTTP/1.0\r\nHost: {origin.addr}\r\n\r\n".encode())
    r = parse_response(data)
    assert r.status == 200 and r.body == b"for a 1.0 client", r
    assert r.version in ("HTTP/1.1", "HTTP/1.0")
    assert not r.has("transfer-encoding"), "RFC 9112 s6.1: no Transfer-Encoding to a 1.0 client"
    req = origin.wait_for_requests(1)[0]
    assert req.target == "/ten" and req.header("host") == origin.addr


@pytest.mark.parametrize("method,body", [
    ("GET", b""), ("POST", b"post body"), ("PUT", b"put body"), ("DELETE", b""),
    ("PATCH", b"patch body"), ("OPTIONS", b""), ("PROPFIND", b"<propfind/>"), ("MKCOL", b""),
])
def test_method_forwarded_by_name(tmp_path, origin, method, body):
    l = Larder(tmp_path)
    r = fetch(l, origin.url("/m"), method=method, body=body)
    assert r.status == 200, r
    assert r.body == f"{method} /m\n".encode()
    req = origin.wait_for_requests(1)[0]
    assert (req.method, req.target, req.body) == (method, "/m", body)


def test_head_has_no_body_and_connection_stays_usable(tmp_path, origin):
    origin.respond(Response(headers=[("Content-Type", "text/plain")], body=b"12345"),
                   Response(body=b"after head"))
    l = Larder(tmp_path)
    with Client(l) as c:
        h = c.request("HEAD", origin.url("/h"))
        assert h.status == 200 and h.body == b"", h
        assert h.header("content-length") == "5", "RFC 9110 s9.3.2: HEAD keeps the GET's Content-Length"
        # If larder had sent (or waited for) a body, this second response would not parse or would hang.
        g = c.request("GET", origin.url("/g"))
        assert g.status == 200 and g.body == b"after head", g
    assert [r.method for r in origin.wait_for_requests(2)] == ["HEAD", "GET"]


def test_204_and_304_have_no_body(tmp_path, origin):
    origin.respond(Response(status=204, headers=[("X-Kind", "204")]),
                   Response(status=304, headers=[("ETag", '"v1"'), ("X-Kind", "304")]),
                   Response(body=b"still framed"))
    l = Larder(tmp_path)
    with Client(l) as c:
        a = c.request("DELETE", origin.url("/x"))
        assert a.status == 204 and a.body == b"" and a.header("x-kind") == "204", a
        b = c.request("GET", origin.url("/y"), headers=[("If-None-Match", '"v1"')])
        assert b.status == 304 and b.body == b"" and b.header("x-kind") == "304", b
        assert not b.has("transfer-encoding")
        d = c.request("GET", origin.url("/z"))
        assert d.status == 200 and d.body == b"still framed", d


def test_origin_form_request_is_400(tmp_path, origin):
    l = Larder(tmp_path)
    r = parse_response(raw_request(l, f"GET /index.html HTTP/1.1\r\nHost: {origin.addr}\r\n\r\n".encode(),
                                   read_until_close=False))
    assert r.status == 400, r
    assert "forward proxy" in r.text.lower(), r.text
    assert r.header("content-type", "").startswith("text/plain")
    assert origin.requests == [] and origin.connections == 0
    l.expect("errors_bad_request", ">=", 1)


def test_curl_fetches_body_intact(tmp_path, origin):
    payload = random_bytes(1 << 20, seed=7)
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream")], body=payload))
    l = Larder(tmp_path)
    p = curl(l, origin.url("/curl.bin"))
    assert p.returncode == 0, p.stderr
    assert p.stdout == payload
    req = origin.wait_for_requests(1)[0]
    assert req.target == "/curl.bin" and "curl" in req.header("user-agent", "")


def test_wget_fetches_body_intact(tmp_path, origin):
    payload = random_bytes(300000, seed=8)
    origin.respond(Response(headers=[("Content-Type", "application/octet-stream")], body=payload))
    l = Larder(tmp_path)
    p = wget(l, origin.url("/wget.bin"))
    assert p.returncode == 0, p.stderr
    assert p.stdout == payload
    req = origin.wait_for_requests(1)[0]
    assert req.target == "/wget.bin" and "wget" in req.header("user-agent", "").lower()
