"""One name, two tenants, two certificates: an Ingress of team-a and a dedicated Gateway's
HTTPS listener of team-b (`--gateway-address-mode dedicated`) both serve shop.example.com,
each with its own Secret. Each address presents its own tenant's certificate, in both
modes: the dynamic mode's pushed pairs are scoped by the server's addresses
(render.certificate_scope, lua/edgeagent_certificates.lua), and a rotation pushed for
one scope leaves the other's alone. 127.0.0.31 stands in for the Gateway's address."""

import dataclasses
import types

import pytest
from cryptography import x509
from edgeagent.control import Control
from edgeagent.gateway import conditions as c
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.options import DEDICATED, GatewayOptions
from support_gateway import backend_ref, gateway, gateway_class, http_route, listener, namespace
from support_gateway import parent as parent_ref
from support_http import Backends, common_name, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, dynamic, model

HOST = "shop.example.com"
WILDCARD = "*.example.com"  # team-a's too, on the edge's addresses only
GATEWAY_ADDRESS = "127.0.0.31"
POOL = (GATEWAY_ADDRESS,)
OPTIONS = model.Options(gateway=GatewayOptions(addresses=POOL, address_mode=DEDICATED))
TEAMS = ("team-a", "team-b")
PAIRS = {team: cli.self_signed(team, (HOST,)) for team in TEAMS}
ROTATED = {team: cli.self_signed(f"{team}-rotated", (HOST,)) for team in TEAMS}


def objects(backends: dict, pairs: dict) -> model.Inputs:
    """team-a's Ingress and team-b's Gateway and HTTPRoute, each on its own Service
    `shop` (the echo backend named after the team) and its own Secret `shop-tls`."""
    inputs = model.Inputs(
        gateway_classes=[gateway_class()], namespaces=[namespace(t) for t in TEAMS]
    )
    for team in TEAMS:
        inputs.services.append(service("shop", {"http": 8080}, namespace=team))
        ready = [(backends[team].host, True)]
        inputs.endpoint_slices.append(
            endpoint_slice("shop", ready, backends[team].port, namespace=team, name=team)
        )
        inputs.secrets.append(tls_secret("shop-tls", pairs[team], namespace=team))
    inputs.ingresses.append(
        ingress(
            "shop",
            rule(HOST, path("/", "shop", 8080)),
            rule(WILDCARD, path("/", "shop", 8080)),
            namespace="team-a",
            tls=[{"hosts": [HOST, WILDCARD], "secretName": "shop-tls"}],
        )
    )
    https = listener("https", 443, "HTTPS", hostname=HOST, certificates=[{"name": "shop-tls"}])
    shop = gateway("shop", https, namespace="team-b")
    shop["spec"]["addresses"] = [{"type": "IPAddress", "value": GATEWAY_ADDRESS}]
    inputs.gateways.append(shop)
    inputs.http_routes.append(
        http_route(
            "shop",
            [parent_ref("shop", namespace="team-b")],
            rules=[{"backendRefs": [backend_ref("shop")]}],
            hostnames=[HOST],
            namespace="team-b",
        )
    )
    return inputs


FIXED = {team: types.SimpleNamespace(host="10.0.0.10", port=8080) for team in TEAMS}


def built(dynamic_mode: bool, pairs: dict = PAIRS, backends: dict = FIXED):
    """(model, attachment) of the objects."""
    options = dataclasses.replace(
        OPTIONS, dynamic=dynamic_mode, upstreams_without_endpoints=dynamic_mode
    )
    inputs = objects(backends, pairs)
    return gateway_routing.build(model.build(inputs, options), inputs, options)


def test_the_pushed_hosts_are_scoped_by_the_servers_addresses():
    state = dynamic.state_of(built(True)[0])
    assert state.hosts == {
        ("", HOST): "team-a_shop-tls",
        ("", WILDCARD): "team-a_shop-tls",
        (GATEWAY_ADDRESS, HOST): "team-b_shop-tls",
    }
    lines = dynamic.encode(state, 1, full=True).decode().splitlines()
    assert f"host {HOST} team-a_shop-tls" in lines
    assert f"host {GATEWAY_ADDRESS}/{HOST} team-b_shop-tls" in lines
    ipv6 = dynamic.State({}, {}, {("fd00::5", "*.example.com"): "k"})
    assert "host fd00::5/*.example.com k" in dynamic.encode(ipv6, 1, full=True).decode()
    for hostile in ("10.0.0.1 x", "a/b"):
        with pytest.raises(ValueError):
            dynamic.encode(dynamic.State({}, {}, {(hostile, HOST): "k"}), 1, full=True)


