"""Training footage: decode each source once into an in-memory JPEG frame cache, with initial boxes.

A source is a video file (decoded by `sstrack.video`), an image-sequence folder (read by
`projects.media`, as the app reads it), or (through `ClipSpec.boxes`) either of them with user
boxes on some frames. Footage without boxes gets automatic ones (`trainer.autobox`). A source that
cannot be decoded, that decodes with corrupted frames (a frame unlike both neighbours while they
agree with each other), or whose frames are too small to train on, is skipped with a warning
naming it; training goes on with the rest. The cache has a byte budget: footage beyond it is left
out with a warning, never paid for with the machine's memory.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from projects.errors import MediaError
from projects.media import open_media
from sstrack.sequences import VIDEO_SUFFIXES, decoded_quietly, image_files
from sstrack.video import MAX_FRAME_PIXELS, MIN_SIDE
from trainer.autobox import propose_boxes

if TYPE_CHECKING:
    from projects import Project

_logger = logging.getLogger(__name__)


class NoUsableClipsError(Exception):
    """None of the given sources produced a clip to train on."""


Box = tuple[float, float, float, float]
# Initial boxes narrower or lower than this (cache pixels) make no training sample (trainer.samples).
MIN_BOX_SIDE = 4


@dataclass(frozen=True)
class ClipSpec:
    """A source path and optional user boxes {frame index: box or [boxes]}, x, y, w, h in pixels.

    `tracks` gives the same kind of boxes per object ({frame: box} each): two keyframes of one
    object are a real template/search pair with true boxes (`TrainConfig.pair_ratio`). When
    `boxes` is empty, the tracks' boxes are the initial boxes.
    """

    path: Path
    boxes: dict[int, Box | list[Box]] = field(default_factory=dict)
    tracks: tuple[dict[int, Box], ...] = ()


@dataclass
class Clip:
    """Decoded footage (JPEG bytes per frame, at cache scale) and its initial boxes."""

    name: str
    frames: list[bytes]
    width: int
    height: int
    # frame index -> boxes (x, y, w, h) in cache pixels; user boxes first, else automatic ones
    initial_boxes: dict[int, list[np.ndarray]]
    user_boxes: bool
    # per object: frame index -> its user box (cache pixels); the source of keyframe pairs
    tracks: list[dict[int, np.ndarray]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.frames)

    def frame(self, index: int) -> np.ndarray:
        """Decode frame `index` as RGB uint8."""
        data = np.frombuffer(self.frames[index], dtype=np.uint8)
        return cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)


def default_cache_bytes() -> int:
    """The frame cache's default budget: a quarter of this machine's memory (4 GiB if unknown)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
    except (ValueError, OSError, AttributeError):  # not a POSIX system
        return 4 << 30


class _CacheBudget:
    """Bytes the frame cache may still take, shared by all the clips of a run."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.left = total

    def take(self, size: int) -> bool:
        """Reserve `size` bytes; False (nothing reserved) once the budget is spent."""
        if size > self.left:
            self.left = 0  # later sources are not decoded at all: the cache is full
            return False
        self.left -= size
        return True


def load_clips(
    specs: list[ClipSpec],
    frame_side: int,
    proposal_stride: int,
    progress: Callable[[str], None] | None = None,
    aspects: tuple[float, ...] | None = None,
    cache_bytes: int | None = None,
) -> list[Clip]:
    """Decode every usable source; raise NoUsableClipsError when none is usable.

    `cache_bytes`: the frame cache's budget (default: `default_cache_bytes()`). A 3,000-frame
    video of noise took 2 GB, and an hour of 720p footage takes 4-6 GB: footage beyond the budget
    is left out with a warning that says so.
    """
    budget = _CacheBudget(default_cache_bytes() if cache_bytes is None else cache_bytes)
    clips = []
    for spec in specs:
        if budget.left <= 0:
            _logger.warning("skipping %s: the training frame cache is full (%s)", spec.path, _budget_advice(budget))
            continue
        if progress:
            progress(f"decoding {spec.path}")
        try:
            clip = _load_clip(spec, frame_side, proposal_stride, aspects, budget)
        except UnusableSourceError as error:
            _logger.warning("skipping %s: %s", spec.path, error)
            continue
        if clip.initial_boxes:
            clips.append(clip)
        elif clip.user_boxes:
            _logger.warning("skipping %s: none of its user boxes is on one of its %d frames", spec.path, len(clip))
        else:
            _logger.warning("skipping %s: no initial box could be found or proposed", spec.path)
    if not clips:
        names = ", ".join(str(s.path) for s in specs) or "(no sources)"
        raise NoUsableClipsError(
            f"no usable training clip in: {names}; give decodable videos or image folders"
        )
    return clips


class UnusableSourceError(Exception):
    """A source that cannot be used for training (reason in the message)."""


def _budget_advice(budget: _CacheBudget) -> str:
    return (
        f"{budget.total >> 20} MiB; give less footage, lower frame_side, or raise the budget "
        "with --set frame_cache_mb=N"
    )


def keyframe_tracks(project: Project, video_id: int) -> list[dict[int, Box]]:
    """Each object's manual visible boxes on a video, {frame: (x, y, w, h)}; objects without any left out."""
    tracks = []
    for track in project.tracks(video_id):
        boxes = {r.frame: r.box for r in project.boxes(track.id) if r.source == "manual" and r.visible and r.has_box}
        if boxes:
            tracks.append(boxes)
    return tracks


