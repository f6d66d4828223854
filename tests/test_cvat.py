"""CVAT for video 1.1 XML (issue 17): a real CVAT export imports, and our round trip is identical.

The reader's rules, from CVAT's own importer (cvat/apps/dataset_manager/formats/cvat.py,
`load_anno`): a `<track label>` holds `<box frame outside occluded keyframe xtl ytl xbr ybr>`
shapes; `frame` is the frame number in the video (0-based, start_frame/frame_filter already
applied: the fixture's task starts at frame 10 with step 3 and its boxes sit on 10, 13, 16);
coordinates are pixels of `<original_size>`; `outside="1"` means the object is not in view from
that keyframe on; CVAT interpolates between keyframes, so every box we write is a keyframe.
"""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from projects import Project
from projects.errors import FormatError
from projects.formats import export, import_
from projects.formats.common import ExportOptions
from projects.store import BoxRecord
from tests.test_media_exact import write_video

# From openvinotoolkit/datumaro, tests/assets/cvat_dataset/for_video/annotations.xml (MIT): a
# CVAT 1.1 "for video" dump with one box track ("II": a box on frame 10, outside from 13), and
# points, polyline and skeleton tracks that are not boxes.
DATUMARO_EXPORT = Path(__file__).parent / "data" / "cvat" / "datumaro_for_video_annotations.xml"


def test_a_real_cvat_export_imports_its_box_track_scaled_to_the_video(tmp_path):
    shutil.copy(DATUMARO_EXPORT, tmp_path / "annotations.xml")
    # Its task was 25x20 (<original_size>); the video beside it is the same picture at 50x40.
    write_video(tmp_path / "t.mp4", 20, (50, 40))
    with Project.create(tmp_path / "p") as project:
        (track_id,) = import_(project, "cvat", tmp_path / "annotations.xml")
        track = project.track(track_id)
        assert track.label == "II" and project.video(track.video_id).name == "t"
        rows = {r.frame: r for r in project.boxes(track_id)}
        assert sorted(rows) == [10, 13, 16]
        assert rows[10].box == (6.0, 8.0, 14.0, 2.0) and rows[10].occluded and rows[10].source == "manual"
        assert rows[13].out_of_view and not rows[13].has_box
        assert rows[16].out_of_view and not rows[16].has_box
        assert project.undo() == "import annotations.xml" and project.tracks(track.video_id) == []


def _sample_project(folder: Path, video: Path) -> Project:
    project = Project.create(folder)
    v = project.add_video(video)
    dog = project.add_track(v.id, "Hünd, groß")  # unicode labels stay as they are
    project.set_box(dog.id, 0, (100, 80, 60, 60))
    with project.edit("tracked"):
        project.put_boxes([BoxRecord(dog.id, f, 100.0 + f, 80.0, 60.0, 60.0, "tracked", round(0.5 + f / 40, 4)) for f in range(1, 10)])
        project.put_boxes([BoxRecord(dog.id, f, 120.0, 70.0, 50.0, 50.0, "interpolated") for f in range(21, 25)])
    project.set_flags(dog.id, 5, occluded=True)
    project.set_flags(dog.id, 10, out_of_view=True)
    project.set_flags(dog.id, 11, occluded=True)  # fully occluded, no box
    project.set_box(dog.id, 20, (120.25, 70.5, 50, 50))  # after a gap (12..19)
    project.set_box(dog.id, 40, (90, 60, 30, 30))  # after a gap that follows a box (25..39)
    car = project.add_track(v.id, "car")
    project.set_box(car.id, 30, (10, 12, 40, 30))
    return project


def _rows(project: Project) -> list[tuple]:
    return [
        (t.label, r.frame, r.box if r.has_box else None, r.source, r.score, r.occluded, r.out_of_view)
        for v in project.videos() for t in project.tracks(v.id) for r in project.boxes(t.id)
    ]


