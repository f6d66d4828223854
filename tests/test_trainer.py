"""Trainer: exact augmentation targets, losses, learning on a fixed batch, resume, bad input."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import default_collate

from sstrack import CheckpointError, load_model, save_model
from sstrack.boxes import xywh_iou
from sstrack.config import get_config
from sstrack.model import build_model
from trainer import ClipSpec, NoUsableClipsError, TrainConfig, finetune
from trainer.actors import SSTrackStep
from trainer.augment import hflip, paste_patch, shear, view_of
from trainer.autobox import propose_boxes
from trainer.clips import Clip, corrupted_frames, load_clips
from trainer.losses import box_mask, nt_xent
from trainer.samples import SampleMaker, clip_weights

TINY = dict(embed_dim=32, depth=1, num_heads=1, head_channels=32, template_size=64, search_size=128)


@pytest.fixture()
def tiny_base(tmp_path):
    """A tiny lite model saved as a base checkpoint (ImageNet-free, random)."""
    torch.manual_seed(0)
    model = build_model(get_config("sstrack-lite", **TINY))
    path = tmp_path / "tiny.safetensors"
    save_model(model, path)
    return path


def _bright_box(image):
    ys, xs = np.nonzero(image[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], float)


def test_view_target_follows_the_augmentation_exactly(rng):
    """A drawn white square: after jitter-crop, shear and flip the target box is the square's box."""
    image = np.zeros((360, 480, 3), np.uint8)
    square = np.array([200.0, 140.0, 60.0, 60.0])
    image[140:200, 200:260] = 255
    edges = lambda b: np.array([b[0], b[1], b[0] + b[2], b[1] + b[3]])  # noqa: E731
    fully_inside = 0
    for _ in range(40):
        view, target = view_of(image, square, 4.0, 192, rng, 0.5, 3.0, (0, 0, 0))
        view, target = shear(view, target, rng)
        if rng.uniform() < 0.5:
            view, target = hflip(view, target)
        found, expected = edges(_bright_box(view)), edges(target)
        if expected.min() >= 0 and expected.max() <= 192:
            fully_inside += 1
            np.testing.assert_allclose(found, expected, atol=1.5)
        else:  # partly outside the view: what is visible lies within the target box
            assert (found[:2] >= expected[:2] - 1.5).all() and (found[2:] <= expected[2:] + 1.5).all()
    assert fully_inside >= 10


def test_paste_box_is_exact(rng):
    image = np.zeros((240, 320, 3), np.uint8)
    patch = np.full((30, 40, 3), 255, np.uint8)
    for _ in range(10):
        out, box = paste_patch(image, patch, rng, scale=0.25)
        np.testing.assert_allclose(_bright_box(out), box)


def test_contrastive_loss_is_lowest_for_identical_views():
    torch.manual_seed(0)
    feats = torch.randn(8, 16)
    same = nt_xent(feats, feats)
    swapped = nt_xent(feats, feats[torch.randperm(8)])
    noisy = nt_xent(feats, feats + 0.5 * torch.randn(8, 16))
    assert same < noisy < swapped


def test_box_mask_covers_the_box_not_its_lower_right_quarter():
    mask = box_mask(torch.tensor([[0.5, 0.5, 0.5, 0.5]]), 8).view(8, 8)
    assert mask.sum() == 16 and mask[2:6, 2:6].all()  # cells 2..5 in both axes, centred


def test_autobox_finds_a_distinct_object_and_a_moving_one(rng):
    image = np.clip(np.full((240, 320, 3), 120.0) + rng.normal(0, 5, (240, 320, 3)), 0, 255).astype(np.uint8)
    image[100:160, 200:250] = (200, 40, 40)
    best = propose_boxes(image)[0]
    assert xywh_iou(best, [200, 100, 50, 60]) > 0.5
    background = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    patch = rng.integers(0, 255, (50, 40, 3), dtype=np.uint8)
    first, later = background.copy(), background.copy()
    first[60:110, 50:90] = patch
    later[64:114, 58:98] = patch
    assert xywh_iou(propose_boxes(first, later)[0], [50, 60, 40, 50]) > 0.4


