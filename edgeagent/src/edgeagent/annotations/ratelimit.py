"""Rate and connection limits per client address (ingress-nginx: annotations/ratelimit).

As ingress-nginx writes them: `limit-rps` and `limit-rpm` become `limit_req` zones
(`rate=Nr/s`, `rate=Nr/m`) whose burst is the limit times `limit-burst-multiplier`
(default 5), without delay; `limit-connections` a `limit_conn` zone; each zone 5 MB,
keyed by the client's address, and shared by every path and host of the Ingress (its
own zones: another Ingress never shares them). A request over a limit gets 503 (nginx's
limit_req_status and limit_conn_status default, and ingress-nginx's). `limit-allowlist`
(or its old name `limit-whitelist`; the new name wins) lists networks that are never
limited. `limit-rate` and `limit-rate-after` (kilobytes) slow the answer to the client
after its first bytes (`limit_rate`, `limit_rate_after`; only while proxy buffering is
on, as in ingress-nginx). A limit of 0 is no limit, as in ingress-nginx.

A value ingress-nginx would have read as 0 (no limit) because it is no number refuses
the Ingress here: serving it unlimited would protect it less than its author asked.
The multiplier or the allow list without a limit to apply to is ignored, with a
warning.
"""

import dataclasses
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edgeagent import grammar
from edgeagent.annotations.config import Config
from edgeagent.annotations.reader import Reader
from edgeagent.grammar import Invalid

CONNECTIONS, RPS, RPM = "limit-connections", "limit-rps", "limit-rpm"
MULTIPLIER, RATE, RATE_AFTER = "limit-burst-multiplier", "limit-rate", "limit-rate-after"
ALLOW, ALLOW_OLD = "limit-allowlist", "limit-whitelist"
KEYS = (CONNECTIONS, RPS, RPM, MULTIPLIER, RATE, RATE_AFTER, ALLOW, ALLOW_OLD)

DEFAULT_BURST_MULTIPLIER = 5
ZONE_SIZE = "5m"
WHOLE = re.compile(r"0|[1-9][0-9]{0,8}")
# Far above any real limit, and small enough that nginx's arithmetic (rate and burst
# times 1000 in its counters) cannot overflow.
LIMIT_MAX = 1_000_000
MULTIPLIER_MAX = 1000
# nginx's limit_conn takes fewer than 65536 connections.
CONNECTIONS_MAX = 65535
KILOBYTES_MAX = 100_000_000


@dataclass(frozen=True)
class RateLimit:
    """The limits of one Ingress's locations; `owner` (namespace, name) names its zones."""

    connections: int = 0
    rps: int = 0
    rpm: int = 0
    burst_multiplier: int = DEFAULT_BURST_MULTIPLIER
    rate: int = 0
    """Kilobytes per second to the client (0: unlimited)."""
    rate_after: int = 0
    """Kilobytes sent before `rate` applies."""
    allowlist: tuple[str, ...] = ()
    """Client networks never limited."""
    owner: tuple[str, str] = ("", "")

    @property
    def zoned(self) -> bool:
        """Whether it needs http-level zones (a request or connection limit)."""
        return bool(self.connections or self.rps or self.rpm)

    @property
    def zone(self) -> str:
        """The name part of its zones and variables: a digest, a plain nginx token. Of
        every field, not only the owner: two objects of one name (manifests may repeat
        one) with different limits must not share zones, or one's would go undeclared."""
        return hashlib.blake2s(repr(self).encode(), digest_size=6).hexdigest()


def parse(read: Reader, config: Config) -> dict:
    connections = read.get(CONNECTIONS, _whole(CONNECTIONS_MAX)) or 0
    rps = read.get(RPS, _whole(LIMIT_MAX)) or 0
    rpm = read.get(RPM, _whole(LIMIT_MAX)) or 0
    multiplier = read.get(MULTIPLIER, _whole(MULTIPLIER_MAX, lowest=1))
    if read.has(ALLOW) and read.has(ALLOW_OLD):
        read.ignore(ALLOW_OLD, f"{ALLOW} is set too and takes precedence, as in ingress-nginx")
        allowlist = read.get(ALLOW, grammar.source_ranges)
    else:
        allowlist = read.get(ALLOW, grammar.source_ranges) or read.get(
            ALLOW_OLD, grammar.source_ranges
        )
    limits = RateLimit(
        connections=connections,
        rps=rps,
        rpm=rpm,
        burst_multiplier=multiplier or DEFAULT_BURST_MULTIPLIER,
        rate=read.get(RATE, _whole(KILOBYTES_MAX)) or 0,
        rate_after=read.get(RATE_AFTER, _whole(KILOBYTES_MAX)) or 0,
        allowlist=allowlist or (),
    )
    if not limits.zoned:
        for key in (MULTIPLIER, ALLOW, ALLOW_OLD):
            if read.has(key) and read.findings[key].status == "supported":
                read.ignore(key, f"no {RPS}, {RPM} or {CONNECTIONS} is set to apply it to")
    if limits == RateLimit():
        return {"rate_limit": None}
    return {"rate_limit": limits}


def owned(settings: Mapping[str, Any], namespace: str, name: str) -> Mapping[str, Any]:
    """The settings with the Ingress's limits made its own, so that its zones are."""
    limits = settings.get("rate_limit")
    if limits is None:
        return settings
    return {**settings, "rate_limit": dataclasses.replace(limits, owner=(namespace, name))}


def _whole(highest: int, lowest: int = 0):
    def parse_whole(value: object, what: str) -> int:
        text = grammar.string(value, what)
        if not WHOLE.fullmatch(text) or not lowest <= int(text) <= highest:
            raise Invalid(
                f"{what} {grammar.show(text)} must be a whole number, {lowest} to {highest}"
            )
        return int(text)

    return parse_whole


def zoned_limits(servers) -> tuple[RateLimit, ...]:
    """Every limit with zones among the servers' locations, each once, ordered by zone."""
    found = {
        location.settings.rate_limit.zone: location.settings.rate_limit
        for server in servers
        for location in server.locations
        if location.settings.rate_limit is not None and location.settings.rate_limit.zoned
    }
    return tuple(found[zone] for zone in sorted(found))
