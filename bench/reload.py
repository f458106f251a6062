"""nginx's own cost of a configuration: `nginx_reload_10k_seconds`, and `nginx -t` beside it.

This is the floor of any reload-based design: whatever the agent does, a change it applies
by reloading waits at least this long. Measured with the agent stopped, on the
configuration it rendered. Each round makes `current` a copy of the live `edge.conf` whose
status server answers a new marker, runs `nginx -t` on the live main config (timed, with
its peak memory), then sends SIGHUP to the master; the clock stops when the status server
answers the marker, i.e. when a new worker with the new configuration accepts connections.

The same rounds run on a what-if variant (every proxy_pass to one upstream, see
`one_upstream`), to show what part of the parse the upstreams are.

`master_rss_across_reloads` gives `nginx_master_rss_after_20_reloads_10k_mb`: the master's
memory after each of 20 reloads of the same configuration, without nginx -t in between.
"""

from __future__ import annotations

import os
import pathlib
import re
import signal
import statistics
import subprocess
import time
from typing import Any

from edge import BenchEdge, rss_mb
from suite import agentlab, support_http

POLL_INTERVAL = 0.01
UPSTREAM_BLOCK = re.compile(r"^upstream \S+ \{\n(?:    [^\n]*\n)*\}\n", re.MULTILINE)
PROXY_PASS = re.compile(r"proxy_pass http://[^;]+;")


def one_upstream(edge_conf: str) -> str:
    """What-if: the same configuration with every proxy_pass to one upstream, as with a
    `balancer_by_lua` design (issue 6) that picks the peer at request time. nginx looks
    each upstream name up by a linear scan (ngx_http_upstream_add), so n upstreams cost
    it O(n^2) at every parse; this shows how much of the parse that is."""
    text = UPSTREAM_BLOCK.sub("", edge_conf)
    text = PROXY_PASS.sub("proxy_pass http://edgeagent_balancer;", text)
    return "upstream edgeagent_balancer {\n    server 127.0.0.2:1;\n    keepalive 16;\n}\n" + text


def _timed_test(main_conf: pathlib.Path) -> tuple[float, float]:
    """Seconds and peak MiB of `nginx -t` on a main config."""
    command = [agentlab.NGINX, "-t", "-q", "-c", str(main_conf)]
    started = time.monotonic()
    with subprocess.Popen(command, stderr=subprocess.DEVNULL) as process:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 0, f"nginx -t failed on {main_conf}"
    return time.monotonic() - started, usage.ru_maxrss / 1024


def _serving(edge: BenchEdge) -> str:
    try:
        answer = support_http.request(edge.nginx.status_port, "status", "/edgeagent/generation")
    except OSError:
        return ""
    return answer.body.decode().strip()


def _stage(edge: BenchEdge, edge_conf: str, status_line: str, marker: str) -> None:
    """Make `current` a copy of `edge_conf` whose status server answers `marker`."""
    agent_dir = edge.nginx.agent_dir
    directory = agent_dir / marker
    directory.mkdir()
    (directory / "edge.conf").write_text(
        edge_conf.replace(status_line, f'return 200 "{marker}\\n";')
    )
    link = agent_dir / f".{marker}"
    link.symlink_to(marker)
    os.replace(link, agent_dir / "current")


def _reload(edge: BenchEdge, marker: str, timeout: float) -> float:
    """Seconds from SIGHUP to the master until the status server answers `marker`."""
    edge.old_workers_gone(timeout)
    started = time.monotonic()
    os.kill(edge.nginx.master_pid(), signal.SIGHUP)
    while _serving(edge) != marker:
        assert time.monotonic() < started + timeout, f"no reload within {timeout} s"
        time.sleep(POLL_INTERVAL)
    return time.monotonic() - started


def _rounds(
    edge: BenchEdge, edge_conf: str, status_line: str, name: str, rounds: int, timeout: float
) -> dict[str, Any]:
    reloads, tests, peaks = [], [], []
    for round_number in range(rounds):
        marker = f"{name}{round_number}"
        _stage(edge, edge_conf, status_line, marker)
        seconds, peak = _timed_test(edge.nginx.main_conf)
        tests.append(seconds)
        peaks.append(peak)
        reloads.append(_reload(edge, marker, timeout))
    edge.old_workers_gone(timeout)
    master_rss, _ = rss_mb(edge.nginx.master_pid())
    worker_rss, _ = rss_mb(edge.nginx_workers()[0])
    return {
        "reload_seconds": round(statistics.median(reloads), 3),
        "reload_rounds_seconds": [round(s, 3) for s in reloads],
        "test_seconds": round(statistics.median(tests), 3),
        "test_rounds_seconds": [round(s, 3) for s in tests],
        "test_peak_mb": round(max(peaks), 1),
        "master_rss_mb": round(master_rss, 1),
        "worker_rss_mb": round(worker_rss, 1),
        "edge_conf_bytes": len(edge_conf.encode()),
    }


def _live(edge: BenchEdge) -> tuple[str, str]:
    """The live edge.conf and its status server's line, with the agent stopped."""
    assert edge.agent.process is None or edge.agent.process.poll() is not None, "stop the agent"
    live = edge.live_config()
    status_line = f'return 200 "{edge.live_generation()}\\n";'
    assert live.count(status_line) == 1
    return live, status_line


def master_rss_across_reloads(edge: BenchEdge, reloads: int, timeout: float) -> dict[str, Any]:
    """VmRSS of nginx's master after each of `reloads` reloads of the live configuration
    (agent stopped, no nginx -t in between). The master parses every configuration in
    its own memory and keeps the pages it touched; growth over the first reload is what
    a long-lived node accumulates."""
    live, status_line = _live(edge)
    master_mb, seconds = [], []
    for number in range(reloads):
        marker = f"benchmemory{number}"
        _stage(edge, live, status_line, marker)
        seconds.append(round(_reload(edge, marker, timeout), 3))
        master_mb.append(round(rss_mb(edge.nginx.master_pid())[0], 1))
    return {
        "first_mb": master_mb[0],
        "last_mb": master_mb[-1],
        "growth_pct": round((master_mb[-1] - master_mb[0]) * 100 / master_mb[0], 2),
        "master_rss_mb": master_mb,
        "reload_seconds": seconds,
    }


def nginx_reload(edge: BenchEdge, rounds: int, timeout: float) -> dict[str, Any]:
    live, status_line = _live(edge)
    return {
        "as_rendered": _rounds(edge, live, status_line, "benchreload", rounds, timeout),
        "one_upstream": _rounds(
            edge, one_upstream(live), status_line, "benchwhatif", rounds, timeout
        ),
    }
