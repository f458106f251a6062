"""ingress-nginx's access annotations (CORS, rate limits, external auth) through a real
nginx to real backends and a real auth service, in the static and the dynamic mode, and
how their values are read (annotations/cors.py, annotations/ratelimit.py,
annotations/extauth.py). The limits are tested by counting the answers of a burst, with
bounds that hold however slow the machine is (no timing assertion)."""

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from edgeagent.annotations import cors, extauth, ratelimit
from support_http import request as http_request
from support_http import websocket_tunnel
from support_nginx import assert_only_rendered_directives, echo_site
from support_objects import endpoint_slice, ingress, path, rule, service, tls_secret

from edgeagent import annotations, cli, model

ANNOTATION = "nginx.ingress.kubernetes.io/"
SERVICES = ["cors-any", "cors-listed", "cors-tuned", "cors-tls", "cors-off", "limited", "authed"]
# Client addresses (any of 127.0.0.0/8 is local on Linux).
CLIENT_LISTED, CLIENT_OTHER = "127.0.0.2", "127.0.0.3"
BURST_REQUESTS = 12
PREFLIGHT = {"Access-Control-Request-Method": "PUT"}


def cors_annotations(**values: str) -> dict:
    return {ANNOTATION + "enable-cors": "true"} | {
        ANNOTATION + key.replace("_", "-"): value for key, value in values.items()
    }


class _AuthHandler(BaseHTTPRequestHandler):
    """An external auth service: "Bearer good" is alice (200 with her headers), "Bearer
    forbidden" 403, "Bearer broken" 500, anything else 401. Records what it was sent."""

    def _answer(self) -> None:
        self.server.seen.append(
            {"method": self.command, "target": self.path}
            | {k.lower(): v for k, v in self.headers.items()}
            | {"body": self.rfile.read(int(self.headers.get("Content-Length") or 0))}
        )
        token = self.headers.get("Authorization", "")
        status = {"Bearer good": 200, "Bearer forbidden": 403, "Bearer broken": 500}
        self.send_response(status.get(token, 401))
        if token == "Bearer good":
            self.send_header("X-User", "alice")
            self.send_header("X-Email", "alice@example.com")
            self.send_header("X-Other", "not passed on")
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args) -> None:
        """Quiet."""


class AuthService:
    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _AuthHandler)
        self.server.daemon_threads = True
        self.server.seen = []
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def seen(self) -> list[dict]:
        return self.server.seen

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def limits(**values: str) -> dict:
    return {ANNOTATION + "limit-" + key.replace("_", "-"): value for key, value in values.items()}


def limited(name: str, **values: str) -> dict:
    host = f"limited-{name}"
    return ingress(host, rule(host, path("/", "limited")), annotations=limits(**values))


def authed(name: str, auth_port: int, **values: str) -> dict:
    host = f"auth-{name}"
    written = {ANNOTATION + "auth-url": f"http://127.0.0.1:{auth_port}/verify?via=edge"}
    written |= {ANNOTATION + "auth-" + key.replace("_", "-"): v for key, v in values.items()}
    return ingress(host, rule(host, path("/", "authed")), annotations=written)


def access_objects(backends: dict, certificate: model.CertPair, auth_port: int) -> model.Inputs:
    objects = model.Inputs()
    for name in SERVICES:
        objects.services.append(service(name))
        backend = backends[name]
        objects.endpoint_slices.append(endpoint_slice(name, [(backend.host, True)], backend.port))
    objects.ingresses.extend(
        [
            ingress("any", rule("cors-any", path("/", "cors-any")), annotations=cors_annotations()),
            ingress(
                "listed",
                rule("cors-listed", path("/", "cors-listed")),
                annotations=cors_annotations(
                    cors_allow_origin="https://app.example.com, https://*.trusted.example:8443"
                ),
            ),
            ingress(
                "tuned",
                rule("cors-tuned", path("/", "cors-tuned")),
                annotations=cors_annotations(
                    cors_allow_origin="http://localhost:3000",
                    cors_allow_methods="GET,POST",
                    cors_allow_headers="X-Custom, Content-Type",
                    cors_expose_headers="X-Request-Id, *",
                    cors_allow_credentials="false",
                    cors_max_age="600",
                ),
            ),
            ingress(
                "tls",
                rule("cors-tls", path("/", "cors-tls")),
                annotations=cors_annotations(),
                tls=[{"hosts": ["cors-tls"], "secretName": "cors-tls"}],
            ),
            ingress(
                "off",
                rule("cors-off", path("/", "cors-off")),
                annotations={
                    ANNOTATION + "enable-cors": "false",
                    ANNOTATION + "cors-allow-origin": "https://app.example.com",
                },
            ),
            limited("rpm", rpm="1", burst_multiplier="2"),
            limited("rps", rps="1"),
            limited("allowlist", rpm="1", burst_multiplier="1", allowlist="127.0.0.2"),
            limited("connections", connections="1"),
            limited("rate", rate="1", rate_after="4"),
            authed("flow", auth_port, response_headers="X-User, x-email"),
            authed("signin", auth_port, signin="https://login.example.com/start"),
            authed(
                "signin-param",
                auth_port,
                signin="https://login.example.com/start?next=x&back=y",
                signin_redirect_param="back",
            ),
            authed("method", auth_port, method="post", request_redirect="/after"),
            ingress(
                "limited-shared",
                rule("limited-shared-a", path("/", "limited")),
                rule("limited-shared-b", path("/", "limited")),
                annotations=limits(rpm="1", burst_multiplier="1"),
            ),
        ]
    )
    objects.secrets.append(tls_secret("cors-tls", certificate))
    return objects


