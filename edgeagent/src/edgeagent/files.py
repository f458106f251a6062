"""Writing a file so that no reader ever sees part of it."""

from __future__ import annotations

import os
import pathlib
import tempfile


def write_atomically(path: pathlib.Path, data: bytes, mode: int, durable: bool = True) -> None:
    """Write `data` to a temporary file next to `path` and rename it over `path`: a reader
    (nginx, at a reload or a restart) sees the old file or the new one, never half of it.

    The temporary file is made by `mkstemp` (a new, unpredictable name, O_EXCL): a
    symlink planted in a shared directory is never written through, and one planted at
    `path` is replaced, not followed. The mode is set before any byte is written,
    whatever the umask, so a key is never readable by others even for a moment.
    `durable` fsyncs the data before the rename, so a power cut cannot leave the new name
    on an empty file; an offline preview (`edgeagent render`) does without.
    """
    descriptor, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    temporary = pathlib.Path(name)
    try:
        with os.fdopen(descriptor, "wb") as file:
            os.fchmod(file.fileno(), mode)
            file.write(data)
            file.flush()
            if durable:
                os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def fsync_dir(path: pathlib.Path) -> None:
    """Make the entries of a directory (new names, renames) durable."""
    descriptor = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
