"""Resource limits: the frame cache's byte bound, a (small) large project, and a full disk during
export and checkpoint saves (injected ENOSPC, and a real tiny tmpfs where mounting is allowed).

The timed versions (20,000-frame 720p video, 100,000-box project) are in benchmarks/reliability.py.
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from reliability_support import REPO, TINY, child_env, one_line_naming, snapshot, tiny_base

from projects import FormatError, Project, open_media
from projects.formats import common, export
from projects.store import BoxRecord
from sstrack import CheckpointError, load_model, save_model
from sstrack import checkpoints as sstrack_checkpoints
from sstrack.config import get_config
from sstrack.model import build_model
from trainer import TrainConfig, finetune
from trainer.loop import TrainingError


def test_frame_cache_stays_within_its_byte_bound_on_a_real_video(videos_dir):
    frame_bytes = 320 * 240 * 3
    with open_media(videos_dir / "tree.avi", cache_bytes=10 * frame_bytes + 1) as media:
        order = list(range(media.frame_count)) + list(np.random.default_rng(0).integers(0, media.frame_count, 60))
        for index in order:
            media.frame(int(index))
            assert media.cache.bytes <= media.cache.max_bytes and len(media.cache) <= 10
        for _, _ in media.iter_frames(media.frame_count - 1, -1, -1):  # backward reading, chunked
            assert media.cache.bytes <= media.cache.max_bytes
        assert sum(f.nbytes for f in media.cache._items.values()) == media.cache.bytes
    # A cache smaller than one frame caches nothing rather than overflowing.
    with open_media(videos_dir / "tree.avi", cache_bytes=frame_bytes - 1) as media:
        media.frame(5)
        assert len(media.cache) == 0 and media.cache.bytes == 0


def test_many_boxes_reopen_and_seek_exactly(tmp_path, videos_dir):
    """A 12,000-box project (the benchmark times 100,000): reopened rows are exactly the written ones."""
    frames, tracks = 3000, 4
    with Project.create(tmp_path / "p") as proj:
        info = {"frames": frames, "fps": 30.0, "width": 1280, "height": 720}
        video = proj.add_video(videos_dir / "tree.avi", info)
        ids = [proj.add_track(video.id, f"t{k}").id for k in range(tracks)]
        entry = proj.begin_history("bulk")
        for track_id in ids:
            proj.write_boxes(
                [BoxRecord(track_id, f, f * 0.25, 10.0 + track_id, 40.0, 30.0, "tracked", 0.5) for f in range(frames)], entry_id=entry
            )
    with Project.open(tmp_path / "p") as proj:
        assert proj.count_boxes() == {"tracked": frames * tracks}
        for frame in (0, 1234, frames - 1):
            here = proj.boxes_on_frame(video.id, frame)
            assert [(r.track_id, r.x) for r in here] == [(t, frame * 0.25) for t in ids]
        assert proj.undo() == "bulk" and proj.count_boxes() == {}


# -- full disk: injected ENOSPC ----------------------------------------------------------------------
@pytest.fixture()
def annotated(tmp_path, videos_dir):
    """tree.avi with two tracks, as the exporters see it."""
    proj = Project.create(tmp_path / "proj")
    video = proj.add_video(videos_dir / "tree.avi")
    for label in ("tree", "car"):
        track = proj.add_track(video.id, label)
        for frame in range(0, video.frames, 3):
            proj.set_box(track.id, frame, (10 + frame, 20, 50, 60))
    yield proj
    proj.close()


class _FillingFile:
    """A file whose writes fail with ENOSPC once the shared byte budget is spent, like a disk."""

    def __init__(self, handle, budget: list[int]) -> None:
        self._handle, self._budget = handle, budget

    def write(self, data: bytes) -> int:
        """Write what still fits, then raise ENOSPC (a partial write, as the kernel does)."""
        room = self._budget[0]
        self._budget[0] = max(0, room - len(data))
        if len(data) > room:
            self._handle.write(data[:room])
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._handle.write(data)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.close()


@pytest.mark.parametrize("fmt", ["lasot", "got10k", "cocovid", "mot"])
def test_enospc_while_writing_frames(annotated, tmp_path, monkeypatch, fmt):
    budget = [200_000]  # about 20 frames in, the disk is full
    monkeypatch.setattr(common, "open", lambda path, mode="r", *a, **k: _FillingFile(open(path, mode, *a, **k), budget), raising=False)
    before = snapshot(annotated.db_path)
    out = tmp_path / "exports" / "out"
    with pytest.raises(FormatError, match="no space left on device") as info:
        export(annotated, fmt, out)
    one_line_naming(info.value, str(out))
    assert budget[0] == 0, "the injected fault was never hit"
    assert not out.parent.exists(), "half-written export, or the folder made for it, left behind"
    assert snapshot(annotated.db_path) == before


def test_enospc_while_saving_a_model_keeps_the_previous_file(tmp_path, monkeypatch):
    model = build_model(get_config("sstrack-lite", **TINY))
    target = tmp_path / "m.safetensors"
    save_model(model, target)
    old_weights, old_card = target.read_bytes(), target.with_suffix(".json").read_bytes()
    real = sstrack_checkpoints.save_file

    def full_disk(tensors, filename, metadata=None):
        real(tensors, filename, metadata=metadata)
        data = Path(filename).read_bytes()
        Path(filename).write_bytes(data[: len(data) // 3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(sstrack_checkpoints, "save_file", full_disk)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    with pytest.raises(CheckpointError, match="No space left") as info:
        save_model(model, target)
    one_line_naming(info.value, "m.safetensors")
    assert target.read_bytes() == old_weights and target.with_suffix(".json").read_bytes() == old_card
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "m.safetensors"]


def test_enospc_during_a_training_checkpoint_then_resume(tmp_path, videos_dir, monkeypatch):
    base = tiny_base(tmp_path)
    train = TrainConfig(batch_size=2, workers=0, checkpoint_every=1, warmup_steps=1, proposal_stride=20, frame_side=256)
    sources = [videos_dir / "tree.avi"]
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if "step_0000002" in str(f):
            Path(f).write_bytes(b"\x80\x02half")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="No space left") as info:
        finetune(sources, base, run, steps=3, train=train, device="cpu")
    one_line_naming(info.value, "step_0000002.state.pt")
    checkpoints = run / "checkpoints"
    assert json.loads((run / "latest.json").read_text())["step"] == 1
    assert not (checkpoints / "step_0000002.state.pt").exists()
    assert not [p for p in checkpoints.iterdir() if p.name.endswith(".tmp")]
    monkeypatch.setattr(torch, "save", real_save)  # space freed: --resume carries on
    final = finetune(sources, base, run, steps=3, train=train, device="cpu", resume=True)
    assert load_model(final) is not None
    assert [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


# -- full disk: a real 600 KiB tmpfs ---------------------------------------------------------------
TMPFS_CHILD = """
import json, os, sys
from pathlib import Path
from projects import Project
from projects.formats import export
from sstrack import save_model
from sstrack.config import get_config
from sstrack.model import build_model

