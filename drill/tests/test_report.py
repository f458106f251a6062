import json

import pytest

from drill import report
from drill.tests.bgp_synthetic import bgp_requests
from drill.tests.synthetic import FAULT, RESTORE, SETTLED, synthetic_requests

EDGE1 = """\
[INIT 1970-01-01T00:01:39.000000]
2: eth0    inet 198.51.100.100/32 scope global eth0
[1970-01-01T00:01:42.250000] Deleted 2: eth0    inet 198.51.100.100/32 scope global eth0
[1970-01-01T00:01:45.490000] 2: eth0    inet 198.51.100.100/32 scope global eth0
"""
EDGE2 = """\
[INIT 1970-01-01T00:01:39.000000]
[1970-01-01T00:01:42.250000] 2: eth0    inet 198.51.100.100/32 scope global eth0
[1970-01-01T00:01:45.500000] Deleted 2: eth0    inet 198.51.100.100/32 scope global eth0
"""


def write_raw(raw):
    (raw / "holders").mkdir(parents=True)
    (raw / "holders" / "edge1.log").write_text(EDGE1)
    (raw / "holders" / "edge2.log").write_text(EDGE2)
    (raw / "keepalived").mkdir()
    (raw / "keepalived" / "edge1.conf").write_text(
        "vrrp_instance VI_EDGE {\n    version 3\n    advert_int 0.1\n}\n"
    )
    lines = [{"kind": "meta", "t": 99.5, "period_s": 0.02, "timeout_s": 0.5, "long_lived": 1}]
    lines += [r.__dict__ for r in synthetic_requests()]
    lines += [{"kind": "end", "t": 110.0, "probes": 500}]
    (raw / "loadgen.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    marks = [
        {"scenario": "keepalived-stop", "event": "fault", "t": FAULT},
        {"scenario": "keepalived-stop", "event": "restore", "t": RESTORE},
        {"scenario": "keepalived-stop", "event": "settled", "t": SETTLED},
    ]
    (raw / "marks.json").write_text(
        json.dumps({"vip": "198.51.100.100", "platform": "docker", "marks": marks})
    )


def test_report_writes_json_png_and_prints_the_table(tmp_path, capsys):
    write_raw(tmp_path / "raw")
    json_path, png_path = tmp_path / "drill.json", tmp_path / "drill.png"
    args = [str(tmp_path / "raw"), "--json", str(json_path), "--png", str(png_path)]
    assert report.main([*args, "--goals", "lab"]) == 0
    written = json.loads(json_path.read_text())
    (scenario,) = written["scenarios"]
    assert {k: scenario[k] for k in ("name", "holder_before", "holder_after", "failed")} == {
        "name": "keepalived-stop",
        "holder_before": "edge1",
        "holder_after": "edge2",
        "failed": 15,
    }
    assert written["loadgen"]["node_source"] == "response header"
    assert written["split_brain_allowance_ms"] == 100
    assert written["keepalived"]["edge1"]["vrrp_instance"][0]["advert_int"] == 0.1
    assert [(g["field"], g["met"]) for g in written["goals"]] == [
        ("gap_ms", True),
        ("failback_failed", True),
    ]
    assert written["goals_met"] is True
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    table = capsys.readouterr().out
    assert "keepalived-stop  edge1>edge2  302" in table
    assert "baseline before the first fault: 0/100 failed" in table
    assert "goals met: 2 of 2" in table


def test_a_power_off_cuts_its_target_out_of_the_vip_holders_at_the_fault():
    drill = {
        "marks": [
            {"scenario": "power-off", "event": "fault", "t": 100.0},
            {"scenario": "power-off", "event": "restore", "t": 130.0},
            {"scenario": "keepalived-stop", "event": "fault", "t": 200.0},
        ],
        "scenarios": {
            "power-off": {"target": "dir1"},
            "keepalived-stop": {"target": "dir2"},
        },
    }
    assert report.power_cuts(drill) == [("dir1", 100.0)]


def write_bgp_raw(raw, requests):
    (raw / "holders").mkdir(parents=True)
    (raw / "holders" / "router.log").write_text(
        '{"t": 99.0, "via": ["198.51.100.11", "198.51.100.12"]}\n'
        '{"t": 102.3, "via": ["198.51.100.12"]}\n'
        '{"t": 105.5, "via": ["198.51.100.11", "198.51.100.12"]}\n'
    )
    lines = [{"kind": "meta", "t": 99.5, "period_s": 0.02, "timeout_s": 0.5, "long_lived": 2}]
    lines += [r.__dict__ for r in requests]
    lines += [{"kind": "end", "t": 110.0, "probes": 500}]
    (raw / "loadgen.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    marks = [
        {"scenario": "power-off", "event": "fault", "t": FAULT},
        {"scenario": "power-off", "event": "restore", "t": RESTORE},
        {"scenario": "power-off", "event": "settled", "t": SETTLED},
    ]
    drill = {
        "vip": "198.51.100.100",
        "vip_mode": "bgp",
        "platform": "docker",
        "node_aliases": {"198.51.100.11": "edge1", "198.51.100.12": "edge2"},
        "marks": marks,
        "scenarios": {"power-off": {"target": "edge1"}},
    }
    (raw / "marks.json").write_text(json.dumps(drill))


def test_a_bgp_report_has_the_mode_the_shares_and_the_surviving_nodes_breaks(tmp_path, capsys):
    write_bgp_raw(tmp_path / "raw", bgp_requests())
    json_path, png_path = tmp_path / "drill.json", tmp_path / "drill.png"
    args = [str(tmp_path / "raw"), "--json", str(json_path), "--png", str(png_path)]
    assert report.main([*args, "--goals", "bgp-lab"]) == 0
    written = json.loads(json_path.read_text())
    assert written["vip_mode"] == "bgp"
    (scenario,) = written["scenarios"]
    assert scenario["holder_before"] == "edge1"
    assert scenario["holder_after"] == "edge2"
    assert scenario["gap_ms"] == pytest.approx(302.0)
    assert scenario["share_before"] == {"edge1": 50, "edge2": 50}
    assert scenario["share_after"] == {"edge2": 142}
    assert scenario["broken_long_lived"] == 1  # edge1's own connection
    assert scenario["broken_surviving"] == 0
    assert scenario["split_brain_moments"] is None
    # The router announced nothing for edge1 from 102.3 until 105.5, edge2 all along.
    assert scenario["vip_vacant_ms_during_fault"] == 0
    assert written["goals_met"] is True
    assert {g["field"] for g in written["goals"]} == {
        "gap_ms",
        "broken_surviving",
        "failback_broken_surviving",
        "failback_failed",
    }
    assert png_path.read_bytes()[:4] == b"\x89PNG"
    table = capsys.readouterr().out
    assert "edge1 50% edge2 50%" in table
    assert "goals met: 4 of 4" in table


def test_a_bgp_report_names_a_break_of_a_surviving_node_as_a_missed_goal(tmp_path, capsys):
    write_bgp_raw(tmp_path / "raw", bgp_requests(survivor_broken_at=(105.505,)))
    json_path, png_path = tmp_path / "drill.json", tmp_path / "drill.png"
    args = [str(tmp_path / "raw"), "--json", str(json_path), "--png", str(png_path)]
    assert report.main([*args, "--goals", "bgp-lab"]) == 0
    written = json.loads(json_path.read_text())
    assert written["scenarios"][0]["failback_broken_surviving"] == 1
    assert written["goals_met"] is False
    assert "MISSED surviving after failback" in capsys.readouterr().out