def project_sources(folder: Path) -> list[ClipSpec]:
    """A project's videos with its manual (visible) boxes as initial boxes; read-only use."""
    from projects import Project

    specs = []
    with Project.open(folder) as project:
        for video in project.videos():
            boxes: dict[int, list[Box]] = {}
            tracks = keyframe_tracks(project, video.id)
            for keyframes in tracks:
                for frame, box in keyframes.items():
                    boxes.setdefault(frame, []).append(box)
            if video.missing:
                _logger.warning("skipping %s: the file is missing; re-link it in the project", video.path)
            else:
                # A video without manual boxes falls back to automatic initial boxes.
                specs.append(ClipSpec(Path(video.path), boxes, tuple(tracks)))
    return specs


def expand_sources(paths: list[Path], _seen: set[Path] | None = None) -> list[ClipSpec]:
    """Turn paths into clip specs: videos, image-sequence folders, projects, folders of videos.

    Each file or folder counts once, by its real path: a link back to a folder above made one
    video forty clips, and two such links walked 2^40 paths (a hang).
    """
    seen = set() if _seen is None else _seen
    specs = []
    for path in paths:
        path = Path(path)
        try:
            real = path.resolve(strict=True)
        except (OSError, RuntimeError):  # missing or a link loop: the clip loader says which
            specs.append(ClipSpec(path))
            continue
        if real in seen:
            continue
        seen.add(real)
        if (path / "project.sqlite").exists():
            specs.extend(project_sources(path))
        elif path.is_dir() and not _is_image_folder(path):
            children = sorted(p for p in path.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES or p.is_dir())
            specs.extend(expand_sources(children, seen))
        else:
            specs.append(ClipSpec(path))
    return specs


def _is_image_folder(path: Path) -> bool:
    try:
        return bool(image_files(path))
    except OSError:
        return False


def _load_clip(
    spec: ClipSpec, frame_side: int, proposal_stride: int, aspects: tuple[float, ...] | None = None,
    budget: _CacheBudget | None = None,
) -> Clip:
    path = Path(spec.path)
    if not path.exists():
        raise UnusableSourceError("no such file or folder")
    budget = budget or _CacheBudget(default_cache_bytes())
    frames, scale, size, full_size = [], 1.0, (0, 0), (0, 0)
    small = []
    for index, image in enumerate(_decode(path)):
        if index == 0:
            full_size = (image.shape[1], image.shape[0])
            if min(full_size) < MIN_SIDE:  # every sample of it would be refused, in a loader traceback
                raise UnusableSourceError(
                    f"{full_size[0]}x{full_size[1]} pixels is too small to train on (at least {MIN_SIDE}x{MIN_SIDE})"
                )
            scale = min(1.0, frame_side / max(image.shape[:2]))
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        if scale != 1.0:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise UnusableSourceError(f"frame {index} could not be re-encoded")
        thumbnail = cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (64, 48), interpolation=cv2.INTER_AREA)
        if not budget.take(data.nbytes + thumbnail.nbytes):
            _logger.warning(
                "%s: only its first %d frames are used: the training frame cache is full (%s)",
                path, len(frames), _budget_advice(budget),
            )
            break
        frames.append(data.tobytes())
        small.append(thumbnail)
    if len(frames) < 2:
        raise UnusableSourceError(f"only {len(frames)} frame(s); need at least 2")
    corrupt = corrupted_frames(small)
    if corrupt:
        raise UnusableSourceError(
            f"{len(corrupt)} frames decode corrupted (e.g. frame {corrupt[0]}); re-encode the video"
        )
    user: dict[int, Box | list[Box]] = dict(spec.boxes)
    if not user:
        for track in spec.tracks:
            for index, box in track.items():
                user.setdefault(index, []).append(box)  # type: ignore[union-attr]
    clip = Clip(str(path), frames, size[0], size[1], {}, bool(user))
    usable = _BoxCheck(path, len(frames), full_size, scale)
    clip.tracks = [
        {index: np.asarray(box, dtype=np.float64) * scale for index, box in track.items() if usable(index, box, warn=False)}
        for track in spec.tracks
    ]
    if user:
        for index, boxes in user.items():
            many = [box for box in (boxes if isinstance(boxes, list) else [boxes]) if usable(index, box)]
            if many:
                clip.initial_boxes[index] = [np.asarray(box, dtype=np.float64) * scale for box in many]
        usable.report()
    else:
        step = max(1, proposal_stride)
        for index in range(0, len(frames) - 1, step):
            later = min(index + 3, len(frames) - 1)
            boxes = propose_boxes(clip.frame(index), clip.frame(later), **({} if aspects is None else {"aspects": tuple(aspects)}))
            if boxes:
                clip.initial_boxes[index] = boxes
    return clip


