"""`/healthz` and `/metrics` on loopback (127.0.0.1:10254 by default).

`/healthz` answers 200 once the first sync has been applied and nginx confirmed that it
serves it, 503 before. After that it stays 200 while nginx serves a good configuration,
even when a later candidate is rejected or the API server is unreachable: the edge keeps
serving the last good state, and moving traffic away from every edge node at once (they
all see the same API) would help nobody. The body says what is going on: the generation
serving, the last sync's outcome, and for each watch how many seconds ago it last heard
from the API server, so staleness is visible at a glance.

A thread of the agent that died (an informer, the controller: a bug, not an error they
handle) makes `/healthz` answer 503 with the threads named: the edge would otherwise
serve an ever staler state while looking healthy. (systemd's watchdog restarts the unit
for the same reason.)
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
        self.last_outcome: str | None = None
        self.last_detail = ""
        self.last_sync_at: float | None = None

    def record(self, outcome: str, generation: str | None, detail: str = "") -> None:
        if generation is not None:
            self.serving = generation
        self.last_outcome = outcome
        self.last_detail = detail
        self.last_sync_at = time.monotonic()

    @property
    def ready(self) -> bool:
        return self.serving is not None

    def dead_threads(self) -> list[str]:
        return sorted(thread.name for thread in self.threads() if not thread.is_alive())

    @property
    def healthy(self) -> bool:
        return self.ready and not self.dead_threads()

    def report(self) -> dict[str, Any]:
        since = None if self.last_sync_at is None else time.monotonic() - self.last_sync_at
        return {
            "ready": self.ready,
            "dead_threads": self.dead_threads(),
            "generation": self.serving,
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
                if self.path == "/healthz":
                    body = json.dumps(state_ref.report(), indent=1).encode() + b"\n"
                    self._send(200 if state_ref.healthy else 503, "application/json", body)
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
