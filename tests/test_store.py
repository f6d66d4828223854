"""Project store: real SQLite files, undo/redo, schema versions, missing and moved videos."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from projects import Project, ProjectError, SchemaError
from projects.media import MediaError
from projects.store import BoxRecord


@pytest.fixture()
def project(tmp_path, videos_dir):
    proj = Project.create(tmp_path / "proj")
    yield proj
    proj.close()


def test_layout_pragmas_and_reopen(project, videos_dir, tmp_path):
    video = project.add_video(videos_dir / "tree.avi")
    assert (video.frames, video.width, video.height) == (68, 320, 240)
    track = project.add_track(video.id, "tree")
    project.set_box(track.id, 3, (10, 20, 30, 40))
    assert {p.name for p in (tmp_path / "proj").iterdir()} >= {"project.sqlite", "models", "exports"}
    assert project.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert project.conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    project.close()
    again = Project.open(tmp_path / "proj")
    assert again.box_at(track.id, 3).box == (10, 20, 30, 40)
    assert again.keyframes(track.id) == [3]
    again.close()


def test_undo_redo_of_edits(project, videos_dir):
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    project.set_box(track.id, 0, (1, 1, 10, 10))
    project.set_box(track.id, 0, (2, 2, 10, 10))
    project.set_flags(track.id, 0, occluded=True)
    assert project.undo() == "flags on frame 1"
    assert not project.box_at(track.id, 0).occluded
    assert project.undo().startswith("manual box")
    assert project.box_at(track.id, 0).box == (1, 1, 10, 10)
    assert project.redo().startswith("manual box")
    assert project.box_at(track.id, 0).box == (2, 2, 10, 10)
    # A new edit drops the redo branch.
    project.delete_box(track.id, 0)
    assert project.redo() is None
    assert project.undo() is not None and project.box_at(track.id, 0).box == (2, 2, 10, 10)


def test_delete_track_undoes_with_its_boxes(project, videos_dir):
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    for frame in range(5):
        project.set_box(track.id, frame, (frame, 0, 10, 10))
    project.delete_track(track.id)
    assert project.tracks(video.id) == []
    project.undo()
    assert [r.frame for r in project.boxes(track.id)] == [0, 1, 2, 3, 4]
    assert project.track(track.id).label == "a"


def test_history_survives_reopen(tmp_path, videos_dir):
    with Project.create(tmp_path / "p") as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "a")
        proj.set_box(track.id, 0, (1, 1, 10, 10))
    with Project.open(tmp_path / "p") as proj:
        assert proj.undo().startswith("manual box")
        assert proj.box_at(track.id, 0) is None


def test_bad_boxes_are_refused(project, videos_dir):
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    for box in ((400, 10, 10, 10), (10, 10, 0, 5), (float("nan"), 1, 2, 3), (-50, -50, 10, 10)):
        with pytest.raises(ProjectError):
            project.set_box(track.id, 0, box)
    with pytest.raises(ProjectError, match="frame 69"):
        project.set_box(track.id, 68, (1, 1, 5, 5))
    assert project.boxes(track.id) == []


def test_newer_schema_is_refused_clearly(tmp_path):
    Project.create(tmp_path / "p").close()
    with sqlite3.connect(tmp_path / "p" / "project.sqlite") as conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match="newer version"):
        Project.open(tmp_path / "p")


def test_not_a_project(tmp_path):
    with pytest.raises(ProjectError, match="no project here"):
        Project.open(tmp_path)
    (tmp_path / "project.sqlite").write_bytes(b"not sqlite at all" * 10)
    with pytest.raises(SchemaError):
        Project.open(tmp_path)


def test_damaged_video_is_refused_and_nothing_changes(project, videos_dir):
    for name in ("truncated_bedroom.mp4", "headless_box.mp4", "empty.mp4", "not_a_video.mp4", "random_bytes.avi"):
        with pytest.raises(MediaError, match=name):
            project.add_video(videos_dir / "damaged" / name)
    assert project.videos() == []


def test_missing_video_keeps_project_usable_and_relinks_by_content(tmp_path, videos_dir):
    media_dir = tmp_path / "media"
    media_dir.mkdir()
    shutil.copy(videos_dir / "tree.avi", media_dir / "tree.avi")
    with Project.create(tmp_path / "p") as proj:
        video = proj.add_video(media_dir / "tree.avi")
        track = proj.add_track(video.id, "a")
        proj.set_box(track.id, 0, (1, 1, 10, 10))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(media_dir / "tree.avi", moved / "tree.avi")
    with Project.open(tmp_path / "p") as proj:
        assert proj.video(video.id).missing
        assert proj.box_at(track.id, 0) is not None
        with pytest.raises(ProjectError, match="content differs"):
            proj.relink_video(video.id, videos_dir / "cup.mp4")
        assert proj.search_moved(video.id, tmp_path) == moved / "tree.avi"
        assert not proj.video(video.id).missing


def test_two_connections_write_without_locking_errors(tmp_path, videos_dir):
    with Project.create(tmp_path / "p") as first:
        video = first.add_video(videos_dir / "tree.avi")
        track = first.add_track(video.id, "a")
        with Project.open(tmp_path / "p") as second:
            for frame in range(30):
                first.set_box(track.id, frame, (1, 1, 10, 10))
                second.set_box(track.id, frame + 30, (2, 2, 10, 10))
            assert len(first.boxes(track.id)) == 60


def test_an_edit_that_changes_nothing_is_no_undo_step(tmp_path, videos_dir):
    # Issue 13: interpolate with one keyframe (or a track with nothing to track) recorded an empty
    # entry, so the next undo "undid" it and the user's box stayed.
    from projects import interpolate, propagate
    from sstrack import Tracker, load_model

    with Project.create(tmp_path / "p") as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "a")
        project.set_box(track.id, 0, (100, 80, 40, 40))
        before = project.history()
        assert interpolate(project, video.id) == 0  # one keyframe: nothing between
        tracker = Tracker(load_model("sstrack-lite"), device="cpu")
        assert list(propagate(project, video.id, tracker, direction="backward")) == []  # nothing before frame 1
        assert project.history() == before
        assert project.undo() == "manual box on frame 1"
        assert project.boxes(track.id) == []


def test_a_video_added_inside_an_edit_is_part_of_its_undo_step(tmp_path, videos_dir):
    # An import adds its videos inside its edit: undo leaves no empty video, redo brings it back.
    with Project.create(tmp_path / "p") as project:
        alone = project.add_video(videos_dir / "vtest.avi")  # on its own: not an undo step
        with project.edit("import"):
            video = project.add_video(videos_dir / "tree.avi")
            project.set_box(project.add_track(video.id, "tree").id, 0, (10, 10, 20, 20))
        assert project.undo() == "import"
        assert [v.id for v in project.videos()] == [alone.id]
        assert project.redo() == "import"
        assert [v.name for v in project.videos()] == ["vtest", "tree"] and project.tracks(video.id)[0].label == "tree"
        assert project.undo() == "import" and project.undo() is None


def test_a_box_drawn_on_an_absent_frame_is_visible_and_a_moved_box_keeps_its_flags(project, videos_dir):
    """Drawing where the engine (or a human) said "out of view" means the object is there."""
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    with project.edit("the engine judged it gone"):
        project.put_boxes([BoxRecord.absent(track.id, 5, source="tracked", score=0.1)])
    drawn = project.set_box(track.id, 5, (10, 10, 20, 20))
    assert drawn.visible and drawn.source == "manual"
    project.set_flags(track.id, 5, occluded=True)  # a hidden object's box, kept by the human
    moved = project.set_box(track.id, 5, (12, 10, 20, 20))
    assert moved.occluded


def test_a_look_that_is_not_a_number_reads_as_none(project, videos_dir):
    """A hostile project file may hold anything in boxes.look; the review then uses the threshold."""
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    with project.edit("machine boxes"):
        project.put_boxes([BoxRecord(track.id, f, 10.0, 10.0, 20.0, 20.0, "tracked", 0.5, look=0.7) for f in (1, 2, 3)])
    project.conn.execute("UPDATE boxes SET look = 'abc' WHERE frame = 2")
    project.conn.execute("UPDATE boxes SET look = 1e300 WHERE frame = 3")
    assert [r.look for r in project.boxes(track.id)] == [0.7, None, None]


def test_undoing_a_track_edit_keeps_the_tracks_boxes(project, videos_dir):
    """A track's row is written back in place: INSERT OR REPLACE deleted it first, and the boxes'
    ON DELETE CASCADE took every box of the track with it, outside the history (redo too)."""
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "dog")
    for frame in range(5):
        project.set_box(track.id, frame, (10 + frame, 10, 50, 40))
    project.update_track(track.id, label="puppy", color="#000000", hidden=True)
    assert project.undo() == "edit track dog"
    assert project.track(track.id).label == "dog" and len(project.boxes(track.id)) == 5
    assert project.redo() == "edit track dog"
    assert project.track(track.id).label == "puppy" and len(project.boxes(track.id)) == 5


def test_undoing_a_video_removal_brings_back_its_runs_link(project, videos_dir):
    video = project.add_video(videos_dir / "tree.avi")
    run_id = project.start_run("propagate", video.id, {})
    project.remove_video(video.id)
    assert next(r for r in project.runs() if r["id"] == run_id)["video_id"] is None
    assert project.undo() == f"remove video {video.name}"
    assert next(r for r in project.runs() if r["id"] == run_id)["video_id"] == video.id
    project.redo()
    assert next(r for r in project.runs() if r["id"] == run_id)["video_id"] is None


@pytest.mark.parametrize("edit", ["set_box", "set_flags", "delete_box"])
def test_an_edit_starts_from_what_another_writer_committed_while_it_waited(tmp_path, videos_dir, edit):
    """The app's single-frame edits read the frame under the write lock. Read before it, the row
    another writer committed in between was overwritten with the one before it (its flag lost, or
    an undo bringing back the older box)."""
    import threading
    import time

    folder = tmp_path / "p"
    with Project.create(folder) as first:
        video = first.add_video(videos_dir / "tree.avi")
        track = first.add_track(video.id, "a")
        first.set_box(track.id, 5, (100, 100, 50, 40))
    holding = threading.Event()

    def other_writer() -> None:  # another window: a long edit that changes frame 6
        with Project.open(folder) as other, other.edit("other writer"):
            other.set_box(track.id, 5, (200, 150, 60, 50), occluded=True)
            holding.set()
            time.sleep(0.5)

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert holding.wait(10)
    with Project.open(folder) as project:  # this edit waits for the other's commit
        if edit == "set_box":
            project.set_box(track.id, 5, (105, 100, 50, 40))
            assert project.box_at(track.id, 5).occluded  # the other writer's flag is kept
        elif edit == "set_flags":
            project.set_flags(track.id, 5, out_of_view=True)
            assert project.box_at(track.id, 5).box == (200, 150, 60, 50)  # its box is kept
        else:
            project.delete_box(track.id, 5)
        thread.join()
        project.undo()
        # Undo brings back the other writer's row, not the one from before it.
        assert project.box_at(track.id, 5).box == (200, 150, 60, 50)


def test_hiding_a_machine_box_makes_it_the_users_so_a_re_track_keeps_it(project, videos_dir):
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    project.set_box(track.id, 3, (10, 10, 20, 20), source="tracked")
    assert project.set_flags(track.id, 3, occluded=True).source == "manual"


def test_an_edit_after_a_refused_one_is_still_an_undo_step(project, videos_dir):
    """A rolled-back edit's history id is reused by SQLite; last_entry must not keep it, or the
    app's undo stack would leave the next edit off (controller._edit compares last_entry)."""
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    project.set_box(track.id, 0, (1, 1, 10, 10))
    before = project.last_entry
    with pytest.raises(ProjectError), project.edit("refused"):  # one change recorded, then refused
        project.put_boxes([BoxRecord(track.id, 2, 1, 1, 10, 10, "manual"), BoxRecord.absent(track.id, 4, out_of_view=False)])
    assert project.last_entry == before
    project.set_box(track.id, 10, (1, 1, 10, 10))
    assert project.last_entry != before


