"""HTTPRoute filters through a real nginx to real HTTP backends, in both modes: the Gateway
API conformance suite's HTTPRouteRequestHeaderModifier, HTTPRouteResponseHeaderModifier,
HTTPRouteRedirect* and HTTPRouteRewrite* tests, re-expressed, plus filters on choices
(matches beyond the path) and on a rule's only backendRef."""

import time
import uuid

import pytest
from edgeagent.gateway import conditions as c
from edgeagent.gateway import references
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
from support_http import request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, service, tls_secret

from edgeagent import cli, model, render, render_filters

STATIC_LAYOUT = render.Layout(
    listen_http="127.0.0.1:80",
    listen_https="127.0.0.1:443",
    output_dir="/srv/edge",
    default_certificate="/srv/default.pem",
    default_key="/srv/default.pem",
)
SYNTAX = "; } } load_module /tmp/evil.so; http { server { # 'quoted' {braces}"
V1 = backend_ref("infra-backend-v1")
V2 = backend_ref("infra-backend-v2")


def prefix(value):
    return {"path": {"type": "PathPrefix", "value": value}}


def filtered(path, *filters, backends=(V1,), matches=None):
    return {
        "matches": matches or [prefix(path)],
        "filters": list(filters),
        "backendRefs": list(backends),
    }


def request_headers(**changes):
    return {"type": "RequestHeaderModifier", "requestHeaderModifier": _changes(changes)}


def response_headers(**changes):
    return {"type": "ResponseHeaderModifier", "responseHeaderModifier": _changes(changes)}


def _changes(changes):
    body = {}
    for field in ("set", "add"):
        if field in changes:
            body[field] = [{"name": n, "value": v} for n, v in changes[field].items()]
    if "remove" in changes:
        body["remove"] = changes["remove"]
    return body


def regex(value):
    return {"path": {"type": "RegularExpression", "value": value}}


def mirror(ref, **share):
    """A RequestMirror to `ref`; `share`: its percent or fraction."""
    return {"type": "RequestMirror", "requestMirror": {"backendRef": ref, **share}}


def redirect(**fields):
    return {"type": "RequestRedirect", "requestRedirect": fields}


def rewrite(**fields):
    return {"type": "URLRewrite", "urlRewrite": fields}


def full(value):
    return {"type": "ReplaceFullPath", "replaceFullPath": value}


def replaced_prefix(value):
    return {"type": "ReplacePrefixMatch", "replacePrefixMatch": value}


