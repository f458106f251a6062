"""ingress-nginx's canary Ingresses, through a real nginx to real backends, in both modes.

Shares are counted over a few hundred requests with bounds about five standard deviations
wide: a fair draw fails them less than once in a million runs.
"""

import collections

import pytest
from support_http import Backends, request
from support_nginx import NginxRunner, nginx_test, render_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import model

ANNOTATION = "nginx.ingress.kubernetes.io/"
OLD = "2020-01-01T00:00:00Z"
SERVICES = ("stable", "canary", "api-stable", "api-canary")
DRAWS = 200


def canary(name: str, host: str, target: str = "/", service_name: str = "canary", **keys):
    """A canary Ingress for `host` and `target`; keys: annotation names with "_" for "-"."""
    annotations = {ANNOTATION + "canary": "true"}
    annotations |= {ANNOTATION + key.replace("_", "-"): value for key, value in keys.items()}
    return ingress(name, rule(host, path(target, service_name)), annotations=annotations)


def main(name: str, host: str, *paths: dict) -> dict:
    return ingress(name, rule(host, *(paths or (path("/", "stable"),))), created=OLD)


def site_objects(backends: dict) -> model.Inputs:
    objects = model.Inputs()
    for name in SERVICES:
        objects.services.append(service(name))
        address, port = backends[name].host, backends[name].port
        objects.endpoint_slices.append(endpoint_slice(name, [(address, True)], port))
    hosts = {
        "weight": {"canary_weight": "30"},
        "weight-total": {"canary_weight": "750", "canary_weight_total": "1000"},
        "everything": {"canary_weight": "100"},
        "header": {
            "canary_by_header": "X-Canary",
            "canary_by_cookie": "canary-session",
            "canary_weight": "0",
        },
        "header-value": {"canary_by_header": "X-Canary", "canary_by_header_value": "v2.1"},
        "header-over-weight": {"canary_by_header": "X-Canary", "canary_weight": "100"},
        "cookie-over-weight": {"canary_by_cookie": "canary-session", "canary_weight": "100"},
    }
    for host, keys in hosts.items():
        objects.ingresses.append(main(f"{host}-main", host))
        objects.ingresses.append(canary(f"{host}-canary", host, **keys))
    objects.ingresses.extend(
        [
            # A canary for one path of two.
            main("paths-main", "paths", path("/", "stable"), path("/api", "api-stable")),
            canary("paths-canary", "paths", "/api", "api-canary", canary_weight="100"),
            # No main Ingress: not served.
            canary("orphan-canary", "orphan", canary_weight="100"),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    backends = Backends()
    runner = NginxRunner()
    try:
        started = {name: backends.start(name) for name in SERVICES}
        built = render_site(
            tmp_path_factory.mktemp("canary"),
            site_objects(started),
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(built)
        yield built
    finally:
        runner.stop_all()
        backends.stop_all()


def served_by(site, host: str, target: str = "/", **headers) -> str | None:
    answer = request(site.ports.http, host, target, headers=headers)
    return answer.backend


def counted(site, host: str) -> collections.Counter:
    return collections.Counter(served_by(site, host) for _ in range(DRAWS))


def test_canary_weight_sends_its_share(site):
    served = counted(site, "weight")
    assert set(served) == {"stable", "canary"}
    assert 28 <= served["canary"] <= 92, served  # 30% of 200: 60, sd 6.5


def test_canary_weight_total_scales_the_weight(site):
    served = counted(site, "weight-total")
    assert 120 <= served["canary"] <= 180, served  # 75% of 200: 150, sd 6.1


def test_canary_weight_at_the_total_sends_everything(site):
    assert {served_by(site, "everything") for _ in range(20)} == {"canary"}


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, "stable"),
        ({"X-Canary": "always"}, "canary"),
        ({"X-Canary": "never"}, "stable"),
        # ingress-nginx compares the value exactly.
        ({"X-Canary": "Always"}, "stable"),
        # The header decides before the cookie...
        ({"X-Canary": "never", "Cookie": "canary-session=always"}, "stable"),
        # ...unless its value decides nothing.
        ({"X-Canary": "maybe", "Cookie": "canary-session=always"}, "canary"),
        ({"Cookie": "theme=dark; canary-session=always"}, "canary"),
        ({"Cookie": "canary-session=never"}, "stable"),
        ({"Cookie": "canary-session=always-not"}, "stable"),
        ({"Cookie": "other-canary-session=always"}, "stable"),
    ],
)
def test_canary_by_header_then_cookie(site, headers, expected):
    assert served_by(site, "header", **headers) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [("v2.1", "canary"), ("v2x1", "stable"), ("always", "stable"), ("V2.1", "stable")],
)
def test_canary_by_header_value(site, value, expected):
    assert served_by(site, "header-value", **{"X-Canary": value}) == expected