def test_a_full_disk_is_a_one_line_error_and_nothing_saved_is_lost(project, videos_dir):
    """SQLite's own "database or disk is full" (its page limit standing in for the disk), mid-edit.

    SQLite rolls the transaction back by itself; a second ROLLBACK used to fail and turn the error
    into "not a readable SQLite database ... restore it from a backup", the wrong fix."""
    from projects import StorageError
    from projects.propagate import interpolate

    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "a")
    project.set_box(track.id, 0, (10, 10, 50, 50))
    project.set_box(track.id, 60, (100, 10, 50, 50))
    pages = project.conn.execute("PRAGMA page_count").fetchone()[0]
    project.conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StorageError, match="disk is full.*free some space"):
        interpolate(project, video.id)
    assert [r.frame for r in project.boxes(track.id)] == [0, 60]
    project.conn.execute("PRAGMA max_page_count = 1073741823")  # space freed: the next edit saves
    assert interpolate(project, video.id) == 59
    assert project.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_opening_an_old_project_at_once_both_open_it(tmp_path):
    """Each upgrade step re-reads the version under the write lock: the second process used to
    re-run a step on the upgraded file and crash, or overwrite the old version's backup."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "project_v2" / "project.sqlite", folder)
    start = time.time() + 3.0
    probe = (
        "import sys, time\nfrom projects import Project\n"
        f"while time.time() < {start}: time.sleep(0.001)\n"
        f"with Project.open({str(folder)!r}) as p: print(len(p.boxes(1)))"
    )
    children = [subprocess.Popen([sys.executable, "-c", probe], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                for _ in range(3)]
    outputs = [child.communicate(timeout=120) for child in children]
    assert all(child.returncode == 0 for child in children), [err for _, err in outputs]
    assert len({out for out, _ in outputs}) == 1
    with sqlite3.connect(folder / "project.v2.backup.sqlite") as backup:
        assert backup.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
    assert not list(folder.glob("*.tmp"))


def test_a_track_name_several_tracks_share_is_refused_and_id_names_one(project, videos_dir):
    video = project.add_video(videos_dir / "tree.avi")
    first, second = project.add_track(video.id, "pedestrian"), project.add_track(video.id, "pedestrian")
    with pytest.raises(ProjectError, match=f"ids {first.id}, {second.id}.*id:{first.id}"):
        project.find_track(video.id, "pedestrian")
    assert project.find_track(video.id, f"id:{second.id}") == second
    assert project.find_track(video.id, "cyclist") is None
    with pytest.raises(ProjectError, match="no track id:99"):
        project.find_track(video.id, "id:99")


def test_a_video_text_that_names_two_videos_is_refused(tmp_path, videos_dir):
    """A video named "2" and the video with id 2: the CLI used to act on whichever came first."""
    (tmp_path / "media").mkdir()
    shutil.copy(videos_dir / "tree.avi", tmp_path / "media" / "2.avi")
    shutil.copy(videos_dir / "Megamind.avi", tmp_path / "media" / "1.avi")
    with Project.create(tmp_path / "p") as project:
        named_2 = project.add_video(tmp_path / "media" / "2.avi")  # id 1
        named_1 = project.add_video(tmp_path / "media" / "1.avi")  # id 2
        with pytest.raises(ProjectError, match="names video 1 .* and video 2 .*by its path"):
            project.find_video("1")
        assert project.find_video(str(tmp_path / "media" / "1.avi")) == named_1
        assert project.find_video("2.avi") == named_2


def test_a_project_folder_moved_with_its_own_video_and_model_still_finds_them(tmp_path, videos_dir):
    """Paths inside the project folder are stored relative to it (they were absolute, so a renamed
    folder lost its video copy, its fine-tuned models and the video's adapted model)."""
    folder = tmp_path / "before"
    with Project.create(folder) as project:
        (folder / "media").mkdir()
        shutil.copy(videos_dir / "tree.avi", folder / "media" / "tree.avi")
        video = project.add_video(folder / "media" / "tree.avi")
        outside = project.add_video(videos_dir / "Megamind.avi")  # elsewhere: stays absolute
        model = folder / "models" / "finetune-1" / "model.safetensors"
        model.parent.mkdir(parents=True)
        model.write_bytes(b"weights")
        project.add_model(model, {"name": "ft"}, name="finetune-1")
        project.set_path_setting(f"adapted_model/{video.id}", model)
    moved = tmp_path / "after"
    folder.rename(moved)
    with Project.open(moved) as project:
        assert project.video(video.id).path == str((moved / "media" / "tree.avi").resolve())
        assert not project.video(video.id).missing
        assert project.video(outside.id).path == str((videos_dir / "Megamind.avi").resolve())
        [entry] = project.models()
        assert Path(entry["path"]).read_bytes() == b"weights"
        assert Path(project.get_path_setting(f"adapted_model/{video.id}")).read_bytes() == b"weights"
        project.open_media(video.id).close()  # the moved copy passes the identity check


def test_the_class_colour_lookup_of_add_track_uses_an_index(tmp_path):
    """add_track looks up its class's colour once per track; a full scan each time made an import of
    40,000 objects take 51 s under the write lock. New and upgraded projects have the index."""
    from projects.store import CLASS_COLOUR_QUERY

    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "project_v2" / "project.sqlite", folder)
    for project in (Project.create(tmp_path / "new"), Project.open(folder)):
        with project:
            plan = " ".join(str(tuple(row)) for row in project.conn.execute("EXPLAIN QUERY PLAN " + CLASS_COLOUR_QUERY, ("car",)))
            assert "USING INDEX tracks_class" in plan, plan


