"""Real clients through larder: apt-get (an APT repository on a loopback origin) and headless Chromium.

These check that larder works for programs people point at a proxy, with their own framing, pipelining,
conditional requests and CONNECT handling, rather than for the harness's hand-written requests alone.

Everything is on loopback. larder gets a scripted DNS server that knows no name, so a background request
a client might still make (Chromium's, typically) ends in NXDOMAIN inside the test instead of leaving the
machine. apt-get runs as root (as the suite does) but with every directory it reads or writes, and its
configuration, under tmp_path: the system's apt state is not touched. Every subprocess runs in a session
of its own, bounded by a timeout, and that session's process group is killed when it ends (Chromium
leaves helpers behind), so nothing the test did not start is ever signalled.

chromium, dpkg-deb and apt-get are required: scripts/install-deps.sh --test installs them, and a test
fails (not skips) when one is missing, so a machine without them cannot pass silently."""

import email.utils
import gzip
import hashlib
import os
import posixpath
import random
import shutil
import signal
import struct
import subprocess
import time
import zlib
from pathlib import Path
from typing import Dict, List, Optional, Tuple
from urllib.parse import unquote, urlsplit

import pytest

from harness import (DnsResponder, EchoServer, Larder, Origin, Response, clean_env, http_date, parse_access_line,
                     poll_until)

CLIENT_TIMEOUT = 60.0  # seconds, for one apt-get or Chromium run
OLD = 30 * 86400  # repository files are dated this many seconds in the past (see StaticFiles)
PKG = "larder-test-pkg"
DEB_NAME = f"{PKG}_1.0_all.deb"


def require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run scripts/install-deps.sh --test (it installs the packages "
                    f"the integration tests need)", pytrace=False)
    return path


def run_bounded(cmd: List[str], cwd: Path, env: dict, timeout: float = CLIENT_TIMEOUT,
                marker: Optional[str] = None) -> Tuple[int, bytes, bytes, float]:
    """Runs cmd in a new session; returns (rc, stdout, stderr, seconds). On timeout, or once it has
    exited, its process group is killed: that group holds only what this call started (Chromium's
    zygote, renderers and utility processes may outlive the browser process). Helpers that leave the
    group (Chromium's crash handler calls setsid) are found by `marker`, a path unique to this run that
    is on their command line, and stopped by PID if they do not exit by themselves."""
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid)
        out, err = proc.communicate()
        raise AssertionError(f"{cmd[0]} did not finish within {timeout}s\nstdout: {out[-3000:]!r}\n"
                             f"stderr: {err[-3000:]!r}")
    finally:
        _kill_group(proc.pid)
        if proc.poll() is None:
            proc.wait(10)
        if marker:
            _stop_strays(marker)
    return proc.returncode, out, err, time.monotonic() - t0


def _kill_group(pgid: int):
    # While any member of the group lives, its id cannot be reused, so this reaches only our processes.
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _pids_with(marker: str) -> List[int]:
    needle = marker.encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                if needle in f.read():
                    pids.append(int(d))
        except OSError:
            pass
    return pids


