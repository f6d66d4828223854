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
