"""A project folder is opened like any file, so its database may be hostile (stop 42's review).

SQLite runs no code of its own, but a trigger in the file runs on our writes, and any column can
hold any value. Each case was opened and edited before the fix: a trigger deleted the user's
other boxes, a recursive one would hang the first edit, a 200 MB name was read into every track
list, and a non-numeric version was a traceback.
"""

from __future__ import annotations

import re
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
    # Values no version of this tool writes (stop 42's second review: tracebacks, exports of
    # 10^12 frames or of `inf` coordinates, a project that could not be opened at all).
    "a frame count in words": ("UPDATE videos SET frames = 'many'", "videos.frames = 'many' (row 1)"),
    "10^12 frames": ("UPDATE videos SET frames = 1000000000000", "videos.frames = 1000000000000"),
    "a frame rate of 0": ("UPDATE videos SET fps = 0", "videos.fps = 0.0"),
    "a colour that is bytes": ("UPDATE tracks SET color = X'00ff'", "tracks.color = b'\\x00\\xff'"),
    "attributes that are a list": ("UPDATE tracks SET attributes = '[1]'", "tracks.attributes that is not a JSON object"),
    "a media index nested 100,000 deep": (
        "UPDATE videos SET media_index = '" + "[" * 100_000 + "]" * 100_000 + "'", "videos.media_index that is not a JSON object"),
    "run parameters that are not JSON": (
        "INSERT INTO runs(kind, params, status, started) VALUES ('propagate', 'not json', 'done', 'now')", "runs.params that is not"),
    "an infinite box": ("PRAGMA ignore_check_constraints = 1; UPDATE boxes SET x = 1e999, w = -1e999 WHERE frame = 5",
                        "a box that is neither four finite numbers with a positive size nor none (track 1, frame 5)"),
    "half a box": ("PRAGMA ignore_check_constraints = 1; UPDATE boxes SET w = NULL WHERE frame = 5", "a box that is neither"),
    "a box of another source": ("PRAGMA ignore_check_constraints = 1; UPDATE boxes SET source = 'evil'", "boxes.source = 'evil'"),
    "version 0": ("UPDATE meta SET value = '0' WHERE key = 'schema_version'", "no schema version"),
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
    with sqlite3.connect(folder / "project.sqlite", isolation_level=None) as conn:
        conn.executescript(sql)


@pytest.mark.parametrize("case", CASES)
def test_a_database_holding_what_we_never_write_is_refused_before_any_write(labelled, case):
    sql, named = CASES[case]
    _alter(labelled, sql)
    before = snapshot(labelled / "project.sqlite")
    with pytest.raises(SchemaError, match=re.escape(named)) as caught:
        Project.open(labelled)
    one_line_naming(caught.value, "project.sqlite")
    assert snapshot(labelled / "project.sqlite") == before  # the labels are as the sender left them
    assert not list(labelled.glob("*backup*"))  # version 0 made an upgrade backup before it was refused


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


def test_a_video_path_that_names_a_fifo_is_refused_not_waited_on(labelled, tmp_path):
    """Checking the file's identity read a FIFO's contents: the app hung as it opened the project."""
    import os
    import subprocess
    import sys

    from tests.reliability_support import REPO, child_env

    fifo = tmp_path / "camera.avi"
    os.mkfifo(fifo)
    _alter(labelled, f"UPDATE videos SET path = '{fifo}', size_bytes = 0")
    probe = f"from projects import Project\nwith Project.open({str(labelled)!r}) as p:\n    p.open_media(1)"
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert "camera.avi: not a regular file or a frame folder (a FIFO or a device); re-link it" in done.stderr.splitlines()[-1]


def test_a_garbled_last_frame_reopens_the_project_on_its_first_frame(labelled, qtbot, tmp_path):
    """The app's open raised a ValueError and left the project half open."""
    from PySide6.QtCore import QSettings

    from app.main_window import MainWindow
    from app.settings import Preferences

    with Project.open(labelled) as project:
        project.set_setting("last_video", "1")
        project.set_setting("last_frame", "abc")
    window = MainWindow(Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)))
    qtbot.addWidget(window)
    assert window.open_project(labelled)
    assert window.controller.video is not None and window.controller.frame == 0


def test_a_run_whose_pid_now_names_another_process_does_not_block_undo(labelled):
    """A run row naming a live pid (reused after a crash or a reboot, or pid 1 in a hostile file)
    blocked the undo of its step for ever, with no way to cancel it."""
    import os

    with Project.open(labelled) as project:
        run = project.start_run("propagate", 1, {}, history_entry=project.history_head())
        assert "cannot undo" in (project.undo_blocked_by() or "")  # this very process: truly running
    for pid in (os.getpid(), 1):  # both alive, neither the process that started the run
        _alter(labelled, f"UPDATE runs SET status = 'running', params = json_set(params, '$.pid', {pid}, '$.process', 'x:1') WHERE id = {run}")
        with Project.open(labelled) as project:
            assert project.undo_blocked_by() is None
            assert [r["id"] for r in project.interrupted_runs()] == [run]


def test_a_newer_versions_project_says_upgrade_not_altered(labelled):
    """A later schema may add tables: that is a newer project, not an altered one."""
    _alter(labelled, "CREATE TABLE future (x); UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(SchemaError, match="written by a newer version .schema 99"):
        Project.open(labelled)


def test_run_files_in_a_shared_project_are_read_only_as_small_plain_files(labelled):
    """The fine-tune dialog reads every models/finetune-*/run.json and metrics.jsonl of the
    project folder: a FIFO there hung the app as the dialog opened."""
    import os
    import subprocess
    import sys

    from tests.reliability_support import REPO, child_env

    fifo_run, fifo_metrics = labelled / "models" / "finetune-2", labelled / "models" / "finetune-1"
    for folder in (fifo_run, fifo_metrics):
        folder.mkdir()
        (folder / "latest.json").write_text('{"step": 3}')
    os.mkfifo(fifo_run / "run.json")
    (fifo_metrics / "run.json").write_text('{"train": {"steps": 20, "batch_size": 2}, "base_model": "sstrack-lite"}')
    os.mkfifo(fifo_metrics / "metrics.jsonl")
    probe = (
        "from PySide6.QtCore import QCoreApplication\nfrom app.finetune_run import FinetuneRun\n"
        f"app = QCoreApplication([])\nrun = FinetuneRun.find_stopped({str(labelled)!r})\nprint(run.out_dir.name, run.state, run.rows)"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["finetune-1", "stopped", "[]"], done.stderr


def test_names_from_the_file_reach_the_terminal_escaped(labelled, capsys):
    """A label's newline forged a line of `sstrack-project info`; its escape sequence (here: set
    the terminal's title) and a right-to-left override were passed to the terminal."""
    from projects.cli import main

    with Project.open(labelled) as project:
        project.update_track(1, label="car\x1b]0;pwned\x07\ntrack 9 fake: 99 manual\u202e")
    assert main(["info", str(labelled)]) == 0
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3 and "\x1b" not in out and "\u202e" not in out
    assert "track 1 car\\x1b]0;pwned\\x07\\ntrack 9 fake: 99 manual\\u202e: 2 manual" in out
