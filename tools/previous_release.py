"""The release an upgrade starts from: the newest tag vX.Y.Z that HEAD contains, other than a
tag on HEAD itself (a release commit is not an upgrade from itself). Read from git, so a
checkout without its history cannot tell: a tarball, or a shallow clone without the tags,
fails with what to run instead of silently testing nothing.

    python tools/previous_release.py                  # prints the tag, e.g. v2.0.0
    python tools/previous_release.py --export DIR     # and the tree at that tag in DIR (emptied)

molecule's Docker scenario converges the exported tree's own site.yml before it converges
HEAD's, the upgrade an operator makes (docs/operations.md).
"""

import argparse
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterable
from pathlib import Path

from release import SEMVER, version_key

REPO = Path(__file__).resolve().parent.parent
TAG = re.compile(rf"v({SEMVER})")


class NoPreviousRelease(Exception):
    """Why the previous release cannot be found, and what to run."""


def previous(contained: Iterable[str], on_head: Iterable[str]) -> str | None:
    """The newest release tag of `contained` (the tags HEAD contains) not in `on_head`."""
    skipped = set(on_head)
    releases = [tag for tag in contained if TAG.fullmatch(tag) and tag not in skipped]
    return max(releases, key=lambda tag: version_key(tag[1:]), default=None)


def git(repo: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=False
        )
    except FileNotFoundError:
        raise NoPreviousRelease("git is not installed; the previous release is a git tag") from None
    if done.returncode != 0:
        raise NoPreviousRelease(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def find(repo: Path) -> str:
    try:
        toplevel = Path(git(repo, "rev-parse", "--show-toplevel").strip())
    except NoPreviousRelease:
        toplevel = None
    if toplevel is None or toplevel.resolve() != repo.resolve():
        raise NoPreviousRelease(
            f"{repo} is not a git checkout (a tarball?): the upgrade test needs the release "
            "tags, which a `git clone` of the repository carries"
        )
    found = previous(
        git(repo, "tag", "--list", "v*", "--merged", "HEAD").split(),
        git(repo, "tag", "--list", "v*", "--points-at", "HEAD").split(),
    )
    if found:
        return found
    if git(repo, "rev-parse", "--is-shallow-repository").strip() == "true":
        raise NoPreviousRelease(
            f"{repo} is a shallow clone without the previous release: "
            f"git -C {repo} fetch --unshallow --tags"
        )
    raise NoPreviousRelease(
        f"no release tag vX.Y.Z before HEAD in {repo}: git -C {repo} fetch --tags "
        "(a project without a release yet has nothing to upgrade from: release one first)"
    )


def export(repo: Path, tag: str, target: Path) -> None:
    """The tree at `tag` in `target`, emptied first (git archive: no .git, symlinks kept)."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as scratch:
        archive = Path(scratch) / "tree.tar"
        git(repo, "archive", "--format=tar", f"--output={archive}", tag)
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--export", type=Path, metavar="DIR", help="the tree at the tag, here")
    args = parser.parse_args(argv)
    try:
        tag = find(args.repo)
        if args.export:
            export(args.repo, tag, args.export)
    except NoPreviousRelease as error:
        print(f"previous release: {error}", file=sys.stderr)
        return 1
    print(tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