def test_autobox_window_shapes_are_settable(rng):
    """A standing person's shape (w/h 0.35) is found only when tall windows are among the shapes tried."""
    image = np.clip(np.full((240, 320, 3), 120.0) + rng.normal(0, 5, (240, 320, 3)), 0, 255).astype(np.uint8)
    image[60:180, 150:192] = (200, 40, 40)
    default = propose_boxes(image)[0]
    tall = propose_boxes(image, aspects=(0.35, 0.6, 1.0, 1.7))[0]
    assert default[2] / default[3] >= 0.55 and abs(tall[2] / tall[3] - 0.35) < 0.05
    assert xywh_iou(tall, [150, 60, 42, 120]) > xywh_iou(default, [150, 60, 42, 120])


def test_silent_corruption_is_detected(videos_dir):
    from sstrack.video import decode_frames

    def grays(name):
        frames = decode_frames(videos_dir / name)
        return [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (64, 48), interpolation=cv2.INTER_AREA) for f in frames]

    assert len(corrupted_frames(grays("Megamind_bugy.avi"))) == 5
    assert corrupted_frames(grays("Megamind.avi")) == []


def test_damaged_videos_are_skipped_with_a_warning(videos_dir, caplog):
    sources = [ClipSpec(videos_dir / "Megamind_bugy.avi"), ClipSpec(videos_dir / "damaged" / "truncated_bedroom.mp4"), ClipSpec(videos_dir / "tree.avi")]
    with caplog.at_level(logging.WARNING):
        clips = load_clips(sources, 256, 20)
    assert [c.name for c in clips] == [str(videos_dir / "tree.avi")]
    text = caplog.text
    assert "Megamind_bugy.avi" in text and "corrupted" in text and "truncated_bedroom.mp4" in text


def test_no_usable_clip_names_the_sources(videos_dir, tmp_path, tiny_base):
    with pytest.raises(NoUsableClipsError, match="empty.mp4"):
        finetune([videos_dir / "damaged" / "empty.mp4"], tiny_base, tmp_path / "run", steps=1)


def test_base_model_that_does_not_fit_fails_before_training(tmp_path, videos_dir):
    bad = tmp_path / "bad.safetensors"
    model = build_model(get_config("sstrack-lite", **TINY))
    save_model(model, bad)
    (tmp_path / "bad.json").write_text((tmp_path / "bad.json").read_text().replace('"embed_dim": 32', '"embed_dim": 48'))
    with pytest.raises(CheckpointError, match="bad.safetensors"):
        finetune([videos_dir / "tree.avi"], bad, tmp_path / "run", steps=1)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_without_pyav_training_decodes_with_opencv_and_says_so(videos_dir, monkeypatch, caplog):
    # A stock GPU image (trainer/recipes/sstrack_lite_gpu_budget.sh) has OpenCV but not PyAV.
    (exact,) = load_clips([ClipSpec(videos_dir / "tree.avi")], 256, 10)
    monkeypatch.setitem(sys.modules, "av", None)  # import av now fails, as where it is not installed
    with caplog.at_level(logging.WARNING):
        (fallback,) = load_clips([ClipSpec(videos_dir / "tree.avi")], 256, 10)
    assert "PyAV is not installed" in caplog.text and "tree.avi" in caplog.text
    assert len(fallback) == len(exact) and (fallback.width, fallback.height) == (exact.width, exact.height)
    difference = [np.abs(fallback.frame(i).astype(int) - exact.frame(i).astype(int)).mean() for i in (0, len(exact) // 2, len(exact) - 1)]
    assert max(difference) < 3.0  # the same pictures; colour conversion and JPEG differ by a level or two


def test_footage_without_boxes_gets_proposals_of_the_shapes_asked_for(videos_dir):
    (clip,) = load_clips([ClipSpec(videos_dir / "tree.avi")], 256, 10, aspects=(0.4,))
    shapes = [box[2] / box[3] for boxes in clip.initial_boxes.values() for box in boxes]
    assert shapes and all(abs(a - 0.4) < 0.1 for a in shapes)  # window sides are rounded to pixels


def _fixed_batch(videos_dir, cfg, train):
    clips = load_clips([ClipSpec(videos_dir / "tree.avi")], 256, 10)
    maker = SampleMaker(clips, cfg, train)
    return default_collate([maker.make(0, i) for i in range(4)])


def test_training_steps_reduce_the_loss_on_a_fixed_batch(videos_dir, tiny_base):
    torch.manual_seed(0)
    model = load_model(tiny_base).train()
    train = TrainConfig(batch_size=4)
    batch = _fixed_batch(videos_dir, model.config, train)
    step = SSTrackStep(model, train)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        loss, stats = step(batch, global_active=True)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(stats["loss"])
    assert np.isfinite(losses).all()
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])


