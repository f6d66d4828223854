"""The ONNX Runtime backend (issue 18): the default on the CPU only because it gives torch's boxes.

One step from the same state, on real frames with the shipped model, its boxes are within 1e-3 px
of eager torch's, one target or four in a batch. (Over many frames the two drift apart as any
two float orders do: the box feeds the next crop; see docs/results.md.)"""

from __future__ import annotations

import copy
import sys

import numpy as np
import pytest
import torch

from sstrack import InputError, Tracker, load_model
from sstrack.onnx_network import OnnxNetwork
from sstrack.sequences import load_sequence, read_image


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(2)
    return load_model("sstrack-lite")


@pytest.mark.parametrize("name", ["Crossing", "Dog"])
def test_one_step_boxes_match_torch_within_a_thousandth_of_a_pixel(model, sot_dir, name):
    onnx, eager = Tracker(model, device="cpu", backend="onnx"), Tracker(model, device="cpu", backend="torch")
    assert (onnx.backend, eager.backend) == ("onnxruntime", "torch")
    sequence = load_sequence(sot_dir / name)
    # 3 frames (12: the closest case seen, below); each start runs the size calibration, 20 starts per frame.
    for i in (0, 12, 48):
        previous, current = read_image(sequence.frames[i]), read_image(sequence.frames[i + 1])
        start = sequence.ground_truth[i]
        offsets = [np.array([dx, dy, 0, 0.0]) for dx, dy in ((0, 0), (4, -3), (-6, 2), (3, 5))]
        got = []
        for tracker in (onnx, eager):
            states = [tracker.start(previous, start + o) for o in offsets]
            fresh = copy.deepcopy(states)  # a step changes its states; the batch starts from the same ones
            single = tracker.step(states[:1], current)  # one target, then four in one batch
            states = fresh
            got.append(np.array([box + (score,) for box, score in single + tracker.step(states, current)]))
        assert np.abs(got[0] - got[1]).max() < 1e-3
        # A second frame from one shared state: the previous frame's track query goes in too.
        states = [eager.start(previous, start + o) for o in offsets]
        eager.step(states, current)
        shared = copy.deepcopy(states)
        assert all(s.query is not None for s in states)
        following = read_image(sequence.frames[i + 2])
        outs = [np.array([box + (score,) for box, score in tracker.step(s, following)]) for tracker, s in ((onnx, shared), (eager, states))]
        # 2e-3 px here, not 1e-3: the state carries a step's float32 query and templates, and with
        # v3's weights one box on Dog differed by 1.1e-3 px (frame 14, y; the rest below 2.4e-4).
        # Ignoring the query in the ONNX path still misses by whole pixels.
        assert np.abs(outs[0] - outs[1]).max() < 2e-3


def test_auto_falls_back_to_torch_without_onnxruntime_and_onnx_then_refuses(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` raises ImportError
    fresh = load_model("sstrack-lite")  # not exported before in this process
    assert Tracker(fresh, device="cpu").backend == "torch"
    with pytest.raises(InputError, match="ONNX Runtime backend is unavailable"):
        Tracker(fresh, device="cpu", backend="onnx")
    with pytest.raises(InputError, match="choose auto, torch or onnx"):
        Tracker(fresh, device="cpu", backend="tensorrt")


def test_torch_glue_runs_on_one_thread_while_onnx_runtime_gets_the_cores(model, sot_dir, monkeypatch):
    """A busy machine (issue 18): torch's OpenMP threads wait on a descheduled peer at every small
    op, so the tracker's glue runs on one torch thread and ONNX Runtime keeps the count the caller
    set; torch's count is back afterwards, also when a step raises."""
    sequence = load_sequence(sot_dir / "Crossing")
    frames = [read_image(p) for p in sequence.frames[:3]]
    tracker = Tracker(model, device="cpu", backend="onnx")
    seen = []  # (torch's threads, the session's intra-op threads) at each network call
    forward = OnnxNetwork.__call__

    def spy(network, *args):
        out = forward(network, *args)
        seen.append((torch.get_num_threads(), network._threads))
        return out

    monkeypatch.setattr(OnnxNetwork, "__call__", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        states = [tracker.start(frames[0], sequence.ground_truth[0])]
        tracker.step(states, frames[1])
        assert seen and set(seen) == {(1, 2)}
        assert torch.get_num_threads() == 2
        assert tracker._onnx.threads is None  # outside a step, the sessions follow torch's count again
        with pytest.raises(InputError):
            tracker.step(states, frames[2][:, :, :2])  # not an RGB image
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
