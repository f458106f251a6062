"""Property tests: arbitrary objects in, a configuration nginx accepts out, and nothing
from the input ever becomes a directive.

Objects are shaped like Kubernetes objects (so they reach deep into the model) but any
field may hold any JSON value, nginx syntax, or a directive. Examples are derandomised so
CI is reproducible; for a longer hunt run with HYPOTHESIS_PROFILE=hunt.
"""

import base64
import contextlib
import copy
import os

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support_nginx import (
    Ports,
    assert_only_rendered_directives,
    layout_for,
    nginx_test,
    write_rendered,
)

from edgeagent import cli, grammar, model, render

settings.register_profile(
    "ci",
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "hunt", parent=settings.get_profile("ci"), max_examples=2000, derandomize=False
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SYNTAX = ["; ", ";", "}", "{", "\n", "#", "$host", '"', "'", "\\", " ", "\t", "\x00", "%0a"]
DIRECTIVES = ["load_module /x.so", "ssl_engine e", "alias /", "include /etc/passwd", "return 200"]
PLAIN = st.text(alphabet="abcxyz019-./*_", max_size=12)
TEXT = st.one_of(
    st.text(max_size=20),
    PLAIN,
    st.builds(lambda a, b, c: a + b + c, PLAIN, st.sampled_from(SYNTAX + DIRECTIVES), PLAIN),
)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 70000) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=5,
)


