"""Kubernetes Events: telling the owner of an object what the agent did not serve, and why.

`kubectl describe ingress NAME` then shows, e.g., `Warning Invalid edgeagent path
"/a;b" is not a valid path`. Events are posted for every problem of the model (invalid,
unsupported, conflict losers, missing Services, unusable Secrets) and, when nginx -t
rejects a candidate, on the Ingresses that changed since the configuration that serves.

Deduplicated: a problem is posted when it appears, not at every sync while it lasts; if it
goes away and comes back, it is posted again. Several edge agents each post their own
(`reportingInstance` names the node), as kubelets do for the same Pod event.

Posting happens on a thread of its own through a bounded queue: Events are best effort,
and an API server that is slow or down must not hold up the configuration. When the queue
is full (API down for long), the oldest Events are dropped.
"""

from __future__ import annotations

import collections
import datetime
import logging
import socket
import threading
from collections.abc import Iterable
from typing import Any

import kubernetes
import urllib3
from kubernetes.client import ApiException

from edgeagent import resources
from edgeagent.cache import Cache
from edgeagent.metrics import Metrics
from edgeagent.model import Problem

log = logging.getLogger(__name__)

COMPONENT = "edgeagent"
QUEUE_LIMIT = 1000
MESSAGE_LIMIT = 1024  # the API accepts more; a longer message is not read by anyone

Notice = tuple[str, str, str, str, str]  # kind, namespace, name, reason, message


def reason_of(code: str) -> str:
    """Problem codes ("missing-service") as Event reasons ("MissingService")."""
    return "".join(part.capitalize() for part in code.split("-"))


class EventRecorder:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        cache: Cache,
        metrics: Metrics,
        stop: threading.Event,
        instance: str | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        self.api = kubernetes.client.CoreV1Api(client)
        self.cache = cache
        self.metrics = metrics
        self.instance = instance or socket.gethostname()
        self.request_timeout = request_timeout
        self._stop = stop
        self._queue: collections.deque[Notice] = collections.deque(maxlen=QUEUE_LIMIT)
        self._ready = threading.Condition()
        self._problems: set[Notice] = set()
        self._rejections: set[Notice] = set()
        self._unreachable: set[tuple[str, str]] = set()
        self.thread = threading.Thread(target=self.run, name="events", daemon=True)

    def _enqueue(self, notices: Iterable[Notice]) -> None:
        with self._ready:
            self._queue.extend(notices)
            self._ready.notify()

    def report_problems(self, problems: Iterable[Problem]) -> None:
        """Problems of the latest sync; those new since the previous one are logged and posted."""
        current = {(p.kind, p.namespace, p.name, reason_of(p.code), p.reason) for p in problems}
        new = sorted(current - self._problems)
        for kind, namespace, name, reason, message in new:
            log.warning(
                message,
                extra={"kind": kind, "namespace": namespace, "object_name": name, "reason": reason},
            )
        self._enqueue(new)
        self._problems = current

    def report_rejected(self, ingresses: Iterable[tuple[str, str]], output: str) -> None:
        message = f"nginx rejected the configuration; the last good one keeps serving: {output}"
        notices = {("Ingress", ns, name, "ConfigRejected", message) for ns, name in ingresses}
        self._enqueue(sorted(notices - self._rejections))
        self._rejections |= notices

    def report_unreachable(self, services: dict[tuple[str, str], str]) -> None:
        """(namespace, Service) -> why, of the Services the backend probe cannot reach
        (probe.py): an Event when one becomes unreachable, again only after it recovered."""
        notices = [
            ("Service", namespace, name, "BackendUnreachable", f"from {self.instance}: {why}")
            for (namespace, name), why in sorted(services.items())
            if (namespace, name) not in self._unreachable
        ]
        self._enqueue(notices)
        self._unreachable = set(services)

    def clear_rejections(self) -> None:
        """A configuration was applied: a later rejection is news again."""
        self._rejections = set()

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        with self._ready:
            self._ready.notify()

    def run(self) -> None:
        while not self._stop.is_set():
            with self._ready:
                self._ready.wait_for(lambda: self._queue or self._stop.is_set())
                if self._stop.is_set():
                    return
                notice = self._queue.popleft()
            self._post(notice)

    def body(self, notice: Notice) -> dict[str, Any]:
        kind, namespace, name, reason, message = notice
        resource = resources.BY_KIND.get(kind)
        api_version = resource.api_version if resource else "v1"
        involved: dict[str, Any] = {"kind": kind, "apiVersion": api_version, "name": name}
        if namespace:
            involved["namespace"] = namespace
        obj = self.cache.get(resource.name, (namespace, name)) if resource else None
        if obj is not None:
            involved["uid"] = obj["metadata"].get("uid")
            involved["resourceVersion"] = obj["metadata"].get("resourceVersion")
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return {
            "metadata": {"generateName": f"{name}.", "namespace": namespace or "default"},
            "involvedObject": involved,
            "reason": reason,
            "message": message[:MESSAGE_LIMIT],
            "type": "Warning",
            "source": {"component": COMPONENT, "host": self.instance},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }

    def _post(self, notice: Notice) -> None:
        body = self.body(notice)
        try:
            self.api.create_namespaced_event(
                body["metadata"]["namespace"], body, _request_timeout=self.request_timeout
            )
            self.metrics.events.labels("success").inc()
        except (ApiException, urllib3.exceptions.HTTPError, OSError) as error:
            self.metrics.events.labels("error").inc()
            log.warning(
                "event not posted",
                extra={
                    "namespace": notice[1],
                    "object_name": notice[2],
                    "reason": notice[3],
                    "error": str(error)[:200],
                },
            )
