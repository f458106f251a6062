"""An HTTPRoute rule's `retry` (experimental in the Gateway API v1.6), as nginx's
`proxy_next_upstream`.

nginx retries a request on another endpoint of its upstream, each endpoint at most once
per request: `attempts` retries need that many more endpoints (`proxy_next_upstream_tries`
is attempts + 1 tries in all, bounded by the endpoints). Every retry stanza retries on
connection errors and timeouts (the spec: SHOULD), plus the `codes` that nginx can retry
on (the spec's required 500, 502, 503, 504, and 403, 404, 429); any other code refuses
the route, naming it: retrying fewer codes than asked would answer errors its author
meant to be retried. nginx waits no `backoff` between tries: the rule is served without
it and reported. nginx, as ingress-nginx, retries no POST, LOCK or PATCH request once it
was sent.

Pure: `parse` reads a rule's `retry`; `next_upstream` is what a location's settings take.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeagent import grammar
from edgeagent.grammar import Invalid

RETRIABLE = (403, 404, 429, 500, 502, 503, 504)
"""The codes nginx's proxy_next_upstream (and grpc_next_upstream) can retry on."""
ALWAYS = ("error", "timeout")
"""A connection error and a timeout: retried whenever a rule asks for retries."""
MAX_ATTEMPTS = 100


@dataclass(frozen=True)
class Retry:
    codes: tuple[int, ...] = ()
    attempts: int | None = None
    """Retries after the first try; None: as many as the endpoints allow."""
    backoff_ms: int | None = None
    """Asked for, not served: nginx retries at once."""

    @property
    def next_upstream(self) -> str:
        """nginx's conditions for another try."""
        return " ".join((*ALWAYS, *(f"http_{code}" for code in self.codes)))

    @property
    def tries(self) -> int:
        """nginx's tries in all (0: as many as the upstream has endpoints)."""
        return 0 if self.attempts is None else self.attempts + 1


def parse(value: Any, what: str) -> Retry | None:
    """A rule's `retry` (None: absent), or Invalid naming the field."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise Invalid(f"{what} must be a mapping")
    unknown = sorted(set(value) - {"codes", "attempts", "backoff"})
    if unknown:
        raise Invalid(f"{what}.{unknown[0]} is not served")
    codes = value.get("codes") or []
    if not isinstance(codes, list):
        raise Invalid(f"{what}.codes must be a list")
    for i, code in enumerate(codes):
        if not isinstance(code, int) or isinstance(code, bool) or not 400 <= code <= 599:
            raise Invalid(f"{what}.codes[{i}] must be an HTTP status code from 400 to 599")
        if code not in RETRIABLE:
            served = ", ".join(map(str, RETRIABLE))
            raise Invalid(f"{what}.codes[{i}] {code}: nginx retries on {served} only")
    attempts = value.get("attempts")
    if attempts is not None and (
        not isinstance(attempts, int)
        or isinstance(attempts, bool)
        or not 1 <= attempts <= MAX_ATTEMPTS
    ):
        raise Invalid(f"{what}.attempts must be an integer from 1 to {MAX_ATTEMPTS}")
    backoff = value.get("backoff")
    backoff_ms = None if backoff is None else grammar.gateway_duration(backoff, f"{what}.backoff")
    return Retry(tuple(sorted(set(codes))), attempts, backoff_ms)
