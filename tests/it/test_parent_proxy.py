"""b: a parent proxy upstream (parent_proxy, parent_bypass), as corporate egress chains use one.

Through a parent, larder sends every request in absolute-form (RFC 9112 s3.2.2) and tunnels CONNECT
through the parent's own CONNECT (RFC 9110 s9.3.6); it never resolves the origin's name, which only
the parent may be able to. Hosts in parent_bypass are reached directly. The parent here is either a
scripted server (to see exactly what arrives) or a second larder (a real chain)."""

from harness import Client, EchoServer, Larder, Origin, Raw, Response, cache_status, fetch, fetch_stored, free_port


def test_requests_go_to_the_parent_in_absolute_form_without_dns(tmp_path, origin):
    # The scripted "origin" plays the parent: it sees what larder sends upstream. The origin's name
    # cannot be resolved anywhere (.invalid, RFC 6761); through a parent it never needs to be.
    parent = origin
    parent.handler = lambda req: Response(headers=[("Cache-Control", "max-age=300")], body=b"from the parent\n")
    l = Larder(tmp_path, "--parent-proxy", parent.addr)
    url = "http://far-away.invalid:8080/a/b?c=1"
    r = fetch_stored(l, url, headers=[("Proxy-Authorization", "Basic Zm9yOmxhcmRlcg==")])
    assert r.status == 200 and r.body == b"from the parent\n", r
    (req,) = parent.requests
    assert req.method == "GET" and req.target == url, req
    assert req.header("host") == "far-away.invalid:8080", req
    assert req.header("proxy-authorization") is None, "credentials meant for larder must not travel on"
    assert "larder" in req.header("via", ""), req
    l.expect("dns_queries", 0)
    line = l.wait_access_log(lambda s: "far-away.invalid" in s)[0]
    assert f"FIRSTUP_PARENT/{parent.host}" in line, line
    # Cached as from any origin: the second request is a hit and does not reach the parent.
    r = fetch(l, url)
    assert r.status == 200 and cache_status(r).get("hit"), r
    assert len(parent.requests) == 1


def test_chain_of_two_larders(tmp_path, origin):
    origin.handler = lambda req: Response(headers=[("Cache-Control", "max-age=300")], body=b"origin body\n")
    parent = Larder(tmp_path / "parent", "--visible-hostname", "parent")
    child = Larder(tmp_path / "child", "--workers", "1", "--visible-hostname", "child", "--parent-proxy", parent.addr)
    r = fetch(child, origin.url("/chained"))
    assert r.status == 200 and r.body == b"origin body\n", r
    (req,) = origin.requests
    assert req.target == "/chained", "the parent talks to the origin in origin-form"
    # Each hop appends to Via (RFC 9110 s7.6.3; several field lines make one comma-separated list).
    assert ", ".join(req.headers_named("via")) == "1.1 child, 1.1 parent", req
    assert ", ".join(r.headers_named("via")) == "1.1 parent, 1.1 child", r
    parent.expect("cache_misses", 1)
    parent.expect("cache_stores", 1)
    child.expect("cache_stores", 1)
    # Pooled connections to the parent (per worker: one here) serve any origin behind it.
    other = Origin()
    other.handler = lambda req: Response(body=b"other\n")
    assert fetch(child, other.url("/x")).body == b"other\n"
    child.expect("upstream_connections_opened", 1)


def test_parent_down_is_a_502_that_names_the_parent(tmp_path, origin):
    port = free_port()
    l = Larder(tmp_path, "--parent-proxy", f"127.0.0.1:{port}")
    r = fetch(l, origin.url("/x"))
    assert r.status == 502, r
    assert f"cannot connect to parent proxy 127.0.0.1:{port}: connection refused" in r.body.decode(), r.body
    assert origin.requests == [], "no direct attempt behind the parent's back"


def test_parent_bypass_goes_direct(tmp_path, origin):
    parent = Origin()
    parent.handler = lambda req: Response(body=b"via parent\n")
    origin.handler = lambda req: Response(body=b"direct\n")
    l = Larder(tmp_path, "--parent-proxy", parent.addr, "--parent-bypass", "127.0.0.0/8 intranet.invalid")
    r = fetch(l, origin.url("/inside"))
    assert r.status == 200 and r.body == b"direct\n", r
    assert [q.target for q in origin.requests] == ["/inside"]
    r = fetch(l, "http://www.example.invalid/outside")
    assert r.status == 200 and r.body == b"via parent\n", r
    assert [q.target for q in parent.requests] == ["http://www.example.invalid/outside"]
    # A bypassed name is looked up and reached directly: here it resolves nowhere, so 502 with DNS.
    r = fetch(l, "http://wiki.intranet.invalid/")
    assert r.status in (502, 504) and len(parent.requests) == 1, r