def test_a_track_of_a_known_class_is_added_without_counting_the_tracks(project, videos_dir):
    """Counting every track for each new one made an import of 40,000 objects take 45 s (4.7 s now)."""
    video = project.add_video(videos_dir / "tree.avi")
    first = project.add_track(video.id, "car1", category="car")
    statements: list[str] = []
    project.conn.set_trace_callback(statements.append)
    second = project.add_track(video.id, "car2", category="car")
    project.conn.set_trace_callback(None)
    assert second.color == first.color
    assert not [s for s in statements if "COUNT(*)" in s], statements


def test_a_project_of_the_first_release_opens_and_never_reuses_an_undone_entrys_id(tmp_path):
    """Schema 1's history had no AUTOINCREMENT (no sqlite_sequence): the upgraded file was refused
    as altered, and once past that, a new edit took an undone entry's id, so a window's Redo could
    re-apply another window's edit. The file is what the first release (12b4b87) wrote, made by
    /work/runs/s45/make_v1_fixture.py from that commit's schema."""
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "project_v1" / "project.sqlite", folder)
    with Project.open(folder) as project:
        (track,) = project.tracks(1)
        assert [r.frame for r in project.boxes(track.id)] == [0, 30]
        assert project.undo() == "manual box on frame 31"
        undone = project.last_entry
        project.set_box(track.id, 5, (100, 80, 60, 60))
        assert project.last_entry > 2 and project.last_entry != undone
    assert (folder / "project.v1.backup.sqlite").is_file()


