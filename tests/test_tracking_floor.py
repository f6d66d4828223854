"""Floors on what the shipped model does on real frames, so a broken tracker fails the suite.

Each test tracks a real labelled sequence of ../shared/data/sot with the shipped sstrack-lite
and holds it to a floor well under what it measures today (figures in the comments, 1 thread),
and far above what a plausible bug gives (swapping x and y in the decoded centre: figures too).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from benchmarks.tightness import one_step, start_frames
from projects import Project, propagate
from sstrack import Tracker, load_model
from sstrack.evaluation import OursSingle
from sstrack.metrics import iou
from sstrack.sequences import load_sequence, read_image


@pytest.fixture(scope="module")
def tracker():
    torch.set_num_threads(1)
    return Tracker(load_model("sstrack-lite"), device="cpu")


@pytest.fixture(scope="module")
def crossing(sot_dir):
    return load_sequence(sot_dir / "Crossing")


def test_one_step_from_the_truth_overlaps_it(tracker, crossing):
    frames = [read_image(p) for p in crossing.frames]
    starts = start_frames(crossing.ground_truth, crossing.absent)
    predicted = one_step(OursSingle(tracker, "sstrack-lite"), frames, crossing.ground_truth, starts)
    overlap = float(iou(predicted, crossing.ground_truth[[i + 1 for i in starts]]).mean())
    # Today 0.780 (v2 with the card's pixel refinement; the network alone 0.704, v1 0.687); with x
    # and y of the score-map peak swapped 0.634 with v1 (near the crop centre a swap moves little,
    # and the refinement repairs small misplacements: the propagation test below catches it).
    assert overlap > 0.7


def test_propagation_in_a_project_follows_the_object(tmp_path, tracker, sot_dir):
    bag = load_sequence(sot_dir / "bag")
    with Project.create(tmp_path / "proj") as proj:
        video = proj.add_video(bag.frames[0].parent)
        track = proj.add_track(video.id, "bag")
        proj.set_box(track.id, 0, tuple(float(v) for v in bag.ground_truth[0]))
        list(propagate(proj, video.id, tracker, direction="forward"))
        boxes = np.array([r.box for r in proj.boxes(track.id)])
    overlap = iou(boxes, bag.ground_truth)
    # Today mean 0.654 and 93.4% of frames above 0.5 (v2 with the card's pixel refinement; the
    # network alone 0.701 and 99.5%: the bag deforms, and the matched appearance loosens the box);
    # with x and y of the peak swapped 0.015 and 1.5% (v1).
    assert len(boxes) == len(bag.ground_truth)
    assert overlap.mean() > 0.55 and (overlap > 0.5).mean() > 0.8
