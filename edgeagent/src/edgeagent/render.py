"""Pure core, part 2: routing model in, nginx configuration bytes out. No I/O.

Contract (the daemon and the CLI both call this; keep it stable):

- `Layout`: where the files will live and what nginx listens on.
- `render(model, layout) -> Rendered`: `.files` maps relative paths to bytes, sorted:
  `edge.conf` (http-level: upstreams, the default server, one server per host, the
  loopback status server), `stream.conf` (top level: the stream module's servers of TLS
  passthrough, none without --enable-ssl-passthrough; render_stream.py) and
  `certs/<namespace>_<secret>.pem` (certificate chain then private key; write them mode
  0600; `certificate_file` shortens very long names).
  `.generation` is the hash the status server answers at `GET /edgeagent/generation`.
  `.blocks` is edge.conf cut into its independent parts (the http-level settings, each
  upstream, the default server, each host's server) with a fingerprint each, so that
  apply.py can tell which parts changed since the generation that serves and validate
  only those. Same model and layout, same bytes.
- `render_main(layout) -> bytes`: the standalone main `nginx.conf` of `edgeagent render`,
  run with `nginx -p DIR -c nginx.conf` by any user.

Dynamic mode (`Layout.dynamic_dir` set; docs/dynamic.md). edge.conf holds the structure
only: every location that proxies sets `$edgeagent_backend` to its backend's name and
proxies to the one upstream `edgeagent_dynamic`, whose Lua balancer takes the peers from
shared memory; certificate lines point at `<dynamic_dir>/certs/`, which the agent keeps
current, and `ssl_certificate_by_lua` serves the pairs pushed since. No peer and no
certificate byte is part of edge.conf or of the generation hash, so endpoint and
certificate changes render the same bytes: no new generation, no reload. What they
change travels as `edgeagent.dynamic.State`. With `Layout.route_table`, the hosts of
`route_table.table_hosts` get no server block either: the default server routes them from
the state's route table (lua/edgeagent_routes.lua), so they change no byte of edge.conf.

The generation is the first 16 hex digits of SHA-256 over the body of edge.conf (all of it
but the first line, which names the generation, and the status server block at the end)
followed by every certificate file as `path NUL bytes` in path order, and with
--enable-ssl-passthrough by `stream.conf NUL bytes` (off, stream.conf is the same text for
every model). It is computed before `{generation}` in `Layout.output_dir` is replaced, so
a daemon can name the directory of a generation after it:
`output_dir="/etc/nginx/edgeagent/gen-{generation}"`.

edge.conf sets, at http level, the proxy headers and HTTP version, the server-names hash
sizes and `$edgeagent_*` maps (see templates/edge.conf.j2): the main configuration that
includes it must not set those, and must set `server_tokens off` itself.
"""

import functools
import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import NamedTuple

import jinja2

from edgeagent import (
    annotations,
    grammar,
    render_filters,
    render_stream,
    request_counts,
    route_table,
)
from edgeagent.annotations import (
    balance,
    basicauth,
    clientcert,
    cors,
    customheaders,
    errorpages,
    extauth,
    mirror,
    proxyssl,
    ratelimit,
    sslciphers,
)
from edgeagent.backends import check_networks, network
from edgeagent.gateway.options import ADDRESS_MODES, DEDICATED, SHARED
from edgeagent.model import (
    NO_SETTINGS,
    Location,
    Model,
    Server,
    Upstream,
    redirects_to_https,
)

