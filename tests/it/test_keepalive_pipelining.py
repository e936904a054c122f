"""b: persistent connections on both sides (RFC 9112 s9.3), pipelining (s9.3.2) and the retry rules for
a reused upstream connection that fails (RFC 9110 s9.2.2, RFC 9112 s9.3.1)."""

import threading

from harness import Client, Download, Larder, Origin, Reset, Response, build_request, fetch


def fetch_done(l, url, **kw):
    """fetch(), then wait (bounded) for the access-log line: the transaction is over, so its upstream
    connection is back in the pool before the next request, even if larder pools it after the client's
    last byte has gone out."""
    r = fetch(l, url, **kw)
    l.wait_access_log(lambda s: f" {url} " in s)
    return r


def test_several_requests_on_one_client_connection(tmp_path, origin):
    l = Larder(tmp_path)
    with Client(l) as c:
        for i in range(4):
            r = c.request("GET", origin.url(f"/seq{i}"))
            assert r.status == 200 and r.body == f"GET /seq{i}\n".encode(), r
    assert [q.target for q in origin.wait_for_requests(4)] == [f"/seq{i}" for i in range(4)]


def test_three_pipelined_requests_answered_in_order(tmp_path, origin):
    # The first answer is the slowest: responses must still come back in request order (RFC 9112 s9.3.2).
    def handler(req):
        return Response(body=f"answer for {req.target}".encode(), delay=0.3 if req.target == "/p1" else 0)

    origin.handler = handler
    l = Larder(tmp_path)
    with Client(l) as c:
        c.send(b"".join(build_request("GET", origin.url(f"/p{i}")) for i in (1, 2, 3)))
        bodies = [c.read_response().body for _ in range(3)]
    assert bodies == [b"answer for /p1", b"answer for /p2", b"answer for /p3"]
    assert sorted(q.target for q in origin.wait_for_requests(3)) == ["/p1", "/p2", "/p3"]


def test_upstream_connection_reused(tmp_path, origin):
    # One worker, so every request sees the same upstream pool; separate client connections.
    l = Larder(tmp_path, "--workers", "1")
    for i in range(5):
        r = fetch_done(l, origin.url(f"/reuse{i}"))
        assert r.status == 200, r
    origin.wait_for_requests(5)
    assert origin.connections == 1, f"origin saw {origin.connections} connections for 5 sequential requests"
    assert origin.requests_per_connection == [5]
    l.expect("upstream_connections_reused", ">=", 4)
    l.expect("upstream_connections_opened", 1)


def test_origin_closes_idle_connection(tmp_path, origin):
    # The origin closes silently after the first response (no Connection: close): the pooled connection
    # is dead by the time the second request comes. larder must notice or retry; the client sees 200.
    origin.respond(Response(body=b"first", close=True), Response(body=b"second"))
    l = Larder(tmp_path, "--workers", "1")
    assert fetch(l, origin.url("/a")).body == b"first"
    origin.wait_for_closed(1)
    r = fetch(l, origin.url("/b"))
    assert r.status == 200 and r.body == b"second", r
    assert origin.connections == 2
    assert [q.target for q in origin.requests] == ["/a", "/b"]


def test_get_retried_once_when_reused_connection_resets(tmp_path, origin):
    # Second request on any connection: RST without an answer (the race where the origin drops an idle
    # connection just as the request goes out). A GET is idempotent: one retry on a fresh connection.
    origin.handler = lambda req: Reset() if req.seq >= 1 else Response(body=f"ok {req.target}".encode())
    l = Larder(tmp_path, "--workers", "1")
    assert fetch_done(l, origin.url("/one")).body == b"ok /one"
    r = fetch(l, origin.url("/two"))
    assert r.status == 200 and r.body == b"ok /two", r
    two = origin.requests_for("/two")
    assert [(q.conn, q.seq) for q in two] == [(0, 1), (1, 0)], f"expected reused then fresh: {two}"
    l.expect("upstream_retries", ">=", 1)


def test_get_retry_is_not_repeated(tmp_path, origin):
    # Every request after the first fails: the retry fails too and larder gives up with 502.
    first = []

    def handler(req):
        if not first:
            first.append(req)
            return Response(body=b"ok")
        return Reset()

    origin.handler = handler
    l = Larder(tmp_path, "--workers", "1")
    assert fetch_done(l, origin.url("/one")).status == 200
    r = fetch(l, origin.url("/two"))
    assert r.status == 502, r
    assert len(origin.requests_for("/two")) == 2, f"one attempt plus one retry: {origin.requests}"


