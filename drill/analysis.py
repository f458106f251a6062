"""From the raw drill data to one summary per fault. Pure: no I/O, no clock.

Inputs are the load generator's request records, the VIP holder timeline (`holders`) and
the playbook's marks. A scenario has three marks: `fault` (just before the fault command
ran), `restore` (just before the undo command ran) and `settled` (after the drill waited
for failback). Its fault window is [fault, restore), its failback window [restore, settled).
docs/failover.md defines every field; the definitions live here, next to the code.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from dataclasses import dataclass
from typing import Any

from drill import holders
from drill.holders import Step


@dataclass(frozen=True)
class Request:
    kind: str  # "new" (fresh connection) or "long" (keep-alive connection)
    t: float  # start, epoch seconds
    ms: float  # duration
    ok: bool
    node: str | None  # the edge node that answered, when it said so
    err: str | None = None
    conn: int | None = None
    broken: bool = False
    lag: float = 0.0  # ms the probe started after its schedule: the controller stalled

    @property
    def done(self) -> float:
        return self.t + self.ms / 1000

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Request:
        return cls(
            kind=record["kind"],
            t=record["t"],
            ms=record["ms"],
            ok=record["ok"],
            node=record.get("node"),
            err=record.get("err"),
            conn=record.get("conn"),
            broken=record.get("broken", False),
            lag=record.get("lag", 0.0),
        )


@dataclass(frozen=True)
class Mark:
    scenario: str
    event: str  # "fault", "restore" or "settled"
    t: float


@dataclass(frozen=True)
class Window:
    name: str
    fault: float
    restore: float
    settled: float


class MarksError(ValueError):
    """The playbook's marks do not describe whole scenarios."""


def windows(marks: list[Mark], drill_end: float) -> list[Window]:
    """One window per scenario, in fault order.

    A scenario cut short by a failed step has no `restore` or `settled` mark: its
    windows then end where the next mark (or the drill) ends, so its figures still show
    what happened instead of vanishing from the report.
    """
    by_scenario: dict[str, dict[str, float]] = {}
    for mark in sorted(marks, key=lambda m: m.t):
        by_scenario.setdefault(mark.scenario, {})[mark.event] = mark.t
    times = [*sorted(m.t for m in marks), drill_end]
    found = []
    for name, events in by_scenario.items():
        if "fault" not in events:
            raise MarksError(f"scenario {name!r} has no fault mark")
        fault = events["fault"]
        # `times` ends with drill_end, so a later time always exists.
        restore = events.get("restore", next(t for t in times if t > fault))
        settled = events.get("settled", next((t for t in times if t > restore), drill_end))
        found.append(Window(name, fault, restore, max(settled, restore)))
    return sorted(found, key=lambda w: w.fault)


def attribute(requests: list[Request], steps: list[Step]) -> list[Request]:
    """Successful requests whose node is unknown get the VIP's newest holder at their start.

    Only a fallback for edges whose responses do not name the node (the report says which
    source it used): exact while one node holds the VIP, a close guess while a frozen or
    cut-off node still holds it too (clients follow the newest gratuitous ARP).
    """
    return [
        dataclasses.replace(request, node=holders.newest_holder_at(steps, request.t))
        if request.node is None and request.ok
        else request
        for request in requests
    ]


def rename_nodes(requests: list[Request], aliases: dict[str, str]) -> list[Request]:
    """Map the names responses give (a node's hostname) to inventory names."""
    return [
        dataclasses.replace(request, node=aliases[request.node])
        if request.node in aliases
        else request
        for request in requests
    ]


def _in(requests: list[Request], kind: str, start: float, end: float) -> list[Request]:
    return [r for r in requests if r.kind == kind and start <= r.t < end]


def longest_without_success(successes: list[float], start: float, end: float) -> float:
    """Longest span in [start, end] with no success completing, in seconds."""
    points = [start, *sorted(t for t in successes if start < t < end), end]
    return max((b - a for a, b in itertools.pairwise(points)), default=0.0)


