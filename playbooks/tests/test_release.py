"""Releases: the collection's and the agent's version are one (tools/release.py), and a
release rewrites exactly the version lines and the changelog's heading, or nothing at all."""

import shutil
import sys
from pathlib import Path

import pytest

from edgeagent import cli

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import release  # noqa: E402

FILES = ["galaxy.yml", "edgeagent/pyproject.toml", "CHANGELOG.md"]


@pytest.fixture
def repo(tmp_path):
    """A copy of the files a release touches."""
    for name in FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, tmp_path / name)
    return tmp_path


def contents(repo: Path) -> dict[str, str]:
    return {name: (repo / name).read_text() for name in FILES}


def test_the_repository_has_one_version_and_the_agent_shows_it(capsys):
    version = release.check(REPO)
    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out == f"edgeagent {version}\n"


def test_a_release_dates_the_unreleased_section_and_sets_both_versions(repo):
    before = contents(repo)
    current = release.check(repo)
    major, minor, _ = release.version_key(current)
    new = f"{major}.{minor + 1}.0"
    assert release.main(["--repo", str(repo), "--date", "2027-01-02", new]) == 0
    after = contents(repo)
    assert release.check(repo) == new
    assert after["CHANGELOG.md"] == before["CHANGELOG.md"].replace(
        "## Unreleased\n", f"## Unreleased\n\n## {new} - 2027-01-02\n", 1
    )
    assert release.releases(after["CHANGELOG.md"])[0] == release.Release(new, "2027-01-02")
    for name in ["galaxy.yml", "edgeagent/pyproject.toml"]:
        changed = [
            (old, line)
            for old, line in zip(before[name].splitlines(), after[name].splitlines(), strict=True)
            if old != line
        ]
        assert len(changed) == 1 and new in changed[0][1], name
    # The same version again is not a new release.
    assert release.main(["--repo", str(repo), new]) == 1
    assert contents(repo) == after


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("galaxy.yml", "version: ", "version: 9"), "the versions disagree"),
        (("CHANGELOG.md", "## Unreleased", "## Next"), "first section must be"),
        (("CHANGELOG.md", "## Unreleased\n", "## Unreleased\n\n## 1.2 - 2027-01-02\n"),
         "is not '## X.Y.Z - YYYY-MM-DD'"),
        (("CHANGELOG.md", "## Unreleased\n", "## Unreleased\n\n## 99.0.0 - 2027-01-02\n"),
         "is later than"),
    ],
)  # fmt: skip
def test_a_bad_tree_is_refused_and_left_as_it_was(repo, capsys, edit, message):
    name, old, new = edit
    (repo / name).write_text((repo / name).read_text().replace(old, new, 1))
    before = contents(repo)
    assert release.main(["--repo", str(repo), "--check"]) == 1
    assert release.main(["--repo", str(repo), "100.0.0"]) == 1
    assert message in capsys.readouterr().err
    assert contents(repo) == before


@pytest.mark.parametrize("version", ["1.0", "v1.0.0", "01.2.3", "1.2.3-rc1"])
def test_a_version_outside_semantic_versioning_is_refused(repo, capsys, version):
    before = contents(repo)
    assert release.main(["--repo", str(repo), version]) == 1
    assert "semantic versioning" in capsys.readouterr().err
    assert contents(repo) == before


def test_an_earlier_version_than_the_files_is_refused(repo, capsys):
    # The files ahead of the last release (a bump not released yet), whatever the tree's.
    for name in ("galaxy.yml", "edgeagent/pyproject.toml"):
        path = repo / name
        version = release.file_version(repo, name)
        path.write_text(path.read_text().replace(version, "90.0.0", 1))
    before = contents(repo)
    assert release.main(["--repo", str(repo), "80.0.0"]) == 1
    assert "earlier than" in capsys.readouterr().err
    assert contents(repo) == before
