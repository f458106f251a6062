"""Hostile Gateway API input: the same tricks test_hostile.py plays on Ingresses, through
every Gateway API field that could reach nginx's configuration. Each hostile route or
listener is refused with a reason, the rest keeps serving, nginx accepts the result, no
injected directive reaches it, and gixy-ng finds nothing."""

import json
from pathlib import Path

import pytest
from edgeagent.gateway import conditions as c
from edgeagent.gateway import routing as gateway_routing
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
from support_http import Backends, request
from support_nginx import NginxRunner, assert_only_rendered_directives, nginx_test, render_site
from support_objects import endpoint_slice, service
from test_hostile import CLOSE_AND_LOAD, INJECTED, NEWLINE_DIRECTIVE, scanned_by_gixy

from edgeagent import model

GOLDEN_GATEWAY = Path(__file__).resolve().parent / "golden" / "gateway" / "input"


def prefixed(value):
    return {"matches": [{"path": {"type": "PathPrefix", "value": value}}]}


HOSTILE_ROUTES = {
    "path-closes-blocks": {**prefixed("/x" + CLOSE_AND_LOAD), "backendRefs": [backend_ref("app")]},
    "path-newline": {**prefixed("/" + NEWLINE_DIRECTIVE), "backendRefs": [backend_ref("app")]},
    "backend-name": {"backendRefs": [backend_ref("app" + CLOSE_AND_LOAD)]},
    "backend-namespace": {"backendRefs": [backend_ref("app", namespace=NEWLINE_DIRECTIVE)]},
    "header-value": {
        "matches": [{"headers": [{"name": "x", "value": CLOSE_AND_LOAD}]}],
        "backendRefs": [backend_ref("app")],
    },
}


def _filtered(kind: str, field: str, body: dict) -> dict:
    return {"filters": [{"type": kind, field: body}], "backendRefs": [backend_ref("app")]}


def _header_set(name: str, value: str) -> dict:
    return _filtered(
        "RequestHeaderModifier", "requestHeaderModifier", {"set": [{"name": name, "value": value}]}
    )


# Filters (gateway/filters.py): a header value is written inside double quotes, so a quote,
# a newline, a backslash or a variable in it is refused; names, hosts and paths as elsewhere.
HOSTILE_ROUTES.update(
    {
        "filter-header-quote": _header_set("x", 'v"' + CLOSE_AND_LOAD),
        "filter-header-newline": _header_set("x", NEWLINE_DIRECTIVE),
        "filter-header-backslash": _header_set("x", 'v\\"; evil'),
        "filter-header-variable": _header_set("x", "$remote_addr"),
        "filter-header-name": _header_set("x" + CLOSE_AND_LOAD, "v"),
        "filter-response-name": _filtered(
            "ResponseHeaderModifier", "responseHeaderModifier", {"remove": ["x\ny"]}
        ),
        "filter-redirect-host": _filtered(
            "RequestRedirect", "requestRedirect", {"hostname": "h.example" + CLOSE_AND_LOAD}
        ),
        "filter-rewrite-path": _filtered(
            "URLRewrite",
            "urlRewrite",
            {"path": {"type": "ReplaceFullPath", "replaceFullPath": "/x" + CLOSE_AND_LOAD}},
        ),
        "filter-extension": _filtered("ExtensionRef", "extensionRef", {"name": "evil"}),
    }
)


def _regex_header(value: str) -> dict:
    header = {"type": "RegularExpression", "name": "x", "value": value}
    return {"matches": [{"headers": [header]}], "backendRefs": [backend_ref("app")]}


# RegularExpression values are written inside double quotes in a map of their own.
HOSTILE_ROUTES.update(
    {
        "regex-header-closes-blocks": _regex_header("a" + CLOSE_AND_LOAD),
        "regex-header-newline": _regex_header(NEWLINE_DIRECTIVE),
        "regex-header-quote": _regex_header('a"'),
        "regex-header-backslash-quote": _regex_header('a\\"'),
    }
)


