"""Issue 19 (medium): hostile annotation files fail at once with one line, never hang, never fill
memory, never read outside the dataset folder, and never hold the write lock while reading."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time

import pytest

from projects import Project
from projects.errors import FormatError
from projects.formats import export, import_
from tests.reliability_support import one_line_naming


@pytest.fixture()
def project(tmp_path, videos_dir):
    proj = Project.create(tmp_path / "proj")
    video = proj.add_video(videos_dir / "tree.avi")
    proj.set_box(proj.add_track(video.id, "car").id, 0, (100, 80, 40, 40))
    yield proj
    proj.close()


def _exported(project, fmt, tmp_path):
    out = tmp_path / f"export-{fmt}"
    export(project, fmt, out)
    return out


def test_label_file_that_is_dev_zero_or_a_fifo(project, tmp_path):
    out = _exported(project, "lasot", tmp_path)
    nlp = next(out.rglob("groundtruth.txt")).with_name("nlp.txt")
    nlp.unlink(missing_ok=True)
    nlp.symlink_to("/dev/zero")
    with Project.create(tmp_path / "a") as target, pytest.raises(FormatError) as error:
        import_(target, "lasot", out)
    one_line_naming(error.value, "nlp.txt")
    nlp.unlink()
    os.mkfifo(nlp)
    started = time.monotonic()
    with Project.create(tmp_path / "b") as target, pytest.raises(FormatError, match="not a regular file"):
        import_(target, "lasot", out)
    assert time.monotonic() - started < 10


def test_fifo_among_the_frames_does_not_hang(project, tmp_path):
    out = _exported(project, "cocovid", tmp_path)
    frame = sorted(out.rglob("*.jpg"))[3]
    frame.unlink()
    os.mkfifo(frame)
    with Project.create(tmp_path / "t") as target, pytest.raises(FormatError, match=frame.name):
        import_(target, "cocovid", out)


def test_deep_json_and_infinite_mot_class(project, tmp_path):
    out = _exported(project, "cocovid", tmp_path)
    (out / "annotations.json").write_text("[" * 100_000 + "]" * 100_000)
    with Project.create(tmp_path / "a") as target, pytest.raises(FormatError) as error:
        import_(target, "cocovid", out)
    one_line_naming(error.value, "annotations.json")
    mot = _exported(project, "mot", tmp_path)
    gt = next(mot.rglob("gt.txt"))
    gt.write_text("1,1,100,80,40,40,1,inf,1\n")
    with Project.create(tmp_path / "b") as target, pytest.raises(FormatError, match="class must be finite"):
        import_(target, "mot", mot)


def test_paths_that_leave_the_dataset_are_refused(project, tmp_path):
    outside = tmp_path / "outside-frames"
    coco = _exported(project, "cocovid", tmp_path)
    shutil.copytree(next(coco.rglob("img")), outside)
    doc = json.loads((coco / "annotations.json").read_text())
    for image in doc["images"]:
        image["file_name"] = "../outside-frames/" + image["file_name"].rsplit("/", 1)[1]
    (coco / "annotations.json").write_text(json.dumps(doc))
    with Project.create(tmp_path / "a") as target, pytest.raises(FormatError, match="outside the dataset folder"):
        import_(target, "cocovid", coco)
    mot = _exported(project, "mot", tmp_path)
    ini = next(mot.rglob("seqinfo.ini"))
    ini.write_text(ini.read_text().replace("imDir=img1", "imDir=../../outside-frames"))
    with Project.create(tmp_path / "b") as target, pytest.raises(FormatError, match="outside the dataset folder"):
        import_(target, "mot", mot)
    got = _exported(project, "got10k", tmp_path)
    listing = next(got.rglob("list.txt"))
    listing.write_text("../../outside-frames\n")
    with Project.create(tmp_path / "c") as target, pytest.raises(FormatError, match="outside the dataset folder"):
        import_(target, "got10k", listing.parent)
    lasot = _exported(project, "lasot", tmp_path)
    img = next(lasot.rglob("img"))
    shutil.rmtree(img)
    img.symlink_to(outside, target_is_directory=True)
    with Project.create(tmp_path / "d") as target, pytest.raises(FormatError, match="outside the dataset folder"):
        import_(target, "lasot", lasot)


def test_a_slow_import_does_not_block_another_writer(project, tmp_path, monkeypatch):
    # While the importer reads frame folders, another process's edit must go through at once.
    import projects.formats.cocovid as cocovid

    out = _exported(project, "cocovid", tmp_path)
    reading = threading.Event()
    release = threading.Event()
    real_open = cocovid.open_media

    def slow_open(*args, **kwargs):
        reading.set()
        release.wait(30)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(cocovid, "open_media", slow_open)
    target_dir = tmp_path / "target"
    Project.create(target_dir).close()
    errors = []

    def run_import():
        try:
            with Project.open(target_dir) as target:
                import_(target, "cocovid", out)
        except Exception as error:  # reported below
            errors.append(error)

    worker = threading.Thread(target=run_import)
    worker.start()
    assert reading.wait(30)
    with Project.open(target_dir) as other:
        started = time.monotonic()
        other.set_setting("touched", "yes")  # a write transaction
        assert time.monotonic() - started < 2
    release.set()
    worker.join(60)
    assert not errors
