"""The figures, their goals, and where they are written: bench/results/latest.json and the
table of docs/benchmarks.md.

A figure is one number under a fixed key. Its goal, if it has one, lives in GOALS; the JSON
carries, next to each key, the goal, whether it was met, and what the figure was measured
under (load average, sample count). Adding a figure (issue 6's dynamic-mode keys, say) is
one `Goal` here and one measurement that returns its number.
"""

from __future__ import annotations

import datetime
import json
import os
import pathlib
import platform
import re
import statistics
import subprocess
from dataclasses import dataclass
from typing import Any

import jinja2
from suite import REPOSITORY, agentlab

SCHEMA_VERSION = 1
JSON_PATH = REPOSITORY / "bench" / "results" / "latest.json"
DOC_PATH = REPOSITORY / "docs" / "benchmarks.md"
TEMPLATE = "benchmarks.md.j2"


@dataclass(frozen=True)
class Goal:
    title: str
    unit: str
    method: str
    maximum: float | None = None
    minimum: float | None = None

    def met(self, value: float) -> bool | None:
        if self.maximum is None and self.minimum is None:
            return None
        return (self.maximum is None or value <= self.maximum) and (
            self.minimum is None or value >= self.minimum
        )

    @property
    def text(self) -> str:
        if self.maximum is not None:
            return f"≤ {self.maximum:g}"
        if self.minimum is not None:
            return f"≥ {self.minimum:g}"
        return "—"


