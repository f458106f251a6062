"""model.build: selection, validation, locations, conflicts, joins and TLS, without nginx."""

import copy
import random

import pytest
from support_objects import (
    backend,
    endpoint_slice,
    ingress,
    path,
    rule,
    service,
    tls_secret,
)

from edgeagent import annotations, cli, model, render

OLD = "2020-01-01T00:00:00Z"
NEW = "2021-01-01T00:00:00Z"


def build(*ingresses, services=(), slices=(), secrets=(), classes=(), **options):
    inputs = model.Inputs(
        ingresses=list(ingresses),
        ingress_classes=list(classes),
        services=list(services),
        endpoint_slices=list(slices),
        secrets=list(secrets),
    )
    return model.build(inputs, model.Options(**options))


def app(name="app", address="10.0.0.1", port=8080, **slice_options):
    """A Service with one ready endpoint."""
    return [service(name)], [endpoint_slice(name, [(address, True)], port, **slice_options)]


def server(built: model.Model, host: str) -> model.Server:
    return next(s for s in built.servers if s.host == host)


def locations(built_server: model.Server) -> dict[tuple[str, str], str | int]:
    """(match, path) -> upstream name, or the status answered."""
    return {(loc.match, loc.path): loc.upstream or loc.status for loc in built_server.locations}


UPSTREAM = model.upstream_name("default", "app", 80)


def problems(built: model.Model) -> set[tuple[str, str, str]]:
    return {(p.kind, p.name, p.code) for p in built.problems}


# Class selection


@pytest.mark.parametrize(
    ("spec_class", "annotation", "options", "default_class", "selected"),
    [
        ("edge", None, {}, False, True),
        ("nginx", None, {}, False, False),
        ("nginx", None, {"watch_ingress_without_class": True}, True, False),
        (None, "edge", {}, False, True),
        (None, "nginx", {"watch_ingress_without_class": True}, False, False),
        (None, None, {}, False, False),
        (None, None, {"watch_ingress_without_class": True}, False, True),
        (None, None, {}, True, True),
        (None, None, {"ingress_class": "other"}, True, False),
        ("other", None, {"ingress_class": "other"}, False, True),
    ],
)
def test_class_selection(spec_class, annotation, options, default_class, selected):
    annotations = {"kubernetes.io/ingress.class": annotation} if annotation else None
    classes = []
    if default_class:
        annotations_of_class = {"ingressclass.kubernetes.io/is-default-class": "true"}
        classes.append({"metadata": {"name": "edge", "annotations": annotations_of_class}})
    services, slices = app()
    built = build(
        ingress(
            "i", rule("h", path("/", "app")), ingress_class=spec_class, annotations=annotations
        ),
        services=services,
        slices=slices,
        classes=classes,
        **options,
    )
    assert (built.served_ingresses == (("default", "i"),)) is selected
    assert bool(built.servers) is selected
    assert not built.problems  # other classes are ignored completely, not reported


def test_default_class_annotation_must_be_exactly_true():
    classes = [
        {
            "metadata": {
                "name": "edge",
                "annotations": {"ingressclass.kubernetes.io/is-default-class": "yes"},
            }
        }
    ]
    built = build(ingress("i", rule("h", path("/", "app")), ingress_class=None), classes=classes)
    assert built.served_ingresses == ()


# Validation


def test_invalid_ingress_is_skipped_whole_and_others_are_served():
    services, slices = app()
    bad = ingress("bad", rule("good.example", path("/", "app")), rule("bad host", path("/", "app")))
    good = ingress("good", rule("other.example", path("/", "app")))
    built = build(bad, good, services=services, slices=slices)
    assert [s.host for s in built.servers] == ["other.example"]
    assert built.served_ingresses == (("default", "good"),)
    (problem,) = built.problems
    assert (problem.kind, problem.namespace, problem.name, problem.code) == (
        "Ingress",
        "default",
        "bad",
        "invalid",
    )
    assert "spec.rules[1].host 'bad host' is not a valid DNS name" in problem.reason


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (
            lambda i: i["spec"]["rules"][0]["http"]["paths"][0].pop("pathType"),
            "pathType is required",
        ),
        (lambda i: i["spec"]["rules"][0]["http"]["paths"][0].update(pathType="Regex"), "pathType"),
        (lambda i: i["spec"]["rules"][0]["http"]["paths"][0].update(path="/a b"), ".path"),
        (lambda i: i["spec"]["rules"][0].update(host="1.2.3.4"), "IP address"),
        (lambda i: i["spec"]["rules"][0].update(host=["x"]), "must be a string"),
        (lambda i: i["spec"].update(rules={"a": 1}), "spec.rules must be a list"),
        (lambda i: i["metadata"].update(namespace="Bad"), "metadata.namespace"),
        (lambda i: i["metadata"].update(creationTimestamp="yesterday"), "RFC 3339"),
        (lambda i: i["metadata"].update(annotations={1: "x"}), "keys must be strings"),
        (lambda i: i["metadata"].update(annotations={"a": 1}), "must be a string"),
        (
            lambda i: i["spec"]["rules"][0]["http"]["paths"][0]["backend"].update(
                resource={"kind": "Bucket", "name": "b"}
            ),
            "resource backends are not supported",
        ),
        (
            lambda i: i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(
                port={"number": 80, "name": "http"}
            ),
            "either number or name",
        ),
        (
            lambda i: i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(
                port={}
            ),
            "needs a number or a name",
        ),
        (
            lambda i: i["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"].update(
                name="Web"
            ),
            "DNS-1035",
        ),
        (lambda i: i["spec"].update(tls=[{"hosts": ["a b"]}]), "spec.tls[0].hosts[0]"),
        (lambda i: i["spec"].update(tls=[{"secretName": "a_b"}]), "secretName"),
        (lambda i: i["spec"].update(defaultBackend="svc"), "spec.defaultBackend must be an object"),
    ],
)
def test_invalid_fields_give_a_clear_reason(mutate, reason):
    obj = ingress("i", rule("h", path("/", "app")))
    mutate(obj)
    built = build(obj)
    (problem,) = built.problems
    assert reason in problem.reason
    assert built.served_ingresses == ()


