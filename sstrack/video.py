"""Frame-exact video decoding with PyAV: frame k is the k-th frame a sequential decode yields.

Random access is only as good as the container's timestamps and index, and some files lie
(OpenCV's Megamind.avi: decord's frame 201 is decoded frame 99; box.mp4 declares 456 frames and
decodes 455). So exactness is verified, not assumed: `build_index` decodes the file once from the
start (the frame count is the number of frames that came out), records each frame's timestamp and
which frames are keyframes, then re-reads sampled frames through keyframe seeks and compares their
pixels with the sequential pass. A file whose seeks pass gets the "seek" access path (seek to the
keyframe at or before k, decode forward, locate frames by timestamp); one that fails gets
"linear" (restart from the first frame and count), which is slow but always right.

A reader keeps its decoder open where it stopped and a window of recently decoded frames (in
the decoder's own compact pixel format), so sequential reads never seek, jumps within a group of
pictures decode each frame at most once, and reading backwards costs one forward pass per window.
Every frame comes out as RGB uint8 HxWx3, whatever the pixel format (gray, alpha, 4:2:2, odd sizes).
"""

from __future__ import annotations

import bisect
import dataclasses
import stat
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from sstrack.errors import SSTrackError

# Holds a whole 250-frame group of pictures of a 1280x720 video (1.4 MB a frame in 4:2:0).
DEFAULT_WINDOW_BYTES = 384 * 1024 * 1024
VERIFY_SAMPLES = 8  # keyframes whose seeks are checked (plus random frames and the last)
# Below this many pixels on a side no box can be drawn or tracked meaningfully; such files are
# usually thumbnails or broken streams (decord returned HxWx6 arrays for 16x16 clips).
MIN_SIDE = 32
# 8K video is 33 MP. Past this a frame is a bomb, not a frame: a 752 KB .mp4 of 16000x16000
# frames took 5.6 GB to index. Image folders (projects.media) share the limit.
MAX_FRAME_PIXELS = 100_000_000


class VideoError(SSTrackError):
    """A video cannot be opened or decoded exactly; the message names the file and the fix."""


@dataclass(frozen=True)
class VideoIndex:
    """What one sequential decode found: the true frame count, timestamps, keyframes, access path."""

    frames: int
    width: int
    height: int
    fps: float
    pts: tuple[int, ...]
    keyframes: tuple[int, ...]
    access: str  # "seek" (verified keyframe seeks) or "linear" (decode from the start)
    verified: int = 0  # sampled frames whose random read matched the sequential pass

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored by projects so a reopened video is not decoded again)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoIndex:
        """Inverse of `to_dict`; raises VideoError on anything malformed."""
        try:
            index = cls(
                int(data["frames"]), int(data["width"]), int(data["height"]), float(data["fps"]),
                tuple(int(p) for p in data["pts"]), tuple(int(k) for k in data["keyframes"]),
                str(data["access"]), int(data.get("verified", 0)),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise VideoError(f"stored video index is malformed ({error}); it will be rebuilt") from error
        if index.access not in ("seek", "linear") or len(index.pts) != index.frames or not index.keyframes:
            raise VideoError("stored video index is inconsistent; it will be rebuilt")
        return index


def _open(path: Path) -> tuple[Any, Any]:
    import av

    try:
        regular = stat.S_ISREG(path.stat().st_mode)  # follows links; a link loop is an OSError
    except OSError as error:
        raise VideoError(f"{path}: cannot be read ({error.strerror}); check the path or re-link the right file") from error
    if not regular:  # a FIFO blocks the demuxer for ever, a device never ends
        raise VideoError(f"{path}: not a regular file (a FIFO or a device); a video is a file, copy it to disk first")
    try:
        container = av.open(str(path), metadata_errors="ignore")
        stream = container.streams.video[0]
    except (av.FFmpegError, IndexError, OSError, UnicodeDecodeError) as error:
        raise VideoError(
            f"{path}: cannot be opened as a video (damaged, truncated or not a video); "
            "re-encode it (e.g. ffmpeg -i in.mp4 out.mp4) or re-link the right file"
        ) from error
    declared = stream.codec_context
    if declared.width * declared.height > MAX_FRAME_PIXELS:  # refused before a frame is decoded
        container.close()
        raise _too_large(path, declared.width, declared.height)
    stream.thread_type = "AUTO"  # frame threads: ~2x on two cores, exact all the same
    return container, stream


def _too_large(path: Path, width: int, height: int) -> VideoError:
    return VideoError(
        f"{path}: {width}x{height} pixels a frame is beyond any video this tool reads (at most "
        f"{MAX_FRAME_PIXELS // 1_000_000} MP); scale it down (ffmpeg -i in.mp4 -vf scale=3840:-2 out.mp4)"
    )


def _check_size(path: Path, frame: Any, number: int, first: tuple[int, int]) -> None:
    """Frame `number` (1-based) must be within the pixel limit and the size of the first."""
    if number == 1 and frame.width * frame.height > MAX_FRAME_PIXELS:  # a stream that lied at open
        raise _too_large(path, frame.width, frame.height)
    if (frame.width, frame.height) != first:
        raise VideoError(
            f"{path}: frame {number} is {frame.width}x{frame.height}, the first is {first[0]}x{first[1]}; "
            "re-encode it at one size (ffmpeg -i in.mp4 -vf scale=W:H out.mp4)"
        )


def _decode_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError, ValueError)