# Well-formed objects first: a valid Ingress (Service, EndpointSlice, Secret), then at
# most one of its fields replaced by anything at all. One bad field skips a whole Ingress,
# so corrupting more at once would only test the first check that fails.
# Hypothesis starts from the first choices: the common, valid ones come first.
LONG_HOST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253: the longest allowed
HOSTS = st.sampled_from(["a.example", "*.w.example", "b.example", "a.w.example", LONG_HOST, None])
SERVICE_NAMES_USED = ("app", "web", "api")
SERVICE_NAMES = st.sampled_from(SERVICE_NAMES_USED)
PORTS = st.one_of(
    st.fixed_dictionaries({"number": st.sampled_from([80, 9000])}),
    st.fixed_dictionaries({"name": st.sampled_from(["http", "admin"])}),
)
BACKENDS = st.fixed_dictionaries(
    {"service": st.fixed_dictionaries({"name": SERVICE_NAMES, "port": PORTS})}
)
PATHS = st.fixed_dictionaries(
    {
        "path": st.sampled_from(
            ["/", "/a", "/a/", "/a/b", "/b", "/a/b/", "/a(/|$)(.*)", "/b/[0-9]+", "/(.*)"]
        ),
        "pathType": st.sampled_from(["Exact", "Prefix", "ImplementationSpecific"]),
        "backend": BACKENDS,
    }
)
RULES = st.fixed_dictionaries(
    {
        "host": HOSTS,
        "http": st.fixed_dictionaries({"paths": st.lists(PATHS, min_size=1, max_size=3)}),
    }
)
PREFIX = "nginx.ingress.kubernetes.io/"
NETWORKS = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(v=4), st.integers(0, 32)),
    st.ip_addresses(v=6).map(str),
    st.builds(lambda a, n: f"{a}/{n}", st.ip_addresses(v=6), st.integers(0, 128)),
)
# Separators as manifests write them: commas, with blanks or line breaks around.
SOURCE_RANGES = st.builds(
    lambda items, separator: separator.join(items),
    st.lists(NETWORKS, min_size=1, max_size=4),
    st.sampled_from([",", ", ", ",\n  ", " ,\t"]),
)
BOOLEANS = st.sampled_from(["true", "false", "True", "1", "0", "f"])
TIMEOUTS = st.integers(1, 2_147_483).map(str)
ANNOTATIONS = st.fixed_dictionaries(
    {},
    optional={
        PREFIX + "ssl-redirect": BOOLEANS,
        PREFIX + "force-ssl-redirect": BOOLEANS,
        PREFIX + "proxy-read-timeout": TIMEOUTS,
        PREFIX + "proxy-send-timeout": TIMEOUTS,
        PREFIX + "proxy-connect-timeout": TIMEOUTS,
        PREFIX + "proxy-body-size": st.sampled_from(["0", "8m", "1k", "999999999G", "100"]),
        PREFIX + "whitelist-source-range": SOURCE_RANGES,
        PREFIX + "allowlist-source-range": SOURCE_RANGES,
        PREFIX + "denylist-source-range": SOURCE_RANGES,
        PREFIX + "rewrite-target": st.sampled_from(["/", "/$1", "/$2/x"]),
        PREFIX + "use-regex": BOOLEANS,
        PREFIX + "proxy-buffer-size": st.sampled_from(["1", "16k", "1m", "1M"]),
        PREFIX + "proxy-buffers-number": st.integers(4, 64).map(str),
        PREFIX + "proxy-buffering": st.sampled_from(["on", "off"]),
        PREFIX + "proxy-request-buffering": st.sampled_from(["on", "off"]),
        PREFIX + "proxy-http-version": st.sampled_from(["1.0", "1.1"]),
        PREFIX + "proxy-busy-buffers-size": st.sampled_from(["1", "4k", "8k", "12k", "28k", "1m"]),
        PREFIX + "proxy-max-temp-file-size": st.sampled_from(["0", "1", "4k", "1024m", "2g"]),
        PREFIX + "client-body-buffer-size": st.sampled_from(["1", "16k", "1m"]),
        PREFIX + "backend-protocol": st.sampled_from(["HTTP", "HTTPS", "https", "GRPC", "grpcs"]),
        PREFIX + "permanent-redirect": st.sampled_from(["/p", "https://a.example:8443/x?y=1&z"]),
        PREFIX + "permanent-redirect-code": st.integers(100, 599).map(str),
        PREFIX + "temporal-redirect": st.sampled_from(["http://[::1]/", "https://b.example"]),
        PREFIX + "app-root": st.sampled_from(["/app", "/a/b/"]),
        PREFIX + "x-forwarded-prefix": st.sampled_from(["", "/api", "/$1/x"]),
        PREFIX + "upstream-vhost": st.sampled_from(["internal.example.net", "b.example:8080"]),
        PREFIX + "server-alias": st.sampled_from(["alias.example", "a.example, *.b.example"]),
        PREFIX + "from-to-www-redirect": BOOLEANS,
        PREFIX + "proxy-next-upstream": st.sampled_from(["off", "error timeout http_502"]),
        PREFIX + "proxy-next-upstream-tries": st.integers(0, 1000).map(str),
        PREFIX + "proxy-next-upstream-timeout": st.integers(0, 2_147_483).map(str),
        PREFIX + "upstream-hash-by": st.sampled_from(["$request_uri", "$http_x_a-$cookie_b:1"]),
        PREFIX + "load-balance": st.sampled_from(["round_robin", "ewma"]),
        PREFIX + "enable-cors": st.sampled_from(["true", "true", "false"]),
        PREFIX + "cors-allow-origin": st.sampled_from(
            ["*", "https://a.example", "http://*.b.example:8080, https://c.example"]
        ),
        PREFIX + "cors-allow-methods": st.sampled_from(["GET", "GET, POST,PUT"]),
        PREFIX + "cors-allow-headers": st.sampled_from(["X-A", "X-A,Content-Type"]),
        PREFIX + "cors-expose-headers": st.sampled_from(["*", "X-Id, X-B"]),
        PREFIX + "cors-allow-credentials": BOOLEANS,
        PREFIX + "cors-max-age": st.sampled_from(["0", "600", "2147483647"]),
        PREFIX + "limit-rps": st.integers(0, 1_000_000).map(str),
        PREFIX + "limit-rpm": st.integers(0, 1_000_000).map(str),
        PREFIX + "limit-connections": st.integers(0, 65535).map(str),
        PREFIX + "limit-burst-multiplier": st.integers(1, 1000).map(str),
        PREFIX + "limit-rate": st.integers(0, 100_000_000).map(str),
        PREFIX + "limit-rate-after": st.integers(0, 100_000_000).map(str),
        PREFIX + "limit-allowlist": SOURCE_RANGES,
        PREFIX + "limit-whitelist": SOURCE_RANGES,
        PREFIX + "auth-url": st.sampled_from(
            [
                "http://127.0.0.1:9/verify",
                "https://[::1]/a?b=c",
                # A cluster Service: resolved from the drawn Services and slices, or 500.
                "http://web.default.svc:9000/oauth2/auth?x=1",
                "https://api.default.svc.cluster.local/verify",
                "http://missing.other.svc/",
                # The request's host: a hop to this edge's own servers of it.
                "https://$host/oauth2/auth",
                "$scheme://$http_host/verify",
            ]
        ),
        PREFIX + "auth-method": st.sampled_from(["GET", "post"]),
        PREFIX + "auth-signin": st.sampled_from(
            [
                "https://127.0.0.1/start",
                "http://[::1]/s?rd=x",
                "https://$host/oauth2/start?rd=$escaped_request_uri",
                "$scheme://$http_host/s?next=$scheme://$host$request_uri",
                "/oauth2/start?rd=$escaped_request_uri",
            ]
        ),
        PREFIX + "auth-signin-redirect-param": st.sampled_from(["rd", "return_to"]),
        PREFIX + "auth-response-headers": st.sampled_from(["X-User", "X-User, X-Email"]),
        PREFIX + "auth-request-redirect": st.sampled_from(["/after", "https://a.example/x?y"]),
        PREFIX + "enable-access-log": st.just("false"),  # served without: a warning
        PREFIX + "hsts": st.just("true"),  # never defined by ingress-nginx: a warning
        PREFIX + "canary": BOOLEANS,
        PREFIX + "canary-weight": st.sampled_from(["0", "1", "30", "100", "1000"]),
        PREFIX + "canary-weight-total": st.sampled_from(["10", "100", "1000", "99999"]),
        PREFIX + "canary-by-header": st.sampled_from(["X-Canary", "canary"]),
        PREFIX + "canary-by-header-value": st.sampled_from(["v2", "a.b:c/d~e"]),
        PREFIX + "canary-by-cookie": st.sampled_from(["c", "canary-session.v2"]),
        PREFIX + "canary-by-header-pattern": st.sampled_from(["^v2$", r"a|b\.[0-9]{2}"]),
        PREFIX + "affinity": st.sampled_from(["cookie", "cookie", "none"]),
        PREFIX + "affinity-mode": st.sampled_from(["balanced", "persistent"]),
        PREFIX + "session-cookie-name": st.sampled_from(["route", "a.b-c_d~e"]),
        PREFIX + "session-cookie-path": st.sampled_from(["/", "/app/x"]),
        PREFIX + "session-cookie-max-age": st.sampled_from(["0", "3600"]),
        PREFIX + "session-cookie-samesite": st.sampled_from(["None", "lax", "Strict"]),
        PREFIX + "auth-type": st.sampled_from(["basic", "basic", "digest"]),
        PREFIX + "auth-secret": st.sampled_from(["users", "default/users", "other/users"]),
        PREFIX + "auth-secret-type": st.sampled_from(["auth-file", "auth-map"]),
        PREFIX + "auth-realm": st.sampled_from(["", "Staff only", "a'b (c)"]),
        PREFIX + "auth-tls-secret": st.sampled_from(["ca", "default/ca", "other/ca"]),
        PREFIX + "auth-tls-verify-client": st.sampled_from(["on", "optional", "optional_no_ca"]),
        PREFIX + "auth-tls-verify-depth": st.sampled_from(["1", "100"]),
        PREFIX + "auth-tls-match-cn": st.sampled_from(["CN=a", "CN=(a|b\\.c)$"]),
        PREFIX + "auth-tls-pass-certificate-to-upstream": BOOLEANS,
        PREFIX + "proxy-redirect-from": st.sampled_from(["off", "default", "http://a.example/"]),
        PREFIX + "proxy-redirect-to": st.sampled_from(["off", "/", "https://b.example:8443/x/"]),
        PREFIX + "proxy-cookie-domain": st.sampled_from(["off", "a.example .b.example"]),
        PREFIX + "proxy-cookie-path": st.sampled_from(["off", "/ /app/", "/a/b /"]),
        PREFIX + "preserve-trailing-slash": BOOLEANS,
        PREFIX + "proxy-ssl-secret": st.sampled_from(["tls", "default/tls", "other/tls", "ca"]),
        PREFIX + "proxy-ssl-verify": st.sampled_from(["on", "off"]),
        PREFIX + "proxy-ssl-verify-depth": st.sampled_from(["1", "100"]),
        PREFIX + "proxy-ssl-name": st.sampled_from(["backend.internal", LONG_HOST]),
        PREFIX + "proxy-ssl-server-name": st.sampled_from(["on", "off"]),
        PREFIX + "proxy-ssl-ciphers": st.sampled_from(["HIGH:!aNULL", "DEFAULT@SECLEVEL=1"]),
        PREFIX + "proxy-ssl-protocols": st.sampled_from(["TLSv1.2", "TLSv1.3 TLSv1.2"]),
        PREFIX + "ssl-ciphers": st.sampled_from(["HIGH:!aNULL:!MD5", "ECDHE-ECDSA-AES128-SHA"]),
        PREFIX + "ssl-prefer-server-ciphers": BOOLEANS,
        PREFIX + "default-backend": st.sampled_from(["web", "api", "missing"]),
        PREFIX + "custom-http-errors": st.lists(st.integers(300, 599), min_size=1, max_size=4).map(
            lambda codes: ",".join(map(str, codes))
        ),
        PREFIX + "disable-proxy-intercept-errors": BOOLEANS,
        "example.com/x": st.just("{ ; }"),
    },
)
VALID_INGRESSES = st.builds(
    lambda name, annotations, rules, tls_hosts, default_backend, ingress_class: {
        "metadata": {"name": name, "namespace": "default", "annotations": dict(annotations)},
        "spec": {
            "ingressClassName": ingress_class,
            "rules": rules,
            "tls": [{"hosts": tls_hosts, "secretName": "tls"}],
            "defaultBackend": default_backend,
        },
    },
    st.sampled_from(["one", "two", "three"]),
    ANNOTATIONS,
    st.lists(RULES, min_size=1, max_size=3),
    st.lists(HOSTS.filter(bool), min_size=1, max_size=2),
    st.one_of(st.none(), BACKENDS),
    st.sampled_from(["edge", "edge", "edge", None, "other"]),
)


