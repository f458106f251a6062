"""The dynamic mode end to end: the API emulator, `edgeagent run --upstreams dynamic`, a
real nginx with the Lua module, and real backends. Endpoint and certificate changes reach
traffic without a reload and without a failed request (issue 6's tests), in both backend
modes (issue 15): pods by their IPs, or through their Nodes' NodePorts.
"""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import ThreadingHTTPServer

import pytest
from agentlab import (
    BACKEND_ADDRESSES,
    NGINX,
    Edge,
    _create_or_replace,
    endpoint_slice,
    eventually,
    rule,
    same_port_backends,
)
from cryptography.hazmat.primitives.serialization import Encoding
from support_backend_modes import BACKEND_MODES, NODEPORT, node, node_name, through_nodes
from support_http import _EchoHandler, common_name, websocket_tunnel

# Six more backends next to the edge's four, on the same port: ten endpoints for a Service.
EXTRA_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(6, 12))
ADDRESSES = BACKEND_ADDRESSES + EXTRA_ADDRESSES
NAMES = {address: f"web{n}" for n, address in enumerate(ADDRESSES, start=1)}
SERVICES = ("scale", "roll", "steady", "churn")
# In the nodeport mode: four Nodes, web1-web4 on their InternalIPs standing in for their
# NodePorts; the ten pods spread over them in turn (pod n on Node n mod 4).
NODE_ADDRESSES = BACKEND_ADDRESSES
# There, `scale` keeps the default externalTrafficPolicy Cluster (every Node forwards,
# whichever pods exist); the others have Local (only the Nodes holding a ready pod).
LOCAL_SERVICES = frozenset({"roll", "steady", "churn"})
TERMINATING = {"ready": False, "serving": True, "terminating": True}


def node_of(pod: str) -> str:
    """The address of the Node a pod runs on, in the nodeport mode."""
    return NODE_ADDRESSES[ADDRESSES.index(pod) % len(NODE_ADDRESSES)]


@dataclass
class Cluster:
    """The edge's cluster in one backend mode: publishes a Service's pods as the mode
    needs, and names the backends that answer for them."""

    edge: Edge
    mode: str
    node_ports: dict[str, int]
    """Service -> its nodePort (the nodeport mode)."""

    def publish(
        self,
        service: str,
        ready: Iterable[str],
        not_ready: Iterable[str] = (),
        terminating: Iterable[str] = (),
    ) -> None:
        """The Service and its one EndpointSlice, with these pods (by their addresses in
        the endpoints mode)."""
        body = {
            "metadata": {"name": service},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]},
        }
        slice_ = endpoint_slice(service, self.edge.backend_port, [], [])
        slice_["endpoints"] = [
            {"addresses": [pod], "conditions": conditions}
            for pods, conditions in (
                (ready, {"ready": True}),
                (not_ready, {"ready": False}),
                (terminating, TERMINATING),
            )
            for pod in pods
        ]
        if self.mode == NODEPORT:
            body, (slice_,) = through_nodes(
                body,
                [slice_],
                {"http": self.node_ports[service]},
                lambda pod: node_name(node_of(pod)),
                local=service in LOCAL_SERVICES,
            )
        core, discovery = self.edge.core, self.edge.discovery
        _create_or_replace(
            lambda: core.create_namespaced_service("default", body),
            lambda: core.replace_namespaced_service(service, "default", body),
        )
        _create_or_replace(
            lambda: discovery.create_namespaced_endpoint_slice("default", slice_),
            lambda: discovery.replace_namespaced_endpoint_slice(service, "default", slice_),
        )

    def answering(self, service: str, ready: Iterable[str]) -> set[str]:
        """The backends that answer for these ready pods: the pods, or the Nodes that
        hold them (Local), or every Node (Cluster)."""
        if self.mode != NODEPORT:
            return {NAMES[pod] for pod in ready}
        if service in LOCAL_SERVICES:
            return {NAMES[node_of(pod)] for pod in ready}
        return {NAMES[address] for address in NODE_ADDRESSES}


@pytest.fixture(scope="module", params=BACKEND_MODES)
def cluster(request, tmp_path_factory) -> Iterator[Cluster]:
    mode = request.param
    options = {"upstreams": "dynamic", "dynamic-verify-interval": 0.5, "backend-mode": mode}
    with Edge(tmp_path_factory.mktemp(f"dynamic-{mode}"), **options) as started:
        extra_servers: list[ThreadingHTTPServer] = []
        try:
            if mode == NODEPORT:
                # A nodePort per Service on every Node; `scale`'s is the edge's backends'.
                node_ports = {SERVICES[0]: started.backend_port}
                for name in SERVICES[1:]:
                    servers = same_port_backends([NAMES[a] for a in NODE_ADDRESSES], NODE_ADDRESSES)
                    extra_servers += servers
                    node_ports[name] = servers[0].server_address[1]
                for address in NODE_ADDRESSES:
                    body = node(address)
                    started.core.create_node({"metadata": body["metadata"], "spec": {}})
                    started.core.patch_node_status(node_name(address), {"status": body["status"]})
            else:
                node_ports = {}
                extra_servers += _backends_on(started.backend_port)
            started.agent.wait_ready()
            made = Cluster(started, mode, node_ports)
            for name in SERVICES:
                made.publish(name, [ADDRESSES[0]])
            started.apply_ingress(
                "dynamic", [rule(f"{name}.example.com", name) for name in SERVICES]
            )
            for name in SERVICES:
                expected = made.answering(name, [ADDRESSES[0]])
                eventually(lambda n=name, e=expected: served(started, n, 8) == e)
            yield made
        finally:
            for server in extra_servers:
                server.shutdown()
                server.server_close()


