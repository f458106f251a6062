"""default-backend, custom-http-errors and disable-proxy-intercept-errors through a real
nginx to real backends, in both modes, as ingress-nginx's nginx.tmpl writes them and its
e2e tests expect (test/e2e/annotations/default_backend.go, customhttperrors.go): the
error-page backend is an echo backend, which shows the X-* headers it was sent. Then the
golden files, the grammar against hostile input, and the agent watching a default
backend's EndpointSlices (a reload in the static mode, none in the dynamic mode)."""

import dataclasses

import pytest
from agentlab import BACKEND_ADDRESSES, Edge, eventually
from agentlab import ingress as lab_ingress
from agentlab import rule as lab_rule
from support_http import Backends, free_port, request
from support_nginx import (
    NginxRunner,
    assert_only_rendered_directives,
    render_site,
    status_generation,
)
from support_objects import endpoint_slice, ingress, path, rule, service
from test_hostile import scanned_by_gixy
from test_render_golden import (
    DYNAMIC_LAYOUT,
    DYNAMIC_VERSION,
    GOLDEN,
    assert_matches_golden,
    rendered_case,
)

from edgeagent import annotations, controller, dynamic, manifests, migrate, model, render

PREFIX = "nginx.ingress.kubernetes.io/"
CONFIG = annotations.Config()
ERRORS = {PREFIX + "default-backend": "errors"}
# Ingress name: (its Service, annotations). "dead" has an endpoint nobody listens on (502).
SITES = {
    "fallback": ("empty", ERRORS),
    "missing": ("missing", ERRORS),
    "codes": ("app", {**ERRORS, PREFIX + "custom-http-errors": "404,502"}),
    "dead-codes": ("dead", {**ERRORS, PREFIX + "custom-http-errors": "502"}),
    "passed": (
        "app",
        {
            **ERRORS,
            PREFIX + "custom-http-errors": "404,502",
            PREFIX + "disable-proxy-intercept-errors": "true",
        },
    ),
    "dead-passed": (
        "dead",
        {
            **ERRORS,
            PREFIX + "custom-http-errors": "404,502",
            PREFIX + "disable-proxy-intercept-errors": "true",
        },
    ),
    "agent-pages": ("app", {PREFIX + "custom-http-errors": "404"}),
    "plain": ("empty", {}),
}
REQUEST_ID = "something-unique"