def _first_path(obj: dict) -> dict:
    return obj["spec"]["rules"][0]["http"]["paths"][0]


def _setter(locate, key):
    """Set `key` of the dict `locate(obj)` returns, if that part exists."""

    def set_value(obj: dict, value) -> None:
        with contextlib.suppress(IndexError, KeyError, TypeError):
            locate(obj)[key] = value

    return set_value


INGRESS_FIELDS = [
    _setter(lambda o: o["metadata"], "name"),
    _setter(lambda o: o["metadata"], "namespace"),
    _setter(lambda o: o["metadata"], "annotations"),
    *(
        _setter(lambda o: o["metadata"]["annotations"], PREFIX + key)
        for key in (
            "auth-url",
            "auth-type",
            "auth-secret",
            "auth-realm",
            "auth-tls-secret",
            "auth-tls-match-cn",
            "mirror-target",
            "mirror-host",
            "mirror-request-body",
            "custom-headers",
            "proxy-body-size",
            "proxy-read-timeout",
            "ssl-redirect",
            "force-ssl-redirect",
            "whitelist-source-range",
            "allowlist-source-range",
            "denylist-source-range",
            "configuration-snippet",
            "rewrite-target",
            "use-regex",
            "proxy-buffer-size",
            "proxy-buffers-number",
            "proxy-busy-buffers-size",
            "proxy-max-temp-file-size",
            "proxy-buffering",
            "proxy-http-version",
            "backend-protocol",
            "permanent-redirect",
            "temporal-redirect",
            "app-root",
            "x-forwarded-prefix",
            "upstream-vhost",
            "server-alias",
            "from-to-www-redirect",
            "proxy-next-upstream",
            "proxy-next-upstream-tries",
            "proxy-next-upstream-timeout",
            "upstream-hash-by",
            "load-balance",
            "canary-by-header",
            "canary-by-header-value",
            "canary-by-header-pattern",
            "canary-by-cookie",
            "canary-weight",
            "affinity",
            "session-cookie-name",
            "session-cookie-path",
            "session-cookie-domain",
            "enable-cors",
            "cors-allow-origin",
            "cors-allow-methods",
            "cors-allow-headers",
            "cors-expose-headers",
            "cors-max-age",
            "limit-rps",
            "limit-rpm",
            "limit-connections",
            "limit-burst-multiplier",
            "limit-rate",
            "limit-allowlist",
            "auth-method",
            "auth-signin",
            "auth-signin-redirect-param",
            "auth-response-headers",
            "auth-request-redirect",
            "proxy-redirect-from",
            "proxy-redirect-to",
            "proxy-cookie-domain",
            "proxy-cookie-path",
            "preserve-trailing-slash",
            "proxy-ssl-secret",
            "proxy-ssl-name",
            "proxy-ssl-ciphers",
            "proxy-ssl-protocols",
            "ssl-ciphers",
            "default-backend",
            "custom-http-errors",
            "disable-proxy-intercept-errors",
        )
    ),
    _setter(lambda o: o["spec"], "ingressClassName"),
    _setter(lambda o: o["spec"], "rules"),
    _setter(lambda o: o["spec"]["rules"][0], "host"),
    _setter(lambda o: _first_path(o), "path"),
    _setter(lambda o: _first_path(o), "pathType"),
    _setter(lambda o: _first_path(o)["backend"]["service"], "name"),
    _setter(lambda o: _first_path(o)["backend"]["service"], "port"),
    _setter(lambda o: _first_path(o)["backend"]["service"]["port"], "number"),
    _setter(lambda o: o["spec"]["tls"][0]["hosts"], 0),
    _setter(lambda o: o["spec"]["tls"][0], "secretName"),
    _setter(lambda o: o["spec"], "defaultBackend"),
]


