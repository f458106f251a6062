"""`--gateway-address-mode dedicated`: each Gateway on its own address of the
`--gateway-address` pool. Which address each gets (gateway.addressing, attachment; pure),
and the traffic through a real nginx in both modes: HTTPRouteMultipleGateways as the
conformance suite writes it (its two Gateways no longer merge), GatewayStaticAddresses'
and GatewayOptionalAddressValue's `spec.addresses`, a pool exhausted, two Gateways asking
for one address, an Ingress that no dedicated address serves, and a Gateway's hostname
that an Ingress host also names: each serves it on its own addresses. Loopback holds 127.0.0.0/8:
127.0.0.11 to .13 stand in for the addresses (the echo backends take .2 and up)."""

import dataclasses
import types

import kubernetes
import pytest
from agentlab import Edge, eventually
from edgeagent.gateway import conditions as c
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.addressing import assign
from edgeagent.gateway.attachment import Index, attach
from edgeagent.gateway.options import DEDICATED, GatewayOptions
from edgeagent.gateway.status import wanted
from edgeagent.resources import GATEWAY_GROUP
from support_gateway import (
    INFRA,
    backend_ref,
    gateway,
    gateway_class,
    http_route,
    listener,
    namespace,
    parent,
)
from support_http import Backends, common_name, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service
from test_render_golden import DYNAMIC_LAYOUT, GOLDEN, LAYOUT, assert_matches_golden

from edgeagent import model, render

V1 = (GATEWAY_GROUP, "v1")
POOL = ("127.0.0.11", "127.0.0.12", "127.0.0.13")
FIRST, SECOND, STATIC = POOL
DEDICATED_OPTIONS = GatewayOptions(addresses=POOL, address_mode=DEDICATED)
# Service -> its echo backend.
BACKENDS = {
    "infra-backend-v1": "infra-v1",
    "infra-backend-v2": "infra-v2",
    "infra-backend-v3": "infra-v3",
    "ingress-backend": "ingress",
}


def aged(obj: dict, created: str, addresses: list[dict] | None = None) -> dict:
    obj["metadata"]["creationTimestamp"] = created
    if addresses is not None:
        obj["spec"]["addresses"] = addresses
    return obj


def gateways() -> list[dict]:
    """The suite's two Gateways (one HTTP listener on port 80, no hostname), one naming
    its address, one asking for the same address later, and one for which none is left."""
    return [
        aged(gateway("same-namespace", listener()), "2020-01-01T00:00:00Z"),
        aged(gateway("all-namespaces", listener(allowed_from="All")), "2021-01-01T00:00:00Z"),
        aged(
            gateway("static", listener()),
            "2022-01-01T00:00:00Z",
            [{"type": "IPAddress", "value": STATIC}],
        ),
        aged(gateway("taken", listener()), "2023-01-01T00:00:00Z", [{"value": STATIC}]),
        # GatewayOptionalAddressValue: a type without a value asks for any address.
        aged(gateway("exhausted", listener()), "2024-01-01T00:00:00Z", [{"type": "IPAddress"}]),
    ]


def routes() -> list[dict]:
    v1 = backend_ref("infra-backend-v1")
    return [
        # HTTPRouteMultipleGateways, as the suite writes it.
        http_route(
            "multiple-gateways-shared-route",
            [parent("same-namespace"), parent("all-namespaces")],
            rules=[
                {
                    "matches": [{"path": {"type": "PathPrefix", "value": "/shared"}}],
                    "backendRefs": [v1],
                }
            ],
        ),
        http_route(
            "same-namespace-dedicated-route",
            [parent("same-namespace")],
            rules=[{"backendRefs": [backend_ref("infra-backend-v2")]}],
        ),
        http_route(
            "all-namespaces-dedicated-route",
            [parent("all-namespaces")],
            rules=[{"backendRefs": [backend_ref("infra-backend-v3")]}],
        ),
        http_route("static", [parent("static")], hostnames=["static.example"]),
        # The Ingress's host (objects, below): the Gateway's on its own address.
        http_route(
            "ingress-host",
            [parent("static")],
            rules=[{"backendRefs": [backend_ref("infra-backend-v3")]}],
            hostnames=["ingress.example"],
        ),
        http_route("taken", [parent("taken")], hostnames=["taken.example"]),
        http_route("exhausted", [parent("exhausted")], hostnames=["exhausted.example"]),
    ]