def test_hostile_identity_is_not_echoed():
    obj = ingress("i", rule("h", path("/", "app")))
    obj["metadata"]["name"] = "x;\n} load_module /tmp/x.so; #"
    obj["metadata"]["namespace"] = "ns\nFAKE LOG LINE"
    (problem,) = build(obj).problems
    assert (problem.namespace, problem.name) == ("<invalid>", "<invalid>")
    assert "\n" not in problem.reason


@pytest.mark.parametrize(
    "garbage",
    [None, 7, "text", [], {"metadata": None}, {"metadata": {"name": 1}}, {"spec": []}],
)
def test_garbage_objects_never_raise(garbage):
    inputs = model.Inputs(
        ingresses=[garbage],
        ingress_classes=[garbage],
        services=[garbage],
        endpoint_slices=[garbage],
        secrets=[garbage],
    )
    built = model.build(inputs, model.Options(watch_ingress_without_class=True))
    assert built.served_ingresses == ()


# Annotations


def test_supported_annotations_become_location_settings():
    services, slices = app()
    annotations = {
        "nginx.ingress.kubernetes.io/ssl-redirect": "true",
        "nginx.ingress.kubernetes.io/proxy-body-size": "8m",
        "nginx.ingress.kubernetes.io/proxy-read-timeout": "120",
        "nginx.ingress.kubernetes.io/proxy-send-timeout": "30",
        "nginx.ingress.kubernetes.io/proxy-connect-timeout": "5",
        "nginx.ingress.kubernetes.io/force-ssl-redirect": "True",
        "nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.9/8,\n 2001:db8::/32",
        "nginx.ingress.kubernetes.io/denylist-source-range": "10.1.0.0/16, 192.0.2.7",
        "kubectl.kubernetes.io/last-applied-configuration": '{"any": "thing; }"}',
    }
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations=annotations),
        services=services,
        slices=slices,
    )
    (location,) = server(built, "h").locations
    assert location.settings == model.LocationSettings(
        ssl_redirect=True,
        force_ssl_redirect=True,
        proxy_body_size="8m",
        proxy_connect_timeout=5,
        proxy_read_timeout=120,
        proxy_send_timeout=30,
        allow=("10.0.0.0/8", "2001:db8::/32"),
        deny=("10.1.0.0/16", "192.0.2.7"),
    )
    assert built.problems == ()


def test_ssl_redirect_defaults_to_the_option():
    services, slices = app()
    one = ingress("i", rule("h", path("/", "app")))
    off = model.Options().annotations.__class__(ssl_redirect=False)
    for options, expected in (({}, True), ({"annotations": off}, False)):
        built = build(one, services=services, slices=slices, **options)
        assert server(built, "h").locations[0].settings.ssl_redirect is expected


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("nginx.ingress.kubernetes.io/configuration-snippet", "return 200;", "snippets"),
        ("nginx.ingress.kubernetes.io/server-snippet", "x", "snippets"),
        ("nginx.ingress.kubernetes.io/auth-url", "https://$uri/a", "nginx variables"),
        ("nginx.ingress.kubernetes.io/auth-tls-verify-client", "on", "protect it less"),
        ("nginx.ingress.kubernetes.io/auth-type", "basic", "protect it less"),
        ("nginx.ingress.kubernetes.io/enable-modsecurity", "true", "protect it less"),
        ("nginx.ingress.kubernetes.io/upstream-hash-by-subset", "true", "answer otherwise"),
        ("nginx.org/server-snippets", "x", "snippets"),
        ("nginx.org/redirect-to-https", "true", "another controller"),
        ("nginx.ingress.kubernetes.io/proxy-read-timeout", "0", "whole number"),
        ("nginx.ingress.kubernetes.io/ssl-redirect", "on", "'true' or 'false'"),
        ("nginx.ingress.kubernetes.io/whitelist-source-range", "10.0.0.0/8;", "CIDR"),
        ("nginx.ingress.kubernetes.io/denylist-source-range", "", "CIDR"),
        ("nginx.ingress.kubernetes.io/allowlist-source-range", "10.0.0.0/255.0.0.0", "CIDR"),
    ],
)
def test_unsupported_or_malformed_annotations_reject_the_ingress(key, value, words):
    built = build(ingress("i", rule("h", path("/", "app")), annotations={key: value}))
    (problem,) = built.problems
    assert words in problem.reason
    assert key in problem.reason and repr(value) in problem.reason
    malformed = any(w in words for w in ("whole", "true", "CIDR"))
    assert problem.code == ("invalid" if malformed else "unsupported")
    assert built.servers == ()
    assert built.served_ingresses == ()


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("nginx.ingress.kubernetes.io/connection-proxy-header", "keep-alive", "only tunes"),
        ("nginx.ingress.kubernetes.io/enable-access-log", "false", "only tunes"),
        ("nginx.ingress.kubernetes.io/hsts", "true", "defines no such annotation"),
        ("nginx.ingress.kubernetes.io/rate-limit", "100", "defines no such annotation"),
        ("nginx.ingress.kubernetes.io/enable-websockets", "true", "defines no such"),
        ("nginx.ingress.kubernetes.io/enable-modsecurity", "false", "off, as without it"),
    ],
)
def test_tuning_and_undefined_annotations_are_served_with_a_warning(key, value, words):
    services, slices = app()
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations={key: value}),
        services=services,
        slices=slices,
    )
    (problem,) = built.problems
    assert (problem.code, problem.name) == ("warning", "i")
    assert words in problem.reason and key in problem.reason and repr(value) in problem.reason
    assert built.served_ingresses == (("default", "i"),)
    assert server(built, "h").locations[0].upstream