GENERATION_PLACEHOLDER = "{generation}"
HTTP_BLOCK = "http"
DEFAULT_SERVER_BLOCK = "server _"
STATUS_BLOCK = "status"
PRIVATE_DIRS = ("certs/", "auth/")
# What any value from the model may look like when it reaches a template: the path and
# host grammar, endpoint brackets, nothing nginx would read as syntax.
TOKEN = re.compile(r"[A-Za-z0-9\-._~/!*+,=:@&\[\]]+")
# What a Gateway API match compares (the scheme, the method, a header, a query parameter).
MATCH_VARIABLE = re.compile(
    r"\$(request_method|scheme|http_[a-z0-9_]+|arg_[A-Za-z0-9_]+|edgeagent_canary_[0-9a-f]{12})"
)
# A one-label wildcard as an nginx regex server name, e.g. ~^[^.]+\.example\.com$
WILDCARD_SERVER_NAME = re.compile(r"~\^(\[\^\.\]|\.)\+(\\\.[a-z0-9-]+)+\$")
# File names stay well under NAME_MAX (255) even with a temporary prefix and suffix.
CERTIFICATE_NAME_MAX = 200
# nginx builds its server-names hash by trying table sizes up to this maximum; room for
# 16 slots per name lets the first size it tries fit, so a 10k-host config does not
# search (measured 4.3 s -> 2.6 s for `nginx -t` at 10k hosts). The maximum is rounded up
# to a power of two so that it changes rarely: it is part of the http block, and a
# changed http block costs a full validation (apply.py).
NAMES_HASH_SLOTS_PER_NAME = 16
NAMES_HASH_MIN = 1024
# A bucket must hold at least one name: the name, 2 bytes, a pointer, and the bucket's
# end marker (ngx_hash.c), so hosts of up to 253 characters need 512-byte buckets.
NAMES_HASH_BUCKET_MIN = 128
NAMES_HASH_ENTRY_OVERHEAD = 2 + 8 + 8


@dataclass(frozen=True)
class Layout:
    """Where a generation lives and what nginx listens on. Every field is checked by
    `render` (plain tokens only) before it reaches a template."""

    listen_http: str
    """nginx HTTP listen address, ADDR:PORT (edge nodes: 0.0.0.0:80)."""
    listen_https: str
    """nginx HTTPS listen address, ADDR:PORT (edge nodes: 0.0.0.0:443)."""
    output_dir: str
    """Absolute directory the files will be written to; certificate paths inside edge.conf
    point into it. May contain "{generation}", replaced by the generation hash."""
    default_certificate: str
    """Absolute path of the certificate for hosts without a usable Secret of their own."""
    default_key: str
    """Absolute path of its private key (may be the same file as the certificate)."""
    status_listen: str = "127.0.0.1:10246"
    """Loopback address of the status server (GET /edgeagent/generation, GET /healthz)."""
    worker_processes: int = 1
    """Standalone main config only: nginx worker processes (a preview needs one)."""
    dynamic_dir: str | None = None
    """Dynamic mode: the agent's directory of control.token, state.txt and certs/ (see
    the module docstring). None: static upstreams and certificates in the generation."""
    lua_dir: str | None = None
    """Dynamic mode: the directory of edgeagent's Lua modules (`lua_package_path`)."""
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs of the load balancers in front whose X-Forwarded-For (or PROXY protocol
    header) names the client (realip module); empty: the TCP peer is the client."""
    proxy_protocol: bool = False
    """The listeners expect a PROXY protocol header; needs `trusted_proxies`."""
    gateway_addresses: tuple[str, ...] = ()
    """`--gateway-address`: the addresses a Gateway's servers listen on, with the ports
    of `listen_http` and `listen_https`; empty: the listen addresses, as any server."""
    gateway_address_mode: str = SHARED
    """`--gateway-address-mode`: with "dedicated", a Gateway's servers listen on its own
    addresses (`Server.addresses`), and no other server on any of `gateway_addresses`."""
    auth_hop_http_listen: str = "127.0.0.1:10270"
    """Loopback address where the servers of hosts whose auth-url names the request's host
    (`https://$host/...`, annotations/extauth.py) take that subrequest over plain HTTP."""
    auth_hop_https_listen: str = "127.0.0.1:10271"
    """The same over TLS, for such an `https://` auth-url."""
    ssl_passthrough_listen: str = "127.0.0.1:442"
    """With --enable-ssl-passthrough: the loopback address the HTTPS servers listen on
    behind the stream module, which holds `listen_https` (ingress-nginx's
    `--ssl-passthrough-proxy-port`, 442)."""
    ssl_passthrough_backend_listen: str = "127.0.0.1:441"
    """With --enable-ssl-passthrough: the loopback address of the stream module's hop to
    the passed-through backends (passthrough.py)."""
    route_table: bool = True
    """Dynamic mode: the hosts of route_table.py get no server block; the default server
    routes them from the pushed route table, so they change without a reload."""
    served_by_header: bool = False
    """`--served-by-header`: the route table's location adds X-Edge-Node (the main
    configuration's diagnostic header, which the default server does not inherit)."""
    listen_ipv6: bool = False
    """`--listen-ipv6`: also listen on every IPv6 address (`[::]`) at the ports of
    `listen_http` and `listen_https`, for the IPv6 VIPs; nginx's `*` is IPv4 only."""
    request_series_max: int = request_counts.SERIES_MAX
    """Dynamic mode: the request counters' bound on label sets (request_counts.py)."""

    @property
    def dynamic(self) -> bool:
        return self.dynamic_dir is not None

    @property
    def routes_by_table(self) -> bool:
        return self.dynamic and self.route_table

    def ipv6_listen(self, listen: str) -> str | None:
        """`[::]:PORT` beside the listen address `listen` with `listen_ipv6`, unless that one
        is IPv6 already; else None."""
        if not self.listen_ipv6 or listen.startswith("["):
            return None
        return f"[::]:{listen.rpartition(':')[2]}"