def objects(backends, certificate) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[
            gateway(
                "same-namespace",
                listener(),
                listener(
                    "https",
                    443,
                    "HTTPS",
                    hostname="redirect.example",
                    certificates=[{"name": "redirect-certificate"}],
                ),
            )
        ],
        secrets=[tls_secret("redirect-certificate", certificate, INFRA)],
    )
    for name, backend in (("infra-backend-v1", "infra-v1"), ("infra-backend-v2", "infra-v2")):
        inputs.services.append(service(name, {"http": 8080}, namespace=INFRA))
        inputs.endpoint_slices.append(
            endpoint_slice(
                name, [(backends[backend].host, True)], backends[backend].port, namespace=INFRA
            )
        )
    modifiers = dict(
        set={"X-Header-Set-1": "header-set-1", "X-Header-Set-2": "header-set-2"},
        add={
            "X-Header-Add-1": "header-add-1",
            "X-Header-Add-2": "header-add-2",
            "X-Header-Add-3": "header-add-3",
        },
        remove=["X-Header-Remove-1", "X-Header-Remove-2"],
    )
    case = dict(
        set={"X-Header-Set": "header-set"},
        add={"X-Header-Add": "header-add"},
        remove=["X-Header-Remove"],
    )
    routes = [
        # HTTPRouteRequestHeaderModifier.
        http_route(
            "request-header-modifier",
            [parent("same-namespace")],
            hostnames=["request.example"],
            rules=[
                filtered("/set", request_headers(set={"X-Header-Set": "set-overwrites-values"})),
                filtered("/add", request_headers(add={"X-Header-Add": "add-appends-values"})),
                filtered("/remove", request_headers(remove=["X-Header-Remove"])),
                filtered("/multiple", request_headers(**modifiers)),
                filtered("/case-insensitivity", request_headers(**case)),
                # The edge's own forwarded headers can be changed too.
                filtered("/forwarded", request_headers(set={"X-Forwarded-Host": "edge.example"})),
                # nginx syntax in a value stays inside its double quotes.
                filtered("/syntax", request_headers(set={"X-Syntax": SYNTAX})),
            ],
        ),
        # HTTPRouteResponseHeaderModifier.
        http_route(
            "response-header-modifier",
            [parent("same-namespace")],
            hostnames=["response.example"],
            rules=[
                filtered("/set", response_headers(set={"X-Header-Set": "set-overwrites-values"})),
                filtered("/add", response_headers(add={"X-Header-Add": "add-appends-values"})),
                filtered("/remove", response_headers(remove=["X-Header-Remove"])),
                filtered("/multiple", response_headers(**modifiers)),
                filtered(
                    "/response-and-request-header-modifiers",
                    response_headers(set={"X-Header-Set-1": "header-set-1"}),
                    request_headers(set={"X-Header-Set": "set-overwrites-values"}),
                ),
            ],
        ),
        # HTTPRouteRedirectPath, -Port, -Scheme, -HostAndStatus.
        http_route(
            "redirect",
            [parent("same-namespace")],
            hostnames=["redirect.example"],
            rules=[
                filtered("/original-prefix", redirect(path=replaced_prefix("/replacement-prefix"))),
                filtered("/full", redirect(path=full("/full-path-replacement"))),
                filtered(
                    "/path-and-host",
                    redirect(hostname="example.org", path=replaced_prefix("/replacement-prefix")),
                ),
                filtered(
                    "/path-and-status",
                    redirect(path=replaced_prefix("/replacement-prefix"), statusCode=301),
                ),
                filtered("/port", redirect(port=8083)),
                filtered("/port-and-host", redirect(hostname="example.org", port=8083)),
                filtered("/scheme", redirect(scheme="https")),
                filtered(
                    "/scheme-and-host-and-status",
                    redirect(scheme="https", hostname="example.org", statusCode=301),
                ),
                filtered("/scheme-https-and-port-443", redirect(scheme="https", port=443)),
                filtered("/scheme-https-and-port-8443", redirect(scheme="https", port=8443)),
                filtered("/port-80", redirect(port=80)),
                filtered("/strip", redirect(path=replaced_prefix("/"))),
                filtered("/hostname", redirect(hostname="example.org"), backends=()),
                filtered("/host-and-status", redirect(hostname="example.org", statusCode=301)),
                # HTTPRouteRedirectPortAndScheme: the port follows the request's scheme.
                filtered("/scheme-nil-and-port-nil", redirect(hostname="example.org")),
                filtered("/scheme-nil-and-port-443", redirect(hostname="example.org", port=443)),
                filtered(
                    "/scheme-http-and-port-nil", redirect(hostname="example.org", scheme="http")
                ),
                filtered(
                    "/scheme-http-and-port-8080",
                    redirect(hostname="example.org", scheme="http", port=8080),
                ),
            ],
        ),
        # HTTPRoute303Redirect, HTTPRoute307Redirect, HTTPRoute308Redirect; the codes that
        # `rewrite` cannot answer, also beside 301 and 302 on one location's choices.
        http_route(
            "redirect-codes",
            [parent("same-namespace")],
            hostnames=["codes.example"],
            rules=[
                filtered("/303", redirect(hostname="example.org", statusCode=303)),
                filtered("/307", redirect(path=replaced_prefix("/seven"), statusCode=307)),
                filtered("/308", redirect(scheme="https", port=8443, statusCode=308)),
                filtered(
                    "/",
                    redirect(hostname="seven.example", statusCode=307),
                    matches=[{**prefix("/choices"), "headers": [{"name": "to", "value": "7"}]}],
                ),
                filtered(
                    "/",
                    redirect(hostname="one.example", statusCode=301),
                    matches=[{**prefix("/choices"), "headers": [{"name": "to", "value": "1"}]}],
                ),
                filtered("/choices", redirect(hostname="eight.example", statusCode=307)),
            ],
        ),
        # HTTPRouteRewritePath and HTTPRouteRewriteHost.
        http_route(
            "rewrite",
            [parent("same-namespace")],
            hostnames=["rewrite.example"],
            rules=[
                filtered("/prefix/one", rewrite(path=replaced_prefix("/one"))),
                filtered("/strip-prefix", rewrite(path=replaced_prefix("/"))),
                filtered("/full/one", rewrite(path=full("/one"))),
                filtered("/full/rewrite-path-and-modify-headers", rewrite(path=full("/test"))),
                filtered(
                    "/prefix/rewrite-path-and-modify-headers",
                    rewrite(path=replaced_prefix("/prefix")),
                    request_headers(set={"X-Header-Set": "set-overwrites-values"}),
                ),
                filtered("/host", rewrite(hostname="one.example.org")),
                filtered(
                    "/host-and-path",
                    rewrite(hostname="two.example.org", path=full("/two")),
                ),
            ],
        ),
        # Filters on choices: the matches of one location that need more than the path,
        # each with its own filters, and the location's own target with none.
        http_route(
            "choices",
            [parent("same-namespace")],
            hostnames=["choices.example"],
            rules=[
                filtered(
                    "/",
                    request_headers(set={"X-Chosen": "version-one"}),
                    response_headers(set={"X-Answer": "one"}),
                    matches=[{**prefix("/app"), "headers": [{"name": "version", "value": "one"}]}],
                ),
                filtered(
                    "/",
                    rewrite(path=replaced_prefix("/v2"), hostname="two.example.org"),
                    request_headers(add={"X-Chosen": "version-two"}),
                    backends=(V2,),
                    matches=[{**prefix("/app"), "headers": [{"name": "version", "value": "two"}]}],
                ),
                filtered(
                    "/",
                    redirect(hostname="moved.example", statusCode=301),
                    matches=[{**prefix("/app"), "method": "DELETE"}],
                ),
                {"matches": [prefix("/app")], "backendRefs": [V1]},
            ],
        ),
        # HTTPRouteTimeoutRequest and HTTPRouteTimeoutBackendRequest, with timeouts long
        # enough for a busy machine and delays far beyond them.
        http_route(
            "timeouts",
            [parent("same-namespace")],
            hostnames=["timeouts.example"],
            rules=[
                {**filtered("/request-timeout"), "timeouts": {"request": "2s"}},
                {**filtered("/backend-timeout"), "timeouts": {"backendRequest": "2000ms"}},
                {**filtered("/disable-request-timeout"), "timeouts": {"request": "0s"}},
            ],
        ),
        # RegularExpression paths: after Exact, before prefixes; the whole path,
        # case-sensitive; with filters like any match.
        http_route(
            "regex",
            [parent("same-namespace")],
            hostnames=["regex.example"],
            rules=[
                {"matches": [regex("/v[0-9]+/items/[a-z]+")], "backendRefs": [V2]},
                {"matches": [{"path": {"type": "Exact", "value": "/v1/items/exact"}}]}
                | {"backendRefs": [V1]},
                {"matches": [prefix("/v1")], "backendRefs": [V1]},
                filtered(
                    "/",
                    rewrite(path=full("/rewritten")),
                    request_headers(set={"X-Regex": "yes"}),
                    matches=[regex("/files/.+\\.(png|jpg)")],
                ),
            ],
        ),
        # HTTPRouteRequestMirror.
        http_route(
            "request-mirror",
            [parent("same-namespace")],
            hostnames=["mirror.example"],
            rules=[
                filtered("/mirror", mirror(V2)),
                filtered(
                    "/mirror-and-modify-headers",
                    request_headers(set={"X-Header-Set": "set-overwrites-values"}),
                    mirror(V2),
                ),
                # HTTPRouteRequestMultipleMirrors.
                filtered("/multiple-mirrors", mirror(V1), mirror(V2), backends=(V2,)),
                # HTTPRouteRequestPercentageMirror.
                filtered("/percent-mirror", mirror(V2, percent=20)),
                filtered(
                    "/percent-mirror-fraction",
                    mirror(V2, fraction={"numerator": 1, "denominator": 2}),
                ),
                filtered("/percent-mirror-zero", mirror(V2, percent=0)),
                filtered("/percent-mirror-whole", mirror(V2, fraction={"numerator": 100})),
            ],
        ),
        # A header modifier on a rule's only backendRef acts as the rule's.
        http_route(
            "backend-filters",
            [parent("same-namespace")],
            hostnames=["backend.example"],
            rules=[
                {
                    "matches": [prefix("/")],
                    "backendRefs": [
                        {
                            **V2,
                            "filters": [
                                request_headers(set={"X-Backend": "v2"}),
                                response_headers(add={"X-Answered-By": "v2"}),
                            ],
                        }
                    ],
                }
            ],
        ),
    ]
    inputs.http_routes.extend(routes)
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    certificate = cli.self_signed("redirect.example", ("redirect.example",))
    with echo_site(
        tmp_path_factory.mktemp("filters"),
        ["infra-v1", "infra-v2"],
        lambda started: objects(started, certificate),
        request.param == "dynamic",
    ) as built:
        yield built  # its backends: what the mirror tests look at