def test_a_removed_videos_id_is_never_given_again(project, videos_dir):
    """The removed video's id went to the next video added: undoing the removal then overwrote the
    new video, and its boxes could never be redone."""
    tree = project.add_video(videos_dir / "tree.avi")
    project.remove_video(tree.id)
    other = project.add_video(videos_dir / "vtest.avi")
    track = project.add_track(other.id, "person")
    project.set_box(track.id, 0, (100, 80, 40, 60))
    assert other.id != tree.id
    while project.undo() != "remove video tree":
        pass
    assert sorted(v.name for v in project.videos()) == ["tree", "vtest"]
    while project.redo() is not None:
        pass
    assert [v.name for v in project.videos()] == ["vtest"] and project.box_at(track.id, 0).box == (100, 80, 40, 60)


def test_a_deleted_tracks_id_is_never_given_again(project, videos_dir):
    """A window still showing a deleted track wrote its next box onto whichever object took the id,
    on another video."""
    tree, vtest = project.add_video(videos_dir / "tree.avi"), project.add_video(videos_dir / "vtest.avi")
    dog = project.add_track(tree.id, "dog")
    project.delete_track(dog.id)
    person = project.add_track(vtest.id, "person")
    assert person.id != dog.id
    with pytest.raises(ProjectError, match=f"no track with id {dog.id}"):
        project.set_box(dog.id, 10, (100, 80, 40, 40))
    assert project.boxes(person.id) == []


