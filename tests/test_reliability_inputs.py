"""Hostile and broken inputs: damaged videos, lying headers, holes in frame folders, bad boxes,
fuzzed dataset files, code-running pickles, malformed safetensors.

Every case must end in one of our own exception types (or a CLI exit code 2) with a one-line
message naming the file, and leave the project database row-for-row unchanged.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reliability_support import TINY, one_line_naming, snapshot
from safetensors.torch import save_file

from projects import FormatError, MediaError, Project, ProjectError, open_media, propagate
from projects import cli as project_cli
from projects.formats import ExportOptions, export, import_
from sstrack import CheckpointError, TargetState, load_model, save_model
from sstrack.config import get_config
from sstrack.model import build_model
from trainer import TrainConfig, finetune
from trainer import cli as train_cli
from trainer.loop import TrainingError

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture()
def project(tmp_path, videos_dir):
    """A project with one annotated video (tree.avi), closed so a CLI can open it too."""
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "tree")
        for frame in (0, 20, 40):
            proj.set_box(track.id, frame, (60 + frame, 40, 80, 90))
    return folder


def _cli(capsys, *argv: str) -> tuple[int, str]:
    code = project_cli.main(list(argv))
    return code, capsys.readouterr().err.strip()


def _write_avi(path: Path, frames: int = 30) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (160, 120))
    for i in range(frames):
        image = np.full((120, 160, 3), i * 8, np.uint8)  # changing frames: a cut lands mid-frame
        cv2.rectangle(image, (i * 4, 40), (i * 4 + 20, 60), (0, 0, 255), -1)
        writer.write(image)
    writer.release()
    return path


# -- videos --------------------------------------------------------------------------------------
def _unopenable(tmp_path: Path, videos_dir: Path) -> list[Path]:
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("these are my notes, not a video\n" * 50)
    return sorted((videos_dir / "damaged").iterdir()) + [zero, text]


def test_unopenable_videos_are_one_line_errors_that_change_nothing(project, tmp_path, videos_dir, capsys):
    before = snapshot(project / "project.sqlite")
    bad_files = _unopenable(tmp_path, videos_dir)
    assert len(bad_files) == 7
    for bad in bad_files:
        code, err = _cli(capsys, "add-video", str(project), str(bad))
        assert code == 2
        one_line_naming(err, bad.name)
        with Project.open(project) as proj, pytest.raises(MediaError) as info:
            proj.add_video(bad)
        one_line_naming(info.value, bad.name)
    assert snapshot(project / "project.sqlite") == before


def test_lying_frame_count_header_is_ignored_for_the_real_index(tmp_path):
    """An AVI whose header claims 300 frames (it holds 30): we trust the index, not the header."""
    path = _write_avi(tmp_path / "v.avi")
    data = bytearray(path.read_bytes())
    avih, strh = data.find(b"avih"), data.find(b"strh")
    assert struct.unpack("<I", data[avih + 24:avih + 28]) == (30,)  # dwTotalFrames
    data[avih + 24:avih + 28] = struct.pack("<I", 300)
    data[strh + 40:strh + 44] = struct.pack("<I", 300)  # the stream's dwLength
    liar = tmp_path / "liar.avi"
    liar.write_bytes(bytes(data))
    with open_media(liar) as media, open_media(path) as honest:
        assert media.frame_count == 30
        assert np.array_equal(media.frame(29), honest.frame(29))


def test_truncated_videos_fail_only_with_our_one_line_errors(project, tmp_path):
    """Cut-off files: decord may refuse them, list frames it cannot decode (its DECORDError is
    not a RuntimeError), or read them; which one varies from run to run (threaded decoder), so
    the test holds every outcome to the rule: our error, one line, naming the file, nothing lost."""
    data = _write_avi(tmp_path / "full.avi").read_bytes()
    outcomes = []
    with Project.open(project) as proj:
        for pct in (43, 55, 67, 70, 85, 88):
            cut = tmp_path / f"cut{pct}.avi"
            cut.write_bytes(data[: len(data) * pct // 100])
            try:
                video = proj.add_video(cut)
            except MediaError as error:
                one_line_naming(error, cut.name)
                outcomes.append("refused")
                continue
            track = proj.add_track(video.id, "square")
            proj.set_box(track.id, 0, (0, 40, 20, 20))
            try:
                list(propagate(proj, video.id, _Stub()))
                outcomes.append("read")
            except MediaError as error:
                one_line_naming(error, cut.name)
                assert proj.runs()[-1]["status"] == "failed"
                outcomes.append("frame error")
            assert proj.keyframes(track.id) == [0]
            out = tmp_path / f"out{pct}"
            before = snapshot(project / "project.sqlite")
            try:
                export(proj, "mot", out, ExportOptions(videos=[video.id]))
            except ProjectError as error:
                one_line_naming(error, cut.name)
                assert not out.exists() and not list(tmp_path.glob(f".out{pct}.*"))
            else:
                assert len(list((out / f"cut{pct}" / "img1").iterdir())) == video.frames
            assert snapshot(project / "project.sqlite") == before
    assert len(outcomes) == 6


class _Stub:
    """A tracker stand-in: the network is not under test here."""

    def start(self, image: np.ndarray, box: tuple) -> TargetState:
        """Remember the box."""
        return TargetState(box=np.asarray(box, float))

    def step(self, states: list, image: np.ndarray) -> list:
        """Stay where we are."""
        return [(tuple(s.box), 0.9) for s in states]


def _frame_folder(folder: Path, count: int = 10) -> Path:
    folder.mkdir(parents=True)
    for i in range(count):
        cv2.imwrite(str(folder / f"{i + 1:08d}.jpg"), np.full((48, 64, 3), 20 * i, np.uint8))
    return folder


def test_image_folder_with_a_missing_frame_is_refused(project, tmp_path):
    img = _frame_folder(tmp_path / "seq" / "img")
    (img / "00000005.jpg").unlink()
    with pytest.raises(MediaError) as info:
        open_media(img)
    one_line_naming(info.value, "00000005.jpg")
    # The same hole met through a LaSOT import: refused, naming the missing file, nothing added.
    (tmp_path / "seq" / "groundtruth.txt").write_text("".join("1,2,10,10\n" for _ in range(10)))
    before = snapshot(project / "project.sqlite")
    with Project.open(project) as proj, pytest.raises(FormatError) as info:
        import_(proj, "lasot", tmp_path / "seq")
    one_line_naming(info.value, "00000005.jpg")
    assert snapshot(project / "project.sqlite") == before


def test_unreadable_frame_inside_a_folder_names_the_file(tmp_path):
    img = _frame_folder(tmp_path / "img")
    (img / "00000007.jpg").write_bytes(b"")
    with open_media(img) as media:
        assert media.frame_count == 10
        with pytest.raises(MediaError) as info:
            media.frame(6)
    one_line_naming(info.value, "00000007.jpg")


# -- boxes from imports --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def exported(tmp_path_factory, videos_dir) -> Path:
    """tree.avi with one track exported once in every format (the seeds for the bad files)."""
    root = tmp_path_factory.mktemp("exported")
    with Project.create(root / "proj") as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "tree")
        for frame in range(video.frames):
            proj.set_box(track.id, frame, (10 + frame, 20, 50, 60))
        for fmt in ("lasot", "got10k", "cocovid", "mot"):
            export(proj, fmt, root / fmt)
    return root


def _label_file(root: Path, fmt: str) -> Path:
    return {
        "lasot": root / "lasot" / "tree" / "tree-1" / "groundtruth.txt",
        "got10k": root / "got10k" / "train" / "GOT-10k_Train_000001" / "groundtruth.txt",
        "cocovid": root / "cocovid" / "annotations.json",
        "mot": root / "mot" / "tree" / "gt" / "gt.txt",
    }[fmt]


def _try_import(dataset: Path, fmt: str, label: Path) -> None:
    """Import into a fresh project: success, or a one-line FormatError naming a file and no change."""
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "p") as target:
        before = snapshot(target.db_path)
        try:
            import_(target, fmt, dataset)
        except FormatError as error:
            text = str(error)
            assert "\n" not in text, text
            assert str(dataset) in text or label.name in text, text
            assert snapshot(target.db_path) == before
            return
        # Accepted: every stored box is finite, has a sane size and lies on an existing frame.
        for video in target.videos():
            for track in target.tracks(video.id):
                for r in target.boxes(track.id):
                    assert all(np.isfinite(r.box)) and r.w >= 0 and r.h >= 0
                    assert 0 <= r.frame < video.frames


@pytest.mark.parametrize("fmt", ["lasot", "got10k", "mot", "cocovid"])
@pytest.mark.parametrize("bad", ["nan", "-5", "1e12", "inf"])
def test_nan_negative_huge_boxes_are_refused_by_every_importer(exported, tmp_path, fmt, bad):
    dataset = tmp_path / fmt
    shutil.copytree(exported / fmt, dataset)
    label = _label_file(tmp_path, fmt)
    if fmt == "cocovid":
        doc = json.loads(label.read_text())
        doc["annotations"][3]["bbox"][2] = float(bad)
        label.write_text(json.dumps(doc))  # NaN/Infinity are what Python's json writes
    else:
        lines = label.read_text().splitlines()
        values = lines[3].split(",")
        values[4 if fmt == "mot" else 2] = bad  # the width
        if fmt == "mot" and bad in ("nan", "inf"):
            values[0] = bad  # and the frame number, which is turned into an int
        lines[3] = ",".join(values)
        label.write_text("\n".join(lines) + "\n")
    with tempfile.TemporaryDirectory() as scratch, Project.create(Path(scratch) / "p") as target:
        with pytest.raises(FormatError) as info:
            import_(target, fmt, dataset)
        one_line_naming(info.value, label.name)
        assert target.videos() == [] and target.history() == []


# -- property-based fuzzing of the importers -------------------------------------------------------
_number = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", " ", "nan", "-inf", "1e400", "0x10", "1,5", "—", "\x00", "9" * 40]),
)
_line = st.lists(_number, min_size=0, max_size=11).flatmap(
    lambda parts: st.sampled_from([",", " ", "\t", ";"]).map(lambda sep: sep.join(parts))
)
_text = st.one_of(
    st.lists(_line, max_size=80).map("\n".join),
    st.text(max_size=300),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@pytest.mark.parametrize("fmt", ["lasot", "got10k", "mot"])
@FUZZ
@given(data=st.data())
def test_fuzzed_text_label_files(exported, tmp_path, fmt, data):
    dataset = tmp_path / fmt
    if not dataset.exists():
        shutil.copytree(exported / fmt, dataset)
    label = _label_file(tmp_path, fmt)
    original = _label_file(exported, fmt).read_text()
    lines = original.splitlines()
    # Mostly valid files with a few broken lines find more than pure noise does.
    if data.draw(st.booleans()):
        content = data.draw(_text)
    else:
        for _ in range(data.draw(st.integers(1, 4))):
            lines[data.draw(st.integers(0, len(lines) - 1))] = data.draw(_line)
        content = "\n".join(lines) + "\n"
    extra = {"lasot": ["full_occlusion.txt", "out_of_view.txt"], "got10k": ["absence.label", "cover.label", "meta_info.ini"], "mot": ["../seqinfo.ini", "labels.txt"]}[fmt]
    side = label.parent / data.draw(st.sampled_from(extra))
    side_original = side.read_bytes() if side.exists() else None
    try:
        label.write_bytes(content.encode("utf-8", "surrogatepass"))
        if data.draw(st.booleans()):
            side.write_bytes(data.draw(_text).encode("utf-8", "surrogatepass"))
        _try_import(dataset, fmt, label)
    finally:
        label.write_text(original)
        if side_original is None:
            side.unlink(missing_ok=True)
        else:
            side.write_bytes(side_original)


_json = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=10), children, max_size=4)),
    max_leaves=12,
)


@FUZZ
@given(data=st.data())
def test_fuzzed_cocovid_json(exported, tmp_path, data):
    dataset = tmp_path / "cocovid"
    if not dataset.exists():
        shutil.copytree(exported / "cocovid", dataset)
    label = dataset / "annotations.json"
    original = (exported / "cocovid" / "annotations.json").read_text()
    doc = json.loads(original)
    # Replace a few fields anywhere in a valid document with arbitrary JSON values.
    for _ in range(data.draw(st.integers(1, 4))):
        section = data.draw(st.sampled_from(["categories", "videos", "images", "annotations", "tracks", None]))
        if section is None:
            doc = data.draw(_json) if data.draw(st.booleans()) else doc
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get(section), list) or not doc[section]:
            continue
        items = doc[section]
        index = data.draw(st.integers(0, len(items) - 1))
        if isinstance(items[index], dict) and items[index] and data.draw(st.booleans()):
            key = data.draw(st.sampled_from(sorted(items[index])))
            items[index][key] = data.draw(_json)
        else:
            items[index] = data.draw(_json)
    try:
        label.write_text(json.dumps(doc) if data.draw(st.integers(0, 9)) else data.draw(_text))
        _try_import(dataset, "cocovid", label)
    finally:
        label.write_text(original)


# -- checkpoints ----------------------------------------------------------------------------------
class _Hostile:
    """Unpickling runs a shell command that creates `marker` (with an ordinary unpickler)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickles_never_run_through_any_entry_point(project, tmp_path, capsys, monkeypatch):
    """The project CLI, the trainer's --base and the trainer's --resume state all refuse it."""
    marker = tmp_path / "PWNED"
    evil = tmp_path / "evil.pth.tar"
    torch.save({"net": {"x": torch.zeros(1)}, "settings": _Hostile(marker)}, evil)
    before = snapshot(project / "project.sqlite")
    code, err = _cli(capsys, "track", str(project), "--model", str(evil))
    assert code == 2
    one_line_naming(err, "evil.pth.tar")
    monkeypatch.setattr(train_cli, "_stop_cleanly_on_signals", lambda: None)  # keep pytest's handlers
    code = train_cli.main(["--data", str(project), "--base", str(evil), "--out", str(tmp_path / "run"), "--steps", "1"])
    assert code == 2
    one_line_naming(capsys.readouterr().err, "evil.pth.tar")
    # A run folder whose optimiser state was swapped for a hostile pickle: refused on --resume.
    run = tmp_path / "run2"
    (run / "checkpoints").mkdir(parents=True)
    state = run / "checkpoints" / "step_0000001.state.pt"
    torch.save({"step": 1, "evil": _Hostile(marker)}, state)
    (run / "latest.json").write_text(json.dumps({"step": 1, "weights": "checkpoints/x.safetensors", "state": "checkpoints/step_0000001.state.pt"}))
    with pytest.raises(TrainingError) as info:
        finetune([project], "sstrack-lite", run, steps=2, train=TrainConfig(workers=0), resume=True)
    one_line_naming(info.value, "step_0000001.state.pt")
    assert not marker.exists(), "a checkpoint's pickle ran code"
    assert snapshot(project / "project.sqlite") == before