def test_every_problem_of_an_ingress_is_reported_at_once():
    prefix = "nginx.ingress.kubernetes.io/"
    annotations = {
        prefix + "proxy-read-timeout": "60s",
        prefix + "configuration-snippet": "more_set_headers x;",
        prefix + "auth-url": "https://$remote_addr/oauth2/auth",
        prefix + "hsts": "true",
        prefix + "proxy-body-size": "8m",
    }
    obj = ingress("i", rule("h", path("/", "app")), annotations=annotations)
    obj["spec"]["rules"][0]["http"]["paths"][0]["pathType"] = "Regex"
    built = build(obj)
    reasons = sorted(problem.reason for problem in built.problems)
    assert len(reasons) == 5
    for key in ("proxy-read-timeout", "configuration-snippet", "auth-url", "hsts"):
        assert sum(prefix + key in reason for reason in reasons) == 1
    assert any("pathType 'Regex'" in reason for reason in reasons)
    assert {p.code for p in built.problems} == {"invalid", "unsupported", "warning"}


def test_allowlist_wins_over_its_old_name():
    services, slices = app()
    annotations = {
        "nginx.ingress.kubernetes.io/allowlist-source-range": "10.0.0.0/8",
        "nginx.ingress.kubernetes.io/whitelist-source-range": "0.0.0.0/0",
    }
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations=annotations),
        services=services,
        slices=slices,
    )
    assert server(built, "h").locations[0].settings.allow == ("10.0.0.0/8",)
    (problem,) = built.problems
    assert problem.code == "warning" and "whitelist-source-range" in problem.reason


def test_annotations_prefix_is_configurable():
    services, slices = app()
    config = model.Options().annotations.__class__(annotations_prefix="ingress.example.com")
    annotations = {
        "ingress.example.com/proxy-body-size": "8m",
        "nginx.ingress.kubernetes.io/auth-url": "http://auth/",  # not ours: not read
    }
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations=annotations),
        services=services,
        slices=slices,
        annotations=config,
    )
    assert built.problems == ()
    assert server(built, "h").locations[0].settings.proxy_body_size == "8m"


# Locations


def test_prefix_and_exact_locations():
    services, slices = app()
    built = build(
        ingress(
            "i",
            rule(
                "h",
                path("/exact", "app", kind="Exact"),
                path("/exact-slash/", "app", kind="Exact"),
                path("/prefix", "app"),
                path("/trailing/", "app"),
                path("/both", "app"),
                path("/both", "app", kind="Exact"),
                path("/impl", "app", kind="ImplementationSpecific"),
            ),
        ),
        services=services,
        slices=slices,
    )
    assert locations(server(built, "h")) == {
        ("exact", "/both"): UPSTREAM,
        ("prefix", "/both/"): UPSTREAM,
        ("exact", "/exact"): UPSTREAM,
        ("exact", "/exact-slash/"): UPSTREAM,
        # nginx would redirect /exact-slash to /exact-slash/: served as unmatched instead.
        ("exact", "/exact-slash"): 404,
        ("exact", "/impl"): UPSTREAM,
        ("prefix", "/impl/"): UPSTREAM,
        ("exact", "/prefix"): UPSTREAM,
        ("prefix", "/prefix/"): UPSTREAM,
        ("exact", "/trailing"): UPSTREAM,
        ("prefix", "/trailing/"): UPSTREAM,
        ("prefix", "/"): 404,
    }


def test_exact_with_trailing_slash_under_a_prefix_keeps_the_prefix_for_the_bare_path():
    services, slices = app()
    other_services, other_slices = app("other", "10.0.0.2")
    built = build(
        ingress(
            "i",
            rule("h", path("/a", "app"), path("/a/b/", "other", kind="Exact")),
        ),
        services=services + other_services,
        slices=slices + other_slices,
    )
    found = locations(server(built, "h"))
    assert found[("exact", "/a/b/")] == model.upstream_name("default", "other", 80)
    assert found[("exact", "/a/b")] == UPSTREAM


def test_prefix_root_needs_no_fallback():
    services, slices = app()
    built = build(ingress("i", rule("h", path("/", "app"))), services=services, slices=slices)
    assert locations(server(built, "h")) == {("prefix", "/"): UPSTREAM}


def test_default_server_answers_health_and_takes_hostless_rules():
    services, slices = app()
    built = build(
        ingress(
            "i",
            rule(None, path("/api", "app"), path("/healthz", "app", kind="Exact")),
            rule("", path("/healthz", "app")),
        ),
        services=services,
        slices=slices,
    )
    assert locations(built.default_server) == {
        ("exact", "/api"): UPSTREAM,
        ("prefix", "/api/"): UPSTREAM,
        ("exact", "/healthz"): 200,
        ("prefix", "/healthz/"): UPSTREAM,
        ("prefix", "/"): 404,
    }
    (problem,) = built.problems
    assert problem.code == "conflict"
    assert "reserved" in problem.reason


# Conflicts and default backends


def test_conflicts_oldest_wins_then_namespace_and_name_whatever_the_input_order():
    services, slices = app()
    for name in ("older", "a-same", "b-same", "newest", "no-time"):
        more_services, more_slices = app(name, "10.0.1.1")
        services += more_services
        slices += more_slices
    objects = [
        ingress("newest", rule("h", path("/", "newest")), created=NEW),
        ingress("older", rule("h", path("/", "older")), created=OLD),
        ingress("no-time", rule("h", path("/", "no-time"))),
        ingress("b-same", rule("s", path("/x", "b-same")), created=OLD),
        ingress("a-same", rule("s", path("/x/", "a-same")), created=OLD),
    ]
    results = []
    for seed in range(5):
        shuffled = objects[:]
        random.Random(seed).shuffle(shuffled)
        built = build(*shuffled, services=services, slices=slices)
        results.append(built)
        assert locations(server(built, "h"))[("prefix", "/")] == model.upstream_name(
            "default", "older", 80
        )
        assert locations(server(built, "s"))[("exact", "/x")] == model.upstream_name(
            "default", "a-same", 80
        )
        assert problems(built) == {
            ("Ingress", "newest", "conflict"),
            ("Ingress", "no-time", "conflict"),
            ("Ingress", "b-same", "conflict"),
        }
    assert all(result == results[0] for result in results)


