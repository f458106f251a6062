"""`--gateway-address`: the addresses Gateway listeners bind, against real nginx and the
API emulator; and what a Gateway's `spec.addresses` may name (attachment, pure)."""

import kubernetes
import pytest
from agentlab import Edge, eventually, rule
from edgeagent.gateway import conditions as c
from edgeagent.gateway.attachment import Index, attach
from edgeagent.gateway.options import GatewayOptions
from edgeagent.grammar import Invalid, bind_addresses
from edgeagent.resources import GATEWAY_GROUP
from support_gateway import gateway, gateway_class, http_route, listener, parent
from support_http import request

NS = "default"
V1 = (GATEWAY_GROUP, "v1")
# Loopback addresses no backend of the lab uses: nginx binds them with its own ports.
GATEWAY_ADDRESS = "127.0.0.50"
NOT_BOUND = "127.0.0.51"
GATEWAY_HOST = "gw.example.com"
INGRESS_HOST = "ingress.example.com"


def conditions(status):
    return {each["type"]: (each["status"], each["reason"]) for each in status["conditions"]}


def gateway_conditions(addresses, bound=(GATEWAY_ADDRESS,)):
    obj = gateway("edge", listener())
    obj["spec"]["addresses"] = addresses
    attached = attach(
        [gateway_class()],
        [obj],
        [],
        Index({}, {}, {}, ()),
        GatewayOptions(addresses=bound),
    )
    (state,) = attached.gateways
    return {cond.type: (cond.status, cond.reason) for cond in state.conditions}


def test_spec_addresses_among_the_bound_ones_are_programmed():
    found = gateway_conditions([{"type": "IPAddress", "value": GATEWAY_ADDRESS}])
    assert found == {c.ACCEPTED: (True, c.ACCEPTED), c.PROGRAMMED: (True, c.PROGRAMMED)}
    # The type defaults to IPAddress, as in the API.
    assert gateway_conditions([{"value": GATEWAY_ADDRESS}])[c.PROGRAMMED] == (True, c.PROGRAMMED)


def test_an_address_the_edge_does_not_bind_is_accepted_but_not_programmed():
    found = gateway_conditions(
        [{"type": "IPAddress", "value": GATEWAY_ADDRESS}, {"type": "IPAddress", "value": NOT_BOUND}]
    )
    assert found == {c.ACCEPTED: (True, c.ACCEPTED), c.PROGRAMMED: (False, c.ADDRESS_NOT_USABLE)}


@pytest.mark.parametrize(
    "addresses, bound",
    [
        ([{"type": "Hostname", "value": "edge.example.com"}], (GATEWAY_ADDRESS,)),
        ([{"type": "IPAddress", "value": "not-an-address"}], (GATEWAY_ADDRESS,)),
        ([{"type": "IPAddress", "value": 5}], (GATEWAY_ADDRESS,)),
        # Without --gateway-address the edge has no address to hand to one Gateway.
        ([{"type": "IPAddress", "value": GATEWAY_ADDRESS}], ()),
    ],
)
def test_other_address_types_or_no_bound_addresses_are_unsupported(addresses, bound):
    found = gateway_conditions(addresses, bound)
    assert found[c.ACCEPTED] == (False, c.UNSUPPORTED_ADDRESS)
    assert found[c.PROGRAMMED][0] is False


@pytest.mark.parametrize("value", ["127.0.0.500", "0127.0.0.1", "::FFFF", "edge.example.com"])
def test_the_flag_takes_canonical_ip_addresses_only(value):
    with pytest.raises(Invalid):
        bind_addresses([value], "--gateway-address")


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    with Edge(tmp_path_factory.mktemp("edge"), **{"gateway-address": GATEWAY_ADDRESS}) as started:
        started.agent.wait_ready()
        yield started


def answer(edge, host, address):
    response = request(edge.nginx.http_port, host, address=address)
    return response.backend if response.status == 200 and response.backend else response.status


def test_gateway_hosts_answer_on_the_gateway_addresses_only(edge):
    custom = kubernetes.client.CustomObjectsApi(edge.api.api_client())
    custom.create_cluster_custom_object(*V1, "gatewayclasses", gateway_class())
    custom.create_namespaced_custom_object(
        *V1, NS, "gateways", gateway("edge", listener(), namespace=NS)
    )
    edge.apply_service("gw-web", addresses=["127.0.0.2"])
    route = http_route(
        "web",
        [parent("edge", namespace=None)],
        rules=[{"backendRefs": [{"name": "gw-web", "port": 80}]}],
        hostnames=[GATEWAY_HOST],
        namespace=NS,
    )
    custom.create_namespaced_custom_object(*V1, NS, "httproutes", route)
    edge.apply_ingress("ingress", [rule(INGRESS_HOST, "gw-web")])
    eventually(lambda: answer(edge, GATEWAY_HOST, GATEWAY_ADDRESS) == "web1", timeout=30)
    eventually(lambda: answer(edge, INGRESS_HOST, "127.0.0.1") == "web1", timeout=30)

    edge_conf = (edge.nginx.agent_dir / "current" / "edge.conf").read_text()
    listens = [line.strip() for line in edge_conf.splitlines() if "listen " in line]
    assert f"listen {GATEWAY_ADDRESS}:{edge.nginx.http_port};" in listens
    # nginx's own address answers the Ingress, not the Gateway's host (default server).
    assert answer(edge, GATEWAY_HOST, "127.0.0.1") == 404
    # The Ingress keeps answering on the Gateway's address too.
    assert answer(edge, INGRESS_HOST, GATEWAY_ADDRESS) == "web1"

    def status():
        return custom.get_namespaced_custom_object(*V1, NS, "gateways", "edge").get("status")

    eventually(lambda: (status() or {}).get("addresses"), timeout=30)
    assert status()["addresses"] == [{"type": "IPAddress", "value": GATEWAY_ADDRESS}]
    assert conditions(status())["Programmed"] == ("True", "Programmed")

    custom.patch_namespaced_custom_object(
        *V1, NS, "gateways", "edge", {"spec": {"addresses": [{"value": NOT_BOUND}]}}
    )
    eventually(
        lambda: conditions(status())["Programmed"] == ("False", c.ADDRESS_NOT_USABLE), timeout=30
    )
    assert conditions(status())["Accepted"] == ("True", "Accepted")
