"""Routing as the Ingress spec says, through a real nginx to real HTTP backends.

Every rule of issue 2 section 3 (and the conformance suite's path, host and default
backend features) is checked by sending requests: one module-wide site holds most of
them; class selection, TLS fallback and the CLI's standalone output get sites of their own.
"""

import collections
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import support_backend_modes
import yaml
from cryptography.hazmat.primitives import serialization
from support_http import Backends, common_name, free_ports, request, websocket_tunnel
from support_nginx import NginxRunner, Ports, nginx_test, render_site, status_generation
from support_objects import (
    backend,
    endpoint_slice,
    ingress,
    path,
    rule,
    service,
    tls_secret,
)

from edgeagent import cli, model

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "2017"
OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"

# Services that each get one echo backend of the same name.
SIMPLE_SERVICES = [
    "foo-exact",
    "foo-prefix",
    "aaa-prefix",
    "aaa-slash-bbb-prefix",
    "aaa-slash-bbb-slash-prefix",
    "foo-slash-exact",
    "wildcard-foo-com",
    "exact-foo-com",
    "foo-bar-com",
    "echo-service",
    "hostless",
    "api",
    "app-default",
    "older",
    "newer",
    "same-age-a",
    "same-age-b",
    "secure",
    "redirect",
    "classless",
    "other-class",
    "acme-solver-exact",
    "acme-solver-legacy",
    "allowed",
    "denied",
    "allowed-and-denied",
    "long-timeout",
    "forced",
    "small-bodies",
    "rewritten",
    "regex-plain",
    "stripped",
    "regex-only",
    "buffers",
    "moved",
    "app-root",
]
TLS_BACKENDS = ["tls-backend", "tls-only"]
ANNOTATION = "nginx.ingress.kubernetes.io/"
# cert-manager's solver paths: /.well-known/acme-challenge/<token>
ACME_TOKEN_EXACT = "/.well-known/acme-challenge/gDnL1V2pAvx9bQwqRvvv0ZXJTQ6k4aH0e2-1_pTzDA0"
ACME_TOKEN_LEGACY = "/.well-known/acme-challenge/Zm9vYmFyYmF6cXV4LXRva2VuLWZvci1sZWdhY3k"
# Client addresses for the source range rules (nginx listens on 127.0.0.1; backends use
# 127.0.0.2 and up, so clients come from 127.1.0.0/16).
CLIENT_ALLOWED = "127.1.0.1"
CLIENT_OTHER = "127.1.0.2"
CLIENT_DENIED = "127.1.0.3"


def solver_ingress(name: str, target: str, service_name: str, kind: str) -> dict:
    """The Ingress cert-manager's HTTP-01 solver creates (pkg/issuer/acme/http/ingress.go):
    Exact since cert-manager 1.18, ImplementationSpecific before."""
    obj = ingress(
        name,
        rule("secure.example.com", path(target, service_name, 8089, kind=kind)),
        annotations={ANNOTATION + "whitelist-source-range": "0.0.0.0/0,::/0"},
    )
    obj["metadata"]["generateName"] = "cm-acme-http-solver-"
    obj["metadata"]["labels"] = {
        "acme.cert-manager.io/http-domain": "1706912345",
        "acme.cert-manager.io/http-token": "1184215426",
        "acme.cert-manager.io/http01-solver": "true",
    }
    return obj


class World:
    """The module-wide site and what tests need to know about it."""

    def __init__(self, site, backends: dict, certificates: dict) -> None:
        self.site = site
        self.backends = backends
        self.certificates = certificates

    def get(self, host: str | None, target: str = "/", **options):
        return request(self.site.ports.http, host, target, **options)

    def get_tls(self, host: str, target: str = "/", **options):
        return request(self.site.ports.https, host, target, tls=True, **options)


