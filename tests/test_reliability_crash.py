"""Crash safety: SIGKILL a child mid-edit-burst, mid-propagation, mid-export and mid-checkpoint,
then reopen and check nothing acknowledged is lost; plus concurrent writers and readers.

Each child prints an acknowledgement line only after the operation returned (committed), so
every acknowledged edit must be in the database after the kill.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from reliability_support import (
    REPO,
    child_env,
    integrity,
    kill_when,
    start_child,
    tiny_base,
)

from projects import Project, propagate
from projects.formats import export
from sstrack import TargetState, load_model

EDITS = 1000

EDIT_BURST = """
import sys
from projects import Project
folder, tracks = sys.argv[1], [int(t) for t in sys.argv[2].split(",")]
with Project.open(folder) as project:
    for i in range(%d):
        track, frame = tracks[i %% len(tracks)], i // len(tracks)
        box = (1.0 + i %% 97, 2.0 + i %% 89, 10.0 + i %% 13, 12.0 + i %% 7)
        project.set_box(track, frame, box)
        print("ack", i, track, frame, *box, flush=True)
""" % EDITS  # noqa: UP031 - a script template; % keeps its own {} free


def _burst_project(folder: Path, videos_dir: Path) -> list[int]:
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "vtest.avi")  # 795 frames: 1,000 edits fit on 2 tracks
        return [proj.add_track(video.id, name).id for name in ("a", "b")]


@pytest.mark.parametrize("kill_after", [450])
def test_sigkill_mid_edit_burst_keeps_every_acknowledged_edit(tmp_path, videos_dir, kill_after):
    folder = tmp_path / "proj"
    tracks = _burst_project(folder, videos_dir)
    child = start_child(EDIT_BURST, str(folder), ",".join(map(str, tracks)))
    lines = kill_when(child, lambda seen: len(seen) >= kill_after)
    acks = [line.split() for line in lines if line.startswith("ack")]
    assert kill_after <= len(acks) < EDITS, "the kill did not land inside the burst"
    assert integrity(folder / "project.sqlite") == "ok"
    with Project.open(folder) as proj:
        for _, _i, track, frame, *box in acks:
            record = proj.box_at(int(track), int(frame))
            assert record is not None and record.source == "manual", f"acknowledged edit {_i} lost"
            assert record.box == tuple(float(v) for v in box)
        # At most the one edit in flight (committed, not yet acknowledged) is beyond the acks.
        total = sum(len(proj.boxes(t)) for t in tracks)
        assert len(acks) <= total <= len(acks) + 1
        # Every edit is its own undo step and the history is usable after the crash.
        assert len(proj.history()) == total + 2  # + the two "add track" steps
        last = acks[-1] if total == len(acks) else None
        assert proj.undo() is not None
        if last is not None:
            assert proj.box_at(int(last[2]), int(last[3])) is None


PROPAGATE = """
import sys, time
import numpy as np
from projects import Project, propagate
from sstrack import TargetState

class SlowStub:
    # The real network is not what is under test here; a stub keeps the child to seconds and
    # the small sleep makes sure the kill lands mid-run.
    def start(self, image, box):
        return TargetState(box=np.asarray(box, float))
    def step(self, states, image):
        time.sleep(0.01)
        return [(tuple(s.box + 0.5), 0.9) for s in states]

folder = sys.argv[1]
with Project.open(folder) as project:
    video = project.videos()[0]
    track = project.tracks(video.id)[0]
    for k, frame in enumerate((0, 100, 200)):
        project.set_box(track.id, frame, (100 + k, 100, 40, 80))
        print("manual", frame, flush=True)
    for result in propagate(project, video.id, SlowStub(), direction="both"):
        print("frame", result.frame, result.direction, flush=True)
