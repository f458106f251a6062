"""Who may serve paths on a host: every namespace (merge), or the first one (namespace).

ingress-nginx merges the paths of every Ingress on a host, whatever its namespace, so any
tenant can add a path to another's host (`/login` on the bank's host). `--host-owner
namespace` gives a host to the namespace of its oldest Ingress (creation time, then
namespace/name: the order in which `model.build` takes Ingresses): Ingresses of other
namespaces lose their rules for that host, with a Problem. In both modes the hosts that
several namespaces use are recorded, for `edgeagent check` to warn about. Pure: no I/O.
"""

from __future__ import annotations

MODES = ("merge", "namespace")


class HostOwners:
    """The namespaces on each host, in the order they came (oldest Ingress first)."""

    def __init__(self, mode: str) -> None:
        if mode not in MODES:
            raise ValueError(f"host owner mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self._namespaces: dict[str, list[str]] = {}

    def refusal(self, host: str, namespace: str) -> str | None:
        """Why a rule of `namespace` for `host` is not served, or None if it is."""
        namespaces = self._namespaces.setdefault(host, [])
        if namespace not in namespaces:
            namespaces.append(namespace)
        owner = namespaces[0]
        if self.mode == "namespace" and namespace != owner:
            return (
                f"host {host} belongs to namespace {owner}, the namespace of its oldest "
                "Ingress (--host-owner namespace); this Ingress's rules for it are not served"
            )
        return None

    def shared(self) -> dict[str, tuple[str, ...]]:
        """Hosts that Ingresses of several namespaces name: host -> namespaces, owner first."""
        return {
            host: tuple(namespaces)
            for host, namespaces in sorted(self._namespaces.items())
            if len(namespaces) > 1
        }