def test_an_upgraded_project_counts_on_from_every_id_its_history_still_names(tmp_path, videos_dir):
    """Ids freed before the upgrade may still come back by undo: the counters start above them."""
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "project_v2" / "project.sqlite", folder)
    with sqlite3.connect(folder / "project.sqlite") as conn:  # an undoable entry that deleted video 9 and track 50
        (entry,) = conn.execute("SELECT max(id) FROM history").fetchone()
        conn.execute("INSERT INTO history_changes VALUES (?, 100, 'videos', '[9]', '{}', NULL)", (entry,))
        conn.execute("INSERT INTO history_changes VALUES (?, 101, 'tracks', '[50]', '{}', NULL)", (entry,))
    with Project.open(folder) as project:
        assert project.add_video(videos_dir / "vtest.avi").id > 9
        assert project.add_track(1, "new").id > 50


@pytest.mark.parametrize(
    ("change", "words"),
    [({"description": "x" * (1 << 20) + "more"}, "description of 1,048,580 bytes"), ({"hidden": 2}, "its hidden 2"),
     ({"label": "y" * (1 << 20) + "z"}, "label of 1,048,577 bytes")],
)
def test_a_track_value_the_next_open_would_refuse_is_refused_now(project, videos_dir, change, words):
    """A 1 MiB description was saved without complaint, and the next open refused the whole project as damaged."""
    video = project.add_video(videos_dir / "tree.avi")
    track = project.add_track(video.id, "dog")
    project.set_box(track.id, 0, (100, 80, 40, 40))
    with pytest.raises(ProjectError, match=words) as error:
        project.update_track(track.id, **change)
    assert "\n" not in str(error.value)
    with pytest.raises(ProjectError, match="more than a project keeps"):
        project.add_track(video.id, "z" * (1 << 20) + "z")
    project.close()
    with Project.open(project.folder) as again:
        assert again.track(track.id).label == "dog" and again.box_at(track.id, 0) is not None


