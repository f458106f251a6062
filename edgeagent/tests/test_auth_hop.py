"""nginx variables in auth-url and auth-signin, the oauth2-proxy pattern as ingress-nginx's
users write it (`auth-url: https://$host/oauth2/auth`, `auth-signin:
https://$host/oauth2/start?rd=$escaped_request_uri`, oauth2-proxy served by a second
Ingress of the same host at /oauth2), through a real nginx to a real auth service, in both
modes, with and without the PROXY protocol on the public listeners: the subrequest hops to
what this edge serves for the request's host (annotations/extauth.py), a host the edge does
not serve for it answers 500, a hop never loops, and `rd` holds the request URI escaped."""

import dataclasses
import http.client
import socket
import ssl
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from agentlab import BACKEND_ADDRESSES, Edge, eventually
from agentlab import rule as lab_rule
from edgeagent.annotations import extauth
from edgeagent.grammar import Invalid
from support_http import Backends, Response, free_ports
from support_nginx import NginxRunner, assert_only_rendered_directives, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret
from test_access import AuthService
from test_hostile import scanned_by_gixy
from test_render_golden import DYNAMIC_LAYOUT, LAYOUT, STANDALONE, assert_matches_golden

from edgeagent import cli, manifests, model, render

PREFIX = "nginx.ingress.kubernetes.io/"
BALANCER = "127.0.0.1"
OAUTH2 = {
    PREFIX + "auth-url": "https://$host/oauth2/auth",
    PREFIX + "auth-signin": "https://$host/oauth2/start?rd=$escaped_request_uri",
    PREFIX + "auth-response-headers": "X-User",
}
HOSTS = ("app.example.com", "plain.example.com", "scheme.example.com", "loop.example.com")
GOLDEN = Path(__file__).resolve().parent / "golden" / "auth-hop"


def hop_objects(backends, auth_port: int, certificate: model.CertPair) -> model.Inputs:
    objects = model.Inputs()
    objects.services.extend([service("app"), service("oauth2-proxy", {"http": 4180})])
    app = backends["app"]
    objects.endpoint_slices.extend(
        [
            endpoint_slice("app", [(app.host, True)], app.port),
            endpoint_slice("oauth2-proxy", [("127.0.0.1", True)], auth_port),
        ]
    )
    tls = [{"hosts": list(HOSTS), "secretName": "hosts"}]
    guarded = {
        "app.example.com": OAUTH2,
        "plain.example.com": {PREFIX + "auth-url": "http://$host/oauth2/auth"},
        "scheme.example.com": {PREFIX + "auth-url": "$scheme://$http_host/oauth2/auth"},
        # Its auth URL is one of its own protected paths: the hop would hop again.
        "loop.example.com": {PREFIX + "auth-url": "https://$host/"},
    }
    for host, annotations in guarded.items():
        name = host.split(".")[0]
        objects.ingresses.append(
            ingress(
                name,
                rule(host, path("/", "app")),
                annotations=annotations,
                tls=None if name == "plain" else tls,
            )
        )
        if name != "loop":  # oauth2-proxy on the same host, without auth-url
            objects.ingresses.append(
                ingress(
                    f"{name}-oauth2",
                    rule(host, path("/oauth2", "oauth2-proxy", 4180)),
                    tls=None if name == "plain" else tls,
                )
            )
    # An Ingress without host: its request's host is the client's choice.
    objects.ingresses.append(ingress("anyhost", rule(None, path("/", "app")), annotations=OAUTH2))
    objects.secrets.append(tls_secret("hosts", certificate))
    return objects


@pytest.fixture(
    scope="module",
    params=[("static", False), ("dynamic", False), ("static", True), ("dynamic", True)],
    ids=["static", "dynamic", "static-proxy-protocol", "dynamic-proxy-protocol"],
)
def site(request, tmp_path_factory):
    mode, proxy_protocol = request.param
    auth, backends, runner = AuthService(), Backends(), NginxRunner()
    hop_http, hop_https = free_ports(2)
    try:
        started = {"app": backends.start("app")}
        certificate = cli.self_signed("hosts", HOSTS)
        built = render_site(
            tmp_path_factory.mktemp("auth-hop"),
            hop_objects(started, auth.port, certificate),
            dynamic_mode=mode == "dynamic",
            auth_hop_http_listen=f"127.0.0.1:{hop_http}",
            auth_hop_https_listen=f"127.0.0.1:{hop_https}",
            **(
                {"proxy_protocol": True, "trusted_proxies": (f"{BALANCER}/32",)}
                if proxy_protocol
                else {}
            ),
        )
        runner.start(built)
        built.auth, built.proxy_protocol = auth, proxy_protocol
        built.hop_ports = (hop_http, hop_https)
        yield built
    finally:
        runner.stop_all()
        backends.stop_all()
        auth.stop()


