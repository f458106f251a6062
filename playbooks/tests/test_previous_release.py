"""The release an upgrade starts from (tools/previous_release.py), found with real git in
repositories made here: the newest release tag before HEAD, its tree exported whole, and a
clear refusal where git cannot tell (no checkout, a shallow clone, no tags)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))

import previous_release  # noqa: E402

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "test",
    "GIT_AUTHOR_EMAIL": "test@example.invalid",
    "GIT_COMMITTER_NAME": "test",
    "GIT_COMMITTER_EMAIL": "test@example.invalid",
}


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **GIT_IDENTITY},
    )
    return done.stdout.strip()


def commit(repo: Path, text: str, tag: str | None = None) -> None:
    (repo / "VERSION").write_text(text + "\n")
    git(repo, "add", "VERSION")
    git(repo, "commit", "-q", "-m", text)
    if tag:
        git(repo, "tag", "-a", tag, "-m", f"Release {tag}")


@pytest.fixture
def repo(tmp_path):
    """Releases 1.0.0, 1.10.0 (after 1.9.0 in time, later in version) and 1.9.0, with a
    symlink the way .collections/ has one, and a tag that is no release."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "links").mkdir()
    (repo / "links" / "root").symlink_to("..")
    git(repo, "add", "links")
    commit(repo, "1.0.0", "v1.0.0")
    commit(repo, "1.9.0", "v1.9.0")
    commit(repo, "1.10.0", "v1.10.0")
    git(repo, "tag", "v2-rc")
    commit(repo, "unreleased")
    return repo


def test_the_newest_release_by_version_other_than_heads_own_tag():
    tags = ["v1.0.0", "v1.10.0", "v1.9.0", "v2.0.0-rc1", "vnext", "old"]
    assert previous_release.previous(tags, []) == "v1.10.0"
    assert previous_release.previous(tags, ["v1.10.0"]) == "v1.9.0"
    assert previous_release.previous(["v2.0.0-rc1"], []) is None


def test_head_after_a_release_upgrades_from_that_release(repo, tmp_path, capsys):
    tree = tmp_path / "tree"
    (tree / "left-over").mkdir(parents=True)
    assert previous_release.main(["--repo", str(repo), "--export", str(tree)]) == 0
    assert capsys.readouterr().out == "v1.10.0\n"
    assert (tree / "VERSION").read_text() == "1.10.0\n"
    assert (tree / "links" / "root").readlink() == Path("..")
    assert not (tree / "left-over").exists() and not (tree / ".git").exists()


def test_a_release_commit_upgrades_from_the_release_before(repo, capsys):
    commit(repo, "1.11.0", "v1.11.0")
    assert previous_release.main(["--repo", str(repo)]) == 0
    assert capsys.readouterr().out == "v1.10.0\n"


def test_tags_of_other_branches_are_not_releases_of_head(repo, capsys):
    git(repo, "checkout", "-q", "-b", "other", "v1.0.0")
    commit(repo, "other")
    assert previous_release.main(["--repo", str(repo)]) == 0
    assert capsys.readouterr().out == "v1.0.0\n"


def test_a_tree_without_git_says_to_clone(tmp_path, capsys):
    assert previous_release.main(["--repo", str(tmp_path)]) == 1
    assert "is not a git checkout" in capsys.readouterr().err


def test_a_shallow_clone_says_how_to_fetch_the_release(repo, tmp_path, capsys):
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth=1", f"file://{repo}", str(clone))
    assert previous_release.main(["--repo", str(clone)]) == 1
    assert f"git -C {clone} fetch --unshallow --tags" in capsys.readouterr().err


def test_a_clone_without_tags_says_to_fetch_them(repo, tmp_path, capsys):
    clone = tmp_path / "untagged"
    git(tmp_path, "clone", "-q", "--no-tags", str(repo), str(clone))
    assert previous_release.main(["--repo", str(clone)]) == 1
    assert f"git -C {clone} fetch --tags" in capsys.readouterr().err


def test_this_repository_has_a_release_to_upgrade_from():
    """The Docker scenario's upgrade starts here (a checkout without the tags fails, saying
    what to fetch)."""
    assert previous_release.find(REPO).startswith("v")
