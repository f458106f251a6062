"""The release an upgrade starts from (tools/previous_release.py), found with real git in
repositories made here: the newest release commit before HEAD (the one that added a
CHANGELOG.md release heading), found without tags, its tree exported whole, and a clear
refusal where git cannot tell (no checkout, a shallow clone that stops before it)."""

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


def commit(repo: Path, version: str, released: bool = True) -> str:
    """A commit with VERSION holding `version`; a released one adds its CHANGELOG.md heading
    (as tools/release.py does), an unreleased one edits the changelog's text only."""
    (repo / "VERSION").write_text(version + "\n")
    changelog = repo / "CHANGELOG.md"
    text = changelog.read_text() if changelog.exists() else "# Changelog\n\n## Unreleased\n"
    if released:
        text = text.replace("## Unreleased\n", f"## Unreleased\n\n## {version} - 2026-01-01\n")
    else:
        text += f"- {version}\n"
    changelog.write_text(text)
    git(repo, "add", "VERSION", "CHANGELOG.md")
    git(repo, "commit", "-q", "-m", f"Release {version}" if released else version)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path):
    """Releases 1.0.0, 1.9.0 and 1.10.0, then a change, with a symlink the way .collections/
    has one, and no tags."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    (repo / "links").mkdir()
    (repo / "links" / "root").symlink_to("..")
    git(repo, "add", "links")
    commit(repo, "1.0.0")
    commit(repo, "1.9.0")
    commit(repo, "1.10.0")
    commit(repo, "unreleased", released=False)
    return repo


@pytest.fixture
def release_1_10(repo):
    """The commit that released 1.10.0, the one before the fixture's last."""
    return git(repo, "rev-parse", "HEAD~1")


def test_the_versions_a_changelog_releases():
    changelog = "## Unreleased\n\n## 1.10.0 - 2026-01-01\n- x\n## 1.9.0 - 2025-12-31\n## 2.0.0\n"
    assert previous_release.released_versions(changelog) == {"1.10.0", "1.9.0"}
    assert previous_release.released_versions(None) == set()


def test_head_after_a_release_upgrades_from_that_release(repo, release_1_10, tmp_path, capsys):
    tree = tmp_path / "tree"
    (tree / "left-over").mkdir(parents=True)
    assert previous_release.main(["--repo", str(repo), "--export", str(tree)]) == 0
    assert capsys.readouterr().out == f"v1.10.0 ({release_1_10[:12]})\n"
    assert (tree / "VERSION").read_text() == "1.10.0\n"
    assert (tree / "links" / "root").readlink() == Path("..")
    assert not (tree / "left-over").exists() and not (tree / ".git").exists()


def test_a_release_commit_upgrades_from_the_release_before(repo):
    commit(repo, "1.11.0")
    assert previous_release.find(repo).version == "1.10.0"


def test_the_newest_release_by_version_not_by_date(repo):
    """A fix release of an older line made after the newest release is not what HEAD upgrades
    from: the newest version is."""
    commit(repo, "1.9.1")
    commit(repo, "more", released=False)
    assert previous_release.find(repo).version == "1.10.0"


def test_a_release_heading_taken_back_is_no_release(repo):
    commit(repo, "1.11.0")
    git(repo, "revert", "--no-edit", "HEAD")
    commit(repo, "after", released=False)
    assert previous_release.find(repo).version == "1.10.0"


def test_releases_of_other_branches_are_not_releases_of_head(repo):
    first = git(repo, "rev-list", "--max-parents=0", "HEAD")
    git(repo, "checkout", "-q", "-b", "other", first)
    commit(repo, "other", released=False)
    assert previous_release.find(repo) == previous_release.PreviousRelease("1.0.0", first)


def test_a_release_merged_from_a_branch_is_its_own_commit(repo, release_1_10):
    git(repo, "checkout", "-q", "-b", "fix", release_1_10)
    release = commit(repo, "1.10.1")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "Merge fix", "-X", "theirs", "fix")
    assert previous_release.find(repo) == previous_release.PreviousRelease("1.10.1", release)


def test_a_clone_without_tags_finds_the_release(repo, release_1_10, tmp_path):
    git(repo, "tag", "v1.10.0", release_1_10)
    clone = tmp_path / "untagged"
    git(tmp_path, "clone", "-q", "--no-tags", str(repo), str(clone))
    assert git(clone, "tag") == ""
    assert previous_release.find(clone).commit == release_1_10


def test_a_tree_without_git_says_to_clone(tmp_path, capsys):
    assert previous_release.main(["--repo", str(tmp_path)]) == 1
    assert "is not a git checkout" in capsys.readouterr().err


def test_a_shallow_clone_says_how_to_fetch_the_release(repo, tmp_path, capsys):
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth=1", f"file://{repo}", str(clone))
    assert previous_release.main(["--repo", str(clone)]) == 1
    assert f"git -C {clone} fetch --unshallow" in capsys.readouterr().err


def test_a_project_without_a_release_says_so(tmp_path, capsys):
    repo = tmp_path / "new"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    commit(repo, "first", released=False)
    assert previous_release.main(["--repo", str(repo)]) == 1
    assert "release one first" in capsys.readouterr().err


def test_this_repository_has_a_release_to_upgrade_from():
    """The Docker scenario's upgrade starts here, in any full clone, tags or not."""
    assert previous_release.find(REPO).version
