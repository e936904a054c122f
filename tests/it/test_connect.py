"""b: CONNECT tunnels (RFC 9110 s9.3.6)."""

import time

from harness import Client, EchoServer, Larder, build_request


def open_tunnel(l, echo, timeout=5):
    c = Client(l, timeout=timeout)
    c.send(f"CONNECT {echo.addr} HTTP/1.1\r\nHost: {echo.addr}\r\n\r\n".encode())
    r = c.read_response("CONNECT")
    return c, r


def test_tunnel_echoes_both_ways_and_half_close(tmp_path):
    echo = EchoServer(final=b"last words\n")
    l = Larder(tmp_path, "--connect-ports", str(echo.port))
    c, r = open_tunnel(l, echo)
    assert r.status == 200, r
    assert not r.has("content-length") and not r.has("transfer-encoding"), "RFC 9110 s9.3.6"
    c.send(b"ping\n")
    assert c.recv_exact(5) == b"ping\n"
    big = bytes(range(256)) * 4096
    c.send(big)
    assert c.recv_exact(len(big)) == big
    # Half-close: our FIN must reach the server, and its last bytes must still reach us.
    c.shutdown_write()
    assert echo.wait_eof(5), "the server never saw EOF through the tunnel"
    assert c.read_to_eof() == b"last words\n"
    c.close()
    assert echo.connections == 1
    l.expect("tunnels_opened", 1)
    line = l.wait_access_log(lambda s: "CONNECT" in s)[0]
    assert "TCP_TUNNEL/200" in line and f"CONNECT {echo.addr}" in line, line


def test_tunnel_idle_timeout(tmp_path):
    echo = EchoServer()
    l = Larder(tmp_path, conf=f"# inline config file\nconnect_ports {echo.port}\ntunnel_idle_timeout 500ms\n")
    c, r = open_tunnel(l, echo)
    assert r.status == 200, r
    c.send(b"x")
    assert c.recv_exact(1) == b"x"
    t0 = time.monotonic()
    closed, extra = c.wait_closed(5)
    waited = time.monotonic() - t0
    assert closed, "idle tunnel not closed within 5 s"
    assert extra == b""
    assert 0.3 <= waited <= 4, f"closed after {waited:.2f}s for a 500ms idle timeout"


def test_connect_to_port_not_allowed(tmp_path, origin):
    # Default connect_ports is 443: the origin's port is not allowed. The request smuggled after the
    # CONNECT head must never be treated as a request (it would reach the origin).
    l = Larder(tmp_path)
    with Client(l, timeout=5) as c:
        c.send(f"CONNECT {origin.addr} HTTP/1.1\r\nHost: {origin.addr}\r\n\r\n".encode()
               + build_request("GET", origin.url("/smuggled")))
        r = c.read_response("CONNECT")
        assert r.status == 403, r
        assert "port" in r.text.lower(), r.text
        closed, after = c.wait_closed(2)
        assert b"HTTP/" not in after, f"a second response followed the 403: {after[:300]!r}"
    # Barrier: a genuine request after the rejected one; the origin must see only it.
    with Client(l) as c2:
        assert c2.request("GET", origin.url("/barrier")).status == 200
    assert [q.target for q in origin.wait_for_requests(1)] == ["/barrier"]
    assert origin.connections == 1, "the CONNECT target port was contacted"
    l.expect("tunnels_opened", 0)
    line = l.wait_access_log(lambda s: "CONNECT" in s)[0]
    assert "/403 " in line, line
