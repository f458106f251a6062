"""The ansible role and the agent name each setting the same way.

The role passes the settings listed in its vars/main.yml (`__edgeagent_run_settings`) from
role variables `edgeagent_<setting>`; each must be a flag of `edgeagent run`, have a role
default, an argument spec with the same default and a row in docs/roles.md.
"""

import pathlib
import re

import jinja2
import pytest
import yaml

from edgeagent import settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
ROLE = ROOT / "roles" / "edgeagent"


def _yaml(path: pathlib.Path):
    return yaml.safe_load(path.read_text())


RUN_SETTINGS = _yaml(ROLE / "vars" / "main.yml")["__edgeagent_run_settings"]
DEFAULTS = _yaml(ROLE / "defaults" / "main.yml")
SPECS = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
FLAGS = set(settings.flags())


def _docs_rows() -> dict[str, str]:
    """The edgeagent table of docs/roles.md: variable -> its default column."""
    text = (ROOT / "docs" / "roles.md").read_text()
    section = text.split("### edgeagent\n", 1)[1]
    return {
        match[1]: match[2].strip()
        for match in re.finditer(r"^\| `(edgeagent_\w+)` \| ([^|]*) \|(.*)$", section, re.M)
    }


def _value(text: str):
    """A default as YAML reads it (`*:80` is no YAML, and stays text)."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _rendered(value):
    """A role default as the nginx and keepalived roles' defaults leave it (their variables
    undefined); None for one that needs another role's facts."""
    if not isinstance(value, str) or "{{" not in value:
        return value
    try:
        return _value(jinja2.Environment().from_string(value).render())
    except jinja2.TemplateError:
        return None


def variable(setting: str) -> str:
    return settings.role_variable(setting)


def test_the_role_passes_each_setting_once():
    assert len(RUN_SETTINGS) == len(set(RUN_SETTINGS))


@pytest.mark.parametrize("setting", RUN_SETTINGS)
def test_each_role_setting_is_a_flag_with_a_default_a_spec_and_a_docs_row(setting):
    name = variable(setting)
    assert setting in FLAGS, f"edgeagent run has no --{setting}"
    assert name in DEFAULTS, f"defaults/main.yml lacks {name}"
    assert name in SPECS, f"meta/argument_specs.yml lacks {name}"
    rows = _docs_rows()
    assert name in rows, f"docs/roles.md has no row for {name}"
    assert f"`--{setting}`" in (ROOT / "docs" / "roles.md").read_text()
    default = _rendered(DEFAULTS[name])
    if "default" in SPECS[name]:
        assert SPECS[name]["default"] == default, f"{name}: argument spec and default differ"
        assert _value(rows[name].strip("`")) == default, f"{name}: docs row differs"
    else:
        assert default is None, f"{name}: give the argument spec the default {default!r}"


def test_every_role_variable_has_an_argument_spec():
    assert set(DEFAULTS) == set(SPECS)
