"""Where a proxied request's CPU goes: the edge's nginx worker, HAProxy and the minimal
nginx of peers.py, side by side under the same wrk load, for docs/benchmarks.md's account
of `edge_vs_haproxy_rps_ratio`.

    python bench/cpu_per_request.py [--json PATH] [--perf]

The three sides are those of `make bench`'s side by side (peers.py: 1k TLS hosts, the edge
in the default mode, one worker each). For each side and scheme (HTTP and HTTPS keep-alive):
wrk's requests/s and the proxy process's CPU per request from /proc/PID/stat (user and
system). Then, over HTTP, the system calls per request from `strace -c -f` over another wrk
run (tracing slows the process: only its counts are used), and with `--perf` the hottest
functions from `perf record` over a third (Debian's linux-perf). Runs outside `make bench`
(3-4 minutes of full load on both cores).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import peers
import report
import sync
import throughput
from edge import BenchEdge

STEP_TIMEOUT = 120.0
TICKS = os.sysconf("SC_CLK_TCK")
PERF_FREQUENCY = 999
TOP_FUNCTIONS = 12
TOP_SYSCALLS = 8
# strace -c's table: % time, seconds, usecs/call, calls, [errors,] syscall.
STRACE_ROW = re.compile(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)\s*$")
# perf report --stdio --no-children --sort dso,symbol: "  12.34%  nginx  [.] symbol", then
# the IPC columns after two spaces or more.
PERF_ROW = re.compile(r"^\s*([\d.]+)%\s+(\S+)\s+\[([.k])\]\s+(.+?)(?:\s{2,}.*)?$")
# perf report --sort dso: "  45.67%  ngx_http_lua_module.so", then the IPC columns.
PERF_OBJECT_ROW = re.compile(r"^\s*([\d.]+)%\s+(\S+)(?:\s{2,}.*)?$")


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of a process so far (/proc/PID/stat, fields 14 and 15)."""
    text = pathlib.Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2 :].split()  # after the command, which may hold spaces
    return int(fields[11]) / TICKS, int(fields[12]) / TICKS


def syscall_counts(strace_output: str) -> dict[str, int]:
    """Calls per system call from `strace -c`'s table (the total row left out)."""
    counts = {}
    for line in strace_output.splitlines():
        found = STRACE_ROW.match(line)
        if found and found[2] != "total":
            counts[found[2]] = int(found[1])
    if not counts:
        raise ValueError(f"no strace -c table in:\n{strace_output}")
    return counts


def hottest(perf_report: str) -> list[dict[str, Any]]:
    """The functions of `perf report`, hottest first: share, object, kernel or user."""
    rows = []
    for line in perf_report.splitlines():
        found = PERF_ROW.match(line)
        if found:
            share, dso, where, symbol = found.groups()
            rows.append(
                {
                    "percent": float(share),
                    "object": dso,
                    "kernel": where == "k",
                    "symbol": symbol,
                }
            )
    if not rows:
        raise ValueError(f"no perf report rows in:\n{perf_report[:2000]}")
    return rows


def by_object(perf_report: str) -> dict[str, float]:
    """Percent of the samples in each object (the kernel, nginx, the Lua module, libc...)."""
    shares = {}
    for line in perf_report.splitlines():
        found = PERF_OBJECT_ROW.match(line)
        if found and not line.lstrip().startswith("#"):
            shares[found[2]] = float(found[1])
    if not shares:
        raise ValueError(f"no perf report rows in:\n{perf_report[:2000]}")
    return shares