def test_a_create_that_died_half_way_leaves_a_folder_a_project_can_still_be_made_in(tmp_path, monkeypatch):
    """A create killed after connecting left a project.sqlite that open refused ("not a project")
    and create refused ("already holds a project"); the user had to find and delete it."""
    from projects import schema

    def killed(conn):
        raise KeyboardInterrupt  # as SIGINT between connecting and making the tables

    with monkeypatch.context() as patch:
        patch.setattr(schema, "create", killed)
        with pytest.raises(KeyboardInterrupt):
            Project.create(tmp_path / "p")
    assert not (tmp_path / "p" / "project.sqlite").exists()
    with Project.create(tmp_path / "p") as project:
        assert project.videos() == []
    assert sorted(p.name for p in (tmp_path / "p").iterdir() if p.is_file()) == ["project.sqlite"]


def test_a_project_is_made_on_a_file_system_without_hard_links(tmp_path, monkeypatch):
    """FAT-formatted drives and some network shares refuse os.link; a project must still be made there."""

    def no_links(source, target):
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr("os.link", no_links)
    with Project.create(tmp_path / "p") as project:
        assert project.videos() == []
    with pytest.raises(ProjectError, match="already holds a project"):
        Project.create(tmp_path / "p")


def test_a_deleted_projects_write_ahead_log_is_never_replayed_into_a_new_one(tmp_path, videos_dir):
    """A crashed project's project.sqlite-wal, left when the user deleted only project.sqlite, was
    replayed into the next project made there: it held the old project's rows, or a corrupt index."""
    folder = tmp_path / "p"
    project = Project.create(folder)
    project.add_track(project.add_video(videos_dir / "tree.avi").id, "old")
    wal = (folder / "project.sqlite-wal").read_bytes()
    project.close()
    (folder / "project.sqlite").unlink()
    (folder / "project.sqlite-wal").write_bytes(wal)  # as a killed process leaves it
    with pytest.raises(ProjectError, match="holds project.sqlite-wal, left by a project whose project.sqlite is gone"):
        Project.create(folder)
    assert (folder / "project.sqlite-wal").read_bytes() == wal and not (folder / "project.sqlite").exists()
    (folder / "project.sqlite-wal").unlink()
    with Project.create(folder) as fresh:
        assert fresh.videos() == []


