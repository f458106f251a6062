"""`edgeagent run`: the daemon on each edge node.

Threads: one informer per kind (informer.py) fills the cache; the controller
(controller.py) turns it into nginx configuration; the status publisher and the event
recorder talk back to the API on their own threads; the health server answers /healthz, /readyz
and /metrics. The main thread handles signals, pings systemd's watchdog and samples
which VIPs the node holds (vips.py).

Settings (settings.py) come from flags or from `--config FILE`, a YAML mapping whose keys
are the long flag names without dashes in front (`ingress-class: edge`,
`publish-status-address: [198.51.100.100]`); the ansible role writes
/etc/edgeagent/config.yaml. A flag given on the command line wins over the file; the file
wins over the defaults. Unknown keys are an error, so a typo never silently falls back to
a default.

systemd: READY=1 is sent at start when nginx already serves a generation (found through
its status server: the agent stands behind it until it syncs, even with the API down,
and /readyz says so), else after the first sync attempt. Normally that is the first
configuration applied and confirmed; if the very first candidate is rejected, READY=1 is
sent anyway with a STATUS line saying so (nginx keeps serving what it had, and a unit
that never became ready would only be restarted in a loop), while /readyz stays 503
until nginx serves a configuration. The unit needs a TimeoutStartSec long enough for the
first list and sync when nothing serves yet, as the API may be slow at boot.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

import kubernetes

from edgeagent import kube, logs, model, render, systemd
from edgeagent.apply import Applier, ApplyResult, Outcome
from edgeagent.backends import BackendPolicy
from edgeagent.cache import Cache
from edgeagent.control import Control
from edgeagent.controller import Controller
from edgeagent.events import EventRecorder
from edgeagent.gateway.options import GatewayOptions
from edgeagent.health import HealthServer, HealthState
from edgeagent.informer import Informer, read_object
from edgeagent.metrics import Metrics
from edgeagent.probe import BackendProbe, Reach
from edgeagent.request_collector import RequestCollector
from edgeagent.resources import RESOURCES
from edgeagent.settings import AgentSettings
from edgeagent.status import StatusPublisher
from edgeagent.vips import VipHolder

log = logging.getLogger(__name__)

DYNAMIC_DIR = "dynamic"
VIP_SAMPLE_SECONDS = 1.0


def model_options(s: AgentSettings) -> model.Options:
    """What the model is built with, from the settings (the daemon's and `doctor`'s)."""
    return model.Options(
        ingress_class=s.serving.ingress_class,
        watch_ingress_without_class=s.serving.watch_ingress_without_class,
        host_owner=s.serving.host_owner,
        backend_mode=s.serving.backend_mode,
        backends=BackendPolicy(
            networks=s.serving.backend_networks,
            vips=s.status.addresses,
            refuse_loopback=not s.serving.allow_loopback_backends,
        ),
        upstreams_without_endpoints=s.nginx.dynamic,
        dynamic=s.nginx.dynamic,
        annotations=s.annotations,
        gateway=GatewayOptions(
            gateway_class=s.serving.gateway_class,
            controller_name=s.serving.gateway_controller_name,
            http_port=s.serving.gateway_http_port,
            https_port=s.serving.gateway_https_port,
            addresses=s.serving.gateway_address,
            address_mode=s.serving.gateway_address_mode,
        ),
    )


@dataclass
class Agent:
    """Every part of a running agent, built from the resolved settings."""

    settings: AgentSettings

    def __post_init__(self) -> None:
        s = self.settings
        self.stop = threading.Event()
        self.metrics = Metrics()
        self.cache = Cache(s.watch.namespaces)
        sources = [
            (resource, namespace)
            for resource in RESOURCES
            for namespace in (s.watch.namespaces if resource.namespaced else ()) or (None,)
        ]
        client = kube.api_client(s.api, watches=len(sources))
        self.informers = [
            Informer(resource, client, self.cache, s.watch, self.metrics, self.stop, namespace)
            for resource, namespace in sources
        ]
        self.health = HealthState(self.watch_report, self.threads)
        self.health_server = HealthServer(s.daemon.health_listen, self.health, self.metrics)
        self.applier = applier = Applier(s.apply)
        self.status = StatusPublisher(client, self.cache, s.status, self.metrics, self.stop)
        self.events = EventRecorder(client, self.cache, self.metrics, self.stop)
        self.vips = VipHolder(s.status.addresses, self.metrics)
        nginx_dir = s.apply.nginx_dir.rstrip("/")
        dynamic_dir = f"{nginx_dir}/{DYNAMIC_DIR}"
        layout = render.Layout(
            listen_http=s.nginx.listen_http,
            listen_https=s.nginx.listen_https,
            output_dir=f"{nginx_dir}/gen-{render.GENERATION_PLACEHOLDER}",
            default_certificate=s.nginx.default_certificate,
            default_key=s.nginx.default_key,
            status_listen=s.apply.status_listen,
            dynamic_dir=dynamic_dir if s.nginx.dynamic else None,
            lua_dir=s.nginx.lua_dir if s.nginx.dynamic else None,
            trusted_proxies=s.nginx.trusted_proxies,
            proxy_protocol=s.nginx.proxy_protocol,
            gateway_addresses=s.serving.gateway_address,
            gateway_address_mode=s.serving.gateway_address_mode,
            ssl_passthrough_listen=s.nginx.ssl_passthrough_listen,
            ssl_passthrough_backend_listen=s.nginx.ssl_passthrough_backend_listen,
            auth_hop_http_listen=s.nginx.auth_hop_http_listen,
            auth_hop_https_listen=s.nginx.auth_hop_https_listen,
            route_table=s.nginx.route_table,
            listen_ipv6=s.nginx.listen_ipv6,
            served_by_header=s.nginx.served_by_header,
        )
        # A bad combination stops the start, not every sync.
        render.check_layout(layout, s.annotations.enable_ssl_passthrough)
        control = Control(dynamic_dir, s.apply.status_listen) if s.nginx.dynamic else None
        self.controller = Controller(
            self.cache,
            model_options(s),
            layout,
            applier,
            self.status,
            self.events,
            self.metrics,
            self.health,
            s.sync,
            self.stop,
            on_first_sync=self.first_sync,
            control=control,
            read=lambda resource, key: read_object(resource, client, key, s.watch.request_timeout),
        )
        self.metrics.registry.register(
            RequestCollector(
                control.request_counts if control is not None else None,
                self.controller.serving_upstreams,
                self.controller.serving_ingresses,
            )
        )
        self.probe = BackendProbe(
            self.controller.serving_upstreams,
            self.report_reach,
            self.stop,
            s.daemon.backend_probe_interval,
        )

    def watch_report(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            i.name: {
                "synced": i.resource_version is not None,
                "resource_version": i.resource_version,
                "seconds_since_contact": None
                if i.last_contact is None
                else round(now - i.last_contact, 3),
                "last_error": i.last_error,
            }
            for i in self.informers
        }

    def threads(self) -> list[threading.Thread]:
        """The threads whose death leaves the edge silently stale (health.py)."""
        return [i.thread for i in self.informers] + [self.controller.thread, self.probe.thread]

    def report_reach(self, reaches: list[Reach]) -> None:
        unreachable = {(r.namespace, r.service): r.detail for r in reaches if r.unreachable}
        self.metrics.set_unreachable(unreachable)
        self.events.report_unreachable(unreachable)

    def first_sync(self, result: ApplyResult) -> None:
        if result.outcome in (Outcome.APPLIED, Outcome.UNCHANGED):
            systemd.notify("READY=1", f"STATUS=serving generation {result.generation}")
        else:
            systemd.notify(
                "READY=1", f"STATUS=first sync {result.outcome.value}: {result.detail[:200]}"
            )

    def shutdown(self, *_: Any) -> None:
        self.stop.set()
        self.cache.wake()

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self.shutdown)
        signal.signal(signal.SIGINT, self.shutdown)
        self.health_server.start()
        found = self.applier.serving_generation()
        if found is not None:  # served before any sync; the API may be down (health.py)
            self.health.found_at_start(found)
            systemd.notify("READY=1", f"STATUS=nginx serves generation {found}; syncing")
        self.events.start()
        self.status.start()
        for each in self.informers:
            each.start()
        self.controller.start()
        self.probe.start()
        log.info("started", extra={"health": self.settings.daemon.health_listen})
        interval = systemd.watchdog_interval()
        # Every second at least: the VIP holder is sampled here (vips.py).
        while not self.stop.wait(min(interval or VIP_SAMPLE_SECONDS, VIP_SAMPLE_SECONDS)):
            self.vips.sample()
            if interval and not self.health.dead_threads():
                systemd.notify("WATCHDOG=1")
        systemd.notify("STOPPING=1")
        for each in self.informers:
            each.interrupt()
        self.events.stop()
        log.info("stopped")  # the health server's thread ends with the process
        return 0


def main(settings: AgentSettings) -> int:
    logs.setup(settings.daemon.log_level)
    try:
        agent = Agent(settings)
    except (OSError, ValueError, kubernetes.config.ConfigException) as error:
        log.error("cannot start", extra={"error": str(error)})
        return 2
    return agent.run()
