#!/usr/bin/env python3
"""larder side by side with Squid, nginx proxy_cache, Varnish and Apache Traffic Server.

Run through bench/run.sh, which installs what is missing, builds larder and starts this on the client
core. See bench/README.md for what is measured and how each product is configured.
"""

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
import traceback

import products
import report
import scenarios

BENCH_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Scenarios a product cannot take part in, and why (shown as a footnote in place of a number).
UNSUPPORTED = {
    **{("floor", s): "floor is a reference server for fresh hits, not a cache" for s in (3, 4, 5, 6, 7)},
    ("nginx", 3): "nginx proxy_cache does not store a response with Cache-Control: max-age=0 (the upstream module "
                  "marks it uncacheable) and its validity has 1-second resolution, so it cannot be made to revalidate "
                  "on every request: each request would be a full 200 fetch, not a 304 revalidation.",
}


class Env:
    pass


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one short repetition (~3 minutes)")
    ap.add_argument("--only", default="", help="comma-separated products: larder,squid,nginx,varnish,ats,floor")
    ap.add_argument("--scenarios", default="1,2,3,4,5,6,7", help="comma-separated scenario numbers")
    ap.add_argument("--reps", type=int, default=None, help="repetitions (default 3, --quick 1)")
    ap.add_argument("--duration", type=int, default=None, help="whole seconds per wrk measurement (default 5, quick 2)")
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--larder", default=os.environ.get("LARDER_BIN", ""), help="path of the larder binary")
    ap.add_argument("--floor", default="", help="path of the reference server built from bench/floor/floor.c")
    ap.add_argument("--keep", action="store_true", help="keep the temp directory (configs, logs)")
    ap.add_argument("--out", default=os.path.join(BENCH_DIR, "results"))
    return ap.parse_args()


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            mem = f"{int(f.readline().split()[1]) / 1048576:.1f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(), "memory": mem,
            "loadavg_start": open("/proc/loadavg").read().split()[:3]}


def setup_env(args):
    env = Env()
    env.quick = args.quick
    env.keep = args.keep
    env.reps = args.reps or (1 if args.quick else 3)
    env.duration = args.duration or (2 if args.quick else 5)
    env.warmup = 0 if args.quick else 1
    env.herd_seconds = 3 if args.quick else 5
    env.herd_clients = 100
    env.herd_timeout = 120
    env.stale_urls = 1000
    ncpu = os.cpu_count() or 1
    if ncpu >= 2:
        env.client_cpus, env.proxy_cpus = {0}, {1}
    else:
        env.client_cpus, env.proxy_cpus = None, None
    env.larder_bin = os.path.abspath(args.larder) if args.larder else ""
    env.floor_bin = os.path.abspath(args.floor) if args.floor else ""
    env.started = []
    env.tmp = tempfile.mkdtemp(prefix="larder-bench.")
    os.chmod(env.tmp, 0o755)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    env.idle_conns = min(args.idle_conns, hard - 1000)
    return env


def cleanup(env, keep):
    for d in reversed(env.started):
        try:
            d.stop(timeout=10)
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass
    if not keep:
        shutil.rmtree(env.tmp, ignore_errors=True)


def run_product_block(env, prod, rep, wanted, runs, table, log, errlog):
    """One product's turn within a repetition: scenarios 1-6 on one process, scenario 7 on a fresh one."""
    name = prod.name
    main = [s for s in wanted if s != 7]
    phases = ([main] if main else []) + ([[7]] if 7 in wanted else [])
    for phase in phases:
        todo = [s for s in phase if (name, s) not in UNSUPPORTED]
        if not todo:
            continue
        try:
            prod.start()
        except Exception as e:  # noqa: BLE001
            msg = f"{name} did not start: {str(e).strip()[:400]}"
            log(msg)
            for s in todo:
                runs[name][s].append(None)
                table.note(s, name, msg)
            continue
        for s in todo:
            t0 = time.monotonic()
            try:
                r = scenarios.SCENARIOS[s](env, prod, rep)
                d = r.as_dict()
            except Exception as e:  # noqa: BLE001
                d = None
                msg = f"{name}, scenario {s}, rep {rep}: {type(e).__name__}: {str(e).strip()[:300]}"
                log("  ERROR " + msg)
                log(traceback.format_exc(limit=3))
                table.note(s, name, msg)
            if not prod.alive():
                rc = prod.proc.returncode if prod.proc else None
                msg = f"{name} exited (status {rc}) during scenario {s}, rep {rep}: " + \
                      products.tail(prod._logs()[0], 5).strip()[-300:]
                log("  CRASH " + msg)
                table.note(s, name, msg)
                d = None
                prod.stop()
                try:
                    prod.start()
                except Exception as e:  # noqa: BLE001
                    log(f"  restart failed: {e}")
                    runs[name][s].append(d)
                    break
            runs[name][s].append(d)
            if d:
                for n in d["notes"]:
                    if n.startswith(scenarios.SHARED):
                        table.note(s, name, n[len(scenarios.SHARED):])
                    else:
                        table.note(s, name, f"{name}, scenario {s}: {n}")
                vals = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in d["values"].items())
                log(f"  rep {rep} {name:8s} s{s} ({time.monotonic() - t0:4.1f} s): {vals}")
        prod.stop()
        if name == "larder":
            lines = products.tail(os.path.join(prod.dir, "error.log"), 100000).splitlines()
            if lines:
                errlog.append({"rep": rep, "scenarios": todo, "lines": len(lines), "first": lines[:5]})
                log(f"  larder error log: {len(lines)} lines, first: {lines[0][:200]}")
        if not env.keep:
            # Caches of a full run add up to gigabytes; free them as we go rather than all at the end.
            shutil.rmtree(prod.dir, ignore_errors=True)


