"""Prometheus metrics, all named `edgeagent_*`, in a registry of their own.

A private registry (not prometheus_client's global one) keeps the exposition to what the
agent means to export and lets tests build several agents in one process.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from edgeagent import __version__

SYNC_PHASES = ("build", "render", "apply", "stage", "validate", "reload", "total")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)  # process_cpu_seconds_total, _resident_memory_bytes...
        Gauge(
            "edgeagent_build_info",
            "Always 1; the label says which edgeagent this is",
            ["version"],
            registry=r,
        ).labels(__version__).set(1)
        self.reloads = Counter(
            "edgeagent_reloads",
            "nginx reload attempts by result: success, rejected (nginx -t failed), failed "
            "(reload command failed or the new generation was not confirmed)",
            ["result"],
            registry=r,
        )
        self.reload_causes = Counter(
            "edgeagent_reloads_by_cause",
            "nginx reloads attempted, by what changed: structure (hosts, paths, TLS host "
            "sets, settings, stream.conf: the peers of TLS passthrough), endpoints, "
            "certificates (static mode only: the dynamic mode applies those without a reload), "
            "start (the first generation of this process)",
            ["cause"],
            registry=r,
        )
        self.dynamic_updates = Counter(
            "edgeagent_dynamic_updates",
            "Dynamic mode: pushes to nginx's control endpoint by kind (full: the whole state, "
            "after a reload or a restart; endpoints; certificates; routes: the route table's "
            "hosts) and result (success, failed)",
            ["kind", "result"],
            registry=r,
        )
        self.last_reload_success = Gauge(
            "edgeagent_last_reload_success_timestamp_seconds",
            "Unix time of the last reload that nginx confirmed",
            registry=r,
        )
        self.last_reload_successful = Gauge(
            "edgeagent_last_reload_successful",
            "1 if the last attempted configuration serves, 0 if it was rejected or failed",
            registry=r,
        )
        self.config_hash = Gauge(
            "edgeagent_config_hash",
            "Generation serving, as a number (the first 52 bits of its hash)",
            registry=r,
        )
        self.sync_duration = Histogram(
            "edgeagent_sync_duration_seconds",
            "Time per sync phase: build (model), render, apply (all of: stage, validate "
            "(nginx -t), reload (with its confirmation)) and total",
            ["phase"],
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
            registry=r,
        )
        self.validations = Counter(
            "edgeagent_validations",
            "Validations by scope: full (nginx -t on the whole candidate), chunked (on each "
            "part of it, without a baseline) or delta (on the blocks that changed since the "
            "generation that serves), see apply.py",
            ["scope"],
            registry=r,
        )
        self.syncs = Counter(
            "edgeagent_syncs",
            "Syncs by outcome: unchanged, applied, rejected, failed",
            ["outcome"],
            registry=r,
        )
        self.watch_restarts = Counter(
            "edgeagent_watch_restarts",
            "Watches restarted, by resource and reason: closed (server timeout, normal), "
            "expired (410, relist), silent (no byte for too long), error (backoff)",
            ["resource", "reason"],
            registry=r,
        )
        self.objects = Gauge(
            "edgeagent_objects", "Objects held in the watch cache, by kind", ["kind"], registry=r
        )
        self.invalid_objects = Gauge(
            "edgeagent_invalid_objects",
            "Objects (or parts of them) not served as written, by reason code",
            ["reason"],
            registry=r,
        )
        self.api_last_contact = Gauge(
            "edgeagent_api_last_contact_timestamp_seconds",
            "Unix time of the last answer from the API server (a list, or a line of a watch, "
            "bookmarks included)",
            registry=r,
        )
        self.quarantined_servers = Gauge(
            "edgeagent_quarantined_servers",
            "Host servers nginx -t refused, withheld from the configuration (each host keeps "
            "its previous server, or is not served)",
            registry=r,
        )
        self.status_updates = Counter(
            "edgeagent_status_updates",
            "Ingress status patches by result: success, error",
            ["result"],
            registry=r,
        )
        self.events = Counter(
            "edgeagent_events", "Kubernetes Events posted, by result", ["result"], registry=r
        )
        self.vip_holder = Gauge(
            "edgeagent_vip_holder",
            "1 while this node holds the address (a --publish-status-address VIP), else 0",
            ["address"],
            registry=r,
        )
        self.vip_holder_changes = Counter(
            "edgeagent_vip_holder_changes",
            "Times this node took or lost the address (vips.py)",
            ["address"],
            registry=r,
        )
        self.backend_unreachable = Gauge(
            "edgeagent_backend_unreachable",
            "1 for each Service none of whose sampled endpoints (pod IPs, or NodePorts) "
            "accepted a TCP connection from this node at the last probe (probe.py)",
            ["namespace", "service"],
            registry=r,
        )
        self._unreachable: set[tuple[str, str]] = set()

    def set_generation(self, generation: str) -> None:
        self.config_hash.set(int(generation[:13], 16) if generation else 0)

    def set_unreachable(self, services: Iterable[tuple[str, str]]) -> None:
        """(namespace, service) of the Services found unreachable; only those have a series,
        so the label set stays as small as the trouble."""
        now = set(services)
        for gone in self._unreachable - now:
            self.backend_unreachable.remove(*gone)
        for key in now:
            self.backend_unreachable.labels(*key).set(1)
        self._unreachable = now

    def set_invalid(self, codes: Iterable[str], known: Iterable[str]) -> None:
        counts: dict[str, int] = dict.fromkeys(known, 0)
        for code in codes:
            counts[code] = counts.get(code, 0) + 1
        for code, count in counts.items():
            self.invalid_objects.labels(code).set(count)
