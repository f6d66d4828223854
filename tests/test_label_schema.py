"""The label schema (issue 16): an object's class apart from its name, kept by the store (undo,
migration) and written as the class by every format, which the readers read as the class."""

from __future__ import annotations

import json
import shutil
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from projects import FormatError, Project, ProjectError
from projects.formats import export, import_
from projects.schema import SCHEMA_VERSION

V2_PROJECT = Path(__file__).parent / "data" / "project_v2" / "project.sqlite"


@pytest.fixture()
def classified(tmp_path, videos_dir):
    """tree.avi: two objects of class "car" and one of class "dog", each with a box on frames 0..2."""
    project = Project.create(tmp_path / "proj")
    video = project.add_video(videos_dir / "tree.avi")
    for number, (name, category) in enumerate((("car 1", "car"), ("car 2", "car"), ("Rex", "dog"))):
        track = project.add_track(video.id, name, category=category)
        for frame in range(3):
            project.set_box(track.id, frame, (20 + 60 * number, 40, 40, 30))
    yield project
    project.close()


def _names(project: Project) -> list[tuple[str, str]]:
    return [(t.label, t.class_name) for v in project.videos() for t in project.tracks(v.id)]


def test_the_store_keeps_a_class_apart_from_the_name_with_undo(classified):
    assert _names(classified) == [("car 1", "car"), ("car 2", "car"), ("Rex", "dog")]
    assert classified.classes() == ["car", "dog"]
    rex = classified.tracks(classified.videos()[0].id)[2]
    classified.update_track(rex.id, category="wolf")
    assert classified.track(rex.id).class_name == "wolf" and classified.classes() == ["car", "wolf"]
    assert classified.undo() == "edit track Rex"
    assert classified.track(rex.id).class_name == "dog"
    plain = classified.add_track(rex.video_id, "tree")
    assert plain.category == "" and plain.class_name == "tree"  # no class given: the name is the class


