"""Decode a run's next frames on a thread that only takes CPU time the tracker leaves idle.

On two cores the tracker's forward keeps 1.8 of them busy, and decoding in line adds ~2.2 ms a
frame (1280x720 H.264) after each step. Decoding on an ordinary thread alongside made each step
slower instead: ONNX Runtime's two threads wait for each other at every operator, so a decoder
preempting one stalls both. A decoder thread at `SCHED_IDLE` runs only on a core that would
otherwise idle, so it fills the gaps in the forward (benchmarks/pipeline.py,
docs/results-pipeline-2026-12-04.md). Frames come back as the decoder gave them and are
converted to RGB on the consumer's thread, so OpenCV's worker pool is never started from (and
never inherits the priority of) the idle thread.

Under a load that leaves no core idle, the idle thread would starve; if the consumer waits
`patience_s` for a frame, it stops the thread and decodes the rest in line, as before.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Generator
from typing import Any

import numpy as np

from projects.errors import MediaError
from projects.media import Media

_logger = logging.getLogger(__name__)


class _Failed:
    """An exception the decoder thread hit, re-raised on the consumer's thread."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def idle_priority_available() -> bool:
    """Whether this OS lets a thread run at idle priority (Linux's SCHED_IDLE)."""
    return hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE")


def _lower_this_thread() -> None:
    """Put the calling thread (and the decoder threads it starts) at SCHED_IDLE, where allowed."""
    # Where a sandbox refuses it, the thread decodes at normal priority: measured no slower than
    # decoding in line (0.84 against 0.80 of bare fps), just without the gain.
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread on Linux


def frames_ahead(
    media: Media, start: int, stop: int, step: int = 1, depth: int = 4, patience_s: float = 2.0
) -> Generator[tuple[int, np.ndarray], None, None]:
    """(index, RGB frame) for range(start, stop, step), as `media.iter_frames`, decoded ahead.

    Reads in line where the OS has no idle priority or the media has no second reader. Close the
    generator to stop the thread (a run that is cancelled or stops early).
    """
    try:
        twin = media.twin() if idle_priority_available() else None
    except (OSError, MediaError):
        twin = None  # the file went away: reading in line reports it as usual
    if twin is None:
        yield from media.iter_frames(start, stop, step)
        return
    ready: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = threading.Event()
    worker = threading.Thread(target=_decode, args=(twin, start, stop, step, ready, done), name="frames-ahead", daemon=True)
    worker.start()
    expected = range(start, stop, step)
    position = 0
    try:
        while position < len(expected):
            try:
                item = ready.get(timeout=patience_s)
            except queue.Empty:
                # Starved (no idle core) or stuck: finish in line with the run's own reader.
                _logger.info("%s: no frame from the read-ahead thread in %.1f s; decoding in line", media.path, patience_s)
                done.set()
                yield from media.iter_frames(expected[position], stop, step)
                return
            if isinstance(item, _Failed):
                raise item.error
            index, decoded = item
            yield index, twin.to_image(decoded)
            position += 1
    finally:
        done.set()


def _decode(twin: Media, start: int, stop: int, step: int, ready: queue.Queue[Any], done: threading.Event) -> None:
    """The thread: decode into `ready` until the range ends or the consumer is done."""
    _lower_this_thread()
    try:
        for item in twin.iter_decoded(start, stop, step):
            if not _hand_over(item, ready, done):
                return
    except Exception as error:  # noqa: BLE001 - handed to the consumer, which re-raises it
        _hand_over(_Failed(error), ready, done)
    finally:
        twin.close()


def _hand_over(item: Any, ready: queue.Queue[Any], done: threading.Event) -> bool:
    """Queue `item` unless the consumer is done first; False when it is."""
    while not done.is_set():
        try:
            ready.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
