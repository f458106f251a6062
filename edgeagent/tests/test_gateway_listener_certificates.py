"""An HTTPS listener without a hostname presents its own certificateRefs (the Gateway
API's Listener TLS; conformance HTTPRouteHTTPSListener: routes with hostnames on such a
listener, the client checks the served certificate with SNI = the route's host).

- Dedicated (`--gateway-address-mode dedicated`): the Gateway's addresses are its alone,
  so every name there, routed or not, and a handshake without SNI, get the listener's
  certificate: its default server has it (gateway.routing._dedicated_default), and in
  the dynamic mode its pair is pushed for the scope's default (`host ADDRESS/ KEY`,
  lua/edgeagent_certificates.lua), rotated without a reload.
- Shared (the default mode): a route host of that listener gets the listener's
  certificate, whether the route table or a rendered server answers it; names no route
  serves are the edge's default server's, shared by every tenant (docs/gateway-api.md).
- Two HTTPS listeners without hostname on one port of one Gateway are Conflicted
  (HostnameConflict), neither programmed: no certificate of theirs is served.
"""

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
from support_objects import endpoint_slice, service, tls_secret
from test_render_golden import DYNAMIC_LAYOUT, GOLDEN, LAYOUT, assert_matches_golden

from edgeagent import cli, dynamic, model, render, route_table

TEAM = "team-b"
PLAIN = "plain.example.org"  # a route host the route table serves (dynamic, shared)
FILTERED = "filtered.example.org"  # one a rendered server serves (a filter)
UNROUTED = "other.example.net"
GATEWAY_ADDRESS = "127.0.0.32"
POOL = (GATEWAY_ADDRESS,)
DEDICATED_OPTIONS = model.Options(gateway=GatewayOptions(addresses=POOL, address_mode=DEDICATED))
SHARED_OPTIONS = model.Options()
PAIR = cli.self_signed("listener", (PLAIN, FILTERED))
ROTATED = cli.self_signed("listener-rotated", (PLAIN, FILTERED))
KEY = f"{TEAM}_shop-tls"
HEADER_FILTER = {
    "type": "RequestHeaderModifier",
    "requestHeaderModifier": {"set": [{"name": "x-filtered", "value": "yes"}]},
}
FIXED = types.SimpleNamespace(host="10.0.0.10", port=8080)


def objects(backend, pair: model.CertPair, dedicated: bool, *listeners: dict) -> model.Inputs:
    """team-b's Gateway with HTTP and HTTPS listeners without hostname (or `listeners`),
    the HTTPS one's Secret shop-tls, and two HTTPRoutes with hostnames on them: PLAIN, and
    FILTERED with a filter."""
    https = listener("https", 443, "HTTPS", certificates=[{"name": "shop-tls"}])
    http = listener("http", 80, "HTTP")
    shop = gateway("shop", *(listeners or (http, https)), namespace=TEAM)
    if dedicated:
        shop["spec"]["addresses"] = [{"type": "IPAddress", "value": GATEWAY_ADDRESS}]
    routed = {"backendRefs": [backend_ref("shop")]}
    parents = [parent_ref("shop", namespace=TEAM)]
    return model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(TEAM)],
        gateways=[shop],
        http_routes=[
            http_route("plain", parents, rules=[routed], hostnames=[PLAIN], namespace=TEAM),
            http_route(
                "filtered",
                parents,
                rules=[{**routed, "filters": [HEADER_FILTER]}],
                hostnames=[FILTERED],
                namespace=TEAM,
            ),
        ],
        services=[service("shop", {"http": 8080}, namespace=TEAM)],
        endpoint_slices=[
            endpoint_slice("shop", [(backend.host, True)], backend.port, namespace=TEAM)
        ],
        secrets=[tls_secret("shop-tls", pair, namespace=TEAM)],
    )


def options_of(dedicated: bool, dynamic_mode: bool) -> model.Options:
    options = DEDICATED_OPTIONS if dedicated else SHARED_OPTIONS
    return dataclasses.replace(
        options, dynamic=dynamic_mode, upstreams_without_endpoints=dynamic_mode
    )


def built(dedicated: bool, dynamic_mode: bool, inputs: model.Inputs):
    options = options_of(dedicated, dynamic_mode)
    return gateway_routing.build(model.build(inputs, options), inputs, options)


def state_of(dedicated: bool, backend, pair: model.CertPair) -> dynamic.State:
    return dynamic.state_of(built(dedicated, True, objects(backend, pair, dedicated))[0])