def to_rgb(frame: Any) -> np.ndarray:
    """An av.VideoFrame as RGB uint8 HxWx3 (the one place pixel formats are normalised)."""
    if frame.format.name == "yuv420p" and frame.width % 2 == 0 and frame.height % 2 == 0:
        # OpenCV's I420 conversion is ~5x faster than swscale's rgb24 path here, same BT.601 matrix.
        return cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420)
    return frame.to_ndarray(format="rgb24")


def _fingerprint(frame: Any) -> int:
    """A checksum of a frame's visible pixels (not of its padded planes, which may differ)."""
    try:
        data = frame.to_ndarray()
    except (ValueError, TypeError):  # pixel formats without a native array view
        data = frame.to_ndarray(format="rgb24")
    return zlib.crc32(np.ascontiguousarray(data).data)


def _frame_bytes(frame: Any) -> int:
    return sum(plane.buffer_size for plane in frame.planes)


def build_index(
    path: str | Path, samples: int = VERIFY_SAMPLES, on_progress: Callable[[int], None] | None = None
) -> VideoIndex:
    """Decode `path` once, count and timestamp its frames, then verify seeks on sampled frames."""
    path = Path(path)
    container, stream = _open(path)
    pts: list[int | None] = []
    keyframes: list[int] = []
    prints: list[int] = []
    width = height = 0
    try:
        for frame in container.decode(stream):
            if not pts:
                width, height = frame.width, frame.height
            _check_size(path, frame, len(pts) + 1, (width, height))
            if frame.key_frame:
                keyframes.append(len(pts))
            pts.append(frame.pts)
            prints.append(_fingerprint(frame))
            if on_progress and len(pts) % 100 == 0:
                on_progress(len(pts))
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 30.0
    except _decode_errors() as error:
        raise VideoError(f"{path}: frame {len(pts) + 1} cannot be decoded ({error}); re-encode the video") from error
    finally:
        container.close()
    if not pts:
        raise VideoError(f"{path}: no frame could be decoded; re-encode the video or re-link the right file")
    if min(width, height) < MIN_SIDE:
        raise VideoError(
            f"{path}: {width}x{height} pixels is too small to annotate (at least {MIN_SIDE}x{MIN_SIDE}); "
            "use the original, larger video"
        )
    # Frames are located by timestamp after a seek, so timestamps must be present and unique; they
    # need not increase (box.mp4 and Megamind.avi come out of the decoder with shuffled pts).
    seekable = all(p is not None for p in pts) and len(set(pts)) == len(pts)
    index = VideoIndex(
        len(pts), width, height, fps if 0 < fps < 1000 else 30.0,
        tuple(p if p is not None else -1 for p in pts), tuple(keyframes or [0]), "seek" if seekable else "linear",
    )
    return _verify(path, index, prints, samples)


