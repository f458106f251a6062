"""Request counters of the edge's nginx, as ingress-nginx names them, on the agent's /metrics.

In the dynamic mode, lua/edgeagent_requests.lua counts every request in a shared dict by
"STATUS METHOD HOST BACKEND" (a series), with the histogram of $request_time; the status
server answers the counts (GET /edgeagent/requests, the control token). At each scrape of
/metrics, `request_collector.RequestCollector` reads them and exports:

- `nginx_ingress_controller_requests` (labels status, method, host, namespace, ingress,
  service: ingress-nginx's names, internal/ingress/metric/collectors/socket.go);
- `nginx_ingress_controller_request_duration_seconds` (histogram, ingress-nginx's default
  --time-buckets);

so one query or one comparison (cutover.py) reads the edge and an in-cluster ingress-nginx
alike. Not ingress-nginx's: no `path` or `canary` label (the edge counts per backend, not per
location), and HOST is the Ingress host as written (`*.example.com` for any name under a
wildcard, never the client's Host, so clients cannot add label sets). Requests nginx
answered itself for an Ingress host (no backend: a 404 of a path no rule has, a redirect)
have empty namespace, service and ingress; those of no Ingress host (the default server's
404) are not counted, as ingress-nginx's --metrics-per-undefined-host=false.

The plain mode (no Lua) counts nothing: `edgeagent_request_counters_available` says 0 there,
and a cutover refuses such an edge. The counters are nginx's: they survive reloads, and
restart from 0 with nginx (a counter reset, as Prometheus expects).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import HistogramMetricFamily, Metric

# ingress-nginx's --time-buckets default (Prometheus' DefBuckets); lua/edgeagent_requests.lua
# gets them from its init, rendered into edge.conf.
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Their bounds as text, as ingress-nginx writes them (Go's %g): "1", "10", not Python's "1.0".
BOUNDS = tuple(format(bucket, "g") for bucket in BUCKETS)
SERIES_MAX = 5000
"""Label sets counted at most; the requests of any further one are counted as overflow.
Statuses come from backends (any code they answer), so the set is unbounded without it; 5000
is ten per host at 500 hosts."""
SERIES_BYTES = 4096
"""What a series takes in the shared dict at most: its 16 keys (lua/edgeagent_requests.lua),
14 small ones (a short key and a number) in 128-byte slab chunks (nginx's node of about
70 bytes with key and value, rounded up to a power of two), "i" SERIES and "n" N in chunks of
up to 512 bytes (a host is at most 253): 2.8 kB, rounded up."""


def requests_dict_mb(series_max: int) -> int:
    """The shared dict's size for `series_max` series: SERIES_BYTES each, and 1 MB for the
    slab's own pages and the dict's two global keys, so no count is evicted."""
    return -(-series_max * SERIES_BYTES // 2**20) + 1


REQUESTS = "nginx_ingress_controller_requests"
DURATION = "nginx_ingress_controller_request_duration_seconds"
LABELS = ("status", "method", "host", "namespace", "ingress", "service")


class CountsError(ValueError):
    """nginx's answer is not the counters' format."""


@dataclass(frozen=True)
class Series:
    status: str
    method: str
    host: str
    backend: str
    """$edgeagent_backend, the upstream's name; empty: nginx answered itself."""
    count: int
    duration_sum: float
    buckets: tuple[int, ...]
    """Cumulative counts at each of BUCKETS, then +Inf."""


@dataclass(frozen=True)
class Counts:
    series: tuple[Series, ...]
    overflow: int
    malformed: int = 0
    """Series lines not in the format, left out (one bad line must not lose the others)."""


