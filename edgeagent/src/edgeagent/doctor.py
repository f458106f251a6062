"""`edgeagent doctor`: what an operator asks on an edge node when traffic fails (issue 15).

Run with the agent's own settings (`--config /etc/edgeagent/config.yaml`, the same flags as
`edgeagent run`), it checks, in this order:

- `api`: the API server answers an authenticated request with the agent's credentials
  (401: the token is refused; 403: valid, but RBAC refuses);
- `token`: when the bearer token expires, from its JWT `exp` claim if it has one;
- `clock`: the skew between this node and the API server (its `Date` header): tokens and
  certificates are checked against clocks;
- `vip`: which of the configured VIPs (`--publish-status-address`) this node holds;
- `nginx`: nginx answers its status server with the generation `current` points at;
- `pod routes`: whether this node has a route to each Node's `spec.podCIDRs` (pod_route_check.py),
  so that a failing backend check reads as "no route" (nodeport mode or BGP) or "routed, but
  the pods or a firewall refuse";
- `backend <namespace>/<service>`: a TCP connection from this node to a sample of each
  served Service's endpoints (pod IPs, or NodePorts in the nodeport mode; probe.py).

The report is one line per check, or with `--json` `{"checks": [{"name", "ok",
"detail"}]}`; the exit status is 0 only when every check is ok. The model is built from
the API as the agent builds it, without Secrets (the doctor needs no private key).
"""

from __future__ import annotations

import argparse
import base64
import binascii
import email.utils
import ipaddress
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import kubernetes
import urllib3

from edgeagent import kube, model, pod_route_check, probe
from edgeagent.apply import CURRENT, GENERATION_PREFIX, Applier
from edgeagent.daemon import model_options
from edgeagent.gateway import routing as gateway_routing
from edgeagent.informer import list_call
from edgeagent.resources import RESOURCES
from edgeagent.settings import AgentSettings
from edgeagent.vips import held_addresses

MAX_CLOCK_SKEW = 5.0
"""Seconds. NTP keeps nodes within milliseconds; the Date header has a resolution of one
second, so anything beyond a few seconds is a clock that is not synchronised."""
REQUEST_TIMEOUT = 10.0


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help='print {"checks": [...]} as JSON')
    parser.add_argument(
        "--sample",
        type=int,
        default=probe.SAMPLE_SIZE,
        metavar="N",
        help="endpoints tried per Service (default: %(default)s)",
    )


