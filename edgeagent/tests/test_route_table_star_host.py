"""A request whose Host is itself a table name with a star (`*.sub.wild.example.com`, which
nginx accepts): the table must pick what the rendered server names pick, a Gateway API
wildcard of any depth (nginx's `*.` form) before an Ingress's one-label one (a regex), not
the one-label one's rules by an exact lookup of the name."""

import pytest
from edgeagent.control import Control
from support_gateway import INFRA, backend_ref, gateway, gateway_class, http_route, listener
from support_gateway import parent as gateway_parent
from support_http import Backends, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import dynamic, model, route_table

SERVICES = ("v1", "v2")
ONE_LABEL = "*.sub.wild.example.com"
ANY_DEPTH = "*.wild.example.com"


def inputs_of(started: dict) -> model.Inputs:
    return model.Inputs(
        ingresses=[ingress("one-label", rule(ONE_LABEL, path("/", "v1", 8080)), namespace=INFRA)],
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
            )
        ],
    )


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """The same objects served from the table and from a site rendered without it."""
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in SERVICES}
        found = {}
        for mode in ("table", "rendered"):
            directory = tmp_path_factory.mktemp(mode)
            site = render_site(
                directory, inputs_of(started), dynamic_mode=True, route_table=mode == "table"
            )
            runner.start(site)
            control = Control(str(directory / "dynamic"), f"127.0.0.1:{site.ports.status}")
            control.push(dynamic.state_of(site.model), full=True)
            found[mode] = site
        assert route_table.table_hosts(found["table"].model) == {ONE_LABEL, ANY_DEPTH}
        yield found
    finally:
        runner.stop_all()
        backends.stop_all()


@pytest.mark.parametrize("mode", ["table", "rendered"])
@pytest.mark.parametrize(
    "host, expected",
    [
        ("a.sub.wild.example.com", "v2"),  # nginx's `*.` wildcard before its regex
        ("a.wild.example.com", "v2"),
        (ONE_LABEL, "v2"),  # a star is a label like any other to nginx
        ("**.sub.wild.example.com", "v2"),
        ("*.wild.example.com", "v2"),
    ],
)
def test_a_star_in_the_host_is_matched_as_nginx_does(sites, mode, host, expected):
    answer = request(sites[mode].ports.http, host, "/")
    assert (answer.backend if answer.status == 200 else answer.status) == expected
