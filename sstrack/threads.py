"""How many CPU threads torch should use now: the idle cores, not all of them.

torch's intra-op threads spin-wait on each other; when another process holds a core, a 2-thread
forward waits on the descheduled thread every layer. Measured on this 2-core machine with a
training run on one core: `Tracker.step` on 01_dog.mp4 ran 20.5 fps at 2 threads and 34.3 fps at
1 (NanoTrack 246 / 239 in the same runs). So take the cores the load average leaves free.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import torch


def available_cores() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def busy_cores(window_s: float = 0.25) -> float | None:
    """Cores busy right now, from /proc/stat over a short window (None where there is none).

    The load average reacts in minutes; a trainer started a few seconds ago must count now.
    """
    def sample() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values), idle

    try:
        total0, idle0 = sample()
        time.sleep(window_s)
        total1, idle1 = sample()
    except (OSError, ValueError, IndexError):
        return None
    if total1 <= total0:
        return None
    return (os.cpu_count() or 1) * (1 - (idle1 - idle0) / (total1 - total0))


def idle_cores(load: float | None = None) -> int:
    """Cores left free by the other work on the machine, at least 1.

    `load`: busy cores, measured now (/proc/stat) when not given, else the 1-minute load average.
    """
    cores = available_cores()
    if load is None:
        load = busy_cores()
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # Windows: no load average
            return cores
    return max(1, min(cores, int(cores - load + 0.5)))


def use_cpu_threads(requested: int | None = None) -> int:
    """Set torch's CPU threads to `requested`, or to the idle cores; returns the number set."""
    threads = requested if requested and requested > 0 else idle_cores()
    torch.set_num_threads(threads)
    return threads


# torch's thread count is process-wide: trackers stepping on two threads at once share one count
# to restore, held while any of them is inside `torch_on_one_thread`.
_one_thread_lock = threading.Lock()
_one_thread_users = 0
_count_outside = 1


@contextmanager
def torch_on_one_thread() -> Iterator[int]:
    """Run torch's own ops on one thread inside; yields the count it had, for the runtime doing the heavy work.

    Why: with ONNX Runtime running the network, torch only glues (crops to tensors, token
    concatenation, box decode). Its OpenMP threads spin at every op's barrier, and when another
    process holds a core each small op waits for a descheduled thread: beside a 2-thread training
    run, `Tracker.step` of v4 ran 20-32 fps with torch at 2 threads and 47-96 at 1, ONNX Runtime at 2
    threads in both (stop 50, docs/results-threads-2026-12-07.md). Setting the count costs 0.2 us.
    Safe from several threads at once: the count is restored when the last of them leaves.
    """
    global _one_thread_users, _count_outside
    with _one_thread_lock:
        if _one_thread_users == 0:
            _count_outside = torch.get_num_threads()
            torch.set_num_threads(1)
        _one_thread_users += 1
        threads = _count_outside
    try:
        yield threads
    finally:
        with _one_thread_lock:
            _one_thread_users -= 1
            if _one_thread_users == 0:
                torch.set_num_threads(_count_outside)
