"""HTTPRoute `retry` (the suite's HTTPRouteRetry and HTTPRouteRetryWithTimeouts,
re-expressed) through a real nginx to real HTTP backends, in both modes, and its
refusals on the pure core.

nginx retries on another endpoint, each at most once per request: every retried Service
here has three endpoints (three echo backends), and each case its own Service, so that
nginx's failure marks (a retried 5xx counts as a failure for 10 s) of one case never
shape another's. Tries are counted by what the backends saw."""

import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from edgeagent.gateway import retries
from edgeagent.gateway import routing as gateway_routing
from edgeagent.gateway.routes import Unsupported, parse_route
from support_gateway import (
    INFRA,
    backend_ref,
    gateway,
    gateway_class,
    http_route,
    listener,
    namespace,
    parent,
)
from support_http import free_port, request
from support_nginx import echo_site
from support_objects import endpoint_slice, service

from edgeagent import model

ECHOES = ("echo-1", "echo-2", "echo-3")
ALL_CODES = [500, 502, 503, 504]
# Case path -> (retry, timeouts): each is a rule to a Service of its own (`pool-<n>`).
CASES = {
    "/code-500-attempts-1": ({"codes": [500], "attempts": 1}, None),
    "/code-500-attempts-1-asked-503": ({"codes": [500], "attempts": 1}, None),
    "/code-all-attempts-2": ({"codes": ALL_CODES, "attempts": 2}, None),
    "/no-retry": (None, None),
    "/backend-request-timeout": ({"attempts": 1}, {"backendRequest": "200ms"}),
    "/code-500-every-endpoint": ({"codes": [500]}, None),
}
SECONDS = 30  # for the backends' records of a request nginx gave up on