def corrupted(valid, fields):
    """A valid object, or (half the time) the same with one field replaced by anything."""

    def apply(drawn):
        obj, field, value = drawn
        if field is not None:
            field(obj, value)
        return obj

    choices = [None] * len(fields) + fields  # half the objects stay valid
    return st.tuples(valid, st.sampled_from(choices), st.one_of(TEXT, JSON)).map(apply)


INGRESSES = corrupted(VALID_INGRESSES, INGRESS_FIELDS)


def services(name: str):
    return corrupted(
        st.builds(
            lambda ports: {
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"ports": ports},
            },
            st.lists(
                st.sampled_from([{"name": "http", "port": 80}, {"name": "admin", "port": 9000}]),
                min_size=1,
                max_size=2,
                unique_by=lambda port: port["name"],
            ),
        ),
        [
            _setter(lambda o: o["spec"], "ports"),
            _setter(lambda o: o["spec"]["ports"][0], "name"),
            _setter(lambda o: o["spec"]["ports"][0], "port"),
            _setter(lambda o: o["spec"], "type"),
        ],
    )


def endpoint_slices(service: str):
    return corrupted(
        st.builds(
            lambda endpoints, port_name: {
                "metadata": {
                    "name": f"{service}-slice",
                    "namespace": "default",
                    "labels": {"kubernetes.io/service-name": service},
                },
                "addressType": "IPv4",
                "endpoints": endpoints,
                "ports": [{"name": port_name, "port": 8080}],
            },
            st.lists(
                st.fixed_dictionaries(
                    {
                        "addresses": st.lists(
                            st.sampled_from(["10.0.0.1", "10.0.0.2"]), min_size=1, max_size=2
                        ),
                        "conditions": st.sampled_from([{"ready": True}, {}, {"ready": False}]),
                    }
                ),
                min_size=1,
                max_size=3,
            ),
            st.sampled_from(["http", "admin"]),
        ),
        [
            _setter(lambda o: o, "addressType"),
            _setter(lambda o: o, "endpoints"),
            _setter(lambda o: o["endpoints"][0]["addresses"], 0),
            _setter(lambda o: o["endpoints"][0], "conditions"),
            _setter(lambda o: o["ports"][0], "port"),
            _setter(lambda o: o["ports"][0], "name"),
            _setter(lambda o: o["metadata"]["labels"], "kubernetes.io/service-name"),
        ],
    )


