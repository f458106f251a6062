"""`make bench`: the edge agent's figures at 1k and 10k Ingresses, on loopback.

    python bench/run.py [--samples 50] [--budget 900] [--scales 1000,10000]
    BENCH_SCALE=100k python bench/run.py     # and the default mode at 100k Ingresses

Everything runs on this machine: the API emulator in a thread of this process, preloaded
through its store; a static nginx as the backend pods on 127.0.0.2-6 and 127.0.1.2-6; a
real nginx configured like an edge node; `edgeagent run` as a process, with the daemon's
default timing. The 1k figures are taken first, then the 10k ones. Writes
bench/results/latest.json and docs/benchmarks.md; exits 0 when every measurement ran, whether
or not the goals are met (the verdict is in them); when one fails, what was measured is
still written, with the error, and the exit status is 1.

The whole run must stay within 15 minutes on 2 cores: `--budget` seconds (default 900).
The default (dynamic) mode's part (`--parts`, dynamic_mode.py) runs after the static one,
on a 10k edge of its own, then the side by side with HAProxy and a minimal nginx (peers.py)
on a 1k edge in the default mode. The 10k change samples are the long part (one full reload
each); when the budget would run out, fewer are taken, and the JSON says how many.
`BENCH_SCALE=100k` (or `--dynamic-scales 10000,100000`) adds a default-mode edge of 100k
Ingresses after the 10k one, outside the budget.
"""

from __future__ import annotations

import argparse
import json
import os
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
import peers
import reload
import report
import sync
import throughput
from edge import BenchEdge

T = TypeVar("T")
STEP_TIMEOUT = 120.0
# STEP_TIMEOUT holds for 10k Ingresses; a sync or a change of the dynamic part's larger
# edges gets more in proportion (600 s at 100k): its wait is on the whole cluster's size.
STEP_TIMEOUT_INGRESSES = 20000
RELOAD_ROUNDS = 3
# Kept for the 10k reload measurement and the teardown after the change samples.
RESERVE_SECONDS = 90.0
# The dynamic part (preload, sync, burst, 30 samples: 90 s at a load of 12, 220 s at 20;
# then DYNAMIC_CHANGE_SECONDS of new Ingresses and MEMORY_RELOADS reloads of about 4 s).
DYNAMIC_RESERVE_SECONDS = 300.0
# The side by side: a 1k edge's sync, then 5 measurements of 5 s, 3 sides, 2 rounds.
PEERS_RESERVE_SECONDS = 180.0
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


DYNAMIC_SAMPLES = 30
DYNAMIC_CHANGE_SAMPLES = 20
# New Ingresses at 10k in the default mode take 4-5 s each (a full reload of a
# configuration with the Lua module): the samples stop when this time is up.
DYNAMIC_CHANGE_SECONDS = 90.0
MEMORY_RELOADS = 20
DYNAMIC_FIGURES = (
    "dynamic_reloads_per_1000_endpoint_changes",
    "nginx_rss_growth_after_1000_endpoint_changes_pct",
    "long_lived_broken_during_churn",
    "endpoint_change_to_traffic_10k_p99_ms",
)
# The default mode's keys by Ingress count: the 100k ones exist in that mode only, and
# carry no prefix (issue 17's names).
DYNAMIC_KEYS = {
    10000: {
        "sync": "dynamic_sync_10k_seconds",
        "p50": "dynamic_change_to_traffic_10k_p50_ms",
        "p99": "dynamic_change_to_traffic_10k_p99_ms",
    },
    100000: {
        "sync": "sync_100k_seconds",
        "p50": "change_to_traffic_100k_p50_ms",
        "p99": "change_to_traffic_100k_p99_ms",
        "agent_rss": "rss_100k_mb",
        "nginx_rss": "nginx_rss_100k_mb",
    },
}
MEMORY_FIGURES = (
    "nginx_master_rss_after_first_reload_10k_mb",
    "nginx_master_rss_after_20_reloads_10k_mb",
    "nginx_master_rss_growth_over_20_reloads_pct",
)
PEERS_FIGURES = (
    "edge_vs_haproxy_rps_ratio",
    "edge_vs_minimal_nginx_rps_ratio",
    "edge_vs_haproxy_tls_handshake_ratio",
    "edge_p99_latency_ms_at_fixed_rate",
    "haproxy_p99_latency_ms_at_fixed_rate",
)
GATEWAY_FIGURES = ("gateway_change_to_traffic_1k_p50_ms", "gateway_change_to_traffic_1k_p99_ms")
PART_OF = {
    **dict.fromkeys(DYNAMIC_FIGURES + MEMORY_FIGURES, "dynamic"),
    **{key: "dynamic" for keys in DYNAMIC_KEYS.values() for key in keys.values()},
    **dict.fromkeys(PEERS_FIGURES, "peers"),
    **dict.fromkeys(GATEWAY_FIGURES, "gateway"),
}


