"""The project's one version: galaxy.yml's `version` (the collection is the product) and the
agent's (edgeagent/pyproject.toml, shown by `edgeagent --version` and edgeagent_build_info).

    python tools/release.py --check          # both agree, CHANGELOG.md is well formed
    python tools/release.py 0.3.0            # release 0.3.0 today (docs/operations.md)

Releasing sets both files to the version and turns CHANGELOG.md's "Unreleased" section into
"X.Y.Z - YYYY-MM-DD" under a new, empty "Unreleased"; the files are rewritten in place, line
by line, and nothing is written when any check fails. Committing and tagging `vX.Y.Z` stay
with the releaser (git is not touched here).
"""

import argparse
import datetime
import re
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEMVER = r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
CHANGELOG = "CHANGELOG.md"
UNRELEASED = "## Unreleased"
RELEASE_HEADING = re.compile(rf"^## ({SEMVER}) - (\d{{4}}-\d{{2}}-\d{{2}})$")
# The one `version:` line of each file; a release rewrites only that line.
VERSION_LINES = {
    "galaxy.yml": re.compile(r"^version: (\S+)$", re.MULTILINE),
    "edgeagent/pyproject.toml": re.compile(r'^version = "([^"]*)"$', re.MULTILINE),
}


class ReleaseError(Exception):
    """What is wrong, for the releaser."""


@dataclass(frozen=True)
class Release:
    version: str
    date: str


def version_key(version: str) -> tuple[int, ...]:
    if not re.fullmatch(SEMVER, version):
        raise ReleaseError(f"{version!r} is not a version MAJOR.MINOR.PATCH (semantic versioning)")
    return tuple(int(part) for part in version.split("."))


def file_version(repo: Path, name: str) -> str:
    found = VERSION_LINES[name].findall((repo / name).read_text())
    if len(found) != 1:
        raise ReleaseError(f"{name}: expected one version line, found {len(found)}")
    return found[0]


def project_version(repo: Path) -> str:
    """The version both files hold; a mismatch is an error naming each."""
    versions = {name: file_version(repo, name) for name in VERSION_LINES}
    if len(set(versions.values())) != 1:
        listed = ", ".join(f"{name} has {version}" for name, version in versions.items())
        raise ReleaseError(f"the versions disagree: {listed}")
    (version,) = set(versions.values())
    version_key(version)
    return version


def releases(changelog: str) -> list[Release]:
    """The released sections, newest first; the first section must be "Unreleased" and the
    releases must go down in version."""
    headings = [line for line in changelog.splitlines() if line.startswith("## ")]
    if not headings or headings[0] != UNRELEASED:
        raise ReleaseError(f"CHANGELOG.md: the first section must be {UNRELEASED!r}")
    found = []
    for heading in headings[1:]:
        match = RELEASE_HEADING.match(heading)
        if not match:
            raise ReleaseError(f"CHANGELOG.md: {heading!r} is not '## X.Y.Z - YYYY-MM-DD'")
        found.append(Release(match.group(1), match.group(5)))
    keys = [version_key(release.version) for release in found]
    if keys != sorted(keys, reverse=True) or len(set(keys)) != len(keys):
        raise ReleaseError("CHANGELOG.md: releases must be newest first, each once")
    return found


def check(repo: Path) -> str:
    """The project's version, after checking that the changelog does not list it or a later
    one as released without the files saying so."""
    version = project_version(repo)
    released = releases((repo / CHANGELOG).read_text())
    if released and version_key(released[0].version) > version_key(version):
        raise ReleaseError(
            f"CHANGELOG.md's newest release {released[0].version} is later than {version}"
        )
    return version


def release(repo: Path, version: str, date: datetime.date) -> None:
    current = check(repo)
    released = releases((repo / CHANGELOG).read_text())
    if released and version_key(version) <= version_key(released[0].version):
        raise ReleaseError(f"{version} is not later than the last release {released[0].version}")
    if version_key(version) < version_key(current):
        raise ReleaseError(f"{version} is earlier than the files' version {current}")
    changelog = (repo / CHANGELOG).read_text()
    new_changelog = changelog.replace(
        UNRELEASED, f"{UNRELEASED}\n\n## {version} - {date.isoformat()}", 1
    )
    rewritten = {CHANGELOG: new_changelog}
    for name, pattern in VERSION_LINES.items():
        text = (repo / name).read_text()
        line = pattern.search(text).group(0)
        rewritten[name] = text.replace(line, line.replace(current, version), 1)
    for name, text in rewritten.items():
        (repo / name).write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("version", nargs="?", help="the version to release, X.Y.Z")
    action.add_argument("--check", action="store_true", help="check only, write nothing")
    parser.add_argument("--repo", type=Path, default=REPO)
    parser.add_argument("--date", type=datetime.date.fromisoformat, help="default: today (UTC)")
    args = parser.parse_args(argv)
    try:
        if args.check:
            print(check(args.repo))
            return 0
        date = args.date or datetime.datetime.now(datetime.UTC).date()
        release(args.repo, args.version, date)
    except ReleaseError as error:
        print(f"release: {error}", file=sys.stderr)
        return 1
    print(f"{args.version}: commit, then tag v{args.version} (docs/operations.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
