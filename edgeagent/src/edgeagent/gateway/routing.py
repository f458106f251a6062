"""The attached HTTPRoutes and GRPCRoutes as the same Servers, Locations and Upstreams
Ingresses give, merged into the Ingress model: nginx, render and the dynamic mode need
nothing new (a GRPCRoute's locations are the Ingress's backend-protocol GRPC ones).

- Each hostname a route serves on a listener is a Server (ANY_HOST: the default
  server). It listens on HTTP when an HTTP listener serves that hostname, on HTTPS
  with the listener's first certificate when a programmed HTTPS listener does (over
  HTTP a hostname of HTTPS listeners only is the default server's; of unprogrammed
  ones only, it is not served). On a server that listens on both, a route that
  listeners of one protocol only serve there answers over that scheme only: its
  matches are choices on `$scheme`.
- Each path a match names is a location: Exact is `location =`, PathPrefix `/p` is
  `location = /p` plus `location ^~ /p/` (by path element, never "/pfoo"). A location
  holds every match its requests can satisfy (shorter prefixes included), in the spec's
  precedence (`_Claim.precedence`); those that need more than the path (method,
  headers, query parameters) are its `Choice`s, until the first that needs nothing
  more, which is the location's own target (none: 404). Two routes with the very same
  match on one host: the oldest wins, then namespace/name; the other is reported.
- A rule's backendRefs become one upstream: a single Service port is its own upstream
  (named apart from an Ingress's, whose zone weights may differ); several are one
  upstream holding every endpoint, each weighted by its backendRef's weight shared
  among its endpoints. A rule with no usable backendRef, or only zero weights, answers
  500, as the spec says; one with some, answers 500 to the share of requests its
  unusable ones' weights take (a choice drawn per request: `REFUSED_SHARE`). When its
  usable backendRefs' filters differ, each is a choice drawn so, with its own upstream
  and filters (`_Router.draws`).
- Ingress and Gateway on one host: the Ingress wins the whole host (on the edge's
  addresses: a dedicated Gateway's are its own, `_ingress_wins`), and each route
  losing it is told, in its status (condition `edgeagent.io/IngressConflict`, reason
  `IngressWins`, on each parent) and as a Problem (hence an Event). On the default
  server the Ingress wins path by path: a route keeps the paths no Ingress serves.
- A wildcard hostname takes one label or more; among the wildcards of both APIs that
  match a name, the longest suffix wins (`with_regex_names`, render.in_name_order).
- `--gateway-address-mode dedicated`: each Gateway's hostnames are servers of their own
  on its addresses (`Server.addresses`), and its routes without a hostname are a default
  server of those addresses, never the edge's, which presents the certificate of its
  HTTPS listener without hostname if it has one (any name, and no SNI, is that
  listener's there); a Gateway without an address serves nothing.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace

from edgeagent import model, nodeports, render_filters
from edgeagent.gateway import conditions as c
from edgeagent.gateway import filters
from edgeagent.gateway.attachment import (
    ANY_HOST,
    HTTPS,
    Attachment,
    GatewayState,
    Index,
    age,
    attach,
    backend_problem,
    index_of,
)
from edgeagent.gateway.conditions import Condition
from edgeagent.gateway.references import mapping, mappings
from edgeagent.gateway.routes import (
    EXACT,
    GRPC_ROUTE,
    HTTP_ROUTE,
    REGULAR_EXPRESSION,
    Backend,
    PathMatch,
    Route,
)
from edgeagent.grammar import Invalid
from edgeagent.model import NO_FILTERS, Choice, Filters, Location, Model, Problem, Server, Upstream
from edgeagent.resources import Key, key_of, service_of

STATUS_NO_BACKEND = 500
GRPC_SETTINGS = model.LocationSettings(backend_protocol="GRPC")
PATH_RANK = {EXACT: 0, REGULAR_EXPRESSION: 1}
"""Path match types before prefixes, in precedence order."""
SCHEMES = ("http", "https")
STATUS_NOT_FOUND = model.STATUS_NOT_FOUND
STATUS_NO_ENDPOINT = model.STATUS_NO_ENDPOINT
PATTERN = "~"
"""Before a condition's variable: its value is a regex the whole variable must match
(`grammar.regex_value`), which render writes as a map of its own."""
REFUSED_SHARE = "$request_id"
"""The condition of a choice that holds for a share of requests (an unusable
backendRefs' 500, or a backendRef of its own filters), its value a percentage with two
decimals: render draws it with `split_clients` on this random key, in both
modes (as an Ingress canary's weight), before any balancer sees the request."""


@dataclass(frozen=True)
class _Claim:
    """One match of one rule, on one host."""

    order: tuple
    route: Route
    rule_index: int
    match_index: int
    match: PathMatch
    scheme: str | None = None
    """The only scheme it is served over ("http", "https"; None: both): that of the
    only protocol of the listeners that serve its route on its host."""

    @property
    def precedence(self) -> tuple:
        """The spec's order among matches a request satisfies: Exact path, then the
        longest prefix, then a method match, then the most header matches, then the most
        query parameter matches, then the oldest route (then namespace/name), then rule
        and match order. RegularExpression paths, whose place the spec leaves to the
        implementation, come after Exact and before every prefix, the longest first
        (as Envoy Gateway orders them). A GRPCRoute's matches, as its spec orders them:
        the most characters of the service, then of the method, then the most header
        matches (before an HTTPRoute's on one location: their paths are calls')."""
        match = self.match
        if match.grpc_lengths is not None:
            service, method = match.grpc_lengths
            order = (self.order, self.rule_index, self.match_index)
            return (-1, -service, -method, -match.header_count, 0, *order)
        return (
            PATH_RANK.get(match.type, len(PATH_RANK)),
            -len(match.value),
            match.method is None,
            -match.header_count,
            -match.query_count,
            self.order,
            self.rule_index,
            self.match_index,
        )

    @property
    def conditions(self) -> tuple[tuple[str, str], ...]:
        """What the request must carry besides its path, as nginx variables."""
        match = self.match
        path = (("$uri", match.value),) if match.type == REGULAR_EXPRESSION else ()
        method = (("$request_method", match.method),) if match.method else ()
        headers = tuple((f"$http_{n.replace('-', '_')}", v) for n, v in match.headers)
        queries = tuple((f"$arg_{n}", v) for n, v in match.queries)
        patterns = tuple(
            (f"{PATTERN}$http_{n.replace('-', '_')}", v) for n, v in match.header_patterns
        ) + tuple((f"{PATTERN}$arg_{n}", v) for n, v in match.query_patterns)
        scheme = (("$scheme", self.scheme),) if self.scheme else ()
        return scheme + path + method + headers + queries + patterns

    @property
    def location_keys(self) -> tuple[tuple[str, str], ...]:
        """The nginx locations a request it matches can reach: an Exact path's own; a
        prefix's "= /p" and "^~ /p/" (by whole path elements, never "/pfoo")."""
        value = self.match.value
        if self.match.type == EXACT:
            return (("exact", value),)
        if value == "/" or self.match.type == REGULAR_EXPRESSION:  # any path may match
            return (("prefix", "/"),)
        return (("exact", value), ("prefix", value + "/"))

    def reaches(self, key: tuple[str, str]) -> bool:
        """Whether it matches the requests nginx sends to location `key`."""
        kind, path = key
        value = self.match.value
        if self.match.type == EXACT:
            return key == ("exact", value)
        if self.match.type == REGULAR_EXPRESSION:
            # Python's re reads the grammar's regexes as PCRE does (grammar.is_regex).
            if kind == "exact":
                return re.fullmatch(value, path) is not None
            literal = _literal_prefix(value)
            return literal.startswith(path) or path.startswith(literal)
        if value == "/":
            return True
        if kind == "exact":
            return path == value or path.startswith(value + "/")
        return path.startswith(value + "/")


class _Router:
    def __init__(
        self, inputs: model.Inputs, options: model.Options, index: Index, attachment: Attachment
    ):
        self.inputs = inputs
        self.index = index
        self.options = options
        self.attachment = attachment
        self.backends = model.backend_policy(options, inputs.nodes)
        self.nodes = nodeports.eligible_nodes(inputs.nodes)
        self.upstreams: dict[str, Upstream] = {}
        self.problems: list[Problem] = []
        self.lost_to_ingress: dict[tuple[str, Key], set[str]] = {}
        """What each route does not serve because an Ingress does: its status says so."""

    @functools.cached_property
    def slices(self) -> dict[Key, list[dict]]:
        """EndpointSlices by Service, indexed once a route names one: a cluster of
        Ingresses alone (100,000 slices) never pays for it."""
        slices: dict[Key, list[dict]] = {}
        for each in self.inputs.endpoint_slices:
            if isinstance(each, dict):
                slices.setdefault(service_of(each), []).append(each)
        return slices

    def lost(self, route: Route, what: str) -> None:
        self.lost_to_ingress.setdefault(route_id(route), set()).add(what)
        self.problem(
            route,
            f"{what} is served by an Ingress, which wins over HTTPRoutes; not served here",
            "conflict",
        )

    def problem(self, route: Route, reason: str, code: str) -> None:
        self.problems.append(Problem(route.kind, route.namespace, route.name, reason, code))

    def claims(
        self, gateway: Key | None = None
    ) -> tuple[dict[str, list[_Claim]], dict[str, Key | None], set[str]]:
        """Of every Gateway, or of `gateway` only: per hostname, every match of the routes
        served there, in precedence order; per hostname whether it is served over HTTPS,
        with which certificate (None: not over HTTPS); and the hostnames an HTTP listener
        serves. A route that only listeners of one protocol serve on a hostname also
        served over the other (the default server always is) matches that scheme only
        (`_Claim.scheme`). Of two routes with the very same match and scheme, the second
        is reported: it can never be chosen. A programmed HTTPS listener is one whose
        certificates are usable."""
        routes = {state.id: state for state in self.attachment.routes if state.route}
        orders = {
            (kind, key_of(obj)): age(obj)
            for kind, objects in (
                (HTTP_ROUTE, self.inputs.http_routes),
                (GRPC_ROUTE, self.inputs.grpc_routes),
            )
            for obj in objects
            if isinstance(obj, dict)
        }
        listeners = {
            (state.key, each.name): each
            for state in self.attachment.gateways
            for each in state.listeners
        }
        tls: dict[str, Key | None] = {}
        plain: set[str] = set()
        # Per (route, hostname), in the routes' order: the schemes of its listeners there.
        served: dict[tuple[tuple[str, Key], str], set[str]] = {}
        bindings = sorted(
            (b for b in self.attachment.bindings if gateway in (None, b.gateway)),
            key=lambda b: orders.get((b.kind, b.route), ()),
        )
        for binding in bindings:
            route = routes[(binding.kind, binding.route)].route
            assert route is not None
            listener = listeners[(binding.gateway, binding.listener)]
            if route.kind == GRPC_ROUTE and listener.protocol != HTTPS:
                self.problem(
                    route,
                    f"listener {listener.name} is plain HTTP, which stays HTTP/1.x (nginx "
                    "1.22 cannot serve h2c beside HTTP/1.1 on one port): gRPC clients reach "
                    "this route through an HTTPS listener only",
                    "unsupported",
                )
            for host in binding.hostnames:
                if listener.protocol == HTTPS and not listener.programmed:
                    tls.setdefault(host, None)
                    continue  # its status says why: nothing serves it
                if listener.protocol == HTTPS:
                    tls[host] = tls.get(host) or listener.certificates[0]
                    scheme = "https"
                else:
                    tls.setdefault(host, None)
                    plain.add(host)
                    scheme = "http"
                served.setdefault((route_id(route), host), set()).add(scheme)
        by_host: dict[str, dict[tuple[PathMatch, str | None], _Claim]] = {}
        for (key, host), schemes in served.items():
            route = routes[key].route
            assert route is not None
            both = host == ANY_HOST or (host in plain and tls.get(host) is not None)
            scheme = schemes.pop() if both and len(schemes) == 1 else None
            claimed = by_host.setdefault(host, {})
            for rule_index, rule in enumerate(route.rules):
                for match_index, match in enumerate(rule.matches):
                    claim = _Claim(orders[key], route, rule_index, match_index, match, scheme)
                    overlapping = (match, None), *((match, s) for s in SCHEMES)
                    taken = next(
                        (
                            m
                            for m in overlapping
                            if m in claimed and (scheme is None or m[1] in (None, scheme))
                        ),
                        None,
                    )
                    if (match, None) not in claimed and (match, scheme) not in claimed:
                        claimed[(match, scheme)] = claim  # served, over some scheme at least
                    if taken is None or claimed[taken].route == route:
                        continue
                    first = claimed[taken].route
                    over = f" over {(scheme or taken[1]).upper()}" if scheme or taken[1] else ""
                    self.problem(
                        route,
                        f"{match.type} {match.value} on {host or '(any host)'}{over}, with the "
                        "same method, headers and query parameters, is already served "
                        f"by {first.kind} {first.namespace}/{first.name} "
                        "(older, or same age and first by namespace/name)",
                        "conflict",
                    )
        ordered = {
            host: sorted(claimed.values(), key=lambda claim: claim.precedence)
            for host, claimed in by_host.items()
        }
        return ordered, tls, plain

    def locations(self, claims: list[_Claim]) -> dict[tuple[str, str], Location]:
        """One location per path a match names; each holds, in precedence order, every
        match that its requests can satisfy (shorter prefixes included), as choices
        until the first that needs nothing but the path."""
        keys = {key for claim in claims for key in claim.location_keys}
        placed = {}
        for key in keys:
            choices, choice_claims = [], []
            upstream, status, own = None, STATUS_NOT_FOUND, NO_FILTERS
            taken = []
            for claim in claims:
                if not claim.reaches(key):
                    continue
                taken.append(claim)
                *drawn, (_, target, chosen) = self.draws(claim)
                for share, drawn_target, drawn_filters in drawn:
                    conditions = (*claim.conditions, (REFUSED_SHARE, share))
                    choices.append(Choice(conditions, *drawn_target, drawn_filters))
                    choice_claims.append(claim)
                if not claim.conditions:
                    (upstream, status), own = target, chosen
                    break
                choices.append(Choice(claim.conditions, *target, chosen))
                choice_claims.append(claim)
            location = Location(
                *key,
                upstream,
                status,
                settings=self.retried(key, taken, self.protocol(key, taken)),
                choices=tuple(choices),
                filters=own,
                timeout_ms=self.timeout(key, taken),
                mirrors=self.mirrors(key, taken),
            )
            placed[key] = self.within_redirect_carriers(location, choice_claims, taken[-1])
        return placed

    def protocol(self, key: tuple[str, str], claims: list[_Claim]) -> model.LocationSettings:
        """A location of GRPCRoutes is served with `grpc_pass` (HTTP/2 to the backend);
        nginx takes one module per location: the first claim's kind decides, and a rule
        of the other kind sharing the location is reported."""
        kind = claims[0].route.kind
        for claim in claims[1:]:
            if claim.route.kind != kind:
                self.problem(
                    claim.route,
                    f"rule {claim.rule_index} shares location {key[1]} with a {kind}: "
                    f"its requests are proxied as that {kind}'s",
                    "conflict",
                )
        return GRPC_SETTINGS if kind == GRPC_ROUTE else model.NO_SETTINGS

    def within_redirect_carriers(
        self, location: Location, choice_claims: list[_Claim], last: _Claim
    ) -> Location:
        """nginx answers at most two redirect codes in one location
        (`render_filters.redirect_carriers`): a code beyond the first two, in precedence
        order, is answered with the first, and its rule reported."""
        if render_filters.redirect_carriers(render_filters.redirect_codes(location)) is not None:
            return location
        kept: list[int] = []
        for action in render_filters.actions(location):
            code = action.redirect.code if action.redirect else None
            if (
                code is not None
                and code not in kept
                and len(kept) < len(render_filters.REDIRECT_FLAGS)
            ):
                kept.append(code)

        def fitted(chosen: Filters, claim: _Claim) -> Filters:
            redirect = chosen.redirect
            if redirect is None or redirect.code in kept:
                return chosen
            self.problem(
                claim.route,
                f"rule {claim.rule_index} shares location {location.path} with rules of two "
                f"other redirect codes; nginx answers two per location: {kept[0]} instead "
                f"of {redirect.code}",
                "unsupported",
            )
            return replace(chosen, redirect=replace(redirect, code=kept[0]))

        choices = tuple(
            replace(choice, filters=fitted(choice.filters, claim))
            for choice, claim in zip(location.choices, choice_claims, strict=True)
        )
        own = fitted(location.filters, last)
        return replace(location, choices=choices, filters=own)

    def timeout(self, key: tuple[str, str], claims: list[_Claim]) -> int | None:
        """The location's timeout: its rules' `timeouts`. nginx's timeouts cannot differ
        per choice; when its rules' do, the longest applies (0, off, is the longest),
        so that no request is cut before its rule allows, and the rules cut later
        than they asked are reported."""
        asked = {claim: claim.route.rules[claim.rule_index].timeout_ms for claim in claims}
        values = set(asked.values())
        if len(values) <= 1:
            return values.pop() if values else None
        longest = 0 if 0 in values else max(v for v in values if v is not None)
        shown = "off" if longest == 0 else f"{longest}ms"
        for claim, value in asked.items():
            if value != longest:
                self.problem(
                    claim.route,
                    f"rule {claim.rule_index} shares location {key[1]} with rules of other "
                    f"timeouts; nginx takes one per location: {shown}",
                    "unsupported",
                )
        return longest

    def retried(
        self, key: tuple[str, str], claims: list[_Claim], settings: model.LocationSettings
    ) -> model.LocationSettings:
        """The location's settings with its rules' `retry` (gateway.retries). nginx takes
        one per location: when its rules' differ, none applies (nginx's own: a
        connection error or timeout only) and the rules that asked are reported. A
        `backoff` is reported: nginx retries at once."""
        asked = {claim: claim.route.rules[claim.rule_index].retry for claim in claims}
        for claim, retry in asked.items():
            if retry is not None and retry.backoff_ms is not None:
                self.problem(
                    claim.route,
                    f"rule {claim.rule_index}: retry.backoff is not served; nginx tries the "
                    "next endpoint at once",
                    "unsupported",
                )
        values = set(asked.values())
        if len(values) > 1:
            for claim, retry in asked.items():
                if retry is not None:
                    self.problem(
                        claim.route,
                        f"rule {claim.rule_index} shares location {key[1]} with rules of "
                        "another retry; nginx retries per location: not retried",
                        "unsupported",
                    )
        retry = values.pop() if len(values) == 1 else None
        if retry is None:
            return settings
        return replace(settings, next_upstream=retry.next_upstream, next_upstream_tries=retry.tries)

    def mirrors(self, key: tuple[str, str], claims: list[_Claim]) -> tuple[model.MirroredTo, ...]:
        """The upstreams the location's requests are mirrored to. nginx's `mirror` takes
        no variable: when its rules' mirrors differ, none is mirrored, and the rules
        that asked for one are reported."""
        asked = {claim: self.claim_mirrors(claim) for claim in claims}
        values = set(asked.values())
        if len(values) <= 1:
            return values.pop() if values else ()
        for claim, value in asked.items():
            if value:
                self.problem(
                    claim.route,
                    f"rule {claim.rule_index} shares location {key[1]} with rules of other "
                    "RequestMirror filters; nginx mirrors per location: not mirrored",
                    "unsupported",
                )
        return ()

    def claim_mirrors(self, claim: _Claim) -> tuple[model.MirroredTo, ...]:
        route, rule = claim.route, claim.route.rules[claim.rule_index]
        targets = []
        for ref in rule.filters.mirrors:
            numerator, denominator = ref.share
            if numerator == 0 or backend_problem(route.namespace, ref, self.index) is not None:
                continue  # nothing to copy; or ResolvedRefs says why
            name = model.upstream_name(ref.namespace, f"{ref.name}.gateway", ref.port or 0)
            upstream, _ = self.upstream(name, ref, self.endpoints(ref), None)
            if upstream is not None:
                share = None if numerator == denominator else _percent(numerator, denominator)
                targets.append(model.MirroredTo(upstream, share))
        return tuple(targets)

    def filters(self, claim: _Claim, backend: Backend | None = None) -> Filters:
        """The rule's filters, then those of the backendRef a request goes to."""
        rule = claim.route.rules[claim.rule_index]
        rule_filters = rule.filters
        if backend is not None and backend.filters != filters.NO_RULE_FILTERS:
            # routes.py refused a route whose filters could not be joined so
            what = f"{claim.route.kind} {claim.route.name} rule {claim.rule_index}"
            rule_filters = filters.with_backend(rule_filters, backend.filters, what)
        gateway = self.options.gateway
        return filters.bound(rule_filters, claim.match.value, gateway.http_port, gateway.https_port)

    def draws(self, claim: _Claim) -> list[tuple[str, tuple[str | None, int], Filters]]:
        """What the requests a claim takes get: (the cumulative share of them drawn,
        target, filters), the last one's share being every other request's. The share
        its unusable backendRefs' weights take answers 500, as the spec says (first).
        Its usable backendRefs of one set of filters are one upstream balancing them by
        weight (exact over a cycle); when their filters differ, each is drawn by its
        weight (random per request) and gets its own filters: nginx must know the
        backendRef before it sends the request. Shares are percentages with two decimals,
        at least 0.01 and at most 99.99: what split_clients draws, on one key for all,
        so that each draw takes the requests the previous ones did not."""
        route, rule = claim.route, claim.route.rules[claim.rule_index]
        if rule.filters.redirect is not None:  # answered by the redirect, not a backend
            return [("", (None, rule.filters.redirect.code), self.filters(claim))]
        total = sum(backend.weight for backend in rule.backends)
        usable = [
            backend
            for backend in rule.backends
            if backend.weight
            # ResolvedRefs says why the others are not
            and backend_problem(route.namespace, backend, self.index, route.kind) is None
        ]
        if not usable:
            return [("", (None, STATUS_NO_BACKEND), self.filters(claim))]
        refused = total - sum(backend.weight for backend in usable)
        drawn = [(refused, (None, STATUS_NO_BACKEND), self.filters(claim))] if refused else []
        if len({backend.filters for backend in usable}) == 1:
            target = self.balanced(claim, usable)
            drawn.append((total, target, self.filters(claim, usable[0])))
        else:
            taken = refused
            for backend in usable:
                taken += backend.weight
                target = self.balanced(claim, [backend])
                drawn.append((taken, target, self.filters(claim, backend)))
        return [(_percent(weight, total), target, chosen) for weight, target, chosen in drawn]

    def balanced(self, claim: _Claim, backends: list[Backend]) -> tuple[str | None, int]:
        """The upstream of a rule's usable backendRefs: a single Service port is its own;
        several are one upstream holding every endpoint, weighted by its backendRef's
        share. Names with a dot, which no Service name has (routes.py): never an
        Ingress's."""
        shares = [(backend, self.endpoints(backend)) for backend in backends]
        if len(shares) == 1:
            backend, endpoints = shares[0]
            name = model.upstream_name(backend.namespace, f"{backend.name}.gateway", backend.port)
            return self.upstream(name, backend, endpoints, None)
        route = claim.route
        rule = "grpc-rule" if route.kind == GRPC_ROUTE else "rule"  # the kinds share names
        name = model.upstream_name(route.namespace, f"{route.name}.{rule}{claim.rule_index}", 0)
        return self.upstream(
            name, shares[0][0], [e for _, es in shares for e in es], _weights(shares)
        )

    def upstream(
        self, name: str, backend: Backend, endpoints: list[str], weights: tuple[int, ...] | None
    ) -> tuple[str | None, int]:
        if not endpoints and not self.options.upstreams_without_endpoints:
            return None, STATUS_NO_ENDPOINT
        self.upstreams[name] = Upstream(
            name,
            backend.namespace,
            backend.name,
            backend.port or 0,
            tuple(endpoints),
            weights or (),
        )
        return name, 0

    def endpoints(self, backend: Backend) -> list[str]:
        """The ready endpoints of a backendRef's Service port, in the Ingress model's order,
        without those the backend policy refuses (reported on their slice, as the Ingress
        model does: an HTTPRoute must not reach what an Ingress may not)."""
        service = self.index.services[(backend.namespace, backend.name)]
        slices = self.slices.get((backend.namespace, backend.name), [])
        if model.backend_mode(service, self.options, self.problems) == nodeports.NODEPORT:
            nodes = model.node_endpoints(
                service, backend.port or 0, slices, self.nodes, self.backends, self.problems
            )
            return [model.endpoint_text(*e) for e in sorted(nodes or (), key=model.endpoint_order)]
        ports = mappings(mapping(service.get("spec")).get("ports"))
        port_name = next(p.get("name") or "" for p in ports if p.get("port") == backend.port)
        found: set[tuple[str, int]] = set()
        for endpoint_slice in slices:
            try:
                ready = model.ready_endpoints(endpoint_slice, port_name)
            except Invalid:
                continue  # the Ingress model reports broken slices
            for address, port, _ in ready:
                refusal = self.backends.refusal(address) if self.backends else None
                if refusal is not None:
                    self.problems.append(model.refused_endpoint(endpoint_slice, refusal))
                else:
                    found.add((address, port))
        return [model.endpoint_text(*e) for e in sorted(found, key=model.endpoint_order)]


def route_id(route: Route) -> tuple[str, Key]:
    return route.kind, (route.namespace, route.name)


def _percent(weight: int, total: int) -> str:
    """`weight` of `total` as a percentage with two decimals that split_clients draws."""
    hundredths = min(max(round(weight * 10_000 / total), 1), 9_999)
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _literal_prefix(regex: str) -> str:
    """What every path a regex matches starts with: its characters before the first
    regex syntax (less one made optional by a quantifier), or "/" when it has
    alternatives at its top level."""
    depth, escaped, in_class = 0, False, False
    for char in regex:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif in_class:
            in_class = char != "]"
        elif char == "[":
            in_class = True
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return "/"
    for i, char in enumerate(regex):
        if char in ".^$*+?()[]{}|\\":
            return regex[: i - 1] if char in "*?{" else regex[:i]
    return regex


def _weights(shares: list[tuple[Backend, list[str]]]) -> tuple[int, ...]:
    """Each endpoint's weight: its backendRef's weight shared among its endpoints, in
    whole numbers (scaled by the least common multiple of the endpoint counts)."""
    counts = [len(endpoints) for _, endpoints in shares if endpoints]
    scale = math.lcm(*counts) if counts else 1
    weights = [b.weight * scale // len(es) for b, es in shares for _ in es]
    divisor = math.gcd(*weights) if weights else 1
    return tuple(w // divisor for w in weights)


def build(built: Model, inputs: model.Inputs, options: model.Options) -> tuple[Model, Attachment]:
    """The Ingress model `built` with the Gateway API's servers, upstreams and
    certificates merged in; and the attachment, which the status is made of."""
    index = index_of(inputs.secrets, inputs.services, inputs.namespaces, inputs.reference_grants)
    attachment = attach(
        inputs.gateway_classes,
        inputs.gateways,
        inputs.http_routes,
        index,
        options.gateway,
        inputs.grpc_routes,
    )
    router = _Router(inputs, options, index, attachment)
    merged = _merged(built, router)
    return merged, _with_ingress_conflicts(attachment, router.lost_to_ingress)


def _with_ingress_conflicts(
    attachment: Attachment, lost: dict[tuple[str, Key], set[str]]
) -> Attachment:
    """The attachment with a condition on each accepted parent of a route that lost
    something to an Ingress: never a silent merge."""
    if not lost:
        return attachment
    routes = []
    for state in attachment.routes:
        if state.id in lost:
            told = Condition(
                c.INGRESS_CONFLICT,
                True,
                c.INGRESS_WINS,
                "served by an Ingress instead: " + ", ".join(sorted(lost[state.id])),
            )
            parents = tuple(
                replace(p, conditions=(*p.conditions, told))
                if c.holds(p.conditions, c.ACCEPTED)
                else p
                for p in state.parents
            )
            state = replace(state, parents=parents)
        routes.append(state)
    return replace(attachment, routes=tuple(routes))


def _sites(
    router: _Router,
) -> list[
    tuple[
        tuple[str, ...],
        Key | None,
        tuple[dict[str, list[_Claim]], dict[str, Key | None], set[str]],
    ]
]:
    """The addresses, default certificate and claims of each set of servers: the shared
    mode's one, on the edge's addresses (the edge's default certificate), with every
    Gateway's; the dedicated mode's one per Gateway that has addresses of its own (one
    without serves nothing: its status says why), whose default server presents its
    programmed HTTPS listener without hostname's certificate (`_listener_certificate`)."""
    attachment = router.attachment
    if not attachment.dedicated:
        return [((), None, router.claims())]
    return [
        (g.addresses, _listener_certificate(g), router.claims(g.key))
        for g in attachment.gateways
        if g.addresses
    ]


def _listener_certificate(gateway: GatewayState) -> Key | None:
    """The certificate of a Gateway's programmed HTTPS listener without hostname, which
    serves every name (the Gateway API's: its certificateRefs are what it presents), or
    None. One at most: the edge carries HTTPS on one port, and two such listeners on one
    port are Conflicted (HostnameConflict), neither programmed (attachment._conflicts)."""
    return next(
        (
            each.certificates[0]
            for each in gateway.listeners
            if each.protocol == HTTPS and each.programmed and each.hostname is None
        ),
        None,
    )


def _merged(built: Model, router: _Router) -> Model:
    inputs = router.inputs
    ingress_hosts = {server.host: server for server in built.servers}
    certificates = dict(built.certificates)
    servers = list(built.servers)
    secrets = {key_of(s): s for s in inputs.secrets if isinstance(s, dict)}
    default = built.default_server
    for addresses, certificate, (by_host, tls, plain) in _sites(router):
        servers.extend(
            _hosts(router, by_host, tls, plain, addresses, ingress_hosts, certificates, secrets)
        )
        if addresses:
            _read(certificate, certificates, secrets)
            claims = by_host.get(ANY_HOST, [])
            servers.append(_dedicated_default(addresses, certificate, router, claims))
        elif ANY_HOST in by_host:
            default = _onto_default(
                default, router.locations(by_host[ANY_HOST]), router, by_host[ANY_HOST]
            )
    upstreams = {u.name: u for u in built.upstreams} | router.upstreams
    # replace, not a new Model: what the Ingress side adds (shared hosts, the annotations'
    # configuration) passes through unchanged.
    return replace(
        built,
        servers=tuple(sorted(with_regex_names(servers), key=lambda s: s.host)),
        default_server=default,
        upstreams=tuple(upstreams[name] for name in sorted(upstreams)),
        certificates=certificates,
        problems=tuple(
            sorted(
                set(built.problems) | set(router.problems) | _refusals(router.attachment),
                key=lambda p: (p.kind, p.namespace, p.name, p.reason),
            )
        ),
    )


def with_regex_names(servers: list[Server]) -> list[Server]:
    """`servers`, each wildcard of any depth that a one-label wildcard lies under with
    `Server.regex_name`, and no other: the Gateway API's hostname precedence and the
    Ingress's (the longest suffix wins among the wildcards that match), which nginx's
    order of server names (every `*.` name before any regex) would not give. Also for
    the servers quarantine.withhold puts back, built beside other wildcards."""
    one_label = {
        name[1:]
        for server in servers
        for name in (() if server.any_depth else (server.host,)) + server.aliases
        if name.startswith("*.")
    }
    if not one_label and not any(server.regex_name for server in servers):
        return servers  # nearly every build: no pass over the pairs

    def regex_name(server: Server) -> bool:
        return server.any_depth and any(suffix.endswith(server.host[1:]) for suffix in one_label)

    return [
        server
        if server.regex_name == regex_name(server)
        else replace(server, regex_name=not server.regex_name)
        for server in servers
    ]


def _hosts(
    router: _Router,
    by_host: dict[str, list[_Claim]],
    tls: dict[str, Key | None],
    plain: set[str],
    addresses: tuple[str, ...],
    ingress_hosts: dict[str, Server],
    certificates: dict,
    secrets: dict[Key, dict],
) -> list[Server]:
    """The servers of the hostnames claimed (not the default server's), on `addresses`
    (() the edge's); the certificates they use are added to `certificates`. An Ingress
    host wins the whole host on the edge's addresses; a dedicated Gateway's own
    addresses are its own (`_ingress_wins`)."""
    servers = []
    for host in sorted(h for h in by_host if h != ANY_HOST):
        certificate = tls.get(host)
        if _ingress_wins(ingress_hosts.get(host), addresses):
            for route in {claim.route for claim in by_host[host]}:
                router.lost(route, f"host {host}")
            continue
        if certificate is None and host not in plain:
            continue  # its HTTPS listeners are not programmed: their status says why
        placed = router.locations(by_host[host])
        placed.setdefault(("prefix", "/"), Location("prefix", "/", None, STATUS_NOT_FOUND))
        _read(certificate, certificates, secrets)
        servers.append(
            Server(
                host,
                _sorted(placed),
                certificate is not None,
                certificate,
                any_depth=host.startswith("*."),
                gateway=bool(router.options.gateway.addresses),
                http=host in plain,
                addresses=addresses,
            )
        )
    return servers


def _read(certificate: Key | None, certificates: dict, secrets: dict[Key, dict]) -> None:
    """Add the pair of `certificate` (a Secret's key; None: the default certificate) to
    `certificates`, unless it is there."""
    if certificate is not None and certificate not in certificates:
        certificates[certificate] = model.read_tls_secret(secrets.get(certificate))


def _ingress_wins(ingress: Server | None, addresses: tuple[str, ...]) -> bool:
    """Whether an Ingress's server of a Gateway's hostname takes it from the Gateway.
    On the edge's addresses (the shared mode) it does. A dedicated Gateway's server
    listens on its own addresses, where no Ingress's does: nginx picks a server among
    those of the connection's address first, so both serve the name, each on its own
    addresses and with its own certificate, in both modes (the dynamic mode's pushed
    pairs are scoped by the server's addresses: render.certificate_scope)."""
    return ingress is not None and not addresses


def _dedicated_default(
    addresses: tuple[str, ...], certificate: Key | None, router: _Router, claims: list[_Claim]
) -> Server:
    """The default server of a dedicated Gateway's addresses: its routes without a
    hostname, else what the edge's default server answers an unknown host (404). Over
    HTTPS, with `certificate` (its HTTPS listener without hostname's: every name the
    Gateway's hostname servers do not serve, and a handshake without SNI, are that
    listener's on addresses of this Gateway alone), else the default certificate. Never
    an Ingress's: the addresses are the Gateway's."""
    placed = router.locations(claims) if claims else {}
    placed.setdefault(("prefix", "/"), Location("prefix", "/", None, STATUS_NOT_FOUND))
    return Server("", _sorted(placed), True, certificate, gateway=True, addresses=addresses)


UNSUPPORTED_REASONS = {c.UNSUPPORTED_VALUE, c.UNSUPPORTED_PROTOCOL, c.PORT_UNAVAILABLE}


def _refusals(attachment: Attachment) -> set[Problem]:
    """Every False Accepted or ResolvedRefs of a Gateway, listener or route, as a
    Problem: what `edgeagent check` prints and the daemon records as Events."""
    found = set()

    def add(kind: str, key: Key, where: str, conditions: tuple) -> None:
        for each in conditions:
            if each.type in (c.ACCEPTED, c.RESOLVED_REFS) and not each.status:
                code = "unsupported" if each.reason in UNSUPPORTED_REASONS else "invalid"
                reason = f"{where}{each.type} {each.reason}" + (
                    f": {each.message}" if each.message else ""
                )
                found.add(Problem(kind, key[0], key[1], reason, code))

    for state in attachment.gateways:
        add("Gateway", state.key, "", state.conditions)
        for listener in state.listeners:
            add("Gateway", state.key, f"listener {listener.name}: ", listener.conditions)
    for route in attachment.routes:
        for status in route.parents:
            ref = status.parent_ref
            where = f"parent {ref['namespace']}/{ref.get('name')}: "
            add(route.kind, route.key, where, status.conditions)
    return found


def _onto_default(
    default: Server,
    placed: dict[tuple[str, str], Location],
    router: _Router,
    claims: list[_Claim],
) -> Server:
    """Route locations on the default server where no Ingress serves that path (an
    Ingress location answering 404 is the default server's fallback, not a claim).
    When Ingress regex paths made the fallback a plain `location /` ("default"), a
    route's "/" takes that form too, so that the regexes still match first."""
    locations = {(loc.match, loc.path): loc for loc in default.locations}

    def on_default(key: tuple[str, str]) -> tuple[str, str]:
        return (
            ("default", "/")
            if key == ("prefix", "/")
            and key not in locations
            and (
                "default",
                "/",
            )
            in locations
            else key
        )

    taken = {}
    for key, location in placed.items():
        where = on_default(key)
        current = locations.get(where)
        if current is None or (current.upstream is None and current.status == STATUS_NOT_FOUND):
            locations[where] = replace(location, match=where[0])
            taken[key] = locations[where]
    for claim in claims:
        if any(locations.get(on_default(key)) is not taken.get(key) for key in claim.location_keys):
            router.lost(claim.route, f"{claim.match.type} {claim.match.value} without a host")
    return replace(default, locations=_sorted(locations))


def _sorted(placed: dict[tuple[str, str], Location]) -> tuple[Location, ...]:
    return tuple(sorted(placed.values(), key=lambda loc: (loc.path, loc.match)))
