"""GRPCRoute through a real nginx to real gRPC servers (grpcio), called by a real gRPC
client over the HTTPS listener (HTTP/2), in both modes: the conformance suite's
GRPCExactMethodMatching, GRPCRouteHeaderMatching, GRPCRouteListenerHostnameMatching and
GRPCRouteWeight re-expressed, with the spec's precedence, header filters, unusable
backends, the HTTPRoute/GRPCRoute hostname conflict and hostile names."""

import collections
import json
from concurrent import futures

import grpc
import pytest
from edgeagent.gateway import conditions as c
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.attachment import attach, index_of
from edgeagent.gateway.options import GatewayOptions
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
from support_nginx import NginxRunner, assert_only_rendered_directives, render_site
from support_objects import endpoint_slice, service, tls_secret

from edgeagent import cli, model

SERVICE = "gateway_api_conformance.echo_basic.grpcecho.GrpcEcho"
SECONDS = 20
BACKENDS = {"v1": "127.0.4.1", "v2": "127.0.4.2", "v3": "127.0.4.3"}
HOSTS = (
    "exact.example",
    "headers.example",
    "weights.example",
    "filters.example",
    "backend-filters.example",
    "invalid.example",
    "bar.com",
    "foo.bar.com",
    "baz.bar.com",
    "boo.bar.com",
    "multiple.prefixes.bar.com",
    "multiple.prefixes.foo.com",
    "foo.com",
    "no.matching.host",
)


