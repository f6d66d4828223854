"""Helpers shared by the tests/test_reliability_*.py files (not a test module itself)."""

from __future__ import annotations

import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import torch

from sstrack import save_model
from sstrack.config import get_config
from sstrack.model import build_model

REPO = Path(__file__).resolve().parents[1]
TINY = dict(embed_dim=32, depth=1, num_heads=1, head_channels=32, template_size=64, search_size=128)
TABLES = ("meta", "videos", "tracks", "boxes", "models", "runs", "history", "history_changes")


def snapshot(db: Path) -> dict[str, list[tuple]]:
    """Every row of every project table, sorted: equal snapshots mean an unchanged project."""
    with sqlite3.connect(str(db), timeout=30) as conn:
        return {t: sorted(tuple(r) for r in conn.execute(f"SELECT * FROM {t}")) for t in TABLES}


def integrity(db: Path) -> str:
    """SQLite's own check of the file after a crash ('ok' when sound)."""
    with sqlite3.connect(str(db), timeout=30) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def tiny_base(folder: Path) -> Path:
    """A tiny random sstrack-lite saved as a base model (seconds to train a step on CPU)."""
    torch.manual_seed(0)
    path = folder / "tiny.safetensors"
    save_model(build_model(get_config("sstrack-lite", **TINY)), path)
    return path


def child_env() -> dict[str, str]:
    """Environment for child processes: the repository importable, one thread each (2 cores)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def start_child(code: str, *args: str) -> subprocess.Popen:
    """Run `code` (a Python script) in a child process whose stdout lines are acknowledgements."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args], cwd=REPO, env=child_env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def kill_when(child: subprocess.Popen, ready: Callable[[list[str]], bool], timeout: float = 120.0) -> list[str]:
    """Read the child's stdout until `ready(lines)`, SIGKILL it, and return every line it wrote.

    Lines the child flushed before dying are still in the pipe, so they are read back too: an
    acknowledgement printed is an acknowledgement the test holds the product to.
    """
    lines: list[str] = []
    deadline = time.time() + timeout
    assert child.stdout is not None
    while time.time() < deadline:
        line = child.stdout.readline()
        if not line.endswith("\n"):
            break  # the end of output (a line without its newline was cut short, never acknowledged)
        lines.append(line[:-1])
        if ready(lines):
            break
    os.kill(child.pid, signal.SIGKILL)
    # Read the rest through the same buffered file: communicate() polls the raw descriptors and
    # misses lines readline() already pulled into the buffer (450 acknowledged, 454 committed).
    rest = child.stdout.read()
    err = child.stderr.read() if child.stderr is not None else ""
    child.wait()
    # print() may reach the pipe in pieces, so the kill can cut a line: only whole lines were acknowledged
    # (a cut "ack 512" broke the test once in CI, 2026-12-07).
    lines += [line for line in rest.split("\n")[:-1] if line]
    assert child.returncode == -signal.SIGKILL, f"the child ended on its own before the kill:\n{err[-2000:]}"
    return lines


def one_line_naming(error: BaseException | str, name: str) -> None:
    """Assert an error message is a single line that names `name` (a file)."""
    text = str(error).strip()
    assert "\n" not in text, f"multi-line message: {text!r}"
    assert name in text, f"{name!r} not named in: {text!r}"


def png_declaring(path: Path, width: int, height: int) -> None:
    """A small, valid grey PNG of `width` x `height` zeros (a decompression bomb when large)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b""))