def test_exact_and_prefix_of_the_same_path_do_not_conflict():
    services, slices = app()
    built = build(
        ingress("a", rule("h", path("/p", "app")), created=OLD),
        ingress("b", rule("h", path("/p", "app", kind="Exact")), created=NEW),
        services=services,
        slices=slices,
    )
    assert not built.problems


def test_default_backends():
    services, slices = [], []
    for name in ("catch", "late-catch", "own", "api", "other-own"):
        more_services, more_slices = app(name)
        services += more_services
        slices += more_slices
    built = build(
        ingress("catch", default_backend=backend("catch", 80), created=OLD),
        ingress("late-catch", default_backend=backend("late-catch", 80), created=NEW),
        ingress(
            "own", rule("h", path("/api", "api")), default_backend=backend("own", 80), created=OLD
        ),
        ingress(
            "same-own",
            rule("h", path("/b", "api")),
            default_backend=backend("own", 80),
            created=NEW,
        ),
        ingress(
            "other-own",
            rule("h", path("/c", "api")),
            default_backend=backend("other-own", 80),
            created=NEW,
        ),
        ingress("plain", rule("p", path("/x", "api"))),
        services=services,
        slices=slices,
    )
    upstream = lambda name: model.upstream_name("default", name, 80)  # noqa: E731
    assert locations(built.default_server)[("prefix", "/")] == upstream("catch")
    assert locations(server(built, "h"))[("prefix", "/")] == upstream("own")
    # Hosts without a default backend of their own answer 404, not the catch-all.
    assert locations(server(built, "p"))[("prefix", "/")] == 404
    assert problems(built) == {
        ("Ingress", "late-catch", "conflict"),
        ("Ingress", "other-own", "conflict"),
    }


# Services and EndpointSlices


def test_ports_by_number_and_name_resolve_through_slice_port_names():
    services = [service("multi", {"http": 80, "admin": 9000})]
    slices = [
        endpoint_slice("multi", [("10.0.0.1", True)], 8080, port_name="http", name="s1"),
        endpoint_slice("multi", [("10.0.0.2", True)], 9090, port_name="admin", name="s2"),
    ]
    built = build(
        ingress(
            "i",
            rule(
                "h",
                path("/a", "multi", 80),
                path("/b", "multi", "admin"),
                path("/c", "multi", 9000),
            ),
        ),
        services=services,
        slices=slices,
    )
    assert {u.name: u.endpoints for u in built.upstreams} == {
        model.upstream_name("default", "multi", 80): ("10.0.0.1:8080",),
        model.upstream_name("default", "multi", 9000): ("10.0.0.2:9090",),
    }


def test_unnamed_single_port_service():
    services = [service("one", {"": 80})]
    slices = [endpoint_slice("one", [("10.0.0.1", True)], 8080, port_name="")]
    built = build(ingress("i", rule("h", path("/", "one"))), services=services, slices=slices)
    assert built.upstreams[0].endpoints == ("10.0.0.1:8080",)


def test_readiness_dedup_order_and_families():
    services = [service("app")]
    slices = [
        endpoint_slice(
            "app",
            [("10.0.0.10", True), ("10.0.0.9", None), ("10.0.0.8", False), ("10.0.0.9", True)],
            80,
            name="a",
        ),
        endpoint_slice("app", [("10.0.0.10", True)], 80, name="dup"),
        endpoint_slice("app", [("fd00::1", True)], 80, name="v6", address_type="IPv6"),
        endpoint_slice("app", [("10.0.0.7", True)], 80, name="elsewhere", namespace="other"),
    ]
    terminating = endpoint_slice("app", [], 80, name="t")
    terminating["endpoints"] = [
        {"addresses": ["10.0.0.6"], "conditions": {"ready": True, "terminating": True}}
    ]
    udp = endpoint_slice("app", [("10.0.0.5", True)], 80, name="udp")
    udp["ports"][0]["protocol"] = "UDP"
    fqdn = endpoint_slice("app", [("example.com", True)], 80, name="fqdn", address_type="FQDN")
    built = build(
        ingress("i", rule("h", path("/", "app"))),
        services=services,
        slices=[*slices, terminating, udp, fqdn],
    )
    (upstream,) = built.upstreams
    assert upstream.endpoints == ("10.0.0.9:80", "10.0.0.10:80", "[fd00::1]:80")
    assert problems(built) == {("EndpointSlice", "fqdn", "unsupported")}


def _zoned(annotation: str | None) -> model.Model:
    weighted = service("app")
    if annotation is not None:
        weighted["metadata"]["annotations"] = {model.ZONE_WEIGHTS_ANNOTATION: annotation}
    zoned = endpoint_slice("app", [("10.0.0.1", True), ("10.0.0.2", True), ("10.0.0.3", True)], 80)
    for endpoint, zone in zip(zoned["endpoints"], ("a", "b", None), strict=True):
        if zone:
            endpoint["zone"] = zone
    return build(ingress("i", rule("h", path("/", "app"))), services=[weighted], slices=[zoned])


def test_zone_weights_annotation_weighs_endpoints_by_zone():
    (upstream,) = _zoned("a=3, b=2").upstreams
    assert upstream.weighted == (("10.0.0.1:80", 3), ("10.0.0.2:80", 2), ("10.0.0.3:80", 1))
    (plain,) = _zoned(None).upstreams
    assert plain.weights == () and plain.weighted[0] == ("10.0.0.1:80", 1)


