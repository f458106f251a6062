"""Pure core, dynamic mode: the hosts nginx routes from a Lua route table. No I/O.

A reload of nginx parses the whole configuration, seconds at 10,000 hosts in the dynamic
mode (docs/dynamic.md). Most hosts need nothing of nginx but the defaults: their rules
name a path and a backend, and the http-level directives (proxy headers, timeouts, body
size) serve them. Such "table hosts" get no server block: the default server, which
receives every name no server block claims, asks lua/edgeagent_routes.lua for the host's
rules (pushed as `route` records of the dynamic state), so adding, changing or removing
them is a push, not a reload. Every other host keeps its server block, rendered as
without the table, so every annotation keeps its nginx directives.

`table_hosts` is the one place that says which hosts those are: a host of plain HTTP
or of TLS (below), not the default server, not a Gateway API host bound to
`--gateway-address` (the default server listens everywhere), no server-level setting
(aliases, app-root, redirects,
client certificates, ciphers), not passed through, and every location an exact or prefix
match with the settings an Ingress without annotations gets, no Gateway API choice,
filter, timeout or mirror, no canary and no default backend pages. Plain HTTPRoutes are
such hosts too: gateway.routing has already put each location's winner among every
route's rules of the hostname into it (the Gateway API's precedence), so the table's
exact-then-longest-prefix pick, nginx's, is theirs; weighted backendRefs are one
upstream. And no rendered server may claim its name: nginx gives a name to any
rendered server name that matches it before the default server, so an exact host that
a rendered wildcard matches (or a rendered alias names) keeps its server block too, and
so does a wildcard that a rendered one of a shorter suffix, of any depth, would take
names from (among wildcards the longest suffix wins, a one-label one at an equal one:
render.in_name_order; a rendered one-label wildcard under a table's one of any depth
takes only its own names). Nor may the table outgrow its
shared dict: the hosts beyond ROUTES_BUDGET_BYTES, in name order, keep their servers.

A TLS host (its Ingress's `tls:` names it) is a table host too: its handshake is the
default server's, whose `ssl_certificate_by_lua` serves the host's pushed certificate by
SNI (the default certificate without a usable Secret), and its rules carry what its
server would add (`Route.tls`, `Route.redirect`): they answer HTTPS, with the TLS hosts'
HSTS, and over plain HTTP a rule under ssl-redirect answers the 308 to https, the URI
kept whole (so preserve-trailing-slash: false keeps a host rendered), never an HTTP-01
challenge.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from edgeagent import grammar
from edgeagent.model import (
    NO_FILTERS,
    NO_SETTINGS,
    Location,
    LocationSettings,
    Model,
    Server,
    redirects_to_https,
)
from edgeagent.remembered import Remembered

TABLE_MATCHES = ("exact", "prefix")
# nginx's shared dict of the table (edge.conf's `lua_shared_dict edgeagent_routes`), and the
# route text the table may hold: a quarter of it, room for the dict's own keys and slabs and
# for a full push's grace copies (lua/edgeagent_state.lua). A push is applied whole or not
# at all, so a full dict would stop every push, endpoints too: the hosts beyond the budget
# (in name order) keep their server blocks instead. 100,000 hosts of one short path each
# take about 15 MB of text.
ROUTES_DICT_MB = 128
ROUTES_BUDGET_BYTES = ROUTES_DICT_MB * 1024 * 1024 // 4


class Route(NamedTuple):
    """One rule of a table host: a request whose path matches goes to `backend`, or, with
    none, is answered `status`."""

    match: str
    """"exact" (the path itself) or "prefix" (nginx's `^~`: the path starts with it)."""
    path: str
    backend: str | None
    status: int
    tls: bool = False
    """Of a TLS host: the rule answers HTTPS too (plain HTTP only otherwise)."""
    redirect: bool = False
    """Over plain HTTP, the rule answers 308 to https (model.redirects_to_https)."""


@functools.lru_cache(maxsize=1024)
def plain_settings(settings: LocationSettings) -> bool:
    """Whether a location's settings render no directive on a plain-HTTP host. ssl-redirect
    (on by default) and preserve-trailing-slash only shape the HTTPS redirect of a TLS host
    (the route table's `Route.redirect`; `plain_server` asks the URI kept whole)."""
    if settings is NO_SETTINGS:
        return True
    return (
        dataclasses.replace(settings, ssl_redirect=False, preserve_trailing_slash=True)
        == NO_SETTINGS
    )


def plain_location(location: Location) -> bool:
    return (
        location.match in TABLE_MATCHES
        # What dynamic.encode's lock takes: a Prefix "/a...a" of the grammar's longest is
        # one character longer as its location "/a...a/".
        and len(location.path) <= grammar.PATH_MAX_LENGTH
        and plain_settings(location.settings)
        and not location.choices
        and location.filters == NO_FILTERS
        and location.timeout_ms is None
        and not location.mirrors
        and location.canary is None
        and location.error_pages is None
        and location.mirror_upstream is None
        and location.auth_upstream is None
    )


def plain_server(server: Server) -> bool:
    """Whether a server needs nothing but the defaults (its name aside)."""
    return (
        server.host != ""
        and server.http
        # A TLS host's 308 to https keeps the URI whole (edgeagent_routes.lua).
        and (
            not server.https
            or all(loc.settings.preserve_trailing_slash for loc in server.locations)
        )
        and not server.gateway
        and not server.aliases
        and server.app_root is None
        and server.redirect_to is None
        and server.client_certificates is None
        and server.host_ciphers is None
        and all(plain_location(location) for location in server.locations)
    )


def _suffixes(name: str) -> Iterable[str]:
    """ ".b.c" and ".c" of "a.b.c": what a wildcard server name must end with to match it."""
    dot = name.find(".", 1)
    while dot != -1:
        yield name[dot:]
        dot = name.find(".", dot + 1)


class _Claims(NamedTuple):
    """The names of the rendered servers that nginx prefers to the default server."""

    aliases: frozenset[str]
    one_label: frozenset[str]
    """Suffixes (".example.com") of one-label wildcards: an Ingress's `*.example.com`."""
    any_label: frozenset[str]
    """Suffixes of wildcards of any depth: a Gateway API's `*.example.com`."""

    @classmethod
    def of(cls, rendered: Iterable[Server]) -> _Claims:
        names = [(name, s.any_depth) for s in rendered for name in (s.host, *s.aliases)]
        wildcards = [(name[1:], any_depth) for name, any_depth in names if name[:2] == "*."]
        return cls(
            frozenset(alias for s in rendered for alias in s.aliases),
            frozenset(suffix for suffix, any_depth in wildcards if not any_depth),
            frozenset(suffix for suffix, any_depth in wildcards if any_depth),
        )

    def take(self, host: str) -> bool:
        suffixes = list(_suffixes(host))
        one_label = suffixes[0] if suffixes and not host.startswith("*.") else None
        return (
            host in self.aliases
            or one_label in self.one_label
            or any(suffix in self.any_label for suffix in suffixes)
        )


# The last model asked about, and its answer: render and the dynamic state both ask in
# each sync, and at 10k hosts an answer takes 0.1 s. (Models are immutable.)
_last: tuple[Model | None, frozenset[str]] = (None, frozenset())


def table_hosts(model: Model) -> frozenset[str]:
    """The hosts the route table serves (see the module docstring)."""
    global _last
    if _last[0] is not model:
        _last = (model, _table_hosts(model))
    return _last[1]


def route_bytes(server: Server) -> int:
    """About what a host's `route` record takes: its name, then each rule's match, path
    and target with their separators."""
    return len(server.host) + sum(
        len(location.path) + len(location.upstream or "") + 16 for location in server.locations
    )


# Per Server object, for every sync's table_hosts and route_table (remembered.py).
_plain_servers = Remembered(plain_server)


def _table_hosts(model: Model) -> frozenset[str]:
    passed_through = {host.host for host in model.passthrough}
    plain = sorted(
        # A dedicated Gateway's server (Server.addresses) answers on its addresses only.
        (
            s
            for s, plain in zip(model.servers, _plain_servers.each(model.servers), strict=True)
            if plain and not s.addresses and s.host not in passed_through
        ),
        key=lambda server: server.host,
    )
    table, spent = set(), 0
    for server in plain:
        spent += route_bytes(server)
        if spent > ROUTES_BUDGET_BYTES:
            break
        table.add(server.host)
    # A host leaving the table renders a server, whose names may claim others: repeat.
    while True:
        claims = _Claims.of([s for s in model.servers if s.host not in table])
        if not any(claims):  # no rendered name or wildcard: no host to ask
            return frozenset(table)
        taken = {host for host in table if claims.take(host)}
        if not taken:
            return frozenset(table)
        table -= taken


def routes(server: Server) -> tuple[Route, ...]:
    """A table host's rules in nginx's order: exact paths, then prefixes, longest first."""
    ordered = sorted(
        server.locations,
        key=lambda location: (location.match != "exact", -len(location.path), location.path),
    )
    return tuple(
        Route(
            location.match,
            location.path,
            location.upstream,
            location.status,
            server.https,
            redirects_to_https(server, location),
        )
        for location in ordered
    )


def table_name(server: Server) -> str:
    """A table host's name in the table: a wildcard of any depth (the Gateway API's
    `*.example.com`) as `**.example.com`, apart from a one-label one (an Ingress's), which
    the table tries first at an equal suffix (lua/edgeagent_routes.lua)."""
    return "*" + server.host if server.any_depth else server.host


def served_by_table(server: Server, hosts: frozenset[str]) -> bool:
    """Whether the table serves `server`: one of `hosts`, not a dedicated Gateway's server
    of the same name on its own addresses (never the default server's)."""
    return server.host in hosts and not server.addresses


def route_table(model: Model, hosts: frozenset[str]) -> Mapping[str, tuple[Route, ...]]:
    """Table name -> its rules, for the hosts `table_hosts` chose."""
    chosen = [server for server in model.servers if served_by_table(server, hosts)]
    return dict(_table_routes.each(chosen))


_table_routes = Remembered(lambda server: (table_name(server), routes(server)))
