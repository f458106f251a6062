"""The dynamic mode's Lua side against a real nginx: the control endpoint refuses what is
not the agent's well-formed push and applies the rest whole, and the balancer spreads,
weighs, skips failed peers and answers 503, all without a reload.

The site is rendered in the dynamic mode with the files the agent writes (support_nginx);
pushes are made here with `edgeagent.control.Control`, as the agent makes them, or by hand
where the input must be hostile.
"""

import collections
import http.client
import os
import signal
import socket
import threading
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
from agentlab import eventually
from edgeagent.control import CONTROL_PATH, NEEDS_FULL_PUSH, Control, ControlError
from support_http import Backends, _EchoHandler, common_name, free_port, request
from support_nginx import NginxRunner, render_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import cli, dynamic, model

TLS_HOST = "secure.example.com"


class Site:
    def __init__(self, site, backends: dict, control: Control, nginx) -> None:
        self.site = site
        self.backends = backends
        self.control = control
        self.nginx = nginx

    def get(self, host: str, target: str = "/"):
        return request(self.site.ports.http, host, target)

    def served_by(self, host: str, count: int) -> collections.Counter:
        answers = [self.get(host) for _ in range(count)]
        return collections.Counter(answer.backend or answer.status for answer in answers)

    def post(self, body: bytes, token: str | None = None, method: str = "POST"):
        connection = http.client.HTTPConnection("127.0.0.1", self.site.ports.status, timeout=10)
        try:
            headers = {"Authorization": f"Bearer {token or self.control.token}"}
            connection.request(method, CONTROL_PATH, body=body, headers=headers)
            answer = connection.getresponse()
            return answer.status, answer.read().decode()
        finally:
            connection.close()

    def peers(self, name: str, weight: int = 1) -> tuple[tuple[str, int], ...]:
        return tuple((backend.address, weight) for backend in self.backends[name])

    def pids(self) -> set[int]:
        master = self.nginx.process.pid
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
        return {master, *map(int, children)}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    backends, runner = Backends(), NginxRunner()
    try:
        started = {name: [backends.start(f"{name}{n}") for n in (1, 2, 3)] for name in "ab"}
        pair = cli.self_signed(TLS_HOST, (TLS_HOST,))
        inputs = model.Inputs(
            ingresses=[
                ingress(
                    "app",
                    rule("a.example.com", path("/", "a")),
                    rule("b.example.com", path("/", "b")),
                    rule(TLS_HOST, path("/", "a")),
                    tls=[{"hosts": [TLS_HOST], "secretName": "secure-tls"}],
                )
            ],
            services=[service("a"), service("b")],
            endpoint_slices=[
                endpoint_slice(name, [(started[name][0].host, True)], started[name][0].port)
                for name in "ab"
            ],
            secrets=[tls_secret("secure-tls", pair)],
        )
        rendered = render_site(tmp_path_factory.mktemp("dynamic"), inputs, dynamic_mode=True)
        nginx = runner.start(rendered)
        control = Control(str(rendered.directory / "dynamic"), f"127.0.0.1:{rendered.ports.status}")
        control.push(dynamic.state_of(rendered.model), full=True)  # as the agent's first sync
        yield Site(rendered, started, control, nginx)
    finally:
        runner.stop_all()
        backends.stop_all()


def backend_name(site: Site, service_name: str) -> str:
    return next(u.name for u in site.site.model.upstreams if u.service == service_name)


def push_peers(site: Site, service_name: str, peers: tuple[tuple[str, int], ...]) -> None:
    state = dynamic.State({backend_name(site, service_name): peers}, {}, {})
    site.control.push(state, full=False)


def test_a_fresh_nginx_serves_the_state_written_before_it_started(site):
    assert site.get("a.example.com").backend == "a1"
    assert site.get("b.example.com").backend == "b1"


def test_a_push_moves_traffic_without_a_reload(site):
    pids = site.pids()
    push_peers(site, "a", site.peers("a")[:2])
    assert set(site.served_by("a.example.com", 8)) == {"a1", "a2"}
    push_peers(site, "a", site.peers("a")[2:])
    assert set(site.served_by("a.example.com", 4)) == {"a3"}
    assert site.pids() == pids  # same master, same workers: nothing reloaded


