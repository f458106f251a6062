"""From agent start to served: `sync_1k_seconds`, `sync_10k_seconds`.

The clock starts when `edgeagent run` is spawned (interpreter start, imports and the
connection to the API included) and stops at the first 200 through nginx for the host of
the Ingress created last. The first sync renders every Ingress into one generation, so
that host answering means all of them do; a sample of other hosts is checked as well. The
agent's own account of the time (its log and `edgeagent_sync_duration_seconds`) is kept
as the breakdown.
"""

from __future__ import annotations

import datetime
import http.client
import random
import time
from typing import Any

from edge import BenchEdge

POLL_INTERVAL = 0.02
CHECKED_HOSTS = 100


def _offsets(edge: BenchEdge, started_wall: float) -> dict[str, float]:
    """Seconds from the spawn to each milestone the agent logged."""
    offsets: dict[str, float] = {}
    for record in edge.agent.log_records():
        moment = datetime.datetime.fromisoformat(record["time"]).timestamp() - started_wall
        message = record.get("message")
        if message == "started":
            offsets.setdefault("started", moment)
        elif message == "listed":
            offsets.setdefault(f"listed_{record['resource']}", moment)
        elif message == "applied":
            offsets.setdefault("applied", moment)
    return {name: round(value, 3) for name, value in offsets.items()}


def sync_from_start(edge: BenchEdge, timeout: float) -> dict[str, Any]:
    last_host = edge.apps[-1].host
    assert edge.status(last_host) == 404, "served before the agent started"
    started_wall, started = time.time(), time.monotonic()
    edge.agent.start()
    served, steady = edge.first_ok(last_host, timeout, POLL_INTERVAL)
    edge.settled(timeout)
    edge.old_workers_gone(timeout)
    sample = random.Random(0).sample(edge.apps, min(CHECKED_HOSTS, len(edge.apps)))
    failed = [app.host for app in sample if edge.status(app.host) != 200]
    assert not failed, f"not served after the sync: {failed[:5]}"
    phases = {phase: round(total, 3) for phase, (total, _) in edge.sync_phase_totals().items()}
    return {
        "seconds": round(served - started, 3),
        "steady_seconds": round(steady - started, 3),
        "agent_log_offsets_seconds": _offsets(edge, started_wall),
        "first_sync_phases_seconds": phases,
        "validations": edge.validations(),
        "hosts_checked": len(sample),
    }


def restart(edge: BenchEdge, timeout: float) -> dict[str, Any]:
    """The agent restarted on a node whose nginx serves what it would render: from the
    spawn until /healthz answers 200. The first sync renders the generation that is
    already live, so it should end as "unchanged", without nginx -t or a reload."""
    edge.agent.stop()
    started = time.monotonic()
    edge.agent.start()
    deadline = started + timeout
    while True:
        try:
            status, report = edge.agent.healthz()
        except (OSError, http.client.HTTPException, ValueError):  # not listening yet
            status, report = 0, {}
        if status == 200:
            break
        assert time.monotonic() < deadline, f"not ready within {timeout} s"
        time.sleep(POLL_INTERVAL)
    return {
        "seconds": round(time.monotonic() - started, 3),
        "outcome": report["last_sync"]["outcome"],
        "reloads": edge.reloads(),
        "validations": edge.validations(),
    }
