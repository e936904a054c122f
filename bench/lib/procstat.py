"""Process accounting from /proc: the process tree of a product, its CPU time and its RSS.

Only reads /proc, plus sched_setaffinity on threads of processes the bench started itself.
"""

import os

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (which may contain spaces and parentheses)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def tree(root):
    """root and all its descendants that are still alive (zombies included)."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            ppid = int(_stat_fields(name)[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        if not os.path.exists(f"/proc/{pid}"):
            continue
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def cpu_seconds(pids):
    """utime + stime of these processes (all their threads, living and exited), in seconds."""
    ticks = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
            ticks += int(f[11]) + int(f[12])
        except (OSError, ValueError, IndexError):
            pass
    return ticks / CLK_TCK


def memory_kib(pids):
    """Sum of VmRSS, RssAnon, RssFile and RssShmem over these processes, in KiB."""
    keys = {"VmRSS:": "rss", "RssAnon:": "anon", "RssFile:": "file", "RssShmem:": "shmem"}
    out = {v: 0 for v in keys.values()}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    parts = line.split()
                    if parts and parts[0] in keys:
                        out[keys[parts[0]]] += int(parts[1])
        except OSError:
            pass
    return out


def pin(pids, cpus):
    """Pins every thread of these processes to the given CPU set. Some daemons (Traffic Server) reset
    the affinity of a thread after start, so the bench pins again before each measurement."""
    bad = 0
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                os.sched_setaffinity(int(tid), cpus)
            except OSError:
                bad += 1
    return bad


def affinity_ok(pids, cpus):
    """True when every thread of these processes may run only on `cpus`."""
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                if os.sched_getaffinity(int(tid)) != set(cpus):
                    return False
            except OSError:
                pass
    return True


def core_busy_seconds(cpu):
    """Time one CPU core was not idle since boot (user, nice, system, irq, softirq, steal), in seconds.
    The bench compares it with the CPU time of its own processes on that core to see what else ran
    there. Interrupt time is included because a process's stime also covers the softirq (loopback
    network) work done in its context, which /proc/stat books as softirq."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK
    return 0.0