"""


def test_sigkill_mid_propagation_then_rerun_completes(tmp_path, videos_dir):
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "Megamind.avi")
        track = proj.add_track(video.id, "person")
    child = start_child(PROPAGATE, str(folder))
    lines = kill_when(child, lambda seen: sum(s.startswith("frame") for s in seen) >= 60)
    manual = [int(s.split()[1]) for s in lines if s.startswith("manual")]
    tracked = {int(s.split()[1]) for s in lines if s.startswith("frame")}
    assert manual == [0, 100, 200] and len(tracked) >= 60
    assert integrity(folder / "project.sqlite") == "ok"
    with Project.open(folder) as proj:
        assert proj.keyframes(track.id) == manual
        rows = {r.frame: r for r in proj.boxes(track.id)}
        assert tracked <= {f for f, r in rows.items() if r.source == "tracked"}, "acknowledged frames lost"
        # The killed run's process is gone (reaped by kill_when), so opening marks it interrupted
        # instead of leaving it "running" forever (issue 13).
        assert proj.runs()[-1]["status"] == "interrupted"
        assert [r["id"] for r in proj.interrupted_runs()] == [proj.runs()[-1]["id"]]
        # Re-running the propagation after the crash completes the video, keyframes untouched.
        stub = SimpleNamespace(
            start=lambda image, box: TargetState(box=np.asarray(box, float)),
            step=lambda states, image: [(tuple(s.box), 0.9) for s in states],
        )
        list(propagate(proj, video.id, stub, direction="both"))
        rows = {r.frame: r for r in proj.boxes(track.id)}
        assert set(rows) == set(range(video.frames))
        assert [f for f, r in rows.items() if r.source == "manual"] == manual
        assert rows[100].box == (101, 100, 40, 80)
        assert proj.runs()[-1]["status"] == "done"


EXPORT = """
import sys, time
from projects import Project
from projects.formats import export

def progress(done, total):
    print("frame", done, flush=True)
    time.sleep(0.02)  # slow enough for the kill to land mid-export

with Project.open(sys.argv[1]) as project:
    export(project, sys.argv[2], sys.argv[3], progress=progress)
    print("done", flush=True)
"""


@pytest.mark.parametrize("fmt", ["cocovid"])
def test_sigkill_mid_export_leaves_nothing_under_the_final_name(tmp_path, videos_dir, fmt):
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "tree")
        for frame in range(0, video.frames, 5):
            proj.set_box(track.id, frame, (10 + frame, 20, 50, 60))
        before = [r.box for r in proj.boxes(track.id)]
    out = tmp_path / "exports" / "out"
    child = start_child(EXPORT, str(folder), fmt, str(out))
    lines = kill_when(child, lambda seen: len(seen) >= 30)
    assert "done" not in lines
    assert not out.exists(), "a half-written export is visible under its final name"
    partial = [p for p in out.parent.iterdir() if p.name.startswith(".out.partial-")]
    assert partial, "the export was not staged in a hidden sibling"
    assert integrity(folder / "project.sqlite") == "ok"
    with Project.open(folder) as proj:
        assert [r.box for r in proj.boxes(track.id)] == before
        report = export(proj, fmt, out)  # the next export to the same place just works
    assert report.frames == video.frames and out.is_dir()


TRAIN_KILLED_IN_SAVE = """
import sys, time
import torch
import sstrack.checkpoints as checkpoints
from trainer.cli import main

where = sys.argv[1]

def stall(path):
    # Leave a truncated temporary file behind, say so, and wait for the SIGKILL.
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    print("in-save", where, path, flush=True)
    time.sleep(120)

real_save_file, real_torch_save = checkpoints.save_file, torch.save

def save_file(tensors, filename, metadata=None):
    real_save_file(tensors, filename, metadata=metadata)
    if where == "weights" and "step_0000002" in str(filename):
        stall(filename)

def torch_save(obj, f, *args, **kwargs):
    real_torch_save(obj, f, *args, **kwargs)
    if where == "state" and "step_0000002" in str(f):
        stall(f)