def get(site, host, target, **options):
    return request(site.ports.http, host, target, **options)


def test_every_route_is_served_and_only_known_directives_are_written(site):
    assert [p for p in site.model.problems if p.kind == "HTTPRoute"] == []
    # The values that matches compare are checked by test_gateway_hostile.
    assert_only_rendered_directives(site.directory / "nginx.conf", map_entries=False)


@pytest.mark.parametrize(
    ("target", "sent", "expected", "absent"),
    [
        (
            "/set",
            {"Some-Other-Header": "val"},
            {"some-other-header": "val", "x-header-set": "set-overwrites-values"},
            [],
        ),
        (
            "/set",
            {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
            {"some-other-header": "val", "x-header-set": "set-overwrites-values"},
            [],
        ),
        ("/add", {}, {"x-header-add": "add-appends-values"}, []),
        (
            "/add",
            {"X-Header-Add": "some-other-value"},
            {"x-header-add": "some-other-value,add-appends-values"},
            [],
        ),
        ("/remove", {"X-Header-Remove": "val"}, {}, ["x-header-remove"]),
        (
            "/multiple",
            {
                "X-Header-Set-2": "set-val-2",
                "X-Header-Add-2": "add-val-2",
                "X-Header-Remove-2": "remove-val-2",
                "Another-Header": "another-header-val",
            },
            {
                "x-header-set-1": "header-set-1",
                "x-header-set-2": "header-set-2",
                "x-header-add-1": "header-add-1",
                "x-header-add-2": "add-val-2,header-add-2",
                "x-header-add-3": "header-add-3",
                "another-header": "another-header-val",
            },
            ["x-header-remove-1", "x-header-remove-2"],
        ),
        (
            "/case-insensitivity",
            {
                "x-header-set": "original-val-set",
                "x-header-add": "original-val-add",
                "x-header-remove": "original-val-remove",
                "Another-Header": "another-header-val",
            },
            {
                "x-header-set": "header-set",
                "x-header-add": "original-val-add,header-add",
                "another-header": "another-header-val",
            },
            ["x-header-remove"],
        ),
    ],
)
def test_request_header_modifier(site, target, sent, expected, absent):
    echo = get(site, "request.example", target, headers=sent).echo
    assert echo["target"] == target
    for name, value in expected.items():
        assert echo["headers"].get(name) == value, name
    for name in absent:
        assert name not in echo["headers"]
    # The edge's forwarded headers are still sent beside the changed ones.
    assert echo["headers"]["host"] == "request.example"
    assert echo["headers"]["x-forwarded-for"] == "127.0.0.1"


def test_a_forwarded_header_is_changed_and_the_others_kept(site):
    headers = get(site, "request.example", "/forwarded").echo["headers"]
    assert headers["x-forwarded-host"] == "edge.example"
    assert headers["host"] == "request.example"
    assert headers["x-forwarded-proto"] == "http"


def echo_sets(**headers):
    return {"X-Echo-Set-Header": ",".join(f"{n}:{v}" for n, v in headers.items())}


@pytest.mark.parametrize(
    ("target", "from_backend", "expected", "absent"),
    [
        (
            "/set",
            {"Some-Other-Header": "val"},
            {"some-other-header": "val", "x-header-set": "set-overwrites-values"},
            [],
        ),
        (
            "/set",
            {"Some-Other-Header": "val", "X-Header-Set": "some-other-value"},
            {"some-other-header": "val", "x-header-set": "set-overwrites-values"},
            [],
        ),
        ("/add", {}, {"x-header-add": "add-appends-values"}, []),
        (
            "/add",
            {"X-Header-Add": "some-other-value"},
            {"x-header-add": "some-other-value, add-appends-values"},
            [],
        ),
        ("/remove", {"X-Header-Remove": "val"}, {}, ["x-header-remove"]),
        (
            "/multiple",
            {
                "X-Header-Set-2": "set-val-2",
                "X-Header-Add-2": "add-val-2",
                "X-Header-Remove-2": "remove-val-2",
                "Another-Header": "another-header-val",
            },
            {
                "x-header-set-1": "header-set-1",
                "x-header-set-2": "header-set-2",
                "x-header-add-1": "header-add-1",
                "x-header-add-2": "add-val-2, header-add-2",
                "x-header-add-3": "header-add-3",
                "another-header": "another-header-val",
            },
            ["x-header-remove-1", "x-header-remove-2"],
        ),
    ],
)
def test_response_header_modifier(site, target, from_backend, expected, absent):
    answer = get(site, "response.example", target, headers=echo_sets(**from_backend))
    assert answer.backend == "infra-v1"
    for name, value in expected.items():
        assert ", ".join(answer.all_headers(name)) == value, name
    for name in absent:
        assert answer.all_headers(name) == []


def test_response_and_request_header_modifiers_together(site):
    answer = get(
        site,
        "response.example",
        "/response-and-request-header-modifiers",
        headers={"X-Header-Set": "original"},
    )
    assert answer.headers["x-header-set-1"] == "header-set-1"
    assert answer.echo["headers"]["x-header-set"] == "set-overwrites-values"


@pytest.mark.parametrize(
    ("target", "status", "location"),
    [
        ("/original-prefix/lemon", 302, "http://redirect.example/replacement-prefix/lemon"),
        ("/original-prefix", 302, "http://redirect.example/replacement-prefix"),
        ("/full/path/original", 302, "http://redirect.example/full-path-replacement"),
        ("/path-and-host", 302, "http://example.org/replacement-prefix"),
        ("/path-and-status", 301, "http://redirect.example/replacement-prefix"),
        ("/port", 302, "http://redirect.example:8083/port"),
        ("/port-and-host", 302, "http://example.org:8083/port-and-host"),
        ("/scheme", 302, "https://redirect.example/scheme"),
        ("/scheme-and-host-and-status", 301, "https://example.org/scheme-and-host-and-status"),
        # The spec's port rules: a well-known port for the scheme is left out.
        ("/scheme-https-and-port-443", 302, "https://redirect.example/scheme-https-and-port-443"),
        (
            "/scheme-https-and-port-8443",
            302,
            "https://redirect.example:8443/scheme-https-and-port-8443",
        ),
        ("/port-80", 302, "http://redirect.example/port-80"),
        ("/strip/a/b", 302, "http://redirect.example/a/b"),
        ("/strip", 302, "http://redirect.example/"),
        # The query is kept; a rule without backendRefs redirects as well.
        ("/hostname/x?a=1&b=2", 302, "http://example.org/hostname/x?a=1&b=2"),
        ("/host-and-status", 301, "http://example.org/host-and-status"),
    ],
)
def test_request_redirect(site, target, status, location):
    answer = get(site, "redirect.example", target)
    assert (answer.status, answer.headers.get("location")) == (status, location)


@pytest.mark.parametrize(
    ("target", "headers", "status", "location"),
    [
        ("/303/x?q=1", {}, 303, "http://example.org/303/x?q=1"),
        ("/307/a%20b", {}, 307, "http://codes.example/seven/a%20b"),
        ("/307", {}, 307, "http://codes.example/seven"),
        ("/308/x", {}, 308, "https://codes.example:8443/308/x"),
        ("/choices/x", {"To": "7"}, 307, "http://seven.example/choices/x"),
        ("/choices/x", {"To": "1"}, 301, "http://one.example/choices/x"),
        ("/choices/x", {}, 307, "http://eight.example/choices/x"),
    ],
)
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_request_redirect_status_codes(site, target, headers, status, location, method):
    answer = get(site, "codes.example", target, headers=headers, method=method)
    assert (answer.status, answer.headers.get("location")) == (status, location)


def test_a_redirect_copies_the_path_escaped(site):
    answer = get(site, "redirect.example", "/original-prefix/a%20b")
    assert answer.headers["location"] == "http://redirect.example/replacement-prefix/a%20b"
    # A CR LF in the path cannot split the answer's headers: nginx refuses the redirect.
    answer = get(site, "redirect.example", "/original-prefix/a%0D%0ASet-Cookie:x")
    assert answer.status == 403
    assert "set-cookie" not in answer.headers and "location" not in answer.headers


@pytest.mark.parametrize(
    ("target", "expected_path", "expected_host"),
    [
        ("/prefix/one/two", "/one/two", "rewrite.example"),
        ("/prefix/one", "/one", "rewrite.example"),
        ("/strip-prefix/three", "/three", "rewrite.example"),
        ("/strip-prefix", "/", "rewrite.example"),
        ("/strip-prefix/", "/", "rewrite.example"),
        ("/full/one/two", "/one", "rewrite.example"),
        ("/full/rewrite-path-and-modify-headers/test", "/test", "rewrite.example"),
        ("/prefix/rewrite-path-and-modify-headers/one", "/prefix/one", "rewrite.example"),
        ("/host/x?keep=1", "/host/x?keep=1", "one.example.org"),
        ("/host-and-path/x?keep=1", "/two?keep=1", "two.example.org"),
    ],
)
def test_url_rewrite(site, target, expected_path, expected_host):
    echo = get(site, "rewrite.example", target).echo
    assert echo["target"] == expected_path
    assert echo["headers"]["host"] == expected_host
    # The client's host is what X-Forwarded-Host says.
    assert echo["headers"]["x-forwarded-host"] == "rewrite.example"


def test_rewrite_and_header_modifier_together(site):
    echo = get(site, "rewrite.example", "/prefix/rewrite-path-and-modify-headers/x").echo
    assert echo["headers"]["x-header-set"] == "set-overwrites-values"


def test_each_choice_of_a_location_has_its_own_filters(site):
    one = get(site, "choices.example", "/app/x", headers={"Version": "one", "X-Chosen": "c"})
    assert one.backend == "infra-v1"
    assert one.echo["target"] == "/app/x"
    assert one.echo["headers"]["x-chosen"] == "version-one"
    assert one.echo["headers"]["host"] == "choices.example"
    assert one.headers["x-answer"] == "one"

    two = get(site, "choices.example", "/app/x", headers={"Version": "two", "X-Chosen": "c"})
    assert two.backend == "infra-v2"
    assert two.echo["target"] == "/v2/x"
    assert two.echo["headers"]["x-chosen"] == "c,version-two"
    assert two.echo["headers"]["host"] == "two.example.org"
    assert "x-answer" not in two.headers

    moved = get(site, "choices.example", "/app/x?q=1", method="DELETE")
    assert (moved.status, moved.headers["location"]) == (301, "http://moved.example/app/x?q=1")

    plain = get(site, "choices.example", "/app/x", headers={"X-Chosen": "c"})
    assert plain.backend == "infra-v1"
    assert plain.echo["target"] == "/app/x"
    assert plain.echo["headers"]["x-chosen"] == "c"
    assert plain.echo["headers"]["host"] == "choices.example"
    assert "x-answer" not in plain.headers


def test_a_backend_ref_filter_acts_as_its_rules(site):
    answer = get(site, "backend.example", "/")
    assert answer.backend == "infra-v2"
    assert answer.echo["headers"]["x-backend"] == "v2"
    assert answer.headers["x-answered-by"] == "v2"


def test_a_value_with_nginx_syntax_arrives_as_it_was_written(site):
    echo = get(site, "request.example", "/syntax").echo
    assert echo["headers"]["x-syntax"] == SYNTAX


def refusal(rule: dict) -> str:
    """The message of the route's Accepted False (UnsupportedValue), or "" if accepted."""
    route = http_route("r", [parent("same-namespace")], rules=[rule])
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
        services=[service("infra-backend-v1", {"http": 8080}, namespace=INFRA)],
    )
    index = index_of(inputs.secrets, inputs.services, inputs.namespaces, [])
    attachment = attach(inputs.gateway_classes, inputs.gateways, [route], index, GatewayOptions())
    (state,) = attachment.routes
    (accepted,) = [x for x in state.parents[0].conditions if x.type == c.ACCEPTED]
    if accepted.status:
        return ""
    assert accepted.reason == c.UNSUPPORTED_VALUE
    return accepted.message


