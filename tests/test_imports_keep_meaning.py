"""Imports that keep their meaning (issue 17): each reader's rule, with the reader named."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from projects import Project
from projects.formats import import_


def frames(folder: Path, names: list[str], size: tuple[int, int] = (96, 64)) -> Path:
    folder.mkdir(parents=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((size[1], size[0], 3), 40 * k % 255, np.uint8))
    return folder


def test_mot_ignore_rows_mot15_visibility_names_and_frame_rate(tmp_path):
    seq = tmp_path / "MOT17-02"
    frames(seq / "img1", [f"{i:06d}.jpg" for i in range(1, 6)])
    (seq / "seqinfo.ini").write_text("[Sequence]\nname=MOT17-02\nimDir=img1\nframeRate=25\nseqLength=5\nimWidth=96\nimHeight=64\nimExt=.jpg\n")
    (seq / "gt").mkdir()
    (seq / "gt" / "gt.txt").write_text(
        "1,1,10,10,20,30,1,1,1.0\n"
        "2,1,12,10,20,30,1,1,0.0\n"       # MOT17: visibility 0 is fully occluded
        "1,2,50,20,10,10,0,8,1.0\n"       # conf 0: a distractor to ignore (TrackEval zero_marked)
        "1,3,40,5,20,20,1,1,-1\n"         # MOT15: visibility -1 means "not given"
    )
    with Project.create(tmp_path / "p") as project:
        ids = import_(project, "mot", seq)
        (video,) = project.videos()
        assert video.name == "MOT17-02" and video.fps == 25.0  # not "img1", not a default rate
        assert [project.track(t).label for t in ids] == ["pedestrian", "pedestrian"]  # ids 1 and 3; the ignore row made no track "distractor"
        rows = [r for t in ids for r in project.boxes(t)]
        assert {(r.frame, r.occluded) for r in rows if r.box[0] in (10.0, 12.0)} == {(0, False), (1, True)}
        assert [r.occluded for r in rows if r.box[0] == 40.0] == [False]


def test_coco_crowd_regions_are_not_tracks_and_tao_frames_sit_where_their_files_do(tmp_path):
    root = tmp_path / "tao"
    frames(root / "frames" / "v1", ["frame0331.jpg", "frame0361.jpg", "frame0391.jpg", "frame0421.jpg"])
    doc = {
        "videos": [{"id": 1, "name": "v1"}],
        # TAO: frame_id counts the annotated frames; the files sit at positions 2 and 3 of the folder.
        "images": [{"id": 11, "video_id": 1, "file_name": "frames/v1/frame0391.jpg", "frame_id": 1, "frame_index": 390},
                   {"id": 12, "video_id": 1, "file_name": "frames/v1/frame0421.jpg", "frame_id": 2, "frame_index": 420}],
        "categories": [{"id": 1, "name": "person"}],
        "annotations": [
            {"id": 1, "image_id": 11, "video_id": 1, "instance_id": 5, "category_id": 1, "bbox": [10, 10, 20, 20], "iscrowd": 0},
            {"id": 2, "image_id": 12, "video_id": 1, "instance_id": 5, "category_id": 1, "bbox": [12, 10, 20, 20], "iscrowd": 0},
            {"id": 3, "image_id": 12, "video_id": 1, "instance_id": 9, "category_id": 1, "bbox": [0, 0, 90, 60], "iscrowd": 1},
        ],
    }
    (root / "annotations.json").write_text(json.dumps(doc))
    with Project.create(tmp_path / "p") as project:
        (track,) = import_(project, "cocovid", root / "annotations.json")
        assert [r.frame for r in project.boxes(track)] == [2, 3]


def test_imagenet_vid_occluded_boxes_stay_visible(tmp_path):
    # mmtracking tools/convert_datasets/imagenet2coco_vid.py, convert_vid: every ImageNet VID object
    # is written with its box and occluded=occluded == '1', VID's "partly occluded" flag; only
    # full_occlusion (mmtracking's lasot2coco, our exports) means the object cannot be seen.
    root = tmp_path / "vid"
    frames(root / "train" / "a", ["000000.JPEG", "000001.JPEG"])
    doc = {
        "videos": [{"id": 1, "name": "train/a"}],
        "images": [{"id": 1, "video_id": 1, "file_name": "train/a/000000.JPEG", "frame_id": 0},
                   {"id": 2, "video_id": 1, "file_name": "train/a/000001.JPEG", "frame_id": 1}],
        "categories": [{"id": 1, "name": "airplane"}],
        "annotations": [
            {"id": 1, "image_id": 1, "video_id": 1, "instance_id": 1, "category_id": 1, "bbox": [10, 10, 20, 20],
             "area": 400, "iscrowd": False, "occluded": False, "generated": False},
            {"id": 2, "image_id": 2, "video_id": 1, "instance_id": 1, "category_id": 1, "bbox": [12, 10, 20, 20],
             "area": 400, "iscrowd": False, "occluded": True, "generated": False},
        ],
    }
    (root / "annotations.json").write_text(json.dumps(doc))
    with Project.create(tmp_path / "p") as project:
        (track,) = import_(project, "cocovid", root / "annotations.json")
        rows = project.boxes(track)
        assert [(r.frame, r.has_box, r.visible) for r in rows] == [(0, True, True), (1, True, True)]


def test_unicode_names_survive_a_lasot_export(tmp_path, videos_dir):
    from projects.formats import export
    from projects.formats.lasot import lasot_class

    assert lasot_class("Hünd, groß") == "Hünd_groß" and lasot_class("red-car") == "red_car"
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "Hünd, groß")
        project.set_box(track.id, 0, (100, 80, 60, 60))
        export(project, "lasot", tmp_path / "out")
    assert (tmp_path / "out" / "Hünd_groß" / "Hünd_groß-1" / "groundtruth.txt").is_file()


def test_got10k_class_with_colon_space_reads_the_same_in_both_readers(tmp_path, videos_dir):
    from projects.formats import export

    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "bird: crow\nadult")
        project.set_box(track.id, 0, (100, 80, 60, 60))
        report = export(project, "got10k", tmp_path / "out")
    assert any("bird" in w for w in report.warnings)
    lines = (tmp_path / "out" / "train" / "GOT-10k_Train_000001" / "meta_info.ini").read_text().splitlines()
    assert len(lines) == 11  # [METAINFO] + 10 keys: no line was split by the label
    toolkit = {line.split(": ")[0]: line.split(": ")[1] for line in lines[1:]}["object_class"]  # got10k toolkit
    pytracking = lines[5].split(": ")[-1]  # pytracking ltr/dataset/got10k.py: meta_info[5]
    assert toolkit == pytracking == "bird:crow adult"


def test_single_object_exports_leave_out_empty_tracks_and_warn_about_frame_1(tmp_path, videos_dir):
    from projects.formats import export

    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        project.add_track(video.id, "empty")
        late = project.add_track(video.id, "late")
        project.set_box(late.id, 5, (100, 80, 60, 60))
        for fmt in ("lasot", "got10k"):
            report = export(project, fmt, tmp_path / fmt)
            assert report.sequences == 1
            assert any("empty" in w and "left out" in w for w in report.warnings)
            assert any("late" in w and "frame 1" in w for w in report.warnings)
    assert not (tmp_path / "lasot" / "empty").exists() and (tmp_path / "lasot" / "late" / "late-1").is_dir()


def test_a_lasot_round_trip_keeps_one_video_with_its_tracks(tmp_path, videos_dir):
    from projects.formats import export

    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        for label, x in (("tree", 100), ("bird", 20)):
            track = project.add_track(video.id, label)
            project.set_box(track.id, 0, (x, 80, 60, 60))
        export(project, "lasot", tmp_path / "out")
    with Project.create(tmp_path / "q") as project:
        import_(project, "lasot", tmp_path / "out")
        (video,) = project.videos()  # not one video per track
        assert sorted(t.label for t in project.tracks(video.id)) == ["bird", "tree"]


@pytest.mark.parametrize("fmt", ["lasot", "got10k"])
def test_two_clips_that_fade_from_and_to_black_stay_two_videos(tmp_path, sot_dir, fmt):
    """Same count, same first and last frame: the import took them for one video and put the second
    clip's track on the first clip's frames."""
    from projects.formats import export

    deer = sorted((sot_dir / "Deer" / "img").iterdir())
    black = np.zeros((240, 320, 3), np.uint8)
    with Project.create(tmp_path / "p") as project:
        for name, start, label in (("morning", 0, "dog"), ("evening", 40, "cat")):
            folder = tmp_path / name
            folder.mkdir()
            middle = [cv2.resize(cv2.imread(str(deer[start + i])), (320, 240)) for i in range(2)]
            for index, image in enumerate([black, *middle, black]):
                cv2.imwrite(str(folder / f"{index + 1:08d}.jpg"), image)
            track = project.add_track(project.add_video(folder).id, label)
            project.set_box(track.id, 0, (10, 10, 50, 40))
        export(project, fmt, tmp_path / "out")
    with Project.create(tmp_path / "back") as back:
        import_(back, fmt, tmp_path / "out")
        assert sorted(tuple(t.label for t in back.tracks(v.id)) for v in back.videos()) == [("cat",), ("dog",)]
