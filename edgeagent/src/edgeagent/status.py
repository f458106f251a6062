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
"""

from __future__ import annotations

import ipaddress
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import kubernetes
import urllib3
from kubernetes.client import ApiException

from edgeagent import options
from edgeagent.cache import Cache, Key
from edgeagent.metrics import Metrics
from edgeagent.options import option

log = logging.getLogger(__name__)

NOT_FOUND = 404


@dataclass(frozen=True)
class StatusSettings:
    addresses: tuple[str, ...] = field(
        default=(),
        metadata=option(
            "publish-status-address",
            "addresses written into status.loadBalancer.ingress of every Ingress served, e.g. "
            "the VIP (default: none, status publishing off)",
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
        self._served: frozenset[Key] | None = None  # None until the first good sync
        self._wake = threading.Event()
        self.thread = threading.Thread(target=self.run, name="status", daemon=True)

    @property
    def enabled(self) -> bool:
        return bool(self._wanted)

    def publish(self, served: Iterable[Key]) -> None:
        """The Ingresses of the configuration that serves now."""
        self._served = frozenset(served)
        self._wake.set()

    def start(self) -> None:
        if self.enabled:
            self.thread.start()

    def run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.settings.resync_interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self._served is not None and not self.reconcile(self._served):
                self._stop.wait(5)  # the API is in trouble: try again soon, not at once
                self._wake.set()

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
        for (namespace, name), entries in self.plan(served):
            body = {"status": {"loadBalancer": {"ingress": entries}}}
            try:
                self.api.patch_namespaced_ingress_status(
                    name, namespace, body, _request_timeout=self.settings.request_timeout
                )
                self.metrics.status_updates.labels("success").inc()
            except ApiException as error:
                if error.status == NOT_FOUND:
                    continue  # deleted meanwhile: nothing to publish
                self.metrics.status_updates.labels("error").inc()
                log.warning(
                    "status update failed",
                    extra={"namespace": namespace, "object_name": name, "error": str(error.status)},
                )
                healthy = False
            except (urllib3.exceptions.HTTPError, OSError) as error:
                self.metrics.status_updates.labels("error").inc()
                log.warning("status update failed: API unreachable", extra={"error": str(error)})
                return False
        return healthy
