"""The seven scenarios. Each takes the bench environment and a started product and returns a dict of
measurements plus a list of notes (anything that makes a number doubtful: socket errors, non-2xx
responses, traffic that should not have reached the origin, connections the proxy dropped)."""

import json
import os
import resource
import subprocess
import sys
import time

import httpc
import procstat

HERE = os.path.dirname(os.path.abspath(__file__))
WRK_LUA = os.path.join(HERE, "wrk.lua")


# Notes starting with SHARED are the same text for every cell they mark (one footnote for all).
SHARED = "="
CONTENDED = 0.25
# A CPU-per-request measurement during which other processes took more than this share of the proxy's
# core or of the client core measures the machine as much as the product: it is taken again, up to
# ATTEMPTS times in all, and the quietest attempt is kept. The same rule for every product.
QUIET = 0.10
ATTEMPTS = 3


class Run:
    """What one scenario run produced: values for the table, raw details for the JSON, and notes."""

    def __init__(self):
        self.values = {}
        self.raw = {}
        self.notes = []

    def as_dict(self):
        raw = {k: v for k, v in self.raw.items() if not k.startswith("_")}
        return {"values": self.values, "raw": raw, "notes": self.notes}


def _cpu_by_pid(pids):
    return {p: procstat.cpu_seconds([p]) for p in pids}


def wrk(env, product, path, duration, mode="one", n=1, conns=50, latency=False):
    """Runs wrk from the client core against the product; returns wrk's numbers plus the proxy's CPU
    seconds, what else ran on the proxy core, and the origin log lines written meanwhile."""
    e = os.environ.copy()
    e.update(BENCH_MODE=mode, BENCH_PREFIX=product.wrk_prefix(), BENCH_HOST=product.host, BENCH_PATH=path,
             BENCH_N=str(n))
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, int(round(duration)))}s", "--timeout", "10s", "-s", WRK_LUA,
            f"http://127.0.0.1:{product.port}/"]
    if latency:
        argv.insert(1, "--latency")
    product.repin()
    pids = product.pids()
    pinned = env.proxy_cpus is None or procstat.affinity_ok(pids, env.proxy_cpus)
    off = env.origin.log_offset()
    cpu0 = _cpu_by_pid(pids)
    core0 = sum(procstat.core_busy_seconds(c) for c in env.proxy_cpus or ())
    # The client core: wrk, the origin and this script should be all that runs there.
    origin_pids = env.origin.pids()
    ocpu0 = procstat.cpu_seconds(origin_pids)
    ccore0 = sum(procstat.core_busy_seconds(c) for c in env.client_cpus or ())
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    out = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=duration + 120)
    wall = time.monotonic() - t0
    cpu1 = _cpu_by_pid(set(pids) | set(product.pids()))
    core1 = sum(procstat.core_busy_seconds(c) for c in env.proxy_cpus or ())
    ccore1 = sum(procstat.core_busy_seconds(c) for c in env.client_cpus or ())
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    self1 = resource.getrusage(resource.RUSAGE_SELF)
    ours = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) + \
           (self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime) + \
           (procstat.cpu_seconds(origin_pids) - ocpu0)
    time.sleep(0.3)  # the origin logs a request when it has sent the response
    lines = env.origin.log_lines(off)
    js = None
    for line in out.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            js = json.loads(line[len("BENCH_JSON "):])
    if js is None:
        raise RuntimeError(f"wrk failed (rc {out.returncode}): {out.stderr.strip()} {out.stdout[-500:]}")
    cpu = sum(cpu1[p] - cpu0.get(p, 0.0) for p in cpu1)
    secs = js["duration_us"] / 1e6
    js.update(cpu_s=round(cpu, 3), wall_s=round(wall, 3), proxy_core_busy_s=round(core1 - core0, 3),
              client_core_busy_s=round(ccore1 - ccore0, 3), client_side_cpu_s=round(ours, 3),
              origin_requests=len(lines), origin_304=sum(1 for x in lines if x["status"] == 304),
              origin_200=sum(1 for x in lines if x["status"] == 200), seconds=secs, pinned=pinned,
              rps=js["requests"] / secs if secs else 0.0,
              req_per_cpu_s=js["requests"] / cpu if cpu > 0 else None)
    js["_lines"] = lines
    js["other_share"] = max(0.0, (js["proxy_core_busy_s"] - js["cpu_s"]) / secs) if secs else 0.0
    js["client_other_share"] = max(0.0, (js["client_core_busy_s"] - js["client_side_cpu_s"]) / secs) if secs else 0.0
    return js