def _stop_strays(marker: str, grace: float = 5.0):
    """Waits (bounded) for processes whose command line holds `marker` to exit, then SIGKILLs the rest by
    PID. The marker is a directory under this test's tmp_path, so only processes this test started match."""
    left = poll_until(lambda: not _pids_with(marker), grace, 0.1)
    if left is None:
        for pid in _pids_with(marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ----------------------------------------------------------------------------------------------------
# A static-file origin with validators

class StaticFiles:
    """Origin handler serving the files under `root` like a plain web server (or a Debian mirror): a
    Content-Length (added by the harness origin), Date, Last-Modified from the file's mtime, a strong
    ETag, and 304 for If-None-Match / If-Modified-Since that match (RFC 9110 s13.1.1, s13.1.3;
    If-Modified-Since is ignored when If-None-Match is present, s13.1.3). `extra` maps a path (as
    requested, normalised) to more response fields, e.g. Cache-Control."""

    TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css", ".js": "text/javascript",
             ".png": "image/png", ".deb": "application/vnd.debian.binary-package", ".gz": "application/gzip"}

    def __init__(self, root: Path, extra: Optional[Dict[str, List[Tuple[str, str]]]] = None):
        self.root = root.resolve()
        self.extra = extra or {}

    def __call__(self, req) -> Response:
        path = posixpath.normpath(unquote(urlsplit(req.target).path))
        if not path.startswith("/"):
            path = "/" + path
        f = (self.root / path.lstrip("/")).resolve()
        if req.method not in ("GET", "HEAD"):
            return Response(status=405, headers=[("Allow", "GET, HEAD")])
        if self.root not in f.parents or not f.is_file():
            return Response(status=404, headers=[("Content-Type", "text/plain"), ("Date", http_date(time.time()))],
                            body=b"not found\n")
        st = f.stat()
        etag = f'"{st.st_size:x}-{int(st.st_mtime):x}"'
        headers = [("Date", http_date(time.time())), ("Last-Modified", http_date(st.st_mtime)), ("ETag", etag),
                   ("Content-Type", self.TYPES.get(f.suffix, "application/octet-stream"))]
        headers += self.extra.get(path, [])
        inm = req.header("if-none-match")
        ims = req.header("if-modified-since")
        if inm is not None:
            if etag in [t.strip() for t in inm.split(",")] or inm.strip() == "*":
                return Response(status=304, headers=headers)
        elif ims is not None:
            try:
                since = email.utils.parsedate_to_datetime(ims).timestamp()
            except (TypeError, ValueError):
                since = None
            if since is not None and int(st.st_mtime) <= since:
                return Response(status=304, headers=headers)
        return Response(headers=headers, body=f.read_bytes())


def date_files(root: Path, age: int):
    """Makes every file under root `age` seconds old: a mirror's files are rarely fresh, and a heuristic
    freshness lifetime (RFC 9111 s4.2.2: a fraction of the time since Last-Modified) then spans the test."""
    t = time.time() - age
    for p in root.rglob("*"):
        if p.is_file():
            os.utime(p, (t, t))


def start_larder(tmp_path, *args: str) -> Tuple[Larder, DnsResponder]:
    dns = DnsResponder({})  # knows no name: nothing a client asks for can leave loopback
    return Larder(tmp_path, "--dns-servers", dns.server_arg, *args), dns


def access_entries_for(larder: Larder, url: str, method: str = "GET") -> List[dict]:
    return [e for e in larder.access_log_entries() if e["url"] == url and e["method"] == method]


def assert_via_larder(origin: Origin):
    for r in origin.requests:
        assert any("larder" in v for v in r.headers_named("via")), \
            f"request reached the origin without Via: ... larder (not through the proxy?): {r!r}"


def assert_logged(larder: Larder, origin: Origin):
    """Every request the origin saw has an access-log line for its absolute URL (bounded wait: a line is
    written once the response is done)."""
    for r in origin.requests:
        url = origin.url(r.target)
        larder.wait_access_log(lambda l, url=url, m=r.method: (lambda e: bool(e) and e["url"] == url and
                                                               e["method"] == m)(parse_access_line(l)))


# ----------------------------------------------------------------------------------------------------
# apt-get