class _AnyCall(grpc.GenericRpcHandler):
    """Answers every unary call, whatever its service and method, with JSON naming the
    backend, the call's path and the metadata received."""

    def __init__(self, name: str):
        self.name = name

    def service(self, handler_call_details):
        path = handler_call_details.method

        def answer(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.set_trailing_metadata((("x-answered-by", self.name),))
            metadata = dict(context.invocation_metadata())
            return json.dumps({"backend": self.name, "path": path, "metadata": metadata}).encode()

        return grpc.unary_unary_rpc_method_handler(answer)


def start_backend(name: str, host: str) -> tuple[grpc.Server, int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((_AnyCall(name),))
    port = server.add_insecure_port(f"{host}:0")
    server.start()
    return server, port


def grpc_route(name, parents, rules, hostnames=None, created=None):
    route = http_route(name, parents, rules, hostnames, created=created)
    route["kind"] = "GRPCRoute"
    return route


def method(service=SERVICE, name=None, kind=None, headers=None):
    body = {}
    if service is not None:
        body["service"] = service
    if name is not None:
        body["method"] = name
    if kind is not None:
        body["type"] = kind
    match = {"method": body}
    if headers:
        match["headers"] = [{"name": n, "value": v} for n, v in headers.items()]
    return match


def to(backend, *matches, **fields):
    refs = fields.pop("backends", None) or [backend_ref(f"grpc-{backend}")]
    return {"matches": list(matches), "backendRefs": refs, **fields}


def headers_only(**values):
    return {"headers": [{"name": n, "value": v} for n, v in values.items()]}


def objects(ports: dict, pair) -> model.Inputs:
    https = listener(
        "https", 443, "HTTPS", certificates=[{"name": "grpc-certificate"}], allowed_from="All"
    )
    hostname_listeners = [
        listener(
            f"listener-{i}", 443, "HTTPS", hostname=h, certificates=[{"name": "grpc-certificate"}]
        )
        for i, h in enumerate(("bar.com", "foo.bar.com", "*.bar.com", "*.foo.com"), start=1)
    ]
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[
            gateway("same-namespace", https),
            gateway("grpcroute-listener-hostname-matching", *hostname_listeners),
        ],
        secrets=[tls_secret("grpc-certificate", pair, INFRA)],
    )
    for name, host in BACKENDS.items():
        inputs.services.append(service(f"grpc-{name}", {"grpc": 8080}, namespace=INFRA))
        inputs.endpoint_slices.append(
            endpoint_slice(
                f"grpc-{name}", [(host, True)], ports[name], port_name="grpc", namespace=INFRA
            )
        )
    same = [parent("same-namespace")]
    listening = "grpcroute-listener-hostname-matching"
    inputs.grpc_routes.extend(
        [
            # GRPCExactMethodMatching.
            grpc_route(
                "exact-matching",
                same,
                [to("v1", method(name="Echo")), to("v2", method(name="EchoTwo"))],
                hostnames=["exact.example"],
            ),
            # GRPCRouteHeaderMatching, and the spec's precedence: the service's
            # characters, then the method's, then the number of header matches.
            grpc_route(
                "header-matching",
                same,
                [
                    to("v1", headers_only(version="one")),
                    to("v2", headers_only(version="two")),
                    to("v1", headers_only(version="two", color="orange")),
                    to("v3", method(name="Special"), method(service=None, name="Anything")),
                    to("v2", method(service="other.Service")),
                    to("v3", method(service="other.Service", name="Exact")),
                    to(
                        "v1",
                        method(
                            service=r"regex\.[a-z]+",
                            name="Call[0-9]",
                            kind="RegularExpression",
                        ),
                    ),
                    to(
                        "v3",
                        {
                            "headers": [
                                {
                                    "type": "RegularExpression",
                                    "name": "version",
                                    "value": "th?ree|four",
                                }
                            ]
                        },
                    ),
                ],
                hostnames=["headers.example"],
            ),
            grpc_route(
                "weights",
                same,
                [
                    to(
                        "v1",
                        backends=[
                            backend_ref("grpc-v1", weight=70),
                            backend_ref("grpc-v2", weight=30),
                            backend_ref("grpc-v3", weight=0),
                        ],
                    )
                ],
                hostnames=["weights.example"],
            ),
            grpc_route(
                "filters",
                same,
                [
                    to(
                        "v1",
                        filters=[
                            {
                                "type": "RequestHeaderModifier",
                                "requestHeaderModifier": {
                                    "set": [{"name": "X-Set", "value": "set-by-route"}],
                                    "remove": ["X-Removed"],
                                },
                            },
                            {
                                "type": "ResponseHeaderModifier",
                                "responseHeaderModifier": {
                                    "add": [{"name": "X-Answered-Through", "value": "edge"}]
                                },
                            },
                        ],
                    )
                ],
                hostnames=["filters.example"],
            ),
            # A header filter on one of two backendRefs: each call draws its backendRef,
            # then gets its filters.
            grpc_route(
                "backend-filters",
                same,
                [
                    to(
                        "v1",
                        backends=[
                            backend_ref("grpc-v1")
                            | {
                                "filters": [
                                    {
                                        "type": "RequestHeaderModifier",
                                        "requestHeaderModifier": {
                                            "set": [{"name": "X-Set", "value": "for-v1"}]
                                        },
                                    }
                                ]
                            },
                            backend_ref("grpc-v2"),
                        ],
                    )
                ],
                hostnames=["backend-filters.example"],
            ),
            grpc_route(
                "invalid-backend",
                same,
                [to("none", backends=[backend_ref("no-such-service")])],
                hostnames=["invalid.example"],
            ),
            # GRPCRouteListenerHostnameMatching.
            grpc_route("backend-v1", [parent(listening, sectionName="listener-1")], [to("v1")]),
            grpc_route("backend-v2", [parent(listening, sectionName="listener-2")], [to("v2")]),
            grpc_route(
                "backend-v3",
                [
                    parent(listening, sectionName="listener-3"),
                    parent(listening, sectionName="listener-4"),
                ],
                [to("v3")],
            ),
        ]
    )
    return inputs


class GrpcSite:
    def __init__(self, site, certificate: bytes):
        self.site = site
        self.certificate = certificate

    def call(self, host: str, path: str, metadata=(), sni: str | None = None):
        """(answer as JSON, initial metadata) of a unary call to `host` (:authority), with
        `sni` (default: `host`) as TLS server name."""
        credentials = grpc.ssl_channel_credentials(root_certificates=self.certificate)
        options = [
            ("grpc.ssl_target_name_override", sni or host),
            ("grpc.default_authority", host),
        ]
        target = f"127.0.0.1:{self.site.ports.https}"
        with grpc.secure_channel(target, credentials, options=options) as channel:
            answer, call = channel.unary_unary(path).with_call(
                b"hello", timeout=SECONDS, metadata=metadata
            )
            return json.loads(answer), dict(call.initial_metadata())

    def backend(self, host: str, path: str, metadata=()) -> str:
        return self.call(host, path, metadata)[0]["backend"]

    def refusal(self, host: str, path: str, sni: str | None = None) -> grpc.StatusCode:
        with pytest.raises(grpc.RpcError) as raised:
            self.call(host, path, sni=sni)
        return raised.value.code()


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    runner = NginxRunner()
    servers = []
    try:
        ports = {}
        for name, host in BACKENDS.items():
            server, ports[name] = start_backend(name, host)
            servers.append(server)
        pair = cli.self_signed("exact.example", HOSTS)
        built = render_site(
            tmp_path_factory.mktemp("grpc"),
            objects(ports, pair),
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(built)
        yield GrpcSite(built, pair.certificate_pem)
    finally:
        runner.stop_all()
        for server in servers:
            server.stop(None)


def test_every_route_is_served(site):
    problems = [p.name for p in site.site.model.problems if p.kind == "GRPCRoute"]
    assert problems == ["invalid-backend"]  # BackendNotFound, by design
    assert "grpc_pass grpc://" in (site.site.directory / "edge.conf").read_text()
    assert_only_rendered_directives(site.site.directory / "nginx.conf", map_entries=False)


@pytest.mark.parametrize(
    ("name", "backend"),
    [("Echo", "v1"), ("EchoTwo", "v2")],
)
def test_exact_method_matching(site, name, backend):
    assert site.backend("exact.example", f"/{SERVICE}/{name}") == backend


def test_a_call_no_rule_matches_is_unimplemented(site):
    # nginx answers 404, which gRPC reads as UNIMPLEMENTED.
    assert site.refusal("exact.example", f"/{SERVICE}/EchoThree") == grpc.StatusCode.UNIMPLEMENTED
    assert site.refusal("exact.example", "/other.Service/Echo") == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("path", "metadata", "backend"),
    [
        # GRPCRouteHeaderMatching.
        (f"/{SERVICE}/Echo", {"version": "one"}, "v1"),
        (f"/{SERVICE}/Echo", {"version": "two"}, "v2"),
        (f"/{SERVICE}/Echo", {"version": "two", "color": "orange"}, "v1"),
        (f"/{SERVICE}/Echo", {"version": "two", "color": "blue"}, "v2"),
        # The service's characters first: a method match beats header matches only.
        (f"/{SERVICE}/Special", {"version": "one"}, "v3"),
        ("/any.Service/Anything", {}, "v3"),
        # Service and method before the service alone.
        ("/other.Service/Exact", {}, "v3"),
        ("/other.Service/Other", {"version": "one"}, "v2"),
        # RegularExpression: the whole path, case-sensitive.
        ("/regex.abc/Call7", {}, "v1"),
        # A RegularExpression header: the whole value.
        (f"/{SERVICE}/Echo", {"version": "three"}, "v3"),
        (f"/{SERVICE}/Echo", {"version": "four"}, "v3"),
    ],
)
def test_header_matching_and_precedence(site, path, metadata, backend):
    assert site.backend("headers.example", path, tuple(metadata.items())) == backend


def test_a_regular_expression_matches_the_whole_name(site):
    code = site.refusal("headers.example", "/regex.abc/Call77")
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert site.refusal("headers.example", "/regex.ABC/Call7") == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize(
    ("host", "backend"),
    [
        ("bar.com", "v1"),
        ("foo.bar.com", "v2"),
        ("baz.bar.com", "v3"),
        ("boo.bar.com", "v3"),
        ("multiple.prefixes.bar.com", "v3"),
        ("multiple.prefixes.foo.com", "v3"),
    ],
)
def test_listener_hostname_matching(site, host, backend):
    assert site.backend(host, f"/{SERVICE}/Echo") == backend


@pytest.mark.parametrize("host", ["foo.com", "no.matching.host"])
def test_a_host_no_listener_takes_is_not_served(site, host):
    # Its TLS name gets the default certificate; under a served one, nginx's 404.
    assert site.refusal(host, f"/{SERVICE}/Echo") == grpc.StatusCode.UNAVAILABLE
    code = site.refusal(host, f"/{SERVICE}/Echo", sni="exact.example")
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_weights_share_calls_and_a_weight_of_0_takes_none(site):
    """GRPCRouteWeight: 70/30/0. Smooth weighted round robin is exact over whole cycles
    (7 and 3), whatever calls came before."""
    seen = collections.Counter(
        site.backend("weights.example", f"/{SERVICE}/Echo") for _ in range(100)
    )
    assert seen == {"v1": 70, "v2": 30}


def test_a_backend_ref_s_filters_apply_to_the_calls_it_takes(site):
    """1 to 1, drawn per call (random): both are seen in 60 calls but about once in 10^18."""
    seen = collections.Counter()
    for _ in range(60):
        answer, _ = site.call("backend-filters.example", f"/{SERVICE}/Echo")
        seen[answer["backend"]] += 1
        assert answer["metadata"].get("x-set") == ("for-v1" if answer["backend"] == "v1" else None)
    assert set(seen) == {"v1", "v2"}


def test_header_filters(site):
    answer, initial = site.call(
        "filters.example", f"/{SERVICE}/Echo", (("x-set", "client"), ("x-removed", "gone"))
    )
    assert answer["metadata"]["x-set"] == "set-by-route"
    assert "x-removed" not in answer["metadata"]
    assert initial["x-answered-through"] == "edge"


def test_an_unusable_backend_answers_500(site):
    # The spec's 500, which gRPC clients read as UNKNOWN (HTTP 500 has no gRPC status).
    assert site.refusal("invalid.example", f"/{SERVICE}/Echo") == grpc.StatusCode.UNKNOWN


def states(routes, http_routes=()):
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
        services=[service("grpc-v1", {"grpc": 8080}, namespace=INFRA)],
    )
    index = index_of(inputs.secrets, inputs.services, inputs.namespaces, [])
    result = attach(
        inputs.gateway_classes,
        inputs.gateways,
        list(http_routes),
        index,
        GatewayOptions(),
        routes,
    )
    return {(state.kind, state.key[1]): state for state in result.routes}, result


