"""Pure core, dynamic mode: what nginx takes without a reload, as data and as text. No I/O.

In the dynamic mode (render.py's docstring, docs/dynamic.md) edge.conf names each
backend but lists no peer, and loads certificates from files the agent keeps current.
What changes without a reload is a `State`: the ready peers of every backend, the
certificate pairs, and which TLS host uses which pair. The agent pushes it to nginx's
control endpoint, whole after every reload and as a delta (what changed since the last
push) otherwise, in the text format that lua/edgeagent_state.lua parses:

    edgeagent-dynamic 1
    version 1764097200000000
    scope full
    backend 1a2b3c_default_app_80 10.0.0.1:8080 1 10.0.0.2:8080 3
    certificate default_app-tls LS0tLS1CRUdJTi...
    host app.example.com default_app-tls
    host 10.0.0.5/app.example.com team-b_gateway-tls
    route shop.example.com exact /cart 1a2b3c_default_app_80 prefix / !404

With the route table (route_table.py), each `route` record is a table host's rules in
nginx's order (MATCH PATH TARGET, TARGET a backend or `!STATUS`); in a delta, a `route`
record without rules removes the host from the table. A wildcard of any depth (the Gateway
API's) is named `**.example.com` there and in `host` records (`route_table.table_name`),
apart from a one-label `*.example.com` (an Ingress's). The rules of a TLS host
prefix their TARGET with `+` (it answers HTTPS too) or `>` (and plain HTTP is redirected to
https), all of them, and a delta's `host NAME` without a key takes the host's certificate
away (a table host's Secret or `tls:` gone changes no byte of edge.conf):

    route app.example.com prefix /.well-known/acme-challenge/ +1a2b3c_default_app_80 \
        prefix / >1a2b3c_default_app_80

Every value here passed model.py's grammar; `encode` checks the shapes once more (the
second lock, as render's `token`), so no push can carry a line break or a space where
the Lua parser expects one field.

A `host` record's name carries its certificate scope (`render.certificate_scope`): none for
the servers on the edge's own addresses, `ADDRESS/` for a dedicated Gateway's, whose
handshakes are served that scope's pairs only (lua/edgeagent_certificates.lua). There,
`ADDRESS/` without a name is the scope's default server's pair (its HTTPS listener without
hostname's: gateway.routing), for every name the scope has no pair of and no SNI.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass

from edgeagent import grammar, route_table
from edgeagent.model import Model
from edgeagent.render import certificate_key, certificate_scope
from edgeagent.route_table import Route

FORMAT_LINE = "edgeagent-dynamic 1"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-._]*")
SCOPE = re.compile(r"[0-9a-f.:]+")  # an IP address, render.certificate_scope
PEER = re.compile(r"([0-9.]+|\[[0-9a-fA-F:.]+\]):[0-9]+")
# A host or table name: "*." a one-label wildcard, "**." one of any depth (table_name).
HOST = re.compile(r"(\*{1,2}\.)?[a-z0-9][a-z0-9\-.]*")
STATUS = re.compile(r"[1-5][0-9][0-9]")


@dataclass(frozen=True)
class State:
    """What the dynamic mode keeps in nginx's shared memory."""

    backends: Mapping[str, tuple[tuple[str, int], ...]]
    """Upstream name -> its ready peers ("ip:port", "[ipv6]:port") with their weights
    (1-100, model.ZONE_WEIGHTS_ANNOTATION); empty: none ready."""
    certificates: Mapping[str, bytes]
    """Certificate key (render.certificate_key) -> PEM chain followed by the key."""
    hosts: Mapping[tuple[str, str], str]
    """(certificate scope, TLS host) -> the key of the certificate it is served with there;
    in a delta, "": none."""
    routes: Mapping[str, tuple[Route, ...]] = dataclasses.field(default_factory=dict)
    """Table host -> its rules (route_table.py); in a delta, no rules: removed."""


EMPTY = State({}, {}, {})


def state_of(model: Model, routes: bool = True) -> State:
    """The dynamic state of a model built with `upstreams_without_endpoints`; `routes`:
    with the route table (`render.Layout.routes_by_table`, on by default as there)."""
    certificates = {
        certificate_key(*key): pair.certificate_pem + pair.key_pem
        for key, pair in model.certificates.items()
    }
    hosts = {
        (certificate_scope(server.addresses), name): certificate_key(*server.certificate)
        for server in model.servers
        if server.https and server.certificate is not None
        for name in (route_table.table_name(server), *server.aliases)
    }
    backends = {upstream.name: upstream.weighted for upstream in model.upstreams}
    table = route_table.route_table(model, route_table.table_hosts(model)) if routes else {}
    return State(backends, certificates, hosts, table)


