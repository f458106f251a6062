"""External authentication (ingress-nginx: annotations/authreq, nginx.tmpl's auth location).

`auth-url` sends a subrequest for every request of the Ingress's paths to that URL
(nginx `auth_request` to an internal location of the server, as ingress-nginx writes
it): a 2xx answer lets the request through, 401 and 403 are the client's answer, any
other is 500. The subrequest carries the client's headers (cookies, Authorization) but
no body, and `X-Original-URL`, `X-Original-Method`, `X-Sent-From`, `X-Real-IP`,
`X-Forwarded-For`, `X-Auth-Request-Redirect` (the request URI, or
`auth-request-redirect`), with the auth host as `Host`.

- `auth-method`: the subrequest's method (default: the client's).
- `auth-response-headers`: headers of the auth answer passed on to the backend.
- `auth-cache-*`, `auth-keepalive*`: ignored, with a warning (every request asks the
  auth service, on a new connection, which protects as much).
- `auth-signin`: a 401 answers a redirect there instead, with the request's URL added
  as `auth-signin-redirect-param` (default `rd`) unless the URL names that parameter
  already, as `$scheme://$http_host` followed by the request URI as the client wrote it
  (unescaped, so that an edge whose nginx lacks set-misc keeps serving the Ingresses it
  served); `rd=$escaped_request_uri` in the URL escapes it (below). A path (`/login`, a
  page of the Ingress's own host) is taken as ingress-nginx takes it: its `return 302` of
  a path is made absolute by nginx on the request's scheme and host, without a port
  (ingress-nginx's `port_in_redirect off`), so the edge redirects to
  `$scheme://$host/login` (`SAME_HOST`).

The URL is an `http(s)://host[:port][/path][?query]` whose host is an address or a
DNS name resolved by nginx when it loads the configuration, or a cluster Service,
`NAME.NAMESPACE.svc[.cluster.local]` of any namespace (oauth2-proxy usually runs in its
own), with the Service's port (default 80, 443 for https): the edge's DNS does not know
those names, so the model resolves it from the API's Services and EndpointSlices to an
upstream of the Service's ready endpoints (`Location.auth_upstream`), as a mirror-target
is. While it has none the Ingress's paths answer 500, as ingress-nginx's do when their
auth service is unreachable: never served without their authentication. A cluster
Service in `auth-signin` is refused: a browser is sent there, and it cannot resolve it.

nginx variables, as ingress-nginx users write them for oauth2-proxy served by a second
Ingress of the same host at /oauth2 (`auth-url: https://$host/oauth2/auth`,
`auth-signin: https://$host/oauth2/start?rd=$escaped_request_uri`):
- `auth-url`: the host may be `$host` or `$http_host` (no port after it) and the scheme
  `$scheme`, nothing else. ingress-nginx's own `$best_http_host` is read as `$http_host`
  (`BEST_HTTP_HOST`). Such a URL names what this edge serves for the request's host
  (`hops`): the subrequest goes to the edge itself, to the servers of its own hosts on
  loopback listeners of their own (`Layout.auth_hop_http_listen`, `auth_hop_https_listen`),
  never to an address the client chose. Those listeners take no PROXY protocol header
  (nginx's proxy cannot send one, so a hop to the public listeners behind
  `--proxy-protocol` would be refused), and the HTTPS one is TLS, asked with the host's
  name as SNI, so the subrequest meets the host's server exactly as a client of
  `https://HOST/` would (its certificate, ssl-redirect, allow lists) without leaving
  the node, and therefore without checking a certificate. Only the servers of hosts whose
  Ingress hops listen there, beside a default server that answers 500 (and rejects the
  TLS handshake): a host the edge does not serve fails closed. A hop that lands on a
  location that hops again answers 500 instead of looping. Paths without host (the
  default server's) ask no hop: the client names their host, so they answer 500, with a
  warning (model.py).
- `auth-signin`: the host may be `$host`, `$http_host`, `$best_http_host` or
  `$server_name`, the scheme `$scheme`, and the path and query may hold `SIGNIN_VARIABLES`;
  any other `$` is refused.
  `$escaped_request_uri`, which ingress-nginx defines with set-misc's `set_escape_uri`, is
  defined the same way (both modes: Debian's libnginx-mod-http-set-misc), so `rd` holds
  the request URI as one query value.
"""

