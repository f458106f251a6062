"""The agent's side of the request counters: reads nginx's at each scrape of /metrics
(request_counts.py says what is exported and how)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import GaugeMetricFamily, Metric

from edgeagent import request_counts
from edgeagent.control import ControlError
from edgeagent.model import Upstream

log = logging.getLogger(__name__)


def _available(value: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        "edgeagent_request_counters_available",
        f"1 if {request_counts.REQUESTS} and {request_counts.DURATION} below are nginx's; 0: "
        "none (the plain mode has no Lua and counts nothing, or nginx did not answer this "
        "scrape)",
        value=value,
    )


class RequestCollector:
    """A prometheus_client collector reading nginx's counters at each scrape."""

    def __init__(
        self,
        read: Callable[[], str] | None,
        upstreams: Callable[[], tuple[Upstream, ...]],
        ingresses: Callable[[], Mapping[Any, Mapping[str, Any]]],
    ) -> None:
        """`read`: the status server's answer (None: the plain mode); `upstreams` and
        `ingresses`: those of the configuration that serves, for the labels. Their indexes
        are built again only when the controller replaces them (at 100k Ingresses a scrape
        must not walk them all)."""
        self.read = read
        self.upstreams = upstreams
        self.ingresses = ingresses
        self._services: tuple[object, dict[str, tuple[str, str]]] = (None, {})
        self._ingress_index: tuple[object, dict[tuple[str, str, str], str]] = (None, {})

    def describe(self) -> list[Metric]:
        return [_available(0)]  # registering must not read nginx

    def _indexes(self) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, str, str], str]]:
        upstreams, ingresses = self.upstreams(), self.ingresses()
        if self._services[0] is not upstreams:
            self._services = (upstreams, _services(upstreams))
        if self._ingress_index[0] is not ingresses:
            self._ingress_index = (ingresses, request_counts.ingress_index(ingresses.values()))
        return self._services[1], self._ingress_index[1]

    def collect(self) -> Iterator[Metric]:
        if self.read is None:
            yield _available(0)
            return
        try:
            counts = request_counts.parse(self.read())
        except (ControlError, request_counts.CountsError) as error:
            log.warning("cannot read nginx's request counters", extra={"error": str(error)})
            yield _available(0)
            return
        if counts.malformed:
            log.warning(
                "left out malformed lines of nginx's request counters",
                extra={"lines": counts.malformed},
            )
        yield _available(1)
        yield from request_counts.families(counts, *self._indexes())


def _services(upstreams: Iterable[Upstream]) -> dict[str, tuple[str, str]]:
    return {u.name: (u.namespace, u.service) for u in upstreams}
