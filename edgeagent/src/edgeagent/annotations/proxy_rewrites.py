"""What nginx rewrites in the backend's answer headers (ingress-nginx: annotations/proxy,
its nginx.tmpl): Location and Refresh (proxy-redirect-from, proxy-redirect-to), and the
domain and path of Set-Cookie (proxy-cookie-domain, proxy-cookie-path).

proxy-redirect-from "off" or "default" writes `proxy_redirect off|default;` and
proxy-redirect-to is not read; any other from writes `proxy_redirect FROM TO;` unless TO
is absent or "off" (then nothing: nginx's own default). A to without a from writes
`proxy_redirect off;`, ingress-nginx's default from. The cookie keys are "off" or
"FROM TO", written as `proxy_cookie_domain`/`proxy_cookie_path`.

Every part is a plain token: no nginx variable (`$`), no regular expression (`~`), no
quote, blank or `;`: ingress-nginx copied these values into its configuration as they
were, the edge only what its grammar reads.
"""

import re

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

REDIRECT_FROM, REDIRECT_TO = "proxy-redirect-from", "proxy-redirect-to"
COOKIE_DOMAIN, COOKIE_PATH = "proxy-cookie-domain", "proxy-cookie-path"
KEYS = (REDIRECT_FROM, REDIRECT_TO, COOKIE_DOMAIN, COOKIE_PATH)

# A URL prefix nginx compares a Location with, or writes instead: an http(s) origin with
# an optional path, or a path, of the path characters (grammar.PATH).
REDIRECT_PART = re.compile(
    r"https?://([A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?"
    r"(/[A-Za-z0-9\-._~/!*+,=:@&]*)?"
    r"|/[A-Za-z0-9\-._~/!*+,=:@&]*"
)
# A cookie's Domain attribute, with the leading dot some backends still send.
COOKIE_DOMAIN_PART = re.compile(r"\.?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")
PART_MAX_LENGTH = grammar.PATH_MAX_LENGTH
REDIRECT_KEYWORDS = ("off", "default")


def _part(text: str, what: str, pattern: re.Pattern, grammar_name: str) -> str:
    if len(text) > PART_MAX_LENGTH:
        raise Invalid(f"{what} is longer than {PART_MAX_LENGTH} characters")
    if not pattern.fullmatch(text):
        raise Invalid(
            f"{what} {grammar.show(text)} is not {grammar_name} (no nginx variable, regular "
            "expression, quote or blank)"
        )
    return text


def redirect_from(value: object, what: str) -> str:
    text = grammar.string(value, what).strip()
    if text in REDIRECT_KEYWORDS:
        return text
    return _part(text, what, REDIRECT_PART, "'off', 'default', an http(s) URL or a path")


def redirect_to(value: object, what: str) -> str:
    text = grammar.string(value, what).strip()
    if text == "off":
        return text
    return _part(text, what, REDIRECT_PART, "'off', an http(s) URL or a path")


def _pair(value: object, what: str, pattern: re.Pattern, grammar_name: str) -> tuple[str, ...]:
    text = grammar.string(value, what).strip()
    if text == "off":
        return ("off",)
    parts = text.split()
    if len(parts) != 2:
        raise Invalid(f"{what} {grammar.show(text)} must be 'off' or two {grammar_name}s: FROM TO")
    return tuple(_part(part, what, pattern, f"a {grammar_name}") for part in parts)


def cookie_domain(value: object, what: str) -> tuple[str, ...]:
    return _pair(value, what, COOKIE_DOMAIN_PART, "cookie domain")


def cookie_path(value: object, what: str) -> tuple[str, ...]:
    return _pair(value, what, grammar.PATH, "path")


def parse(read: Reader, config: Config) -> dict:
    source = read.get(REDIRECT_FROM, redirect_from)
    target = read.get(REDIRECT_TO, redirect_to)
    redirect: tuple[str, ...] | None = None
    if source in REDIRECT_KEYWORDS:
        redirect = (source,)
        if read.has(REDIRECT_TO):
            read.ignore(REDIRECT_TO, f"{read.prefix}{REDIRECT_FROM} is {source!r}")
    elif source is not None and target not in (None, "off"):
        redirect = (source, target)
    elif source is None and target is not None and not read.has(REDIRECT_FROM):
        redirect = ("off",)
    return {
        "proxy_redirect": redirect,
        "proxy_cookie_domain": read.get(COOKIE_DOMAIN, cookie_domain),
        "proxy_cookie_path": read.get(COOKIE_PATH, cookie_path),
    }
