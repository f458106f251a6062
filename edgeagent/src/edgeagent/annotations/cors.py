"""Cross-origin resource sharing (ingress-nginx: annotations/cors, nginx.tmpl's CORS).

`enable-cors: "true"` gives a location ingress-nginx's CORS answers: a request whose
`Origin` is allowed gets the Access-Control-* headers, and its preflight (OPTIONS) is
answered 204 by the edge without reaching the backend; a request from any other origin
is passed on untouched. The defaults are ingress-nginx's: every origin (`*`), the
methods, headers and max-age below, credentials allowed.

`cors-allow-origin` is a comma-separated list of `http(s)://host[:port]` origins, where
the host may start with `*.` (exactly one DNS label of letters, digits and `-`, as
ingress-nginx's `[A-Za-z0-9\\-]+`); `*` anywhere in the list allows every origin.
An allowed origin is echoed back, `*` is sent as `*`. The origin is matched as a whole
and in lower case, as browsers send it (ingress-nginx anchors only the end of its
case-insensitive regex, which lets `https://evil.example/https://good.example` and
upper-case forms no browser sends through; gixy's origins check asks for both).

A value ingress-nginx would have skipped or replaced by its default refuses the
Ingress here, with the reason: a CORS policy other than the one written would answer
otherwise than its author asked. The cors-* keys without `enable-cors: "true"` are
ignored, with a warning, as ingress-nginx ignores them.
"""

import hashlib
import re
from dataclasses import dataclass

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

ENABLE = "enable-cors"
ORIGIN, METHODS, HEADERS = "cors-allow-origin", "cors-allow-methods", "cors-allow-headers"
EXPOSE, CREDENTIALS, MAX_AGE = "cors-expose-headers", "cors-allow-credentials", "cors-max-age"
OPTIONS = (ORIGIN, METHODS, HEADERS, EXPOSE, CREDENTIALS, MAX_AGE)
KEYS = (ENABLE, *OPTIONS)

ANY_ORIGIN = "*"
DEFAULT_METHODS = ("GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS")
DEFAULT_HEADERS = (
    "DNT",
    "Keep-Alive",
    "User-Agent",
    "X-Requested-With",
    "If-Modified-Since",
    "Cache-Control",
    "Content-Type",
    "Range",
    "Authorization",
)
DEFAULT_MAX_AGE = 1728000
# ingress-nginx's grammar of each item (its corsOriginRegex, corsMethodsRegex, ...), the
# origin's host made non-empty.
ORIGIN_ITEM = re.compile(r"https?://(\*\.)?[A-Za-z0-9\-.]+(:[0-9]{1,5})?")
METHOD_ITEM = re.compile(r"[A-Za-z]+")
HEADER_ITEM = re.compile(r"[A-Za-z0-9\-_]+")
EXPOSE_ITEM = re.compile(r"[A-Za-z0-9\-_]+|\*")
MAX_AGE_TEXT = re.compile(r"0|[1-9][0-9]{0,9}")
MAX_AGE_MAX = 2**31 - 1
ITEMS_MAX = 100
# What `*.` in an allowed origin matches, as ingress-nginx writes it.
ORIGIN_LABELS = r"[a-z0-9\-]+"


@dataclass(frozen=True)
class Cors:
    """A location's CORS policy; `origins` is ("*",) for every origin."""

    origins: tuple[str, ...] = (ANY_ORIGIN,)
    methods: tuple[str, ...] = DEFAULT_METHODS
    headers: tuple[str, ...] = DEFAULT_HEADERS
    expose_headers: tuple[str, ...] = ()
    credentials: bool = True
    max_age: int = DEFAULT_MAX_AGE

    @property
    def any_origin(self) -> bool:
        return self.origins == (ANY_ORIGIN,)


def parse(read: Reader, config: Config) -> dict:
    if not read.get(ENABLE, grammar.go_boolean):
        for key in OPTIONS:
            if read.has(key):
                read.ignore(key, f'{ENABLE} is not "true", as in ingress-nginx')
        return {"cors": None}
    origins = read.get(ORIGIN, allow_origin)
    methods = read.get(METHODS, _list(METHOD_ITEM, "an HTTP method"))
    headers = read.get(HEADERS, _list(HEADER_ITEM, "a header name"))
    expose = read.get(EXPOSE, _list(EXPOSE_ITEM, "a header name or *"))
    credentials = read.get(CREDENTIALS, grammar.go_boolean)
    max_age = read.get(MAX_AGE, max_age_seconds)
    return {
        "cors": Cors(
            origins=origins or (ANY_ORIGIN,),
            methods=methods or DEFAULT_METHODS,
            headers=headers or DEFAULT_HEADERS,
            expose_headers=expose or (),
            credentials=True if credentials is None else credentials,
            max_age=DEFAULT_MAX_AGE if max_age is None else max_age,
        )
    }


