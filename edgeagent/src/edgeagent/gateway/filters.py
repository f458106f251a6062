"""An HTTPRoute rule's `filters` (and its backendRefs'), checked into `model.Filters`.

Served: RequestHeaderModifier and ResponseHeaderModifier (set, add, remove),
RequestRedirect (scheme, hostname, port, path, statusCode 301, 302, 303, 307, 308) and URLRewrite
(hostname, path), each at most once per rule, never a redirect beside a rewrite (the
spec forbids both); RequestMirror, as often as wanted, of every request. A backendRef
may carry the header modifiers (the spec leaves which filters to the implementation):
they act after the rule's on the requests it takes. Any other filter, or any of these
with a value the edge cannot write exactly, refuses the route with the field named (the
spec: a filter is never skipped).

Pure: `parse` reads a rule's filters; `bound` fixes what depends on the match and the
listener (the prefix a ReplacePrefixMatch replaces, a redirect's port).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from edgeagent import grammar
from edgeagent.grammar import Invalid
from edgeagent.model import NO_FILTERS, Filters, HeaderChange, PathChange, Redirect

REQUEST_HEADERS = "RequestHeaderModifier"
RESPONSE_HEADERS = "ResponseHeaderModifier"
REQUEST_REDIRECT = "RequestRedirect"
URL_REWRITE = "URLRewrite"
REQUEST_MIRROR = "RequestMirror"
FIELDS = {
    REQUEST_HEADERS: "requestHeaderModifier",
    RESPONSE_HEADERS: "responseHeaderModifier",
    REQUEST_REDIRECT: "requestRedirect",
    URL_REWRITE: "urlRewrite",
    REQUEST_MIRROR: "requestMirror",
}
RULE_FILTERS = tuple(FIELDS)
HEADER_FILTERS = (REQUEST_HEADERS, RESPONSE_HEADERS)
REDIRECT_CODES = (301, 302, 303, 307, 308)  # the spec's enum
SCHEMES = {"http": 80, "https": 443}
MAX_HEADER_CHANGES = 16  # per list: the API's bound
# Headers that frame the message or the connection: changing them would corrupt what
# nginx forwards, so no filter may name them.
FRAMING_HEADERS = frozenset(
    {
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
FULL_PATH, PREFIX_MATCH = "ReplaceFullPath", "ReplacePrefixMatch"


@dataclass(frozen=True)
class RedirectSpec:
    """A RequestRedirect as written; `bound` makes it a `model.Redirect`."""

    code: int
    scheme: str | None
    hostname: str | None
    port: int | None
    path: PathChange | None


@dataclass(frozen=True)
class MirrorRef:
    """A RequestMirror's backendRef (judged as a backendRef is: `backend_problem`)."""

    group: str
    kind: str
    namespace: str
    name: str
    port: int | None
    share: tuple[int, int] = (1, 1)
    """(numerator, denominator) of the requests mirrored: `percent` is (percent, 100),
    `fraction` as written (denominator 100 when left out); every request when neither."""


@dataclass(frozen=True)
class RuleFilters:
    filters: Filters = NO_FILTERS
    """All but the redirect and mirrors, with any PathChange's prefix still "/"."""
    redirect: RedirectSpec | None = None
    mirrors: tuple[MirrorRef, ...] = ()

    @property
    def replaces_prefix(self) -> bool:
        changes = (self.filters.rewrite_path, self.redirect and self.redirect.path)
        return any(change and not change.full for change in changes)


NO_RULE_FILTERS = RuleFilters()


def _mapping(value: Any, what: str) -> dict:
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a mapping")
    return value


