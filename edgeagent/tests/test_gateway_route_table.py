"""Plain HTTPRoutes in the dynamic mode's route table (route_table.py), in a real nginx with
the Lua module: the same requests get the same answers from the table as from a site
rendered without it (Gateway API precedence across routes, wildcards of any depth, a
rendered Ingress wildcard beside them); pushes add, change and remove a route's host
without a reload; a route of more than the table serves keeps its server block; and a
hostile route name is refused whole by the Lua parser and by the agent.
"""

from pathlib import Path

import pytest
from edgeagent.control import Control
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.options import GatewayOptions
from support_gateway import INFRA, backend_ref, gateway, gateway_class, http_route, listener
from support_gateway import parent as gateway_parent
from support_http import Backends, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import dynamic, model, route_table

SERVICES = ("v1", "v2", "v3")
OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"
PARENTS = [gateway_parent("edge")]


def prefix(value):
    return {"path": {"type": "PathPrefix", "value": value}}


def exact(value):
    return {"path": {"type": "Exact", "value": value}}


def routed(matches, *services, **fields):
    return {"matches": matches, "backendRefs": [backend_ref(s) for s in services], **fields}


def route(name, hostname, *rules, created=OLD):
    return http_route(name, PARENTS, list(rules), [hostname], created=created)


HEADER_FILTER = {"type": "RequestHeaderModifier", "requestHeaderModifier": {"set": []}}
HEADER_FILTER["requestHeaderModifier"]["set"].append({"name": "x-filtered", "value": "yes"})

ROUTES = (
    route(
        "shop",
        "shop.example.com",
        routed([prefix("/api")], "v2"),
        routed([exact("/exact")], "v3"),
        routed([prefix("/")], "v1"),
    ),
    # Precedence across two routes on one hostname: Exact over prefix, the longest prefix,
    # then the oldest route, then namespace/name.
    route(
        "old", "prec.example.com", routed([prefix("/same")], "v1"), routed([prefix("/name")], "v1")
    ),
    route(
        "new",
        "prec.example.com",
        routed([prefix("/same")], "v2"),
        routed([exact("/same/x")], "v2"),
        routed([prefix("/same/deeper")], "v3"),
        created=NEW,
    ),
    route("zz", "prec.example.com", routed([prefix("/name")], "v3")),
    # Wildcards of any depth: the exact host first, then the longest wildcard.
    route("wild", "*.wild.example.com", routed([prefix("/")], "v2")),
    route("deep", "*.deep.wild.example.com", routed([prefix("/")], "v1")),
    route("exact-in-wild", "a.wild.example.com", routed([prefix("/")], "v3")),
    # Beside a rendered one-label Ingress wildcard of a longer suffix, which wins its names.
    route("other", "*.other.example.com", routed([prefix("/")], "v1")),
    # Weighted backendRefs: one weighted upstream.
    http_route(
        "weighted",
        PARENTS,
        [{"backendRefs": [backend_ref("v1", weight=1), backend_ref("v2", weight=1)]}],
        ["weighted.example.com"],
        created=OLD,
    ),
    route("filtered", "filtered.example.com", routed([prefix("/")], "v3", filters=[HEADER_FILTER])),
)
RENDERED_INGRESS = ingress(
    "annotated",
    rule("*.x.other.example.com", path("/", "v3", 8080)),
    namespace=INFRA,
    annotations={"nginx.ingress.kubernetes.io/proxy-read-timeout": "120"},
)


def inputs_of(started: dict, *routes: dict) -> model.Inputs:
    return model.Inputs(
        ingresses=[RENDERED_INGRESS],
        services=[service(name, {"http": 8080}, namespace=INFRA) for name in SERVICES],
        endpoint_slices=[
            endpoint_slice(name, [(started[name].host, True)], started[name].port, namespace=INFRA)
            for name in SERVICES
        ],
        gateway_classes=[gateway_class()],
        gateways=[gateway("edge", listener())],
        http_routes=list(routes),
    )


def model_of(started: dict, *routes: dict) -> model.Model:
    inputs = inputs_of(started, *routes)
    options = model.Options(upstreams_without_endpoints=True, dynamic=True)
    return gateway_routing.build(model.build(inputs, options), inputs, options)[0]