disk, folder = Path(sys.argv[1]), sys.argv[2]
result = {}
with Project.open(folder) as project:
    try:
        export(project, "lasot", disk / "out")
        result["export"] = "written"
    except Exception as error:
        result["export"] = f"{type(error).__name__}: {error}"
result["after_export"] = sorted(os.listdir(disk))
model = build_model(get_config("sstrack-lite"))  # ~14 MB of weights: cannot fit
try:
    save_model(model, disk / "m.safetensors")
    result["save"] = "written"
except Exception as error:
    result["save"] = f"{type(error).__name__}: {error}"
result["after_save"] = sorted(os.listdir(disk))
print(json.dumps(result))
"""


def _in_private_tmpfs(disk: Path, size: str, child: str, *args: object) -> dict:
    """Run the Python `child` with a tmpfs of `size` mounted at `disk`; its last stdout line (JSON).

    A private mount namespace (as a mapped root user when not root) keeps the mount invisible to
    the rest of the machine and gone when the child exits. Skips where no namespace can be made.
    """
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1): cannot mount a private tmpfs")
    disk.mkdir()
    quoted = " ".join(f'"{arg}"' for arg in args)
    script = f'mount -t tmpfs -o size={size} tmpfs "{disk}" && echo MOUNTED >&2 && exec "{sys.executable}" -c "$0" {quoted}'
    env = {**child_env(), "QT_QPA_PLATFORM": "offscreen"}
    for namespace in (["--mount"], ["--user", "--map-root-user", "--mount"]):
        done = subprocess.run(["unshare", *namespace, "sh", "-c", script, child], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
        if "MOUNTED" in done.stderr:  # the mount worked: from here on, any failure is the test's
            break
    else:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_real_full_disk_on_a_tiny_tmpfs(annotated, tmp_path):
    disk = tmp_path / "disk"
    before = snapshot(annotated.db_path)
    result = _in_private_tmpfs(disk, "600k", TMPFS_CHILD, disk, annotated.folder)
    assert result["export"].startswith("FormatError: ") and "no space left on device" in result["export"]
    assert "\n" not in result["export"] and str(disk / "out") in result["export"]
    assert result["after_export"] == [], "a full disk left a partial export behind"
    assert result["save"].startswith("CheckpointError: ") and "m.safetensors" in result["save"]
    assert result["after_save"] == [], "a full disk left a partial model file behind"
    assert snapshot(annotated.db_path) == before



READ_ONLY_CHILD = """
import json, os, subprocess, sys
from pathlib import Path
from projects import Project
from projects.errors import StorageError
from projects.formats import export
disk, video, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
with Project.create(disk / "p") as project:
    track = project.add_track(project.add_video(video).id, "car")
    project.set_box(track.id, 0, (10, 10, 30, 30))
    project.set_box(track.id, 9, (20, 10, 30, 30))
subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
result = {}
with Project.open(disk / "p") as project:
    result["read_only"] = project.read_only
    result["boxes"] = [(b.frame, b.x) for b in project.boxes(track.id)]
    result["export"] = export(project, "mot", out).sequences
    try:
        project.set_box(track.id, 5, (1, 1, 20, 20))
        result["edit"] = "written"
    except StorageError as error:
        result["edit"] = str(error)
from app.controller import ProjectController
controller = ProjectController()
controller.open_project(disk / "p")  # restores, selects and remembers nothing it cannot write
controller.select_track(track.id)
controller.seek(4)
controller.remember_position()
result["controller"] = (controller.video.id, controller.track_id, controller.frame)
controller.close_project()
result["files"] = sorted(os.listdir(disk / "p"))
print(json.dumps(result))
"""


def test_a_project_on_a_read_only_disk_is_viewed_and_exported_and_refuses_edits_in_one_line(tmp_path, videos_dir):
    """A project on a read-only disk (an archive, a colleague's share) could not even be opened."""
    disk = tmp_path / "disk"
    result = _in_private_tmpfs(disk, "4m", READ_ONLY_CHILD, disk, videos_dir / "tree.avi", tmp_path / "out")
    assert result["read_only"] and result["boxes"] == [[0, 10.0], [9, 20.0]] and result["export"] == 1
    assert result["edit"].endswith("cannot write here (attempt to write a readonly database): the folder or file is "
                                   "read-only or not yours; copy the project folder somewhere writable, or fix its permissions")
    assert result["controller"] == [1, 1, 4] and result["files"] == ["exports", "models", "project.sqlite"]
    assert (tmp_path / "out" / "tree" / "gt" / "gt.txt").is_file()
