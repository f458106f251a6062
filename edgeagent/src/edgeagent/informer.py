"""Informers: one thread per kind keeps its part of the cache equal to the cluster.

The loop is the one the `kubernetes` client documents and client-go implements:

1. list the kind (raw JSON: the client's model classes would cost seconds at 10k
   objects and the pure core wants API dicts anyway) and replace the cache's copy;
2. watch from the list's resourceVersion with `allowWatchBookmarks`, applying each event
   and remembering the newest resourceVersion (BOOKMARKs move it without an object);
3. when the server ends the watch (its `timeoutSeconds`), watch again from there;
   on 410 Expired, whether as the watch's HTTP status or as an ERROR event, go back to 1;
   on any other error, back off exponentially with jitter and go back to 2 (or 1 if
   the list itself failed).

Every request sets the server-side `timeout_seconds` and the client-side
`_request_timeout` (connect, read). On a watch the read timeout is the idle limit: a watch
that sends no byte for `idle_timeout` (a half-open connection never fails by itself) is
restarted and counted as `silent`.

The kinds and what is asked of each come from `edgeagent.resources`. Secrets: only type
kubernetes.io/tls can serve TLS, so the informer asks the API for those alone (field
selector `type=kubernetes.io/tls`, which the API server supports for Secrets) and holds
them in the cache; the controller then gives the model only the
Secrets that an Ingress names in `spec.tls`, and a change to any other Secret costs no
sync. Other Secrets never reach the agent.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import urllib3
from kubernetes.client import ApiException
from kubernetes.watch.watch import iter_resp_lines

from edgeagent import collector
from edgeagent.backoff import Backoff
from edgeagent.cache import Cache
from edgeagent.metrics import Metrics
from edgeagent.options import seconds
from edgeagent.resources import Resource

log = logging.getLogger(__name__)

GONE = 410


@dataclass(frozen=True)
class WatchSettings:
    watch_timeout: float = field(
        default=300.0,
        metadata=seconds(
            "watch-timeout",
            "server-side timeout of a watch request; each draws between this and twice this",
        ),
    )
    """Server-side `timeoutSeconds` of a watch (each request draws between this and twice
    this, as client-go does, so that many agents do not reconnect in step). Five minutes is
    client-go's choice: it bounds how long a stuck proxy can hold a stream, and resuming
    from the last resourceVersion costs one request."""
    idle_timeout: float = field(
        default=90.0, metadata=seconds("watch-idle-timeout", "restart a watch silent for this long")
    )
    """A watch silent for this long is presumed dead and restarted. The API server sends a
    BOOKMARK about every minute on watches that allow them, so 90 s of silence means a
    broken connection, not a quiet cluster."""
    request_timeout: float = field(
        default=60.0, metadata=seconds("request-timeout", "timeout of a list request")
    )
    """Client- and server-side timeout of a list. A 10k-object list takes about a second;
    a minute leaves room for a loaded API server without hanging forever."""
    connect_timeout: float = 5.0
    """TCP connect timeout of every request: an API server that does not accept within 5 s
    is down or unreachable, and the backoff takes over."""
    backoff_initial: float = 0.5
    """First retry delay after an error, doubled per consecutive failure."""
    backoff_max: float = 30.0
    """Retry delay cap: an API server back from an outage is noticed within 30 s, and a
    fleet of edge agents never retries faster than this against a sick one."""


def list_call(resource: Resource, client: kubernetes.client.ApiClient) -> Callable[..., Any]:
    """The client's method that lists (and, with watch=True, watches) `resource`."""
    api, method = resource.list_method
    call = getattr(getattr(kubernetes.client, api)(client), method)
    if resource.custom:
        return functools.partial(call, resource.group, resource.version, resource.plural)
    return call


class Expired(Exception):
    """The resourceVersion is older than the server's history: relist."""


class WatchError(Exception):
    """An ERROR event other than 410."""