def parse(text: str) -> Counts:
    """The status server's answer (lua/edgeagent_requests.lua's `handle`)."""
    lines = text.rstrip("\n").split("\n")
    head = lines[0].split(" ")
    if len(head) != 2 or head[0] != "overflow" or not head[1].isdigit():
        raise CountsError(f"expected 'overflow N' first, got {lines[0][:80]!r}")
    series = [s for s in map(_series, lines[1:]) if s is not None]
    return Counts(tuple(series), int(head[1]), len(lines) - 1 - len(series))


def _series(line: str) -> Series | None:
    """One series line; None: not in the format."""
    fields = line.split("\t")
    key = fields[0].split(" ")
    if len(fields) != 4 or len(key) != 4:
        return None
    try:
        buckets = tuple(int(b) for b in fields[3].split(" "))
        count, duration_sum = int(fields[1]), float(fields[2])
    except ValueError:
        return None
    if len(buckets) != len(BUCKETS) + 1:
        return None
    return Series(*key, count, duration_sum, buckets)


def ingress_index(ingresses: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str, str], str]:
    """(host, namespace, service) -> the Ingress routing that host to that Service (the
    first by name if several do); host "" for a defaultBackend."""
    index: dict[tuple[str, str, str], str] = {}
    for ingress in sorted(ingresses, key=lambda i: i["metadata"]["name"]):
        namespace, name = ingress["metadata"]["namespace"], ingress["metadata"]["name"]
        spec = ingress.get("spec") or {}
        default = ((spec.get("defaultBackend") or {}).get("service") or {}).get("name")
        if default:
            index.setdefault(("", namespace, default), name)
        for rule in spec.get("rules") or ():
            for path in (rule.get("http") or {}).get("paths") or ():
                service = ((path.get("backend") or {}).get("service") or {}).get("name")
                if service:
                    index.setdefault((rule.get("host") or "", namespace, service), name)
    return index


def _ingress_of(index: Mapping[tuple[str, str, str], str], host: str, ns: str, svc: str) -> str:
    return index.get((host, ns, svc)) or index.get(("", ns, svc), "")


def families(
    counts: Counts,
    services: Mapping[str, tuple[str, str]],
    ingresses: Mapping[tuple[str, str, str], str],
) -> list[Metric]:
    """The exposition of `counts`; `services`: upstream name -> (namespace, service).
    Series that map to the same labels (a backend renamed by a new generation) add up."""
    requests: dict[tuple[str, ...], int] = {}
    durations: dict[tuple[str, ...], tuple[float, list[int]]] = {}
    for s in counts.series:
        namespace, service = services.get(s.backend, ("", ""))
        ingress = _ingress_of(ingresses, s.host, namespace, service) if service else ""
        labels = (s.status, s.method, s.host, namespace, ingress, service)
        requests[labels] = requests.get(labels, 0) + s.count
        total, buckets = durations.get(labels, (0.0, [0] * len(s.buckets)))
        added = [a + b for a, b in zip(buckets, s.buckets, strict=True)]
        durations[labels] = (total + s.duration_sum, added)
    # Untyped, not a counter: prometheus_client would export a counter as ..._requests_total,
    # and ingress-nginx's name (what dashboards and cutover.py query) has no suffix.
    counter = Metric(REQUESTS, "The total number of client requests (a counter)", "unknown")
    for labels, count in sorted(requests.items()):
        counter.add_sample(REQUESTS, dict(zip(LABELS, labels, strict=True)), count)
    histogram = HistogramMetricFamily(
        DURATION, "The request processing time in seconds", labels=LABELS
    )
    for labels, (total, buckets) in sorted(durations.items()):
        bounds = [*BOUNDS, "+Inf"]
        histogram.add_metric(list(labels), list(zip(bounds, buckets, strict=True)), total)
    overflow = Metric(
        "edgeagent_request_counters_overflow",
        f"Requests not counted by label set: nginx counts at most {SERIES_MAX} label sets "
        "(a counter)",
        "unknown",
    )
    overflow.add_sample("edgeagent_request_counters_overflow", {}, counts.overflow)
    return [counter, histogram, overflow]
