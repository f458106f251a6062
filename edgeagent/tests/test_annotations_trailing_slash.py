"""preserve-trailing-slash through a real nginx, in both modes: the HTTPS redirect of
ssl-redirect and force-ssl-redirect with and without the URI's trailing slash, as
ingress-nginx's lua_ingress.lua writes its Location (test/e2e/annotations/
preservetrailingslash.go)."""

import pytest
from support_http import request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import annotations, cli, model

PREFIX = "nginx.ingress.kubernetes.io/"
# host: preserve-trailing-slash (None: absent)
HOSTS = {"strip": "false", "keep": "true", "absent": None}


def site_objects(backend) -> model.Inputs:
    objects = model.Inputs()
    objects.services.append(service("app"))
    objects.endpoint_slices.append(endpoint_slice("app", [(backend.host, True)], backend.port))
    for name, preserve in HOSTS.items():
        given = {PREFIX + "force-ssl-redirect": "true"}
        if preserve is not None:
            given[PREFIX + "preserve-trailing-slash"] = preserve
        objects.ingresses.append(
            ingress(name, rule(f"{name}.example.com", path("/", "app")), annotations=given)
        )
    # ssl-redirect of a TLS host, on a regex location whose captures the backend gets.
    objects.ingresses.append(
        ingress(
            "tls",
            rule("tls.example.com", path("/api(/|$)(.*)", "app", kind="ImplementationSpecific")),
            tls=[{"hosts": ["tls.example.com"], "secretName": "tls"}],
            annotations={
                PREFIX + "preserve-trailing-slash": "false",
                PREFIX + "use-regex": "true",
                PREFIX + "x-forwarded-prefix": "/$2",
            },
        )
    )
    objects.secrets.append(tls_secret("tls", cli.self_signed("tls", ("tls.example.com",))))
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    with echo_site(
        tmp_path_factory.mktemp("slash"),
        ["app"],
        lambda started: site_objects(started["app"]),
        request.param == "dynamic",
    ) as built:
        yield built


def location(site, host: str, target: str) -> str:
    answer = request(site.ports.http, host, target)
    assert answer.status == 308
    return answer.headers["location"]


def test_every_ingress_is_served(site):
    assert not site.model.problems


@pytest.mark.parametrize(
    ("target", "stripped"),
    [
        ("/", ""),
        ("/a/", "/a"),
        ("/a//", "/a/"),
        ("/a/?q=/", "/a/?q="),
        ("/a", "/a"),
        ("/a/?q", "/a/?q"),
    ],
)
def test_false_drops_one_trailing_slash(site, target, stripped):
    assert location(site, "strip.example.com", target) == "https://strip.example.com" + stripped
    for host in ("keep.example.com", "absent.example.com"):
        assert location(site, host, target) == f"https://{host}{target}"


def test_ssl_redirect_of_a_tls_host_and_https_untouched(site):
    answer = request(site.ports.https, "tls.example.com", "/api/x/y/", tls=True)
    assert (answer.status, answer.echo["target"]) == (200, "/api/x/y/")
    # Nothing of the redirect ran on HTTPS: the location's captures reach the backend.
    assert answer.echo["headers"]["x-forwarded-prefix"] == "/x/y/"
    assert location(site, "tls.example.com", "/api/x/") == "https://tls.example.com/api/x"


def test_only_the_expected_directives_are_rendered(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


@pytest.mark.parametrize("value", ["yes", "false; return 200", ""])
def test_a_value_that_is_no_boolean_refuses_the_ingress(value):
    parsed = annotations.parse({PREFIX + "preserve-trailing-slash": value}, annotations.Config())
    (finding,) = parsed.findings
    assert (finding.status, finding.code) == ("refused", "invalid")
