"""A project folder is opened like any file, so its database may be hostile (stop 42's review).

SQLite runs no code of its own, but a trigger in the file runs on our writes, and any column can
hold any value. Each case was opened and edited before the fix: a trigger deleted the user's
other boxes, a recursive one would hang the first edit, a 200 MB name was read into every track
list, and a non-numeric version was a traceback.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from projects import Project
from projects.errors import ProjectError, SchemaError
from tests.reliability_support import one_line_naming, snapshot

RECURSIVE = "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 300000000) SELECT x FROM c)"
CASES = {
    "a trigger that deletes boxes": (
        "CREATE TRIGGER t AFTER INSERT ON boxes BEGIN DELETE FROM boxes WHERE frame <> NEW.frame; END", "a trigger 't'"),
    "a trigger that hangs an edit": (f"CREATE TRIGGER s AFTER UPDATE ON boxes BEGIN {RECURSIVE}; END", "a trigger 's'"),
    "a view": ("CREATE VIEW v AS SELECT 1", "a view 'v'"),
    "a table": ("CREATE TABLE evil (x)", "a table 'evil'"),
    "an index": ("CREATE INDEX evil ON boxes(frame)", "an index 'evil'"),
    "a generated column": ("ALTER TABLE tracks ADD COLUMN g TEXT GENERATED ALWAYS AS (label || label) VIRTUAL", "'g' is not ours"),
    "a 200 MB name": ("UPDATE tracks SET label = CAST(zeroblob(200000000) AS TEXT)", "MiB value in tracks.label"),
    "a 200 MB flag": ("UPDATE tracks SET hidden = zeroblob(200000000)", "MiB value in tracks.hidden"),
    "a version that is not a number": ("UPDATE meta SET value = '7abc' WHERE key = 'schema_version'", "no schema version"),
}


@pytest.fixture(scope="module")
def made(tmp_path_factory, videos_dir) -> Path:
    """A real project: one video, one object, manual boxes on frames 1 and 6."""
    folder = tmp_path_factory.mktemp("made") / "project"
    with Project.create(folder) as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "car")
        project.set_box(track.id, 0, (10, 10, 40, 40))
        project.set_box(track.id, 5, (12, 12, 40, 40))
    return folder


@pytest.fixture()
def labelled(made, tmp_path) -> Path:
    """A copy of `made` for one test to alter."""
    return Path(shutil.copytree(made, tmp_path / "project"))


def _alter(folder: Path, sql: str) -> None:
    with sqlite3.connect(folder / "project.sqlite") as conn:
        conn.execute(sql)


@pytest.mark.parametrize("case", CASES)
def test_a_database_holding_what_we_never_write_is_refused_before_any_write(labelled, case):
    sql, named = CASES[case]
    _alter(labelled, sql)
    before = snapshot(labelled / "project.sqlite")
    with pytest.raises(SchemaError, match=named) as caught:
        Project.open(labelled)
    one_line_naming(caught.value, "project.sqlite")
    assert snapshot(labelled / "project.sqlite") == before  # the labels are as the sender left them


def test_damaged_undo_history_is_refused_in_one_line_and_changes_nothing(labelled):
    """The undo history is replayed from the file: a 300 MB row reached SQLite's refusal as a raw
    DataError, and a row that is not JSON as a traceback."""
    latest = "entry_id = (SELECT max(entry_id) FROM history_changes)"
    for damage, error in (("zeroblob(300000000)", "DataError"), ("'not json'", "JSONDecodeError")):
        _alter(labelled, f"UPDATE history_changes SET before = {damage} WHERE {latest}")
        before = _boxes_and_history(labelled)
        with Project.open(labelled) as project, pytest.raises(ProjectError, match=rf"are damaged \({error}\); it cannot be undone") as caught:
            project.undo()
        one_line_naming(caught.value, "project.sqlite")
        assert _boxes_and_history(labelled) == before


def _boxes_and_history(folder: Path) -> tuple[list, list]:
    with sqlite3.connect(folder / "project.sqlite") as conn:
        return sorted(conn.execute("SELECT * FROM boxes")), sorted(conn.execute("SELECT * FROM history"))


def test_a_project_this_version_made_opens_and_edits(labelled):
    """The checks compare with what this version makes: a project it made opens and edits."""
    with Project.open(labelled) as project:
        (video,) = project.videos()
        (track,) = project.tracks(video.id)
        project.set_box(track.id, 9, (14, 14, 40, 40))
        assert project.undo() == "manual box on frame 10"
