"""Host servers that nginx -t refuses, withheld so that everything else is served.

The grammar and the TLS check (tls_check.py) stop what they can foresee; this is the net
under them. When nginx -t refuses a candidate, apply.py finds the host server blocks it
refuses on their own (`ApplyResult.offenders`); the controller remembers each by its
fingerprint and, in this and every later sync while the block renders the same, builds
the candidate with `withhold`: the host keeps the server it had in the model that serves
(with that model's upstreams and certificate pair where the new model lacks or changed
them), or is not served if it had none. Each Ingress with a rule for the host gets a
Problem (code "quarantined"). One namespace's broken block therefore holds back that
block alone, not every later change of everyone (issue 14). Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from edgeagent.gateway.routing import with_regex_names
from edgeagent.model import Model, Problem, Server

CODE = "quarantined"
SERVER_PREFIX = "server "


def host_of(block_id: str) -> str:
    """The host of a host server's block id (`render.Rendered.blocks`)."""
    return block_id.removeprefix(SERVER_PREFIX)


def ingresses_with_host(ingresses: Iterable[dict], host: str) -> list[tuple[str, str]]:
    """(namespace, name) of the Ingresses that have a rule for `host`, sorted."""
    found = set()
    for ingress in ingresses:
        spec = ingress.get("spec")
        rules = spec.get("rules") if isinstance(spec, dict) else None
        for rule in rules if isinstance(rules, list) else ():
            if isinstance(rule, dict) and rule.get("host") == host:
                metadata = ingress.get("metadata") or {}
                found.add((metadata.get("namespace", ""), metadata.get("name", "")))
    return sorted(found)


def withhold(
    built: Model,
    refused: Mapping[str, str],
    serving: Model | None,
    ingresses: Iterable[dict],
) -> Model:
    """`built` with the servers of the hosts in `refused` (host -> nginx's reason) put
    back to what `serving` has for them, or left out."""
    if not refused:
        return built
    before = {server.host: server for server in serving.servers} if serving else {}
    servers: list[Server] = []
    upstreams = {upstream.name: upstream for upstream in built.upstreams}
    certificates = dict(built.certificates)
    for server in built.servers:
        if server.host not in refused:
            servers.append(server)
            continue
        previous = before.get(server.host)
        if previous is None:
            continue
        assert serving is not None
        servers.append(previous)
        used = {
            upstream
            for location in previous.locations
            for upstream in (location.upstream, *(choice.upstream for choice in location.choices))
            if upstream
        }
        for upstream in serving.upstreams:
            if upstream.name in used and upstream.name not in upstreams:
                upstreams[upstream.name] = upstream
        if previous.certificate is not None:
            certificates[previous.certificate] = serving.certificates[previous.certificate]
    problems = list(built.problems)
    ingresses = list(ingresses)
    for host, reason in sorted(refused.items()):
        fallback = "its previous configuration" if host in before else "no server"
        for namespace, name in ingresses_with_host(ingresses, host):
            message = f"nginx -t refuses the server of host {host}: {reason}; it keeps {fallback}"
            problems.append(Problem("Ingress", namespace, name, message, CODE))
    return dataclasses.replace(
        built,
        # A server put back was named beside the wildcards of its own model.
        servers=tuple(with_regex_names(servers)),
        upstreams=tuple(upstreams[name] for name in sorted(upstreams)),
        certificates=certificates,
        problems=tuple(problems),
    )
