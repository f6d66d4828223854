"""Fusion of the two directions between keyframes (projects.propagate._fuse), without a tracker."""

from __future__ import annotations

import numpy as np

from projects.propagate import Span, _fuse
from projects.store import BoxRecord

# A backward pass from the keyframe at frame 20 over 19..11, meeting boxes tracked forward from 10.
BACKWARD = Span(track_id=1, keyframe=20, first=19, last=11, step=-1, opposite=10)


def forward_box(frame: int, box: tuple[float, float, float, float], score: float = 0.8) -> BoxRecord:
    return BoxRecord(1, frame, *box, source="tracked", score=score)


def test_near_each_keyframe_its_own_direction_wins():
    forward = (100.0, 100.0, 40.0, 40.0)
    backward = np.array([104.0, 100.0, 40.0, 40.0])  # overlapping: blended
    near_forward, _ = _fuse(forward_box(11, forward), BACKWARD, 11, backward, 0.8)
    near_backward, _ = _fuse(forward_box(19, forward), BACKWARD, 19, backward, 0.8)
    assert abs(near_forward[0] - 100.0) < abs(near_forward[0] - 104.0)
    assert abs(near_backward[0] - 104.0) < abs(near_backward[0] - 100.0)


def test_in_the_middle_equal_trust_averages():
    box, score = _fuse(forward_box(15, (100.0, 100.0, 40.0, 40.0)), BACKWARD, 15, np.array([104.0, 100.0, 40.0, 40.0]), 0.8)
    assert np.allclose(box, [102.0, 100.0, 40.0, 40.0]) and score == 0.8


def test_disagreeing_boxes_are_not_averaged_the_more_trusted_is_kept():
    forward = forward_box(15, (100.0, 100.0, 40.0, 40.0), score=0.9)
    elsewhere = np.array([300.0, 100.0, 40.0, 40.0])  # IoU 0: one of them is on a distractor
    box, score = _fuse(forward, BACKWARD, 15, elsewhere, 0.3)
    assert tuple(box) == forward.box and score == 0.9
    box, score = _fuse(forward_box(15, (100.0, 100.0, 40.0, 40.0), score=0.2), BACKWARD, 15, elsewhere, 0.9)
    assert tuple(box) == (300.0, 100.0, 40.0, 40.0) and score == 0.9
