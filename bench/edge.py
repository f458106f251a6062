"""One edge node on loopback, at scale: the emulator preloaded with N Ingresses, the
backend pods, a real nginx configured like an edge node, and `edgeagent run`.

The agent runs with the daemon's default timing (quiet period, maximum delay, minimum
reload interval), not the short ones of the integration tests: the figures are those of an
edge node as shipped. nginx is reloaded with SIGHUP to its master, which is what
`systemctl reload nginx` does on a node, without systemd's round trip.
"""

from __future__ import annotations

import http.client
import os
import pathlib
import time
from typing import Any

import cluster
import kubernetes
from backend import Backend
from edgeagent.metrics import SYNC_PHASES
from kubeemu.testing import EmulatorThread
from suite import agentlab, support_http

VIP = agentlab.VIP
# The real API server sends a BOOKMARK about once a minute; so does the emulator here.
BOOKMARK_INTERVAL = 60.0
# 200s in a row after which a host counts as switched over for every new connection.
STEADY_RUN = 10


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident memory of a process now and at its peak (VmRSS, VmHWM), in MiB."""
    fields = {}
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


class BenchEdge:
    """Started in order (backend, API, nginx); the agent is started by the caller, whose
    clock the sync figure starts with."""

    def __init__(
        self,
        root: pathlib.Path,
        count: int,
        probes: int,
        agent_options: dict[str, Any] | None = None,
        tls: bool = False,
    ) -> None:
        self.root = root
        self.apps = cluster.apps(count)
        self.probes = cluster.apps(probes, prefix="probe")
        # With tls, every Ingress has a certificate of its own (cluster.py).
        self.certificates = cluster.certificates(self.apps) if tls else {}
        self.backend = Backend(root / "backend").start()
        self.api = EmulatorThread(bookmark_interval=BOOKMARK_INTERVAL)
        started = time.monotonic()
        cluster.preload(
            self.api.emulator,
            self.apps,
            self.probes,
            self.backend.port,
            VIP,
            self.certificates,
        )
        self.preload_seconds = time.monotonic() - started
        self.api.start()
        self.kubeconfig = self.api.write_kubeconfig(root / "kubeconfig")
        self.networking = kubernetes.client.NetworkingV1Api(self.api.api_client())
        dynamic_mode = (agent_options or {}).get("upstreams") == "dynamic"
        self.nginx = agentlab.Nginx(root / "nginx", lua=dynamic_mode).start()
        self.health_port = support_http.free_port()
        self.agent = agentlab.AgentProcess(
            self._agent_command(agent_options or {}), root / "agent.log", self.health_port
        )

    def _agent_command(self, extra: dict[str, Any]) -> list[str]:
        nginx = self.nginx
        options = {
            "kubeconfig": self.kubeconfig,
            "nginx-dir": nginx.agent_dir,
            "nginx-main-conf": nginx.main_conf,
            "nginx-binary": agentlab.NGINX,
            "reload-command": nginx.reload_command,
            "listen-http": f"127.0.0.1:{nginx.http_port}",
            "listen-https": f"127.0.0.1:{nginx.https_port}",
            "status-listen": f"127.0.0.1:{nginx.status_port}",
            "health-listen": f"127.0.0.1:{self.health_port}",
            "default-certificate": nginx.certificate,
            "default-key": nginx.key,
            "ingress-class": agentlab.CLASS,
            "publish-status-address": VIP,
            # The backend pods are the static nginx on 127.0.0.2-6 and 127.0.1.2-6.
            "allow-loopback-backends": True,
            **extra,
        }
        command = [str(agentlab.VENV_BIN / "edgeagent"), "run"]
        for name, value in options.items():
            command += [f"--{name}"] if value is True else [f"--{name}", str(value)]
        return command

    def close(self) -> None:
        self.agent.stop()
        self.nginx.stop()
        self.backend.stop()
        self.api.close()

    def __enter__(self) -> BenchEdge:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # Observing

    def status(self, host: str) -> int | None:
        """The status nginx answers for `host` on a new connection (None: no answer)."""
        try:
            return support_http.request(self.nginx.http_port, host).status
        except (OSError, http.client.HTTPException):
            return None

    def first_ok(self, host: str, timeout: float, interval: float) -> tuple[float, float]:
        """monotonic() of the first 200 for `host`, and of the first of STEADY_RUN 200s in
        a row, polling every `interval` seconds. The two differ because for a moment after
        a reload the old worker still accepts some new connections with the old config."""
        deadline = time.monotonic() + timeout
        first = run_start = None
        run = 0
        while run < STEADY_RUN:
            status = self.status(host)
            now = time.monotonic()  # when the answer came
            if status == 200:
                first = first or now
                run_start = run_start if run else now
                run += 1
            else:
                run = 0
            if now > deadline:
                raise TimeoutError(f"{host}: no 200 within {timeout} s\n{self.agent.log_tail()}")
            time.sleep(interval)
        assert first is not None and run_start is not None
        return first, run_start

    def nginx_workers(self) -> list[int]:
        master = self.nginx.master_pid()
        children = pathlib.Path(f"/proc/{master}/task/{master}/children").read_text()
        return [int(pid) for pid in children.split()]

    def old_workers_gone(self, timeout: float) -> None:
        """Wait until only the current generation's worker is left."""
        agentlab.eventually(lambda: len(self.nginx_workers()) == 1, timeout=timeout, stable=1)

    def live_generation(self) -> str:
        return os.readlink(self.nginx.agent_dir / "current").removeprefix("gen-")

    def live_config(self) -> str:
        return (self.nginx.agent_dir / "current" / "edge.conf").read_text()

    def settled(self, timeout: float) -> None:
        """Wait until the agent has confirmed and reported what `current` points at."""

        def reported() -> bool:
            return self.agent.healthz()[1]["generation"] == self.live_generation()

        agentlab.eventually(reported, timeout=timeout, stable=1)

    def agent_rss_mb(self) -> tuple[float, float]:
        assert self.agent.process is not None
        return rss_mb(self.agent.process.pid)

    def sync_phase_totals(self) -> dict[str, tuple[float, float]]:
        """(sum of seconds, number of syncs) per phase of edgeagent_sync_duration_seconds."""
        samples = self.agent.metrics()
        return {
            phase: (
                samples.get(("edgeagent_sync_duration_seconds_sum", (("phase", phase),)), 0.0),
                samples.get(("edgeagent_sync_duration_seconds_count", (("phase", phase),)), 0.0),
            )
            for phase in SYNC_PHASES
        }

    def validations(self) -> dict[str, float]:
        """Validations of the agent by scope (full, chunked, delta), from its /metrics."""
        return {
            scope: self.agent.metric("edgeagent_validations_total", scope=scope)
            for scope in ("full", "chunked", "delta")
        }

    def reloads(self) -> float:
        """nginx reloads the agent ran (confirmed or failed), from its /metrics."""
        return sum(
            self.agent.metric("edgeagent_reloads_total", result=result)
            for result in ("success", "failed")
        )
