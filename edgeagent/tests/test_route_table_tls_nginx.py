"""TLS hosts of the route table in a real nginx: served side by side with the same
Ingresses rendered as server blocks (`--route-table false`), every answer is the same
(certificate by SNI, the 308 to https but for an HTTP-01 challenge, HSTS, proxy headers);
pushes add, rotate and remove them without a reload; hostile TLS records are refused whole
by the Lua parser (the agent's second lock is test_route_table_tls.py's).
"""

import signal
from pathlib import Path

import pytest
from agentlab import eventually
from cryptography import x509
from edgeagent.control import Control
from support_http import Backends, common_name, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, dynamic, model, route_table

SERVICES = ("web", "api", "other")
ACME = "/.well-known/acme-challenge/token-1"
PREFIX = "nginx.ingress.kubernetes.io/"
PAIRS = {
    name: cli.self_signed(name, (name,))
    for name in ("secure.example.com", "open.example.com", "*.apps.example.com")
}
TLS_HOSTS = {
    "secure-tls": "secure.example.com",
    "open-tls": "open.example.com",
    "apps-tls": "*.apps.example.com",
    "missing-tls": "nosecret.example.com",
}


def tls_of(*secrets: str) -> list[dict]:
    return [{"hosts": [TLS_HOSTS[name]], "secretName": name} for name in secrets]


FIRST = (
    ingress(
        "shop",
        rule("secure.example.com", path("/", "web"), path("/api", "api")),
        rule("*.apps.example.com", path("/", "api")),
        rule("nosecret.example.com", path("/only", "other", kind="Exact")),
        tls=tls_of("secure-tls", "apps-tls", "missing-tls"),
    ),
    # cert-manager's HTTP-01 solver: a plain Ingress of the challenge's path.
    ingress("solver", rule("secure.example.com", path(ACME, "other", kind="Exact"))),
    ingress(
        "open",
        rule("open.example.com", path("/", "web")),
        tls=tls_of("open-tls"),
        annotations={PREFIX + "ssl-redirect": "false"},
    ),
    ingress("plain", rule("plain.example.com", path("/", "web"))),
)
SECRETS = [
    tls_secret(name, PAIRS[TLS_HOSTS[name]]) for name in ("secure-tls", "open-tls", "apps-tls")
]


def inputs_of(started: dict, ingresses: tuple[dict, ...], secrets: list[dict]) -> model.Inputs:
    return model.Inputs(
        ingresses=list(ingresses),
        services=[service(name) for name in SERVICES],
        endpoint_slices=[
            endpoint_slice(name, [(started[name].host, True)], started[name].port)
            for name in SERVICES
        ],
        secrets=secrets,
    )


class Edge:
    """One nginx serving FIRST, with the route table or without."""

    def __init__(self, directory: Path, started: dict, runner: NginxRunner, table: bool) -> None:
        self.started, self.table = started, table
        inputs = inputs_of(started, FIRST, SECRETS)
        self.site = render_site(directory, inputs, dynamic_mode=True, route_table=table)
        self.nginx = runner.start(self.site)
        self.control = Control(str(directory / "dynamic"), f"127.0.0.1:{self.site.ports.status}")
        self.pushed = self.state_of(FIRST, SECRETS)
        self.control.push(self.pushed, full=True)

    def state_of(self, ingresses: tuple[dict, ...], secrets: list[dict]) -> dynamic.State:
        options = model.Options(upstreams_without_endpoints=True, dynamic=True)
        built = model.build(inputs_of(self.started, ingresses, secrets), options)
        return dynamic.state_of(built, self.table)

    def move_to(self, ingresses: tuple[dict, ...], secrets: list[dict]) -> None:
        """Push what changed, as the agent does when edge.conf does not change."""
        new = self.state_of(ingresses, secrets)
        self.control.push(dynamic.delta(self.pushed, new), full=False)
        self.pushed = new

    def answer(self, host: str, target: str = "/", tls: bool = False) -> dict:
        """What a client sees, ports named rather than numbered."""
        port = self.site.ports.https if tls else self.site.ports.http
        got = request(port, host, target, tls=tls)
        backend = got.backend if got.status == 200 else None
        forwarded_port = got.echo["headers"]["x-forwarded-port"] if backend else None
        names = {str(self.site.ports.http): "http", str(self.site.ports.https): "https"}
        return {
            "status": got.status,
            "backend": backend,
            "target": got.echo["target"] if backend else None,
            "proto": got.echo["headers"]["x-forwarded-proto"] if backend else None,
            "port": names.get(forwarded_port, forwarded_port),
            "location": got.headers.get("location"),
            "hsts": got.all_headers("strict-transport-security"),
            "certificate": common_name(got.certificate) if tls else None,
        }


