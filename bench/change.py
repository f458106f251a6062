"""From an Ingress created through the API to the first 200 through nginx:
`change_to_traffic_1k_p50_ms`, `change_to_traffic_1k_p99_ms`, `change_to_traffic_10k_p99_ms`.

Each sample creates the Ingress of a probe Service (its Service and endpoints exist
already, as when a team adds a route to a running app) with the official client. The clock
starts when the API has answered the create, so the emulator's own time is not counted,
and stops at the first 200 for the new host, polled on new connections every 5 ms.

Samples are taken one at a time: before the next create, the agent has confirmed the
previous generation and its minimum reload interval has passed, so every sample is the
latency of a change that comes alone, not of a change queued behind another.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import cluster
from edge import BenchEdge
from edgeagent.controller import SyncSettings

POLL_INTERVAL = 0.005
MIN_RELOAD_INTERVAL = SyncSettings.min_reload_interval  # the daemon's default


def percentile(values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def create_ingress(edge: BenchEdge, app: cluster.App) -> None:
    # Raw response: the clock starts when the API has answered, not after the client
    # has turned the answer into model objects.
    edge.networking.create_namespaced_ingress(
        app.namespace, cluster.ingress(app), _preload_content=False
    ).read()


def change_to_traffic(
    edge: BenchEdge,
    samples: int,
    timeout: float,
    deadline: float,
    create: Callable[[BenchEdge, cluster.App], None] = create_ingress,
) -> dict[str, Any]:
    """Up to `samples` samples, fewer if the next one would end after `deadline`; each
    sample is `create` of one probe's route (an Ingress, or gateway_change's HTTPRoute)."""
    first, steady, loads = [], [], []
    longest = 0.0
    phases_before = edge.sync_phase_totals()
    validations_before = edge.validations()
    for app in edge.probes[:samples]:
        began = time.monotonic()
        if began + longest > deadline:
            break
        create(edge, app)
        answered = time.monotonic()
        first_ok, steady_ok = edge.first_ok(app.host, timeout, POLL_INTERVAL)
        loads.append(round(os.getloadavg()[0], 2))
        first.append(round((first_ok - answered) * 1000, 1))
        steady.append(round((steady_ok - answered) * 1000, 1))
        edge.settled(timeout)
        time.sleep(MIN_RELOAD_INTERVAL)
        longest = max(longest, time.monotonic() - began)
    assert first, "no sample within the time budget"
    phases_after = edge.sync_phase_totals()
    mean_phases = {}
    for phase, (total, count) in phases_after.items():
        syncs = count - phases_before[phase][1]
        if syncs:
            mean_phases[phase] = round((total - phases_before[phase][0]) / syncs, 3)
    return {
        "p50_ms": round(percentile(first, 0.50), 1),
        "p99_ms": round(percentile(first, 0.99), 1),
        "mean_ms": round(statistics.fmean(first), 1),
        "max_ms": max(first),
        "steady_p50_ms": round(percentile(steady, 0.50), 1),
        "steady_p99_ms": round(percentile(steady, 0.99), 1),
        "mean_sync_phases_seconds": mean_phases,
        "validations": {
            scope: count - validations_before[scope] for scope, count in edge.validations().items()
        },
        "samples_wanted": samples,
        "samples_ms": first,
        "samples_load_average": loads,
    }
