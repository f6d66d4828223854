"""The trainer's footage and run-folder inputs: what a review with real files found wrong (stop 42).

Each test names the defect it guards; every one of them fails on the code before its fix.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.reliability_support import REPO, child_env, png_declaring, tiny_base
from trainer import ClipSpec, NoUsableClipsError, TrainConfig, finetune
from trainer.clips import Clip, load_clips
from trainer.loop import TrainingError
from trainer.samples import SampleMaker

QUICK = TrainConfig(batch_size=2, workers=0, checkpoint_every=100, warmup_steps=2, proposal_stride=20)


def _frame_folder(videos_dir: Path, folder: Path, frames: int = 8) -> Path:
    """The first frames of the real tree.avi as a numbered JPEG folder (a LaSOT-style img/)."""
    folder.mkdir(parents=True)
    capture = cv2.VideoCapture(str(videos_dir / "tree.avi"))
    for index in range(frames):
        ok, frame = capture.read()
        assert ok
        cv2.imwrite(str(folder / f"{index + 1:08d}.jpg"), frame)
    capture.release()
    return folder


def test_a_frame_folder_is_read_as_the_app_reads_it(videos_dir, tmp_path, caplog):
    """Frames had no pixel limit (two 5 MB PNGs of 20000x20000 took 4.3 GB), and a frame of another
    size was squashed to the first one's, its user boxes scaled by the first frame's factor."""
    good = _frame_folder(videos_dir, tmp_path / "good")
    bomb = _frame_folder(videos_dir, tmp_path / "bomb")
    (bomb / "00000004.jpg").unlink()
    png_declaring(bomb / "00000004.png", 11_000, 11_000)  # 1 MB on disk, 121 MP (0.36 GB) decoded
    mixed = _frame_folder(videos_dir, tmp_path / "mixed")
    cv2.imwrite(str(mixed / "00000006.jpg"), np.full((100, 120, 3), 90, np.uint8))
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        (clip,) = load_clips([ClipSpec(good), ClipSpec(bomb), ClipSpec(mixed)], 256, 10)
    assert time.monotonic() - started < 20  # decoding the bomb alone took longer
    assert clip.name == str(good) and len(clip) == 8
    assert "00000004.png: declares 11000x11000 pixels" in caplog.text
    assert "00000006.jpg: 120x100, but the folder's first frame is" in caplog.text


def test_footage_too_small_to_train_on_is_one_line_not_a_loader_traceback(videos_dir, tmp_path, caplog):
    """A 16x16 video was accepted, then every sample was refused: a traceback from a loader worker."""
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    for index in range(5):
        cv2.imwrite(str(tiny / f"{index:04d}.png"), np.random.default_rng(index).integers(0, 255, (16, 16, 3), np.uint8))
    with caplog.at_level(logging.WARNING), pytest.raises(NoUsableClipsError, match="tiny"):
        finetune([tiny], tiny_base(tmp_path), tmp_path / "run", steps=1, train=QUICK)
    assert "16x16 pixels is too small to train on (at least 32x32)" in caplog.text


def test_a_clip_whose_boxes_make_no_sample_is_a_sample_error():
    """SampleMaker raised a bare RuntimeError, which a loader worker turned into a traceback."""
    from sstrack.config import get_config
    from trainer.samples import SampleError

    frame = cv2.imencode(".jpg", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    clip = Clip("dots", [frame] * 4, 64, 64, {0: [np.array([10.0, 10.0, 2.0, 2.0])]}, True)
    maker = SampleMaker([clip], get_config("sstrack-lite"), TrainConfig(ctp_ratio=0.0))
    with pytest.raises(SampleError, match="20 tries"):
        maker.make(0, 0)


def test_the_frame_cache_keeps_to_its_budget_and_says_what_it_left_out(videos_dir, tmp_path, caplog):
    """The cache had no bound: a 3,000-frame video of noise took 2 GB, an hour of 720p 4-6 GB."""
    copy = tmp_path / "tree_again.avi"
    shutil.copy(videos_dir / "tree.avi", copy)
    (whole,) = load_clips([ClipSpec(videos_dir / "tree.avi")], 256, 10)
    size = sum(len(frame) for frame in whole.frames)
    with caplog.at_level(logging.WARNING):
        (part,) = load_clips([ClipSpec(videos_dir / "tree.avi"), ClipSpec(copy)], 256, 10, cache_bytes=size // 2)
    assert 2 <= len(part) < len(whole) / 2 and sum(len(f) for f in part.frames) <= size // 2
    assert part.frames == whole.frames[: len(part)]  # the first frames, unchanged
    assert f"only its first {len(part)} frames are used: the training frame cache is full" in caplog.text
    assert f"skipping {copy}: the training frame cache is full" in caplog.text and "frame_cache_mb" in caplog.text


def test_the_frame_cache_budget_is_a_training_setting(videos_dir, tmp_path, caplog):
    with pytest.raises(ValueError, match="frame_cache_mb must be"):
        TrainConfig(frame_cache_mb=0)
    with caplog.at_level(logging.WARNING):  # tree.avi's 69 frames take about 2 MiB at side 512
        model = finetune([videos_dir / "tree.avi"], tiny_base(tmp_path), tmp_path / "run", steps=1,
                         train=QUICK.replace(frame_cache_mb=1))
    assert model.exists() and "frames are used: the training frame cache is full (1 MiB;" in caplog.text


def test_user_boxes_off_the_frame_or_beyond_the_video_are_left_out_and_said(videos_dir, caplog):
    """A box wholly off the frame was trained on silently (crops of padding); one beyond the last
    frame was dropped without a word."""
    video = videos_dir / "tree.avi"
    boxes = {0: (10.0, 20.0, 30.0, 40.0), 3: (5000.0, 5000.0, 40.0, 40.0), 999: (10.0, 10.0, 30.0, 30.0), 6: (10.0, 10.0, 2.0, 30.0)}
    with caplog.at_level(logging.WARNING):
        (clip,) = load_clips([ClipSpec(video, boxes)], 256, 10)
    assert sorted(clip.initial_boxes) == [0]
    assert f"{video}: 3 user box(es) left out: the box [5000.0, 5000.0, 40.0, 40.0] on frame 3 lies outside" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING), pytest.raises(NoUsableClipsError):
        load_clips([ClipSpec(video, {999: (10.0, 10.0, 30.0, 30.0)})], 256, 10)
    assert "frame 999 is beyond its" in caplog.text and "none of its user boxes is on one of its" in caplog.text


@pytest.fixture()
def stopped_run(videos_dir, tmp_path):
    """A run of 2 steps stopped at step 1, as Ctrl+C leaves it."""
    out = tmp_path / "run"
    calls = []
    with pytest.raises(KeyboardInterrupt):
        finetune([videos_dir / "tree.avi"], tiny_base(tmp_path), out, steps=2, train=QUICK,
                 should_stop=lambda: calls.append(1) or True)
    return out


def test_a_resume_refuses_to_change_what_the_run_learns(stopped_run, videos_dir, tmp_path, capsys):
    """--resume dropped --batch-size, --set and --seed silently (it used the saved settings)."""
    from trainer.cli import main

    args = ["--data", str(videos_dir / "tree.avi"), "--out", str(stopped_run), "--resume", "--base", "unused"]
    assert main([*args, "--batch-size", "4", "--set", "lr=1e-3"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume continues the run with its own settings, but this asks for batch_size 4 (the run has 2)" in err
    assert "lr 0.001 (the run has 0.00025)" in err and "\n" not in err
    with pytest.raises(TrainingError, match="seed 7 .the run has 42."):
        finetune([videos_dir / "tree.avi"], "unused", stopped_run, train=QUICK.replace(seed=7), resume=True)
    # How long it runs and how it loads may change: 3 steps now, with the settings it had.
    model = finetune([videos_dir / "tree.avi"], "unused", stopped_run, steps=3, resume=True,
                     train=QUICK.replace(log_every=5), resume_settings={"batch_size": 2})
    rows = [json.loads(line) for line in (stopped_run / "metrics.jsonl").read_text().splitlines()]
    assert model.exists() and [row["step"] for row in rows] == [1, 2, 3]


@pytest.mark.parametrize("where", ["absolute", "parent"])
def test_latest_json_may_not_name_files_outside_the_run(stopped_run, videos_dir, tmp_path, where):
    """An absolute or ../ path resumed silently from another run's weights and optimiser state."""
    other = tmp_path / "other"
    shutil.copytree(stopped_run, other)
    pointer = json.loads((stopped_run / "latest.json").read_text())
    prefix = f"{other}/" if where == "absolute" else "../other/"
    (stopped_run / "latest.json").write_text(json.dumps({**pointer, "state": prefix + pointer["state"]}))
    with pytest.raises(TrainingError, match=r"latest.json: unreadable .*outside the run folder"):
        finetune([videos_dir / "tree.avi"], "unused", stopped_run, resume=True)


