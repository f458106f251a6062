"""`make bench`: the edge agent's figures at 1k and 10k Ingresses, on loopback.

    python bench/run.py [--samples 50] [--budget 570] [--scales 1000,10000]

Everything runs on this machine: the API emulator in a thread of this process, preloaded
through its store; a static nginx as the backend pods on 127.0.0.2-6 and 127.0.1.2-6; a
real nginx configured like an edge node; `edgeagent run` as a process, with the daemon's
default timing. The 1k figures are taken first, then the 10k ones. Writes
bench/results/latest.json and docs/benchmarks.md; exits 0 when every measurement ran, whether
or not the goals are met (the verdict is in them); when one fails, what was measured is
still written, with the error, and the exit status is 1.

The whole run must stay within 10 minutes on 2 cores: `--budget` seconds (default 570).
The dynamic mode's part (`--parts`, dynamic_mode.py) runs last, on a 10k edge of its own.
The 10k change samples are the long part (one full reload each); when the budget would run
out, fewer are taken, and the JSON says how many.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import change
import churn
import dynamic_mode
import gateway_change
import reload
import report
import sync
import throughput
from edge import BenchEdge

T = TypeVar("T")
STEP_TIMEOUT = 120.0
RELOAD_ROUNDS = 3
# Kept for the 10k reload measurement and the teardown after the change samples.
RESERVE_SECONDS = 90.0
# The dynamic part (preload, sync, burst, 30 samples): 90 s at a load of 12, 220 s at 20.
DYNAMIC_RESERVE_SECONDS = 120.0
# The gateway part (preload, sync, 1,000 route statuses, 30 samples of about 1 s).
GATEWAY_RESERVE_SECONDS = 60.0


def _scale_name(count: int) -> str:
    return f"{count // 1000}k" if count % 1000 == 0 else str(count)


def _step(scale: str, title: str, measure: Callable[[], T]) -> tuple[T, dict[str, Any]]:
    """Run one measurement; its result and the load averages before and after it."""
    before = report.load_average()
    print(f"[bench] {scale}: {title} (load {before})", flush=True)
    result = measure()
    return result, {"load_average": before, "load_average_end": report.load_average()}


def run_scale(
    root: pathlib.Path,
    count: int,
    samples: int,
    deadline: float,
    results: report.Results,
) -> None:
    scale = _scale_name(count)
    details: dict[str, Any] = {}
    results.details[scale] = details
    print(f"[bench] {scale}: preloading the API", flush=True)
    with BenchEdge(root / scale, count, probes=samples) as edge:
        details["preload_seconds"] = round(edge.preload_seconds, 2)

        synced, load = _step(
            scale, "sync from agent start", lambda: sync.sync_from_start(edge, STEP_TIMEOUT)
        )
        details["sync"] = synced
        results.record(f"sync_{scale}_seconds", synced["seconds"], **load)
        details["agent_rss_after_sync_mb"] = round(edge.agent_rss_mb()[0], 1)

        changed, load = _step(
            scale,
            f"change to traffic, {samples} samples",
            lambda: change.change_to_traffic(edge, samples, STEP_TIMEOUT, deadline),
        )
        details["change_to_traffic"] = changed
        load["samples"] = len(changed["samples_ms"])
        if count == 1000:
            results.record("change_to_traffic_1k_p50_ms", changed["p50_ms"], **load)
        results.record(f"change_to_traffic_{scale}_p99_ms", changed["p99_ms"], **load)

        if count == 1000:
            burst, load = _step(
                scale,
                "1,000 endpoint changes in 1 s",
                lambda: churn.endpoint_burst(edge, STEP_TIMEOUT),
            )
            details["endpoint_burst"] = burst
            results.record(
                "reloads_per_1000_endpoint_changes",
                burst["per_1000"],
                burst_seconds=burst["burst_seconds"],
                **load,
            )
            measured, load = _step(
                scale, "proxy throughput", lambda: throughput.proxy_throughput(edge)
            )
            details["throughput"] = measured
            results.record("proxy_throughput_ratio", measured["ratio"], **load)

        if count == 10000:
            (current, peak), load = _step(scale, "agent memory", edge.agent_rss_mb)
            details["agent_peak_rss_mb"] = round(peak, 1)
            results.record("rss_10k_mb", round(current, 1), **load)
            details["restart"], _ = _step(
                scale, "agent restart", lambda: sync.restart(edge, STEP_TIMEOUT)
            )
            edge.agent.stop()
            reloaded, load = _step(
                scale,
                "nginx reload",
                lambda: reload.nginx_reload(edge, RELOAD_ROUNDS, STEP_TIMEOUT),
            )
            details["nginx"] = reloaded
            results.record(
                "nginx_reload_10k_seconds", reloaded["as_rendered"]["reload_seconds"], **load
            )


DYNAMIC_SCALE = 10000
DYNAMIC_SAMPLES = 30
DYNAMIC_FIGURES = (
    "dynamic_reloads_per_1000_endpoint_changes",
    "nginx_rss_growth_after_1000_endpoint_changes_pct",
    "long_lived_broken_during_churn",
    "endpoint_change_to_traffic_10k_p99_ms",
)


def run_dynamic(root: pathlib.Path, results: report.Results) -> None:
    """The dynamic mode's figures (dynamic_mode.py), on a 10k edge of their own."""
    scale = f"{_scale_name(DYNAMIC_SCALE)}-dynamic"
    details: dict[str, Any] = {}
    results.details[scale] = details
    print(f"[bench] {scale}: preloading the API", flush=True)
    options = {"upstreams": "dynamic"}
    with BenchEdge(root / scale, DYNAMIC_SCALE, probes=0, agent_options=options) as edge:
        details["sync"], load = _step(
            scale, "sync from agent start", lambda: sync.sync_from_start(edge, STEP_TIMEOUT)
        )
        details["sync_load_average"] = load["load_average"][0]
        measured, load = _step(
            scale,
            "1,000 endpoint changes, long-lived connections, endpoint change to traffic",
            lambda: dynamic_mode.measure(edge, DYNAMIC_SAMPLES, STEP_TIMEOUT),
        )
        details.update(measured, load_average=load["load_average"][0])
        figures = (
            measured["burst"]["per_1000"],
            measured["nginx_rss_growth_pct"],
            measured["long_lived_broken"],
            measured["endpoint_change"]["p99_ms"],
        )
        for key, value in zip(DYNAMIC_FIGURES, figures, strict=True):
            results.record(key, value, **load)
        load["samples"] = len(measured["endpoint_change"]["samples_ms"])