def first_success(
    requests: list[Request], after: float, until: float, node_ok: Any
) -> Request | None:
    """The new-connection request completing first in (after, until) on a node_ok node."""
    candidates = [
        r
        for r in requests
        if r.kind == "new" and r.ok and after < r.done < until and node_ok(r.node)
    ]
    return min(candidates, key=lambda r: r.done, default=None)


def holder_before(requests: list[Request], steps: list[Step], at: float) -> str | None:
    """The node holding the VIP just before `at`; if the watch is ambiguous, the node
    that answered the last success before it."""
    holding = holders.holders_at(steps, at - 1e-6)
    if len(holding) == 1:
        return next(iter(holding))
    earlier = [r for r in requests if r.kind == "new" and r.ok and r.done < at and r.node]
    return max(earlier, key=lambda r: r.done).node if earlier else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 1)


def _total(intervals: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in intervals)


def summarize(
    window: Window, requests: list[Request], steps: list[Step], handover_s: float
) -> dict[str, Any]:
    """The report's object for one scenario (fields documented in docs/failover.md).

    handover_s: how long two nodes may both hold the VIP during a handover before it counts
    as a split-brain moment. VRRP cannot do better than one advert interval: the node taking
    over adds the VIP before the one giving up hears its advert and drops it.
    """
    before = holder_before(requests, steps, window.fault)
    takeover = first_success(
        requests, window.fault, window.restore, lambda node: node is not None and node != before
    )
    after = takeover.node if takeover else None
    fault_new = _in(requests, "new", window.fault, window.restore)
    back_new = _in(requests, "new", window.restore, window.settled)
    fault_long = _in(requests, "long", window.fault, window.restore)
    back_long = _in(requests, "long", window.restore, window.settled)
    failback = first_success(
        requests, window.restore, window.settled, lambda node: node is not None and node == before
    )
    successes = [r.done for r in requests if r.kind == "new" and r.ok]
    dual_fault = holders.split_brain(steps, window.fault, window.restore)
    dual_after = holders.split_brain(steps, window.restore, window.settled)
    split_after = [(a, b) for a, b in dual_after if b - a > handover_s]
    return {
        "name": window.name,
        "fault_at": round(window.fault, 6),
        "restore_at": round(window.restore, 6),
        "settled_at": round(window.settled, 6),
        "holder_before": before,
        "holder_after": after,
        "failover": takeover is not None,
        "gap_ms": _ms(takeover.done - window.fault) if takeover else None,
        "outage_ms": _ms(longest_without_success(successes, window.fault, window.restore)),
        "failed": sum(not r.ok for r in fault_new),
        "total": len(fault_new),
        "errors": dict(Counter(r.err for r in fault_new if not r.ok)),
        "broken_long_lived": sum(r.broken for r in fault_long),
        "failback_ms": _ms(failback.done - window.restore) if failback else None,
        "failback_gap_ms": _ms(longest_without_success(successes, window.restore, window.settled)),
        "failback_failed": sum(not r.ok for r in back_new),
        "failback_errors": dict(Counter(r.err for r in back_new if not r.ok)),
        "failback_total": len(back_new),
        "failback_broken_long_lived": sum(r.broken for r in back_long),
        "holder_after_failback": sorted(holders.holders_at(steps, window.settled - 1e-6)),
        "split_brain_moments": len(split_after),
        "split_brain_ms": _ms(_total(split_after)),
        "dual_holder_intervals_after_restore": len(dual_after),
        "dual_holder_ms_after_restore": _ms(_total(dual_after)),
        "dual_holder_ms_during_fault": _ms(_total(dual_fault)),
        "vip_vacant_ms_during_fault": _ms(
            _total(holders.vacant(steps, window.fault, window.restore))
        ),
        "controller_stall_ms": max((r.lag for r in fault_new + back_new), default=0.0),
    }


