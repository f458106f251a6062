"""The nginx directives and maps of a location's Gateway API filters (`model.Filters`)
and timeouts (`Location.timeout_ms`: nginx's connect, send and read timeouts).

A location without choices has one set of filters: its directives say it plainly. A
location whose choices differ in their filters gets one more map, `$edgeagent_a<id>`,
naming the action taken (the index of the first choice that holds, else the number of
choices), and each changed header then reads its value from a map of that action, each
redirect and rewrite sits in `if` on it (only rewrite-module directives, as the nginx
docs ask of `if`). nginx evaluates the maps only for requests that reach the location.

- Request headers: `proxy_set_header`, or `grpc_set_header` in a location of gRPC
  backends (GRPCRoute), as the other directives here (set: the value; add: a map on the
  client's value, which the value follows after a comma; remove: empty, which nginx does
  not send). A
  location that sets any header restates the http-level ones it keeps, since nginx
  inherits none of them then. A header a choice does not change passes the client's
  (first) value, or the edge's own for the forwarded headers.
- Response headers: `proxy_hide_header` for set and remove, `add_header ... always` for
  set and add (and the server's HSTS header again: add_header is not inherited either).
- RequestMirror (`Location.mirrors`): `mirror` to an internal location per upstream.
- RequestRedirect: `rewrite ... redirect` (302) or `permanent` (301), which keeps the
  query and escapes what it copies from the path; 303, 307 and 308, which `rewrite` cannot
  answer, ride on one of those two (`redirect_carriers`) and `error_page <carrier> =<code>
  $sent_http_location` answers the code asked with the Location the rewrite made (a
  `return` would copy the decoded path unescaped). URLRewrite: `rewrite ... break` and,
  for the hostname, the Host header.

Every value passes the grammar again here (the second lock, as render's `token`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from edgeagent import grammar
from edgeagent.model import NO_FILTERS, Filters, HeaderChange, Location, PathChange, Redirect

# What the edge sends every backend (edge.conf's http level writes them from here too).
FORWARDED_HEADERS = (
    ("Host", "$host"),
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$edgeagent_forwarded_for"),
    ("X-Forwarded-Proto", "$scheme"),
    ("X-Forwarded-Host", "$host"),
    ("X-Forwarded-Port", "$server_port"),
    ("Upgrade", "$http_upgrade"),
    ("Connection", "$edgeagent_connection"),
)
# What the edge sends every gRPC backend (the grpc module sets Host and TE itself; edge.conf's
# http level writes them from here too).
GRPC_FORWARDED_HEADERS = (
    ("X-Real-IP", "$remote_addr"),
    ("X-Forwarded-For", "$edgeagent_forwarded_for"),
    ("X-Forwarded-Proto", "$scheme"),
    ("X-Forwarded-Host", "$host"),
    ("X-Forwarded-Port", "$server_port"),
)
GRPC_PROTOCOLS = ("GRPC", "GRPCS")
WELL_KNOWN_PORTS = {"http": 80, "https": 443}
# The internal locations of RequestMirror filters: under a path of its own (a route's
# location of the same path would be shadowed, and answer 404: they are internal).
MIRROR_PREFIX = "/_edgeagent/mirror/"
UPSTREAM = re.compile(r"[A-Za-z0-9._-]+")
MIRROR_UPSTREAM = """\
upstream {name} {{
    server 0.0.0.1:1;  # never used: balancer_by_lua picks every peer
    balancer_by_lua_block {{
        require("edgeagent_balancer").balance("{upstream}")
    }}
}}"""
# The share of requests a RequestMirror copies, drawn on the random request id.
MIRROR_DRAW = """\
split_clients "${{request_id}}" {variable} {{
    {share}% 1;
    * "";
}}"""
SHARE = re.compile(r"[0-9]{1,2}\.[0-9]{2}")
REDIRECT_FLAGS = {301: "permanent", 302: "redirect"}
IN_LOCATION = " " * 8
IN_IF = " " * 12


@dataclass(frozen=True)
class Directives:
    maps: list[str] = field(default_factory=list)
    """Map blocks, written before the server block with its choice maps."""
    headers: list[str] = field(default_factory=list)
    """Header directives of the location."""
    redirects: list[str] = field(default_factory=list)
    """Lines answering a redirect: before anything else of the rewrite module."""
    rewrites: list[str] = field(default_factory=list)
    """Lines rewriting the request: last of the rewrite module (`break` stops it)."""
    mirror_locations: list[str] = field(default_factory=list)
    """The internal locations the location's `mirror` lines name, in the server block."""
    upstreams: list[str] = field(default_factory=list)
    """Upstream blocks those internal locations proxy to (dynamic mode), before the server
    block."""


