"""TLS passthrough (ssl-passthrough with --enable-ssl-passthrough; passthrough.py,
render_stream.py): which hosts are passed through and what is reported, then real nginx with
Debian's stream module in both upstream modes: a TLS backend with its own certificate,
another TLS host on the same port served by the edge, the client's address through the
stream module to the allow lists, with and without a balancer's PROXY protocol header."""

import dataclasses
import http.client
import json
import socket
import ssl

import kubernetes
import pytest
import test_properties as properties
from agentlab import Edge, eventually
from agentlab import endpoint_slice as lab_endpoint_slice
from agentlab import rule as lab_rule
from cryptography import x509
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st
from support_http import common_name, free_ports, request
from support_nginx import (
    Ports,
    assert_only_rendered_directives,
    layout_for,
    nginx_test,
    render_site,
    write_rendered,
)
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret
from test_render_golden import (
    DYNAMIC_LAYOUT,
    DYNAMIC_VERSION,
    GOLDEN,
    LAYOUT,
    assert_matches_golden,
)

from edgeagent import annotations, cli, dynamic, grammar, manifests, model, render

PREFIX = "nginx.ingress.kubernetes.io/"
PASSTHROUGH = {PREFIX + "ssl-passthrough": "true"}
ON = model.Options(annotations=annotations.Config(enable_ssl_passthrough=True))
PASSED = "pass.example"  # passed through to the TLS backend
TERMINATED = "web.example"  # a TLS host of the edge on the same port
CLIENT_LET_IN = "127.0.0.7"
CLIENT_TURNED_AWAY = "127.0.0.8"
BALANCER = "127.0.0.9"


def problems_of(built: model.Model, name: str) -> list[model.Problem]:
    return [p for p in built.problems if p.name == name]


def passthrough_inputs(*ingresses: dict, namespace: str = "default") -> model.Inputs:
    return model.Inputs(
        ingresses=list(ingresses),
        services=[service("secure", namespace=namespace), service("web")],
        endpoint_slices=[
            endpoint_slice("secure", [("10.1.0.5", True)], 8443, namespace=namespace),
            endpoint_slice("web", [("10.1.0.6", True)], 8080),
        ],
    )


# Which hosts, and what is reported (pure)


def test_without_the_flag_an_ingress_asking_for_passthrough_is_refused():
    asking = ingress("secure", rule(PASSED, path("/", "secure")), annotations=PASSTHROUGH)
    built = model.build(passthrough_inputs(asking), model.Options())
    assert built.served_ingresses == () and built.passthrough == ()
    (problem,) = problems_of(built, "secure")
    assert problem.code == "unsupported"
    assert "--enable-ssl-passthrough" in problem.reason and "terminate" in problem.reason


def test_false_is_served_as_without_it():
    off = ingress("secure", rule(PASSED, path("/", "secure")), annotations={**PASSTHROUGH})
    off["metadata"]["annotations"][PREFIX + "ssl-passthrough"] = "false"
    built = model.build(passthrough_inputs(off), model.Options())
    assert built.served_ingresses == (("default", "secure"),) and built.problems == ()


def test_a_host_is_passed_to_the_backend_of_its_root_path_and_other_paths_are_http_only():
    asking = ingress(
        "secure",
        rule(PASSED, path("/", "secure"), path("/api", "web")),
        annotations=PASSTHROUGH,
    )
    built = model.build(passthrough_inputs(asking), ON)
    (host,) = built.passthrough
    assert (host.host, host.namespace, host.name) == (PASSED, "default", "secure")
    assert host.upstream == model.upstream_name("default", "secure", 80)
    (warning,) = problems_of(built, "secure")
    assert warning.code == "warning" and "/api" in warning.reason
    # Plain HTTP still answers the host's rules.
    assert [s.host for s in built.servers] == [PASSED]


def test_without_a_root_path_the_default_backend_is_used_else_it_is_reported():
    by_default = ingress(
        "secure",
        rule(PASSED, path("/x", "web")),
        annotations=PASSTHROUGH,
        default_backend={"service": {"name": "secure", "port": {"number": 80}}},
    )
    (host,) = model.build(passthrough_inputs(by_default), ON).passthrough
    assert host.upstream == model.upstream_name("default", "secure", 80)
    without = ingress("secure", rule(PASSED, path("/x", "web")), annotations=PASSTHROUGH)
    built = model.build(passthrough_inputs(without), ON)
    assert built.passthrough == ()
    assert any(p.code == "invalid" and "no backend" in p.reason for p in built.problems)