def test_header_and_cookie_never_beat_the_weight(site):
    assert served_by(site, "header-over-weight") == "canary"
    assert served_by(site, "header-over-weight", **{"X-Canary": "never"}) == "stable"
    assert served_by(site, "cookie-over-weight") == "canary"
    assert served_by(site, "cookie-over-weight", Cookie="canary-session=never") == "stable"


def test_canary_of_one_path_leaves_the_others(site):
    assert served_by(site, "paths", "/") == "stable"
    assert served_by(site, "paths", "/api/x") == "api-canary"


def test_canary_without_main_ingress_is_not_served(site):
    assert request(site.ports.http, "orphan", "/").status == 404
    assert ("default", "orphan-canary") not in site.model.served_ingresses
    assert ("default", "paths-canary") in site.model.served_ingresses


HOSTILE_CANARY_VALUES = [
    ("canary-by-header", 'X-Canary"; } load_module /e.so; #'),
    ("canary-by-header", "X_Canary"),
    ("canary-by-header", "$http_cookie"),
    ("canary-by-header-value", 'v2$" 1; } ssl_engine /e.so; map $x $y { "'),
    ("canary-by-header-value", "v2|.*"),
    ("canary-by-cookie", "c)=(.*"),
    ("canary-by-cookie", "c=always; x"),
    ("canary-weight", "30;"),
    ("canary-weight", "-1"),
    ("canary-weight", "9999999999"),
    ("canary-weight-total", "1000 load_module"),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE_CANARY_VALUES)
def test_hostile_canary_values_refuse_the_canary_only(tmp_path, key, value):
    annotations = {ANNOTATION + "canary": "true", ANNOTATION + "canary-by-header": "X-Canary"}
    annotations[ANNOTATION + key] = value
    hostile = ingress("hostile", rule("shop", path("/", "canary")), annotations=annotations)
    inputs = model.Inputs(
        ingresses=[main("shop-main", "shop"), hostile],
        services=[service("stable"), service("canary")],
        endpoint_slices=[
            endpoint_slice("stable", [("10.0.0.1", True)], 8080),
            endpoint_slice("canary", [("10.0.0.2", True)], 8080),
        ],
    )
    site = render_site(tmp_path, inputs)
    assert site.model.served_ingresses == (("default", "shop-main"),)
    (problem,) = site.model.problems
    assert (problem.name, problem.code) == ("hostile", "invalid")
    assert ANNOTATION + key in problem.reason and "\n" not in problem.reason
    assert all(not location.choices for location in site.model.servers[0].locations)
    assert nginx_test(tmp_path).returncode == 0
    for word in ("load_module", "ssl_engine", "cookie"):
        assert word not in site.rendered.files["edge.conf"].decode()


def test_canary_of_another_namespace_takes_no_host_it_does_not_own(tmp_path):
    """--host-owner namespace: a canary is a rule like any other, so another tenant's
    canary cannot send a host's requests to its own backend."""
    inputs = model.Inputs(
        ingresses=[
            main("shop-main", "shop"),
            ingress(
                "thief",
                rule("shop", path("/", "canary")),
                namespace="other",
                annotations={ANNOTATION + "canary": "true", ANNOTATION + "canary-weight": "100"},
            ),
        ],
        services=[service("stable"), service("canary", namespace="other")],
    )
    built = model.build(inputs, model.Options(host_owner="namespace"))
    assert built.served_ingresses == (("default", "shop-main"),)
    assert [p.code for p in built.problems if p.name == "thief"] == ["conflict"]
    merged = model.build(inputs, model.Options())
    assert ("other", "thief") in merged.served_ingresses


def test_second_canary_of_a_path_is_a_conflict():
    """ingress-nginx serves one canary per path; the oldest wins here."""
    inputs = model.Inputs(
        ingresses=[
            main("shop-main", "shop"),
            canary("first", "shop", canary_weight="10"),
            canary("second", "shop", canary_weight="20"),
        ]
    )
    inputs.ingresses[1]["metadata"]["creationTimestamp"] = "2021-01-01T00:00:00Z"
    built = model.build(inputs, model.Options())
    assert ("default", "second") not in built.served_ingresses
    (problem,) = [p for p in built.problems if p.name == "second"]
    assert problem.code == "conflict" and "default/first" in problem.reason


def test_canary_annotations_without_canary_true_are_ignored_with_warnings():
    annotations = {ANNOTATION + "canary-weight": "100", ANNOTATION + "canary": "false"}
    plain = ingress("plain", rule("shop", path("/", "stable")), annotations=annotations)
    built = model.build(model.Inputs(ingresses=[plain]), model.Options())
    assert ("default", "plain") in built.served_ingresses
    warnings = [p for p in built.problems if p.code == "warning"]
    assert [ANNOTATION + "canary-weight" in p.reason for p in warnings] == [True]