import hashlib
import re
from dataclasses import dataclass, field

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

URL, METHOD, SIGNIN = "auth-url", "auth-method", "auth-signin"
REDIRECT_PARAM, RESPONSE_HEADERS = "auth-signin-redirect-param", "auth-response-headers"
REQUEST_REDIRECT = "auth-request-redirect"
OPTIONS = (METHOD, SIGNIN, REDIRECT_PARAM, RESPONSE_HEADERS, REQUEST_REDIRECT)
# They only tune how often and over which connections the auth service is asked: every
# request asking it on a fresh connection protects as much.
TUNING = (
    "auth-cache-key",
    "auth-cache-duration",
    "auth-keepalive",
    "auth-keepalive-share-vars",
    "auth-keepalive-requests",
    "auth-keepalive-timeout",
)
KEYS = (URL, *OPTIONS, *TUNING)

DEFAULT_REDIRECT_PARAM = "rd"
_HOST = r"([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
_PATH_AND_QUERY = r"(/[A-Za-z0-9\-._~/:,=&]*)?(\?[A-Za-z0-9\-._~/:,=&?]*)?"
AUTH_URL = re.compile(
    rf"(?P<scheme>https?)://(?P<host>{_HOST})(:(?P<port>[0-9]{{1,5}}))?{_PATH_AND_QUERY}"
)
# ingress-nginx's `$best_http_host` (lua_ingress.lua) is the client's Host header, or with
# its use-forwarded-headers the first X-Forwarded-Host. The edge never trusts a client's
# X-Forwarded-Host (it sends its own, as ingress-nginx by default), so here it is always
# the Host header: nginx's `$http_host`, which the parsers write instead (nginx has no
# `$best_http_host`).
BEST_HTTP_HOST = re.compile(r"\$best_http_host(?![A-Za-z0-9_])")
# auth-url naming the request's host: the edge itself (`ExternalAuth.hops`).
HOP_URL = re.compile(
    rf"(?P<scheme>https?|\$scheme)://(?P<host>\$host|\$http_host|\$best_http_host)"
    rf"(?![A-Za-z0-9_]){_PATH_AND_QUERY}"
)
# What auth-signin may hold of nginx's variables (those ingress-nginx's docs, e2e tests and
# public manifests write there), each whole: `$hostname` is not `$host`. None carries a
# line break: `$uri` and `$arg_*` (decoded) are not among them.
SIGNIN_VARIABLES = (
    "scheme",
    "host",
    "http_host",
    "best_http_host",
    "server_name",
    "request_uri",
    "escaped_request_uri",
    "args",
    "is_args",
)
_SIGNIN_VARIABLE = rf"\$({'|'.join(SIGNIN_VARIABLES)})(?![A-Za-z0-9_])"
SIGNIN_URL = re.compile(
    rf"(?P<scheme>https?|\$scheme)://"
    rf"((?P<host>{_HOST})(:(?P<port>[0-9]{{1,5}}))?|\$(host|http_host|best_http_host|server_name))(?![A-Za-z0-9_])"
    rf"(?P<rest>[/?]([A-Za-z0-9\-._~/:,=&?]|{_SIGNIN_VARIABLE})*)?"
)
# auth-signin as a path on the request's own host (`/login?next=x`): the rest of a
# SIGNIN_URL, so that SAME_HOST before it makes one.
SIGNIN_PATH = re.compile(rf"/([A-Za-z0-9\-._~/:,=&?]|{_SIGNIN_VARIABLE})*")
SAME_HOST = "$scheme://$host"
# nginx has no such variable: the location that redirects defines it (set_escape_uri).
ESCAPED_REQUEST_URI, ESCAPED_VARIABLE = "$escaped_request_uri", "$edgeagent_escaped_request_uri"
CLUSTER_SERVICE = re.compile(r"[^.]+\.[^.]+\.svc(\.cluster\.local)?\.?", re.IGNORECASE)
DEFAULT_PORTS = {"http": 80, "https": 443}
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
PARAM = re.compile(r"[A-Za-z0-9_-]+")
REQUEST_REDIRECT_VALUE = re.compile(r"[A-Za-z0-9\-._~/:,=&?]+")
HEADERS_MAX = 32