class Site:
    def __init__(self, directory: Path, started: dict, runner: NginxRunner, table: bool):
        self.started = started
        self.site = render_site(
            directory, inputs_of(started, *ROUTES), dynamic_mode=True, route_table=table
        )
        self.nginx = runner.start(self.site)
        self.control = Control(str(directory / "dynamic"), f"127.0.0.1:{self.site.ports.status}")

    def backend_of(self, host: str, target: str = "/") -> str | int:
        answer = request(self.site.ports.http, host, target)
        return answer.backend if answer.status == 200 and answer.backend else answer.status

    def state_of(self, *routes: dict) -> dynamic.State:
        return dynamic.state_of(model_of(self.started, *routes))


@pytest.fixture(scope="module")
def sites(tmp_path_factory):
    """The same objects served from the table and from a site rendered without it."""
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in SERVICES}
        yield {
            mode: Site(tmp_path_factory.mktemp(mode), started, runner, mode == "table")
            for mode in ("table", "rendered")
        }
    finally:
        runner.stop_all()
        backends.stop_all()


@pytest.fixture(params=["table", "rendered"])
def site(request, sites):
    return sites[request.param]


@pytest.fixture
def table_site(sites):
    """The table's site, from the state of ROUTES, pushed whole."""
    site = sites["table"]
    site.control.push(site.state_of(*ROUTES), full=True)
    return site


def test_plain_routes_are_table_hosts_and_the_others_keep_their_servers(table_site):
    site = table_site
    hosts = route_table.table_hosts(site.site.model)
    assert hosts == {
        "shop.example.com",
        "prec.example.com",
        "*.wild.example.com",
        "*.deep.wild.example.com",
        "a.wild.example.com",
        "*.other.example.com",  # the rendered one-label wildcard takes only its own names
        "weighted.example.com",
    }
    # A filter needs nginx directives.
    assert "filtered.example.com" not in hosts
    # The wildcard that a one-label one lies under is rendered a regex, the other not.
    regexes = {server.host for server in site.site.model.servers if server.regex_name}
    assert regexes == {"*.other.example.com"}
    state = dynamic.state_of(site.site.model)
    assert "**.wild.example.com" in state.routes
    assert "*.wild.example.com" not in state.routes


def test_a_rendered_wildcard_takes_the_table_names_it_would_win(table_site):
    """`*.wild.example.com` rendered (a filter): nginx gives it a.wild.example.com before
    the default server, and x.deep.wild.example.com too (the table's longer wildcard
    cannot win from the default server): both keep their server blocks."""
    filtered = route(
        "wild", "*.wild.example.com", routed([prefix("/")], "v2", filters=[HEADER_FILTER])
    )
    routes = [filtered if each["metadata"]["name"] == "wild" else each for each in ROUTES]
    hosts = route_table.table_hosts(model_of(table_site.started, *routes))
    assert hosts == {
        "shop.example.com",
        "prec.example.com",
        "weighted.example.com",
        "*.other.example.com",
    }


def test_gateway_hosts_bound_to_their_own_addresses_keep_their_servers(table_site):
    """The default server listens on every address: it cannot answer for hosts that
    --gateway-address binds to some."""
    inputs = inputs_of(table_site.started, *ROUTES)
    options = model.Options(
        upstreams_without_endpoints=True,
        dynamic=True,
        gateway=GatewayOptions(addresses=("127.0.0.2",)),
    )
    built = gateway_routing.build(model.build(inputs, options), inputs, options)[0]
    assert route_table.table_hosts(built) == set()


