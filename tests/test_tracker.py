"""Inference tracker: batching, memory selection, input errors, real frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sstrack import InputError, Tracker, load_model
from sstrack.sequences import load_sequence, read_image
from sstrack.tracker import hann_window, select_memory


@pytest.fixture(scope="module")
def crossing(sot_dir):
    seq = load_sequence(sot_dir / "Crossing")
    return seq, [read_image(p) for p in seq.frames[:10]]


@pytest.fixture(scope="module")
def lite_tracker():
    torch.manual_seed(0)
    return Tracker(load_model("sstrack-lite:random"), device="cpu")


def test_batched_step_equals_single_steps(crossing, lite_tracker):
    seq, frames = crossing
    boxes = [seq.ground_truth[0], np.array([50, 60, 40, 80.0]), np.array([200, 100, 30, 30.0])]
    batched = [lite_tracker.start(frames[0], b) for b in boxes]
    for frame in frames[1:8]:
        # From identical states, one batched forward gives what three single forwards give.
        # (Compared step by step: an untrained model amplifies float32 rounding, ~1e-4 px,
        # into different paths over several frames.)
        singles = [s.copy() for s in batched]
        together = lite_tracker.step(batched, frame)
        alone = [lite_tracker.step([s], frame)[0] for s in singles]
        for (box_a, score_a), (box_b, score_b) in zip(together, alone):
            np.testing.assert_allclose(box_a, box_b, atol=1e-2)
            assert score_a == pytest.approx(score_b, abs=1e-4)
    assert [s.frame_id for s in batched] == [7, 7, 7]
    assert len(batched[0].memory) == 8


def test_targets_started_at_different_frames_batch_together(crossing, lite_tracker):
    seq, frames = crossing
    early = lite_tracker.start(frames[0], seq.ground_truth[0])
    lite_tracker.step([early], frames[1])
    late = lite_tracker.start(frames[1], np.array([40, 40, 50, 50.0]))
    results = lite_tracker.step([early, late], frames[2])
    assert len(results) == 2 and all(np.isfinite(b).all() for b, _ in results)
    assert (early.frame_id, late.frame_id) == (2, 1)


def test_official_memory_selection():
    assert select_memory(1, 1, 3) == [0]
    assert select_memory(3, 3, 3) == [0, 1, 2]
    assert select_memory(5, 5, 3) == [0, 1, 2]
    assert select_memory(6, 6, 3) == [0, 1, 3, 5]
    assert select_memory(100, 100, 3) == [0, 16, 49, 82]
    assert select_memory(10, 10, 0) == [0]


def test_memory_is_bounded(crossing):
    seq, frames = crossing
    tracker = Tracker(load_model("sstrack-lite:random"), device="cpu", memory_capacity=6)
    state = tracker.start(frames[0], seq.ground_truth[0])
    for i in range(25):
        tracker.step([state], frames[1 + i % 9])
    assert len(state.memory) <= 7
    assert state.memory_ids[0] == 0 and state.memory_ids[-1] == 25
    assert len(state.token_cache) <= tracker.config.template_number + 1


def test_hann_window_is_centred_without_zeros():
    window = hann_window(16)
    assert window.min() > 0 and window.shape == (16, 16)
    assert np.allclose(window, window[::-1, ::-1])


def test_bad_boxes_and_images_are_refused(crossing, lite_tracker):
    _, frames = crossing
    height, width = frames[0].shape[:2]
    with pytest.raises(InputError, match="outside the .* frame"):
        lite_tracker.start(frames[0], (width + 5, 10, 20, 20))
    with pytest.raises(InputError, match="no area"):
        lite_tracker.start(frames[0], (10, 10, 0, 20))
    with pytest.raises(InputError, match="finite"):
        lite_tracker.start(frames[0], (np.nan, 10, 20, 20))
    with pytest.raises(InputError, match="RGB uint8"):
        lite_tracker.start(frames[0].astype(np.float32), (10, 10, 20, 20))
    # Partly outside: clipped to the frame.
    state = lite_tracker.start(frames[0], (-10, -10, 40, 40))
    np.testing.assert_allclose(state.box, [0, 0, 30, 30])


def test_cpu_auto_device_runs_fp32(lite_tracker):
    if not torch.cuda.is_available():
        assert lite_tracker.device.type == "cpu" and lite_tracker.precision == "fp32"


def test_device_crops_track_as_opencv_crops(sot_dir):
    # The GPU tracker crops on the device (sstrack/frame_crops.py); run that path here on the CPU
    # with the shipped model: one step from the truth lands where the OpenCV-crop path lands, to
    # a small fraction of a pixel, and the template memory stays on the device as uint8.
    seq = load_sequence(sot_dir / "Crossing")
    frames = [read_image(p) for p in seq.frames[:31]]
    model = load_model("sstrack-lite")
    host = Tracker(model, device="cpu", backend="torch", crops="host")
    device = Tracker(model, device="cpu", backend="torch", crops="device")
    worst = 0.0
    for i in range(0, 30, 6):
        ours, theirs = device.start(frames[i], seq.ground_truth[i]), host.start(frames[i], seq.ground_truth[i])
        for frame in frames[i + 1 : i + 3]:
            (box_a, score_a), (box_b, score_b) = device.step([ours], frame)[0], host.step([theirs], frame)[0]
            worst = max(worst, float(np.abs(np.subtract(box_a, box_b)).max()))
            assert score_a == pytest.approx(score_b, abs=5e-3)
            ours.box, ours.query = theirs.box.copy(), theirs.query  # compare steps, not drift
    assert worst < 0.1
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.uint8 for t in ours.memory)
    assert device._device_crops and not host._device_crops  # "auto" picks OpenCV on the CPU
    assert not Tracker(model, device="cpu", backend="torch")._device_crops
    with pytest.raises(InputError, match="CUDA graphs need a CUDA device"):
        Tracker(model, device="cpu", cuda_graphs=True)


def test_a_graph_that_cannot_be_captured_runs_op_by_op_and_says_so(caplog):
    # CUDA graphs (sstrack/cuda_graphs.py) must never stop tracking: where a capture fails (here:
    # host tensors, which a graph cannot hold, on any machine), the call logs why once and runs
    # the function itself, with the same results, from then on.
    from sstrack.cuda_graphs import CudaGraphCall

    calls = []

    def double(x: torch.Tensor) -> tuple[torch.Tensor]:
        calls.append(x.shape)
        return (x * 2,)

    graphed = CudaGraphCall(double, None)
    x = torch.arange(6.0).reshape(2, 3)
    with caplog.at_level("WARNING", logger="sstrack.cuda_graphs"):
        (first,) = graphed(x)
        (second,) = graphed(x + 1)
    torch.testing.assert_close(first, x * 2)
    torch.testing.assert_close(second, (x + 1) * 2)
    assert graphed.failure and "CUDA tensors only" in graphed.failure
    assert calls == [(2, 3), (2, 3)]  # once per call: no warm-up or capture ran it
    assert len([r for r in caplog.records if "CUDA graphs are off" in r.getMessage()]) == 1


def test_a_device_the_machine_lacks_is_a_one_line_error():
    # `--device cuda` on a machine without a GPU used to end in torch's driver traceback.
    model = load_model("sstrack-lite:random")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no usable CUDA GPU; use auto or cpu"):
            Tracker(model, device="cuda")
    with pytest.raises(InputError, match="not a device name"):
        Tracker(model, device="gpu0")
