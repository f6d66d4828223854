"""Span edits (issues 14 and 16): mark a span hidden or visible, delete the machine's boxes, from
the store's API and the CLI, on a real project; each is one undo step and tracking respects it."""

from __future__ import annotations

import pytest
import torch

from projects import Project, ProjectError, propagate
from projects.cli import main
from projects.spans import delete_machine_boxes, mark_span, parse_span, span_to_next_keyframe
from projects.store import BoxRecord
from sstrack import Tracker, load_model


@pytest.fixture()
def project(tmp_path, videos_dir):
    """tree.avi, track "tree": manual boxes on frames 0 and 30, tracked boxes 1..29 (score 0.6)."""
    proj = Project.create(tmp_path / "proj")
    video = proj.add_video(videos_dir / "tree.avi")
    track = proj.add_track(video.id, "tree")
    with proj.edit("fill"):
        proj.set_box(track.id, 0, (100, 80, 60, 60))
        proj.set_box(track.id, 30, (130, 80, 60, 60))
        proj.put_boxes([BoxRecord(track.id, f, 100.0 + f, 80.0, 60.0, 60.0, "tracked", 0.6) for f in range(1, 30)])
    yield proj, track
    proj.close()


def _states(proj: Project, track_id: int) -> dict[int, tuple]:
    return {r.frame: (r.has_box, r.source, r.occluded, r.out_of_view) for r in proj.boxes(track_id)}


def test_hiding_a_span_leaves_no_machine_box_and_undoes_in_one_step(project):
    proj, track = project
    before = proj.boxes(track.id)
    changed = mark_span(proj, track.id, 40, 25, out_of_view=True)  # given backwards: still frames 25..40
    states = _states(proj, track.id)
    assert changed == 16
    assert all(states[f] == (False, "manual", False, True) for f in (25, 29, 31, 40))  # machine / empty -> no box
    assert states[30] == (True, "manual", False, True)  # a manual box keeps its geometry, takes the flag
    assert proj.box_at(track.id, 30).box == (130.0, 80.0, 60.0, 60.0)
    assert states[24] == (True, "tracked", False, False) and 41 not in states
    assert proj.undo() == "mark frames 26-41 out of view"
    assert proj.boxes(track.id) == before


def test_marking_visible_clears_flags_and_drops_the_no_box_states(project):
    proj, track = project
    mark_span(proj, track.id, 28, 32, occluded=True)
    assert mark_span(proj, track.id, 28, 32) == 5
    states = _states(proj, track.id)
    assert states[30] == (True, "manual", False, False)
    assert all(f not in states for f in (28, 29, 31, 32))  # hidden machine frames had no box left
    assert mark_span(proj, track.id, 28, 32) == 0  # nothing to change: no undo step
    assert proj.history()[-1][1] == "mark frames 29-33 visible"


def test_delete_machine_boxes_keeps_manual_rows(project):
    proj, track = project
    assert span_to_next_keyframe(proj, track.id, 10) == (10, 29)
    assert span_to_next_keyframe(proj, track.id, 31) == (31, 67)  # no later keyframe: the video's end
    assert delete_machine_boxes(proj, track.id, *span_to_next_keyframe(proj, track.id, 0)) == 29
    assert sorted(_states(proj, track.id)) == [0, 30]
    with pytest.raises(ProjectError, match="frames 60-69 are not all in tree"):
        delete_machine_boxes(proj, track.id, 59, 68)


def test_tracking_stops_at_a_span_marked_hidden(project):
    proj, track = project
    delete_machine_boxes(proj, track.id, 1, 29)
    mark_span(proj, track.id, 10, 20, out_of_view=True)
    torch.set_num_threads(2)
    for _ in propagate(proj, proj.track(track.id).video_id, Tracker(load_model("sstrack-lite"), device="cpu"), direction="forward"):
        pass
    states = _states(proj, track.id)
    assert all(states[f][1] == "tracked" for f in range(1, 10))
    assert all(states[f] == (False, "manual", False, True) for f in range(10, 21))  # the run wrote nothing there
    assert all(states[f][1] == "tracked" for f in range(31, 68))


def test_the_cli_marks_and_deletes_spans(project, capsys):
    proj, track = project
    folder = str(proj.folder)
    assert main([ "mark", folder, "tree", "11-", "--track", "tree", "--state", "occluded"]) == 0
    assert "frames 11-30 marked occluded" in capsys.readouterr().out
    assert main(["delete-machine-boxes", folder, "tree", "2-5", "--track", "tree"]) == 0
    assert "deleted 4 machine boxes on frames 2-5" in capsys.readouterr().out
    states = _states(proj, track.id)
    assert all(states[f] == (False, "manual", True, False) for f in range(10, 30)) and 1 not in states
    for argv, words in ((["mark", folder, "tree", "x-3", "--track", "tree", "--state", "visible"], "expected 1-based frames"),
                        (["mark", folder, "tree", "3", "--track", "car", "--state", "visible"], "no track 'car'")):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1


def test_parse_span():
    assert parse_span("40-80") == (39, 79) and parse_span("7") == (6, 6) and parse_span("40-") == (39, None)


def test_interpolating_a_span_writes_only_inside_it(project):
    from projects import interpolate

    proj, track = project
    with proj.edit("clear"):
        proj.delete_boxes([r for r in proj.boxes(track.id) if r.source != "manual"])
    assert interpolate(proj, proj.track(track.id).video_id, [track.id], (5, 9)) == 5
    rows = {r.frame: r for r in proj.boxes(track.id)}
    assert sorted(rows) == [0, 5, 6, 7, 8, 9, 30] and rows[6].box == (106.0, 80.0, 60.0, 60.0)