def exact_match(value):
    return {"path": {"type": "Exact", "value": value}}


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        # The spec: a filter is never skipped; one the edge does not serve refuses the route.
        (
            filtered("/", mirror(V2, percent=5, fraction={"numerator": 1})),
            "only one of percent and fraction may be given",
        ),
        (filtered("/", mirror(V2, percent=101)), "percent '101' is not 0 to 100"),
        (filtered("/", mirror(V2, percent=True)), "percent 'True' is not 0 to 100"),
        (
            filtered("/", mirror(V2, fraction={"numerator": 1, "denominator": 0})),
            "fraction '1'/'0' needs a numerator of 0 or more and a denominator of 1 or more",
        ),
        (
            filtered("/", mirror(V2, fraction={"numerator": 3, "denominator": 2})),
            "fraction 3/2: numerator above denominator",
        ),
        (
            filtered("/", mirror(V2, fraction={"numerator": 1, "denominator": 1_000_000})),
            "fraction 1/1000000 is below 0.01 %, nginx's least",
        ),
        (filtered("/", {"type": "ExtensionRef", "extensionRef": {}}), "'ExtensionRef'"),
        (filtered("/", redirect(statusCode=304)), "statusCode '304' is not one of"),
        (filtered("/", redirect(statusCode="307")), "statusCode '307' is not one of"),
        (filtered("/", redirect(scheme="ftp")), "scheme 'ftp' is not http or https"),
        (filtered("/", redirect(hostname="*.example.org")), "precise hostname"),
        (filtered("/", redirect(port=0)), "port"),
        (
            filtered("/", redirect(hostname="a.example"), rewrite(hostname="b.example")),
            "RequestRedirect and URLRewrite cannot be on one rule",
        ),
        (
            filtered("/", request_headers(set={"A": "1"}), request_headers(set={"B": "2"})),
            "RequestHeaderModifier is given twice",
        ),
        (
            filtered("/", rewrite(path=replaced_prefix("/x")), matches=[exact_match("/a")]),
            "ReplacePrefixMatch needs PathPrefix matches only",
        ),
        (
            filtered("/", rewrite(path={"type": "Regex", "value": "/x"})),
            "is not ReplaceFullPath or ReplacePrefixMatch",
        ),
        (filtered("/", request_headers(set={"A": "1"}, remove=["a"])), "header a is changed twice"),
        (filtered("/", request_headers(set={"Content-Length": "1"})), "frames the message"),
        (filtered("/", response_headers(remove=["Transfer-Encoding"])), "frames the message"),
        (filtered("/", request_headers(set={"A": ""})), "not a valid header value"),
        (
            filtered("/", request_headers(set={f"X-{i}": "v" for i in range(17)})),
            "more than 16 entries",
        ),
        (
            {"backendRefs": [{**V1, "filters": [redirect(hostname="a.example")]}]},
            "'RequestRedirect' is not served here",
        ),
        (
            {
                "filters": [request_headers(set={"A": "1"})],
                "backendRefs": [{**V1, "filters": [request_headers(add={"a": "2"})]}],
            },
            "header a is changed twice",
        ),
    ],
)
def test_a_filter_the_edge_cannot_serve_exactly_refuses_the_route(rule, message):
    assert message in refusal(rule)


