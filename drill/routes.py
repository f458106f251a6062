"""BGP mode's VIP timeline: which nodes the upstream router sends the VIP's flows to, over time.

    python -m drill.routes --vip 198.51.100.100 --out holders/router.log --max-seconds 600

run inside the router's network namespace (the drill's `nsenter`, from the controller): it
writes the router's next hops for the VIP /32 (the route BGP installed, `proto bgp` in the main
table) as one JSON line at start and one at each change, on every route or nexthop event of
the kernel (`ip monitor`):

    {"t": 1765112851.203114, "via": ["198.51.100.11", "198.51.100.12"]}

`transitions` turns such a log into each node's (time, announced) steps, the same shape as
drill/holders.py's, so the report's timeline, baseline and picture read both modes alike. It
stops by itself after --max-seconds, or at SIGTERM (the drill's finish).
"""

from __future__ import annotations

import argparse
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

# Besides the kernel's events, a read this often (seconds): nothing is missed for long.
RESYNC_SECONDS = 1


def gateways(routes: list[dict]) -> list[str]:
    """The next hops of `ip -json route show` output, sorted."""
    found: set[str] = set()
    for route in routes:
        found |= {hop["gateway"] for hop in route.get("nexthops", []) if "gateway" in hop}
        if "gateway" in route:
            found.add(route["gateway"])
    return sorted(found)


def transitions(text: str, aliases: dict[str, str]) -> dict[str, list[tuple[float, bool]]]:
    """Each node's (time, the router sends it the VIP's flows) changes, from the log; next hops
    are named by `aliases` (address -> inventory name) where it knows them. Every node the
    aliases name starts as not announced at the log's first line."""
    nodes = set(aliases.values())
    records = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not records:
        raise ValueError("an empty route log: the watcher did not start")
    for record in records:
        nodes |= {aliases.get(hop, hop) for hop in record["via"]}
    steps: dict[str, list[tuple[float, bool]]] = {node: [] for node in sorted(nodes)}
    for record in records:
        via = {aliases.get(hop, hop) for hop in record["via"]}
        for node, node_steps in steps.items():
            announced = node in via
            if not node_steps or node_steps[-1][1] != announced:
                node_steps.append((record["t"], announced))
    return steps


# I/O


def read_gateways(vip: str) -> list[str]:
    shown = subprocess.run(
        ["ip", "-json", "route", "show", f"{vip}/32", "proto", "bgp"],
        capture_output=True,
        text=True,
        check=True,
    )
    return gateways(json.loads(shown.stdout or "[]"))


def watch(vip: str, out: Path, max_seconds: float) -> None:
    deadline = time.monotonic() + max_seconds
    monitor = subprocess.Popen(
        ["ip", "-o", "monitor", "route", "nexthop"], stdout=subprocess.PIPE, text=True
    )
    last = None
    try:
        with out.open("a", buffering=1) as log:
            while time.monotonic() < deadline:
                via = read_gateways(vip)
                if via != last:
                    log.write(json.dumps({"t": round(time.time(), 6), "via": via}) + "\n")
                    last = via
                ready, _, _ = select.select([monitor.stdout], [], [], RESYNC_SECONDS)
                if ready and not monitor.stdout.readline():
                    raise SystemExit("ip monitor ended")
    finally:
        monitor.terminate()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vip", required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--max-seconds", type=float, default=600)
    parser.add_argument("--pid-file", type=Path, help="where to write this process's PID")
    args = parser.parse_args(argv)
    if args.pid_file:
        args.pid_file.write_text(f"{os.getpid()}\n")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    watch(args.vip, args.out, args.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