@pytest.fixture(scope="module", params=["static", "dynamic"])
def site(request, tmp_path_factory):
    auth = AuthService()
    certificate = cli.self_signed("cors-tls", ("cors-tls",))
    try:
        with echo_site(
            tmp_path_factory.mktemp("access"),
            SERVICES,
            lambda started: access_objects(started, certificate, auth.port),
            request.param == "dynamic",
        ) as built:
            built.auth = auth
            yield built
    finally:
        auth.stop()


def get(site, host: str, origin: str | None = None, method: str = "GET", **options):
    headers = dict(options.pop("headers", {}))
    if origin is not None:
        headers["Origin"] = origin
    port = site.ports.https if options.get("tls") else site.ports.http
    return http_request(port, host, "/api", method=method, headers=headers, **options)


def test_the_rendered_configuration_holds_only_template_directives(site):
    assert_only_rendered_directives(site.directory / "nginx.conf")


def test_cors_defaults_allow_every_origin(site):
    answer = get(site, "cors-any", "https://anything.example")
    assert (answer.status, answer.backend) == (200, "cors-any")
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["access-control-allow-credentials"] == "true"
    assert (
        answer.headers["access-control-allow-methods"] == "GET, PUT, POST, DELETE, PATCH, OPTIONS"
    )
    assert answer.headers["access-control-allow-headers"] == ", ".join(cors.DEFAULT_HEADERS)
    assert answer.headers["access-control-max-age"] == "1728000"
    assert "access-control-expose-headers" not in answer.headers


def test_cors_preflight_is_answered_204_by_the_edge(site):
    answer = get(site, "cors-any", "https://anything.example", "OPTIONS", headers=PREFLIGHT)
    assert (answer.status, answer.body, answer.backend) == (204, b"", None)
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["access-control-allow-methods"].startswith("GET, PUT")


@pytest.mark.parametrize(
    "origin",
    [
        "https://app.example.com",
        "https://a.trusted.example:8443",
        "https://a-b.trusted.example:8443",
    ],
)
def test_a_listed_origin_is_echoed_and_its_preflight_answered(site, origin):
    answer = get(site, "cors-listed", origin)
    assert (answer.status, answer.backend) == (200, "cors-listed")
    assert answer.headers["access-control-allow-origin"] == origin
    preflight = get(site, "cors-listed", origin, "OPTIONS", headers=PREFLIGHT)
    assert (preflight.status, preflight.backend) == (204, None)
    assert preflight.headers["access-control-allow-origin"] == origin


@pytest.mark.parametrize(
    "origin",
    [
        None,
        "https://evil.example",
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://app.example.com.evil.example",
        "https://evil.example/https://app.example.com",
        "https://trusted.example:8443",
        "https://a.trusted.example",
        "https://a_b.trusted.example:8443",
        "https://a.b.trusted.example:8443",
        "https://APP.example.com",
    ],
)
def test_another_origin_gets_no_cors_headers_and_its_options_reach_the_backend(site, origin):
    for method in ("GET", "OPTIONS"):
        answer = get(site, "cors-listed", origin, method)
        assert (answer.status, answer.backend) == (200, "cors-listed")
        assert answer.echo["method"] == method
        assert not [name for name in answer.headers if name.startswith("access-control-")]


