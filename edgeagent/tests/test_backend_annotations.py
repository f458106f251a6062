"""The backend annotations (annotations/backend.py and its neighbours) through a real
nginx to real backends, in both modes: gRPC clients and servers (grpcio) for
backend-protocol GRPC and GRPCS; echo backends, a backend that answers 502 and a closed
port for proxy-next-upstream; three replicas for upstream-hash-by."""

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import grpc
import pytest
import support_grpc
from edgeagent.annotations import Config, parse
from support_http import Backends, free_port, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
GRPC_HOST = "grpc.example.com"
# gRPC backends listen on their own loopback addresses, apart from Backends' 127.0.0.x.
GRPC_ADDRESSES = {"greeter": "127.0.3.1", "greeter-tls": "127.0.3.2"}


class Site:
    def __init__(self, site, certificate: bytes) -> None:
        self.site = site
        self.certificate = certificate

    def grpc(self, host: str = GRPC_HOST) -> grpc.Channel:
        return support_grpc.channel(self.site.ports.https, host, self.certificate)


def grpc_objects(backends: dict, pair) -> model.Inputs:
    objects = model.Inputs()
    for name, backend in backends.items():
        objects.services.append(service(name, {"grpc": 50051}))
        objects.endpoint_slices.append(
            endpoint_slice(name, [(backend.host, True)], backend.port, port_name="grpc")
        )
    tls = [{"hosts": [GRPC_HOST], "secretName": "grpc-tls"}]
    objects.secrets.append(tls_secret("grpc-tls", pair))
    objects.ingresses.extend(
        [
            ingress(
                "greeter",
                rule(GRPC_HOST, path("/edge.Echo", "greeter", "grpc")),
                annotations={ANNOTATION + "backend-protocol": "GRPC"},
                tls=tls,
            ),
            ingress(
                "greeter-tls",
                rule("grpcs.example.com", path("/", "greeter-tls", "grpc")),
                annotations={ANNOTATION + "backend-protocol": "grpcs"},
                tls=[{"hosts": ["grpcs.example.com"], "secretName": "grpc-tls"}],
            ),
        ]
    )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    runner = NginxRunner()
    names = ("grpc.example.com", "grpcs.example.com")
    pair = cli.self_signed(GRPC_HOST, names)
    backend_pair = cli.self_signed("greeter-tls")
    grpc_backends = {
        "greeter": support_grpc.start("greeter", GRPC_ADDRESSES["greeter"]),
        "greeter-tls": support_grpc.start(
            "greeter-tls", GRPC_ADDRESSES["greeter-tls"], backend_pair
        ),
    }
    try:
        rendered = render_site(
            tmp_path_factory.mktemp("backends"),
            grpc_objects(grpc_backends, pair),
            dynamic_mode=request.param == "dynamic",
        )
        assert rendered.model.problems == ()
        runner.start(rendered)
        yield Site(rendered, pair.certificate_pem)
    finally:
        runner.stop_all()
        for backend in grpc_backends.values():
            backend.server.stop(grace=None)


def test_grpc_backend_answers_a_grpc_client_over_the_https_listener(site):
    with site.grpc() as channel:
        answer = support_grpc.say(channel, "hello")
        assert (answer["backend"], answer["request"]) == ("greeter", "hello")
        # the forwarding headers, as for HTTP backends
        metadata = answer["metadata"]
        assert metadata["x-forwarded-proto"] == "https"
        assert metadata["x-forwarded-host"] == GRPC_HOST
        assert metadata["x-real-ip"] == "127.0.0.1"


def test_grpc_server_streaming_goes_through(site):
    with site.grpc() as channel:
        assert support_grpc.count(channel, 50) == list(range(50))


def test_grpcs_backend_gets_tls_from_nginx(site):
    with site.grpc("grpcs.example.com") as channel:
        answer = support_grpc.say(channel, "over tls")
        assert (answer["backend"], answer["request"]) == ("greeter-tls", "over tls")


def test_grpc_paths_are_routed_like_any_other(site):
    """Only the Ingress's path (the gRPC service's name) reaches the backend."""
    with site.grpc() as channel, pytest.raises(grpc.RpcError) as raised:
        channel.unary_unary("/other.Service/Say")(b"x", timeout=support_grpc.SECONDS)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED  # nginx's 404


@pytest.mark.parametrize(
    ("offered", "chosen"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], "http/1.1")]
)
def test_https_listeners_offer_http2_and_keep_http1(site, offered, chosen):
    """As ingress-nginx's (use-http2): HTTP/2 is chosen when the client offers it (gRPC
    clients need it), HTTP/1.1 still when it does not."""
    context = ssl.create_default_context(cadata=site.certificate.decode())
    context.set_alpn_protocols(offered)
    address = ("127.0.0.1", site.site.ports.https)
    with (
        socket.create_connection(address, timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=GRPC_HOST) as connection,
    ):
        assert connection.selected_alpn_protocol() == chosen