def attached(options: GatewayOptions = DEDICATED_OPTIONS):
    return attach([gateway_class()], gateways(), routes(), Index({}, {}, {}, ()), options)


def programmed(state) -> tuple[bool, str, str]:
    (found,) = [each for each in state.conditions if each.type == c.PROGRAMMED]
    return found.status, found.reason, found.message


def test_the_oldest_gateways_take_the_first_free_addresses_and_named_ones_are_kept():
    states = {state.key[1]: state for state in attached().gateways}
    assert states["same-namespace"].addresses == (FIRST,)
    assert states["all-namespaces"].addresses == (SECOND,)
    assert states["static"].addresses == (STATIC,)
    assert programmed(states["static"])[:2] == (True, c.PROGRAMMED)
    # The address is named by an older Gateway, and the pool has no other left.
    status, reason, message = programmed(states["taken"])
    assert (status, reason) == (False, c.ADDRESS_NOT_ASSIGNED)
    assert f"{STATIC}: held by Gateway {INFRA}/static" in message
    status, reason, message = programmed(states["exhausted"])
    assert (status, reason) == (False, c.ADDRESS_NOT_ASSIGNED)
    assert message.startswith("no free address in --gateway-address")
    assert states["taken"].addresses == states["exhausted"].addresses == ()


def test_an_address_named_by_a_newer_gateway_is_never_handed_out():
    a, b = ("ns", "older"), ("ns", "newer")
    assert assign([(a, ()), (b, ("10.0.0.1",))], ("10.0.0.1", "10.0.0.2")) == {
        a: ("10.0.0.2",),
        b: ("10.0.0.1",),
    }
    assert isinstance(assign([(a, ()), (b, ("10.0.0.1",))], ("10.0.0.1",))[a], str)


def test_status_addresses_are_each_gateways_own():
    objects = {
        "gateway_classes": {},
        "gateways": {(INFRA, g["metadata"]["name"]): g for g in gateways()},
        "http_routes": {},
    }
    published = [{"type": "IPAddress", "value": "192.0.2.1"}]
    found = {
        key[1]: status["addresses"]
        for kind, key, status in wanted(attached(), objects, published, "now")
        if kind == "gateways"
    }
    assert found["same-namespace"] == [{"type": "IPAddress", "value": FIRST}]
    assert found["static"] == [{"type": "IPAddress", "value": STATIC}]
    assert found["exhausted"] == []
    # The shared mode: every Gateway shows the whole pool, as before.
    shared = dataclasses.replace(DEDICATED_OPTIONS, address_mode="shared")
    statuses = wanted(attached(shared), objects, published, "now")
    assert {str(s["addresses"]) for kind, _, s in statuses if kind == "gateways"} == {
        str([{"type": "IPAddress", "value": a} for a in POOL])
    }


def objects(backends) -> model.Inputs:
    inputs = model.Inputs(gateway_classes=[gateway_class()], namespaces=[namespace(INFRA)])
    for name, started in BACKENDS.items():
        inputs.services.append(service(name, {"http": 8080}, namespace=INFRA))
        ready = [(backends[started].host, True)]
        slice_ = endpoint_slice(name, ready, backends[started].port, namespace=INFRA, name=started)
        inputs.endpoint_slices.append(slice_)
    inputs.gateways.extend(gateways())
    inputs.http_routes.extend(routes())
    inputs.ingresses.append(
        ingress(
            "plain",
            rule("ingress.example", path("/", "ingress-backend", 8080)),
            namespace=INFRA,
        )
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in BACKENDS.values()}
        site = render_site(
            tmp_path_factory.mktemp("dedicated"),
            objects(started),
            model.Options(gateway=DEDICATED_OPTIONS),
            dynamic_mode=request.param == "dynamic",
            gateway_addresses=POOL,
            gateway_address_mode=DEDICATED,
        )
        runner.start(site)
        yield site
    finally:
        runner.stop_all()
        backends.stop_all()


def answer(site, host, address, target="/"):
    response = request(site.ports.http, host, target, address=address)
    return response.backend if response.status == 200 and response.backend else response.status


@pytest.mark.parametrize("host", ["any.example", "other.example"])
def test_multiple_gateways_each_on_its_own_address(site, host):
    """HTTPRouteMultipleGateways: the shared route through both Gateways, and each
    dedicated route's `/` through its own Gateway's address only."""
    assert answer(site, host, FIRST, "/shared") == "infra-v1"
    assert answer(site, host, SECOND, "/shared") == "infra-v1"
    assert answer(site, host, FIRST) == "infra-v2"
    assert answer(site, host, SECOND) == "infra-v3"
    # Neither Gateway's routes on the edge's own address, nor on the other's.
    assert answer(site, host, "127.0.0.1") == 404
    assert answer(site, host, STATIC) == 404
    assert not [p for p in site.model.problems if p.code == "conflict"]


