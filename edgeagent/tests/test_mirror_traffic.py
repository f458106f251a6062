"""mirror-target, mirror-host and mirror-request-body through a real nginx, in both modes,
as ingress-nginx's test/e2e/annotations/mirror.go and its docs say: each request of the
Ingress also goes to the target (a recording backend outside the cluster, or a cluster
Service resolved from its EndpointSlices), and the client's answer never depends on the
mirror (down, or holding the copy without answering)."""

import socket
import threading
import time

import pytest
from support_http import free_port, request
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service

from edgeagent import model

PREFIX = "nginx.ingress.kubernetes.io/"
# Generous: a busy machine may take long to pass a copy on; nothing here is timed.
WAIT_SECONDS = 30


class Holder:
    """A TCP server that takes requests and never answers: a mirror that hangs."""

    def __init__(self) -> None:
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        self.received: list[bytes] = []
        self.held: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            self.held.append(connection)
            connection.settimeout(WAIT_SECONDS)
            try:
                self.received.append(connection.recv(65536))
            except OSError:
                self.received.append(b"")

    def close(self) -> None:
        self.socket.close()
        for connection in self.held:
            connection.close()


def site_objects(backends, holder: Holder, down_port: int) -> model.Inputs:
    app, outside, shadow = backends["app"], backends["outside"], backends["shadow"]
    objects = model.Inputs()
    objects.services.extend([service("app"), service("shadow", {"http": 8000})])
    objects.endpoint_slices.extend(
        [
            endpoint_slice("app", [(app.host, True)], app.port),
            endpoint_slice("shadow", [(shadow.host, True)], shadow.port),
        ]
    )
    targets = {
        "outside": ({PREFIX + "mirror-target": f"http://{outside.address}/copy$request_uri"}),
        "service": {
            PREFIX + "mirror-target": "http://shadow.default.svc.cluster.local:8000$request_uri",
            PREFIX + "mirror-host": "shadow.example.com",
            PREFIX + "mirror-request-body": "off",
        },
        "down": {PREFIX + "mirror-target": f"http://127.0.0.1:{down_port}$request_uri"},
        "hanging": {PREFIX + "mirror-target": f"http://127.0.0.1:{holder.port}$request_uri"},
    }
    for name, annotations in targets.items():
        objects.ingresses.append(
            ingress(name, rule(f"{name}.example.com", path("/", "app")), annotations=annotations)
        )
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    holder = Holder()
    try:
        with echo_site(
            tmp_path_factory.mktemp("mirror"),
            ["app", "outside", "shadow"],
            lambda started: site_objects(started, holder, free_port()),
            request.param == "dynamic",
        ) as built:
            built.holder = holder
            yield built
    finally:
        holder.close()


def copies(backend, count: int) -> list[dict]:
    """The first `count` requests the backend recorded, once it has them."""
    deadline = time.monotonic() + WAIT_SECONDS
    while len(backend.server.seen) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return backend.server.seen[:count]


def test_every_ingress_is_served(site):
    assert not site.model.problems


def test_a_target_outside_the_cluster_gets_each_request_with_its_uri(site):
    seen = site.backends["outside"].server.seen
    before = len(seen)
    answer = request(
        site.ports.http, "outside.example.com", "/a/b?c=1", method="POST", body=b"payload"
    )
    assert answer.status == 200 and answer.echo["backend"] == "app"
    (copy,) = copies(site.backends["outside"], before + 1)[before:]
    assert copy["method"] == "POST" and copy["target"] == "/copy/a/b?c=1"
    assert copy["body"] == "payload"
    # The Host of the target's URL, as ingress-nginx sends: its host without the port.
    assert copy["headers"]["host"] == site.backends["outside"].host
    assert copy["headers"]["x-forwarded-host"] == "outside.example.com"


def test_a_cluster_service_gets_the_copy_with_its_host_and_no_body(site):
    """Repeated: the copy and the request race through nginx, and neither may take the
    other's backend (a mirror subrequest shares the request's variables)."""
    seen = site.backends["shadow"].server.seen
    before = len(seen)
    rounds = 20
    for n in range(rounds):
        answer = request(
            site.ports.http, "service.example.com", f"/x?y={n}", method="POST", body=b"b"
        )
        assert answer.status == 200 and answer.echo["backend"] == "app"
        assert answer.echo["body"] == "b"
    got = copies(site.backends["shadow"], before + rounds)[before:]
    assert sorted(copy["target"] for copy in got) == sorted(f"/x?y={n}" for n in range(rounds))
    for copy in got:
        assert copy["headers"]["host"] == "shadow.example.com"
        assert copy["body"] == "" and "content-length" not in copy["headers"]


def test_a_mirror_that_is_down_does_not_fail_the_request(site):
    answer = request(site.ports.http, "down.example.com", "/", method="POST", body=b"b")
    assert answer.status == 200 and answer.echo["backend"] == "app"


def test_a_mirror_that_never_answers_does_not_hold_the_answer(site):
    held = len(site.holder.received)
    answer = request(site.ports.http, "hanging.example.com", "/slow?q=1")
    assert answer.status == 200 and answer.echo["target"] == "/slow?q=1"
    deadline = time.monotonic() + WAIT_SECONDS
    while len(site.holder.received) <= held and time.monotonic() < deadline:
        time.sleep(0.05)
    # The copy reached the mirror, which holds it unanswered: the answer came regardless.
    assert site.holder.received[held].startswith(b"GET /slow?q=1 HTTP/1.1\r\n")


def test_only_the_expected_directives_are_rendered(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")
