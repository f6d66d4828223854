"""The motion prior's strength (ModelConfig.window_power): the Hann window on the score map, raised
to a power, keeps the box from jumping to a distractor a few cells away."""

from __future__ import annotations

import numpy as np
import pytest

from sstrack import Tracker, load_model
from sstrack.metrics import iou
from sstrack.sequences import load_sequence, read_image
from sstrack.tracker import hann_window


@pytest.fixture(scope="module")
def trackers() -> dict[float, Tracker]:
    """The shipped model with the official window (1) and with it squared (2)."""
    made = {}
    for power in (1.0, 2.0):
        model = load_model("sstrack-lite")
        model.config = model.config.replace(window_power=power)
        made[power] = Tracker(model, device="cpu")
    return made


def test_the_window_is_the_official_hann_raised_to_the_power(trackers):
    for power, tracker in trackers.items():
        assert np.allclose(tracker._window.numpy(), hann_window(tracker.config.search_grid) ** power, atol=1e-6)


def test_a_stronger_prior_stays_on_the_player_where_the_official_window_jumps(sot_dir, trackers):
    # Football1 from its true box on frame 59 (1-based): with the official window the shipped
    # network's arg-max moves to another player on frames 61 and 62 (IoU 0.15, 0.07 on this
    # machine); squared, the window keeps it on the player (0.84, 0.77). Real model, real frames.
    seq = load_sequence(sot_dir / "Football1")
    start, frames = 58, [read_image(seq.frames[k]) for k in range(58, 62)]
    overlaps = {}
    for power, tracker in trackers.items():
        state = tracker.start(frames[0], seq.ground_truth[start])
        boxes = [tracker.step([state], image)[0][0] for image in frames[1:]]
        overlaps[power] = iou(np.asarray(boxes), seq.ground_truth[start + 1 : start + 4])
    assert overlaps[1.0][1:].max() < 0.3, overlaps  # the jump this test is about still happens
    assert overlaps[2.0].min() > 0.6, overlaps


def test_the_peak_score_is_the_network_s_not_the_window_s(sot_dir, trackers):
    # The window picks the cell; the score reported (and read by the absence watch and the review
    # queue) is the network's own at that cell, so a still target scores alike under either power.
    seq = load_sequence(sot_dir / "Crossing")
    frames = [read_image(p) for p in seq.frames[:3]]
    scores = {}
    for power, tracker in trackers.items():
        state = tracker.start(frames[0], seq.ground_truth[0])
        scores[power] = [tracker.step([state], image)[0][1] for image in frames[1:]]
    assert scores[2.0] == pytest.approx(scores[1.0], abs=1e-6)
