"""Adaptation to the video being labelled (#15): keyframe pairs, the anchor, the never-worse gate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from projects import Project
from sstrack import Tracker, load_model
from sstrack.config import get_config
from sstrack.sequences import load_sequence
from trainer import ClipSpec, TrainConfig, adapt_cli, finetune
from trainer.adapt import (
    ADAPT_RECIPE,
    GateScores,
    VideoVerdict,
    adapt_video,
    first_taken_back,
    hold_out_latest,
    recheck_unlabelled,
    trained_boxes,
    unseen_pairs,
    verdict,
)
from trainer.clips import keyframe_tracks, load_clips
from trainer.loop import snapshot_path
from trainer.samples import SampleMaker

TINY = dict(embed_dim=32, depth=1, num_heads=1, head_channels=32, template_size=64, search_size=128)


# A round that wrecks the model: a huge rate, nothing holding it to the base.
WRECK = ADAPT_RECIPE.replace(lr=1.0, pretrained_lr_multiplier=1.0, anchor_weight=0.0, batch_size=2)


def _walker(project, sequence, keyframes):
    """`sequence`'s video in `project` with its true boxes on `keyframes`; (video, track)."""
    video = project.add_video(sequence.frames[0].parent)
    track = project.add_track(video.id, "walker")
    for frame in keyframes:
        project.set_box(track.id, frame, sequence.ground_truth[frame])
    return video, track


def _crossing_start(sot_dir, folder, frames):
    """Crossing's first `frames` frames as a sequence of their own: the gate tracks the whole video,
    so a short one keeps these real-frame tests to seconds."""
    whole = load_sequence(sot_dir / "Crossing")
    (folder / "img").mkdir(parents=True)
    for path in whole.frames[:frames]:
        shutil.copyfile(path, folder / "img" / path.name)
    np.savetxt(folder / "groundtruth.txt", whole.ground_truth[:frames], fmt="%g", delimiter=",")
    return load_sequence(folder)


