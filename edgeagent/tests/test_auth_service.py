"""auth-url naming a cluster Service (`http://NAME.NS.svc[.cluster.local][:PORT]/...`, the
oauth2-proxy pattern), through a real nginx to a real auth service, in both modes: the
auth location proxies to the Service's ready endpoints on the URL's port, with the URL's
host, path and query; while the Service is missing, has no ready endpoint or no such port,
the Ingress's paths answer 500, as ingress-nginx's do when their auth service is
unreachable; and the agent follows the Service's endpoints (a reload in the static mode,
a push without one in the dynamic mode)."""

import re

import pytest
from agentlab import BACKEND_ADDRESSES, Edge, eventually
from agentlab import ingress as lab_ingress
from agentlab import rule as lab_rule
from edgeagent.annotations import extauth
from support_http import request
from support_nginx import assert_only_rendered_directives, echo_site, status_generation
from support_objects import endpoint_slice, ingress, path, rule, service
from test_access import AuthService, authorized

from edgeagent import annotations, controller, model

PREFIX = "nginx.ingress.kubernetes.io/"
AUTH_URL = "http://oauth2-proxy.auth.svc.cluster.local:4180/oauth2/auth?via=service"
# The Ingresses whose auth service is unusable, with what the problem says of it.
UNREACHABLE = {
    "no-port": ("http://oauth2-proxy.auth.svc/verify", "has no port 80"),
    "missing": ("http://gone.auth.svc:4180/verify", "auth/gone"),
    "idle": ("http://idle.auth.svc:4180/verify", "no ready endpoint"),
}


def site_objects(backends, auth_port: int) -> model.Inputs:
    app = backends["app"]
    objects = model.Inputs()
    objects.services.extend(
        [
            service("app"),
            service("oauth2-proxy", {"http": 4180}, namespace="auth"),
            service("idle", {"http": 4180}, namespace="auth"),
        ]
    )
    objects.endpoint_slices.extend(
        [
            endpoint_slice("app", [(app.host, True)], app.port),
            endpoint_slice("oauth2-proxy", [("127.0.0.1", True)], auth_port, namespace="auth"),
            endpoint_slice("idle", [("127.0.0.1", False)], auth_port, namespace="auth"),
        ]
    )
    guarded = {PREFIX + "auth-url": AUTH_URL, PREFIX + "auth-response-headers": "X-User"}
    objects.ingresses.append(
        ingress("guarded", rule("guarded.example.com", path("/", "app")), annotations=guarded)
    )
    for name, (url, _) in UNREACHABLE.items():
        objects.ingresses.append(
            ingress(
                name,
                rule(f"{name}.example.com", path("/", "app")),
                annotations={PREFIX + "auth-url": url},
            )
        )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    auth = AuthService()
    try:
        with echo_site(
            tmp_path_factory.mktemp("auth-service"),
            ["app"],
            lambda started: site_objects(started, auth.port),
            request.param == "dynamic",
        ) as built:
            built.auth = auth
            built.dynamic = request.param == "dynamic"
            yield built
    finally:
        auth.stop()


def test_a_cluster_service_lets_through_only_what_it_allows(site):
    """Repeated: the auth subrequest shares the variables of its request, and neither may
    take the other's backend."""
    refused = request(site.ports.http, "guarded.example.com", "/a")
    assert (refused.status, refused.backend) == (401, None)
    for n in range(10):
        answer = request(
            site.ports.http, "guarded.example.com", f"/a?n={n}", headers=authorized("good")
        )
        assert (answer.status, answer.backend) == (200, "app")
        assert answer.echo["target"] == f"/a?n={n}"
        assert answer.echo["headers"]["x-user"] == "alice"
    forbidden = request(
        site.ports.http, "guarded.example.com", "/", headers=authorized("forbidden")
    )
    assert (forbidden.status, forbidden.backend) == (403, None)


def test_the_service_gets_the_url_s_host_path_and_query(site):
    request(site.ports.http, "guarded.example.com", "/b?c=1", headers=authorized("good"))
    (seen,) = [s for s in site.auth.seen if s.get("x-original-url", "").endswith("/b?c=1")]
    assert seen["target"] == "/oauth2/auth?via=service"
    # As ingress-nginx sends it: the URL's host, without its port.
    assert seen["host"] == "oauth2-proxy.auth.svc.cluster.local"
    assert seen["x-original-url"] == "http://guarded.example.com/b?c=1"


