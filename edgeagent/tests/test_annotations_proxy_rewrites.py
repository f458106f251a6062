"""proxy-redirect-from/-to, proxy-cookie-domain and proxy-cookie-path through a real nginx
to real backends, in both modes, as ingress-nginx's nginx.tmpl writes them and its e2e
tests expect (test/e2e/annotations/proxy.go); and their grammar against hostile input."""

import pytest
from edgeagent.annotations import proxy_rewrites
from support_http import request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import annotations, model

PREFIX = "nginx.ingress.kubernetes.io/"
CONFIG = annotations.Config()
# name: (host, annotations)
SITES = {
    "rewritten": {
        "proxy-redirect-from": "http://internal.example:8080/",
        "proxy-redirect-to": "https://public.example/app/",
        "proxy-cookie-domain": "internal.example public.example",
        "proxy-cookie-path": "/old/ /new/",
    },
    "off": {"proxy-redirect-from": "off", "proxy-cookie-domain": "off"},
    "default": {"proxy-redirect-from": "default", "proxy-redirect-to": "/ignored"},
    "to-only": {"proxy-redirect-to": "https://public.example/"},
    "plain": {},
    # gRPC: grpc_pass, beside which the proxy module's rewrites mean nothing.
    "grpc": {"proxy-redirect-from": "default", "backend-protocol": "GRPC"},
}
# Main Ingresses with a canary that takes every request: their locations pass to a
# variable in the static mode, beside which nginx refuses "proxy_redirect default".
CANARIED = {
    "canaried": SITES["rewritten"],
    "canaried-default": {"proxy-redirect-from": "default"},
}
BACKENDS = (*SITES, *CANARIED, *(f"{name}-canary" for name in CANARIED))
BACKEND_LOCATION = "http://internal.example:8080/a/b?c=d"
BACKEND_COOKIE = "session=1; Domain=internal.example; Path=/old/x"


def site_objects(backends: dict) -> model.Inputs:
    objects = model.Inputs()
    for name in BACKENDS:
        objects.services.append(service(name))
        objects.endpoint_slices.append(
            endpoint_slice(name, [(backends[name].host, True)], backends[name].port)
        )
    for name in CANARIED:
        objects.ingresses.append(
            ingress(
                f"{name}-canary",
                rule(f"{name}.example.com", path("/", f"{name}-canary")),
                annotations={PREFIX + "canary": "true", PREFIX + "canary-weight": "100"},
            )
        )
    for name, given in (SITES | CANARIED).items():
        objects.ingresses.append(
            ingress(
                name,
                rule(f"{name}.example.com", path("/", name)),
                annotations={PREFIX + key: value for key, value in given.items()},
            )
        )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("rewrites")
    with echo_site(directory, BACKENDS, site_objects, request.param == "dynamic") as built:
        yield built


def answer_headers(site, name: str, backend: str | None = None) -> dict[str, str]:
    sent = f"Location:{BACKEND_LOCATION},Set-Cookie:{BACKEND_COOKIE}"
    answer = request(
        site.ports.http, f"{name}.example.com", "/x", headers={"X-Echo-Set-Header": sent}
    )
    assert (answer.status, answer.backend) == (200, backend or name)
    return answer.headers


def test_every_ingress_is_served(site):
    """With one warning: a to beside a from of "default" is not read."""
    assert [(p.name, p.code) for p in site.model.problems] == [("default", "warning")]


def test_redirect_and_cookies_rewritten(site):
    headers = answer_headers(site, "rewritten")
    assert headers["location"] == "https://public.example/app/a/b?c=d"
    assert headers["set-cookie"] == "session=1; Domain=public.example; Path=/new/x"


def test_a_canary_gets_the_main_ingress_rewrites(site):
    """As every other setting of the main Ingress (annotations/canary.py)."""
    headers = answer_headers(site, "canaried", "canaried-canary")
    assert headers["location"] == "https://public.example/app/a/b?c=d"
    assert headers["set-cookie"] == "session=1; Domain=public.example; Path=/new/x"
    headers = answer_headers(site, "canaried-default", "canaried-default-canary")
    assert headers["location"] == BACKEND_LOCATION