def test_a_gateway_with_spec_addresses_answers_there_only(site):
    assert answer(site, "static.example", STATIC) == "infra-v1"
    assert answer(site, "static.example", "127.0.0.1") == 404
    # On another Gateway's address, that Gateway's route without a hostname answers.
    assert answer(site, "static.example", FIRST) == "infra-v2"


@pytest.mark.parametrize("host", ["taken.example", "exhausted.example"])
def test_a_gateway_without_an_address_serves_nothing(site, host):
    assert answer(site, host, STATIC) == answer(site, host, "127.0.0.1") == 404
    assert (answer(site, host, FIRST), answer(site, host, SECOND)) == ("infra-v2", "infra-v3")


def test_an_ingress_is_not_served_on_a_dedicated_address(site):
    assert answer(site, "ingress.example", "127.0.0.1") == "ingress"
    assert answer(site, "ingress.example", FIRST) == "infra-v2"


def test_a_gateway_serves_an_ingress_host_on_its_own_address(site):
    """nginx picks among the servers of the connection's address first: the Ingress's
    server is not one of the Gateway's address, so the Gateway's route answers there, and
    the Ingress keeps the name on the edge's addresses."""
    assert answer(site, "ingress.example", STATIC) == "infra-v3"
    assert answer(site, "ingress.example", "127.0.0.1") == "ingress"


def ingress_conflicts(options: model.Options) -> tuple[dict[str, list], list]:
    fixed = {name: types.SimpleNamespace(host="10.0.0.10", port=8080) for name in BACKENDS.values()}
    inputs = objects(fixed)
    built, attachment = gateway_routing.build(model.build(inputs, options), inputs, options)
    found = {
        route.key[1]: [
            x for p in route.parents for x in p.conditions if x.type == c.INGRESS_CONFLICT
        ]
        for route in attachment.routes
    }
    conflicts = [p for p in built.problems if p.code == "conflict"]
    return found, conflicts


def test_no_ingress_conflict_is_reported_on_a_dedicated_address():
    found, conflicts = ingress_conflicts(model.Options(gateway=DEDICATED_OPTIONS))
    assert found["ingress-host"] == [] and conflicts == []
    # The shared mode: the Ingress wins the host on every address, and the route is told.
    shared = dataclasses.replace(DEDICATED_OPTIONS, address_mode="shared")
    found, conflicts = ingress_conflicts(model.Options(gateway=shared))
    assert [(x.status, x.reason) for x in found["ingress-host"]] == [(True, c.INGRESS_WINS)]
    assert "ingress-host" in [p.name for p in conflicts]


def test_a_dedicated_address_answers_https_with_the_default_certificate(site):
    response = request(site.ports.https, "ingress.example", tls=True, address=FIRST)
    assert response.status == 404
    assert common_name(response.certificate) == "edgeagent-default"


def test_the_dedicated_servers_listen_on_their_addresses_without_bind(site):
    edge_conf = (site.directory / "edge.conf").read_text()
    listens = {
        line.strip() for line in edge_conf.splitlines() if line.strip().startswith("listen ")
    }
    for address in POOL:
        assert f"listen {address}:{site.ports.http} default_server;" in listens
    assert not [line for line in listens if " bind" in line]


EMULATED_POOL = ("127.0.0.21", "127.0.0.22")


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    flags = {"gateway-address": ",".join(EMULATED_POOL), "gateway-address-mode": DEDICATED}
    with Edge(tmp_path_factory.mktemp("edge"), **flags) as started:
        started.agent.wait_ready()
        yield started