@pytest.mark.parametrize("annotation", ["a=0", "a=101", "a", "a=1,a=2", "a=x", "a b=1", ""])
def test_bad_zone_weights_are_reported_and_the_endpoints_served_unweighted(annotation):
    built = _zoned(annotation)
    assert problems(built) == {("Service", "app", "invalid")}
    assert built.upstreams[0].weights == ()


def test_service_problems_make_paths_answer_503():
    external = service("external")
    external["spec"]["type"] = "ExternalName"
    broken = service("broken")
    broken["spec"]["ports"][0]["port"] = "eighty"
    empty_services, empty_slices = (
        [service("empty")],
        [endpoint_slice("empty", [("10.0.0.1", False)], 80)],
    )
    bad_slice = endpoint_slice("bad-slice", [("10.0.0.300", True)], 80)
    built = build(
        ingress(
            "i",
            rule(
                "h",
                path("/missing", "missing"),
                path("/port", "empty", 81),
                path("/external", "external"),
                path("/broken", "broken"),
                path("/empty", "empty"),
                path("/bad-slice", "bad-slice"),
            ),
        ),
        services=[external, broken, *empty_services, service("bad-slice")],
        slices=[*empty_slices, bad_slice],
    )
    found = locations(server(built, "h"))
    for name in ("missing", "port", "external", "broken", "empty", "bad-slice"):
        assert found[("exact", f"/{name}")] == 503
    assert built.upstreams == ()
    assert problems(built) == {
        ("Ingress", "i", "missing-service"),
        ("Service", "external", "unsupported"),
        ("Service", "broken", "invalid"),
        ("EndpointSlice", "bad-slice-slice", "invalid"),
    }
    reasons = " ".join(p.reason for p in built.problems)
    assert "Service default/missing does not exist" in reasons
    assert "Service default/empty has no port 81" in reasons


def test_upstream_names_are_unique_and_start_with_a_digest():
    name = model.upstream_name("default", "web", 80)
    digest, rest = name.split("_", 1)
    assert rest == "default_web_80"
    assert len(digest) == 6
    assert name != model.upstream_name("default", "web", 81)


# TLS


@pytest.fixture(scope="module")
def pairs():
    return {host: cli.self_signed(host, (host,)) for host in ("a.example", "b.example")}


def test_tls_per_host(pairs):
    services, slices = app()
    broken = tls_secret("broken", pairs["a.example"])
    broken["data"]["tls.key"] = "!!"
    opaque = tls_secret("opaque", pairs["a.example"])
    opaque["type"] = "Opaque"
    built = build(
        ingress(
            "i",
            rule("a.example", path("/", "app")),
            rule("b.example", path("/", "app")),
            rule("plain.example", path("/", "app")),
            rule("nosecret.example", path("/", "app")),
            rule("broken.example", path("/", "app")),
            rule("opaque.example", path("/", "app")),
            tls=[
                {"hosts": ["a.example", "b.example"], "secretName": "a"},
                {"hosts": ["nosecret.example"]},
                {"hosts": ["broken.example"], "secretName": "broken"},
                {"hosts": ["opaque.example"], "secretName": "opaque"},
                {"hosts": ["not-a-rule-host.example"], "secretName": "a"},
            ],
        ),
        services=services,
        slices=slices,
        secrets=[tls_secret("a", pairs["a.example"]), broken, opaque],
    )
    by_host = {s.host: (s.https, s.certificate) for s in built.servers}
    assert by_host == {
        "a.example": (True, ("default", "a")),
        "b.example": (True, ("default", "a")),
        "plain.example": (False, None),
        "nosecret.example": (True, None),
        "broken.example": (True, None),
        "opaque.example": (True, None),
    }
    assert built.certificates == {("default", "a"): pairs["a.example"]}
    assert problems(built) == {("Secret", "broken", "secret"), ("Secret", "opaque", "secret")}


def test_tls_conflict_oldest_wins(pairs):
    services, slices = app()
    secrets = [tls_secret("a", pairs["a.example"]), tls_secret("b", pairs["b.example"])]
    built = build(
        ingress(
            "new",
            rule("h", path("/x", "app")),
            tls=[{"hosts": ["h"], "secretName": "b"}],
            created=NEW,
        ),
        ingress(
            "old",
            rule("h", path("/y", "app")),
            tls=[{"hosts": ["h"], "secretName": "a"}],
            created=OLD,
        ),
        services=services,
        slices=slices,
        secrets=secrets,
    )
    assert server(built, "h").certificate == ("default", "a")
    assert problems(built) == {("Ingress", "new", "conflict")}


def test_missing_secret_keeps_the_previous_pair(pairs):
    services, slices = app()
    built = build(
        ingress("i", rule("h", path("/", "app")), tls=[{"hosts": ["h"], "secretName": "gone"}]),
        services=services,
        slices=slices,
        previous_certificates={("default", "gone"): pairs["b.example"]},
    )
    assert server(built, "h").certificate == ("default", "gone")
    assert built.certificates == {("default", "gone"): pairs["b.example"]}
    (problem,) = built.problems
    assert "does not exist; its hosts keep the previous certificate" in problem.reason


# Whole model


def test_same_objects_in_any_order_render_the_same_bytes(pairs):
    services, slices = app()
    more_services, more_slices = app("web", "10.0.0.2")
    objects = [
        ingress(
            "a",
            rule("a.example", path("/", "app")),
            tls=[{"hosts": ["a.example"], "secretName": "a"}],
        ),
        ingress("b", rule("*.b.example", path("/x", "web"), path("/y", "app", kind="Exact"))),
        ingress("c", rule(None, path("/", "web")), created=OLD),
        ingress("d", default_backend=backend("web", 80)),
    ]
    layout = render.Layout(
        "0.0.0.0:80", "0.0.0.0:443", "/out/gen-{generation}", "/etc/d.pem", "/etc/d.key"
    )
    outputs = set()
    for seed in range(4):
        rng = random.Random(seed)
        lists = [
            copy.deepcopy(x) for x in (objects, services + more_services, slices + more_slices)
        ]
        for items in lists:
            rng.shuffle(items)
        built = model.build(
            model.Inputs(
                ingresses=lists[0],
                services=lists[1],
                endpoint_slices=lists[2],
                secrets=[tls_secret("a", pairs["a.example"])],
            ),
            model.Options(),
        )
        rendered = render.render(built, layout)
        outputs.add((tuple(rendered.files.items()), rendered.generation, rendered.output_dir))
    assert len(outputs) == 1


