"""Wait until a node holds (or released) the VIP, reading its watcher's log on this machine.

    python -m drill.wait LOG --vip 198.51.100.100 --holds|--released [--interface eth0]
    python -m drill.wait router.log --via 198.51.100.11 --holds|--released       (BGP mode)

The Docker drill paces itself with this instead of polling the node through `docker exec`
every second: the watcher (tasks/watch-start.yml) already logs every VIP event on the
controller, and reading a small file costs next to nothing while the figures are taken.
In BGP mode LOG is the router's route watch (drill/routes.py) and the state is whether the
router sends the VIP's flows to the node at --via (its address). Exit status 0 when the state
was reached, 1 on timeout (the drill then carries on and the
report shows that the VIP did not move).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from drill import holders

POLL_SECONDS = 0.1


def holds_now(log: Path, vip: str, interface: str | None) -> bool:
    transitions = holders.parse_log(log.read_text(), vip, interface)
    return transitions[-1][1]


def routed_now(log: Path, address: str) -> bool:
    lines = log.read_text().splitlines()
    return bool(lines) and address in json.loads(lines[-1])["via"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("log", type=Path)
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--vip", help="VRRP: LOG is a node's address watch")
    target.add_argument("--via", help="BGP: LOG is the router's route watch; a node's address")
    want = parser.add_mutually_exclusive_group(required=True)
    want.add_argument("--holds", action="store_true")
    want.add_argument("--released", action="store_true")
    parser.add_argument("--interface", help="count the VIP on this interface only")
    parser.add_argument("--timeout", type=float, default=30)
    args = parser.parse_args(argv)
    deadline = time.monotonic() + args.timeout

    def state() -> bool:
        if args.via:
            return routed_now(args.log, args.via)
        return holds_now(args.log, args.vip, args.interface)

    while state() != args.holds:
        if time.monotonic() >= deadline:
            print(f"{args.log.stem}: timed out after {args.timeout} s", file=sys.stderr)
            return 1
        time.sleep(POLL_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
