"""TLS hosts of the route table end to end: the API emulator, `edgeagent run --upstreams
dynamic`, a real nginx with the Lua module, real backends and TLS clients. A TLS Ingress
is added, its Secret rotated, and removed without a reload; a TLS host that gets an
annotation moves to a server block of its own (one reload) and back to the table (one
more), with no failed HTTPS request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agentlab import BACKEND_ADDRESSES, Edge, eventually, ingress, rule
from cryptography import x509
from support_http import common_name
from test_dynamic_traffic import Traffic, reloads

PREFIX = "nginx.ingress.kubernetes.io/"


class TLSTraffic(Traffic):
    """HTTPS requests to one host in a loop, each on a new connection and handshake."""

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.answers.append(self.edge.backend_of(self.host, tls=True))
            except OSError as error:
                self.answers.append(f"error: {error}")


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    options = {"upstreams": "dynamic", "dynamic-verify-interval": 0.5}
    with Edge(tmp_path_factory.mktemp("tls-routes"), **options) as started:
        started.agent.wait_ready()
        for n, name in enumerate(("one", "two")):
            started.apply_service(name, addresses=[BACKEND_ADDRESSES[n]])
        started.apply_ingress("first", [rule("first.example.com", "one")])
        eventually(lambda: started.backend_of("first.example.com") == "web1")
        started.settled()
        yield started


def tls_for(host: str) -> list[dict]:
    return [{"hosts": [host], "secretName": host.split(".")[0] + "-tls"}]


def served_certificate(edge: Edge, host: str) -> x509.Certificate:
    return edge.get_tls(host).certificate


def test_a_tls_ingress_is_added_rotated_and_removed_without_a_reload(edge):
    before, master = reloads(edge), edge.nginx.master_pid()
    host = "secure.example.com"
    first = x509.load_pem_x509_certificate(edge.apply_tls_secret("secure-tls", (host,)))
    edge.apply_ingress("secure", [rule(host, "two")], tls=tls_for(host))
    eventually(lambda: edge.backend_of(host, tls=True) == "web2")
    assert served_certificate(edge, host) == first
    redirect = edge.get(host, "/a/b?c=d")
    assert (redirect.status, redirect.headers["location"]) == (308, f"https://{host}/a/b?c=d")
    pinned = edge.get_tls(host).headers["strict-transport-security"]
    assert pinned == "max-age=31536000; includeSubDomains"
    second = x509.load_pem_x509_certificate(edge.apply_tls_secret("secure-tls", (host,)))
    eventually(lambda: served_certificate(edge, host) == second)
    edge.networking.delete_namespaced_ingress("secure", "default")
    eventually(lambda: edge.backend_of(host, tls=True) == 404)
    assert common_name(served_certificate(edge, host)) == "edge-default"
    assert edge.backend_of("first.example.com") == "web1"
    assert reloads(edge) == before, edge.agent.log_tail(8)
    assert edge.nginx.master_pid() == master
    assert edge.agent.metric("edgeagent_dynamic_updates_total", kind="routes", result="success")


def test_a_tls_host_moves_to_a_server_block_and_back_without_a_failed_request(edge):
    host = "moving.example.com"
    edge.apply_tls_secret("moving-tls", (host,))
    edge.apply_ingress("moving", [rule(host, "two")], tls=tls_for(host))
    eventually(lambda: edge.backend_of(host, tls=True) == "web2")
    edge.settled()
    before = reloads(edge)
    conf = edge.nginx.agent_dir / "current" / "edge.conf"
    with TLSTraffic(edge, host) as traffic:
        eventually(lambda: traffic.recent() == {"web2"})
        annotations = {PREFIX + "proxy-read-timeout": "120"}
        body = ingress("moving", [rule(host, "two")], annotations=annotations, tls=tls_for(host))
        edge.networking.replace_namespaced_ingress("moving", "default", body)
        eventually(lambda: f"server_name {host};" in conf.read_text(), timeout=60)
        eventually(lambda: reloads(edge) == before + 1)
        eventually(lambda: len(traffic.answers) > 20)
        edge.apply_ingress("moving", [rule(host, "two")], tls=tls_for(host))
        eventually(lambda: host not in conf.read_text(), timeout=60)
        eventually(lambda: reloads(edge) == before + 2)
        count = len(traffic.answers)
        eventually(lambda: len(traffic.answers) > count + 20)
    assert traffic.failures() == {}, traffic.failures()
    assert common_name(served_certificate(edge, host)) == host
