"""Pixel refinement (sstrack/refine.py) on real frames: it finds a known shift and scale, and it
leaves the network's box alone where nothing matches."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from benchmarks.tightness import one_step, start_frames
from sstrack import Tracker, load_model
from sstrack.config import get_config
from sstrack.evaluation import OursSingle
from sstrack.metrics import iou
from sstrack.refine import network_vouches, observe, refine
from sstrack.sequences import load_sequence, read_image

CONFIG = get_config("sstrack-lite", refine_side=32, refine_rate=1.0, refine_scale_step=1.0, refine_size_weight=1.0)


@pytest.fixture(scope="module")
def frame_and_box(sot_dir):
    sequence = load_sequence(sot_dir / "Deer")
    return read_image(sequence.frames[0]), sequence.ground_truth[0].astype(np.float64)


def _warp(image: np.ndarray, scale: float, shift: tuple[float, float], about: tuple[float, float]) -> np.ndarray:
    """`image` scaled by `scale` about the point `about`, then moved by `shift` (px)."""
    ax, ay = about
    matrix = np.array([[scale, 0, ax - scale * ax + shift[0]], [0, scale, ay - scale * ay + shift[1]]])
    return cv2.warpAffine(image, matrix, (image.shape[1], image.shape[0]), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _centre(box: np.ndarray) -> np.ndarray:
    return np.array([box[0] + box[2] / 2, box[1] + box[3] / 2])


@pytest.mark.parametrize("shift", [(1.2, -3.7), (-3.7, 1.2)])
def test_a_known_shift_is_found_to_a_fraction_of_a_pixel(frame_and_box, shift):
    image, box = frame_and_box
    moved = _warp(image, 1.0, shift, (0.0, 0.0))
    appearance = observe(image, box, CONFIG, None)
    # The network's box is off by 6 px in x and 3.7 in y; the refinement must find the true place.
    # The search is centred on the network's box and sampled at 0.41 px per image px here, so the
    # truth lies 2.46 and 1.52 sampled px away: a whole-pixel peak (no sub-pixel fit) would be
    # off by over 1 px.
    network = box + np.array([shift[0] + 6, shift[1] - 3.7, 0, 0])
    refined, match = refine(moved, network, box, appearance, CONFIG)
    error = np.abs(_centre(refined) - (_centre(box) + np.array(shift)))
    # Measured at most 0.1 px.
    assert match > 0.9 and error.max() < 0.25
    assert np.allclose(refined[2:], box[2:])  # centre only: the size is the network's


def test_a_known_scale_is_found_when_sizes_are_searched(frame_and_box):
    image, box = frame_and_box
    grown = _warp(image, 1.05, (0.0, 0.0), tuple(_centre(box)))
    config = CONFIG.replace(refine_scale_step=1.05, refine_size_weight=0.0)
    refined, _ = refine(grown, box, box, observe(image, box, config, None), config)
    assert np.allclose(refined[2:] / box[2:], 1.05, atol=0.01)
    assert np.abs(_centre(refined) - _centre(box)).max() < 1.0


def test_nothing_to_match_leaves_the_network_box(frame_and_box):
    image, box = frame_and_box
    blank = np.full_like(image, 127)
    network = box + np.array([7.0, 3.0, 2.0, -1.0])
    refined, _ = refine(blank, network, box, observe(image, box, CONFIG, None), CONFIG)
    assert np.array_equal(refined, network)


def test_appearance_follows_at_its_rate(frame_and_box):
    image, box = frame_and_box
    old = observe(image, box, CONFIG, None)
    black = np.zeros_like(image)
    half = observe(black, box, CONFIG.replace(refine_rate=0.5), old)
    assert np.allclose(half.patch, old.patch * 0.5, atol=1e-3)


def test_refinement_tightens_the_shipped_model_one_step_on_real_frames(sot_dir):
    # benchmarks.tightness on Crossing (15 starts, 1 thread): the v2 network alone 0.704, with the
    # shipped card's refinement 0.780; this holds it to a clear gain.
    torch.set_num_threads(1)
    crossing = load_sequence(sot_dir / "Crossing")
    frames = [read_image(p) for p in crossing.frames]
    starts = start_frames(crossing.ground_truth, crossing.absent)
    truth = crossing.ground_truth[[i + 1 for i in starts]]
    model = load_model("sstrack-lite")
    overlaps = {}
    for side in (0, 32):
        model.config = model.config.replace(refine_side=side)
        tracker = OursSingle(Tracker(model, device="cpu"), f"refine {side}")
        overlaps[side] = float(iou(one_step(tracker, frames, crossing.ground_truth, starts), truth).mean())
    assert overlaps[32] > overlaps[0] + 0.05, overlaps


def test_the_network_vouches_only_for_cells_it_scores_near_its_peak():
    config = CONFIG.replace(refine_vouch=0.5)  # lite: search 192 px, 12x12 map, 16 px cells
    score_map = np.zeros((12, 12), np.float32)
    score_map[5, 6] = 0.8  # the peak: x in [96, 112), y in [80, 96)
    score_map[5, 7] = 0.5
    score_map[5, 5] = 0.3

    def at(cx: float, cy: float) -> np.ndarray:
        return np.array([cx - 10, cy - 10, 20, 20])

    assert network_vouches(score_map, at(100, 90), config, 0.8)
    assert network_vouches(score_map, at(113, 90), config, 0.8)  # 0.5 >= 0.5 x 0.8
    assert not network_vouches(score_map, at(95, 90), config, 0.8)  # 0.3 < 0.4
    assert not network_vouches(score_map, at(100, 97), config, 0.8)  # the cell below scores 0
    assert network_vouches(score_map, at(-50, 400), config.replace(refine_vouch=0.0), 0.8)  # clamped to the map
