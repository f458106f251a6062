"""Can this node reach the backends it proxies to? (issue 15)

An edge without routes to the pod network (an overlay CNI, the endpoints mode) renders a
perfect configuration and times out on every request; nothing else in the agent sees it.
The probe opens a TCP connection to a sample of each Service's endpoints (pod IPs, or
NodePorts on the Nodes in the nodeport mode) from this node, as nginx would.

Used twice, the same way: by `edgeagent doctor` once (doctor.py), and by the agent in the
background (`BackendProbe`, a thread supervised like the informers: its death makes
/healthz fail), which exports `edgeagent_backend_unreachable{namespace,service}` (1 while
none of a Service's sampled endpoints accepts a connection) and posts an Event
`BackendUnreachable` on the Service.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from edgeagent.model import Upstream
from edgeagent.options import ConfigError

log = logging.getLogger(__name__)

SAMPLE_SIZE = 3
"""Endpoints tried per Service: enough to tell "no route to the pods" (all fail) from one
dying pod, few enough that 10,000 Services cost seconds, not minutes."""
CONNECT_TIMEOUT = 2.0
"""A missing route shows as a timeout; a LAN answers well within this."""
WORKERS = 16
"""Connections tried at once: most wait on a timeout, not on the CPU."""
MIN_INTERVAL = 0.1


def interval(value: object) -> float:
    """The probe's interval setting: a round must end before the next may start, and a
    zero would spin."""
    number = float(value)  # type: ignore[arg-type]
    if number < MIN_INTERVAL:
        raise ConfigError(f"{value!r} is under {MIN_INTERVAL} s")
    return number


@dataclass(frozen=True)
class Reach:
    """What the probe found for one Service: the endpoints tried and those that refused
    or timed out, with why."""

    namespace: str
    service: str
    tried: tuple[str, ...]
    failed: tuple[tuple[str, str], ...]

    @property
    def unreachable(self) -> bool:
        """No sampled endpoint accepted: nothing this node sends there can be served."""
        return bool(self.tried) and len(self.failed) == len(self.tried)

    @property
    def detail(self) -> str:
        if not self.tried:
            return "no ready endpoint to try"
        accepted = len(self.tried) - len(self.failed)
        text = f"{accepted} of {len(self.tried)} sampled endpoints accept a TCP connection"
        if self.failed:
            text += ": " + ", ".join(f"{endpoint} {why}" for endpoint, why in self.failed)
        return text


def sample(endpoints: tuple[str, ...], size: int) -> tuple[str, ...]:
    """Up to `size` endpoints spread over the sorted list (pods of other zones and Nodes
    rather than the first few)."""
    if len(endpoints) <= size:
        return endpoints
    return tuple(endpoints[i * len(endpoints) // size] for i in range(size))


def connect(endpoint: str, timeout: float) -> str | None:
    """Why a TCP connection to "ip:port" or "[ipv6]:port" fails, or None if it succeeds."""
    host, _, port = endpoint.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return None
    except TimeoutError:
        return f"timed out after {timeout:g} s"
    except OSError as error:
        return error.strerror or str(error)


def probe(
    upstreams: Iterable[Upstream],
    size: int = SAMPLE_SIZE,
    timeout: float = CONNECT_TIMEOUT,
) -> list[Reach]:
    """Each Service's reach (its ports' upstreams together), sorted by namespace/name."""
    endpoints: dict[tuple[str, str], set[str]] = {}
    for upstream in upstreams:
        endpoints.setdefault((upstream.namespace, upstream.service), set()).update(
            upstream.endpoints
        )
    tried = {key: sample(tuple(sorted(found)), size) for key, found in endpoints.items()}
    every = sorted({endpoint for chosen in tried.values() for endpoint in chosen})
    with ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="probe") as pool:
        errors = dict(zip(every, pool.map(lambda e: connect(e, timeout), every), strict=True))
    return [
        Reach(
            namespace,
            service,
            chosen,
            tuple((e, errors[e]) for e in chosen if errors[e] is not None),
        )
        for (namespace, service), chosen in sorted(tried.items())
    ]


class BackendProbe:
    """The agent's background probe of the upstreams nginx serves, every `interval`."""

    def __init__(
        self,
        upstreams: Callable[[], Iterable[Upstream]],
        report: Callable[[list[Reach]], None],
        stop: threading.Event,
        interval: float,
    ) -> None:
        self.upstreams = upstreams
        self.report = report
        self.interval = interval
        self._stop = stop
        self.thread = threading.Thread(target=self.run, name="backend-probe", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def run(self) -> None:
        while not self._stop.wait(self.interval):
            reaches = probe(self.upstreams())
            for reach in reaches:
                if reach.unreachable:
                    log.warning(
                        "backend unreachable from this node",
                        extra={
                            "namespace": reach.namespace,
                            "object_name": reach.service,
                            "detail": reach.detail,
                        },
                    )
            self.report(reaches)