def test_cors_options_are_served(site):
    answer = get(site, "cors-tuned", "http://localhost:3000")
    assert answer.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert answer.headers["access-control-allow-methods"] == "GET, POST"
    assert answer.headers["access-control-allow-headers"] == "X-Custom, Content-Type"
    assert answer.headers["access-control-expose-headers"] == "X-Request-Id, *"
    assert answer.headers["access-control-max-age"] == "600"
    assert "access-control-allow-credentials" not in answer.headers


def test_cors_on_a_tls_host_keeps_hsts_and_the_https_redirect(site):
    redirect = get(site, "cors-tls", "https://x.example", "OPTIONS", headers=PREFLIGHT)
    assert redirect.status == 308
    for method, status in (("GET", 200), ("OPTIONS", 204)):
        answer = get(site, "cors-tls", "https://x.example", method, tls=True)
        assert answer.status == status
        assert answer.headers["access-control-allow-origin"] == "*"
        assert answer.headers["strict-transport-security"].startswith("max-age=31536000")
    assert "strict-transport-security" in get(site, "cors-tls", tls=True).headers


def test_cors_off_sends_no_cors_headers(site):
    answer = get(site, "cors-off", "https://app.example.com", "OPTIONS")
    assert (answer.status, answer.backend) == (200, "cors-off")
    assert "access-control-allow-origin" not in answer.headers


def findings(values: dict[str, str]) -> dict[str, annotations.Finding]:
    parsed = annotations.parse(
        {ANNOTATION + key: value for key, value in values.items()}, annotations.Config()
    )
    return {finding.key.removeprefix(ANNOTATION): finding for finding in parsed.findings}


def test_cors_keys_without_enable_cors_are_ignored_with_a_warning():
    found = findings({"cors-allow-origin": "https://a.example", "cors-max-age": "x"})
    assert {key: f.status for key, f in found.items()} == {
        "cors-allow-origin": "ignored",
        "cors-max-age": "ignored",
    }
    assert 'enable-cors is not "true"' in found["cors-max-age"].reason


def test_every_cors_value_is_read():
    parsed = annotations.parse(
        {
            ANNOTATION + "enable-cors": "True",
            ANNOTATION + "cors-allow-origin": " https://a.example ,\n https://*.B.example:1",
            ANNOTATION + "cors-allow-methods": "get, PUT",
            ANNOTATION + "cors-max-age": "0",
        },
        annotations.Config(),
    )
    assert not parsed.refused
    assert parsed.settings["cors"] == cors.Cors(
        origins=("https://a.example", "https://*.b.example:1"),
        methods=("get", "PUT"),
        max_age=0,
    )
    assert cors.origin_regex(parsed.settings["cors"].origins) == (
        r"^(https://a\.example|https://[a-z0-9\-]+\.b\.example:1)$"
    )


def test_a_star_anywhere_in_the_origins_allows_every_origin():
    assert cors.allow_origin("https://a.example, *", "o") == ("*",)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("enable-cors", "yes", "'true' or 'false'"),
        ("cors-allow-origin", "a.example", "not an origin"),
        ("cors-allow-origin", "https://a.example/path", "not an origin"),
        ("cors-allow-origin", "https://a.example,", "empty item"),
        ("cors-allow-origin", "https://$host", "not an origin"),
        ("cors-allow-origin", 'https://a.example"; return 200 "x', "not an origin"),
        ("cors-allow-origin", "https://a.*.example", "not an origin"),
        ("cors-allow-methods", "GET;PUT", "not an HTTP method"),
        ("cors-allow-methods", "GET\n}\nload_module x", "not an HTTP method"),
        ("cors-allow-headers", "X-A, $http_cookie", "not a header name"),
        ("cors-allow-headers", "X A", "not a header name"),
        ("cors-expose-headers", 'X-A"', "not a header name or *"),
        ("cors-allow-credentials", "maybe", "'true' or 'false'"),
        ("cors-max-age", "-1", "whole seconds"),
        ("cors-max-age", "99999999999", "whole seconds"),
    ],
)
def test_a_bad_cors_value_refuses_the_ingress(key, value, words):
    found = findings({"enable-cors": "true", key: value})
    assert found[key].status == "refused" and found[key].code == "invalid"
    assert words in found[key].reason
    assert ANNOTATION + key in found[key].reason and found[key].value == value