class Block(NamedTuple):
    """One independent part of edge.conf, as written into it. (A named tuple: 20,000 of
    them are made per render at 10k Ingresses, and a frozen dataclass is slower to make.)"""

    text: str
    fingerprint: str
    """Equal fingerprints (of blocks with the same id, in two generations): the same text
    but for the generation's directory, and the same certificate bytes loaded. It is the
    text itself, plus a digest of the certificate files for a server that has any."""
    upstreams: frozenset[str] = frozenset()
    """The upstreams a server proxies to (empty for other blocks)."""


@dataclass(frozen=True)
class Rendered:
    """The files of one generation, its hash, and the directory they belong in."""

    files: dict[str, bytes]
    generation: str
    output_dir: str
    blocks: dict[str, Block]
    """edge.conf but for its header line, cut into blocks, in order:
    `HTTP_BLOCK` (maps and settings every server inherits), `upstream NAME` for each
    upstream, `DEFAULT_SERVER_BLOCK`, `server HOST` for each host (each server block
    preceded by the maps of its Gateway API matches, which only it reads), and `STATUS_BLOCK`
    (the status server, whose fingerprint changes with every generation). A server
    depends only on the http block, its upstreams and its certificate files, and each
    name is unique, so apply.py can validate the blocks that changed without the others."""


def choice_id(site: str, location: Location) -> str:
    """The name part of a location's choice maps: unique per server (`Server.site`) and
    location."""
    key = f"{site}\0{location.match}\0{location.path}".encode()
    return hashlib.blake2s(key, digest_size=6).hexdigest()


def hsts_variable(server: Server) -> str:
    """The Strict-Transport-Security value an HTTPS server sends (edge.conf's maps)."""
    return "$edgeagent_hsts" if server.host else "$edgeagent_hsts_unpinned"


def location_filters(
    server: Server, location: Location, dynamic: bool
) -> render_filters.Directives:
    """The directives of a location's Gateway API filters (render_filters)."""
    if not render_filters.has_filters(location):
        return render_filters.NONE
    hsts = hsts_variable(server) if server.https else None
    return render_filters.directives(choice_id(server.site, location), location, hsts, dynamic)


# An nginx variable a Gateway API match reads (model.Choice); nothing else.
variable = grammar.second_lock(MATCH_VARIABLE, "a match variable")
# An upstream-hash-by key: nginx variables and plain text of its grammar only.
hash_key = grammar.second_lock(balance.HASH_KEY, "a hash key")
# Any value written as a plain nginx token.
token = grammar.second_lock(TOKEN, "a plain nginx token")


def regex_path(value: object) -> str:
    """A regex location's path, written inside double quotes: refused unless it is in the
    grammar (no quote, and backslashes only where nginx keeps them as they are)."""
    text = str(value)
    if not (grammar.REGEX_PATH.fullmatch(text) and grammar.is_regex(text)):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a safe regex path")
    return text


rewrite_target = grammar.second_lock(grammar.REWRITE_TARGET, "a rewrite target")


def regex_value(value: object) -> str:
    """A Gateway API RegularExpression header or parameter value, written inside double
    quotes: refused unless it is in the grammar (as `regex_path`)."""
    text = str(value)
    if not (grammar.REGEX_VALUE.fullmatch(text) and grammar.is_regex(text)):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a safe regex value")
    return text


def redirect_url(value: object) -> str:
    text = str(value)
    if not (text and grammar.REDIRECT_URL.fullmatch(text)):
        raise ValueError(f"refusing to render {grammar.show(text)}: not a redirect URL")
    return text