def test_plain_http_redirects_grpc_hosts_with_tls(site):
    """Port 80 stays HTTP/1.x as in ingress-nginx (no h2c): a TLS host redirects."""
    answer = request(site.site.ports.http, GRPC_HOST, "/edge.Echo/Say", method="POST")
    assert (answer.status, answer.headers["location"]) == (
        308,
        f"https://{GRPC_HOST}/edge.Echo/Say",
    )


class _BadGateway(BaseHTTPRequestHandler):
    """A backend that answers every request 502, as one behind a broken proxy does."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.send_response(502)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        """Quiet."""


# Each Ingress's Service has its own endpoints (so its own upstream and down marks): a
# good echo backend and a bad one, either answering 502 or a closed port.
RETRY_INGRESSES = {
    # host: (bad endpoint, annotations)
    "retry-502.example": ("502", {"proxy-next-upstream": "error timeout http_502"}),
    "keep-502.example": ("502", {}),
    "refused.example": ("closed", {}),
    "refused-off.example": ("closed", {"proxy-next-upstream": "off"}),
    "refused-one-try.example": ("closed", {"proxy-next-upstream-tries": "1"}),
    "refused-two-tries.example": (
        "closed",
        {"proxy-next-upstream-tries": "2", "proxy-next-upstream-timeout": "30"},
    ),
}


@pytest.fixture(scope="module", params=["static", "dynamic"])
def retry_site(request, tmp_path_factory):
    runner = NginxRunner()
    backends = Backends()
    bad_gateway = ThreadingHTTPServer(("127.0.4.1", 0), _BadGateway)
    bad_gateway.daemon_threads = True
    threading.Thread(target=bad_gateway.serve_forever, daemon=True).start()
    try:
        good = backends.start("good")
        bad = {
            "502": ("127.0.4.1", bad_gateway.server_address[1]),
            "closed": ("127.0.4.2", free_port("127.0.4.2")),
        }
        objects = model.Inputs()
        for number, (host, (kind, annotations)) in enumerate(RETRY_INGRESSES.items()):
            name = f"retry-{number}"
            objects.services.append(service(name))
            bad_host, bad_port = bad[kind]
            # one slice per port: the good and the bad endpoint listen on different ports
            objects.endpoint_slices.extend(
                [
                    endpoint_slice(name, [(good.host, True)], good.port, name=f"{name}-good"),
                    endpoint_slice(name, [(bad_host, True)], bad_port, name=f"{name}-bad"),
                ]
            )
            annotations = {ANNOTATION + key: value for key, value in annotations.items()}
            objects.ingresses.append(
                ingress(name, rule(host, path("/", name)), annotations=annotations)
            )
        rendered = render_site(
            tmp_path_factory.mktemp("retry"), objects, dynamic_mode=request.param == "dynamic"
        )
        assert rendered.model.problems == ()
        runner.start(rendered)
        yield rendered
    finally:
        runner.stop_all()
        backends.stop_all()
        bad_gateway.shutdown()
        bad_gateway.server_close()


def statuses(site, host: str, count: int = 6) -> list[int]:
    return [request(site.ports.http, host, "/").status for _ in range(count)]


@pytest.mark.parametrize(
    "host", ["retry-502.example", "refused.example", "refused-two-tries.example"]
)
def test_next_upstream_retries_on_the_good_endpoint(retry_site, host):
    """Round robin sends every other request to the bad endpoint: each is tried again on
    the good one (a refused connection by nginx's default, a 502 when asked)."""
    assert statuses(retry_site, host) == [200] * 6


@pytest.mark.parametrize(
    "host", ["keep-502.example", "refused-off.example", "refused-one-try.example"]
)
def test_next_upstream_off_or_one_try_answers_the_bad_endpoints_502(retry_site, host):
    """A 502 is passed on unless listed; `off` and one try pass the failure on."""
    answers = statuses(retry_site, host)
    assert 502 in answers and set(answers) <= {200, 502}


@pytest.mark.parametrize(
    ("annotations", "expected"),
    [
        ({"proxy-next-upstream": "error timeout http_502"}, ("error timeout http_502", None, None)),
        ({"proxy-next-upstream": "off "}, ("off", None, None)),
        (
            {"proxy-next-upstream": "http_503\nnon_idempotent"},
            ("http_503 non_idempotent", None, None),
        ),
        ({"proxy-next-upstream-tries": "0", "proxy-next-upstream-timeout": "0"}, (None, 0, 0)),
        ({"proxy-next-upstream-tries": "1000"}, (None, 1000, None)),
    ],
)
def test_next_upstream_values(annotations, expected):
    parsed = parse({ANNOTATION + key: value for key, value in annotations.items()}, Config())
    assert not parsed.refused
    settings = parsed.settings
    assert (
        settings["next_upstream"],
        settings["next_upstream_tries"],
        settings["next_upstream_timeout"],
    ) == expected


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("proxy-next-upstream", "off error"),
        ("proxy-next-upstream", "error error"),
        ("proxy-next-upstream", "error; proxy_pass http://evil"),
        ("proxy-next-upstream-tries", "-1"),
        ("proxy-next-upstream-tries", "1001"),
        ("proxy-next-upstream-tries", "3s;"),
        ("proxy-next-upstream-timeout", "2147484"),
    ],
)
def test_next_upstream_refuses_what_nginx_would_not_read(key, value):
    (finding,) = parse({ANNOTATION + key: value}, Config()).findings
    assert (finding.status, finding.code) == ("refused", "invalid")
    assert ANNOTATION + key in finding.reason and repr(value) in finding.reason


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("proxy-next-upstream", "http_501"),
        # Its validator keeps the blanks: one at most after each condition, none before.
        ("proxy-next-upstream", " off "),
        ("proxy-next-upstream", "error  timeout"),
        ("proxy-next-upstream", ""),
        ("proxy-next-upstream-tries", "3s"),
        ("proxy-next-upstream-timeout", "1s"),
    ],
)
def test_next_upstream_values_ingress_nginx_cannot_read_leave_the_default(key, value):
    """ingress-nginx's proxy parser replaces them by its default and serves the Ingress."""
    parsed = parse({ANNOTATION + key: value}, Config())
    (finding,) = parsed.findings
    assert (finding.status, finding.code) == ("ignored", "warning")
    assert ANNOTATION + key in finding.reason and repr(value) in finding.reason
    assert not parsed.refused
    assert (
        parsed.settings["next_upstream"],
        parsed.settings["next_upstream_tries"],
        parsed.settings["next_upstream_timeout"],
    ) == (None, None, None)


