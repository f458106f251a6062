"""Canary Ingresses (ingress-nginx: annotations/canary, and the choice its Lua balancer
makes in route_to_alternative_balancer).

An Ingress with `canary: "true"` serves nothing of its own: each of its paths adds its
backend as the alternative of the same host and path (same pathType, ImplementationSpecific
counted as Prefix) of a main Ingress, which model.py does. A request then goes to the
canary when, in this order (the first that decides wins):

1. canary-by-header names a header: with canary-by-header-value, the header equal to that
   value sends it to the canary (any other value decides nothing); else with
   canary-by-header-pattern, a header that the regular expression (PCRE, unanchored,
   case-sensitive) matches does; without either, "always" sends it to the canary and
   "never" to the main backend;
2. canary-by-cookie names a cookie: "always" or "never", as for the header;
3. canary-weight out of canary-weight-total (100, or the total when above 100, as
   ingress-nginx reads it): that share of the requests not decided above, at random.

Every other annotation of a canary Ingress is ignored, with a warning, as ingress-nginx
ignores them: its requests get the main Ingress's location settings. Snippets and other
controllers' annotations stay refused (edgeagent never copies them, canary or not). The
session affinity of the main Ingress's location applies to the canary's requests too
(ingress-nginx's default `affinity-canary-behavior: sticky`).

render writes the choice as nginx maps (templates/canary.j2), the same in both modes: a
canary is an Ingress change, which reloads in the dynamic mode too.
"""

import hashlib
import re
from dataclasses import dataclass

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Finding, Reader
from edgeagent.grammar import Invalid

CANARY = "canary"
BY_HEADER, BY_HEADER_VALUE = "canary-by-header", "canary-by-header-value"
BY_HEADER_PATTERN = "canary-by-header-pattern"
BY_COOKIE = "canary-by-cookie"
WEIGHT, WEIGHT_TOTAL = "canary-weight", "canary-weight-total"
KEYS = (CANARY, BY_HEADER, BY_HEADER_VALUE, BY_HEADER_PATTERN, BY_COOKIE, WEIGHT, WEIGHT_TOTAL)
# ingress-nginx draws math.random(total) with total at least 100.
LEAST_WEIGHT_TOTAL = 100
MAX_LENGTH = 256
# ingress-nginx's BasicChars, less what cannot be in a header or cookie name. A header
# name also loses "_" (nginx drops such headers by default) and "." and "~" (nginx's
# $http_ variables cannot name them).
HEADER_NAME = re.compile(r"[A-Za-z0-9-]+")
HEADER_VALUE = re.compile(r"[A-Za-z0-9\-._~/:]+")
COOKIE_NAME = re.compile(r"[A-Za-z0-9\-._~]+")
# ingress-nginx's regex characters, less what nginx's quoted strings would rewrite (the
# pattern is written as a map key in double quotes): the regex path grammar without its
# leading "/".
HEADER_PATTERN = re.compile(r"([A-Za-z0-9\-._~/!*+,=:@&()|?^$\[\]{}]|\\[-./dDwWsS()\[\]{}*+?|^$])+")
WEIGHT_NUMBER = re.compile(r"[0-9]{1,9}")
ALWAYS, NEVER = "always", "never"


@dataclass(frozen=True)
class Policy:
    """When a request goes to the canary backend rather than the main one."""

    header: str | None = None
    header_value: str | None = None
    """The value that sends to the canary; None: the pattern, else "always" and "never"."""
    header_pattern: str | None = None
    """A regular expression a header that sends to the canary matches."""
    cookie: str | None = None
    weight: int = 0
    weight_total: int = LEAST_WEIGHT_TOTAL

    @property
    def header_variable(self) -> str:
        """nginx's variable of the header (the same ingress-nginx's Lua reads)."""
        return "$http_" + (self.header or "").lower().replace("-", "_")

    @property
    def share(self) -> str:
        """The weight as split_clients' percentage ("0" and "100" when there is nothing
        to draw). split_clients counts in hundredths of a percent: a share finer than
        that (a weight-total above 10000) is rounded to it."""
        if self.weight <= 0:
            return "0"
        if self.weight >= self.weight_total:
            return "100"
        hundredths = max(1, round(self.weight * 10000 / self.weight_total))
        return f"{hundredths // 100}.{hundredths % 100:02d}"


