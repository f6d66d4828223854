"""The motion prior chosen per video on the user's keyframes (trainer.window_choice, #15), with the
real shipped model on real frames: Football1's frames 51-67, where the official window jumps to
another player once."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from projects import Project
from sstrack import load_model, read_card
from sstrack.checkpoints import shipped_model_path
from sstrack.sequences import load_sequence
from trainer.adapt import ADAPT_RECIPE, adapt_video
from trainer.window_choice import MIN_PAIRS, WindowChoice, choose_window, keyframe_spans, write_with_window

FIRST = 50  # Football1's frame 51 (1-based) is this clip's frame 0
# From the true box on the clip's frame 8, the official window is on another player at frame 11
# (IoU 0.07 with the truth there on this machine) and the squared one is not (0.77). The other
# spans track alike (within 0.01).
JUMP = (2, 5, 8, 11, 14)
# Spans where both windows land alike: the squared one is ahead by under 0.01 on average.
ALIKE = ((2, 5, 8), (11, 14))


@pytest.fixture(scope="module")
def football(sot_dir, tmp_path_factory):
    """Football1's frames 51-67 as a video of their own in a project; (project, video id, truth)."""
    whole = load_sequence(sot_dir / "Football1")
    folder = tmp_path_factory.mktemp("football") / "img"
    folder.mkdir()
    for path in whole.frames[FIRST : FIRST + 17]:
        shutil.copyfile(path, folder / path.name)
    truth = whole.ground_truth[FIRST : FIRST + 17]
    with Project.create(folder.parent / "p") as project:
        yield project, project.add_video(folder).id, truth


def _tracks(truth: np.ndarray, *objects: tuple[int, ...]) -> list[dict[int, tuple[float, ...]]]:
    return [{frame: tuple(map(float, truth[frame])) for frame in frames} for frames in objects]


def test_spans_are_each_objects_consecutive_keyframes_the_latest_by_their_end():
    a = {0: (1.0, 1.0, 5.0, 5.0), 10: (2.0, 2.0, 5.0, 5.0), 30: (3.0, 3.0, 5.0, 5.0)}
    b = {5: (9.0, 9.0, 4.0, 4.0), 20: (8.0, 8.0, 4.0, 4.0)}
    spans = keyframe_spans([a, b])
    assert [(s[0], s[2]) for s in spans] == [(0, 10), (5, 20), (10, 30)]  # never across objects
    assert spans[1][1] == b[5] and spans[1][3] == b[20]
    assert [(s[0], s[2]) for s in keyframe_spans([a, b], limit=2)] == [(5, 20), (10, 30)]


def test_the_squared_window_is_chosen_where_the_official_one_jumps_to_another_player(football):
    project, video_id, truth = football
    choice = choose_window(project, video_id, "sstrack-lite", _tracks(truth, JUMP))
    assert choice.current == 1.0 and choice.chosen == 2.0 and choice.changed and choice.spans == 4
    assert choice.scores[2.0] >= choice.scores[1.0] + 0.1
    assert "window power 1 -> 2" in choice.reason


def test_a_small_lead_keeps_the_window_the_video_has(football, tmp_path):
    project, video_id, truth = football
    choice = choose_window(project, video_id, "sstrack-lite", _tracks(truth, *ALIKE))
    assert choice.spans == 3 and 0.0 < choice.scores[2.0] - choice.scores[1.0] < 0.1
    assert choice.chosen == 1.0 and not choice.changed and "kept" in choice.reason
    # The same spans from a model on the squared window keep it there: no flip-flopping at a tie.
    squared = write_with_window("sstrack-lite", WindowChoice(1.0, 2.0, {}, 4, ""), tmp_path / "w2.safetensors")
    again = choose_window(project, video_id, squared, _tracks(truth, *ALIKE))
    assert again.current == 2.0 and again.chosen == 2.0


def test_too_few_spans_judge_nothing_and_track_nothing(football):
    project, video_id, truth = football

    def build(*_args):
        raise AssertionError("nothing should be tracked")

    choice = choose_window(project, video_id, "sstrack-lite", _tracks(truth, JUMP[:MIN_PAIRS]), build=build)
    assert not choice.changed and choice.spans == MIN_PAIRS - 1 and choice.scores == {}


def test_the_chosen_window_is_written_with_the_same_weights_and_the_parents_lineage(tmp_path):
    choice = WindowChoice(1.0, 2.0, {1.0: 0.5, 2.0: 0.7}, 4, "")
    out = write_with_window("sstrack-lite", choice, tmp_path / "m.safetensors")
    assert load_model(out).config.window_power == 2.0
    shipped = load_file(str(shipped_model_path("sstrack-lite")))
    mine = load_file(str(out))
    assert shipped.keys() == mine.keys() and all(torch.equal(shipped[k], mine[k]) for k in shipped)
    card, parent = read_card(out), read_card(shipped_model_path("sstrack-lite"))
    assert card["config"]["window_power"] == 2.0 and card["window_choice"]["to"] == 2.0
    assert card["training"] == parent["training"] and card["review_predictor"] == parent["review_predictor"]
    assert "metrics" not in card  # measured on the parent's window, not true of this one
    assert json.loads(json.dumps(card)) == card


@pytest.mark.slow
def test_a_round_whose_weights_are_discarded_still_adopts_a_better_window(football, tmp_path):
    """The app's round: the wrecked fine-tune is refused by the gate, then the window is chosen on the keyframes."""
    project, video_id, truth = football
    track = project.add_track(video_id, "player")
    for frame in JUMP:
        project.set_box(track.id, frame, truth[frame])
    wreck = ADAPT_RECIPE.replace(lr=1.0, pretrained_lr_multiplier=1.0, anchor_weight=0.0, batch_size=2, steps=2)
    result = adapt_video(project, video_id, "sstrack-lite", tmp_path / "round", budget_s=600, recipe=wreck)
    assert not result.tuned and "discarded" in result.reason
    assert result.accepted and result.window is not None and result.window.chosen == 2.0
    assert result.model == tmp_path / "round" / "model.safetensors" and load_model(result.model).config.window_power == 2.0
    assert not result.unlabelled  # chosen on labels: nothing to re-judge later
