"""A GRPCRoute's spec, read into the same `routes.Route` an HTTPRoute gives.

A gRPC call is an HTTP/2 POST to `/<service>/<method>`, so each method match is a path
match, and everything after (attachment, precedence, locations, upstreams) is the
HTTPRoute's, served with `grpc_pass`:

- `service` and `method`, type Exact: `/service/method` an Exact path; `service` alone
  the PathPrefix `/service` (whole path elements); `method` alone the RegularExpression
  `/[^/]+/method`. Names follow the spec's patterns (a service: dot-separated
  identifiers; a method: one identifier), at least one of the two.
- type RegularExpression: the path `/(service)/(method)`, either left out as `[^/]+`,
  in the grammar of the HTTPRoute's RegularExpression paths.
- A rule without matches matches every call (PathPrefix `/`).
- Precedence, as the spec orders GRPCRoute rules: the most characters of the service,
  then of the method, then the most header matches (`PathMatch.grpc_lengths`).
- Headers: Exact and RegularExpression, as an HTTPRoute's. Filters:
  RequestHeaderModifier and ResponseHeaderModifier (a RequestMirror or ExtensionRef
  refuses the route).
"""

from __future__ import annotations

import re
from typing import Any

from edgeagent import grammar
from edgeagent.gateway import filters
from edgeagent.gateway.routes import (
    EXACT,
    GRPC_ROUTE,
    PATH_PREFIX,
    REGULAR_EXPRESSION,
    PathMatch,
    Route,
    Rule,
    Unsupported,
    backends_of,
    header_matches,
    listed,
    mapping,
    parse_with,
)
from edgeagent.grammar import Invalid

# The spec's validation of Exact names (GRPCMethodMatch).
SERVICE = re.compile(r"\.?[A-Za-z_][A-Za-z_0-9]*(\.[A-Za-z_][A-Za-z_0-9]*)*")
METHOD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*")
NAME_MAX_LENGTH = 1024
ANY_NAME = "[^/]+"


def parse_grpc_route(obj: dict) -> Route | Unsupported:
    return parse_with(obj, GRPC_ROUTE, rule)


def rule(body: dict, namespace: str, what: str) -> Rule:
    rule_filters = filters.parse(
        body.get("filters"), f"{what}.filters", namespace, filters.HEADER_FILTERS
    )
    matches = tuple(
        _match(mapping(m, f"{what}.matches[{i}]"), f"{what}.matches[{i}]")
        for i, m in enumerate(listed(body.get("matches"), f"{what}.matches"))
    ) or (PathMatch(PATH_PREFIX, "/", grpc_lengths=(0, 0)),)
    backends = backends_of(body, rule_filters, namespace, what)
    return Rule(matches, backends, rule_filters)


def _name(value: Any, pattern: re.Pattern, what: str) -> str:
    text = grammar.string(value, what)
    if len(text) > NAME_MAX_LENGTH or not pattern.fullmatch(text):
        raise Invalid(f"{what} {grammar.show(text)} is not a gRPC name")
    return text


def _match(body: dict, what: str) -> PathMatch:
    headers = header_matches(body.get("headers"), f"{what}.headers")
    if body.get("method") is None:
        return PathMatch(PATH_PREFIX, "/", **headers, grpc_lengths=(0, 0))
    method_match = mapping(body.get("method"), f"{what}.method")
    kind = method_match.get("type", EXACT)
    service, method = method_match.get("service"), method_match.get("method")
    if service is None and method is None:
        raise Invalid(f"{what}.method needs a service, a method or both")
    if kind == REGULAR_EXPRESSION:
        parts = [
            grammar.string(value, f"{what}.method.{field}") if value is not None else ANY_NAME
            for field, value in (("service", service), ("method", method))
        ]
        regex = grammar.regex_path(f"/({parts[0]})/({parts[1]})", f"{what}.method")
        lengths = (len(service or ""), len(method or ""))
        return PathMatch(REGULAR_EXPRESSION, regex, **headers, grpc_lengths=lengths)
    if kind != EXACT:
        raise Invalid(f"{what}.method.type {grammar.show(str(kind))} is not served")
    if service is not None:
        service = _name(service, SERVICE, f"{what}.method.service")
    if method is not None:
        method = _name(method, METHOD, f"{what}.method.method")
    lengths = (len(service or ""), len(method or ""))
    if service is None:
        regex = grammar.regex_path(f"/{ANY_NAME}/{method}", f"{what}.method.method")
        return PathMatch(REGULAR_EXPRESSION, regex, **headers, grpc_lengths=lengths)
    if method is None:
        return PathMatch(PATH_PREFIX, f"/{service}", **headers, grpc_lengths=lengths)
    return PathMatch(EXACT, f"/{service}/{method}", **headers, grpc_lengths=lengths)
