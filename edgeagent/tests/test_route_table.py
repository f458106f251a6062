"""The route table's pure core: which hosts it serves (route_table.table_hosts, the one
predicate), their rules in nginx's order, what render leaves out for them, and the
`route` records of the dynamic state with their second lock."""

import argparse
import dataclasses

import pytest
from edgeagent.gateway import routing as gateway_routing
from edgeagent.route_table import Route
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import dynamic, grammar, model, render, route_table, settings

PREFIX = "nginx.ingress.kubernetes.io/"
LAYOUT = render.Layout(
    listen_http="0.0.0.0:80",
    listen_https="0.0.0.0:443",
    output_dir="/etc/nginx/edgeagent/gen-{generation}",
    default_certificate="/etc/nginx/tls/default.crt",
    default_key="/etc/nginx/tls/default.key",
    dynamic_dir="/etc/nginx/edgeagent/dynamic",
    lua_dir="/opt/edgeagent/lua",
)
OPTIONS = model.Options(upstreams_without_endpoints=True, dynamic=True)


def built(*ingresses: dict, secrets: list[dict] | None = None) -> model.Model:
    inputs = model.Inputs(
        ingresses=list(ingresses),
        services=[service(name) for name in ("web", "api")],
        endpoint_slices=[endpoint_slice(name, [("10.1.0.3", True)], 80) for name in ("web",)],
        secrets=secrets or [],
    )
    return gateway_routing.build(model.build(inputs, OPTIONS), inputs, OPTIONS)[0]


def plain(name: str, host: str, *paths: dict) -> dict:
    return ingress(name, rule(host, *(paths or (path("/", "web"),))))


def test_a_host_without_annotations_is_a_table_host():
    assert route_table.table_hosts(built(plain("a", "a.example.com"))) == {"a.example.com"}


@pytest.mark.parametrize(
    "annotations",
    [
        {"proxy-read-timeout": "300"},
        {"proxy-body-size": "16m"},
        {"whitelist-source-range": "10.0.0.0/8"},
        {"rewrite-target": "/", "use-regex": "true"},
        {"upstream-vhost": "internal.example.com"},
        {"server-alias": "b.example.com"},
        {"app-root": "/app"},
        {"permanent-redirect": "https://example.com/"},
        {"force-ssl-redirect": "true"},
        {"backend-protocol": "HTTPS"},
        {"enable-cors": "true"},
    ],
    ids=lambda annotations: next(iter(annotations)),
)
def test_an_annotation_that_renders_a_directive_keeps_the_server(annotations):
    annotated = ingress(
        "a",
        rule("a.example.com", path("/", "web")),
        annotations={PREFIX + key: value for key, value in annotations.items()},
    )
    assert route_table.table_hosts(built(annotated)) == frozenset()


def test_the_default_server_is_never_in_the_table():
    hostless = ingress("a", rule(None, path("/", "web")))
    result = built(hostless)
    assert result.default_server.locations
    assert route_table.table_hosts(result) == frozenset()


def test_an_exact_host_a_rendered_wildcard_matches_keeps_its_server():
    """nginx gives a.apps.example.com to the wildcard's server before the default server,
    so a table entry would never be read: the exact host keeps its own server."""
    wildcard = ingress(
        "w",
        rule("*.apps.example.com", path("/", "web")),
        annotations={PREFIX + "proxy-read-timeout": "300"},
    )
    exact, deeper = plain("a", "a.apps.example.com"), plain("b", "b.a.apps.example.com")
    assert route_table.table_hosts(built(wildcard, exact, deeper)) == {"b.a.apps.example.com"}


def test_an_exact_host_beside_a_table_wildcard_is_in_the_table_too():
    """Both are read by Lua, the exact host first, as nginx's server names."""
    hosts = route_table.table_hosts(
        built(plain("w", "*.apps.example.com"), plain("a", "a.apps.example.com"))
    )
    assert hosts == {"*.apps.example.com", "a.apps.example.com"}


def test_a_name_with_rules_of_its_own_is_no_alias_and_stays_in_the_table():
    """The model gives a name with rules to its rules (hostnames.py), not to another
    host's server-alias: the table serves it as nginx would its own server."""
    aliased = ingress(
        "b",
        rule("b.example.com", path("/", "web")),
        annotations={PREFIX + "server-alias": "a.example.com"},
    )
    hosts = route_table.table_hosts(built(aliased, plain("a", "a.example.com")))
    assert hosts == {"a.example.com"}


def test_rules_come_exact_first_then_the_longest_prefix():
    result = built(
        plain(
            "a",
            "a.example.com",
            path("/", "web"),
            path("/api", "api"),
            path("/api/v1/items", "web", kind="Exact"),
        )
    )
    server = next(s for s in result.servers if s.host == "a.example.com")
    web = next(u.name for u in result.upstreams if u.service == "web")
    api = next(u.name for u in result.upstreams if u.service == "api")
    assert [rule[:3] for rule in route_table.routes(server)] == [
        ("exact", "/api/v1/items", web),
        ("exact", "/api", api),
        ("prefix", "/api/", api),
        ("prefix", "/", web),
    ]