def test_a_wildcard_host_is_never_passed_through():
    wildcard = ingress(
        "secure", rule("*.pass.example", path("/", "secure")), annotations=PASSTHROUGH
    )
    built = model.build(passthrough_inputs(wildcard), ON)
    assert built.passthrough == ()
    assert any(p.code == "unsupported" and "wildcard" in p.reason for p in built.problems)


def terminating(name: str, namespace: str, created: str) -> dict:
    return ingress(
        name,
        rule(PASSED, path("/", "web")),
        namespace=namespace,
        created=created,
        tls=[{"hosts": [PASSED], "secretName": "web-tls"}],
    )


def test_a_newer_passthrough_never_captures_a_host_another_tenant_terminates():
    older = terminating("web", "default", "2026-01-01T00:00:00Z")
    newer = ingress(
        "secure",
        rule(PASSED, path("/", "secure")),
        namespace="tenant",
        created="2026-02-01T00:00:00Z",
        annotations=PASSTHROUGH,
    )
    built = model.build(passthrough_inputs(older, newer, namespace="tenant"), ON)
    assert built.passthrough == ()
    (conflict,) = [p for p in problems_of(built, "secure") if "ssl-passthrough" in p.reason]
    assert conflict.code == "conflict" and "default/web" in conflict.reason


def test_an_older_passthrough_wins_over_a_newer_tls_host_and_the_loser_is_told():
    older = ingress(
        "secure",
        rule(PASSED, path("/", "secure")),
        namespace="tenant",
        created="2026-01-01T00:00:00Z",
        annotations=PASSTHROUGH,
    )
    newer = terminating("web", "default", "2026-02-01T00:00:00Z")
    built = model.build(passthrough_inputs(older, newer, namespace="tenant"), ON)
    assert [h.host for h in built.passthrough] == [PASSED]
    (conflict,) = [p for p in problems_of(built, "web") if "spec.tls" in p.reason]
    assert conflict.code == "conflict" and "tenant/secure" in conflict.reason


def test_of_two_passthrough_ingresses_with_other_backends_the_older_wins():
    first = ingress(
        "secure",
        rule(PASSED, path("/", "secure")),
        created="2026-01-01T00:00:00Z",
        annotations=PASSTHROUGH,
    )
    second = ingress(
        "other",
        rule(PASSED, path("/", "web")),
        created="2026-02-01T00:00:00Z",
        annotations=PASSTHROUGH,
    )
    built = model.build(passthrough_inputs(first, second), ON)
    (host,) = built.passthrough
    assert host.name == "secure"
    (conflict,) = [p for p in problems_of(built, "other") if "ssl-passthrough" in p.reason]
    assert conflict.code == "conflict" and "default/secure" in conflict.reason


CASE = GOLDEN / "passthrough"


@pytest.mark.parametrize("mode", ["static", "dynamic"])
def test_render_matches_golden(mode):
    """edge.conf behind the stream module, stream.conf, the standalone main config that
    loads the stream module and includes it (EDGEAGENT_UPDATE_GOLDEN=1 rewrites them)."""
    inputs, _ = manifests.load([CASE / "input"])
    options = ON
    layout = LAYOUT
    if mode == "dynamic":
        options = dataclasses.replace(ON, dynamic=True, upstreams_without_endpoints=True)
        layout = DYNAMIC_LAYOUT
    built = model.build(inputs, options)
    rendered = render.render(built, layout)
    standalone = dataclasses.replace(layout, output_dir="/srv/edge")
    problems = "".join(f"{cli.problem_line(p)}\n" for p in built.problems)
    files = {
        **rendered.files,
        "nginx.conf": render.render_main(standalone, ssl_passthrough=True),
        "problems.txt": problems.encode(),
    }
    if mode == "dynamic":
        files["state.txt"] = dynamic.encode(dynamic.state_of(built), DYNAMIC_VERSION, full=True)
    expected = CASE / ("expected" if mode == "static" else "expected-dynamic")
    assert_matches_golden(files, expected)


CHECKED = render.Layout("127.0.0.1:80", "127.0.0.1:443", "/srv/edge", "/d.pem", "/d.pem")


@pytest.mark.parametrize(
    "changes",
    [
        {"trusted_proxies": ("10.0.0.0/8",)},  # X-Forwarded-For cannot pass the stream hop
        {"gateway_addresses": ("127.0.0.1",)},
        {"ssl_passthrough_listen": "10.0.0.1:442"},
        {"ssl_passthrough_backend_listen": "127.0.0.1:442"},
        {"ssl_passthrough_listen": "127.0.0.2:443"},
        {"ssl_passthrough_backend_listen": "127.0.0.1:80"},
    ],
)
def test_layouts_that_cannot_pass_through_are_refused(changes):
    render.check_layout(dataclasses.replace(CHECKED, **changes))  # fine without passthrough
    with pytest.raises(grammar.Invalid):
        render.check_layout(dataclasses.replace(CHECKED, **changes), ssl_passthrough=True)


