"""The origin and the five caches under test: how each is configured, started, probed and stopped.

Every process is started by the bench itself, in the foreground of its own session (so its process
group is ours alone), with a config file written into a private temp directory and a free port on
127.0.0.1. Stopping signals that process group only. Proxies are pinned to PROXY_CPUS, the origin to
CLIENT_CPUS (inherited from the bench, which runs there).
"""

import os
import re
import shutil
import signal
import subprocess
import time

import httpc
import procstat

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.join(os.path.dirname(HERE), "conf")


class StartError(Exception):
    pass


def render(template, out, **values):
    with open(os.path.join(CONF, template)) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@@{k}@@", str(v))
    left = re.findall(r"@@[A-Z_]+@@", text)
    if left:
        raise StartError(f"{template}: unfilled placeholders {left}")
    with open(out, "w") as f:
        f.write(text)


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except OSError:
        return ""


class Daemon:
    """A process tree the bench started: argv run under taskset in a new session."""

    name = "?"

    def __init__(self, env):
        self.env = env
        self.proc = None
        self.dir = None
        self.port = None
        self.known_pids = set()
        self.starts = 0

    def _argv(self):
        raise NotImplementedError

    def _prepare(self):
        """Writes config files into self.dir for self.port."""

    def start(self):
        self.starts += 1
        self.dir = os.path.join(self.env.tmp, f"{self.name}-{self.starts}")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)  # daemons that drop privileges (squid, varnish) write here
        self.port = httpc.free_port()
        self._prepare()
        argv = self._argv()
        if self.cpus is not None:
            argv = ["taskset", "-c", ",".join(map(str, sorted(self.cpus)))] + argv
        self.stdout = os.path.join(self.dir, "stdout")
        self.stderr = os.path.join(self.dir, "stderr")
        with open(self.stdout, "wb") as so, open(self.stderr, "wb") as se:
            self.proc = subprocess.Popen(argv, stdout=so, stderr=se, stdin=subprocess.DEVNULL, cwd=self.dir,
                                         start_new_session=True, env=self._environ())
        self.env.started.append(self)
        try:
            self._wait_ready(time.monotonic() + 90)
        except Exception:
            self.stop()
            raise
        self.repin()

    def _environ(self):
        return os.environ.copy()

    def _wait_ready(self, deadline):
        if not httpc.wait_port(self.port, deadline, lambda: self.proc.poll() is None):
            raise StartError(self._why("port never opened"))

    def _why(self, what):
        rc = self.proc.poll()
        state = f"exited with {rc}" if rc is not None else "still running"
        logs = "".join(tail(p) for p in self._logs())
        return f"{self.name}: {what} ({state})\n{logs}"

    def _logs(self):
        return [self.stderr, self.stdout]

    def pids(self):
        if self.proc is None or self.proc.poll() is not None:
            return []
        p = procstat.tree(self.proc.pid)
        self.known_pids.update(p)
        return p

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def repin(self):
        if self.cpus is not None:
            procstat.pin(self.pids(), self.cpus)

    def stop(self, timeout=20):
        if self.proc is None:
            return
        self.pids()  # remember the tree before it goes away
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=10)
        # Anything of ours that left the process group (a daemon that called setsid) goes by PID,
        # but only if it is still a process we saw in our tree (same start time is not tracked: the
        # window for PID reuse is the few seconds of shutdown).
        time.sleep(0.2)
        for pid in list(self.known_pids):
            if pid != self.proc.pid and os.path.exists(f"/proc/{pid}"):
                try:
                    if os.getpgid(pid) == self.proc.pid or self._ours(pid):
                        os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.known_pids.clear()
        self.proc = None

    def _ours(self, pid):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                return self.dir.encode() in f.read()
        except OSError:
            return False


