"""Load generator of the failover drill: every request through the VIP, on a timeline.

Two kinds of traffic, both written as JSON lines (one per request) to --out:
- `new`: a fresh TCP connection every --period (20 ms), one request, `Connection: close`.
  These measure the gap: the first success after a fault shows when the VIP works again.
- `long`: --long-lived keep-alive connections, one request every --long-period (100 ms)
  on each. A request that fails on a connection which had already answered is `broken`
  (the client saw its connection die, as a WebSocket or a download would); the connection
  is then reopened. A close the server announced (`Connection: close`, nginx's
  keepalive_requests) is not a break.

It stops by itself after --max-seconds or --max-requests new-connection probes, or as
soon as --stop-file exists (the playbook's `always:` creates it), so a failed drill never
leaves it running.

Times are wall-clock epoch seconds (the playbook marks faults with `date +%s.%N`), taken
as one wall-clock reading plus a monotonic offset, so a clock step cannot reorder them.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, Any

from drill import httpwire


@dataclass(frozen=True)
class Settings:
    address: str
    port: int
    host_header: str
    path: str
    node_header: str
    period_s: float
    timeout_s: float
    long_lived: int
    long_period_s: float
    max_seconds: float
    max_requests: int
    stop_file: Path | None


class Timeline:
    """Writes records; one wall-clock anchor plus perf_counter offsets."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._wall0 = time.time()
        self._mono0 = time.perf_counter()

    def now(self) -> float:
        return self._wall0 + (time.perf_counter() - self._mono0)

    def write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record, separators=(",", ":")) + "\n")


def classify(error: BaseException) -> str:
    """A short, stable name for why a request failed (the report counts by it)."""
    if isinstance(error, TimeoutError):
        return "timeout"
    if isinstance(error, ConnectionRefusedError):
        return "refused"
    if isinstance(error, ConnectionResetError):
        return "reset"
    if isinstance(error, httpwire.ProtocolError):
        return "closed" if "closed" in str(error) else "protocol"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror.lower().replace(" ", "-")
    return type(error).__name__


def result_fields(response: httpwire.Response, node_header: str) -> dict[str, Any]:
    return {
        "ok": 200 <= response.status < 400,
        "status": response.status,
        "node": response.headers.get(node_header.lower()),
        "err": None,
    }


def failure_fields(error: BaseException) -> dict[str, Any]:
    return {"ok": False, "status": None, "node": None, "err": classify(error)}


async def probe_new_connection(settings: Settings, timeline: Timeline, due: float) -> None:
    """One request on a fresh connection. `due` is when the schedule wanted it (loop time):
    a late start means the controller itself was stalled, which the report shows apart
    from what the edge did."""
    lag_s = asyncio.get_running_loop().time() - due
    start = timeline.now()
    writer = None
    local_port = None
    try:
        async with asyncio.timeout(settings.timeout_s):
            reader, writer = await asyncio.open_connection(settings.address, settings.port)
            local_port = writer.get_extra_info("sockname")[1]
            writer.write(httpwire.build_request(settings.host_header, settings.path, False))
            response = await httpwire.read_response(reader)
        fields = result_fields(response, settings.node_header)
    except (OSError, TimeoutError, httpwire.ProtocolError) as error:
        fields = failure_fields(error)
    finally:
        if writer is not None:
            writer.close()
    elapsed_ms = (timeline.now() - start) * 1000
    timeline.write(
        {
            "kind": "new",
            "t": round(start, 6),
            "ms": round(elapsed_ms, 2),
            "lag": round(lag_s * 1000, 2),
            # The client port names the connection in a packet capture (tcpdump).
            "port": local_port,
            **fields,
        }
    )