@pytest.mark.parametrize(
    "host, target, expected",
    [
        ("shop.example.com", "/", "v1"),
        ("shop.example.com", "/api", "v2"),
        ("shop.example.com", "/api/v1", "v2"),
        ("shop.example.com", "/apix", "v1"),  # PathPrefix matches whole path elements
        ("shop.example.com", "/exact", "v3"),
        ("shop.example.com", "/exact/", "v1"),
        ("SHOP.example.com", "/api", "v2"),
        ("prec.example.com", "/same", "v1"),  # the oldest route of two same matches
        ("prec.example.com", "/same/y", "v1"),
        ("prec.example.com", "/same/x", "v2"),  # Exact over any prefix
        ("prec.example.com", "/same/deeper/z", "v3"),  # the longest prefix
        ("prec.example.com", "/name", "v1"),  # same age: first by namespace/name
        ("prec.example.com", "/", 404),  # no rule matches
        ("b.wild.example.com", "/", "v2"),
        ("c.b.wild.example.com", "/", "v2"),  # any depth
        ("a.wild.example.com", "/", "v3"),  # the exact host first
        ("b.a.wild.example.com", "/", "v2"),
        ("x.deep.wild.example.com", "/", "v1"),  # the longest wildcard
        ("y.x.deep.wild.example.com", "/", "v1"),
        ("deep.wild.example.com", "/", "v2"),
        ("wild.example.com", "/", 404),  # not its own wildcard's name
        ("y.x.other.example.com", "/", "v3"),  # the longest wildcard, though one-label
        ("z.y.x.other.example.com", "/", "v1"),  # not the one-label one's: the any-depth one
        ("filtered.example.com", "/", "v3"),
        ("unknown.example.com", "/", 404),
    ],
)
def test_table_hosts_answer_as_their_rendered_servers(site, host, target, expected):
    assert site.backend_of(host, target) == expected


def test_weighted_backend_refs_share_the_requests(site):
    assert {site.backend_of("weighted.example.com") for _ in range(8)} == {"v1", "v2"}


def test_a_route_is_added_changed_and_removed_without_a_reload(table_site):
    site = table_site
    pids = site.nginx.pids()
    added = route("added", "added.example.com", routed([prefix("/")], "v1"))
    site.control.push(site.state_of(*ROUTES, added), full=False)
    assert site.backend_of("added.example.com") == "v1"
    changed = route(
        "added", "added.example.com", routed([prefix("/")], "v2"), routed([prefix("/p")], "v3")
    )
    site.control.push(site.state_of(*ROUTES, changed), full=False)
    assert site.backend_of("added.example.com") == "v2"
    assert site.backend_of("added.example.com", "/p/q") == "v3"
    assert site.backend_of("added.example.com", "/pq") == "v2"
    wildcard = route("added-wildcard", "*.added.example.com", routed([prefix("/")], "v3"))
    site.control.push(site.state_of(*ROUTES, changed, wildcard), full=False)
    assert site.backend_of("b.a.added.example.com") == "v3"
    removal = dynamic.delta(site.state_of(*ROUTES, changed, wildcard), site.state_of(*ROUTES))
    site.control.push(removal, full=False)
    assert site.backend_of("added.example.com") == 404
    assert site.backend_of("b.a.added.example.com") == 404
    assert site.backend_of("shop.example.com", "/api") == "v2"
    assert site.nginx.pids() == pids  # same master, same workers: nothing reloaded


HOSTILE_HOSTS = [
    "***.example.com",
    "**example.com",
    "*.*.example.com",
    "**.*.example.com",
    "a**.example.com",
    "**..example.com",
    "**.-x.example.com",
    "**",
]


@pytest.mark.parametrize("host", HOSTILE_HOSTS)
def test_a_hostile_route_name_is_refused_and_changes_nothing(table_site, host):
    site = table_site
    backend = model.upstream_name(INFRA, "v1.gateway", 8080)
    version = site.control.serving_version() + 1
    head = f"edgeagent-dynamic 1\nversion {version}\nscope delta\n"
    good = f"route good.example.com prefix / {backend}\n"  # a push applied in part would show
    status, why = site.nginx.post_control(
        site.control, f"{head}{good}route {host} prefix / {backend}\n".encode()
    )
    assert status == 400, why
    assert "line 5" in why
    assert site.backend_of("good.example.com") == 404
    assert site.backend_of("shop.example.com", "/api") == "v2"
    with pytest.raises(ValueError, match="not a plain value"):
        dynamic.encode(dynamic.State({}, {}, {}, {host: ()}), version, full=False)