def accepted(state):
    (condition,) = [x for x in state.parents[0].conditions if x.type == c.ACCEPTED]
    return condition


def test_an_http_and_a_grpc_route_on_one_hostname_the_older_wins():
    same = [parent("same-namespace")]
    older = http_route("web", same, hostnames=["both.example"], created="2026-01-01T00:00:00Z")
    newer = grpc_route(
        "calls", same, [to("v1")], hostnames=["*.example"], created="2026-02-01T00:00:00Z"
    )
    apart = grpc_route(
        "apart", same, [to("v1")], hostnames=["apart.test"], created="2026-02-01T00:00:00Z"
    )
    found, result = states([newer, apart], [older])
    assert accepted(found[("HTTPRoute", "web")]).status
    lost = accepted(found[("GRPCRoute", "calls")])
    assert (lost.status, lost.reason) == (False, c.CONFLICTED)
    assert "HTTPRoute gateway-conformance-infra/web" in lost.message
    assert accepted(found[("GRPCRoute", "apart")]).status
    assert result.gateways[0].attached_routes == {"http": 2}

    # The other way round: the older GRPCRoute wins.
    older_grpc = {**newer, "metadata": {**newer["metadata"], "creationTimestamp": "2025-01-01"}}
    found, _ = states([older_grpc], [older])
    assert accepted(found[("GRPCRoute", "calls")]).status
    assert not accepted(found[("HTTPRoute", "web")]).status