def test_every_bad_cors_value_is_reported_at_once():
    found = findings(
        {"enable-cors": "true", "cors-allow-origin": "ftp://x", "cors-max-age": "soon"}
    )
    assert {key for key, f in found.items() if f.status == "refused"} == {
        "cors-allow-origin",
        "cors-max-age",
    }


def burst(site, host: str, count: int = BURST_REQUESTS, source: str | None = None) -> list[int]:
    return [http_request(site.ports.http, host, "/", source=source).status for _ in range(count)]


def test_requests_over_the_rpm_burst_get_503(site):
    # 1 request a minute, burst 1 x 2: three pass at once, the rest within the minute
    # (one more if the machine took a minute for the burst) get 503.
    statuses = burst(site, "limited-rpm")
    assert set(statuses) <= {200, 503}
    assert statuses[:3] == [200, 200, 200]
    assert 3 <= statuses.count(200) <= 4


def test_the_rps_burst_is_the_limit_times_five(site):
    # 1 request a second, ingress-nginx's default multiplier 5: six pass at once, then
    # about one a second.
    statuses = burst(site, "limited-rps", count=40)
    assert statuses[:6] == [200] * 6
    assert set(statuses) <= {200, 503} and 503 in statuses


def test_an_allowlisted_client_is_never_limited(site):
    assert burst(site, "limited-allowlist", source=CLIENT_LISTED) == [200] * BURST_REQUESTS
    statuses = burst(site, "limited-allowlist", source=CLIENT_OTHER)
    assert statuses[:2] == [200, 200] and statuses.count(503) >= BURST_REQUESTS - 3


def test_the_zones_of_an_ingress_are_shared_by_its_hosts(site):
    hosts = ["limited-shared-a", "limited-shared-b"] * (BURST_REQUESTS // 2)
    statuses = [http_request(site.ports.http, host, "/").status for host in hosts]
    assert statuses[:2] == [200, 200] and statuses.count(503) >= BURST_REQUESTS - 3


def test_a_second_connection_over_the_limit_gets_503(site):
    with websocket_tunnel(site.ports.http, "limited-connections", "/chat") as (sock, reader):
        sock.sendall(b"held\n")
        assert reader.readline() == b"limited: held\n"
        assert http_request(site.ports.http, "limited-connections", "/").status == 503
        reader.close()  # the socket's file descriptor closes with its last file object
    # The tunnel closed: nginx lets the next request in once it has seen the close.
    for _ in range(300):
        if http_request(site.ports.http, "limited-connections", "/").status == 200:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the connection limit never let a request in again")


def test_limit_rate_serves_the_whole_answer(site):
    answer = http_request(site.ports.http, "limited-rate", "/", headers={"X-Echo-Padding": "10"})
    assert (answer.status, answer.backend) == (200, "limited")


def test_the_rendered_zones_and_limits(site):
    found = assert_only_rendered_directives(site.directory / "nginx.conf")
    zones = [args for name, args, _ in found if name == "limit_req_zone"]
    assert sorted(args[1].split(":")[1] + " " + args[2] for args in zones) == [
        *["5m rate=1r/m"] * 3,
        "5m rate=1r/s",
    ]
    bursts = {args[1] for name, args, _ in found if name == "limit_req"}
    assert bursts == {"burst=2", "burst=5", "burst=1"}
    assert ("limit_rate", ("1k",), "http/server/location") in found
    assert ("limit_rate_after", ("4k",), "http/server/location") in found


def test_every_limit_value_is_read():
    parsed = annotations.parse(
        {
            ANNOTATION + "limit-rps": "10",
            ANNOTATION + "limit-connections": "0",
            ANNOTATION + "limit-whitelist": "10.0.0.1, 10.2.0.0/16",
        },
        annotations.Config(),
    )
    assert not parsed.refused
    assert parsed.settings["rate_limit"] == ratelimit.RateLimit(
        rps=10, allowlist=("10.0.0.1", "10.2.0.0/16")
    )


def rate_limit_of(obj: dict) -> ratelimit.RateLimit:
    built = model.build(model.Inputs(ingresses=[obj]), model.Options())
    return built.servers[0].locations[0].settings.rate_limit


def test_the_zones_belong_to_their_ingress():
    first = rate_limit_of(limited("same", rps="5"))
    assert first == rate_limit_of(limited("same", rps="5"))
    assert first.owner == ("default", "limited-same")
    assert rate_limit_of(limited("other", rps="5")).zone != first.zone


@pytest.mark.parametrize(
    ("values", "ignored"),
    [
        ({"limit-burst-multiplier": "3"}, "limit-burst-multiplier"),
        ({"limit-allowlist": "10.0.0.0/8"}, "limit-allowlist"),
        ({"limit-rps": "0", "limit-whitelist": "10.0.0.0/8"}, "limit-whitelist"),
        (
            {"limit-rps": "1", "limit-allowlist": "10.0.0.0/8", "limit-whitelist": "::1"},
            "limit-whitelist",
        ),
    ],
)
def test_limit_options_without_a_limit_are_ignored_with_a_warning(values, ignored):
    found = findings(values)
    assert found[ignored].status == "ignored" and found[ignored].code == "warning"
    assert not [f for f in found.values() if f.status == "refused"]


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("limit-rps", "ten", "whole number"),
        ("limit-rps", "-1", "whole number"),
        ("limit-rps", "1.5", "whole number"),
        ("limit-rps", "1000001", "whole number"),
        ("limit-connections", "65536", "0 to 65535"),
        ("limit-rpm", "5; limit_req_zone x", "whole number"),
        ("limit-connections", "1\n}\nload_module /e.so", "whole number"),
        ("limit-burst-multiplier", "0", "whole number, 1 to"),
        ("limit-rate", "1k", "whole number"),
        ("limit-rate-after", "", "whole number"),
        ("limit-allowlist", "10.0.0.0/8; allow all", "CIDR"),
        ("limit-whitelist", "$remote_addr", "CIDR"),
    ],
)
def test_a_bad_limit_value_refuses_the_ingress(key, value, words):
    found = findings({"limit-rpm": "1", key: value})
    assert found[key].status == "refused" and found[key].code == "invalid"
    assert words in found[key].reason and ANNOTATION + key in found[key].reason


