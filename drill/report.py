"""Turn one drill's raw data into reports/drill-<time>.json, a PNG and a printed table.

    python -m drill.report RAW_DIR --json reports/drill-<time>.json --png reports/drill-<time>.png

RAW_DIR is what the playbook collected:
- `loadgen.jsonl`: the load generator's records (drill/loadgen.py);
- `holders/<node>.log`: each node's `ip monitor` watch (drill/holders.py); in BGP mode
  `holders/router.log` instead, the upstream router's next hops for the VIP (drill/routes.py);
- `keepalived/<node>.conf`: each node's live keepalived.conf (drill/kaconf.py);
- `marks.json`: {"vip", "vip_mode" ("vrrp", the default, or "bgp"), "platform", "settings",
  "marks": [{"scenario", "event", "t"}], "scenarios": {name: method}, "failed_step", ...},
  written by the playbook.
Exit status 0 when the report was written; the goals' verdict is in the JSON and the table
(goals are checked with --goals lab, the Docker lab's, --goals bgp-lab, the Docker lab's in
BGP mode, or --goals vm-lab, real LVS's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from drill import analysis, holders, kaconf, plot, routes, spread

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Drawing:
    requests: list[analysis.Request]
    steps: list[holders.Step]
    windows: list[analysis.Window]
    timeout_ms: float
    vip_mode: str


# VRRP's fields about VIP holders that BGP mode reports as null (every node announces at once).
BGP_NOT_APPLICABLE = (
    "holder_after_failback",
    "split_brain_moments",
    "split_brain_ms",
    "dual_holder_intervals_after_restore",
    "dual_holder_ms_after_restore",
    "dual_holder_ms_during_fault",
)


def load_requests(path: Path) -> tuple[dict[str, Any], list[analysis.Request], float]:
    """The load generator's settings, its requests, and when it stopped."""
    meta: dict[str, Any] = {}
    requests = []
    end = 0.0
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if record["kind"] == "meta":
            meta = record
        elif record["kind"] == "end":
            end = record["t"]
        else:
            requests.append(analysis.Request.from_record(record))
    if not requests:
        raise SystemExit(f"{path}: no requests recorded: did the load generator start?")
    return meta, requests, end or max(r.done for r in requests)


def load_holders(
    directory: Path, vip: str, interface: str | None, power_cuts: list[tuple[str, float]] = ()
) -> list[holders.Step]:
    """The VIP holders over time from each node's watch log; power_cuts: (node, time) where a
    node lost power (the power-off fault)."""
    logs = sorted(directory.glob("*.log"))
    if not logs:
        raise SystemExit(f"{directory}: no holder watch logs")
    per_node = {log.stem: holders.parse_log(log.read_text(), vip, interface) for log in logs}
    for node, at in power_cuts:
        per_node[node] = holders.powered_off(per_node.get(node, []), at)
    return holders.merge(per_node)


def load_routes(directory: Path, aliases: dict[str, str]) -> list[holders.Step]:
    """BGP mode: the nodes the router sent the VIP's flows to over time (drill/routes.py)."""
    log = directory / "router.log"
    if not log.exists():
        raise SystemExit(f"{log}: no route watch log")
    return holders.merge(routes.transitions(log.read_text(), aliases))


def power_cuts(drill: dict[str, Any]) -> list[tuple[str, float]]:
    """(target, time) of every power-off fault in marks.json."""
    scenarios = drill.get("scenarios", {})
    return [
        (scenarios[mark["scenario"]]["target"], mark["t"])
        for mark in drill["marks"]
        if mark["event"] == "fault" and mark["scenario"] == "power-off"
    ]


def build(raw: Path, goals: tuple[analysis.Goal, ...]) -> tuple[dict[str, Any], Drawing]:
    """The report, and what the picture is drawn from."""
    drill = json.loads((raw / "marks.json").read_text())
    meta, requests, end = load_requests(raw / "loadgen.jsonl")
    vip_mode = drill.get("vip_mode", "vrrp")
    if vip_mode == "bgp":
        steps = load_routes(raw / "holders", drill.get("node_aliases", {}))
    else:
        steps = load_holders(
            raw / "holders", drill["vip"], drill.get("interface"), power_cuts(drill)
        )
    node_named = any(r.node for r in requests)
    requests = analysis.rename_nodes(requests, drill.get("node_aliases", {}))
    requests = analysis.attribute(requests, steps)
    marks = [analysis.Mark(**m) for m in drill["marks"]]
    windows = analysis.windows(marks, end)
    keepalived = {
        conf.stem: kaconf.settings(conf.read_text())
        for conf in sorted((raw / "keepalived").glob("*.conf"))
    }
    handover_s = handover_allowance(keepalived)
    methods = drill.get("scenarios", {})
    starts = [min(r.t for r in requests), *(w.settled for w in windows)]
    scenarios = []
    for window, steady_from in zip(windows, starts, strict=False):
        target = (methods.get(window.name) or {}).get("target")
        scenario = {
            **analysis.summarize(window, requests, steps, handover_s),
            **spread.summarize(window, requests, target, steady_from),
            "method": methods.get(window.name),
        }
        if vip_mode == "bgp":
            # Every node announces at once: no holder to hand over, no split brain to count.
            scenario |= spread.bgp_failover(window, requests, target)
            scenario |= dict.fromkeys(BGP_NOT_APPLICABLE)
        scenarios.append(scenario)
    checked = analysis.check_goals(scenarios, goals)
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "vip_mode": vip_mode,
        "platform": drill.get("platform"),
        "vip": drill["vip"],
        "failed_step": drill.get("failed_step"),
        "settings": drill.get("settings", {}),
        "keepalived": keepalived,
        "split_brain_allowance_ms": round(handover_s * 1000, 1),
        "loadgen": {
            "period_ms": round(meta.get("period_s", 0) * 1000, 1),
            "timeout_ms": round(meta.get("timeout_s", 0) * 1000, 1),
            "long_lived": meta.get("long_lived"),
            "long_period_ms": round(meta.get("long_period_s", 0) * 1000, 1),
            "host_header": meta.get("host_header"),
            "node_source": "response header" if node_named else "newest VIP holder",
            "requests": len(requests),
        },
        "baseline": analysis.baseline(
            requests, steps, min((w.fault for w in windows), default=end)
        ),
        "scenarios": scenarios,
        "goals": checked,
        "goals_met": all(g["met"] for g in checked) if checked else None,
    }, Drawing(requests, steps, windows, meta.get("timeout_s", 0.5) * 1000, vip_mode)