# Regular expression paths (rewrite-target, use-regex)

REWRITE = "nginx.ingress.kubernetes.io/rewrite-target"
USE_REGEX = "nginx.ingress.kubernetes.io/use-regex"


def test_rewrite_target_makes_every_path_of_its_host_a_regex_longest_first():
    services, slices = app()
    built = build(
        ingress(
            "rewrite",
            rule("h", path("/api(/|$)(.*)", "app"), path("/a", "app")),
            annotations={REWRITE: "/$2"},
        ),
        ingress("plain", rule("h", path("/static/", "app"), path("/x", "app", kind="Exact"))),
        ingress("elsewhere", rule("other", path("/static", "app"))),
        services=services,
        slices=slices,
    )
    locations = [(loc.match, loc.path) for loc in server(built, "h").locations]
    assert locations == [
        ("default", "/"),
        ("regex", "/api(/|$)(.*)"),
        ("regex", "/static/"),  # as written: ingress-nginx uses the path as it is
        ("regex", "/x"),
        ("regex", "/a"),
    ]
    assert server(built, "h").locations[1].settings.rewrite_target == "/$2"
    assert server(built, "h").locations[2].settings.rewrite_target is None
    # Other hosts keep plain locations.
    assert {loc.match for loc in server(built, "other").locations} == {"exact", "prefix"}
    assert built.problems == ()


def test_rewrite_to_the_path_itself_is_no_regex():
    services, slices = app()
    built = build(
        ingress("root", rule("h", path("/", "app")), annotations={REWRITE: "/"}),
        services=services,
        slices=slices,
    )
    assert [(loc.match, loc.path) for loc in server(built, "h").locations] == [("prefix", "/")]


def test_use_regex_reads_exact_and_prefix_paths_as_regexes():
    services, slices = app()
    built = build(
        ingress(
            "regex",
            rule("h", path("/user/[0-9]+", "app", kind="Exact"), path("/a.*", "app")),
            annotations={USE_REGEX: "true"},
        ),
        services=services,
        slices=slices,
    )
    assert [loc.path for loc in server(built, "h").locations if loc.match == "regex"] == [
        "/user/[0-9]+",
        "/a.*",
    ]


def test_a_plain_path_that_is_no_regex_on_a_regex_host_is_reported():
    services, slices = app()
    built = build(
        ingress("regex", rule("h", path("/a(.*)", "app")), annotations={USE_REGEX: "true"}),
        ingress("stars", rule("h", path("/**", "app"), path("/fine", "app"))),
        services=services,
        slices=slices,
    )
    (problem,) = built.problems
    assert (problem.name, problem.code) == ("stars", "invalid")
    assert "/**" in problem.reason and "regular expression" in problem.reason
    assert [loc.path for loc in server(built, "h").locations if loc.match == "regex"] == [
        "/a(.*)",
        "/fine",
    ]


def test_the_same_regex_from_two_ingresses_is_a_conflict():
    services, slices = app()
    built = build(
        ingress("first", rule("h", path("/a", "app")), created=OLD),
        ingress("second", rule("h", path("/a", "app", kind="Exact")), created=NEW),
        ingress("regex", rule("h", path("/b(.*)", "app")), annotations={USE_REGEX: "true"}),
        services=services,
        slices=slices,
    )
    (problem,) = built.problems
    assert (problem.name, problem.code) == ("second", "conflict")


@pytest.mark.parametrize(
    ("annotations", "value", "words"),
    [
        ({USE_REGEX: "true"}, '/a"; } location /x { root /;', "regex syntax"),
        ({USE_REGEX: "true"}, "/a\\", "regex syntax"),
        ({USE_REGEX: "true"}, "/a(", "not a regular expression"),
        ({USE_REGEX: "true"}, "/(?<n>a)", "regex syntax"),
        ({USE_REGEX: "true"}, "/(?=a)", "not a regular expression"),
        ({USE_REGEX: "true"}, "/[[:alpha:]]", "not a regular expression"),
        ({USE_REGEX: "true"}, "/a{65536}", "not a regular expression"),
        ({REWRITE: "/$1"}, "/a b(.*)", "regex syntax"),
    ],
)
def test_bad_regex_paths_refuse_the_ingress(annotations, value, words):
    built = build(ingress("i", rule("h", path(value, "app")), annotations=annotations))
    (problem,) = built.problems
    assert words in problem.reason and problem.code == "invalid"
    assert built.servers == ()


@pytest.mark.parametrize(
    "target", ["/$host", "https://evil.example/$1", "/$0", "/a b", "/$1;", "/${1}", "relative"]
)
def test_bad_rewrite_targets_refuse_the_ingress(target):
    built = build(ingress("i", rule("h", path("/a(.*)", "app")), annotations={REWRITE: target}))
    (problem,) = built.problems
    assert REWRITE in problem.reason and "captures $1 to $9" in problem.reason


ANNOTATION_PREFIX = "nginx.ingress.kubernetes.io/"


