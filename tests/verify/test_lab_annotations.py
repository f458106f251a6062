"""The lab's annotated Ingresses (lab/manifests/annotated.yaml) through every VIP: one of each
family of ingress-nginx annotations, each answering as ingress-nginx answers it (its docs and
test/e2e/annotations). Each check compares what it saw with what ingress-nginx gives, so a
failure shows both; conftest.py leaves these checks out where the manifest is not applied.
"""

from __future__ import annotations

import base64
import http.client
import json
import ssl
from dataclasses import dataclass
from email.message import Message
from functools import partial

import labmanifest
import pytest
from deployment import eventually
from test_deployed_edge import vrrp_groups

pytestmark = pytest.mark.lab_annotations

# Longer than the lab's slowest answer (/slow, cut at the timeout Ingress's 1 s read timeout).
REQUEST_TIMEOUT = 10
# The user and password of the htpasswd line of the manifest's Secret lab-basic-auth.
BASIC_USER, BASIC_PASSWORD = "lab", "lab-password"
CLIENT_ORIGIN = "https://client.lab.example"
BURST_REQUESTS = 100


@dataclass(frozen=True)
class Answer:
    status: int
    headers: Message
    body: str

    def says(self) -> str:
        """The first word of a lab backend's answer: its app (web1, web2)."""
        return self.body.split(" ", 1)[0]

    def request_seen(self) -> dict:
        """The request as the backend saw it, from its /headers answer ({} for any other)."""
        if self.status != 200 or self.headers.get_content_type() != "application/json":
            return {}
        return json.loads(self.body)


class _NamedTlsConnection(http.client.HTTPSConnection):
    """HTTPS to an address, with the SNI and certificate check of a host name: the lab's
    names are in no DNS."""

    def __init__(self, address: str, server_name: str, context: ssl.SSLContext):
        super().__init__(address, 443, timeout=REQUEST_TIMEOUT, context=context)
        self.server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.server_name)


def ask(
    vip: str,
    host: str,
    path: str = "/",
    method: str = "GET",
    headers: dict[str, str] | None = None,
    trust: str | None = None,
) -> Answer:
    """One request through the VIP on a new connection: HTTPS when trust (a PEM CA) is given."""
    if trust is None:
        connection = http.client.HTTPConnection(vip, 80, timeout=REQUEST_TIMEOUT)
    else:
        context = ssl.create_default_context(cadata=trust)
        connection = _NamedTlsConnection(vip, host, context)
    try:
        connection.request(method, path, headers={"Host": host, **(headers or {})})
        response = connection.getresponse()
        return Answer(response.status, response.headers, response.read().decode(errors="replace"))
    finally:
        connection.close()


def vips(nodes) -> list[str]:
    return [vip for group, _ in vrrp_groups(nodes).values() for vip in group.vips]


def check(nodes, settings, observe, expected: dict) -> None:
    """observe(vip) -> what it saw, as expected's keys; it must equal expected through every
    VIP (waited for, as an agent may still be applying the manifest)."""
    for vip in vips(nodes):
        seen = eventually(partial(observe, vip), lambda s: s == expected, settings.settle_seconds)
        print(f"via {vip}: {seen}")  # the figures, for `pytest -rP`
        assert seen == expected, f"via {vip}: saw {seen}, ingress-nginx gives {expected}"


def test_rewrite_target_with_regex_captures_and_app_root(nodes, settings):
    host = labmanifest.host("lab-rewrite")

    def observe(vip):
        root = ask(vip, host)
        return {
            "/app/headers reaches web1 as": ask(vip, host, "/app/headers")
            .request_seen()
            .get("path"),
            "/APP/headers reaches web1 as": ask(vip, host, "/APP/headers")
            .request_seen()
            .get("path"),
            "/": (root.status, root.headers.get("Location")),
        }

    check(
        nodes,
        settings,
        observe,
        {
            "/app/headers reaches web1 as": "/headers",
            "/APP/headers reaches web1 as": "/headers",
            "/": (302, f"http://{host}/app/"),
        },
    )


def test_allowlist_refuses_a_client_outside_it(nodes, settings):
    host = labmanifest.host("lab-allowlist")
    check(nodes, settings, lambda vip: {"status": ask(vip, host).status}, {"status": 403})