def quiet(measure):
    """Runs measure(attempt) (a wrk run and whatever goes with it) until other processes left the proxy's
    core and the client core alone enough (QUIET), at most ATTEMPTS times; returns the quietest result,
    with how many attempts it took and the shares of every attempt."""
    best, noise_seen = None, []
    for attempt in range(ATTEMPTS):
        r = measure(attempt)
        noise = max(r["other_share"], r["client_other_share"])
        noise_seen.append(round(noise, 3))
        if best is None or noise < max(best["other_share"], best["client_other_share"]):
            best = r
        if noise <= QUIET:
            break
    best["attempts"] = len(noise_seen)
    best["attempt_noise"] = noise_seen
    return best


def wrk_notes(r, run, hits_expected=False):
    errs = {k[4:]: r[k] for k in ("err_connect", "err_read", "err_write", "err_timeout") if r[k]}
    if errs:
        run.notes.append("wrk socket errors (" + ", ".join(f"{k} {v}" for k, v in errs.items())
                         + f") in {r['requests']} requests; a read error is usually the proxy closing a keep-alive"
                         " connection, so wrk reconnects")
    if r["err_status"]:
        run.notes.append(f"{r['err_status']} of {r['requests']} responses were not 2xx/3xx")
    if hits_expected and r["origin_requests"] > max(1, r["requests"] // 100):
        run.notes.append(f"{r['origin_requests']} of {r['requests']} requests reached the origin (expected hits)")
    if max(r["other_share"], r["client_other_share"]) > CONTENDED:
        run.notes.append(SHARED + f"other processes used more than {CONTENDED:.0%} of the proxy's core or of the "
                         "client core during the measurement (the machine was not quiet; see other_share and "
                         "client_other_share in the JSON)")


def prime(product, path, times=2):
    c = httpc.Client(product.port)
    try:
        for _ in range(times):
            st, _, n = c.get(product.target(path), product.host)
    finally:
        c.close()
    time.sleep(0.3)  # stores that write asynchronously (larder's writer thread, nginx's temp file rename)
    return st, n


def s1_fresh_1k(env, product, rep):
    run = Run()
    prime(product, "/fresh/1k.bin")
    if env.warmup:
        wrk(env, product, "/fresh/1k.bin", env.warmup)
    r = quiet(lambda attempt: wrk(env, product, "/fresh/1k.bin", env.duration, latency=True))
    run.raw = r
    run.values = {"rps": r["rps"], "p50_ms": r["lat_p50_us"] / 1000, "p99_ms": r["lat_p99_us"] / 1000,
                  "req_per_cpu": r["req_per_cpu_s"]}
    wrk_notes(r, run, hits_expected=True)
    return run


def s2_fresh_1m(env, product, rep):
    run = Run()
    prime(product, "/fresh/1m.bin")
    if env.warmup:
        wrk(env, product, "/fresh/1m.bin", env.warmup)
    r = quiet(lambda attempt: wrk(env, product, "/fresh/1m.bin", env.duration))
    run.raw = r
    run.values = {"mbps": r["bytes"] / r["seconds"] / 1e6, "req_per_cpu": r["req_per_cpu_s"]}
    wrk_notes(r, run, hits_expected=True)
    return run


def s3_stale_304(env, product, rep):
    run = Run()
    base = f"/stale/r{rep}/"
    c = httpc.Client(product.port)
    try:
        for i in range(env.stale_urls):
            c.get(product.target(f"{base}{i}"), product.host)
    finally:
        c.close()
    time.sleep(0.3)
    r = quiet(lambda attempt: wrk(env, product, base, env.duration, mode="cycle", n=env.stale_urls))
    run.raw = r
    share = r["origin_304"] / r["requests"] if r["requests"] else 0.0
    run.values = {"rps": r["rps"], "req_per_cpu": r["req_per_cpu_s"], "reval_share": share}
    wrk_notes(r, run)
    if share < 0.95:
        run.notes.append(f"only {share:.0%} of requests were revalidated with the origin "
                         f"({r['origin_304']} 304s, {r['origin_200']} 200s for {r['requests']} requests)")
    return run


def s4_stale_herd(env, product, rep):
    run = Run()
    path = f"/stale1/r{rep}-{product.starts}"
    prime(product, path, times=1)
    time.sleep(1.2)  # start with a stale object
    r = wrk(env, product, path, env.herd_seconds, conns=50)
    wrk_notes(r, run)
    lines = [x for x in r["_lines"] if x["uri"] == path]
    # max-age=1: one staleness window per second, plus the first one (the object is already stale when
    # the run starts), so a cache that revalidates once per window sends D+1 conditionals in D seconds.
    windows = 1 + r["seconds"] / 1.0
    cond = sum(1 for x in lines if x["conditional"])
    full = sum(1 for x in lines if x["status"] == 200)
    run.raw = dict(r, windows=windows, conditional=cond, full_200=full, uncond=len(lines) - cond)
    run.values = {"cond_per_window": cond / windows if windows else None, "full_refetch": full}
    return run


def larder_counters(product, names):
    """larder's own counters (GET /larder/metrics), for what only it can say; {} for the peers."""
    if product.name != "larder":
        return {}
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", product.port, timeout=10)
    try:
        c.request("GET", "/larder/metrics", headers={"Host": f"127.0.0.1:{product.port}", "Connection": "close"})
        text = c.getresponse().read().decode()
    finally:
        c.close()
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] in names:
            out[parts[0]] = int(parts[1])
    return out