def test_export_import_export_is_identical(tmp_path, videos_dir):
    with _sample_project(tmp_path / "a", videos_dir / "tree.avi") as first:
        report = export(first, "cvat", tmp_path / "out1")
        assert report.sequences == 2
        before = _rows(first)
    xml = tmp_path / "out1" / "tree" / "annotations.xml"
    with Project.create(tmp_path / "b") as second:
        second.add_video(videos_dir / "tree.avi")  # the video the XML names in <source>
        import_(second, "cvat", xml)
        assert _rows(second) == before
        export(second, "cvat", tmp_path / "out2")
    assert (tmp_path / "out2" / "tree" / "annotations.xml").read_bytes() == xml.read_bytes()


def test_what_cvat_reads_from_our_export(tmp_path, videos_dir):
    with _sample_project(tmp_path / "a", videos_dir / "tree.avi") as project:
        export(project, "cvat", tmp_path / "out", ExportOptions())
    root = ET.parse(tmp_path / "out" / "tree" / "annotations.xml").getroot()
    assert root.findtext("version") == "1.1" and root.findtext("meta/source") == "tree.avi"
    assert [label.findtext("name") for label in root.findall("meta/task/labels/label")] == ["Hünd, groß", "car"]
    dog = root.findall("track")[0]
    shapes = {int(b.get("frame")): b for b in dog.findall("box")}
    assert all(b.get("keyframe") == "1" for b in shapes.values())  # CVAT would re-interpolate others
    assert (shapes[0].get("xtl"), shapes[0].get("ybr")) == ("100.00", "140.00")  # corners, not x,y,w,h
    assert shapes[5].get("occluded") == "1" and shapes[5].get("outside") == "0"
    assert shapes[10].get("outside") == "1" and shapes[11].get("outside") == "1"
    # Outside from frame 11 holds through the gap until the keyframe on 20 (no marker needed).
    assert 12 not in shapes and shapes[20].get("outside") == "0"
    assert shapes[25].get("outside") == "1"  # a gap after a box: CVAT would interpolate across it
    assert shapes[40].get("outside") == "0" and shapes[41].get("outside") == "1"  # the end, else CVAT extends it
    assert max(shapes) == 41


def test_a_cvat_outside_shape_is_out_of_view_even_when_flagged_occluded(tmp_path, videos_dir):
    # CVAT cvat/apps/dataset_manager/formats/cvat.py, dump_as_cvat_interpolation: the outside
    # keyframe that ends a track copies the last shape's occluded flag (occluded=shape.occluded,
    # outside=True); the object has left the view, it is not hidden behind something.
    (tmp_path / "cvat.xml").write_text(
        '<annotations><meta><source>tree.avi</source></meta><track id="0" label="car" source="manual">'
        '<box frame="0" outside="0" occluded="1" keyframe="1" xtl="10" ytl="10" xbr="50" ybr="40"/>'
        '<box frame="1" outside="1" occluded="1" keyframe="1" xtl="10" ytl="10" xbr="50" ybr="40"/></track></annotations>')
    with Project.create(tmp_path / "p") as project:
        project.add_video(videos_dir / "tree.avi")
        (track_id,) = import_(project, "cvat", tmp_path / "cvat.xml")
        first, second = project.boxes(track_id)
        assert first.has_box and first.occluded
        assert second.out_of_view and not second.occluded and not second.has_box


def test_a_cvat_job_export_imports_into_the_projects_only_video(tmp_path, videos_dir):
    # CVAT cvat/apps/dataset_manager/bindings.py, JobData._init_meta: a job's dump has <meta><job>
    # and <original_size> straight under <meta>, and no <source> or <task>.
    (tmp_path / "job.xml").write_text(
        '<annotations><version>1.1</version><meta><job><id>7</id><size>68</size><mode>interpolation</mode>'
        '<start_frame>0</start_frame><stop_frame>67</stop_frame></job><dumped>2026-12-01</dumped>'
        '<original_size><width>640</width><height>480</height></original_size></meta>'
        '<track id="0" label="car" source="manual">'
        '<box frame="3" outside="0" occluded="0" keyframe="1" xtl="20" ytl="20" xbr="100" ybr="80"/></track></annotations>')
    with Project.create(tmp_path / "p") as project:
        project.add_video(videos_dir / "tree.avi")  # 320x240: the job's 640x480 boxes are halved
        (track_id,) = import_(project, "cvat", tmp_path / "job.xml")
        assert project.box_at(track_id, 3).box == (10.0, 10.0, 40.0, 30.0)
        project.add_video(videos_dir / "vtest.avi")
        with pytest.raises(FormatError, match="a CVAT job's export names no video, and the project holds 2"):
            import_(project, "cvat", tmp_path / "job.xml")


