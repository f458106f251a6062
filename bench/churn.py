"""Endpoint churn: `reloads_per_1000_endpoint_changes`.

A rolling update across 200 Services: each of their 5 endpoints is replaced by a pod on
the other network, one EndpointSlice write per endpoint, 1,000 writes spread evenly over
1 s, interleaved across the Services as a rollout of many Deployments would be. The writes
go straight into the emulator's store (as the EndpointSlice controller writes to etcd); the
agent sees them as watch events, as from a real API server. The figure is the increase of
the agent's reload counter on /metrics, from before the burst until the last change
serves (all 1,000 new addresses in the live configuration) and nothing is pending.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import cluster
from edge import BenchEdge
from suite import agentlab

CHANGES = 1000
BURST_SECONDS = 1.0
# After the last change serves: longer than the daemon's max delay plus minimum reload
# interval, so a reload still pending would be counted.
AFTERMATH_SECONDS = 3.0


def endpoint_burst(
    edge: BenchEdge, timeout: float, served_text: Callable[[], str] | None = None
) -> dict[str, Any]:
    """`served_text`: where the served addresses are (default the live configuration; the
    dynamic mode's are in its state file)."""
    served_text = served_text or edge.live_config
    services = CHANGES // cluster.ENDPOINTS_PER_SERVICE
    steps = [
        (app, endpoint)
        for endpoint in range(cluster.ENDPOINTS_PER_SERVICE)
        for app in edge.apps[:services]
    ]
    new_network = cluster.POD_NETWORKS[1] + "."
    assert served_text().count(new_network) == 0
    edge.settled(timeout)
    before = edge.reloads()
    started = time.monotonic()
    for number, (app, endpoint) in enumerate(steps):
        time.sleep(max(0.0, started + BURST_SECONDS * number / len(steps) - time.monotonic()))
        edge.api.call(cluster.roll_endpoint, edge.api.emulator, app, endpoint)
    burst = time.monotonic() - started

    def all_served() -> bool:
        edge.settled(timeout)
        return served_text().count(new_network) == len(steps)

    agentlab.eventually(all_served, timeout=timeout, stable=1)
    served = time.monotonic() - started
    time.sleep(AFTERMATH_SECONDS)
    edge.settled(timeout)
    reloads = edge.reloads() - before
    return {
        "reloads": reloads,
        "per_1000": round(reloads * 1000 / len(steps), 2),
        "changes": len(steps),
        "services": services,
        "burst_seconds": round(burst, 3),
        "last_change_served_seconds": round(served, 3),
    }