def s5_cold(env, product, rep):
    run = Run()
    names = ("cache_stores", "store_writer_begins_refused")

    def measure(attempt):
        c0 = larder_counters(product, names)
        # A fresh prefix for each attempt: the URLs of the one before are cached now.
        r = wrk(env, product, f"/cold/{product.name}-r{rep}-{product.starts}-{os.getpid()}-a{attempt}/", env.duration,
                mode="unique")
        r["_counters"] = (c0, larder_counters(product, names))
        return r

    r = quiet(measure)
    c0, c1 = r["_counters"]
    run.raw = r
    if c1:
        stored = c1.get("cache_stores", 0) - c0.get("cache_stores", 0)
        refused = c1.get("store_writer_begins_refused", 0) - c0.get("store_writer_begins_refused", 0)
        r["larder_stored"] = stored
        r["larder_not_stored_writer_behind"] = refused
        if refused:
            run.notes.append(f"larder stored {stored} of {stored + refused} cacheable responses; {refused} went through "
                             "unstored because its store writer was too far behind (16384 operations or 64 MiB queued; it shares the one core)")
    run.values = {"rps": r["rps"], "req_per_cpu": r["req_per_cpu_s"]}
    wrk_notes(r, run)
    if r["origin_200"] < r["requests"] * 0.95:
        run.notes.append(f"only {r['origin_200']} origin fetches for {r['requests']} unique URLs")
    return run


