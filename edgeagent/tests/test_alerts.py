"""The shipped Prometheus alert rules: valid, tested with promtool, on metrics that exist."""

import pathlib
import re
import subprocess

import yaml
from edgeagent.metrics import Metrics

RULES_DIR = pathlib.Path(__file__).resolve().parents[2] / "roles/edgeagent/files/prometheus"
RULES = RULES_DIR / "edgeagent-alerts.yml"


def promtool(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["promtool", *arguments], cwd=RULES_DIR, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules():
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", "edgeagent-alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_rules_name_only_metrics_the_agent_exports():
    exported = set()
    for family in Metrics().registry.collect():
        # A counter's samples are NAME_total (none yet for one with labels).
        exported.add(f"{family.name}_total" if family.type == "counter" else family.name)
    expressions = [
        rule["expr"]
        for group in yaml.safe_load(RULES.read_text())["groups"]
        for rule in group["rules"]
    ]
    named = {name for expr in expressions for name in re.findall(r"\bedgeagent_\w+", expr)}
    assert named and named <= exported, named - exported