def _list(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{what} must be a list")
    return value


def parse(
    items: Any, what: str, namespace: str, allowed: tuple[str, ...] = RULE_FILTERS
) -> RuleFilters:
    """The filters of a rule in `namespace` (or of a backendRef, `allowed` the header
    modifiers)."""
    seen: set[str] = set()
    result = NO_RULE_FILTERS
    for i, item in enumerate(_list(items, what)):
        where = f"{what}[{i}]"
        item = _mapping(item, where)
        kind = item.get("type")
        if kind not in allowed:
            shown = grammar.show(str(kind))
            raise Invalid(f"{where}.type {shown} is not served here ({', '.join(allowed)})")
        if kind in seen and kind != REQUEST_MIRROR:  # the spec allows several mirrors
            raise Invalid(f"{where}: {kind} is given twice (at most once per rule)")
        seen.add(kind)
        body = _mapping(item.get(FIELDS[kind]), f"{where}.{FIELDS[kind]}")
        where = f"{where}.{FIELDS[kind]}"
        if kind == REQUEST_HEADERS:
            result = replace(
                result, filters=replace(result.filters, request_headers=_headers(body, where))
            )
        elif kind == RESPONSE_HEADERS:
            result = replace(
                result, filters=replace(result.filters, response_headers=_headers(body, where))
            )
        elif kind == REQUEST_REDIRECT:
            result = replace(result, redirect=_redirect(body, where))
        elif kind == REQUEST_MIRROR:
            result = replace(result, mirrors=(*result.mirrors, _mirror(body, where, namespace)))
        else:
            hostname, path = _rewrite(body, where)
            result = replace(
                result,
                filters=replace(result.filters, rewrite_host=hostname, rewrite_path=path),
            )
    if REQUEST_REDIRECT in seen and URL_REWRITE in seen:
        raise Invalid(f"{what}: RequestRedirect and URLRewrite cannot be on one rule")
    return result


def with_backend(rule: RuleFilters, backend: RuleFilters, what: str) -> RuleFilters:
    """A rule's filters with those of a backendRef after them."""
    filters = rule.filters
    combined = replace(
        filters,
        request_headers=filters.request_headers + backend.filters.request_headers,
        response_headers=filters.response_headers + backend.filters.response_headers,
    )
    for changes in (combined.request_headers, combined.response_headers):
        _unique([change.name for change in changes], what)
    return replace(rule, filters=combined)


def _unique(names: list[str], what: str) -> None:
    seen: set[str] = set()
    for name in names:
        if name.lower() in seen:
            raise Invalid(f"{what}: header {name} is changed twice")
        seen.add(name.lower())


def _headers(body: dict, what: str) -> tuple[HeaderChange, ...]:
    changes = []
    for field, append in (("set", False), ("add", True)):
        entries = _list(body.get(field), f"{what}.{field}")
        if len(entries) > MAX_HEADER_CHANGES:
            raise Invalid(f"{what}.{field} has more than {MAX_HEADER_CHANGES} entries")
        for i, entry in enumerate(entries):
            entry = _mapping(entry, f"{what}.{field}[{i}]")
            name = _header_name(entry.get("name"), f"{what}.{field}[{i}].name")
            value = grammar.header_value(entry.get("value"), f"{what}.{field}[{i}].value")
            changes.append(HeaderChange(name, value, append))
    removed = _list(body.get("remove"), f"{what}.remove")
    if len(removed) > MAX_HEADER_CHANGES:
        raise Invalid(f"{what}.remove has more than {MAX_HEADER_CHANGES} entries")
    for i, name in enumerate(removed):
        changes.append(HeaderChange(_header_name(name, f"{what}.remove[{i}]"), None))
    _unique([change.name for change in changes], what)
    return tuple(changes)


def _header_name(value: Any, what: str) -> str:
    name = grammar.header_name(value, what)
    if name.lower() in FRAMING_HEADERS:
        raise Invalid(f"{what} {name} frames the message or the connection: not changed")
    return name


def _path(body: Any, what: str) -> PathChange | None:
    if body is None:
        return None
    body = _mapping(body, what)
    kind = body.get("type")
    if kind == FULL_PATH:
        value = grammar.path(body.get("replaceFullPath"), "Exact", f"{what}.replaceFullPath")
        return PathChange(True, value)
    if kind == PREFIX_MATCH:
        value = grammar.path(body.get("replacePrefixMatch"), "Prefix", f"{what}.replacePrefixMatch")
        return PathChange(False, value)
    raise Invalid(f"{what}.type {grammar.show(str(kind))} is not {FULL_PATH} or {PREFIX_MATCH}")


def _hostname(value: Any, what: str) -> str | None:
    if value is None:
        return None
    name = grammar.host(value, what)
    if name.startswith("*."):
        raise Invalid(f"{what} {grammar.show(name)} must be a precise hostname, no wildcard")
    return name


def _redirect(body: dict, what: str) -> RedirectSpec:
    scheme = body.get("scheme")
    if scheme is not None and scheme not in SCHEMES:
        raise Invalid(f"{what}.scheme {grammar.show(str(scheme))} is not http or https")
    code = body.get("statusCode", 302)
    if code not in REDIRECT_CODES or isinstance(code, bool):
        raise Invalid(f"{what}.statusCode {grammar.show(str(code))} is not one of {REDIRECT_CODES}")
    port = body.get("port")
    if port is not None:
        port = grammar.port_number(port, f"{what}.port")
    hostname = _hostname(body.get("hostname"), f"{what}.hostname")
    return RedirectSpec(code, scheme, hostname, port, _path(body.get("path"), f"{what}.path"))


def _mirror(body: dict, what: str, namespace: str) -> MirrorRef:
    ref = _mapping(body.get("backendRef"), f"{what}.backendRef")
    group, kind = ref.get("group", ""), ref.get("kind", "Service")
    if not isinstance(group, str) or not isinstance(kind, str):
        raise Invalid(f"{what}.backendRef group and kind must be strings")
    # As a backendRef's: the name reaches nginx's configuration in an upstream's name.
    check = grammar.dns1035_label if (group, kind) == ("", "Service") else grammar.dns1123_subdomain
    name = check(ref.get("name"), f"{what}.backendRef.name")
    ref_namespace = grammar.dns1123_label(
        ref.get("namespace", namespace), f"{what}.backendRef.namespace"
    )
    port = ref.get("port")
    if port is not None:
        port = grammar.port_number(port, f"{what}.backendRef.port")
    return MirrorRef(group, kind, ref_namespace, name, port, _share(body, what))


def _share(body: dict, what: str) -> tuple[int, int]:
    """A RequestMirror's `percent` or `fraction` (GEP-3171), as (numerator, denominator)."""
    percent, fraction = body.get("percent"), body.get("fraction")
    if percent is not None and fraction is not None:
        raise Invalid(f"{what}: only one of percent and fraction may be given")
    if percent is not None:
        if not _count(percent) or percent > 100:
            raise Invalid(f"{what}.percent {grammar.show(str(percent))} is not 0 to 100")
        return percent, 100
    if fraction is None:
        return 1, 1
    fraction = _mapping(fraction, f"{what}.fraction")
    numerator, denominator = fraction.get("numerator"), fraction.get("denominator", 100)
    if not _count(numerator) or not _count(denominator) or denominator == 0:
        raise Invalid(
            f"{what}.fraction {grammar.show(str(numerator))}/{grammar.show(str(denominator))} "
            "needs a numerator of 0 or more and a denominator of 1 or more"
        )
    if numerator > denominator:
        raise Invalid(f"{what}.fraction {numerator}/{denominator}: numerator above denominator")
    if 0 < numerator * 10_000 < denominator:
        # split_clients draws hundredths of a percent: rounded up, it would copy many times
        # the share asked for.
        raise Invalid(f"{what}.fraction {numerator}/{denominator} is below 0.01 %, nginx's least")
    return numerator, denominator


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _rewrite(body: dict, what: str) -> tuple[str | None, PathChange | None]:
    return _hostname(body.get("hostname"), f"{what}.hostname"), _path(
        body.get("path"), f"{what}.path"
    )


def bound(rule: RuleFilters, prefix: str, http_port: int, https_port: int) -> Filters:
    """The filters of one match of the rule: a ReplacePrefixMatch replaces that match's
    `prefix`; a redirect's port follows the spec's defaults, with the listener ports the
    edge carries (`http_port`, `https_port`) for a redirect that keeps the scheme."""
    filters = rule.filters
    if filters.rewrite_path and not filters.rewrite_path.full:
        filters = replace(filters, rewrite_path=replace(filters.rewrite_path, prefix=prefix))
    spec = rule.redirect
    if spec is None:
        return filters
    if spec.port is not None:
        ports = (spec.port, spec.port)
    elif spec.scheme is not None:
        ports = (SCHEMES["http"], SCHEMES["https"])
    else:
        ports = (http_port, https_port)
    path = spec.path
    if path and not path.full:
        path = replace(path, prefix=prefix)
    return replace(filters, redirect=Redirect(spec.code, spec.scheme, spec.hostname, ports, path))
