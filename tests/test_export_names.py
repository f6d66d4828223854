"""Names and labels no format's files can hold as they are: each export still reads back right.

Found by the stop-41 export review (/work/runs/s41/exports). Each reader's rule is named where
it is encoded.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

from projects import Project
from projects.formats import export, import_


def _frames(folder: Path, count: int, sot_dir: Path, start: int = 0) -> Path:
    """`count` real frames (Deer's) as a frame folder."""
    folder.mkdir(parents=True)
    for index, source in enumerate(sorted((sot_dir / "Deer" / "img").iterdir())[start : start + count]):
        shutil.copy(source, folder / f"{index + 1:08d}.jpg")
    return folder


def _project_with(tmp_path: Path, sot_dir: Path, labels: list[str]) -> Project:
    project = Project.create(tmp_path / "p")
    video = project.add_video(_frames(tmp_path / "seq", 4, sot_dir))
    for number, label in enumerate(labels):
        project.set_box(project.add_track(video.id, label).id, 0, (10 + 60 * number, 10, 50, 40))
    return project


def test_control_characters_are_left_out_of_cvat_xml_which_cannot_hold_them(tmp_path, sot_dir):
    """XML 1.0 forbids U+0001 even escaped: CVAT's parser and expat rejected the whole file."""
    with _project_with(tmp_path, sot_dir, ["car\x01"]) as project:
        (track,) = project.tracks(1)
        project.update_track(track.id, attributes={"note": "pasted\x0bfrom a PDF"})
        report = export(project, "cvat", tmp_path / "out")
    xml = tmp_path / "out" / "seq" / "annotations.xml"
    ET.parse(xml)  # well-formed
    assert any("control character(s) in labels, attributes or names left out" in warning for warning in report.warnings)
    with Project.create(tmp_path / "back") as back:
        back.add_video(tmp_path / "seq")
        import_(back, "cvat", xml)
        (track,) = back.tracks(1)
        assert track.class_name == "car" and track.attribute_map == {"note": "pastedfrom a PDF"}


def test_mot_labels_txt_names_class_i_on_line_i_whatever_the_labels(tmp_path, sot_dir):
    """CVAT and Datumaro read gt/labels.txt as line i = class i: a label with a line break took two
    lines and shifted every later class (bus read back as sign, truck as bus)."""
    with _project_with(tmp_path, sot_dir, ["traffic\nsign", "bus", "truck"]) as project:
        export(project, "mot", tmp_path / "out")
    gt = tmp_path / "out" / "seq" / "gt"
    names = gt.joinpath("labels.txt").read_text().splitlines()
    classes = [int(line.split(",")[7]) for line in gt.joinpath("gt.txt").read_text().splitlines()]
    assert [names[c - 1] for c in classes] == ["traffic sign", "bus", "truck"]
    gt.joinpath("labels.json").unlink()  # as when only the files CVAT knows are kept
    with Project.create(tmp_path / "back") as back:
        import_(back, "mot", tmp_path / "out")
        assert [t.class_name for t in back.tracks(1)] == ["traffic sign", "bus", "truck"]


def test_a_label_too_long_for_a_folder_name_still_exports_to_lasot(tmp_path, sot_dir):
    """A class of 92 CJK characters (over 255 bytes) made the whole LaSOT export fail."""
    long_label = "猫" * 100
    with _project_with(tmp_path, sot_dir, [long_label, "猫" * 99 + "犬"]) as project:
        export(project, "lasot", tmp_path / "out")
    folders = sorted(p.name for p in (tmp_path / "out").iterdir() if p.is_dir())
    assert len(folders) == 2 and all(len(name.encode()) <= 100 for name in folders)  # distinct, and short
    with Project.create(tmp_path / "back") as back:
        assert len(import_(back, "lasot", tmp_path / "out")) == 2


def test_a_video_named_like_the_coco_document_gets_its_own_folder(tmp_path, sot_dir):
    """A video called annotations.json took the document's path: "Is a directory"."""
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(_frames(tmp_path / "annotations.json", 3, sot_dir))
        project.set_box(project.add_track(video.id, "deer").id, 0, (10, 10, 50, 40))
        export(project, "cocovid", tmp_path / "out")
    assert json.loads((tmp_path / "out" / "annotations.json").read_text())["videos"][0]["name"] != "annotations.json"


def test_cvat_exports_of_two_videos_with_one_name_import_into_their_own_videos(tmp_path, sot_dir):
    """day1/cam and day2/cam: both XML files named the video 'cam', and the import was refused."""
    with Project.create(tmp_path / "p") as project:
        for day, label, start in (("day1", "x", 0), ("day2", "y", 30)):
            video = project.add_video(_frames(tmp_path / day / "cam", 4, sot_dir, start))
            project.set_box(project.add_track(video.id, label).id, 0, (10, 10, 50, 40))
        export(project, "cvat", tmp_path / "out")
    with Project.create(tmp_path / "back") as back:
        first, second = back.add_video(tmp_path / "day1" / "cam"), back.add_video(tmp_path / "day2" / "cam")
        for folder in sorted((tmp_path / "out").iterdir()):
            if folder.is_dir():
                import_(back, "cvat", folder / "annotations.xml")
        assert [t.label for t in back.tracks(first.id)] == ["x"] and [t.label for t in back.tracks(second.id)] == ["y"]


def test_an_object_without_boxes_survives_a_cvat_round_trip(tmp_path, sot_dir):
    """An object defined before any box was drawn was written to the XML and dropped by the import."""
    with _project_with(tmp_path, sot_dir, ["deer"]) as project:
        project.add_track(1, "second deer")  # no box yet
        export(project, "cvat", tmp_path / "out")
    # CVAT cvat/apps/dataset_manager/formats/cvat.py, load_anno: at each </track> it reads
    # track.shapes[0] (the keyframe shapes), so one track without a box fails the whole upload.
    document = ET.parse(tmp_path / "out" / "seq" / "annotations.xml").getroot()
    assert all(track.find("box") is not None for track in document.iter("track"))
    with Project.create(tmp_path / "back") as back:
        back.add_video(tmp_path / "seq")
        import_(back, "cvat", tmp_path / "out" / "seq" / "annotations.xml")
        assert sorted(t.label for t in back.tracks(1)) == ["deer", "second deer"]