@pytest.fixture(scope="module")
def edges(tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in SERVICES}
        yield {
            table: Edge(tmp_path_factory.mktemp(f"table-{table}"), started, runner, table)
            for table in (True, False)
        }
    finally:
        runner.stop_all()
        backends.stop_all()


@pytest.fixture
def edge(edges):
    """The edge with the table, each test starting from FIRST."""
    table = edges[True]
    table.move_to(FIRST, SECRETS)
    return table


def test_the_tls_hosts_are_table_hosts(edges):
    assert route_table.table_hosts(edges[True].site.model) == {
        "secure.example.com",
        "open.example.com",
        "*.apps.example.com",
        "nosecret.example.com",
        "plain.example.com",
    }
    blocks = edges[True].site.rendered.blocks
    assert [block for block in blocks if block.startswith("server ")] == ["server _"]


@pytest.mark.parametrize("tls", [True, False], ids=["https", "http"])
@pytest.mark.parametrize(
    "host, target",
    [
        ("secure.example.com", "/"),
        ("secure.example.com", "/api/x?q=1&b=%2F"),
        ("secure.example.com", "/nothing/"),
        ("secure.example.com", ACME),  # served over HTTP, redirected nowhere
        ("secure.example.com", ACME + "/more"),  # not the challenge's path: redirected
        ("open.example.com", "/a?b"),  # ssl-redirect: false
        ("x.apps.example.com", "/"),  # the wildcard's certificate and rules
        ("y.x.apps.example.com", "/"),  # one label only: the default server
        ("nosecret.example.com", "/only"),  # no Secret: the default certificate
        ("nosecret.example.com", "/"),  # no rule: 404, pinned over HTTPS, not redirected
        ("plain.example.com", "/"),  # no TLS: HTTPS is the default server's
        ("unknown.example.com", "/"),
    ],
)
def test_the_table_answers_as_the_rendered_servers(edges, host, target, tls):
    assert edges[True].answer(host, target, tls) == edges[False].answer(host, target, tls)


def test_what_the_rendered_servers_answer(edges):
    """The reference itself, for the record: ingress-nginx's behaviour."""
    edge = edges[False]
    hsts = ["max-age=31536000; includeSubDomains"]
    secure = edge.answer("secure.example.com", "/api/x?q=1", tls=True)
    assert secure["backend"] == "api" and secure["target"] == "/api/x?q=1"
    assert (secure["proto"], secure["port"], secure["hsts"]) == ("https", "https", hsts)
    assert secure["certificate"] == "secure.example.com"
    redirected = edge.answer("secure.example.com", "/a/?q=1")
    assert redirected["status"] == 308 and redirected["hsts"] == []
    assert redirected["location"] == "https://secure.example.com/a/?q=1"
    assert edge.answer("secure.example.com", ACME)["backend"] == "other"
    assert edge.answer("secure.example.com", "/none", tls=True)["hsts"] == hsts  # a 200 from web
    assert edge.answer("unknown.example.com", tls=True)["certificate"] == "edgeagent-default"
    assert edge.answer("unknown.example.com", tls=True)["status"] == 404
    assert edge.answer("nosecret.example.com", tls=True)["certificate"] == "edgeagent-default"
    assert edge.answer("nosecret.example.com", tls=True)["hsts"] == hsts  # its 404 too
    assert edge.answer("nosecret.example.com")["status"] == 404