def test_a_version_2_project_migrates_to_classes_equal_to_names(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(V2_PROJECT, folder / "project.sqlite")
    with Project.open(folder) as project:
        track = project.tracks(project.videos()[0].id)[0]
        assert track.category == "" and track.class_name == track.label
    version = sqlite3.connect(folder / "project.sqlite").execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    assert version == (str(SCHEMA_VERSION),)


def test_exports_write_the_class_where_the_readers_read_it(classified, tmp_path):
    export(classified, "cocovid", tmp_path / "coco")
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    # mmtracking's CocoVideoDataset / TAO read an annotation's class from its category_id.
    assert [c["name"] for c in doc["categories"]] == ["car", "dog"]
    assert [(t["name"], t["category_id"]) for t in doc["tracks"]] == [("car 1", 1), ("car 2", 1), ("Rex", 2)]
    export(classified, "mot", tmp_path / "mot")
    gt = tmp_path / "mot" / "tree" / "gt"
    # TrackEval's MOT17 table: "car" is class 3; "dog" is not in it and gets 14 (labels.txt line 14).
    classes = {int(line.split(",")[1]): int(line.split(",")[7]) for line in (gt / "gt.txt").read_text().splitlines()}
    assert classes == {1: 3, 2: 3, 3: 14} and (gt / "labels.txt").read_text().splitlines()[13] == "dog"
    export(classified, "lasot", tmp_path / "lasot")
    # pytracking's LaSOT loader takes the class from the folder name before the first '-'.
    assert sorted(p.name for p in (tmp_path / "lasot").glob("*/*-*")) == ["car-1", "car-2", "dog-1"]
    export(classified, "cvat", tmp_path / "cvat")
    tracks = ET.parse(tmp_path / "cvat" / "tree" / "annotations.xml").getroot().findall("track")
    assert [(t.get("label"), t.get("sstrack_name")) for t in tracks] == [("car", "car 1"), ("car", "car 2"), ("dog", "Rex")]


@pytest.mark.parametrize("fmt", ["cocovid", "mot", "cvat"])
def test_names_and_classes_survive_a_round_trip(classified, tmp_path, videos_dir, fmt):
    export(classified, fmt, tmp_path / "out")
    with Project.create(tmp_path / "again") as again:
        if fmt == "cvat":
            again.add_video(videos_dir / "tree.avi")
        import_(again, fmt, tmp_path / "out" / "tree" / "annotations.xml" if fmt == "cvat" else tmp_path / "out")
        assert _names(again) == _names(classified)


def test_objects_of_one_class_share_its_colour(classified):
    video_id = classified.videos()[0].id
    colours = {t.label: t.color for t in classified.tracks(video_id)}
    assert colours["car 1"] == colours["car 2"] != colours["Rex"]
    third = classified.add_track(video_id, "car 3", category="car")
    assert third.color == colours["car 1"]


def test_attributes_per_object_with_undo_and_refusals(classified):
    rex = classified.tracks(classified.videos()[0].id)[2]
    classified.update_track(rex.id, attributes={"breed": "Australian shepherd", "collar": "red"})
    assert classified.track(rex.id).attribute_map == {"breed": "Australian shepherd", "collar": "red"}
    classified.undo()
    assert classified.track(rex.id).attribute_map == {}
    for bad in (["breed"], {"breed": 3}, {"": "x"}, {f"k{i}": "v" for i in range(65)}):
        with pytest.raises(ProjectError, match="attributes must be"):
            classified.update_track(rex.id, attributes=bad)


@pytest.mark.parametrize("fmt", ["cocovid", "cvat"])
def test_attributes_travel_in_cvat_and_coco_and_come_back(classified, tmp_path, videos_dir, fmt):
    rex = classified.tracks(classified.videos()[0].id)[2]
    classified.update_track(rex.id, attributes={"breed": "shepherd", "collar": "red"})
    export(classified, fmt, tmp_path / "out")
    if fmt == "cvat":
        root = ET.parse(tmp_path / "out" / "tree" / "annotations.xml").getroot()
        # CVAT (cvat/apps/dataset_manager/formats/cvat.py) reads attributes as <attribute name=..> on each shape,
        # declared under the label in meta/task/labels.
        dog = [t for t in root.findall("track") if t.get("label") == "dog"][0]
        assert all({a.get("name"): a.text for a in box.findall("attribute")} == {"breed": "shepherd", "collar": "red"} for box in dog.findall("box"))
        declared = [lab for lab in root.findall("meta/task/labels/label") if lab.findtext("name") == "dog"][0]
        assert [a.findtext("name") for a in declared.findall("attributes/attribute")] == ["breed", "collar"]
    else:
        doc = json.loads((tmp_path / "out" / "annotations.json").read_text())
        assert [a["attributes"] for a in doc["annotations"] if a["instance_id"] == 3] == [{"breed": "shepherd", "collar": "red"}] * 3
    with Project.create(tmp_path / "again") as again:
        if fmt == "cvat":
            again.add_video(videos_dir / "tree.avi")
        import_(again, fmt, tmp_path / "out" / "tree" / "annotations.xml" if fmt == "cvat" else tmp_path / "out")
        export(again, fmt, tmp_path / "second")
        assert [t.attribute_map for t in again.tracks(again.videos()[0].id)] == [{}, {}, {"breed": "shepherd", "collar": "red"}]
    labels = next(p for p in (tmp_path / "out").rglob("*") if p.suffix in (".json", ".xml") and not p.name.startswith("."))
    again_labels = tmp_path / "second" / labels.relative_to(tmp_path / "out")
    assert again_labels.read_bytes() == labels.read_bytes()  # the round trip stays identical with attributes


def test_hostile_attributes_in_a_coco_file_are_a_one_line_error(classified, tmp_path):
    export(classified, "cocovid", tmp_path / "out")
    path = tmp_path / "out" / "annotations.json"
    doc = json.loads(path.read_text())
    doc["tracks"][0]["attributes"] = {"a": {"nested": 1}}
    path.write_text(json.dumps(doc))
    with Project.create(tmp_path / "again") as again:
        with pytest.raises(FormatError, match="annotations.json: attributes must be") as info:
            import_(again, "cocovid", tmp_path / "out")
        assert "\n" not in str(info.value) and again.videos() == []
