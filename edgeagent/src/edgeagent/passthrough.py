"""TLS passthrough (ssl-passthrough): which hosts nginx's stream module passes to a backend
untouched, and to which backend. Pure: called by `model.build` with its Ingresses.

As ingress-nginx's controller: a host of an Ingress with `ssl-passthrough: "true"` is
passed through to the backend of that rule's path `/` (else the Ingress's
`spec.defaultBackend`); its other paths and the annotations that act on requests apply to
plain HTTP only, which the host's server goes on answering. The stream module matches the
ClientHello's name exactly, as ingress-nginx's proxy does, so a wildcard host is never
passed through.

One connection goes either to the backend or to the edge's HTTPS servers, so a host that
one Ingress passes through and another terminates (lists under `spec.tls`) is a conflict,
and the older Ingress wins it, as every conflict of the edge: a newer Ingress, of any
namespace, never takes over the TLS of a host that is served already, and a newer
`spec.tls` never turns a passed-through host into a terminated one. Two passthrough
Ingresses with different backends for one host: the older wins too.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

ROOT = "/"


@dataclass(frozen=True)
class Host:
    """A host whose TLS connections the stream module passes through."""

    host: str
    upstream: str | None
    """The backend's upstream (`model.Upstream.name`); None while it has no ready
    endpoint: its connections are closed, never terminated by the edge."""
    namespace: str
    name: str
    """The Ingress that asked for it."""


def _root_backend(paths: Iterable[Any], default_backend: Any) -> Any:
    """The backend of the rule's path `/` (any path type), else the Ingress's default."""
    for entry in paths:
        if entry.written == ROOT:
            return entry.backend
    return default_backend


def choose(
    ingresses: list[Any],
    refusal: Callable[[str, str], str | None],
    target: Callable[[Any, Any], tuple[str | None, int]],
    problem: Callable[[Any, str, str], None],
    conflict: Callable[[Any, str, Any], None],
) -> tuple[Host, ...]:
    """The passed-through hosts of `ingresses` (model._Ingress, oldest first), sorted.

    `refusal(host, namespace)`: why the namespace may not serve the host (ownership.py;
    already reported); `target(ingress, backend)`: its upstream and status, as a
    location's; `problem(ingress, reason, code)` and `conflict(loser, what, winner)`
    report, as the model does."""
    terminated: dict[str, Any] = {}
    for ingress in ingresses:
        if ingress.settings.ssl_passthrough:
            continue
        rule_hosts = {host for host, _ in ingress.rules}
        for hosts, _ in ingress.tls:
            for host in hosts:
                if host in rule_hosts:
                    terminated.setdefault(host, ingress)
    chosen: dict[str, tuple[Any, Any]] = {}
    lost_tls: set[tuple[str, str, str]] = set()
    for ingress in ingresses:
        if not ingress.settings.ssl_passthrough:
            continue
        for host, paths in ingress.rules:
            if not host:
                problem(
                    ingress,
                    "ssl-passthrough: a rule without a host has no name to match the "
                    "ClientHello's; served over plain HTTP only",
                    "warning",
                )
                continue
            if host.startswith("*."):
                problem(
                    ingress,
                    f"ssl-passthrough: host {host} is a wildcard, and passthrough matches "
                    "the ClientHello's exact name (as ingress-nginx): not passed through",
                    "unsupported",
                )
                continue
            if refusal(host, ingress.namespace) is not None:
                continue
            backend = _root_backend(paths, ingress.default_backend)
            if backend is None:
                problem(
                    ingress,
                    f"ssl-passthrough: host {host} has no backend for path {ROOT} (a rule "
                    "path / or spec.defaultBackend): not passed through",
                    "invalid",
                )
                continue
            ignored = sorted({entry.written for entry in paths} - {ROOT})
            if ignored:
                problem(
                    ingress,
                    f"ssl-passthrough: paths {', '.join(ignored)} of host {host} apply to "
                    "plain HTTP only; its TLS connections all go to the backend of /",
                    "warning",
                )
            other = terminated.get(host)
            if other is not None and other.order < ingress.order:
                conflict(ingress, f"TLS of host {host} (ssl-passthrough)", other)
                continue
            previous = chosen.get(host)
            if previous is not None:
                if (previous[0].namespace, previous[1]) != (ingress.namespace, backend):
                    conflict(ingress, f"ssl-passthrough of host {host}", previous[0])
                continue
            chosen[host] = (ingress, backend)
            if other is not None and (other.namespace, other.name, host) not in lost_tls:
                lost_tls.add((other.namespace, other.name, host))
                conflict(other, f"TLS of host {host} (its spec.tls)", ingress)
    hosts = []
    for host in sorted(chosen):
        ingress, backend = chosen[host]
        upstream, _ = target(ingress, backend)
        hosts.append(Host(host, upstream, ingress.namespace, ingress.name))
    return tuple(hosts)
