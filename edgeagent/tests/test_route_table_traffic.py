"""The route table end to end: the API emulator, `edgeagent run --upstreams dynamic`, a
real nginx with the Lua module, and real backends. A plain Ingress is added, changed and
removed without a reload; a host that gets an annotation moves to a server block of its
own (one reload) and back to the table (one more), with no failed request.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from agentlab import BACKEND_ADDRESSES, Edge, eventually, ingress, rule
from test_dynamic_traffic import Traffic, reloads

PREFIX = "nginx.ingress.kubernetes.io/"


@pytest.fixture(scope="module")
def edge(tmp_path_factory) -> Iterator[Edge]:
    options = {"upstreams": "dynamic", "dynamic-verify-interval": 0.5}
    with Edge(tmp_path_factory.mktemp("routes"), **options) as started:
        started.agent.wait_ready()
        for n, name in enumerate(("one", "two", "three")):
            started.apply_service(name, addresses=[BACKEND_ADDRESSES[n]])
        started.apply_ingress("first", [rule("first.example.com", "one")])
        eventually(lambda: started.backend_of("first.example.com") == "web1")
        started.settled()
        yield started


def edge_conf(edge: Edge) -> str:
    return (edge.nginx.agent_dir / "current" / "edge.conf").read_text()


def test_a_plain_ingress_is_added_changed_and_removed_without_a_reload(edge):
    before, master = reloads(edge), edge.nginx.master_pid()
    edge.apply_ingress("plain", [rule("plain.example.com", "two")])
    eventually(lambda: edge.backend_of("plain.example.com") == "web2")
    edge.apply_ingress(
        "plain",
        [rule("plain.example.com", "three"), rule("plain.example.com", "one", "/v1", "Exact")],
    )
    eventually(lambda: edge.backend_of("plain.example.com") == "web3")
    assert edge.backend_of("plain.example.com", "/v1") == "web1"
    assert edge.backend_of("plain.example.com", "/v1/") == "web3"
    edge.networking.delete_namespaced_ingress("plain", "default")
    eventually(lambda: edge.backend_of("plain.example.com") == 404)
    assert edge.backend_of("first.example.com") == "web1"
    assert reloads(edge) == before, edge.agent.log_tail(8)
    assert edge.nginx.master_pid() == master
    assert "plain.example.com" not in edge_conf(edge)
    assert edge.agent.metric("edgeagent_dynamic_updates_total", kind="routes", result="success")


def test_a_host_moves_to_a_server_block_and_back_without_a_failed_request(edge):
    edge.apply_ingress("moving", [rule("moving.example.com", "two")])
    eventually(lambda: edge.backend_of("moving.example.com") == "web2")
    before = reloads(edge)
    with Traffic(edge, "moving.example.com") as traffic:
        eventually(lambda: traffic.recent() == {"web2"})
        annotations = {PREFIX + "proxy-read-timeout": "120"}
        body = ingress("moving", [rule("moving.example.com", "two")], annotations=annotations)
        edge.networking.replace_namespaced_ingress("moving", "default", body)
        eventually(lambda: "server_name moving.example.com;" in edge_conf(edge), timeout=60)
        eventually(lambda: reloads(edge) == before + 1)
        eventually(lambda: len(traffic.answers) > 20)
        edge.apply_ingress("moving", [rule("moving.example.com", "two")])
        eventually(lambda: "moving.example.com" not in edge_conf(edge), timeout=60)
        eventually(lambda: reloads(edge) == before + 2)
        count = len(traffic.answers)
        eventually(lambda: len(traffic.answers) > count + 20)
    assert traffic.failures() == {}, traffic.failures()
    assert "proxy_read_timeout 120s;" not in edge_conf(edge)
    assert edge.backend_of("moving.example.com") == "web2"


def test_without_the_table_a_plain_ingress_renders_its_server(tmp_path):
    """--route-table false: every host has its server block again, and a new one reloads."""
    options = {"upstreams": "dynamic", "route-table": "false"}
    with Edge(tmp_path, **options) as edge:
        edge.agent.wait_ready()
        edge.apply_service("one", addresses=[BACKEND_ADDRESSES[0]])
        before = reloads(edge)
        edge.apply_ingress("plain", [rule("plain.example.com", "one")])
        eventually(lambda: edge.backend_of("plain.example.com") == "web1")
        assert "server_name plain.example.com;" in edge_conf(edge)
        eventually(lambda: reloads(edge) > before)
