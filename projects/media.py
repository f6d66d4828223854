"""Frame-exact random access to videos and image folders, with byte-bounded caches.

Frame k is always the k-th frame a sequential decode yields, whatever order frames are read in:
videos go through `sstrack.video`, which verifies its random access against a sequential pass
when a video is indexed (see there). Reading backwards is done in forward-decoded chunks, so
tracking backward does not re-seek for every frame.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from projects.errors import MediaError
from sstrack.sequences import VIDEO_SUFFIXES, image_files, native_stderr_silenced
from sstrack.video import (
    DEFAULT_WINDOW_BYTES,
    MAX_FRAME_PIXELS,
    VideoError,
    VideoIndex,
    VideoReader,
    build_index,
    to_rgb,
)

DEFAULT_CACHE_BYTES = 256 * 1024 * 1024
_REVERSE_CHUNK = 32


class FrameCache:
    """LRU cache of decoded frames, bounded by total bytes (not by count)."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._items: OrderedDict[int, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int) -> np.ndarray | None:
        """A cached frame (marked most recently used), or None."""
        with self._lock:
            frame = self._items.get(index)
            if frame is not None:
                self._items.move_to_end(index)
            return frame

    def put(self, index: int, frame: np.ndarray) -> None:
        """Cache a frame, evicting the least recently used ones beyond the byte bound."""
        if frame.nbytes > self.max_bytes:
            return
        with self._lock:
            old = self._items.pop(index, None)
            if old is not None:
                self.bytes -= old.nbytes
            self._items[index] = frame
            self.bytes += frame.nbytes
            while self.bytes > self.max_bytes:
                _, evicted = self._items.popitem(last=False)
                self.bytes -= evicted.nbytes

    def __len__(self) -> int:
        return len(self._items)


class Media:
    """Base class: metadata plus cached, frame-exact access. Use `open_media`."""

    def __init__(self, path: Path, frame_count: int, fps: float, width: int, height: int, cache_bytes: int) -> None:
        self.path = path
        self.frame_count = frame_count
        self.fps = fps
        self.width = width
        self.height = height
        self.cache = FrameCache(cache_bytes)

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (0-based) as RGB uint8 HxWx3."""
        if not 0 <= index < self.frame_count:
            raise MediaError(f"{self.path}: frame {index + 1} does not exist (1..{self.frame_count})")
        cached = self.cache.get(index)
        if cached is not None:
            return cached
        frame = self._read(index)
        self.cache.put(index, frame)
        return frame

    def decoded(self, index: int) -> Any:
        """Frame `index` as its reader decoded it; `to_image` turns it into RGB uint8 HxWx3."""
        return self.frame(index)

    def to_image(self, decoded: Any) -> np.ndarray:
        """A frame from `decoded` / `iter_decoded` as RGB uint8 HxWx3."""
        return decoded

    def twin(self) -> Media | None:
        """A second reader of the same frames, for a thread of its own (None: this kind reads in line)."""
        return None

    def iter_frames(self, start: int, stop: int, step: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """(index, frame) for range(start, stop, step); step -1 reads backward efficiently."""
        for index, decoded in self.iter_decoded(start, stop, step):
            yield index, self.to_image(decoded)

    def iter_decoded(self, start: int, stop: int, step: int = 1) -> Iterator[tuple[int, Any]]:
        """(index, decoded frame) for range(start, stop, step), as `iter_frames` but unconverted."""
        if step == 1:
            for index in range(start, stop):
                yield index, self.decoded(index)
            return
        if step != -1:
            raise ValueError("step must be 1 or -1")
        index = start
        while index > stop:
            low = max(stop + 1, index - _REVERSE_CHUNK + 1)
            chunk = [self.decoded(i) for i in range(low, index + 1)]
            for offset in range(index - low, -1, -1):
                yield low + offset, chunk[offset]
            index = low - 1

    def _read(self, index: int) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release the decoder."""

    def __enter__(self) -> Media:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VideoMedia(Media):
    """A video file read through the verified, frame-exact `sstrack.video.VideoReader`.

    Decoded frames are kept by the reader in the decoder's compact pixel format (half the bytes of
    RGB), so `cache_bytes` bounds that window instead of an RGB cache.
    """

    def __init__(self, path: Path, cache_bytes: int, index: VideoIndex | None = None) -> None:
        if path.stat().st_size == 0:
            raise MediaError(f"{path}: empty file (0 bytes); copy the video again or re-link the right file")
        try:
            with native_stderr_silenced():
                self.index = index or build_index(path)
        except VideoError as error:
            raise MediaError(str(error)) from error
        self._reader = VideoReader(path, self.index, window_bytes=cache_bytes)
        super().__init__(path, self.index.frames, self.index.fps, self.index.width, self.index.height, 0)

    @property
    def access(self) -> str:
        """How frames are reached: "seek" (verified keyframe seeks) or "linear" (from the start)."""
        return self._reader.index.access

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (0-based) as RGB uint8 HxWx3."""
        return to_rgb(self.decoded(index))

    def decoded(self, index: int) -> Any:
        """Frame `index` as the decoder gave it (YUV, half the bytes of RGB); `to_image` converts."""
        if not 0 <= index < self.frame_count:
            raise MediaError(f"{self.path}: frame {index + 1} does not exist (1..{self.frame_count})")
        try:
            with native_stderr_silenced():
                return self._reader.read_decoded(index)
        except VideoError as error:
            raise MediaError(str(error)) from error

    def to_image(self, decoded: Any) -> np.ndarray:
        """A decoded frame as RGB uint8 HxWx3."""
        return to_rgb(decoded)

    def twin(self) -> VideoMedia:
        """A second decoder of this file, sharing its index (decoders are not shared across threads)."""
        return VideoMedia(self.path, self._reader.window_bytes, index=self._reader.index)

    def close(self) -> None:
        """Release the decoder."""
        self._reader.close()


class FolderMedia(Media):
    """A folder of frames (LaSOT `img/`, GOT-10k sequence folder, OTB layout)."""

    def __init__(self, path: Path, cache_bytes: int, fps: float = 30.0) -> None:
        self._files = image_files(path)
        if not self._files:
            raise MediaError(f"{path}: no images (.jpg/.png) in this folder; pick a video or a frame folder")
        _check_no_gap(path, self._files)
        first = cv2.cvtColor(_read_bgr(self._files[0]), cv2.COLOR_BGR2RGB)
        super().__init__(path, len(self._files), fps, first.shape[1], first.shape[0], cache_bytes)
        self.cache.put(0, first)

    def _read(self, index: int) -> np.ndarray:
        return cv2.cvtColor(_read_bgr(self._files[index], (self.width, self.height)), cv2.COLOR_BGR2RGB)

    def twin(self) -> _FolderTwin:
        """A second, uncached reader of the same files, for a thread of its own."""
        return _FolderTwin(self)


class _FolderTwin(Media):
    """A frame folder read from another thread (projects/read_ahead.py): uncached, and decoded
    to BGR there; the consumer swaps the channels, so OpenCV's pool never starts on that thread."""

    def __init__(self, folder: FolderMedia) -> None:
        super().__init__(folder.path, folder.frame_count, folder.fps, folder.width, folder.height, 0)
        self._files = folder._files

    def frame(self, index: int) -> np.ndarray:
        """Frame `index` (0-based) as RGB uint8 HxWx3."""
        return self.to_image(self.decoded(index))

    def decoded(self, index: int) -> np.ndarray:
        """Frame `index` as the image decoder gave it (BGR)."""
        if not 0 <= index < self.frame_count:
            raise MediaError(f"{self.path}: frame {index + 1} does not exist (1..{self.frame_count})")
        return _read_bgr(self._files[index], (self.width, self.height))

    def to_image(self, decoded: np.ndarray) -> np.ndarray:
        """A BGR frame as RGB."""
        return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)