def test_the_served_filters_are_accepted():
    rule = filtered(
        "/",
        request_headers(set={"A": "1"}, add={"B": "2"}, remove=["C"]),
        response_headers(set={"A": "1"}),
        redirect(scheme="https", hostname="a.example", port=8443, statusCode=301),
    )
    assert refusal(rule) == ""


@pytest.mark.parametrize("target", ["/request-timeout", "/backend-timeout"])
def test_timeouts(site, target):
    assert get(site, "timeouts.example", target).status == 200
    late = get(site, "timeouts.example", target, headers={"X-Echo-Delay": "12"})
    assert late.status == 504


def test_a_timeout_of_0s_is_off():
    route = http_route(
        "r",
        [parent("same-namespace")],
        rules=[{**filtered("/"), "timeouts": {"request": "0s", "backendRequest": "0s"}}],
    )
    (location,) = [loc for loc in served([route]).default_server.locations if loc.path == "/"]
    assert location.timeout_ms == 0
    written = render_filters.directives("x", location, None).headers
    assert "        proxy_read_timeout 2147483s;" in written


def served(routes) -> model.Model:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
        services=[service("infra-backend-v1", {"http": 8080}, namespace=INFRA)],
        endpoint_slices=[
            endpoint_slice("infra-backend-v1", [("10.1.0.1", True)], 8080, namespace=INFRA)
        ],
        http_routes=routes,
    )
    options = model.Options()
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    return built


