"""Build the wheelhouse that edge nodes install edgeagent from, on the Ansible controller.

One directory per hash of the agent's source, the pins and this script: the agent's wheel
(built here) and every dependency as a binary wheel for the nodes' Python and platform
(downloaded from PyPI, which the nodes themselves need not reach), at the versions the
repository pins where it pins them. An existing directory for the same hash is reused, so the
wheels, and therefore what the nodes receive, change only when one of those changes.

The wheels are also packed into <dir>/wheels.tar: one file to send to every node instead of
dozens (each file copied costs the connection a round trip).

Prints one JSON object:
{"changed": bool, "path": dir, "archive": dir/wheels.tar, "wheel": the agent's wheel file,
 "version": the agent's version}.
"""

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ARCHIVE_NAME = "wheels.tar"
KEEP_BUILDS = 3
SKIPPED_PARTS = {"__pycache__", ".pytest_cache", ".ruff_cache", "tests", "build", "dist"}


def skipped(relative: Path) -> bool:
    """Caches, tests and build artefacts: not part of the wheel."""
    return bool(SKIPPED_PARTS.intersection(relative.parts)) or any(
        part.endswith(".egg-info") for part in relative.parts
    )


def ignored(directory: str, names: list[str]) -> set[str]:
    """shutil.copytree's ignore callback for skipped()."""
    return {name for name in names if skipped(Path(name))}


def pins(requirements: Path) -> str:
    """The requirement lines of a requirements file as pip constraints (which take no extras)."""
    lines = (line.split("#", 1)[0].strip() for line in requirements.read_text().splitlines())
    return "".join(re.sub(r"\[.*?\]", "", line) + "\n" for line in lines if line)


def wheelhouse_hash(source: Path, constraints: str) -> str:
    """Hash of everything that goes into the wheelhouse: the agent's source (paths and
    contents, in a stable order), the constraints, and this builder."""
    digest = hashlib.sha256(Path(__file__).read_bytes() + b"\0" + constraints.encode() + b"\0")
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not skipped(relative):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"], check=True
    )


def build(
    source: Path, target: Path, constraints: str, python_version: str, platforms: list[str]
) -> None:
    # From a clean copy: an in-tree build would reuse a stale build/ directory (files deleted
    # from the source would still ship) and leave build artefacts in the repository.
    with tempfile.TemporaryDirectory() as scratch:
        clean = Path(scratch) / "source"
        shutil.copytree(source, clean, ignore=ignored)
        pip("wheel", "--no-deps", "--wheel-dir", str(target), str(clean))
        constraints_file = Path(scratch) / "constraints.txt"
        constraints_file.write_text(constraints)
        (agent_wheel,) = target.glob("edgeagent-*.whl")
        platform_args = [arg for platform in platforms for arg in ("--platform", platform)]
        pip(
            "download",
            "--dest",
            str(target),
            "--only-binary=:all:",
            "--python-version",
            python_version,
            "--implementation",
            "cp",
            *platform_args,
            "--constraint",
            str(constraints_file),
            str(agent_wheel),
        )


def prune(wheelhouse: Path) -> None:
    """Keep the newest few wheelhouses: runs of different sources may overlap (the lab and
    molecule), and one must not delete what another is about to copy."""
    builds = [path for path in wheelhouse.iterdir() if path.is_dir() and path.name[0] != "."]
    builds.sort(key=lambda path: path.stat().st_mtime, reverse=True)
    for old in builds[KEEP_BUILDS:]:
        shutil.rmtree(old, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, required=True)
    parser.add_argument("--wheelhouse", type=Path, required=True)
    parser.add_argument("--requirements", type=Path, help="pins to honour (requirements.txt)")
    parser.add_argument("--python-version", required=True)
    parser.add_argument("--platform", action="append", required=True)
    args = parser.parse_args()

    constraints = pins(args.requirements) if args.requirements else ""
    final = args.wheelhouse / wheelhouse_hash(args.source, constraints)
    changed = not final.is_dir()
    if changed:
        args.wheelhouse.mkdir(parents=True, exist_ok=True)
        # Built next to its final name and renamed: a concurrent run (lab and molecule) or an
        # interrupted one never leaves a half-filled directory under the final name.
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=args.wheelhouse))
        try:
            build(args.source, staging, constraints, args.python_version, args.platform)
            with tarfile.open(staging / ARCHIVE_NAME, "w") as archive:
                for wheel in sorted(staging.glob("*.whl")):
                    archive.add(wheel, arcname=wheel.name)
            staging.rename(final)
        except OSError:
            if not final.is_dir():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        prune(args.wheelhouse)
    (agent_wheel,) = final.glob("edgeagent-*.whl")
    result = {
        "changed": changed,
        "path": str(final),
        "archive": str(final / ARCHIVE_NAME),
        "wheel": agent_wheel.name,
        "version": agent_wheel.name.split("-")[1],  # {name}-{version}-{tags}.whl
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