def test_render_leaves_table_hosts_to_the_default_server():
    result = built(plain("a", "a.example.com"), plain("b", "b.example.com"))
    rendered = render.render(result, LAYOUT)
    edge = rendered.files["edge.conf"].decode()
    assert "server_name a.example.com" not in edge
    assert "server a.example.com" not in rendered.blocks
    assert 'require("edgeagent_routes").route();' in edge
    without = render.render(result, dataclasses.replace(LAYOUT, route_table=False))
    assert "server a.example.com" in without.blocks
    assert 'edgeagent_routes").route()' not in without.files["edge.conf"].decode()


def test_adding_a_plain_host_renders_the_same_bytes():
    """No new generation, so no reload: the host travels in the dynamic state."""
    one = built(plain("a", "a.example.com"))
    two = built(plain("a", "a.example.com"), plain("b", "b.example.com"))
    assert render.render(one, LAYOUT).generation == render.render(two, LAYOUT).generation
    assert set(dynamic.state_of(two).routes) == {"a.example.com", "b.example.com"}


def test_the_static_mode_has_no_table():
    static = dataclasses.replace(LAYOUT, dynamic_dir=None, lua_dir=None)
    rendered = render.render(built(plain("a", "a.example.com")), static)
    assert "server a.example.com" in rendered.blocks


def test_a_delta_removes_a_host_that_left_the_table():
    old = dynamic.state_of(built(plain("a", "a.example.com"), plain("b", "b.example.com")))
    new = dynamic.state_of(built(plain("a", "a.example.com")))
    change = dynamic.delta(old, new)
    assert change.routes == {"b.example.com": ()}
    assert dynamic.kinds(change) == ["routes"]
    assert dynamic.encode(change, 7, full=False).decode().splitlines()[-1] == "route b.example.com"


def test_the_route_records_of_a_state():
    state = dynamic.state_of(built(plain("a", "a.example.com", path("/api", "api"))))
    api = next(iter(state.backends))
    lines = dynamic.encode(state, 7, full=True).decode().splitlines()
    assert f"route a.example.com exact /api {api} prefix /api/ {api} prefix / !404" in lines


@pytest.mark.parametrize(
    "host, rule",
    [
        ("a.example.com b.example.com", Route("prefix", "/", "x_y_80", 404)),
        ("a.example.com\nversion 9", Route("prefix", "/", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "/a b", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "/a\nroute b.example.com", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "/a/../admin", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "/%s.*", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "/(.-)$", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "//x", "x_y_80", 404)),
        ("a.example.com", Route("regex", "/", "x_y_80", 404)),
        ("a.example.com", Route("prefix", "/", "x y", 404)),
        ("a.example.com", Route("prefix", "/", None, 1000)),
        ("%a.example.com", Route("prefix", "/", "x_y_80", 404)),
    ],
)
def test_hostile_routes_are_refused_before_they_reach_nginx(host, rule):
    state = dynamic.State({}, {}, {}, {host: (rule,)})
    with pytest.raises(ValueError):
        dynamic.encode(state, 7, full=True)


def _settings(*argv: str, config: str | None = None, tmp_path=None) -> settings.AgentSettings:
    parser = argparse.ArgumentParser()
    settings.add_arguments(parser)
    if config is not None:
        (tmp_path / "config.yaml").write_text(config)
        argv = (*argv, "--config", str(tmp_path / "config.yaml"))
    return settings.resolve(parser.parse_args(argv))


def test_the_table_is_on_by_default_and_turned_off_by_flag_or_config(tmp_path):
    assert _settings().nginx.route_table is True
    assert _settings("--route-table", "false").nginx.route_table is False
    assert _settings(config="route-table: false\n", tmp_path=tmp_path).nginx.route_table is False
    with pytest.raises(settings.ConfigError):
        _settings("--route-table", "no")


def test_a_prefix_of_the_longest_path_keeps_its_server_and_the_state_encodes():
    """Its location "/a...a/" is one character over what the push's lock takes: in the
    table it stopped every sync (dynamic.encode raised)."""
    longest = "/" + "a" * (grammar.PATH_MAX_LENGTH - 1)
    model_ = built(plain("a", "a.example.com", path(longest, "web")))
    assert route_table.table_hosts(model_) == frozenset()
    assert dynamic.encode(dynamic.state_of(model_), 1, True)


def test_hosts_beyond_the_budget_keep_their_servers_in_name_order(monkeypatch):
    hosts = [plain(name, f"{name}.example.com") for name in ("c", "a", "b")]
    one = route_table.route_bytes(built(hosts[1]).servers[0])
    monkeypatch.setattr(route_table, "ROUTES_BUDGET_BYTES", 2 * one)
    assert route_table.table_hosts(built(*hosts)) == {"a.example.com", "b.example.com"}


def test_the_route_location_names_the_node_when_the_main_configuration_does():
    """--served-by-header: the table's answers carry X-Edge-Node as a rendered server's do
    (the default server's own HSTS add_header keeps the http-level one from it)."""
    model_ = built(plain("a", "a.example.com"))
    header = "add_header X-Edge-Node $hostname always;"
    with_header = render.render(model_, dataclasses.replace(LAYOUT, served_by_header=True))
    route_location = with_header.files["edge.conf"].decode().split("location = /_edgeagent-route")
    assert header in route_location[1].split("}", 1)[0]
    assert header.encode() not in render.render(model_, LAYOUT).files["edge.conf"]