def authorized(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def test_external_auth_lets_through_only_what_it_allows(site):
    refused = http_request(site.ports.http, "auth-flow", "/api?q=1")
    assert (refused.status, refused.backend) == (401, None)
    answer = http_request(site.ports.http, "auth-flow", "/api?q=1", headers=authorized("good"))
    assert (answer.status, answer.backend) == (200, "authed")
    seen = answer.echo["headers"]
    assert (seen["x-user"], seen["x-email"]) == ("alice", "alice@example.com")
    assert "x-other" not in seen
    # The forwarded headers are still sent next to the auth answer's.
    assert (seen["host"], seen["x-forwarded-host"]) == ("auth-flow", "auth-flow")
    assert seen["x-real-ip"] == "127.0.0.1" and seen["authorization"] == "Bearer good"
    for token, status in (("forbidden", 403), ("broken", 500)):
        answer = http_request(site.ports.http, "auth-flow", "/", headers=authorized(token))
        assert (answer.status, answer.backend) == (status, None)


def test_the_auth_service_gets_the_request_without_its_body(site):
    http_request(
        site.ports.http,
        "auth-flow",
        "/upload?id=7",
        method="POST",
        headers=authorized("good") | {"Cookie": "session=abc"},
        body=b"secret body",
    )
    (seen,) = [s for s in site.auth.seen if s.get("x-original-url", "").endswith("/upload?id=7")]
    # A subrequest is a GET unless auth-method says otherwise (nginx's, as ingress-nginx).
    assert seen["target"] == "/verify?via=edge" and seen["method"] == "GET"
    # As ingress-nginx sends it: the URL's host, without its port.
    assert seen["host"] == "127.0.0.1"
    assert seen["x-original-url"] == "http://auth-flow/upload?id=7"
    assert seen["x-original-method"] == "POST"
    assert seen["x-sent-from"] == "nginx-ingress-controller"
    assert seen["x-auth-request-redirect"] == "/upload?id=7"
    assert (seen["cookie"], seen["body"]) == ("session=abc", b"")


def test_auth_method_and_request_redirect(site):
    answer = http_request(site.ports.http, "auth-method", "/m", headers=authorized("good"))
    assert answer.status == 200
    (seen,) = [s for s in site.auth.seen if s.get("x-original-url") == "http://auth-method/m"]
    assert (seen["method"], seen["x-original-method"]) == ("POST", "GET")
    assert seen["x-auth-request-redirect"] == "/after"


def test_auth_signin_redirects_a_401(site):
    answer = http_request(site.ports.http, "auth-signin", "/app?x=1")
    assert answer.status == 302
    expected = "https://login.example.com/start?rd=http://auth-signin/app?x=1"
    assert answer.headers["location"] == expected
    answer = http_request(site.ports.http, "auth-signin", "/", headers=authorized("forbidden"))
    assert answer.status == 403
    answer = http_request(site.ports.http, "auth-signin-param", "/a")
    assert answer.headers["location"] == "https://login.example.com/start?next=x&back=y"


def test_every_auth_value_is_read():
    parsed = annotations.parse(
        {
            ANNOTATION + "auth-url": "https://auth.example.com:8443/oauth2/auth",
            ANNOTATION + "auth-signin": "https://auth.example.com/oauth2/start",
            ANNOTATION + "auth-signin-redirect-param": "return_to",
            ANNOTATION + "auth-response-headers": "X-Auth-Request-User,X-Auth-Request-Email",
            ANNOTATION + "auth-method": "GET",
        },
        annotations.Config(),
    )
    assert not parsed.refused
    assert parsed.settings["external_auth"] == extauth.ExternalAuth(
        url="https://auth.example.com:8443/oauth2/auth",
        host="auth.example.com",
        method="GET",
        signin="https://auth.example.com/oauth2/start?return_to=$scheme://$http_host$request_uri",
        response_headers=("X-Auth-Request-User", "X-Auth-Request-Email"),
    )


def test_auth_cache_and_keepalive_only_tune_and_are_ignored_with_a_warning():
    found = findings(
        {
            "auth-url": "http://127.0.0.1:9/verify",
            "auth-cache-key": "$remote_user$http_authorization",
            "auth-cache-duration": "200 202 401 5m",
            "auth-keepalive": "10",
        }
    )
    assert found["auth-url"].status == "supported"
    for key in ("auth-cache-key", "auth-cache-duration", "auth-keepalive"):
        assert (found[key].status, found[key].code) == ("ignored", "warning")
        assert "asks the auth service for every request" in found[key].reason


def test_auth_options_without_auth_url_are_ignored_with_a_warning():
    found = findings({"auth-signin": "https://login.example.com/", "auth-method": "GET"})
    assert {key: f.status for key, f in found.items()} == {
        "auth-signin": "ignored",
        "auth-method": "ignored",
    }


@pytest.mark.parametrize(
    ("key", "value", "code", "words"),
    [
        ("auth-url", "http://9proxy.auth.svc:4180/", "invalid", "the Service name"),
        ("auth-url", "http://proxy.-auth.svc/", "invalid", "the namespace"),
        ("auth-url", "http://proxy.a_b.svc/", "invalid", "not an http(s) URL"),
        ("auth-signin", "https://oauth2.auth.svc/start", "unsupported", "cluster Service"),
        ("auth-url", "https://$remote_addr/oauth2/auth", "unsupported", "nginx variables"),
        ("auth-url", "http://example.com/#;\ninjection_point", "invalid", "not an http(s) URL"),
        ("auth-url", "http://a.example/x;} location /y {", "invalid", "not an http(s) URL"),
        ("auth-url", "ftp://a.example/", "invalid", "not an http(s) URL"),
        ("auth-url", "/relative", "invalid", "not an http(s) URL"),
        ("auth-url", "http://a.example:99999/", "invalid", "port outside"),
        ("auth-url", "http://a.example/%0d%0a", "invalid", "not an http(s) URL"),
        ("auth-signin", "https://login.example.com/?rd=$uri", "unsupported", "variables"),
        ("auth-signin", "https://login.example.com/ x", "invalid", "not an http(s) URL"),
        ("auth-signin-redirect-param", "rd=1&x", "invalid", "not a query parameter name"),
        ("auth-method", "BREW", "invalid", "must be one of"),
        ("auth-response-headers", "X-User; proxy_pass x", "invalid", "not a header name"),
        ("auth-response-headers", "X-User,,X-B", "invalid", "not a header name"),
        ("auth-request-redirect", '/x"; return 200 "', "invalid", "not a URL or path"),
    ],
)
def test_a_bad_auth_value_refuses_the_ingress(key, value, code, words):
    values = {"auth-url": "http://127.0.0.1:9/verify"} | {key: value}
    found = findings(values)
    assert found[key].status == "refused" and found[key].code == code
    assert words in found[key].reason and ANNOTATION + key in found[key].reason