@pytest.fixture(scope="module")
def pair():
    return cli.self_signed("a.example", ("a.example",))


@pytest.fixture(scope="module")
def workdir(tmp_path_factory, pair):
    directory = tmp_path_factory.mktemp("properties")
    default = directory / cli.DEFAULT_CERTIFICATE_FILE
    cli.write_file(default, pair.certificate_pem + pair.key_pem, cli.PRIVATE_MODE)
    return directory


def secrets_strategy(pair: model.CertPair):
    good = {
        "metadata": {"name": "tls", "namespace": "default"},
        "type": "kubernetes.io/tls",
        "data": {
            "tls.crt": base64.b64encode(pair.certificate_pem).decode(),
            "tls.key": base64.b64encode(pair.key_pem).decode(),
            # The CA a proxy-ssl-secret trusts (its own certificate, self-signed).
            "ca.crt": base64.b64encode(pair.certificate_pem).decode(),
        },
    }
    return st.lists(
        corrupted(
            st.just(good).map(copy.deepcopy),
            [
                _setter(lambda o: o, "type"),
                _setter(lambda o: o, "data"),
                _setter(lambda o: o["data"], "tls.crt"),
                _setter(lambda o: o["data"], "tls.key"),
                _setter(lambda o: o["data"], "ca.crt"),
            ],
        ),
        min_size=1,
        max_size=1,
    )