@pytest.fixture
def edge(cluster) -> Edge:
    return cluster.edge


def served(edge: Edge, service: str, requests: int = 6) -> set[str | int]:
    return {edge.backend_of(f"{service}.example.com") for _ in range(requests)}


def _backends_on(port: int) -> list[ThreadingHTTPServer]:
    """The extra backends, on the port the edge's own backends use."""
    servers = []
    for address in EXTRA_ADDRESSES:
        server = ThreadingHTTPServer((address, port), _EchoHandler)
        server.daemon_threads = True
        server.backend_name = NAMES[address]
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
    return servers


class Traffic:
    """Requests to one host in a loop on a thread, each on a new connection."""

    def __init__(self, edge: Edge, host: str) -> None:
        self.edge, self.host = edge, host
        self.answers: list[str | int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self.edge.backend_of(self.host))
            except OSError as error:
                self.answers.append(f"error: {error}")

    def __enter__(self) -> Traffic:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def recent(self, count: int = 30) -> set[str | int]:
        return set(self.answers[-count:])

    def failures(self) -> collections.Counter:
        return collections.Counter(a for a in self.answers if not str(a).startswith("web"))


def reloads(edge: Edge) -> float:
    return sum(
        edge.agent.metric("edgeagent_reloads_total", result=result)
        for result in ("success", "rejected", "failed")
    )


def endpoint_pushes(edge: Edge) -> float:
    return edge.agent.metric("edgeagent_dynamic_updates_total", kind="endpoints", result="success")


def syncs(edge: Edge) -> float:
    return sum(
        value
        for (name, _), value in edge.agent.metrics().items()
        if name == "edgeagent_syncs_total"
    )


def test_scale_1_to_10_and_back_under_traffic_without_a_reload(cluster, edge):
    """Scaling changes the pods, not the Nodes: in the nodeport mode (Cluster) the edge
    keeps serving through the same Nodes, with nothing to push."""
    before, pushes = reloads(edge), endpoint_pushes(edge)
    with Traffic(edge, "scale.example.com") as traffic:
        eventually(lambda: traffic.recent() == cluster.answering("scale", ADDRESSES[:1]))
        synced = syncs(edge)
        cluster.publish("scale", ADDRESSES)
        everyone = cluster.answering("scale", ADDRESSES)
        eventually(lambda: traffic.recent(40) == everyone and syncs(edge) > synced, timeout=15)
        synced = syncs(edge)
        cluster.publish("scale", ADDRESSES[:1])
        only = cluster.answering("scale", ADDRESSES[:1])
        eventually(lambda: traffic.recent() == only and syncs(edge) > synced)
        eventually(lambda: len(traffic.answers) > 50)
    assert traffic.failures() == {}, traffic.failures()
    assert reloads(edge) == before, edge.agent.log_tail(8)
    if cluster.mode == NODEPORT:
        assert endpoint_pushes(edge) == pushes
    else:
        assert endpoint_pushes(edge) > pushes


def test_rolling_update_fails_no_request(cluster, edge):
    """In the nodeport mode (Local), the traffic moves from the old pods' Nodes to the
    new pods' Nodes."""
    old, new = ADDRESSES[4:6], ADDRESSES[6:8]
    cluster.publish("roll", old)
    before = reloads(edge)
    with Traffic(edge, "roll.example.com") as traffic:
        eventually(lambda: traffic.recent() == cluster.answering("roll", old))
        # The Deployment's new pods become ready while the old ones terminate: the old
        # ones still serve what they have, but get nothing new.
        cluster.publish("roll", new, terminating=old)
        eventually(lambda: traffic.recent() == cluster.answering("roll", new))
        cluster.publish("roll", new)  # the old pods are gone
        eventually(lambda: len(traffic.answers) > 40)
    assert traffic.failures() == {}, traffic.failures()
    assert reloads(edge) == before