def test_post_on_stale_reused_connection_not_replayed(tmp_path, origin):
    # A POST is not idempotent (RFC 9110 s9.2.2): once its body has gone out on a reused connection
    # that then resets, larder must answer 502 rather than send it again. Sending it on a fresh
    # connection in the first place is also fine. Either way the origin sees the body exactly once.
    origin.handler = lambda req: Reset() if req.seq >= 1 else Response(body=f"ok {req.method}".encode())
    l = Larder(tmp_path, "--workers", "1")
    assert fetch_done(l, origin.url("/warm")).status == 200
    r = fetch(l, origin.url("/order"), method="POST", body=b"buy one cow")
    posts = origin.requests_for("/order")
    assert len(posts) == 1, f"POST body reached the origin {len(posts)} times: {posts}"
    if posts[0].seq >= 1:
        assert r.status == 502, f"POST sent on a reused connection that reset must not succeed: {r!r}"
    else:
        assert r.status == 200 and r.body == b"ok POST", r
    assert posts[0].body == b"buy one cow"


def _larder_side_sndbuf(l, client) -> int:
    """SO_SNDBUF of larder's end of this client connection, as `ss -tm` reports it (skmem tb)."""
    import re
    import subprocess
    cport = client.sock.getsockname()[1]
    out = subprocess.run(["ss", "-tmnH", "state", "established", f"( sport = :{l.port} and dport = :{cport} )"],
                         capture_output=True, text=True, timeout=10).stdout
    m = re.search(r"\btb(\d+)", out)
    assert m, out
    return int(m.group(1))


def test_client_send_buffer_by_rtt_fixed_or_autotuned(tmp_path, origin):
    # client_send_buffer sets SO_SNDBUF on accepted sockets (Linux reports twice the value set).
    # auto (the default) sizes it by the handshake RTT: a loopback client is as near as clients get,
    # so it has the 256K floor. A size fixes it; 0 leaves the kernel's autotuning alone.
    origin.handler = lambda req: Response(body=b"x" * 1000)
    auto = Larder(tmp_path / "auto")
    fixed = Larder(tmp_path / "fixed", "--client-send-buffer", "384K")
    tuned = Larder(tmp_path / "tuned", "--client-send-buffer", "0")
    with Client(auto) as c1, Client(fixed) as c2, Client(tuned) as c3:
        assert c1.request("GET", origin.url("/a")).status == 200
        assert c2.request("GET", origin.url("/b")).status == 200
        assert c3.request("GET", origin.url("/c")).status == 200
        assert _larder_side_sndbuf(auto, c1) == 2 * 256 * 1024
        assert _larder_side_sndbuf(fixed, c2) == 2 * 384 * 1024
        assert _larder_side_sndbuf(tuned, c3) not in (2 * 256 * 1024, 2 * 384 * 1024)


def test_idle_timeout_counts_from_the_last_request(tmp_path, origin):
    # client_idle_timeout is idleness, not connection age: requests 0.5 s apart keep a connection with
    # a 1.5 s idle timeout open for 2.5 s (larder only ever moves its timer earlier and re-arms a timer
    # that fires before the deadline), and once they stop it closes within a bounded time. The sleeps
    # are the client's pace, the thing under test, not a wait for larder.
    import time
    l = Larder(tmp_path, "--client-idle-timeout", "1500ms")
    with Client(l, timeout=10) as c:
        for i in range(6):
            r = c.request("GET", origin.url(f"/keep{i}"))
            assert r.status == 200, (i, r)
            time.sleep(0.5)
        t0 = time.monotonic()
        closed, extra = c.wait_closed(8)
        waited = time.monotonic() - t0
    assert closed and extra == b"", "an idle keep-alive connection was never closed"
    assert 0.5 <= waited <= 5.0, f"closed {waited:.2f}s after the last request's sleep for a 1.5 s idle timeout"
    assert len(origin.requests) == 6


def test_idle_pool_limit_is_per_origin(tmp_path, origin):
    """upstream_max_idle_per_origin bounds each origin's idle connections on its own: one origin's
    traffic neither evicts nor counts against another's (the pool is indexed by origin)."""
    other = Origin()
    l = Larder(tmp_path, "--workers", "1", "--upstream-max-idle-per-origin", "2")

    def burst(o, tag):
        """Four requests in flight at once, so four upstream connections are needed."""
        gate = threading.Barrier(4, timeout=10)

        def handler(req):
            gate.wait()  # all four are in flight, each on its own upstream connection
            return Response(body=req.target.encode())

        o.handler = handler
        dls = [Download(l, o.url(f"/{tag}{i}"), keep=True) for i in range(4)]
        for d in dls:
            d.join()
            assert d.complete and d.head.status == 200, d
        for i in range(4):
            l.wait_access_log(lambda s, u=o.url(f"/{tag}{i}"): f" {u} " in s)
        o.handler = None

    burst(origin, "a")
    burst(other, "b")
    assert (origin.connections, other.connections) == (4, 4)
    l.expect("upstream_connections_reused", 0)
    burst(origin, "c")  # two of its connections were kept, whatever the other origin did since
    assert origin.connections == 6, origin.connections
    l.expect("upstream_connections_reused", 2)
    r = fetch_done(l, other.url("/d"))
    assert r.status == 200 and other.connections == 4, other.connections
    l.expect("upstream_connections_reused", 3)
