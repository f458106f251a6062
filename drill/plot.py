"""The drill's PNG timeline: every request coloured by the node that answered.

Three lanes sharing the time axis (seconds since the drill started):
1. new connections: one dot per probe at its latency, coloured by node; failures as
   red crosses on the timeout line;
2. long-lived connections: one row per connection, breaks as black crosses;
3. VIP holders from the `ip monitor` watch, one bar per node; two holders at once in red. In
   BGP mode the nodes the router sends the VIP's flows to (drill/routes.py), all at once.
Faults are red dashed lines labelled with the scenario, restores green dashed lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from drill import holders
from drill.analysis import Request, Window
from drill.holders import Step

UNATTRIBUTED = "unknown node"


def node_colours(nodes: list[str]) -> dict[str, Any]:
    palette = matplotlib.colormaps["tab10"]
    colours: dict[str, Any] = {node: palette(i % 10) for i, node in enumerate(sorted(nodes))}
    colours[UNATTRIBUTED] = "grey"
    return colours


def draw(
    path: Path,
    requests: list[Request],
    steps: list[Step],
    windows: list[Window],
    timeout_ms: float,
    title: str,
    vip_mode: str = "vrrp",
) -> None:
    if not requests:
        raise ValueError("no requests to draw")
    origin = min(r.t for r in requests)
    nodes = sorted({r.node for r in requests if r.node} | {n for s in steps for n in s.holders})
    colours = node_colours(nodes)
    # A bare Figure renders with the Agg canvas and needs no pyplot global state: the
    # drill runs headless on the controller.
    figure = Figure(figsize=(16, 8))
    lane_new, lane_long, lane_vip = figure.subplots(
        3, 1, sharex=True, gridspec_kw={"height_ratios": [4, 2, 1]}
    )
    _draw_new(lane_new, requests, origin, colours, timeout_ms)
    _draw_long(lane_long, requests, origin, colours)
    _draw_holders(lane_vip, steps, origin, colours, nodes, requests, vip_mode)
    for window in windows:
        for lane in (lane_new, lane_long, lane_vip):
            lane.axvline(window.fault - origin, color="red", linestyle="--", linewidth=0.8)
            lane.axvline(window.restore - origin, color="green", linestyle="--", linewidth=0.8)
        lane_new.annotate(
            window.name,
            (window.fault - origin, 1.0),
            xycoords=("data", "axes fraction"),
            rotation=90,
            va="top",
            ha="right",
            fontsize=8,
            color="red",
        )
    figure.suptitle(title)
    handles = [
        Line2D([], [], marker="o", linestyle="", color=colours[n], label=n)
        for n in [*nodes, UNATTRIBUTED]
    ]
    handles += [
        Line2D([], [], marker="x", linestyle="", color="red", label="failed"),
        Line2D([], [], color="red", linestyle="--", label="fault"),
        Line2D([], [], color="green", linestyle="--", label="restore"),
    ]
    # Above the lanes, where it hides neither points nor the fault labels.
    figure.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.965),
        fontsize=8,
        ncol=len(handles),
    )
    lane_vip.set_xlabel("seconds since the drill started")
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    figure.savefig(path, dpi=110)


def _draw_new(lane, requests, origin, colours, timeout_ms) -> None:
    new = [r for r in requests if r.kind == "new"]
    for node in colours:
        points = [r for r in new if r.ok and (r.node or UNATTRIBUTED) == node]
        lane.scatter(
            [r.t - origin for r in points],
            [max(r.ms, 0.1) for r in points],
            s=4,
            color=colours[node],
        )
    failed = [r for r in new if not r.ok]
    lane.scatter(
        [r.t - origin for r in failed], [timeout_ms] * len(failed), s=12, marker="x", color="red"
    )
    lane.set_yscale("log")
    lane.set_ylabel("new connection\nlatency (ms)")


def _draw_long(lane, requests, origin, colours) -> None:
    long_lived = [r for r in requests if r.kind == "long"]
    for node in colours:
        points = [r for r in long_lived if r.ok and (r.node or UNATTRIBUTED) == node]
        lane.scatter(
            [r.t - origin for r in points], [r.conn for r in points], s=3, color=colours[node]
        )
    broken = [r for r in long_lived if r.broken]
    lane.scatter(
        [r.t - origin for r in broken], [r.conn for r in broken], s=30, marker="x", color="black"
    )
    failed = [r for r in long_lived if not r.ok and not r.broken]
    lane.scatter(
        [r.t - origin for r in failed], [r.conn for r in failed], s=8, marker="|", color="red"
    )
    lane.set_ylabel("keep-alive\nconnection")


def _draw_holders(lane, steps, origin, colours, nodes, requests, vip_mode) -> None:
    end = max(r.done for r in requests)
    start = min(r.t for r in requests)
    for row, node in enumerate(nodes):
        spans = [
            (a - origin, b - a)
            for a, b in holders.intervals_where(
                [Step(s.t, frozenset({node} & s.holders)) for s in steps],
                start,
                end,
                range(1, 2),
            )
        ]
        lane.broken_barh(spans, (row - 0.4, 0.8), color=colours[node])
    lane.set_yticks(range(len(nodes)), nodes)
    if vip_mode == "bgp":
        lane.set_ylabel("router sends\nthe VIP to")
        return
    dual = [(a - origin, b - a) for a, b in holders.split_brain(steps, start, end)]
    lane.broken_barh(dual, (-0.5, len(nodes)), color="red", alpha=0.5)
    lane.set_ylabel("VIP held by")
