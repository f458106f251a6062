"""ingress-nginx's traffic annotations through a real nginx to real backends: canary
Ingresses in both modes, cookie session affinity in the dynamic mode (and its refusal in
the static one).

Shares are counted over a few hundred requests with bounds about five standard deviations
wide: a fair draw fails them less than once in a million runs. Nothing waits on time.
"""

import collections
import json
import subprocess
import threading
from pathlib import Path

import pytest
from edgeagent.control import Control
from support_http import Backend, Backends, _EchoHandler, _EchoServer, request
from support_nginx import (
    NginxRunner,
    assert_only_rendered_directives,
    echo_site,
    nginx_test,
    render_site,
)
from support_objects import endpoint_slice, ingress, path, rule, service
from test_hostile import GIXY, ports_without_443

from edgeagent import dynamic, manifests, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
OLD = "2020-01-01T00:00:00Z"
SERVICES = ("stable", "canary", "api-stable", "api-canary")
DRAWS = 200
GOLDEN_TRAFFIC = Path(__file__).resolve().parent / "golden" / "traffic" / "input"


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
        "header-pattern": {
            "canary_by_header": "X-Canary",
            "canary_by_header_pattern": r"^v2\.[0-9]+$|beta",
        },
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
    directory = tmp_path_factory.mktemp("canary")
    with echo_site(directory, SERVICES, site_objects, request.param == "dynamic") as built:
        yield built


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


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("v2.10", "canary"),
        ("v2x1", "stable"),
        ("my-beta-build", "canary"),  # unanchored, as ngx.re.match
        ("BETA", "stable"),  # case-sensitive
        ("always", "stable"),  # a pattern replaces "always" and "never"
    ],
)
def test_canary_by_header_pattern(site, value, expected):
    assert served_by(site, "header-pattern", **{"X-Canary": value}) == expected


def test_header_value_wins_over_the_pattern():
    keys = {
        "canary_by_header": "X",
        "canary_by_header_value": "v2",
        "canary_by_header_pattern": "v",
    }
    built = model.build(
        model.Inputs(ingresses=[main("m", "shop"), canary("c", "shop", **keys)]), model.Options()
    )
    (location,) = built.servers[0].locations
    assert location.canary[1].header_value == "v2" and location.canary[1].header_pattern is None
    (warning,) = [p for p in built.problems if p.code == "warning"]
    assert "canary-by-header-value is set too" in warning.reason


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
    ("canary-by-header-pattern", '^v2" 1; } load_module /e.so; map $x $y { "'),
    ("canary-by-header-pattern", "(?<name>v2)"),
    ("canary-by-header-pattern", "v2\\"),
    ("canary-by-header-pattern", "[[:alpha:]]"),
    ("canary-by-header-pattern", "*v2"),
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


# Session affinity: the dynamic mode's Lua balancer (the static mode refuses it).
STICKY = tuple(f"sticky-{n}" for n in range(3))
FRAGILE = ("fragile-0", "fragile-1")
CHROME_51 = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/51.0.2704.103 Safari/537.36"


def affine(name: str, host: str, service_name: str, **keys) -> dict:
    """An Ingress with `affinity: cookie`; keys: annotation names with "_" for "-"."""
    annotations = {ANNOTATION + "affinity": "cookie"}
    annotations |= {ANNOTATION + key.replace("_", "-"): value for key, value in keys.items()}
    return ingress(name, rule(host, path("/", service_name)), annotations=annotations)


def pool(name: str, backends: list) -> tuple[dict, dict]:
    """A Service and one EndpointSlice of several backends (all on their own ports, so
    one slice per backend: an EndpointSlice port is the same for all its endpoints)."""
    slices = [
        endpoint_slice(name, [(b.host, True)], b.port, name=f"{name}-{n}")
        for n, b in enumerate(backends)
    ]
    return service(name), slices


def affinity_objects(started: dict) -> model.Inputs:
    objects = model.Inputs()
    for name, members in (("sticky", STICKY), ("fragile", FRAGILE)):
        svc, slices = pool(name, [started[m] for m in members])
        objects.services.append(svc)
        objects.endpoint_slices.extend(slices)
    objects.ingresses.extend(
        [
            affine("balanced", "balanced", "sticky"),
            affine(
                "persistent",
                "persistent",
                "sticky",
                affinity_mode="persistent",
                session_cookie_name="route",
                session_cookie_path="/app",
                session_cookie_domain="persistent.example",
                session_cookie_max_age="3600",
                session_cookie_expires="60",
                session_cookie_secure="true",
                session_cookie_samesite="none",
                session_cookie_conditional_samesite_none="true",
            ),
            affine(
                "moves",
                "moves",
                "fragile",
                affinity_mode="persistent",
                session_cookie_change_on_failure="true",
            ),
            affine("stays", "stays", "fragile", affinity_mode="persistent"),
        ]
    )
    return objects


