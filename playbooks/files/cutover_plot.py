"""The PNG beside a cutover report (playbooks/cutover.yml): per step, each tier's requests, 5xx
rate and p99, the failed step marked. Run with the controller's Python, which has matplotlib
(the drill's plot uses it too):

    python3 cutover_plot.py reports/cutover/<time>.json   # writes <time>.png
"""

import json
import sys
from pathlib import Path

from matplotlib.figure import Figure

TIERS = (("in_cluster", "in-cluster", "tab:blue"), ("edge", "edge", "tab:orange"))


def draw(report: dict, path: Path) -> None:
    steps = report["steps"]
    labels = [f"{int(step['percent'])} %" for step in steps]
    positions = range(len(steps))
    # A bare Figure renders with the Agg canvas, no pyplot state: the controller is headless.
    figure = Figure(figsize=(9, 7), layout="constrained")
    panels = figure.subplots(3, 1, sharex=True)
    width = 0.38
    for offset, (key, name, colour) in zip((-width / 2, width / 2), TIERS, strict=True):
        x = [p + offset for p in positions]
        panels[0].bar(x, [step[key]["requests"] for step in steps], width, label=name, color=colour)
        rates = [step[key]["error_rate"] * 100 for step in steps]
        panels[1].bar(x, rates, width, label=name, color=colour)
        p99 = [(step[key]["p99_seconds"] or 0) * 1000 for step in steps]
        panels[2].bar(x, p99, width, label=name, color=colour)
    for panel, title in zip(panels, ("requests", "5xx rate (%)", "p99 (ms)"), strict=True):
        panel.set_ylabel(title)
        panel.set_ylim(bottom=0)
        panel.grid(axis="y", alpha=0.3)
    panels[0].legend(loc="upper left")
    panels[2].set_xticks(list(positions), labels)
    panels[2].set_xlabel("new connections to the edge")
    if report.get("failed_step") is not None:
        failed = next(
            i for i, step in enumerate(steps) if int(step["percent"]) == int(report["failed_step"])
        )
        for panel in panels:
            panel.axvspan(failed - 0.5, failed + 0.5, color="red", alpha=0.1)
    figure.suptitle(f"Cutover {report['started']}: {report['result']}, at {report['percent']} %")
    figure.savefig(path, dpi=100)


def main() -> None:
    report_path = Path(sys.argv[1])
    draw(json.loads(report_path.read_text()), report_path.with_suffix(".png"))


if __name__ == "__main__":
    main()