def test_connect_through_a_parent_larder(tmp_path):
    echo = EchoServer(final=b"done\n")
    parent = Larder(tmp_path / "parent", "--connect-ports", str(echo.port))
    child = Larder(tmp_path / "child", "--connect-ports", str(echo.port), "--parent-proxy", parent.addr)
    with Client(child, timeout=5) as c:
        c.send(f"CONNECT {echo.addr} HTTP/1.1\r\nHost: {echo.addr}\r\n\r\n".encode())
        r = c.read_response("CONNECT")
        assert r.status == 200, r
        big = bytes(range(256)) * 2048
        c.send(b"ping\n" + big)
        assert c.recv_exact(5 + len(big)) == b"ping\n" + big
        c.shutdown_write()
        assert c.read_to_eof() == b"done\n"
    parent.expect("tunnels_opened", 1)
    child.expect("tunnels_opened", 1)
    line = child.wait_access_log(lambda s: "CONNECT" in s)[0]
    assert "TCP_TUNNEL/200" in line and "FIRSTUP_PARENT/127.0.0.1" in line, line


def test_connect_parent_bytes_right_after_its_200(tmp_path, origin):
    # A server that speaks first (SSH, SMTP): the parent's 200 and the server's first bytes can come in
    # one segment. Those bytes are the tunnel's, not a protocol error.
    parent = origin
    parent.handler = lambda req: Raw(b"HTTP/1.1 200 Connection established\r\n\r\nSSH-2.0-banner\r\n", keep_open=True)
    l = Larder(tmp_path, "--connect-ports", "22", "--parent-proxy", parent.addr)
    with Client(l, timeout=5) as c:
        c.send(b"CONNECT git.example.invalid:22 HTTP/1.1\r\nHost: git.example.invalid:22\r\n\r\n")
        r = c.read_response("CONNECT")
        assert r.status == 200, r
        assert c.recv_exact(16) == b"SSH-2.0-banner\r\n"
    (req,) = parent.requests
    assert req.method == "CONNECT" and req.target == "git.example.invalid:22", req
    assert req.header("host") == "git.example.invalid:22", req


def test_connect_refused_by_the_parent(tmp_path, origin):
    parent = origin
    parent.handler = lambda req: Response(status=403, headers=[("Content-Type", "text/plain")], body=b"policy says no\n")
    l = Larder(tmp_path, "--parent-proxy", parent.addr)
    with Client(l, timeout=5) as c:
        c.send(b"CONNECT blocked.example.invalid:443 HTTP/1.1\r\nHost: blocked.example.invalid:443\r\n\r\n")
        r = c.read_response("CONNECT")
    assert r.status == 502, r
    assert f"parent proxy {parent.addr} refused the tunnel: 403 Forbidden" in r.body.decode(), r.body
    l.expect("tunnels_opened", 0)


AUTH = "Basic dXNlcjpwYTpzcw=="  # user:pa:ss (RFC 7617)


def _parent_requiring_auth(req):
    if req.header("proxy-authorization") != AUTH:
        return Response(status=407, headers=[("Proxy-Authenticate", 'Basic realm="corp"')], body=b"who are you?\n")
    if req.method == "CONNECT":
        return Raw(b"HTTP/1.1 200 Connection established\r\n\r\nhello from the target\n", keep_open=True)
    return Response(body=b"authorised\n")


def test_parent_credentials_are_sent_to_the_parent(tmp_path, origin):
    parent = origin
    parent.handler = _parent_requiring_auth
    l = Larder(tmp_path, "--connect-ports", "443", "--parent-proxy", parent.addr, "--parent-proxy-auth", "user:pa:ss")
    r = fetch(l, "http://site.example.invalid/x", headers=[("Proxy-Authorization", "Basic Y2xpZW50OmNyZWRz")])
    assert r.status == 200 and r.body == b"authorised\n", r
    # Ours for the parent, never the client's (which was for larder).
    assert [q.header("proxy-authorization") for q in parent.requests] == [AUTH]
    with Client(l, timeout=5) as c:
        c.send(b"CONNECT site.example.invalid:443 HTTP/1.1\r\nHost: site.example.invalid:443\r\n\r\n")
        assert c.read_response("CONNECT").status == 200
        assert c.recv_exact(22) == b"hello from the target\n"
    assert parent.requests[-1].method == "CONNECT" and parent.requests[-1].header("proxy-authorization") == AUTH


def test_parent_asking_for_credentials_is_a_502_not_a_407(tmp_path, origin):
    # A 407 from the parent is addressed to larder (RFC 9110 s15.5.8); passed on, it would make the
    # client prompt for credentials it has nothing to do with.
    parent = origin
    parent.handler = _parent_requiring_auth
    l = Larder(tmp_path, "--parent-proxy", parent.addr)
    r = fetch(l, "http://site.example.invalid/x")
    assert r.status == 502, r
    assert "refused the request: 407 Proxy Authentication Required (parent_proxy_auth is not set)" in r.body.decode(), r
    assert r.header("proxy-authenticate") is None, r
    with Client(l, timeout=5) as c:
        c.send(b"CONNECT site.example.invalid:443 HTTP/1.1\r\nHost: site.example.invalid:443\r\n\r\n")
        r = c.read_response("CONNECT")
    assert r.status == 502 and "(parent_proxy_auth is not set)" in r.body.decode(), r