class Origin(Daemon):
    """Debian's nginx serving the files the scenarios need."""

    name = "origin"

    def __init__(self, env):
        super().__init__(env)
        self.cpus = env.client_cpus

    def _prepare(self):
        files = os.path.join(self.dir, "files", "fresh")
        os.makedirs(files)
        for name, size in (("1k.bin", 1024), ("1m.bin", 1 << 20), ("16m.bin", 16 << 20)):
            p = os.path.join(files, name)
            with open(p, "wb") as f:
                f.write(os.urandom(size))
            # An old Last-Modified: a validator only a second older than Date is weak (RFC 9110 s8.8.2.2).
            os.utime(p, (1704067200, 1704067200))
        for d in (self.dir, os.path.join(self.dir, "files"), files):
            os.chmod(d, 0o755)
        render("origin-nginx.conf", os.path.join(self.dir, "nginx.conf"), DIR=self.dir, PORT=self.port)
        self.log = os.path.join(self.dir, "access.log")

    def _argv(self):
        return ["nginx", "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir, "-e",
                os.path.join(self.dir, "error.log")]

    def _wait_ready(self, deadline):
        super()._wait_ready(deadline)
        c = httpc.Client(self.port)
        st, _, n = c.get("/fresh/1k.bin", f"127.0.0.1:{self.port}")
        c.close()
        if st != 200 or n != 1024:
            raise StartError(self._why(f"origin self-test got {st} with {n} bytes"))

    def log_offset(self):
        return os.path.getsize(self.log)

    def log_lines(self, start, stop=None):
        """Parsed origin access-log lines between two offsets: dicts with status, uri, bytes, conditional."""
        with open(self.log, "rb") as f:
            f.seek(start)
            data = f.read() if stop is None else f.read(stop - start)
        out = []
        for line in data.decode("latin-1").splitlines():
            m = re.match(r"^(\S+) (\d+) (\S+) (\S+) (\d+) inm:(.*) ims:(.*)$", line)
            if not m:
                continue
            out.append({"time": float(m.group(1)), "status": int(m.group(2)), "uri": m.group(4),
                        "bytes": int(m.group(5)), "conditional": m.group(6) != "-" or m.group(7) != "-"})
        return out

    def _logs(self):
        return [os.path.join(self.dir, "error.log"), self.stderr]


class Product(Daemon):
    """A cache under test. forward=True: clients send absolute-form requests to it."""

    forward = True
    package = None
    binary = None

    def __init__(self, env):
        super().__init__(env)
        self.cpus = env.proxy_cpus

    @property
    def host(self):
        return f"127.0.0.1:{self.env.origin.port}"

    def target(self, path):
        return f"http://{self.host}{path}" if self.forward else path

    def wrk_prefix(self):
        return f"http://{self.host}" if self.forward else ""

    def available(self):
        return shutil.which(self.binary) is not None

    def version(self):
        return "?"

    def _wait_ready(self, deadline):
        super()._wait_ready(deadline)
        c = httpc.Client(self.port, timeout=5)
        last = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                st, _, n = c.get(self.target(f"/fresh/1k.bin?probe={self.starts}"), self.host)
                if st == 200 and n == 1024:
                    c.close()
                    return
                last = f"status {st}, {n} bytes"
            except OSError as e:
                last = str(e)
            c.close()
            time.sleep(0.2)
        raise StartError(self._why(f"no 200 through the proxy ({last})"))