def world_objects(backends: dict, certificates: dict) -> model.Inputs:
    objects = model.Inputs()
    for name in [*SIMPLE_SERVICES, *TLS_BACKENDS]:
        objects.services.append(service(name, {"http": 8089} if "acme" in name else None))
        address, port = backends[name].host, backends[name].port
        objects.endpoint_slices.append(endpoint_slice(name, [(address, True)], port))

    # Endpoint readiness: only "ready-one" may ever receive a request.
    objects.services.append(service("mixed-ready"))
    ready = backends["ready-one"]
    objects.endpoint_slices.append(
        endpoint_slice("mixed-ready", [(ready.host, True)], ready.port, name="mixed-ready-a")
    )
    for name, conditions in (
        ("not-ready", {"ready": False}),
        ("terminating", {"ready": False, "serving": True, "terminating": True}),
    ):
        shadow = endpoint_slice("mixed-ready", [], backends[name].port, name=f"mixed-{name}")
        shadow["endpoints"] = [{"addresses": [backends[name].host], "conditions": conditions}]
        objects.endpoint_slices.append(shadow)
    # Ready unset counts as ready (the API's definition).
    objects.services.append(service("ready-unset"))
    unset = backends["ready-unset"]
    objects.endpoint_slices.append(endpoint_slice("ready-unset", [(unset.host, None)], unset.port))
    # No ready endpoint at all.
    objects.services.append(service("empty"))
    idle = backends["idle"]
    objects.endpoint_slices.append(endpoint_slice("empty", [(idle.host, False)], idle.port))
    # Ports by number and by name, each with its own EndpointSlice port.
    objects.services.append(service("multi", {"http": 80, "admin": 9000}))
    for port_name, name in (("http", "multi-http"), ("admin", "multi-admin")):
        slice_ = endpoint_slice(
            "multi",
            [(backends[name].host, True)],
            backends[name].port,
            port_name=port_name,
            name=f"multi-{port_name}",
        )
        objects.endpoint_slices.append(slice_)
    # Three replicas behind one Service, one EndpointSlice each.
    objects.services.append(service("replicas"))
    for i in range(3):
        replica = backends[f"replica-{i}"]
        objects.endpoint_slices.append(
            endpoint_slice("replicas", [(replica.host, True)], replica.port, name=f"replicas-{i}")
        )

    # Zone weights: the endpoint in zone "heavy" gets 3 requests for 1 of zone "light".
    weighted = service("weighted")
    weighted["metadata"]["annotations"] = {model.ZONE_WEIGHTS_ANNOTATION: "heavy=3,light=1"}
    objects.services.append(weighted)
    for zone in ("heavy", "light"):
        member = backends[f"zone-{zone}"]
        slice_ = endpoint_slice("weighted", [(member.host, True)], member.port, name=zone)
        slice_["endpoints"][0]["zone"] = zone
        objects.endpoint_slices.append(slice_)

    objects.ingresses.extend(
        [
            ingress("exact", rule("exact-path-rules", path("/foo", "foo-exact", kind="Exact"))),
            ingress(
                "prefix",
                rule(
                    "prefix-path-rules",
                    path("/foo", "foo-prefix"),
                    path("/aaa/bbb", "aaa-slash-bbb-prefix"),
                    path("/aaa", "aaa-prefix"),
                ),
            ),
            ingress(
                "mixed",
                rule(
                    "mixed-path-rules",
                    path("/foo", "foo-prefix"),
                    path("/foo", "foo-exact", kind="Exact"),
                ),
            ),
            ingress(
                "trailing",
                rule(
                    "trailing-slash-path-rules",
                    path("/aaa/bbb/", "aaa-slash-bbb-slash-prefix"),
                    path("/foo/", "foo-slash-exact", kind="Exact"),
                ),
            ),
            ingress(
                "implementation-specific",
                rule("impl-specific", path("/foo", "foo-prefix", kind="ImplementationSpecific")),
            ),
            ingress(
                "host-rules",
                rule("*.foo.com", path("/", "wildcard-foo-com")),
                rule("exact.foo.com", path("/", "exact-foo-com")),
                rule("foo.bar.com", path("/", "foo-bar-com", "http")),
                tls=[{"hosts": ["foo.bar.com"], "secretName": "conformance-tls"}],
                # The conformance suite asks its TLS host over plain HTTP too.
                annotations={ANNOTATION + "ssl-redirect": "false"},
            ),
            ingress(
                "secure",
                rule("secure.example.com", path("/", "secure")),
                rule("missing-secret.example.com", path("/", "secure")),
                tls=[
                    {"hosts": ["secure.example.com"], "secretName": "secure-tls"},
                    {"hosts": ["missing-secret.example.com"], "secretName": "no-such-secret"},
                ],
            ),
            ingress(
                "redirect",
                rule("redirect.example.com", path("/", "redirect")),
                tls=[{"hosts": ["redirect.example.com"], "secretName": "secure-tls"}],
                annotations={"nginx.ingress.kubernetes.io/ssl-redirect": "true"},
            ),
            solver_ingress(
                "cm-acme-http-solver-exact", ACME_TOKEN_EXACT, "acme-solver-exact", "Exact"
            ),
            solver_ingress(
                "cm-acme-http-solver-legacy",
                ACME_TOKEN_LEGACY,
                "acme-solver-legacy",
                "ImplementationSpecific",
            ),
            ingress(
                "source-ranges",
                rule(
                    "source-ranges",
                    path("/allowed", "allowed"),
                    path("/small-bodies", "small-bodies"),
                ),
                annotations={
                    # Written over several lines, as long lists in real manifests are.
                    ANNOTATION + "whitelist-source-range": f"::1/128,\n  {CLIENT_ALLOWED}/32,\n"
                    "  127.0.0.1\n",
                    ANNOTATION + "proxy-body-size": "1k",
                },
            ),
            ingress(
                "denied",
                rule("source-ranges", path("/denied", "denied")),
                annotations={
                    ANNOTATION + "denylist-source-range": f"{CLIENT_DENIED}, 2001:db8::/32"
                },
            ),
            ingress(
                "allowed-and-denied",
                rule("source-ranges", path("/both", "allowed-and-denied")),
                annotations={
                    ANNOTATION + "allowlist-source-range": "127.0.0.0/8",
                    ANNOTATION + "denylist-source-range": f"{CLIENT_DENIED}/32",
                },
            ),
            ingress(
                "long-timeout",
                rule("source-ranges", path("/websocket", "long-timeout")),
                annotations={
                    ANNOTATION + "proxy-read-timeout": "86400",
                    ANNOTATION + "proxy-send-timeout": "86400",
                    ANNOTATION + "enable-websockets": "true",  # never defined: a warning
                },
            ),
            ingress(
                "forced",
                rule("forced", path("/", "forced")),
                annotations={ANNOTATION + "force-ssl-redirect": "true"},
            ),
            ingress(
                "rewrite-captures",
                rule("rewrite", path("/api(/|$)(.*)", "rewritten")),
                annotations={ANNOTATION + "rewrite-target": "/$2"},
            ),
            ingress(
                "rewrite-to-root",
                rule("rewrite", path("/strip", "stripped", kind="ImplementationSpecific")),
                annotations={ANNOTATION + "rewrite-target": "/"},
            ),
            # No annotation, but on a host with regex paths: a regex too (ingress-nginx).
            ingress("regex-neighbour", rule("rewrite", path("/static", "regex-plain"))),
            ingress(
                "use-regex",
                rule("regex", path("/user/[0-9]+", "regex-only", kind="ImplementationSpecific")),
                annotations={ANNOTATION + "use-regex": "true"},
            ),
            ingress(
                "buffers",
                rule("buffers", path("/", "buffers")),
                annotations={
                    ANNOTATION + "proxy-buffer-size": "32k",
                    ANNOTATION + "proxy-buffering": "off",
                    ANNOTATION + "proxy-request-buffering": "off",
                    ANNOTATION + "proxy-http-version": "1.0",
                },
            ),
            ingress(
                "https-backend",
                rule("https-backend", path("/", "tls-backend")),
                annotations={ANNOTATION + "backend-protocol": "https"},  # any case
            ),
            ingress("plain-to-tls-backend", rule("plain-to-tls-backend", path("/", "tls-only"))),
            ingress(
                "permanent",
                rule("moved", path("/permanent", "moved")),
                annotations={ANNOTATION + "permanent-redirect": "https://new.example/p?from=old"},
            ),
            ingress(
                "permanent-308",
                rule("moved", path("/permanent-308", "moved")),
                annotations={
                    ANNOTATION + "permanent-redirect": "/elsewhere",
                    ANNOTATION + "permanent-redirect-code": "308",
                },
            ),
            ingress(
                "temporal",
                rule("moved", path("/temporal", "moved")),
                annotations={
                    ANNOTATION + "temporal-redirect": "http://new.example:8080/t",
                    ANNOTATION + "permanent-redirect": "https://loses.example/",
                    # Only allowed clients, but a redirect is answered before access
                    # checks, as ingress-nginx's `return` is.
                    ANNOTATION + "allowlist-source-range": "192.0.2.0/24",
                },
            ),
            ingress(
                "app-root",
                rule("app-root", path("/", "app-root")),
                annotations={ANNOTATION + "app-root": "/app1"},
            ),
            ingress("hostless", rule(None, path("/hostless", "hostless"))),
            ingress("catch-all", default_backend=backend("echo-service", 80), created=OLD),
            ingress("second-catch-all", default_backend=backend("hostless", 80), created=NEW),
            ingress(
                "with-default",
                rule("with-default", path("/api", "api")),
                default_backend=backend("app-default", 80),
            ),
            ingress(
                "readiness",
                rule(
                    "readiness",
                    path("/mixed", "mixed-ready"),
                    path("/unset", "ready-unset"),
                    path("/empty", "empty"),
                    path("/missing", "no-such-service"),
                    path("/replicas", "replicas"),
                    path("/weighted", "weighted"),
                ),
            ),
            ingress(
                "ports",
                rule(
                    "ports",
                    path("/by-number", "multi", 80),
                    path("/by-name", "multi", "admin"),
                    path("/admin-by-number", "multi", 9000),
                ),
            ),
            ingress("newer", rule("conflict", path("/", "newer")), created=NEW),
            ingress("older", rule("conflict", path("/", "older")), created=OLD),
            ingress(
                "b", rule("same-age", path("/", "same-age-b")), created=OLD, namespace="default"
            ),
            ingress(
                "a", rule("same-age", path("/", "same-age-a")), created=OLD, namespace="default"
            ),
            ingress("classless", rule("classless", path("/", "classless")), ingress_class=None),
            ingress("other", rule("other-class", path("/", "other-class")), ingress_class="nginx"),
        ]
    )
    objects.secrets.extend(
        [
            tls_secret("conformance-tls", certificates["foo.bar.com"]),
            tls_secret("secure-tls", certificates["secure.example.com"]),
        ]
    )
    return objects


