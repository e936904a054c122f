"""A DNS server that never answers: the request gets 504 naming the DNS timeout, a log line says so,
and larder goes on serving (RFC 9110 s15.6.5: the gateway did not get a timely answer from a server
it needed)."""

import socket

from harness import Larder, fetch


def test_dns_timeout_is_504_with_a_reason(tmp_path, origin):
    # A bound UDP socket that nobody reads: queries go in, no answer comes out.
    mute = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    mute.bind(("127.0.0.1", 0))
    try:
        port = mute.getsockname()[1]
        l = Larder(tmp_path, "--dns-servers", f"127.0.0.1:{port}", "--dns-timeout", "200ms")
        r = fetch(l, "http://silent.test/x", timeout=20)
        assert r.status == 504, r
        assert b"DNS timeout" in r.body and b"silent.test" in r.body, r.body
        line = l.wait_error_log(r"DNS timeout.*silent\.test")
        assert line, l.error_log_text()[-2000:]
        l.expect("errors_dns", 1)
        # The query really went out (and was not answered): the timeout is c-ares', not a refusal.
        mute.settimeout(1)
        assert mute.recvfrom(4096)[0], "no DNS query reached the server"
        # Still serving: a literal address needs no DNS.
        assert fetch(l, origin.url("/after")).status == 200
    finally:
        mute.close()