class _Failing(BaseHTTPRequestHandler):
    """An endpoint that answers every request 500 and counts them."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        self.server.count += 1
        self.send_response(500)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args) -> None:
        """Quiet."""


@pytest.fixture(scope="module")
def failing():
    server = ThreadingHTTPServer(("127.0.0.40", 0), _Failing)
    server.daemon_threads = True
    server.count = 0
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


def pool(name, backends) -> list[dict]:
    """A Service whose endpoints are `backends` ((host, port) pairs), a slice each."""
    made = [service(name, {"http": 8080}, namespace=INFRA)]
    for i, (host, port) in enumerate(backends):
        made.append(endpoint_slice(name, [(host, True)], port, namespace=INFRA, name=f"{name}-{i}"))
    return made


def rule(path, retry, timeouts, service_name):
    made = {
        "matches": [{"path": {"type": "PathPrefix", "value": path}}],
        "backendRefs": [backend_ref(service_name)],
    }
    if retry is not None:
        made["retry"] = retry
    if timeouts is not None:
        made["timeouts"] = timeouts
    return made


def objects(backends, failing_address, refusing_address) -> model.Inputs:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
    )
    echoes = [(backends[name].host, backends[name].port) for name in ECHOES]
    rules = []
    for i, (path, (retry, timeouts)) in enumerate(CASES.items()):
        for each in pool(f"pool-{i}", echoes):
            (inputs.services if each["kind"] == "Service" else inputs.endpoint_slices).append(each)
        rules.append(rule(path, retry, timeouts, f"pool-{i}"))
    # An endpoint that always fails beside one that answers: retried, every request
    # succeeds; not retried, the failing one's share fails.
    for name, retry in (("half-failing", {"codes": [500], "attempts": 1}), ("unretried", None)):
        for each in pool(name, [failing_address, echoes[0]]):
            (inputs.services if each["kind"] == "Service" else inputs.endpoint_slices).append(each)
        rules.append(rule(f"/{name}", retry, None, name))
    # HTTPRouteRetryConnectionError: an endpoint that refuses connections beside one
    # that answers.
    for each in pool("refusing", [refusing_address, echoes[0]]):
        (inputs.services if each["kind"] == "Service" else inputs.endpoint_slices).append(each)
    rules.append(rule("/connection-error", {"attempts": 1}, None, "refusing"))
    inputs.http_routes.append(
        http_route("retries", [parent("same-namespace")], hostnames=["retry.example"], rules=rules)
    )
    return inputs


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory, failing):
    with echo_site(
        tmp_path_factory.mktemp("retries"),
        ECHOES,
        lambda started: objects(
            started, failing.server_address, ("127.0.0.41", free_port("127.0.0.41"))
        ),
        request.param == "dynamic",
    ) as built:
        yield built


def tries(site, token, expected):
    """How many backends saw the request `token` marks, once `expected` have (nginx
    answers a timeout before the late backend records it) or SECONDS passed."""
    deadline = time.monotonic() + SECONDS
    while True:
        seen = sum(
            1
            for backend in site.backends.values()
            for each in backend.server.seen
            if each["headers"].get("x-try") == token
        )
        if seen >= expected or time.monotonic() > deadline:
            return seen
        time.sleep(0.05)


@pytest.mark.parametrize(
    ("target", "asked", "status", "expected_tries"),
    [
        ("/code-500-attempts-1", 500, 500, 2),  # one retry, then the last answer
        ("/code-500-attempts-1-asked-503", 503, 503, 1),  # not a code it retries
        ("/code-all-attempts-2", 502, 502, 3),
        ("/no-retry", 500, 500, 1),
        ("/code-500-every-endpoint", 500, 500, 3),  # no attempts: every endpoint once
    ],
)
def test_retry_on_codes_up_to_attempts(site, target, asked, status, expected_tries):
    token = str(uuid.uuid4())
    answer = request(
        site.ports.http,
        "retry.example",
        target,
        headers={"X-Echo-Status": str(asked), "X-Try": token},
    )
    assert answer.status == status
    assert tries(site, token, expected_tries) == expected_tries


def test_retry_with_a_backend_request_timeout(site):
    """HTTPRouteRetryWithTimeouts: each try waits backendRequest, then the next endpoint
    is tried; when the attempts are spent, 504."""
    token = str(uuid.uuid4())
    answer = request(
        site.ports.http,
        "retry.example",
        "/backend-request-timeout",
        headers={"X-Echo-Delay": "2", "X-Try": token},
    )
    assert answer.status == 504
    assert tries(site, token, 2) == 2


def test_a_retried_failure_reaches_the_endpoint_that_answers(site, failing):
    before = failing.count
    answers = [request(site.ports.http, "retry.example", "/half-failing") for _ in range(6)]
    assert [a.status for a in answers] == [200] * 6
    assert failing.count > before  # it was tried, and its 500 retried


def test_a_connection_error_is_retried(site):
    """Nothing listens on one of the two endpoints (the port is free): every request
    reaches the other."""
    answers = [request(site.ports.http, "retry.example", "/connection-error") for _ in range(6)]
    assert [a.backend for a in answers] == ["echo-1"] * 6


def test_without_retry_the_failing_endpoint_s_answers_reach_the_client(site):
    answers = [request(site.ports.http, "retry.example", "/unretried") for _ in range(6)]
    assert 500 in [a.status for a in answers]


def refusal(retry) -> str:
    route = http_route(
        "r", [parent("same-namespace")], rules=[rule("/", retry, None, "infra-backend-v1")]
    )
    parsed = parse_route(route)
    assert isinstance(parsed, Unsupported)
    return str(parsed)


@pytest.mark.parametrize(
    ("retry", "message"),
    [
        ({"codes": [501]}, "spec.rules[0].retry.codes[0] 501: nginx retries on"),
        ({"codes": [399]}, "must be an HTTP status code from 400 to 599"),
        ({"codes": 500}, "retry.codes must be a list"),
        ({"attempts": 0}, "retry.attempts must be an integer from 1 to 100"),
        ({"attempts": "2"}, "retry.attempts must be an integer"),
        ({"backoff": "soon"}, "retry.backoff"),
        ({"budget": 1}, "retry.budget is not served"),
    ],
)
def test_a_retry_nginx_cannot_serve_refuses_the_route(retry, message):
    assert message in refusal(retry)


def test_the_retry_is_nginx_s_next_upstream():
    retry = retries.parse({"codes": [503, 500, 500], "attempts": 2}, "retry")
    assert (retry.next_upstream, retry.tries) == ("error timeout http_500 http_503", 3)
    assert retries.parse({}, "retry").tries == 0


def served(*rules) -> model.Model:
    inputs = model.Inputs(
        gateway_classes=[gateway_class()],
        namespaces=[namespace(INFRA)],
        gateways=[gateway("same-namespace", listener())],
        services=[service("infra-backend-v1", {"http": 8080}, namespace=INFRA)],
        endpoint_slices=[
            endpoint_slice("infra-backend-v1", [("10.1.0.1", True)], 8080, namespace=INFRA)
        ],
        http_routes=[http_route("r", [parent("same-namespace")], rules=list(rules))],
    )
    options = model.Options()
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    return built


def test_a_backoff_is_served_without_it_and_reported():
    built = served(rule("/", {"codes": [500], "backoff": "100ms"}, None, "infra-backend-v1"))
    (problem,) = [p for p in built.problems if p.kind == "HTTPRoute"]
    assert problem.code == "unsupported"
    assert "retry.backoff is not served" in problem.reason
    (location,) = [loc for loc in built.default_server.locations if loc.path == "/"]
    assert location.settings.next_upstream == "error timeout http_500"


def test_rules_of_other_retries_on_one_location_are_not_retried_and_told():
    header = {"headers": [{"name": "x-retry", "value": "yes"}]}
    with_header = rule("/", {"codes": [502]}, None, "infra-backend-v1")
    with_header["matches"][0] |= header
    built = served(rule("/", {"codes": [500]}, None, "infra-backend-v1"), with_header)
    told = sorted(p.reason for p in built.problems if p.kind == "HTTPRoute")
    assert len(told) == 2 and all("another retry" in reason for reason in told)
    (location,) = [loc for loc in built.default_server.locations if loc.path == "/"]
    assert location.settings.next_upstream is None
