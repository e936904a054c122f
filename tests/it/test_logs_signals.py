"""b: the access log format, log reopening, signals and the command line (--check, --version, --help)."""

import subprocess
import time
from pathlib import Path
from signal import SIGHUP, SIGINT, SIGTERM

import pytest

from harness import Client, Larder, Response, fetch, larder_bin, parse_access_line, poll_until

REPO = Path(__file__).resolve().parents[2]


def run_larder(*args, cwd, timeout=10):
    return subprocess.run([larder_bin(), *args], capture_output=True, text=True, cwd=cwd, timeout=timeout)


def test_access_log_squid_native_format(tmp_path, origin):
    body = b"sixteen bytes!!\n"
    origin.respond(Response(headers=[("Content-Type", "text/plain")], body=body))
    l = Larder(tmp_path)
    url = origin.url("/fmt?x=1")
    assert fetch(l, url).status == 200
    line = l.wait_access_log(lambda s: "/fmt?x=1" in s)[0]
    e = parse_access_line(line)
    assert e, f"not Squid native format (10 fields): {line!r}"
    assert abs(float(e["time"]) - time.time()) < 60, line
    assert int(e["elapsed"]) < 10000
    assert e["client"] == "127.0.0.1"
    assert (e["result"], e["status"]) == ("TCP_MISS", "200"), line
    assert int(e["bytes"]) >= len(body), "bytes sent to the client, head included"
    assert (e["method"], e["url"], e["user"]) == ("GET", url, "-"), line
    assert (e["hier"], e["peer"]) == ("HIER_DIRECT", "127.0.0.1"), line
    assert e["type"] == "text/plain", line
    bad = [s for s in l.access_log_lines() if not parse_access_line(s)]
    assert not bad, f"access-log lines not in Squid native format: {bad}"


def test_sighup_reopens_access_log(tmp_path, origin):
    l = Larder(tmp_path)
    assert fetch(l, origin.url("/before")).status == 200
    l.wait_access_log(lambda s: "/before" in s)
    rotated = l.access_log.with_name("access.log.1")
    l.access_log.rename(rotated)
    l.signal(SIGHUP)
    # The reopen is invisible on any socket; wait (bounded) for the new file to appear.
    poll_until(l.access_log.exists, 5)
    assert fetch(l, origin.url("/after")).status == 200
    l.wait_access_log(lambda s: "/after" in s)
    old = rotated.read_text()
    assert "/before" in old and "/after" not in old, old
    assert l.running()


def test_sigterm_lets_in_flight_request_finish(tmp_path, origin):
    origin.respond(Response(body=b"worth the wait", delay=1.0))
    l = Larder(tmp_path)
    with Client(l, timeout=10) as c:
        c.send_request("GET", origin.url("/slow"))
        origin.wait_for_requests(1)  # the request is in flight upstream
        l.signal(SIGTERM)
        r = c.read_response()
    assert r.status == 200 and r.body == b"worth the wait", r
    assert l.wait(10) == 0


def test_sigint_exits_0(tmp_path):
    l = Larder(tmp_path)
    assert l.stop(SIGINT) == 0


def test_sigterm_idle_exits_0(tmp_path):
    l = Larder(tmp_path)
    assert l.stop(SIGTERM, timeout=5) == 0


@pytest.mark.parametrize("bad_line", [
    "no_such_directive 1",
    "first_byte_timeout banana",
    "listen 127.0.0.1:99999",
    "allow 10.0.0.0/99",
    "log_level loud",
])
def test_check_rejects_bad_config_with_location(tmp_path, bad_line):
    conf = tmp_path / "bad.conf"
    conf.write_text(f"# a comment\nworkers 1\n{bad_line}\ncache_dir {tmp_path}/cache\n")
    p = run_larder("-c", str(conf), "--check", cwd=tmp_path)
    assert p.returncode != 0, p
    assert f"bad.conf:3:" in p.stderr, f"no file:line: in {p.stderr!r}"


def test_check_accepts_example_config(tmp_path):
    candidates = [REPO / "proxy.conf.example", REPO / "proxy" / "proxy.conf.example", REPO / "etc" / "proxy.conf.example"]
    found = [c for c in candidates if c.exists()]
    assert found, f"proxy.conf.example not found in {[str(c) for c in candidates]}"
    p = run_larder("-c", str(found[0]), "--check", cwd=tmp_path)
    assert p.returncode == 0, f"rc={p.returncode}\nstdout={p.stdout}\nstderr={p.stderr}"


def test_version(tmp_path):
    p = run_larder("--version", cwd=tmp_path)
    assert p.returncode == 0, p
    assert "larder" in p.stdout.lower() and any(ch.isdigit() for ch in p.stdout), p.stdout


def test_help_lists_directives(tmp_path):
    p = run_larder("--help", cwd=tmp_path)
    assert p.returncode == 0, p
    out = (p.stdout + p.stderr).replace("-", "_")
    for d in ("listen", "allow", "connect_ports", "dns_servers", "cache_dir", "access_log", "first_byte_timeout",
              "tunnel_idle_timeout", "shutdown_timeout", "upstream_max_idle_per_origin"):
        assert d in out, f"--help does not mention {d}"
