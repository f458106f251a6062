"""The route table in a real nginx with the Lua module: table hosts are served as their
rendered servers would be, pushes add, change and remove them without a reload, and a
hostile `route` record is refused whole by the Lua parser (the agent's second lock is
test_route_table.py's).

The site is rendered in the dynamic mode with the files the agent writes (support_nginx);
pushes are made with `edgeagent.control.Control`, as the agent makes them, or by hand.
"""

from pathlib import Path

import pytest
from agentlab import eventually
from edgeagent.control import Control
from support_http import Backends, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import dynamic, model, route_table

SERVICES = ("web", "api", "other")


def inputs_of(started: dict, *ingresses: dict) -> model.Inputs:
    return model.Inputs(
        ingresses=list(ingresses),
        services=[service(name) for name in SERVICES],
        endpoint_slices=[
            endpoint_slice(name, [(started[name].host, True)], started[name].port)
            for name in SERVICES
        ],
    )


FIRST = (
    ingress(
        "shop",
        rule(
            "shop.example.com",
            path("/", "web"),
            path("/api", "api"),
            path("/api/v1/exact", "other", kind="Exact"),
        ),
        rule("only.example.com", path("/only", "web", kind="Exact")),
        rule("*.apps.example.com", path("/", "api")),
        rule("a.apps.example.com", path("/", "other")),
    ),
)


class Site:
    def __init__(self, directory: Path, started: dict, runner: NginxRunner) -> None:
        self.started = started
        self.site = render_site(directory, inputs_of(started, *FIRST), dynamic_mode=True)
        self.nginx = runner.start(self.site)
        self.control = Control(str(directory / "dynamic"), f"127.0.0.1:{self.site.ports.status}")
        self.control.push(dynamic.state_of(self.site.model), full=True)

    def backend_of(self, host: str, target: str = "/", tls: bool = False) -> str | int:
        port = self.site.ports.https if tls else self.site.ports.http
        answer = request(port, host, target, tls=tls)
        return answer.backend if answer.status == 200 and answer.backend else answer.status

    def state_of(self, *ingresses: dict) -> dynamic.State:
        inputs = inputs_of(self.started, *ingresses)
        options = model.Options(upstreams_without_endpoints=True, dynamic=True)
        return dynamic.state_of(model.build(inputs, options))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in SERVICES}
        yield Site(tmp_path_factory.mktemp("routes"), started, runner)
    finally:
        runner.stop_all()
        backends.stop_all()


@pytest.fixture
def first_state(site):
    """Each test starts from the state of FIRST, pushed whole."""
    site.control.push(site.state_of(*FIRST), full=True)
    return site


def test_every_host_of_the_site_is_a_table_host(site):
    hosts = route_table.table_hosts(site.site.model)
    assert hosts == {
        "shop.example.com",
        "only.example.com",
        "*.apps.example.com",
        "a.apps.example.com",
    }
    assert "server_name shop.example.com" not in site.site.rendered.files["edge.conf"].decode()


@pytest.mark.parametrize(
    "host, target, expected",
    [
        ("shop.example.com", "/", "web"),
        ("shop.example.com", "/anything/else?q=1", "web"),
        ("shop.example.com", "/api", "api"),
        ("shop.example.com", "/api/", "api"),
        ("shop.example.com", "/api/v1", "api"),
        ("shop.example.com", "/apix", "web"),  # Prefix matches whole path elements
        ("shop.example.com", "/api/v1/exact", "other"),  # exact before the longest prefix
        ("shop.example.com", "/api/v1/exact/", "api"),
        ("shop.example.com", "/API", "web"),  # case-sensitive, as nginx's locations
        ("SHOP.example.com", "/api", "api"),  # host names are not
        ("only.example.com", "/only", "web"),
        ("only.example.com", "/only/", 404),  # an unmatched path: 404, as its server's
        ("only.example.com", "/", 404),
        ("b.apps.example.com", "/", "api"),  # the one-label wildcard
        ("a.apps.example.com", "/", "other"),  # the exact host before the wildcard
        ("x.b.apps.example.com", "/", 404),  # one label only: the default server's 404
        ("apps.example.com", "/", 404),
        ("unknown.example.com", "/", 404),
    ],
)
def test_table_hosts_route_as_their_servers_would(first_state, host, target, expected):
    assert first_state.backend_of(host, target) == expected


def test_the_table_serves_plain_http_only(first_state):
    """A host without TLS has no HTTPS server: over HTTPS the default server answers it."""
    assert first_state.backend_of("shop.example.com", tls=True) == 404