def test_a_reload_keeps_the_newer_pushed_state(site):
    """The shared dicts survive a reload, and init_by_lua does not load an older
    state.txt over them."""
    push_peers(site, "a", site.peers("a")[1:2])
    older = dynamic.State({backend_name(site, "a"): site.peers("a")[:1]}, {}, {})
    state_file = site.control.dir / "state.txt"
    state_file.write_bytes(dynamic.encode(older, site.control.serving_version() - 1, True))
    workers = site.pids() - {site.nginx.process.pid}
    site.nginx.process.send_signal(signal.SIGHUP)
    eventually(lambda: not (site.pids() & workers))
    assert set(site.served_by("a.example.com", 4)) == {"a2"}


def test_a_delta_is_refused_until_a_full_push_after_state_txt_was_loaded(site):
    """state.txt holds no certificate: a delta on top of it (nginx restarted, or reloaded
    onto a newer state.txt) would leave them unpushed while its version says all is well."""
    site.control.write_state(dynamic.state_of(site.site.model))  # newer than the last push
    workers = site.pids() - {site.nginx.process.pid}
    site.nginx.process.send_signal(signal.SIGHUP)
    eventually(lambda: not (site.pids() & workers))
    with pytest.raises(ControlError) as refused:
        push_peers(site, "a", site.peers("a")[1:2])
    assert refused.value.status == NEEDS_FULL_PUSH
    assert site.get("a.example.com").backend == "a1"  # state.txt's peers serve meanwhile
    site.control.push(dynamic.state_of(site.site.model), full=True)
    push_peers(site, "a", site.peers("a")[1:2])
    assert set(site.served_by("a.example.com", 4)) == {"a2"}


def test_round_robin_and_weights(site):
    name = backend_name(site, "b")
    peers = site.peers("b")
    body = dynamic.encode(dynamic.State({name: peers}, {}, {}), site.control.next_version(), False)
    assert site.post(body)[0] == 200
    assert site.served_by("b.example.com", 30) == {"b1": 10, "b2": 10, "b3": 10}
    weighted = ((peers[0][0], 4), *peers[1:])
    body = dynamic.encode(
        dynamic.State({name: weighted}, {}, {}), site.control.next_version(), False
    )
    assert site.post(body)[0] == 200
    assert site.served_by("b.example.com", 30) == {"b1": 20, "b2": 5, "b3": 5}


def test_a_failed_peer_is_skipped_and_no_request_fails(site):
    dead = f"127.0.0.99:{free_port('127.0.0.99')}"  # nothing listens there
    push_peers(site, "b", ((dead, 1), site.peers("b")[1]))
    answers = [site.get("b.example.com") for _ in range(10)]
    assert {(a.status, a.backend) for a in answers} == {(200, "b2")}


def test_weights_hold_while_a_peer_is_down(site):
    """Smooth weighted round-robin over the peers up: 3:1 while the third is down (the
    down peer's weight must not be charged to the others, which skews them toward 7:3)."""
    dead = f"127.0.0.98:{free_port('127.0.0.98')}"  # nothing listens there
    b1, b2 = site.peers("b")[:2]
    push_peers(site, "b", ((dead, 1), (b1[0], 3), b2))
    assert site.served_by("b.example.com", 40) == {"b1": 30, "b2": 10}


def test_an_ipv6_peer_is_served(site):
    class IPv6Server(ThreadingHTTPServer):
        address_family = socket.AF_INET6

    server = IPv6Server(("::1", 0), _EchoHandler)
    server.backend_name = "v6"
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    try:
        push_peers(site, "b", ((f"[::1]:{server.server_address[1]}", 1),))
        assert site.get("b.example.com").backend == "v6"
    finally:
        push_peers(site, "b", site.peers("b")[:1])
        server.shutdown()
        server.server_close()


