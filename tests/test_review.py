"""The failure predictor (sstrack.review): its signals, fitting, and a synthetic failure found."""

from __future__ import annotations

import numpy as np

from sstrack.review import FEATURES, FailurePredictor, failure_features, fit_predictor


def synthetic_track(rng: np.random.Generator, fail: tuple[int, int] | None, frames: int = 120):
    """A box drifting smoothly (score ~0.6); inside `fail` it sits on the background (score ~0.3)."""
    t = np.arange(frames)
    boxes = np.stack([200 + 0.8 * t, 150 + 0.3 * t, np.full(frames, 60.0), np.full(frames, 90.0)], 1) + rng.normal(0, 0.5, (frames, 4))
    scores = np.clip(rng.normal(0.6, 0.05, frames), 0.05, 0.99)
    failed = np.zeros(frames, bool)
    if fail is not None:
        a, b = fail
        boxes[a:b] = [500.0, 60.0, 35.0, 40.0] + rng.normal(0, 0.5, (b - a, 4))  # jumped onto background, other shape
        scores[a:b] = np.clip(rng.normal(0.3, 0.05, b - a), 0.05, 0.99)
        failed[a:b] = True
    manual = np.zeros(frames, bool)
    manual[0] = True
    return failure_features(boxes, scores, manual, 640, 360), failed


def test_features_of_a_steady_track_show_no_jump():
    features, _ = synthetic_track(np.random.default_rng(0), None)
    assert features.shape == (120, len(FEATURES))
    jump = features[1:, FEATURES.index("centre_jump")]
    assert jump.max() < 0.1 and np.all(features[:, FEATURES.index("inside")] > 0.999)


def test_the_predictor_flags_a_box_moved_onto_the_background_and_not_the_frames_around_it():
    rng = np.random.default_rng(1)
    train = [synthetic_track(rng, (40 + 7 * k, 55 + 7 * k)) for k in range(6)] + [synthetic_track(rng, None) for _ in range(3)]
    predictor = fit_predictor(np.vstack([f[1:] for f, _ in train]), np.concatenate([y[1:] for _, y in train]), 0.09)  # about the failure share
    features, failed = synthetic_track(rng, (70, 82))
    flags = predictor.flags(features)
    assert flags[70:82].mean() > 0.8  # the failure is found ...
    assert not flags[60:69].any() and not flags[84:95].any()  # ... and its neighbours are left alone


def test_a_card_entry_round_trips_and_a_bad_one_is_ignored():
    rng = np.random.default_rng(2)
    features, failed = synthetic_track(rng, (30, 50))
    predictor = fit_predictor(features[1:], failed[1:], 0.2)
    again = FailurePredictor.from_dict(predictor.to_dict())
    assert again is not None and np.allclose(again.probability(features), predictor.probability(features))
    assert FailurePredictor.from_dict({**predictor.to_dict(), "features": ["score"]}) is None  # other signals
    assert FailurePredictor.from_dict({**predictor.to_dict(), "threshold": 7}) is None
    assert FailurePredictor.from_dict("not a dict") is None


def test_an_exit_cut_shows_the_object_leaving_real_frames(sot_dir, tmp_path):
    """benchmarks.review --exits: Crossing seen through a window the walker leaves (absent truth)."""
    from benchmarks.review import exit_sequence
    from sstrack.sequences import load_sequence, read_image

    sequence = load_sequence(sot_dir / "Crossing")
    cut = exit_sequence(sequence, tmp_path / "cut")
    assert cut is not None and len(cut.frames) == len(sequence.frames)
    height, width = read_image(cut.frames[0]).shape[:2]
    assert width < read_image(sequence.frames[0]).shape[1]
    assert 10 <= cut.absent.sum() < len(cut.absent) - 10 and not cut.absent[0]
    shown = cut.ground_truth[~cut.absent]
    assert np.all(shown[:, 0] >= 0) and np.all(shown[:, 0] + shown[:, 2] <= width + 1e-6)
    assert np.all(shown[:, 1] >= 0) and np.all(shown[:, 1] + shown[:, 3] <= height + 1e-6)


def test_frames_to_look_at_counts_the_steps_to_each_missed_failure():
    """Flagged frames + for each failure not flagged, its distance back to the last flag (or the keyframe)."""
    from benchmarks.review import queue_quality

    failed = np.zeros(12, bool)
    failed[[3, 4, 9]] = True
    flags = np.zeros(12, bool)
    flags[[3, 6]] = True
    nothing = np.zeros(12, bool)
    data = {"failed": failed, "absent": nothing, "written_absent": nothing, "entering": nothing, "absent_as_box": nothing}
    quality = queue_quality(flags, data)
    assert quality["frames_to_look_at"] == 2 + (4 - 3) + (9 - 6)
    assert quality["recall"] == 1 / 3 and quality["precision"] == 1 / 2


def test_a_box_left_on_the_background_looks_unlike_its_keyframe(sot_dir):
    """look_similarity on real frames of Crossing: the walker a few frames on vs a patch of road beside him."""
    from sstrack.review import key_look, look_similarity
    from sstrack.sequences import load_sequence, read_image

    sequence = load_sequence(sot_dir / "Crossing")
    key = key_look(read_image(sequence.frames[0]), sequence.ground_truth[0])
    later = read_image(sequence.frames[5])
    on_target = look_similarity(later, sequence.ground_truth[5], key)
    beside = look_similarity(later, sequence.ground_truth[5] + np.array([60.0, 0, 0, 0]), key)
    assert on_target is not None and beside is not None
    assert on_target > 0.5 and beside < on_target - 0.3
    assert look_similarity(later, (-50.0, -50.0, 10.0, 10.0), key) is None  # nothing inside the frame
    assert look_similarity(later, sequence.ground_truth[5], None) is None


def test_a_grey_frame_gives_the_same_look_as_its_colour_frame(sot_dir):
    """The engine keeps a gone object's last frame grey (a third of the memory); its looks must not change."""
    import cv2

    from sstrack.review import key_look
    from sstrack.sequences import load_sequence, read_image

    sequence = load_sequence(sot_dir / "Crossing")
    image = read_image(sequence.frames[3])
    box = sequence.ground_truth[3]
    colour = key_look(image, box)
    grey = key_look(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), box)
    assert colour is not None and grey is not None
    np.testing.assert_array_equal(grey, colour)