def test_the_proxied_request_is_the_clients_with_the_proxy_headers(first_state):
    answer = request(first_state.site.ports.http, "shop.example.com", "/api/x%2Fy?a=b&c")
    assert answer.echo["target"] == "/api/x%2Fy?a=b&c"
    headers = answer.echo["headers"]
    assert headers["host"] == "shop.example.com"
    assert headers["x-forwarded-host"] == "shop.example.com"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-port"] == str(first_state.site.ports.http)
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_the_global_body_size_holds(first_state):
    too_large = b"x" * (1024 * 1024 + 1)
    answer = request(first_state.site.ports.http, "shop.example.com", "/", "POST", body=too_large)
    assert answer.status == 413


def test_the_route_location_is_not_reachable_from_outside(first_state):
    assert first_state.backend_of("unknown.example.com", "/_edgeagent-route") == 404


def test_pushes_add_change_and_remove_hosts_without_a_reload(first_state):
    site = first_state
    pids = site.nginx.pids()
    added = ingress("new", rule("new.example.com", path("/", "other")))
    site.control.push(site.state_of(*FIRST, added), full=False)
    assert site.backend_of("new.example.com") == "other"
    changed = ingress("new", rule("new.example.com", path("/", "api"), path("/w", "web")))
    site.control.push(site.state_of(*FIRST, changed), full=False)
    assert site.backend_of("new.example.com") == "api"
    assert site.backend_of("new.example.com", "/w/x") == "web"
    removal = dynamic.delta(site.state_of(*FIRST, changed), site.state_of(*FIRST))
    site.control.push(removal, full=False)
    assert site.backend_of("new.example.com") == 404
    assert site.backend_of("shop.example.com") == "web"
    assert site.nginx.pids() == pids  # same master, same workers: nothing reloaded


def test_a_full_push_retires_the_hosts_it_does_not_list(first_state):
    """After a grace period: the old workers of a reload may still route a host that
    left the table for a server block of the new generation."""
    site = first_state
    site.control.push(site.state_of(ingress("x", rule("x.example.com", path("/", "web")))), True)
    assert site.backend_of("x.example.com") == "web"
    assert site.backend_of("shop.example.com") == "web"
    eventually(lambda: site.backend_of("shop.example.com") == 404, timeout=60)


def test_a_backend_without_ready_peers_answers_503(first_state):
    site = first_state
    state = site.state_of(*FIRST)
    web = next(name for name in state.backends if "_web_" in name)
    site.control.push(dynamic.State({web: ()}, {}, {}), full=False)
    assert site.backend_of("shop.example.com", "/") == 503
    assert site.backend_of("shop.example.com", "/api") == "api"


HOSTILE_ROUTES = [
    "route shop.example.com prefix /a b web",
    "route shop.example.com prefix /../admin x_default_web_80",
    "route shop.example.com prefix /a/./b x_default_web_80",
    "route shop.example.com prefix //a x_default_web_80",
    "route shop.example.com prefix /%a.* x_default_web_80",
    "route shop.example.com prefix /(.-) x_default_web_80",
    "route shop.example.com prefix /a?b=c x_default_web_80",
    "route shop.example.com prefix relative x_default_web_80",
    "route shop.example.com regex / x_default_web_80",
    "route shop.example.com prefix / !999",
    "route shop.example.com prefix / !abc",
    "route shop.example.com prefix / x$y",
    "route shop.example.com prefix /",
    "route shop.example.com  prefix / x_default_web_80",
    "route %s.example.com prefix / x_default_web_80",
    "route a*.example.com prefix / x_default_web_80",
    "route *example.com prefix / x_default_web_80",
    "route shop.example.com prefix / x_default_web_80\r",
]


@pytest.mark.parametrize("line", HOSTILE_ROUTES)
def test_a_hostile_route_record_is_refused_and_changes_nothing(first_state, line):
    site = first_state
    version = site.control.serving_version() + 1
    head = f"edgeagent-dynamic 1\nversion {version}\nscope delta\n"
    # Two records: the first well-formed, so a push applied in part would show.
    good = "route good.example.com prefix / x_default_web_80\n"
    status, why = site.nginx.post_control(site.control, (head + good + line + "\n").encode())
    assert status == 400, why
    assert "line 5" in why
    assert site.backend_of("good.example.com") == 404
    assert site.backend_of("shop.example.com", "/api") == "api"


def test_a_newline_in_a_path_cannot_start_a_record(first_state):
    """A path is one field of one line: what follows a newline is a record of its own,
    checked as one (here an unknown one)."""
    site = first_state
    version = site.control.serving_version() + 1
    body = (
        f"edgeagent-dynamic 1\nversion {version}\nscope delta\n"
        "route shop.example.com prefix /a\nprefix / x_default_web_80\n"
    )
    status, _ = site.nginx.post_control(site.control, body.encode())
    assert status == 400
    eventually(lambda: site.backend_of("shop.example.com", "/api") == "api")