def _answer_once_per_connection(listener: socket.socket) -> None:
    """A keep-alive backend that closes each connection, unanswered, when a second request
    arrives on it: what nginx meets when it reuses an idle upstream connection that the
    backend closed at the same moment (its idle timeout)."""
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:  # the listener was closed: the test is over
            return
        threading.Thread(target=_answer_once, args=(connection,), daemon=True).start()


def _answer_once(connection: socket.socket) -> None:
    body = b'{"backend": "once"}'
    with connection:
        connection.settimeout(10)
        received = b""
        try:
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(4096)
                if not chunk:
                    return
                received += chunk
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
            )
            connection.sendall(head.encode() + b"\r\n\r\n" + body)
            connection.recv(4096)  # the next request on this connection: closed unanswered
        except OSError:
            pass


def test_a_reused_connection_the_backend_closed_is_retried_on_a_new_one(site):
    """nginx gives a request one more try when a cached keep-alive connection fails; with a
    single peer, that try must go to the same peer (as the static upstreams do), not 502."""
    with socket.create_server(("127.0.0.60", 0)) as listener:
        threading.Thread(target=_answer_once_per_connection, args=(listener,), daemon=True).start()
        push_peers(site, "b", ((f"127.0.0.60:{listener.getsockname()[1]}", 1),))
        answers = [site.get("b.example.com") for _ in range(4)]
    push_peers(site, "b", site.peers("b")[:1])
    assert [(a.status, a.backend) for a in answers] == [(200, "once")] * 4


def test_no_ready_peer_answers_503_and_the_first_one_serves_again(site):
    push_peers(site, "b", ())
    answer = site.get("b.example.com")
    assert (answer.status, answer.backend) == (503, None)
    push_peers(site, "b", site.peers("b")[:1])
    assert site.get("b.example.com").backend == "b1"


def test_a_pushed_certificate_is_served_without_a_reload(site):
    pids = site.pids()
    before = request(site.site.ports.https, TLS_HOST, tls=True)
    assert common_name(before.certificate) == TLS_HOST
    rotated = cli.self_signed("rotated.example.com", (TLS_HOST,))
    key = dynamic.state_of(site.site.model).hosts["", TLS_HOST]
    pair = rotated.certificate_pem + rotated.key_pem
    state = dynamic.State({}, {key: pair}, {("", TLS_HOST): key})
    site.control.push(state, full=False)
    after = request(site.site.ports.https, TLS_HOST, tls=True)
    assert common_name(after.certificate) == "rotated.example.com"
    assert after.echo["backend"].startswith("a")
    assert site.pids() == pids


def test_a_host_of_another_certificate_scope_is_not_served_here(site):
    """This server's scope is the edge's (""): a pair pushed for the name in an address's
    scope (IPv4 or IPv6: a dedicated Gateway's) leaves its handshake alone."""
    served = common_name(request(site.site.ports.https, TLS_HOST, tls=True).certificate)
    other = cli.self_signed("other-scope.example.com", (TLS_HOST,))
    hosts = {(scope, TLS_HOST): "other-scope" for scope in ("10.0.0.5", "fd00::5")}
    pair = {"other-scope": other.certificate_pem + other.key_pem}
    assert site.control.push(dynamic.State({}, pair, hosts), full=False) == (
        site.control.serving_version()
    )
    after = request(site.site.ports.https, TLS_HOST, tls=True)
    assert common_name(after.certificate) == served


def _body(*lines: str) -> bytes:
    return ("\n".join(lines) + "\n").encode()


