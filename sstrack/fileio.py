"""Crash-safe file writes (a temporary sibling, fsync, then rename over the target), and checked
reads of files that may be hostile (no FIFO, device or oversized file is read)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success it replaces `target` atomically.

    On any error the temporary file is removed and `target` keeps its old content, so a crash or
    a full disk never leaves a half-written file under the final name.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(target: str | os.PathLike, data: bytes) -> None:
    """Write `data` to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_dir(directory: Path) -> None:
    # The rename itself is durable only once the directory entry is flushed.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def regular_file_problem(path: str | os.PathLike, max_bytes: int | None = None) -> str | None:
    """Why `path` is not a plain file of at most `max_bytes` to read (None: it is one).

    A FIFO blocks its reader for ever and /dev/zero never ends: a file a user names is checked
    before it is opened.
    """
    try:
        info = os.stat(path)
    except OSError as error:
        return f"cannot be read ({error.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file (a folder, FIFO or device)"
    if max_bytes is not None and info.st_size > max_bytes:
        return f"{info.st_size:,} bytes, more than the {max_bytes:,} such a file can have"
    return None


def read_json_file(path: str | os.PathLike, max_bytes: int) -> Any:
    """A small JSON file's value; ValueError (the reason) for a FIFO, a device, an oversized file,
    text that is not JSON or JSON nested past Python's stack.

    For files found in a folder someone else made (a shared project's run folders), which are
    read without the user naming them.
    """
    problem = regular_file_problem(path, max_bytes)
    if problem is not None:
        raise ValueError(f"{path}: {problem}")
    try:
        return json.loads(Path(path).read_bytes())
    except RecursionError as error:
        raise ValueError(f"{path}: JSON nested too deep") from error
