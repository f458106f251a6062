"""Build the wheelhouse that edge nodes install edgeagent from, on the Ansible controller.

One directory per hash of the agent's source, the lock and this script: the agent's wheel
(built here) and every dependency as a binary wheel for the nodes' Python and platform
(downloaded from PyPI, which the nodes themselves need not reach), exactly the files the lock
names by version and sha256 (`pip download --require-hashes`): every build, on any controller,
gets the same dependency bytes, and a changed file on the index fails the build. An existing
directory for the same hash is reused, so what the nodes receive changes only when one of
those changes. The directory's requirements.txt is the lock plus the agent's wheel and its
hash: the nodes install with `pip install --require-hashes -r` from it.

The wheels and requirements.txt are also packed into <dir>/wheels.tar: one file to send to
every node instead of dozens (each file copied costs the connection a round trip).

--write-lock FILE makes the lock: the agent's dependencies resolved at the pins of
--requirements (requirements.txt), downloaded for the nodes' platform and each Python version
given (--python-version 3.11 --python-version 3.13: Debian 12 and 13), and hashed; a package
with a wheel per Python version gets one hash for each, a pure-Python one a single hash.

Prints one JSON object (building):
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
REQUIREMENTS_NAME = "requirements.txt"
LOCK_HEADER = """\
# The agent's dependencies for the nodes, by version and sha256 of the very wheel file
# (pip --require-hashes). Generated; after a change of the pins in requirements.txt run:
#   python roles/edgeagent/files/build_wheelhouse.py --write-lock LOCK --requirements \\
#     requirements.txt --source edgeagent --python-version 3.11 --python-version 3.13 \\
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64
"""
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


def wheelhouse_hash(source: Path, lock: str, target: list[str]) -> str:
    """Hash of everything that goes into the wheelhouse: the agent's source (paths and
    contents, in a stable order), the lock, the nodes' Python and platforms (pip's options),
    and this builder."""
    digest = hashlib.sha256(Path(__file__).read_bytes() + b"\0" + lock.encode() + b"\0")
    digest.update("\0".join(target).encode() + b"\0")
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_file() and not skipped(relative):
            digest.update(str(relative).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def pip(*args: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", *args, "--quiet", "--disable-pip-version-check"], check=True
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def target_args(python_version: str, platforms: list[str]) -> list[str]:
    """pip's options for wheels of the nodes' interpreter and platform, binary only."""
    platform_args = [arg for platform in platforms for arg in ("--platform", platform)]
    return [
        "--only-binary=:all:",
        "--python-version",
        python_version,
        "--implementation",
        "cp",
        *platform_args,
    ]


def build_agent(source: Path, target: Path) -> Path:
    """The agent's wheel, built from a clean copy: an in-tree build would reuse a stale
    build/ directory (files deleted from the source would still ship) and leave build
    artefacts in the repository."""
    with tempfile.TemporaryDirectory() as scratch:
        clean = Path(scratch) / "source"
        shutil.copytree(source, clean, ignore=ignored)
        pip("wheel", "--no-deps", "--wheel-dir", str(target), str(clean))
    (agent_wheel,) = target.glob("edgeagent-*.whl")
    return agent_wheel


def build(source: Path, target: Path, lock: Path, python_version: str, platforms: list[str]):
    agent_wheel = build_agent(source, target)
    # Exactly the locked files, each checked against its hash.
    pip("download", "--dest", str(target), *target_args(python_version, platforms),
        "--require-hashes", "--no-deps", "--requirement", str(lock))  # fmt: skip
    # The agent's dependencies resolved from these files alone: a lock that misses one fails
    # here, on the controller, not on the nodes.
    with tempfile.TemporaryDirectory() as scratch:
        pip("download", "--dest", scratch, *target_args(python_version, platforms),
            "--no-index", "--find-links", str(target), str(agent_wheel))  # fmt: skip
    version = agent_wheel.name.split("-")[1]  # {name}-{version}-{tags}.whl
    (target / REQUIREMENTS_NAME).write_text(
        lock.read_text() + f"edgeagent=={version} --hash=sha256:{sha256(agent_wheel)}\n"
    )


def write_lock(
    source: Path, lock: Path, constraints: str, python_versions: list[str], platforms: list[str]
) -> None:
    """One line per dependency with the hashes of its wheels for every Python version: pip
    accepts any of a line's hashes, so one lock serves nodes of each version."""
    hashes: dict[tuple[str, str], set[str]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        agent_wheel = build_agent(source, Path(scratch) / "agent")
        constraints_file = Path(scratch) / "constraints.txt"
        constraints_file.write_text(constraints)
        for python_version in python_versions:
            wheels = Path(scratch) / python_version
            pip("download", "--dest", str(wheels), *target_args(python_version, platforms),
                "--constraint", str(constraints_file), str(agent_wheel))  # fmt: skip
            for wheel in wheels.glob("*.whl"):
                name, version = wheel.name.split("-")[:2]
                if name != "edgeagent":
                    hashes.setdefault((name.lower(), version), set()).add(sha256(wheel))
    lines = [
        f"{name}=={version} " + " ".join(f"--hash=sha256:{digest}" for digest in sorted(digests))
        for (name, version), digests in sorted(hashes.items())
    ]
    lock.write_text(LOCK_HEADER + "".join(line + "\n" for line in lines))


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
    parser.add_argument("--wheelhouse", type=Path, help="where to build (not with --write-lock)")
    parser.add_argument("--lock", type=Path, help="the hash-locked dependencies to build with")
    parser.add_argument("--write-lock", type=Path, help="make the lock instead of building")
    parser.add_argument("--requirements", type=Path, help="pins the lock is made at")
    parser.add_argument(
        "--python-version", action="append", required=True, help="once when building"
    )
    parser.add_argument("--platform", action="append", required=True)
    args = parser.parse_args()

    if args.write_lock:
        constraints = pins(args.requirements) if args.requirements else ""
        write_lock(args.source, args.write_lock, constraints, args.python_version, args.platform)
        return 0
    if not (args.wheelhouse and args.lock):
        parser.error("building needs --wheelhouse and --lock")
    if len(args.python_version) != 1:
        parser.error("building is for one --python-version, the nodes'")
    (python_version,) = args.python_version
    target = target_args(python_version, args.platform)
    final = args.wheelhouse / wheelhouse_hash(args.source, args.lock.read_text(), target)
    changed = not final.is_dir()
    if changed:
        args.wheelhouse.mkdir(parents=True, exist_ok=True)
        # Built next to its final name and renamed: a concurrent run (lab and molecule) or an
        # interrupted one never leaves a half-filled directory under the final name.
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=args.wheelhouse))
        try:
            build(args.source, staging, args.lock, python_version, args.platform)
            with tarfile.open(staging / ARCHIVE_NAME, "w") as archive:
                for packed in [*sorted(staging.glob("*.whl")), staging / REQUIREMENTS_NAME]:
                    archive.add(packed, arcname=packed.name)
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