def backend_tls_pool(location: Location) -> str | None:
    """The keep-alive pool of the location's usable backend TLS policy (proxyssl.py), if
    any: the static mode's upstream variant ends with it, the dynamic mode names an
    upstream after it."""
    policy = location.settings.backend_tls
    return policy.pool if policy is not None and policy.ca is not None else None


def rewrite_of(location: Location) -> str | None:
    """The target a regex location rewrites its request to, if any (ingress-nginx: not
    when the target is the path itself)."""
    target = location.settings.rewrite_target
    if location.match != "regex" or target is None or target == location.path:
        return None
    return target


def server_name(host: str, any_depth: bool = False, regex_name: bool = False) -> str:
    """Exact hosts as they are; `*.example.com` as a regex matching exactly one label, so
    `a.example.com` matches but `b.a.example.com` and `example.com` do not (nginx's own
    `*.` form matches any number of labels, which is what `any_depth` asks for: the
    Gateway API's wildcards; as a regex of one label or more with `regex_name`, see
    `in_name_order`). Exact names win over all of them in nginx."""
    if not host.startswith("*."):
        return token(host)
    if any_depth and not regex_name:
        return "*." + token(host[2:])
    labels = "~^.+" if any_depth else "~^[^.]+"
    regex = labels + re.escape("." + token(host[2:])) + "$"
    if not WILDCARD_SERVER_NAME.fullmatch(regex):
        raise ValueError(f"refusing to render wildcard host {grammar.show(host)}")
    return regex


def in_name_order(servers: list[Server]) -> list[Server]:
    """`servers` as edge.conf writes them: nginx tries exact names, then the longest `*.`
    name, then regexes in the order of the configuration. The one-label wildcards'
    regexes (an Ingress's) match names of one depth each, so no two of them match one
    name; the any-depth ones made regexes (`Server.regex_name`) come after them, the
    longest suffix first: among the wildcards matching a name, the longest suffix wins."""
    regexes = [server for server in servers if server.regex_name]
    if not regexes:
        return servers
    others = [server for server in servers if not server.regex_name]
    return others + sorted(regexes, key=lambda server: (-len(server.host), server.host))


def hsts_value(model: Model) -> str:
    """The Strict-Transport-Security value for HTTPS answers of TLS hosts ("": none)."""
    config = model.annotations
    if not config.hsts:
        return ""
    value = f"max-age={int(config.hsts_max_age)}"
    if config.hsts_include_subdomains:
        value += "; includeSubDomains"
    if config.hsts_preload:
        value += "; preload"
    return value


@functools.cache
def _environment() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("edgeagent", "templates"),
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    environment.filters["token"] = token
    environment.filters["variable"] = variable
    environment.globals["choice_id"] = choice_id
    environment.globals["certificate_scope"] = certificate_scope
    environment.globals["routes_dict_mb"] = route_table.ROUTES_DICT_MB
    environment.globals["forwarded_headers"] = render_filters.FORWARDED_HEADERS
    environment.globals["grpc_forwarded_headers"] = render_filters.GRPC_FORWARDED_HEADERS
    environment.globals["has_filters"] = render_filters.has_filters
    environment.globals["location_filters"] = location_filters
    environment.globals["hsts_variable"] = hsts_variable
    environment.filters["server_name"] = server_name
    environment.filters["regex_path"] = regex_path
    environment.filters["regex_value"] = regex_value
    environment.filters["rewrite_target"] = rewrite_target
    environment.filters["redirect_url"] = redirect_url
    environment.filters["hash_key"] = hash_key
    environment.filters["regex_literal"] = annotations.canary.regex_literal
    environment.filters["canary_pattern"] = annotations.canary.pattern_text
    environment.filters["cors_origin_regex"] = cors.origin_regex
    environment.globals["cors_policies"] = cors.policies
    environment.globals["cors_id"] = cors.policy_id
    environment.globals["cors_values"] = cors.header_values
    environment.globals["cors_headers"] = cors.HEADER_NAMES
    environment.globals["auth_policies"] = extauth.policies
    environment.globals["auth_unreachable"] = extauth.unreachable
    environment.globals["auth_upstream_name"] = extauth.upstream_name
    environment.filters["auth_url"] = extauth.render_url
    environment.filters["auth_uri"] = extauth.render_uri
    environment.filters["auth_host"] = extauth.render_host
    environment.filters["auth_value"] = extauth.render_value
    environment.filters["auth_signin"] = extauth.render_signin
    environment.filters["auth_hop_scheme"] = extauth.render_hop_scheme
    environment.globals["auth_hops_to"] = extauth.hops_to
    environment.globals["auth_escaped_variable"] = extauth.ESCAPED_VARIABLE
    environment.filters["auth_header_variable"] = extauth.render_header_variable
    environment.filters["quoted_realm"] = basicauth.render_realm
    environment.filters["match_cn"] = clientcert.render_match_cn
    environment.filters["ssl_ciphers"] = sslciphers.render_ciphers
    environment.globals["mirror_locations"] = mirror.locations
    environment.globals["mirrors"] = mirror.mirrors
    environment.globals["mirror_upstream_name"] = mirror.upstream_name
    environment.filters["mirror_uri"] = mirror.render_uri
    environment.filters["mirror_host"] = mirror.render_host
    environment.filters["mirror_address"] = mirror.render_address
    environment.filters["custom_header_name"] = customheaders.render_name
    environment.filters["custom_header_value"] = customheaders.render_value
    return environment


