"""b: client access control (allow rules, CIDR). Default: loopback clients only."""

import pytest

from harness import Client, Larder, fetch, ipv6_loopback_available


def test_client_outside_allow_list_gets_403(tmp_path, origin):
    l = Larder(tmp_path, "--allow", "10.0.0.0/8")  # replaces the loopback default
    r = fetch(l, origin.url("/denied"))
    assert r.status == 403, r
    assert r.header("content-type", "").startswith("text/plain")
    assert r.text.startswith("larder: ") and "allowed" in r.text, r.text
    assert origin.connections == 0
    # The metrics endpoint is for allowed clients only, too.
    m = fetch(l, "/larder/metrics", headers=[("Host", l.addr)], host=None)
    assert m.status == 403, m
    l.wait_error_log(r"127\.0\.0\.1|not allowed|forbidden|denied")
    line = l.wait_access_log(lambda s: "/denied" in s)[0]
    assert "/403 " in line, line


def test_forbidden_counter(tmp_path, origin):
    # 127.0.0.1 may read the metrics; 127.0.0.2 (loopback, but not in the list) may not proxy.
    l = Larder(tmp_path, "--allow", "10.0.0.0/8", "--allow", "127.0.0.1/32")
    with Client(l, source="127.0.0.2") as c:
        r = c.request("GET", origin.url("/denied"))
    assert r.status == 403, r
    assert origin.connections == 0
    l.expect("errors_forbidden", 1)
    assert fetch(l, origin.url("/ok")).status == 200


def test_default_allows_loopback(tmp_path, origin):
    l = Larder(tmp_path)
    r = fetch(l, origin.url("/allowed"))
    assert r.status == 200 and r.body == b"GET /allowed\n", r
    l.expect("errors_forbidden", 0)


@pytest.mark.skipif(not ipv6_loopback_available(), reason="kernel has no IPv6 loopback (::1)")
def test_default_allows_ipv6_loopback(tmp_path, origin):
    l = Larder(tmp_path, "--listen", "[::1]:0")
    v6 = [a for a in l.listeners if ":" in a[0]]
    assert v6, f"no [::1] listener announced: {l.stdout_lines}"
    r = fetch(v6[0], origin.url("/from-v6"))
    assert r.status == 200, r