@pytest.mark.parametrize("name", sorted(UNREACHABLE))
def test_an_unusable_service_answers_500_and_is_reported(site, name):
    asked = len(site.auth.seen)
    answer = request(site.ports.http, f"{name}.example.com", "/", headers=authorized("good"))
    assert (answer.status, answer.backend) == (500, None)
    assert len(site.auth.seen) == asked
    (problem,) = [p for p in site.model.problems if p.name == name]
    assert problem.code == "missing-service"
    assert PREFIX + "auth-url" in problem.reason and UNREACHABLE[name][1] in problem.reason
    assert "answer 500" in problem.reason


def test_the_auth_location_proxies_to_the_service_s_upstream(site):
    """The dynamic mode names the backend in an upstream of the auth location's own, and
    never sets $edgeagent_backend there (the request's variable); the static mode proxies
    to the upstream of the endpoints."""
    text = "\n".join(
        file.read_text() for file in sorted(site.directory.rglob("*.conf")) if file.is_file()
    )
    blocks = re.findall(r"location = /_edgeagent-auth-[0-9a-f]+ \{(.*?)\n    \}", text, re.S)
    # In the dynamic mode "idle"'s too: its upstream waits for endpoints to be pushed.
    (block,) = [block for block in blocks if "/oauth2/auth" in block]
    assert "edgeagent_backend" not in block
    assert "proxy_ssl_name oauth2-proxy.auth.svc.cluster.local;" in block
    (target,) = re.findall(r"proxy_pass http://([a-z0-9_.-]+)/oauth2/auth\?via=service;", block)
    if site.dynamic:
        assert re.fullmatch(r"edgeagent_auth_[0-9a-f]{12}", target)
        assert re.search(
            rf"upstream {target} \{{.*?balance\(\"[0-9a-f]{{6}}_auth_oauth2-proxy_4180\"\)",
            text,
            re.S,
        )
    else:
        assert re.fullmatch(r"[0-9a-f]{6}_auth_oauth2-proxy_4180", target)


def test_only_the_expected_directives_are_rendered(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


def test_the_service_is_parsed_and_referenced():
    parsed = annotations.parse({PREFIX + "auth-url": AUTH_URL}, annotations.Config())
    auth = parsed.settings["external_auth"]
    assert auth.service == ("auth", "oauth2-proxy", 4180)
    assert (auth.scheme, auth.host, auth.uri) == (
        "http",
        "oauth2-proxy.auth.svc.cluster.local",
        "/oauth2/auth?via=service",
    )
    secure = extauth.service_of("https://oauth2-proxy.sso.svc/")
    assert secure == ("sso", "oauth2-proxy", 443)
    named = controller.references(
        [
            ingress(
                "guarded",
                rule("a.example.com", path("/", "app")),
                annotations={PREFIX + "auth-url": AUTH_URL},
            )
        ],
        PREFIX.rstrip("/"),
    )
    assert named.services == {("default", "app"), ("auth", "oauth2-proxy")}


# The agent: the auth Service's EndpointSlices are watched as a rule's Service's.


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_the_agent_follows_the_auth_service_s_endpoints(tmp_path, mode):
    web1, web2, web3 = BACKEND_ADDRESSES[:3]
    # Loopback, where nothing listens on the backends' port: the auth service is down.
    down = "127.0.0.6"
    with Edge(tmp_path, upstreams=mode) as edge:
        edge.agent.wait_ready()
        edge.apply_service("app", addresses=[web1])
        edge.apply_service("oauth2-proxy", namespace="auth", addresses=[])
        url = "http://oauth2-proxy.auth.svc/oauth2/auth"
        body = lab_ingress(
            "guarded",
            [lab_rule("guarded.example.com", "app")],
            annotations={PREFIX + "auth-url": url},
        )
        edge.networking.create_namespaced_ingress("default", body)
        # No ready endpoint: never served without authentication.
        eventually(lambda: edge.backend_of("guarded.example.com") == 500, timeout=30)
        # The echo backends answer 200: they let everything through.
        edge.apply_service("oauth2-proxy", namespace="auth", addresses=[web2])
        eventually(lambda: edge.backend_of("guarded.example.com") == "web1", timeout=30)
        edge.settled()
        generation = status_generation(edge.nginx.status_port)

        edge.apply_service("oauth2-proxy", namespace="auth", addresses=[down])
        eventually(lambda: edge.backend_of("guarded.example.com") == 500, timeout=30)
        edge.apply_service("oauth2-proxy", namespace="auth", addresses=[web3])
        eventually(lambda: edge.backend_of("guarded.example.com") == "web1", timeout=30)
        if mode == "dynamic":  # endpoints only: Lua switched, nothing reloaded
            assert status_generation(edge.nginx.status_port) == generation