NONE = Directives()
"""Those of a location without filters (shared: nothing adds to it)."""


def redirect_carriers(codes: set[int]) -> dict[int, int] | None:
    """The status of `rewrite` (a key of REDIRECT_FLAGS) that carries each redirect code
    of one location; None when the location has more codes than carriers."""
    if len(codes) > len(REDIRECT_FLAGS):
        return None
    carriers = {code: code for code in codes if code in REDIRECT_FLAGS}
    free = [carrier for carrier in REDIRECT_FLAGS if carrier not in carriers]
    for code in sorted(codes - set(REDIRECT_FLAGS)):
        carriers[code] = free.pop(0)
    return carriers


def redirect_codes(location: Location) -> set[int]:
    return {f.redirect.code for f in actions(location) if f.redirect is not None}


def actions(location: Location) -> list[Filters]:
    """The filters of each choice, then the location's own."""
    return [choice.filters for choice in location.choices] + [location.filters]


def chooses_filters(location: Location) -> bool:
    """Whether the filters depend on which choice holds (the action map is needed)."""
    return bool(location.choices) and any(f != NO_FILTERS for f in actions(location))


def has_filters(location: Location) -> bool:
    """Whether the location has anything for this module to write (filters or timeouts)."""
    return (
        location.timeout_ms is not None
        or bool(location.mirrors)
        or any(f != NO_FILTERS for f in actions(location))
    )


def _quoted(value: str) -> str:
    return '"' + grammar.header_value(value, "header value") + '"'


def _name(value: str) -> str:
    return grammar.header_name(value, "header name")


def _variable_part(name: str) -> str:
    return name.lower().replace("-", "_")


def _regex(path: str) -> str:
    """A path from the grammar as a regex matching it literally."""
    return re.sub(r"([.*+])", r"\\\1", grammar.path(path, "Exact", "path"))