def ask(site, host: str, target: str = "/", token: str | None = None, tls: bool = True) -> Response:
    """One request as a client of the edge (behind a balancer that sends a PROXY protocol
    header when the site's listeners expect one), on a raw socket so the Host header is
    sent exactly as given."""
    port = site.ports.https if tls else site.ports.http
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        if site.proxy_protocol:
            sock.sendall(f"PROXY TCP4 192.0.2.7 127.0.0.1 40000 {port}\r\n".encode())
        if tls:
            context = ssl.create_default_context()
            context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
            sock = context.wrap_socket(sock, server_hostname=host.partition(":")[0] or None)
        headers = f"Authorization: Bearer {token}\r\n" if token else ""
        sock.sendall(
            f"GET {target} HTTP/1.1\r\nHost: {host}\r\n{headers}Connection: close\r\n\r\n".encode()
        )
        answer = http.client.HTTPResponse(sock)
        answer.begin()
        return Response(answer.status, dict(answer.getheaders()), answer.read())
    finally:
        sock.close()


def backend_of(answer: Response) -> str | None:
    return answer.echo["backend"] if answer.status == 200 and answer.body[:1] == b"{" else None


def test_the_oauth2_proxy_pattern_lets_through_only_what_it_allows(site):
    answer = ask(site, "app.example.com", "/dash?tab=1", token="good")
    assert (answer.status, backend_of(answer)) == (200, "app")
    assert answer.echo["headers"]["x-user"] == "alice"
    assert ask(site, "app.example.com", "/", token="forbidden").status == 403
    assert ask(site, "app.example.com", "/", token="broken").status == 500
    # The auth service got the subrequest through this edge's server of the host.
    (seen,) = [s for s in site.auth.seen if s.get("x-original-url", "").endswith("/dash?tab=1")]
    assert (seen["target"], seen["host"]) == ("/oauth2/auth", "app.example.com")
    assert seen["x-original-url"] == "https://app.example.com/dash?tab=1"


def test_a_401_redirects_to_the_sign_in_with_the_request_uri_escaped(site):
    target = "/a b/?x=1&y=%2F+z;w"
    answer = ask(site, "app.example.com", target.replace(" ", "%20"))
    assert answer.status == 302
    location = answer.headers["Location"]
    assert location.startswith("https://app.example.com/oauth2/start?rd=")
    # One query parameter, holding the request URI whole.
    assert parse_qs(urlsplit(location).query) == {"rd": [target.replace(" ", "%20")]}
    assert "&" not in urlsplit(location).query


def test_plain_http_and_the_request_s_scheme_hop_to_their_listener(site):
    assert ask(site, "plain.example.com", "/", token="good", tls=False).status == 200
    assert ask(site, "plain.example.com", "/", tls=False).status == 401
    assert ask(site, "scheme.example.com", "/", token="good").status == 200
    assert ask(site, "scheme.example.com", "/").status == 401


def test_a_hop_that_would_hop_again_answers_500(site):
    assert ask(site, "loop.example.com", "/", token="good").status == 500


@pytest.mark.parametrize(
    "host",
    [
        "unknown.example.com",
        "app.example.com.evil.example",
        "app.example.com@127.0.0.1",
        "evil.example@app.example.com",
        "127.0.0.1",
    ],
)
def test_a_host_the_edge_does_not_serve_fails_closed(site, host):
    """The Ingress without host asks with the client's host: the hop finds no server of
    the edge for it, and answers 500, never the backend."""
    answer = ask(site, host, "/", token="good", tls=False)
    assert answer.status in (400, 500) and backend_of(answer) is None, answer.status
    answer = ask(site, host, "/", token="good")
    assert answer.status in (400, 421, 500) and backend_of(answer) is None, answer.status


