"""The edgeagent role's wheelhouse: built from the hash lock, the same bytes on every build.

Runs roles/edgeagent/files/build_wheelhouse.py as the role does (on the controller, with the
package index it reaches), twice into separate wheelhouses; installs one the way the nodes do
(offline, `pip install --require-hashes`); and builds with a lock whose hash does not match
the index's file, which must fail.
"""

import hashlib
import json
import re
import subprocess
import sys
import tomllib
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "roles" / "edgeagent" / "files" / "build_wheelhouse.py"
LOCK = REPO / "roles" / "edgeagent" / "files" / "requirements-agent.lock"
TARGET = ["--python-version", "3.11"]
TARGET += ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]
BUILD_SECONDS = 600
LOCK_LINE = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+) --hash=sha256:([0-9a-f]{64})$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, str]]:
    """The lock as {name: (version, sha256)}."""
    entries = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version, digest = LOCK_LINE.match(line).groups()
            entries[canonical(name)] = (version, digest)
    return entries


def build(wheelhouse: Path, lock: Path = LOCK) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *(sys.executable, str(BUILDER), f"--source={REPO / 'edgeagent'}"),
            *(f"--wheelhouse={wheelhouse}", f"--lock={lock}", *TARGET),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
    )


def dependency_wheels(directory: Path) -> dict[str, str]:
    """{wheel file name: sha256} of every wheel but the agent's."""
    return {
        wheel.name: hashlib.sha256(wheel.read_bytes()).hexdigest()
        for wheel in directory.glob("*.whl")
        if not wheel.name.startswith("edgeagent-")
    }


@pytest.fixture(scope="module")
def two_builds(tmp_path_factory) -> list[Path]:
    directories = []
    for run in ("first", "second"):
        result = build(tmp_path_factory.mktemp(run))
        assert result.returncode == 0, result.stderr
        directories.append(Path(json.loads(result.stdout)["path"]))
    return directories


def test_the_lock_is_at_the_repositorys_pins_and_covers_the_agents_dependencies():
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==")
            pins[canonical(re.sub(r"\[.*\]", "", name))] = version
    entries = locked()
    project = tomllib.loads((REPO / "edgeagent" / "pyproject.toml").read_text())
    for dependency in project["project"]["dependencies"]:
        name = canonical(re.match(r"[A-Za-z0-9_.-]+", dependency).group(0))
        assert name in entries, f"{name} is not in the lock"
        assert entries[name][0] == pins[name], f"{name}: lock {entries[name][0]}, pin {pins[name]}"


def test_two_builds_get_the_locked_bytes(two_builds):
    first, second = (dependency_wheels(directory) for directory in two_builds)
    assert first == second
    assert sorted(first.values()) == sorted(digest for _, digest in locked().values())


def test_the_nodes_install_with_hash_checking(two_builds, tmp_path):
    wheelhouse = two_builds[0]
    requirements = (wheelhouse / "requirements.txt").read_text()
    agent_wheel = next(wheelhouse.glob("edgeagent-*.whl"))
    agent_hash = hashlib.sha256(agent_wheel.read_bytes()).hexdigest()
    assert requirements.startswith(LOCK.read_text())
    assert requirements.endswith(f"--hash=sha256:{agent_hash}\n")
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=True)
    python = environment / "bin" / "python"
    installed = subprocess.run(
        [
            *(str(python), "-m", "pip", "install", "--no-index", "--find-links", str(wheelhouse)),
            *("--require-hashes", "--requirement", str(wheelhouse / "requirements.txt")),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
    )
    assert installed.returncode == 0, installed.stderr
    subprocess.run([str(environment / "bin" / "edgeagent"), "--help"], check=True, timeout=120)


def test_a_file_that_does_not_match_its_hash_fails_the_build(tmp_path):
    name, (_, digest) = next(iter(locked().items()))
    wrong = LOCK.read_text().replace(digest, hashlib.sha256(b"not the wheel").hexdigest())
    lock = tmp_path / "requirements-agent.lock"
    lock.write_text(wrong)
    result = build(tmp_path / "wheelhouse", lock)
    assert result.returncode != 0
    assert "HASHES" in result.stderr.upper() and name.replace("-", "_") in result.stderr.lower()
    assert not any((tmp_path / "wheelhouse").glob("[0-9a-f]*"))
