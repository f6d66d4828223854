"""Issue 17: exports read by the real readers' rules (pytracking, mmtracking, TAO, TrackEval)."""

from __future__ import annotations

import json

import pytest

from projects import FormatError, Project
from projects.formats import export, import_
from projects.formats.common import ExportOptions
from projects.store import BoxRecord

# TrackEval, trackeval/datasets/mot_challenge_2d_box.py, class_name_to_class_id (MOT17 table).
TRACKEVAL_MOT17 = {
    "pedestrian": 1, "person_on_vehicle": 2, "car": 3, "bicycle": 4, "motorbike": 5, "non_mot_vehicle": 6,
    "static_person": 7, "distractor": 8, "occluder": 9, "occluder_on_ground": 10, "occluder_full": 11,
    "reflection": 12, "crowd": 13,
}


@pytest.fixture()
def project(tmp_path, videos_dir):
    """tree.avi (320x240) and an empty project to import into."""
    proj = Project.create(tmp_path / "proj")
    video = proj.add_video(videos_dir / "tree.avi")
    yield proj, video
    proj.close()


def _lasot_gt(seq):
    return [[int(v) for v in line.split(",")] for line in (seq / "groundtruth.txt").read_text().splitlines()]


def test_lasot_class_never_holds_a_dash(project, tmp_path):
    proj, video = project
    for label in ("red-car", "tree", "red-car"):
        proj.set_box(proj.add_track(video.id, label).id, 0, (100, 80, 40, 40))
    report = export(proj, "lasot", tmp_path / "out")
    again = export(proj, "lasot", tmp_path / "again")
    names = sorted(p.parent.name + "/" + p.name for p in (tmp_path / "out").glob("*/*") if (p / "img").is_dir())
    assert names == ["red_car/red_car-1", "red_car/red_car-2", "tree/tree-1"]
    assert names == sorted(p.parent.name + "/" + p.name for p in (tmp_path / "again").glob("*/*") if (p / "img").is_dir())
    for name in names:
        cls, seq_name = name.split("/")
        # pytracking ltr/dataset/lasot.py and pytracking/evaluation/lasotdataset.py:
        # class_name = seq_name.split('-')[0], and the sequence lives at <root>/<class_name>/<seq_name>;
        # mmtracking's lasot2coco reads the class the same way.
        assert seq_name.split("-")[0] == cls and seq_name.split("-")[1].isdigit()
    renames = [w for w in report.warnings if "LaSOT class" in w]
    assert len(renames) == 1 and "'red-car'" in renames[0] and "'red_car'" in renames[0]
    assert again.warnings == report.warnings
    with Project.create(tmp_path / "imported") as target:
        ids = import_(target, "lasot", tmp_path / "out")
        assert sorted(target.track(i).label for i in ids) == ["red_car", "red_car", "tree"]


def test_lasot_boxes_are_one_based_and_inside_the_frame(project, tmp_path):
    proj, video = project
    track = proj.add_track(video.id, "ball")
    with proj.edit("boxes"):
        proj.set_box(track.id, 0, (0.2, 0.3, 40, 30))  # on the top-left border
        proj.set_box(track.id, 1, (100, 80, 40, 40))  # well inside: must round-trip unchanged
        proj.set_box(track.id, 2, (-10, -5, 40, 30))  # partly off the top-left
        proj.set_box(track.id, 3, (300, 220, 40, 40))  # partly off the bottom-right of the 320x240 frame
    report = export(proj, "lasot", tmp_path / "out")
    rows = _lasot_gt(tmp_path / "out" / "ball" / "ball-1")
    # LaSOT groundtruth.txt is 1-based; pytracking's robust evaluation (pytracking/analysis/
    # extract_results.py) takes x <= 0 or y <= 0 as an invalid frame, so a labelled box needs x, y >= 1.
    for x, y, w, h in rows[:4]:
        assert x >= 1 and y >= 1 and w > 0 and h > 0
        assert x + w - 1 <= video.width and y + h - 1 <= video.height  # last pixel inside the frame
    assert rows[:5] == [[1, 1, 40, 30], [101, 81, 40, 40], [1, 1, 30, 25], [301, 221, 20, 20], [0, 0, 0, 0]]
    out_of_view = (tmp_path / "out" / "ball" / "ball-1" / "out_of_view.txt").read_text().strip().split(",")
    assert out_of_view[:5] == ["0", "0", "0", "0", "1"]  # frame 5 has no box: absent, 0,0,0,0
    assert any("2 boxes clipped" in w for w in report.warnings)
    with Project.create(tmp_path / "imported") as target:
        (tid,) = import_(target, "lasot", tmp_path / "out")
        boxes = {r.frame: r.box for r in target.boxes(tid) if not r.out_of_view}
        assert boxes[0] == (0, 0, 40, 30) and boxes[1] == (100, 80, 40, 40)
        assert boxes[2] == (0, 0, 30, 25) and boxes[3] == (300, 220, 20, 20)