def delta(old: State, new: State) -> State:
    """What `new` sets differently from `old`. Removals of backends and certificates are
    not in it: what disappears was named by a location, so its removal changes edge.conf,
    and the full push after that reload drops it. A table host's removal changes no byte
    of edge.conf: it is in it, without rules, and so is a host's certificate going away
    (a TLS table host's Secret or `tls:`), with no key."""
    return State(
        {k: v for k, v in new.backends.items() if old.backends.get(k) != v},
        {k: v for k, v in new.certificates.items() if old.certificates.get(k) != v},
        {
            **{k: "" for k in old.hosts.keys() - new.hosts.keys()},
            **{k: v for k, v in new.hosts.items() if old.hosts.get(k) != v},
        },
        {
            **{k: () for k in old.routes.keys() - new.routes.keys()},
            **{k: v for k, v in new.routes.items() if old.routes.get(k) != v},
        },
    )


def is_empty(state: State) -> bool:
    return not (state.backends or state.certificates or state.hosts or state.routes)


def _checked(pattern: re.Pattern[str], value: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"refusing to push {grammar.show(value)}: not a plain value")
    return value


# Lines of backends seen lately: state.txt holds every backend and is written for each
# endpoint change, and checking 50,000 peers again each time cost 0.4 s at 10k Services.
# Room for every line at 100k Services: a cache smaller than the file's lines, which
# state.txt asks for in the same order each time, would miss every time (1.2 s a change).
LINE_CACHE_SIZE = 1 << 18


@functools.lru_cache(maxsize=LINE_CACHE_SIZE)
def _backend_line(name: str, peers: tuple[tuple[str, int], ...]) -> str:
    fields = [f"{_checked(PEER, peer)} {int(weight)}" for peer, weight in peers]
    return " ".join(["backend", _checked(NAME, name), *fields])


# The same for the routes of table hosts, all in state.txt too.
@functools.lru_cache(maxsize=LINE_CACHE_SIZE)
def _route_line(host: str, rules: tuple[Route, ...]) -> str:
    fields = ["route", _checked(HOST, host)]
    if len({rule.tls for rule in rules}) > 1:
        raise ValueError(f"refusing to push {grammar.show(host)}: TLS for some rules only")
    for rule in rules:
        if rule.match not in route_table.TABLE_MATCHES:
            raise ValueError(f"refusing to push the match {grammar.show(rule.match)}")
        grammar.path(rule.path, "Exact")  # the second lock: no `..`, `//`, space or quote
        if rule.redirect and not rule.tls:
            raise ValueError(f"refusing to push {grammar.show(host)}: a redirect without TLS")
        if rule.backend:
            target = _checked(NAME, rule.backend)
        else:
            target = "!" + _checked(STATUS, str(int(rule.status)))
        scheme = ">" if rule.redirect else "+" if rule.tls else ""
        fields += [rule.match, rule.path, scheme + target]
    return " ".join(fields)


def encode(state: State, version: int, full: bool) -> bytes:
    """The text of a push (or of state.txt), in sorted order: same state, same bytes."""
    lines = [FORMAT_LINE, f"version {int(version)}", f"scope {'full' if full else 'delta'}"]
    lines += [_backend_line(name, tuple(peers)) for name, peers in sorted(state.backends.items())]
    for key, pem in sorted(state.certificates.items()):
        lines.append(f"certificate {_checked(NAME, key)} {base64.b64encode(pem).decode()}")
    for (scope, host), key in sorted(state.hosts.items()):
        # "": the default server of a dedicated Gateway's scope (its pair: any other name)
        name = _checked(HOST, host) if host or not scope else ""
        if scope:
            name = f"{_checked(SCOPE, scope)}/{name}"
        fields = ["host", name] + ([_checked(NAME, key)] if key else [])
        lines.append(" ".join(fields))
    lines += [_route_line(host, rules) for host, rules in sorted(state.routes.items())]
    return ("\n".join(lines) + "\n").encode()


def kinds(state: State) -> list[str]:
    """The kinds of update a state carries, for metrics: endpoints, certificates."""
    found = []
    if state.backends:
        found.append("endpoints")
    if state.certificates or state.hosts:
        found.append("certificates")
    if state.routes:
        found.append("routes")
    return found