class Informer:
    def __init__(
        self,
        resource: Resource,
        client: kubernetes.client.ApiClient,
        cache: Cache,
        settings: WatchSettings,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        self.resource = resource
        self._list_call = list_call(resource, client)
        self.cache = cache
        self.settings = settings
        self.metrics = metrics
        self._stop = stop
        self.resource_version: str | None = None
        self.last_contact: float | None = None
        """monotonic() of the last list or watch line received: how stale the cache is."""
        self.last_error: str | None = None
        self._response: Any = None
        self.thread = threading.Thread(
            target=self.run, name=f"informer-{resource.name}", daemon=True
        )

    def _selectors(self) -> dict[str, Any]:
        if self.resource.field_selector:
            return {"field_selector": self.resource.field_selector}
        return {}

    def _list(self) -> None:
        response = self._list_call(
            _preload_content=False,
            _request_timeout=(self.settings.connect_timeout, self.settings.request_timeout),
            timeout_seconds=int(self.settings.request_timeout),
            **self._selectors(),
        )
        with collector.paused():  # 10,000 objects at once, none of them cyclic
            body = json.loads(response.data)
        items = body.get("items") or []
        for item in items:  # list items lack them; watch events and manifests have them
            item.setdefault("kind", self.resource.kind)
            item.setdefault("apiVersion", self.resource.api_version)
        self.cache.replace(self.resource.name, items)
        self.metrics.objects.labels(self.resource.name).set(len(items))
        self.resource_version = body["metadata"]["resourceVersion"]
        self.last_contact = time.monotonic()
        log.info(
            "listed",
            extra={
                "resource": self.resource.name,
                "count": len(items),
                "resource_version": self.resource_version,
            },
        )

    def _apply(self, line: str) -> None:
        event = json.loads(line)
        event_type, obj = event.get("type"), event.get("object") or {}
        if event_type == "ERROR":
            if obj.get("code") == GONE:
                raise Expired(obj.get("message"))
            raise WatchError(f"{obj.get('code')} {obj.get('reason')}: {obj.get('message')}")
        if event_type in ("ADDED", "MODIFIED"):
            self.cache.upsert(self.resource.name, obj)
        elif event_type == "DELETED":
            self.cache.delete(self.resource.name, obj)
        elif event_type != "BOOKMARK":
            log.warning(
                "unknown watch event", extra={"resource": self.resource.name, "type": event_type}
            )
        version = (obj.get("metadata") or {}).get("resourceVersion")
        if version:
            self.resource_version = version

    def _watch(self) -> bool:
        """Follow one watch request to its end; True if it delivered anything."""
        timeout = self.settings.watch_timeout * random.uniform(1, 2)
        response = self._list_call(
            watch=True,
            resource_version=self.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=int(timeout),
            _preload_content=False,
            _request_timeout=(self.settings.connect_timeout, self.settings.idle_timeout),
            **self._selectors(),
        )
        self._response = response
        self.last_error = None  # connected: whatever failed before is over
        delivered = False
        try:
            for line in iter_resp_lines(response):
                if self._stop.is_set():
                    break
                self.last_contact = time.monotonic()
                if line:
                    self._apply(line)
                    delivered = True
            self.metrics.objects.labels(self.resource.name).set(
                self.cache.counts()[self.resource.name]
            )
        finally:
            self._response = None
            response.close()
            response.release_conn()
        return delivered

    def run(self) -> None:
        backoff = Backoff(self.settings.backoff_initial, self.settings.backoff_max, jitter=True)
        while not self._stop.is_set():
            # Only a watch that delivered counts as progress: a relist answered by 410 at
            # once, or an API server that closes every watch, must not spin.
            progress = False
            try:
                if self.resource_version is None:
                    self._list()
                progress = self._watch()
                reason = "closed"
            except Expired as error:
                reason, self.resource_version = "expired", None
                log.info(
                    "watch expired, relisting",
                    extra={"resource": self.resource.name, "detail": str(error)},
                )
            except ApiException as error:
                if error.status == GONE:
                    reason, self.resource_version = "expired", None
                else:
                    reason, self.last_error = "error", f"{error.status} {error.reason}"
            except urllib3.exceptions.ReadTimeoutError:
                reason, self.last_error = "silent", "no data within the idle timeout"
            except (urllib3.exceptions.HTTPError, OSError, ValueError, WatchError) as error:
                reason, self.last_error = "error", f"{type(error).__name__}: {error}"
            if self._stop.is_set():
                return
            self.metrics.watch_restarts.labels(self.resource.name, reason).inc()
            if progress:
                backoff.succeeded()
            delay = None if progress else backoff.failed()
            if reason == "error":
                log.warning(
                    "watch failed",
                    extra={
                        "resource": self.resource.name,
                        "error": self.last_error,
                        "failures": backoff.failures,
                    },
                )
            if delay is not None:
                self._stop.wait(delay)

    def start(self) -> None:
        self.thread.start()

    def interrupt(self) -> None:
        """Unblock a thread waiting on its watch's socket (for shutdown)."""
        response = self._response
        connection = getattr(response, "connection", None)
        sock = getattr(connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
