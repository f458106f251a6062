"""The dynamic mode end to end: the API emulator, `edgeagent run --upstreams dynamic`, a
real nginx with the Lua module, and real backends. Endpoint and certificate changes reach
traffic without a reload and without a failed request (issue 6's tests).
"""

from __future__ import annotations

import collections
import signal
import subprocess
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer

import pytest
from agentlab import BACKEND_ADDRESSES, NGINX, Edge, eventually, rule
from cryptography.hazmat.primitives.serialization import Encoding
from support_http import _EchoHandler, common_name, websocket_tunnel

# Six more backends next to the edge's four, on the same port: ten endpoints for a Service.
EXTRA_ADDRESSES = tuple(f"127.0.0.{n}" for n in range(6, 12))
ADDRESSES = BACKEND_ADDRESSES + EXTRA_ADDRESSES
NAMES = {address: f"web{n}" for n, address in enumerate(ADDRESSES, start=1)}
SERVICES = ("scale", "roll", "steady", "churn")


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    options = {"upstreams": "dynamic", "dynamic-verify-interval": 0.5}
    with Edge(tmp_path_factory.mktemp("dynamic"), **options) as started:
        extra = _backends_on(started.backend_port)
        try:
            started.agent.wait_ready()
            for name in SERVICES:
                started.apply_service(name, addresses=[BACKEND_ADDRESSES[0]])
            started.apply_ingress(
                "dynamic", [rule(f"{name}.example.com", name) for name in SERVICES]
            )
            for name in SERVICES:
                eventually(lambda name=name: started.backend_of(f"{name}.example.com") == "web1")
            yield started
        finally:
            for server in extra:
                server.shutdown()
                server.server_close()


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


def test_scale_1_to_10_and_back_under_traffic_without_a_reload(edge):
    before = reloads(edge)
    with Traffic(edge, "scale.example.com") as traffic:
        eventually(lambda: traffic.recent() == {"web1"})
        edge.apply_service("scale", addresses=list(ADDRESSES))
        everyone = {NAMES[a] for a in ADDRESSES}
        eventually(lambda: traffic.recent(40) == everyone, timeout=15)
        edge.apply_service("scale", addresses=[ADDRESSES[0]])
        eventually(lambda: traffic.recent() == {"web1"})
    assert traffic.failures() == {}, traffic.failures()
    assert len(traffic.answers) > 50
    assert reloads(edge) == before, edge.agent.log_tail(8)
    assert edge.agent.metric("edgeagent_dynamic_updates_total", kind="endpoints", result="success")


def test_rolling_update_fails_no_request(edge):
    old, new = list(ADDRESSES[4:6]), list(ADDRESSES[6:8])
    edge.apply_service("roll", addresses=old)
    before = reloads(edge)
    with Traffic(edge, "roll.example.com") as traffic:
        eventually(lambda: traffic.recent() == {NAMES[a] for a in old})
        # The Deployment's new pods become ready while the old ones terminate: the old
        # ones still serve what they have, but get nothing new.
        slice_ = edge.discovery.read_namespaced_endpoint_slice("roll", "default")
        slice_.endpoints = [
            {"addresses": [a], "conditions": {"ready": False, "serving": True, "terminating": True}}
            for a in old
        ] + [{"addresses": [a], "conditions": {"ready": True}} for a in new]
        edge.discovery.replace_namespaced_endpoint_slice("roll", "default", slice_)
        eventually(lambda: traffic.recent() == {NAMES[a] for a in new})
        edge.apply_service("roll", addresses=new)  # the old pods are gone
        eventually(lambda: len(traffic.answers) > 40)
    assert traffic.failures() == {}, traffic.failures()
    assert reloads(edge) == before


def test_a_long_lived_connection_survives_1000_endpoint_changes_of_another_service(edge):
    """A WebSocket-style tunnel to `steady` carries data before, during and after 1,000
    EndpointSlice changes of `churn`: nothing reloads, so nothing closes it."""
    before = reloads(edge)
    with websocket_tunnel(edge.nginx.http_port, "steady.example.com") as (tunnel, stream):
        for change in range(1000):
            addresses = [ADDRESSES[change % len(ADDRESSES)], ADDRESSES[(change + 1) % 10]]
            edge.apply_service("churn", addresses=addresses)
            if change % 100 == 0:
                line = f"change {change}\n".encode()
                tunnel.sendall(line)
                assert stream.readline() == b"web1: " + line
        tunnel.sendall(b"after\n")
        assert stream.readline() == b"web1: after\n"
    final = {NAMES[ADDRESSES[999 % 10]], NAMES[ADDRESSES[0]]}
    eventually(lambda: {edge.backend_of("churn.example.com") for _ in range(6)} == final)
    assert reloads(edge) == before


def test_certificate_rotation_is_served_without_a_reload(edge):
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
    assert edge.get_tls(host).backend == "web1"
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


def test_a_restarted_nginx_serves_the_last_state_and_gets_the_whole_state_again(edge):
    edge.apply_service("scale", addresses=list(ADDRESSES[1:3]))
    expected = {NAMES[a] for a in ADDRESSES[1:3]}
    eventually(lambda: {edge.backend_of("scale.example.com") for _ in range(6)} == expected)
    full = edge.agent.metric("edgeagent_dynamic_updates_total", kind="full", result="success")
    before = reloads(edge)
    edge.nginx.stop()
    subprocess.run([NGINX, "-c", str(edge.nginx.main_conf)], check=True, timeout=30)
    # Before any push: the state the agent wrote (state.txt), loaded at start.
    assert {edge.backend_of("scale.example.com") for _ in range(6)} == expected
    eventually(
        lambda: (
            edge.agent.metric("edgeagent_dynamic_updates_total", kind="full", result="success")
            > full
        )
    )
    assert reloads(edge) == before


def test_nginx_keeps_the_last_pushed_state_when_the_agent_dies(edge):
    edge.apply_service("scale", addresses=list(ADDRESSES[2:4]))
    expected = {NAMES[a] for a in ADDRESSES[2:4]}
    eventually(lambda: {edge.backend_of("scale.example.com") for _ in range(6)} == expected)
    edge.agent.kill(signal.SIGKILL)
    edge.apply_service("scale", addresses=[ADDRESSES[0]])  # nobody pushes this one
    answers = {edge.backend_of("scale.example.com") for _ in range(10)}
    assert answers == expected