def test_cocovid_videos_and_annotations_as_tao_reads_them(project, tmp_path):
    proj, video = project
    track = proj.add_track(video.id, "person")
    with proj.edit("boxes"):
        for frame in range(3):
            proj.set_box(track.id, frame, (100, 80, 40, 40))
        proj.set_flags(track.id, 1, occluded=True)
        proj.set_flags(track.id, 2, out_of_view=True)  # a box kept on a frame marked out of view
        proj.set_flags(track.id, 5, out_of_view=True)  # flag-only rows: no box
        proj.set_flags(track.id, 6, occluded=True)
    report = export(proj, "cocovid", tmp_path / "coco")
    doc = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    for entry in doc["videos"]:
        # tao/toolkit/tao/tao.py reads both per video and raises KeyError without them.
        assert isinstance(entry["neg_category_ids"], list) and isinstance(entry["not_exhaustive_category_ids"], list)
    # A zero-area box would count as ground truth in COCO/TAO evaluation: flag-only rows are left out.
    frames = sorted(doc["images"][a["image_id"] - 1]["frame_id"] for a in doc["annotations"])
    assert frames == [0, 1, 2]
    assert all(a["area"] > 0 and a["bbox"][2] > 0 and a["bbox"][3] > 0 for a in doc["annotations"])
    assert any("2 frames with flags but no box" in w for w in report.warnings)
    # A hidden object's box is no visible ground truth. pycocotools/cocoeval.py COCOeval._prepare:
    # `gt['ignore'] = 'iscrowd' in gt and gt['iscrowd']` (it overwrites any 'ignore' field);
    # mmtrack/datasets/coco_video_dataset.py _parse_ann_info: `if ann.get('ignore', False): continue`;
    # mmtracking's MOT datasets drop boxes under their `visibility` threshold.
    cocoeval_ignores = {a["image_id"] - 1: bool("iscrowd" in a and a["iscrowd"]) for a in doc["annotations"]}
    mmtracking_skips = {a["image_id"] - 1: bool(a.get("ignore", False)) for a in doc["annotations"]}
    assert cocoeval_ignores == mmtracking_skips == {0: False, 1: True, 2: True}
    assert [a["visibility"] for a in doc["annotations"]] == [1.0, 0.0, 0.0]
    assert [(a["occluded"], a["out_of_view"]) for a in doc["annotations"]] == [(False, False), (True, False), (False, True)]
    with Project.create(tmp_path / "imported") as target:
        # Our importer tells these ignore regions (flagged) from crowd regions (not imported).
        (tid,) = import_(target, "cocovid", tmp_path / "coco")
        assert [(r.frame, r.occluded, r.out_of_view) for r in target.boxes(tid)] == [(0, False, False), (1, True, False), (2, False, True)]


def test_mot_class_ids_follow_the_trackeval_table(project, tmp_path):
    proj, video = project
    labels = ["person", "Car", "static person", "tree", "red car", "Pedestrian"]
    for label in labels:
        proj.set_box(proj.add_track(video.id, label).id, 0, (100, 80, 40, 40))
    report = export(proj, "mot", tmp_path / "mot")
    # TrackEval trackeval/datasets/mot_challenge_2d_box.py (BENCHMARK MOT17): only class 1 is scored,
    # gt class ids above 13 raise "invalid gt classes"; the export says so and how to get one class.
    (warning,) = [w for w in report.warnings if "TrackEval" in w]
    assert "'Car', 'static person', 'tree' ..." in warning and "--class-name pedestrian" in warning
    assert all("TrackEval" not in w for w in export(proj, "mot", tmp_path / "one", ExportOptions(class_name="pedestrian")).warnings)
    gt = tmp_path / "mot" / "tree" / "gt"
    class_of = {int(r[1]): int(r[7]) for r in (line.split(",") for line in (gt / "gt.txt").read_text().splitlines())}
    assert class_of == {1: 1, 2: 3, 3: 7, 4: 14, 5: 15, 6: 1}  # table ids, then 14+ for the rest
    names = (gt / "labels.txt").read_text().splitlines()  # CVAT: line i names class_id i
    assert {name: i for i, name in enumerate(names[:13], 1)} == TRACKEVAL_MOT17 and names[13:] == ["tree", "red car"]
    assert json.loads((gt / "labels.json").read_text())["classes"]["tree"] == 14
    with Project.create(tmp_path / "imported") as target:
        ids = import_(target, "mot", tmp_path / "mot")
        assert [target.track(i).label for i in ids] == labels  # labels.json keeps each track's own name
    (gt / "labels.json").unlink()
    (gt / "labels.txt").unlink()
    with Project.create(tmp_path / "plain") as target:  # a plain MOT17 gt: TrackEval's names
        ids = import_(target, "mot", tmp_path / "mot")
        assert [target.track(i).label for i in ids] == ["pedestrian", "car", "static_person", "class14", "class15", "pedestrian"]


