#!/usr/bin/env bash
# larder side by side with Squid, nginx proxy_cache, Varnish and Apache Traffic Server.
#
#   bench/run.sh [--quick] [--only larder,squid] [--reps N] [--scenarios 1,2,...] [--larder PATH] [--keep]
#
# Installs the missing Debian packages (without letting them start their services), builds larder in
# build-bench (Release) unless --larder is given, raises the open-files limit, then runs
# bench/lib/bench.py on CPU 0. Everything listens on 127.0.0.1 only. See bench/README.md.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"

larder=""
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[$i]}" in
        --larder) larder="${args[$((i + 1))]:-}" ;;
        --larder=*) larder="${args[$i]#--larder=}" ;;
        -h|--help) exec python3 "$here/lib/bench.py" --help ;;
    esac
done

# --- packages -------------------------------------------------------------------------------------
# binary -> Debian package
declare -A pkg_of=([squid]=squid [nginx]=nginx [varnishd]=varnish [traffic_server]=trafficserver
                   [wrk]=wrk [hyperfine]=hyperfine [taskset]=util-linux [python3]=python3)
missing=()
for bin in "${!pkg_of[@]}"; do
    command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || missing+=("${pkg_of[$bin]}")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "bench: missing packages ${missing[*]}; run as root or install them" >&2
        exit 1
    fi
    echo "bench: installing ${missing[*]}" >&2
    # Debian's packages start their daemons on install; policy-rc.d answering 101 forbids that. If the
    # machine already has a policy-rc.d, it is left alone (and so is its answer).
    made_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        made_policy=1
    fi
    trap '[ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >&2
    [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
    made_policy=0
    # Under systemd, a package may have started its service anyway (an existing policy-rc.d that
    # allows it): stop only the services of the packages installed just now.
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        for p in "${missing[@]}"; do
            case "$p" in
                squid|nginx|varnish|trafficserver) systemctl stop "$p" 2>/dev/null || true ;;
            esac
        done
    fi
fi

# --- larder ---------------------------------------------------------------------------------------
if [ -z "$larder" ]; then
    # larder's own build dependencies (quick when they are all there).
    [ -x "$repo/scripts/install-deps.sh" ] && "$repo/scripts/install-deps.sh" >&2
    echo "bench: building larder (Release) in $repo/build-bench" >&2
    cmake -S "$repo" -B "$repo/build-bench" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$repo/build-bench" -j2 --target larder >&2
    larder="$repo/build-bench/larder"
    args+=(--larder "$larder")
fi

# --- the reference server (bench/floor/floor.c: a column beside the caches, never a peer) --------
floor="$repo/build-bench/larder-floor"
mkdir -p "$repo/build-bench"
cc -O2 -Wall -Wextra -o "$floor" "$here/floor/floor.c" >&2
args+=(--floor "$floor")

# --- limits and CPUs ------------------------------------------------------------------------------
# Scenario 7 holds 10,000 client connections open: the client and each proxy need that many files.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cpu=0
[ "$(nproc)" -ge 2 ] || echo "bench: fewer than 2 CPUs, nothing will be pinned" >&2

# The bench (and through it wrk, its clients and the origin) runs on CPU 0; each proxy is pinned to
# CPU 1 by bench.py. On SIGINT/SIGTERM bench.py stops every process it started (their own process
# groups, by PID) before it exits; this trap forwards the signal to it.
taskset -c "$cpu" python3 "$here/lib/bench.py" "${args[@]}" &
bench_pid=$!
trap 'kill -TERM "$bench_pid" 2>/dev/null || true' INT TERM
set +e
wait "$bench_pid"
rc=$?
# A trapped signal interrupts the first wait: wait again for the cleanup to finish.
if kill -0 "$bench_pid" 2>/dev/null; then
    wait "$bench_pid"
    rc=$?
fi
exit "$rc"
