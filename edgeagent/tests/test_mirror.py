"""mirror-target, mirror-host and mirror-request-body read as ingress-nginx's
annotations/mirror does, every value through the grammar; the golden rendering of both
modes (the traffic: test_mirror_traffic.py)."""

import dataclasses

import pytest
from edgeagent.controller import references
from hypothesis import given
from hypothesis import strategies as st
from test_hostile import scanned_by_gixy
from test_render_golden import DYNAMIC_LAYOUT, GOLDEN, assert_matches_golden

from edgeagent import annotations, manifests, model, render

PREFIX = "nginx.ingress.kubernetes.io/"
CASE = GOLDEN / "mirror"


def parsed(**values: str) -> annotations.Parsed:
    given_ = {PREFIX + key.replace("_", "-"): value for key, value in values.items()}
    return annotations.parse(given_, annotations.Config())


def statuses(result: annotations.Parsed) -> dict[str, str]:
    return {finding.key.removeprefix(PREFIX): finding.status for finding in result.findings}


@pytest.mark.parametrize(
    ("target", "scheme", "host", "port", "uri"),
    [
        ("http://localhost/mirror", "http", "localhost", None, "/mirror"),
        ("https://test.env.com/$request_uri", "https", "test.env.com", None, "/$request_uri"),
        ("https://test.env.com$request_uri", "https", "test.env.com", None, "$request_uri"),
        ("http://192.0.2.1:8080", "http", "192.0.2.1", 8080, ""),
        ("http://[2001:db8::1]:81/a?b=c&d", "http", "[2001:db8::1]", 81, "/a?b=c&d"),
        ("http://x/p$request_uri?from=edge", "http", "x", None, "/p$request_uri?from=edge"),
    ],
)
def test_the_targets_of_ingress_nginx_docs_and_e2e(target, scheme, host, port, uri):
    result = parsed(mirror_target=target)
    found = result.settings["mirror"]
    assert (found.scheme, found.host, found.port, found.uri) == (scheme, host, port, uri)
    assert found.host_header == host and found.request_body and found.service is None
    assert statuses(result) == {"mirror-target": "supported"}


@pytest.mark.parametrize(
    ("target", "service"),
    [
        ("http://shadow.team.svc:8000/", ("team", "shadow", 8000)),
        ("https://Shadow.Team.svc.cluster.local$request_uri", ("team", "shadow", 443)),
        ("http://shadow.team.svc.cluster.local", ("team", "shadow", 80)),
    ],
)
def test_a_cluster_service_is_named_for_the_model_to_resolve(target, service):
    assert parsed(mirror_target=target).settings["mirror"].service == service


def test_the_host_and_the_body_switch():
    result = parsed(
        mirror_target="http://192.0.2.1/",
        mirror_host="shadow.example:8080",
        mirror_request_body="off",
    )
    found = result.settings["mirror"]
    assert found.host_header == "shadow.example:8080" and not found.request_body
    assert set(statuses(result).values()) == {"supported"}


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("http://x$host$request_uri", "unsupported"),
        ("http://x/${request_uri}", "unsupported"),
        ("http://x/$request_uri_x", "invalid"),
        ("http://x/$request_uri$1", "unsupported"),
        ("http://$request_uri/", "invalid"),
        ("http://x:$request_uri", "invalid"),
        ("ftp://x/", "invalid"),
        ("http://x/a b", "invalid"),
        ('http://x/"; } load_module /e.so; #', "invalid"),
        ("http://x/\nssl_engine e;", "invalid"),
        ("http://x:0/", "invalid"),
        ("http://x:70000/", "invalid"),
        ("http://bad_name.team.svc/", "invalid"),
        ("http://x/" + "a" * 2048, "invalid"),
        ("", "invalid"),
    ],
)
def test_any_other_target_refuses_the_ingress(target, code):
    result = parsed(mirror_target=target)
    (finding,) = result.findings
    assert finding.status == "refused" and finding.code == code, finding
    assert result.refused and result.settings["mirror"] is None


def test_ingress_nginx_ignores_what_has_no_target_or_no_switch_value():
    assert statuses(parsed(mirror_host="shadow.example", mirror_request_body="off")) == {
        "mirror-host": "ignored",
        "mirror-request-body": "ignored",
    }
    result = parsed(mirror_target="http://192.0.2.1/", mirror_request_body="yes")
    assert result.settings["mirror"].request_body
    assert statuses(result)["mirror-request-body"] == "ignored"


@pytest.mark.parametrize("host", ["x; } load_module /e.so; #", "a b", "*.example", "x:0"])
def test_a_host_that_is_no_host_name_refuses_even_without_a_target(host):
    assert parsed(mirror_host=host).refused
    assert parsed(mirror_target="http://192.0.2.1/", mirror_host=host).refused


@given(st.text(max_size=60))
def test_a_target_is_refused_or_renders_only_its_grammar(text):
    """Whatever the text, what reaches nginx is a URI of plain characters whose one
    variable is $request_uri, never running on into another name."""
    result = parsed(mirror_target="http://192.0.2.1" + text)
    found = result.settings["mirror"]
    if found is None:
        assert result.refused
        return
    uri = annotations.mirror.render_uri(found.uri)
    rest = uri.replace("$request_uri", "")
    assert "$" not in rest and not set(rest) & set(" ;{}\"'\\#\n\r\t")


def test_the_golden_rendering_in_the_dynamic_mode():
    inputs, _ = manifests.load([CASE / "input"])
    built = model.build(inputs, model.Options(upstreams_without_endpoints=True))
    files = {
        **render.render(built, DYNAMIC_LAYOUT).files,
        "nginx.conf": render.render_main(dataclasses.replace(DYNAMIC_LAYOUT, output_dir="/srv")),
    }
    assert_matches_golden(files, CASE / "expected-dynamic")


def test_a_service_mirror_follows_its_endpoints():
    """The model resolves the Service at each build: without ready endpoints nothing is
    mirrored (a warning), with them again."""
    inputs, _ = manifests.load([CASE / "input"])
    shadow = [s for s in inputs.endpoint_slices if s["metadata"]["name"] == "shadow"]
    built = model.build(inputs, model.Options())
    (server,) = [s for s in built.servers if s.host == "service.example.com"]
    assert [annotations.mirror.mirrors(location) for location in server.locations] == [True]
    for entry in shadow[0]["endpoints"]:
        entry["conditions"]["ready"] = False
    built = model.build(inputs, model.Options())
    (server,) = [s for s in built.servers if s.host == "service.example.com"]
    assert [annotations.mirror.mirrors(location) for location in server.locations] == [False]
    assert any("mirror/service" in f"{p.namespace}/{p.name}" for p in built.problems)


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_gixy_finds_nothing(tmp_path, mode):
    """gixy-ng (SSRF-prone proxy_pass, host spoofing, header checks) on both kinds of
    target, in both modes."""
    site, scan, findings = scanned_by_gixy(tmp_path, CASE / "input", mode)
    assert scan.returncode == 0 and findings == [], scan.stdout + scan.stderr
    assert any(loc.settings.mirror for s in site.model.servers for loc in s.locations)


def test_the_controller_follows_the_service_a_target_names():
    """Its Service and EndpointSlices wake the controller as a backend's do."""
    inputs, _ = manifests.load([CASE / "input"])
    refs = references(inputs.ingresses, "nginx.ingress.kubernetes.io")
    assert ("mirror", "shadow") in refs.services