def handover_allowance(keepalived: dict[str, Any]) -> float:
    """Seconds two holders are a handover, not a split brain: the longest advert_int of the
    nodes' VRRP instances (1 s, keepalived's default, when none is known)."""
    intervals = [
        instance["advert_int"]
        for node in keepalived.values()
        for instance in node["vrrp_instance"]
        if isinstance(instance["advert_int"], int | float)
    ]
    return float(max(intervals, default=1))


def _errors(errors: dict[str, int]) -> str:
    """The errors of failed requests, e.g. " (timeout: 9, reset: 1)"; empty without any."""
    if not errors:
        return ""
    return " (" + ", ".join(f"{err}: {n}" for err, n in sorted(errors.items())) + ")"


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


def table(report: dict[str, Any]) -> str:
    columns = [
        ("fault", lambda s: s["name"]),
        ("holder", lambda s: f"{_cell(s['holder_before'])}>{_cell(s['holder_after'])}"),
        ("gap ms", lambda s: _cell(s["gap_ms"])),
        ("outage ms", lambda s: _cell(s["outage_ms"])),
        ("failed", lambda s: f"{s['failed']}/{s['total']}"),
        ("broken", lambda s: _cell(s["broken_long_lived"])),
        ("failback ms", lambda s: _cell(s["failback_ms"])),
        ("fb failed", lambda s: f"{s['failback_failed']}/{s['failback_total']}"),
        ("fb broken", lambda s: _cell(s["failback_broken_long_lived"])),
        ("split brain", lambda s: _cell(s["split_brain_moments"])),
        ("share before", lambda s: _shares(s["share_before"])),
        ("share after", lambda s: _shares(s["share_after"])),
        ("broken surv", lambda s: f"{s['broken_surviving']}/{s['failback_broken_surviving']}"),
        ("goals", lambda s: _verdict(report["goals"], s["name"])),
    ]
    rows = [[title for title, _ in columns]]
    rows += [[cell(s) for _, cell in columns] for s in report["scenarios"]]
    widths = [max(len(row[i]) for row in rows) for i in range(len(columns))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    base = report["baseline"]
    lines.append(
        f"baseline before the first fault: {base['failed']}/{base['total']} failed"
        f"{_errors(base['errors'])}, VIP holder changes without a fault: "
        f"{base['vip_holder_changes']}, "
        f"latency p50 {_cell(base['latency_p50_ms'])} ms, p99 {_cell(base['latency_p99_ms'])} ms, "
        f"controller stall up to {_cell(base['controller_stall_ms'])} ms"
    )
    if report["goals"]:
        met = sum(g["met"] for g in report["goals"])
        lines.append(f"goals met: {met} of {len(report['goals'])}")
    return "\n".join(lines)


# Short names for the goals column.
_FIELD_NAMES = {
    "gap_ms": "gap",
    "outage_ms": "outage",
    "failback_failed": "failback",
    "split_brain_moments": "split-brain",
    "broken_long_lived": "long-lived",
    "failback_broken_long_lived": "long-lived after failback",
    "broken_surviving": "surviving",
    "failback_broken_surviving": "surviving after failback",
}


def _shares(shares: dict[str, int]) -> str:
    """New connections per node as percentages, e.g. "edge1 48% edge2 52%"."""
    total = sum(shares.values())
    return " ".join(f"{node} {100 * n / total:.0f}%" for node, n in shares.items()) or "-"


def _verdict(goals: list[dict[str, Any]], name: str) -> str:
    mine = [g for g in goals if g["scenario"] == name]
    if not mine:
        return "-"
    missed = [_FIELD_NAMES.get(g["field"], g["field"]) for g in mine if not g["met"]]
    return "met" if not missed else "MISSED " + ",".join(missed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw", type=Path, help="the drill's raw data directory")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--png", type=Path, required=True)
    parser.add_argument(
        "--goals",
        choices=sorted(analysis.GOALS),
        default="none",
        help="check the goals of the Docker lab (issue 4), of the Docker lab in BGP mode (issue "
        "18) or of the VM lab's real LVS (issue 5)",
    )
    args = parser.parse_args(argv)
    report, drawing = build(args.raw, analysis.GOALS[args.goals])
    report["png"] = args.png.name
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2) + "\n")
    plot.draw(
        args.png,
        drawing.requests,
        drawing.steps,
        drawing.windows,
        timeout_ms=drawing.timeout_ms,
        title=f"failover drill {report['generated_at']}, {report['platform']}, "
        f"VIP {report['vip']} ({report['vip_mode']})",
        vip_mode=drawing.vip_mode,
    )
    print(table(report))
    if report["failed_step"]:
        print(f"\nthe drill stopped early: {report['failed_step']}")
    print(f"\n{args.json}\n{args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