def _first_line(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        text = (out.stdout or "") + (out.stderr or "")
        return text.strip().splitlines()[0] if text.strip() else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


class Larder(Product):
    name = "larder"
    binary = "larder"

    def available(self):
        return os.access(self.env.larder_bin, os.X_OK)

    def version(self):
        return _first_line([self.env.larder_bin, "--version"])

    def _argv(self):
        d = self.dir
        return [self.env.larder_bin, "--listen", f"127.0.0.1:{self.port}", "--workers", "1",
                "--cache-dir", os.path.join(d, "cache"), "--cache-size", "1G", "--max-object-size", "64M",
                "--access-log", os.path.join(d, "access.log"), "--error-log", os.path.join(d, "error.log"),
                "--log-level", "warn", "--max-client-connections", "20000",
                "--client-idle-timeout", "300s", "--upstream-idle-timeout", "300s",
                "--upstream-max-idle-per-origin", "64", "--visible-hostname", "larder"]

    def _logs(self):
        return [os.path.join(self.dir, "error.log"), self.stderr, self.stdout]


class Squid(Product):
    name = "squid"
    binary = "squid"
    package = "squid"

    def version(self):
        return _first_line(["squid", "-v"])

    def _prepare(self):
        render("squid.conf", os.path.join(self.dir, "squid.conf"), DIR=self.dir, PORT=self.port,
               ORIGIN_PORT=self.env.origin.port)

    def _argv(self):
        return ["squid", "-N", "-f", os.path.join(self.dir, "squid.conf")]

    def _logs(self):
        return [os.path.join(self.dir, "cache.log"), self.stderr]


class NginxCache(Product):
    name = "nginx"
    binary = "nginx"
    package = "nginx"
    forward = False

    def version(self):
        return _first_line(["nginx", "-v"])

    def _prepare(self):
        for sub in ("cache", "tmp"):
            os.makedirs(os.path.join(self.dir, sub))
        render("nginx-cache.conf", os.path.join(self.dir, "nginx.conf"), DIR=self.dir, PORT=self.port,
               ORIGIN_PORT=self.env.origin.port)

    def _argv(self):
        return ["nginx", "-c", os.path.join(self.dir, "nginx.conf"), "-p", self.dir, "-e",
                os.path.join(self.dir, "error.log")]

    def _logs(self):
        return [os.path.join(self.dir, "error.log"), self.stderr]


class Varnish(Product):
    name = "varnish"
    binary = "varnishd"
    package = "varnish"
    forward = False

    def version(self):
        return _first_line(["varnishd", "-V"])

    def _prepare(self):
        render("varnish.vcl", os.path.join(self.dir, "bench.vcl"), ORIGIN_PORT=self.env.origin.port)

    def _argv(self):
        # One thread pool. Varnish needs one worker thread per connection with a request in progress, so
        # max must cover the largest client count (100 in scenario 6); they all share core 1.
        return ["varnishd", "-F", "-n", os.path.join(self.dir, "work"), "-a", f"127.0.0.1:{self.port}",
                "-T", "none", "-f", os.path.join(self.dir, "bench.vcl"), "-s", "malloc,256m",
                "-p", "thread_pools=1", "-p", "thread_pool_min=10", "-p", "thread_pool_max=250",
                "-p", "default_grace=0", "-p", "timeout_idle=300"]


class TrafficServer(Product):
    name = "ats"
    binary = "traffic_server"
    package = "trafficserver"

    def version(self):
        return _first_line(["traffic_server", "-V"])

    def _prepare(self):
        d = self.dir
        etc = os.path.join(d, "etc")
        shutil.copytree("/etc/trafficserver", etc)
        for sub in ("cache", "run", "log"):
            os.makedirs(os.path.join(d, sub))
        for name in ("records.config", "logging.yaml", "storage.config"):
            render(os.path.join("ats", name), os.path.join(etc, name), DIR=d, PORT=self.port)
        render(os.path.join("ats", "runroot.yaml"), os.path.join(d, "runroot.yaml"), DIR=d)
        with open(os.path.join(etc, "remap.config"), "w") as f:
            f.write("# forward proxy: no remap rules\n")
        with open(os.path.join(etc, "plugin.config"), "w") as f:
            f.write("")

    def _argv(self):
        return ["traffic_server", f"--run-root={os.path.join(self.dir, 'runroot.yaml')}"]

    def _logs(self):
        return [os.path.join(self.dir, "log", "diags.log"), self.stderr]


class Floor(Product):
    """Not a cache: bench/floor/floor.c answers from memory with one writev and nothing else, with the
    kernel's default socket settings. Shown beside the caches for fresh hits as the least the kernel's
    TCP lets any of them spend per response; never counted as a peer."""

    name = "floor"
    binary = "larder-floor"

    def available(self):
        return bool(self.env.floor_bin) and os.access(self.env.floor_bin, os.X_OK)

    def version(self):
        return "bench/floor/floor.c"

    def _argv(self):
        return [self.env.floor_bin, str(self.port), os.path.join(self.env.origin.dir, "files")]


ALL = [Larder, Squid, NginxCache, Varnish, TrafficServer, Floor]
# Columns that are references, not peers: left out of "larder vs best peer".
REFERENCES = {"floor"}
