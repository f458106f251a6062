"""The atomic-write helper every writer of the agent uses."""

import os
import stat

import pytest
from edgeagent.files import write_atomically


def test_the_new_file_replaces_the_old_with_its_mode_whatever_the_umask(tmp_path):
    path = tmp_path / "key.pem"
    path.write_bytes(b"old")
    previous = os.umask(0)
    try:
        write_atomically(path, b"new", 0o600)
    finally:
        os.umask(previous)
    assert path.read_bytes() == b"new"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["key.pem"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "state.txt"
    path.write_bytes(b"old")
    with pytest.raises(TypeError):
        write_atomically(path, "not bytes", 0o600, durable=False)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.txt"]


def test_a_planted_symlink_is_never_written_through(tmp_path):
    """`edgeagent render` into a directory others can write: a link at the name of the
    file, or at any name a writer could predict, does not redirect the write."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    output = tmp_path / "out"
    output.mkdir()
    path = output / "edge.conf"
    path.symlink_to(victim)
    for guess in (f".edge.conf.{os.getpid()}.tmp", ".edge.conf.tmp"):
        (output / guess).symlink_to(victim)
    write_atomically(path, b"rendered", 0o644, durable=False)
    assert victim.read_bytes() == b"precious"
    assert not path.is_symlink() and path.read_bytes() == b"rendered"