def test_rules_of_other_timeouts_on_one_location_take_the_longest_and_are_told():
    header = {"headers": [{"name": "x-slow", "value": "yes"}]}
    route = http_route(
        "r",
        [parent("same-namespace")],
        rules=[
            {**filtered("/", matches=[{**prefix("/"), **header}]), "timeouts": {"request": "1h"}},
            {**filtered("/"), "timeouts": {"request": "1s"}},
        ],
    )
    built = served([route])
    (location,) = [loc for loc in built.default_server.locations if loc.path == "/"]
    assert location.timeout_ms == 3_600_000
    (problem,) = [p for p in built.problems if p.name == "r"]
    assert "rule 1 shares location / with rules of other timeouts" in problem.reason
    assert problem.code == "unsupported"


def test_a_third_redirect_code_on_one_location_takes_the_first_and_is_told():
    def to(value, code):
        return filtered(
            "/",
            redirect(hostname=f"{value}.example", statusCode=code),
            matches=[{**prefix("/"), "headers": [{"name": "to", "value": value}]}],
        )

    route = http_route(
        "r", [parent("same-namespace")], rules=[to("a", 303), to("b", 308), to("c", 302)]
    )
    built = served([route])
    (location,) = [loc for loc in built.default_server.locations if loc.path == "/"]
    assert [choice.filters.redirect.code for choice in location.choices] == [303, 308, 303]
    (problem,) = [p for p in built.problems if p.name == "r"]
    assert "rule 2 shares location / with rules of two other redirect codes" in problem.reason
    assert "303 instead of 302" in problem.reason
    written = render_filters.directives("x", location, None).redirects
    assert "        error_page 301 =303 $sent_http_location;" in written
    assert "        error_page 302 =308 $sent_http_location;" in written


@pytest.mark.parametrize(
    ("timeouts", "message"),
    [
        ({"request": "1d"}, "not a valid duration"),
        ({"request": "-1s"}, "not a valid duration"),
        ({"request": "1h1h1h1h1h"}, "not a valid duration"),
        ({"request": "99999h"}, "longer than 2147483 seconds"),
        ({"request": "1s", "backendRequest": "2s"}, "backendRequest must not be longer"),
        ({"request": 5}, "must be a string"),
    ],
)
def test_invalid_timeouts_refuse_the_route(timeouts, message):
    assert message in refusal({**filtered("/"), "timeouts": timeouts})


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/v2/items/abc", "infra-v2"),
        ("/v1/items/abc", "infra-v2"),  # the regex before the prefix /v1
        ("/v1/items/exact", "infra-v1"),  # Exact before the regex
        ("/v1/items/ABC", "infra-v1"),  # case-sensitive: the prefix /v1 takes it
        ("/v2/items/abc/more", 404),  # the whole path must match
        ("/v2/items/abc?x=1", "infra-v2"),
    ],
)
def test_regular_expression_paths(site, target, expected):
    answer = get(site, "regex.example", target)
    if expected == 404:
        assert answer.status == 404
    else:
        assert answer.backend == expected