def baseline(requests: list[Request], steps: list[Step], until: float) -> dict[str, Any]:
    """Steady state before the first fault: the noise floor every figure stands on. Its
    failures are accounted for by their errors and by the VIP's holder changes in the same
    time: on a busy machine a health check can time out and move the VIP with no fault
    injected, and the probes caught in that handover fail like a fault's."""
    new = [r for r in requests if r.kind == "new" and r.t < until]
    latencies = sorted(r.ms for r in new if r.ok)
    start = min((r.t for r in new), default=until)
    return {
        "seconds": round(until - start, 1),
        "failed": sum(not r.ok for r in new),
        "errors": dict(Counter(r.err for r in new if not r.ok)),
        "vip_holder_changes": sum(start < step.t < until for step in steps),
        "total": len(new),
        "latency_p50_ms": _percentile(latencies, 0.50),
        "latency_p99_ms": _percentile(latencies, 0.99),
        "controller_stall_ms": max((r.lag for r in new), default=0.0),
    }


def _percentile(sorted_values: list[float], fraction: float) -> float | None:
    if not sorted_values:
        return None
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return round(sorted_values[index], 1)


@dataclass(frozen=True)
class Goal:
    scenarios: tuple[str, ...]
    field: str
    limit: float  # the field must be <= limit

    def check(self, scenario: dict[str, Any]) -> dict[str, Any]:
        field, value = self.field, scenario.get(self.field)
        if field == "gap_ms" and not scenario.get("failover"):
            # The VIP did not move (e.g. systemd restarted nginx before the track script
            # noticed): what clients saw is the outage, which must then meet the limit.
            field, value = "outage_ms", scenario.get("outage_ms")
        return {
            "scenario": scenario["name"],
            "field": field,
            "limit": self.limit,
            "value": value,
            "met": value is not None and value <= self.limit,
        }


# The goals of issue 4 on the Docker lab.
LAB_GOALS = (
    Goal(("keepalived-stop", "freeze"), "gap_ms", 500),
    Goal(("nginx-kill", "agent-unhealthy"), "gap_ms", 1000),
    Goal(
        ("keepalived-stop", "freeze", "nginx-kill", "agent-unhealthy", "partition"),
        "failback_failed",
        0,
    ),
    Goal(("partition",), "split_brain_moments", 0),
)


# The goals of issue 5 on the VM lab (real LVS, topology A: two directors with lvs_sync_daemon
# in front of two real servers, VRRPv3 at 0.1 s): the VIP moves within half a second when its
# director loses power, and keep-alive connections through it survive both handovers. No gap
# goal for keepalived-stop here: under emulation `systemctl stop` alone takes over a second to
# reach keepalived, which the gap (from the fault's mark) counts; the power cut is instant.
VM_LAB_GOALS = (
    Goal(("power-off",), "gap_ms", 500),
    Goal(("power-off", "keepalived-stop"), "broken_long_lived", 0),
    Goal(("power-off", "keepalived-stop"), "failback_broken_long_lived", 0),
)

# The goals of issue 18 on the Docker lab in BGP mode (lab/router.py, resilient hashing): the
# routers drop a lost node within half a second (BFD), and no connection to a node that did not
# fail breaks, neither then nor when the node comes back, nor does a new one fail then.
BGP_FAULTS = ("power-off", "freeze", "nginx-kill", "agent-unhealthy", "link-down")
BGP_LAB_GOALS = (
    Goal(("power-off", "freeze", "link-down"), "gap_ms", 500),
    Goal(BGP_FAULTS, "broken_surviving", 0),
    Goal(BGP_FAULTS, "failback_broken_surviving", 0),
    Goal(BGP_FAULTS, "failback_failed", 0),
)

GOALS = {"lab": LAB_GOALS, "vm-lab": VM_LAB_GOALS, "bgp-lab": BGP_LAB_GOALS, "none": ()}


def check_goals(scenarios: list[dict[str, Any]], goals: tuple[Goal, ...]) -> list[dict[str, Any]]:
    return [
        goal.check(scenario)
        for scenario in scenarios
        for goal in goals
        if scenario["name"] in goal.scenarios
    ]