_SYNC = (
    "agent spawned until the first 200 through nginx for the host of the Ingress created "
    "last (100 other hosts checked after); {n} Ingresses, each with a Service of 5 ready "
    "endpoints, already in the API"
)
_CHANGE = (
    "Ingress created with the official client; from the API's answer to the first 200 "
    "through nginx for its host, polled every 5 ms on new connections; samples one at a "
    "time, each after the previous one was confirmed and the minimum reload interval passed"
)
_RELOADS = (
    "agent stopped, 10k Ingresses in the default mode; SIGHUP to the master 20 times with "
    "the live configuration (no nginx -t), each time until a new worker answers; the "
    "master's VmRSS {which}"
)
_PEERS = (
    "the default mode's edge, HAProxy (`nbthread 1`, a Host map) and a minimal nginx, one "
    "worker each, same 1k hosts, backends and certificate; the sides alternate, 2 rounds"
)
_FIXED_RATE = (
    "h2load --h1, 10 keep-alive connections at 100 requests/s each for 5 s, over HTTP and "
    "over HTTPS; per-request times from its log; the higher p99 of the two, worst round"
)
_GATEWAY_CHANGE = (
    "as change_to_traffic_1k, with the Gateway API instead of Ingresses, in the default "
    "(dynamic) mode: 1,000 HTTPRoutes on one Gateway (HTTP listener, routes from all "
    "namespaces), an HTTPRoute created with the official client; samples after the agent "
    "wrote the 1,000 route statuses"
)
GOALS: dict[str, Goal] = {
    "sync_1k_seconds": Goal("Sync from agent start, 1k Ingresses", "s", _SYNC.format(n="1,000")),
    "sync_10k_seconds": Goal(
        "Sync from agent start, 10k Ingresses", "s", _SYNC.format(n="10,000"), maximum=5
    ),
    "rss_10k_mb": Goal(
        "Agent memory (RSS), 10k Ingresses",
        "MiB",
        "VmRSS of the agent process after the 10k sync and the 10k change samples",
        maximum=300,
    ),
    "change_to_traffic_1k_p50_ms": Goal("New Ingress to traffic, 1k present, p50", "ms", _CHANGE),
    "change_to_traffic_1k_p99_ms": Goal(
        "New Ingress to traffic, 1k present, p99", "ms", _CHANGE, maximum=1000
    ),
    "change_to_traffic_10k_p99_ms": Goal(
        "New Ingress to traffic, 10k present, p99", "ms", _CHANGE, maximum=3000
    ),
    "gateway_change_to_traffic_1k_p50_ms": Goal(
        "New HTTPRoute to traffic, 1k present, p50", "ms", _GATEWAY_CHANGE
    ),
    "gateway_change_to_traffic_1k_p99_ms": Goal(
        "New HTTPRoute to traffic, 1k present, p99", "ms", _GATEWAY_CHANGE, maximum=1000
    ),
    "nginx_reload_10k_seconds": Goal(
        "nginx's own reload, 10k configuration",
        "s",
        "agent stopped; SIGHUP to the master until the status server answers a new marker "
        "(median of 3); the floor of any reload-based design",
    ),
    "reloads_per_1000_endpoint_changes": Goal(
        "Reloads per 1,000 endpoint changes in 1 s",
        "per 1,000",
        "1,000 EndpointSlice writes (a rolling update of 200 Services, one endpoint each) "
        "spread over 1 s, 1k Ingresses; increase of edgeagent_reloads_total until the last "
        "change serves and 3 s more",
        maximum=2,
    ),
    "dynamic_reloads_per_1000_endpoint_changes": Goal(
        "Dynamic mode: reloads per 1,000 endpoint changes in 1 s",
        "per 1,000",
        "as reloads_per_1000_endpoint_changes, at 10k Ingresses with `--upstreams dynamic` "
        "(nginx with the Lua module); the last change counts as served when the agent's "
        "state file, written before each push, holds every new address",
        maximum=0,
    ),
    "endpoint_change_to_traffic_10k_p99_ms": Goal(
        "Dynamic mode: endpoint change to traffic, 10k present, p99",
        "ms",
        "a Service of the 10k whose endpoints are all not ready (503) gets them ready in one "
        "EndpointSlice write; from the write to the first 200 for its host on a new "
        "connection, polled every 5 ms; samples one at a time",
        maximum=1000,
    ),
    "nginx_rss_growth_after_1000_endpoint_changes_pct": Goal(
        "Dynamic mode: nginx memory growth over 1,000 endpoint changes",
        "%",
        "VmRSS of nginx's master and workers, summed, before the dynamic burst and after "
        "its aftermath, 10k Ingresses",
        maximum=10,
    ),
    "long_lived_broken_during_churn": Goal(
        "Dynamic mode: long-lived connections broken by the churn",
        "",
        "20 keep-alive connections through nginx, one per host, a request on each every "
        "0.1 s through the dynamic burst and its aftermath; one that fails or is closed "
        "counts",
        maximum=0,
    ),
    "proxy_throughput_ratio": Goal(
        "Throughput through nginx / direct to the backend (context only)",
        "",
        "wrk -t1 -c32 -d5s, direct and through nginx alternated twice in the same run; "
        "the backend is a static nginx on loopback",
    ),
    "dynamic_sync_10k_seconds": Goal(
        "Default (dynamic) mode: sync from agent start, 10k Ingresses",
        "s",
        _SYNC.format(n="10,000") + "; `--upstreams dynamic`, nginx with the Lua module",
        maximum=5,
    ),
    "dynamic_change_to_traffic_10k_p50_ms": Goal(
        "Default (dynamic) mode: new Ingress to traffic, 10k present, p50",
        "ms",
        _CHANGE + "; `--upstreams dynamic`",
    ),
    "dynamic_change_to_traffic_10k_p99_ms": Goal(
        "Default (dynamic) mode: new Ingress to traffic, 10k present, p99",
        "ms",
        _CHANGE + "; `--upstreams dynamic`",
        maximum=1000,
    ),
    "nginx_master_rss_after_first_reload_10k_mb": Goal(
        "Default (dynamic) mode: nginx master memory after the first reload, 10k",
        "MiB",
        _RELOADS.format(which="after the first of them"),
    ),
    "nginx_master_rss_after_20_reloads_10k_mb": Goal(
        "Default (dynamic) mode: nginx master memory after 20 reloads, 10k",
        "MiB",
        _RELOADS.format(which="after the 20th"),
    ),
    "nginx_master_rss_growth_over_20_reloads_pct": Goal(
        "Default (dynamic) mode: nginx master memory growth from the 1st to the 20th reload",
        "%",
        _RELOADS.format(which="after the 20th over after the first"),
        maximum=10,
    ),
    "sync_100k_seconds": Goal(
        "Default (dynamic) mode: sync from agent start, 100k Ingresses (BENCH_SCALE=100k)",
        "s",
        _SYNC.format(n="100,000") + "; `--upstreams dynamic`",
        maximum=30,
    ),
    "change_to_traffic_100k_p50_ms": Goal(
        "Default (dynamic) mode: new Ingress to traffic, 100k present, p50 (BENCH_SCALE=100k)",
        "ms",
        _CHANGE + "; `--upstreams dynamic`",
    ),
    "change_to_traffic_100k_p99_ms": Goal(
        "Default (dynamic) mode: new Ingress to traffic, 100k present, p99 (BENCH_SCALE=100k)",
        "ms",
        _CHANGE + "; `--upstreams dynamic`",
        maximum=3000,
    ),
    "rss_100k_mb": Goal(
        "Default (dynamic) mode: agent memory (RSS), 100k Ingresses (BENCH_SCALE=100k)",
        "MiB",
        "VmRSS of the agent process after the 100k sync and change samples",
        maximum=1536,
    ),
    "nginx_rss_100k_mb": Goal(
        "Default (dynamic) mode: nginx memory (RSS), 100k Ingresses (BENCH_SCALE=100k)",
        "MiB",
        "VmRSS of nginx's master and workers, summed, after the 100k sync and change samples",
        maximum=3072,
    ),
    "edge_vs_haproxy_rps_ratio": Goal(
        "Requests/s, edge / HAProxy, keep-alive",
        "",
        _PEERS + "; wrk -t1 -c32 -d5s over HTTP and over HTTPS; the lower of the two ratios",
        minimum=1.0,
    ),
    "edge_vs_minimal_nginx_rps_ratio": Goal(
        "Requests/s, edge / hand-written minimal nginx, keep-alive",
        "",
        _PEERS + "; as edge_vs_haproxy_rps_ratio, against one server and one upstream per "
        "host with no maps, logging or Lua: what the rendered configuration costs",
        minimum=0.9,
    ),
    "edge_vs_haproxy_tls_handshake_ratio": Goal(
        "New TLS handshakes/s, edge / HAProxy",
        "",
        _PEERS + "; wrk -t1 -c32 -d5s over HTTPS with `Connection: close`, a full "
        "handshake (ECDSA P-256, no resumption) per request",
        minimum=1.0,
    ),
    "edge_p99_latency_ms_at_fixed_rate": Goal(
        "Edge latency p99 at 1,000 requests/s",
        "ms",
        _PEERS + "; " + _FIXED_RATE,
    ),
    "haproxy_p99_latency_ms_at_fixed_rate": Goal(
        "HAProxy latency p99 at 1,000 requests/s",
        "ms",
        _PEERS + "; " + _FIXED_RATE,
    ),
}