@pytest.fixture(
    scope="module",
    params=[(u, b) for u in ("static", "dynamic") for b in support_backend_modes.BACKEND_MODES],
    ids="-".join,
)
def world(request, tmp_path_factory):
    """The site in both nginx modes (dynamic serves the peers and certificates nginx loads
    at start from what the agent wrote, no push, and must route exactly as static does),
    each in both backend modes: pod IPs, or the Services' NodePorts on the Nodes that hold
    their ready pods (support_backend_modes.as_nodeport), with the same answers."""
    upstreams, backend_mode = request.param
    backends = Backends()
    runner = NginxRunner()
    try:
        names = [
            *SIMPLE_SERVICES,
            "ready-unset",
            "idle",
            "multi-http",
            "multi-admin",
        ]
        started = {name: backends.start(name) for name in names}
        started |= {name: backends.start(name, tls=True) for name in TLS_BACKENDS}
        # The pods of one Service listen on one port (its nodePort in the nodeport mode).
        for group in (
            ["ready-one", "not-ready", "terminating"],
            [f"replica-{i}" for i in range(3)],
            ["zone-heavy", "zone-light"],
        ):
            started |= {b.name: b for b in backends.start_on_one_port(group)}
        certificates = {
            host: cli.self_signed(host, (host,)) for host in ("foo.bar.com", "secure.example.com")
        }
        objects = world_objects(started, certificates)
        if backend_mode == support_backend_modes.NODEPORT:
            objects = support_backend_modes.as_nodeport(objects)
        site = render_site(
            tmp_path_factory.mktemp("world"),
            objects,
            model.Options(backend_mode=backend_mode),
            dynamic_mode=upstreams == "dynamic",
        )
        runner.start(site)
        yield World(site, started, certificates)
    finally:
        runner.stop_all()
        backends.stop_all()


