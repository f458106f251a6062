"""An HTTPRoute's spec, checked through `edgeagent.grammar` into plain values.

What the edge serves so far: hostnames; matches on the path (Exact, PathPrefix and
RegularExpression: the whole path, case-sensitive, in the grammar of the Ingress side's
regex paths; a rule without matches is PathPrefix "/"), header and query parameter
values (Exact, or RegularExpression: the whole value, case-sensitive, in the grammar of
`grammar.regex_value`) and the method; backendRefs with their weights; the filters of
`edgeagent.gateway.filters`; and `timeouts`. Anything else (other filters) makes the
route unsupported as a whole, with the field named: serving part of a rule would send
traffic where its author did not mean it to go.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeagent import grammar
from edgeagent.gateway import filters, retries
from edgeagent.gateway.filters import RuleFilters
from edgeagent.grammar import Invalid
from edgeagent.resources import key_of

EXACT, PATH_PREFIX, REGULAR_EXPRESSION = "Exact", "PathPrefix", "RegularExpression"
HTTP_ROUTE, GRPC_ROUTE = "HTTPRoute", "GRPCRoute"
MAX_WEIGHT = 1_000_000  # the API's own bound


@dataclass(frozen=True)
class Backend:
    group: str
    kind: str
    namespace: str
    name: str
    port: int | None
    weight: int
    filters: RuleFilters = filters.NO_RULE_FILTERS
    """Its header modifiers, applied after the rule's to the requests it takes."""


@dataclass(frozen=True)
class PathMatch:
    type: str  # EXACT, PATH_PREFIX or REGULAR_EXPRESSION
    value: str
    method: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    """(name in lower case, value), each name once (the spec: the first one counts)."""
    queries: tuple[tuple[str, str], ...] = ()
    header_patterns: tuple[tuple[str, str], ...] = ()
    """RegularExpression header matches: (name in lower case, regex); a name is in
    `headers` or here, once."""
    query_patterns: tuple[tuple[str, str], ...] = ()
    grpc_lengths: tuple[int, int] | None = None
    """A GRPCRoute's: the lengths of the service and method it names, which its
    precedence follows instead of the path's (gateway.grpc_routes)."""

    @property
    def header_count(self) -> int:
        return len(self.headers) + len(self.header_patterns)

    @property
    def query_count(self) -> int:
        return len(self.queries) + len(self.query_patterns)


@dataclass(frozen=True)
class Rule:
    matches: tuple[PathMatch, ...]
    backends: tuple[Backend, ...]
    filters: RuleFilters = filters.NO_RULE_FILTERS
    timeout_ms: int | None = None
    """The shorter of `timeouts.request` and `timeouts.backendRequest` (nginx bounds each
    wait on the backend, not a request's tries together); 0: off; None: the edge's
    defaults."""
    retry: retries.Retry | None = None


@dataclass(frozen=True)
class Route:
    namespace: str
    name: str
    hostnames: tuple[str, ...]
    rules: tuple[Rule, ...]
    kind: str = HTTP_ROUTE


class Unsupported(str):
    """Why a route is not served: its message names the field."""