def test_hostile_and_mismatched_files_are_one_line_errors(tmp_path, videos_dir):
    bomb = '<?xml version="1.0"?><!DOCTYPE a [<!ENTITY a "aaaaaaaaaa">' + "".join(
        f'<!ENTITY {chr(98 + i)} "' + f"&{chr(97 + i)};" * 10 + '">' for i in range(8)) + "]><annotations>&i;</annotations>"
    (tmp_path / "bomb.xml").write_text(bomb)
    (tmp_path / "images.xml").write_text('<annotations><version>1.1</version><image id="0" name="a.jpg"/></annotations>')
    (tmp_path / "novideo.xml").write_text(
        '<annotations><meta><source>elsewhere.mp4</source></meta><track id="0" label="a">'
        '<box frame="0" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="9" ybr="9"/></track></annotations>')
    (tmp_path / "squashed.xml").write_text(
        '<annotations><meta><task><original_size><width>100</width><height>100</height></original_size></task>'
        '<source>tree.avi</source></meta><track id="0" label="a">'
        '<box frame="0" outside="0" occluded="0" keyframe="1" xtl="1" ytl="1" xbr="9" ybr="9"/></track></annotations>')
    with Project.create(tmp_path / "p") as project:
        project.add_video(videos_dir / "tree.avi")  # 320x240: not the 1:1 of squashed.xml
        for name, words in (("bomb.xml", "XML"), ("images.xml", "CVAT for video"), ("novideo.xml", "add-video"),
                            ("squashed.xml", "100x100")):
            started = time.perf_counter()
            with pytest.raises(FormatError, match=words) as error:
                import_(project, "cvat", tmp_path / name)
            assert "\n" not in str(error.value) and name in str(error.value)
            assert time.perf_counter() - started < 5
        assert project.tracks(project.videos()[0].id) == []


def test_an_ambiguous_video_name_is_refused_not_guessed(tmp_path, videos_dir):
    shutil.copy(videos_dir / "tree.avi", tmp_path / "tree.avi")
    with _sample_project(tmp_path / "a", videos_dir / "tree.avi") as project:
        export(project, "cvat", tmp_path / "out")
    with Project.create(tmp_path / "b") as project:
        project.add_video(videos_dir / "tree.avi")
        project.add_video(tmp_path / "tree.avi")  # another file of the same name
        with pytest.raises(FormatError, match="2 videos of the project match"):
            import_(project, "cvat", tmp_path / "out" / "tree" / "annotations.xml")


def test_importing_the_same_cvat_file_twice_is_refused_not_doubled(tmp_path, videos_dir):
    """CVAT imports into the video already in the project: a second import doubled every object, silently."""
    from projects.errors import FormatError
    from tests.reliability_support import snapshot

    with _sample_project(tmp_path / "a", videos_dir / "tree.avi") as first:
        export(first, "cvat", tmp_path / "out")
    xml = tmp_path / "out" / "tree" / "annotations.xml"
    with Project.create(tmp_path / "b") as second:
        second.add_video(videos_dir / "tree.avi")
        import_(second, "cvat", xml)
        before = snapshot(second.db_path)
        with pytest.raises(FormatError, match=r"annotations.xml: its track 'Hünd, groß' is already track 1 of tree, box for box"):
            import_(second, "cvat", xml)
        assert snapshot(second.db_path) == before
        (dog, car) = second.tracks(1)
        second.set_box(dog.id, 3, (1, 2, 30, 30))  # the user corrected the dog: now a different object
        second.delete_track(car.id)
        assert len(import_(second, "cvat", xml)) == 2
