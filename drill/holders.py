"""Who held the VIP when: parse `ip monitor` logs into one timeline of holders.

Each node's log is written by the drill's watcher (see roles/drill/tasks/watch-start.yml):

    [INIT 2026-11-25T16:07:37.000100]          <- `date -u`, then `ip -o -4 addr show`
    2: eth0    inet 198.51.100.11/24 brd ...   <- state at start, untimestamped
    [2026-11-25T16:07:38.020529] 2: eth0    inet 198.51.100.100/32 scope global eth0 ...
    [2026-11-25T16:07:39.125667] Deleted 2: eth0    inet 198.51.100.100/32 ...

The timestamped lines come from `TZ=UTC ip -ts -o -4 monitor address`: the kernel's
address events as they happen, so a VIP held for 30 ms between two polls is not missed.
Times are parsed as UTC epoch seconds. Pure functions only.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from datetime import UTC, datetime

_INIT = re.compile(r"^\[INIT (?P<ts>[0-9T:.-]+)\]\s*$")
_EVENT = re.compile(r"^\[(?P<ts>\d{4}-\d\d-\d\dT[0-9:.]+)\]\s+(?P<rest>.*)$")
_INET = re.compile(r"\binet (?P<addr>[0-9.]+)(?:/\d+)?\b")
# `ip -o` lines start with "<index>: <device>" (after "Deleted " for a removal).
_DEVICE = re.compile(r"^(?:Deleted )?\d+: (?P<dev>[^\s:@]+)")


class LogError(ValueError):
    """A watcher log that cannot be read as one."""


def parse_timestamp(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


@dataclass(frozen=True)
class Step:
    """From `t` until the next step, exactly the nodes in `holders` held the VIP."""

    t: float
    holders: frozenset[str]


def _is_vip(line: str, vip: str, interface: str | None) -> bool:
    address = _INET.search(line)
    if not address or address["addr"] != vip:
        return False
    if interface is None:
        return True
    device = _DEVICE.match(line)
    return bool(device and device["dev"] == interface)


def parse_log(text: str, vip: str, interface: str | None = None) -> list[tuple[float, bool]]:
    """The (time, holds the VIP) transitions of one node, first the state at start.

    With `interface`, only the VIP on that interface counts: an edge that also keeps the VIP
    on `lo` (to accept its traffic during a handover) holds it only where VRRP puts it.
    """
    transitions: list[tuple[float, bool]] = []
    init_at: float | None = None
    init_holds = False
    for line in text.splitlines():
        if not line.strip():
            continue
        if match := _INIT.match(line):
            if init_at is not None:  # a watcher started again (after a reboot)
                transitions.append((init_at, init_holds))
            init_at, init_holds = parse_timestamp(match["ts"]), False
            continue
        if match := _EVENT.match(line):
            if init_at is not None:
                transitions.append((init_at, init_holds))
                init_at = None
            if _is_vip(match["rest"], vip, interface):
                holds = not match["rest"].startswith("Deleted ")
                transitions.append((parse_timestamp(match["ts"]), holds))
            continue
        if init_at is None:
            raise LogError(f"untimestamped line outside the initial dump: {line!r}")
        init_holds = init_holds or _is_vip(line, vip, interface)
    if init_at is not None:
        transitions.append((init_at, init_holds))
    if not transitions:
        raise LogError("no [INIT ...] line: the watcher did not start")
    return _without_repeats(sorted(transitions))


def powered_off(transitions: list[tuple[float, bool]], at: float) -> list[tuple[float, bool]]:
    """A node's transitions when it lost power at `at`: it held nothing from then on until its
    watcher started again after the boot (a new [INIT ...]), whatever its log said last (the
    watcher died with it, and its last lines may never have reached the disk)."""
    return _without_repeats(sorted([*transitions, (at, False)]))


def _without_repeats(transitions: list[tuple[float, bool]]) -> list[tuple[float, bool]]:
    kept: list[tuple[float, bool]] = []
    for t, holds in transitions:
        if not kept or kept[-1][1] != holds:
            kept.append((t, holds))
    return kept


def merge(per_node: dict[str, list[tuple[float, bool]]]) -> list[Step]:
    """One timeline of holder sets from every node's transitions.

    Before a node's first transition its state is unknown and taken as not holding; the
    watchers all start before the first fault, so that only affects the drill's start.
    """
    events = sorted((t, node, holds) for node, ts in per_node.items() for t, holds in ts)
    holding: set[str] = set()
    steps: list[Step] = []
    for t, node, holds in events:
        if holds:
            holding.add(node)
        else:
            holding.discard(node)
        current = frozenset(holding)
        if steps and steps[-1].t == t:  # simultaneous events: keep only the outcome
            steps.pop()
        if not steps or steps[-1].holders != current:
            steps.append(Step(t, current))
    return steps


def holders_at(steps: list[Step], t: float) -> frozenset[str]:
    current: frozenset[str] = frozenset()
    for step in steps:
        if step.t > t:
            break
        current = step.holders
    return current


def newest_holder_at(steps: list[Step], t: float) -> str | None:
    """Of the nodes holding the VIP at t, the one that took it last.

    Clients follow the newest gratuitous ARP, so while a frozen or cut-off node still holds
    the VIP it took earlier, traffic reaches the node that took it since.
    """
    acquired: dict[str, float] = {}
    current: frozenset[str] = frozenset()
    for step in steps:
        if step.t > t:
            break
        for node in step.holders - current:
            acquired[node] = step.t
        current = step.holders
    return max(current, key=lambda node: (acquired[node], node), default=None)


def intervals_where(
    steps: list[Step], start: float, end: float, count_ok: range
) -> list[tuple[float, float]]:
    """Intervals within [start, end) during which the number of holders is in count_ok."""
    found: list[tuple[float, float]] = []
    # Before the first step nothing is known: it counts as no holder.
    unknown = Step(float("-inf"), frozenset())
    bounds = [unknown, *steps, Step(float("inf"), frozenset())]
    for step, following in itertools.pairwise(bounds):
        lo, hi = max(step.t, start), min(following.t, end)
        if lo < hi and len(step.holders) in count_ok:
            if found and found[-1][1] == lo:
                found[-1] = (found[-1][0], hi)
            else:
                found.append((lo, hi))
    return found


def split_brain(steps: list[Step], start: float, end: float) -> list[tuple[float, float]]:
    """Intervals within [start, end) during which two or more nodes held the VIP."""
    return intervals_where(steps, start, end, range(2, 1 << 16))


def vacant(steps: list[Step], start: float, end: float) -> list[tuple[float, float]]:
    """Intervals within [start, end) during which no node held the VIP."""
    return intervals_where(steps, start, end, range(0, 1))
