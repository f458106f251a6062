"""The dynamic mode at 10k Ingresses (`edgeagent run --upstreams dynamic`, nginx with the
Lua module): `dynamic_reloads_per_1000_endpoint_changes`,
`nginx_rss_growth_after_1000_endpoint_changes_pct`, `long_lived_broken_during_churn` and
`endpoint_change_to_traffic_10k_p99_ms`.

One edge node, synced from start. Then, in this order:

1. `LONG_LIVED` keep-alive connections through nginx, one per host, each sending a
   request every `ROUND_SECONDS` on the same socket for the whole burst and its
   aftermath; one that fails or is closed by nginx counts as broken;
2. the 1,000-write rolling update of churn.py (200 Services, 1 s), with nginx's memory
   (VmRSS summed over the master and its workers) before it and after the aftermath, and
   the agent's reloads; "served" is every new address in the agent's state.txt (written
   before each push) instead of the configuration, which holds no address here;
3. endpoint change to traffic: a Service of the 10k whose endpoints are all not ready
   (its host answers 503) gets them ready in one EndpointSlice write; the clock runs from
   the write to the first 200 for its host on a new connection, polled every 5 ms.
"""

from __future__ import annotations

import http.client
import pathlib
import threading
import time
from typing import Any

import change
import churn
import cluster
from edge import BenchEdge

LONG_LIVED = 20
ROUND_SECONDS = 0.1
POLL_INTERVAL = 0.005
# After a readiness flip: longer than the daemon's quiet period, so samples come alone.
SAMPLE_GAP_SECONDS = 0.3


def nginx_rss_kb(edge: BenchEdge) -> int:
    """VmRSS of nginx's master and workers, summed (shared pages counted in each)."""
    total = 0
    for pid in [edge.nginx.master_pid(), *edge.nginx_workers()]:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total


class LongLived:
    """Keep-alive connections that must stay open: any error or close counts as broken."""

    def __init__(self, edge: BenchEdge, apps: list[cluster.App]) -> None:
        self.connections = []
        for app in apps:
            connection = http.client.HTTPConnection("127.0.0.1", edge.nginx.http_port, timeout=10)
            connection.auto_open = 0  # never reconnect behind our back
            connection.connect()
            self.connections.append((app.host, connection))
        self.broken: set[str] = set()
        self.requests = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _round(self) -> None:
        for host, connection in self.connections:
            if host in self.broken:
                continue
            try:
                connection.request("GET", "/", headers={"Host": host})
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200 or answer.will_close:
                    self.broken.add(host)
                self.requests += 1
            except (OSError, http.client.HTTPException):
                self.broken.add(host)

    def _run(self) -> None:
        while not self._stop.wait(ROUND_SECONDS):
            self._round()

    def __enter__(self) -> LongLived:
        self._round()
        assert not self.broken, f"not even the first round worked: {self.broken}"
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._round()
        for _, connection in self.connections:
            connection.close()


def _set_ready(edge: BenchEdge, app: cluster.App, ready: bool) -> None:
    kind = cluster.Kinds(edge.api.emulator).endpoint_slices

    def change_readiness(current: dict[str, Any]) -> dict[str, Any]:
        for entry in current["endpoints"]:
            entry["conditions"] = {"ready": ready}
        return current

    edge.api.emulator.store.update(kind, app.namespace, app.name, change_readiness)


def _wait_status(edge: BenchEdge, host: str, status: int, timeout: float) -> float:
    """monotonic() of the first answer `status` for `host`."""
    deadline = time.monotonic() + timeout
    while edge.status(host) != status:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{host}: no {status} within {timeout} s")
        time.sleep(POLL_INTERVAL)
    return time.monotonic()


def endpoint_change_to_traffic(edge: BenchEdge, samples: int, timeout: float) -> dict[str, Any]:
    """`samples` readiness flips of Services the churn did not touch."""
    measured = []
    phases_before = edge.sync_phase_totals()
    first = churn.CHANGES // cluster.ENDPOINTS_PER_SERVICE
    for app in edge.apps[first : first + samples]:
        edge.api.call(_set_ready, edge, app, False)
        _wait_status(edge, app.host, 503, timeout)
        time.sleep(SAMPLE_GAP_SECONDS)
        edge.api.call(_set_ready, edge, app, True)
        written = time.monotonic()
        measured.append(round((_wait_status(edge, app.host, 200, timeout) - written) * 1000, 1))
        time.sleep(SAMPLE_GAP_SECONDS)
    mean_phases = {}
    for phase, (total, count) in edge.sync_phase_totals().items():
        syncs = count - phases_before[phase][1]
        if syncs:
            mean_phases[phase] = round((total - phases_before[phase][0]) / syncs, 3)
    return {
        "mean_sync_phases_seconds": mean_phases,
        "p50_ms": round(change.percentile(measured, 0.50), 1),
        "p99_ms": round(change.percentile(measured, 0.99), 1),
        "max_ms": max(measured),
        "samples_ms": measured,
    }


def measure(edge: BenchEdge, samples: int, timeout: float) -> dict[str, Any]:
    """Everything of the module docstring, on an edge whose agent has synced."""
    state_file = edge.nginx.agent_dir / "dynamic" / "state.txt"
    edge.settled(timeout)
    rss_before = nginx_rss_kb(edge)
    with LongLived(edge, edge.apps[-LONG_LIVED:]) as long_lived:
        burst = churn.endpoint_burst(edge, timeout, served_text=state_file.read_text)
    rss_after = nginx_rss_kb(edge)
    return {
        "burst": burst,
        "nginx_rss_kb_before": rss_before,
        "nginx_rss_kb_after": rss_after,
        "nginx_rss_growth_pct": round((rss_after - rss_before) * 100 / rss_before, 2),
        "long_lived": LONG_LIVED,
        "long_lived_broken": len(long_lived.broken),
        "long_lived_requests": long_lived.requests,
        "dynamic_updates": {
            kind: edge.agent.metric("edgeagent_dynamic_updates_total", kind=kind, result="success")
            for kind in ("full", "endpoints", "certificates")
        },
        "endpoint_change": endpoint_change_to_traffic(edge, samples, timeout),
    }