def _children(pid: int) -> list[int]:
    return [int(p) for p in pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _requests(rps: float) -> float:
    return rps * throughput.SECONDS


def per_request(pid: int, url: str, host: str) -> dict[str, Any]:
    """wrk's requests/s, and the process's user and system µs per request meanwhile."""
    user_before, system_before = cpu_seconds(pid)
    rps = throughput.wrk(url, host)
    user_after, system_after = cpu_seconds(pid)
    requests = _requests(rps)
    return {
        "requests_per_second": round(rps),
        "user_us_per_request": round((user_after - user_before) * 1e6 / requests, 1),
        "system_us_per_request": round((system_after - system_before) * 1e6 / requests, 1),
    }


def _traced(command: list[str], output: pathlib.Path, url: str, host: str) -> float:
    """wrk's requests/s while `command` (strace or perf, attached to a process, writing to
    `output`) runs; the tracer is stopped with SIGINT once wrk is done."""
    tracer = subprocess.Popen(
        [*command, "-o", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    time.sleep(0.5)  # attached before the load starts
    try:
        rps = throughput.wrk(url, host)
    finally:
        tracer.send_signal(signal.SIGINT)
        _, errors = tracer.communicate(timeout=60)
    if tracer.returncode not in (0, -signal.SIGINT, 128 + signal.SIGINT):
        raise RuntimeError(f"{command[0]} failed: {errors.decode(errors='replace')}")
    return rps


def syscalls_per_request(pid: int, url: str, host: str, scratch: pathlib.Path) -> dict[str, float]:
    table = scratch / f"strace-{pid}.txt"
    rps = _traced(["strace", "-c", "-f", "-p", str(pid)], table, url, host)
    counts = syscall_counts(table.read_text())
    requests = _requests(rps)
    top = sorted(counts.items(), key=lambda item: -item[1])[:TOP_SYSCALLS]
    return {
        "total": round(sum(counts.values()) / requests, 2),
        **{name: round(calls / requests, 2) for name, calls in top},
    }


def perf_profile(pid: int, url: str, host: str, scratch: pathlib.Path) -> dict[str, Any]:
    """The share of each object in the process's samples, and the hottest functions."""
    data = scratch / f"perf-{pid}.data"
    _traced(["perf", "record", "-q", "-F", str(PERF_FREQUENCY), "-p", str(pid)], data, url, host)

    def report_by(keys: str) -> str:
        command = ["perf", "report", "-i", str(data), "--stdio", "--no-children", "--sort", keys]
        return subprocess.run(
            command, capture_output=True, text=True, check=True, timeout=120
        ).stdout

    return {
        "objects_percent": by_object(report_by("dso")),
        "hottest": hottest(report_by("dso,symbol"))[:TOP_FUNCTIONS],
    }


def measure(scratch: pathlib.Path, with_perf: bool) -> dict[str, Any]:
    options = {"upstreams": "dynamic"}
    with BenchEdge(scratch / "edge", 1000, probes=0, agent_options=options, tls=True) as edge:
        sync.sync_from_start(edge, STEP_TIMEOUT)
        host = edge.apps[-1].host
        haproxy = peers.start_haproxy(scratch / "haproxy", edge)
        minimal = peers.start_minimal_nginx(scratch / "minimal-nginx", edge)
        try:
            minimal_master = int(minimal.pid_file.read_text())
            sides = {
                "edge": (edge.nginx_workers()[0], edge.nginx.http_port, edge.nginx.https_port),
                "haproxy": (int(haproxy.pid_file.read_text()), *_ports(haproxy)),
                "minimal_nginx": (_children(minimal_master)[0], *_ports(minimal)),
            }
            result: dict[str, Any] = {}
            for name, (pid, http_port, https_port) in sides.items():
                http = f"http://127.0.0.1:{http_port}/"
                https = f"https://127.0.0.1:{https_port}/"
                print(f"[cpu] {name} (pid {pid}, load {report.load_average()})", flush=True)
                result[name] = {
                    "http": per_request(pid, http, host),
                    "https": per_request(pid, https, host),
                    "http_syscalls_per_request": syscalls_per_request(pid, http, host, scratch),
                }
                if with_perf:
                    result[name]["http_perf"] = perf_profile(pid, http, host, scratch)
        finally:
            haproxy.stop()
            minimal.stop()
    return result


def _ports(daemon: peers.Daemon) -> tuple[int, int]:
    return daemon.http_port, daemon.https_port


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=pathlib.Path, help="write the result here too")
    parser.add_argument("--perf", action="store_true", help="and perf record's hottest functions")
    args = parser.parse_args(argv)
    started = report.load_average()
    with tempfile.TemporaryDirectory(prefix="edgeagent-cpu-") as scratch:
        result = measure(pathlib.Path(scratch), args.perf)
    document = {
        "load_average_at_start": started,
        "load_average_at_end": report.load_average(),
        "tool": f"wrk -t{throughput.THREADS} -c{throughput.CONNECTIONS} -d{throughput.SECONDS}s",
        "sides": result,
    }
    text = json.dumps(document, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