GATEWAY_SCALE = 1000
# Fewer than the Ingress figure's 50: the part must fit the run's 10 minutes beside it.
GATEWAY_SAMPLES = 30
GATEWAY_FIGURES = ("gateway_change_to_traffic_1k_p50_ms", "gateway_change_to_traffic_1k_p99_ms")


def run_gateway(root: pathlib.Path, samples: int, deadline: float, results: report.Results) -> None:
    """The Gateway API's change figure (gateway_change.py), on a 1k HTTPRoute edge of its
    own; the Ingress figure has no dynamic-mode twin, so neither has this one."""
    scale = f"{_scale_name(GATEWAY_SCALE)}-gateway"
    print(f"[bench] {scale}: preloading the API", flush=True)
    measured, load = _step(
        scale,
        f"HTTPRoute change to traffic, {samples} samples",
        lambda: gateway_change.measure(
            root / scale, GATEWAY_SCALE, samples, STEP_TIMEOUT, deadline
        ),
    )
    results.details[scale] = {"change_to_traffic": measured}
    load["samples"] = len(measured["samples_ms"])
    for key, value in zip(GATEWAY_FIGURES, (measured["p50_ms"], measured["p99_ms"]), strict=True):
        results.record(key, value, **load)


def _part_of(key: str) -> str:
    if key in DYNAMIC_FIGURES:
        return "dynamic"
    return "gateway" if key in GATEWAY_FIGURES else "static"


def _keep_earlier(results: report.Results, path: pathlib.Path, parts: set[str]) -> None:
    """Figures of the parts not run this time, from the previous JSON (marked as such)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for key, entry in earlier.get("goals", {}).items():
        if _part_of(key) not in parts and key in report.GOALS:
            context = {k: v for k, v in entry.items() if k not in ("max", "min", "met", "unit")}
            results.record(key, earlier[key], **context)
    for scale, details in earlier.get("details", {}).items():
        if isinstance(details, dict) and scale not in results.details:
            results.details[scale] = details
    results.details["earlier_run"] = earlier.get("started")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50, help="change samples per scale")
    parser.add_argument("--budget", type=float, default=570.0, help="seconds for the run")
    parser.add_argument("--scales", default="1000,10000", help="Ingress counts, in order")
    parser.add_argument("--json", type=pathlib.Path, default=report.JSON_PATH)
    parser.add_argument("--doc", type=pathlib.Path, default=report.DOC_PATH)
    parser.add_argument(
        "--parts",
        default="static,gateway,dynamic",
        help="static (the scales above, reload-based), gateway (1k HTTPRoutes) and/or "
        "dynamic (10k, --upstreams dynamic); the figures of a part not run are kept from "
        "the previous --json",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    started = time.monotonic()
    # The static 10k change samples give way to the gateway and dynamic parts, which come last.
    reserve = (
        RESERVE_SECONDS
        + (GATEWAY_RESERVE_SECONDS if "gateway" in parts else 0.0)
        + (DYNAMIC_RESERVE_SECONDS if "dynamic" in parts else 0.0)
    )
    deadline = started + args.budget - reserve
    results = report.new_results()
    results.details["load_average_at_start"] = report.load_average()
    failed = False
    if parts != {"static", "gateway", "dynamic"}:
        _keep_earlier(results, args.json, parts)
    runs: list[Callable[[pathlib.Path], None]] = []
    if "static" in parts:
        for count in (int(text) for text in args.scales.split(",")):
            runs.append(
                lambda scratch, count=count: run_scale(
                    scratch, count, args.samples, deadline, results
                )
            )
    if "gateway" in parts:
        runs.append(lambda scratch: run_gateway(scratch, GATEWAY_SAMPLES, deadline, results))
    if "dynamic" in parts:
        runs.append(lambda scratch: run_dynamic(scratch, results))
    with tempfile.TemporaryDirectory(prefix="edgeagent-bench-") as scratch:
        for part in runs:
            try:
                part(pathlib.Path(scratch))
            except Exception:  # write what was measured, then fail
                failed = True
                results.details.setdefault("errors", []).append(traceback.format_exc())
                print(traceback.format_exc(), file=sys.stderr)
    results.details["load_average_at_end"] = report.load_average()
    document = results.document()
    report.write_json(document, args.json)
    report.write_doc(document, args.doc)
    print(report.table(document))
    print(f"[bench] wrote {args.json} and {args.doc} in {time.monotonic() - started:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