def _items(text: str, what: str) -> list[str]:
    items = [item.strip(" \t\r\n") for item in text.split(",")]
    if len(items) > ITEMS_MAX:
        raise Invalid(f"{what} lists more than {ITEMS_MAX} items")
    if not all(items):
        raise Invalid(f"{what} {grammar.show(text)} has an empty item")
    return items


def _list(pattern: re.Pattern, kind: str):
    def parse_list(value: object, what: str) -> tuple[str, ...]:
        items = _items(grammar.string(value, what), what)
        for item in items:
            if not pattern.fullmatch(item):
                raise Invalid(f"{what}: {grammar.show(item)} is not {kind}")
        return tuple(dict.fromkeys(items))

    return parse_list


def allow_origin(value: object, what: str) -> tuple[str, ...]:
    """cors-allow-origin: ("*",) when the list holds `*`, else its origins in order."""
    items = _items(grammar.string(value, what), what)
    if ANY_ORIGIN in items:
        return (ANY_ORIGIN,)
    for item in items:
        if not ORIGIN_ITEM.fullmatch(item):
            raise Invalid(
                f"{what}: {grammar.show(item)} is not an origin "
                "(http:// or https://, a host that may start with *., an optional port)"
            )
    return tuple(dict.fromkeys(item.lower() for item in items))


def max_age_seconds(value: object, what: str) -> int:
    text = grammar.string(value, what)
    if not MAX_AGE_TEXT.fullmatch(text) or int(text) > MAX_AGE_MAX:
        raise Invalid(f"{what} {grammar.show(text)} must be whole seconds, 0 to {MAX_AGE_MAX}")
    return int(text)


# What render writes: each header but Access-Control-Allow-Origin, by the name of its map.
HEADER_NAMES = {
    "credentials": "Access-Control-Allow-Credentials",
    "methods": "Access-Control-Allow-Methods",
    "headers": "Access-Control-Allow-Headers",
    "expose": "Access-Control-Expose-Headers",
    "max_age": "Access-Control-Max-Age",
}


def policies(server) -> tuple[Cors, ...]:
    """The CORS policies of a server's locations, each once, in location order."""
    found = (location.settings.cors for location in server.locations)
    return tuple(dict.fromkeys(policy for policy in found if policy is not None))


def policy_id(host: str, policy: Cors) -> str:
    """The name part of a policy's maps: unique per host and policy, so that servers
    never define the same map twice and a server's locations share theirs."""
    key = f"{host}\0{policy!r}".encode()
    return hashlib.blake2s(key, digest_size=6).hexdigest()


def header_values(policy: Cors) -> tuple[tuple[str, str], ...]:
    """(map name, nginx value) of each header the policy sends besides the origin, as
    ingress-nginx sends them: credentials only when allowed, expose headers only when set."""
    values = [
        ("methods", header_list(policy.methods)),
        ("headers", header_list(policy.headers)),
        ("max_age", str(int(policy.max_age))),
    ]
    if policy.credentials:
        values.insert(0, ("credentials", '"true"'))
    if policy.expose_headers:
        values.append(("expose", header_list(policy.expose_headers)))
    return tuple(values)


def origin_regex(origins: tuple[str, ...]) -> str:
    """The regex an allowed `Origin` matches, to be written inside double quotes: the
    origins checked again, dots escaped, `*.` as one lower-case label."""
    alternatives = []
    for origin in origins:
        if not (ORIGIN_ITEM.fullmatch(origin) and origin == origin.lower()):
            raise ValueError(f"refusing to render {grammar.show(origin)}: not a CORS origin")
        alternatives.append(origin.replace(".", r"\.").replace("*", ORIGIN_LABELS, 1))
    return "^(" + "|".join(alternatives) + ")$"


def header_list(items: tuple[str, ...]) -> str:
    """A header value listing methods or header names, quoted for nginx."""
    if not items or not all(EXPOSE_ITEM.fullmatch(item) for item in items):
        raise ValueError(f"refusing to render {items!r}: not a CORS header list")
    return '"' + ", ".join(items) + '"'