def parse(read: Reader, config: Config) -> dict:
    enabled = read.get(CANARY, grammar.go_boolean)
    if not enabled:
        for key in KEYS[1:]:
            if read.has(key):
                read.ignore(key, f'{CANARY} is not "true", as in ingress-nginx')
        return {"canary": None}
    header = read.get(BY_HEADER, _header_name)
    value = read.get(BY_HEADER_VALUE, _header_value)
    pattern = read.get(BY_HEADER_PATTERN, _header_pattern)
    for key in (BY_HEADER_VALUE, BY_HEADER_PATTERN):
        if read.has(key) and not read.has(BY_HEADER):
            read.ignore(key, f"no {BY_HEADER} is set, as in ingress-nginx")
    if read.has(BY_HEADER) and read.has(BY_HEADER_VALUE) and read.has(BY_HEADER_PATTERN):
        read.ignore(
            BY_HEADER_PATTERN, f"{BY_HEADER_VALUE} is set too and wins, as in ingress-nginx"
        )
    total = read.get(WEIGHT_TOTAL, _weight)
    if total is not None and total < LEAST_WEIGHT_TOTAL:
        read.ignore(
            WEIGHT_TOTAL,
            f"below {LEAST_WEIGHT_TOTAL}: {LEAST_WEIGHT_TOTAL} instead, as in ingress-nginx",
        )
    policy = Policy(
        header=header,
        header_value=value if header else None,
        header_pattern=pattern if header and not value else None,
        cookie=read.get(BY_COOKIE, _cookie_name),
        weight=read.get(WEIGHT, _weight) or 0,
        weight_total=max(total or 0, LEAST_WEIGHT_TOTAL),
    )
    return {"canary": policy}


def on_canary(findings: dict[str, Finding], prefix: str) -> dict[str, Finding]:
    """The findings of a canary Ingress's annotations: every one outside the canary
    family is ignored, with a warning, as ingress-nginx ignores them (the requests get
    the main Ingress's settings); snippets and other controllers' stay refused."""
    result = {}
    for key, finding in findings.items():
        # affinity-canary-behavior says what becomes of the canary's requests' affinity.
        if key.startswith(prefix + CANARY) or key == prefix + "affinity-canary-behavior":
            result[key] = finding
            continue
        if not key.startswith(prefix) or key.endswith("-snippet"):
            result[key] = finding
            continue
        reason = (
            f"annotation {key} {grammar.show(finding.value)} is ignored: a canary Ingress "
            "takes the main Ingress's settings, as in ingress-nginx"
        )
        result[key] = Finding(key, finding.value, "ignored", "warning", reason)
    return result


def variable(host: str, match: str, path: str) -> str:
    """The nginx variable that says "1" when a request of this location goes to the
    canary: unique per host and location, since maps are http-wide."""
    key = f"{host}\0{match}\0{path}".encode()
    return "$edgeagent_canary_" + hashlib.blake2s(key, digest_size=6).hexdigest()


def _pattern(value: object, what: str, pattern: re.Pattern, grammar_text: str) -> str:
    text = grammar.string(value, what)
    if len(text) > MAX_LENGTH or not pattern.fullmatch(text):
        raise Invalid(f"{what} {grammar.show(text)} must be {grammar_text}")
    return text


def _header_name(value: object, what: str) -> str:
    return _pattern(value, what, HEADER_NAME, "a header name (letters, digits and '-')")


def _header_value(value: object, what: str) -> str:
    return _pattern(value, what, HEADER_VALUE, "letters, digits and -._~/: only")


def _cookie_name(value: object, what: str) -> str:
    return _pattern(value, what, COOKIE_NAME, "a cookie name (letters, digits and -._~)")


def _header_pattern(value: object, what: str) -> str:
    text = _pattern(
        value,
        what,
        HEADER_PATTERN,
        "a regular expression of letters, digits, -._~/!*+,=:@& and ()|?^$[]{} "
        "(backslash only before one of -./dDwWsS()[]{}*+?|^$)",
    )
    if not grammar.is_regex(text):
        raise Invalid(f"{what} {grammar.show(text)} is not a regular expression nginx can use")
    return text


def pattern_text(value: object) -> str:
    """A header pattern as a map key (render's filter): refused unless in the grammar."""
    text = str(value)
    if not (HEADER_PATTERN.fullmatch(text) and grammar.is_regex(text)):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a canary header pattern")
    return text


def _weight(value: object, what: str) -> int:
    return int(_pattern(value, what, WEIGHT_NUMBER, "a whole number from 0 to 999999999"))


def regex_literal(value: object) -> str:
    """A header value or cookie name inside a map's regex (render's filter): refused
    unless in the grammar above, "." escaped (the only one of its characters PCRE reads
    as syntax)."""
    text = str(value)
    if not HEADER_VALUE.fullmatch(text):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a canary name or value")
    return text.replace(".", r"\.")