@pytest.fixture(scope="module", params=["static", "dynamic"])
def hash_site(request, tmp_path_factory):
    """One Service of three replicas behind a hashing Ingress and a plain one."""
    runner = NginxRunner()
    backends = Backends()
    try:
        replicas = [backends.start(f"replica-{number}") for number in range(3)]
        objects = model.Inputs(
            services=[service("replicas")],
            # every replica listens on a port of its own: one slice each
            endpoint_slices=[
                endpoint_slice("replicas", [(r.host, True)], r.port, name=f"replicas-{r.name}")
                for r in replicas
            ],
            ingresses=[
                ingress(
                    "hashed",
                    rule("hashed.example", path("/", "replicas")),
                    annotations={ANNOTATION + "upstream-hash-by": "$arg_user"},
                ),
                ingress(
                    "round-robin",
                    rule("round-robin.example", path("/", "replicas")),
                    annotations={ANNOTATION + "load-balance": "round_robin"},
                ),
            ],
        )
        rendered = render_site(
            tmp_path_factory.mktemp("hash"), objects, dynamic_mode=request.param == "dynamic"
        )
        assert rendered.model.problems == ()
        runner.start(rendered)
        yield rendered
    finally:
        runner.stop_all()
        backends.stop_all()


def served_by(site, host: str, target: str) -> str:
    answer = request(site.ports.http, host, target)
    assert answer.status == 200
    return answer.backend


def test_upstream_hash_by_keeps_a_key_on_one_endpoint_and_spreads_the_keys(hash_site):
    first = {user: served_by(hash_site, "hashed.example", f"/?user={user}") for user in range(30)}
    # in another order and number than the first pass, which round robin would not repeat
    again = {
        user: served_by(hash_site, "hashed.example", f"/x?user={user}")
        for user in range(29, -1, -2)
    }
    assert again == {user: first[user] for user in again}
    # Spread over the replicas: all three as a rule, but a replica whose connection failed
    # once (the test backends' small accept queue, in a clean-clone run on an idle machine)
    # takes no new key for the balancer's fail timeout, as nginx's max_fails would.
    assert len(set(first.values())) >= 2


def test_round_robin_spreads_every_key(hash_site):
    seen = {served_by(hash_site, "round-robin.example", "/?user=1") for _ in range(6)}
    assert seen == {"replica-0", "replica-1", "replica-2"}


@pytest.mark.parametrize(
    "key",
    ["$request_uri", " $remote_addr ", "$http_x_user-$cookie_session", "u:$arg_id/$host", "$args"],
)
def test_upstream_hash_by_keys(key):
    parsed = parse({ANNOTATION + "upstream-hash-by": key}, Config())
    assert not parsed.refused and parsed.settings["upstream_hash_by"] == key.strip()


@pytest.mark.parametrize(
    "key",
    [
        "",
        "plain-text",
        "$request_urix",  # nginx would read an unknown variable
        "$document_root",
        "$request_uri $host",
        "${host}",
        '"$host"',
        "$host;",
        "$" + "a" * 300,
    ],
)
def test_upstream_hash_by_refuses_keys_outside_its_grammar(key):
    (finding,) = parse({ANNOTATION + "upstream-hash-by": key}, Config()).findings
    assert (finding.status, finding.code) == ("refused", "invalid")


@pytest.mark.parametrize(
    ("annotations", "statuses"),
    [
        ({"load-balance": "round_robin"}, ["supported"]),
        ({"load-balance": "ewma"}, ["ignored"]),
        ({"load-balance": "ewma", "upstream-hash-by": "$uri"}, ["ignored", "supported"]),
        ({"load-balance": "least_conn"}, ["refused"]),
    ],
)
def test_load_balance(annotations, statuses):
    parsed = parse({ANNOTATION + key: value for key, value in annotations.items()}, Config())
    assert [finding.status for finding in parsed.findings] == statuses
