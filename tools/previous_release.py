"""The release an upgrade starts from: the newest release in HEAD's history other than HEAD
itself (a release commit is not an upgrade from itself). A release is the commit that
tools/release.py's edit made: the one that added CHANGELOG.md's `## X.Y.Z - YYYY-MM-DD`
heading. Tags are labels for people and are not needed (a clone without them still knows its
releases); the history is: a tarball, or a shallow clone that stops before the release, fails
with what to run instead of silently testing nothing.

    python tools/previous_release.py               # the release, e.g. v2.0.0 (2c1bb92d53a1)
    python tools/previous_release.py --export DIR  # and its tree in DIR (emptied)

molecule's Docker scenario converges the exported tree's own site.yml before it converges
HEAD's, the upgrade an operator makes (docs/operations.md).
"""

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from release import CHANGELOG, RELEASE_HEADING, version_key

REPO = Path(__file__).resolve().parent.parent


class NoPreviousRelease(Exception):
    """Why the previous release cannot be found, and what to run."""


@dataclass(frozen=True)
class PreviousRelease:
    version: str
    commit: str

    def __str__(self) -> str:
        return f"v{self.version} ({self.commit[:12]})"


def git(repo: Path, *args: str, check: bool = True) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise NoPreviousRelease("git is not installed; the previous release is in git") from None
    if done.returncode != 0:
        if not check:
            return None
        raise NoPreviousRelease(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def released_versions(changelog: str | None) -> set[str]:
    """The versions that a CHANGELOG.md's release headings name."""
    return {
        match.group(1)
        for line in (changelog or "").splitlines()
        if (match := RELEASE_HEADING.match(line))
    }


def releases(repo: Path) -> list[PreviousRelease]:
    """The release commits in HEAD's history: each added a release heading to CHANGELOG.md
    (`git log -G` lists the commits whose diff adds or removes such a line; merges show none,
    so a release made on a branch is its own commit)."""
    found = []
    candidates = git(repo, "log", "--format=%H", "-G", "^## [0-9]", "HEAD", "--", CHANGELOG)
    for commit in candidates.split():
        after = git(repo, "show", f"{commit}:{CHANGELOG}", check=False)
        before = git(repo, "show", f"{commit}^:{CHANGELOG}", check=False)
        added = released_versions(after) - released_versions(before)
        if added:
            found.append(PreviousRelease(max(added, key=version_key), commit))
    return found


def find(repo: Path) -> PreviousRelease:
    toplevel = git(repo, "rev-parse", "--show-toplevel", check=False)
    if toplevel is None or Path(toplevel.strip()).resolve() != repo.resolve():
        raise NoPreviousRelease(
            f"{repo} is not a git checkout (a tarball?): the upgrade test needs the release "
            "in the history, which a `git clone` of the repository carries"
        )
    head = git(repo, "rev-parse", "HEAD").strip()
    # A heading added and taken back (a revert) released nothing: HEAD's changelog says.
    listed = released_versions(git(repo, "show", f"HEAD:{CHANGELOG}", check=False))
    earlier = [
        release
        for release in releases(repo)
        if release.commit != head and release.version in listed
    ]
    if earlier:
        return max(earlier, key=lambda release: version_key(release.version))
    if git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
        raise NoPreviousRelease(
            f"{repo} is a shallow clone without the previous release: "
            f"git -C {repo} fetch --unshallow"
        )
    raise NoPreviousRelease(
        f"no release before HEAD in {repo} (no commit added a `## X.Y.Z - date` heading to "
        f"{CHANGELOG}): a project without a release has nothing to upgrade from; release one "
        "first with tools/release.py"
    )


def export(repo: Path, commit: str, target: Path) -> None:
    """The tree at `commit` in `target`, emptied first (git archive: no .git, symlinks kept)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "tree.tar"
        git(repo, "archive", "--format=tar", f"--output={archive}", commit)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--export", type=Path, metavar="DIR", help="the release's tree, here")
    args = parser.parse_args(argv)
    try:
        previous = find(args.repo)
        if args.export:
            export(args.repo, previous.commit, args.export)
    except NoPreviousRelease as error:
        print(f"previous release: {error}", file=sys.stderr)
        return 1
    print(previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
