"""Issue 19: degenerate boxes are refused at the store, NaN weights at load, NaN outputs never
become boxes (a broken head used to write 299 boxes at (0,0,10,10) with no error)."""

from __future__ import annotations

import pytest
import torch

from projects import Project
from projects.errors import ProjectError
from sstrack import Tracker, load_model, save_model
from sstrack.errors import CheckpointError, InputError
from sstrack.sequences import read_image


@pytest.mark.parametrize("box", [(0, 0, 0.01, 0.01), (159.5, 119.5, 100, 100), (10, 10, 9e5, 30), (-50, 10, 50.5, 30)])
def test_degenerate_boxes_are_refused(tmp_path, videos_dir, box):
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")  # 320x240
        track = project.add_track(video.id, "a")
        corner = (video.width - 0.5, video.height - 0.5, 100, 100) if box[0] == 159.5 else box
        with pytest.raises(ProjectError, match="tree"):
            project.set_box(track.id, 0, corner)
        assert project.boxes(track.id) == []
        project.set_box(track.id, 0, (video.width - 3, video.height - 3, 100, 100))  # 3x3 inside: fine


def _broken_model():
    model = load_model("sstrack-lite")
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.startswith("box_head."):
                parameter.fill_(float("nan"))
    return model


def test_nan_weights_are_refused_at_load(tmp_path):
    path = tmp_path / "broken.safetensors"
    save_model(_broken_model(), path)
    with pytest.raises(CheckpointError, match="NaN or infinite"):
        load_model(path)


def test_a_nan_output_is_an_error_not_a_box(sot_dir):
    tracker = Tracker(_broken_model(), device="cpu")
    frames = sorted((sot_dir / "Deer" / "img").glob("*.jpg"))[:2]
    states = [tracker.start(read_image(frames[0]), (306, 5, 95, 65))]
    with pytest.raises(InputError, match="not finite"):
        tracker.step(states, read_image(frames[1]))


def test_an_unusable_imported_keyframe_skips_its_track_not_the_run(tmp_path, videos_dir, caplog):
    from projects import BoxRecord, propagate

    torch.set_num_threads(1)
    tracker = Tracker(load_model("sstrack-lite"), device="cpu")
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        sliver, good = project.add_track(video.id, "sliver"), project.add_track(video.id, "good")
        with project.edit("import"):  # importers write rows directly, past set_box's checks
            project.put_boxes([BoxRecord(sliver.id, 0, video.width - 0.5, video.height - 0.5, 100, 100)])
        project.set_box(good.id, 0, (100, 80, 60, 60))
        project.set_box(good.id, 8, (104, 80, 60, 60))
        list(propagate(project, video.id, tracker, direction="forward"))
        assert len(project.boxes(good.id)) == video.frames and len(project.boxes(sliver.id)) == 1
    assert "cannot start tracking" in caplog.text