def _checks(index: VideoIndex, count: int) -> list[tuple[int, int]]:
    """(first frame, run length) pairs to verify through fresh seeks.

    A seek path is right when every keyframe seek lands on the frame the sequential pass saw there
    and the frames after it decode the same (an open GOP breaks exactly those), so most checks are
    short runs from keyframes; a few random frames and the last one cover the rest.
    """
    rng = np.random.default_rng(index.frames)
    keys = list(index.keyframes[1:])
    if len(keys) > count:
        keys = [keys[int(i)] for i in np.linspace(0, len(keys) - 1, count)]
    runs = [(k, 4) for k in keys]
    runs += [(int(k), 1) for k in rng.integers(0, index.frames, size=2)]
    runs.append((index.frames - 1, 1))
    return [(k, min(n, index.frames - k)) for k, n in runs]


def _verify(path: Path, index: VideoIndex, prints: list[int], samples: int) -> VideoIndex:
    if index.access != "seek" or samples <= 0:
        return index
    checks = _checks(index, samples)
    reader = VideoReader(path, index, window_bytes=0)
    verified = 0
    try:
        for first, length in checks:
            reader._seek_to(first)  # always a fresh seek, never a continuation of the last check
            for k in range(first, first + length):
                if _fingerprint(reader._decode_until(k, keep=False)) != prints[k]:
                    raise VideoError("mismatch")
                verified += 1
    except VideoError:
        return dataclasses.replace(index, access="linear", verified=0)
    finally:
        reader.close()
    return dataclasses.replace(index, verified=verified)


