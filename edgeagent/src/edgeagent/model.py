"""Pure core, part 1: Kubernetes objects in, routing model out. No I/O.

Contract (the daemon and the CLI both call this; keep it stable):

- `Inputs`: plain lists of objects as dicts in Kubernetes API JSON form (camelCase), the
  shape YAML manifests and `ApiClient().sanitize_for_serialization(obj)` give.
- `Options`: the class to serve and what the agent remembers between syncs.
- `build(inputs, options) -> Model`. It never raises on bad input: every object it cannot
  use becomes a `Problem`, and everything else is served. `build(inputs, options, memo)`
  gives the same Model, faster when most objects are those of the previous build.

The routing rules implemented here are described in docs/routing.md. In short: Exact and
Prefix paths (ImplementationSpecific = Prefix) become nginx `location = /p` and
`location ^~ /p/`; exact hosts and one-label wildcards get a server each; rules without a
host and the catch-all `spec.defaultBackend` go to the default server; on a conflict the
oldest Ingress wins, then namespace/name.

Validation happens here, through `edgeagent.grammar`, before a value is stored in the
model: an Ingress with any invalid field is skipped whole. Services, EndpointSlices and
Secrets are only looked at (and validated) when a served Ingress refers to them, so an
unrelated broken object elsewhere in the cluster neither costs time nor raises problems.

Cost at scale, and why a memo. At 10,000 Ingresses (5 endpoints each) a build from
scratch validates 10,000 Ingresses, 10,000 Services and 50,000 endpoints: 0.5 s of CPU
here with the collector paused, 0.5-2 s on a busy 2-core machine, and no single part of
it dominates (parsing, endpoint checks, joins and locations each take a share), so a
faster full build could not reach the 0.15 s a change may cost. The daemon passes a
`Memo` instead (see its docstring): what each unchanged object gave the previous build
is reused by identity, and a change then costs 0.1-0.15 s of CPU, passes over all
objects (indexes, ordering, claims) included. Recomputing only the hosts a change
touches would save part of those passes, at the price of tracking which objects affect
which hosts through conflicts, fallbacks and TLS claims; the memo keeps the one global
algorithm, whose result does not depend on the memo (tested on random change sequences).
"""

from __future__ import annotations

import functools
import hashlib
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, make_dataclass, replace
from datetime import UTC, datetime
from typing import Any, NamedTuple

from edgeagent import annotations, grammar, nodeports, passthrough
from edgeagent.annotations import basicauth, clientcert, customheaders, proxyssl
from edgeagent.annotations.basicauth import BasicAuth
from edgeagent.annotations.clientcert import ClientCertificates
from edgeagent.annotations.cors import Cors
from edgeagent.annotations.customheaders import CustomHeaders
from edgeagent.annotations.errorpages import ErrorPages
from edgeagent.annotations.extauth import ExternalAuth
from edgeagent.annotations.mirror import Mirror
from edgeagent.annotations.proxyssl import BackendTLS
from edgeagent.annotations.ratelimit import RateLimit, owned
from edgeagent.annotations.sslciphers import HostCiphers
from edgeagent.backends import BackendPolicy, pod_networks
from edgeagent.gateway.options import GatewayOptions
from edgeagent.grammar import CertPair, Invalid
from edgeagent.hostnames import ServerNames
from edgeagent.ownership import HostOwners
from edgeagent.resources import RESOURCES, SERVICE_NAME_LABEL

__all__ = [
    "CertPair",
    "Choice",
    "Inputs",
    "Location",
    "LocationSettings",
    "Memo",
    "Model",
    "Options",
    "Problem",
    "Server",
    "Upstream",
    "build",
]

DEFAULT_CLASS_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"
# On a Service: `zone=weight,...` (weights 1-100). Its ready endpoints get the weight of
# their EndpointSlice `zone` (1 for a zone not listed), in both modes (docs/routing.md).
ZONE_WEIGHTS_ANNOTATION = "edgeagent.io/zone-weights"
LOCATION_SETTINGS_CACHE_SIZE = 4096
STATUS_NOT_FOUND = 404
STATUS_NO_ENDPOINT = 503
# The default server answers this path itself (keepalived and LVS health checks ask for it
# without a Host), so a rule without a host cannot take it over.
HEALTH_PATH = "/healthz"
HEALTH_LOCATION_STATUS = 200


@dataclass(frozen=True)
class Problem:
    """An object (or part of one) that is not served as written, and why.

    `kind`/`namespace`/`name` name the object the user has to fix; `reason` is one line
    for people; `code` is a fixed, low-cardinality category for metrics: "invalid",
    "unsupported", "conflict", "missing-service", "secret", "backend" (an endpoint address
    refused, backends.py), or "warning" (an annotation served without: the object is served
    all the same).
    """

    kind: str
    namespace: str
    name: str
    reason: str
    code: str = "invalid"


# One list per watched kind (edgeagent.resources), e.g. `inputs.endpoint_slices`.
Inputs = make_dataclass(
    "Inputs",
    [(resource.name, list[dict], field(default_factory=list)) for resource in RESOURCES],
    frozen=True,
    namespace={
        "__doc__": "Kubernetes objects as API JSON dicts; order does not matter.",
        "__module__": __name__,
    },
)


@dataclass(frozen=True)
class Options:
    """What to serve, and what the agent carries over from earlier syncs."""

    ingress_class: str = "edge"
    """The IngressClass name served (`--ingress-class`). "edge" rather than "nginx", so
    an edge agent never picks up Ingresses meant for an in-cluster ingress-nginx by
    accident; an IngressClass object of that name is optional."""

    watch_ingress_without_class: bool = False
    """Also serve Ingresses that name no class (`--watch-ingress-without-class`). Off by
    default as in ingress-nginx; an IngressClass `ingress_class` annotated
    `ingressclass.kubernetes.io/is-default-class: "true"` turns it on as well."""

    upstreams_without_endpoints: bool = False
    """Keep the upstream of a Service port that has no ready endpoint, with no endpoints,
    and route its paths to it (dynamic mode: peers arrive without a reload and nginx
    answers 503 until they do). Off (static mode): those paths answer 503 in the
    configuration itself, and the first endpoint is a new configuration."""

    annotations: annotations.Config = field(default_factory=annotations.Config)
    """The annotation prefix and ingress-nginx's defaults (`edgeagent.annotations`)."""
    gateway: GatewayOptions = field(default_factory=GatewayOptions)
    """What to serve of the Gateway API (edgeagent.gateway, merged into the model by
    `gateway.routing.build`)."""

    backends: BackendPolicy | None = None
    """Which endpoint addresses may be proxied to (backends.py); without networks of its
    own, the Nodes' podCIDRs if any. None (manifests, tests): every address."""

    backend_mode: str = nodeports.ENDPOINTS
    """"endpoints": the pod IPs of the EndpointSlices; "nodeport": the Service's NodePort
    on the Nodes' InternalIPs, for an edge without routes to the pod network
    (`--backend-mode`; a Service's `edgeagent.io/backend-mode` annotation overrides it;
    nodeports.py)."""

    host_owner: str = "merge"
    """"merge" (as ingress-nginx): every namespace's paths on a host are served; "namespace":
    a host belongs to the namespace of its oldest Ingress (`--host-owner`, ownership.py)."""

    dynamic: bool = False
    """nginx balances in Lua (the dynamic mode, docs/dynamic.md): what only that balancer
    can do is served (session affinity); the static mode refuses it."""

    previous_certificates: Mapping[tuple[str, str], CertPair] = field(default_factory=dict)
    """The last good pair of each (namespace, Secret name), from `Model.certificates` of
    earlier syncs: a Secret that turns invalid or disappears keeps its hosts on it
    instead of dropping them to the default certificate."""


