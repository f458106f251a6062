"""The edgeagent role's wheelhouse: built from the hash lock, the same bytes on every build.

Runs roles/edgeagent/files/build_wheelhouse.py as the role does (on the controller, with the
package index it reaches), twice into separate wheelhouses; installs one the way the nodes do
(offline, `pip install --require-hashes`); builds and installs for Python 3.13 (Debian 13)
from the same lock; and builds with a lock whose hash does not match the index's file, which
must fail.
"""

import hashlib
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILDER = REPO / "roles" / "edgeagent" / "files" / "build_wheelhouse.py"
LOCK = REPO / "roles" / "edgeagent" / "files" / "requirements-agent.lock"
PLATFORMS = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]
BUILD_SECONDS = 600
LOCK_LINE = re.compile(r"^([A-Za-z0-9_.-]+)==(\S+)((?: --hash=sha256:[0-9a-f]{64})+)$")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def locked() -> dict[str, tuple[str, set[str]]]:
    """The lock as {name: (version, the sha256 of its wheels, one per Python version or one
    for all)}."""
    entries = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version, hashes = LOCK_LINE.match(line).groups()
            entries[canonical(name)] = (version, set(re.findall("[0-9a-f]{64}", hashes)))
    return entries


def build(
    wheelhouse: Path, lock: Path = LOCK, python_version: str = "3.11"
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *(sys.executable, str(BUILDER), f"--source={REPO / 'edgeagent'}"),
            *(f"--wheelhouse={wheelhouse}", f"--lock={lock}"),
            *("--python-version", python_version, *PLATFORMS),
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


def assert_one_locked_wheel_each(wheels: dict[str, str]) -> None:
    by_name = {canonical(name.split("-")[0]): digest for name, digest in wheels.items()}
    assert len(by_name) == len(wheels)
    assert {name: digest in locked()[name][1] for name, digest in by_name.items()} == {
        name: True for name in locked()
    }


def test_two_builds_get_the_locked_bytes(two_builds):
    first, second = (dependency_wheels(directory) for directory in two_builds)
    assert first == second
    assert_one_locked_wheel_each(first)


def test_a_debian_13_build_has_its_own_wheels_from_the_same_lock(two_builds, tmp_path):
    """Python 3.13 gets the lock's other hash where a package has a wheel per version, the same
    file where it is pure Python, and a wheelhouse of its own."""
    result = build(tmp_path / "wheelhouse", python_version="3.13")
    assert result.returncode == 0, result.stderr
    wheelhouse = Path(json.loads(result.stdout)["path"])
    assert wheelhouse.name != two_builds[0].name
    wheels = dependency_wheels(wheelhouse)
    assert_one_locked_wheel_each(wheels)
    assert any("cp313" in name for name in wheels)
    assert not any("-cp311-cp311-" in name for name in wheels)  # abi3 wheels serve both
    # Installing it takes a Python 3.13, which a Debian 12 controller lacks: the Debian 13
    # node of molecule's Docker scenario installs it, offline and hash-checked
    # (molecule/default/tests/test_platforms.py).


def install_and_run(wheelhouse: Path, environment: Path, python: str) -> None:
    """As the nodes do: a venv of their Python, offline, every file checked by its hash."""
    subprocess.run([python, "-m", "venv", str(environment)], check=True, timeout=BUILD_SECONDS)
    installed = subprocess.run(
        [
            *(str(environment / "bin" / "python"), "-m", "pip", "install", "--no-index"),
            *("--find-links", str(wheelhouse), "--require-hashes"),
            *("--requirement", str(wheelhouse / "requirements.txt")),
        ],
        capture_output=True,
        text=True,
        timeout=BUILD_SECONDS,
    )
    assert installed.returncode == 0, installed.stderr
    subprocess.run([str(environment / "bin" / "edgeagent"), "--help"], check=True, timeout=120)


def test_the_nodes_install_with_hash_checking(two_builds, tmp_path):
    wheelhouse = two_builds[0]
    requirements = (wheelhouse / "requirements.txt").read_text()
    agent_wheel = next(wheelhouse.glob("edgeagent-*.whl"))
    agent_hash = hashlib.sha256(agent_wheel.read_bytes()).hexdigest()
    assert requirements.startswith(LOCK.read_text())
    assert requirements.endswith(f"--hash=sha256:{agent_hash}\n")
    install_and_run(wheelhouse, tmp_path / "venv", sys.executable)


def test_a_file_that_does_not_match_its_hash_fails_the_build(tmp_path):
    name, (_, digests) = next(iter(locked().items()))
    wrong = LOCK.read_text()
    for digest in digests:
        wrong = wrong.replace(digest, hashlib.sha256(b"not the wheel").hexdigest())
    lock = tmp_path / "requirements-agent.lock"
    lock.write_text(wrong)
    result = build(tmp_path / "wheelhouse", lock)
    assert result.returncode != 0
    assert "HASHES" in result.stderr.upper() and name.replace("-", "_") in result.stderr.lower()
    assert not any((tmp_path / "wheelhouse").glob("[0-9a-f]*"))