def test_dynamic_mode_reloads_for_a_passed_through_backends_endpoints_only():
    """No stream Lua in Debian: those peers are in stream.conf, so a new generation; the
    peers of the other backends still travel without one."""
    dynamic = DYNAMIC_LAYOUT
    options = dataclasses.replace(ON, dynamic=True, upstreams_without_endpoints=True)
    asking = ingress("secure", rule(PASSED, path("/", "secure")), annotations=PASSTHROUGH)
    web = ingress("web", rule(TERMINATED, path("/", "web")))
    inputs = passthrough_inputs(asking, web)
    before = render.render(model.build(inputs, options), dynamic)
    assert b"server 10.1.0.5:8443;" in before.files["stream.conf"]
    inputs.endpoint_slices[1]["endpoints"][0]["addresses"] = ["10.1.0.16"]
    assert render.render(model.build(inputs, options), dynamic).generation == before.generation
    inputs.endpoint_slices[0]["endpoints"][0]["addresses"] = ["10.1.0.15"]
    after = render.render(model.build(inputs, options), dynamic)
    assert after.generation != before.generation
    assert b"server 10.1.0.15:8443;" in after.files["stream.conf"]
    assert after.blocks.keys() == before.blocks.keys()


# Real nginx


@pytest.fixture
def serve(tmp_path, nginx_runner, http_backends):
    """serve(dynamic_mode, **layout fields) -> (site, TLS backend, edge's pair of TERMINATED)."""

    def start(dynamic_mode: bool, **layout_changes):
        secure = http_backends.start("secure-backend", tls=True)
        web = http_backends.start("web-backend")
        pair = cli.self_signed(TERMINATED, (TERMINATED,))
        allow = {PREFIX + "whitelist-source-range": f"{CLIENT_LET_IN}/32"}
        inputs = model.Inputs(
            ingresses=[
                ingress("secure", rule(PASSED, path("/", "secure")), annotations=PASSTHROUGH),
                ingress(
                    "web",
                    rule(TERMINATED, path("/", "web")),
                    annotations=allow,
                    tls=[{"hosts": [TERMINATED], "secretName": "web-tls"}],
                ),
            ],
            services=[service("secure"), service("web")],
            endpoint_slices=[
                endpoint_slice("secure", [(secure.host, True)], secure.port),
                endpoint_slice("web", [(web.host, True)], web.port),
            ],
            secrets=[tls_secret("web-tls", pair)],
        )
        proxy, backend_hop = free_ports(2)
        site = render_site(
            tmp_path,
            inputs,
            ON,
            dynamic_mode=dynamic_mode,
            ssl_passthrough_listen=f"127.0.0.1:{proxy}",
            ssl_passthrough_backend_listen=f"127.0.0.1:{backend_hop}",
            **layout_changes,
        )
        assert nginx_test(tmp_path).returncode == 0, nginx_test(tmp_path).stderr
        nginx_runner.start(site)
        return site

    return start


MODES = pytest.mark.parametrize("dynamic_mode", [False, True], ids=["static", "dynamic"])


@MODES
def test_the_passed_through_host_gets_the_backends_certificate_and_answer(serve, dynamic_mode):
    site = serve(dynamic_mode)
    answer = request(site.ports.https, PASSED, tls=True)
    # The backend terminated TLS itself: its own certificate, its own answer.
    assert common_name(answer.certificate) == "secure-backend"
    assert answer.backend == "secure-backend"
    assert "x-forwarded-for" not in answer.echo["headers"]  # nothing of the edge's


@MODES
def test_another_tls_host_on_the_same_port_is_the_edges_with_the_clients_address(
    serve, dynamic_mode
):
    site = serve(dynamic_mode)
    answer = request(site.ports.https, TERMINATED, tls=True, source=CLIENT_LET_IN)
    assert common_name(answer.certificate) == TERMINATED
    assert answer.backend == "web-backend"
    headers = answer.echo["headers"]
    assert (headers["x-real-ip"], headers["x-forwarded-for"]) == (CLIENT_LET_IN, CLIENT_LET_IN)
    # The port the client connected to, not the internal one behind the stream module.
    assert headers["x-forwarded-port"] == str(site.ports.https)
    assert headers["x-forwarded-proto"] == "https"
    turned_away = request(site.ports.https, TERMINATED, tls=True, source=CLIENT_TURNED_AWAY)
    assert turned_away.status == 403
    # No name, or an unknown one: the edge's default server, never a backend's TLS.
    assert common_name(request(site.ports.https, "other.example", tls=True).certificate) == (
        "edgeagent-default"
    )
    # Plain HTTP is the http servers' as before.
    assert request(site.ports.http, TERMINATED, source=CLIENT_LET_IN).status == 308