def test_a_step_runs_under_bf16_autocast(videos_dir, tiny_base):
    """CUDA training runs under bf16 autocast; CPU autocast exercises the same dtype paths here."""
    torch.manual_seed(0)
    model = load_model(tiny_base).train()
    train = TrainConfig(batch_size=4)
    batch = _fixed_batch(videos_dir, model.config, train)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, stats = SSTrackStep(model, train)(batch, global_active=True)
    loss.backward()
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    assert all(np.isfinite(v) for k, v in stats.items() if k != "fwd_ctp_iou")


def test_sample_shapes_and_ctp_targets(videos_dir):
    cfg = get_config("sstrack-lite", **TINY)
    train = TrainConfig(batch_size=4, ctp_ratio=1.0)
    clips = load_clips([ClipSpec(videos_dir / "tree.avi")], 256, 10)
    sample = SampleMaker(clips, cfg, train).make(7, 3)
    assert sample["template"].shape == (64, 64, 3)
    assert sample["views"].shape == (2, 128, 128, 3) and sample["view_boxes"].shape == (2, 4)
    assert sample["global_search"].shape == (3, 128, 128, 3) and sample["global_frames"].shape == (3, 256, 256, 3)
    assert bool(sample["known_boxes"]) and (sample["global_boxes"][:, 2:] > 0).all()
    # Deterministic: the same (seed, index) gives the same sample.
    again = SampleMaker(clips, cfg, train).make(7, 3)
    assert all(np.array_equal(sample[k], again[k]) for k in sample)


def test_resume_reproduces_the_uninterrupted_run(videos_dir, tmp_path, tiny_base):
    train = TrainConfig(batch_size=2, workers=0, checkpoint_every=2, warmup_steps=2, proposal_stride=20)
    sources = [videos_dir / "tree.avi"]
    straight = finetune(sources, tiny_base, tmp_path / "a", steps=4, train=train)
    calls = {"n": 0}

    def stop_after_two() -> bool:
        calls["n"] += 1
        return calls["n"] == 3

    with pytest.raises(KeyboardInterrupt):
        finetune(sources, tiny_base, tmp_path / "b", steps=4, train=train, should_stop=stop_after_two)
    assert (tmp_path / "b" / "latest.json").exists()
    resumed = finetune(sources, tiny_base, tmp_path / "b", steps=4, train=train, resume=True)
    a, b = load_model(straight).state_dict(), load_model(resumed).state_dict()
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6), key
    lines = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in lines] == [1, 2, 3, 4]


