"""`/healthz`, `/readyz` and `/metrics` on loopback (127.0.0.1:10254 by default).

Three different questions (issue 14):

- `/healthz`, liveness: 200 while every thread that keeps the state current (the
  informers, the controller) is alive; 503 naming the dead ones otherwise, since the edge
  would serve an ever staler state while looking fine (systemd's watchdog restarts the
  unit for the same reason).
- `/readyz`, readiness: 200 once nginx serves a configuration the agent stands behind:
  one it applied, or, from the start, the generation nginx already served when the agent
  started (the API may be down then: nginx keeps serving it, and the agent says so). 503
  before (nginx on the bootstrap configuration). It stays 200 when a later candidate is
  rejected or the API is unreachable: moving traffic away from every edge node at once
  (they all see the same API) would help nobody. keepalived's agent check asks this.
- `synced`, in both bodies: the latest sync applied the cluster's state (its outcome was
  applied or unchanged); false while only the generation found at start serves.

The body also says which generation serves and where it came from, the last sync's outcome,
and for each watch how many seconds ago it last heard from the API server.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from edgeagent.metrics import Metrics


class HealthState:
    """What /healthz reports; written by the controller, read by the HTTP thread."""

    def __init__(
        self,
        watches: Callable[[], dict[str, Any]],
        threads: Callable[[], Iterable[threading.Thread]] = tuple,
    ) -> None:
        self.watches = watches
        self.threads = threads
        """The threads that must live for the state to follow the cluster."""
        self.serving: str | None = None
        self.found: str | None = None
        """The generation nginx served when the agent started, before any sync."""
        self.last_outcome: str | None = None
        self.last_detail = ""
        self.last_sync_at: float | None = None

    def record(self, outcome: str, generation: str | None, detail: str = "") -> None:
        if generation is not None:
            self.serving = generation
        self.last_outcome = outcome
        self.last_detail = detail
        self.last_sync_at = time.monotonic()

    def found_at_start(self, generation: str) -> None:
        self.found = generation

    @property
    def ready(self) -> bool:
        return self.serving is not None or self.found is not None

    @property
    def synced(self) -> bool:
        return self.last_outcome in ("applied", "unchanged")

    def dead_threads(self) -> list[str]:
        """The threads that ran and ended. One not started yet is not dead: the health
        server answers from the start, while daemon.run starts the others one by one."""
        return sorted(
            thread.name
            for thread in self.threads()
            if thread.ident is not None and not thread.is_alive()
        )

    @property
    def alive(self) -> bool:
        return not self.dead_threads()

    def report(self) -> dict[str, Any]:
        since = None if self.last_sync_at is None else time.monotonic() - self.last_sync_at
        return {
            "alive": self.alive,
            "dead_threads": self.dead_threads(),
            "ready": self.ready,
            "synced": self.synced,
            "generation": self.serving or self.found,
            "generation_source": "applied"
            if self.serving
            else "found at start"
            if self.found
            else None,
            "last_sync": {
                "outcome": self.last_outcome,
                "detail": self.last_detail,
                "seconds_ago": None if since is None else round(since, 3),
            },
            "watches": self.watches(),
        }


class HealthServer:
    def __init__(self, listen: str, state: HealthState, metrics: Metrics) -> None:
        host, _, port = listen.rpartition(":")
        state_ref, registry = state, metrics.registry

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in ("/healthz", "/readyz"):
                    body = json.dumps(state_ref.report(), indent=1).encode() + b"\n"
                    good = state_ref.alive if self.path == "/healthz" else state_ref.ready
                    self._send(200 if good else 503, "application/json", body)
                elif self.path == "/metrics":
                    self._send(200, CONTENT_TYPE_LATEST, generate_latest(registry))
                else:
                    self._send(404, "text/plain", b"not found\n")

            def _send(self, code: int, content_type: str, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # probes every few seconds would drown the journal

        self.server = http.server.ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, name="health", daemon=True)

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> None:
        self.thread.start()