class VideoReader:
    """Exact random and sequential access to one video file, given (or building) its index."""

    def __init__(self, path: str | Path, index: VideoIndex | None = None, window_bytes: int = DEFAULT_WINDOW_BYTES) -> None:
        self.path = Path(path)
        self.index = index or build_index(self.path)
        self.window_bytes = window_bytes
        self._window: OrderedDict[int, Any] = OrderedDict()
        self._window_used = 0
        self._pts_to_frame = {p: i for i, p in enumerate(self.index.pts)}
        self._container: Any = None
        self._frames: Iterator[Any] | None = None
        self._next: int | None = None  # frame the decoder yields next, None before any decode
        self._lock = threading.RLock()

    @property
    def frame_count(self) -> int:
        """Number of frames a sequential decode yields."""
        return self.index.frames

    def read(self, k: int) -> np.ndarray:
        """Frame k (0-based) as RGB uint8 HxWx3."""
        return to_rgb(self.read_decoded(k))

    def read_decoded(self, k: int) -> Any:
        """Frame k as the decoder gave it (an av.VideoFrame; `to_rgb` converts it, on any thread)."""
        if not 0 <= k < self.index.frames:
            raise VideoError(f"{self.path}: frame {k + 1} does not exist (1..{self.index.frames})")
        with self._lock:
            frame = self._window.get(k)
            if frame is not None:
                self._window.move_to_end(k)
                return frame
            try:
                return self._decode_to(k)
            except VideoError:
                if self.index.access != "seek":
                    raise
                # A seek the sampled check did not catch went wrong: fall back to the exact path.
                self.index = dataclasses.replace(self.index, access="linear")
                self.close()
                return self._decode_to(k)

    def _decode_to(self, k: int) -> Any:
        if self._next is None or not self._keyframe_before(k) <= self._next <= k:
            self._seek_to(k)
        return self._decode_until(k, keep=True)

    def _keyframe_before(self, k: int) -> int:
        keys = self.index.keyframes
        return keys[max(0, bisect.bisect_right(keys, k) - 1)]

    def _seek_to(self, k: int) -> None:
        """Position the decoder at or before frame k: a keyframe seek, or a restart for linear."""
        key = self._keyframe_before(k) if self.index.access == "seek" else 0
        try:
            if self._container is None or key == 0:
                self.close()
                self._container, stream = _open(self.path)
                self._frames = self._container.decode(stream)
                self._next = 0
            else:
                stream = self._container.streams.video[0]
                self._container.seek(self.index.pts[key], stream=stream, backward=True, any_frame=False)
                self._frames = self._container.decode(stream)
                self._next = -1  # unknown until the first frame's timestamp is seen
        except _decode_errors() as error:
            raise VideoError(f"{self.path}: cannot seek to frame {k + 1} ({error}); re-encode the video") from error

    def _decode_until(self, k: int, keep: bool) -> Any:
        """Decode forward to frame k; with `keep`, every frame decoded on the way enters the window."""
        assert self._frames is not None
        while True:
            try:
                frame = next(self._frames)
            except StopIteration:
                frame = None
            except _decode_errors() as error:
                self._next = None
                raise VideoError(f"{self.path}: frame {k + 1} cannot be decoded ({error}); re-encode the video") from error
            if frame is None:
                self._next = None
                raise VideoError(f"{self.path}: the video ended before frame {k + 1}; it may have been replaced (re-add it)")
            if self.index.access == "linear":
                position = self._next
            else:
                position = self._pts_to_frame.get(frame.pts, -1)
                if position < 0 or (self._next not in (-1, None) and position != self._next):
                    self._next = None
                    raise VideoError(f"{self.path}: decoded an unexpected frame while seeking to frame {k + 1}")
            self._next = position + 1
            if keep:
                self._remember(position, frame)
            if position == k:
                return frame
            if position > k:
                self._next = None
                raise VideoError(f"{self.path}: seeking to frame {k + 1} landed after it; the file's index is wrong")

    def _remember(self, position: int, frame: Any) -> None:
        size = _frame_bytes(frame)
        if size > self.window_bytes:
            return
        old = self._window.pop(position, None)
        if old is not None:
            self._window_used -= _frame_bytes(old)
        self._window[position] = frame
        self._window_used += size
        while self._window_used > self.window_bytes:
            _, evicted = self._window.popitem(last=False)
            self._window_used -= _frame_bytes(evicted)

    def close(self) -> None:
        """Release the decoder (the index and window stay usable; the next read reopens)."""
        if self._container is not None:
            self._container.close()
        self._container = None
        self._frames = None
        self._next = None


def decode_frames(path: str | Path) -> Iterator[np.ndarray]:
    """Every frame of a video in decoding order, RGB uint8 HxWx3: one sequential pass, no index.

    For readers that only go forward (training clips, `sstrack track`); it yields exactly the
    frames `build_index` counts, so frame k here is frame k of a `VideoReader`.
    """
    path = Path(path)
    container, stream = _open(path)
    count = 0
    first = (0, 0)
    try:
        for frame in container.decode(stream):
            count += 1
            if count == 1:
                first = (frame.width, frame.height)
            _check_size(path, frame, count, first)  # boxes are per frame, in one coordinate system
            yield to_rgb(frame)
    except _decode_errors() as error:
        raise VideoError(f"{path}: frame {count + 1} cannot be decoded ({error}); re-encode the video") from error
    finally:
        container.close()
    if count == 0:
        raise VideoError(f"{path}: the video has no frames; re-encode or replace it")


def packet_count(path: str | Path) -> int:
    """Video packets in the file (demuxed, not decoded: fast; may differ from the decoded count)."""
    path = Path(path)
    container, stream = _open(path)
    try:
        return sum(1 for packet in container.demux(stream) if packet.size)
    except _decode_errors() as error:
        raise VideoError(f"{path}: cannot be read ({error}); re-encode the video") from error
    finally:
        container.close()
