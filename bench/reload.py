"""nginx's own cost of a configuration: `nginx_reload_10k_seconds`, and `nginx -t` beside it.

This is the floor of any reload-based design: whatever the agent does, a change it applies
by reloading waits at least this long. Measured with the agent stopped, on the
configuration it rendered: a copy of the live `edge.conf` whose status server answers a new
marker is made `current`, `nginx -t` runs on the live main config (timed, with its peak
memory), then SIGHUP goes to the master and the clock stops when the status server answers
the marker, i.e. when a new worker with the new configuration accepts connections.
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import time
from typing import Any

from edge import BenchEdge, rss_mb
from suite import agentlab, support_http

POLL_INTERVAL = 0.01


def _timed_test(edge: BenchEdge) -> tuple[float, float]:
    """Seconds and peak MiB of `nginx -t` on the live main config."""
    command = [agentlab.NGINX, "-t", "-q", "-c", str(edge.nginx.main_conf)]
    started = time.monotonic()
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, process.stderr.read() if process.stderr else ""
    return seconds, usage.ru_maxrss / 1024


def _serving(edge: BenchEdge) -> str:
    try:
        answer = support_http.request(edge.nginx.status_port, "status", "/edgeagent/generation")
    except OSError:
        return ""
    return answer.body.decode().strip()


def nginx_reload(edge: BenchEdge, rounds: int, timeout: float) -> dict[str, Any]:
    assert edge.agent.process is None or edge.agent.process.poll() is not None, "stop the agent"
    agent_dir = edge.nginx.agent_dir
    generation = edge.live_generation()
    live = edge.live_config()
    status_line = f'return 200 "{generation}\\n";'
    assert live.count(status_line) == 1
    reloads, tests, test_peaks = [], [], []
    for round_number in range(rounds):
        marker = f"benchreload{round_number}"
        directory = agent_dir / marker
        directory.mkdir()
        (directory / "edge.conf").write_text(
            live.replace(status_line, f'return 200 "{marker}\\n";')
        )
        link = agent_dir / ".bench-current"
        link.symlink_to(marker)
        os.replace(link, agent_dir / "current")
        seconds, peak = _timed_test(edge)
        tests.append(seconds)
        test_peaks.append(peak)
        edge.old_workers_gone(timeout)
        started = time.monotonic()
        os.kill(edge.nginx.master_pid(), signal.SIGHUP)
        deadline = started + timeout
        while _serving(edge) != marker:
            assert time.monotonic() < deadline, f"nginx did not reload within {timeout} s"
            time.sleep(POLL_INTERVAL)
        reloads.append(time.monotonic() - started)
    edge.old_workers_gone(timeout)
    master_rss, _ = rss_mb(edge.nginx.master_pid())
    worker_rss, _ = rss_mb(edge.nginx_workers()[0])
    return {
        "reload_seconds": round(statistics.median(reloads), 3),
        "reload_rounds_seconds": [round(s, 3) for s in reloads],
        "test_seconds": round(statistics.median(tests), 3),
        "test_rounds_seconds": [round(s, 3) for s in tests],
        "test_peak_mb": round(max(test_peaks), 1),
        "master_rss_mb": round(master_rss, 1),
        "worker_rss_mb": round(worker_rss, 1),
        "edge_conf_bytes": len(live.encode()),
    }
