"""benchmarks.tightness: the one-step figures mean what docs/benchmarks.md §5 says."""

from __future__ import annotations

import numpy as np

from benchmarks.ope import model_labels
from benchmarks.tightness import start_frames, tightness


def test_perfect_and_biased_predictions():
    truth = np.array([[10, 10, 20, 40], [50, 60, 30, 30]], dtype=float)
    perfect = tightness(truth.copy(), truth)
    assert perfect["iou_mean"] == 1.0 and perfect["centre_error"] == 0.0 and perfect["log_w_mean"] == 0.0
    wider = truth.copy()
    wider[:, 0] -= wider[:, 2] * 0.05
    wider[:, 2] *= 1.1  # same centre, 10% wider: a pure width bias
    biased = tightness(wider, truth)
    assert abs(biased["log_w_mean"] - np.log(1.1)) < 1e-9 and biased["log_h_mean"] == 0.0
    assert biased["centre_error"] < 1e-9 and abs(biased["iou_mean"] - 1 / 1.1) < 1e-9
    shifted = truth + np.array([5, 0, 0, 0])
    assert abs(tightness(shifted, truth)["centre_error"] - np.mean(5 / np.sqrt(truth[:, 2] * truth[:, 3]))) < 1e-9


def test_start_frames_skip_absent_and_need_a_next_frame():
    gt = np.tile([1.0, 1.0, 5.0, 5.0], (40, 1))
    absent = np.zeros(40, bool)
    absent[[3, 10]] = True
    starts = start_frames(gt, absent, count=15)
    assert len(starts) == 15 and all(s not in (2, 3, 9, 10, 39) for s in starts)
    assert starts == sorted(starts)


def test_models_with_the_same_file_name_get_their_own_columns():
    labels = model_labels(["sstrack-lite", "runs/a/model.safetensors", "runs/b/model.safetensors"])
    assert labels == ["sstrack-lite", "a/model", "b/model"]
    assert model_labels(["sstrack-lite", "runs/off/sstrack-lite.safetensors"]) == ["sstrack-lite", "off/sstrack-lite"]