def build_annotated(annotations: dict[str, str]) -> model.Model:
    """One Ingress "i" (host h, / to the app Service) with these ingress-nginx annotations,
    keys without the prefix."""
    services, slices = app()
    annotations = {ANNOTATION_PREFIX + key: value for key, value in annotations.items()}
    return build(
        ingress("i", rule("h", path("/", "app")), annotations=annotations),
        services=services,
        slices=slices,
    )


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"proxy-buffer-size": "16K"}, {"proxy_buffers": (4, "16k")}),
        ({"proxy-buffers-number": "8"}, {"proxy_buffers": (8, "4k")}),
        ({"proxy-buffer-size": "1m", "proxy-buffers-number": "64"}, {"proxy_buffers": (64, "1m")}),
        (
            {"proxy-buffering": "off", "proxy-request-buffering": " on "},
            {"proxy_buffering": "off", "proxy_request_buffering": "on"},
        ),
        ({"proxy-http-version": "1.0"}, {"proxy_http_version": "1.0"}),
        # nginx's own buffers (8 of 4k) bound the busy ones and the temporary files.
        ({"proxy-busy-buffers-size": "28K"}, {"proxy_busy_buffers_size": "28k"}),
        (
            {
                "proxy-buffer-size": "16k",
                "proxy-buffers-number": "8",
                "proxy-busy-buffers-size": "112k",
            },
            {"proxy_busy_buffers_size": "112k", "proxy_buffers": (8, "16k")},
        ),
        ({"proxy-max-temp-file-size": "0"}, {"proxy_max_temp_file_size": "0"}),
        ({"proxy-max-temp-file-size": "1024M"}, {"proxy_max_temp_file_size": "1024m"}),
        ({"client-body-buffer-size": "1M"}, {"client_body_buffer_size": "1m"}),
    ],
)
def test_buffering_annotations(annotations, expected):
    built = build_annotated(annotations)
    assert built.problems == ()
    settings = server(built, "h").locations[0].settings
    for attribute, value in expected.items():
        assert getattr(settings, attribute) == value


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("proxy-buffer-size", "2m"),
        ("proxy-buffer-size", "1g"),
        ("proxy-buffer-size", "0"),
        ("proxy-buffers-number", "3"),
        ("proxy-buffers-number", "65"),
        ("proxy-busy-buffers-size", "2k"),  # under one of nginx's 4k buffers
        ("proxy-busy-buffers-size", "32k"),  # all 8 of them
        ("proxy-max-temp-file-size", "1k"),  # neither 0 nor a whole buffer
        ("client-body-buffer-size", "2m"),
        ("client-body-buffer-size", "0"),
        ("client-body-buffer-size", "4kb"),  # ingress-nginx rejects the Ingress too
        ("proxy-buffering", "off; proxy_pass http://evil"),
    ],
)
def test_bad_buffering_values_refuse_the_ingress(key, value):
    built = build(
        ingress(
            "i",
            rule("h", path("/", "app")),
            annotations={"nginx.ingress.kubernetes.io/" + key: value},
        )
    )
    (problem,) = built.problems
    assert problem.code == "invalid" and key in problem.reason and repr(value) in problem.reason


@pytest.mark.parametrize(
    ("key", "value", "setting"),
    [
        # ingress-nginx's e2e proxy.go: "should not set invalid proxy timeouts", "should not
        # set proxy client-max-body-size to incorrect value".
        ("proxy-connect-timeout", "50k", "proxy_connect_timeout"),
        ("proxy-send-timeout", "20k", "proxy_send_timeout"),
        ("proxy-read-timeout", "60s", "proxy_read_timeout"),
        ("proxy-body-size", "15r", "proxy_body_size"),
        ("proxy-body-size", "10 MB", "proxy_body_size"),
        ("proxy-buffer-size", "4kb", "proxy_buffers"),
        ("proxy-buffers-number", "eight", "proxy_buffers"),
        ("proxy-buffering", "On", "proxy_buffering"),
        ("proxy-request-buffering", "true", "proxy_request_buffering"),
        ("proxy-http-version", "2", "proxy_http_version"),
        ("proxy-busy-buffers-size", "8 kB", "proxy_busy_buffers_size"),
        ("proxy-max-temp-file-size", "1t", "proxy_max_temp_file_size"),
        ("proxy-next-upstream", "errors", "next_upstream"),
        ("proxy-next-upstream-tries", "3x", "next_upstream_tries"),
        ("proxy-next-upstream-timeout", "10s", "next_upstream_timeout"),
        # An empty value: ingress-nginx does not validate it, and its parser's default
        # stands (parseString and parseInt refuse "").
        ("proxy-read-timeout", "", "proxy_read_timeout"),
        ("proxy-body-size", "", "proxy_body_size"),
        ("proxy-buffering", "", "proxy_buffering"),
        ("proxy-next-upstream", "", "next_upstream"),
    ],
)
def test_proxy_values_ingress_nginx_cannot_read_leave_the_default(key, value, setting):
    """ingress-nginx's proxy parser replaces a value not of its validator's form by its
    default and serves the Ingress: so does the edge, with a warning."""
    services, slices = app()
    annotations = {"nginx.ingress.kubernetes.io/" + key: value}
    if setting == "proxy_buffers":
        annotations["nginx.ingress.kubernetes.io/proxy-buffers-number"] = "8"
        annotations["nginx.ingress.kubernetes.io/proxy-buffer-size"] = "8k"
        annotations["nginx.ingress.kubernetes.io/" + key] = value
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations=annotations),
        services=services,
        slices=slices,
    )
    (problem,) = built.problems
    assert (problem.code, problem.name) == ("warning", "i")
    assert key in problem.reason and repr(value) in problem.reason
    assert "its default" in problem.reason
    assert built.served_ingresses == (("default", "i"),)
    settings = server(built, "h").locations[0].settings
    expected = (8, "4k") if key == "proxy-buffer-size" else (4, "8k")
    assert getattr(settings, setting) == (expected if setting == "proxy_buffers" else None)


