"""The benchmark's cluster: N Ingresses, each with its own Service of 5 ready endpoints.

Objects are built with the test suite's builders (`agentlab`) and written straight into
the emulator's indexed store before it serves: 30,000 creates through HTTP would measure
the emulator, not the agent. Every Ingress already carries the edge's address in its
status, as after an earlier run of the agent, so an agent start is a restart on a live
cluster (nothing to publish) and its status thread stays quiet while the figures are taken.

Names: Ingress, Service and EndpointSlice `app-NNNNN` in namespace `team-NN` (20
namespaces), host `app-NNNNN.team-NN.bench.example`. Probe Services `probe-NN` (with
endpoints, no Ingress yet) are there for the change-to-traffic samples, which create their
Ingresses through the API. With `tls`, every Ingress also has a `tls` section for its host
and a kubernetes.io/tls Secret `app-NNNNN-tls` of its own (ECDSA P-256, self-signed), as the
side by side with HAProxy needs (peers.py).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from edgeagent.cli import self_signed
from edgeagent.grammar import CertPair
from kubeemu.emulator import Emulator
from kubeemu.store import Kind
from suite import agentlab

NAMESPACES = 20
ENDPOINTS_PER_SERVICE = 5
# Pod addresses before and after a rolling update: the backend answers on all of them.
POD_NETWORKS = ("127.0.0", "127.0.1")
FIRST_HOST_NUMBER = 2  # 127.0.0.1 is nginx's own loopback address
SERVICE_PORT = 80
DOMAIN = "bench.example"


@dataclass(frozen=True)
class App:
    """One Ingress with its Service and EndpointSlice."""

    namespace: str
    name: str

    @property
    def host(self) -> str:
        return f"{self.name}.{self.namespace}.{DOMAIN}"

    @property
    def secret_name(self) -> str:
        return f"{self.name}-tls"


def apps(count: int, prefix: str = "app") -> list[App]:
    return [
        App(f"team-{number % NAMESPACES:02d}", f"{prefix}-{number:05d}") for number in range(count)
    ]


def pod_address(endpoint: int, network: int = 0) -> str:
    return f"{POD_NETWORKS[network]}.{FIRST_HOST_NUMBER + endpoint}"


def certificates(apps_: list[App]) -> dict[App, CertPair]:
    """One self-signed pair per host (about 0.3 ms each)."""
    return {app: self_signed(app.host, (app.host,)) for app in apps_}


def ingress(app: App, tls: bool = False) -> dict[str, Any]:
    sections = [{"hosts": [app.host], "secretName": app.secret_name}] if tls else None
    # Served over plain HTTP as well, not redirected: the side by side measures both.
    annotations = {"nginx.ingress.kubernetes.io/ssl-redirect": "false"} if tls else None
    body = agentlab.ingress(
        app.name,
        [agentlab.rule(app.host, app.name, port=SERVICE_PORT)],
        tls=sections,
        annotations=annotations,
    )
    body["metadata"]["namespace"] = app.namespace
    return body


def service(app: App) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": app.name, "namespace": app.namespace},
        "spec": {"ports": [{"name": "http", "port": SERVICE_PORT, "targetPort": "http"}]},
    }


def tls_secret(app: App, pair: CertPair) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": app.secret_name, "namespace": app.namespace},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(pair.certificate_pem).decode(),
            "tls.key": base64.b64encode(pair.key_pem).decode(),
        },
    }


def endpoint_slice(app: App, backend_port: int) -> dict[str, Any]:
    addresses = [pod_address(n) for n in range(ENDPOINTS_PER_SERVICE)]
    body = agentlab.endpoint_slice(app.name, backend_port, addresses, [])
    body["metadata"]["namespace"] = app.namespace
    return body


class Kinds:
    """The store's Kind of each resource, looked up once (not per object)."""

    def __init__(self, emulator: Emulator) -> None:
        def kind(group: str, plural: str) -> Kind:
            found = emulator.kind(group, "v1", plural)
            assert found is not None, plural
            return found

        self.ingresses = kind("networking.k8s.io", "ingresses")
        self.services = kind("", "services")
        self.endpoint_slices = kind("discovery.k8s.io", "endpointslices")
        self.secrets = kind("", "secrets")


def _objects(
    served: list[App], probes: list[App], backend_port: int, tls: dict[App, CertPair]
) -> Iterator[tuple[str, dict[str, Any]]]:
    for app in served + probes:
        yield "services", service(app)
        yield "endpoint_slices", endpoint_slice(app, backend_port)
    for app, pair in tls.items():
        yield "secrets", tls_secret(app, pair)
    for app in served:
        yield "ingresses", ingress(app, tls=app in tls)


def preload(
    emulator: Emulator,
    served: list[App],
    probes: list[App],
    backend_port: int,
    status_address: str,
    tls: dict[App, CertPair] | None = None,
) -> None:
    """Write the cluster into the store; call before the emulator serves. `tls`: the
    certificate of each served app that has one (see `certificates`)."""
    kinds = Kinds(emulator)
    store = emulator.store
    status = {"loadBalancer": {"ingress": [{"ip": status_address}]}}
    for kind_name, obj in _objects(served, probes, backend_port, tls or {}):
        kind = getattr(kinds, kind_name)
        namespace = obj["metadata"]["namespace"]
        store.create(kind, namespace, obj)
        if kind_name == "ingresses":
            name = obj["metadata"]["name"]
            store.update(kind, namespace, name, lambda o: {**o, "status": status}, "status")


def roll_endpoint(emulator: Emulator, app: App, endpoint: int) -> None:
    """One endpoint of `app` replaced by a pod on the other network (a rolling update's
    step); runs on the emulator's loop (`EmulatorThread.call`)."""
    kind = Kinds(emulator).endpoint_slices

    def change(current: dict[str, Any]) -> dict[str, Any]:  # the store passes a copy
        entry = current["endpoints"][endpoint]
        network = POD_NETWORKS.index(entry["addresses"][0].rsplit(".", 1)[0])
        entry["addresses"] = [pod_address(endpoint, 1 - network)]
        return current

    emulator.store.update(kind, app.namespace, app.name, change)
