"""Issue 14: one namespace's objects cannot stop another namespace's changes from reaching
traffic. A real agent, nginx and OpenSSL, and the API emulator."""

import pytest
import support_objects as objects
from agentlab import Edge, eventually, rule
from cryptography import x509


@pytest.fixture
def edge(tmp_path):
    with Edge(tmp_path) as started:
        for namespace, address in (("team-a", "127.0.0.2"), ("team-b", "127.0.0.3")):
            started.apply_service("app", namespace=namespace, addresses=[address])
        started.agent.wait_ready()
        yield started


def test_a_secret_nginx_would_refuse_costs_only_its_own_hosts_their_certificate(edge, tmp_path):
    certificate, key = objects.openssl_pair(tmp_path, 1024, "sha256")  # OpenSSL refuses it
    weak = {"tls.crt": certificate.decode(), "tls.key": key.decode()}
    edge.apply_tls_secret("weak", ("a.example.com",), "team-a", data=weak)
    tls = [{"hosts": ["a.example.com"], "secretName": "weak"}]
    edge.apply_ingress("a", [rule("a.example.com", "app")], namespace="team-a", tls=tls)
    eventually(lambda: edge.backend_of("a.example.com") == "web1")

    edge.apply_ingress("b", [rule("b.example.com", "app")], namespace="team-b")
    eventually(lambda: edge.backend_of("b.example.com") == "web2")
    answer = edge.get_tls("a.example.com")  # served over TLS, with the default certificate
    assert answer.status == 200 and answer.backend == "web1"
    default = x509.load_pem_x509_certificate(edge.nginx.certificate.read_bytes())
    assert answer.certificate == default
    assert edge.agent.metric("edgeagent_reloads_total", result="rejected") == 0
    eventually(
        lambda: [
            e.message
            for e in edge.core.list_namespaced_event("team-a").items
            if (e.reason, e.involved_object.name) == ("Secret", "weak")
            and "ee key too small" in e.message
        ]
    )