def proxied_tls_request(port: int, source: str, client: str, sni: str) -> tuple[int, str, dict]:
    """HTTPS on a raw socket from `source` (the balancer) after a PROXY v1 header naming
    `client`: (status, the certificate's common name, the echoed request or {})."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=10, source_address=(source, 0)
    ) as raw:
        raw.sendall(f"PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n".encode())
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
        with context.wrap_socket(raw, server_hostname=sni) as sock:
            certificate = x509.load_der_x509_certificate(sock.getpeercert(binary_form=True))
            sock.sendall(f"GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n".encode())
            answer = http.client.HTTPResponse(sock)
            answer.begin()
            body = answer.read()
    echoed = json.loads(body) if answer.getheader("content-type") == "application/json" else {}
    return answer.status, common_name(certificate), echoed


@MODES
def test_a_balancers_proxy_protocol_client_reaches_the_allow_lists(serve, dynamic_mode):
    site = serve(dynamic_mode, trusted_proxies=(f"{BALANCER}/32",), proxy_protocol=True)
    port = site.ports.https
    status, name, echoed = proxied_tls_request(port, BALANCER, CLIENT_LET_IN, TERMINATED)
    assert (status, name) == (200, TERMINATED)
    assert echoed["headers"]["x-real-ip"] == CLIENT_LET_IN
    status, _, _ = proxied_tls_request(port, BALANCER, CLIENT_TURNED_AWAY, TERMINATED)
    assert status == 403
    # Anyone but the balancer is who it is, whatever its header says.
    status, _, _ = proxied_tls_request(port, CLIENT_TURNED_AWAY, CLIENT_LET_IN, TERMINATED)
    assert status == 403
    # The passed-through backend gets the TLS bytes, without any PROXY header.
    status, name, echoed = proxied_tls_request(port, BALANCER, CLIENT_LET_IN, PASSED)
    assert (status, name, echoed["backend"]) == (200, "secure-backend", "secure-backend")


def test_without_passthrough_the_standalone_configuration_has_no_stream(tmp_path):
    site = render_site(tmp_path, model.Inputs(), ports=Ports.free())
    assert site.rendered.files["stream.conf"].count(b"stream {") == 0
    main = (tmp_path / "nginx.conf").read_bytes()
    assert b"stream.conf" not in main and b"ngx_stream_module" not in main
    assert nginx_test(tmp_path).returncode == 0


# The daemon end to end (dynamic mode): the agent stages stream.conf with edge.conf, validates
# both under the main config (apply.py's shadow), and reloads for a passed-through backend's
# endpoints, counted as a structural change.


@pytest.fixture(scope="module")
def edge(tmp_path_factory):
    proxy, backend_hop = free_ports(2)
    options = {
        "upstreams": "dynamic",
        "enable-ssl-passthrough": True,
        "ssl-passthrough-listen": f"127.0.0.1:{proxy}",
        "ssl-passthrough-backend-listen": f"127.0.0.1:{backend_hop}",
    }
    with Edge(tmp_path_factory.mktemp("edge"), **options) as started:
        started.agent.wait_ready()
        yield started


def certificate_name(port: int, host: str) -> str | None:
    try:
        return common_name(request(port, host, tls=True).certificate)
    except (OSError, http.client.HTTPException):
        return None


def test_the_agent_passes_a_host_through_and_reloads_for_its_endpoints(edge, http_backends):
    first, second = (http_backends.start(name, tls=True) for name in ("secure-a", "secure-b"))
    service_body = {
        "metadata": {"name": "secure"},
        "spec": {"ports": [{"name": "https", "port": 443}]},
    }
    edge.core.create_namespaced_service("default", service_body)

    def endpoints(backend) -> None:
        body = lab_endpoint_slice("secure", backend.port, [backend.host], [], port_name="https")
        try:
            edge.discovery.create_namespaced_endpoint_slice("default", body)
        except kubernetes.client.ApiException:
            edge.discovery.replace_namespaced_endpoint_slice("secure", "default", body)

    endpoints(first)
    edge.apply_ingress("secure", [lab_rule(PASSED, "secure", port=443)], annotations=PASSTHROUGH)
    edge.apply_service("web", addresses=["127.0.0.2"])
    edge.apply_ingress("web", [lab_rule(TERMINATED, "web")], tls=[{"hosts": [TERMINATED]}])
    https = edge.nginx.https_port
    eventually(lambda: certificate_name(https, PASSED) == "secure-a")
    answer = eventually(lambda: request(https, TERMINATED, tls=True))
    assert common_name(answer.certificate) == "edge-default" and answer.backend == "web1"
    assert answer.echo["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert answer.echo["headers"]["x-forwarded-port"] == str(https)
    edge.settled()
    structural = edge.agent.metric("edgeagent_reloads_by_cause_total", cause="structure")

    endpoints(second)  # an EndpointSlice change only
    eventually(lambda: certificate_name(https, PASSED) == "secure-b")
    edge.settled()
    assert edge.agent.metric("edgeagent_reloads_by_cause_total", cause="structure") > structural
    assert edge.agent.metric("edgeagent_reloads_by_cause_total", cause="endpoints") == 0


# Any objects, half of the Ingresses asking for passthrough: nginx accepts what is rendered
# and nothing but the templates' directives reaches it (as test_properties.py without it).


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
)
@given(data=st.data())
def test_any_objects_with_passthrough_give_a_configuration_nginx_accepts(data, tmp_path_factory):
    pair = cli.self_signed("a.example", ("a.example",))
    ingresses = data.draw(st.lists(properties.INGRESSES, max_size=4), label="ingresses")
    for each in ingresses[::2]:
        metadata = each.get("metadata") if isinstance(each, dict) else None
        if isinstance(metadata, dict) and isinstance(metadata.get("annotations"), dict):
            # Alone: most drawn annotations refuse their Ingress (test_properties.py's aim).
            metadata["annotations"] = {PREFIX + "ssl-passthrough": "true"}
        spec = each.get("spec") if isinstance(each, dict) else None
        if isinstance(spec, dict) and spec.get("defaultBackend") is None:
            # A backend for hosts without a path / (most drawn rules have none).
            spec["defaultBackend"] = {"service": {"name": "app", "port": {"number": 80}}}
    names = properties.SERVICE_NAMES_USED
    inputs = model.Inputs(
        ingresses=ingresses,
        services=[data.draw(properties.services(name), label=name) for name in names],
        endpoint_slices=[
            data.draw(properties.endpoint_slices(name), label=f"{name} slice") for name in names
        ],
        secrets=data.draw(properties.secrets_strategy(pair), label="secrets"),
    )
    built = model.build(inputs, ON)
    event(f"passed through: {min(len(built.passthrough), 2)}")
    workdir = tmp_path_factory.mktemp("passthrough-properties")
    default = workdir / cli.DEFAULT_CERTIFICATE_FILE
    cli.write_file(default, pair.certificate_pem + pair.key_pem, cli.PRIVATE_MODE)
    layout = dataclasses.replace(
        layout_for(workdir, Ports(8080, 8443, 10246)),
        ssl_passthrough_listen="127.0.0.1:8442",
        ssl_passthrough_backend_listen="127.0.0.1:8441",
    )
    rendered = render.render(built, layout)
    write_rendered(workdir, layout, rendered, ssl_passthrough=True)
    tested = nginx_test(workdir)
    assert tested.returncode == 0, tested.stderr
    assert_only_rendered_directives(workdir / "nginx.conf")
    stream = rendered.files["stream.conf"].decode()
    for each in built.passthrough:
        assert not each.host.startswith("*.") and stream.count(f" {each.host} ") == 2


@MODES
def test_a_passed_through_host_without_endpoints_is_closed_never_terminated(
    tmp_path, nginx_runner, dynamic_mode
):
    inputs = model.Inputs(
        ingresses=[ingress("secure", rule(PASSED, path("/", "secure")), annotations=PASSTHROUGH)],
        services=[service("secure")],
    )
    proxy, backend_hop = free_ports(2)
    site = render_site(
        tmp_path,
        inputs,
        ON,
        dynamic_mode=dynamic_mode,
        ssl_passthrough_listen=f"127.0.0.1:{proxy}",
        ssl_passthrough_backend_listen=f"127.0.0.1:{backend_hop}",
    )
    assert b"edgeagent_passthrough_closed;" in site.rendered.files["stream.conf"]
    nginx_runner.start(site)
    with pytest.raises((ssl.SSLError, ConnectionError)):
        request(site.ports.https, PASSED, tls=True)