def test_a_long_lived_connection_survives_1000_endpoint_changes_of_another_service(cluster, edge):
    """A WebSocket-style tunnel to `steady` carries data before, during and after 1,000
    EndpointSlice changes of `churn` (in the nodeport mode, moving it from Node to Node):
    nothing reloads, so nothing closes it."""
    before = reloads(edge)
    (steady,) = cluster.answering("steady", ADDRESSES[:1])
    with websocket_tunnel(edge.nginx.http_port, "steady.example.com") as (tunnel, stream):
        for change in range(1000):
            pods = [ADDRESSES[change % len(ADDRESSES)], ADDRESSES[(change + 1) % 10]]
            cluster.publish("churn", pods)
            if change % 100 == 0:
                line = f"change {change}\n".encode()
                tunnel.sendall(line)
                assert stream.readline() == f"{steady}: ".encode() + line
        tunnel.sendall(b"after\n")
        assert stream.readline() == f"{steady}: after\n".encode()
    final = cluster.answering("churn", [ADDRESSES[999 % 10], ADDRESSES[0]])
    eventually(lambda: served(edge, "churn") == final)
    assert reloads(edge) == before


@pytest.mark.parametrize("cluster", [NODEPORT], indirect=True)
def test_local_traffic_nodes_leave_and_join_with_their_ready_pods(cluster, edge):
    """externalTrafficPolicy Local: a Node leaves the upstream when its last ready pod
    goes, and joins when it gains one; each a push, under traffic, failing nothing."""
    on_first, also_on_first, on_second, on_third = (ADDRESSES[i] for i in (0, 4, 1, 2))
    cluster.publish("roll", [on_first, also_on_first, on_second])
    eventually(lambda: served(edge, "roll") == {"web1", "web2"})
    edge.settled()
    before, pushes = reloads(edge), endpoint_pushes(edge)
    with Traffic(edge, "roll.example.com") as traffic:
        cluster.publish("roll", [on_first, also_on_first], not_ready=[on_second])
        eventually(lambda: traffic.recent() == {"web1"})
        # The first Node loses one of its two pods: it keeps taking traffic.
        synced = syncs(edge)
        cluster.publish("roll", [on_first], terminating=[also_on_first], not_ready=[on_second])
        eventually(lambda: syncs(edge) > synced and traffic.recent() == {"web1"})
        cluster.publish("roll", [on_first, on_third])
        eventually(lambda: traffic.recent() == {"web1", "web3"})
    assert traffic.failures() == {}, traffic.failures()
    assert reloads(edge) == before, edge.agent.log_tail(8)
    assert endpoint_pushes(edge) >= pushes + 2


def test_certificate_rotation_is_served_without_a_reload(cluster, edge):
    host = "tls.example.com"
    first = edge.apply_tls_secret("rotating-tls", (host,))
    edge.apply_ingress(
        "tls", [rule(host, "steady")], tls=[{"hosts": [host], "secretName": "rotating-tls"}]
    )
    pem = first.decode()
    eventually(lambda: _served_pem(edge, host) == pem)
    edge.settled()
    before = reloads(edge)
    second = edge.apply_tls_secret("rotating-tls", (host,)).decode()
    eventually(lambda: _served_pem(edge, host) == second)
    # A broken Secret keeps the last good pair, and is reported.
    edge.apply_tls_secret("rotating-tls", (host,), data={"tls.crt": "x", "tls.key": "y"})
    eventually(lambda: edge.agent.metric("edgeagent_invalid_objects", reason="secret") == 1)
    assert _served_pem(edge, host) == second
    assert {edge.get_tls(host).backend} == cluster.answering("steady", ADDRESSES[:1])
    assert reloads(edge) == before
    causes = {
        labels[0][1]
        for (name, labels), value in edge.agent.metrics().items()
        if name == "edgeagent_reloads_by_cause_total" and value
    }
    assert causes <= {"start", "structure"}
    assert edge.agent.metric(
        "edgeagent_dynamic_updates_total", kind="certificates", result="success"
    )


def _served_pem(edge: Edge, host: str) -> str:
    certificate = edge.get_tls(host).certificate
    assert common_name(certificate) == host
    return certificate.public_bytes(Encoding.PEM).decode()


def test_a_restarted_nginx_serves_the_last_state_and_gets_the_whole_state_again(cluster, edge):
    cluster.publish("churn", ADDRESSES[1:3])
    expected = cluster.answering("churn", ADDRESSES[1:3])
    eventually(lambda: served(edge, "churn") == expected)
    full = edge.agent.metric("edgeagent_dynamic_updates_total", kind="full", result="success")
    before = reloads(edge)
    edge.nginx.stop()
    subprocess.run([NGINX, "-c", str(edge.nginx.main_conf)], check=True, timeout=30)
    # Before any push: the state the agent wrote (state.txt), loaded at start.
    assert served(edge, "churn") == expected
    eventually(
        lambda: (
            edge.agent.metric("edgeagent_dynamic_updates_total", kind="full", result="success")
            > full
        )
    )
    assert reloads(edge) == before


def test_nginx_keeps_the_last_pushed_state_when_the_agent_dies(cluster, edge):
    cluster.publish("churn", ADDRESSES[2:4])
    expected = cluster.answering("churn", ADDRESSES[2:4])
    eventually(lambda: served(edge, "churn") == expected)
    edge.agent.kill(signal.SIGKILL)
    cluster.publish("churn", ADDRESSES[:1])  # nobody pushes this one
    assert served(edge, "churn", 10) == expected