@dataclass(frozen=True)
class LocationSettings:
    """Per-location settings from the supported annotations (`edgeagent.annotations`);
    None = the http-level default (`Model.annotations`)."""

    ssl_redirect: bool = False
    """Redirect plain HTTP to HTTPS if the host is listed under `spec.tls`."""
    force_ssl_redirect: bool = False
    """Redirect plain HTTP to HTTPS on any host."""
    redirect: tuple[int, str] | None = None
    """(code, URL): answer every request with this redirect (permanent-, temporal-redirect)."""
    backend_protocol: str = "HTTP"
    """What the backend speaks (backend-protocol): "HTTP", "HTTPS", "GRPC" (HTTP/2 without
    TLS, `grpc_pass grpc://`) or "GRPCS" (`grpc_pass grpcs://`)."""
    proxy_body_size: str | None = None
    proxy_connect_timeout: int | None = None
    proxy_read_timeout: int | None = None
    proxy_send_timeout: int | None = None
    proxy_buffering: str | None = None
    """"on" or "off"."""
    proxy_request_buffering: str | None = None
    proxy_buffers: tuple[int, str] | None = None
    """(number, size): `proxy_buffer_size size; proxy_buffers number size;`."""
    proxy_busy_buffers_size: str | None = None
    proxy_max_temp_file_size: str | None = None
    client_body_buffer_size: str | None = None
    proxy_http_version: str | None = None
    rewrite_target: str | None = None
    """The path a regex location's request is rewritten to (`$1`-`$9`: its captures)."""
    use_regex: bool = False
    """The Ingress's paths are regular expressions (`edgeagent.annotations.rewrite`)."""
    app_root: str | None = None
    """Where `/` of the Ingress's hosts redirects (302); applied per server."""
    allow: tuple[str, ...] = ()
    """Client networks let in (empty: all); every other client gets 403."""
    deny: tuple[str, ...] = ()
    """Client networks turned away with 403, checked before `allow`."""
    x_forwarded_prefix: str | None = None
    """Sent to the backend as X-Forwarded-Prefix (`$1`-`$9`: a regex location's captures)."""
    upstream_vhost: str | None = None
    """Sent to the backend as Host instead of the client's."""
    server_alias: tuple[str, ...] = ()
    """More names of the Ingress's hosts; applied per server (`Server.aliases`)."""
    from_to_www_redirect: bool = False
    """`www.HOST` (or HOST without `www.`) redirects to the host; applied per server."""
    next_upstream: str | None = None
    """When to try the next endpoint: nginx's conditions, or "off" (proxy-next-upstream)."""
    next_upstream_tries: int | None = None
    """At most this many tries in all (0: no limit)."""
    next_upstream_timeout: int | None = None
    """Seconds within which to try (0: no limit)."""
    upstream_hash_by: str | None = None
    """Consistent hashing on this key of nginx variables (upstream-hash-by): the location
    proxies to the variant of its upstream that hashes it (`hashed_upstream_name`)."""
    canary: annotations.canary.Policy | None = None
    """The Ingress is a canary: its paths add their backends to a main Ingress's."""
    affinity: annotations.affinity.Affinity | None = None
    """Keep each client on one endpoint through a cookie (the dynamic mode's balancer)."""
    cors: Cors | None = None
    """The CORS answers (enable-cors and cors-*)."""
    rate_limit: RateLimit | None = None
    """The Ingress's request, connection and bandwidth limits (limit-*)."""
    external_auth: ExternalAuth | None = None
    """The service that authenticates each request first (auth-url and auth-*)."""
    client_certificates: ClientCertificates | None = None
    """The client certificates the host's server verifies (auth-tls-*); once built,
    without its CA when the Secret is unusable or another Ingress's conflicts: 503."""
    basic_auth: BasicAuth | None = None
    """The users and password hashes every request must match (auth-type basic); once
    built, without its htpasswd lines when the Secret is unusable: answered 503."""
    proxy_redirect: tuple[str, ...] | None = None
    """`proxy_redirect`'s arguments: ("off",), ("default",) or (FROM, TO) (proxy-redirect-*)."""
    proxy_cookie_domain: tuple[str, ...] | None = None
    """`proxy_cookie_domain`'s arguments: ("off",) or (FROM, TO)."""
    proxy_cookie_path: tuple[str, ...] | None = None
    """`proxy_cookie_path`'s arguments: ("off",) or (FROM, TO)."""
    preserve_trailing_slash: bool = True
    """The HTTPS redirect keeps a trailing slash of the URI (false: drops one, as
    ingress-nginx's default; `edgeagent.annotations.trailing_slash`)."""
    backend_tls: BackendTLS | None = None
    """How nginx speaks TLS to an HTTPS or GRPCS backend (proxy-ssl-*); once built, without
    its CA when the Secret is unusable: answered 503."""
    host_ciphers: HostCiphers | None = None
    """The ciphers the host's TLS server offers (ssl-ciphers, ssl-prefer-server-ciphers);
    applied per server, not `held` when another Ingress's differ: answered 503."""
    default_backend: str | None = None
    """The Service (of the Ingress's namespace) that answers for a path whose own has no
    ready endpoint, and the custom-http-errors (`edgeagent.annotations.errorpages`)."""
    custom_http_errors: tuple[int, ...] = ()
    """The answer codes the default backend's pages replace."""
    intercept_errors: bool = True
    """The backend's own answers of those codes are replaced too."""
    mirror: Mirror | None = None
    """Where a copy of each request goes, its answer ignored (mirror-*)."""
    custom_headers: CustomHeaders | None = None
    """Headers set on every answer, from a ConfigMap (custom-headers); once built,
    without them when the ConfigMap is unusable: answered 503."""
    ssl_passthrough: bool = False
    """TLS connections to the Ingress's hosts go to its backend for `/` untouched
    (ssl-passthrough, with --enable-ssl-passthrough; `edgeagent.passthrough`)."""


NO_SETTINGS = LocationSettings()


class HeaderChange(NamedTuple):
    """One header a Gateway API filter changes: `value` None removes it; `append` adds
    the value after those the header has (comma-joined), else the value replaces them."""

    name: str
    value: str | None
    append: bool = False


@dataclass(frozen=True)
class PathChange:
    """A Gateway API path modifier: the whole path becomes `value` (`full`), or the
    matched `prefix` (by whole path elements) becomes `value`."""

    full: bool
    value: str
    prefix: str = "/"


@dataclass(frozen=True)
class Redirect:
    """A Gateway API RequestRedirect: None keeps the request's scheme, host or path.
    `ports` is the port the Location names when its scheme is http and when it is https
    (the spec's defaults already applied); a well-known one is left out."""

    code: int
    scheme: str | None
    hostname: str | None
    ports: tuple[int, int]
    path: PathChange | None


@dataclass(frozen=True)
class Filters:
    """What Gateway API filters do to the requests a location or choice takes."""

    request_headers: tuple[HeaderChange, ...] = ()
    response_headers: tuple[HeaderChange, ...] = ()
    redirect: Redirect | None = None
    rewrite_host: str | None = None
    rewrite_path: PathChange | None = None


NO_FILTERS = Filters()


@dataclass(frozen=True)
class MirroredTo:
    """A Gateway API RequestMirror's target: its upstream, and the share of requests copied
    there as a percentage with two decimals that split_clients draws (None: every one)."""

    upstream: str
    share: str | None = None


@dataclass(frozen=True)
class Choice:
    """One candidate of a location that chooses per request (Gateway API matches): the
    request goes to `upstream` (else gets `status`) when every (nginx variable, value)
    of `conditions` holds, e.g. ("$http_version", "two")."""

    conditions: tuple[tuple[str, str], ...]
    upstream: str | None
    status: int
    filters: Filters = NO_FILTERS


@dataclass(frozen=True)
class Location:
    """One nginx location. `match` is "exact" (`location = path`), "prefix"
    (`location ^~ path`), "regex" (`location ~* "^path"`, on hosts with regex paths) or
    "default" (`location /`, the fallback of such hosts, which lets the regexes match
    first). The request goes to `upstream` if set, else gets `status`; with `choices`
    (Gateway API matches), to the first choice whose conditions hold, else to `upstream`
    or `status`."""

    match: str
    path: str
    upstream: str | None
    status: int
    settings: LocationSettings = NO_SETTINGS
    choices: tuple[Choice, ...] = ()
    filters: Filters = NO_FILTERS
    """Gateway API filters of the location's own target (a choice has its own)."""
    timeout_ms: int | None = None
    """Gateway API `timeouts`: nginx's connect, send and read timeouts, in milliseconds."""
    mirrors: tuple[MirroredTo, ...] = ()
    """Gateway API RequestMirror: the upstreams requests are also sent to (answers
    ignored)."""
    canary: tuple[str, annotations.canary.Policy] | None = None
    """(variable, policy) of a canary Ingress on this path: the variable (its maps come
    from the policy) is "1" for the requests its one choice sends to the canary."""
    error_pages: ErrorPages | None = None
    """Its default backend and custom-http-errors (`edgeagent.annotations.errorpages`)."""
    mirror_upstream: str | None = None
    """The upstream of the cluster Service its `settings.mirror` names, once resolved."""
    auth_upstream: str | None = None
    """The upstream of the cluster Service its `settings.external_auth` names, once
    resolved (None: it answers 500)."""


@dataclass(frozen=True)
class Server:
    """A virtual server. `host` is "" for the default server, "*.x" for a wildcard.

    `https`: the server also listens on the HTTPS port (its Ingress lists it under
    `spec.tls`; the default server always does). `certificate` names the pair in
    `Model.certificates`, or is None for the default certificate.
    """

    host: str
    locations: tuple[Location, ...]
    https: bool
    certificate: tuple[str, str] | None
    app_root: str | None = None
    """`/` answers 302 to this path (app-root of the oldest Ingress with rules here)."""
    any_depth: bool = False
    """A wildcard host that matches one label or more before its suffix (the Gateway
    API's), instead of exactly one (an Ingress's)."""
    regex_name: bool = False
    """An `any_depth` wildcard that a one-label one's suffix ends with (`*.com` and an
    Ingress's `*.example.com`): its server name is a regex too, after the one-label ones,
    longest suffix first (render.in_name_order), so that nginx, which tries every `*.`
    name before any regex, gives each name the longest suffix that matches it
    (gateway.routing)."""
    aliases: tuple[str, ...] = ()
    """More names of this server (server-alias), sorted."""
    redirect_to: str | None = None
    """A server of no location that answers every request with a 308 to this host
    (from-to-www-redirect), keeping the scheme, the port and the URI."""
    gateway: bool = False
    """A Gateway API host's server bound to the gateway addresses (`--gateway-address`,
    `render.Layout.gateway_addresses`, when there are any): it listens there only, so the
    default server (route_table.py) cannot stand in for it."""
    client_certificates: ClientCertificates | None = None
    """What the TLS handshake asks of clients (auth-tls-*): usable, of its Ingresses'."""
    host_ciphers: HostCiphers | None = None
    """The ciphers its TLS handshake offers (ssl-ciphers): held, of its Ingresses'."""
    http: bool = True
    """It listens on the HTTP port; a Gateway API host that only HTTPS listeners serve
    does not (gateway.routing)."""
    addresses: tuple[str, ...] = ()
    """A dedicated Gateway's server (`--gateway-address-mode dedicated`): it listens on
    these addresses only, and one host may then have a server on each Gateway's."""

    @property
    def site(self) -> str:
        """What tells its server apart from the others of its host (choice maps, blocks)."""
        return " ".join((self.host, *self.addresses)) if self.addresses else self.host