def test_each_gateways_status_against_the_api_emulator(edge):
    custom = kubernetes.client.CustomObjectsApi(edge.api.api_client())
    custom.create_cluster_custom_object(*V1, "gatewayclasses", gateway_class())
    named = gateway("named", listener(), namespace="default")
    named["spec"]["addresses"] = [{"type": "IPAddress", "value": EMULATED_POOL[0]}]
    for each in (gateway("first", listener(), namespace="default"), named):
        custom.create_namespaced_custom_object(*V1, "default", "gateways", each)
    edge.apply_service("gw-web", addresses=["127.0.0.2"])
    route = http_route(
        "web",
        [parent("first", namespace=None)],
        rules=[{"backendRefs": [{"name": "gw-web", "port": 80}]}],
        hostnames=["gw.example.com"],
        namespace="default",
    )
    custom.create_namespaced_custom_object(*V1, "default", "httproutes", route)

    def status(name):
        found = custom.get_namespaced_custom_object(*V1, "default", "gateways", name)
        return found.get("status") or {}

    def programmed(name):
        found = {x["type"]: (x["status"], x["reason"]) for x in status(name).get("conditions", [])}
        return found.get(c.PROGRAMMED)

    # The address that "named" names is not handed to the older "first".
    eventually(lambda: programmed("first") == ("True", c.PROGRAMMED), timeout=30)
    assert status("first")["addresses"] == [{"type": "IPAddress", "value": EMULATED_POOL[1]}]
    eventually(lambda: programmed("named") == ("True", c.PROGRAMMED), timeout=30)
    assert status("named")["addresses"] == [{"type": "IPAddress", "value": EMULATED_POOL[0]}]

    def answer(address):
        response = request(edge.nginx.http_port, "gw.example.com", address=address)
        return response.backend if response.status == 200 else response.status

    eventually(lambda: answer(EMULATED_POOL[1]) == "web1", timeout=30)
    assert answer(EMULATED_POOL[0]) == answer("127.0.0.1") == 404

    # The pool is exhausted: a third Gateway gets no address.
    custom.create_namespaced_custom_object(
        *V1, "default", "gateways", gateway("third", listener(), namespace="default")
    )
    eventually(lambda: programmed("third") == ("False", c.ADDRESS_NOT_ASSIGNED), timeout=30)
    assert status("third")["addresses"] == []


def test_the_dedicated_configuration_matches_golden():
    """Both modes' edge.conf of the objects above, with fixed endpoints."""
    fixed = {
        name: types.SimpleNamespace(host="10.0.0.10", port=8080 + index)
        for index, name in enumerate(BACKENDS.values())
    }
    inputs = objects(fixed)
    files = {}
    for mode, layout in (("static", LAYOUT), ("dynamic", DYNAMIC_LAYOUT)):
        options = model.Options(gateway=DEDICATED_OPTIONS, dynamic=mode == "dynamic")
        built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
        dedicated = dataclasses.replace(
            layout, gateway_addresses=POOL, gateway_address_mode=DEDICATED
        )
        files[f"{mode}/edge.conf"] = render.render(built, dedicated).files["edge.conf"]
    assert_matches_golden(files, GOLDEN / "gateway-dedicated")


def conditions_of(obj: dict) -> tuple[dict[str, tuple[bool, str]], tuple[str, ...]]:
    found = attach([gateway_class()], [obj], [], Index({}, {}, {}, ()), DEDICATED_OPTIONS)
    (state,) = found.gateways
    return {x.type: (x.status, x.reason) for x in state.conditions}, state.addresses


def test_gateway_static_addresses_on_the_edges_port():
    """GatewayStaticAddresses' steps (on port 80: the suite's 8080 is not carried)."""
    obj = gateway("gateway-static-addresses", listener())
    invalid = {"type": "test/fake-invalid-type", "value": "fake address teehee!"}
    obj["spec"]["addresses"] = [invalid, {"value": "192.0.2.1"}, {"value": STATIC}]
    found, _ = conditions_of(obj)
    assert found[c.ACCEPTED] == (False, c.UNSUPPORTED_ADDRESS)
    obj["spec"]["addresses"].remove(invalid)
    found, addresses = conditions_of(obj)
    assert found == {c.ACCEPTED: (True, c.ACCEPTED), c.PROGRAMMED: (False, c.ADDRESS_NOT_USABLE)}
    assert addresses == ()
    obj["spec"]["addresses"] = [{"value": STATIC}]
    found, addresses = conditions_of(obj)
    assert found[c.PROGRAMMED] == (True, c.PROGRAMMED)
    assert addresses == (STATIC,)


def test_gateway_optional_address_value_on_the_edges_port():
    """GatewayOptionalAddressValue (on port 80): a type without a value gets an address."""
    obj = gateway("gateway-without-address-value", listener())
    obj["spec"]["addresses"] = [{"type": "IPAddress"}]
    found, addresses = conditions_of(obj)
    assert found[c.PROGRAMMED] == (True, c.PROGRAMMED)
    assert addresses == (FIRST,)