class _OneRequestHandler(_EchoHandler):
    """Closes each connection after its answer, so that a stopped backend refuses the
    next request at once, as a dead pod does (no idle keep-alive connection answers)."""

    protocol_version = "HTTP/1.0"


def one_request_backend(name: str, host: str) -> Backend:
    server = _EchoServer((host, 0), _OneRequestHandler)
    server.backend_name = name
    threading.Thread(target=server.serve_forever, daemon=True, name=name).start()
    return Backend(name, host, server.server_address[1], server)


class AffinitySite:
    def __init__(self, directory, started: dict) -> None:
        self.started = started
        self.site = render_site(directory, affinity_objects(started), dynamic_mode=True)
        self.control = Control(str(directory / "dynamic"), f"127.0.0.1:{self.site.ports.status}")

    def get(self, host: str, cookie: str | None = None, **headers):
        if cookie:
            headers["Cookie"] = cookie
        return request(self.site.ports.http, host, "/", headers=headers)

    def new_session(self, host: str, backend: str | None = None) -> tuple[str, str]:
        """(cookie, backend) of a new session, on `backend` if given (new sessions go
        round the endpoints, so a few tries reach any of them)."""
        for _ in range(20):
            answer = self.get(host)
            cookie = answer.headers["set-cookie"].split(";")[0]
            if backend in (None, answer.backend):
                return cookie, answer.backend
        raise AssertionError(f"no new session of {host} reached {backend}")

    def push_peers(self, service_name: str, members: tuple[str, ...]) -> None:
        upstream = next(u.name for u in self.site.model.upstreams if u.service == service_name)
        peers = tuple((self.started[m].address, 1) for m in members)
        self.control.push(dynamic.State({upstream: peers}, {}, {}), full=False)


@pytest.fixture
def affinity_site(tmp_path):
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in STICKY}
        for n, name in enumerate(FRAGILE):
            started[name] = one_request_backend(name, f"127.0.0.{20 + n}")
            backends.started.append(started[name])
        built = AffinitySite(tmp_path, started)
        runner.start(built.site)
        built.control.push(dynamic.state_of(built.site.model), full=True)
        yield built
    finally:
        runner.stop_all()
        backends.stop_all()


def test_balanced_affinity_keeps_a_session_on_its_endpoint(affinity_site):
    first = affinity_site.get("balanced")
    name, _, rest = first.headers["set-cookie"].partition("=")
    key, *attributes = rest.split("; ")
    assert name == "INGRESSCOOKIE" and attributes == ["Path=/", "HttpOnly"]
    for _ in range(15):
        again = affinity_site.get("balanced", f"{name}={key}")
        assert again.backend == first.backend and "set-cookie" not in again.headers
    # Sessions, not requests, are spread: 30 new ones all on one of 3 endpoints would
    # happen once in 10^14 runs.
    assert len({affinity_site.get("balanced").backend for _ in range(30)}) > 1


def test_persistent_affinity_cookie_attributes(affinity_site):
    cookie = affinity_site.get("persistent").headers["set-cookie"]
    name, *attributes = cookie.split("; ")
    assert name.startswith("route=")
    assert [a.split("=")[0] for a in attributes] == [
        "Expires",
        "Max-Age",
        "Domain",
        "Path",
        "Secure",
        "HttpOnly",
        "SameSite",
    ]
    assert {"Max-Age=3600", "Domain=persistent.example", "Path=/app", "SameSite=None"} <= set(
        attributes
    )
    # Browsers that mishandle SameSite=None get the cookie without it.
    old_chrome = affinity_site.get("persistent", **{"User-Agent": CHROME_51})
    assert "SameSite" not in old_chrome.headers["set-cookie"]


def test_persistent_session_moves_only_when_its_endpoint_is_gone(affinity_site):
    cookie, backend = affinity_site.new_session("persistent")
    others = tuple(name for name in STICKY if name != backend)
    affinity_site.push_peers("sticky", (*others, backend))  # another order, same peers
    assert affinity_site.get("persistent", cookie).backend == backend
    affinity_site.push_peers("sticky", others)
    moved = affinity_site.get("persistent", cookie)
    assert moved.backend in others
    new_cookie = moved.headers["set-cookie"].split(";")[0]
    assert new_cookie != cookie
    assert {affinity_site.get("persistent", new_cookie).backend for _ in range(5)} == {
        moved.backend
    }


def test_change_on_failure_moves_the_session_and_its_cookie(affinity_site):
    moving, _ = affinity_site.new_session("moves", "fragile-0")
    staying, _ = affinity_site.new_session("stays", "fragile-0")
    affinity_site.started["fragile-0"].stop()
    moved = affinity_site.get("moves", moving)
    assert moved.backend == "fragile-1"
    assert moved.headers["set-cookie"].split(";")[0] != moving
    # Without change-on-failure the request is retried elsewhere, and the cookie stays.
    stayed = affinity_site.get("stays", staying)
    assert stayed.backend == "fragile-1" and "set-cookie" not in stayed.headers