# Path rules (conformance: features/path_rules.feature)
@pytest.mark.parametrize(
    ("host", "target", "status", "served_by"),
    [
        ("exact-path-rules", "/foo", 200, "foo-exact"),
        ("exact-path-rules", "/foo/", 404, None),
        ("exact-path-rules", "/FOO", 404, None),
        ("exact-path-rules", "/bar", 404, None),
        ("exact-path-rules", "/foo?x=1", 200, "foo-exact"),
        ("prefix-path-rules", "/foo", 200, "foo-prefix"),
        ("prefix-path-rules", "/foo/", 200, "foo-prefix"),
        ("prefix-path-rules", "/foo/bar/baz", 200, "foo-prefix"),
        ("prefix-path-rules", "/foobar", 404, None),
        ("prefix-path-rules", "/FOO", 404, None),
        ("prefix-path-rules", "/aaa/bbb", 200, "aaa-slash-bbb-prefix"),
        ("prefix-path-rules", "/aaa/bbb/ccc", 200, "aaa-slash-bbb-prefix"),
        ("prefix-path-rules", "/aaa/bbbccc", 200, "aaa-prefix"),
        ("prefix-path-rules", "/aaa/ccc", 200, "aaa-prefix"),
        ("prefix-path-rules", "/aaaccc", 404, None),
        ("mixed-path-rules", "/foo", 200, "foo-exact"),
        ("mixed-path-rules", "/foo/", 200, "foo-prefix"),
        ("mixed-path-rules", "/foo/x", 200, "foo-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb", 200, "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb/", 200, "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/aaa/bbb/c", 200, "aaa-slash-bbb-slash-prefix"),
        ("trailing-slash-path-rules", "/foo/", 200, "foo-slash-exact"),
        ("trailing-slash-path-rules", "/foo", 404, None),
        ("impl-specific", "/foo", 200, "foo-prefix"),
        ("impl-specific", "/foo/x", 200, "foo-prefix"),
        ("impl-specific", "/foox", 404, None),
    ],
)
def test_path_rules(world, host, target, status, served_by):
    answer = world.get(host, target)
    assert answer.status == status
    if served_by:
        assert answer.backend == served_by
        assert answer.echo["target"] == target
    else:
        assert answer.backend is None  # nginx's own 404, not a backend's


# Host rules (conformance: features/host_rules.feature)
@pytest.mark.parametrize(
    ("host", "status", "served_by"),
    [
        ("foo.bar.com", 200, "foo-bar-com"),
        ("FOO.bar.COM", 200, "foo-bar-com"),
        ("foo.bar.com:8080", 200, "foo-bar-com"),
        ("bar.foo.com", 200, "wildcard-foo-com"),
        ("exact.foo.com", 200, "exact-foo-com"),
        # No host matches: the catch-all default backend (echo-service) of this site
        # answers; without one, the default server's 404 (test_classless_ingresses).
        ("subdomain.bar.com", 200, "echo-service"),
        ("baz.bar.foo.com", 200, "echo-service"),
        ("foo.com", 200, "echo-service"),
    ],
)
def test_host_rules(world, host, status, served_by):
    answer = world.get(host, "/")
    assert answer.status == status
    assert answer.backend == served_by


def test_host_rule_over_tls_verifies_its_certificate(world):
    answer = world.get_tls("foo.bar.com", "/")
    assert answer.status == 200
    assert answer.backend == "foo-bar-com"
    assert answer.echo["headers"]["host"] == "foo.bar.com"
    served = answer.certificate.public_bytes(serialization.Encoding.PEM)
    assert served == world.certificates["foo.bar.com"].certificate_pem


@pytest.mark.parametrize(
    ("sni", "host", "expected_common_name", "status", "served_by"),
    [
        ("secure.example.com", "secure.example.com", "secure.example.com", 200, "secure"),
        ("foo.bar.com", "foo.bar.com", "foo.bar.com", 200, "foo-bar-com"),
        # A TLS host whose Secret is missing: served, with the default certificate.
        (
            "missing-secret.example.com",
            "missing-secret.example.com",
            "edgeagent-default",
            200,
            "secure",
        ),
        # Unknown name, and no SNI at all: the default server and certificate.
        ("unknown.example.com", "unknown.example.com", "edgeagent-default", 200, "echo-service"),
        ("", "secure.example.com", "edgeagent-default", 200, "secure"),
        # Hosts without spec.tls do not listen on HTTPS: the default server answers.
        ("prefix-path-rules", "prefix-path-rules", "edgeagent-default", 200, "echo-service"),
    ],
)
def test_tls_certificate_by_sni(world, sni, host, expected_common_name, status, served_by):
    answer = world.get_tls(host, "/", sni=sni)
    assert common_name(answer.certificate) == expected_common_name
    assert answer.status == status
    assert answer.backend == served_by


def test_hsts_only_over_https_on_tls_hosts(world):
    hsts = world.get_tls("secure.example.com").headers["strict-transport-security"]
    assert hsts == "max-age=31536000; includeSubDomains"  # ingress-nginx's default
    assert "strict-transport-security" not in world.get("secure.example.com").headers
    assert "strict-transport-security" not in world.get("foo.bar.com").headers
    # The default server answers HTTPS for names that may be served over HTTP only.
    assert world.get_tls("unknown.example.com").headers["strict-transport-security"] == "max-age=0"


def test_ssl_redirect_annotation(world):
    plain = world.get("redirect.example.com", "/a?b=c")
    assert plain.status == 308
    assert plain.headers["location"] == "https://redirect.example.com/a?b=c"
    assert world.get_tls("redirect.example.com", "/a").backend == "redirect"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_tls_hosts_redirect_to_https_by_default(world, method):
    """As ingress-nginx: ssl-redirect is on, 308 keeps the method and the body."""
    body = b"x" if method == "POST" else None
    plain = world.get("secure.example.com", "/cart?id=1", method=method, body=body)
    assert (plain.status, plain.backend) == (308, None)
    assert plain.headers["location"] == "https://secure.example.com/cart?id=1"
    assert world.get_tls("secure.example.com", "/cart").backend == "secure"