def build_repo(tmp_path: Path) -> Tuple[Path, bytes]:
    """A flat APT repository (`deb URI ./`): one architecture-independent package, Packages,
    Packages.gz and Release written by hand (the formats are in Debian Policy s5 and the Debian
    repository format wiki page). Returns (repository directory, bytes of the .deb)."""
    require("dpkg-deb")
    src = tmp_path / "pkgsrc"
    (src / "DEBIAN").mkdir(parents=True)
    control = (f"Package: {PKG}\nVersion: 1.0\nArchitecture: all\nMaintainer: larder tests <larder@localhost>\n"
               f"Section: misc\nPriority: optional\nDescription: larder integration-test package\n"
               f" Fetched by apt-get through the larder proxy; never installed.\n")
    (src / "DEBIAN" / "control").write_text(control)
    doc = src / "usr" / "share" / "doc" / PKG
    doc.mkdir(parents=True)
    # Incompressible bytes, so the .deb spans many TCP segments and larder's store writes it in chunks.
    (doc / "payload.bin").write_bytes(random.Random(9).randbytes(300_000))
    repo = tmp_path / "repo"
    repo.mkdir()
    p = subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(src), str(repo / DEB_NAME)],
                       capture_output=True, timeout=CLIENT_TIMEOUT)
    assert p.returncode == 0, f"dpkg-deb failed: {p.stderr!r}"
    deb = (repo / DEB_NAME).read_bytes()

    stanza = control.rstrip("\n") + (f"\nFilename: ./{DEB_NAME}\nSize: {len(deb)}\n"
                                     f"MD5sum: {hashlib.md5(deb).hexdigest()}\n"
                                     f"SHA256: {hashlib.sha256(deb).hexdigest()}\n\n")
    packages = stanza.encode()
    (repo / "Packages").write_bytes(packages)
    (repo / "Packages.gz").write_bytes(gzip.compress(packages, mtime=0))
    indexes = ["Packages", "Packages.gz"]
    rel = [f"Origin: larder-test\nLabel: larder-test\nDate: {http_date(time.time() - OLD)}\nMD5Sum:\n"]
    rel += [f" {hashlib.md5((repo / n).read_bytes()).hexdigest()} {(repo / n).stat().st_size} {n}\n" for n in indexes]
    rel += ["SHA256:\n"]
    rel += [f" {hashlib.sha256((repo / n).read_bytes()).hexdigest()} {(repo / n).stat().st_size} {n}\n"
            for n in indexes]
    (repo / "Release").write_text("".join(rel))
    date_files(repo, OLD)
    return repo, deb


def apt_get(tmp_path: Path, run: str, larder: Larder, origin: Origin, *args: str) -> Tuple[int, str, float]:
    """apt-get with a configuration of its own: APT_CONFIG points at a file that empties the config parts
    directory and names no main file (APT reads APT_CONFIG first, then Dir::Etc::parts, then
    Dir::Etc::main), so nothing from /etc/apt applies; every state, cache, list and log directory is under
    tmp_path/<run>. The same settings are repeated on the command line as -o, which wins over any file."""
    base = tmp_path / run
    dirs = {k: base / k for k in ("lists", "cache", "state", "log", "etc", "parts", "cwd")}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    (dirs["lists"] / "partial").mkdir(exist_ok=True)
    (dirs["cache"] / "archives" / "partial").mkdir(parents=True, exist_ok=True)
    status = dirs["state"] / "status"
    status.touch()
    sources = dirs["etc"] / "sources.list"
    sources.write_text(f"deb [trusted=yes] http://{origin.addr}/ ./\n")
    opts = {
        "Dir::Etc::SourceList": str(sources), "Dir::Etc::SourceParts": "/dev/null",
        "Dir::Etc::Parts": str(dirs["parts"]), "Dir::Etc::Main": "/dev/null",
        "Dir::Etc::Preferences": "/dev/null", "Dir::Etc::PreferencesParts": "/dev/null",
        "Dir::Etc::Trusted": "/dev/null", "Dir::Etc::TrustedParts": str(dirs["parts"]),
        "Dir::State": str(dirs["state"]), "Dir::State::Lists": str(dirs["lists"]),
        "Dir::State::status": str(status), "Dir::Cache": str(dirs["cache"]), "Dir::Log": str(dirs["log"]),
        "Acquire::http::Proxy": f"http://{larder.addr}/", "Acquire::Languages": "none",
        "Acquire::Retries": "0", "Acquire::http::Timeout": "20",
        # The download would otherwise run as _apt, which cannot enter pytest's 0700 tmp_path.
        "APT::Sandbox::User": "root", "Debug::NoLocking": "1",
    }
    conf = dirs["etc"] / "apt.conf"
    conf.write_text("".join(f'{k} "{v}";\n' for k, v in opts.items()))
    cmd = [require("apt-get"), "-q"]
    for k, v in opts.items():
        cmd += ["-o", f"{k}={v}"]
    cmd += list(args)
    env = clean_env(APT_CONFIG=str(conf), DEBIAN_FRONTEND="noninteractive", LC_ALL="C")
    rc, out, err, secs = run_bounded(cmd, dirs["cwd"], env)
    return rc, (out + err).decode("utf-8", "replace"), secs