def test_basic_auth_asks_for_the_secrets_user(nodes, settings):
    host = labmanifest.host("lab-basic-auth")

    def with_password(vip, password):
        credentials = base64.b64encode(f"{BASIC_USER}:{password}".encode()).decode()
        return ask(vip, host, headers={"Authorization": f"Basic {credentials}"})

    def observe(vip):
        anonymous, allowed = ask(vip, host), with_password(vip, BASIC_PASSWORD)
        return {
            "anonymous": (anonymous.status, anonymous.headers.get("WWW-Authenticate")),
            "wrong password": with_password(vip, "wrong").status,
            "the Secret's user": (allowed.status, allowed.says()),
        }

    check(
        nodes,
        settings,
        observe,
        {
            "anonymous": (401, 'Basic realm="lab"'),
            "wrong password": 401,
            "the Secret's user": (200, "web1"),
        },
    )


def test_limit_rps_refuses_a_burst_beyond_it(nodes, settings):
    host = labmanifest.host("lab-rate-limit")

    def observe(vip):
        statuses = [ask(vip, host).status]
        # 1 r/s with a burst of 5: back-to-back requests pass it within a few dozen unless
        # each takes a second, and a request through the VIP takes milliseconds.
        while statuses[-1] != 503 and len(statuses) < BURST_REQUESTS:
            statuses.append(ask(vip, host).status)
        return {"first request": statuses[0], "the burst ends with": statuses[-1]}

    check(nodes, settings, observe, {"first request": 200, "the burst ends with": 503})


def test_external_auth_by_a_cluster_service(nodes, settings):
    host = labmanifest.host("lab-external-auth")

    def observe(vip):
        token = labmanifest.backend().AUTH_TOKEN
        allowed = ask(vip, host, "/headers", headers={"Authorization": f"Bearer {token}"})
        forwarded = allowed.request_seen().get("headers", {})
        return {
            "without a token": ask(vip, host).status,
            "with the token": (allowed.status, forwarded.get("X-Lab-User")),
        }

    check(
        nodes,
        settings,
        observe,
        {"without a token": 401, "with the token": (200, labmanifest.backend().AUTH_USER)},
    )


def test_proxy_read_timeout_cuts_a_slow_backend(nodes, settings):
    host = labmanifest.host("lab-timeout")
    slow = labmanifest.backend().SLOW_PATH

    def observe(vip):
        return {"/": ask(vip, host).status, slow: ask(vip, host, slow).status}

    check(nodes, settings, observe, {"/": 200, slow: 504})


def test_canary_by_header_cookie_affinity_and_cors(nodes, settings):
    host = labmanifest.host("lab-traffic")
    preflight_headers = {"Origin": CLIENT_ORIGIN, "Access-Control-Request-Method": "PUT"}

    def observe(vip):
        main = ask(vip, host)
        preflight = ask(vip, host, method="OPTIONS", headers=preflight_headers)
        cookie = main.headers.get("Set-Cookie") or ""
        return {
            "without X-Canary": main.says(),
            "X-Canary: always": ask(vip, host, headers={"X-Canary": "always"}).says(),
            "affinity cookie": cookie.split("=", 1)[0],
            "preflight": (preflight.status, preflight.headers.get("Access-Control-Allow-Origin")),
        }

    check(
        nodes,
        settings,
        observe,
        {
            "without X-Canary": "web1",
            "X-Canary: always": "web2",
            "affinity cookie": "INGRESSCOOKIE",
            "preflight": (204, "*"),
        },
    )


def test_tls_host_redirects_to_https_but_the_acme_solver_and_sends_hsts(nodes, settings):
    host = labmanifest.host("lab-tls")
    trust = labmanifest.certificate("lab-tls")
    challenge = labmanifest.path("lab-tls-acme-solver")

    def observe(vip):
        plain, solver = ask(vip, host), ask(vip, host, challenge)
        secure = ask(vip, host, trust=trust)
        return {
            "http /": (plain.status, plain.headers.get("Location")),
            "http, the ACME solver's path": (solver.status, solver.says()),
            "https /": (
                secure.status,
                secure.says(),
                secure.headers.get("Strict-Transport-Security"),
            ),
        }

    check(
        nodes,
        settings,
        observe,
        {
            "http /": (308, f"https://{host}/"),
            "http, the ACME solver's path": (200, "web2"),
            "https /": (200, "web1", "max-age=31536000; includeSubDomains"),
        },
    )