def test_ssl_redirect_false_serves_a_tls_host_over_http(world):
    assert world.get("foo.bar.com", "/").backend == "foo-bar-com"


def test_hosts_without_tls_are_not_redirected(world):
    assert world.get("prefix-path-rules", "/foo").backend == "foo-prefix"
    assert world.get("anything.example", "/hostless/x").backend == "hostless"


def test_force_ssl_redirect_redirects_a_host_without_tls(world):
    plain = world.get("forced", "/x")
    assert plain.status == 308
    assert plain.headers["location"] == "https://forced/x"


@pytest.mark.parametrize(
    ("target", "served_by"),
    [(ACME_TOKEN_EXACT, "acme-solver-exact"), (ACME_TOKEN_LEGACY, "acme-solver-legacy")],
)
def test_cert_manager_http01_solver_answers_over_plain_http(world, target, served_by):
    """cert-manager's solver Ingress, exactly as it writes it, on a TLS host that
    redirects everything else: the challenge is answered over HTTP, never redirected."""
    answer = world.get("secure.example.com", target)
    assert (answer.status, answer.backend) == (200, served_by)
    assert answer.echo["target"] == target
    # From any client address (its allow list is 0.0.0.0/0,::/0).
    assert world.get("secure.example.com", target, source=CLIENT_DENIED).backend == served_by
    assert world.get("secure.example.com", "/other").status == 308
    assert world.get_tls("secure.example.com", target).backend == served_by


@pytest.mark.parametrize(
    ("target", "source", "status", "served_by"),
    [
        ("/allowed", None, 200, "allowed"),  # 127.0.0.1, listed without a prefix length
        ("/allowed/x", CLIENT_ALLOWED, 200, "allowed"),
        ("/allowed", CLIENT_OTHER, 403, None),
        ("/allowed/x", CLIENT_DENIED, 403, None),
        ("/denied", None, 200, "denied"),
        ("/denied/x", CLIENT_OTHER, 200, "denied"),
        ("/denied", CLIENT_DENIED, 403, None),
        ("/both", CLIENT_OTHER, 200, "allowed-and-denied"),
        ("/both/x", CLIENT_DENIED, 403, None),  # the deny list is checked first
    ],
)
def test_source_ranges(world, target, source, status, served_by):
    answer = world.get("source-ranges", target, source=source)
    assert (answer.status, answer.backend) == (status, served_by)


@pytest.mark.parametrize(
    ("host", "target", "served_by", "seen"),
    [
        # rewrite-target "/$2" on "/api(/|$)(.*)": the second capture, query kept.
        ("rewrite", "/api/users?page=2", "rewritten", "/users?page=2"),
        ("rewrite", "/api/a/b/", "rewritten", "/a/b/"),
        ("rewrite", "/api", "rewritten", "/"),
        ("rewrite", "/API/Users", "rewritten", "/Users"),  # case-insensitive, as ~*
        # rewrite-target "/" on "/strip": everything under it becomes "/".
        ("rewrite", "/strip", "stripped", "/"),
        ("rewrite", "/strip/deep/path?q=1", "stripped", "/?q=1"),
        # An Ingress without annotations on the same host: its path is a case-insensitive
        # regex from the start of the path, not rewritten.
        ("rewrite", "/static/app.js", "regex-plain", "/static/app.js"),
        ("rewrite", "/STATIC/app.js", "regex-plain", "/STATIC/app.js"),
        ("rewrite", "/staticfiles", "regex-plain", "/staticfiles"),
        # use-regex alone: matched as a regex, passed on as it came.
        ("regex", "/user/42", "regex-only", "/user/42"),
        ("regex", "/User/42/profile", "regex-only", "/User/42/profile"),
    ],
)
def test_rewrite_target_and_use_regex(world, host, target, served_by, seen):
    answer = world.get(host, target)
    assert (answer.status, answer.backend) == (200, served_by)
    assert answer.echo["target"] == seen


def test_rewritten_captures_cannot_split_the_upstream_request(world):
    """A capture holds the decoded path: an encoded CR LF must never reach the backend as
    a line break. (PCRE's `.` stops at the line feed, and nginx encodes the CR.)"""
    answer = world.get("rewrite", "/api/a%0d%0aX-Injected:%20yes%0d%0a")
    assert (answer.status, answer.backend) == (200, "rewritten")
    assert "x-injected" not in answer.echo["headers"]
    assert answer.echo["target"] == "/a%0D"


@pytest.mark.parametrize(
    ("host", "target"), [("rewrite", "/apix"), ("rewrite", "/other"), ("regex", "/user/abc")]
)
def test_regex_hosts_answer_404_for_what_no_regex_matches(world, host, target):
    answer = world.get(host, target)
    assert (answer.status, answer.backend) == (404, None)


def test_proxy_buffer_size_lets_large_response_headers_through(world):
    """nginx answers 502 when a backend's headers outgrow proxy_buffer_size (4k or 8k
    by default); proxy-buffer-size 32k lets a 20k header through."""
    large = {"X-Echo-Padding": str(20 * 1024)}
    assert world.get("prefix-path-rules", "/foo", headers=large).status == 502
    answer = world.get("buffers", "/x", headers=large)
    assert (answer.status, answer.backend) == (200, "buffers")
    assert len(answer.headers["x-padding"]) == 20 * 1024


def test_proxy_http_version_and_buffering_off(world):
    """The backend sees HTTP/1.0; with both bufferings off, a request body and an
    answer still go through whole."""
    answer = world.get("buffers", "/upload", method="POST", body=b"y" * 4096)
    assert (answer.status, answer.backend) == (200, "buffers")
    assert answer.echo["version"] == "HTTP/1.0"
    assert answer.echo["body"] == "y" * 4096
    assert world.get("prefix-path-rules", "/foo").echo["version"] == "HTTP/1.1"


