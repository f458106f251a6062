"""Error pages (ingress-nginx: annotations/defaultbackend, customhttperrors and
disableproxyintercepterrors; nginx.tmpl's CUSTOM_ERRORS).

- `default-backend: NAME`: a Service of the Ingress's own namespace (a name only, as
  ingress-nginx reads it: another namespace's cannot be named), on its first port. When
  the Service of one of the Ingress's paths has no ready endpoint (or does not exist),
  that path is proxied to it instead, with ingress-nginx's headers: `X-Code: 503`,
  `X-Format` (the client's Accept), `X-Namespace`, `X-Ingress-Name`, `X-Service-Name`,
  `X-Service-Port` (the path's Service and port) and `X-Request-ID`; its answer is the
  client's. A default backend without a ready endpoint is not used (ingress-nginx's
  rule). The static mode decides when it builds the configuration; the dynamic mode when
  the request comes (edgeagent_balancer.lua), so endpoints coming and going reload
  nothing.
- `custom-http-errors: CODE,...` (300-599): answers of those codes, the backend's
  (`proxy_intercept_errors on`) and nginx's own, are replaced by the default backend's
  answer to `GET /` with the headers above (`X-Code` the answer's code) and
  `X-Original-URI`. The default backend is the annotation's, else the agent's
  `--default-backend-service` (ingress-nginx's `--default-backend-service`); with
  neither, nginx's own error pages stay, and the Ingress is served with a warning.
- `disable-proxy-intercept-errors: "true"`: the backend's own answers pass unchanged;
  only nginx's (502, 503, 504...) are replaced.
"""

import re
from dataclasses import dataclass

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

DEFAULT_BACKEND, CUSTOM_HTTP_ERRORS = "default-backend", "custom-http-errors"
DISABLE_INTERCEPT = "disable-proxy-intercept-errors"
KEYS = (DEFAULT_BACKEND, CUSTOM_HTTP_ERRORS, DISABLE_INTERCEPT)
CODE_LOWEST, CODE_HIGHEST = 300, 599
CODE = re.compile(r"[0-9]{3}")
# The status the edge answers for a path whose Service has no ready endpoint.
NO_ENDPOINT = 503


@dataclass(frozen=True)
class ErrorPages:
    """What a location's error answers become (model.Location.error_pages)."""

    namespace: str
    ingress: str
    service: str
    """The location's own Service and port (as the Ingress writes it), for the headers."""
    port: str
    codes: tuple[int, ...] = ()
    """custom-http-errors, sorted."""
    upstream: str | None = None
    """Where the pages of `codes` come from: the default-backend annotation's upstream,
    else the agent's default backend's; None: nginx's own pages."""
    intercept: bool = True
    """The backend's answers of `codes` are replaced too (`proxy_intercept_errors on`)."""
    fallback: str | None = None
    """The default-backend annotation's upstream: it answers when the location's own has
    no ready endpoint."""
    falling_back: bool = False
    """The location proxies to `fallback` now: its own Service has no upstream."""


def parse(read: Reader, config: Config) -> dict:
    codes = read.get(CUSTOM_HTTP_ERRORS, status_codes) or ()
    disabled = read.get(DISABLE_INTERCEPT, grammar.go_boolean)
    if disabled is not None and not read.has(CUSTOM_HTTP_ERRORS):
        read.ignore(DISABLE_INTERCEPT, f"no {CUSTOM_HTTP_ERRORS} is set")
    return {
        "default_backend": read.get(DEFAULT_BACKEND, service_name),
        "custom_http_errors": codes,
        "intercept_errors": not disabled,
    }


def service_name(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if "/" in text:
        raise Invalid(
            f"{what} {grammar.show(text)} names a Service of another namespace: only a "
            "Service of the Ingress's own namespace is used (NAME, as ingress-nginx reads it)"
        )
    return grammar.dns1035_label(text, what)


def status_codes(value: object, what: str) -> tuple[int, ...]:
    """HTTP status codes 300-599, comma-separated (blanks around them allowed), each once."""
    text = grammar.string(value, what)
    items = [item.strip(" \t\r\n") for item in text.split(",")]
    if len(items) > CODE_HIGHEST - CODE_LOWEST + 1:
        raise Invalid(
            f"{what} lists more codes than there are from {CODE_LOWEST} to {CODE_HIGHEST}"
        )
    codes = set()
    for item in items:
        if not CODE.fullmatch(item) or not CODE_LOWEST <= int(item) <= CODE_HIGHEST:
            raise Invalid(
                f"{what}: {grammar.show(item)} is not an HTTP status code from "
                f"{CODE_LOWEST} to {CODE_HIGHEST}"
            )
        codes.add(int(item))
    return tuple(sorted(codes))


def error_locations(server) -> tuple[tuple[str, int], ...]:
    """(upstream, code) of each named error location the server's locations send to,
    each once, sorted."""
    found = {
        (pages.upstream, code)
        for location in server.locations
        if (pages := location.error_pages) is not None and pages.upstream is not None
        for code in pages.codes
    }
    return tuple(sorted(found))


def upstreams(location) -> tuple[str, ...]:
    """The upstreams a location's error pages proxy to (its named error locations)."""
    pages = location.error_pages
    return (pages.upstream,) if pages is not None and pages.upstream and pages.codes else ()


def used(servers) -> bool:
    return any(location.error_pages for server in servers for location in server.locations)
