"""Where the connections went, node by node: the figures of a drill in which several nodes
serve at once (BGP mode: the routers spread the VIP's flows over every announcing node by
ECMP), reported in both VIP modes. Pure: no I/O, no clock.

- `share_before`, `share_after`, `share_after_failback`: new connections answered per node,
  in the steady time before the fault (from the previous scenario's end), during the fault,
  and from the restore until the scenario settled.
- `broken_surviving`, `failback_broken_surviving`: long-lived connections broken on a node
  other than the fault's target, during the fault and after the restore. Each break counts
  against the node that had answered on that connection last. The target's own connections
  may break (it failed); another node's must not: with plain hash-threshold ECMP a router
  moves flows of the nodes that stayed whenever a next hop comes or goes, resilient hashing
  moves only the leaving node's (docs/bgp.md).

In BGP mode the VRRP notion of one holder handing the VIP to another does not apply: the
other nodes serve all along, and what clients see is the new connections hashed to the failed
node failing until the routers drop it. `bgp_failover` gives the scenario's `holder_*`,
`failover` and `gap_ms` that meaning (docs/failover.md defines each).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from drill.analysis import Request, Window


def share(requests: list[Request], start: float, end: float) -> dict[str, int]:
    """Successful new connections started in [start, end), per answering node."""
    counted = Counter(
        r.node for r in requests if r.kind == "new" and r.ok and r.node and start <= r.t < end
    )
    return dict(sorted(counted.items()))


def broken_by_node(requests: list[Request], start: float, end: float) -> dict[str, int]:
    """Long-lived connections broken in [start, end), per node that had served each last."""
    last_node: dict[int | None, str | None] = {}
    broken: Counter[str] = Counter()
    for request in sorted((r for r in requests if r.kind == "long"), key=lambda r: r.t):
        if request.broken and start <= request.t < end:
            broken[last_node.get(request.conn) or "unknown"] += 1
        if request.ok:
            last_node[request.conn] = request.node
    return dict(sorted(broken.items()))


def broken_surviving(requests: list[Request], start: float, end: float, target: str | None) -> int:
    return sum(n for node, n in broken_by_node(requests, start, end).items() if node != target)


def summarize(
    window: Window, requests: list[Request], target: str | None, steady_from: float
) -> dict[str, Any]:
    """The per-node fields of one scenario; steady_from: where the steady time before the
    fault begins (the previous scenario's end, or the drill's start)."""
    return {
        "target": target,
        "share_before": share(requests, steady_from, window.fault),
        "share_after": share(requests, window.fault, window.restore),
        "share_after_failback": share(requests, window.restore, window.settled),
        "broken_by_node": broken_by_node(requests, window.fault, window.restore),
        "broken_surviving": broken_surviving(requests, window.fault, window.restore, target),
        "failback_broken_by_node": broken_by_node(requests, window.restore, window.settled),
        "failback_broken_surviving": broken_surviving(
            requests, window.restore, window.settled, target
        ),
    }


def bgp_failover(window: Window, requests: list[Request], target: str | None) -> dict[str, Any]:
    """BGP mode's `holder_before` (the target), `holder_after` (the nodes answering once the
    failures stopped, joined by "+"), `failover` (the target stopped answering new connections
    before the restore and others answered after it), `gap_ms` (from the fault until the
    first success that started after the last failed new connection; 0 when none failed) and
    `failback_ms` (from the restore until the target answered a new connection again)."""
    new = sorted(
        (r for r in requests if r.kind == "new" and window.fault <= r.t < window.restore),
        key=lambda r: r.t,
    )
    last_failure = max((r.t for r in new if not r.ok), default=None)
    recovered = [r for r in new if r.ok and (last_failure is None or r.t > last_failure)]
    last_on_target = max((r.t for r in new if r.ok and r.node == target), default=None)
    moved = [r for r in new if r.ok and r.node != target and (last_on_target or 0) < r.t]
    if last_failure is None:
        gap = 0.0 if moved else None
    else:
        first = min(recovered, key=lambda r: r.done, default=None)
        gap = round((first.done - window.fault) * 1000, 1) if first else None
    after = sorted({r.node for r in recovered if r.node})
    back = [
        r
        for r in requests
        if r.kind == "new" and r.ok and r.node == target and window.restore <= r.t < window.settled
    ]
    failback = min((r.done for r in back), default=None)
    return {
        "holder_before": target,
        "holder_after": "+".join(after) or None,
        "failover": bool(moved),
        "gap_ms": gap,
        "failback_ms": None if failback is None else round((failback - window.restore) * 1000, 1),
    }