class _Writer:
    def __init__(self, chosen_id: str, location: Location, hsts: str | None, dynamic: bool):
        self.id = chosen_id
        self.location = location
        self.hsts = hsts
        self.dynamic = dynamic
        self.actions = actions(location)
        self.chooses = chooses_filters(location)
        self.out = Directives()
        grpc = location.settings.backend_protocol in GRPC_PROTOCOLS
        self.module = "grpc" if grpc else "proxy"
        """The module that proxies: its directives' prefix."""
        self.forwarded = GRPC_FORWARDED_HEADERS if grpc else FORWARDED_HEADERS

    @property
    def action_variable(self) -> str:
        return f"$edgeagent_a{self.id}"

    def write(self) -> Directives:
        if self.chooses:
            self._action_map()
        self._timeouts()
        request_headers = len(self.out.headers)
        self._request_headers()
        self._mirrors(self.out.headers[request_headers:])
        self._response_headers()
        carriers = redirect_carriers(redirect_codes(self.location))
        if carriers is None:  # gateway.routing keeps each location within the carriers
            raise ValueError(f"location {self.location.path}: more redirect codes than carriers")
        for code, carrier in sorted(carriers.items()):
            if code != carrier:
                line = f"error_page {carrier:d} ={code:d} $sent_http_location;"
                self.out.redirects.append(IN_LOCATION + line)
        for index, filters in enumerate(self.actions):
            if filters.redirect is not None:
                redirect = self._redirect(index, filters.redirect, carriers[filters.redirect.code])
                self._guarded(index, self.out.redirects, redirect)
            lines = []
            if filters.rewrite_path is not None:
                lines = self._path_rewrite(filters.rewrite_path)
            self._guarded(index, self.out.rewrites, lines)
        return self.out

    def _guarded(self, index: int, target: list[str], lines: list[str]) -> None:
        if not lines:
            return
        if not self.chooses:
            target.extend(IN_LOCATION + line for line in lines)
            return
        target.append(f'{IN_LOCATION}if ({self.action_variable} = "{index}") {{')
        target.extend(IN_IF + line for line in lines)
        target.append(f"{IN_LOCATION}}}")

    def _map(self, source: str, variable: str, entries: list[tuple[str, str]], default: str):
        lines = [f"map {source} {variable} {{"]
        lines += [f"    {key} {value};" for key, value in entries]
        lines.append(f"    default {default};")
        lines.append("}")
        self.out.maps.append("\n".join(lines))

    def _action_map(self) -> None:
        conditions = "".join(
            f"${{edgeagent_c{self.id}_{i}}}" for i in range(len(self.location.choices))
        )
        entries = [(f"~^{'0' * i}1", f'"{i}"') for i in range(len(self.location.choices))]
        default = f'"{len(self.location.choices)}"'
        self._map(f'"{conditions}"', self.action_variable, entries, default)

    def _touched(self, which: str) -> dict[str, str]:
        names: dict[str, str] = {}
        for filters in self.actions:
            for change in getattr(filters, which):
                names.setdefault(change.name.lower(), _name(change.name))
            if which == "request_headers" and filters.rewrite_host is not None:
                names.setdefault("host", "Host")
        return names

    @staticmethod
    def _change(filters: Filters, which: str, lower: str) -> HeaderChange | None:
        return next((c for c in getattr(filters, which) if c.name.lower() == lower), None)

    def _appended(self, key: str, source: str, value: str) -> str:
        """A variable holding `source`'s value with `value` after a comma (or alone)."""
        variable = f"$edgeagent_a{self.id}_{key}"
        joined = '"${' + source[1:] + "}," + _quoted(value)[1:]
        self._map(source, variable, [('""', _quoted(value))], joined)
        return variable

    def _chosen(self, key: str, per_action: list[str | None], default: str) -> str:
        """One value for every action: a literal, or a map of the action variable."""
        if not self.chooses:
            return per_action[-1] if per_action[-1] is not None else default
        entries = [(f'"{i}"', v) for i, v in enumerate(per_action) if v is not None]
        variable = f"$edgeagent_a{self.id}_{key}"
        self._map(self.action_variable, variable, entries, default)
        return variable

    def _mirrors(self, request_headers: list[str]) -> None:
        """`mirror` to an internal location per upstream, which sends the request as
        the client sent it, with the location's request headers. nginx's `mirror` copies
        every request: a share of them (`percent`, `fraction`) is drawn in the internal
        location, which answers the copies not drawn itself, without a connection."""
        for k, target in enumerate(self.location.mirrors):
            upstream = target.upstream
            if not UPSTREAM.fullmatch(upstream):
                raise ValueError(f"refusing to render {grammar.show(upstream)}: not an upstream")
            uri = f"{MIRROR_PREFIX}{self.id}/{k}"
            self.out.headers.append(f"{IN_LOCATION}mirror {uri};")
            lines = [f"    location = {uri} {{", f"{IN_LOCATION}internal;"]
            if target.share is not None:
                drawn = f"$edgeagent_mirror_{self.id}_{k}_drawn"
                if not SHARE.fullmatch(target.share):
                    raise ValueError(f"refusing to render {grammar.show(target.share)}: no share")
                self.out.maps.append(MIRROR_DRAW.format(variable=drawn, share=target.share))
                lines += [f'{IN_LOCATION}if ({drawn} = "") {{', f"{IN_IF}return 204;", "        }"]
            lines += request_headers
            if self.dynamic:
                # A mirror subrequest shares the variables of the request it copies: setting
                # $edgeagent_backend here would send the client's request (its body read
                # later, or a retry) to the mirror. An upstream of its own names the backend
                # to the Lua balancer instead.
                name = f"edgeagent_mirror_{self.id}_{k}"
                self.out.upstreams.append(MIRROR_UPSTREAM.format(name=name, upstream=upstream))
                lines.append(f"{IN_LOCATION}proxy_pass http://{name}$request_uri;")
            else:
                lines.append(f"{IN_LOCATION}proxy_pass http://{upstream}$request_uri;")
            lines.append("    }")
            self.out.mirror_locations.append("\n".join(lines))

    def _timeouts(self) -> None:
        timeout = self.location.timeout_ms
        if timeout is None:
            return
        written = f"{timeout:d}ms" if timeout else f"{grammar.SECONDS_MAX:d}s"  # 0: off
        for wait in ("connect", "send", "read"):
            self.out.headers.append(f"{IN_LOCATION}{self.module}_{wait}_timeout {written};")

    def _request_headers(self) -> None:
        touched = self._touched("request_headers")
        if not touched:
            return
        headers = self.out.headers
        for name, value in self.forwarded:
            if name.lower() not in touched:
                headers.append(f"{IN_LOCATION}{self.module}_set_header {name} {value};")
        for k, (lower, name) in enumerate(touched.items()):
            client = f"$http_{_variable_part(lower)}"
            per_action = []
            for i, filters in enumerate(self.actions):
                change = self._change(filters, "request_headers", lower)
                if change is None and lower == "host" and filters.rewrite_host is not None:
                    per_action.append(f'"{grammar.host(filters.rewrite_host)}"')
                elif change is None:
                    per_action.append(None)
                elif change.value is None:
                    per_action.append('""')
                elif change.append:
                    per_action.append(self._appended(f"q{k}_{i}", client, change.value))
                else:
                    per_action.append(_quoted(change.value))
            forwarded = {each.lower(): value for each, value in self.forwarded}
            value = self._chosen(f"q{k}", per_action, forwarded.get(lower, client))
            headers.append(f"{IN_LOCATION}{self.module}_set_header {name} {value};")

    def _response_headers(self) -> None:
        touched = self._touched("response_headers")
        added = False
        for k, (lower, name) in enumerate(touched.items()):
            upstream = f"$upstream_http_{_variable_part(lower)}"
            changes = [self._change(f, "response_headers", lower) for f in self.actions]
            hidden = any(c is not None and not c.append for c in changes)
            if hidden:
                self.out.headers.append(f"{IN_LOCATION}{self.module}_hide_header {name};")
            per_action = []
            for i, change in enumerate(changes):
                if change is None:
                    per_action.append(None)
                elif change.value is None:
                    per_action.append('""')
                elif change.append and hidden:
                    per_action.append(self._appended(f"s{k}_{i}", upstream, change.value))
                else:
                    per_action.append(_quoted(change.value))
            value = self._chosen(f"s{k}", per_action, upstream if hidden else '""')
            if value != '""':
                self.out.headers.append(f"{IN_LOCATION}add_header {name} {value} always;")
                added = True
        if added and self.hsts is not None:
            self.out.headers.append(
                f"{IN_LOCATION}add_header Strict-Transport-Security {self.hsts} always;"
            )

    def _redirect(self, index: int, redirect: Redirect, carrier: int) -> list[str]:
        if redirect.scheme is not None:
            scheme = redirect.scheme
            port = redirect.ports[redirect.scheme == "https"]
            suffix = "" if port == WELL_KNOWN_PORTS[scheme] else f":{port:d}"
        else:
            scheme = "$scheme"
            suffixes = [
                "" if port == WELL_KNOWN_PORTS[each] else f":{port:d}"
                for each, port in zip(("http", "https"), redirect.ports, strict=True)
            ]
            if suffixes[0] == suffixes[1]:
                suffix = suffixes[0]
            else:
                suffix = f"$edgeagent_a{self.id}_port{index}"
                entries = [("http", f'"{suffixes[0]}"'), ("https", f'"{suffixes[1]}"')]
                self._map("$scheme", suffix, entries, '""')
        host = grammar.host(redirect.hostname) if redirect.hostname else "$host"
        origin = f"{scheme}://{host}{suffix}"
        flag = REDIRECT_FLAGS[carrier]
        if redirect.path is None:
            return [f'rewrite "^(.*)$" "{origin}$1" {flag};']
        return [
            f'rewrite "{regex}" "{origin}{target}" {flag};'
            for regex, target in self._path_changes(redirect.path)
        ]

    def _path_rewrite(self, change: PathChange) -> list[str]:
        pairs = self._path_changes(change)
        return [f'rewrite "{regex}" "{target}" break;' for regex, target in pairs]

    def _path_changes(self, change: PathChange) -> list[tuple[str, str]]:
        """(regex, replacement) pairs, tried in order, that make the new path: the whole
        path, or the matched prefix (whole path elements) replaced. A replacement ending
        in "/" does not double the "/" that the rest of the path starts with. Only those
        a request of this location can match: an exact location has one path, a prefix
        location's paths are longer than the prefix."""
        value = grammar.path(change.value, "Exact", "path")
        if change.full:
            return [("^", value)]
        prefix = "" if change.prefix == "/" else _regex(change.prefix)
        rest = (f"^{prefix}(/.*)$", f"{value.rstrip('/')}$1")
        if not prefix:
            return [rest]
        alone = (f"^{prefix}$", value)
        if self.location.match != "exact":
            return [rest]
        return [alone] if self.location.path == change.prefix else [rest]


def directives(
    chosen_id: str, location: Location, hsts: str | None, dynamic: bool = False
) -> Directives:
    """The maps and directives of a location's filters; `hsts` the server's
    Strict-Transport-Security value to restate, None when it sends none; `dynamic`: the
    dynamic mode's proxying (render.py)."""
    if not has_filters(location):
        return NONE
    return _Writer(chosen_id, location, hsts, dynamic).write()