HEADER = ("edgeagent-dynamic 1", "version 9000000000000000", "scope delta")
BAD_BODIES = {
    "empty": b"",
    "no final newline": _body(*HEADER)[:-1],
    "no format line": _body(*HEADER[1:], "backend x 127.0.0.1:1 1"),
    "other format": _body("edgeagent-dynamic 2", *HEADER[1:]),
    "no version": _body(HEADER[0], HEADER[2]),
    "version beyond 2^53": _body(HEADER[0], "version 99999999999999999", HEADER[2]),
    "two spaces": _body(*HEADER, "backend  x 127.0.0.1:1 1"),
    "peer with a semicolon": _body(*HEADER, "backend x 127.0.0.1:1;load_module 1"),
    "peer without a port": _body(*HEADER, "backend x 127.0.0.1 1"),
    "octet above 255": _body(*HEADER, "backend x 127.0.0.256:80 1"),
    "port above 65535": _body(*HEADER, "backend x 127.0.0.1:65536 1"),
    "weight zero": _body(*HEADER, "backend x 127.0.0.1:80 0"),
    "weight above 100": _body(*HEADER, "backend x 127.0.0.1:80 101"),
    "peer without weight": _body(*HEADER, "backend x 127.0.0.1:80"),
    "name with a brace": _body(*HEADER, "backend x} 127.0.0.1:80 1"),
    "repeated backend": _body(*HEADER, "backend x", "backend x"),
    "unknown record": _body(*HEADER, "load_module /e.so"),
    "certificate not base64": _body(*HEADER, "certificate k ***"),
    "host with a slash": _body(*HEADER, "host a/b k"),
    "host in a scope that is no address": _body(*HEADER, "host a.b/c.example k"),
    "host with a slash in its scope": _body(*HEADER, "host 10.0.0.5/a/b k"),
    "host of three stars": _body(*HEADER, "host ***.example.com k"),
    "binary": b"\x00\xff" * 100 + b"\n",
    "a line of 20,000 fields": _body(*HEADER, "backend x" + " 127.0.0.1:80 1" * 10000 + " x"),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_malformed_pushes_are_refused_and_change_nothing(site, case):
    version = site.control.serving_version()
    before = site.get("a.example.com").backend
    status, text = site.post(BAD_BODIES[case])
    assert status == 400, text
    assert "\n" not in text.strip() and len(text) < 200
    assert site.control.serving_version() == version
    assert site.get("a.example.com").backend == before


def test_the_endpoint_refuses_anyone_without_the_token(site):
    body = dynamic.encode(dynamic.EMPTY, site.control.next_version(), True)
    version = site.control.serving_version()
    for token in ("wrong", site.control.token[:-1], site.control.token + "0"):
        assert site.post(body, token=token)[0] == 401
    connection = http.client.HTTPConnection("127.0.0.1", site.site.ports.status, timeout=10)
    connection.request("GET", CONTROL_PATH)  # no Authorization at all
    assert connection.getresponse().status == 401
    connection.close()
    assert site.control.serving_version() == version
    token_file = site.control.dir / "control.token"
    assert (token_file.stat().st_mode & 0o777) == 0o640  # nginx reads it through the group
    assert site.get("a.example.com").status == 200  # the full empty push was not applied


def test_other_methods_stale_versions_and_bad_certificates_are_refused(site):
    state = dynamic.State({backend_name(site, "a"): site.peers("a")[:1]}, {}, {})
    assert site.post(b"", method="PUT")[0] == 405
    stale = dynamic.encode(state, site.control.serving_version(), False)
    assert site.post(stale)[0] == 409
    garbage = b"-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n"
    bad = dynamic.encode(
        dynamic.State(state.backends, {"k": garbage}, {}), site.control.next_version(), False
    )
    status, text = site.post(bad)
    assert status == 422 and "certificate k" in text
    assert common_name(request(site.site.ports.https, TLS_HOST, tls=True).certificate) in (
        TLS_HOST,
        "rotated.example.com",
    )


def test_an_oversized_body_is_refused_before_it_is_read(site):
    connection = http.client.HTTPConnection("127.0.0.1", site.site.ports.status, timeout=10)
    connection.putrequest("POST", CONTROL_PATH)
    connection.putheader("Authorization", f"Bearer {site.control.token}")
    connection.putheader("Content-Length", str(65 * 1024 * 1024))
    connection.endheaders()
    assert connection.getresponse().status == 413
    connection.close()


def test_the_state_file_is_private_and_holds_no_certificate(site):
    state_file = site.control.dir / "state.txt"
    assert (state_file.stat().st_mode & 0o777) == 0o640  # owner and nginx's group only
    assert b"certificate" not in state_file.read_bytes()
    for pem in (site.control.dir / "certs").iterdir():
        assert (os.stat(pem).st_mode & 0o777) == 0o640
