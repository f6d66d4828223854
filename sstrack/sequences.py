"""Reading frames for the library's own tools: videos, image folders and SOT benchmark sequences.

Sequential reading only; frame-exact random access for annotation lives in `projects.media`.
Frames come out as RGB uint8 HxWx3 arrays.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from sstrack.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


@dataclass(frozen=True)
class Sequence:
    """A tracking sequence with ground truth: frames, boxes (N, 4) and absent flags (N,)."""

    name: str
    frames: list[Path]
    ground_truth: np.ndarray
    absent: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def image_files(folder: Path) -> list[Path]:
    """Image files of a frame folder (or its `img/` subfolder, LaSOT/OTB layout), in name order."""
    folder = Path(folder)
    if (folder / "img").is_dir():
        folder = folder / "img"
    # Regular files only: a FIFO named 00000003.jpg would hang the image reader forever (it then
    # shows up as a missing frame, which frame folders refuse by name).
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
    return sorted(files, key=lambda p: _natural_key(p.name))


def read_image(path: Path) -> np.ndarray:
    """One image file as RGB uint8."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise InputError(f"{path}: cannot be read as an image; check the file")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_boxes(path: Path) -> np.ndarray:
    """An `x,y,w,h` per line text file (comma, tab or space separated) as (N, 4) floats."""
    rows = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
        try:
            values = [float(p) for p in parts]
        except ValueError as error:
            raise InputError(f"{path}:{number}: not four numbers x,y,w,h: {line!r}") from error
        if len(values) != 4:
            raise InputError(f"{path}:{number}: expected 4 values x,y,w,h, found {len(values)}")
        rows.append(values)
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def load_sequence(folder: Path) -> Sequence:
    """A SOT sequence folder: `img/` frames, `groundtruth.txt`, optional `absent.txt`."""
    folder = Path(folder)
    gt_path = folder / "groundtruth.txt"
    if not gt_path.exists():
        raise InputError(f"{folder}: no groundtruth.txt; expected img/ + groundtruth.txt (+ absent.txt)")
    frames = image_files(folder)
    gt = read_boxes(gt_path)
    if len(gt) != len(frames):
        raise InputError(f"{folder}: {len(frames)} frames but {len(gt)} ground-truth lines")
    absent = np.zeros(len(gt), dtype=bool)
    absent_path = folder / "absent.txt"
    if absent_path.exists():
        flags = [int(float(v)) for v in absent_path.read_text().split()]
        if len(flags) == len(gt):
            absent = np.asarray(flags, dtype=bool)
    return Sequence(folder.name, frames, gt, absent)


def count_frames(source: Path) -> int:
    """Number of frames of an image folder, or of a video's packets (a progress-bar estimate: only a
    decode counts a video's frames exactly, see `sstrack.video.build_index`)."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_dir():
        return len(image_files(source))
    from sstrack.video import VideoError, packet_count

    try:
        return packet_count(source)
    except VideoError as error:
        raise InputError(str(error)) from error


def iter_frames(source: Path) -> Iterator[np.ndarray]:
    """RGB frames of a video file or an image folder, in order."""
    source = Path(source)
    if not source.exists():
        raise InputError(f"{source}: no such file or folder")
    if source.is_dir():
        files = image_files(source)
        if not files:
            raise InputError(f"{source}: no images (.jpg/.png) in this folder")
        for path in files:
            yield read_image(path)
        return
    from sstrack.video import VideoError, decode_frames

    if source.stat().st_size == 0:
        raise InputError(f"{source}: empty file (0 bytes); copy the video again")
    try:
        yield from decoded_quietly(decode_frames(source))
    except VideoError as error:
        raise InputError(str(error)) from error


def decoded_quietly(frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """`frames` with C-level stderr silenced while each is decoded, never across the yield.

    Silencing across the yield (a `with` around `yield from`) also swallowed the consumer's own
    stderr while it held a frame: its progress bar and its one-line error.
    """
    while True:
        with native_stderr_silenced():
            frame = next(frames, None)
        if frame is None:
            return
        yield frame


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Silence C-level stderr while opening a video.

    FFmpeg's C logger prints "ERROR opening: ..." for damaged files, beside the clear
    one-line error we raise; it has no switch, so its file descriptor is pointed at /dev/null
    while the decoder runs (an open, one frame's decode), and restored in between.
    """
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]