def test_a_listener_taking_httproutes_only_refuses_a_grpcroute():
    inputs_listener = listener(kinds=[{"kind": "HTTPRoute"}])
    index = index_of([], [], [namespace(INFRA)], [])
    route = grpc_route("calls", [parent("g")], [to("v1")])
    result = attach(
        [gateway_class()], [gateway("g", inputs_listener)], [], index, GatewayOptions(), [route]
    )
    (state,) = result.routes
    assert accepted(state).reason == c.NOT_ALLOWED_BY_LISTENERS


def test_listeners_take_grpcroutes_by_default():
    index = index_of([], [], [namespace(INFRA)], [])
    result = attach([gateway_class()], [gateway("g", listener())], [], index, GatewayOptions())
    assert result.gateways[0].listeners[0].supported_kinds == ("HTTPRoute", "GRPCRoute")


@pytest.mark.parametrize(
    ("match", "message"),
    [
        ({"method": {}}, "needs a service, a method or both"),
        (method(service="bad service"), "'bad service' is not a gRPC name"),
        (method(service="a/b"), "is not a gRPC name"),
        (method(name="Echo/x"), "is not a gRPC name"),
        (method(name='Echo"; return 200'), "is not a gRPC name"),
        (method(name="1Echo"), "is not a gRPC name"),
        (method(name="E" * 1025), "is not a gRPC name"),
        (method(name="Echo", kind="Prefix"), "type 'Prefix' is not served"),
        (method(name="(?=x)", kind="RegularExpression"), "method"),
        ({"headers": [{"name": "x y", "value": "1"}]}, "header name"),
        ({"headers": [{"name": "x", "value": "a$b"}]}, "value"),
        ({"headers": [{"type": "Prefix", "name": "x", "value": "a"}]}, "not served"),
        ({"headers": [{"type": "RegularExpression", "name": "x", "value": "(?=a)"}]}, "regular"),
        ({"headers": [{"type": "RegularExpression", "name": "x", "value": 'a"; b'}]}, "value"),
    ],
)
def test_hostile_matches_refuse_the_route(match, message):
    route = grpc_route("calls", [parent("same-namespace")], [to("v1", match)])
    found, _ = states([route])
    refused = accepted(found[("GRPCRoute", "calls")])
    assert (refused.status, refused.reason) == (False, c.UNSUPPORTED_VALUE)
    assert message in refused.message


@pytest.mark.parametrize(
    "filters",
    [
        [{"type": "RequestMirror", "requestMirror": {"backendRef": backend_ref("grpc-v1")}}],
        [{"type": "ExtensionRef", "extensionRef": {}}],
    ],
)
def test_filters_other_than_header_modifiers_refuse_the_route(filters):
    route = grpc_route("calls", [parent("same-namespace")], [to("v1", filters=filters)])
    found, _ = states([route])
    assert "is not served here" in accepted(found[("GRPCRoute", "calls")]).message


def test_a_grpcroute_on_a_plain_http_listener_is_reported():
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
        services=[service("grpc-v1", {"grpc": 8080}, namespace=INFRA)],
        grpc_routes=[grpc_route("calls", [parent("same-namespace")], [to("v1")])],
    )
    options = model.Options()
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    (problem,) = [p for p in built.problems if p.kind == "GRPCRoute"]
    assert "listener http is plain HTTP" in problem.reason
    assert problem.code == "unsupported"
