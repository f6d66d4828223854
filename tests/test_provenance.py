"""Which model produced which boxes (#15): runs record their weights, every export says so."""

from __future__ import annotations

import dataclasses
import json
import xml.etree.ElementTree as ET

import pytest
import torch

from projects import Project, propagate
from projects.formats import export
from projects.formats.common import Provenance, marker_path
from sstrack import Tracker, load_model, save_model
from sstrack.checkpoints import weights_identity


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    """The shipped model and a copy with one weight nudged (another file, another sha256)."""
    torch.set_num_threads(2)
    folder = tmp_path_factory.mktemp("models")
    other = load_model("sstrack-lite")
    with torch.no_grad():
        other.box_head.parameters().__next__().add_(1e-3)
    save_model(other, folder / "nudged.safetensors")
    return "sstrack-lite", str(folder / "nudged.safetensors")


def test_a_model_knows_its_weights_and_a_run_records_them(tmp_path, videos_dir, two_models):
    shipped, nudged = two_models
    a, b = weights_identity(shipped), weights_identity(nudged)
    assert a["name"] == "sstrack-lite" and b["name"] == "nudged" and a["sha256"] != b["sha256"] and len(a["sha256"]) == 64
    assert load_model(nudged).weights_identity == b
    assert weights_identity("sstrack-lite:random")["sha256"] is None
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        project.set_box(project.add_track(video.id, "tree").id, 0, (100, 80, 60, 60))
        list(propagate(project, video.id, Tracker(load_model(nudged), device="cpu"), direction="forward"))
        ((run_id, model),) = project.run_models().items()
        assert model == b
        assert {r.run_id for r in project.boxes(project.tracks(video.id)[0].id) if r.source == "tracked"} == {run_id}


@pytest.mark.slow
def test_every_export_says_which_model_made_which_frames(tmp_path, videos_dir, two_models):
    shipped, nudged = two_models
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "tree")
        project.set_box(track.id, 0, (100, 80, 60, 60))
        list(propagate(project, video.id, Tracker(load_model(shipped), device="cpu"), direction="forward"))
        project.set_box(track.id, 40, project.box_at(track.id, 40).box)  # a correction, accepted as is
        list(propagate(project, video.id, Tracker(load_model(nudged), device="cpu"), direction="forward", around=40))
        project.set_box(track.id, 60, (100, 80, 60, 60), source="interpolated")
        keys = {model["name"]: model["sha256"][:12] for model in project.run_models().values()}
        last = video.frames - 1
        expected = [[0, 0, "manual"], [1, 39, keys["sstrack-lite"]], [40, 40, "manual"], [41, 59, keys["nudged"]],
                    [60, 60, "interpolated"], [61, last, keys["nudged"]]]
        for fmt, sequence in (("lasot", "tree/tree-1"), ("got10k", "train/GOT-10k_Train_000001"), ("mot", "tree"),
                              ("cocovid", "tree"), ("cvat", "tree")):
            export(project, fmt, tmp_path / fmt)
            provenance = json.loads(marker_path(tmp_path / fmt).read_text())["provenance"]
            ((entry,),) = [provenance["objects"]]
            assert entry["sequence"] == sequence and entry["name"] == "tree" and entry["frames"] == expected, fmt
            assert {m["name"]: m["sha256"][:12] for m in provenance["models"].values()} == keys
            assert (tmp_path / fmt / sequence).exists()  # the sequence is named as the reader finds it
    # The formats with extra fields say it per box as well: COCO-VID's "maker" with the models
    # listed at the top level, CVAT's sstrack_maker attribute (CVAT's parser ignores it).
    coco = json.loads((tmp_path / "cocovid" / "annotations.json").read_text())
    makers = {a["image_id"] - 1: a["maker"] for a in coco["annotations"]}
    assert makers[0] == "manual" and makers[1] == makers[39] == keys["sstrack-lite"] and makers[41] == keys["nudged"]
    assert {m["maker"]: m["name"] for m in coco["models"]} == {keys["sstrack-lite"]: "sstrack-lite", keys["nudged"]: "nudged"}
    shapes = ET.parse(tmp_path / "cvat" / "tree" / "annotations.xml").getroot().findall("track/box")
    by_frame = {int(s.get("frame")): s.get("sstrack_maker") for s in shapes}
    assert by_frame[0] is None and by_frame[1] == keys["sstrack-lite"] and by_frame[41] == keys["nudged"]


def test_boxes_tracked_before_runs_recorded_their_model_say_so(tmp_path, videos_dir):
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "tree")
        run_id = project.start_run("propagate", video.id, {"direction": "forward"})  # a run of an older version
        entry = project.begin_history("track forward")
        project.set_box(track.id, 0, (100, 80, 60, 60))
        record = project.box_at(track.id, 0)
        machine = dataclasses.replace(record, frame=1, source="tracked", score=0.5, run_id=run_id)
        project.write_machine_boxes([machine], entry, run_id)
        provenance = Provenance(project)
        provenance.add("tree", track, project.boxes(track.id))
        assert provenance.as_dict()["objects"][0]["frames"] == [[0, 0, "manual"], [1, 1, "unknown model"]]
        assert provenance.models == {}