def main():
    args = parse_args()
    unknown = {x.strip() for x in args.only.split(",") if x.strip()} - {c.name for c in products.ALL}
    if unknown:
        sys.exit(f"unknown products: {', '.join(sorted(unknown))}")
    env = setup_env(args)
    stopping = []

    def on_signal(signum, frame):
        if not stopping:
            stopping.append(signum)
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    started = datetime.datetime.now(datetime.timezone.utc)
    wanted = [int(x) for x in args.scenarios.split(",") if x.strip()]
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    classes = [c for c in products.ALL if not only or c.name in only]
    env.origin = products.Origin(env)
    prods = [c(env) for c in classes]
    names = [p.name for p in prods]
    table = report.Table(names, wanted)
    runs = {p.name: {s: [] for s in wanted} for p in prods}
    info = {"machine": machine(), "started": started.isoformat(timespec="seconds"),
            "settings": {"reps": env.reps, "duration_s": env.duration, "warmup_s": env.warmup,
                         "herd_seconds": env.herd_seconds, "herd_clients": env.herd_clients,
                         "idle_conns": env.idle_conns, "stale_urls": env.stale_urls, "quick": env.quick,
                         "proxy_cpus": sorted(env.proxy_cpus or []), "client_cpus": sorted(env.client_cpus or [])},
            "versions": {}, "larder_error_log": []}
    for (pname, s), why in UNSUPPORTED.items():
        if pname in names and s in wanted:
            table.note(s, pname, why)
    if env.idle_conns < args.idle_conns and 7 in wanted:
        for p in names:
            table.note(7, p, f"RLIMIT_NOFILE allows only {env.idle_conns} connections, not {args.idle_conns}")
    if env.proxy_cpus is None:
        log("warning: fewer than 2 CPUs; nothing is pinned")
    try:
        env.origin.start()
        avail = []
        for p in prods:
            if p.available():
                info["versions"][p.name] = p.version()
                avail.append(p)
            else:
                for s in wanted:
                    table.note(s, p.name, f"{p.name}: {p.binary} not found")
        log(f"origin on 127.0.0.1:{env.origin.port}; temp dir {env.tmp}")
        for rep in range(1, env.reps + 1):
            for p in avail:
                run_product_block(env, p, rep, wanted, runs, table, log, info["larder_error_log"])
        status = 0
    except KeyboardInterrupt:
        log("interrupted: stopping everything the bench started")
        status = 130
    except Exception:  # noqa: BLE001 - report what was measured so far, then fail
        log(traceback.format_exc())
        status = 1
    finally:
        cleanup(env, args.keep)
    info["machine"]["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    md, medians = table.render(runs)
    m = info["machine"]
    header = [
        f"## larder bench, {info['started']}{' (--quick)' if env.quick else ''}",
        "",
        f"Machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}, {m['memory']} RAM; "
        f"load average {' '.join(m['loadavg_start'])} at start, {' '.join(m['loadavg_end'])} at end.",
        f"Proxy pinned to CPU {sorted(env.proxy_cpus or [])}, wrk/clients/origin to CPU {sorted(env.client_cpus or [])}. "
        f"{env.reps} repetition(s), medians; wrk -t1 -c50 -d{env.duration:g}s.",
        "Versions: " + "; ".join(f"{k}: {v}" for k, v in info["versions"].items()),
        "larder, squid and ats are forward proxies (absolute-form requests); nginx and varnish are reverse "
        "proxies (origin-form requests): what is compared is the cache engine.",
        "",
    ]
    def shares(key):
        return sorted(d["raw"][key] for p in runs.values() for lst in p.values() for d in lst
                      if d and key in d.get("raw", {}))

    ps, cs = shares("other_share"), shares("client_other_share")
    if ps and cs:
        header.insert(-1, f"Other processes during the wrk measurements: on the proxy's core median "
                          f"{statistics.median(ps):.0%} (max {ps[-1]:.0%}), on the client core median "
                          f"{statistics.median(cs):.0%} (max {cs[-1]:.0%}) of the run time.")
    tries = [d["raw"]["attempts"] for p in runs.values() for lst in p.values() for d in lst
             if d and "attempts" in d.get("raw", {})]
    if tries:
        header.insert(-1, f"CPU-per-request measurements taken again because other processes used more than "
                          f"{scenarios.QUIET:.0%} of a core meanwhile: {sum(1 for t in tries if t > 1)} of {len(tries)} "
                          f"({sum(t - 1 for t in tries)} extra runs; the quietest of at most {scenarios.ATTEMPTS} "
                          "counts, for every product alike).")
    text = "\n".join(header) + md
    if info["larder_error_log"]:
        n = sum(e["lines"] for e in info["larder_error_log"])
        text += f"\n\nlarder's error log (level warn) had {n} line(s); first: {info['larder_error_log'][0]['first'][0]}"
    print(text)
    os.makedirs(args.out, exist_ok=True)
    stamp = started.strftime("%Y%m%d-%H%M%S")
    path = os.path.join(args.out, f"bench-{stamp}{'-quick' if env.quick else ''}.json")
    with open(path, "w") as f:
        json.dump(dict(info, runs=runs, medians=medians, footnotes=table.notes, table=text), f, indent=1)
    with open(os.path.join(args.out, f"bench-{stamp}{'-quick' if env.quick else ''}.md"), "w") as f:
        f.write(text + "\n")
    log(f"raw results: {path}")
    if args.keep:
        log(f"kept: {env.tmp}")
    return status


if __name__ == "__main__":
    sys.exit(main())