checkpoints.save_file, torch.save = save_file, torch_save
sys.exit(main(sys.argv[2:]))
"""


def _train_args(folder: Path, base: Path, run: Path, steps: int) -> list[str]:
    return [
        "--data", str(folder), "--base", str(base), "--out", str(run), "--steps", str(steps), "--batch-size", "2",
        "--device", "cpu", "--threads", "1",
        "--set", "workers=0", "checkpoint_every=1", "warmup_steps=1", "proposal_stride=20", "frame_side=256",
    ]


@pytest.mark.parametrize("where", ["weights", "state"])
def test_sigkill_mid_checkpoint_save_then_resume(tmp_path, videos_dir, where):
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "tree")
        proj.set_box(track.id, 0, (60, 40, 80, 90))
        proj.set_box(track.id, 30, (70, 40, 80, 90))
    base = tiny_base(tmp_path)
    run = tmp_path / "run"
    child = start_child(TRAIN_KILLED_IN_SAVE, where, *_train_args(folder, base, run, 4))
    lines = kill_when(child, lambda seen: any("in-save" in s for s in seen), timeout=180)
    assert any("in-save" in s for s in lines)
    checkpoints = run / "checkpoints"
    pointer = (run / "latest.json").read_text()
    assert '"step": 1' in pointer, "latest.json moved past the last complete checkpoint"
    # The interrupted save is not visible under its final name (only a hidden .tmp is left).
    half = "step_0000002.safetensors" if where == "weights" else "step_0000002.state.pt"
    assert not (checkpoints / half).exists()
    assert any(p.name.startswith(f".{half}.") and p.name.endswith(".tmp") for p in checkpoints.iterdir())
    # The checkpoint latest.json names is complete and loads.
    load_model(checkpoints / "step_0000001.safetensors")
    assert torch.load(checkpoints / "step_0000001.state.pt", weights_only=True)["step"] == 1
    assert integrity(folder / "project.sqlite") == "ok"
    if where == "state":
        return  # resuming is the same path for both; once keeps the suite short
    resumed = subprocess.run(
        [sys.executable, "-m", "trainer.cli", "--resume", *_train_args(folder, base, run, 3)],
        cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert load_model(run / "model.safetensors") is not None
    steps = [line.split('"step": ')[1].split(",")[0] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == ["1", "2", "3"]


def test_concurrent_edits_training_read_and_cli_export(tmp_path, videos_dir):
    """The app writes while a training child reads the project and a CLI export runs at once."""
    folder = tmp_path / "proj"
    base = tiny_base(tmp_path)
    Project.create(folder).close()
    with Project.open(folder) as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "tree")
        proj.set_box(track.id, 0, (60, 40, 80, 90))
        env = child_env()
        trainer_child = subprocess.Popen(
            [sys.executable, "-m", "trainer.cli", *_train_args(folder, base, tmp_path / "run", 2)],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        export_child = subprocess.Popen(
            [sys.executable, "-m", "projects.cli", "export", str(folder), "--format", "mot", "--out", str(tmp_path / "mot")],
            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        written = {}
        i = 0
        # Keep writing, as the controller does, for as long as either child is still running.
        while trainer_child.poll() is None or export_child.poll() is None:
            frame = 1 + i % (video.frames - 1)
            box = (10.0 + i % 50, 20.0, 30.0 + i % 9, 40.0)
            proj.set_box(track.id, frame, box)
            written[frame] = box
            i += 1
            time.sleep(0.002)
        outputs = {name: child.communicate() for name, child in (("train", trainer_child), ("export", export_child))}
        for name, child in (("train", trainer_child), ("export", export_child)):
            assert child.returncode == 0, f"{name} failed: {outputs[name][1][-2000:]}"
            assert "locked" not in outputs[name][1].lower()
        assert i > 20, "the writes did not overlap the children"
        assert {f: proj.box_at(track.id, f).box for f in written} == written
        assert proj.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (tmp_path / "run" / "model.safetensors").exists()
    assert (tmp_path / "mot" / "tree" / "gt" / "gt.txt").exists()