def test_mot_malformed_label_map_is_one_line(project, tmp_path):
    proj, video = project
    proj.set_box(proj.add_track(video.id, "car").id, 0, (100, 80, 40, 40))
    export(proj, "mot", tmp_path / "mot")
    (tmp_path / "mot" / "tree" / "gt" / "labels.json").write_text('{"tracks": [1, 2]}')
    with Project.create(tmp_path / "imported") as target:
        with pytest.raises(FormatError, match="labels.json") as info:
            import_(target, "mot", tmp_path / "mot")
        assert "\n" not in str(info.value) and target.videos() == []


def test_an_export_root_holds_only_what_its_readers_list(project, tmp_path):
    """The export's own marker lay in its root, where readers that list the root failed on it."""
    proj, video = project
    proj.set_box(proj.add_track(video.id, "tree").id, 0, (100, 80, 40, 40))
    for fmt in ("lasot", "mot", "cocovid"):
        export(proj, fmt, tmp_path / fmt)
    # pytracking ltr/dataset/lasot.py: class_list = os.listdir(root), each a class folder; mmtracking
    # tools/convert_datasets/lasot/lasot2coco.py: for video_class in os.listdir(ann_dir): os.listdir(...).
    for entry in (tmp_path / "lasot").iterdir():
        assert entry.is_dir() and all(seq.name.startswith(entry.name + "-") for seq in entry.iterdir()), entry
    # mmtracking tools/convert_datasets/mot/mot2coco.py: video_names = os.listdir(in_folder), then
    # each one's seqinfo.ini is read.
    for entry in (tmp_path / "mot").iterdir():
        assert (entry / "seqinfo.ini").is_file(), entry
    # TrackEval trackeval/datasets/tao.py (TAO.__init__): the GT folder must hold exactly one .json.
    assert len([p for p in (tmp_path / "cocovid").iterdir() if p.name.endswith(".json")]) == 1


def test_a_box_with_no_whole_pixel_is_written_out_of_view_with_a_warning(project, tmp_path):
    # pytracking ltr/dataset/lasot.py: valid = (bbox[:, 2] > 0) & (bbox[:, 3] > 0); a 0.3 px box
    # rounds to 0,0,0,0, so the frame is marked out of view, and the user is told.
    proj, video = project
    track = proj.add_track(video.id, "speck")
    # As a tracker or an import may store it (the UI refuses boxes under 2x2 px).
    proj.put_boxes([BoxRecord(track.id, 0, 100.0, 80.0, 20.0, 20.0), BoxRecord(track.id, 1, 100.6, 80.6, 0.3, 0.3)])
    report = export(proj, "lasot", tmp_path / "out")
    (seq,) = (tmp_path / "out" / "speck").iterdir()
    assert _lasot_gt(seq)[1] == [0, 0, 0, 0] and (seq / "out_of_view.txt").read_text().split(",")[1] == "1"
    assert any("1 boxes with no whole pixel" in w for w in report.warnings)


def test_a_got10k_split_the_toolkit_cannot_read_is_warned_about(project, tmp_path):
    # got10k toolkit got10k/datasets/got10k.py: assert subset in ['train', 'val', 'test'].
    proj, video = project
    proj.set_box(proj.add_track(video.id, "tree").id, 0, (100, 80, 40, 40))
    assert export(proj, "got10k", tmp_path / "val", ExportOptions(split="val")).warnings == []
    report = export(proj, "got10k", tmp_path / "mine", ExportOptions(split="holdout"))
    assert report.warnings == ["split 'holdout': the got10k toolkit reads only train, val and test"]
