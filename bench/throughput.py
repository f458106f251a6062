"""Proxy overhead: `proxy_throughput_ratio`.

wrk (one thread, 32 keep-alive connections, 5 s) against the backend directly, then
through nginx with the Host of an Ingress, alternating twice in the same run so that a
change of the shared machine's load hits both sides alike. The ratio is the mean
requests/s through nginx over the mean direct. On this 2-core machine the proxied run has
three busy processes (wrk, edge nginx, backend nginx) on two cores, the direct run two, so
the figure includes the CPU the proxy takes from the others, not only its latency.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
from typing import Any

import cluster
from edge import BenchEdge

THREADS = 1
CONNECTIONS = 32
SECONDS = 5
ROUNDS = 2


def wrk(url: str, host: str | None = None, headers: tuple[str, ...] = ()) -> float:
    """Requests/s of one wrk run; every answer must be a 2xx."""
    binary = shutil.which("wrk")
    assert binary, "wrk is missing: run `make setup` (lab/host-packages.sh installs it)"
    command = [binary, f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{SECONDS}s"]
    if host:
        command += ["-H", f"Host: {host}"]
    for header in headers:
        command += ["-H", header]
    output = subprocess.run(
        [*command, url], capture_output=True, text=True, check=True, timeout=SECONDS + 30
    ).stdout
    assert "Non-2xx" not in output and "Socket errors" not in output, output
    found = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    assert found, output
    return float(found[1])


def proxy_throughput(edge: BenchEdge) -> dict[str, Any]:
    app = edge.apps[-1]
    direct_url = f"http://{cluster.pod_address(0)}:{edge.backend.port}/"
    proxied_url = f"http://127.0.0.1:{edge.nginx.http_port}/"
    direct, proxied = [], []
    for _ in range(ROUNDS):
        direct.append(wrk(direct_url))
        proxied.append(wrk(proxied_url, app.host))
    return {
        "ratio": round(statistics.fmean(proxied) / statistics.fmean(direct), 3),
        "direct_rps": [round(r) for r in direct],
        "proxied_rps": [round(r) for r in proxied],
        "tool": f"wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS}s, {ROUNDS} rounds each",
    }