@pytest.mark.parametrize(
    ("key", "value", "setting", "expected"),
    [
        ("proxy-read-timeout", "+30", "proxy_read_timeout", 30),
        ("proxy-connect-timeout", "05", "proxy_connect_timeout", 5),
        ("proxy-next-upstream-tries", "+3", "next_upstream_tries", 3),
        ("proxy-next-upstream-timeout", "010", "next_upstream_timeout", 10),
    ],
)
def test_proxy_whole_numbers_are_read_as_ingress_nginx_reads_them(key, value, setting, expected):
    """ingress-nginx reads them with strconv.Atoi and writes the number (`+30`, `030`:
    30): the same number is served, not a refused Ingress."""
    services, slices = app()
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations={ANNOTATION_PREFIX + key: value}),
        services=services,
        slices=slices,
    )
    assert built.problems == ()
    assert getattr(server(built, "h").locations[0].settings, setting) == expected


@pytest.mark.parametrize(
    ("value", "protocol", "code"),
    [
        ("HTTPS", "HTTPS", None),
        (" https ", "HTTPS", None),
        ("HTTP", "HTTP", None),
        ("GRPC", "GRPC", None),
        ("grpcs", "GRPCS", None),
        ("AUTO_HTTP", None, "unsupported"),
        ("FCGI", None, "unsupported"),
        ("SPDY", None, "invalid"),
        ("HTTPS; proxy_pass http://evil", None, "invalid"),
    ],
)
def test_backend_protocol(value, protocol, code):
    services, slices = app()
    key = "nginx.ingress.kubernetes.io/backend-protocol"
    built = build(
        ingress("i", rule("h", path("/", "app")), annotations={key: value}),
        services=services,
        slices=slices,
    )
    if code is None:
        assert built.problems == ()
        assert server(built, "h").locations[0].settings.backend_protocol == protocol
    else:
        (problem,) = built.problems
        assert (problem.code, built.servers) == (code, ())
        assert key in problem.reason and repr(value) in problem.reason


@pytest.mark.parametrize(
    ("annotations", "redirect", "warned"),
    [
        ({"permanent-redirect": "https://a.example/x?y=1"}, (301, "https://a.example/x?y=1"), ()),
        ({"permanent-redirect": "/p", "permanent-redirect-code": "308"}, (308, "/p"), ()),
        (
            {"permanent-redirect": "/p", "permanent-redirect-code": "200"},
            (301, "/p"),
            ("permanent-redirect-code",),
        ),
        (
            {"temporal-redirect": "http://[2001:db8::1]:8080/"},
            (302, "http://[2001:db8::1]:8080/"),
            (),
        ),
        (
            {"temporal-redirect": "https://t.example", "temporal-redirect-code": "308"},
            (302, "https://t.example"),
            ("temporal-redirect-code",),
        ),
        (
            {"temporal-redirect": "https://t.example", "permanent-redirect": "https://p.example"},
            (302, "https://t.example"),
            ("permanent-redirect",),
        ),
        ({"permanent-redirect-code": "308"}, None, ("permanent-redirect-code",)),
    ],
)
def test_redirect_annotations(annotations, redirect, warned):
    built = build_annotated(annotations)
    assert server(built, "h").locations[0].settings.redirect == redirect
    assert [p.code for p in built.problems] == ["warning"] * len(warned)
    for key, problem in zip(warned, built.problems, strict=True):
        assert ANNOTATION_PREFIX + key in problem.reason


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("permanent-redirect", "https://x/$request_uri"),
        ("permanent-redirect", "https://x/a b"),
        ("permanent-redirect", "ftp://x/"),
        ("permanent-redirect", "javascript:alert(1)"),
        ("permanent-redirect", "https://x/%0d%0aSet-Cookie:a"),
        ("permanent-redirect", ""),
        ("temporal-redirect", "/relative"),
        ("temporal-redirect", "https://x/#frag"),
        ("permanent-redirect-code", "abc"),
    ],
)
def test_bad_redirects_refuse_the_ingress(key, value):
    prefix = "nginx.ingress.kubernetes.io/"
    annotations = {prefix + key: value}
    if key.endswith("-code"):
        annotations[prefix + "permanent-redirect"] = "/p"
    built = build(ingress("i", rule("h", path("/", "app")), annotations=annotations))
    (problem,) = built.problems
    assert problem.code == "invalid" and prefix + key in problem.reason
    assert built.servers == ()


def test_each_ingress_nginx_annotation_has_one_status():
    """A key moves from the catalogue to a family when it is supported: never in both."""
    catalogue = annotations.catalogue
    refused, tuned = set(catalogue.REFUSED), set(catalogue.TUNED)
    assert not annotations.SUPPORTED & refused
    assert not annotations.SUPPORTED & tuned
    assert not refused & tuned
    assert catalogue.SWITCHES.issubset(refused | tuned)


def test_app_root_is_a_server_setting_and_the_oldest_ingress_wins():
    services, slices = app()
    key = "nginx.ingress.kubernetes.io/app-root"
    built = build(
        ingress("first", rule("h", path("/", "app")), annotations={key: "/a"}, created=OLD),
        ingress("second", rule("h", path("/b", "app")), annotations={key: "/b"}, created=NEW),
        ingress("hostless", rule(None, path("/x", "app")), annotations={key: "/x"}),
        services=services,
        slices=slices,
    )
    assert server(built, "h").app_root == "/a"
    assert built.default_server.app_root == "/x"
    (problem,) = built.problems
    assert (problem.name, problem.code) == ("second", "conflict")
    assert "app-root for host h" in problem.reason


@pytest.mark.parametrize("value", ["/", "https://x/", "/a b", "/$1", "a", "/a;return 200"])
def test_bad_app_roots_refuse_the_ingress(value):
    key = "nginx.ingress.kubernetes.io/app-root"
    built = build(ingress("i", rule("h", path("/", "app")), annotations={key: value}))
    (problem,) = built.problems
    assert problem.code == "invalid" and key in problem.reason