def test_backend_protocol_https_speaks_tls_to_the_backend(world):
    answer = world.get("https-backend", "/a?b=c", method="POST", body=b"over tls")
    assert (answer.status, answer.backend) == (200, "tls-backend")
    assert (answer.echo["target"], answer.echo["body"]) == ("/a?b=c", "over tls")
    # A TLS backend without the annotation: plain HTTP to a TLS port fails.
    assert world.get("plain-to-tls-backend", "/").status == 502


@pytest.mark.parametrize(
    ("target", "status", "location"),
    [
        ("/permanent", 301, "https://new.example/p?from=old"),
        ("/permanent/x?y=z", 301, "https://new.example/p?from=old"),
        ("/permanent-308", 308, "/elsewhere"),
        ("/temporal", 302, "http://new.example:8080/t"),  # temporal wins over permanent
    ],
)
def test_permanent_and_temporal_redirects(world, target, status, location):
    answer = world.get("moved", target)
    assert (answer.status, answer.backend) == (status, None)
    # nginx makes a path absolute with the request's host and port.
    assert answer.headers["location"].endswith(location)


def test_app_root_redirects_the_root_only(world):
    root = world.get("app-root", "/")
    assert (root.status, root.headers["location"]) == (302, "http://app-root/app1")
    with_port = world.get("app-root:8080", "/?x=1")  # $http_host: the Host as sent
    assert with_port.headers["location"] == "http://app-root:8080/app1"
    answer = world.get("app-root", "/app1")
    assert (answer.status, answer.backend) == (200, "app-root")


def test_long_proxy_timeouts_are_served(world):
    """proxy-read-timeout: "86400" (a day, common for WebSockets) is no longer capped."""
    assert world.get("source-ranges", "/websocket").backend == "long-timeout"
    with websocket_tunnel(world.site.ports.http, "source-ranges", "/websocket") as (sock, reader):
        sock.sendall(b"hello\n")
        assert reader.readline() == b"long-timeout: hello\n"


def test_request_body_size_default_and_annotation(world):
    """ingress-nginx's default proxy-body-size is 1m; the annotation sets it per location.
    (Bodies that fit nginx's memory buffer: a root test run's workers cannot write the
    temporary files under pytest's private directory.)"""
    too_large = b"x" * (1024 * 1024 + 1)
    assert world.get("prefix-path-rules", "/foo", method="POST", body=too_large).status == 413
    body = b"x" * 2048
    assert world.get("prefix-path-rules", "/foo", method="POST", body=body).status == 200
    assert world.get("source-ranges", "/small-bodies", method="POST", body=body).status == 413
    answer = world.get("source-ranges", "/small-bodies", method="POST", body=b"x" * 1000)
    assert (answer.status, answer.backend) == (200, "small-bodies")


# Default backend (conformance: features/default_backend.feature)
@pytest.mark.parametrize(
    ("method", "host", "target"),
    [
        ("GET", "my-host", "/"),
        ("GET", "my-host", "/sub-path"),
        ("POST", "some-host", "/"),
        ("PUT", "127.0.0.1", "/resource"),
        ("DELETE", "some-host", "/resource"),
        ("PATCH", "my-host", "/resource"),
    ],
)
def test_catch_all_default_backend(world, method, host, target):
    body = b"payload" if method in ("POST", "PUT", "PATCH") else None
    answer = world.get(host, target, method=method, body=body)
    assert answer.status == 200
    assert answer.backend == "echo-service"  # the older of two catch-alls
    for header in ("content-length", "content-type", "date", "server"):
        assert header in answer.headers
    echo = answer.echo
    assert (echo["method"], echo["target"], echo["version"]) == (method, target, "HTTP/1.1")
    assert echo["body"] == (body or b"").decode()


def test_rules_without_host_go_to_the_default_server(world):
    assert world.get("anything.example", "/hostless/x").backend == "hostless"
    # A known host does not fall back to rules without a host ...
    assert world.get("prefix-path-rules", "/hostless").status == 404
    # ... and nothing shadows the edge's own health check.
    health = world.get("anything.example", "/healthz")
    assert (health.status, health.body) == (200, b"ok\n")


def test_default_backend_of_an_ingress_with_rules_serves_its_hosts(world):
    assert world.get("with-default", "/api/v1").backend == "api"
    assert world.get("with-default", "/other").backend == "app-default"


def test_unmatched_path_on_a_known_host_is_404_with_standard_headers(world):
    answer = world.get("exact-path-rules", "/nothing")
    assert answer.status == 404
    assert answer.headers["content-type"] == "text/html"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert answer.headers["server"] == "nginx"  # server_tokens off: no version
    assert "date" in answer.headers


def test_backend_sees_original_request_and_forwarding_headers(world):
    answer = world.get(
        "foo.bar.com",
        "/some/path?q=1&r=%20x",
        method="PUT",
        headers={"X-Custom": "kept", "User-Agent": "edge-test/1"},
        body=b"{}",
    )
    echo = answer.echo
    assert echo["method"] == "PUT"
    assert echo["target"] == "/some/path?q=1&r=%20x"
    assert echo["version"] == "HTTP/1.1"
    headers = echo["headers"]
    assert headers["host"] == "foo.bar.com"
    assert headers["x-custom"] == "kept"
    assert headers["user-agent"] == "edge-test/1"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert headers["x-real-ip"] == "127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert world.get_tls("foo.bar.com").echo["headers"]["x-forwarded-proto"] == "https"
    # Proxied answers carry what nginx adds and the backend's own length and type.
    assert answer.headers["server"] == "nginx"
    assert answer.headers["content-type"] == "application/json"
    assert int(answer.headers["content-length"]) == len(answer.body)
    assert "date" in answer.headers