@pytest.mark.parametrize("name", ["off", "default", "to-only", "plain"])
def test_answers_from_elsewhere_are_left_alone(site, name):
    headers = answer_headers(site, name)
    assert headers["location"] == BACKEND_LOCATION
    assert headers["set-cookie"] == BACKEND_COOKIE


def test_the_directives_ingress_nginx_writes(site):
    found = assert_only_rendered_directives(site.directory / "nginx.conf")
    written = {
        (directive, args)
        for directive, args, _ in found
        if directive in ("proxy_redirect", "proxy_cookie_domain", "proxy_cookie_path")
    }
    assert written == {
        ("proxy_redirect", ("http://internal.example:8080/", "https://public.example/app/")),
        ("proxy_cookie_domain", ("internal.example", "public.example")),
        ("proxy_cookie_path", ("/old/", "/new/")),
        ("proxy_redirect", ("off",)),
        ("proxy_cookie_domain", ("off",)),
        ("proxy_redirect", ("default",)),
    }


def findings(given: dict[str, str]) -> dict[str, annotations.Finding]:
    parsed = annotations.parse({PREFIX + k: v for k, v in given.items()}, CONFIG)
    return {finding.key[len(PREFIX) :]: finding for finding in parsed.findings}


def test_a_to_beside_off_or_default_is_reported_ignored():
    found = findings({"proxy-redirect-from": "default", "proxy-redirect-to": "/x"})
    assert found["proxy-redirect-from"].status == "supported"
    assert found["proxy-redirect-to"].status == "ignored"
    assert "proxy-redirect-from is 'default'" in found["proxy-redirect-to"].reason


def test_a_from_without_a_to_leaves_nginx_default():
    """As ingress-nginx: its default to is "off", which writes no proxy_redirect."""
    parsed = annotations.parse({PREFIX + "proxy-redirect-from": "http://a.example/"}, CONFIG)
    assert not parsed.refused
    assert parsed.settings["proxy_redirect"] is None


HOSTILE = [
    ("proxy-redirect-from", "$scheme://internal/"),
    ("proxy-redirect-from", "~^http://(.*)$"),
    ("proxy-redirect-from", "http://a.example/; return 200"),
    ("proxy-redirect-from", "http://a.example/\nreturn 200;"),
    ("proxy-redirect-from", 'http://a.example/"'),
    ("proxy-redirect-from", "javascript:alert(1)"),
    ("proxy-redirect-from", ""),
    ("proxy-redirect-to", "https://$host/"),
    ("proxy-redirect-to", "/a b"),
    ("proxy-redirect-to", "/a}"),
    ("proxy-redirect-to", "/" + "a" * proxy_rewrites.PART_MAX_LENGTH),
    ("proxy-cookie-domain", "a.example"),
    ("proxy-cookie-domain", "a.example b.example c.example"),
    ("proxy-cookie-domain", "~\\.a\\.example$ b.example"),
    ("proxy-cookie-domain", "a.example $host"),
    ("proxy-cookie-domain", "a.example b.example;"),
    ("proxy-cookie-domain", "a.example b.example\n}"),
    ("proxy-cookie-domain", "a_b.example b.example"),
    ("proxy-cookie-path", "/old"),
    ("proxy-cookie-path", "/old /$1"),
    ("proxy-cookie-path", "~^/(.*)$ /$1"),
    ("proxy-cookie-path", "old new"),
    ("proxy-cookie-path", "/a'b /c"),
    ("proxy-cookie-path", "/a#b /c"),
    ("proxy-cookie-path", "default"),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE)
def test_hostile_values_refuse_the_ingress(key, value):
    given = {key: value}
    if key == "proxy-redirect-to":
        given["proxy-redirect-from"] = "http://a.example/"
    found = findings(given)[key]
    assert (found.status, found.code) == ("refused", "invalid")
    assert f"annotation {PREFIX}{key}" in found.reason


@pytest.mark.parametrize(
    ("key", "value", "parsed"),
    [
        ("proxy-cookie-domain", " off ", ("off",)),
        ("proxy-cookie-domain", ".a.example  b.example", (".a.example", "b.example")),
        ("proxy-cookie-path", "/ /app/", ("/", "/app/")),
    ],
)
def test_values_read_as_nginx_writes_them(key, value, parsed):
    settings = annotations.parse({PREFIX + key: value}, CONFIG).settings
    assert settings[key.replace("-", "_")] == parsed
