"""Request mirroring (ingress-nginx: annotations/mirror, nginx.tmpl's mirror blocks).

`mirror-target` sends a copy of every request of the Ingress's paths to a URL (nginx
`mirror` to an internal location of the server, which proxies there); the mirror's
answer is thrown away and the client's never waits for it, nor fails with it. The URL
is `http(s)://host[:port][/path][?query]` where `$request_uri` (the client's path and
query), the one variable ingress-nginx documents there, may follow the host, port or
path; no other `$` is accepted (IngressNightmare came in through mirror-*). Without a
path the mirror gets the internal location's path, as ingress-nginx's does.

- The host is an address or a DNS name nginx resolves when it loads the configuration,
  or a cluster Service, `NAME.NAMESPACE.svc[.cluster.local]` with the Service's port
  (default 80, 443 for https): the edge's DNS does not know those names, so the model
  resolves it from the API's Services and EndpointSlices to an upstream of the Service's
  ready endpoints (`Location.mirror_upstream`); while it has none, nothing is mirrored
  and a warning says so.
- `mirror-host`: the Host header the mirror gets (default: the target's host, without
  its port, as ingress-nginx's).
- `mirror-request-body`: "off" sends no body (nor its Content-Length); "on", the default,
  sends it. Any other value is ignored with a warning: the body is sent, as in
  ingress-nginx.
"""

import hashlib
import re
from dataclasses import dataclass

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.extauth import DEFAULT_PORTS, HOST_AND_PORT, cluster_service
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

TARGET, HOST, REQUEST_BODY = "mirror-target", "mirror-host", "mirror-request-body"
KEYS = (TARGET, HOST, REQUEST_BODY)

REQUEST_URI = "$request_uri"
# What may follow the host and port: a path or query of plain characters and
# $request_uri, never where a variable name could run on into a longer one.
_REQUEST_URI = r"\$request_uri(?![A-Za-z0-9_])"
_URI = rf"((/|\?|{_REQUEST_URI})([A-Za-z0-9\-._~/:,=&?]|{_REQUEST_URI})*)?"
MIRROR_URL = re.compile(
    rf"(?P<scheme>https?)://(?P<authority>{HOST_AND_PORT.pattern})(?P<uri>{_URI})"
)
URL_MAX = 2048
ON_OFF = ("on", "off")


@dataclass(frozen=True)
class Mirror:
    scheme: str
    """"http" or "https": how the mirror is spoken to."""
    host: str
    """The target's host: an address, a DNS name or a cluster Service's name."""
    port: int | None
    """The port written in the URL, if any."""
    uri: str
    """What follows host and port: path, query, `$request_uri` (may be empty)."""
    host_header: str
    request_body: bool = True
    service: tuple[str, str, int] | None = None
    """(namespace, name, port) of the cluster Service the URL names, else None."""

    @property
    def id(self) -> str:
        """The name part of its internal location (and, outside the cluster, upstream)."""
        return hashlib.blake2s(repr(self).encode(), digest_size=6).hexdigest()

    @property
    def address(self) -> str:
        """`host:port` of a target outside the cluster (its upstream's one server)."""
        return f"{self.host}:{self.port or DEFAULT_PORTS[self.scheme]}"


def parse(read: Reader, config: Config) -> dict:
    if not read.has(TARGET):
        # Even unused, a Host that is no host name refuses the Ingress: nothing hostile
        # passes as a warning.
        if read.has(HOST) and read.get(HOST, grammar.upstream_vhost) is not None:
            read.ignore(HOST, f"no {TARGET} is set, as in ingress-nginx")
        if read.has(REQUEST_BODY):
            read.ignore(REQUEST_BODY, f"no {TARGET} is set, as in ingress-nginx")
        return {"mirror": None}
    target = read.get(TARGET, mirror_target)
    host_header = read.get(HOST, grammar.upstream_vhost)
    request_body = True
    if read.has(REQUEST_BODY):
        if read.values[REQUEST_BODY].replace(" ", "") in ON_OFF:
            request_body = read.get(REQUEST_BODY, _on_off)
        else:
            read.ignore(REQUEST_BODY, "neither on nor off: the body is sent, as in ingress-nginx")
    if target is None:
        return {"mirror": None}
    scheme, host, port, uri, service = target
    mirror = Mirror(scheme, host, port, uri, host_header or host, request_body, service)
    return {"mirror": mirror}


def mirror_target(
    value: object, what: str
) -> tuple[str, str, int | None, str, tuple[str, str, int] | None]:
    """(scheme, host, port, URI, the cluster Service it names) of a mirror URL."""
    text = grammar.string(value, what)
    if len(text) > URL_MAX:
        raise Invalid(f"{what} is longer than {URL_MAX} characters")
    parts = MIRROR_URL.fullmatch(text)
    if parts is None and "$" in text.replace(REQUEST_URI, ""):
        raise Invalid(
            f"{what} {grammar.show(text)}: of nginx variables only {REQUEST_URI} is "
            "supported, as ingress-nginx documents",
            "unsupported",
        )
    if parts is None:
        raise Invalid(
            f"{what} {grammar.show(text)} is not an http(s) URL of letters, digits and "
            f"-._~/:,=&? with {REQUEST_URI} after its host"
        )
    host, port = _host_and_port(parts["authority"])
    if port is not None and not 1 <= port <= 65535:
        raise Invalid(f"{what} {grammar.show(text)} has a port outside 1-65535")
    scheme = parts["scheme"]
    return scheme, host, port, parts["uri"], cluster_service(scheme, host, port, what)


def service_of(value: object) -> tuple[str, str, int] | None:
    """The cluster Service a mirror-target names, if it is one and valid."""
    try:
        return mirror_target(value, TARGET)[4]
    except Invalid:
        return None


def _host_and_port(authority: str) -> tuple[str, int | None]:
    host, colon, port = authority.rpartition(":")
    if not colon or authority.endswith("]"):
        return authority, None
    return host, int(port)


def _on_off(value: object, what: str) -> bool:
    return grammar.string(value, what).replace(" ", "") == "on"


def locations(server) -> tuple[tuple[Mirror, str | None], ...]:
    """(mirror, upstream) of each internal location a server needs, once each, in
    location order: the upstream of a cluster Service's endpoints, None for a target
    outside the cluster (it gets an upstream of its own, `upstream_name`)."""
    found = (
        (location.settings.mirror, location.mirror_upstream)
        for location in server.locations
        if mirrors(location)
    )
    return tuple(dict.fromkeys(found))


def mirrors(location) -> bool:
    """Whether the location mirrors its requests: a Service target only while it has an
    upstream."""
    mirror = location.settings.mirror
    return mirror is not None and (mirror.service is None or location.mirror_upstream is not None)


def upstream_name(server_host: str, mirror: Mirror) -> str:
    """The upstream of a target outside the cluster, or in the dynamic mode of a cluster
    Service's, one per server and target (each server's block defines its own: blocks
    are validated one by one)."""
    digest = hashlib.blake2s(f"{server_host}/{mirror.id}".encode(), digest_size=6).hexdigest()
    return f"edgeagent_mirror_{digest}"


# The second lock: what render writes of a mirror, checked again.
render_uri = grammar.second_lock(re.compile(_URI), "a mirror URI")
render_host = grammar.second_lock(HOST_AND_PORT, "a host")
render_address = grammar.second_lock(HOST_AND_PORT, "a host and port")