@dataclass(frozen=True)
class Upstream:
    """Ready endpoints ("ip:port", "[ipv6]:port"; sorted) of one Service port."""

    name: str
    namespace: str
    service: str
    port: int
    endpoints: tuple[str, ...]
    weights: tuple[int, ...] = ()
    """The weight of each endpoint, in the same order; empty: all 1 (no zone weights)."""
    hash_by: str | None = None
    """Consistent hashing on this key (`hash KEY consistent;`), else round robin."""

    @functools.cached_property
    def weighted(self) -> tuple[tuple[str, int], ...]:
        """(endpoint, weight) pairs. Cached: the dynamic mode asks for those of every
        upstream on every sync, and the model memo keeps unchanged upstreams."""
        return tuple(zip(self.endpoints, self.weights or (1,) * len(self.endpoints), strict=True))


@dataclass(frozen=True)
class Model:
    """Everything `render` needs, and what the daemon reports."""

    servers: tuple[Server, ...]
    """Host servers, sorted by host."""
    default_server: Server
    upstreams: tuple[Upstream, ...]
    """Upstreams with at least one ready endpoint (any, with
    `Options.upstreams_without_endpoints`), sorted by name."""
    certificates: Mapping[tuple[str, str], CertPair]
    """Pairs in use by (namespace, Secret name): remember them as previous_certificates."""
    problems: tuple[Problem, ...]
    served_ingresses: tuple[tuple[str, str], ...]
    """(namespace, name) of every selected Ingress that is valid, sorted."""
    annotations: annotations.Config = field(default_factory=annotations.Config)
    """What the model was built with (`Options.annotations`): render writes the
    http-level defaults from it."""
    shared_hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Hosts named by Ingresses of several namespaces: host -> namespaces, owner first
    (`edgeagent check` warns about them; ownership.py)."""
    passthrough: tuple[passthrough.Host, ...] = ()
    """The hosts whose TLS connections nginx's stream module passes to their backend
    untouched (ssl-passthrough, with --enable-ssl-passthrough), sorted by host."""


class _BackendRef(NamedTuple):
    """A tuple rather than a frozen dataclass: it is a dict key in every build, 10,000
    times at 10k Ingresses, and a tuple hashes and compares in C."""

    service: str
    port: int | str


@dataclass(frozen=True)
class _Path:
    kind: str  # "Exact", "Prefix" or "Regex" (use-regex, rewrite-target)
    path: str  # Prefix paths without their trailing slash (except "/")
    backend: _BackendRef
    written: str  # as the Ingress writes it: the regex of a host with regex paths


@dataclass(frozen=True)
class _Split:
    """A main Ingress's backend on one path, with a canary Ingress's as its alternative
    (`annotations.canary`)."""

    primary: _BackendRef
    canary: _Ingress
    alternative: _BackendRef
    host: str


@dataclass(frozen=True)
class _Ingress:
    namespace: str
    name: str
    order: tuple
    rules: tuple[tuple[str, tuple[_Path, ...]], ...]
    default_backend: _BackendRef | None
    tls: tuple[tuple[tuple[str, ...], str | None], ...]
    settings: LocationSettings


# Memo entries hold results and Problems, never exceptions: a caught exception's
# traceback would keep the frames, hence the whole build, of its day alive.
@dataclass
class _IngressEntry:
    obj: dict  # held so that its id() cannot be reused while the entry lives
    ingress_class: str | Problem | None
    # None: not parsed yet (not selected so far); else the parse (None: refused) and its
    # problems, warnings included.
    parsed: tuple[_Ingress | None, tuple[Problem, ...]] | None = None


@dataclass(frozen=True)
class _Resolution:
    sources: tuple[dict | None, ...]  # the Service (None: missing), then its EndpointSlices
    upstream: Upstream | None
    reason: str | None
    problems: tuple[Problem, ...]


@dataclass(frozen=True)
class _SecretEntry:
    secret: dict | None
    pair: CertPair | str  # the pair, or why the Secret cannot give one


class Memo:
    """What a build derived from each object, lent to the next build of the same daemon.

    A change to one Ingress among 10,000 should not cost 10,000 validations: objects come
    from the watch cache, which replaces an object on every change and never modifies one
    it holds, so an object that is the same Python object as in the previous build has
    the same content. Entries are keyed by identity and hold the object itself (so its
    id() cannot be reused while the entry lives):

    - per Ingress: its class and its parse (validation included) or the Problem it raised;
    - per (namespace, backend): the Service's ports joined with its EndpointSlices (the
      Upstream, or why there is none, and the problems found), valid while the Service
      and its slices are the same objects (and, in the nodeport mode, the eligible Nodes
      are equal);
    - per TLS Secret: the checked certificate pair, or why it is unusable;
    - per host: its Server, while the claims, fallback, TLS claim, certificate and
      resolved backends it is made of are equal (render reuses the text of a Server that
      is the same object).

    The global steps (selection, ordering, conflicts, TLS claims) run on every build:
    they are cheap once nothing is parsed again, and running them whole is what keeps
    the result identical to a build without a memo (tested with random sequences of
    changes). Each build keeps only the entries it used, so the memo never outgrows the
    cluster. Callers that modify objects in place must not pass a memo.
    """

    def __init__(self) -> None:
        self.ingresses: dict[int, _IngressEntry] = {}
        self.backends: BackendPolicy | None = None
        """The policy the resolutions were made under: another one voids them."""
        self.resolutions: dict[tuple[str, _BackendRef], _Resolution] = {}
        self.secrets: dict[tuple[str, str], _SecretEntry] = {}
        self.servers: dict[str, tuple[tuple, Server]] = {}

    def keep_only(self, used: Memo) -> None:
        """Drop every entry the last build did not use."""
        self.ingresses, self.resolutions = used.ingresses, used.resolutions
        self.backends = used.backends
        self.secrets, self.servers = used.secrets, used.servers


def build(inputs: Inputs, options: Options, memo: Memo | None = None) -> Model:
    """Select, validate, resolve conflicts, join Services and EndpointSlices, pick TLS.

    `memo` (optional) carries, from one build to the next, what was derived from each
    object; the result is the same with or without it (see `Memo`).
    """
    return _Builder(inputs, options, memo if memo is not None else Memo()).build()


def upstream_name(namespace: str, service: str, port: int) -> str:
    """A unique upstream name that starts with a short digest.

    nginx looks upstream names up by a linear scan (for each `upstream` block and each
    `proxy_pass`), so 10,000 upstreams cost 10^8 name comparisons per `nginx -t`. A digest
    first makes nearly every comparison stop at the first character instead of running
    along a shared "namespace_service-0..." prefix: measured 2.4 s -> 0.5 s at 10k.
    """
    digest = hashlib.blake2s(f"{namespace}/{service}/{port}".encode(), digest_size=3).hexdigest()
    return f"{digest}_{namespace}_{service}_{port}"


# "_h" and 6 hex digits: what a hashed variant adds to its upstream's name.
HASHED_SUFFIX = "_h000000"


# "_t" and 6 hex digits: what a backend TLS policy's variant adds (proxyssl.BackendTLS.pool).
POOLED_SUFFIX = "_t000000"


def hashed_upstream_name(upstream: str, key: str) -> str:
    """The upstream that hashes `key` (upstream-hash-by), one per upstream and key: the
    Service's endpoints, with `hash KEY consistent;` (static) or the key hashed by the
    balancer (dynamic)."""
    digest = hashlib.blake2s(key.encode(), digest_size=3).hexdigest()
    return f"{upstream}_h{digest}"


def _mapping(value: object, what: str, required: bool = False) -> dict:
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be an object" + (" and is required" if value is None else ""))
    return value


def _list(value: object, what: str) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(f"{what} must be a list")
    return value


def identity(obj: object) -> tuple[str, str]:
    """Namespace and name for a Problem, whatever the object holds: a value that breaks
    the grammar is not echoed (it would be an attacker's text in logs and Events)."""
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    if not isinstance(metadata, dict):
        return "", ""
    namespace, name = metadata.get("namespace"), metadata.get("name")
    try:
        namespace = "" if namespace is None else grammar.dns1123_label(namespace, "namespace")
    except Invalid:
        namespace = "<invalid>"
    try:
        name = grammar.dns1123_subdomain(name, "name")
    except Invalid:
        name = "<invalid>"
    return namespace, name


def _creation_order(metadata: dict) -> tuple:
    """Oldest first; an object without a timestamp (a manifest) after all that have one."""
    stamp = metadata.get("creationTimestamp")
    if stamp is None:
        return (1, 0.0)
    text = grammar.string(stamp, "metadata.creationTimestamp")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Invalid(
            f"metadata.creationTimestamp {grammar.show(text)} is not an RFC 3339 time"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (0, moment.timestamp())


def _backend(value: object, what: str) -> _BackendRef:
    backend = _mapping(value, what, required=True)
    if backend.get("resource") is not None:
        raise Invalid(f"{what}.resource: resource backends are not supported", "unsupported")
    service = _mapping(backend.get("service"), f"{what}.service", required=True)
    name = grammar.dns1035_label(service.get("name"), f"{what}.service.name")
    port = _mapping(service.get("port"), f"{what}.service.port", required=True)
    number, port_name = port.get("number"), port.get("name")
    if number is not None and port_name not in (None, ""):
        raise Invalid(f"{what}.service.port must set either number or name, not both")
    if number is not None:
        return _BackendRef(name, grammar.port_number(number, f"{what}.service.port.number"))
    if port_name in (None, ""):
        raise Invalid(f"{what}.service.port needs a number or a name")
    return _BackendRef(name, grammar.port_name(port_name, f"{what}.service.port.name"))


def _parse_ingress(obj: dict, config: annotations.Config) -> tuple[_Ingress | None, list[Problem]]:
    """The Ingress (None: not served) and every problem found in it: each annotation's,
    and the first of its spec."""
    metadata = _mapping(obj.get("metadata"), "metadata", required=True)
    namespace = grammar.dns1123_label(metadata.get("namespace"), "metadata.namespace")
    name = grammar.dns1123_subdomain(metadata.get("name"), "metadata.name")
    parsed = annotations.parse(
        _mapping(metadata.get("annotations"), "metadata.annotations"), config
    )
    problems = [
        Problem("Ingress", namespace, name, finding.reason, finding.code)
        for finding in parsed.findings
        if finding.status != "supported"
    ]
    try:
        settings = owned(parsed.settings, namespace, name)
        basicauth.check_namespace(settings["basic_auth"], namespace, config)
        basicauth.check_namespace(settings["client_certificates"], namespace, config)
        basicauth.check_namespace(settings["backend_tls"], namespace, config, proxyssl.SECRET)
        customheaders.check_namespace(settings["custom_headers"], namespace, config)
        ingress = _parse_spec(obj, metadata, namespace, name, settings)
        # A refused annotation leaves its setting out: the spec is still parsed, for its
        # problems, but never served.
    except Invalid as error:
        problems.append(Problem("Ingress", namespace, name, str(error), error.code))
        return None, problems
    return (None if parsed.refused else ingress), problems


def _parse_spec(
    obj: dict, metadata: dict, namespace: str, name: str, settings: Mapping
) -> _Ingress:
    order = (*_creation_order(metadata), namespace, name)
    spec = _mapping(obj.get("spec"), "spec")
    use_regex, target = settings["use_regex"], settings["rewrite_target"]
    default_backend = None
    if spec.get("defaultBackend") is not None:
        default_backend = _backend(spec["defaultBackend"], "spec.defaultBackend")
    rules = []
    for i, rule in enumerate(_list(spec.get("rules"), "spec.rules")):
        where = f"spec.rules[{i}]"
        rule = _mapping(rule, where, required=True)
        host = rule.get("host")
        host = "" if host in (None, "") else grammar.host(host, f"{where}.host")
        http = _mapping(rule.get("http"), f"{where}.http")
        paths = []
        for j, entry in enumerate(_list(http.get("paths"), f"{where}.http.paths")):
            here = f"{where}.http.paths[{j}]"
            entry = _mapping(entry, here, required=True)
            if entry.get("pathType") is None:
                raise Invalid(f"{here}.pathType is required")
            path_type = grammar.path_type(entry["pathType"], f"{here}.pathType")
            written = entry.get("path")
            if written in (None, "") and path_type == "ImplementationSpecific":
                written = "/"
            backend = _backend(entry.get("backend"), f"{here}.backend")
            # As ingress-nginx: a rewrite to the path itself is no rewrite.
            if use_regex or (target is not None and target != written):
                path = grammar.regex_path(written, f"{here}.path")
                paths.append(_Path("Regex", path, backend, path))
                continue
            path = grammar.path(written, path_type, f"{here}.path")
            if path_type == "Exact":
                paths.append(_Path("Exact", path, backend, path))
            else:
                paths.append(_Path("Prefix", path.rstrip("/") or "/", backend, path))
        rules.append((host, tuple(paths)))
    tls = []
    for k, entry in enumerate(_list(spec.get("tls"), "spec.tls")):
        where = f"spec.tls[{k}]"
        entry = _mapping(entry, where, required=True)
        hosts = tuple(
            grammar.host(h, f"{where}.hosts[{n}]")
            for n, h in enumerate(_list(entry.get("hosts"), f"{where}.hosts"))
        )
        secret = entry.get("secretName")
        if secret not in (None, ""):
            secret = grammar.dns1123_subdomain(secret, f"{where}.secretName")
        tls.append((hosts, secret or None))
    return _Ingress(
        namespace,
        name,
        order,
        tuple(rules),
        default_backend,
        tuple(tls),
        _location_settings(tuple(sorted(settings.items()))),
    )


@functools.lru_cache(maxsize=LOCATION_SETTINGS_CACHE_SIZE)
def _location_settings(items: tuple) -> LocationSettings:
    """Equal settings share one object: most Ingresses carry the same ones (the defaults),
    and 10,000 copies would cost memory and render time."""
    return LocationSettings(**dict(items))


class _Builder:
    """One build: indexes, claims and resolutions, in a fixed order."""

    def __init__(self, inputs: Inputs, options: Options, memo: Memo) -> None:
        self.inputs = inputs
        self.options = options
        self.memo = memo
        self.next_memo = Memo()
        self.problems: list[Problem] = []
        self.services = self._index(inputs.services)
        self.slices: dict[tuple[str, str], list[dict]] = {}
        for obj in inputs.endpoint_slices:
            metadata = obj.get("metadata") if isinstance(obj, dict) else None
            labels = metadata.get("labels") if isinstance(metadata, dict) else None
            if isinstance(labels, dict):
                namespace, service = metadata.get("namespace"), labels.get(SERVICE_NAME_LABEL)
                if isinstance(namespace, str) and isinstance(service, str):
                    self.slices.setdefault((namespace, service), []).append(obj)
        self.secrets = self._index(inputs.secrets)
        self.config_maps = self._index(inputs.config_maps)
        self.backends = backend_policy(options, inputs.nodes)
        self.nodes = nodeports.eligible_nodes(inputs.nodes)
        if memo.backends != self.backends:
            memo.resolutions = {}
        self.next_memo.backends = self.backends
        self.upstreams: dict[str, Upstream] = {}
        self.resolved: dict[tuple[str, _BackendRef], tuple[str | None, str | None]] = {}
        self.service_ports: dict[tuple[str, str], dict | str] = {}

    @staticmethod
    def _index(objects: list[dict]) -> dict[tuple[str, str], dict]:
        """Objects by (namespace, name); ones without usable metadata are left out."""
        index = {}
        for obj in objects:
            metadata = obj.get("metadata") if isinstance(obj, dict) else None
            if isinstance(metadata, dict):
                namespace, name = metadata.get("namespace"), metadata.get("name")
                if isinstance(namespace, str) and isinstance(name, str):
                    index[namespace, name] = obj
        return index

    def problem(self, kind: str, namespace: str, name: str, reason: str, code: str) -> None:
        self.problems.append(Problem(kind, namespace, name, reason, code))

    def build(self) -> Model:
        selected = self._one_handshake_per_host(
            [
                self._with_config_maps(self._with_secrets(ingress))
                for ingress in self._served_by_this_mode(self._selected_ingresses())
            ],
            "client_certificates",
            "client certificates (auth-tls-*) of a host are verified by its server, which "
            "verifies those of",
            lambda policy: replace(policy, ca=None),
        )
        selected = self._one_handshake_per_host(
            selected,
            "host_ciphers",
            "the ciphers (ssl-ciphers, ssl-prefer-server-ciphers) of a host are its server's, "
            "which offers those of",
            lambda policy: replace(policy, held=False),
        )
        for ingress in selected:
            self._report_hostless_hop(ingress)
        # Canaries serve nothing of their own: their paths join the mains' (_merge_canaries).
        ingresses = [ingress for ingress in selected if ingress.settings.canary is None]
        canaries = [ingress for ingress in selected if ingress.settings.canary is not None]
        paths: dict[str, dict[tuple[str, str], tuple[_Ingress, _BackendRef]]] = {}
        fallbacks: dict[str, tuple[_Ingress, _BackendRef]] = {}
        app_roots: dict[str, tuple[_Ingress, str]] = {}
        catch_all: tuple[_Ingress, _BackendRef] | None = None
        tls: dict[str, tuple[_Ingress, str | None]] = {}
        owners = HostOwners(self.options.host_owner)
        names = ServerNames(self.problem, self._conflict)
        # As ingress-nginx: one regex path makes every path of its host a regex (only the
        # paths of Ingresses allowed on the host count: ownership.py).
        regex_hosts = {
            host
            for ingress in ingresses
            for host, rule_paths in ingress.rules
            if (not host or owners.refusal(host, ingress.namespace) is None)
            and any(entry.kind == "Regex" for entry in rule_paths)
        }
        for ingress in ingresses:
            if ingress.default_backend and not ingress.rules:
                if catch_all is None:
                    catch_all = (ingress, ingress.default_backend)
                else:
                    self._conflict(ingress, "spec.defaultBackend (catch-all)", catch_all[0])
            refused_hosts = set()
            for host, rule_paths in ingress.rules:
                refusal = owners.refusal(host, ingress.namespace) if host else None
                if refusal is not None:
                    self.problem("Ingress", ingress.namespace, ingress.name, refusal, "conflict")
                    refused_hosts.add(host)
                    continue
                claimed = paths.setdefault(host, {})
                for entry in rule_paths:
                    key = (entry.kind, entry.path)
                    if host in regex_hosts:
                        key = ("Regex", entry.written)
                        if entry.kind != "Regex" and not grammar.is_regex(entry.written):
                            self.problem(
                                "Ingress",
                                ingress.namespace,
                                ingress.name,
                                f"path {entry.written} is no regular expression, and host "
                                f"{host or '(any)'} has regex paths (use-regex or "
                                "rewrite-target), which make all of its paths regular "
                                "expressions; not served",
                                "invalid",
                            )
                            continue
                    if not host and key == ("Exact", HEALTH_PATH):
                        self.problem(
                            "Ingress",
                            ingress.namespace,
                            ingress.name,
                            f"Exact path {HEALTH_PATH} without a host is reserved for the "
                            "edge's health check; not served",
                            "conflict",
                        )
                    elif key in claimed:
                        what = f"{key[0]} path {key[1]} on host {host or '(any)'}"
                        self._conflict(ingress, what, claimed[key][0])
                    else:
                        claimed[key] = (ingress, entry.backend)
                if ingress.settings.app_root:
                    previous = app_roots.setdefault(host, (ingress, ingress.settings.app_root))
                    if previous[1] != ingress.settings.app_root:
                        self._conflict(ingress, f"app-root for host {host or '(any)'}", previous[0])
                if host:
                    names.claim(ingress, host, owners)
                if ingress.default_backend:
                    previous = fallbacks.setdefault(host, (ingress, ingress.default_backend))
                    if previous[1] != ingress.default_backend:
                        what = f"spec.defaultBackend for host {host or '(any)'}"
                        self._conflict(ingress, what, previous[0])
            rule_hosts = {host for host, _ in ingress.rules} - refused_hosts
            for hosts, secret in ingress.tls:
                for host in hosts:
                    if host not in rule_hosts:
                        continue
                    previous = tls.setdefault(host, (ingress, secret))
                    if previous[1] != secret:
                        self._conflict(ingress, f"spec.tls for host {host}", previous[0])
        merged = self._merge_canaries(canaries, paths, regex_hosts, owners)
        certificates: dict[tuple[str, str], CertPair] = {}
        servers = []
        for host in sorted(h for h in paths if h):
            claim = tls.get(host)
            certificate = None
            if claim and claim[1]:
                certificate = self._certificate(claim[0].namespace, claim[1], certificates)
            app_root = app_roots[host][1] if host in app_roots else None
            servers.append(
                self._host_server(
                    host,
                    paths[host],
                    fallbacks.get(host),
                    claim,
                    certificate,
                    app_root,
                    names.aliases(host, paths),
                )
            )
        servers = names.with_www_redirects(servers, certificates)
        default_locations = self._locations(
            paths.get("", {}), catch_all or fallbacks.get(""), health=True
        )
        default_server = Server(
            "", default_locations, True, None, app_roots[""][1] if "" in app_roots else None
        )
        self._add_hashed_upstreams([*servers, default_server])
        passed_through = passthrough.choose(
            ingresses,
            owners.refusal,
            self._target,
            lambda ingress, reason, code: self.problem(
                "Ingress", ingress.namespace, ingress.name, reason, code
            ),
            self._conflict,
        )
        self.memo.keep_only(self.next_memo)
        return Model(
            servers=tuple(servers),
            default_server=default_server,
            upstreams=tuple(self.upstreams[name] for name in sorted(self.upstreams)),
            certificates=certificates,
            problems=tuple(
                sorted(set(self.problems), key=lambda p: (p.kind, p.namespace, p.name, p.reason))
            ),
            served_ingresses=tuple(sorted([*((i.namespace, i.name) for i in ingresses), *merged])),
            annotations=self.options.annotations,
            shared_hosts=owners.shared(),
            passthrough=passed_through,
        )

    def _host_server(
        self,
        host: str,
        claimed: dict[tuple[str, str], tuple[_Ingress, _BackendRef]],
        fallback: tuple[_Ingress, _BackendRef] | None,
        tls_claim: tuple[_Ingress, str | None] | None,
        certificate: tuple[str, str] | None,
        app_root: str | None,
        aliases: tuple[str, ...] = (),
    ) -> Server:
        """The server of one host: the previous build's Server object if everything it is
        made of is the same (`Memo`), so that render can reuse its text too."""
        targets = [self._claim_target(*claim) for claim in claimed.values()]
        targets += [self._error_pages(*claim) for claim in claimed.values()]
        targets += [self._mirror_upstream(claim[0]) for claim in claimed.values()]
        targets += [self._auth_upstream(claim[0]) for claim in claimed.values()]
        if fallback is not None and ("Prefix", "/") not in claimed:  # else unused
            targets.append(self._target(*fallback))
            targets.append(self._error_pages(*fallback))
        # Tuples compare their items by identity first: an unchanged Ingress's parse is
        # the same object as in the previous build.
        parts = (
            tuple(claimed.items()),
            fallback,
            tls_claim,
            certificate,
            tuple(targets),
            app_root,
            aliases,
        )
        entry = self.memo.servers.get(host)
        if entry is None or entry[0] != parts:
            locations = self._locations(claimed, fallback)
            verified = {
                location.settings.client_certificates
                for location in locations
                if location.settings.client_certificates is not None
                and location.settings.client_certificates.ca is not None
            }
            ciphers = {
                location.settings.host_ciphers
                for location in locations
                if location.settings.host_ciphers is not None
                and location.settings.host_ciphers.held
            }
            server = Server(
                host,
                locations,
                tls_claim is not None,
                certificate,
                app_root,
                aliases=aliases,
                client_certificates=min(verified, key=repr) if verified else None,
                host_ciphers=min(ciphers, key=repr) if ciphers else None,
            )
            entry = (parts, server)
        self.next_memo.servers[host] = entry
        return entry[1]

    def _report_hostless_hop(self, ingress: _Ingress) -> None:
        """An auth-url naming the request's host on the default server (a rule without
        host, a catch-all defaultBackend) asks for none: the client names that host
        (annotations/extauth.py). Those paths answer 500, a warning says why."""
        auth = ingress.settings.external_auth
        hostless = any(not host for host, _ in ingress.rules) or (
            ingress.default_backend is not None and not ingress.rules
        )
        if auth is None or not auth.hops or not hostless:
            return
        self.problem(
            "Ingress",
            ingress.namespace,
            ingress.name,
            f"annotation {self.options.annotations.annotations_prefix}/"
            f"{annotations.extauth.URL} {grammar.show(auth.url)} names the request's host, "
            "which a client chooses on paths without host: those answer 500",
            "warning",
        )

    def _served_by_this_mode(self, ingresses: list[_Ingress]) -> list[_Ingress]:
        """The Ingresses but those asking for what only the dynamic mode does, reported."""
        if self.options.dynamic:
            return ingresses
        served = []
        for ingress in ingresses:
            if ingress.settings.affinity is None or ingress.settings.canary is not None:
                served.append(ingress)
                continue
            self.problem(
                "Ingress",
                ingress.namespace,
                ingress.name,
                f"annotation {self.options.annotations.annotations_prefix}/affinity is "
                "refused: unsupported in the static mode (plain nginx cannot keep a session "
                "on an endpoint a cookie names); the dynamic mode (--upstreams dynamic) "
                "serves it",
                "unsupported",
            )
        return served

    def _merge_canaries(
        self,
        canaries: list[_Ingress],
        paths: dict[str, dict[tuple[str, str], tuple[_Ingress, _BackendRef | _Split]]],
        regex_hosts: set[str],
        owners: HostOwners,
    ) -> set[tuple[str, str]]:
        """Give each canary path's backend, as the alternative, to the main Ingress that
        serves that host and path; the (namespace, name) of the canaries served. As in
        ingress-nginx, a path no main Ingress serves is not served, and a path takes one
        canary (the oldest)."""
        merged = set()
        for canary in canaries:
            if canary.default_backend is not None:
                self.problem(
                    "Ingress",
                    canary.namespace,
                    canary.name,
                    "spec.defaultBackend of a canary Ingress is not served (only its paths "
                    "join those of main Ingresses)",
                    "unsupported",
                )
            for host, rule_paths in canary.rules:
                refusal = owners.refusal(host, canary.namespace) if host else None
                if refusal is not None:
                    self.problem("Ingress", canary.namespace, canary.name, refusal, "conflict")
                    continue
                claimed = paths.get(host, {})
                for entry in rule_paths:
                    key = _canary_key(entry, host in regex_hosts)
                    where = f"path {entry.written} on host {host or '(any)'}"
                    claim = claimed.get(key)
                    if claim is None:
                        self.problem(
                            "Ingress",
                            canary.namespace,
                            canary.name,
                            f"canary {where}: no main Ingress serves this host and path "
                            "(same path and pathType); not served, as in ingress-nginx",
                            "invalid",
                        )
                    elif isinstance(claim[1], _Split):
                        self._conflict(canary, f"the canary of {where}", claim[1].canary)
                    elif (claim[0].namespace, claim[1]) == (canary.namespace, entry.backend):
                        self.problem(
                            "Ingress",
                            canary.namespace,
                            canary.name,
                            f"canary {where} names the main Ingress's own backend; "
                            "nothing to split, not served",
                            "invalid",
                        )
                    else:
                        split = _Split(claim[1], canary, entry.backend, host)
                        claimed[key] = (claim[0], split)
                        merged.add((canary.namespace, canary.name))
        return merged

    def _conflict(self, loser: _Ingress, what: str, winner: _Ingress) -> None:
        self.problem(
            "Ingress",
            loser.namespace,
            loser.name,
            f"{what} is already served by {winner.namespace}/{winner.name} "
            "(older, or same age and first by namespace/name); not served here",
            "conflict",
        )

    def _selected_ingresses(self) -> list[_Ingress]:
        """The valid Ingresses of our class, oldest first."""
        serve_classless = self.options.watch_ingress_without_class or self._class_is_default()
        selected = []
        known, kept = self.memo.ingresses, self.next_memo.ingresses
        for obj in self.inputs.ingresses:
            entry = known.get(id(obj))
            if entry is None or entry.obj is not obj:
                entry = _IngressEntry(obj, self._class_or_problem(obj))
            kept[id(obj)] = entry
            ingress_class = entry.ingress_class
            if isinstance(ingress_class, Problem):
                self.problems.append(ingress_class)
                continue
            if ingress_class != self.options.ingress_class and not (
                ingress_class is None and serve_classless
            ):
                continue
            if entry.parsed is None:
                try:
                    parsed, problems = _parse_ingress(obj, self.options.annotations)
                    entry.parsed = (parsed, tuple(problems))
                except Invalid as error:
                    problem = Problem("Ingress", *identity(obj), str(error), error.code)
                    entry.parsed = (None, (problem,))
            parsed, problems = entry.parsed
            self.problems.extend(problems)
            if parsed is not None:
                selected.append(parsed)
        selected.sort(key=lambda ingress: ingress.order)
        return selected

    @classmethod
    def _class_or_problem(cls, obj: object) -> str | Problem | None:
        try:
            if not isinstance(obj, dict):
                raise Invalid("an Ingress must be an object")
            return cls._class_of(obj)
        except Invalid as error:
            return Problem("Ingress", *identity(obj), str(error), error.code)

    @staticmethod
    def _class_of(obj: dict) -> str | None:
        spec = _mapping(obj.get("spec"), "spec")
        name = spec.get("ingressClassName")
        if name is None:
            metadata = _mapping(obj.get("metadata"), "metadata")
            name = _mapping(metadata.get("annotations"), "metadata.annotations").get(
                LEGACY_CLASS_ANNOTATION
            )
            if name is None:
                return None
        return grammar.string(name, "spec.ingressClassName")

    def _class_is_default(self) -> bool:
        for obj in self.inputs.ingress_classes:
            metadata = obj.get("metadata") if isinstance(obj, dict) else None
            if isinstance(metadata, dict) and metadata.get("name") == self.options.ingress_class:
                annotations = metadata.get("annotations")
                return (
                    isinstance(annotations, dict)
                    and annotations.get(DEFAULT_CLASS_ANNOTATION) == "true"
                )
        return False

    def _locations(
        self,
        claimed: dict[tuple[str, str], tuple[_Ingress, _BackendRef]],
        fallback: tuple[_Ingress, _BackendRef] | None,
        health: bool = False,
    ) -> tuple[Location, ...]:
        """nginx locations for one server, never two with the same match and path.

        `fallback` serves what no rule matches (None: 404). `health`: the default server,
        which answers HEALTH_PATH itself.
        """
        located: dict[tuple[str, str], Location] = {}
        if health:
            health_location = Location("exact", HEALTH_PATH, None, HEALTH_LOCATION_STATUS)
            located[("exact", HEALTH_PATH)] = health_location
        if any(kind == "Regex" for kind, _ in claimed):
            return self._regex_locations(located, claimed, fallback)
        # Exact rules first: for the same path, Exact beats the exact part of a Prefix.
        for (kind, path), claim in sorted(claimed.items(), key=lambda item: item[0][0] != "Exact"):
            if kind == "Exact":
                located.setdefault(("exact", path), self._location("exact", path, claim))
            elif path == "/":
                located[("prefix", "/")] = self._location("prefix", "/", claim)
            else:
                # Prefix /foo: "/foo" itself and "/foo/...", but never "/foobar".
                located.setdefault(("exact", path), self._location("exact", path, claim))
                located[("prefix", path + "/")] = self._location("prefix", path + "/", claim)
        if ("prefix", "/") not in located:
            located[("prefix", "/")] = self._location("prefix", "/", fallback)
        # nginx answers "/foo" with a 301 to "/foo/" when a proxying location is named
        # "/foo/" and nothing is named "/foo" (auto_redirect). The spec says Exact /foo/
        # does not match /foo: give "/foo" an exact location of its own, serving what the
        # longest prefix location would serve.
        for _, path in list(located):
            bare = path[:-1]
            if path.endswith("/") and bare and ("exact", bare) not in located:
                parent = max(
                    (p for m, p in located if m == "prefix" and bare.startswith(p)),
                    key=len,
                )
                served = located[("prefix", parent)]
                located[("exact", bare)] = Location(
                    "exact",
                    bare,
                    served.upstream,
                    served.status,
                    served.settings,
                    error_pages=served.error_pages,
                )
        return tuple(sorted(located.values(), key=lambda loc: (loc.path, loc.match)))

    def _regex_locations(
        self,
        located: dict[tuple[str, str], Location],
        claimed: dict[tuple[str, str], tuple[_Ingress, _BackendRef]],
        fallback: tuple[_Ingress, _BackendRef] | None,
    ) -> tuple[Location, ...]:
        """The locations of a host whose paths are all regexes (claimed as "Regex"): nginx
        tries regexes in order, so the longest path first, then in reverse order, as
        ingress-nginx sorts them; a plain `location /` serves what none matches."""
        located[("default", "/")] = self._location("default", "/", fallback)
        regexes = [self._location("regex", path, claim) for (_, path), claim in claimed.items()]
        regexes.sort(key=lambda loc: loc.path, reverse=True)
        regexes.sort(key=lambda loc: len(loc.path), reverse=True)
        others = sorted(located.values(), key=lambda loc: (loc.path, loc.match))
        return (*others, *regexes)

    def _location(
        self, match: str, path: str, claim: tuple[_Ingress, _BackendRef | _Split] | None
    ) -> Location:
        if claim is None:
            return Location(match, path, None, STATUS_NOT_FOUND)
        ingress, backend = claim
        if isinstance(backend, _Split):
            return self._canary_location(match, path, ingress, backend)
        upstream, status = self._target(ingress, backend)
        if upstream and ingress.settings.upstream_hash_by:
            upstream = hashed_upstream_name(upstream, ingress.settings.upstream_hash_by)
        backend_tls = ingress.settings.backend_tls
        if upstream and backend_tls is not None and backend_tls.ca is not None:
            upstream = f"{upstream}_t{backend_tls.pool}"
        pages = self._error_pages(ingress, backend)
        if upstream is None and pages is not None and pages.fallback is not None:
            upstream, pages = pages.fallback, replace(pages, falling_back=True)
        return Location(
            match,
            path,
            upstream,
            status,
            ingress.settings,
            error_pages=pages,
            mirror_upstream=self._mirror_upstream(ingress),
            auth_upstream=self._auth_upstream(ingress),
        )

    def _add_hashed_upstreams(self, servers: list[Server]) -> None:
        """The variant of each upstream that a location hashing its requests names, and
        the one a location's backend TLS policy has (servers from the memo included, whose
        locations name them too)."""
        for server in servers:
            for location in server.locations:
                key = location.settings.upstream_hash_by
                name = location.upstream
                backend_tls = location.settings.backend_tls
                if name and backend_tls is not None and backend_tls.ca is not None:
                    name = name[: -len(POOLED_SUFFIX)]
                if key and name and name not in self.upstreams:
                    base = self.upstreams[name[: -len(HASHED_SUFFIX)]]
                    self.upstreams[name] = replace(base, name=name, hash_by=key)
                if name and location.upstream not in self.upstreams:
                    # The backend TLS policy's own keep-alive pool (proxyssl.py).
                    pooled = replace(self.upstreams[name], name=location.upstream)
                    self.upstreams[pooled.name] = pooled

    def _canary_location(self, match: str, path: str, main: _Ingress, split: _Split) -> Location:
        """The main Ingress's location, with one choice: the canary's backend for the
        requests its policy sends there (render writes the maps that decide)."""
        upstream, status = self._target(main, split.primary)
        policy = split.canary.settings.canary
        variable = annotations.canary.variable(split.host, match, path)
        choice = Choice(((variable, "1"),), *self._target(split.canary, split.alternative))
        return Location(
            match,
            path,
            upstream,
            status,
            main.settings,
            choices=(choice,),
            canary=(variable, policy),
            error_pages=self._error_pages(main, split.primary),
            mirror_upstream=self._mirror_upstream(main),
            auth_upstream=self._auth_upstream(main),
        )

    def _mirror_upstream(self, ingress: _Ingress) -> str | None:
        """The upstream of the cluster Service an Ingress's mirror-target names, resolved
        as a backend is; None (nothing is mirrored, a warning) while it has no ready
        endpoint or no such port."""
        mirror = ingress.settings.mirror
        if mirror is None or mirror.service is None:
            return None
        return self._annotation_service(
            ingress,
            mirror.service,
            annotations.mirror.TARGET,
            "requests are not mirrored",
            "warning",
        )

    def _auth_upstream(self, ingress: _Ingress) -> str | None:
        """The upstream of the cluster Service an Ingress's auth-url names, resolved as a
        backend is; None (its paths answer 500, a problem) while it has no ready endpoint
        or no such port. The dynamic mode's upstream without peers fails the subrequest:
        500 too."""
        auth = ingress.settings.external_auth
        if auth is None or auth.service is None:
            return None
        return self._annotation_service(
            ingress,
            auth.service,
            annotations.extauth.URL,
            "its paths answer 500, as ingress-nginx's while their auth service is unreachable",
            "missing-service",
        )

    def _annotation_service(
        self, ingress: _Ingress, named: tuple[str, str, int], key: str, meanwhile: str, code: str
    ) -> str | None:
        """The upstream of the cluster Service (namespace, name, port) an annotation's URL
        names, resolved as a backend is; None while it has no such port or (but in the
        dynamic mode, whose upstreams stay to be pushed their endpoints) no ready endpoint,
        reported with what happens `meanwhile`."""
        namespace, service, port = named
        backend = (namespace, _BackendRef(service, port))
        if backend not in self.resolved:
            self.resolved[backend] = self._resolve_remembered(*backend)
        upstream, reason = self.resolved[backend]
        if upstream is None or not self.upstreams[upstream].endpoints:
            why = (reason or f"Service {namespace}/{service} has no ready endpoint").split("; ")[0]
            prefix = self.options.annotations.annotations_prefix
            self.problem(
                "Ingress",
                ingress.namespace,
                ingress.name,
                f"annotation {prefix}/{key}: {why}; {meanwhile}",
                code,
            )
        return upstream

    def _claim_target(self, ingress: _Ingress, backend: _BackendRef | _Split) -> tuple:
        """What a claim proxies to: its target, or a canary split's two."""
        if isinstance(backend, _Split):
            return (
                self._target(ingress, backend.primary),
                self._target(backend.canary, backend.alternative),
            )
        return self._target(ingress, backend)

    def _target(self, ingress: _Ingress, backend: _BackendRef) -> tuple[str | None, int]:
        """The upstream for a backend, or the status to answer (503: nothing ready)."""
        key = (ingress.namespace, backend)
        if key not in self.resolved:
            self.resolved[key] = self._resolve_remembered(ingress.namespace, backend)
        upstream, reason = self.resolved[key]
        if reason:
            answered = "its paths answer 503"
            if ingress.settings.default_backend is not None:
                answered = "its paths go to the default-backend while it has a ready endpoint, "
                answered += "else answer 503"
            reason = f"{reason}; {answered}"
            self.problem("Ingress", ingress.namespace, ingress.name, reason, "missing-service")
        return (upstream, 0) if upstream else (None, STATUS_NO_ENDPOINT)

    def _resolve_remembered(
        self, namespace: str, backend: _BackendRef
    ) -> tuple[str | None, str | None]:
        """`_resolve`, or its result from the memo while the Service and slices are the same
        objects, and in the nodeport mode the eligible Nodes are equal (their problems are
        reported again: each build reports all it finds)."""
        service = self.services.get((namespace, backend.service))
        # Tuples compare their items by identity first: equal sources, same resolution.
        sources = (
            service,
            *self.slices.get((namespace, backend.service), ()),
            self.nodes if service is not None and self._nodeport_mode(service) else None,
        )
        key = (namespace, backend)
        entry = self.memo.resolutions.get(key)
        if entry is None or entry.sources != sources:
            reported = len(self.problems)
            upstream, reason = self._resolve(namespace, backend)
            found = self.upstreams.get(upstream) if upstream else None
            entry = _Resolution(sources, found, reason, tuple(self.problems[reported:]))
        else:
            self.problems.extend(entry.problems)
            if entry.upstream is not None:
                self.upstreams[entry.upstream.name] = entry.upstream
        self.next_memo.resolutions[key] = entry
        return (entry.upstream.name if entry.upstream else None), entry.reason

    def _resolve(self, namespace: str, backend: _BackendRef) -> tuple[str | None, str | None]:
        read = self._service_ports(namespace, backend.service)
        where = f"Service {namespace}/{backend.service}"
        if isinstance(read, str):
            return None, f"{where} {read}"
        ports, zone_weights = read
        by = "port" if isinstance(backend.port, int) else "name"
        match = [entry for entry in ports if entry[by] == backend.port]
        if not match:
            return None, f"{where} has no port {backend.port}"
        port_name, port = match[0]["name"], match[0]["port"]
        service = self.services[(namespace, backend.service)]
        slices = self.slices.get((namespace, backend.service), [])
        mode = backend_mode(service, self.options, self.problems)
        if mode == nodeports.NODEPORT:
            zones = node_endpoints(service, port, slices, self.nodes, self.backends, self.problems)
            if zones is None:
                return None, None
        else:
            zones = self._pod_endpoints(slices, port_name)
        if not zones and not self.options.upstreams_without_endpoints:
            return None, None
        name = upstream_name(namespace, backend.service, port)
        ordered = sorted(zones, key=endpoint_order)
        weights = tuple(zone_weights.get(zones[e], 1) for e in ordered) if zone_weights else ()
        texts = tuple(endpoint_text(*e) for e in ordered)
        self.upstreams[name] = Upstream(name, namespace, backend.service, port, texts, weights)
        return name, None

    def _error_pages(self, ingress: _Ingress, backend: _BackendRef | _Split) -> ErrorPages | None:
        """The error pages of the Ingress's location of `backend` (None: it asks for none)."""
        settings = ingress.settings
        if settings.default_backend is None and not settings.custom_http_errors:
            return None
        if isinstance(backend, _Split):
            backend = backend.primary
        fallback = None
        prefix = self.options.annotations.annotations_prefix
        if settings.default_backend is not None:
            fallback = self._default_backend(
                ingress, ingress.namespace, settings.default_backend, f"{prefix}/default-backend"
            )
        upstream = None
        if settings.custom_http_errors:
            upstream = fallback or self._agent_default_backend(ingress)
            if upstream is None:
                self.problem(
                    "Ingress",
                    ingress.namespace,
                    ingress.name,
                    f"annotation {prefix}/custom-http-errors is served with nginx's own "
                    "error pages: no default-backend annotation with a ready endpoint, and no "
                    "--default-backend-service with one",
                    "warning",
                )
        return ErrorPages(
            ingress.namespace,
            ingress.name,
            backend.service,
            str(backend.port),
            settings.custom_http_errors,
            upstream,
            settings.intercept_errors,
            fallback,
        )

    def _agent_default_backend(self, ingress: _Ingress) -> str | None:
        reference = self.options.annotations.default_backend_service
        if not reference:
            return None
        namespace, _, name = reference.partition("/")
        return self._default_backend(ingress, namespace, name, "--default-backend-service")

    def _default_backend(
        self, ingress: _Ingress, namespace: str, name: str, named_by: str
    ) -> str | None:
        """The upstream of a default backend, on its Service's first port as ingress-nginx
        picks it (None: unusable, reported on the Ingress, or in the static mode without a
        ready endpoint)."""
        read = self._service_ports(namespace, name)
        if isinstance(read, str) or not read[0]:
            why = read if isinstance(read, str) else "has no port"
            self.problem(
                "Ingress",
                ingress.namespace,
                ingress.name,
                f"{named_by} names Service {namespace}/{name}, which {why}; served without it",
                "missing-service",
            )
            return None
        upstream, _ = self._resolve_remembered(namespace, _BackendRef(name, read[0][0]["port"]))
        return upstream

    def _nodeport_mode(self, service: dict) -> bool:
        """Whether the Service is served in the nodeport mode (a bad annotation: the
        agent's mode; `backend_mode` reports it when the Service is resolved)."""
        try:
            mode = nodeports.backend_mode(service, self.options.backend_mode)
        except Invalid:
            mode = self.options.backend_mode
        return mode == nodeports.NODEPORT

    def _pod_endpoints(self, slices: list[dict], port_name: str) -> dict[tuple[str, int], str]:
        """(address, port) -> zone ("": none) of the ready endpoints the policy allows."""
        zones: dict[tuple[str, int], str] = {}
        for endpoint_slice in slices:
            try:
                found = ready_endpoints(endpoint_slice, port_name)
            except Invalid as error:
                slice_namespace, slice_name = identity(endpoint_slice)
                self.problem("EndpointSlice", slice_namespace, slice_name, str(error), error.code)
                continue
            for address, endpoint_port, zone in found:
                refusal = self.backends.refusal(address) if self.backends else None
                if refusal is not None:
                    self.problems.append(refused_endpoint(endpoint_slice, refusal))
                    continue
                key = (address, endpoint_port)
                zones[key] = min(zone, zones.get(key, zone))  # one zone, whatever the order
        return zones

    def _service_ports(self, namespace: str, name: str) -> tuple[list[dict], dict] | str:
        """The ports of a Service as [{"name", "port"}] and its zone weights, or why it
        cannot be used."""
        key = (namespace, name)
        if key not in self.service_ports:
            self.service_ports[key] = self._read_service_ports(namespace, name)
        return self.service_ports[key]

    def _read_service_ports(self, namespace: str, name: str) -> tuple[list[dict], dict] | str:
        service = self.services.get((namespace, name))
        if service is None:
            return "does not exist"
        try:
            spec = _mapping(service.get("spec"), "spec")
            if spec.get("type") == "ExternalName":
                raise Invalid("ExternalName Services are not supported", "unsupported")
            ports = []
            for i, entry in enumerate(_list(spec.get("ports"), "spec.ports")):
                entry = _mapping(entry, f"spec.ports[{i}]", required=True)
                port_name = entry.get("name") or ""
                if port_name:
                    port_name = grammar.port_name(port_name, f"spec.ports[{i}].name")
                number = grammar.port_number(entry.get("port"), f"spec.ports[{i}].port")
                ports.append({"name": port_name, "port": number})
        except Invalid as error:
            self.problem("Service", namespace, name, str(error), error.code)
            return "is invalid"
        return ports, self._zone_weights(service, namespace, name)

    def _zone_weights(self, service: dict, namespace: str, name: str) -> dict[str, int]:
        """The Service's zone weights; bad ones are reported and the endpoints served
        unweighted (a typo in a weight must not take the Service down)."""
        metadata = service.get("metadata")
        annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
        if not isinstance(annotations, dict) or ZONE_WEIGHTS_ANNOTATION not in annotations:
            return {}
        try:
            return grammar.zone_weights(
                annotations[ZONE_WEIGHTS_ANNOTATION], f"annotation {ZONE_WEIGHTS_ANNOTATION}"
            )
        except Invalid as error:
            self.problem("Service", namespace, name, f"{error}; served unweighted", "invalid")
            return {}

    def _with_secrets(self, ingress: _Ingress) -> _Ingress:
        """The Ingress with the Secrets its annotations name read; one unusable is reported
        and makes its paths answer 503."""
        resolved = {}
        for field_name, family in (
            ("basic_auth", basicauth),
            ("client_certificates", clientcert),
            ("backend_tls", proxyssl),
        ):
            wanted = getattr(ingress.settings, field_name)
            if wanted is None:
                continue
            secret = self.secrets.get((ingress.namespace, wanted.secret[1]))
            resolved[field_name], reason = family.resolve(wanted, secret)
            if reason is not None:
                reason = f"{reason}; its paths answer 503"
                self.problem("Ingress", ingress.namespace, ingress.name, reason, "secret")
        if not resolved:
            return ingress
        settings = _location_settings(tuple(sorted({**vars(ingress.settings), **resolved}.items())))
        return replace(ingress, settings=settings)

    def _with_config_maps(self, ingress: _Ingress) -> _Ingress:
        """The Ingress with the ConfigMap of custom-headers read; one unusable is reported
        and makes its paths answer 503."""
        wanted = ingress.settings.custom_headers
        if wanted is None:
            return ingress
        config_map = self.config_maps.get((ingress.namespace, wanted.config_map[1]))
        resolved, reason = customheaders.resolve(wanted, config_map, self.options.annotations)
        if reason is not None:
            reason = f"{reason}; its paths answer 503"
            self.problem("Ingress", ingress.namespace, ingress.name, reason, "invalid")
        items = {**vars(ingress.settings), "custom_headers": resolved}
        return replace(ingress, settings=_location_settings(tuple(sorted(items.items()))))

    def _one_handshake_per_host(
        self,
        ingresses: list[_Ingress],
        field_name: str,
        held_by: str,
        unheld: Callable[[Any], Any],
    ) -> list[_Ingress]:
        """What a host's TLS server does in the handshake (client certificates, ciphers)
        is one for all its Ingresses: the oldest Ingress's holds, and a newer Ingress
        asking for another is a conflict whose paths answer 503 (its setting `unheld`);
        those asking for nothing get the host's too. `held_by` says whose holds, before
        that Ingress's name."""
        held: dict[str, tuple[_Ingress, tuple]] = {}
        kept = []
        for ingress in ingresses:
            policy = getattr(ingress.settings, field_name)
            if policy is None or unheld(policy) == policy:  # unusable already: 503
                kept.append(ingress)
                continue
            mine = policy.handshake
            other = next(
                (held[host] for host, _ in ingress.rules if host in held and held[host][1] != mine),
                None,
            )
            if other is not None:
                reason = (
                    f"{held_by} {other[0].namespace}/{other[0].name} (older); its paths answer 503"
                )
                self.problem("Ingress", ingress.namespace, ingress.name, reason, "conflict")
                items = {**vars(ingress.settings), field_name: unheld(policy)}
                ingress = replace(
                    ingress, settings=_location_settings(tuple(sorted(items.items())))
                )
            else:
                for host, _ in ingress.rules:
                    held.setdefault(host, (ingress, mine))
            kept.append(ingress)
        return kept

    def _certificate(
        self, namespace: str, secret: str, certificates: dict[tuple[str, str], CertPair]
    ) -> tuple[str, str] | None:
        """The pair for a Secret: its own, else the previous one, else None (default)."""
        key = (namespace, secret)
        if key in certificates:
            return key
        obj = self.secrets.get(key)
        entry = self.memo.secrets.get(key)
        if entry is None or entry.secret is not obj:
            try:
                entry = _SecretEntry(obj, read_tls_secret(obj))
            except Invalid as error:
                entry = _SecretEntry(obj, str(error))
        self.next_memo.secrets[key] = entry
        if isinstance(entry.pair, CertPair):
            certificates[key] = entry.pair
            return key
        previous = self.options.previous_certificates.get(key)
        fallback = "the previous certificate" if previous else "the default certificate"
        reason = f"{entry.pair}; its hosts keep {fallback}"
        self.problem("Secret", namespace, secret, reason, "secret")
        if previous:
            certificates[key] = previous
            return key
        return None


def _canary_key(entry: _Path, regex_host: bool) -> tuple[str, str]:
    """The claim a canary path joins: the main path of the same text and pathType
    (ImplementationSpecific counts as Prefix; a canary's own regex paths as Prefix)."""
    if regex_host:
        return ("Regex", entry.written)
    if entry.kind == "Exact":
        return ("Exact", entry.path)
    return ("Prefix", entry.written.rstrip("/") or "/")


def backend_policy(options: Options, nodes: list[dict]) -> BackendPolicy | None:
    """The policy endpoints are judged by, for the Ingresses and the Gateway API alike:
    `options.backends`, with the Nodes' podCIDRs as its networks when it names none."""
    policy = options.backends
    if policy is not None and not policy.networks:
        pods = pod_networks(nodes)
        if pods:
            policy = replace(policy, networks=pods)
    return policy


def refused_endpoint(endpoint_slice: dict, refusal: str) -> Problem:
    """The problem reported on an EndpointSlice for an endpoint `backend_policy` refuses."""
    namespace, name = identity(endpoint_slice)
    reason = f"endpoint {refusal}: not proxied to (backend networks, docs/security.md)"
    return Problem("EndpointSlice", namespace, name, reason, "backend")


def backend_mode(service: dict, options: Options, problems: list[Problem]) -> str:
    """The Service's backend mode (nodeports.py); a bad annotation is reported and the
    agent's mode used."""
    try:
        return nodeports.backend_mode(service, options.backend_mode)
    except Invalid as error:
        reason = f"{error}; served in the {options.backend_mode} mode"
        problems.append(Problem("Service", *identity(service), reason, error.code))
        return options.backend_mode


def node_endpoints(
    service: dict,
    port: int,
    slices: list[dict],
    nodes: tuple[nodeports.NodeTarget, ...],
    policy: BackendPolicy | None,
    problems: list[Problem],
) -> dict[tuple[str, int], str] | None:
    """(Node address, NodePort) -> zone of a Service port in the nodeport mode, without the
    Nodes the policy refuses; None (reported on the Service) if the port has no NodePort.
    Used for Ingresses and HTTPRoutes alike."""
    try:
        found = nodeports.targets(service, port, slices, nodes)
    except Invalid as error:
        problems.append(Problem("Service", *identity(service), str(error), error.code))
        return None
    zones = {}
    for key, node in found.items():
        refusal = policy.node_refusal(key[0]) if policy else None
        if refusal is not None:
            problems.append(refused_node(node, refusal))
        else:
            zones[key] = node.zone
    return zones


def refused_node(node: nodeports.NodeTarget, refusal: str) -> Problem:
    """The problem reported on a Node whose InternalIP `backend_policy` refuses."""
    reason = f"InternalIP {refusal}: not proxied to in the nodeport mode (docs/security.md)"
    return Problem("Node", "", node.name, reason, "backend")


def read_tls_secret(secret: dict | None) -> CertPair:
    if secret is None:
        raise Invalid("the Secret does not exist")
    if secret.get("type") != "kubernetes.io/tls":
        raise Invalid("the Secret is not of type kubernetes.io/tls")
    data = _mapping(secret.get("data"), "data")
    if "tls.crt" not in data or "tls.key" not in data:
        raise Invalid("the Secret lacks tls.crt or tls.key")
    return grammar.tls_pair(
        grammar.base64_data(data["tls.crt"], "tls.crt"),
        grammar.base64_data(data["tls.key"], "tls.key"),
    )


def ready_endpoints(endpoint_slice: dict, port_name: str) -> set[tuple[str, int, str]]:
    """(address, port, zone) of the ready endpoints of one slice for the Service port
    `port_name` (zone "" when the endpoint names none).

    Ready means conditions.ready true or unset (as the API defines it); a terminating
    endpoint is never ready, so it gets no new request. Written out flat because it runs
    once per endpoint: 50,000 times for 10,000 Services of 5 endpoints.
    """
    address_type = endpoint_slice.get("addressType")
    if address_type == "FQDN":
        raise Invalid("FQDN EndpointSlices are not supported", "unsupported")
    if address_type not in ("IPv4", "IPv6"):
        raise Invalid("addressType must be IPv4 or IPv6")
    ports = []
    for i, entry in enumerate(_list(endpoint_slice.get("ports"), "ports")):
        entry = _mapping(entry, f"ports[{i}]", required=True)
        if (entry.get("name") or "") != port_name or entry.get("port") is None:
            continue
        if entry.get("protocol", "TCP") not in ("TCP", None):
            continue
        ports.append(grammar.port_number(entry["port"], f"ports[{i}].port"))
    found = set()
    ipv4 = address_type == "IPv4"
    for i, endpoint in enumerate(_list(endpoint_slice.get("endpoints"), "endpoints")):
        if not isinstance(endpoint, dict):
            raise Invalid(f"endpoints[{i}] must be an object")
        conditions = endpoint.get("conditions") or {}
        if not isinstance(conditions, dict):
            raise Invalid(f"endpoints[{i}].conditions must be an object")
        ready, terminating = conditions.get("ready"), conditions.get("terminating")
        if not (ready is None or ready is True or ready is False) or not (
            terminating is None or terminating is True or terminating is False
        ):
            raise Invalid(f"endpoints[{i}].conditions must hold booleans")
        if ready is False or terminating is True:
            continue
        addresses = endpoint.get("addresses")
        if not isinstance(addresses, list):
            raise Invalid(f"endpoints[{i}].addresses must be a list")
        zone = endpoint.get("zone") or ""
        if type(zone) is not str:
            raise Invalid(f"endpoints[{i}].zone must be a string")
        for address in addresses:
            # The common case (a canonical IPv4 string) is checked inline: it runs 50,000 times.
            if not (ipv4 and type(address) is str and grammar.IPV4.fullmatch(address)):
                address = grammar.ip_address(address, f"endpoints[{i}].addresses", address_type)
            for port in ports:
                found.add((address, port, zone))
    return found


def endpoint_text(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoint_order(endpoint: tuple[str, int]) -> tuple:
    """Numeric order, IPv4 before IPv6 (inet_pton: the C parser, fast at 50k endpoints)."""
    address, port = endpoint
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    return (family == socket.AF_INET6, socket.inet_pton(family, address), port)


def ingresses_of_class(inputs: Inputs, options: Options) -> list[dict]:
    """The Ingresses `build` selects by class (`options.ingress_class`, and those without
    a class when it serves them), valid or not: what `edgeagent migrate` reports on."""
    builder = _Builder(inputs, options, Memo())
    serve_classless = options.watch_ingress_without_class or builder._class_is_default()
    selected = []
    for obj in inputs.ingresses:
        ingress_class = builder._class_or_problem(obj)
        if ingress_class == options.ingress_class or (ingress_class is None and serve_classless):
            selected.append(obj)
    return selected


# HTTP-01 challenges are answered over plain HTTP: a location under this path is never
# redirected to HTTPS (ingress-nginx's no-tls-redirect-locations default).
ACME_CHALLENGE_PATH = "/.well-known/acme-challenge/"


def redirects_to_https(server: Server, location: Location) -> bool:
    """ssl-redirect on hosts listed under `spec.tls` (not the default server, whose HTTPS
    listener no Ingress asked for), force-ssl-redirect anywhere; never an HTTP-01
    challenge."""
    if location.path.startswith(ACME_CHALLENGE_PATH):
        return False
    settings = location.settings
    return settings.force_ssl_redirect or (
        settings.ssl_redirect and server.https and server.host != ""
    )