class _BoxCheck:
    """Whether a user box can be trained on: on one of the decoded frames, overlapping it, and at
    least `MIN_BOX_SIDE` pixels at the cache's scale (smaller ones make no sample).

    A box wholly off the frame was trained on silently (its crops are all padding), and a box
    beyond the video's last frame was dropped without a word. Each is left out, and said once
    per clip with a count and the first example.
    """

    def __init__(self, path: Path, frame_count: int, size: tuple[int, int], scale: float) -> None:
        self.path, self.frame_count, self.size, self.scale = path, frame_count, size, scale
        self.problems: list[str] = []

    def __call__(self, index: int, box: Box | np.ndarray, warn: bool = True) -> bool:
        x, y, w, h = (float(v) for v in box)
        if not 0 <= index < self.frame_count:
            problem = f"frame {index} is beyond its {self.frame_count} frames (0..{self.frame_count - 1})"
        elif x >= self.size[0] or y >= self.size[1] or x + w <= 0 or y + h <= 0:
            problem = f"the box {[x, y, w, h]} on frame {index} lies outside the {self.size[0]}x{self.size[1]} frame"
        elif min(w, h) * self.scale < MIN_BOX_SIDE:
            problem = (f"the box {[x, y, w, h]} on frame {index} is under {MIN_BOX_SIDE} px at the training scale "
                       f"({self.scale:.2f}x; a larger frame_side keeps more detail)")
        else:
            return True
        if warn:
            self.problems.append(problem)
        return False

    def report(self) -> None:
        """Warn once about the boxes left out, if any."""
        if self.problems:
            _logger.warning(
                "%s: %d user box(es) left out: %s; fix the boxes (frames count from 0, boxes are x, y, w, h in pixels)",
                self.path, len(self.problems), self.problems[0],
            )


def _decode(path: Path):  # noqa: ANN202 - generator of RGB frames
    if path.is_dir():
        # The app's folder reader: a numbering gap, frames of mixed sizes and a header that
        # declares a decompression bomb are refused before anything is decoded or squashed.
        try:
            with open_media(path, cache_bytes=0) as media:
                for _, frame in media.iter_frames(0, media.frame_count):
                    yield frame
        except MediaError as error:
            raise UnusableSourceError(_without_path(error, path)) from error
        return
    if importlib.util.find_spec("av") is None:
        yield from _decode_with_opencv(path)
        return
    # The same decoder as the app's exact reader, so training frames are the frames users label.
    from sstrack.video import VideoError, decode_frames

    try:
        yield from decoded_quietly(decode_frames(path))
    except VideoError as error:  # its text says what is wrong (a FIFO, too large, damaged) and the fix
        raise UnusableSourceError(_without_path(error, path)) from error


def _without_path(error: Exception, path: Path) -> str:
    """An error's text without its leading path (the warning names the source already)."""
    return str(error).removeprefix(f"{path}: ")


def _decode_with_opencv(path: Path):  # noqa: ANN202 - generator of RGB frames
    """OpenCV's decoder, for training machines without PyAV (a stock GPU image has OpenCV only).

    Its frame count can differ from the app's exact reader on some files (sstrack/video.py), so
    a keyframe's index could name another frame there; frame 0 and automatic boxes, which are
    found on the decoded frames themselves, are right either way.
    """
    _logger.warning("PyAV is not installed: decoding %s with OpenCV (pip install av for the app's exact reader)", path)
    capture = cv2.VideoCapture(str(path))
    try:
        if not capture.isOpened():
            raise UnusableSourceError("cannot be decoded (damaged, truncated or not a video)")
        width, height = capture.get(cv2.CAP_PROP_FRAME_WIDTH), capture.get(cv2.CAP_PROP_FRAME_HEIGHT)
        if width * height > MAX_FRAME_PIXELS:  # as sstrack.video refuses it, before a frame is decoded
            raise UnusableSourceError(f"{width:.0f}x{height:.0f} pixels a frame is beyond any video this tool reads")
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()


def corrupted_frames(gray_small: list[np.ndarray]) -> list[int]:
    """Frames unlike both neighbours while the neighbours agree: silent decode damage.

    A scene cut changes one frame-to-frame difference; a corrupted frame spikes two in a row
    while skipping it (i-1 -> i+1) is smooth. On ../shared/data/videos/Megamind_bugy.avi this
    flags exactly 5 frames and none on the clean Megamind.avi.
    """
    frames = [g.astype(np.float32) for g in gray_small]
    if len(frames) < 3:
        return []
    diffs = np.array([np.abs(frames[i] - frames[i - 1]).mean() for i in range(1, len(frames))])
    limit = max(6 * float(np.median(diffs)), 8.0)
    bad = []
    for i in range(1, len(frames) - 1):
        before, after = diffs[i - 1], diffs[i]
        if before > limit and after > limit:
            skip = np.abs(frames[i + 1] - frames[i - 1]).mean()
            if skip < min(before, after) / 3:
                bad.append(i)
    return bad