def mapping(value: Any, what: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a mapping")
    return value


def listed(value: Any, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{what} must be a list")
    return value


def parse_route(obj: dict) -> Route | Unsupported:
    return parse_with(obj, HTTP_ROUTE, _rule)


def parse_with(
    obj: dict, kind: str, read_rule: Callable[[dict, str, str], Rule]
) -> Route | Unsupported:
    """A route of `kind` whose rules `read_rule` reads (rule, namespace, where)."""
    namespace, name = key_of(obj)
    try:
        # Both reach nginx's configuration, in the name of a weighted rule's upstream.
        grammar.dns1123_label(namespace, "metadata.namespace")
        grammar.dns1123_subdomain(name, "metadata.name")
        spec = mapping(obj.get("spec"), "spec")
        hostnames = tuple(
            grammar.host(h, f"spec.hostnames[{i}]")
            for i, h in enumerate(listed(spec.get("hostnames"), "spec.hostnames"))
        )
        rules = tuple(
            read_rule(mapping(rule, f"spec.rules[{i}]"), namespace, f"spec.rules[{i}]")
            for i, rule in enumerate(listed(spec.get("rules"), "spec.rules"))
        )
    except Invalid as error:
        return Unsupported(str(error))
    return Route(namespace, name, hostnames, rules, kind)


def _rule(rule: dict, namespace: str, what: str) -> Rule:
    rule_filters = filters.parse(rule.get("filters"), f"{what}.filters", namespace)
    matches = tuple(
        _match(mapping(m, f"{what}.matches[{i}]"), f"{what}.matches[{i}]")
        for i, m in enumerate(listed(rule.get("matches"), f"{what}.matches"))
    ) or (PathMatch(PATH_PREFIX, "/"),)
    if rule_filters.replaces_prefix and any(m.type != PATH_PREFIX for m in matches):
        raise Invalid(f"{what}: ReplacePrefixMatch needs PathPrefix matches only")
    backends = backends_of(rule, rule_filters, namespace, what)
    retry = retries.parse(rule.get("retry"), f"{what}.retry")
    return Rule(matches, backends, rule_filters, _timeout(rule.get("timeouts"), what), retry)


def backends_of(
    rule: dict, rule_filters: RuleFilters, namespace: str, what: str
) -> tuple[Backend, ...]:
    """A rule's backendRefs, each with its own filters, which apply after the rule's to
    the requests it takes (gateway.routing); those must join the rule's."""
    backends = tuple(
        _backend(mapping(b, f"{what}.backendRefs[{i}]"), namespace, f"{what}.backendRefs[{i}]")
        for i, b in enumerate(listed(rule.get("backendRefs"), f"{what}.backendRefs"))
    )
    for i, backend in enumerate(backends):
        filters.with_backend(rule_filters, backend.filters, f"{what}.backendRefs[{i}]")
    return backends


def _timeout(value: Any, what: str) -> int | None:
    timeouts = mapping(value, f"{what}.timeouts")
    durations = {
        field: grammar.gateway_duration(timeouts[field], f"{what}.timeouts.{field}")
        for field in ("request", "backendRequest")
        if timeouts.get(field) is not None
    }
    if not durations:
        return None
    request, backend = durations.get("request", 0), durations.get("backendRequest", 0)
    if request and backend > request:
        raise Invalid(f"{what}.timeouts.backendRequest must not be longer than request")
    set_ones = [each for each in (request, backend) if each]
    return min(set_ones) if set_ones else 0


Pairs = tuple[tuple[str, str], ...]


def value_matches(items: Any, what: str, check_name) -> tuple[Pairs, Pairs]:
    """Header or query parameter matches: the Exact (name, value) pairs and the
    RegularExpression (name, regex) pairs, each name once (the spec: the first counts)."""
    pairs: dict[str, tuple[str, str]] = {}
    for i, item in enumerate(listed(items, what)):
        item = mapping(item, f"{what}[{i}]")
        kind = item.get("type", EXACT)
        if kind not in (EXACT, REGULAR_EXPRESSION):
            raise Invalid(f"{what}[{i}].type {grammar.show(str(kind))} is not served")
        name = check_name(item.get("name"), f"{what}[{i}].name")
        check_value = grammar.match_value if kind == EXACT else grammar.regex_value
        pairs.setdefault(name, (kind, check_value(item.get("value"), f"{what}[{i}].value")))
    return tuple(
        tuple(sorted((name, value) for name, (k, value) in pairs.items() if k == kind))
        for kind in (EXACT, REGULAR_EXPRESSION)
    )


def header_matches(items: Any, what: str) -> dict[str, Pairs]:
    """A match's `headers` as PathMatch's fields."""
    exact, patterns = value_matches(
        items, what, lambda name, where: grammar.header_name(name, where).lower()
    )
    return {"headers": exact, "header_patterns": patterns}


def _match(match: dict, what: str) -> PathMatch:
    method = match.get("method")
    if method is not None:
        method = grammar.http_method(method, f"{what}.method")
    found = header_matches(match.get("headers"), f"{what}.headers")
    queries, query_patterns = value_matches(
        match.get("queryParams"), f"{what}.queryParams", grammar.query_name
    )
    found.update(queries=queries, query_patterns=query_patterns)
    path = mapping(match.get("path"), f"{what}.path")
    path_type = path.get("type", PATH_PREFIX)
    if path_type not in (EXACT, PATH_PREFIX, REGULAR_EXPRESSION):
        raise Invalid(f"{what}.path.type {grammar.show(str(path_type))} is not served")
    value = path.get("value", "/")
    if path_type == REGULAR_EXPRESSION:
        # The Ingress side's regex grammar: what nginx's PCRE reads as Python's re does.
        regex = grammar.regex_path(value, f"{what}.path.value")
        return PathMatch(path_type, regex, method, **found)
    checked = grammar.path(value, "Exact" if path_type == EXACT else "Prefix", f"{what}.path")
    if path_type == PATH_PREFIX and checked != "/":
        checked = checked.rstrip("/")  # "/foo/" matches as "/foo" does: by path element
    return PathMatch(path_type, checked, method, **found)


def _backend(ref: dict, namespace: str, what: str) -> Backend:
    backend_filters = (
        filters.parse(ref.get("filters"), f"{what}.filters", namespace, filters.HEADER_FILTERS)
        if ref.get("filters")
        else filters.NO_RULE_FILTERS
    )
    weight = ref.get("weight", 1)
    if not isinstance(weight, int) or isinstance(weight, bool) or not 0 <= weight <= MAX_WEIGHT:
        raise Invalid(f"{what}.weight must be an integer from 0 to {MAX_WEIGHT}")
    port = ref.get("port")
    if port is not None:
        port = grammar.port_number(port, f"{what}.port")
    group, kind = ref.get("group", ""), ref.get("kind", "Service")
    # A Service's name is a DNS-1035 label: no dot, which keeps the Gateway API's upstream
    # names ("service.gateway", "route.ruleN") apart from each other and an Ingress's.
    service = (group, kind) == ("", "Service")
    check = grammar.dns1035_label if service else grammar.dns1123_subdomain
    name = check(ref.get("name"), f"{what}.name")
    backend_namespace = grammar.dns1123_label(ref.get("namespace", namespace), f"{what}.namespace")
    if not isinstance(group, str) or not isinstance(kind, str):
        raise Invalid(f"{what}.group and kind must be strings")
    return Backend(group, kind, backend_namespace, name, port, weight, backend_filters)
