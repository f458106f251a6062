"""custom-headers as ingress-nginx >= 1.10 (annotations/customheaders, its docs and
global-allowed-response-headers): the ConfigMap's data set on every answer of the
Ingress, each header allowed by the operator; through a real nginx in both modes, and
the golden rendering."""

import pytest
from edgeagent.controller import references
from support_http import Backends, request
from support_nginx import NginxRunner, assert_only_rendered_directives, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret
from test_hostile import scanned_by_gixy
from test_render_golden import DYNAMIC_LAYOUT, GOLDEN, LAYOUT, assert_matches_golden

from edgeagent import annotations, cli, manifests, migrate, model, render

PREFIX = "nginx.ingress.kubernetes.io/"
CASE = GOLDEN / "custom-headers"
ALLOWED = annotations.Config(global_allowed_response_headers=("X-Frame-Options", "x-served-by"))


def config_map(name: str, data: dict, namespace: str = "default") -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": namespace},
        "data": data,
    }


def built_with(value: str, data: dict | None, config=ALLOWED) -> model.Model:
    objects = model.Inputs()
    objects.services.append(service("app"))
    objects.endpoint_slices.append(endpoint_slice("app", [("10.0.0.1", True)], 8080))
    if data is not None:
        objects.config_maps.append(config_map("headers", data))
    objects.ingresses.append(
        ingress("i", rule("h", path("/", "app")), annotations={PREFIX + "custom-headers": value})
    )
    return model.build(objects, model.Options(annotations=config))


def headers_of(built: model.Model):
    (server,) = built.servers
    return server.locations[0].settings.custom_headers.headers


@pytest.mark.parametrize("value", ["headers", "default/headers"])
def test_the_configmap_of_the_ingress_namespace_is_read(value):
    built = built_with(value, {"X-Frame-Options": "DENY", "X-Served-By": "edge; v1"})
    assert headers_of(built) == (("X-Frame-Options", "DENY"), ("X-Served-By", "edge; v1"))
    assert not built.problems


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (None, "does not exist"),
        ({"Server": "edge"}, "not allowed by global-allowed-response-headers"),
        ({"X-Frame-Options": 'DENY"; } load_module /e.so; #'}, "header value"),
        ({"X-Frame-Options": "$host"}, "header value"),
        ({"X-Frame-Options": "a\nb"}, "header value"),
        ({"X-Frame-Options\n": "DENY"}, "header name"),
        ({"X Frame": "DENY"}, "header name"),
        ({f"X-{n}": "v" for n in range(65)}, "more than 64"),
    ],
)
def test_an_unusable_configmap_denies_the_paths_and_says_why(data, words):
    built = built_with("headers", data)
    assert headers_of(built) is None  # render answers 503
    (problem,) = built.problems
    assert words in problem.reason and "its paths answer 503" in problem.reason


def test_nothing_is_allowed_by_default():
    built = built_with("headers", {"X-Frame-Options": "DENY"}, annotations.Config())
    assert headers_of(built) is None
    assert "(none)" in built.problems[0].reason


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("other/headers", "unsupported"),
        ("headers; } load_module /e.so; #", "invalid"),
        ("a/b/c", "invalid"),
        ("", "invalid"),
    ],
)
def test_another_namespace_or_a_name_outside_the_grammar_refuses_the_ingress(value, code):
    built = built_with(value, {"X-Frame-Options": "DENY"})
    assert built.servers == () and built.served_ingresses == ()
    assert [problem.code for problem in built.problems] == [code]


def test_migrate_reproduces_the_allow_list_of_ingress_nginx_configmap():
    report = migrate.configmap({"global-allowed-response-headers": "X-Frame-Options,X-Served-By"})
    text = migrate.as_text([], report)
    assert 'edgeagent_global_allowed_response_headers: ["X-Frame-Options", "X-Served-By"]' in text


def test_the_controller_holds_only_the_configmaps_ingresses_name():
    named = ingress("i", annotations={PREFIX + "custom-headers": "headers"}, namespace="ns")
    elsewhere = ingress("j", annotations={PREFIX + "custom-headers": "other/x"}, namespace="ns")
    refs = references([named, elsewhere], PREFIX.rstrip("/"))
    assert refs.config_maps == {("ns", "headers")}


@pytest.mark.parametrize(
    ("layout", "expected"), [(LAYOUT, "expected"), (DYNAMIC_LAYOUT, "expected-dynamic")]
)
def test_the_golden_rendering(layout, expected):
    inputs, _ = manifests.load([CASE / "input"])
    options = model.Options(annotations=ALLOWED, upstreams_without_endpoints=True)
    built = model.build(inputs, options)
    problems = "".join(f"{cli.problem_line(p)}\n" for p in built.problems)
    files = {**render.render(built, layout).files, "problems.txt": problems.encode()}
    assert_matches_golden(files, CASE / expected)


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        app = backends.start("app")
        objects = model.Inputs()
        objects.services.append(service("app"))
        objects.endpoint_slices.append(endpoint_slice("app", [(app.host, True)], app.port))
        objects.config_maps.append(
            config_map("headers", {"X-Frame-Options": "DENY", "X-Served-By": "edge"})
        )
        objects.secrets.append(tls_secret("tls", cli.self_signed("tls", ("tls.example.com",))))
        for name, value, tls in (
            ("headers", "headers", False),
            ("tls", "headers", True),
            ("missing", "missing", False),
        ):
            objects.ingresses.append(
                ingress(
                    name,
                    rule(f"{name}.example.com", path("/", "app")),
                    annotations={PREFIX + "custom-headers": value},
                    tls=[{"hosts": [f"{name}.example.com"], "secretName": "tls"}] if tls else None,
                )
            )
        built = render_site(
            tmp_path_factory.mktemp("headers"),
            objects,
            model.Options(annotations=ALLOWED),
            dynamic_mode=request.param == "dynamic",
        )
        runner.start(built)
        yield built
    finally:
        runner.stop_all()
        backends.stop_all()


def test_every_answer_carries_the_headers_the_backends_replaced(site):
    sent = {"X-Echo-Set-Header": "X-Frame-Options:SAMEORIGIN,X-Other:kept"}
    answer = request(site.ports.http, "headers.example.com", "/", headers=sent)
    assert answer.status == 200 and answer.echo["backend"] == "app"
    assert answer.all_headers("x-frame-options") == ["DENY"]
    assert answer.headers["x-served-by"] == "edge" and answer.headers["x-other"] == "kept"


def test_a_tls_host_keeps_its_hsts_beside_them(site):
    answer = request(site.ports.https, "tls.example.com", "/", tls=True)
    assert answer.status == 200 and answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["strict-transport-security"].startswith("max-age=")


def test_a_missing_configmap_answers_503(site):
    assert request(site.ports.http, "missing.example.com", "/").status == 503
    (problem,) = site.model.problems
    assert "does not exist" in problem.reason


def test_only_the_expected_directives_are_rendered(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing(tmp_path, mode):
    """gixy-ng's header checks (add_header redefinition: HSTS is restated) come out clean."""
    options = model.Options(annotations=ALLOWED)
    site, scan, findings = scanned_by_gixy(tmp_path, CASE / "input", mode, options)
    assert scan.returncode == 0 and findings == [], scan.stdout + scan.stderr
    assert any(s.locations[0].settings.custom_headers.headers for s in site.model.servers)
