"""The names a host's server answers besides its own: server-alias and the other name of
from-to-www-redirect (`edgeagent.annotations.server_names` reads them). Pure: used by
`model.build`, which hands over the Ingresses oldest first.

Who gets a name, as ingress-nginx decides and under the owner rules of the tree:
- the first (oldest) Ingress with aliases on a host gives them; another Ingress's
  different aliases for that host are a conflict;
- an alias is a name claimed as a host is (`--host-owner`, ownership.py), after every
  host with rules has been (so an alias never takes a name from another namespace's
  rules), and one name is the alias of one host only (the oldest Ingress's);
- a name with rules of its own is served by them: as an alias, or as the other name of
  from-to-www-redirect, it is left out, with a Problem.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from cryptography import x509

from edgeagent.ownership import HostOwners

if TYPE_CHECKING:
    from edgeagent.grammar import CertPair
    from edgeagent.model import Server, _Ingress

WWW = "www."
HOST_MAX_LENGTH = 253


class ServerNames:
    def __init__(self, problem: Callable[..., None], conflict: Callable[..., None]) -> None:
        self._problem = problem  # model._Builder.problem
        self._conflict = conflict  # model._Builder._conflict
        self._aliases: dict[str, tuple[_Ingress, tuple[str, ...]]] = {}
        self._alias_owner: dict[str, tuple[_Ingress, str]] = {}  # alias -> (Ingress, host)
        self._www: dict[str, _Ingress] = {}

    def claim(self, ingress: _Ingress, host: str, owners: HostOwners) -> None:
        """What `ingress`, served on `host`, asks for."""
        settings = ingress.settings
        if settings.from_to_www_redirect:
            self._www.setdefault(host, ingress)
        if not settings.server_alias:
            return
        previous = self._aliases.get(host)
        if previous is not None:
            if previous[0] is not ingress and previous[1] != settings.server_alias:
                self._conflict(ingress, f"server-alias for host {host}", previous[0])
            return
        granted = []
        for alias in settings.server_alias:
            if alias == host:
                continue  # its own name already, as ingress-nginx skips it
            refusal = owners.refusal(alias, ingress.namespace)
            owner = self._alias_owner.get(alias)
            if refusal is not None:
                self._own_problem(ingress, f"server-alias {alias}: {refusal}", "conflict")
            elif owner is not None:
                what = f"server-alias {alias} (of host {owner[1]})"
                self._conflict(ingress, what, owner[0])
            else:
                self._alias_owner[alias] = (ingress, host)
                granted.append(alias)
        self._aliases[host] = (ingress, tuple(granted))

    def aliases(self, host: str, hosts_with_rules: dict) -> tuple[str, ...]:
        """The aliases of `host`'s server: those no rule serves as a host of its own."""
        ingress, aliases = self._aliases.get(host, (None, ()))
        kept = []
        for alias in aliases:
            if alias in hosts_with_rules:
                reason = (
                    f"server-alias {alias} of host {host} is a host with rules of its own, "
                    "which serve it (as in ingress-nginx); not an alias"
                )
                self._own_problem(ingress, reason, "warning")
            else:
                kept.append(alias)
        return tuple(kept)

    def with_www_redirects(
        self, servers: list[Server], certificates: dict[tuple[str, str], CertPair]
    ) -> list[Server]:
        """`servers` and the redirect server of each from-to-www-redirect, by host."""
        if not self._www:
            return servers  # nearly every build: no pass over 10,000 servers
        taken = {server.host for server in servers}
        taken.update(alias for server in servers for alias in server.aliases)
        redirects = []
        for server in servers:
            ingress = self._www.get(server.host)
            if ingress is None:
                continue
            other = _other_name(server.host)
            if other is None:
                reason = (
                    f"from-to-www-redirect on host {server.host}: no other name to "
                    "redirect from (a wildcard, or too long with www.)"
                )
                self._own_problem(ingress, reason, "warning")
                continue
            if other in taken:
                reason = (
                    f"from-to-www-redirect: {other} has rules of its own (or is an alias), "
                    f"which serve it; no redirect from it to {server.host} (as in ingress-nginx)"
                )
                self._own_problem(ingress, reason, "warning")
                continue
            certificate = server.certificate
            if certificate is not None and not names_host(certificates[certificate], other):
                reason = (
                    f"from-to-www-redirect: the certificate of host {server.host} does not "
                    f"name {other}; HTTPS requests for {other} get the default certificate"
                )
                self._own_problem(ingress, reason, "warning")
                certificate = None
            taken.add(other)
            redirects.append(
                replace(
                    server,
                    host=other,
                    locations=(),
                    certificate=certificate,
                    app_root=None,
                    aliases=(),
                    redirect_to=server.host,
                )
            )
        return sorted([*servers, *redirects], key=lambda server: server.host)

    def _own_problem(self, ingress: _Ingress, reason: str, code: str) -> None:
        self._problem("Ingress", ingress.namespace, ingress.name, reason, code)


def _other_name(host: str) -> str | None:
    if host.startswith("*."):
        return None
    other = host[len(WWW) :] if host.startswith(WWW) else WWW + host
    return other if "." in other and len(other) <= HOST_MAX_LENGTH else None


@functools.lru_cache(maxsize=256)
def _dns_names(certificate_pem: bytes) -> tuple[str, ...]:
    certificate = x509.load_pem_x509_certificates(certificate_pem)[0]
    try:
        extension = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(name.lower() for name in extension.value.get_values_for_type(x509.DNSName))


def names_host(pair: CertPair, host: str) -> bool:
    """Whether the certificate's DNS names cover `host` (a `*.` name covers one label)."""
    for name in _dns_names(pair.certificate_pem):
        if name == host or (
            name.startswith("*.") and host.partition(".")[2] == name[2:] and "." in host
        ):
            return True
    return False