@pytest.mark.parametrize("dynamic_mode", [False, True], ids=["static", "dynamic"])
def test_the_dedicated_default_server_has_the_listeners_certificate(dynamic_mode):
    result, _ = built(True, dynamic_mode, objects(FIXED, PAIR, True))
    certificates = {s.host: s.certificate for s in result.servers if s.addresses == POOL}
    assert certificates == dict.fromkeys(("", PLAIN, FILTERED), (TEAM, "shop-tls"))
    assert result.certificates[(TEAM, "shop-tls")] == PAIR
    assert result.default_server.certificate is None  # the edge's stays its own


def test_the_dedicated_configuration_matches_golden():
    """Both modes' edge.conf: the Gateway address's default server has the listener's
    ssl_certificate."""
    files = {}
    for mode, layout in (("static", LAYOUT), ("dynamic", DYNAMIC_LAYOUT)):
        result, _ = built(True, mode == "dynamic", objects(FIXED, PAIR, True))
        dedicated = dataclasses.replace(
            layout, gateway_addresses=POOL, gateway_address_mode=DEDICATED
        )
        rendered = render.render(result, dedicated)
        # The generation hashes the pair, a new one each run.
        conf = rendered.files["edge.conf"].replace(rendered.generation.encode(), b"{generation}")
        files[f"{mode}/edge.conf"] = conf
    assert_matches_golden(files, GOLDEN / "gateway-listener-certificates")


def test_the_scope_default_is_pushed_as_the_address_without_a_name():
    state = state_of(True, FIXED, PAIR)
    assert state.hosts[(GATEWAY_ADDRESS, "")] == KEY
    lines = dynamic.encode(state, 1, full=True).decode().splitlines()
    assert f"host {GATEWAY_ADDRESS}/ {KEY}" in lines
    with pytest.raises(ValueError):  # the edge's own scope has no pushed default
        dynamic.encode(dynamic.State({}, {}, {("", ""): KEY}), 1, full=True)


def test_two_https_listeners_without_hostname_on_one_port_conflict():
    """Both Conflicted (HostnameConflict) and not programmed: the Gateway's default server
    keeps the default certificate, and the routes' hosts are not served. The routes stay
    attached (Accepted), as to any unprogrammed listener (GatewayWithAttachedRoutes)."""
    first = listener("https", 443, "HTTPS", certificates=[{"name": "shop-tls"}])
    second = listener("https-2", 443, "HTTPS", certificates=[{"name": "shop-tls"}])
    inputs = objects(FIXED, PAIR, True, first, second)
    result, attachment = built(True, False, inputs)
    (state,) = attachment.gateways
    for each in state.listeners:
        conflicted = next(x for x in each.conditions if x.type == c.CONFLICTED)
        assert (conflicted.status, conflicted.reason) == (True, c.HOSTNAME_CONFLICT)
        assert not each.programmed
    assert all(c.holds(p.conditions, c.ACCEPTED) for r in attachment.routes for p in r.parents)
    served = {s.host: s.certificate for s in result.servers if s.addresses == POOL}
    assert served == {"": None}  # the route hosts are not served; the default's own
    assert (TEAM, "shop-tls") not in result.certificates


def test_two_dedicated_gateways_present_their_own_certificates():
    """Two tenants' Gateways, each on its own address with an HTTPS listener without
    hostname (and a route host both name) and its own Secret: neither is Conflicted, as
    they would be on the shared addresses; each address presents its Gateway's pair."""
    pool = (GATEWAY_ADDRESS, "127.0.0.33")
    options = model.Options(gateway=GatewayOptions(addresses=pool, address_mode=DEDICATED))
    inputs = model.Inputs(gateway_classes=[gateway_class()])
    for age, (team, address) in enumerate(zip(("team-a", TEAM), pool, strict=True)):
        https = listener("https", 443, "HTTPS", certificates=[{"name": "shop-tls"}])
        shop = gateway("shop", https, namespace=team)
        shop["spec"]["addresses"] = [{"type": "IPAddress", "value": address}]
        shop["metadata"]["creationTimestamp"] = f"2026-01-0{age + 1}T00:00:00Z"
        parents = [parent_ref("shop", namespace=team)]
        routed = {"backendRefs": [backend_ref("shop")]}
        route = http_route("plain", parents, rules=[routed], hostnames=[PLAIN], namespace=team)
        inputs = dataclasses.replace(
            inputs,
            namespaces=[*inputs.namespaces, namespace(team)],
            gateways=[*inputs.gateways, shop],
            http_routes=[*inputs.http_routes, route],
            services=[*inputs.services, service("shop", {"http": 8080}, namespace=team)],
            secrets=[*inputs.secrets, tls_secret("shop-tls", PAIR, namespace=team)],
        )
    result, attachment = gateway_routing.build(model.build(inputs, options), inputs, options)
    assert all(each.programmed for g in attachment.gateways for each in g.listeners)
    served = {(s.addresses, s.host): s.certificate for s in result.servers if s.addresses}
    assert served == {
        ((address,), host): (team, "shop-tls")
        for team, address in zip(("team-a", TEAM), pool, strict=True)
        for host in ("", PLAIN)
    }


