"""The CPU thread choice: idle cores from the load, never below one, an explicit value wins."""

from __future__ import annotations

import torch

from sstrack.threads import available_cores, idle_cores, use_cpu_threads


def test_idle_cores_follow_the_load():
    cores = available_cores()
    assert idle_cores(load=0.0) == cores
    assert idle_cores(load=float(cores)) == 1  # everything busy: still one
    assert idle_cores(load=cores + 5.0) == 1
    if cores >= 2:
        assert idle_cores(load=1.0) == cores - 1  # one core taken by another process


def test_an_explicit_thread_count_wins():
    before = torch.get_num_threads()
    try:
        assert use_cpu_threads(1) == 1 and torch.get_num_threads() == 1
        assert 1 <= use_cpu_threads(None) <= available_cores()
    finally:
        torch.set_num_threads(before)


def test_one_thread_glue_restores_the_count_when_the_last_of_several_threads_leaves():
    """Two trackers stepping on two threads at once (torch's count is process-wide): the count
    the first one found is the one restored, whichever leaves last, and each sees it inside."""
    import threading

    from sstrack.threads import torch_on_one_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    first_inside, second_done = threading.Event(), threading.Event()
    seen = {}

    def second() -> None:
        first_inside.wait()
        with torch_on_one_thread() as threads:  # enters after the first, leaves before it
            seen["second"] = (threads, torch.get_num_threads())
        second_done.set()

    worker = threading.Thread(target=second)
    worker.start()
    try:
        with torch_on_one_thread() as threads:
            seen["first"] = (threads, torch.get_num_threads())
            first_inside.set()
            second_done.wait()
            assert torch.get_num_threads() == 1  # the first is still inside
        worker.join()
        assert seen == {"first": (2, 1), "second": (2, 1)}
        assert torch.get_num_threads() == 2
    finally:
        worker.join()
        torch.set_num_threads(before)
