"""OPE metrics against values computed by hand (docs/benchmarks.md §1)."""

from __future__ import annotations

import numpy as np
import pytest

from sstrack.metrics import SUCCESS_THRESHOLDS, iou, mean_scores, score_sequence


def test_pixel_inclusive_iou_by_hand():
    # Boxes 10x10 at (0,0) and (5,0): inclusive right edges 9 and 14 -> overlap columns 5..9 = 5.
    assert iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 10, 10]]))[0] == pytest.approx(50 / 150)
    # Touching boxes overlap by nothing; identical boxes by 1.
    assert iou(np.array([[0, 0, 10, 10]]), np.array([[10, 0, 10, 10]]))[0] == 0.0
    assert iou(np.array([[3, 4, 7, 9]]), np.array([[3, 4, 7, 9]]))[0] == 1.0


def test_thresholds_are_the_21_of_the_toolkits():
    assert len(SUCCESS_THRESHOLDS) == 21 and SUCCESS_THRESHOLDS[0] == 0 and SUCCESS_THRESHOLDS[-1] == 1


def test_success_precision_and_normalised_precision_by_hand():
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 100, 100], [0, 0, 0, 0]], float)
    pred = np.array([[0, 0, 10, 10], [5, 0, 10, 10], [30, 0, 10, 10], [0, 0, 100, 100], [50, 50, 5, 5]], float)
    absent = np.array([0, 0, 0, 1, 0])
    s = score_sequence(pred, gt, absent)
    # Frame 4 is absent and frame 5 has an empty ground truth: 3 frames count.
    assert s.frames == 3
    # IoUs 1, 1/3, 0. Success(t) = #(IoU > t)/3: t=0 -> 2/3; t in (0, 1/3) -> 2/3 ... t >= 1/3 -> 1/3; t=1 -> 0.
    ious = np.array([1.0, 50 / 150, 0.0])
    expected_curve = np.array([(ious > t).sum() / 3 for t in np.linspace(0, 1, 21)])
    np.testing.assert_allclose(s.success_curve, expected_curve)
    assert s.auc == pytest.approx(expected_curve.mean())
    # Centre errors 0, 5, 30 px -> precision@20 = 2/3; normalised 0, 0.5, 3 -> @0.2 = 1/3.
    assert s.precision == pytest.approx(2 / 3)
    assert s.norm_precision == pytest.approx(1 / 3)
    means = mean_scores([s, s])
    assert means["auc"] == pytest.approx(100 * s.auc)