class Edge:
    def __init__(self, directory, backend, runner: NginxRunner, dedicated: bool, dynamic_mode):
        options = options_of(dedicated, False)
        layout = {"gateway_addresses": POOL, "gateway_address_mode": DEDICATED} if dedicated else {}
        self.site = render_site(
            directory,
            objects(backend, PAIR, dedicated),
            options,
            dynamic_mode=dynamic_mode,
            **layout,
        )
        self.nginx = runner.start(self.site)
        self.address = GATEWAY_ADDRESS if dedicated else "127.0.0.1"
        if dynamic_mode:
            self.control = Control(
                str(directory / "dynamic"), f"127.0.0.1:{self.site.ports.status}"
            )
            self.control.push(dynamic.state_of(self.site.model), full=True)

    def served(self, host: str, sni: str | None = None) -> tuple[int, str | None, x509.Certificate]:
        answer = request(self.site.ports.https, host, "/", tls=True, sni=sni, address=self.address)
        return answer.status, answer.backend, answer.certificate


def certificate(pair: model.CertPair) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pair.certificate_pem)


EDGES = [(d, m) for d in ("dedicated", "shared") for m in ("static", "dynamic")]


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        backend = backends.start("shop")
        yield (
            backend,
            {
                (d, m): Edge(
                    tmp_path_factory.mktemp(f"{d}-{m}"),
                    backend,
                    runner,
                    d == "dedicated",
                    m == "dynamic",
                )
                for d, m in EDGES
            },
        )
    finally:
        runner.stop_all()
        backends.stop_all()


@pytest.mark.parametrize("where", EDGES, ids=["-".join(e) for e in EDGES])
def test_a_route_host_is_served_the_listeners_certificate(edges, where):
    edge = edges[1][where]
    if where == ("shared", "dynamic"):
        assert route_table.table_hosts(edge.site.model) == {PLAIN}
    for host in (PLAIN, FILTERED):
        assert edge.served(host) == (200, "shop", certificate(PAIR)), host


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_any_name_and_no_sni_on_a_dedicated_address_get_the_listeners_certificate(edges, mode):
    edge = edges[1][("dedicated", mode)]
    assert edge.served(UNROUTED)[::2] == (404, certificate(PAIR))
    assert edge.served(PLAIN, sni="") == (200, "shop", certificate(PAIR))


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_an_unrouted_name_on_the_shared_addresses_gets_the_edges_default(edges, mode):
    """The edge's addresses are every tenant's: no Gateway's listener speaks for them."""
    status, _, served = edges[1][("shared", mode)].served(UNROUTED)
    assert (status, common_name(served)) == (404, "edgeagent-default")


@pytest.mark.parametrize("dedicated", [True, False], ids=["dedicated", "shared"])
def test_a_rotation_reaches_every_name_without_a_reload(edges, dedicated):
    backend, by_mode = edges
    edge = by_mode[("dedicated" if dedicated else "shared", "dynamic")]
    pids = edge.nginx.pids()
    old, new = state_of(dedicated, backend, PAIR), state_of(dedicated, backend, ROTATED)
    edge.control.push(dynamic.delta(old, new), full=False)
    try:
        for host in (PLAIN, FILTERED):
            assert edge.served(host)[2] == certificate(ROTATED), host
        if dedicated:
            assert edge.served(UNROUTED)[2] == certificate(ROTATED)
            assert edge.served(PLAIN, sni="")[2] == certificate(ROTATED)
    finally:
        edge.control.push(dynamic.delta(new, old), full=False)
    assert edge.served(PLAIN)[2] == certificate(PAIR)
    assert edge.nginx.pids() == pids