def step_timeout(count: int) -> float:
    return STEP_TIMEOUT * max(1.0, count / STEP_TIMEOUT_INGRESSES)


def run_dynamic(root: pathlib.Path, count: int, results: report.Results) -> None:
    """The default (dynamic) mode's figures on an edge of their own: sync, new Ingresses
    (change.py, as in the static part) and memory; at 10k also dynamic_mode.py's figures
    and the master's memory across reloads."""
    scale = f"{_scale_name(count)}-dynamic"
    keys = DYNAMIC_KEYS[count]
    timeout = step_timeout(count)
    details: dict[str, Any] = {}
    results.details[scale] = details
    print(f"[bench] {scale}: preloading the API", flush=True)
    options = {"upstreams": "dynamic"}
    with BenchEdge(
        root / scale, count, probes=DYNAMIC_CHANGE_SAMPLES, agent_options=options
    ) as edge:
        details["preload_seconds"] = round(edge.preload_seconds, 2)
        details["sync"], load = _step(
            scale, "sync from agent start", lambda: sync.sync_from_start(edge, timeout)
        )
        details["sync_load_average"] = load["load_average"][0]
        results.record(keys["sync"], details["sync"]["seconds"], **load)
        details["agent_rss_after_sync_mb"] = round(edge.agent_rss_mb()[0], 1)
        if count == 10000:
            measured, load = _step(
                scale,
                "1,000 endpoint changes, long-lived connections, endpoint change to traffic",
                lambda: dynamic_mode.measure(edge, DYNAMIC_SAMPLES, timeout),
            )
            details.update(measured, load_average=load["load_average"][0])
            figures = (
                measured["burst"]["per_1000"],
                measured["nginx_rss_growth_pct"],
                measured["long_lived_broken"],
                measured["endpoint_change"]["p99_ms"],
            )
            load["samples"] = len(measured["endpoint_change"]["samples_ms"])
            for key, value in zip(DYNAMIC_FIGURES, figures, strict=True):
                results.record(key, value, **load)

        deadline = time.monotonic() + DYNAMIC_CHANGE_SECONDS
        changed, load = _step(
            scale,
            f"change to traffic, up to {DYNAMIC_CHANGE_SAMPLES} samples",
            lambda: change.change_to_traffic(edge, DYNAMIC_CHANGE_SAMPLES, timeout, deadline),
        )
        details["change_to_traffic"] = changed
        load["samples"] = len(changed["samples_ms"])
        results.record(keys["p50"], changed["p50_ms"], **load)
        results.record(keys["p99"], changed["p99_ms"], **load)

        (agent_rss, _), load = _step(scale, "agent and nginx memory", edge.agent_rss_mb)
        nginx_rss = dynamic_mode.nginx_rss_kb(edge) / 1024
        details["agent_rss_mb"] = round(agent_rss, 1)
        details["nginx_rss_mb"] = round(nginx_rss, 1)
        if "agent_rss" in keys:
            results.record(keys["agent_rss"], round(agent_rss, 1), **load)
            results.record(keys["nginx_rss"], round(nginx_rss, 1), **load)

        if count == 10000:
            edge.agent.stop()
            memory, load = _step(
                scale,
                f"nginx master memory across {MEMORY_RELOADS} reloads",
                lambda: reload.master_rss_across_reloads(edge, MEMORY_RELOADS, timeout),
            )
            details["reloads_memory"] = memory
            figures = (memory["first_mb"], memory["last_mb"], memory["growth_pct"])
            for key, value in zip(MEMORY_FIGURES, figures, strict=True):
                results.record(key, value, **load)


def run_peers(root: pathlib.Path, results: report.Results) -> None:
    """The side by side of peers.py, on a 1k edge in the default (dynamic) mode."""
    scale = "1k-peers"
    options = {"upstreams": "dynamic"}
    print(f"[bench] {scale}: preloading the API", flush=True)
    with BenchEdge(root / scale, 1000, probes=0, agent_options=options, tls=True) as edge:
        sync.sync_from_start(edge, STEP_TIMEOUT)
        measured, load = _step(
            scale,
            "edge, HAProxy and a minimal nginx side by side",
            lambda: peers.side_by_side(edge, root / "peers"),
        )
    results.details[scale] = measured
    for key, value in peers.figures(measured).items():
        results.record(key, value, **load)


GATEWAY_SCALE = 1000
# Fewer than the Ingress figure's 50: the part must fit the run's 10 minutes beside it.
GATEWAY_SAMPLES = 30


def run_gateway(root: pathlib.Path, samples: int, results: report.Results) -> None:
    """The Gateway API's change figure (gateway_change.py), on a 1k HTTPRoute edge of its
    own in the default (dynamic) mode, where a plain HTTPRoute changes no byte of edge.conf.
    Its time is its own reserve, counted from its start: the static part before it samples
    until the shared deadline."""
    deadline = time.monotonic() + GATEWAY_RESERVE_SECONDS
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