@pytest.mark.time_limit(150)
def test_apt_get_update_and_download_through_larder(tmp_path):
    repo, deb = build_repo(tmp_path)
    origin = Origin(handler=StaticFiles(repo))
    l, _dns = start_larder(tmp_path)
    deb_path = f"/{DEB_NAME}"

    rc, out, t_update = apt_get(tmp_path, "run1", l, origin, "update")
    assert rc == 0, f"apt-get update failed:\n{out}"
    assert "Err" not in out and "W:" not in out, f"apt-get update complained:\n{out}"
    rc, out, t_dl = apt_get(tmp_path, "run1", l, origin, "download", PKG)
    assert rc == 0, f"apt-get download failed:\n{out}"
    got = tmp_path / "run1" / "cwd" / DEB_NAME
    assert got.is_file(), f"no {DEB_NAME} after apt-get download:\n{out}"
    assert got.read_bytes() == deb, "the .deb apt-get saved differs from the repository's"

    seen = {posixpath.normpath(r.target) for r in origin.requests}
    assert {"/Release", "/Packages.gz"} <= seen or {"/Release", "/Packages"} <= seen, \
        f"apt-get update did not fetch Release and a Packages index: {origin.requests}"
    debs1 = [r for r in origin.requests if posixpath.normpath(r.target) == deb_path]
    assert len(debs1) == 1 and debs1[0].method == "GET", debs1
    assert_via_larder(origin)
    assert_logged(l, origin)
    miss = access_entries_for(l, origin.url(debs1[0].target))
    assert miss and miss[0]["result"] == "TCP_MISS" and miss[0]["status"] == "200", miss
    assert int(miss[0]["bytes"]) >= len(deb), miss

    # Second client with no state of its own: the indexes may be revalidated (apt asks for index files
    # with Cache-Control: max-age=0), but the .deb, heuristically fresh for days (RFC 9111 s4.2.2,
    # Last-Modified a month ago), must come from larder's store.
    n_before = len(origin.requests)
    l.expect("store_meta_writes", ">=", 3, timeout=5.0)  # Release, Packages.gz, the .deb
    l.expect("store_pending_bodies", 0, timeout=5.0)
    rc, out, t_update2 = apt_get(tmp_path, "run2", l, origin, "update")
    assert rc == 0, f"second apt-get update failed:\n{out}"
    rc, out, t_dl2 = apt_get(tmp_path, "run2", l, origin, "download", PKG)
    assert rc == 0, f"second apt-get download failed:\n{out}"
    assert (tmp_path / "run2" / "cwd" / DEB_NAME).read_bytes() == deb
    later = origin.requests[n_before:]
    assert not [r for r in later if posixpath.normpath(r.target) == deb_path], \
        f"the origin saw the .deb again; it should have been a hit: {later}"
    for r in later:
        # A file the repository lacks (InRelease: this one is unsigned) was a 404 without validators:
        # asked for again in full. What exists has validators and is only revalidated.
        if (repo / posixpath.normpath(r.target).lstrip("/")).is_file():
            assert r.has("if-none-match") or r.has("if-modified-since"), \
                f"second run: only conditional revalidations of existing files may reach the origin, got {r!r}"
    assert_via_larder(origin)
    deb_url = origin.url(debs1[0].target)
    results = [e["result"] for e in access_entries_for(l, deb_url)]
    if len(results) < 2:
        l.wait_access_log(lambda s: (lambda e: bool(e) and e["url"] == deb_url)(parse_access_line(s)), 2)
        results = [e["result"] for e in access_entries_for(l, deb_url)]
    assert results == ["TCP_MISS", "TCP_HIT"], f"{deb_url}: {results}\n" + "\n".join(l.access_log_lines())
    l.expect("cache_hits", ">=", 1)
    print(f"apt-get timings: update {t_update:.2f}s download {t_dl:.2f}s; "
          f"second update {t_update2:.2f}s download {t_dl2:.2f}s")