def test_a_regular_expression_match_with_filters(site):
    echo = get(site, "regex.example", "/files/a/b.png").echo
    assert echo["target"] == "/rewritten"
    assert echo["headers"]["x-regex"] == "yes"
    assert get(site, "regex.example", "/files/a/b.gif").status == 404


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("/a(?=b)", "not a regular expression nginx can use"),
        ("/a\\\\b", "backslash only before one of"),
        ("/[[:alpha:]]", "not a regular expression nginx can use"),
        ("/a{70000}", "not a regular expression nginx can use"),
        ("a.*", "must start with '/'"),
        ("/a; }", "must start with '/'"),
    ],
)
def test_a_regular_expression_nginx_would_read_otherwise_refuses_the_route(value, message):
    assert message in refusal({"matches": [regex(value)], "backendRefs": [V1]})


def test_a_regular_expression_is_a_choice_only_of_the_locations_it_can_match():
    route = http_route(
        "r",
        [parent("same-namespace")],
        rules=[
            {"matches": [regex("/app/v[0-9]+/.*")], "backendRefs": [V1]},
            {"matches": [regex("/(a|b)/x")], "backendRefs": [V1]},
            {"matches": [prefix("/headers"), prefix("/app"), prefix("/ap")], "backendRefs": [V1]},
            {"matches": [{"path": {"type": "Exact", "value": "/app/v1/x"}}], "backendRefs": [V1]},
        ],
        # A host that only HTTP listeners serve: no choice on the scheme (as the default
        # server, which listens on both, would need).
        hostnames=["regex.example"],
    )
    (server,) = served([route]).servers
    chosen = {(loc.match, loc.path): len(loc.choices) for loc in server.locations}
    # "/(a|b)/x" starts with "/" only: every prefix location may see it; "/app/v..."
    # those of paths starting with "/app/v" or holding them. An exact location's one
    # path is matched against each.
    assert chosen == {
        ("prefix", "/"): 2,
        ("exact", "/headers"): 0,
        ("prefix", "/headers/"): 1,
        ("exact", "/app"): 0,
        ("prefix", "/app/"): 2,
        ("exact", "/ap"): 0,
        ("prefix", "/ap/"): 1,
        ("exact", "/app/v1/x"): 0,  # Exact before any regex
    }


@pytest.mark.parametrize(
    ("tls", "target", "location"),
    [
        (False, "/scheme-nil-and-port-nil", "http://example.org/scheme-nil-and-port-nil"),
        (True, "/scheme-nil-and-port-nil", "https://example.org/scheme-nil-and-port-nil"),
        (False, "/scheme-nil-and-port-443", "http://example.org:443/scheme-nil-and-port-443"),
        (True, "/scheme-nil-and-port-443", "https://example.org/scheme-nil-and-port-443"),
        (True, "/scheme-http-and-port-nil", "http://example.org/scheme-http-and-port-nil"),
        (
            True,
            "/scheme-http-and-port-8080",
            "http://example.org:8080/scheme-http-and-port-8080",
        ),
    ],
)
def test_redirect_ports_follow_the_scheme_as_the_spec_says(site, tls, target, location):
    port = site.ports.https if tls else site.ports.http
    answer = request(port, "redirect.example", target, tls=tls)
    assert (answer.status, answer.headers.get("location")) == (302, location)


def mirrored(site, target: str, backend: str = "infra-v2", count: int = 1) -> dict:
    """The last of `count` requests `backend` saw for `target` (mirrors are sent beside
    the answer)."""
    seen = site.backends[backend].server.seen
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = [each for each in seen if each["target"] == target]
        if len(found) >= count:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(f"{backend} saw {target} fewer than {count} times")


@pytest.mark.parametrize("target", ["/mirror", "/mirror-and-modify-headers"])
def test_request_mirror(site, target):
    path = f"{target}/{uuid.uuid4().hex}?q=1"
    answer = get(site, "mirror.example", path, headers={"X-Header-Set": "original"})
    assert answer.backend == "infra-v1"
    copy = mirrored(site, path)
    assert copy["headers"]["host"] == "mirror.example"
    if target == "/mirror-and-modify-headers":
        assert answer.echo["headers"]["x-header-set"] == "set-overwrites-values"
        assert copy["headers"]["x-header-set"] == "set-overwrites-values"


def test_a_mirrored_request_with_a_body_reaches_its_backend_and_the_copy_has_it(site):
    """Repeated, with bodies: each request reaches its own backend, never the mirror's
    (the copy's subrequest shares the request's variables, so the dynamic mode names
    the mirror's backend in an upstream of its own), and each copy carries the body."""
    prefix = f"/mirror/{uuid.uuid4().hex}"
    rounds = 20
    for n in range(rounds):
        answer = get(site, "mirror.example", f"{prefix}/{n}", method="POST", body=b"payload")
        assert (answer.status, answer.backend) == (200, "infra-v1")
        assert answer.echo["body"] == "payload"
    for n in range(rounds):
        assert mirrored(site, f"{prefix}/{n}")["body"] == "payload"


