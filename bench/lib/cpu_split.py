#!/usr/bin/env python3
"""Where a bench's CPU goes, per process kind, between two snapshots: CPU
time and wake-ups (voluntary context switches: each is a sleep on a socket
or latch and a wake-up later, which on a 2-core machine costs more than the
work in between).

  cpu_split.py snap OUT OLD_PORT NEW_PORT TURNOUT_PID   writes a snapshot
  cpu_split.py diff A B COUNT                            prints CPU µs per
                                                         unit of COUNT (e.g.
                                                         old's commits) and
                                                         wake-ups per unit

Kinds: old's client backends, walsender and each background process
("old bg walwriter"), the same of new, turnout's threads by name (proxy/server.cc and control/ name
them), pgbench, everything else. Processes that exit between the snapshots
are not counted: take both while the load runs.
"""
import json
import os
import subprocess
import sys

TICK = os.sysconf("SC_CLK_TCK")


def postmaster(port):
    out = subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True).stdout
    for part in out.split("pid=")[1:]:
        return int(part.split(",")[0])
    return -1


def stat(path):
    """(comm, ppid, utime + stime in ticks) of a /proc stat file."""
    with open(path) as f:
        s = f.read()
    comm = s[s.index("(") + 1:s.rindex(")")]
    rest = s[s.rindex(")") + 2:].split()
    return comm, int(rest[1]), int(rest[11]) + int(rest[12])


def wakeups(path):
    """Voluntary context switches of a /proc status file."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("voluntary_ctxt_switches:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def snap(out, old_port, new_port, turnout_pid):
    old_pm, new_pm = postmaster(old_port), postmaster(new_port)
    ticks, wakes = {}, {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        pid = int(d)
        try:
            comm, ppid, t = stat(f"/proc/{pid}/stat")
        except (OSError, ValueError, IndexError):
            continue
        if pid == turnout_pid:
            try:
                for tid in os.listdir(f"/proc/{pid}/task"):
                    tcomm, _, tt = stat(f"/proc/{pid}/task/{tid}/stat")
                    kind = tcomm if tcomm.startswith("turnout-") else "turnout-other"
                    ticks[kind] = ticks.get(kind, 0) + tt
                    wakes[kind] = wakes.get(kind, 0) + wakeups(f"/proc/{pid}/task/{tid}/status")
            except OSError:
                pass
            continue
        if pid in (old_pm, new_pm) or ppid in (old_pm, new_pm):
            side = "old" if old_pm in (pid, ppid) else "new"
            line = cmdline(pid)
            # A client's backend names its peer ("127.0.0.1(port)"); the
            # rest is the server's own (autovacuum, WAL writer,
            # checkpointer), whose work comes in bursts that a short run
            # catches or not.
            if "walsender" in line:
                kind = side + " walsender"
            elif "127.0.0.1(" in line or "[local]" in line:
                kind = side
            else:
                # "postgres: walwriter" and the like: which one wakes
                # matters (the walwriter per async commit, for one).
                title = line.split("postgres: ", 1)[1].strip() if "postgres: " in line else "postmaster"
                kind = f"{side} bg {title}"
        elif comm == "pgbench":
            kind = "pgbench"
        else:
            kind = "other"
        ticks[kind] = ticks.get(kind, 0) + t
        wakes[kind] = wakes.get(kind, 0) + wakeups(f"/proc/{pid}/status")
    with open(out, "w") as f:
        json.dump({"ticks": ticks, "wakeups": wakes}, f)


def diff(a, b, count):
    with open(a) as f:
        before = json.load(f)
    with open(b) as f:
        after = json.load(f)
    count = max(int(count), 1)
    order = ["old", "old walsender", "new", "turnout-io", "turnout-move", "turnout-feeder", "turnout-other",
             "pgbench", "other"]
    kinds = order + sorted(set(after["ticks"]) - set(order))

    def per_unit(what, scale, fmt, least):
        parts, total = [], 0.0
        for kind in kinds:
            v = (after[what].get(kind, 0) - before[what].get(kind, 0)) * scale / count
            total += v
            if v >= least:
                parts.append(f"{kind} {v:{fmt}}")
        return f"{', '.join(parts)}; total {total:{fmt}}"

    print(f"cpu µs per old commit: {per_unit('ticks', 1e6 / TICK, '.0f', 1)}")
    print(f"wake-ups per old commit: {per_unit('wakeups', 1, '.1f', 0.1)}")


if __name__ == "__main__":
    if sys.argv[1] == "snap":
        snap(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))
    elif sys.argv[1] == "diff":
        diff(sys.argv[2], sys.argv[3], sys.argv[4])
    else:
        sys.exit("usage: cpu_split.py snap OUT OLD_PORT NEW_PORT TURNOUT_PID | diff A B COUNT")
