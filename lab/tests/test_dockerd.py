"""lab/dockerd.sh: a pidfile left by a killed engine is removed before dockerd starts, unless
it names a live process of its own program (the engine's containerd, reused by dockerd)."""

import subprocess
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "dockerd.sh"
SOURCED_CALL = 'source "$1" && remove_stale_pidfile "$2" "$3"'


def remove_stale_pidfile(pidfile: Path, program: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        # $0 is not the script: sourced, it only defines its functions.
        ["bash", "-c", SOURCED_CALL, "test", SCRIPT, pidfile, program],
        capture_output=True,
        text=True,
        check=True,
    )


def test_a_pid_taken_by_another_program_is_removed(tmp_path):
    """The failure seen on a clean clone: containerd's PID reused by another process."""
    other = subprocess.Popen(["sleep", "60"])
    try:
        pidfile = tmp_path / "containerd.pid"
        pidfile.write_text(str(other.pid))
        result = remove_stale_pidfile(pidfile, "containerd")
    finally:
        other.kill()
        other.wait()
    assert not pidfile.exists()
    assert f"PID {other.pid} is not a running containerd" in result.stdout


def test_a_pid_of_no_process_or_no_pid_is_removed(tmp_path):
    for content in ("999999999", "", "garbage"):
        pidfile = tmp_path / "docker.pid"
        pidfile.write_text(content)
        remove_stale_pidfile(pidfile, "dockerd")
        assert not pidfile.exists(), content


def test_a_live_process_of_the_program_is_left_to_the_engine(tmp_path):
    live = subprocess.Popen(["sleep", "60"])
    try:
        # Until its exec, the child still bears its parent's name.
        comm = Path(f"/proc/{live.pid}/comm")
        deadline = time.monotonic() + 60
        while comm.read_text().strip() != "sleep" and time.monotonic() < deadline:
            time.sleep(0.01)
        pidfile = tmp_path / "engine.pid"
        pidfile.write_text(f"{live.pid}\n")
        result = remove_stale_pidfile(pidfile, "sleep")
    finally:
        live.kill()
        live.wait()
    assert pidfile.exists()
    assert result.stdout == ""


def test_a_missing_pidfile_is_nothing_to_do(tmp_path):
    assert remove_stale_pidfile(tmp_path / "absent.pid", "dockerd").stdout == ""