class LongLivedConnection:
    """One keep-alive connection, reopened when it breaks; each request is a record."""

    def __init__(self, conn_id: int, settings: Settings, timeline: Timeline) -> None:
        self.conn_id = conn_id
        self.settings = settings
        self.timeline = timeline
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.answered = 0  # responses on the current connection

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None
        self.answered = 0

    async def request(self) -> None:
        settings = self.settings
        start = self.timeline.now()
        reused = self.answered > 0
        try:
            async with asyncio.timeout(settings.timeout_s):
                if self.reader is None or self.writer is None:
                    self.reader, self.writer = await asyncio.open_connection(
                        settings.address, settings.port
                    )
                self.writer.write(httpwire.build_request(settings.host_header, settings.path, True))
                response = await httpwire.read_response(self.reader)
            fields = result_fields(response, settings.node_header)
            self.answered += 1
            if not response.keeps_alive:
                self.close()
        except (OSError, TimeoutError, httpwire.ProtocolError) as error:
            fields = failure_fields(error)
            self.close()
        elapsed_ms = (self.timeline.now() - start) * 1000
        self.timeline.write(
            {
                "kind": "long",
                "conn": self.conn_id,
                "t": round(start, 6),
                "ms": round(elapsed_ms, 2),
                "reused": reused,
                # A failure on a connection that had answered before is a break the
                # client sees; a failed first request is just a failed connect.
                "broken": reused and not fields["ok"],
                **fields,
            }
        )

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not stop.is_set():
            await self.request()
            next_at = max(next_at + self.settings.long_period_s, loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), next_at - loop.time())
        self.close()


def should_stop(settings: Settings, started: float, now: float, sent: int) -> bool:
    if now - started >= settings.max_seconds or sent >= settings.max_requests:
        return True
    return settings.stop_file is not None and settings.stop_file.exists()


async def run(settings: Settings, timeline: Timeline) -> int:
    """Probe until a stop condition; returns the number of new-connection probes."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    long_tasks = [
        asyncio.create_task(LongLivedConnection(i, settings, timeline).run(stop))
        for i in range(settings.long_lived)
    ]
    probes: set[asyncio.Task[None]] = set()
    started = loop.time()
    sent = 0
    # A fixed schedule (start + n * period), not sleep(period) after each probe: a probe
    # stuck in its timeout must not delay the next one, or an outage would thin the
    # timeline exactly where it matters.
    while not should_stop(settings, started, loop.time(), sent):
        due = started + sent * settings.period_s
        task = asyncio.create_task(probe_new_connection(settings, timeline, due))
        probes.add(task)
        task.add_done_callback(probes.discard)
        sent += 1
        await asyncio.sleep(max(0.0, started + sent * settings.period_s - loop.time()))
    stop.set()
    await asyncio.gather(*long_tasks, *probes)
    return sent


def parse_args(argv: list[str] | None = None) -> tuple[Settings, Path]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--address", required=True, help="the VIP")
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--host-header", default="web1")
    parser.add_argument("--path", default="/")
    parser.add_argument(
        "--node-header", default="X-Edge-Node", help="response header naming the edge node"
    )
    parser.add_argument("--period", type=float, default=0.02, help="seconds between probes")
    parser.add_argument("--timeout", type=float, default=0.5, help="seconds per request")
    parser.add_argument("--long-lived", type=int, default=4, help="keep-alive connections")
    parser.add_argument("--long-period", type=float, default=0.1)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--max-requests", type=int, default=50000)
    parser.add_argument("--stop-file", type=Path)
    parser.add_argument("--out", type=Path, required=True, help="JSON lines, one per request")
    args = parser.parse_args(argv)
    settings = Settings(
        address=args.address,
        port=args.port,
        host_header=args.host_header,
        path=args.path,
        node_header=args.node_header,
        period_s=args.period,
        timeout_s=args.timeout,
        long_lived=args.long_lived,
        long_period_s=args.long_period,
        max_seconds=args.max_seconds,
        max_requests=args.max_requests,
        stop_file=args.stop_file,
    )
    return settings, args.out


def main(argv: list[str] | None = None) -> None:
    settings, out = parse_args(argv)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", buffering=1 << 16) as stream:
        timeline = Timeline(stream)
        meta = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()}
        timeline.write({"kind": "meta", "t": round(timeline.now(), 6), "pid": os.getpid(), **meta})
        sent = asyncio.run(run(settings, timeline))
        timeline.write({"kind": "end", "t": round(timeline.now(), 6), "probes": sent})


if __name__ == "__main__":
    main()
