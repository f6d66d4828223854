"""Absent is data, not a 0x0 box (issue 13): a frame's state is a box, or no box with the object
occluded or out of view; version-2 projects are migrated, history included."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from projects import Project
from projects.errors import ProjectError
from projects.store import BoxRecord

# Made by the version-2 code (commit 00c7192, with Project.create, set_box, set_flags, edit):
# track "tree" with a manual box on frame 0, tracked boxes 1-9 (frame 5 flagged occluded, box
# kept), a manual out-of-view mark on frame 10 and a manual occluded mark on frame 11 (both
# stored then as 0x0 boxes), a manual box on frame 20; 7 undo steps.
V2_PROJECT = Path(__file__).parent / "data" / "project_v2" / "project.sqlite"


@pytest.fixture
def migrated(tmp_path):
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(V2_PROJECT, folder / "project.sqlite")
    with Project.open(folder) as project:
        yield project


def test_a_version_2_project_is_migrated_with_its_absent_marks_as_states(migrated):
    track = migrated.tracks(migrated.videos()[0].id)[0]
    rows = {r.frame: r for r in migrated.boxes(track.id)}
    assert rows[10].out_of_view and not rows[10].has_box and rows[10].source == "manual"
    assert rows[11].occluded and not rows[11].has_box
    assert rows[5].occluded and rows[5].has_box and rows[5].box == (105.0, 80.0, 60.0, 60.0)
    assert all(r.has_box for f, r in rows.items() if f not in (10, 11))
    assert migrated.keyframes(track.id) == [0, 10, 11, 20]  # frames a human decided
    assert (migrated.folder / "project.v2.backup.sqlite").exists()
    with pytest.raises(ValueError, match="no box on frame 11"):
        _ = rows[10].box


def test_the_migrated_history_undoes_and_redoes_without_0x0_boxes(migrated):
    track = migrated.tracks(migrated.videos()[0].id)[0]
    labels = []
    while (label := migrated.undo()) is not None:
        labels.append(label)  # the schema's CHECKs would make an undo that restored a 0x0 box raise
    assert labels[:3] == ["manual box on frame 21", "flags on frame 12", "flags on frame 11"]
    while migrated.redo() is not None:
        pass
    assert not migrated.box_at(track.id, 10).has_box and migrated.box_at(track.id, 10).out_of_view


def test_the_schema_refuses_a_0x0_box_and_a_visible_row_without_a_box(tmp_path, videos_dir):
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "t")
        with pytest.raises(ProjectError, match="occluded or out of view"), project.edit("bad"):
            project.put_boxes([BoxRecord(track.id, 3, None, None, None, None, "manual")])
        with pytest.raises(sqlite3.IntegrityError):
            project.conn.execute("INSERT INTO boxes(track_id, frame, x, y, w, h, source) VALUES (?, 4, 0, 0, 0, 0, 'manual')", (track.id,))


def test_marking_and_clearing_absence_on_an_empty_frame(tmp_path, videos_dir):
    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "t")
        state = project.set_flags(track.id, 7, out_of_view=True)
        assert state is not None and not state.has_box and project.keyframes(track.id) == [7]
        # Clearing the only flag of a box-less frame removes the state (a visible object needs a box).
        assert project.set_flags(track.id, 7, out_of_view=False) is None
        assert project.box_at(track.id, 7) is None
        assert project.undo() == "flags on frame 8"
        assert project.box_at(track.id, 7).out_of_view