def test_an_old_project_edited_by_hand_still_upgrades(tmp_path):
    """Rows written with foreign keys off (an orphan box, a change of a missing entry), a history key
    that is not JSON, and a history counter above every entry left: the upgrade failed with a raw
    IntegrityError or OperationalError, or handed an entry id out again."""
    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "project_v2" / "project.sqlite", folder)
    with sqlite3.connect(folder / "project.sqlite") as conn:  # the sqlite3 shell's default: foreign keys off
        conn.execute("INSERT INTO boxes(track_id, frame, x, y, w, h, source) VALUES (999, 0, 1, 1, 5, 5, 'manual')")
        conn.execute("INSERT INTO history_changes VALUES (999, 0, 'boxes', '[1, 0]', NULL, NULL)")
        (entry,) = conn.execute("SELECT max(id) FROM history").fetchone()
        conn.execute("INSERT INTO history_changes VALUES (?, 200, 'tracks', 'not json', NULL, NULL)", (entry,))
        conn.execute("UPDATE sqlite_sequence SET seq = 50 WHERE name = 'history'")  # entries 8..50 were dropped
    with Project.open(folder) as project:
        assert project.conn.execute("SELECT count(*) FROM boxes WHERE track_id = 999").fetchone()[0] == 0
        assert project.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        project.set_box(1, 5, (100, 80, 40, 40))
        assert project.last_entry > 50


def test_an_upgrade_that_cannot_finish_says_where_it_stopped_and_where_the_backup_is(tmp_path, monkeypatch):
    """A later step's failure was reported as 'unchanged from that step on' naming the first version,
    though the earlier steps had been committed; and a raw sqlite3 error escaped."""
    from projects import schema

    folder = tmp_path / "old"
    folder.mkdir()
    shutil.copy(Path(__file__).parent / "data" / "project_v2" / "project.sqlite", folder)

    def broken(conn):  # as a step meets a row it cannot carry (a hand-edited file's CHECK violation)
        raise sqlite3.IntegrityError("CHECK constraint failed")

    with monkeypatch.context() as patch:
        patch.setitem(schema.MIGRATIONS, 7, broken)
        with pytest.raises(SchemaError, match=r"from schema 2 stopped at schema 7 .*project.v2.backup.sqlite beside it holds schema 2") as error:
            Project.open(folder)
    assert "\n" not in str(error.value)
    with Project.open(folder) as project:  # the next open finishes the upgrade
        assert project.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(schema.SCHEMA_VERSION)