def _square_video(folder, positions, side=40):
    """An image folder: a white square at `positions[i]` on frame i, on noise."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index, (x, y) in enumerate(positions):
        image = rng.integers(0, 90, (240, 320, 3), dtype=np.uint8)
        image[y : y + side, x : x + side] = 255
        cv2.imwrite(str(folder / f"{index:04d}.png"), image)
    return folder


def test_a_keyframe_pair_searches_the_objects_other_keyframes_with_their_true_boxes(tmp_path):
    positions = [(20 + 20 * i, 30 + 12 * i) for i in range(10)]
    folder = _square_video(tmp_path / "img", positions)
    keys = {0: (20.0, 30.0, 40.0, 40.0), 5: (120.0, 90.0, 40.0, 40.0), 9: (200.0, 138.0, 40.0, 40.0)}
    clips = load_clips([ClipSpec(folder, tracks=(keys,))], 512, 10)
    assert sorted(clips[0].initial_boxes) == [0, 5, 9] and clips[0].user_boxes
    cfg = get_config("sstrack-lite", **TINY)
    maker = SampleMaker(clips, cfg, TrainConfig(ctp_ratio=0.0, pair_ratio=1.0))
    for index in range(6):
        sample = maker.make(3, index)
        assert bool(sample["known_boxes"])
        for frame, box in zip(sample["global_frames"], sample["global_boxes"]):
            ys, xs = np.nonzero(frame[..., 0] > 200)  # the square, after flips and resizing
            found = np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]) / frame.shape[0]
            np.testing.assert_allclose(found, box, atol=2.5 / frame.shape[0])


def test_without_pairs_a_run_draws_exactly_the_samples_it_always_did(tmp_path):
    folder = _square_video(tmp_path / "img", [(20 + 20 * i, 30) for i in range(10)])
    keys = {0: (20.0, 30.0, 40.0, 40.0), 5: (120.0, 30.0, 40.0, 40.0)}
    cfg = get_config("sstrack-lite", **TINY)
    plain = SampleMaker(load_clips([ClipSpec(folder, {0: keys[0], 5: keys[5]})], 512, 10), cfg, TrainConfig())
    with_tracks = SampleMaker(load_clips([ClipSpec(folder, tracks=(keys,))], 512, 10), cfg, TrainConfig())
    for index in range(4):
        a, b = plain.make(1, index), with_tracks.make(1, index)
        assert all(np.array_equal(a[k], b[k]) for k in a)


def test_the_anchor_keeps_the_weights_near_the_base(tmp_path, videos_dir):
    torch.manual_seed(0)
    from sstrack import save_model
    from sstrack.model import build_model

    base = tmp_path / "tiny.safetensors"
    save_model(build_model(get_config("sstrack-lite", **TINY)), base)
    train = TrainConfig(batch_size=2, workers=0, warmup_steps=0, lr=1e-2, checkpoint_every=10**9, proposal_stride=20)
    distances = {}
    for weight in (0.0, 100.0):
        model = finetune([videos_dir / "tree.avi"], base, tmp_path / f"run{weight}", steps=4, train=train.replace(anchor_weight=weight))
        tuned, start = load_model(model).state_dict(), load_model(base).state_dict()
        distances[weight] = sum(float((tuned[k] - start[k]).pow(2).sum()) for k in start if tuned[k].is_floating_point())
    assert distances[100.0] < 0.5 * distances[0.0]


def test_the_latest_keyframe_of_an_object_with_three_is_held_out():
    tracks = [{0: (1, 1, 5, 5), 10: (2, 2, 5, 5), 30: (3, 3, 5, 5)}, {4: (0, 0, 9, 9), 8: (1, 0, 9, 9)}]
    training, held = hold_out_latest(tracks)
    assert training == [{0: (1, 1, 5, 5), 10: (2, 2, 5, 5)}, tracks[1]]
    assert held == [(10, (2, 2, 5, 5), 30, (3, 3, 5, 5))]
    # Asked for more, an object keeps its first two keyframes to train on; each held-out
    # keyframe is reached from the one before it.
    many = [{0: (1, 1, 5, 5), 10: (2, 2, 5, 5), 20: (3, 3, 5, 5), 30: (4, 4, 5, 5)}]
    training, held = hold_out_latest(many + tracks, per_object=3)
    assert training == [{0: (1, 1, 5, 5), 10: (2, 2, 5, 5)}, {0: (1, 1, 5, 5), 10: (2, 2, 5, 5)}, tracks[1]]
    assert held == [(10, (2, 2, 5, 5), 20, (3, 3, 5, 5)), (20, (3, 3, 5, 5), 30, (4, 4, 5, 5)), (10, (2, 2, 5, 5), 30, (3, 3, 5, 5))]


def test_held_out_keyframes_decide_and_forward_backward_consistency_guards():
    before = GateScores(0.70, 2, 0.80, 4)
    assert verdict(before, GateScores(0.75, 2, 0.80, 4))[0]
    assert verdict(before, GateScores(0.90, 2, 0.75, 4))[0]  # better on the labels, a little less consistent
    accepted, reason = verdict(before, GateScores(0.69, 2, 0.95, 4))
    assert not accepted and "worse on IoU at held-out keyframes" in reason
    accepted, reason = verdict(before, GateScores(0.90, 2, 0.60, 4))
    assert not accepted and "worse on forward-backward" in reason
    # The first round has no held-out keyframe: consistency alone; it may not fall at all, and it
    # must rise clearly, because one label-free continuation is noisy.
    first = GateScores(float("nan"), 0, 0.5, 1)
    assert verdict(first, GateScores(float("nan"), 0, 0.65, 1))[0]
    assert not verdict(first, GateScores(float("nan"), 0, 0.49, 1))[0]
    accepted, reason = verdict(first, GateScores(float("nan"), 0, 0.55, 1))
    assert not accepted and "no clear gain" in reason
    # Deer's first round at tau 0.7: flat from the keyframe, better further on; kept, it doubled the corrections.
    accepted, reason = verdict(GateScores(float("nan"), 0, 0.41, 1, 0.30, 2), GateScores(float("nan"), 0, 0.41, 1, 0.46, 2))
    assert not accepted and "no clear gain" in reason
    nothing = GateScores(float("nan"), 0, float("nan"), 0)
    assert not verdict(nothing, nothing)[0]
    # Better 15 frames on, lost further on (wakeboard7's first round: 0.56 -> 0.89, but 0.48 -> 0.43).
    accepted, reason = verdict(GateScores(float("nan"), 0, 0.56, 1, 0.48, 2), GateScores(float("nan"), 0, 0.89, 1, 0.43, 2))
    assert not accepted and "worse on forward-backward IoU far from the first keyframes" in reason
    assert verdict(GateScores(0.5, 2, 0.56, 4, 0.48, 2), GateScores(0.8, 2, 0.6, 4, 0.43, 2))[0]  # labels decide, within 0.1
    assert not verdict(GateScores(0.5, 2, 0.56, 4, 0.48, 2), GateScores(0.8, 2, 0.6, 4, 0.30, 2))[0]
    # One held-out keyframe is weak evidence too: Crossing's round 2 at tau 0.7 (stop 31's run). The
    # same round in stop 30 (0.57 -> 0.71 there) was kept and took Crossing from 10.8 to 14.2 boxes / 100 frames.
    accepted, reason = verdict(GateScores(0.57, 1, 0.59, 8, 0.67, 2), GateScores(0.69, 1, 0.58, 8, 0.57, 2))
    assert not accepted and "no clear gain with 1 held-out keyframe " in reason
    assert verdict(GateScores(0.71, 1, 0.47, 8, 0.69, 2), GateScores(0.74, 1, 0.66, 8, 0.63, 2))[0]  # MotorRolling's round 2
    # More consistent but still off the object at the one held-out keyframe: a model on a
    # distractor is consistent too (stop 35: Jogging-1's round 3, kept, made it worse). A loose box
    # on the object is not off it (MountainBike6's round 2 in the same run helped).
    accepted, reason = verdict(GateScores(0.02, 1, 0.42, 8, 0.80, 2), GateScores(0.13, 1, 0.70, 8, 0.74, 2))
    assert not accepted and "still off the object at the held-out keyframe" in reason
    assert verdict(GateScores(0.46, 1, 0.38, 4, 0.29, 2), GateScores(0.47, 1, 0.61, 4, 0.48, 2))[0]
    # A large gain at the held-out keyframe is the clear gain itself (Dog's round 2 in stop 35),
    # but the forward-backward guards still hold.
    assert verdict(GateScores(0.25, 1, 0.65, 4, 0.61, 2), GateScores(0.74, 1, 0.56, 4, 0.75, 2))[0]
    accepted, reason = verdict(GateScores(0.25, 1, 0.65, 4, 0.61, 2), GateScores(0.74, 1, 0.56, 4, 0.45, 2))
    assert not accepted and "far from the first keyframes" in reason
    accepted, reason = verdict(GateScores(0.48, 1, 0.59, 8, 0.61, 2), GateScores(0.62, 1, 0.60, 8, 0.61, 2))
    assert not accepted and "no clear gain" in reason  # +0.14 there is not enough alone


@pytest.mark.slow
def test_an_adapted_model_that_is_worse_on_held_out_keyframes_is_discarded(tmp_path, sot_dir):
    """A round that wrecks the model (a huge rate) is caught by the gate on real frames."""
    sequence = _crossing_start(sot_dir, tmp_path / "Crossing", 21)
    with Project.create(tmp_path / "p") as project:
        video, track = _walker(project, sequence, (0, 10, 20))
        project.set_box(track.id, 15, sequence.ground_truth[15] + 3, source="tracked", score=0.5)
        before = project.boxes(track.id)
        result = adapt_video(project, video.id, "sstrack-lite", tmp_path / "round", budget_s=600, recipe=WRECK.replace(steps=2),
                             early_steps=(1,))
        assert keyframe_tracks(project, video.id) == [{f: tuple(map(float, sequence.ground_truth[f])) for f in (0, 10, 20)}]
        assert project.boxes(track.id) == before  # adaptation reads the project, never writes it
    assert result.steps == 2 and result.model is None  # discarded: its files are gone, its record stays
    assert not (tmp_path / "round" / "model.safetensors").exists() and not (tmp_path / "round" / "checkpoints").exists()
    assert (tmp_path / "round" / "metrics.jsonl").is_file()
    assert result.before.held_out_pairs == 1 and result.before.held_out_iou > 0.5
    assert result.after.held_out_iou < result.before.held_out_iou
    assert not result.accepted and result.reason.startswith("discarded, worse on IoU at held-out keyframes")
    assert "; after 1 step: discarded, " in result.reason  # its earlier model was judged too, and failed
    assert not (tmp_path / "round" / "snapshots").exists()


def test_a_round_with_a_step_budget_makes_the_same_model_every_time(tmp_path, sot_dir):
    """`benchmarks.adapt --round-steps`: what a round learns must not depend on how busy the machine was."""
    sequence = _crossing_start(sot_dir, tmp_path / "Crossing", 21)
    keys = ({f: tuple(map(float, sequence.ground_truth[f])) for f in (0, 10, 20)},)
    spec = ClipSpec(sequence.frames[0].parent, tracks=keys)
    models = [finetune([spec], "sstrack-lite", tmp_path / f"round_{i}", train=ADAPT_RECIPE.replace(steps=2, batch_size=2),
                       max_seconds=float("inf")) for i in range(2)]
    first, second = (load_model(m).state_dict() for m in models)
    base = load_model("sstrack-lite").state_dict()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], base[k]) for k in first)  # and it did learn something


def test_a_snapshot_is_the_model_a_shorter_run_makes(tmp_path, sot_dir):
    """Early stopping needs the model as it was after k steps, not another run's model."""
    sequence = _crossing_start(sot_dir, tmp_path / "Crossing", 21)
    spec = ClipSpec(sequence.frames[0].parent, tracks=({f: tuple(map(float, sequence.ground_truth[f])) for f in (0, 10, 20)},))
    recipe = ADAPT_RECIPE.replace(batch_size=2)
    whole = finetune([spec], "sstrack-lite", tmp_path / "two", train=recipe.replace(steps=2), snapshots=(1, 2, 5))
    shorter = finetune([spec], "sstrack-lite", tmp_path / "one", train=recipe.replace(steps=1))
    assert sorted(p.parent.name for p in (tmp_path / "two" / "snapshots").glob("*/model.safetensors")) == ["step_0000001"]
    snapshot, one, two = (load_model(m).state_dict() for m in (snapshot_path(tmp_path / "two", 1), shorter, whole))
    assert all(torch.equal(snapshot[k], one[k]) for k in one)
    assert any(not torch.equal(snapshot[k], two[k]) for k in two)
    assert json.loads(snapshot_path(tmp_path / "two", 1).with_suffix(".json").read_text())["training"]["steps"] == 1