# ----------------------------------------------------------------------------------------------------
# Headless Chromium

def png_1x1() -> bytes:
    """A valid 1x1 RGB PNG (PNG spec: signature, IHDR, IDAT with a zlib stream, IEND; CRC-32 per chunk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack("!I", len(data)) + kind + data + struct.pack("!I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack("!IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x10\x20\x30")) + chunk(b"IEND", b""))


PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>larder page</title>
<link rel="stylesheet" href="/style.css"></head>
<body><p id="marker">larder-page-marker-7f3a</p>
<p id="probe">probe</p>
<img id="pixel" src="/pixel.png" alt="">
<div id="out"></div>
<script src="/app.js"></script>
</body></html>
"""
# A classic script after a pending stylesheet runs only once that stylesheet has loaded (HTML Standard,
# "script-blocking style sheet"), so the colour it reads proves the CSS came through.
STYLE = "#probe { color: rgb(1, 2, 3); }\n"
SCRIPT = """var o = document.getElementById('out');
o.setAttribute('data-script', 'ran-through-larder');
o.setAttribute('data-color', getComputedStyle(document.getElementById('probe')).color);
"""


def web_root(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "page.html").write_text(PAGE)
    (root / "style.css").write_text(STYLE)
    (root / "app.js").write_text(SCRIPT)
    (root / "pixel.png").write_bytes(png_1x1())
    date_files(root, 3600)
    return root


def chromium(tmp_path: Path, run: str, larder: Larder, url: str) -> Tuple[int, str, str, float]:
    """One headless Chromium run with a fresh profile (so its own HTTP cache is empty) and HOME, proxied
    through larder. `<-loopback>` removes Chromium's implicit proxy bypass for loopback addresses."""
    exe = require("chromium")
    base = tmp_path / run
    for d in ("profile", "home", "cache", "config"):
        (base / d).mkdir(parents=True, exist_ok=True)
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--disable-dev-shm-usage", "--disable-extensions", "--no-default-browser-check",
           f"--user-data-dir={base / 'profile'}", f"--proxy-server=http://{larder.addr}",
           "--proxy-bypass-list=<-loopback>", "--dump-dom", url]
    env = clean_env(HOME=str(base / "home"), XDG_CACHE_HOME=str(base / "cache"),
                    XDG_CONFIG_HOME=str(base / "config"), LC_ALL="C")
    rc, out, err, secs = run_bounded(cmd, base, env, marker=str(base) + os.sep)
    return rc, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")[-4000:], secs