def check_layout(layout: Layout, ssl_passthrough: bool = False) -> None:
    """Raise `grammar.Invalid` for a layout nginx cannot serve; `ssl_passthrough`: with
    --enable-ssl-passthrough."""
    grammar.listen(layout.listen_http, "listen_http")
    grammar.listen(layout.listen_https, "listen_https")
    grammar.listen(layout.status_listen, "status_listen")
    extauth.check_hop_listens(layout)
    grammar.file_path(layout.output_dir.replace(GENERATION_PLACEHOLDER, "g"), "output_dir")
    grammar.file_path(layout.default_certificate, "default_certificate")
    grammar.file_path(layout.default_key, "default_key")
    if layout.dynamic_dir is not None or layout.lua_dir is not None:
        grammar.file_path(layout.dynamic_dir, "dynamic_dir")
        grammar.file_path(layout.lua_dir, "lua_dir")
    check_networks(layout.trusted_proxies, "trusted_proxies")
    grammar.bind_addresses(layout.gateway_addresses, "gateway_addresses")
    if layout.gateway_address_mode not in ADDRESS_MODES:
        raise grammar.Invalid(f"gateway_address_mode: one of {', '.join(ADDRESS_MODES)}")
    if layout.gateway_address_mode == DEDICATED:
        _check_dedicated_pool(layout)
    if layout.proxy_protocol and not layout.trusted_proxies:
        # Nobody's header would be read: every client would be the load balancer.
        raise grammar.Invalid("proxy_protocol needs trusted_proxies, the balancers that send it")
    if ssl_passthrough:
        render_stream.check_layout(layout)


def _check_dedicated_pool(layout: Layout) -> None:
    """A dedicated Gateway's default server listens on its address as `default_server`: on
    an address the edge's own servers listen on too, nginx would refuse the whole
    configuration (a duplicate default server)."""
    for name in ("listen_http", "listen_https"):
        address = getattr(layout, name).rpartition(":")[0].strip("[]")
        if address != "*" and str(ipaddress.ip_address(address)) in layout.gateway_addresses:
            raise grammar.Invalid(
                f"gateway_addresses {address}: {name} listens there too; with "
                "gateway_address_mode dedicated the pool's addresses are the Gateways' own"
            )


def _listen(address: str, layout: Layout) -> str:
    return f"{address} proxy_protocol" if layout.proxy_protocol else address


def listens(layout: Layout, listen: str, server: Server) -> list[str]:
    """The listen lines' addresses of `server` on `listen`'s port. A Gateway's server
    listens on the gateway addresses only; any other server also on those, because nginx
    gives a connection to one of the servers of its exact address when one names it. A
    dedicated Gateway's server (`Server.addresses`) listens on its own addresses only, and
    then no other server on the gateway addresses."""
    port = listen.rpartition(":")[2]

    def on(address: str) -> str:
        return _listen(f"[{address}]:{port}" if ":" in address else f"{address}:{port}", layout)

    if server.addresses:
        return [on(a) for a in server.addresses]
    shared = layout.gateway_address_mode == SHARED
    bound = [on(a) for a in layout.gateway_addresses] if shared else []
    if server.gateway and bound:
        return bound
    own = [_listen(address, layout) for address in (listen, layout.ipv6_listen(listen)) if address]
    return [*own, *(each for each in bound if each not in own)]


