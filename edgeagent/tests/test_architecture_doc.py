"""docs/architecture.md describes every module of the agent, and no module that is gone."""

import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "edgeagent" / "src" / "edgeagent"


def test_the_module_table_matches_the_package():
    text = (ROOT / "docs" / "architecture.md").read_text()
    table = text.split("### Modules (`edgeagent/src/edgeagent/`)", 1)[1].split("\n### ", 1)[0]
    first_column = "".join(re.findall(r"^\| ([^|]*) \|", table, re.M))
    named = set(re.findall(r"`([\w/]+(?:\.py|/))`", first_column))
    modules = {p.name for p in PACKAGE.glob("*.py") if p.name != "__init__.py"}
    directories = {
        f"{p.name}/" for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"
    }
    assert named == modules | directories
