"""Issue 14: one namespace's objects cannot stop another namespace's changes from reaching
traffic. A real agent, nginx and OpenSSL, and the API emulator."""

import base64

import pytest
import support_objects as objects
from agentlab import Edge, agent_layout, eventually, ingress, rule
from cryptography import x509
from edgeagent.apply import Applier
from edgeagent.cli import self_signed
from edgeagent.gateway import routing as gateway_routing
from edgeagent.informer import list_call

from edgeagent import model, render, resources


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
    eventually(lambda: edge.get_tls("a.example.com").backend == "web1")

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


def candidate(edge, *changed: dict) -> render.Rendered:
    """What the agent renders once the API holds its objects with `changed` applied."""
    client = edge.api.api_client()
    inputs = {}
    for resource in resources.RESOURCES:
        listing = list_call(resource, client)()
        objects_ = {
            resources.key_of(obj): obj
            for obj in client.sanitize_for_serialization(listing)["items"]
        }
        for obj in changed:
            if obj["kind"] == resource.kind:
                objects_[resources.key_of(obj)] = obj
        inputs[resource.name] = list(objects_.values())
    objects_, options = model.Inputs(**inputs), model.Options(ingress_class="edge")
    built, _ = gateway_routing.build(model.build(objects_, options), objects_, options)
    return render.render(built, agent_layout(edge.nginx))


def plant_refused_certificate(edge, rendered: render.Rendered, secret: tuple[str, str]) -> None:
    """Stage `rendered` as the agent would, with the pair of `secret` broken on disk: the
    agent finds the generation written and nginx -t refuses the one server that loads it,
    as it would refuse a block no check foresaw."""
    staged = Applier(edge.nginx.apply_settings()).stage(rendered)
    pem = staged / render.certificate_file(*secret)
    pem.unlink()
    pem.write_bytes(b"not a certificate\n")


def secret_object(namespace: str, name: str, pair) -> dict:
    encoded = {"tls.crt": pair.certificate_pem, "tls.key": pair.key_pem}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value).decode() for key, value in encoded.items()},
    }


def test_a_server_nginx_refuses_is_quarantined_and_other_namespaces_still_change(edge):
    """The property of issue 14 where it is hardest: namespace A's server block is one
    nginx -t refuses (planted, in every candidate that holds it), and namespace B's new
    Ingress still reaches traffic, while A's host keeps the server it had."""
    first = edge.apply_tls_secret("tls", ("a.example.com",), "team-a")
    tls = [{"hosts": ["a.example.com"], "secretName": "tls"}]
    edge.apply_ingress("a", [rule("a.example.com", "app")], namespace="team-a", tls=tls)
    eventually(lambda: edge.get_tls("a.example.com").backend == "web1")
    served_certificate = x509.load_pem_x509_certificate(first)

    rotated = secret_object("team-a", "tls", self_signed("a.example.com", ("a.example.com",)))
    b = ingress("b", [rule("b.example.com", "app")])
    b["metadata"]["namespace"] = "team-b"
    b = {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", **b}
    # Whether the agent syncs A's rotation alone first or both changes at once, its
    # candidate holds the refused server.
    for changes in ((rotated,), (rotated, b)):
        plant_refused_certificate(edge, candidate(edge, *changes), ("team-a", "tls"))
    edge.core.replace_namespaced_secret("tls", "team-a", {**rotated, "metadata": {"name": "tls"}})
    edge.networking.create_namespaced_ingress("team-b", {**b, "metadata": {"name": "b"}})

    eventually(lambda: edge.backend_of("b.example.com") == "web2")
    assert edge.get_tls("a.example.com").certificate == served_certificate
    assert edge.get_tls("a.example.com").backend == "web1"
    eventually(lambda: edge.agent.metric("edgeagent_quarantined_servers") == 1)
    assert edge.agent.metric("edgeagent_invalid_objects", reason="quarantined") == 1
    eventually(
        lambda: [
            e.message
            for e in edge.core.list_namespaced_event("team-a").items
            if (e.reason, e.involved_object.name) == ("Quarantined", "a")
            and "a.example.com" in e.message
        ]
    )

    # A fixes its object (a new pair, whose server renders anew): served again.
    fixed = edge.apply_tls_secret("tls", ("a.example.com",), "team-a")
    fixed_certificate = x509.load_pem_x509_certificate(fixed)
    eventually(lambda: edge.get_tls("a.example.com").certificate == fixed_certificate)
    eventually(lambda: edge.agent.metric("edgeagent_quarantined_servers") == 0)
    assert edge.backend_of("b.example.com") == "web2"
