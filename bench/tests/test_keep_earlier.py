"""bench/run.py: a run of some parts, or of the 100k edge alone, keeps the other figures
of the previous JSON, each marked with the run that measured it."""

import json
import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import report
import run

EARLIER_START = "2026-12-07T14:35:41+00:00"
EARLIER = {
    "sync_10k_seconds": 5.7,
    "dynamic_sync_10k_seconds": 2.6,
    "dynamic_change_to_traffic_10k_p99_ms": 505.8,
    "nginx_master_rss_after_20_reloads_10k_mb": 16.5,
    "sync_100k_seconds": 40.0,
    "edge_vs_haproxy_rps_ratio": 0.55,
}


def _earlier_json(path: pathlib.Path) -> pathlib.Path:
    goals = {
        key: {
            "max": None,
            "min": None,
            "met": None,
            "unit": "s",
            "load_average": [1.0],
            "load_average_end": [1.0],
        }
        for key in EARLIER
    }
    goals["dynamic_sync_10k_seconds"]["kept_from"] = "2026-12-01T00:00:00+00:00"
    document = {
        "started": EARLIER_START,
        **EARLIER,
        "goals": goals,
        "details": {
            "10k-dynamic": {"sync": {"seconds": 2.6}},
            "100k-dynamic": {"sync": {"seconds": 40.0}},
            "1k-peers": {"edge": {}},
            "errors": ["old"],
        },
    }
    path.write_text(json.dumps(document))
    return path


def _kept(tmp_path: pathlib.Path, parts: set[str], dynamic_scales: list[int]) -> report.Results:
    results = report.new_results()
    run._keep_earlier(
        results, _earlier_json(tmp_path / "latest.json"), run.planned_runs(parts, dynamic_scales)
    )
    return results


def test_a_100k_run_keeps_the_10k_dynamic_figures_and_every_other_part(tmp_path):
    results = _kept(tmp_path, {"dynamic"}, [100000])
    assert set(results.figures) == set(EARLIER) - {"sync_100k_seconds"}
    assert results.figures["dynamic_change_to_traffic_10k_p99_ms"] == 505.8
    assert results.context["sync_10k_seconds"]["kept_from"] == EARLIER_START
    # A figure kept before names the run that measured it, not the one that kept it.
    assert results.context["dynamic_sync_10k_seconds"]["kept_from"] == "2026-12-01T00:00:00+00:00"
    assert results.details["10k-dynamic"] == {"sync": {"seconds": 2.6}}
    assert results.details["1k-peers"] == {"edge": {}}
    assert "100k-dynamic" not in results.details
    assert "errors" not in results.details
    assert results.details["earlier_run"] == EARLIER_START


def test_a_10k_dynamic_run_keeps_the_100k_figures(tmp_path):
    results = _kept(tmp_path, {"dynamic"}, [10000])
    assert "sync_100k_seconds" in results.figures
    assert not {"dynamic_sync_10k_seconds", "nginx_master_rss_after_20_reloads_10k_mb"} & set(
        results.figures
    )


def test_a_run_of_everything_keeps_nothing(tmp_path):
    results = _kept(tmp_path, {"static", "gateway", "dynamic", "peers"}, [10000, 100000])
    assert results.figures == {}
    assert "earlier_run" not in results.details
    assert not {"10k-dynamic", "100k-dynamic", "1k-peers"} & set(results.details)


def test_every_figure_is_measured_by_a_run_of_everything():
    everything = run.planned_runs({"static", "gateway", "dynamic", "peers"}, list(run.DYNAMIC_KEYS))
    assert {run.measured_by(key) for key in report.GOALS} <= everything


def test_the_step_timeout_grows_with_the_edge_above_its_base():
    assert run.step_timeout(1000) == run.step_timeout(10000) == run.STEP_TIMEOUT
    assert run.step_timeout(100000) == 5 * run.STEP_TIMEOUT


def test_the_table_names_the_run_of_a_kept_figure(tmp_path):
    results = _kept(tmp_path, {"dynamic"}, [100000])
    results.record("sync_100k_seconds", 25.0, load_average=[3.0], load_average_end=[4.0])
    rows = report.table(results.document()).splitlines()
    [kept] = [row for row in rows if row.startswith("| `sync_10k_seconds`")]
    [measured] = [row for row in rows if row.startswith("| `sync_100k_seconds`")]
    assert kept.endswith("| 1 → 1 (run of 2026-12-07T14:35) |")
    assert measured.endswith("| 3 → 4 |")