def hostile_world(app) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        services=[service("app", {"http": 8080}, namespace=INFRA)],
        endpoint_slices=[
            endpoint_slice("app", [(app.host, True)], app.port, namespace=INFRA, name="app")
        ],
        gateways=[
            gateway(
                "g",
                listener(),
                listener("evil-host", hostname="a.example" + NEWLINE_DIRECTIVE),
                listener("evil-cert", 443, "HTTPS", certificates=[{"name": "x" + CLOSE_AND_LOAD}]),
            )
        ],
    )
    for name, rule in HOSTILE_ROUTES.items():
        inputs.http_routes.append(
            http_route(name, [parent("g")], rules=[rule], hostnames=[f"{name}.example"])
        )
    inputs.http_routes.append(
        http_route("hostile-hostname", [parent("g")], hostnames=["h.example" + CLOSE_AND_LOAD])
    )
    inputs.http_routes.append(
        http_route(
            "good",
            [parent("g")],
            rules=[{"backendRefs": [backend_ref("app")]}],
            hostnames=["good.example"],
        )
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def hostile_site(request, tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        app = backends.start("app")
        site = render_site(
            tmp_path_factory.mktemp("gateway-hostile"),
            hostile_world(app),
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(site)
        yield site
    finally:
        runner.stop_all()
        backends.stop_all()


def test_every_hostile_route_and_listener_is_refused_with_a_reason():
    inputs = hostile_world(type("App", (), {"host": "127.0.0.2", "port": 8080}))
    options = model.Options()
    built, attachment = gateway_routing.build(model.build(inputs, options), inputs, options)
    refused = {
        state.key[1]
        for state in attachment.routes
        for p in state.parents
        if not c.holds(p.conditions, c.ACCEPTED) or not c.holds(p.conditions, c.RESOLVED_REFS)
    }
    assert refused == {*HOSTILE_ROUTES, "hostile-hostname"}
    (state,) = attachment.gateways
    bad_listeners = {each.name for each in state.listeners if not each.programmed}
    assert bad_listeners == {"evil-host", "evil-cert"}
    assert [s.host for s in built.servers] == ["good.example"]
    for problem in built.problems:
        assert "\n" not in problem.reason


def test_the_good_route_keeps_serving(hostile_site):
    answer = request(hostile_site.ports.http, "good.example", "/x")
    assert (answer.status, answer.backend) == (200, "app")


def test_nginx_accepts_it_and_no_injected_directive_reaches_it(hostile_site):
    tested = nginx_test(hostile_site.directory)
    assert tested.returncode == 0, tested.stderr
    found = assert_only_rendered_directives(hostile_site.directory / "nginx.conf")
    text = " ".join(" ".join(args) for _, args, _ in found)
    for word in INJECTED:
        assert word not in text


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing_in_the_gateway_golden_case(tmp_path, mode):
    site, scan, findings = scanned_by_gixy(tmp_path, GOLDEN_GATEWAY, mode)
    # A URLRewrite path of one choice among others is `rewrite ... break` inside an `if`
    # on the action taken (render_filters): gixy's if_is_evil wants `last`, `redirect` or
    # `permanent` there, none of which keeps the request in its location. The if block
    # inherits the location's proxy_pass and headers, which test_gateway_filters checks
    # through nginx in both modes. Those are its only if_is_evil findings.
    evil = [f for f in findings if f["plugin"] == "if_is_evil"]
    assert evil and all("rewrite ^ /beta break" in f["config"] for f in evil), evil
    assert all("if ($edgeagent_a" in f["config"] for f in evil), evil
    findings = [f for f in findings if f["plugin"] != "if_is_evil"]
    if mode == "dynamic":
        assert findings == [], scan.stdout + scan.stderr
    else:
        # Static mode proxies a location whose routes match on more than the path to
        # the upstream its choice map names: gixy cannot see that every value of the map
        # is an upstream block, and asks for a resolver. That is the only other finding.
        assert {finding["plugin"] for finding in findings} == {"missing_resolver"}
        assert all("$edgeagent_t" in json.dumps(finding) for finding in findings)
    assert any(server.host == "shop.example.com" for server in site.model.servers)


@pytest.mark.parametrize("case", ["gateway-shares", "gateway-regex"])
@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing_in_the_choices_golden_cases(tmp_path, mode, case):
    """A weighted rule's unusable share (split_clients) and RegularExpression header and
    parameter values (maps of their own): nginx accepts them and gixy-ng finds nothing but,
    in static mode, the choice map's proxy_pass it cannot resolve (above)."""
    golden = GOLDEN_GATEWAY.parent.parent / case / "input"
    site, scan, findings = scanned_by_gixy(tmp_path, golden, mode)
    assert site.model.servers
    if mode == "dynamic":
        assert findings == [], scan.stdout + scan.stderr
    else:
        assert {finding["plugin"] for finding in findings} == {"missing_resolver"}
        assert all("$edgeagent_t" in json.dumps(finding) for finding in findings)