def test_rules_of_other_mirrors_on_one_location_mirror_nothing_and_are_told():
    header = {"headers": [{"name": "x-mirror", "value": "yes"}]}
    route = http_route(
        "r",
        [parent("same-namespace")],
        rules=[
            filtered("/", mirror(V1), matches=[{**prefix("/"), **header}]),
            {"matches": [prefix("/")], "backendRefs": [V1]},
        ],
    )
    built = served([route])
    (location,) = [loc for loc in built.default_server.locations if loc.path == "/"]
    assert location.mirrors == ()
    (problem,) = [p for p in built.problems if p.name == "r"]
    assert "rule 0 shares location / with rules of other RequestMirror filters" in problem.reason


def test_a_mirror_to_a_missing_service_is_an_unresolved_ref():
    route = http_route(
        "r", [parent("same-namespace")], rules=[filtered("/", mirror(backend_ref("nowhere")))]
    )
    index = index_of(
        [], [service("infra-backend-v1", {"http": 8080}, namespace=INFRA)], [namespace(INFRA)], []
    )
    attachment = attach(
        [gateway_class()], [gateway("same-namespace", listener())], [route], index, GatewayOptions()
    )
    (state,) = attachment.routes
    resolved = [x for x in state.parents[0].conditions if x.type == c.RESOLVED_REFS]
    assert [(x.status, x.reason) for x in resolved] == [(False, c.BACKEND_NOT_FOUND)]


def test_a_mirrors_service_is_one_the_routes_name():
    """The controller's relevance filter lets its Service and EndpointSlices through."""
    ref = backend_ref("mirror-target", namespace="elsewhere")
    route = http_route("r", [parent("same-namespace")], rules=[filtered("/", mirror(ref))])
    assert references.services([route]) == {
        (INFRA, "infra-backend-v1"),
        ("elsewhere", "mirror-target"),
    }


def test_a_server_block_names_the_upstreams_its_mirrors_use():
    """apply.py validates a changed server with the upstream blocks it names."""
    route = http_route(
        "r",
        [parent("same-namespace")],
        hostnames=["mirror.example"],
        rules=[filtered("/", mirror(V1), backends=())],
    )
    rendered = render.render(served([route]), STATIC_LAYOUT)
    mirrored_to = model.upstream_name(INFRA, "infra-backend-v1.gateway", 8080)
    assert rendered.blocks["server mirror.example"].upstreams == {mirrored_to}


def test_several_mirrors_each_get_the_request(site):
    path = f"/multiple-mirrors/{uuid.uuid4().hex}"
    assert get(site, "mirror.example", path).backend == "infra-v2"
    assert mirrored(site, path, "infra-v1")["method"] == "GET"
    mirrored(site, path, "infra-v2", count=2)  # the answer's and the mirror's


def test_a_mirror_of_a_share_is_drawn_per_request():
    """GEP-3171: `percent` and `fraction` as the share split_clients draws; 0 copies nothing,
    the whole copies every request without a draw."""
    route = http_route(
        "r",
        [parent("same-namespace")],
        hostnames=["mirror.example"],
        rules=[
            filtered("/a", mirror(V1, percent=20)),
            filtered("/b", mirror(V1, fraction={"numerator": 1, "denominator": 3})),
            filtered("/c", mirror(V1, percent=0)),
            filtered("/d", mirror(V1, fraction={"numerator": 100})),
        ],
    )
    locations = {loc.path: loc for loc in served([route]).servers[0].locations}
    paths = ["/a", "/b", "/c", "/d"]
    shares = {path: [target.share for target in locations[path].mirrors] for path in paths}
    assert shares == {"/a": ["20.00"], "/b": ["33.33"], "/c": [], "/d": [None]}


@pytest.mark.parametrize(
    ("target", "low", "high"),
    [
        ("/percent-mirror", 4, 36),  # 20 % of 100: mean 20, standard deviation 4
        ("/percent-mirror-fraction", 30, 70),  # 1/2 of 100: mean 50, standard deviation 5
        ("/percent-mirror-whole", 100, 100),
    ],
)
def test_a_share_of_the_requests_is_mirrored(site, target, low, high):
    """HTTPRouteRequestPercentageMirror: every request answered by its backend, about the
    share copied to the mirror (bounds of four standard deviations: a test that fails
    once in 15,000 runs)."""
    prefix = f"{target}/{uuid.uuid4().hex}"
    rounds = 100
    for n in range(rounds):
        assert get(site, "mirror.example", f"{prefix}/{n}").backend == "infra-v1"
    # The copies of the last requests may still be on their way: wait for the last one
    # sent with every request of a sample, then count.
    if low == rounds:
        mirrored(site, f"{prefix}/{rounds - 1}")
    time.sleep(1)
    seen = site.backends["infra-v2"].server.seen
    copies = sum(1 for each in seen if each["target"].startswith(f"{prefix}/"))
    assert low <= copies <= high


def test_a_mirror_of_no_share_copies_nothing(site):
    path = f"/percent-mirror-zero/{uuid.uuid4().hex}"
    assert get(site, "mirror.example", path).backend == "infra-v1"
    marker = f"/mirror/{uuid.uuid4().hex}"
    get(site, "mirror.example", marker)
    mirrored(site, marker)  # copies leave in order: the one sent after is there
    assert not [each for each in site.backends["infra-v2"].server.seen if each["target"] == path]