def test_static_mode_refuses_affinity_and_names_the_dynamic_mode():
    inputs = model.Inputs(ingresses=[affine("sticky", "shop", "stable")])
    static = model.build(inputs, model.Options())
    (problem,) = static.problems
    assert problem.code == "unsupported" and "--upstreams dynamic" in problem.reason
    assert static.served_ingresses == ()
    assert model.build(inputs, model.Options(dynamic=True)).served_ingresses == (
        ("default", "sticky"),
    )


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("affinity", "ip"),
        ("affinity-mode", "sticky"),
        ("session-cookie-name", "route; Domain=evil"),
        ("session-cookie-path", "/a,b"),
        ("session-cookie-domain", "Evil.example"),
        ("session-cookie-max-age", "-1"),
        ("session-cookie-expires", "1e9"),
        ("session-cookie-samesite", "None; Secure"),
        ("session-cookie-secure", "yes"),
    ],
)
def test_malformed_affinity_values_refuse_the_ingress(key, value):
    obj = affine("sticky", "shop", "stable", **{key.replace("-", "_"): value})
    if key == "affinity":
        obj["metadata"]["annotations"][ANNOTATION + key] = value
    built = model.build(model.Inputs(ingresses=[obj]), model.Options(dynamic=True))
    assert built.served_ingresses == ()
    assert [p.code for p in built.problems] == ["invalid"]


def test_canary_maps_hold_only_what_the_templates_write(site):
    found = assert_only_rendered_directives(site.directory / "nginx.conf")
    assert any(directive == "split_clients" for directive, _, _ in found)


def test_affinity_settings_hold_only_what_the_templates_write(affinity_site):
    found = assert_only_rendered_directives(affinity_site.site.directory / "nginx.conf")
    specs = [args[1] for directive, args, _ in found if args[:1] == ("$edgeagent_affinity",)]
    assert "persistent,route,/app,persistent.example,3600,60,1,None,1,0" in specs


@pytest.mark.parametrize(("value", "served"), [("sticky", True), ("legacy", False)])
def test_affinity_canary_behavior_sticky_is_served_legacy_refused(value, served):
    keys = {"canary_weight": "50", "affinity_canary_behavior": value}
    inputs = model.Inputs(ingresses=[main("m", "shop"), canary("c", "shop", **keys)])
    built = model.build(inputs, model.Options(dynamic=True))
    assert (("default", "c") in built.served_ingresses) is served
    if not served:
        (refusal,) = [p for p in built.problems if p.name == "c" and p.code == "unsupported"]
        assert "'legacy' is refused" in refusal.reason


def test_memo_follows_a_canary_change():
    """The memo reuses a host's Server while its claims are the same objects: a canary's
    new weight, or its Service's new endpoints, must still reach the model."""
    services = [service("stable"), service("canary")]
    slices = [
        endpoint_slice(n, [(f"10.0.0.{i}", True)], 80)
        for i, n in enumerate(("stable", "canary"), 1)
    ]
    memo = model.Memo()
    stable_main = main("m", "shop")
    for weight, canary_address in (("10", "10.0.0.2"), ("90", "10.0.0.2"), ("90", "10.0.0.9")):
        slices[1] = endpoint_slice("canary", [(canary_address, True)], 80)
        inputs = model.Inputs(
            ingresses=[stable_main, canary("c", "shop", canary_weight=weight)],
            services=services,
            endpoint_slices=list(slices),
        )
        assert model.build(inputs, model.Options(), memo) == model.build(inputs, model.Options())


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_on_canaries(tmp_path, mode):
    """gixy-ng on the canary golden case: nothing in the dynamic mode. The static mode's
    `proxy_pass http://$edgeagent_t...` (a canary's choice, as a Gateway API match's) is
    taken for a host name that needs a resolver; it always holds one of the upstream
    blocks' names, which nginx finds without DNS (the routing tests send traffic there)."""
    inputs, _ = manifests.load([GOLDEN_TRAFFIC])
    site = render_site(tmp_path, inputs, ports=ports_without_443(), dynamic_mode=mode == "dynamic")
    assert nginx_test(tmp_path).returncode == 0
    scan = subprocess.run(
        [GIXY, "--format", "json", str(tmp_path / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(scan.stdout)
    expected = set() if mode == "dynamic" else {"missing_resolver"}
    assert {finding["plugin"] for finding in findings} == expected, scan.stdout
    assert all("$edgeagent_t" in finding["config"] for finding in findings)
    assert site.model.servers