def test_broken_resume_pointers_are_one_line_errors(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "latest.json").write_text('{"step": 1, "weights": "checkpoints/a.safetensors"')  # cut off
    with pytest.raises(TrainingError) as info:
        finetune([tmp_path], "sstrack-lite", run, steps=2, resume=True)
    one_line_naming(info.value, "latest.json")
    (run / "latest.json").write_text(json.dumps({"step": 1, "weights": "checkpoints/a.safetensors", "state": "checkpoints/a.state.pt"}))
    with pytest.raises(TrainingError) as info:
        finetune([tmp_path], "sstrack-lite", run, steps=2, resume=True)
    one_line_naming(info.value, "a.state.pt")


def test_safetensors_with_wrong_shapes_or_a_lying_header(project, tmp_path, capsys):
    model = build_model(get_config("sstrack-lite", **TINY))
    save_model(model, tmp_path / "ok.safetensors")
    state = {k: v.clone() for k, v in model.state_dict().items()}
    key = next(k for k, v in state.items() if v.ndim == 2)
    state[key] = torch.zeros(state[key].shape[0] + 3, state[key].shape[1])
    save_file(state, str(tmp_path / "reshaped.safetensors"))
    # The card names these weights (without a sha256), so the shape check is what must refuse them.
    card = json.loads((tmp_path / "ok.json").read_text())
    card.update(weights="reshaped.safetensors")
    card.pop("sha256")
    (tmp_path / "reshaped.json").write_text(json.dumps(card))
    # A header that declares far more data than the file holds.
    header = json.dumps({"w": {"dtype": "F32", "shape": [100000, 1000], "data_offsets": [0, 400000000]}}).encode()
    liar = tmp_path / "liar.safetensors"
    liar.write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 64)
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes((tmp_path / "ok.safetensors").read_bytes()[:5000])
    before = snapshot(project / "project.sqlite")
    for bad, pattern in ((tmp_path / "reshaped.safetensors", "wrong shapes"), (liar, "unreadable"), (truncated, "unreadable")):
        with pytest.raises(CheckpointError, match=pattern) as info:
            load_model(bad)
        one_line_naming(info.value, bad.name)
        code, err = _cli(capsys, "track", str(project), "--model", str(bad))
        assert code == 2
        one_line_naming(err, bad.name)
    assert snapshot(project / "project.sqlite") == before


def test_a_recheck_of_a_round_whose_result_is_hostile_is_one_line(project, tmp_path, capsys):
    """A FIFO as the round's result.json hung `sstrack-adapt --recheck`; a list or deep nesting was a traceback."""
    import os

    from trainer import adapt_cli

    for name, write in (("list", lambda p: p.write_text("[1, 2]")), ("deep", lambda p: p.write_text("[" * 100_000 + "]" * 100_000)),
                        ("fifo", os.mkfifo)):
        folder = tmp_path / name
        folder.mkdir()
        write(folder / "result.json")
        (folder / "model.safetensors").write_bytes(b"")
        assert adapt_cli.main([str(project), "--video", "1", "--recheck", str(folder / "model.safetensors")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "result.json: not the result of an adaptation round" in err, err


def test_a_metrics_line_whose_step_is_not_a_number_is_a_one_line_error_on_resume(tmp_path):
    from trainer.loop import _truncate_metrics

    metrics = tmp_path / "metrics.jsonl"
    metrics.write_text('{"step": "one"}\n{"step": 2}\n')
    with pytest.raises(TrainingError) as info:
        _truncate_metrics(metrics, 1)
    one_line_naming(info.value, "metrics.jsonl:1")
