"""Training footage: decode each source once into an in-memory JPEG frame cache, with initial boxes.

A source is a video file (decoded by `sstrack.video`), an image-sequence folder, or (through
`ClipSpec.boxes`) either of them with user boxes on some frames. Footage without boxes gets
automatic ones (`trainer.autobox`). A source that cannot be decoded, or that decodes with
corrupted frames (a frame unlike both neighbours while they agree with each other), is skipped
with a warning naming it; training goes on with the rest.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import cv2
import numpy as np

from sstrack.sequences import VIDEO_SUFFIXES, decoded_quietly, image_files, read_image
from trainer.autobox import propose_boxes

if TYPE_CHECKING:
    from projects import Project

_logger = logging.getLogger(__name__)


class NoUsableClipsError(Exception):
    """None of the given sources produced a clip to train on."""


Box = tuple[float, float, float, float]


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


def load_clips(
    specs: list[ClipSpec],
    frame_side: int,
    proposal_stride: int,
    progress: Callable[[str], None] | None = None,
    aspects: tuple[float, ...] | None = None,
) -> list[Clip]:
    """Decode every usable source; raise NoUsableClipsError when none is usable."""
    clips = []
    for spec in specs:
        if progress:
            progress(f"decoding {spec.path}")
        try:
            clip = _load_clip(spec, frame_side, proposal_stride, aspects)
        except UnusableSourceError as error:
            _logger.warning("skipping %s: %s", spec.path, error)
            continue
        if clip.initial_boxes:
            clips.append(clip)
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


def _load_clip(spec: ClipSpec, frame_side: int, proposal_stride: int, aspects: tuple[float, ...] | None = None) -> Clip:
    path = Path(spec.path)
    if not path.exists():
        raise UnusableSourceError("no such file or folder")
    frames, scale, size = [], 1.0, (0, 0)
    small = []
    for index, image in enumerate(_decode(path)):
        if index == 0:
            scale = min(1.0, frame_side / max(image.shape[:2]))
            size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        if scale != 1.0:
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise UnusableSourceError(f"frame {index} could not be re-encoded")
        frames.append(data.tobytes())
        small.append(cv2.resize(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), (64, 48), interpolation=cv2.INTER_AREA))
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
    clip.tracks = [
        {index: np.asarray(box, dtype=np.float64) * scale for index, box in track.items() if 0 <= index < len(frames)}
        for track in spec.tracks
    ]
    if user:
        for index, boxes in user.items():
            many = boxes if isinstance(boxes, list) else [boxes]
            if 0 <= index < len(frames):
                clip.initial_boxes[index] = [np.asarray(box, dtype=np.float64) * scale for box in many]
    else:
        step = max(1, proposal_stride)
        for index in range(0, len(frames) - 1, step):
            later = min(index + 3, len(frames) - 1)
            boxes = propose_boxes(clip.frame(index), clip.frame(later), **({} if aspects is None else {"aspects": tuple(aspects)}))
            if boxes:
                clip.initial_boxes[index] = boxes
    return clip


def _decode(path: Path):  # noqa: ANN202 - generator of RGB frames
    if path.is_dir():
        files = image_files(path)
        if not files:
            raise UnusableSourceError("folder holds no images")
        for file in files:
            try:
                yield read_image(file)
            except Exception as error:  # sstrack InputError
                raise UnusableSourceError(str(error)) from error
        return
    if importlib.util.find_spec("av") is None:
        yield from _decode_with_opencv(path)
        return
    # The same decoder as the app's exact reader, so training frames are the frames users label.
    from sstrack.video import VideoError, decode_frames

    try:
        yield from decoded_quietly(decode_frames(path))
    except VideoError as error:
        raise UnusableSourceError("cannot be decoded (damaged, truncated or not a video)") from error


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