def test_client_sent_forwarded_headers_are_dropped(world):
    """Issue 14: a client cannot pass itself off as another address to the backend (as
    ingress-nginx with use-forwarded-headers: false)."""
    claimed = {"X-Forwarded-For": "192.0.2.7", "X-Real-IP": "192.0.2.7"}
    for answer in (
        world.get("foo.bar.com", "/", headers=claimed),
        world.get_tls("foo.bar.com", "/", headers=claimed),
    ):
        headers = answer.echo["headers"]
        assert (headers["x-forwarded-for"], headers["x-real-ip"]) == ("127.0.0.1", "127.0.0.1")


def test_plain_requests_keep_upstream_connections_alive(world):
    # No "Connection: close" towards the backend: nginx reuses upstream connections.
    assert "connection" not in world.get("foo.bar.com", "/").echo["headers"]


def test_websocket_tunnel_carries_data_both_ways(world):
    with websocket_tunnel(world.site.ports.http, "foo.bar.com") as (tunnel, stream):
        for line in (b"hello\n", b"again\n"):
            tunnel.sendall(line)
            assert stream.readline() == b"foo-bar-com: " + line


def test_only_ready_endpoints_get_requests(world):
    served = {world.get("readiness", "/mixed").backend for _ in range(12)}
    assert served == {"ready-one"}
    assert world.get("readiness", "/unset").backend == "ready-unset"


def test_service_without_ready_endpoint_answers_503(world):
    assert world.get("readiness", "/empty").status == 503
    assert world.get("readiness", "/missing").status == 503


def test_requests_spread_over_all_ready_endpoints(world):
    served = {world.get("readiness", "/replicas").backend for _ in range(30)}
    assert served == {"replica-0", "replica-1", "replica-2"}


def test_zone_weights_share_the_requests(world):
    # Smooth weighted round-robin (nginx's, and the dynamic mode's Lua): any 8 requests in
    # a row give 6 and 2.
    served = collections.Counter(world.get("readiness", "/weighted").backend for _ in range(8))
    assert served == {"zone-heavy": 6, "zone-light": 2}


@pytest.mark.parametrize(
    ("target", "served_by"),
    [
        ("/by-number", "multi-http"),
        ("/by-name", "multi-admin"),
        ("/admin-by-number", "multi-admin"),
    ],
)
def test_service_port_by_number_and_by_name(world, target, served_by):
    assert world.get("ports", target).backend == served_by


def test_ingress_class_selection(world):
    # Not selected: their hosts are unknown, so the catch-all answers.
    assert world.get("classless", "/").backend == "echo-service"
    assert world.get("other-class", "/").backend == "echo-service"
    served = set(world.site.model.served_ingresses)
    assert ("default", "classless") not in served
    assert ("default", "other") not in served


def test_conflict_oldest_wins_then_namespace_and_name(world):
    assert world.get("conflict", "/").backend == "older"
    assert world.get("same-age", "/").backend == "same-age-a"
    conflicts = {(p.name, p.code) for p in world.site.model.problems if p.code == "conflict"}
    assert conflicts == {("newer", "conflict"), ("b", "conflict"), ("second-catch-all", "conflict")}


def test_world_problems_are_exactly_the_expected_ones(world):
    problems = {(p.kind, p.namespace, p.name, p.code) for p in world.site.model.problems}
    assert problems == {
        ("Ingress", "default", "newer", "conflict"),
        ("Ingress", "default", "b", "conflict"),
        ("Ingress", "default", "second-catch-all", "conflict"),
        ("Ingress", "default", "readiness", "missing-service"),
        ("Secret", "default", "no-such-secret", "secret"),
        ("Ingress", "default", "long-timeout", "warning"),
        ("Ingress", "default", "temporal", "warning"),  # its permanent-redirect loses
    }
    assert ("default", "long-timeout") in world.site.model.served_ingresses


def test_status_server_answers_the_generation(world):
    assert status_generation(world.site.ports.status) == world.site.generation


@pytest.mark.parametrize(
    ("options", "with_default_class", "classless_served"),
    [
        (model.Options(), False, False),
        (model.Options(watch_ingress_without_class=True), False, True),
        (model.Options(), True, True),
        (model.Options(ingress_class="other"), True, False),
    ],
)
def test_classless_ingresses(
    tmp_path, nginx_runner, http_backends, options, with_default_class, classless_served
):
    app = http_backends.start("app")
    inputs = model.Inputs(
        ingresses=[
            ingress("classless", rule("classless", path("/", "app")), ingress_class=None),
            ingress("foreign", rule("foreign", path("/", "app")), ingress_class="nginx"),
        ],
        services=[service("app")],
        endpoint_slices=[endpoint_slice("app", [(app.host, True)], app.port)],
    )
    if with_default_class:
        inputs.ingress_classes.append(
            {
                "apiVersion": "networking.k8s.io/v1",
                "kind": "IngressClass",
                "metadata": {
                    "name": "edge",
                    "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"},
                },
            }
        )
    site = render_site(tmp_path, inputs, options)
    nginx_runner.start(site)
    assert request(site.ports.http, "classless").status == (200 if classless_served else 404)
    foreign = request(site.ports.http, "foreign")
    assert (foreign.status, foreign.backend) == (404, None)  # the default server's own