def is_private(relative: str) -> bool:
    """Whether a file of `Rendered.files` holds a secret (a key, password hashes): written
    readable by its owner and nginx's group only."""
    return relative.startswith(PRIVATE_DIRS)


def certificate_file(namespace: str, secret: str) -> str:
    """The relative path of a Secret's PEM file inside a generation: `<ns>_<name>.pem`.

    A namespace (63) and a Secret name (253) can exceed a file name's 255 bytes; such names
    are cut and made unique again with a digest of the whole.
    """
    name = f"{namespace}_{secret}"
    if len(name) > CERTIFICATE_NAME_MAX:
        digest = hashlib.sha256(f"{namespace}/{secret}".encode()).hexdigest()[:16]
        name = f"{name[: CERTIFICATE_NAME_MAX - len(digest) - 1]}-{digest}"
    return f"certs/{name}.pem"


def certificate_key(namespace: str, secret: str) -> str:
    """The name of a Secret's pair in the dynamic state: its file name without `.pem`."""
    return certificate_file(namespace, secret)[len("certs/") : -len(".pem")]


def certificate_scope(addresses: tuple[str, ...]) -> str:
    """The dynamic mode's certificate scope of a server on `addresses` (`Server.addresses`):
    "" for the edge's own, else the first of a dedicated Gateway's, which no other Gateway
    holds (gateway.addressing). A handshake is served the pairs pushed for its server's
    scope only (lua/edgeagent_certificates.lua), so one name can present one tenant's
    certificate on the edge's addresses and another's on a Gateway's."""
    return str(ipaddress.ip_address(addresses[0])) if addresses else ""


def hash_sizes(names: list[str]) -> tuple[int, int]:
    """(bucket size, maximum size) of an nginx hash of `names`: the smallest power of two
    (at least 128) that holds the longest, and room for 16 slots a name."""
    longest = max((len(name) for name in names), default=0)
    bucket = NAMES_HASH_BUCKET_MIN
    while bucket < longest + NAMES_HASH_ENTRY_OVERHEAD:
        bucket *= 2
    size = NAMES_HASH_MIN
    while size < NAMES_HASH_SLOTS_PER_NAME * len(names):
        size *= 2
    return bucket, size


def _names_hash_bucket_size(servers: list[Server]) -> int:
    """The bucket of the server names: it holds the longest exact host name."""
    return hash_sizes([s.host for s in servers if not s.host.startswith("*.")])[0]


def _names_hash_max_size(servers: list[Server]) -> int:
    """Of the servers rendered: route table hosts change no http-level byte."""
    return hash_sizes([s.host for s in servers])[1]


class Memo:
    """The text of each upstream and server of the previous render, lent to the next.

    The template writes an upstream or a server from that object and the layout alone,
    and the model's objects are immutable, so the text of an object that is the same
    Python object as last time (model.Memo keeps unchanged ones) is the same: only new
    objects are rendered. Entries hold the object, so its id() cannot be reused while the
    entry lives; each render keeps only the entries it used.
    """

    def __init__(self) -> None:
        self.layout: Layout | None = None
        self.upstreams: dict[int, tuple[Upstream, str]] = {}
        self.servers: dict[int, tuple[Server, str, frozenset[str]]] = {}


