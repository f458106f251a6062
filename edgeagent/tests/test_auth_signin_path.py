"""`auth-signin` as a path (`/login`), as real ingress-nginx manifests write it: ingress-nginx
takes any value there and answers a 401 with `return 302 <value>?rd=...`, which nginx makes
absolute on the request's scheme and host, without a port (`port_in_redirect off`). Through
a real nginx to a real auth service, both modes, over HTTP and HTTPS."""

import pytest
from support_http import request as http_request
from support_nginx import echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret
from test_access import ANNOTATION, AuthService, authorized, findings

from edgeagent import cli, model

TLS_HOST = "signin-tls"


def signing_in(host: str, signin: str, auth_port: int, **options) -> dict:
    written = {
        ANNOTATION + "auth-url": f"http://127.0.0.1:{auth_port}/verify",
        ANNOTATION + "auth-signin": signin,
    }
    return ingress(host, rule(host, path("/", "app")), annotations=written, **options)


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    auth = AuthService()
    certificate = cli.self_signed(TLS_HOST, (TLS_HOST,))

    def objects(backends) -> model.Inputs:
        inputs = model.Inputs()
        inputs.services.append(service("app"))
        app = backends["app"]
        inputs.endpoint_slices.append(endpoint_slice("app", [(app.host, True)], app.port))
        inputs.ingresses.extend(
            [
                signing_in("signin-path", "/login", auth.port),
                signing_in("signin-escaped", "/login?rd=$escaped_request_uri", auth.port),
                signing_in("signin-param", "/login?next=/home", auth.port),
                signing_in(
                    TLS_HOST,
                    "/oauth2/start",
                    auth.port,
                    tls=[{"hosts": [TLS_HOST], "secretName": TLS_HOST}],
                ),
            ]
        )
        inputs.secrets.append(tls_secret(TLS_HOST, certificate))
        return inputs

    try:
        with echo_site(
            tmp_path_factory.mktemp("signin"), ["app"], objects, request.param == "dynamic"
        ) as built:
            yield built
    finally:
        auth.stop()


def location(site, host: str, target: str, **options) -> tuple[int, str | None]:
    port = site.ports.https if options.get("tls") else site.ports.http
    answer = http_request(port, host, target, **options)
    return answer.status, answer.headers.get("location")


def test_a_401_redirects_to_the_path_on_the_requests_host(site):
    assert location(site, "signin-path", "/app?x=1") == (
        302,
        "http://signin-path/login?rd=http://signin-path/app?x=1",
    )


def test_the_redirect_names_no_port_but_rd_keeps_the_clients_host(site):
    # ingress-nginx's port_in_redirect off; rd is $scheme://$http_host$request_uri.
    assert location(site, "signin-path:8080", "/app") == (
        302,
        "http://signin-path/login?rd=http://signin-path:8080/app",
    )


def test_escaped_request_uri_and_a_query_of_its_own(site):
    assert location(site, "signin-escaped", "/app?x=1") == (
        302,
        "http://signin-escaped/login?rd=%2Fapp%3Fx%3D1",
    )
    assert location(site, "signin-param", "/a") == (
        302,
        "http://signin-param/login?next=/home&rd=http://signin-param/a",
    )


def test_over_https_the_redirect_stays_on_https(site):
    assert location(site, TLS_HOST, "/app", tls=True) == (
        302,
        f"https://{TLS_HOST}/oauth2/start?rd=https://{TLS_HOST}/app",
    )


def test_what_the_auth_service_allows_is_not_redirected(site):
    allowed = http_request(site.ports.http, "signin-path", "/app", headers=authorized("good"))
    assert (allowed.status, allowed.backend) == (200, "app")
    forbidden = location(site, "signin-path", "/app", headers=authorized("forbidden"))
    assert forbidden == (403, None)


@pytest.mark.parametrize(
    "value", ["/login", "/", "/oauth2/start?rd=$escaped_request_uri", "/s?h=$host&a=$args"]
)
def test_a_path_is_supported(value):
    found = findings({"auth-url": "http://127.0.0.1:9/verify", "auth-signin": value})
    assert found["auth-signin"].status == "supported"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("/login x", "invalid"),
        ("/login;\nreturn 200", "invalid"),
        ("/login#x", "invalid"),
        ("/login?rd=$uri", "unsupported"),
        ("/login?rd=$hostname", "unsupported"),
        ("/" + "a" * 2048, "invalid"),
    ],
)
def test_a_path_outside_the_grammar_refuses_the_ingress(value, code):
    found = findings({"auth-url": "http://127.0.0.1:9/verify", "auth-signin": value})
    assert (found["auth-signin"].status, found["auth-signin"].code) == ("refused", code)
    assert "a path holds letters, digits" in found["auth-signin"].reason
