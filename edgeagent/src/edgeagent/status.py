"""Ingress status: the edge's public addresses in `status.loadBalancer.ingress`.

With `--publish-status-address ADDR[,ADDR]` (the VIP), every Ingress this agent serves
shows those addresses, which is what `kubectl get ingress` prints as ADDRESS and what
external-dns publishes. An Ingress the agent does not serve (another class, invalid,
deleted from the class) loses them, but only if its status holds nothing but our
addresses: an address written by another controller is never touched.

Several edge agents run with the same settings. They compute the same wanted status for
every Ingress and patch only where the status seen in the watch cache differs from it, so
the first agent to get there writes and the others find nothing to do: they agree and do
not fight. The patch is a strategic merge patch of the status subresource; the list of
addresses has no merge key, so it is replaced whole.

Patching happens on a thread of its own: an API server that is slow or down delays the
status, never the nginx configuration.

The Gateway API's status (docs/gateway-api.md) is written by the same thread after each
applied configuration, whether or not addresses are published: the GatewayClass's,
Gateways' (with the published addresses), HTTPRoutes' and GRPCRoutes' conditions, computed by
`gateway.status` so that every agent computes the same status and the first write ends
the work of all.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kubernetes
import urllib3
from kubernetes.client import ApiException

from edgeagent import options, resources
from edgeagent.cache import Cache, Key
from edgeagent.gateway import status as gateway_status
from edgeagent.gateway.attachment import Attachment
from edgeagent.metrics import Metrics
from edgeagent.options import option

log = logging.getLogger(__name__)

NOT_FOUND = 404
GATEWAY_STATUS_KINDS = ("gateway_classes", "gateways", "http_routes", "grpc_routes")


@dataclass(frozen=True)
class StatusSettings:
    addresses: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "publish-status-address",
            "addresses written into status.loadBalancer.ingress of every Ingress served and "
            "status.addresses of every Gateway, e.g. the VIP (default: none, Ingress status "
            "publishing off)",
            "ADDR[,ADDR]",
            options.addresses,
        ),
    )
    """Addresses to publish (IPs or host names); empty: status publishing is off."""
    resync_interval: float = 60.0
    """Re-check every Ingress this often even without a sync, so a status that someone
    else overwrote comes back within a minute."""
    request_timeout: float = 10.0
    """Client-side timeout of one status patch (patch has no server-side timeout): a
    patch takes milliseconds, so ten seconds means the API server is in trouble."""


def load_balancer_entries(addresses: Iterable[str]) -> list[dict[str, str]]:
    entries = []
    for address in addresses:
        try:
            ipaddress.ip_address(address)
            entries.append({"ip": address})
        except ValueError:
            entries.append({"hostname": address})
    return entries


def _published(ingress: dict[str, Any]) -> list[dict[str, str]]:
    entries = ((ingress.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return [
        {k: v for k, v in entry.items() if k in ("ip", "hostname")}
        for entry in entries
        if isinstance(entry, dict)
    ]


class StatusPublisher:
    def __init__(
        self,
        client: kubernetes.client.ApiClient,
        cache: Cache,
        settings: StatusSettings,
        metrics: Metrics,
        stop: threading.Event,
    ) -> None:
        self.api = kubernetes.client.NetworkingV1Api(client)
        self.cache = cache
        self.settings = settings
        self.metrics = metrics
        self._stop = stop
        self._wanted = load_balancer_entries(settings.addresses)
        self.custom = kubernetes.client.CustomObjectsApi(client)
        self._served: frozenset[Key] | None = None  # None until the first good sync
        self._attachment: Attachment | None = None
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self.run, name="status", daemon=True)

    @property
    def enabled(self) -> bool:
        return bool(self._wanted)

    def publish(self, served: Iterable[Key], attachment: Attachment | None = None) -> None:
        """The Ingresses and the Gateway API attachment of the configuration that serves now."""
        self._served = frozenset(served)
        self._attachment = attachment
        self._wake.set()

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.resync_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._served is not None and not self.reconcile_all():
                self._stop.wait(5)  # the API is in trouble: try again soon, not at once
                self._wake.set()

    def reconcile_all(self) -> bool:
        assert self._served is not None
        healthy = self.reconcile(self._served) if self.enabled else True
        if self._attachment is not None:
            healthy = self.reconcile_gateway_api(self._attachment) and healthy
        return healthy

    def reconcile_gateway_api(self, attachment: Attachment) -> bool:
        """Patch the Gateway API objects whose status differs; False as `reconcile`."""
        objects = {kind: self.cache.snapshot_kind(kind)[1] for kind in GATEWAY_STATUS_KINDS}
        now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        addresses = gateway_status.addresses_of(self.settings.addresses)
        healthy = True
        try:
            for kind, (namespace, name), status in gateway_status.wanted(
                attachment, objects, addresses, now
            ):
                resource = resources.BY_NAME[kind]
                if resource.namespaced:
                    patch, scope = self.custom.patch_namespaced_custom_object_status, (namespace,)
                else:
                    patch, scope = self.custom.patch_cluster_custom_object_status, ()
                send = functools.partial(
                    patch,
                    resource.group,
                    resource.version,
                    *scope,
                    resource.plural,
                    name,
                    {"status": status},
                    _request_timeout=self.settings.request_timeout,
                )
                healthy = self._patched(namespace, name, send) and healthy
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return self._unreachable(error)
        return healthy

    def plan(self, served: frozenset[Key]) -> list[tuple[Key, list[dict[str, str]] | None]]:
        """(Ingress, status to write; None to clear) for every Ingress that needs a patch."""
        _, snapshot = self.cache.snapshot_kind("ingresses")
        ours = {tuple(sorted(e.items())) for e in self._wanted}
        changes: list[tuple[Key, list[dict[str, str]] | None]] = []
        for key, ingress in sorted(snapshot.items()):
            current = _published(ingress)
            if key in served:
                if current != self._wanted:
                    changes.append((key, self._wanted))
            elif current and all(tuple(sorted(e.items())) in ours for e in current):
                changes.append((key, None))
        return changes

    def reconcile(self, served: frozenset[Key]) -> bool:
        """Patch what differs; False if some patch failed for a reason worth retrying."""
        healthy = True
        try:
            for (namespace, name), entries in self.plan(served):
                body = {"status": {"loadBalancer": {"ingress": entries}}}
                send = functools.partial(
                    self.api.patch_namespaced_ingress_status,
                    name,
                    namespace,
                    body,
                    _request_timeout=self.settings.request_timeout,
                )
                healthy = self._patched(namespace, name, send) and healthy
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return self._unreachable(error)
        return healthy

    def _patched(self, namespace: str, name: str, send: Callable[[], object]) -> bool:
        """Send one status patch; False if it failed for a reason worth retrying. An
        unreachable API raises, so that the round ends at once."""
        try:
            send()
        except ApiException as error:
            if error.status == NOT_FOUND:
                return True  # deleted meanwhile: nothing to publish
            self.metrics.status_updates.labels("error").inc()
            log.warning(
                "status update failed",
                extra={"namespace": namespace, "object_name": name, "error": str(error.status)},
            )
            return False
        self.metrics.status_updates.labels("success").inc()
        return True

    def _unreachable(self, error: Exception) -> bool:
        self.metrics.status_updates.labels("error").inc()
        log.warning("status update failed: API unreachable", extra={"error": str(error)})
        return False