def render(model: Model, layout: Layout, memo: Memo | None = None) -> Rendered:
    """`memo` (optional) saves rendering what has not changed; same bytes without it."""
    passthrough = model.annotations.enable_ssl_passthrough
    check_layout(layout, passthrough)
    memo = memo if memo is not None else Memo()
    if memo.layout != layout:
        memo.layout, memo.upstreams, memo.servers = layout, {}, {}
    # Dynamic mode: certificate files live in dynamic_dir (kept current by the agent),
    # not in the generation, so that a rotation is no new generation.
    certificates = {
        certificate_file(*key): pair.certificate_pem + pair.key_pem
        for key, pair in sorted(model.certificates.items())
        if not layout.dynamic
    }
    certificate_dir = layout.dynamic_dir if layout.dynamic else layout.output_dir
    # Both modes: nginx reads a user file at each request, but it names the Ingress's users,
    # so it belongs to the generation (a new one when a Secret changes).
    servers = (model.default_server, *model.servers)
    auth_files = {
        **basicauth.files(servers),
        **clientcert.files(servers),
        **proxyssl.files(servers),
    }

    def certificate_path(key: tuple[str, str] | None) -> str:
        if key is None:
            return layout.default_certificate
        return f"{certificate_dir}/{token(certificate_file(*key))}"

    def key_path(key: tuple[str, str] | None) -> str:
        return layout.default_key if key is None else certificate_path(key)

    def known(entries: dict, obj: object) -> bool:
        entry = entries.get(id(obj))
        return entry is not None and entry[0] is obj

    # Dynamic mode: no upstream block per backend (the peers live in shared memory).
    upstreams = () if layout.dynamic else model.upstreams
    new_upstreams = [u for u in upstreams if not known(memo.upstreams, u)]
    # Route table hosts (dynamic mode): served by the default server, no block of their own.
    table = route_table.table_hosts(model) if layout.routes_by_table else frozenset()
    served = in_name_order(
        [s for s in model.servers if not route_table.served_by_table(s, table)]
        if table
        else list(model.servers)
    )
    # The default server is made anew by every build, and is one block: always rendered.
    new_servers = [model.default_server] + [s for s in served if not known(memo.servers, s)]
    environment = _environment()

    def https_listens(server: Server) -> list[str]:
        if passthrough:  # behind the stream module (render_stream.py)
            return [render_stream.https_listen(layout)]
        return listens(layout, layout.listen_https, server)

    if passthrough:
        realip = render_stream.realip_sources(layout)
        passthrough_vars = dict(
            passthrough_ports=render_stream.port_map(layout),
            server_port=render_stream.PORT_VARIABLE,
            forwarded_headers=render_stream.with_public_port(render_filters.FORWARDED_HEADERS),
            grpc_forwarded_headers=render_stream.with_public_port(
                render_filters.GRPC_FORWARDED_HEADERS
            ),
            location_filters=render_stream.filters_with_public_port(location_filters),
        )
    else:
        realip = [str(network(proxy)) for proxy in layout.trusted_proxies]
        passthrough_vars = dict(passthrough_ports=None, server_port="$server_port")
    edge_conf = environment.get_template("edge.conf.j2").make_module(
        dict(
            http_listens=lambda server: listens(layout, layout.listen_http, server),
            https_listens=https_listens,
            trusted_proxies=realip,
            proxy_protocol=layout.proxy_protocol or passthrough,
            **passthrough_vars,
            names_hash_max_size=_names_hash_max_size(served),
            names_hash_bucket_size=_names_hash_bucket_size(served),
            no_settings=NO_SETTINGS,
            redirects_to_https=redirects_to_https,
            rewrite_of=rewrite_of,
            hsts=hsts_value(model),
            defaults=model.annotations,
            rate_limits=ratelimit.zoned_limits((model.default_server, *model.servers)),
            strips_trailing_slash=any(
                not location.settings.preserve_trailing_slash
                for server in model.servers
                for location in server.locations
            ),
            zone_size=ratelimit.ZONE_SIZE,
            certificate_path=certificate_path,
            auth_file_path=lambda relative: f"{layout.output_dir}/{token(relative)}",
            backend_tls_pools=sorted(
                {
                    pool
                    for server in servers
                    for location in server.locations
                    if (pool := backend_tls_pool(location)) is not None
                }
            ),
            backend_tls_pool=backend_tls_pool,
            client_certificate_headers=clientcert.HEADERS
            if any(server.client_certificates for server in servers)
            else {},
            key_path=key_path,
            dynamic=layout.dynamic,
            route_table=layout.routes_by_table,
            served_by_header=layout.served_by_header,
            dynamic_dir=layout.dynamic_dir,
            lua_dir=layout.lua_dir,
            request_series_max=layout.request_series_max,
            request_buckets=request_counts.BOUNDS,
            requests_dict_mb=request_counts.requests_dict_mb(layout.request_series_max),
            uses_error_pages=errorpages.used(servers),
            auth_hops=any(extauth.hops_to(server) for server in servers),
            auth_hop_http_listen=layout.auth_hop_http_listen,
            auth_hop_https_listen=layout.auth_hop_https_listen,
            auth_hop_ports=extauth.hop_ports(layout),
            error_pages_of=errorpages.error_locations,
        )
    )
    for upstream in new_upstreams:
        memo.upstreams[id(upstream)] = (upstream, str(edge_conf.upstream_block(upstream)))
    for server in new_servers:
        text = str(edge_conf.server_block(server))
        used = frozenset(
            upstream
            for loc in server.locations
            for upstream in (
                loc.upstream,
                *(choice.upstream for choice in loc.choices),
                *(target.upstream for target in loc.mirrors),  # RequestMirror's
                *errorpages.upstreams(loc),  # its named error locations proxy to them
                loc.mirror_upstream,  # and those of mirror-target
                loc.auth_upstream,  # and those of auth-url
            )
            if upstream
        )
        memo.servers[id(server)] = (server, text, frozenset() if layout.dynamic else used)
    upstream_texts = {id(u): memo.upstreams[id(u)] for u in upstreams}
    server_texts = {id(s): memo.servers[id(s)] for s in (model.default_server, *served)}
    memo.upstreams, memo.servers = upstream_texts, server_texts  # what this render used

    http = str(edge_conf)
    blocks: dict[str, Block] = {HTTP_BLOCK: Block(http, http)}
    for upstream in upstreams:
        text = upstream_texts[id(upstream)][1]
        blocks[f"upstream {upstream.name}"] = Block(text, text)
    server_blocks = [(DEFAULT_SERVER_BLOCK, model.default_server)]
    server_blocks += [(f"server {server.site}", server) for server in served]
    for block_id, server in server_blocks:
        _, text, upstreams = server_texts[id(server)]
        fingerprint = text
        if server.certificate is not None and not layout.dynamic:
            pem = certificates[certificate_file(*server.certificate)]
            fingerprint = f"{text}\0{hashlib.sha256(pem).hexdigest()}"
        blocks[block_id] = Block(text, fingerprint, upstreams)
    body = "".join(block.text for block in blocks.values())
    digest = hashlib.sha256(body.encode())
    for path, data in sorted({**certificates, **auth_files}.items()):
        digest.update(path.encode() + b"\0" + data)
    stream = render_stream.render_stream(environment, model, layout, passthrough, hash_sizes)
    if passthrough:  # else the same text for every model
        digest.update(render_stream.STREAM_FILE.encode() + b"\0" + stream.encode())
    generation = digest.hexdigest()[:16]
    output_dir = layout.output_dir.replace(GENERATION_PLACEHOLDER, generation)
    if GENERATION_PLACEHOLDER in layout.output_dir:
        body = body.replace(GENERATION_PLACEHOLDER, generation)
        for block_id, _ in server_blocks:
            # The only blocks that name output_dir: those with certificates or user files.
            block = blocks[block_id]
            if GENERATION_PLACEHOLDER in block.text:
                final = block.text.replace(GENERATION_PLACEHOLDER, generation)
                blocks[block_id] = block._replace(text=final)
    status = environment.get_template("status.conf.j2").render(
        status_listen=layout.status_listen, generation=generation, dynamic=layout.dynamic
    )
    blocks[STATUS_BLOCK] = Block(status, status)
    edge = f"# edgeagent generation {generation}; written by edgeagent, do not edit\n"
    files = {
        "edge.conf": (edge + body + status).encode(),
        render_stream.STREAM_FILE: stream.encode(),
        **certificates,
        **auth_files,
    }
    return Rendered(
        files=dict(sorted(files.items())),
        generation=generation,
        output_dir=output_dir,
        blocks=blocks,
    )


def render_main(layout: Layout, ssl_passthrough: bool = False, escapes_uri: bool = False) -> bytes:
    """The standalone main config: includes `edge.conf` from `layout.output_dir`, and its
    `stream.conf` with `ssl_passthrough` (--enable-ssl-passthrough); `escapes_uri`: loads
    set-misc (`extauth.escapes_uri` of the model)."""
    check_layout(layout, ssl_passthrough)
    if GENERATION_PLACEHOLDER in layout.output_dir:
        raise ValueError("the standalone configuration needs a fixed output_dir")
    template = _environment().get_template("nginx.conf.j2")
    return template.render(
        output_dir=layout.output_dir,
        worker_processes=layout.worker_processes,
        dynamic=layout.dynamic,
        stream=ssl_passthrough,
        escapes_uri=escapes_uri,
    ).encode()