def test_a_tls_ingress_is_added_rotated_and_removed_without_a_reload(edge):
    pids = edge.nginx.pids()
    host = "new.example.com"
    TLS_HOSTS["new-tls"] = host
    added = ingress("new", rule(host, path("/", "other")), tls=tls_of("new-tls"))
    first, second = cli.self_signed(host, (host,)), cli.self_signed(host, (host,))
    edge.move_to((*FIRST, added), [*SECRETS, tls_secret("new-tls", first)])
    answer = request(edge.site.ports.https, host, "/", tls=True)
    assert answer.backend == "other" and answer.certificate == x509.load_pem_x509_certificate(
        first.certificate_pem
    )
    assert edge.answer(host)["status"] == 308
    edge.move_to((*FIRST, added), [*SECRETS, tls_secret("new-tls", second)])
    answer = request(edge.site.ports.https, host, "/", tls=True)
    assert answer.certificate == x509.load_pem_x509_certificate(second.certificate_pem)
    edge.move_to((*FIRST, added), SECRETS)  # the Secret is gone: the default certificate
    assert edge.answer(host, tls=True)["certificate"] == "edgeagent-default"
    assert edge.answer(host, tls=True)["backend"] == "other"
    edge.move_to(FIRST, SECRETS)
    assert edge.answer(host, tls=True)["status"] == 404
    assert edge.answer(host)["status"] == 404
    assert edge.answer("secure.example.com", tls=True)["backend"] == "web"
    assert edge.nginx.pids() == pids  # same master, same workers: nothing reloaded


def test_a_tls_host_that_drops_its_tls_section_is_served_over_plain_http(edge):
    plain_again = (
        ingress("shop", rule("secure.example.com", path("/", "web"), path("/api", "api"))),
        *FIRST[1:],
    )
    edge.move_to(plain_again, SECRETS)
    assert edge.answer("secure.example.com")["backend"] == "web"
    over_tls = edge.answer("secure.example.com", tls=True)
    assert (over_tls["status"], over_tls["certificate"]) == (404, "edgeagent-default")
    assert over_tls["hsts"] == ["max-age=0"]


HOSTILE_RECORDS = [
    "route a.example.com prefix / +x_default_web_80 prefix /b x_default_web_80",
    "route a.example.com prefix / x_default_web_80 prefix /b >x_default_web_80",
    "route a.example.com prefix / ++x_default_web_80",
    "route a.example.com prefix / +>x_default_web_80",
    "route a.example.com prefix / >!999",
    "route a.example.com prefix / +",
    "route a.example.com prefix / <x_default_web_80",
    "host a.example.com x_y extra",
    "host a.example.com/x",
]


@pytest.mark.parametrize("line", HOSTILE_RECORDS)
def test_a_hostile_tls_record_is_refused_and_changes_nothing(edge, line):
    version = edge.control.serving_version() + 1
    head = f"edgeagent-dynamic 1\nversion {version}\nscope delta\n"
    good = "route good.example.com prefix / +x_default_web_80\n"
    status, why = edge.nginx.post_control(edge.control, (head + good + line + "\n").encode())
    assert status == 400, why
    assert "line 5" in why
    assert edge.answer("good.example.com", tls=True)["status"] == 404
    assert edge.answer("secure.example.com", tls=True)["backend"] == "web"


def test_a_full_push_cannot_take_a_certificate_away(edge):
    """`host NAME` without a key is a delta's: a full push lists what stays."""
    version = edge.control.serving_version() + 1
    status, why = edge.nginx.post_control(
        edge.control,
        f"edgeagent-dynamic 1\nversion {version}\nscope full\nhost a.example.com\n".encode(),
    )
    assert status == 400, why
    eventually(lambda: edge.answer("secure.example.com", tls=True)["backend"] == "web")


def test_a_fresh_nginx_and_a_reload_serve_the_certificates_before_any_push(edges, tmp_path):
    """No static ssl_certificate line names a table host's pair: state.txt names it
    (`host` records) and nginx reads it from the agent's file at start, and a reload that
    loads a newer state.txt keeps the pushed pairs rather than wiping them."""
    runner = NginxRunner()
    try:
        inputs = inputs_of(edges[True].started, FIRST, SECRETS)
        site = render_site(tmp_path, inputs, dynamic_mode=True)  # writes state.txt, no push
        nginx = runner.start(site)
        control = Control(str(tmp_path / "dynamic"), f"127.0.0.1:{site.ports.status}")
        served = request(site.ports.https, "secure.example.com", "/", tls=True)
        assert common_name(served.certificate) == "secure.example.com"
        assert served.backend == "web"
        control.push(dynamic.state_of(site.model), full=True)
        control.write_state(dynamic.state_of(site.model))  # newer than the push
        before = nginx.pids()
        nginx.process.send_signal(signal.SIGHUP)
        # The master stays; every worker of before the reload has gone.
        eventually(lambda: nginx.pids() & before == {nginx.process.pid})
        served = request(site.ports.https, "x.apps.example.com", "/", tls=True)
        assert common_name(served.certificate) == "*.apps.example.com"
    finally:
        runner.stop_all()
