"""Distillation into a cheaper network (issue 18): the recording of a real teacher on a real clip,
the student's crop as the centre of the teacher's, and training that lowers the loss and resumes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from sstrack import load_model
from sstrack.errors import SSTrackError
from sstrack.normalise import Normaliser
from trainer.distill import DistillConfig, DistillData, distill_loss, student_outputs, train
from trainer.distill_capture import KINDS, RecordingTracker, record_clip, teacher_answers
from trainer.drop_blocks import without_blocks
from trainer.search_crop import with_search_size

pytestmark = pytest.mark.slow
SHIPPED = Path(__file__).resolve().parents[1] / "resources" / "models" / "sstrack-lite.safetensors"
CLIP = "dtb70_BMX3"  # 121 frames of a BMX rider, 640x360: a real clip of ../shared/data/train


@pytest.fixture(scope="module")
def recording(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped model's recording of one training clip, every 4th frame, in a folder of its own."""
    torch.set_num_threads(2)
    teacher = load_model(SHIPPED).eval()
    clip = shared / "data" / "train" / CLIP
    box = np.asarray(json.loads(clip.with_suffix(".json").read_text())["first_box"], dtype=np.float64)
    record = record_clip(RecordingTracker(teacher, device="cpu", backend="torch"), clip.with_suffix(".mp4"), box, seed=0, stride=4)
    assert record is not None
    record.update(teacher_answers(teacher, record))
    folder = tmp_path_factory.mktemp("distill_data")
    np.savez(folder / f"{CLIP}.npz", **record)
    return folder


def test_recording_holds_the_teachers_crops_queries_and_answers(recording: Path) -> None:
    """Every recorded frame has a full template set and three crops; the tracked crops carry the
    teacher's query and hold the object (a higher peak than crops taken elsewhere in the frame)."""
    teacher = load_model(SHIPPED)
    cfg = teacher.config
    with np.load(recording / f"{CLIP}.npz") as record:
        frames = len(record["searches"])
        assert 25 <= frames <= 30  # 120 tracked frames, every 4th, less the first few with fewer templates
        assert record["templates"].shape[1:] == (cfg.template_number + 1, cfg.template_size, cfg.template_size, 3)
        assert record["searches"].shape[1:] == (len(KINDS), cfg.search_size, cfg.search_size, 3)
        assert record["has_query"][:, KINDS.index("tracked")].all()
        assert not record["has_query"][:, KINDS.index("elsewhere")].any()
        assert np.abs(record["queries"][:, KINDS.index("tracked")]).sum(1).min() > 0
        peaks = record["teacher_score"].reshape(frames, len(KINDS), -1).max(-1)
        assert peaks[:, KINDS.index("tracked")].mean() > peaks[:, KINDS.index("elsewhere")].mean() + 0.1
        assert record["teacher_features"].shape[1:] == (len(KINDS), cfg.search_grid**2, cfg.embed_dim)


def test_the_student_crop_and_cells_are_the_centre_of_the_teachers(recording: Path) -> None:
    """The teacher itself cut to a 160 px crop (no training) mostly puts its peak on the cell the
    full teacher chose: only true when DistillData cuts crops and maps about the same centre."""
    teacher = load_model(SHIPPED).eval()
    cut = with_search_size(teacher, 160)
    data = DistillData(recording, teacher.config.search_size, 160, teacher.config.patch_size)
    tracked = data.train_samples[data.train_samples[:, 1] == KINDS.index("tracked")]
    batch = data.batch(tracked)
    assert batch["search"].shape[1:] == (160, 160, 3)
    assert batch["score"].shape[1:] == (10, 10)
    with torch.no_grad():
        out, _query = student_outputs(cut, Normaliser(cut.config), batch)
        _loss, stats = distill_loss(out, _query, batch, DistillConfig())
    assert stats["peak_agrees"] >= 0.7
    assert stats["feature"] < 0.35  # the whole-crop features lose only the ring of context


def test_distillation_lowers_the_loss_and_a_resumed_run_matches_an_unbroken_one(recording: Path, tmp_path: Path) -> None:
    """A few steps lower the held-in loss of a 2-block student; stopping and resuming gives the same weights."""
    teacher = load_model(SHIPPED)
    student = with_search_size(without_blocks(teacher, [1, 2]), 160)
    from sstrack import save_model

    base = tmp_path / "student.safetensors"
    save_model(student, base, {"name": "test student"})
    data = DistillData(recording, teacher.config.search_size, 160, teacher.config.patch_size)
    rows = data.train_samples[:24]

    def loss_of(path: Path) -> float:
        model = load_model(path).eval()
        with torch.no_grad():
            out, query = student_outputs(model, Normaliser(model.config), data.batch(rows))
            return float(distill_loss(out, query, data.batch(rows), DistillConfig())[0])

    cfg = DistillConfig(steps=6, batch_size=4, lr=1e-3, warmup_steps=1, checkpoint_every=3, validate_every=3)
    unbroken = train(str(base), recording, tmp_path / "a", cfg, resume=False, teacher_path=str(SHIPPED))
    assert loss_of(unbroken) < loss_of(base)
    card = json.loads(unbroken.with_suffix(".json").read_text())
    assert card["distill"]["teacher"]["sha256"] == load_model(SHIPPED).weights_identity["sha256"]
    assert card["distill"]["config"]["steps"] == 6

    def killed_after_step_3(record: dict) -> None:
        if record["step"] == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(str(base), recording, tmp_path / "b", cfg, resume=False, teacher_path=None, progress=killed_after_step_3)
    assert not (tmp_path / "b" / "model.safetensors").exists()
    resumed = train(str(base), recording, tmp_path / "b", cfg, resume=True, teacher_path=None)
    for (name, a), b in zip(load_model(unbroken).state_dict().items(), load_model(resumed).state_dict().values()):
        assert torch.equal(a, b), name


def test_a_damaged_or_pickled_recording_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A recording folder may come from anywhere: object arrays (a pickle) and junk give one clear error."""
    np.savez(tmp_path / "pickled.npz", searches=np.array([object()], dtype=object))
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    for name in ("junk.npz", "pickled.npz"):
        with pytest.raises(SSTrackError, match=name):
            DistillData(tmp_path, 192, 160, 16)
        (tmp_path / name).unlink()


@pytest.mark.parametrize("setting", ["steps=0", "batch_size=-1", "lr=nan", "steps=abc", "nonsense=1"])
def test_a_bad_setting_is_refused_before_anything_loads(setting: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--set` values are checked first: one line naming the setting, exit 2, no run folder."""
    from trainer.distill import main

    assert main(["--student", str(SHIPPED), "--data", str(tmp_path), "--out", str(tmp_path / "run"), "--set", setting]) == 2
    assert setting.split("=")[0] in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