def site_objects(backends: dict, dead_port: int) -> model.Inputs:
    objects = model.Inputs()
    # errors: the default backend, on its first port as ingress-nginx picks it.
    objects.services.append(service("errors", {"pages": 8080, "http": 80}))
    objects.endpoint_slices.append(
        endpoint_slice(
            "errors", [(backends["errors"].host, True)], backends["errors"].port, "pages"
        )
    )
    objects.services.append(service("app"))
    objects.endpoint_slices.append(
        endpoint_slice("app", [(backends["app"].host, True)], backends["app"].port)
    )
    objects.services.append(service("empty"))
    objects.endpoint_slices.append(endpoint_slice("empty", [("127.0.0.1", False)], 1))
    objects.services.append(service("dead"))
    objects.endpoint_slices.append(endpoint_slice("dead", [("127.0.0.1", True)], dead_port))
    for name, (backend, given) in SITES.items():
        objects.ingresses.append(
            ingress(name, rule(f"{name}.example.com", path("/", backend)), annotations=given)
        )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    directory = tmp_path_factory.mktemp("errorpages")
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: backends.start(name) for name in ("errors", "app")}
        options = model.Options(
            annotations=dataclasses.replace(CONFIG, default_backend_service="default/errors")
        )
        built = render_site(
            directory,
            site_objects(started, free_port()),
            options,
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(built)
        yield built
    finally:
        runner.stop_all()
        backends.stop_all()


def get(site, name: str, target: str = "/", **headers: str):
    return request(site.ports.http, f"{name}.example.com", target, headers=headers)


FORWARDED = ("x-real-ip", "x-forwarded-for", "x-forwarded-proto", "x-forwarded-host")


def sent(answer) -> dict[str, str]:
    """The X-* headers the error-page backend got, but the edge's forwarded headers."""
    return {
        name: value
        for name, value in answer.echo["headers"].items()
        if name.startswith("x-") and name not in FORWARDED and name != "x-forwarded-port"
    }


@pytest.mark.parametrize(("name", "service"), [("fallback", "empty"), ("missing", "missing")])
def test_the_default_backend_answers_for_a_service_without_endpoints(site, name, service):
    """As ingress-nginx's e2e test: its answer (200), the original URI, X-Code 503."""
    answer = get(site, name, "/alma/armud", **{"X-Request-ID": REQUEST_ID, "Accept": "text/html"})
    assert (answer.status, answer.backend) == (200, "errors")
    assert answer.echo["target"] == "/alma/armud"
    assert sent(answer) == {
        "x-code": "503",
        "x-format": "text/html",
        "x-namespace": "default",
        "x-ingress-name": name,
        "x-service-name": service,
        "x-service-port": "80",
        "x-request-id": REQUEST_ID,
    }


def test_a_backend_error_is_replaced_by_the_default_backend_page(site):
    """The page's status is the default backend's: the echo backend answers the
    X-Echo-Status it is sent, which reaches it among the client's headers."""
    answer = get(site, "codes", "/x?y=1", **{"X-Echo-Status": "404"})
    assert (answer.status, answer.backend) == (404, "errors")
    assert answer.echo["target"] == "/?y=1"
    headers = sent(answer)
    assert headers["x-code"] == "404"
    assert headers["x-original-uri"] == "/x?y=1"
    assert (headers["x-service-name"], headers["x-ingress-name"]) == ("app", "codes")
    assert len(headers["x-request-id"]) == 32 and "x-format" not in headers


def test_codes_not_listed_pass(site):
    answer = get(site, "codes", "/x", **{"X-Echo-Status": "500"})
    assert (answer.status, answer.backend) == (500, "app")


def test_nginx_s_own_error_is_replaced(site):
    answer = get(site, "dead-codes", "/down")
    assert (answer.status, answer.backend) == (200, "errors")
    assert sent(answer)["x-code"] == "502"
    assert sent(answer)["x-service-name"] == "dead"


def test_disable_proxy_intercept_errors_passes_the_backend_s_answers(site):
    answer = get(site, "passed", "/x", **{"X-Echo-Status": "404"})
    assert (answer.status, answer.backend) == (404, "app")
    answer = get(site, "dead-passed", "/down")
    assert (answer.status, answer.backend) == (200, "errors")
    assert sent(answer)["x-code"] == "502"


def test_without_the_annotation_the_agent_s_default_backend_answers(site):
    """--default-backend-service, as ingress-nginx's controller default backend."""
    answer = get(site, "agent-pages", "/x", **{"X-Echo-Status": "404"})
    assert (answer.status, answer.backend) == (404, "errors")
    assert sent(answer)["x-code"] == "404"


def test_without_a_default_backend_a_service_without_endpoints_answers_503(site):
    assert get(site, "plain").status == 503


def test_every_ingress_is_served_without_problems(site):
    assert {p.name for p in site.model.problems} == {"missing"}  # its Service does not exist
    assert len(site.model.served_ingresses) == len(SITES)


def test_only_the_directives_of_the_templates(site):
    found = assert_only_rendered_directives(site.directory / "nginx.conf")
    codes = {args[0] for directive, args, _ in found if directive == "error_page"}
    assert codes == {"404", "502"}
    intercepting = [args for directive, args, _ in found if directive == "proxy_intercept_errors"]
    # codes, dead-codes and agent-pages intercept; the named locations (one per server
    # and code: 2 + 1 + 2 + 2 + 1) do not.
    assert (intercepting.count(("on",)), intercepting.count(("off",))) == (3, 8)


# The golden files


def test_render_matches_golden():
    files, _ = rendered_case(GOLDEN / "errorpages" / "input")
    assert_matches_golden(files, GOLDEN / "errorpages" / "expected")


def test_dynamic_render_matches_golden():
    """The dynamic mode: the locations name their fallback for the balancer."""
    inputs, _ = manifests.load([GOLDEN / "errorpages" / "input"])
    built = model.build(inputs, model.Options(upstreams_without_endpoints=True, dynamic=True))
    rendered = render.render(built, DYNAMIC_LAYOUT)
    files = {
        "edge.conf": rendered.files["edge.conf"],
        "state.txt": dynamic.encode(dynamic.state_of(built), DYNAMIC_VERSION, full=True),
    }
    assert_matches_golden(files, GOLDEN / "errorpages" / "expected-dynamic")


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing(tmp_path, mode):
    """gixy-ng on the golden case's configuration: the named locations' headers included."""
    site, scan, found = scanned_by_gixy(tmp_path, GOLDEN / "errorpages" / "input", mode)
    assert scan.returncode == 0, scan.stdout + scan.stderr
    assert found == []
    assert site.model.servers


# The grammar


def findings(given: dict[str, str]) -> dict[str, annotations.Finding]:
    parsed = annotations.parse({PREFIX + k: v for k, v in given.items()}, CONFIG)
    return {finding.key[len(PREFIX) :]: finding for finding in parsed.findings}


HOSTILE = [
    ("custom-http-errors", "200"),
    ("custom-http-errors", "600"),
    ("custom-http-errors", "299"),
    ("custom-http-errors", "0404"),
    ("custom-http-errors", "404 503"),
    ("custom-http-errors", "404;"),
    ("custom-http-errors", "404\nerror_page 404 /etc/passwd"),
    ("custom-http-errors", "404,,503"),
    ("custom-http-errors", ""),
    ("custom-http-errors", "-404"),
    ("custom-http-errors", "+404"),
    ("custom-http-errors", "404 = @x"),
    ("custom-http-errors", "404," * 400),
    ("custom-http-errors", "٤٠٤"),
    ("default-backend", "kube-system/errors"),
    ("default-backend", "../errors"),
    ("default-backend", "errors; return 200"),
    ("default-backend", "errors\n}"),
    ("default-backend", "Errors"),
    ("default-backend", "1errors"),
    ("default-backend", "errors.other"),
    ("default-backend", ""),
    ("default-backend", "e" * 64),
    ("disable-proxy-intercept-errors", "yes please"),
]


@pytest.mark.parametrize(("key", "value"), HOSTILE)
def test_hostile_values_refuse_the_ingress(key, value):
    given = {key: value}
    if key == "disable-proxy-intercept-errors":
        given["custom-http-errors"] = "404"
    found = findings(given)[key]
    assert (found.status, found.code) == ("refused", "invalid")
    assert f"annotation {PREFIX}{key}" in found.reason


def test_codes_read_as_ingress_nginx_reads_them():
    settings = annotations.parse(
        {PREFIX + "custom-http-errors": " 503,404 ,\n404"}, CONFIG
    ).settings
    assert settings["custom_http_errors"] == (404, 503)
    assert settings["intercept_errors"] is True


def test_disable_proxy_intercept_errors_alone_is_ignored():
    found = findings({"disable-proxy-intercept-errors": "true"})["disable-proxy-intercept-errors"]
    assert (found.status, found.code) == ("ignored", "warning")


@pytest.mark.parametrize(
    "value", ["errors", "default/errors", "errors/", "/errors", "a/b/c", "A/errors"]
)
def test_the_agent_default_backend_is_namespace_and_name(value):
    parse = annotations.Config.__dataclass_fields__["default_backend_service"].metadata["parse"]
    if value == "default/errors":
        assert parse(value) == value
    else:
        with pytest.raises(ValueError, match="value"):
            parse(value)


# The agent: a default backend's EndpointSlices are watched as a rule's Service's.


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_the_agent_follows_the_default_backend_s_endpoints(tmp_path, mode):
    options = {"upstreams": mode}
    web1, web2, web3 = BACKEND_ADDRESSES[:3]
    with Edge(tmp_path, **options) as edge:
        edge.agent.wait_ready()
        edge.apply_service("errors", addresses=[web2])
        edge.apply_service("app", addresses=[])
        body = lab_ingress("pages", [lab_rule("pages.example.com", "app")], annotations=ERRORS)
        edge.networking.create_namespaced_ingress("default", body)
        eventually(lambda: edge.backend_of("pages.example.com") == "web2", timeout=30)
        answer = edge.get("pages.example.com", "/a")
        assert answer.echo["headers"]["x-code"] == "503"
        generation = status_generation(edge.nginx.status_port)

        edge.apply_service("app", addresses=[web1])
        eventually(lambda: edge.backend_of("pages.example.com") == "web1", timeout=30)
        edge.apply_service("app", addresses=[])
        eventually(lambda: edge.backend_of("pages.example.com") == "web2", timeout=30)
        edge.apply_service("errors", addresses=[])
        eventually(lambda: edge.backend_of("pages.example.com") == 503, timeout=30)
        edge.apply_service("errors", addresses=[web3])
        eventually(lambda: edge.backend_of("pages.example.com") == "web3", timeout=30)
        if mode == "dynamic":  # endpoints only: Lua switched, nothing reloaded
            assert status_generation(edge.nginx.status_port) == generation


# edgeagent migrate: the verdicts follow from the catalogue and the model's warnings.


def test_migrate_reports_the_annotations_supported():
    inputs, _ = manifests.load([GOLDEN / "errorpages" / "input"])
    reports = {
        report.name: report
        for report in migrate.ingresses(inputs, model.Options(), [])
        if report.namespace == "pages"
    }
    assert reports["codes"].verdict == migrate.SERVED
    assert {f.status for f in reports["codes"].annotations} == {"supported"}
    # Without a default backend: nginx's own pages, until edgeagent_default_backend_service.
    assert reports["nginx-pages"].verdict == migrate.WARNINGS
    assert reports["other-namespace"].verdict == migrate.REFUSED
    assert reports["bad-code"].verdict == migrate.REFUSED


def test_migrate_leaves_ingress_nginx_s_flag_out_of_the_configmap():
    """--default-backend-service is a flag of ingress-nginx's, never a ConfigMap key."""
    report = migrate.configmap({"default-backend-service": "ingress-nginx/errors"})
    assert report.role_variables == {}
    assert report.not_reproduced[0][2] == migrate.NO_ROLE_VARIABLE


def test_a_default_backend_is_a_service_the_agent_watches():
    """Its EndpointSlices' changes are a sync, as a rule's Service's (the agent test above
    shows it through traffic)."""
    named = controller.references(
        [ingress("pages", rule("a.example.com", path("/", "app")), annotations=ERRORS)],
        PREFIX.rstrip("/"),
    )
    assert named.services == {("default", "app"), ("default", "errors")}