@dataclass(frozen=True)
class ExternalAuth:
    url: str
    host: str
    """The Host header of the subrequest: the URL's host without its port, as ingress-nginx
    sends it (and the name a TLS cluster Service's certificate is checked for)."""
    method: str | None = None
    signin: str | None = None
    """The redirect a 401 answers, the request's URL parameter included."""
    response_headers: tuple[str, ...] = ()
    request_redirect: str | None = None
    # Out of repr, so out of `id`: the URL decides it.
    service: tuple[str, str, int] | None = field(default=None, repr=False)
    """(namespace, name, port) of the cluster Service the URL names, else None."""

    @property
    def hops(self) -> bool:
        """Whether the URL names the request's host: the subrequest goes to this edge."""
        return self.host.startswith("$")

    @property
    def escapes_uri(self) -> bool:
        """Whether the sign-in URL holds `$escaped_request_uri`."""
        return self.signin is not None and ESCAPED_REQUEST_URI in self.signin

    @property
    def id(self) -> str:
        """The name part of its internal location and variables."""
        return hashlib.blake2s(repr(self).encode(), digest_size=6).hexdigest()

    @property
    def scheme(self) -> str:
        """http, https, or `$scheme` (the request's) for a URL that hops."""
        return _url_parts(self.url)["scheme"]

    @property
    def uri(self) -> str:
        """The URL's path and query (may be empty)."""
        parts = _url_parts(self.url)
        port = parts.groupdict().get("port")
        return self.url[parts.end("port") if port else parts.end("host") :]


def _url_parts(url: str) -> re.Match:
    return AUTH_URL.fullmatch(url) or HOP_URL.fullmatch(url)


def parse(read: Reader, config: Config) -> dict:
    for key in TUNING:
        if read.has(key):
            read.ignore(
                key, "edgeagent asks the auth service for every request, on a new connection"
            )
    if not read.has(URL):
        for key in OPTIONS:
            if read.has(key):
                read.ignore(key, f"no {URL} is set, as in ingress-nginx")
        return {"external_auth": None}
    url = read.get(URL, auth_url)
    param = read.get(REDIRECT_PARAM, _pattern(PARAM, "a query parameter name"))
    signin = read.get(SIGNIN, signin_url)
    auth = None
    if url is not None:
        parts = _url_parts(url)
        auth = ExternalAuth(
            url=url,
            host=parts["host"],
            method=read.get(METHOD, method),
            signin=signin
            and with_redirect(absolute_signin(signin), param or DEFAULT_REDIRECT_PARAM),
            response_headers=read.get(RESPONSE_HEADERS, header_names) or (),
            request_redirect=read.get(
                REQUEST_REDIRECT, _pattern(REQUEST_REDIRECT_VALUE, "a URL or path")
            ),
            service=None
            if url_hops(url)
            else cluster_service(parts["scheme"], parts["host"], parts["port"], URL),
        )
    return {"external_auth": auth}


