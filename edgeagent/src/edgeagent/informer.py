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

The kinds and what is asked of each come from `edgeagent.resources`. Secrets: of every
type but ServiceAccount tokens (field selector `type!=kubernetes.io/service-account-token`,
which the API server applies), TLS pairs in `spec.tls`, htpasswd lines and CAs named by
annotations, narrowed by
`--secret-label-selector` if set; the cache holds with their content only those an Ingress
refers to (cache.py), the controller gives the model only those, and a change to any other
Secret costs no sync.

With `--watch-namespaces`, each namespaced kind has one informer per namespace, each
listing and watching in its namespace alone (what a Role there grants; docs/security.md),
all writing into the same kind of the cache; cluster-scoped kinds keep one informer.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import random
import re
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

from edgeagent import collector, grammar, options
from edgeagent.backoff import Backoff
from edgeagent.cache import Cache
from edgeagent.metrics import Metrics
from edgeagent.options import option, seconds
from edgeagent.resources import Resource

log = logging.getLogger(__name__)

GONE = 410
# What a label selector may hold: keys, values and the operators of equality- and set-based
# selectors; nothing that could end the query parameter or smuggle another.
LABEL_SELECTOR = re.compile(r"[A-Za-z0-9\-_./=!,() ]*")


def _namespaces(value: tuple[str, ...], what: str) -> None:
    for namespace in value:
        grammar.dns1123_label(namespace, what)


def _label_selector(value: str, what: str) -> None:
    if not LABEL_SELECTOR.fullmatch(value):
        raise grammar.Invalid(f"{what} must be a label selector, got {grammar.show(value)}")


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
    namespaces: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "watch-namespaces",
            "watch only these namespaces, one list and watch each, which Roles in them can "
            "grant (default: all, which needs a ClusterRole)",
            "NS[,NS]",
            options.addresses,
            _namespaces,
        ),
    )
    """All namespaces by default, as ingress-nginx; a list lets the agent's RBAC be Roles
    in those namespaces, so a stolen token reads no Secret elsewhere (docs/security.md)."""
    secret_label_selector: str = field(
        default="",
        metadata=option(
            "secret-label-selector",
            "watch only the TLS Secrets with these labels, e.g. edge.example/serve=true "
            "(default: every TLS Secret)",
            "SELECTOR",
            check=_label_selector,
        ),
    )
    """Empty by default: Ingresses name their Secrets, and a selector would be one more
    thing to get right. Set, Secrets without the labels never reach the agent."""
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


def list_call(
    resource: Resource, client: kubernetes.client.ApiClient, namespace: str | None = None
) -> Callable[..., Any]:
    """The client's method that lists (and, with watch=True, watches) `resource`, in
    `namespace` alone if given."""
    if namespace is None:
        api, method = resource.list_method
        call = getattr(getattr(kubernetes.client, api)(client), method)
        if resource.custom:
            return functools.partial(call, resource.group, resource.version, resource.plural)
        return call
    api, method = resource.namespaced_list_method
    call = getattr(getattr(kubernetes.client, api)(client), method)
    if resource.custom:
        return functools.partial(call, resource.group, resource.version, namespace, resource.plural)
    return functools.partial(call, namespace)


def read_object(
    resource: Resource, client: kubernetes.client.ApiClient, key: tuple[str, str], timeout: float
) -> dict[str, Any] | None:
    """One object of a namespaced kind read from the API (None if it is gone or the API
    does not answer: the caller keeps what it had). For the Secrets the cache held as
    their identity only, until an Ingress named them (cache.py)."""
    api, snake = resource.client_names
    call = getattr(getattr(kubernetes.client, api)(client), f"read_namespaced_{snake}")
    namespace, name = key
    try:
        response = call(name, namespace, _preload_content=False, _request_timeout=timeout)
        obj = json.loads(response.data)
    except (ApiException, urllib3.exceptions.HTTPError, OSError, ValueError) as error:
        log.warning(
            "cannot read a referenced object",
            extra={
                "resource": resource.name,
                "namespace": namespace,
                "object_name": name,
                "error": str(error),
            },
        )
        return None
    obj.setdefault("kind", resource.kind)
    obj.setdefault("apiVersion", resource.api_version)
    return obj


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
        namespace: str | None = None,
    ) -> None:
        self.resource = resource
        self.namespace = namespace
        """None: every namespace (or a cluster-scoped kind)."""
        self._list_call = list_call(resource, client, namespace)
        self.cache = cache
        self.settings = settings
        self.metrics = metrics
        self._stop = stop
        self.resource_version: str | None = None
        self.last_contact: float | None = None
        """monotonic() of the last list or watch line received: how stale the cache is."""
        self.last_error: str | None = None
        self._response: Any = None
        self.thread = threading.Thread(target=self.run, name=f"informer-{self.name}", daemon=True)

    @property
    def name(self) -> str:
        """The kind, and the namespace it watches if only one: `secrets/team-a`."""
        return (
            self.resource.name
            if self.namespace is None
            else f"{self.resource.name}/{self.namespace}"
        )

    def _contact(self) -> None:
        self.last_contact = time.monotonic()
        self.metrics.api_last_contact.set_to_current_time()

    def _selectors(self) -> dict[str, Any]:
        selectors = {}
        if self.resource.field_selector:
            selectors["field_selector"] = self.resource.field_selector
        if self.resource.kind == "Secret" and self.settings.secret_label_selector:
            selectors["label_selector"] = self.settings.secret_label_selector
        return selectors

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
        self.cache.replace(self.resource.name, items, self.namespace)
        self.metrics.objects.labels(self.resource.name).set(self.cache.counts()[self.resource.name])
        self.resource_version = body["metadata"]["resourceVersion"]
        self._contact()
        log.info(
            "listed",
            extra={
                "resource": self.name,
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
            log.warning("unknown watch event", extra={"resource": self.name, "type": event_type})
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
                self._contact()
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
                    extra={"resource": self.name, "detail": str(error)},
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
                        "resource": self.name,
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