def main(args: argparse.Namespace, settings: AgentSettings) -> int:
    checks = list(run_checks(settings, max(1, args.sample)))
    if args.json:
        print(json.dumps({"checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for check in checks:
            print(f"{'ok  ' if check.ok else 'FAIL'} {check.name}: {check.detail}")
    return 0 if all(check.ok for check in checks) else 1


def run_checks(settings: AgentSettings, sample: int) -> Iterator[Check]:
    try:
        client = kube.api_client(settings.api)
    except (OSError, ValueError, kubernetes.config.ConfigException) as error:
        yield Check("api", False, f"no usable credentials: {error}")
        return
    answered = yield from api_checks(client)
    yield vip_check(settings.status.addresses)
    yield nginx_check(Applier(settings.apply))
    if answered:
        yield from backend_checks(client, settings, sample)


def api_checks(client: kubernetes.client.ApiClient) -> Iterator[Check]:
    """`api`, `token` and `clock`; returns whether the API answered."""
    server = client.configuration.host
    yield token_check(client.configuration)
    sent = time.time()
    try:
        response = kubernetes.client.CoreV1Api(client).list_node(
            limit=1, _preload_content=False, _request_timeout=REQUEST_TIMEOUT
        )
    except kubernetes.client.ApiException as error:
        why = {401: "the token is refused (401)", 403: "authenticated, but RBAC refuses (403)"}
        yield Check("api", False, f"{server}: {why.get(error.status, error.reason)}")
        return False
    except (urllib3.exceptions.HTTPError, OSError) as error:
        yield Check("api", False, f"{server} does not answer: {error}")
        return False
    received = time.time()
    yield Check("api", True, f"{server} answers the agent's credentials")
    yield clock_check(response.headers.get("Date"), (sent + received) / 2)
    return True


def token_check(configuration: kubernetes.client.Configuration) -> Check:
    bearer = configuration.auth_settings().get("BearerToken", {}).get("value") or ""
    token = bearer.removeprefix("Bearer ").strip()
    if not token:
        return Check("token", True, "no bearer token (client certificate or exec plugin)")
    expiry = jwt_expiry(token)
    if expiry is None:
        return Check("token", True, "the token names no expiry (not a JWT, or no exp claim)")
    left = expiry - time.time()
    when = datetime.fromtimestamp(expiry, UTC).isoformat(timespec="seconds")
    if left <= 0:
        return Check("token", False, f"expired at {when}")
    return Check("token", True, f"expires at {when} (in {_duration(left)})")


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim (Unix time) of a JWT, unverified: only the API server can verify
    it, and the doctor only says when it will stop working."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return None
    expiry = payload.get("exp") if isinstance(payload, dict) else None
    return float(expiry) if isinstance(expiry, int | float) else None


def clock_check(date: str | None, now: float) -> Check:
    if not date:
        return Check("clock", False, "the API server sent no Date header")
    try:
        server = email.utils.parsedate_to_datetime(date).timestamp()
    except (TypeError, ValueError):
        return Check("clock", False, f"the API server's Date header {date!r} is not a date")
    skew = now - server
    detail = f"this node is {abs(skew):.1f} s {'ahead of' if skew > 0 else 'behind'} the API"
    if abs(skew) > MAX_CLOCK_SKEW:
        return Check("clock", False, f"{detail} (more than {MAX_CLOCK_SKEW:g} s: check NTP)")
    return Check("clock", True, detail)


def vip_check(vips: tuple[str, ...]) -> Check:
    if not vips:
        return Check("vip", True, "no VIP configured (--publish-status-address)")
    try:
        local = held_addresses()
    except OSError as error:
        return Check("vip", False, f"cannot read this node's addresses: {error}")
    held = [vip for vip in vips if ipaddress.ip_address(vip) in local]
    if held:
        return Check("vip", True, f"this node holds {', '.join(held)} (the VIP holder)")
    return Check("vip", True, f"this node holds none of {', '.join(vips)} (a backup)")


def nginx_check(applier: Applier) -> Check:
    serving = applier.serving_generation()
    try:
        current = os.readlink(applier.dir / CURRENT)
    except OSError as error:
        current = f"unreadable ({error.strerror})"
    if serving is None:
        where = applier.settings.status_listen
        return Check("nginx", False, f"no answer from the status server on {where}")
    if current != f"{GENERATION_PREFIX}{serving}":
        return Check("nginx", False, f"serves generation {serving}, but current -> {current}")
    return Check("nginx", True, f"serves generation {serving} (current -> {current})")


def backend_checks(
    client: kubernetes.client.ApiClient, settings: AgentSettings, sample: int
) -> Iterator[Check]:
    try:
        inputs = read_inputs(client, settings.watch.namespaces)
    except (kubernetes.client.ApiException, urllib3.exceptions.HTTPError, OSError) as error:
        yield Check("backends", False, f"cannot list the served objects: {error}")
        return
    options = model_options(settings)
    yield Check("pod routes", *pod_route_check.assess(inputs.nodes, options.backend_mode))
    built, _ = gateway_routing.build(model.build(inputs, options), inputs, options)
    reaches = probe.probe(built.upstreams, sample)
    if not reaches:
        yield Check("backends", True, "no Service with ready endpoints is served")
    for reach in reaches:
        name = f"backend {reach.namespace}/{reach.service}"
        yield Check(name, not reach.unreachable, reach.detail)


def read_inputs(client: kubernetes.client.ApiClient, namespaces: tuple[str, ...]) -> model.Inputs:
    """Every watched kind but Secrets, as the agent lists them; a kind the cluster does
    not serve (the Gateway API's CRDs not installed) is empty."""
    kinds: dict[str, list[dict]] = {}
    for resource in RESOURCES:
        if resource.held_only_while_referenced:
            continue
        items = kinds.setdefault(resource.name, [])
        for namespace in (namespaces if resource.namespaced else ()) or (None,):
            try:
                response = list_call(resource, client, namespace)(
                    _preload_content=False, _request_timeout=REQUEST_TIMEOUT
                )
            except kubernetes.client.ApiException as error:
                if error.status == 404:
                    continue
                raise
            items.extend(json.loads(response.data).get("items") or [])
    return model.Inputs(**kinds)


def _duration(seconds: float) -> str:
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours} h {rest // 60} min" if hours else f"{rest // 60} min {rest % 60} s"