@pytest.mark.slow
def test_when_the_gate_discards_a_round_its_earlier_model_is_judged_and_can_be_kept(tmp_path, sot_dir):
    """Early stopping on the held-out keyframes (#15): the last model fails, the one after step 1 is judged next.

    Four keyframes with the latest two held out: a model as good as the current one there is kept.
    A real step at the wrecking rate is not: the tracker stands in the base model for the
    snapshot, the one thing this test fakes, to reach the branch that adopts it.
    """
    sequence = _crossing_start(sot_dir, tmp_path / "Crossing", 21)
    built = []

    def tracker(model):
        built.append(Path(model))
        return Tracker(load_model("sstrack-lite" if "snapshots" in Path(model).parts else model), device="cpu", backend="torch")

    with Project.create(tmp_path / "p") as project:
        video, _ = _walker(project, sequence, (0, 7, 14, 20))
        result = adapt_video(project, video.id, "sstrack-lite", tmp_path / "round", budget_s=600, recipe=WRECK.replace(steps=2),
                             make_tracker=tracker, held_out=2, early_steps=(1,))
    assert [p.parts[-2:] for p in built[1:]] == [("round", "model.safetensors"), ("step_0000001", "model.safetensors")]
    assert len(built) == 3  # the current model's scores are computed once, for both candidates
    assert result.accepted and result.steps == 1 and result.after.held_out_pairs == 2
    assert "after 1 step" in result.reason and "after 2: discarded, worse on IoU at held-out keyframes" in result.reason
    card = json.loads((tmp_path / "round" / "model.json").read_text())
    assert card["training"]["steps"] == 1 and result.model == tmp_path / "round" / "model.safetensors"
    assert not (tmp_path / "round" / "snapshots").exists()