def _read_bgr(file: Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one frame file; `size` (w, h): the folder's frame size, which every frame must have.

    The size the file declares is checked before it is decoded, so that a bomb is never decoded,
    nor (rotation aside) a frame of another size: boxes are per frame, in one coordinate system.
    """
    declared = _declared_size(file)
    if declared is not None:
        # A 389 KB PNG can declare 20000 x 20000 (1.2 GB decoded): a decompression bomb, not a frame.
        if declared[0] * declared[1] > MAX_FRAME_PIXELS:
            raise MediaError(f"{file}: declares {declared[0]}x{declared[1]} pixels, far beyond any video frame; replace the file")
        # Transposed is allowed here: OpenCV applies a JPEG's EXIF rotation, the header does not.
        # The decoded frame's size is checked exactly below.
        if size is not None and declared not in (size, size[::-1]):
            raise MediaError(
                f"{file}: {declared[0]}x{declared[1]}, but the folder's first frame is {size[0]}x{size[1]}; "
                "a sequence's frames must share one size (resize or replace this one)"
            )
    image = cv2.imread(str(file), cv2.IMREAD_COLOR)
    if image is None:
        raise MediaError(f"{file}: cannot be read as an image; replace the file")
    if size is not None and (image.shape[1], image.shape[0]) != size:
        raise MediaError(f"{file}: {image.shape[1]}x{image.shape[0]}, but the folder's first frame is {size[0]}x{size[1]}; resize or replace it")
    return image


def _declared_size(file: Path) -> tuple[int, int] | None:
    """The (w, h) an image file's header declares, read without decoding it (None: not known)."""
    try:
        with warnings.catch_warnings():  # Pillow warns from 89 MP; the caller applies its own limit
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as image:
                return image.size
    except Image.DecompressionBombError as error:  # Pillow's own limit (twice its 89 MP warning)
        raise MediaError(f"{file}: declares more pixels than any video frame ({error}); replace the file") from error
    except (OSError, ValueError):
        return None  # a file Pillow cannot parse; OpenCV decides (and refuses it if broken)


def _check_no_gap(folder: Path, files: list[Path]) -> None:
    """Refuse a numbered frame folder with a hole in its numbering."""
    # Frame k is the k-th file, so after a hole every frame would silently shift by one and
    # boxes would be shown on (and exported for) the wrong image.
    stems = [f.stem for f in files]
    if not all(s.isdigit() for s in stems):
        return  # not a numbered sequence: name order is all there is
    for before, after in zip(files, files[1:]):
        if int(after.stem) != int(before.stem) + 1:
            missing = f"{int(before.stem) + 1:0{len(after.stem)}d}{after.suffix}"
            raise MediaError(
                f"{folder}: frame file {missing} is missing (between {before.name} and {after.name}); "
                "restore it or renumber the frames"
            )


def open_media(path: str | Path, cache_bytes: int | None = None, index: VideoIndex | None = None) -> Media:
    """Open a video file or frame folder; a clear MediaError for anything else.

    `index`: a video's stored `VideoIndex` (projects keep one), so it is not decoded again.
    """
    path = Path(path)
    if not path.exists():
        raise MediaError(f"{path}: no such file or folder; it may have been moved (re-link it)")
    if path.is_dir():
        return FolderMedia(path, DEFAULT_CACHE_BYTES if cache_bytes is None else cache_bytes)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise MediaError(f"{path}: not a video file we read ({', '.join(VIDEO_SUFFIXES)}) or a frame folder")
    return VideoMedia(path, DEFAULT_WINDOW_BYTES if cache_bytes is None else cache_bytes, index)