def test_paths_without_host_answer_500_and_are_reported(site):
    """Even for a host the edge serves with an auth of its own, over a scheme that host is
    not served on (the request lands on the default server): asked for no host."""
    answer = ask(site, "plain.example.com", "/", token="good")
    assert (answer.status, backend_of(answer)) == (500, None)
    (problem,) = [p for p in site.model.problems if p.name == "anyhost"]
    assert problem.code == "warning" and "answer 500" in problem.reason


def test_the_hop_listeners_take_no_proxy_protocol_and_serve_no_other_host(site):
    hop_http, hop_https = site.hop_ports
    for host in ("unknown.example.com", "anyhost"):
        connection = http.client.HTTPConnection("127.0.0.1", hop_http, timeout=10)
        connection.request("GET", "/", headers={"Host": host})
        assert connection.getresponse().status == 500
        connection.close()
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with (
        socket.create_connection(("127.0.0.1", hop_https), timeout=10) as sock,
        pytest.raises(ssl.SSLError),
    ):
        context.wrap_socket(sock, server_hostname="unknown.example.com")


def test_only_the_expected_directives_are_rendered(site):
    assert_only_rendered_directives(site.directory / "edge.conf")


@pytest.mark.parametrize(
    "value",
    [
        "https://$host:443/oauth2/auth",
        "https://$host@evil.example/oauth2/auth",
        "https://evil.example@$host/",
        "https://$hostname/oauth2/auth",
        "https://$host.evil.example/",
        "https://$remote_addr/",
        "https://${host}/",
        "https://$host/oauth2/auth?rd=$request_uri",
        "https://$host/\r\nproxy_pass http://evil;",
    ],
)
def test_auth_url_refuses_other_variables(value):
    with pytest.raises(Invalid, match="only \\$host or \\$http_host"):
        extauth.auth_url(value, "auth-url")


@pytest.mark.parametrize(
    "value",
    [
        "https://$host/start?rd=$uri",
        "https://$host/start?rd=$arg_next",
        "https://$host/start?rd=$request_urix",
        "https://$host:8443/start",
        "https://$host@evil.example/start",
        "https://evil.example/start?rd=${request_uri}",
        "https://evil.example/start?rd=$http_x_next",
        "https://evil.example/start?rd=$request_uri\r\nSet-Cookie: a=b",
        "https://evil.example/start?rd=$request_uri; return 200",
    ],
)
def test_auth_signin_refuses_variables_not_on_the_list(value):
    with pytest.raises(Invalid, match="only \\$scheme, \\$host"):
        extauth.signin_url(value, "auth-signin")


@pytest.mark.parametrize(
    "value",
    [
        "https://$host/oauth2/start?rd=$escaped_request_uri",
        "https://$host/oauth2/start?rd=$scheme://$host$request_uri",
        "$scheme://$http_host/oauth2/sign_in",
        "https://login.example.com/start?rd=https://$server_name$request_uri",
        "https://login.example.com:8443/start?next=$scheme://$host/$is_args$args",
    ],
)
def test_auth_signin_takes_the_listed_variables(value):
    assert extauth.signin_url(value, "auth-signin") == value


@pytest.mark.parametrize(
    ("value", "read_as"),
    [
        ("https://$best_http_host/oauth2/auth", "https://$http_host/oauth2/auth"),
        ("$scheme://$best_http_host/auth?x=1", "$scheme://$http_host/auth?x=1"),
    ],
)
def test_auth_url_reads_best_http_host_as_the_host_header(value, read_as):
    """ingress-nginx's $best_http_host is the Host header, X-Forwarded-Host only with its
    use-forwarded-headers, which the edge never trusts; nginx has no such variable."""
    assert extauth.auth_url(value, "auth-url") == read_as


@pytest.mark.parametrize(
    ("value", "read_as"),
    [
        (
            "https://$best_http_host/oauth2/start?rd=$scheme://$best_http_host$request_uri",
            "https://$http_host/oauth2/start?rd=$scheme://$http_host$request_uri",
        ),
        ("/login?next=$best_http_host", "/login?next=$http_host"),
    ],
)
def test_auth_signin_reads_best_http_host_as_the_host_header(value, read_as):
    assert extauth.signin_url(value, "auth-signin") == read_as