def test_a_step_budget_under_one_is_a_usage_error(tmp_path, capsys):
    from benchmarks.adapt import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--round-steps", "0", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--round-steps must be at least 1" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["--early-steps", "6", "0", "--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2 and "--early-steps must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_keyframes_a_model_never_saw_are_paired_with_the_keyframe_before_them():
    trained = [{0: (1, 1, 5, 5)}]
    now = [{0: (1, 1, 5, 5), 12: (2, 2, 5, 5), 30: (3, 3, 5, 5)}, {5: (0, 0, 9, 9), 9: (1, 0, 9, 9)}]
    assert unseen_pairs(now, trained) == [(0, (1, 1, 5, 5), 12, (2, 2, 5, 5)), (12, (2, 2, 5, 5), 30, (3, 3, 5, 5)),
                                          (5, (0, 0, 9, 9), 9, (1, 0, 9, 9))]
    # A keyframe the user moved since is a new label; the ones trained on are not evidence.
    assert unseen_pairs([{0: (1, 1, 5, 5), 12: (2, 2, 6, 5)}], [{0: (1, 1, 5, 5), 12: (2, 2, 5, 5)}]) == [(0, (1, 1, 5, 5), 12, (2, 2, 6, 5))]
    assert unseen_pairs(trained, trained) == []


@pytest.mark.slow
def test_a_model_kept_without_labels_is_undone_when_the_next_keyframes_say_it_is_worse(tmp_path, sot_dir):
    """Football1's failure: a first round kept on consistency alone, wrong on the user's next boxes."""
    sequence = _crossing_start(sot_dir, tmp_path / "Crossing", 17)
    with Project.create(tmp_path / "p") as project:
        video, track = _walker(project, sequence, (0,))
        trained = keyframe_tracks(project, video.id)
        wrecked = finetune([ClipSpec(sequence.frames[0].parent, tracks=tuple(trained))], "sstrack-lite", tmp_path / "round", train=WRECK.replace(steps=2))
        assert recheck_unlabelled(project, video.id, wrecked, "sstrack-lite", trained) is None  # nothing new to judge by
        for frame in (8, 16):
            project.set_box(track.id, frame, sequence.ground_truth[frame])
        undone = recheck_unlabelled(project, video.id, wrecked, "sstrack-lite", trained)
        kept = recheck_unlabelled(project, video.id, "sstrack-lite", wrecked, trained)
    # The app's way in: `sstrack-adapt --recheck MODEL` reads what the round recorded beside the model.
    (wrecked.parent / "result.json").write_text(json.dumps(
        {"accepted": True, "model": str(wrecked), "base": "sstrack-lite", "unlabelled": True, "trained": [[[0, *map(float, sequence.ground_truth[0])]]]}))
    assert adapt_cli.main([str(tmp_path / "p"), "--video", "1", "--recheck", str(wrecked), "--out", str(tmp_path / "check")]) == 0
    verdict_file = json.loads((tmp_path / "check" / "result.json").read_text())
    assert verdict_file["model"] == "sstrack-lite" and not verdict_file["accepted"] and verdict_file["after"]["held_out_pairs"] == 2
    assert not undone.accepted and "undone" in undone.reason and undone.after.held_out_pairs == 2
    assert undone.before.held_out_iou > 0.5 > undone.after.held_out_iou
    assert kept.accepted and "confirmed" in kept.reason and kept.after.held_out_iou == undone.before.held_out_iou


def test_the_one_click_fine_tune_runs_the_adaptation_recipe():
    from trainer.cli import _train_config, build_parser

    args = build_parser().parse_args(["--data", "x", "--recipe", "adapt", "--batch-size", "4"])
    train, _ = _train_config(args)
    assert train.replace(batch_size=ADAPT_RECIPE.batch_size, checkpoint_every=ADAPT_RECIPE.checkpoint_every,
                         workers=ADAPT_RECIPE.workers) == ADAPT_RECIPE
    assert train.batch_size == 4 and train.checkpoint_every == TrainConfig().checkpoint_every  # resumable
    assert _train_config(build_parser().parse_args(["--data", "x"])) == (TrainConfig(), {})


def test_sstrack_adapt_refuses_bad_input_in_one_line(tmp_path, capsys, videos_dir):
    from trainer.adapt_cli import main

    assert main([str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    with Project.create(tmp_path / "empty"):
        pass
    assert main([str(tmp_path / "empty")]) == 2
    assert "no video yet" in capsys.readouterr().err
    with Project.create(tmp_path / "p") as project:
        project.add_video(videos_dir / "tree.avi")
    assert main([str(tmp_path / "p"), "--out", str(tmp_path / "round")]) == 0  # a round with nothing to learn from
    assert "draw one first" in capsys.readouterr().out
    assert '"accepted": false' in (tmp_path / "round" / "result.json").read_text()
    stray = tmp_path / "elsewhere" / "model.safetensors"  # a model no round wrote: nothing says what it replaced
    stray.parent.mkdir()
    stray.write_bytes(b"")
    assert main([str(tmp_path / "p"), "--recheck", str(stray)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(stray.parent / "result.json") in err and "not the result of an adaptation round" in err


def test_a_finished_round_keeps_only_the_adopted_model(tmp_path):
    from trainer.adapt import _keep_only_what_is_used

    for accepted in (True, False):
        out = tmp_path / str(accepted)
        (out / "checkpoints").mkdir(parents=True)
        for name in ("checkpoints/step_0000030.safetensors", "latest.json", "model.safetensors", "model.json", "metrics.jsonl", "run.json"):
            (out / name).write_text("x")
        _keep_only_what_is_used(out, accepted)
        left = sorted(p.name for p in out.iterdir())
        assert left == (["metrics.jsonl", "model.json", "model.safetensors", "run.json"] if accepted else ["metrics.jsonl", "run.json"])


def test_a_swapped_video_is_refused_before_any_training(tmp_path, capsys, videos_dir):
    import shutil

    from trainer.adapt_cli import main

    clip = tmp_path / "clip.avi"
    shutil.copy(videos_dir / "tree.avi", clip)
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(clip)
        project.set_box(project.add_track(video.id, "tree").id, 0, (100, 80, 60, 60))
    with open(clip, "ab") as handle:
        handle.write(b"another file now")
    assert main([str(tmp_path / "p"), "--out", str(tmp_path / "round")]) == 2
    assert "not the file" in capsys.readouterr().err and not (tmp_path / "round").exists()


def test_the_one_click_verdict_names_each_video_and_offers_the_model_only_where_it_is_not_worse():
    from app.finetune_run import per_video_summary

    gain, loss = GateScores(float("nan"), 0, 0.46, 1), GateScores(float("nan"), 0, 0.92, 1)
    verdicts = {1: VideoVerdict(*verdict(gain, loss), gain, loss), 2: VideoVerdict(*verdict(loss, gain), loss, gain)}
    adopt, text = per_video_summary(verdicts, {1: "jogging.mp4", 2: "bike.mp4"}, "sstrack-lite")
    assert adopt == [1]
    assert text.startswith("Not worse on 1 of 2 video(s): jogging.mp4 (forward-backward IoU from keyframes 0.46 -> 0.92 (1))")
    assert "Kept the current model on: bike.mp4 (discarded, worse on forward-backward IoU" in text
    assert per_video_summary({}, {}, "sstrack-lite")[0] == []


def test_keyframes_a_round_read_are_reported_when_changed_deleted_or_split_meanwhile(tmp_path, videos_dir):
    from projects.track_edits import split_track
    from trainer.adapt import AdaptResult

    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        tree, wrong = project.add_track(video.id, "tree"), project.add_track(video.id, "wrong")
        for frame, box in ((0, (100, 80, 60, 60)), (40, (104, 82, 60, 60)), (67, (106, 83, 60, 60))):
            project.set_box(tree.id, frame, box)
        project.set_box(wrong.id, 20, (10, 10, 30, 30))
        tracks = keyframe_tracks(project, video.id)
        training, _ = hold_out_latest(tracks)  # frame 67 is held out to judge the round
        result = AdaptResult(None, False, "", None, None, 0.0, 0, tuple(training), tuple(tracks))
        # What a round writes in result.json, read back as the app reads it.
        read = trained_boxes(json.loads(json.dumps(adapt_cli.result_dict(result, "sstrack-lite")))["read"])
        assert first_taken_back(project, video.id, read) is None
        project.set_box(tree.id, 55, (105, 83, 60, 60))  # a keyframe drawn since: nothing taken back
        assert first_taken_back(project, video.id, read) is None
        project.set_box(tree.id, 67, (150, 83, 60, 60))  # the held-out keyframe, corrected
        assert first_taken_back(project, video.id, read) == 67
        project.set_box(tree.id, 67, (106, 83, 60, 60))
        with project.edit("split"):
            split_track(project, tree.id, 30)  # frames 1-30 and 31- are two objects now
        # The new part holds most of them (41, 68); where it differs from what the round read is frame 1.
        assert first_taken_back(project, video.id, read) == 0
    with Project.create(tmp_path / "q") as project:
        video = project.add_video(videos_dir / "tree.avi")
        tree, wrong = project.add_track(video.id, "tree"), project.add_track(video.id, "wrong")
        project.set_box(tree.id, 0, (100, 80, 60, 60))
        project.set_box(wrong.id, 20, (10, 10, 30, 30))
        read = keyframe_tracks(project, video.id)
        project.delete_track(wrong.id)  # the wrong object, deleted with its keyframe
        assert first_taken_back(project, video.id, read) == 20
    with pytest.raises(TypeError):
        trained_boxes({"0": [1, 2, 3, 4]})


def test_a_round_stops_when_its_app_is_gone_even_behind_a_launcher():
    from trainer.adapt_cli import app_gone

    assert not app_gone(os.getpid(), os.getppid())  # the app (here: this test) is alive
    assert app_gone(os.getpid(), os.getppid() + 1)  # handed to another parent
    if os.name == "posix":
        ended = subprocess.Popen([sys.executable, "-c", "pass"])
        ended.wait()  # reaped: no process has its pid now
        assert app_gone(ended.pid, os.getppid())  # a launcher between app and round outlived the app


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_round_whose_app_is_gone_stops_with_its_checkpoint_and_no_result(tmp_path, videos_dir):
    """The app killed without closing (SIGTERM at logout, SIGKILL): its round stops as when the app closes."""
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "tree")
        project.set_box(track.id, 0, (100, 80, 60, 60))
        project.set_box(track.id, 40, (104, 82, 60, 60))
    out = tmp_path / "round"
    # A stand-in for the app: it starts the round as app/adapt_run.py does, waits until it trains, and exits.
    app = (
        "import subprocess, sys, time, os, pathlib\n"
        f"out = pathlib.Path({str(out)!r})\n"
        "child = subprocess.Popen([sys.executable, '-m', 'trainer.adapt_cli', sys.argv[1], '--video', '1', '--seconds', '120',"
        " '--threads', '1', '--out', str(out), '--parent-pid', str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n"
        "print(child.pid, flush=True)\n"
        "while not ((out / 'metrics.jsonl').is_file() and (out / 'metrics.jsonl').read_text().strip()):\n"
        "    assert child.poll() is None, 'the round ended before it trained'\n"
        "    time.sleep(0.2)\n"
        "os._exit(0)  # no cleanup: as a killed app leaves it\n"
    )
    done = subprocess.run([sys.executable, "-c", app, str(tmp_path / "p")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert done.returncode == 0, done.stderr
    pid = int(done.stdout.split()[0])

    def alive() -> bool:  # reparented, it may stay a zombie where nothing reaps orphans
        try:
            with open(f"/proc/{pid}/stat") as stat:
                return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
        except FileNotFoundError:
            return False

    deadline = time.monotonic() + 90  # the budget was 120 s of training
    while alive() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(), "the round went on training after its app was gone"
    assert not (out / "result.json").exists()
    latest = json.loads((out / "latest.json").read_text())
    assert (out / latest["weights"]).is_file()  # the checkpoint is kept, as when the app closes