def test_invalid_secret_keeps_the_previous_certificate(tmp_path, nginx_runner, http_backends):
    app = http_backends.start("app")
    previous = cli.self_signed("previous.example.com", ("previous.example.com",))
    broken = tls_secret("tls", previous)
    broken["data"]["tls.key"] = broken["data"]["tls.crt"]  # no key: invalid
    hosts = ("kept.example.com", "fresh.example.com")
    inputs = model.Inputs(
        ingresses=[
            ingress(
                "kept",
                rule(hosts[0], path("/", "app")),
                tls=[{"hosts": [hosts[0]], "secretName": "tls"}],
            ),
            ingress(
                "fresh",
                rule(hosts[1], path("/", "app")),
                tls=[{"hosts": [hosts[1]], "secretName": "tls-b"}],
            ),
        ],
        services=[service("app")],
        endpoint_slices=[endpoint_slice("app", [(app.host, True)], app.port)],
        secrets=[broken, {**broken, "metadata": {"name": "tls-b", "namespace": "default"}}],
    )
    options = model.Options(previous_certificates={("default", "tls"): previous})
    site = render_site(tmp_path, inputs, options)
    nginx_runner.start(site)
    kept = request(site.ports.https, hosts[0], tls=True)
    fresh = request(site.ports.https, hosts[1], tls=True)
    assert (kept.status, common_name(kept.certificate)) == (200, "previous.example.com")
    assert (fresh.status, common_name(fresh.certificate)) == (200, "edgeagent-default")
    assert site.model.certificates == {("default", "tls"): previous}
    reasons = {p.name: p.reason for p in site.model.problems}
    assert "previous certificate" in reasons["tls"]
    assert "default certificate" in reasons["tls-b"]


def _examples_for(backends: Backends, directory: Path) -> Path:
    """The 2017 example manifests with their pod addresses swapped for echo backends."""
    addresses = {
        "web1": backends.start("web1"),
        "web2": backends.start("web2"),
        "default-http-backend": backends.start("default-http-backend"),
    }
    directory.mkdir()
    for source in sorted(EXAMPLES.glob("*.yaml")):
        documents = [d for d in yaml.safe_load_all(source.read_text()) if d]
        for document in documents:
            if document["kind"] == "EndpointSlice":
                echo = addresses[document["metadata"]["labels"]["kubernetes.io/service-name"]]
                document["endpoints"][0]["addresses"] = [echo.host]
                document["ports"][0]["port"] = echo.port
        (directory / source.name).write_text(yaml.safe_dump_all(documents))
    return directory


def test_cli_render_of_the_2017_setup_serves_as_is(tmp_path, nginx_runner, http_backends, capsys):
    manifests = _examples_for(http_backends, tmp_path / "manifests")
    out = tmp_path / "out"
    ports = Ports.free()
    argv = [
        "render",
        "-f",
        str(manifests),
        "-o",
        str(out),
        "--listen-http",
        f"127.0.0.1:{ports.http}",
        "--listen-https",
        f"127.0.0.1:{ports.https}",
        "--status-listen",
        f"127.0.0.1:{ports.status}",
    ]
    assert cli.main(argv) == 0
    assert "0 problems" in capsys.readouterr().err
    tested = nginx_test(out)
    assert tested.returncode == 0, tested.stderr
    assert (out / "certs" / "default.pem").stat().st_mode & 0o777 == 0o600
    generation = (out / "edge.conf").read_text().split()[3].rstrip(";")
    process = subprocess.Popen(
        ["/usr/sbin/nginx", "-p", str(out), "-c", "nginx.conf", "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        nginx = _wait_serving(process, ports.status, generation)
        assert request(ports.http, "web1.example.com", "/x").backend == "web1"
        assert request(ports.http, "web2.example.com", "/").backend == "web2"
        assert request(ports.http, "unknown.example.com").backend == "default-http-backend"
        assert request(ports.http, "web1.example.com", "/healthz").backend == "web1"
        assert request(ports.http, "unknown.example.com", "/healthz").body == b"ok\n"
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stderr.close()
    assert nginx


def _wait_serving(process: subprocess.Popen, status_port: int, generation: str) -> bool:
    for _ in range(500):
        if status_generation(status_port) == generation:
            return True
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.02)
    raise TimeoutError("nginx did not come up")


def test_ordinary_user_runs_the_rendered_directory(http_backends):
    """`nginx -p DIR -c nginx.conf` as an unprivileged user: no `user` directive, pid,
    logs and temporary files inside DIR."""
    base = Path(tempfile.mkdtemp(prefix="edgeagent-user-"))
    try:
        manifests = _examples_for(http_backends, base / "manifests")
        out = base / "out"
        port, status, https = free_ports(3)
        argv = ["render", "-f", str(manifests), "-o", str(out)]
        argv += ["--listen-http", f"127.0.0.1:{port}", "--listen-https", f"127.0.0.1:{https}"]
        argv += ["--status-listen", f"127.0.0.1:{status}"]
        assert cli.main(argv) == 0
        shutil.chown(base, "nobody", "nogroup")
        for item in base.rglob("*"):
            shutil.chown(item, "nobody", "nogroup")
        command = ["/usr/sbin/nginx", "-p", str(out), "-c", "nginx.conf"]
        tested = subprocess.run(
            [*command, "-t"],
            user="nobody",
            group="nogroup",
            extra_groups=[],
            capture_output=True,
            text=True,
            check=False,
        )
        assert tested.returncode == 0, tested.stderr
        generation = (out / "edge.conf").read_text().split()[3].rstrip(";")
        process = subprocess.Popen(
            [*command, "-g", "daemon off;"],
            user="nobody",
            group="nogroup",
            extra_groups=[],
            stderr=subprocess.PIPE,
        )
        try:
            _wait_serving(process, status, generation)
            assert request(port, "web2.example.com").backend == "web2"
        finally:
            process.terminate()
            process.wait(timeout=10)
            process.stderr.close()
    finally:
        shutil.rmtree(base)