def test_user_boxes_become_initial_boxes(videos_dir):
    (clip,) = load_clips([ClipSpec(videos_dir / "tree.avi", {5: (10.0, 20.0, 30.0, 40.0)})], 1000, 10)
    assert isinstance(clip, Clip) and clip.user_boxes
    assert list(clip.initial_boxes) == [5]
    np.testing.assert_allclose(clip.initial_boxes[5][0], [10, 20, 30, 40])


def test_a_project_folder_is_a_source_with_its_manual_boxes(tmp_path, videos_dir):
    from projects import Project
    from trainer.clips import expand_sources

    with Project.create(tmp_path / "proj") as project:
        video = project.add_video(videos_dir / "tree.avi")
        a, b = project.add_track(video.id, "a"), project.add_track(video.id, "b")
        project.set_box(a.id, 4, (10, 20, 30, 40))
        project.set_box(b.id, 4, (100, 50, 20, 20))
        project.set_box(a.id, 9, (12, 20, 30, 40), source="tracked", score=0.9)
        project.set_flags(b.id, 20, out_of_view=True)
    (spec,) = expand_sources([tmp_path / "proj"])
    assert spec.path == videos_dir.resolve() / "tree.avi"
    assert spec.boxes == {4: [(10, 20, 30, 40), (100, 50, 20, 20)]}
    assert spec.tracks == ({4: (10, 20, 30, 40)}, {4: (100, 50, 20, 20)})  # per object: keyframe pairs
    (clip,) = load_clips([spec], 1000, 10)
    assert len(clip.initial_boxes[4]) == 2 and clip.user_boxes


def test_resume_refuses_mixed_checkpoints_and_survives_a_torn_metrics_line(videos_dir, tmp_path, tiny_base):
    # Issue 19: a latest.json mixing step-4 weights with step-2 state resumed silently; a partial
    # last metrics line blocked resume with a JSON error naming no file.
    import json

    from trainer.loop import TrainingError

    train = TrainConfig(batch_size=2, workers=0, checkpoint_every=2, warmup_steps=2, proposal_stride=20)
    sources = [videos_dir / "tree.avi"]
    run = tmp_path / "run"
    finetune(sources, tiny_base, run, steps=4, train=train)
    pointer = json.loads((run / "latest.json").read_text())
    mixed = {**pointer, "state": pointer["state"].replace("0000004", "0000002")}
    assert mixed != pointer and (run / mixed["state"]).exists()
    (run / "latest.json").write_text(json.dumps(mixed))
    with pytest.raises(TrainingError, match="step 4.*step 2"):
        finetune(sources, tiny_base, run, steps=6, train=train, resume=True)
    (run / "latest.json").write_text(json.dumps(pointer))
    with open(run / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 5, "loss": 1.')  # killed mid-write
    finetune(sources, tiny_base, run, steps=6, train=train, resume=True)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5, 6]


