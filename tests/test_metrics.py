"""OPE metrics against values computed by hand (docs/benchmarks.md §1), and TRE's pooled restarts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sstrack.evaluation import restart_frames, run_restarts
from sstrack.metrics import SUCCESS_THRESHOLDS, iou, mean_scores, score_sequence
from sstrack.sequences import Sequence


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


class _FrozenTracker:
    """Reports the box it was started with on every frame: its score depends only on where it starts."""

    name = "frozen"

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        self.box = np.asarray(box, dtype=np.float64)

    def update(self, image: np.ndarray) -> np.ndarray:
        return self.box


def _walking_sequence(frames: int, absent: set[int]) -> Sequence:
    truth = np.array([[2.0 * i, 0.0, 10.0, 10.0] for i in range(frames)])  # moves 2 px a frame
    flags = np.array([i in absent for i in range(frames)])
    return Sequence("walk", [Path(f"{i}.jpg") for i in range(frames)], truth, flags)


def test_restarts_start_spread_out_on_visible_frames():
    sequence = _walking_sequence(30, absent={10, 11})
    assert restart_frames(sequence, 1) == [0]
    assert restart_frames(sequence, 3) == [0, 12, 20]  # 10 and 11 are absent: the next visible frame


def test_restarts_pool_the_frames_of_every_run():
    sequence = _walking_sequence(30, absent={10, 11})
    images = [np.zeros((4, 4, 3), np.uint8)] * 30
    result = run_restarts(_FrozenTracker(), sequence, images, starts=3)
    assert len(result.boxes) == 30 + 18 + 10
    # By hand: each run's frozen box against the truth from its start on, pooled.
    boxes = np.concatenate([np.repeat(sequence.ground_truth[s][None], 30 - s, axis=0) for s in (0, 12, 20)])
    truth = np.concatenate([sequence.ground_truth[s:] for s in (0, 12, 20)])
    absent = np.concatenate([sequence.absent[s:] for s in (0, 12, 20)])
    assert np.allclose(result.boxes, boxes)
    assert result.scores.auc == pytest.approx(score_sequence(boxes, truth, absent).auc)
    # One start (OPE) scores lower here: a frozen box is right only near where it started.
    assert run_restarts(_FrozenTracker(), sequence, images, starts=1).scores.auc < result.scores.auc