def test_folders_without_footage_are_named(tmp_path):
    """An empty folder said 'no usable training clip in: (no sources)'."""
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(NoUsableClipsError, match=f"no video, frame folder or project found in: {empty}"):
        finetune([empty], tiny_base(tmp_path), tmp_path / "run", steps=1, train=QUICK)


def test_a_fifo_is_called_a_fifo(tmp_path, caplog):
    """A FIFO given as a video was called 'damaged, truncated or not a video'."""
    import os

    fifo = tmp_path / "camera.mp4"
    os.mkfifo(fifo)
    with caplog.at_level(logging.WARNING), pytest.raises(NoUsableClipsError):
        load_clips([ClipSpec(fifo)], 256, 10)
    assert f"skipping {fifo}: not a regular file (a FIFO or a device)" in caplog.text


def test_a_run_stopped_before_its_first_step_leaves_nothing_to_resume_and_can_start_again(
        videos_dir, tmp_path, monkeypatch):
    """It said 'continue with --resume' with nothing saved, and left run.json behind, so neither
    --resume nor the same command again could run in that folder."""
    def interrupted(self, seed, index):  # a signal arriving while the first batch is built
        raise KeyboardInterrupt

    monkeypatch.setattr(SampleMaker, "make", interrupted)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        finetune([videos_dir / "tree.avi"], tiny_base(tmp_path), out, steps=1, train=QUICK)
    assert list(out.iterdir()) == []
    monkeypatch.undo()
    assert finetune([videos_dir / "tree.avi"], tiny_base(tmp_path), out, steps=1, train=QUICK).exists()


@pytest.mark.slow
def test_sigterm_while_decoding_says_nothing_was_saved(videos_dir, tmp_path):
    """SIGTERM while the clips were decoded printed 'continue with --resume'; there was nothing to resume."""
    footage = tmp_path / "footage"
    footage.mkdir()
    for index in range(6):  # copies, not links: each is decoded, so decoding lasts seconds
        shutil.copy(videos_dir / "tree.avi", footage / f"tree{index}.avi")
    out = tmp_path / "run"
    child = subprocess.Popen(
        [sys.executable, "-m", "trainer.cli", "--data", str(footage), "--base", str(tiny_base(tmp_path)),
         "--out", str(out), "--steps", "1"],
        cwd=REPO, env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    assert child.stdout is not None
    for line in child.stdout:
        lines.append(line)
        if "decoding" in line and "tree2.avi" in line:
            child.send_signal(signal.SIGTERM)
            break
    rest, _ = child.communicate(timeout=120)
    assert child.returncode == 130, "".join(lines) + rest
    assert rest.strip().splitlines()[-1] == "interrupted before anything was saved; run the same command again to start over"
    assert list(out.iterdir()) == []