def auth_url(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if "$" in text:
        if HOP_URL.fullmatch(text) and len(text) <= 2048:
            return BEST_HTTP_HOST.sub("$http_host", text)
        raise Invalid(
            f"{what} {grammar.show(text)}: of nginx variables, only $host or $http_host "
            "(or ingress-nginx's $best_http_host, the same here) as the whole host (without "
            "a port) and $scheme as the scheme are supported, naming what this edge serves "
            "for the request's host",
            "unsupported",
        )
    parts = AUTH_URL.fullmatch(text)
    if not parts or len(text) > 2048:
        raise Invalid(
            f"{what} {grammar.show(text)} is not an http(s) URL of letters, digits and -._~/:,=&?"
        )
    if parts["port"] and not 1 <= int(parts["port"]) <= 65535:
        raise Invalid(f"{what} {grammar.show(text)} has a port outside 1-65535")
    cluster_service(parts["scheme"], parts["host"], parts["port"], what)
    return text


def url_hops(url: str) -> bool:
    return HOP_URL.fullmatch(url) is not None


def signin_url(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if text.startswith("/"):
        if not SIGNIN_PATH.fullmatch(text) or len(text) > 2048:
            raise Invalid(
                f"{what} {grammar.show(text)}: a path holds letters, digits, -._~/:,=&? and "
                f"of nginx variables only {', '.join('$' + name for name in SIGNIN_VARIABLES)}"
                ", each whole",
                "unsupported" if "$" in text else "invalid",
            )
        return BEST_HTTP_HOST.sub("$http_host", text)
    if "$" in text:
        if not SIGNIN_URL.fullmatch(text) or len(text) > 2048:
            raise Invalid(
                f"{what} {grammar.show(text)}: of nginx variables, only "
                f"{', '.join('$' + name for name in SIGNIN_VARIABLES)} are supported, each "
                "whole, with $host, $http_host, $best_http_host or $server_name only as the whole "
                "host and "
                "$scheme only as the scheme",
                "unsupported",
            )
        parts = SIGNIN_URL.fullmatch(text)
        if parts["port"] and not 1 <= int(parts["port"]) <= 65535:
            raise Invalid(f"{what} {grammar.show(text)} has a port outside 1-65535")
    else:
        parts = AUTH_URL.fullmatch(auth_url(text, what))
    if parts["host"] and CLUSTER_SERVICE.fullmatch(parts["host"]):
        raise Invalid(
            f"{what} {grammar.show(text)}: a cluster Service name, which the browser sent "
            "there cannot resolve",
            "unsupported",
        )
    return BEST_HTTP_HOST.sub("$http_host", text)


def cluster_service(
    scheme: str, host: str, port: str | int | None, what: str
) -> tuple[str, str, int] | None:
    """(namespace, name, port) of the cluster Service a URL's host names, with the
    scheme's default port, else None (auth-url's and mirror-target's)."""
    if not CLUSTER_SERVICE.fullmatch(host):
        return None
    name, namespace = host.lower().split(".")[:2]
    return (
        grammar.dns1123_label(namespace, f"{what}: the namespace"),
        grammar.dns1035_label(name, f"{what}: the Service name"),
        int(port) if port else DEFAULT_PORTS[scheme],
    )


def service_of(value: object) -> tuple[str, str, int] | None:
    """The cluster Service an auth-url names, if it is one and valid."""
    try:
        text = auth_url(value, URL)
    except Invalid:
        return None
    parts = AUTH_URL.fullmatch(text)
    if parts is None:  # it hops
        return None
    return cluster_service(parts["scheme"], parts["host"], parts["port"], URL)


def absolute_signin(url: str) -> str:
    """A sign-in path as the URL nginx makes of it in ingress-nginx's redirect."""
    return SAME_HOST + url if url.startswith("/") else url


def with_redirect(url: str, param: str) -> str:
    """The sign-in URL with the request's URL as `param`, unless it names it already."""
    query = url.partition("?")[2]
    if any(item.partition("=")[0] == param for item in query.split("&")):
        return url
    return f"{url}{'&' if '?' in url else '?'}{param}=$scheme://$http_host$request_uri"


def method(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if text.upper() not in METHODS:
        raise Invalid(f"{what} {grammar.show(text)} must be one of {', '.join(METHODS)}")
    return text.upper()


def header_names(value: object, what: str) -> tuple[str, ...]:
    text = grammar.string(value, what)
    items = [item.strip(" \t\r\n") for item in text.split(",")]
    if len(items) > HEADERS_MAX:
        raise Invalid(f"{what} lists more than {HEADERS_MAX} headers")
    for item in items:
        if not HEADER_NAME.fullmatch(item):
            raise Invalid(f"{what}: {grammar.show(item)} is not a header name")
    return tuple(dict.fromkeys(items))


def _pattern(pattern: re.Pattern, kind: str):
    def parse_value(value: object, what: str) -> str:
        text = grammar.string(value, what)
        if not pattern.fullmatch(text) or len(text) > 2048:
            raise Invalid(f"{what} {grammar.show(text)} is not {kind}")
        return text

    return parse_value


def header_variable(name: str) -> str:
    """The nginx variable of an auth answer's header."""
    return "$upstream_http_" + name.lower().replace("-", "_")


def policies(server) -> tuple[tuple[ExternalAuth, str | None], ...]:
    """(auth, upstream) of each internal location a server needs, once each, in location
    order: the upstream of a cluster Service's endpoints, None for a URL outside the
    cluster (proxied to as written)."""
    found = (
        (location.settings.external_auth, location.auth_upstream)
        for location in server.locations
        if asks(location)
    )
    return tuple(dict.fromkeys(found))


def asks(location) -> bool:
    """Whether the location asks an auth service: a cluster Service only while it has an
    upstream."""
    auth = location.settings.external_auth
    return auth is not None and (auth.service is None or location.auth_upstream is not None)


def unreachable(location) -> bool:
    """Whether the location's auth service is a cluster Service without an upstream: it
    answers 500, as ingress-nginx's when its auth service is unreachable."""
    auth = location.settings.external_auth
    return auth is not None and auth.service is not None and location.auth_upstream is None


def hops_to(server) -> bool:
    """Whether the server takes a hop's subrequest: an auth-url of its own names the
    request's host. Not the default server: its request's host is any the client names,
    so its hop lands on the hop listeners' default server, which answers 500."""
    return server.host != "" and any(
        location.settings.external_auth is not None and location.settings.external_auth.hops
        for location in server.locations
    )


def escapes_uri(model) -> bool:
    """Whether a sign-in URL of the model holds `$escaped_request_uri`: nginx then needs
    set-misc."""
    return any(
        location.settings.external_auth is not None and location.settings.external_auth.escapes_uri
        for server in (model.default_server, *model.servers)
        for location in server.locations
    )


def hop_ports(layout) -> tuple[int, int]:
    return tuple(int(address.rpartition(":")[2]) for address in _hop_listens(layout))


def _hop_listens(layout) -> tuple[str, str]:
    return layout.auth_hop_http_listen, layout.auth_hop_https_listen


def check_hop_listens(layout) -> None:
    """Raise `grammar.Invalid` unless the hop listeners are two loopback addresses whose
    ports no other listener of the layout has: a subrequest tells it hopped by its port."""
    others = (
        layout.listen_http,
        layout.listen_https,
        layout.status_listen,
        layout.ssl_passthrough_listen,
        layout.ssl_passthrough_backend_listen,
    )
    taken = {address.rpartition(":")[2] for address in others}
    names = ("auth_hop_http_listen", "auth_hop_https_listen")
    for what, address in zip(names, _hop_listens(layout), strict=True):
        grammar.listen(address, what)
        host, _, port = address.rpartition(":")
        if host not in ("127.0.0.1", "[::1]") or port in taken:
            raise Invalid(
                f"{what} {grammar.show(address)} must be 127.0.0.1 or [::1] with a port of its own"
            )
        taken.add(port)


def upstream_name(server_host: str, auth: ExternalAuth) -> str:
    """In the dynamic mode, the upstream whose balancer names a cluster Service's backend,
    one per server and auth (each server's block defines its own: blocks are validated
    one by one)."""
    digest = hashlib.blake2s(f"{server_host}/{auth.id}".encode(), digest_size=6).hexdigest()
    return f"edgeagent_auth_{digest}"


# The second lock: what render writes of an external auth, checked again.
HOST_AND_PORT = re.compile(rf"{_HOST}(:[0-9]{{1,5}})?")


render_url = grammar.second_lock(AUTH_URL, "an auth URL")
render_host = grammar.second_lock(HOST_AND_PORT, "a host")
render_value = grammar.second_lock(REQUEST_REDIRECT_VALUE, "a redirect value")
render_uri = grammar.second_lock(re.compile(_PATH_AND_QUERY), "an auth URL's path and query")
render_hop_scheme = grammar.second_lock(re.compile(r"https?|\$scheme"), "a hop's scheme")


def render_signin(value: object) -> str:
    """The sign-in URL as nginx's error_page names it: `$escaped_request_uri` as the
    variable the location defines."""
    text = str(value)
    if not SIGNIN_URL.fullmatch(text):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a sign-in URL")
    return text.replace(ESCAPED_REQUEST_URI, ESCAPED_VARIABLE)


def render_header_variable(name: object) -> str:
    text = str(name)
    if not HEADER_NAME.fullmatch(text):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a header name")
    return header_variable(text)