@pytest.mark.time_limit(150)
def test_chromium_page_with_subresources_then_cached(tmp_path):
    root = web_root(tmp_path)
    fresh = [("Cache-Control", "max-age=60")]
    origin = Origin(handler=StaticFiles(root, {p: fresh for p in ("/page.html", "/style.css", "/app.js",
                                                                   "/pixel.png")}))
    l, _dns = start_larder(tmp_path)
    url = origin.url("/page.html")

    rc, dom, err, t1 = chromium(tmp_path, "chrome1", l, url)
    assert rc == 0, f"chromium exited {rc}\nstderr: {err}"
    assert "larder-page-marker-7f3a" in dom, f"page marker not in the dumped DOM:\n{dom}\nstderr: {err}"
    assert 'data-script="ran-through-larder"' in dom, f"app.js did not run:\n{dom}"
    assert 'data-color="rgb(1, 2, 3)"' in dom, f"style.css did not apply:\n{dom}"
    targets = [r.target for r in origin.requests]
    for p in ("/page.html", "/style.css", "/app.js", "/pixel.png"):
        assert targets.count(p) == 1, f"origin saw {p} {targets.count(p)} times: {targets}"
    assert_via_larder(origin)
    assert_logged(l, origin)
    for p in ("/page.html", "/style.css", "/app.js", "/pixel.png"):
        e = access_entries_for(l, origin.url(p))
        assert [x["result"] + "/" + x["status"] for x in e] == ["TCP_MISS/200"], (p, e)

    # A second browser with an empty cache of its own: everything is fresh in larder (max-age=60).
    l.expect("store_meta_writes", ">=", 4, timeout=5.0)
    l.expect("store_pending_bodies", 0, timeout=5.0)
    n_before = len(origin.requests)
    rc, dom, err, t2 = chromium(tmp_path, "chrome2", l, url)
    assert rc == 0, f"second chromium run exited {rc}\nstderr: {err}"
    assert "larder-page-marker-7f3a" in dom and 'data-color="rgb(1, 2, 3)"' in dom, dom
    later = [r.target for r in origin.requests[n_before:]]
    for p in ("/page.html", "/style.css", "/app.js", "/pixel.png"):
        assert p not in later, f"second run: the origin saw {p} again: {later}"
    for p in ("/page.html", "/style.css", "/app.js", "/pixel.png"):
        pu = origin.url(p)
        lines = l.wait_access_log(lambda s, pu=pu: (lambda e: bool(e) and e["url"] == pu)(parse_access_line(s)), 2)
        assert [parse_access_line(x)["result"] for x in lines] == ["TCP_MISS", "TCP_HIT"], (p, lines)
    l.expect("cache_hits", ">=", 4)
    print(f"chromium timings: first run {t1:.2f}s, second run {t2:.2f}s")


@pytest.mark.time_limit(150)
def test_chromium_connect_denied_port_and_allowed_tunnel(tmp_path):
    # https:// through an HTTP proxy is a CONNECT (RFC 9110 s9.3.6). One port larder allows, where a TCP
    # server answers Chromium's TLS ClientHello with the same bytes (a handshake failure, but proof that
    # the tunnel carried them), and one port larder does not allow (403, no connection made).
    allowed = EchoServer(final=b"")
    denied = EchoServer(final=b"")
    l, _dns = start_larder(tmp_path, "--connect-ports", f"443 {allowed.port}")

    rc, dom, err, t1 = chromium(tmp_path, "deny", l, f"https://{denied.addr}/")
    line = l.wait_access_log(lambda s: f"CONNECT {denied.addr} " in s)[0]
    e = parse_access_line(line)
    assert e and e["result"] == "TCP_DENIED" and e["status"] == "403", line
    assert e["hier"] == "HIER_NONE", line
    assert denied.connections == 0, "larder connected to a port not in connect_ports"
    assert "larder-page-marker" not in dom

    rc, dom, err, t2 = chromium(tmp_path, "tunnel", l, f"https://{allowed.addr}/")
    assert allowed.wait_for_connections(1, 10), f"nothing reached the allowed port\nstderr: {err}"
    line = l.wait_access_log(lambda s: f"CONNECT {allowed.addr} " in s)[0]
    e = parse_access_line(line)
    assert e and e["result"] == "TCP_TUNNEL" and e["status"] == "200", line
    assert e["hier"] == "HIER_DIRECT" and e["peer"] == "127.0.0.1", line
    assert bytes(allowed.received[:2]) == b"\x16\x03", \
        f"the tunnel did not carry a TLS handshake record: {bytes(allowed.received[:16])!r}"
    l.expect("tunnels_opened", ">=", 1)
    print(f"chromium CONNECT timings: denied {t1:.2f}s, tunnel {t2:.2f}s")