def herd_client(env, product, path, clients):
    argv = [sys.executable, os.path.join(HERE, "herd.py"), "--port", str(product.port), "--target",
            product.target(path), "--host", product.host, "--clients", str(clients), "--timeout",
            str(env.herd_timeout)]
    product.repin()
    out = subprocess.run(argv, capture_output=True, text=True, timeout=env.herd_timeout + 60)
    if out.returncode != 0:
        raise RuntimeError(f"herd client failed: {out.stderr.strip()[-800:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def s6_thundering(env, product, rep):
    run = Run()
    tok = f"/slow/{product.name}-r{rep}-{product.starts}"
    off = env.origin.log_offset()
    single = herd_client(env, product, tok + "-single", 1)
    herd = herd_client(env, product, tok + "-herd", env.herd_clients)
    time.sleep(1.0)  # let a fetch that outlived its clients finish and be logged
    lines = env.origin.log_lines(off)
    fetches = sum(1 for x in lines if x["uri"] == tok + "-herd")
    single_fetches = sum(1 for x in lines if x["uri"] == tok + "-single")
    run.raw = {"single": single, "herd": herd, "upstream_fetches": fetches, "single_upstream_fetches": single_fetches}
    t1, tn = single["t_last"], herd["t_last"]
    run.values = {"upstream_fetches": fetches, "t_last_s": tn, "ratio_single": (tn / t1) if tn and t1 else None}
    if herd["failed"] or single["failed"]:
        run.notes.append(f"{herd['failed']} of {herd['clients']} herd clients (and {single['failed']} single) did not "
                         f"get a whole 200 response (statuses {herd['statuses']}, lengths {herd['body_lengths']})")
    wrong = [n for n in herd["body_lengths"] + single["body_lengths"] if n != 16 << 20]
    if wrong:
        run.notes.append(f"bodies of the wrong length: {wrong}")
    return run


def _idle_measure(env, product, path):
    prime(product, path)
    time.sleep(0.5)
    before = procstat.memory_kib(product.pids())
    argv = [sys.executable, os.path.join(HERE, "idle.py"), "--port", str(product.port), "--target",
            product.target(path), "--host", product.host, "--conns", str(env.idle_conns)]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"idle client: {line!r}")
        ready = json.loads(line[6:])
        time.sleep(1.0)
        after = procstat.memory_kib(product.pids())
        p.stdin.write("\n")
        p.stdin.flush()
        line = p.stdout.readline()
        done = json.loads(line[5:]) if line.startswith("DONE ") else {"still_open": None, "closed": None}
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return {"path": path, "before_kib": before, "after_kib": after, "client": ready, "check": done}


def s7_idle(env, product, rep):
    """Needs a freshly started product (the bench restarts it): RSS then reflects connections, not
    cached objects from the other scenarios. If the proxy closed the connections after answering a hit,
    it is restarted and measured again with a request that is revalidated instead (noted)."""
    run = Run()
    m = _idle_measure(env, product, "/fresh/1k.bin")
    first = m
    still = m["check"].get("still_open")
    if still is not None and still < m["client"]["ok"] / 2:
        run.notes.append(f"after a fresh hit the proxy closed {m['check']['closed']} of {m['client']['ok']} "
                         "keep-alive connections, so RSS was measured again (fresh process) with connections "
                         "whose one request was a revalidated stale hit (/stale/, max-age=0)")
        product.stop()
        product.start()
        m = _idle_measure(env, product, f"/stale/idle-r{rep}")
    ok = m["client"]["ok"]
    still = m["check"].get("still_open")
    run.raw = {"measured": m, "first_attempt": first if first is not m else None}
    valid = ok > 0 and (still is None or still >= ok / 2)
    run.values = {"rss_mib": m["after_kib"]["rss"] / 1024 if valid else None,
                  "kib_per_conn": (m["after_kib"]["rss"] - m["before_kib"]["rss"]) / ok if valid else None}
    if ok < env.idle_conns:
        run.notes.append(f"only {ok} of {env.idle_conns} connections got their response "
                         f"({m['client']['failed']} failed)")
    if still is not None and still < ok:
        run.notes.append(f"{m['check']['closed']} of {ok} idle connections were closed by the proxy before the "
                         "end of the measurement" + ("" if valid else "; no RSS figure is given"))
    return run


SCENARIOS = {
    1: s1_fresh_1k,
    2: s2_fresh_1m,
    3: s3_stale_304,
    4: s4_stale_herd,
    5: s5_cold,
    6: s6_thundering,
    7: s7_idle,
}
