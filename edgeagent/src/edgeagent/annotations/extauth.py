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
  already. nginx without Lua cannot escape it: it is sent as `$scheme://$http_host`
  followed by the request URI as the client wrote it.

The URL is an `http(s)://host[:port][/path][?query]` whose host is an address or a
DNS name resolved by nginx when it loads the configuration, or a cluster Service,
`NAME.NAMESPACE.svc[.cluster.local]` of any namespace (oauth2-proxy usually runs in its
own), with the Service's port (default 80, 443 for https): the edge's DNS does not know
those names, so the model resolves it from the API's Services and EndpointSlices to an
upstream of the Service's ready endpoints (`Location.auth_upstream`), as a mirror-target
is. While it has none the Ingress's paths answer 500, as ingress-nginx's do when their
auth service is unreachable: never served without their authentication. nginx variables
(such as ingress-nginx's `$host` in oauth2-proxy examples) are refused, and so is a
cluster Service in `auth-signin`: a browser is sent there, and it cannot resolve it.
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
    def id(self) -> str:
        """The name part of its internal location and variables."""
        return hashlib.blake2s(repr(self).encode(), digest_size=6).hexdigest()

    @property
    def scheme(self) -> str:
        return AUTH_URL.fullmatch(self.url)["scheme"]

    @property
    def uri(self) -> str:
        """The URL's path and query (may be empty)."""
        parts = AUTH_URL.fullmatch(self.url)
        return self.url[parts.end("port") if parts["port"] else parts.end("host") :]


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
        parts = AUTH_URL.fullmatch(url)
        auth = ExternalAuth(
            url=url,
            host=parts["host"],
            method=read.get(METHOD, method),
            signin=signin and with_redirect(signin, param or DEFAULT_REDIRECT_PARAM),
            response_headers=read.get(RESPONSE_HEADERS, header_names) or (),
            request_redirect=read.get(
                REQUEST_REDIRECT, _pattern(REQUEST_REDIRECT_VALUE, "a URL or path")
            ),
            service=cluster_service(parts["scheme"], parts["host"], parts["port"], URL),
        )
    return {"external_auth": auth}


def auth_url(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if "$" in text:
        raise Invalid(
            f"{what} {grammar.show(text)}: nginx variables are not supported", "unsupported"
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


def signin_url(value: object, what: str) -> str:
    text = auth_url(value, what)
    if CLUSTER_SERVICE.fullmatch(AUTH_URL.fullmatch(text)["host"]):
        raise Invalid(
            f"{what} {grammar.show(text)}: a cluster Service name, which the browser sent "
            "there cannot resolve",
            "unsupported",
        )
    return text


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
    return cluster_service(parts["scheme"], parts["host"], parts["port"], URL)


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


def upstream_name(server_host: str, auth: ExternalAuth) -> str:
    """In the dynamic mode, the upstream whose balancer names a cluster Service's backend,
    one per server and auth (each server's block defines its own: blocks are validated
    one by one)."""
    digest = hashlib.blake2s(f"{server_host}/{auth.id}".encode(), digest_size=6).hexdigest()
    return f"edgeagent_auth_{digest}"


# The second lock: what render writes of an external auth, checked again.
HOST_AND_PORT = re.compile(rf"{_HOST}(:[0-9]{{1,5}})?")
SIGNIN_SUFFIX = "=$scheme://$http_host$request_uri"


render_url = grammar.second_lock(AUTH_URL, "an auth URL")
render_host = grammar.second_lock(HOST_AND_PORT, "a host")
render_value = grammar.second_lock(REQUEST_REDIRECT_VALUE, "a redirect value")
render_uri = grammar.second_lock(re.compile(_PATH_AND_QUERY), "an auth URL's path and query")


def render_signin(value: object) -> str:
    text = str(value)
    url = text.removesuffix(SIGNIN_SUFFIX)
    if url != text:
        url = url[: max(url.rfind("?"), url.rfind("&"))]
    if not AUTH_URL.fullmatch(url) or "$" in text.removeprefix(url).replace(SIGNIN_SUFFIX, ""):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a sign-in URL")
    return text


def render_header_variable(name: object) -> str:
    text = str(name)
    if not HEADER_NAME.fullmatch(text):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a header name")
    return header_variable(text)