# What each default-mode figure is measured on: the 10k edge, or the 100k one.
DYNAMIC_SCALE_OF = {
    **dict.fromkeys(DYNAMIC_FIGURES + MEMORY_FIGURES, 10000),
    **{key: count for count, keys in DYNAMIC_KEYS.items() for key in keys.values()},
}


def measured_by(key: str) -> tuple[str, int | None]:
    """The run that measures a figure: its part, and for the dynamic part its Ingress
    count (a run of `--dynamic-scales 100000` alone leaves the 10k edge's figures alone)."""
    part = PART_OF.get(key, "static")
    return part, DYNAMIC_SCALE_OF.get(key) if part == "dynamic" else None


def planned_runs(parts: set[str], dynamic_scales: list[int]) -> set[tuple[str, int | None]]:
    """What `measured_by` names, for the runs of these arguments."""
    runs = {(part, None) for part in parts - {"dynamic"}}
    if "dynamic" in parts:
        runs |= {("dynamic", count) for count in dynamic_scales}
    return runs


def _details_measured_by(scale: str) -> tuple[str, int | None]:
    """`measured_by` of a details entry: "10k" (static), "1k-peers", "100k-dynamic"..."""
    count, _, part = scale.partition("-")
    if part == "dynamic":
        return part, int(count.removesuffix("k")) * 1000
    return part or "static", None


def _keep_earlier(
    results: report.Results, path: pathlib.Path, runs: set[tuple[str, int | None]]
) -> None:
    """The figures this run does not measure, from the previous JSON, each marked with the
    start of the run that measured it (`kept_from`)."""
    try:
        earlier = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for key, entry in earlier.get("goals", {}).items():
        if measured_by(key) not in runs and key in report.GOALS and key in earlier:
            context = {k: v for k, v in entry.items() if k not in ("max", "min", "met", "unit")}
            context.setdefault("kept_from", earlier.get("started"))
            results.record(key, earlier[key], **context)
    for scale, details in earlier.get("details", {}).items():
        if isinstance(details, dict) and _details_measured_by(scale) not in runs:
            results.details[scale] = details
    if results.figures:
        results.details["earlier_run"] = earlier.get("started")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=50, help="change samples per scale")
    parser.add_argument("--budget", type=float, default=900.0, help="seconds for the run")
    parser.add_argument("--scales", default="1000,10000", help="Ingress counts, in order")
    parser.add_argument("--json", type=pathlib.Path, default=report.JSON_PATH)
    parser.add_argument("--doc", type=pathlib.Path, default=report.DOC_PATH)
    parser.add_argument(
        "--parts",
        default="static,gateway,dynamic,peers",
        help="static (the scales above, reload-based), gateway (1k HTTPRoutes), dynamic "
        "(--dynamic-scales, --upstreams dynamic) and/or peers (HAProxy and a minimal nginx "
        "side by side); the figures of a part not run are kept from the previous --json",
    )
    parser.add_argument(
        "--dynamic-scales",
        default="10000,100000" if os.environ.get("BENCH_SCALE") == "100k" else "10000",
        help="Ingress counts of the dynamic part: 10000 and/or 100000 (default: 10000, "
        "and 100000 after it when BENCH_SCALE=100k)",
    )
    args = parser.parse_args(argv)
    parts = set(args.parts.split(","))
    if unknown := parts - {"static", "gateway", "dynamic", "peers"}:
        parser.error(f"--parts: unknown {sorted(unknown)}")
    dynamic_scales = [int(text) for text in args.dynamic_scales.split(",")]
    if unknown_scales := set(dynamic_scales) - DYNAMIC_KEYS.keys():
        parser.error(f"--dynamic-scales: only {sorted(DYNAMIC_KEYS)}, not {unknown_scales}")
    started = time.monotonic()
    # The static 10k change samples give way to the dynamic and peers parts, which come after.
    reserve = (
        RESERVE_SECONDS
        + (DYNAMIC_RESERVE_SECONDS if "dynamic" in parts else 0.0)
        + (PEERS_RESERVE_SECONDS if "peers" in parts else 0.0)
        + (GATEWAY_RESERVE_SECONDS if "gateway" in parts else 0.0)
    )
    deadline = started + args.budget - reserve
    results = report.new_results()
    results.details["load_average_at_start"] = report.load_average()
    failed = False
    _keep_earlier(results, args.json, planned_runs(parts, dynamic_scales))
    runs: list[Callable[[pathlib.Path], None]] = []
    if "static" in parts:
        for count in (int(text) for text in args.scales.split(",")):
            runs.append(
                lambda scratch, count=count: run_scale(
                    scratch, count, args.samples, deadline, results
                )
            )
    if "gateway" in parts:
        runs.append(lambda scratch: run_gateway(scratch, GATEWAY_SAMPLES, results))
    if "dynamic" in parts:
        for count in dynamic_scales:
            runs.append(lambda scratch, count=count: run_dynamic(scratch, count, results))
    if "peers" in parts:
        runs.append(lambda scratch: run_peers(scratch, results))
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