@pytest.mark.parametrize(
    "value", ["https://$best_http_host:443/auth", "https://$best_http_hostx/auth"]
)
def test_auth_url_takes_best_http_host_only_as_the_whole_host(value):
    with pytest.raises(Invalid, match="only \\$host or \\$http_host"):
        extauth.auth_url(value, "auth-url")


def test_a_cluster_service_in_a_sign_in_url_with_variables_is_refused():
    with pytest.raises(Invalid, match="cluster Service"):
        extauth.signin_url("https://oauth2.auth.svc/start?rd=$request_uri", "auth-signin")


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_render_matches_golden(mode):
    """The hop's listeners, upstreams and default server; set_escape_uri where a sign-in
    URL asks for `$escaped_request_uri`, and the standalone config that loads set-misc."""
    inputs, load_problems = manifests.load([GOLDEN / "input"])
    options = model.Options(
        dynamic=mode == "dynamic", upstreams_without_endpoints=mode == "dynamic"
    )
    built = model.build(inputs, options)
    layout = DYNAMIC_LAYOUT if mode == "dynamic" else LAYOUT
    rendered = render.render(built, layout)
    problems = [cli.problem_line(p) for p in [*load_problems, *built.problems]]
    standalone = dataclasses.replace(layout, output_dir=STANDALONE.output_dir)
    files = {
        **rendered.files,
        "problems.txt": "".join(f"{line}\n" for line in problems).encode(),
        "nginx.conf": render.render_main(standalone, escapes_uri=extauth.escapes_uri(built)),
    }
    assert_matches_golden(files, GOLDEN / ("expected-dynamic" if mode == "dynamic" else "expected"))


@pytest.mark.parametrize(
    "changes",
    [
        {"auth_hop_http_listen": "0.0.0.0:10270"},
        {"auth_hop_https_listen": "192.0.2.1:10271"},
        {"auth_hop_https_listen": "127.0.0.1:10270"},
        {"auth_hop_http_listen": "127.0.0.1:80"},
        {"auth_hop_https_listen": "127.0.0.1:10271; listen 80"},
    ],
)
def test_the_hop_listeners_are_loopback_addresses_of_their_own(changes):
    """Only loopback: the hop listeners take no PROXY protocol header; ports of their own:
    a subrequest tells it hopped by its port."""
    with pytest.raises(Invalid):
        render.check_layout(dataclasses.replace(LAYOUT, **changes))


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing(tmp_path, mode):
    """gixy-ng's SSRF and host spoofing checks on the hop: its proxy_pass names the edge's
    own upstreams, never a host from the request."""
    site, scan, findings = scanned_by_gixy(tmp_path, GOLDEN / "input", mode)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert findings == []
    assert any(extauth.hops_to(server) for server in site.model.servers)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_the_agent_serves_the_pattern_on_its_hop_listeners(tmp_path, mode):
    """`edgeagent run` with its hop listeners elsewhere: while no Ingress serves /oauth2 on
    the host, the hop lands on the protected path itself (500, no loop); once oauth2-proxy's
    Ingress is there (an echo backend, which lets everything through), the request passes."""
    web1, web2 = BACKEND_ADDRESSES[:2]
    hop_http, hop_https = free_ports(2)
    listens = {
        "auth-hop-http-listen": f"127.0.0.1:{hop_http}",
        "auth-hop-https-listen": f"127.0.0.1:{hop_https}",
    }
    with Edge(tmp_path, upstreams=mode, **listens) as edge:
        edge.agent.wait_ready()
        edge.apply_service("app", addresses=[web1])
        edge.apply_service("oauth2-proxy", addresses=[web2])
        edge.apply_ingress(
            "app",
            [lab_rule("app.example.com", "app")],
            annotations={
                PREFIX + "auth-url": "http://$host/oauth2/auth",
                PREFIX + "auth-signin": "http://$host/oauth2/start?rd=$request_uri",
            },
        )
        eventually(lambda: edge.backend_of("app.example.com") == 500, timeout=30)
        edge.apply_ingress("oauth2", [lab_rule("app.example.com", "oauth2-proxy", "/oauth2")])
        eventually(lambda: edge.backend_of("app.example.com") == "web1", timeout=30)
        assert edge.backend_of("app.example.com", "/oauth2/start") == "web2"
        served = (edge.nginx.agent_dir / "current" / "edge.conf").read_text()
        assert f"listen 127.0.0.1:{hop_http};" in served