def machine() -> dict[str, Any]:
    cpu = re.search(r"^model name\s*:\s*(.+)$", pathlib.Path("/proc/cpuinfo").read_text(), re.M)
    memory = re.search(r"^MemTotal:\s+(\d+) kB", pathlib.Path("/proc/meminfo").read_text(), re.M)
    nginx = subprocess.run([agentlab.NGINX, "-v"], capture_output=True, text=True).stderr
    try:
        debian = pathlib.Path("/etc/debian_version").read_text().strip()
    except OSError:
        debian = "unknown"
    return {
        "kind": "python (2 cores, 24 GiB; shared with other sessions)",
        "cpu": cpu[1].strip() if cpu else "unknown",
        "cores": os.cpu_count(),
        "memory_gib": round(int(memory[1]) / 1024 / 1024, 1) if memory else None,
        "os": f"Debian {debian}, Linux {platform.release()}",
        "python": platform.python_version(),
        "nginx": nginx.strip().removeprefix("nginx version: "),
    }


def source() -> dict[str, Any]:
    """The commit measured, and whether the agent's tree differed from it."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(REPOSITORY), *args], capture_output=True, text=True
        ).stdout.strip()

    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "agent_tree_modified": bool(git("status", "--porcelain", "--", "edgeagent/src")),
    }


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


@dataclass
class Results:
    started: datetime.datetime
    figures: dict[str, float]
    context: dict[str, dict[str, Any]]
    details: dict[str, Any]
    source: dict[str, Any]

    def record(self, key: str, value: float, **context: Any) -> None:
        assert key in GOALS, f"{key} has no entry in report.GOALS"
        self.figures[key] = value
        self.context[key] = context

    def document(self) -> dict[str, Any]:
        goals = {}
        for key, value in self.figures.items():
            goal = GOALS[key]
            goals[key] = {
                "max": goal.maximum,
                "min": goal.minimum,
                "met": goal.met(value),
                "unit": goal.unit,
                **self.context[key],
            }
        return {
            "schema": SCHEMA_VERSION,
            "started": self.started.isoformat(timespec="seconds"),
            "seconds": round((_now() - self.started).total_seconds(), 1),
            "machine": machine(),
            "source": self.source,
            **self.figures,
            "goals": goals,
            "details": self.details,
        }


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def new_results() -> Results:
    return Results(_now(), {}, {}, {}, source())


def write_json(document: dict[str, Any], path: pathlib.Path = JSON_PATH) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "—"}[met]


def table(document: dict[str, Any]) -> str:
    rows = [
        "| figure | what | value | goal | verdict | load avg (1 min), before → after |",
        "|---|---|---|---|---|---|",
    ]
    for key, goal in GOALS.items():
        if key not in document:
            rows.append(f"| `{key}` | {goal.title} | not measured | {goal.text} | — | — |")
            continue
        entry = document["goals"][key]
        load = f"{entry['load_average'][0]:g} → {entry['load_average_end'][0]:g}"
        if "kept_from" in entry:  # measured by an earlier run (run.py's _keep_earlier)
            load += f" (run of {entry['kept_from'][:16]})"
        value = f"{document[key]:g} {goal.unit}".rstrip()
        rows.append(
            f"| `{key}` | {goal.title} | {value} | {goal.text} | {_verdict(entry['met'])} "
            f"| {load} |"
        )
    return "\n".join(rows)


def methods() -> str:
    return "\n".join(f"- `{key}`: {goal.method}." for key, goal in GOALS.items())


def _agent_share(details: dict[str, Any]) -> str:
    """Seconds of a 10k change before its reload: build, render, stage, nginx -t."""
    if "change_to_traffic" not in details:
        return "(not measured)"
    phases = details["change_to_traffic"]["mean_sync_phases_seconds"]
    seconds = sum(phases.get(phase, 0.0) for phase in ("build", "render", "stage", "validate"))
    return f"{seconds:.2f}"


CALM_LOAD = 4.0


def _calm(details: dict[str, Any]) -> str:
    """The 10k change samples taken while the 1-minute load average was low."""
    change = details.get("change_to_traffic")
    if not change:
        return ""
    calm = [
        ms
        for ms, load in zip(change["samples_ms"], change["samples_load_average"], strict=True)
        if load < CALM_LOAD
    ]
    if not calm:
        return f"No sample of this run was taken at a load below {CALM_LOAD:g}."
    return (
        f"In this run, the {len(calm)} samples taken at a 1-minute load below {CALM_LOAD:g} "
        f"had a median of {statistics.median(calm):.0f} ms and a maximum of {max(calm):.0f} ms."
    )


def _first_nginx(details: dict[str, Any]) -> str:
    """Seconds of the first 10k sync spent in nginx -t and the reload."""
    if "sync" not in details:
        return "(not measured)"
    phases = details["sync"]["first_sync_phases_seconds"]
    return f"{phases.get('validate', 0) + phases.get('reload', 0):.1f}"


def write_doc(document: dict[str, Any], path: pathlib.Path = DOC_PATH) -> None:
    details = document["details"]
    scales = [s for s in ("1k", "10k") if "change_to_traffic" in details.get(s, {})]
    environment = jinja2.Environment(
        loader=jinja2.FileSystemLoader(pathlib.Path(__file__).parent),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    text = environment.get_template(TEMPLATE).render(
        **document,
        figure=lambda key: document.get(key, "(not measured)"),
        table=table(document),
        methods=methods(),
        scales=scales,
        last_list={
            scale: max(
                seconds
                for name, seconds in details[scale]["sync"]["agent_log_offsets_seconds"].items()
                if name.startswith("listed_")
            )
            for scale in scales
        },
        nginx=details.get("10k", {}).get("nginx"),
        restart=details.get("10k", {}).get("restart"),
        restart_seconds=details.get("10k", {}).get("restart", {}).get("seconds", "(not measured)"),
        first_nginx_10k=_first_nginx(details.get("10k", {})),
        calm_10k=_calm(details.get("10k", {})),
        agent_share_10k=_agent_share(details.get("10k", {})),
        burst=details.get("1k", {}).get("endpoint_burst"),
        dynamic=details.get("10k-dynamic"),
        dynamic_100k=details.get("100k-dynamic"),
        peers=details.get("1k-peers"),
        throughput=details.get("1k", {}).get("throughput"),
        old_worker_ms=max(
            details[scale]["change_to_traffic"]["steady_p50_ms"]
            - details[scale]["change_to_traffic"]["p50_ms"]
            for scale in scales
        )
        if scales
        else 0.0,
    )
    path.write_text(re.sub(r"\n{3,}", "\n\n", text))
