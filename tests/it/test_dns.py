"""b: name resolution through c-ares against a scripted DNS server: caching within the TTL, IPv6,
and falling through to the next address when one refuses."""

import pytest

from harness import Client, DnsResponder, Larder, Origin, Response, fetch, free_port, ipv6_loopback_available


def test_name_resolved_and_cached_within_ttl(tmp_path, origin):
    # Connection: close, so the second request cannot ride a pooled connection and must resolve again.
    origin.handler = lambda req: Response(headers=[("Connection", "close")], body=f"GET {req.target}\n".encode())
    dns = DnsResponder({"origin.test": ["127.0.0.1"]}, ttl=300)
    l = Larder(tmp_path, "--dns-servers", dns.server_arg)
    # One client connection for both requests: it stays on one worker, whatever the resolver cache's scope.
    c = Client(l)
    r = c.request("GET", origin.url_for("origin.test", "/first"))
    assert r.status == 200 and r.body == b"GET /first\n", r
    req = origin.wait_for_requests(1)[0]
    assert req.header("host") == f"origin.test:{origin.port}"
    asked = dns.count("origin.test")
    assert asked >= 1
    l.expect("dns_queries", ">=", 1)

    r = c.request("GET", origin.url_for("origin.test", "/second"))
    assert r.status == 200 and r.body == b"GET /second\n", r
    assert dns.count("origin.test") == asked, "a second lookup within the TTL went to the DNS server"
    assert origin.connections == 2
    l.expect("dns_cache_hits", ">=", 1)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="kernel has no IPv6 loopback (::1)")
def test_ipv6_only_name(tmp_path):
    o6 = Origin(host="::1")
    dns = DnsResponder({"six.test": ["::1"]})
    l = Larder(tmp_path, "--dns-servers", dns.server_arg)
    r = fetch(l, o6.url_for("six.test", "/v6"))
    assert r.status == 200 and r.body == b"GET /v6\n", r
    assert o6.wait_for_requests(1)[0].header("host") == f"six.test:{o6.port}"


def test_ipv6_literal(tmp_path):
    if not ipv6_loopback_available():
        pytest.skip("kernel has no IPv6 loopback (::1)")
    o6 = Origin(host="::1")
    l = Larder(tmp_path)
    r = fetch(l, o6.url("/literal"))
    assert r.status == 200 and r.body == b"GET /literal\n", r
    assert o6.wait_for_requests(1)[0].header("host") == f"[::1]:{o6.port}"


def test_first_address_refused_next_one_works(tmp_path, origin):
    # The origin listens on 127.0.0.1 only; 127.0.0.3 on the same port refuses.
    dns = DnsResponder({"two.test": ["127.0.0.3", "127.0.0.1"]})
    l = Larder(tmp_path, "--dns-servers", dns.server_arg)
    r = fetch(l, origin.url_for("two.test", "/fallback"))
    assert r.status == 200 and r.body == b"GET /fallback\n", r
    assert len(origin.requests) == 1
    line = l.wait_access_log(lambda s: "/fallback" in s)[0]
    assert "HIER_DIRECT/127.0.0.1 " in line, line


def test_name_with_no_usable_address_is_502(tmp_path):
    dns = DnsResponder({"dead.test": ["127.0.0.3"]})
    l = Larder(tmp_path, "--dns-servers", dns.server_arg)
    r = fetch(l, f"http://dead.test:{free_port()}/nothing")
    assert r.status == 502, r