@pytest.mark.parametrize("dynamic_mode", [False, True], ids=["static", "dynamic"])
def test_no_ingress_conflict_in_either_mode(dynamic_mode):
    """The Gateway keeps the name on its own address, with its own certificate."""
    result, attachment = built(dynamic_mode)
    assert not [p for p in result.problems if p.code == "conflict"]
    (route,) = attachment.routes
    for status in route.parents:
        assert c.holds(status.conditions, c.ACCEPTED)
        assert not [x for x in status.conditions if x.type == c.INGRESS_CONFLICT]
    certificates = {s.addresses: s.certificate for s in result.servers if s.host == HOST}
    assert certificates == {(): ("team-a", "shop-tls"), POOL: ("team-b", "shop-tls")}


class Edge:
    def __init__(self, directory, started: dict, runner: NginxRunner, dynamic_mode: bool) -> None:
        self.site = render_site(
            directory,
            objects(started, PAIRS),
            OPTIONS,
            dynamic_mode=dynamic_mode,
            gateway_addresses=POOL,
            gateway_address_mode=DEDICATED,
        )
        self.nginx = runner.start(self.site)
        self.started = started
        if dynamic_mode:
            self.control = Control(
                str(directory / "dynamic"), f"127.0.0.1:{self.site.ports.status}"
            )
            self.pushed = dynamic.state_of(self.site.model)
            self.control.push(self.pushed, full=True)

    def move_to(self, pairs: dict) -> None:
        """Push what changed, as the agent does when edge.conf does not change."""
        new = dynamic.state_of(built(True, pairs, self.started)[0])
        self.control.push(dynamic.delta(self.pushed, new), full=False)
        self.pushed = new

    def served(self, address: str, host: str = HOST) -> tuple[int, str | None, x509.Certificate]:
        answer = request(self.site.ports.https, host, "/", tls=True, address=address)
        return answer.status, answer.backend, answer.certificate


def certificate(pair: model.CertPair) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair.certificate_pem)


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        started = {team: backends.start(team) for team in TEAMS}
        yield {
            mode: Edge(tmp_path_factory.mktemp(mode), started, runner, mode == "dynamic")
            for mode in ("static", "dynamic")
        }
    finally:
        runner.stop_all()
        backends.stop_all()


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_each_address_presents_its_own_tenants_certificate(edges, mode):
    edge = edges[mode]
    assert edge.served("127.0.0.1") == (200, "team-a", certificate(PAIRS["team-a"]))
    assert edge.served(GATEWAY_ADDRESS) == (200, "team-b", certificate(PAIRS["team-b"]))


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_a_name_of_the_edges_addresses_only_is_not_served_its_certificate_elsewhere(edges, mode):
    """The wildcard fallback stays in the scope: on the Gateway's address, whose default
    server answers a name it does not serve, the default certificate."""
    edge = edges[mode]
    other = "other.example.com"
    assert edge.served("127.0.0.1", other) == (200, "team-a", certificate(PAIRS["team-a"]))
    status, _, served = edge.served(GATEWAY_ADDRESS, other)
    assert (status, common_name(served)) == (404, "edgeagent-default")


@pytest.mark.parametrize("rotated", TEAMS)
def test_a_rotation_pushed_for_one_scope_leaves_the_other_alone(edges, rotated):
    edge = edges["dynamic"]
    pids = edge.nginx.pids()
    pairs = {**PAIRS, rotated: ROTATED[rotated]}
    edge.move_to(pairs)
    assert edge.served("127.0.0.1") == (200, "team-a", certificate(pairs["team-a"]))
    assert edge.served(GATEWAY_ADDRESS) == (200, "team-b", certificate(pairs["team-b"]))
    edge.move_to(PAIRS)
    assert edge.served("127.0.0.1")[2] == certificate(PAIRS["team-a"])
    assert edge.served(GATEWAY_ADDRESS)[2] == certificate(PAIRS["team-b"])
    assert edge.nginx.pids() == pids  # same master, same workers: nothing reloaded


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_a_server_name_naming_another_scope_is_not_served_its_certificate(edges, mode):
    """An SNI name that spells another scope's dict key (ADDRESS/NAME, no host name) is
    served no pushed pair: a client cannot ask the edge's addresses for team-b's."""
    edge = edges[mode]
    answer = request(edge.site.ports.https, HOST, "/", tls=True, sni=f"{GATEWAY_ADDRESS}/{HOST}")
    assert answer.certificate != certificate(PAIRS["team-b"])
