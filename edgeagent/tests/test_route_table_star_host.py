"""Wildcards of both APIs on one edge: among those matching a name, the longest suffix
wins, an Ingress's one-label `*.sub.wild.example.com` over an HTTPRoute's
`*.wild.example.com` of any depth, and an Ingress's `*.example.com` over an HTTPRoute's
`*.com` (Kubernetes' Ingress and the Gateway API's hostname precedence; nginx alone would
try every `*.` name before the one-label ones' regexes), while a name no longer wildcard
matches stays the shorter one's. From the route table, from the rendered servers of the
dynamic mode, and from the static mode's. And a request whose Host is itself a table
name with a star (`*.sub.wild.example.com`, which nginx accepts): the table picks what
the rendered server names pick, not the one-label one's rules by an exact lookup."""

import dataclasses
import types

import pytest
from edgeagent.control import Control
from edgeagent.gateway import routing as gateway_routing
from support_gateway import INFRA, backend_ref, gateway, gateway_class, http_route, listener
from support_gateway import parent as gateway_parent
from support_http import Backends, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service
from test_render_golden import DYNAMIC_LAYOUT, GOLDEN, LAYOUT, assert_matches_golden

from edgeagent import dynamic, model, render, route_table

SERVICES = ("v1", "v2", "v3", "v4")
ONE_LABEL = "*.sub.wild.example.com"
ANY_DEPTH = "*.wild.example.com"
SHORT_ONE_LABEL = "*.example.com"
SHORT_ANY_DEPTH = "*.com"


def inputs_of(started: dict) -> model.Inputs:
    return model.Inputs(
        ingresses=[
            ingress("one-label", rule(ONE_LABEL, path("/", "v1", 8080)), namespace=INFRA),
            ingress("short", rule(SHORT_ONE_LABEL, path("/", "v3", 8080)), namespace=INFRA),
        ],
        services=[service(name, {"http": 8080}, namespace=INFRA) for name in SERVICES],
        endpoint_slices=[
            endpoint_slice(name, [(started[name].host, True)], started[name].port, namespace=INFRA)
            for name in SERVICES
        ],
        gateway_classes=[gateway_class()],
        gateways=[gateway("edge", listener())],
        http_routes=[
            http_route(
                "any-depth",
                [gateway_parent("edge")],
                [{"backendRefs": [backend_ref("v2")]}],
                [ANY_DEPTH],
                created="2020-01-01T00:00:00Z",
            ),
            http_route(
                "short",
                [gateway_parent("edge")],
                [{"backendRefs": [backend_ref("v4")]}],
                [SHORT_ANY_DEPTH],
                created="2020-01-01T00:00:00Z",
            ),
        ],
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """The same objects served from the table, from a site rendered without it, and
    from the static mode's."""
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in SERVICES}
        found = {}
        for mode in MODES:
            directory = tmp_path_factory.mktemp(mode)
            dynamic_mode = mode != "static"
            changes = {"route_table": mode == "table"} if dynamic_mode else {}
            site = render_site(directory, inputs_of(started), dynamic_mode=dynamic_mode, **changes)
            runner.start(site)
            if dynamic_mode:
                control = Control(str(directory / "dynamic"), f"127.0.0.1:{site.ports.status}")
                control.push(dynamic.state_of(site.model), full=True)
            found[mode] = site
        # No rendered server takes a name from another: all four are the table's.
        assert route_table.table_hosts(found["table"].model) == {
            ONE_LABEL,
            ANY_DEPTH,
            SHORT_ONE_LABEL,
            SHORT_ANY_DEPTH,
        }
        yield found
    finally:
        runner.stop_all()
        backends.stop_all()


MODES = ("table", "rendered", "static")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "host, expected",
    [
        ("a.sub.wild.example.com", "v1"),  # the longer suffix, though one-label
        ("b.a.sub.wild.example.com", "v2"),  # not the one-label one's: the any-depth one
        ("a.wild.example.com", "v2"),
        ("wild.example.com", "v3"),  # `*.example.com`, the longer suffix than `*.com`
        ("a.example.com", "v3"),
        ("b.a.example.com", "v4"),  # one label only: `*.com`'s
        ("example.com", "v4"),
        ("a.com", "v4"),
        (ONE_LABEL, "v1"),  # a star is a label like any other to nginx
        ("**.sub.wild.example.com", "v1"),
        ("*.wild.example.com", "v2"),
        ("*.example.com", "v3"),
    ],
)
def test_the_longest_wildcard_wins_across_apis(sites, mode, host, expected):
    answer = request(sites[mode].ports.http, host, "/")
    assert (answer.backend if answer.status == 200 else answer.status) == expected


def test_the_wildcards_configuration_matches_golden():
    """Both modes' edge.conf of the objects above (the dynamic one without the table):
    the any-depth wildcards as regexes after the one-label ones, longest suffix first."""
    fixed = {name: types.SimpleNamespace(host="10.0.0.10", port=8080) for name in SERVICES}
    inputs = inputs_of(fixed)
    files = {}
    for mode, layout in (("static", LAYOUT), ("dynamic", DYNAMIC_LAYOUT)):
        options = model.Options(dynamic=mode == "dynamic", upstreams_without_endpoints=True)
        built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
        rendered = render.render(built, dataclasses.replace(layout, route_table=False))
        files[f"{mode}/edge.conf"] = rendered.files["edge.conf"]
    assert_matches_golden(files, GOLDEN / "wildcards-across-apis")
