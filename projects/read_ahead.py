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
`patience_s` for a frame, it stops the thread and decodes the rest in line, as before. A thread
whose reader is done is put back at normal priority, so that it exits at once under any load.
Only a privileged process may do that (root, or an RLIMIT_NICE allowing nice 0); elsewhere the
thread decodes at nice 19 instead of SCHED_IDLE, which never starves it (not measured in
benchmarks.pipeline).
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
    """Put the calling thread (and the decoder threads it starts) at SCHED_IDLE where this process
    may later lift it back, else at nice 19."""
    # Where a sandbox refuses it, the thread decodes at normal priority: measured no slower than
    # decoding in line (0.84 against 0.80 of bare fps), just without the gain.
    with contextlib.suppress(OSError, AttributeError):
        if _may_leave_idle():
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: the calling thread on Linux
        else:
            # An unprivileged thread cannot leave SCHED_IDLE (RLIMIT_NICE, usually 0), so a starved
            # one would hold its decoder until a core fell idle; at nice 19 it still gets a sliver.
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)


_CAP_SYS_NICE = 23  # linux/capability.h


def _may_leave_idle() -> bool:
    """Whether this process may move a thread from SCHED_IDLE back to normal (CAP_SYS_NICE, or an
    RLIMIT_NICE allowing nice 0; sched(7))."""
    # Root alone is not enough: a container's root usually lacks CAP_SYS_NICE (Docker's default).
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            effective = next(line for line in status if line.startswith("CapEff:"))
        if int(effective.split()[1], 16) >> _CAP_SYS_NICE & 1:
            return True
    try:
        import resource

        soft, _hard = resource.getrlimit(resource.RLIMIT_NICE)
    except (ImportError, AttributeError, ValueError, OSError):
        return False
    return soft == resource.RLIM_INFINITY or soft >= 20


# Decoder threads whose readers still want frames, and the threads this process had before the
# first of them started (the ones their decoders start are the others).
_wanted: set[threading.Thread] = set()
_baseline: set[str] = set()
_wanted_lock = threading.Lock()


def _let_go(worker: threading.Thread, done: threading.Event) -> None:
    """Tell a decoder thread to stop, at normal priority so that it can under any load."""
    # Under a load that leaves no core idle, an idle thread held its decoder open for 17 s after
    # its reader was done (4 busy processes on 2 cores). Closing the decoder also needs the
    # decoder's own threads, which it started and which are idle too: threads started since the
    # first of the running read-aheads began are lifted once none of them wants its threads idle.
    done.set()
    with _wanted_lock:
        _wanted.discard(worker)
        others_wanted = bool(_wanted)
        before = set(_baseline)
    if worker.native_id is not None:
        _set_normal_priority(worker.native_id)
    if others_wanted:
        return
    with contextlib.suppress(OSError):
        for task in set(os.listdir("/proc/self/task")) - before:
            _set_normal_priority(int(task))


def _set_normal_priority(thread_id: int) -> None:
    """Move one thread of this process from SCHED_IDLE to SCHED_OTHER (a thread gone is ignored)."""
    with contextlib.suppress(OSError, AttributeError):
        if os.sched_getscheduler(thread_id) == os.SCHED_IDLE:
            os.sched_setscheduler(thread_id, os.SCHED_OTHER, os.sched_param(0))


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
    with _wanted_lock:
        if not _wanted:
            try:
                _baseline.clear()
                _baseline.update(os.listdir("/proc/self/task"))
            except OSError:
                pass  # then every idle thread is lifted at the end, as the read-aheads' own
        _wanted.add(worker)
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
                _let_go(worker, done)
                yield from media.iter_frames(expected[position], stop, step)
                return
            if isinstance(item, _Failed):
                raise item.error
            index, decoded = item
            yield index, twin.to_image(decoded)
            position += 1
    finally:
        _let_go(worker, done)


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