def test_a_time_budget_saves_a_resumable_model_and_resume_finishes_the_run(videos_dir, tmp_path, tiny_base):
    """`max_seconds` (sstrack-train --max-minutes, a lent GPU's fixed time) stops like the end of a run."""
    train = TrainConfig(batch_size=2, workers=0, checkpoint_every=100, warmup_steps=2, proposal_stride=20)
    sources = [videos_dir / "tree.avi"]
    out = tmp_path / "run"
    first = finetune(sources, tiny_base, out, steps=50, train=train, max_seconds=0.0)
    card = load_model(first)  # a complete model file, loadable
    assert card is not None
    done = [int(line.split('"step": ')[1].split(",")[0]) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert done == [1]  # a budget of 0 s stops after the first step, with its checkpoint
    finetune(sources, tiny_base, out, steps=3, train=train, resume=True)
    done = [int(line.split('"step": ')[1].split(",")[0]) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert done == [1, 2, 3]


def _clip(name: str, initial_frames: int, user: bool) -> Clip:
    box = [np.array([1.0, 1.0, 4.0, 4.0])]
    return Clip(name, [b""] * 100, 16, 16, {10 * i: box for i in range(initial_frames)}, user)


def test_user_box_share_sets_how_often_real_boxes_are_drawn():
    clips = [_clip("real_a", 1, True), _clip("real_b", 1, True), _clip("auto_a", 30, False), _clip("auto_b", 68, False)]
    by_frames = clip_weights(clips)
    np.testing.assert_allclose(by_frames, [0.01, 0.01, 0.30, 0.68])
    shared = clip_weights(clips, 0.5)
    np.testing.assert_allclose(shared, [0.25, 0.25, 0.5 * 30 / 98, 0.5 * 68 / 98])
    # Only one kind of clip: the share has nothing to split.
    np.testing.assert_allclose(clip_weights(clips[2:], 0.5), [30 / 98, 68 / 98])
    for bad, given in ((1.0, clips), (-0.2, clips[2:])):  # refused even where there is nothing to split
        with pytest.raises(ValueError, match="user_box_share"):
            clip_weights(given, bad)
    with pytest.raises(ValueError, match="user_box_share"):  # before any footage is decoded
        TrainConfig().replace(user_box_share=2.0)


def test_repeated_set_options_add_up_and_the_last_value_wins():
    from trainer.cli import _train_config, build_parser

    args = build_parser().parse_args(
        ["--data", "x.mp4", "--set", "lr=1e-4", "autobox_aspects=[0.4,1.0]", "--set", "user_box_share=0.5", "lr=2e-5"]
    )
    config, given = _train_config(args)
    assert given == {"lr": 2e-5, "autobox_aspects": [0.4, 1.0], "user_box_share": 0.5}
    assert (config.lr, tuple(config.autobox_aspects), config.user_box_share) == (2e-5, (0.4, 1.0), 0.5)


def test_a_new_run_never_writes_into_a_folder_that_holds_anything(videos_dir, tmp_path, tiny_base):
    """A new run into a finished run's folder replaced its model silently; into the user's folder it
    overwrote their files; and its first checkpoint pruned its own as "older" than the last run's."""
    from trainer.loop import TrainingError

    train = TrainConfig(batch_size=2, workers=0, checkpoint_every=100, warmup_steps=2, proposal_stride=20)
    sources = [videos_dir / "tree.avi"]
    out = tmp_path / "run"
    finetune(sources, tiny_base, out, steps=1, train=train)
    finished = (out / "model.safetensors").read_bytes()
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("my notes")
    for folder, first in ((out, "checkpoints"), (mine, "notes.txt")):
        with pytest.raises(TrainingError, match=rf"{folder}: already holds {first} .*choose another --out, or add --resume"):
            finetune(sources, tiny_base, folder, steps=1, train=train)
    assert (out / "model.safetensors").read_bytes() == finished and sorted(p.name for p in mine.iterdir()) == ["notes.txt"]


def test_a_folder_that_links_back_to_itself_is_one_clip_per_video(tmp_path, videos_dir):
    """One link back made one video 41 clips; two such links walked 2^40 paths (a hang)."""
    from trainer.clips import expand_sources

    folder = tmp_path / "footage"
    folder.mkdir()
    shutil.copy(videos_dir / "tree.avi", folder / "tree.avi")
    (folder / "again").symlink_to(".")
    (folder / "once_more").symlink_to(".")
    (folder / "same.avi").symlink_to(folder / "tree.avi")
    (spec,) = expand_sources([folder])  # the video once, whichever of its names came first
    assert Path(spec.path).resolve() == (folder / "tree.avi").resolve()


def test_hostile_boxes_files_are_one_line_errors_and_unmatched_keys_are_refused(tmp_path, videos_dir, capsys):
    """--boxes: a FIFO hung, /dev/zero filled memory, odd JSON gave tracebacks, and boxes keyed by
    another spelling of the video were dropped without a word (the run trained on automatic boxes)."""
    import json
    import os

    from trainer.cli import main

    video = str(videos_dir / "tree.avi")
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    cases = {
        fifo: "not a regular file",
        Path("/dev/zero"): "not a regular file",
        "list": "--boxes must be",
        "nan": "a box is x, y, w, h with w and h above 0",
        "three": "a box is x, y, w, h",
        "word": "not a frame number and four numbers",
        "deep": "not readable JSON (RecursionError)",
        "other spelling": "'tree.avi' is not one of the --data files",
    }
    contents = {
        "list": [[1, 2, 3, 4]], "nan": {video: {"0": [1, 2, float("nan"), 4]}}, "three": {video: {"0": [1, 2, 3]}},
        "word": {video: {"first": [1, 2, 3, 4]}}, "other spelling": {"tree.avi": {"0": [10, 10, 40, 40]}},
    }
    for case, expected in cases.items():
        path = case if isinstance(case, Path) else tmp_path / f"{case.replace(' ', '_')}.json"
        if case == "deep":
            path.write_text("[" * 100_000 + "]" * 100_000)
        elif isinstance(case, str):
            path.write_text(json.dumps(contents[case], allow_nan=True))
        args = ["--data", video, "--boxes", str(path), "--base", "sstrack-lite:random", "--out", str(tmp_path / "run"), "--steps", "1"]
        if isinstance(case, Path):  # a child with a time limit: were the check gone, this would hang the suite
            done = subprocess.run([sys.executable, "-m", "trainer.cli", *args], capture_output=True, text=True, timeout=120)
            code, err = done.returncode, done.stderr.strip().splitlines()[-1]
        else:
            code, err = main(args), capsys.readouterr().err.strip()
        assert code == 2 and expected in err and str(path) in err and "\n" not in err, (case, err)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("setting, value", [
    ("batch_size", 10**9), ("workers", 1000), ("checkpoint_every", 0), ("grad_clip", -1.0), ("steps", -1),
    ("frame_side", 0), ("lr", float("nan")), ("ctp_ratio", "x"), ("autobox_aspects", (0.0,)), ("batch_size", True),
])
def test_training_settings_out_of_range_are_refused_before_any_work(setting, value):
    """Batch 10^9 and 1000 workers exhausted memory; checkpoint_every 0 crashed after the first step;
    grad_clip -1 flipped every gradient and exited 0; steps -1 wrote a model of no step."""
    with pytest.raises(ValueError, match=f"training setting {setting} must be"):
        TrainConfig().replace(**{setting: value})


def test_an_output_folder_that_cannot_be_made_is_said_before_decoding(tmp_path, videos_dir, tiny_base):
    """--out /proc/nope was a traceback, after the model was loaded and every clip decoded."""
    from trainer.loop import TrainingError

    with pytest.raises(TrainingError, match=r"/proc/nope: cannot be created \(.*\); choose another --out"):
        finetune([videos_dir / "tree.avi"], tiny_base, Path("/proc/nope"), steps=1)


def test_each_step_records_how_long_it_waited_for_its_batch(videos_dir, tmp_path, tiny_base, monkeypatch):
    # A GPU run must say whether the loader or the device bounds it: with sample assembly slowed
    # by 0.15 s a sample (2 per batch, built in this process), every step waited at least 0.3 s.
    make = SampleMaker.make

    def slow_make(self, seed, index):
        time.sleep(0.15)
        return make(self, seed, index)

    monkeypatch.setattr(SampleMaker, "make", slow_make)
    train = TrainConfig(batch_size=2, workers=0, warmup_steps=1, proposal_stride=20)
    finetune([videos_dir / "tree.avi"], tiny_base, tmp_path / "run", steps=3, train=train)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for row in rows:
        step_s = train.batch_size / row["samples_per_s"]
        assert 0.3 <= row["data_wait_s"] < step_s, row


def test_a_run_can_train_the_base_weights_with_own_template_attention(videos_dir, tmp_path, tiny_base):
    # sstrack-train --template-attention own: the same weights, trained with the mask, and the
    # model it writes says so, so the tracker caches its templates' keys and values.
    train = TrainConfig(batch_size=2, workers=0, warmup_steps=1, proposal_stride=20, checkpoint_every=1)
    out = tmp_path / "own"
    path = finetune([videos_dir / "tree.avi"], tiny_base, out, steps=2, train=train, model_changes={"template_attention": "own"})
    assert load_model(path).config.template_attention == "own"
    assert load_model(tiny_base).config.template_attention == "joint"
    with pytest.raises(ValueError, match="template_attention=own"):
        finetune([videos_dir / "tree.avi"], tiny_base, out, steps=3, resume=True, model_changes={"template_attention": "joint"})


def _two_clip_batch(videos_dir, cfg, train):
    """Four samples, alternating between two videos, so every sample's neighbour is another clip."""
    clips = load_clips([ClipSpec(videos_dir / "tree.avi"), ClipSpec(videos_dir / "box.mp4")], 256, 10)
    maker = SampleMaker(clips, cfg, train)
    by_clip: dict[int, list] = {0: [], 1: []}
    index = 0
    while min(len(v) for v in by_clip.values()) < 2:
        sample = maker.make(0, index)
        by_clip[int(sample["clip"])].append(sample)
        index += 1
    return default_collate([by_clip[0][0], by_clip[1][0], by_clip[0][1], by_clip[1][1]])


def _peaks(model, batch):
    """(mean peak score on the objects' own first views, on the neighbours' views) without learning."""
    with torch.no_grad():
        _, stats = SSTrackStep(model, TrainConfig(batch_size=4, negative_weight=1.0))(batch, global_active=False)
    return stats["present_peak"], stats["absent_peak"]


@pytest.mark.slow
def test_absent_views_teach_the_score_to_fall_where_the_object_is_not(videos_dir):
    """negative_weight trains the score map down on another clip's view; the same steps without it do not.

    The shipped model, not a random one: a random model has nothing to tell the two crops apart
    with in a few steps. v3's score barely told them apart (peaks 0.50 against 0.44 on
    ../shared/data/train); v4, trained with these views, already does (0.50 against 0.26), so
    the margins below hold for both (measured: absent peak 0.40 -> 0.24 with v3, 0.29 -> 0.22 with
    v4; contrast +0.11 and +0.07).
    """
    cfg = load_model("sstrack-lite").config
    batch = _two_clip_batch(videos_dir, cfg, TrainConfig(batch_size=4, ctp_ratio=0.0))
    contrasts = {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = load_model("sstrack-lite").train()
        step = SSTrackStep(model, TrainConfig(batch_size=4, negative_weight=weight))
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        for _ in range(6):
            loss, stats = step(batch, global_active=False)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            assert ("absent_peak" in stats) == (weight > 0)
        present, absent = _peaks(model, batch)
        contrasts[weight] = (present, absent)
    (present_plain, absent_plain), (present_taught, absent_taught) = contrasts[0.0], contrasts[1.0]
    assert absent_taught < absent_plain - 0.04, contrasts
    assert present_taught - absent_taught > present_plain - absent_plain + 0.03, contrasts


def test_absent_views_pair_only_samples_of_different_clips(videos_dir, tiny_base):
    """A neighbour from the same clip may hold the same object: no absent view is made from it."""
    model = load_model(tiny_base).train()
    batch = _fixed_batch(videos_dir, model.config, TrainConfig(batch_size=4))  # all of tree.avi
    with_views = SSTrackStep(model, TrainConfig(batch_size=4, negative_weight=1.0))
    torch.manual_seed(0)
    loss, stats = with_views(batch, global_active=False)
    torch.manual_seed(0)
    plain, _ = SSTrackStep(model, TrainConfig(batch_size=4))(batch, global_active=False)
    assert "absent_peak" not in stats and torch.equal(loss, plain)