@given(data=st.data())
def test_any_objects_give_a_configuration_nginx_accepts_and_nothing_injected(data, workdir, pair):
    inputs = model.Inputs(
        ingresses=data.draw(st.lists(INGRESSES, max_size=4), label="ingresses"),
        services=[data.draw(services(name), label=name) for name in SERVICE_NAMES_USED],
        endpoint_slices=[
            data.draw(endpoint_slices(name), label=f"{name} slice") for name in SERVICE_NAMES_USED
        ],
        secrets=data.draw(secrets_strategy(pair), label="secrets"),
    )
    built = model.build(inputs, model.Options())
    event(f"servers: {min(len(built.servers), 3)}, upstreams: {min(len(built.upstreams), 2)}")
    event(f"certificates: {len(built.certificates)}")
    layout = layout_for(workdir, Ports(8080, 8443, 10246))
    rendered = render.render(built, layout)
    write_rendered(workdir, layout, rendered)

    tested = nginx_test(workdir)
    assert tested.returncode == 0, tested.stderr
    assert_only_rendered_directives(workdir / "nginx.conf")

    # Every Ingress of our class is served or reported.
    accounted = set(built.served_ingresses) | {
        (p.namespace, p.name) for p in built.problems if p.kind == "Ingress"
    }
    for obj in inputs.ingresses:
        if obj["spec"]["ingressClassName"] == "edge":
            assert model.identity(obj) in accounted


@given(
    st.one_of(
        SOURCE_RANGES,
        TEXT,
        st.builds(lambda a, b: a + b, SOURCE_RANGES, st.sampled_from(SYNTAX + DIRECTIVES)),
    )
)
def test_source_ranges_are_refused_or_plain_canonical_networks(value):
    """Whatever the text, a source range list is refused or made of plain tokens that
    parse back to themselves (what nginx's allow and deny get)."""
    try:
        ranges = grammar.source_ranges(value, "annotation")
    except grammar.Invalid:
        event("refused")
        return
    event("accepted")
    assert ranges
    for network in ranges:
        assert render.TOKEN.fullmatch(network)
        assert grammar.source_ranges(network, "annotation") == (network,)


REGEX_TEXT = st.text(alphabet="/ab()|?^$[]{}*+.\\-dWs:,019", min_size=1, max_size=24).map(
    lambda text: "/" + text
)


@given(paths=st.lists(REGEX_TEXT, min_size=1, max_size=40))
def test_every_regex_path_the_grammar_accepts_compiles_in_nginx(paths, workdir):
    """grammar.regex_path stands in for nginx's PCRE: whatever it accepts, nginx -t must
    take too, or one Ingress would stop every later configuration."""
    accepted = []
    for text in dict.fromkeys(paths):
        try:
            accepted.append(grammar.regex_path(text, "path"))
        except grammar.Invalid:
            event("refused")
    event(f"accepted: {min(len(accepted), 5)}")
    if not accepted:
        return
    backend = {"service": {"name": "app", "port": {"number": 80}}}
    regex_paths = [
        {"path": text, "pathType": "ImplementationSpecific", "backend": backend}
        for text in accepted
    ]
    obj = {
        "metadata": {
            "name": "regexes",
            "namespace": "default",
            "annotations": {PREFIX + "use-regex": "true", PREFIX + "rewrite-target": "/$1"},
        },
        "spec": {
            "ingressClassName": "edge",
            "rules": [{"host": "r", "http": {"paths": regex_paths}}],
        },
    }
    built = model.build(model.Inputs(ingresses=[obj]), model.Options())
    assert built.served_ingresses == (("default", "regexes"),)
    layout = layout_for(workdir, Ports(8080, 8443, 10246))
    write_rendered(workdir, layout, render.render(built, layout))
    tested = nginx_test(workdir)
    assert tested.returncode == 0, tested.stderr
