"""From an HTTPRoute created through the API to the first 200 through nginx, with 1,000
HTTPRoutes present: `gateway_change_to_traffic_1k_p50_ms` and `_p99_ms`.

The Ingress figure's method (change.py), on a cluster that routes through the Gateway
API instead, with the edge in its default (dynamic) mode, where a plain HTTPRoute is a
route table host (docs/gateway-api.md): no reload. The GatewayClass `edge`, one Gateway
with an HTTP listener on port 80 that admits routes from every namespace, and one
HTTPRoute per app (host and Service as cluster.py names them, no Ingress). Each sample
creates the HTTPRoute of a probe Service with the official client.

The routes are written into the emulator's store before the agent starts, without status:
the agent writes 1,000 route statuses and the Gateway's after its first sync, and the
samples start once it has, so its status thread is as quiet as with the Ingress figure.
"""

from __future__ import annotations

import pathlib
import time
from typing import Any

import change
import cluster
import kubernetes
from edge import BenchEdge
from edgeagent.resources import GATEWAY_GROUP
from kubeemu.store import Kind
from suite import agentlab
from support_gateway import backend_ref, gateway, gateway_class, http_route, listener, parent

GATEWAY_NAMESPACE = "edge-gateway"
GATEWAY_NAME = "edge"
VERSION = "v1"


def route(app: cluster.App) -> dict[str, Any]:
    return http_route(
        app.name,
        [parent(GATEWAY_NAME, GATEWAY_NAMESPACE)],
        rules=[{"backendRefs": [backend_ref(app.name, port=cluster.SERVICE_PORT)]}],
        hostnames=[app.host],
        namespace=app.namespace,
    )


def _gateway_kind(edge: BenchEdge, plural: str) -> Kind:
    found = edge.api.emulator.kind(GATEWAY_GROUP, VERSION, plural)
    assert found is not None, plural
    return found


def _preload_gateway(edge: BenchEdge) -> None:
    """The class and the Gateway; on the emulator's loop (`EmulatorThread.call`)."""
    store = edge.api.emulator.store
    store.create(_gateway_kind(edge, "gatewayclasses"), None, gateway_class(agentlab.CLASS))
    store.create(
        _gateway_kind(edge, "gateways"),
        GATEWAY_NAMESPACE,
        gateway(GATEWAY_NAME, listener(allowed_from="All"), namespace=GATEWAY_NAMESPACE),
    )


def _preload_apps(edge: BenchEdge, apps: list[cluster.App]) -> None:
    """Each app's Service, EndpointSlice and HTTPRoute; on the emulator's loop."""
    kinds = cluster.Kinds(edge.api.emulator)
    routes = _gateway_kind(edge, "httproutes")
    store = edge.api.emulator.store
    for app in apps:
        store.create(kinds.services, app.namespace, cluster.service(app))
        store.create(
            kinds.endpoint_slices, app.namespace, cluster.endpoint_slice(app, edge.backend.port)
        )
        store.create(routes, app.namespace, route(app))


def routes_with_status(edge: BenchEdge) -> int:
    def count() -> int:
        entries, _, _ = edge.api.emulator.store.list(_gateway_kind(edge, "httproutes"), None)
        return sum(1 for entry in entries if (entry.obj.get("status") or {}).get("parents"))

    return edge.api.call(count)


def create_route(edge: BenchEdge, app: cluster.App) -> None:
    # Raw response, as the Ingress figure: the clock starts when the API has answered.
    api = kubernetes.client.CustomObjectsApi(edge.api.api_client())
    api.create_namespaced_custom_object(
        GATEWAY_GROUP, VERSION, app.namespace, "httproutes", route(app), _preload_content=False
    ).read()


def measure(
    root: pathlib.Path, count: int, samples: int, timeout: float, deadline: float
) -> dict[str, Any]:
    """A 1k Gateway edge of its own: preload, agent start, sync, status, then the samples."""
    # The backend pods are loopback addresses, which an edge refuses by default.
    options = {"allow-loopback-backends": True, "upstreams": "dynamic"}
    with BenchEdge(root, 0, probes=samples, agent_options=options) as edge:
        apps = cluster.apps(count)
        started = time.monotonic()
        edge.api.call(_preload_gateway, edge)
        for start in range(0, count, 100):  # short calls, each well within call's bound
            edge.api.call(_preload_apps, edge, apps[start : start + 100])
        preload_seconds = time.monotonic() - started
        edge.agent.start()
        edge.first_ok(apps[-1].host, timeout, change.POLL_INTERVAL)
        agentlab.eventually(lambda: routes_with_status(edge) == count, timeout=timeout)
        edge.settled(timeout)
        measured = change.change_to_traffic(edge, samples, timeout, deadline, create_route)
        return {"preload_seconds": round(preload_seconds, 2), **measured}
