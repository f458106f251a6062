"""Cookie session affinity (ingress-nginx: annotations/sessionaffinity, and its Lua
balancers sticky_balanced and sticky_persistent).

`affinity: cookie` keeps a client on one endpoint of the backend through a cookie
(`session-cookie-name`, default INGRESSCOOKIE) that nginx sets on the first answer, when
the request carried no usable one. `affinity-mode`:

- balanced (the default): the cookie holds a random key, and the endpoint is the key's
  place on a consistent hash ring of the ready endpoints: when endpoints come or go, a
  few sessions move, as in ingress-nginx;
- persistent: the cookie names the endpoint itself; a session stays there as long as it
  is ready, and gets a new endpoint and a new cookie when it is gone.

`session-cookie-change-on-failure`: a request whose endpoint fails is retried on another,
and the cookie moves to it (otherwise the next request tries the cookie's endpoint again).
The cookie: `HttpOnly`, `Path` = `session-cookie-path` or the Ingress path,
`session-cookie-domain`, `-max-age` and `-expires` (seconds from now), `Secure` only with
`session-cookie-secure: "true"` (as ingress-nginx, whatever the scheme), `SameSite` =
`session-cookie-samesite`, left out for the browsers that mishandle `None` with
`session-cookie-conditional-samesite-none` (ingress-nginx's user-agent list).

Only the dynamic mode serves it (lua/edgeagent_affinity.lua): plain nginx cannot name an
endpoint in a cookie, nor move a session on failure, so the static mode refuses such an
Ingress (model.py), as the issue allows. The session-cookie keys without
`affinity: cookie` are ignored with a warning, as ingress-nginx ignores them.
"""

import re
from dataclasses import dataclass

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

AFFINITY, MODE, CANARY_BEHAVIOR = "affinity", "affinity-mode", "affinity-canary-behavior"
COOKIE_KEYS = (
    "session-cookie-name",
    "session-cookie-path",
    "session-cookie-domain",
    "session-cookie-max-age",
    "session-cookie-expires",
    "session-cookie-secure",
    "session-cookie-samesite",
    "session-cookie-conditional-samesite-none",
    "session-cookie-change-on-failure",
)
KEYS = (AFFINITY, MODE, *COOKIE_KEYS, CANARY_BEHAVIOR)
DEFAULT_COOKIE_NAME = "INGRESSCOOKIE"
MODES = ("balanced", "persistent")
SAME_SITE = {"none": "None", "lax": "Lax", "strict": "Strict"}
MAX_LENGTH = 256
COOKIE_NAME = re.compile(r"[A-Za-z0-9\-._~]+")
COOKIE_PATH = re.compile(r"/[A-Za-z0-9\-._~/]*")
COOKIE_DOMAIN = re.compile(r"\.?[a-z0-9]([a-z0-9.-]*[a-z0-9])?")
SECONDS = re.compile(r"0|[1-9][0-9]{0,9}")


@dataclass(frozen=True)
class Affinity:
    """What the Lua balancer needs to keep a session on one endpoint."""

    mode: str = "balanced"
    cookie: str = DEFAULT_COOKIE_NAME
    path: str | None = None
    """None: the Ingress path."""
    domain: str | None = None
    max_age: int | None = None
    expires: int | None = None
    secure: bool = False
    same_site: str | None = None
    conditional_same_site_none: bool = False
    change_on_failure: bool = False

    def spec(self, match: str, path: str) -> str:
        """The text a location (`match`, `path`) gives the balancer
        (`$edgeagent_affinity`): the fields in a fixed order, comma-separated (none can
        hold a comma). The cookie's path defaults to the Ingress path the location
        serves, "/" for a regular expression."""
        ingress_path = (path.rstrip("/") or "/") if match in ("exact", "prefix") else "/"
        fields = (
            self.mode,
            self.cookie,
            self.path or ingress_path,
            self.domain,
            self.max_age,
            self.expires,
            int(self.secure),
            self.same_site,
            int(self.conditional_same_site_none),
            int(self.change_on_failure),
        )
        return ",".join("" if value is None else str(value) for value in fields)


def parse(read: Reader, config: Config) -> dict:
    read.get(CANARY_BEHAVIOR, _canary_behavior)
    kind = read.get(AFFINITY, _affinity_type)
    if kind is None:
        for key in KEYS[1:-1]:
            if read.has(key):
                read.ignore(key, f'no {AFFINITY}: "cookie" is set, as in ingress-nginx')
        return {"affinity": None}
    same_site = read.get("session-cookie-samesite", _same_site)
    return {
        "affinity": Affinity(
            mode=read.get(MODE, _mode) or "balanced",
            cookie=read.get("session-cookie-name", _cookie_name) or DEFAULT_COOKIE_NAME,
            path=read.get("session-cookie-path", _cookie_path),
            domain=read.get("session-cookie-domain", _cookie_domain),
            max_age=read.get("session-cookie-max-age", _seconds),
            expires=read.get("session-cookie-expires", _seconds),
            secure=read.get("session-cookie-secure", grammar.go_boolean) or False,
            same_site=same_site,
            conditional_same_site_none=read.get(
                "session-cookie-conditional-samesite-none", grammar.go_boolean
            )
            or False,
            change_on_failure=read.get("session-cookie-change-on-failure", grammar.go_boolean)
            or False,
        )
    }


def _pattern(value: object, what: str, pattern: re.Pattern, grammar_text: str) -> str:
    text = grammar.string(value, what)
    if len(text) > MAX_LENGTH or not pattern.fullmatch(text):
        raise Invalid(f"{what} {grammar.show(text)} must be {grammar_text}")
    return text


def _affinity_type(value: object, what: str) -> str:
    return _pattern(value, what, re.compile("cookie"), "'cookie' (ingress-nginx's only kind)")


def _canary_behavior(value: object, what: str) -> str:
    """sticky, ingress-nginx's default: a canary takes the main Ingress's affinity, as
    edgeagent does. legacy (the canary's own affinity) is not served."""
    text = _pattern(value, what, re.compile("sticky|legacy"), "'sticky' or 'legacy'")
    if text == "legacy":
        raise Invalid(
            f"{what} 'legacy' is refused: not supported yet (a canary takes the main "
            "Ingress's session affinity, ingress-nginx's default 'sticky')",
            "unsupported",
        )
    return text


def _mode(value: object, what: str) -> str:
    return _pattern(value, what, re.compile("balanced|persistent"), "'balanced' or 'persistent'")


def _cookie_name(value: object, what: str) -> str:
    return _pattern(value, what, COOKIE_NAME, "a cookie name (letters, digits and -._~)")


def _cookie_path(value: object, what: str) -> str:
    return _pattern(value, what, COOKIE_PATH, "a path of letters, digits and -._~/")


def _cookie_domain(value: object, what: str) -> str:
    return _pattern(value, what, COOKIE_DOMAIN, "a domain name, lower case")


def _seconds(value: object, what: str) -> int:
    return int(_pattern(value, what, SECONDS, "whole seconds (at most 10 digits)"))


def _same_site(value: object, what: str) -> str:
    text = grammar.string(value, what)
    if text.lower() not in SAME_SITE:
        raise Invalid(f"{what} {grammar.show(text)} must be None, Lax or Strict")
    return SAME_SITE[text.lower()]
