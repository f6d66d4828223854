"""Shape calibration on the start frame (sstrack/calibration.py): the network's aspect error there
corrects its later boxes."""

from __future__ import annotations

import numpy as np
import pytest

from sstrack import Tracker, load_model
from sstrack.calibration import calibration_views, corrected, size_bias
from sstrack.sequences import load_sequence, read_image


def test_the_aspect_error_is_measured_and_undone_keeping_the_area():
    truth = np.array([10.0, 10.0, 20.0, 40.0])  # tall: w/h 0.5
    squarer = [np.array([0.0, 0.0, 28.0, 28.0])] * 4 + [np.array([0.0, 0.0, 100.0, 10.0])]  # one outlier view
    bias = size_bias(truth, squarer)
    box = corrected(np.array([100.0, 50.0, 28.0, 28.0]), bias)
    assert box[2] / box[3] == pytest.approx(0.5)  # the median view's error is undone
    assert box[2] * box[3] == pytest.approx(28.0 * 28.0)  # the size is the network's: only the shape is corrected
    assert (box[0] + box[2] / 2, box[1] + box[3] / 2) == pytest.approx((114.0, 64.0))  # same centre


def test_a_degenerate_prediction_cannot_make_slivers():
    # A broken model's zero-width boxes: the correction stays a bounded factor (8 in w/h).
    bias = size_bias(np.array([0.0, 0.0, 20.0, 20.0]), [np.array([0.0, 0.0, 0.0, 20.0])] * 5)
    box = corrected(np.array([0.0, 0.0, 20.0, 20.0]), bias)
    assert np.isfinite(box).all() and box[2] / box[3] == pytest.approx(8.0)


def test_the_views_are_the_box_and_four_small_moves_of_it():
    box = np.array([100.0, 100.0, 10.0, 40.0])
    views = calibration_views(box)
    assert len(views) == 5 and np.allclose(views[0], box)
    moves = [np.hypot(*(v[:2] - box[:2])) for v in views[1:]]
    assert moves == pytest.approx([0.1 * 20.0] * 4)  # 0.1 x sqrt(w*h)
    assert all(np.allclose(v[2:], box[2:]) for v in views)


@pytest.fixture(scope="module")
def crossing(sot_dir):
    seq = load_sequence(sot_dir / "Crossing")  # a tall pedestrian: the shipped network's boxes are squarer
    return seq, [read_image(p) for p in seq.frames[:30]]


def test_calibration_keeps_the_shipped_model_s_boxes_the_pedestrian_s_shape(crossing):
    seq, frames = crossing
    plain, calibrated = (_shipped_tracker(size_calibration=False), _shipped_tracker(size_calibration=True))
    states = {"plain": plain.start(frames[0], seq.ground_truth[0]), "calibrated": calibrated.start(frames[0], seq.ground_truth[0])}
    assert states["plain"].size_bias is None
    assert np.isfinite(states["calibrated"].size_bias).all()
    errors: dict[str, list[float]] = {"plain": [], "calibrated": []}
    for i, frame in enumerate(frames[1:], start=1):
        truth = seq.ground_truth[i]
        for name, tracker in (("plain", plain), ("calibrated", calibrated)):
            (box, _), = tracker.step([states[name]], frame)
            errors[name].append(abs(np.log(box[2] / box[3]) - np.log(truth[2] / truth[3])))
    # The aspect error over 29 frames: the plain network's squarer boxes drift from the person's shape.
    assert np.mean(errors["calibrated"]) < 0.6 * np.mean(errors["plain"])


def _shipped_tracker(**overrides: object) -> Tracker:
    model = load_model("sstrack-lite")
    model.config = model.config.replace(**overrides)
    return Tracker(model, device="cpu")
