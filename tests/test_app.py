"""The desktop app driven like a user (pytest-qt, offscreen): draw, track, correct, undo, export."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app.dialogs.export_dialog import ExportDialog  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.settings import Preferences  # noqa: E402
from projects import BoxRecord, Track  # noqa: E402


@pytest.fixture()
def make_main_window(qtbot, tmp_path):
    """A window on a fresh project with isolated QSettings; closed afterwards."""
    windows = []

    def make(video: Path | None = None) -> MainWindow:
        prefs = Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
        prefs.set("adapt_auto", 0)  # no background adaptation rounds unless a test asks for one
        window = MainWindow(prefs)
        qtbot.addWidget(window)
        window.load_model()
        assert window.open_project(tmp_path / f"project{len(windows)}", create=True)
        if video is not None:
            assert window.add_video(video)
        window.resize(1200, 800)
        window.show()
        qtbot.waitExposed(window)
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow)  # shortcuts reach only the active window
        windows.append(window)
        return window

    yield make
    for window in windows:
        window.close()


def _drag(qtbot, window: MainWindow, start: tuple[float, float], end: tuple[float, float],
          modifier: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    view = window.canvas
    a = view.mapFromScene(QPointF(*start))
    b = view.mapFromScene(QPointF(*end))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, modifier, pos=a)
    qtbot.mouseMove(view.viewport(), pos=QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2))
    qtbot.mouseMove(view.viewport(), pos=b)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=b)


def _object_with_rows(qtbot, window: MainWindow, row) -> Track:
    """Draw one object, then give frames 1..67 the machine rows `row(track_id, frame)` chooses."""
    _drag(qtbot, window, (100, 80), (180, 160))
    (track,) = window.controller.tracks()
    with window.controller.project.edit("machine rows"):
        window.controller.project.put_boxes([row(track.id, f) for f in range(1, 68)])
    window.controller.reload()
    return track


def _wait_tracking(qtbot, window: MainWindow) -> None:
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120000)
    qtbot.wait(50)


def test_draw_track_correct_undo_export(make_main_window, qtbot, videos_dir, tmp_path):
    window = make_main_window(videos_dir / "tree.avi")
    project = window.controller.project
    # Draw a box by dragging on the first frame: a track and a manual keyframe appear.
    _drag(qtbot, window, (100, 80), (180, 160))
    (track,) = window.controller.tracks()
    first = project.box_at(track.id, 0)
    assert first.source == "manual" and abs(first.w - 80) < 2 and abs(first.h - 80) < 2
    # T tracks forward on a worker; the canvas follows; boxes exist for later frames.
    qtbot.keyClick(window, Qt.Key.Key_T)
    _wait_tracking(qtbot, window)
    rows = project.boxes(track.id)
    assert len(rows) == 68 and all(r.source == "tracked" for r in rows[1:])
    # Correct frame 30 by moving its box, then G re-tracks around it.
    window.controller.seek(30)
    qtbot.wait(20)
    before = project.box_at(track.id, 30)
    centre = (before.x + before.w / 2, before.y + before.h / 2)
    _drag(qtbot, window, centre, (centre[0] + 15, centre[1] + 10))
    corrected = project.box_at(track.id, 30)
    assert corrected.source == "manual" and abs(corrected.x - before.x - 15) < 2
    qtbot.keyClick(window, Qt.Key.Key_G)
    _wait_tracking(qtbot, window)
    assert project.keyframes(track.id) == [0, 30]
    after_retrack = [r.box for r in project.boxes(track.id)]
    # Ctrl+Z undoes the whole re-track run in one step, then the correction; redo brings both back.
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.box_at(track.id, 30) == corrected
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.box_at(track.id, 30).source == "tracked"
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    qtbot.keyClick(window, Qt.Key.Key_Y, Qt.KeyboardModifier.ControlModifier)
    assert [r.box for r in project.boxes(track.id)] == after_retrack
    # Flags and navigation keys.
    window.controller.seek(40)
    qtbot.keyClick(window, Qt.Key.Key_O)
    assert project.box_at(track.id, 40).out_of_view
    qtbot.keyClick(window, Qt.Key.Key_E)
    assert window.controller.frame == 30
    qtbot.keyClick(window, Qt.Key.Key_Home)
    qtbot.keyClick(window, Qt.Key.Key_F)
    qtbot.keyClick(window, Qt.Key.Key_V)
    assert window.controller.frame == 1 + window.prefs.get("jump")
    # Export LaSOT from the dialog.
    dialog = ExportDialog(project.folder, window)
    # The dialog says what the chosen format cannot carry before anything is written.
    assert "pytracking" in dialog.limits.text() and "manual" in dialog.limits.text()
    dialog.format.setCurrentIndex(dialog.format.findData("mot"))
    assert "out-of-view" in dialog.limits.text()
    dialog.format.setCurrentIndex(dialog.format.findData("lasot"))
    dialog.destination.setText(str(tmp_path / "lasot"))
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.worker.is_running(), timeout=60000)
    qtbot.waitUntil(lambda: "exported" in dialog.result.text().lower(), timeout=5000)
    seq = tmp_path / "lasot" / "object1" / "object1-1"
    assert len((seq / "groundtruth.txt").read_text().splitlines()) == 68
    assert len(list((seq / "img").glob("*.jpg"))) == 68
    assert (seq / "out_of_view.txt").read_text().split(",")[40] == "1"


def test_damaged_video_shows_an_error_and_the_window_stays_usable(make_main_window, qtbot, videos_dir):
    window = make_main_window(videos_dir / "tree.avi")
    assert not window.add_video(videos_dir / "damaged" / "truncated_bedroom.mp4")
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "error-box"]
    assert boxes and "truncated_bedroom.mp4" in boxes[-1].text()
    assert [v.name for v in window.controller.project.videos()] == ["tree"]
    _drag(qtbot, window, (50, 50), (90, 90))
    assert len(window.controller.tracks()) == 1


def test_reopening_restores_frame_and_nothing_is_lost(make_main_window, qtbot, videos_dir, tmp_path):
    window = make_main_window(videos_dir / "tree.avi")
    _drag(qtbot, window, (100, 80), (160, 140))
    second = window.controller.add_track("second")
    window.controller.seek(12)
    folder = window.controller.project.folder
    window.close()
    again = MainWindow(window.prefs)
    qtbot.addWidget(again)
    assert again.open_project(folder)
    assert again.controller.frame == 12
    assert again.controller.track_id == second.id
    track = again.controller.tracks()[0]
    assert again.controller.project.box_at(track.id, 0) is not None
    # The undo history survived the restart too.
    again.act_undo()
    assert [t.label for t in again.controller.tracks()] == ["object1"]
    again.act_undo()
    assert again.controller.project.box_at(track.id, 0) is None
    again.close()


def test_shortcuts_dialog_lists_every_action(make_main_window, qtbot):
    from app.actions import ACTIONS
    from app.dialogs.shortcuts import ShortcutsDialog

    window = make_main_window()
    dialog = ShortcutsDialog(window.prefs, window)
    assert dialog.table.rowCount() == len(ACTIONS)
    texts = {dialog.table.item(r, 1).text(): dialog.table.item(r, 2).text() for r in range(dialog.table.rowCount())}
    assert texts["Track forward to the next keyframe"] == "T" and "Ctrl+Y" in texts["Redo"]


def test_wrong_checkpoint_falls_back_with_a_message(make_main_window, qtbot, tmp_path):
    window = make_main_window()
    bad = tmp_path / "bad.pth.tar"
    bad.write_bytes(b"garbage" * 100)
    window.prefs.set("model", str(bad))
    window.load_model()
    assert window.runner.model_name == "sstrack-lite"
    boxes = [b for b in window.findChildren(QMessageBox) if b.objectName() == "error-box"]
    assert boxes and "bad.pth.tar" in boxes[-1].text()


def test_review_threshold_follows_the_model_until_the_user_sets_one(tmp_path):
    prefs = Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    assert prefs.review_threshold(None) == 0.5
    assert prefs.review_threshold(0.23) == 0.23
    prefs.set("threshold", 0.4)
    assert prefs.review_threshold(0.23) == 0.4


def test_video_list_relinks_a_moved_video_and_removes_with_undo(make_main_window, tmp_path, videos_dir, qtbot):
    import shutil

    source = tmp_path / "tree.avi"
    shutil.copy(videos_dir / "tree.avi", source)
    window = make_main_window(source)
    controller = window.controller
    video = controller.video
    controller.set_box(controller.add_track("car").id, (20, 20, 40, 40))
    controller.close_project()
    moved = tmp_path / "moved" / "tree.avi"
    moved.parent.mkdir()
    shutil.move(source, moved)
    assert window.open_project(tmp_path / "project0")
    assert controller.media is None  # the missing file is reported, the project stays usable
    window.video_list.relink(video.id, str(moved))
    assert controller.media is not None and controller.video.path == str(moved.resolve())
    window.video_list.remove(video.id)
    assert window.video_list.count() == 0 and controller.video is None
    controller.undo_stack.undo()
    assert window.video_list.count() == 1 and controller.video.id == video.id
    assert len(controller.boxes_here()) == 1


def test_undo_after_an_empty_interpolate_removes_the_box(make_main_window, videos_dir):
    # Issue 13: Interpolate with one keyframe recorded an empty history entry; Ctrl+Z then undid
    # that instead of the box.
    window = make_main_window(videos_dir / "tree.avi")
    controller = window.controller
    controller.set_box(controller.add_track("a").id, (20, 20, 40, 40))
    window.act_interpolate()
    controller.undo_stack.undo()
    assert controller.boxes_here() == []


def test_drawing_on_empty_canvas_makes_a_new_track_and_leaves_the_selected_one(make_main_window, qtbot, videos_dir):
    # Issue 16.1: with a track selected, a box drawn elsewhere moved that track's keyframe onto
    # another object. A drag starting on empty canvas is a new object (CVAT N / DarkLabel).
    window = make_main_window(videos_dir / "tree.avi")
    controller = window.controller
    first = controller.add_track("a")
    controller.set_box(first.id, (20, 20, 40, 40))
    assert controller.track_id == first.id and window.canvas.selected_box() is not None
    _drag(qtbot, window, (150, 100), (220, 170))
    tracks = controller.tracks()
    assert len(tracks) == 2
    assert controller.project.box_at(first.id, 0).box == (20, 20, 40, 40)
    (second,) = [t for t in tracks if t.id != first.id]
    drawn = controller.project.box_at(second.id, 0)
    assert drawn.source == "manual" and abs(drawn.x - 150) < 2 and abs(drawn.w - 70) < 2 and abs(drawn.h - 70) < 2
    # A drag that starts inside a box still edits that box (and no third track appears).
    _drag(qtbot, window, (40, 40), (50, 45))
    moved = controller.project.box_at(first.id, 0)
    assert len(controller.tracks()) == 2 and abs(moved.x - 30) < 2 and abs(moved.y - 25) < 2


def test_shift_drag_draws_the_selected_tracks_box_where_it_has_none(make_main_window, qtbot, videos_dir):
    # A lost object found again: the selected track gets the box, no new track.
    window = make_main_window(videos_dir / "tree.avi")
    controller = window.controller
    first = controller.add_track("a")
    controller.set_box(first.id, (20, 20, 40, 40))
    controller.seek(5)
    assert controller.project.box_at(first.id, 5) is None
    _drag(qtbot, window, (150, 100), (220, 170), Qt.KeyboardModifier.ShiftModifier)
    assert [t.id for t in controller.tracks()] == [first.id]
    drawn = controller.project.box_at(first.id, 5)
    assert drawn is not None and drawn.source == "manual" and abs(drawn.x - 150) < 2 and abs(drawn.w - 70) < 2


def test_a_shortcut_already_in_use_is_refused_naming_the_other_action(make_main_window, qtbot):
    # Issue 16.2: binding T to "Toggle keyframe" was stored silently; T (also Track forward) then
    # did nothing, because Qt fires neither of two actions sharing a key.
    from app.actions import ACTIONS
    from app.dialogs.preferences import PreferencesDialog

    window = make_main_window()
    prefs = window.prefs
    dialog = PreferencesDialog(prefs, [], window)
    qtbot.addWidget(dialog)
    rows = {spec.id: row for row, spec in enumerate(ACTIONS)}
    dialog.shortcuts.item(rows["toggle_keyframe"], 1).setText("t")
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted
    assert "Track forward" in dialog.error.text()
    boxes = [b for b in dialog.findChildren(QMessageBox) if b.objectName() == "shortcut-conflict-box"]
    assert boxes and "Track forward" in boxes[-1].text()
    assert prefs.shortcuts("toggle_keyframe") == ["K"] and prefs.shortcuts("track_forward") == ["T"]
    with pytest.raises(ValueError, match="Track forward"):
        prefs.set_shortcuts("toggle_keyframe", ["T"])
    assert prefs.shortcuts("toggle_keyframe") == ["K"]
    # Swapping two keys in one go is no conflict.
    dialog.shortcuts.item(rows["track_forward"], 1).setText("K")
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted
    assert prefs.shortcuts("toggle_keyframe") == ["t"] and prefs.shortcuts("track_forward") == ["K"]


def test_zoom_keeps_the_point_under_the_cursor_and_ctrl_equal_the_centre(make_main_window, qtbot, videos_dir):
    # Issue 16.3: Ctrl+wheel and Ctrl+= drifted to the top-left (a stale AnchorUnderMouse).
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    window = make_main_window(videos_dir / "tree.avi")
    view = window.canvas
    qtbot.wait(20)
    view.zoom(2.0)  # larger than the view, so both axes can scroll
    at = QPoint(view.viewport().width() // 3, view.viewport().height() // 3)
    for _ in range(2):
        before = view.mapToScene(at)
        wheel = QWheelEvent(QPointF(at), QPointF(view.viewport().mapToGlobal(at)), QPoint(), QPoint(0, 120),
                            Qt.MouseButton.NoButton, Qt.KeyboardModifier.ControlModifier, Qt.ScrollPhase.NoScrollPhase, False)
        QApplication.sendEvent(view.viewport(), wheel)
        after = view.mapToScene(at)
        assert abs(after.x() - before.x()) <= 2 and abs(after.y() - before.y()) <= 2, (before, after)
    scale = view.transform().m11()
    centre = view.viewport().rect().center()
    before = view.mapToScene(centre)
    qtbot.keyClick(window, Qt.Key.Key_Equal, Qt.KeyboardModifier.ControlModifier)
    assert view.transform().m11() > scale * 1.2
    after = view.mapToScene(centre)
    assert abs(after.x() - before.x()) <= 2 and abs(after.y() - before.y()) <= 2, (before, after)


def test_the_view_follows_a_run_on_its_own_frames_until_the_user_goes_elsewhere(make_main_window, qtbot, videos_dir):
    window = make_main_window(videos_dir / "vtest.avi")
    c = window.controller
    _drag(qtbot, window, (300, 200), (360, 300))
    # A manual "out of view" at frame 121 ends the run there: long enough to outlast the user's
    # jump, without tracking all 795 frames.
    with c.project.edit("end of the test's span"):
        c.project.put_boxes([BoxRecord.absent(window.canvas.selected_box().track_id, 120)])
    c.reload()
    decoded = []
    original = c.media.frame
    c.media.frame = lambda i: decoded.append(i) or original(i)  # count what the GUI thread decodes
    followed = []
    window.runner.progress.connect(lambda result: followed.append(c.frame))
    qtbot.keyClick(window, Qt.Key.Key_T)
    qtbot.waitUntil(lambda: c.frame >= 5, timeout=60000)  # following the run...
    assert decoded == []  # ...on the frames the run decoded, not decoded again on the GUI thread
    c.seek(2)  # the user goes back to review frame 3 while the run goes on
    seen = len(followed)
    _wait_tracking(qtbot, window)
    assert len(followed) > seen + 20  # the run kept going ...
    assert c.frame == 2  # ... and never moved the view again, nor at its end
    assert window.canvas.selected_box() is not None and window.canvas.selected_box().frame == 2


def test_a_run_killed_with_its_process_is_offered_to_continue_once(make_main_window, qtbot, videos_dir, tmp_path):
    import subprocess
    import sys

    from projects import Project
    from tests.reliability_support import child_env

    folder = tmp_path / "killed"
    with Project.create(folder) as project:
        video = project.add_video(videos_dir / "tree.avi")
        track = project.add_track(video.id, "tree")
        project.set_box(track.id, 0, (100, 80, 60, 60))
    # A process that starts a run and dies without finishing it (as kill -9 would leave it).
    code = "import sys; from projects import Project; p = Project.open(sys.argv[1]); p.start_run('propagate', 1, {'direction': 'forward', 'tracks': None}); import os; os._exit(0)"
    subprocess.run([sys.executable, "-c", code, str(folder)], env=child_env(), check=True, timeout=60)
    window = make_main_window()
    assert window.open_project(folder)
    (box,) = [b for b in window.findChildren(QMessageBox) if b.objectName() == "interrupted-run-box" and b.isVisible()]
    assert "tree" in box.text() and "interrupted" in box.text()
    box.button(QMessageBox.StandardButton.Yes).click()
    _wait_tracking(qtbot, window)
    project = window.controller.project
    assert len(project.boxes(track.id)) == video.frames  # continued to the end
    assert [r["status"] for r in project.runs()] == ["resumed", "done"]
    # Reopening asks nothing: the interrupted run has been settled.
    assert window.open_project(folder)
    assert not [b for b in window.findChildren(QMessageBox) if b.objectName() == "interrupted-run-box" and b.isVisible()]


def test_ctrl_z_never_undoes_another_processs_edit_under_the_users_label(make_main_window, qtbot, videos_dir):
    import subprocess
    import sys

    from tests.reliability_support import REPO, child_env

    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    _drag(qtbot, window, (100, 80), (180, 160))
    (track,) = c.tracks()
    mine = c.project.box_at(track.id, 0)
    assert c.undo_stack.undoText() == "manual box on frame 1"
    # Another process (the CLI) adds a box to the same track after the user's edit.
    done = subprocess.run([sys.executable, "-m", "projects.cli", "add-box", str(c.project.folder), str(c.video.id), "21",
                           "10,12,40,30", "--track", track.label], cwd=REPO, env=child_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    messages = []
    c.message.connect(messages.append)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    # Nothing undone: the user's step is not the project's next one, and the user is told which is.
    assert c.project.box_at(track.id, 0) == mine and c.project.box_at(track.id, 20) is not None
    assert messages and "add box on frame 21" in messages[-1]
    qtbot.waitUntil(lambda: c.undo_stack.undoText() == "add box on frame 21", timeout=5000)
    (box,) = [b for b in window.findChildren(QMessageBox) if b.objectName() == "error-box" and b.isVisible()]
    assert "add box on frame 21" in box.text()
    box.accept()  # the user reads it and clicks OK
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    # Now the menu names the other process's step; Ctrl+Z undoes exactly it, then the user's box.
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert c.project.box_at(track.id, 20) is None and c.project.box_at(track.id, 0) == mine
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert c.project.box_at(track.id, 0) is None


def test_ctrl_g_goes_to_a_frame_and_shift_n_to_the_previous_low_score(make_main_window, qtbot, videos_dir):
    from PySide6.QtWidgets import QInputDialog

    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    qtbot.keyClick(window, Qt.Key.Key_G, Qt.KeyboardModifier.ControlModifier)
    (dialog,) = [d for d in window.findChildren(QInputDialog) if d.objectName() == "go-to-frame" and d.isVisible()]
    assert dialog.intMaximum() == 68 and dialog.intValue() == 1  # frames are shown 1-based
    dialog.setIntValue(41)
    dialog.accept()
    assert c.frame == 40
    # Machine boxes whose scores we choose: low on 10 and 30.
    _object_with_rows(qtbot, window, lambda t, f: BoxRecord(t, f, 100.0, 80.0, 80.0, 80.0, "tracked", 0.1 if f in (10, 30) else 0.9))
    window.timeline.set_threshold(0.5)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert c.frame == 30
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ShiftModifier)
    assert c.frame == 10
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert c.frame == 30


def test_with_a_failure_predictor_n_goes_to_the_frames_it_flags(make_main_window, qtbot, videos_dir):
    from sstrack.review import FEATURES, FailurePredictor

    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    # A predictor that only looks at centre jumps (> 0.5 box sizes): scores are all high here,
    # so the score threshold alone would flag nothing.
    weights = tuple(10.0 if name == "centre_jump" else 0.0 for name in FEATURES)
    window.timeline.predictor = FailurePredictor((0.0,) * len(FEATURES), (1.0,) * len(FEATURES), weights, -5.0, 0.5)
    track = _object_with_rows(qtbot, window, lambda t, f: BoxRecord(
        t, f, 200.0 if 30 <= f < 34 else 100.0, 80.0, 80.0, 80.0, "tracked", 0.9, look=0.5))
    assert window.timeline.low_count() == 2  # the jump onto frame 30 and back on 34
    assert "predictor" in window.timeline.flag_reason()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    c.seek(0)
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert c.frame == 30
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert c.frame == 34
    # Boxes tracked before looks were stored (schema 5) have none: the score threshold flags instead.
    with c.project.edit("an old run's box"):
        c.project.put_boxes([BoxRecord(track.id, 50, 100.0, 80.0, 80.0, 80.0, "tracked", 0.1)])
    c.reload()
    assert window.timeline.low_count() == 1
    assert "below" in window.timeline.flag_reason()


def _timeline_click(qtbot, window: MainWindow, frame: int, modifier=Qt.KeyboardModifier.NoModifier,
                    button=Qt.MouseButton.LeftButton) -> None:
    timeline = window.timeline
    scene = timeline.plotItem.vb.mapViewToScene(QPointF(frame, 0.5))
    qtbot.mouseClick(timeline.viewport(), button, modifier, timeline.mapFromScene(scene))


def test_span_edits_from_a_timeline_selection_or_up_to_the_next_keyframe(make_main_window, qtbot, videos_dir):
    # Issues 14 and 16: mark a span out of view / delete the machine's boxes in it, from the app.
    window = make_main_window(videos_dir / "tree.avi")
    controller, project = window.controller, window.controller.project
    track = controller.add_track("a")
    controller.set_box(track.id, (20, 20, 40, 40))
    with project.edit("tracked"):
        project.put_boxes([BoxRecord(track.id, f, 20.0 + f, 20.0, 40.0, 40.0, "tracked", 0.7) for f in range(1, 30)])
        project.set_box(track.id, 30, (50, 20, 40, 40))
    controller.reload()
    controller.seek(10)
    _timeline_click(qtbot, window, 20, Qt.KeyboardModifier.ShiftModifier)
    assert window.timeline.selection() == (10, 20) and controller.frame == 10  # Shift+click selects, no seek
    qtbot.keyClick(window, Qt.Key.Key_O, Qt.KeyboardModifier.ShiftModifier)
    rows = {r.frame: r for r in project.boxes(track.id)}
    assert all(rows[f].out_of_view and not rows[f].has_box for f in range(10, 21))
    assert rows[9].has_box and rows[21].has_box and not rows[21].out_of_view
    assert "frames 11-21: marked out of view" in window.statusBar().currentMessage()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)  # one undo step
    assert all(r.has_box and r.visible for r in project.boxes(track.id))
    # A right click clears the selection; the span is then this frame up to the next keyframe.
    _timeline_click(qtbot, window, 5, button=Qt.MouseButton.RightButton)
    assert window.timeline.selection() is None
    controller.seek(25)
    qtbot.keyClick(window, Qt.Key.Key_Delete, Qt.KeyboardModifier.ShiftModifier)
    assert sorted(r.frame for r in project.boxes(track.id)) == list(range(0, 25)) + [30]
    # Shift+I interpolates the span between the keyframes around it (here 0 and 30).
    qtbot.keyClick(window, Qt.Key.Key_I, Qt.KeyboardModifier.ShiftModifier)
    assert [project.box_at(track.id, f).source for f in range(25, 30)] == ["interpolated"] * 5
    assert project.box_at(track.id, 20).source == "tracked"


def test_t_tracks_only_the_span_of_this_frame_and_g_leaves_the_view_alone(make_main_window, qtbot, videos_dir):
    # Issue 16: T re-tracked every span of the track; G's run moved the view to another frame.
    window = make_main_window(videos_dir / "tree.avi")
    controller, project = window.controller, window.controller.project
    track = controller.add_track("a")
    controller.set_box(track.id, (100, 80, 60, 60))
    with project.edit("earlier run"):
        project.put_boxes([BoxRecord(track.id, f, 100.0, 80.0, 60.0, 60.0, "tracked", 0.123) for f in range(1, 40)])
        project.set_box(track.id, 40, (110, 80, 60, 60))
    controller.reload()
    controller.seek(50)
    qtbot.keyClick(window, Qt.Key.Key_T)
    _wait_tracking(qtbot, window)
    rows = {r.frame: r for r in project.boxes(track.id)}
    assert all(rows[f].score == 0.123 for f in range(1, 40))  # the span before keyframe 40 untouched
    assert all(rows[f].source == "tracked" for f in range(41, 68))
    controller.seek(40)
    controller.set_box(track.id, (112, 82, 60, 60))  # a correction on the keyframe
    qtbot.keyClick(window, Qt.Key.Key_G)
    _wait_tracking(qtbot, window)
    assert controller.frame == 40


def test_t_measures_the_idle_cores_on_the_worker_not_the_window(make_main_window, qtbot, videos_dir, monkeypatch):
    # Stop 50 (py-spy): each T froze the window for 0.25 s while the idle cores were sampled from
    # /proc/stat on the UI thread.
    import app.tracking

    threads = []
    measure = app.tracking.use_cpu_threads
    monkeypatch.setattr(app.tracking, "use_cpu_threads", lambda: threads.append(threading.current_thread()) or measure())
    window = make_main_window(videos_dir / "tree.avi")
    track = window.controller.add_track("a")
    window.controller.set_box(track.id, (100, 80, 60, 60))
    qtbot.keyClick(window, Qt.Key.Key_T)
    _wait_tracking(qtbot, window)
    assert threads and threading.main_thread() not in threads


def test_file_import_brings_labels_in_as_one_undo_step_and_a_bad_path_changes_nothing(make_main_window, qtbot, videos_dir, tmp_path):
    # Issue 16: import from the File menu (it was CLI only).
    from projects import Project
    from projects.formats import export

    with Project.create(tmp_path / "source") as source:
        video = source.add_video(videos_dir / "tree.avi")
        source.set_box(source.add_track(video.id, "tree").id, 0, (100, 80, 60, 60))
        export(source, "mot", tmp_path / "mot")
    window = make_main_window()
    project = window.controller.project
    window.actions_by_id["import_labels"].trigger()
    dialog = window.import_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("mot"))
    assert "gt/gt.txt" in dialog.expects.text() and not dialog.import_button.isEnabled()
    dialog.path.setText(str(tmp_path / "mot" / "does-not-exist"))
    dialog.import_button.click()
    qtbot.waitUntil(lambda: window.findChild(QMessageBox, "error-box") is not None, timeout=5000)
    error = window.findChild(QMessageBox, "error-box")
    assert "no such file or folder" in error.text() and project.videos() == []
    error.done(0)
    window.actions_by_id["import_labels"].trigger()
    dialog = window.import_dialog
    dialog.format.setCurrentIndex(dialog.format.findData("mot"))
    dialog.path.setText(str(tmp_path / "mot"))
    dialog.import_button.click()
    (video,) = project.videos()
    (track,) = project.tracks(video.id)
    assert window.controller.video.id == video.id and window.controller.track_id == track.id
    assert project.box_at(track.id, 0).box == (100.0, 80.0, 60.0, 60.0)
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.videos() == []


def test_an_empty_project_says_how_to_start(make_main_window, qtbot, videos_dir, tmp_path, monkeypatch):
    # Issue 16 (onboarding): the empty states explain themselves; the Welcome prompt can browse.
    from PySide6.QtWidgets import QFileDialog

    from app.dialogs.welcome import WelcomeDialog

    window = make_main_window()
    assert "Add a video" in window.canvas._message and window.canvas.hint() == ""
    axis = window.timeline.getAxis("bottom")
    assert axis.style["showValues"] is False and window.timeline.viewRange()[0][0] >= -0.1  # not -0.4...0.4
    assert window.add_video(videos_dir / "tree.avi")
    assert "press T" in window.canvas.hint() and axis.style["showValues"] is True
    _drag(qtbot, window, (100, 80), (180, 160))
    assert window.canvas.hint() == ""  # the first object exists: no more hint

    dialog = WelcomeDialog(tmp_path / "projects" / "untitled", window)
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", lambda *a, **k: str(tmp_path / "elsewhere"))
    dialog._browse()
    assert dialog.chosen() == tmp_path / "elsewhere" / "untitled" and not dialog.opening
    dialog._open_existing()
    assert dialog.chosen() == tmp_path / "elsewhere" and dialog.opening and dialog.result() == 1


def test_objects_drawn_get_the_chosen_class_and_a_class_can_be_changed(make_main_window, qtbot, videos_dir):
    # Issue 16 (label schema): a class apart from the object's name, chosen before drawing.
    window = make_main_window(videos_dir / "tree.avi")
    panel, project = window.track_panel, window.controller.project
    panel.new_class_box.setEditText("car")
    _drag(qtbot, window, (40, 40), (90, 80))
    _drag(qtbot, window, (150, 100), (220, 170))
    tracks = window.controller.tracks()
    assert [(t.label, t.class_name) for t in tracks] == [("car1", "car"), ("car2", "car")]
    assert panel.list.item(0).text() == "car1 [car]" and panel.new_class_box.findText("car") >= 0
    panel.set_class(tracks[1].id, "truck")
    assert project.track(tracks[1].id).class_name == "truck" and project.classes() == ["car", "truck"]
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.track(tracks[1].id).class_name == "car"


def test_labels_of_nearby_boxes_do_not_overlap():
    # Issue 16: two cars side by side had their names printed over each other.
    from PySide6.QtCore import QRectF

    from app.canvas import place_label

    placed: list = []
    for box in (QRectF(100, 100, 50, 40), QRectF(104, 102, 50, 40), QRectF(108, 98, 50, 40), QRectF(400, 100, 50, 40)):
        placed.append(place_label(box, (90, 17), 2.0, placed))
    assert all(not a.intersects(b) for i, a in enumerate(placed) for b in placed[i + 1 :])
    assert placed[0].bottom() <= 100 and placed[3].top() < 100  # a free label stays just above its box


def test_swap_split_and_merge_tracks_from_the_edit_menu(make_main_window, qtbot, videos_dir, monkeypatch):
    # Issue 16: identity fixes in the app (swap from here, split here, merge), one undo step each.
    from PySide6.QtWidgets import QInputDialog

    window = make_main_window(videos_dir / "tree.avi")
    controller, project = window.controller, window.controller.project
    a, b = controller.add_track("a"), controller.add_track("b")
    with project.edit("fill"):
        project.put_boxes([BoxRecord(a.id, f, 10.0, 20.0, 40.0, 30.0, "tracked", 0.5) for f in range(20)])
        project.put_boxes([BoxRecord(b.id, f, 200.0, 90.0, 40.0, 30.0, "tracked", 0.5) for f in range(20)])
    controller.reload()
    controller.select_track(a.id)
    controller.seek(12)
    monkeypatch.setattr(QInputDialog, "getItem", lambda *args, **kw: ("b", True))
    window.actions_by_id["swap_tracks"].trigger()
    assert project.box_at(a.id, 12).x == 200.0 and project.box_at(a.id, 11).x == 10.0
    assert "swapped from frame 13" in window.statusBar().currentMessage()
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert project.box_at(a.id, 12).x == 10.0
    window.actions_by_id["split_track"].trigger()
    (split,) = [t for t in controller.tracks() if t.label == "a-13"]
    assert sorted(r.frame for r in project.boxes(split.id)) == list(range(12, 20))
    controller.select_track(a.id)
    monkeypatch.setattr(QInputDialog, "getItem", lambda *args, **kw: ("a-13", True))
    window.actions_by_id["merge_track"].trigger()
    assert len(project.boxes(a.id)) == 20 and [t.label for t in controller.tracks()] == ["a", "b"]


def test_tab_cycles_the_objects_on_this_frame_and_ctrl_b_copies_a_box_forward(make_main_window, qtbot, videos_dir):
    # Issue 16: a per-frame object cycle (Tab / Shift+Tab) and CVAT's propagate (Ctrl+B).
    from PySide6.QtWidgets import QInputDialog

    window = make_main_window(videos_dir / "tree.avi")
    controller, project = window.controller, window.controller.project
    ids = []
    for x in (20, 120, 220):
        track = controller.add_track(f"t{x}")
        controller.set_box(track.id, (x, 40, 40, 40))
        ids.append(track.id)
    window.canvas.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_Tab)
    assert controller.track_id == ids[0]  # after the last, the first again
    qtbot.keyClick(window, Qt.Key.Key_Tab)
    assert controller.track_id == ids[1]
    qtbot.keyClick(window, Qt.Key.Key_Backtab, Qt.KeyboardModifier.ShiftModifier)
    assert controller.track_id == ids[0]
    project.set_box(ids[0], 3, (25, 40, 40, 40))  # a human's box three frames on stays
    qtbot.keyClick(window, Qt.Key.Key_B, Qt.KeyboardModifier.ControlModifier)
    (dialog,) = [d for d in window.findChildren(QInputDialog) if d.objectName() == "copy-box-forward" and d.isVisible()]
    dialog.setIntValue(5)
    dialog.accept()
    rows = {r.frame: r for r in project.boxes(ids[0])}
    assert sorted(rows) == [0, 1, 2, 3, 4, 5] and rows[3].box == (25.0, 40.0, 40.0, 40.0)
    assert all(rows[f].source == "interpolated" and rows[f].box == (20.0, 40.0, 40.0, 40.0) for f in (1, 2, 4, 5))
    qtbot.keyClick(window, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert sorted(r.frame for r in project.boxes(ids[0])) == [0, 3]


def test_zoomed_in_the_view_follows_the_selected_object_and_crosshairs_guide_drawing(make_main_window, qtbot, videos_dir):
    # Issue 16: follow the selected object when zoomed in; crosshair guides while drawing.
    window = make_main_window(videos_dir / "tree.avi")
    controller, view = window.controller, window.canvas
    track = controller.add_track("a")
    controller.set_box(track.id, (10, 10, 30, 30))
    controller.project.set_box(track.id, 1, (270, 190, 30, 30), source="tracked", score=0.9)
    view.zoom(6.0, QPointF(view.mapFromScene(QPointF(25, 25))))
    visible = lambda: view.mapToScene(view.viewport().rect()).boundingRect()  # noqa: E731
    assert visible().contains(QPointF(25, 25)) and not visible().contains(QPointF(285, 205))
    controller.seek(1)
    qtbot.wait(20)
    assert visible().contains(QPointF(285, 205))  # the view went with the object
    view.fit()
    qtbot.wait(50)  # scroll bars of the zoomed view go away before anything is compared

    def guide_row() -> list:
        """The pixels of the frame's row y = 120, far from the pointer (x 5..100), as painted now."""
        image = view.viewport().grab().toImage()
        return [image.pixelColor(view.mapFromScene(QPointF(x, 120))) for x in range(5, 100)]

    before = guide_row()
    qtbot.mouseMove(view.viewport(), pos=view.mapFromScene(QPointF(160, 120)))
    qtbot.wait(50)
    after = guide_row()
    assert sum(a != b for a, b in zip(before, after)) > 20  # the dashed horizontal guide crosses the frame


def test_playback_speed_steps_with_the_bracket_keys(make_main_window, qtbot, videos_dir):
    # Issue 16: playback speed. tree.avi runs at 15 fps: 1x is 66 ms a frame.
    window = make_main_window(videos_dir / "tree.avi")
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert window.play_timer.isActive() and window.play_timer.interval() == 66
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    qtbot.keyClick(window, Qt.Key.Key_BracketRight)
    assert window.play_speed == 4.0 and window.play_timer.interval() == 16 and "4x" in window.statusBar().currentMessage()
    for _ in range(8):
        qtbot.keyClick(window, Qt.Key.Key_BracketLeft)
    assert window.play_speed == 0.25 and window.play_timer.interval() == 266
    qtbot.keyClick(window, Qt.Key.Key_Space)
    assert not window.play_timer.isActive()


def test_attributes_are_edited_as_name_value_pairs(make_main_window, videos_dir):
    # Issue 16 (label schema): attributes per object, one undo step; a malformed line changes nothing.
    from projects import ProjectError

    window = make_main_window(videos_dir / "tree.avi")
    track = window.controller.add_track("car1", category="car")
    window.track_panel.set_attributes(track.id, "color = red; parked=yes")
    assert window.controller.project.track(track.id).attribute_map == {"color": "red", "parked": "yes"}
    with pytest.raises(ProjectError, match="name=value pairs"):
        window.track_panel.set_attributes(track.id, "color red")
    window.controller.undo_stack.undo()
    assert window.controller.project.track(track.id).attribute_map == {}


def test_other_tracks_stay_editable_while_a_run_tracks_one(make_main_window, qtbot, videos_dir):
    # Issue 16: keep working on other tracks while a run goes; the tracked one waits.
    window = make_main_window(videos_dir / "vtest.avi")
    controller, project = window.controller, window.controller.project
    a, b = controller.add_track("a"), controller.add_track("b")
    project.set_box(a.id, 0, (100, 100, 60, 120))
    project.set_box(b.id, 0, (400, 100, 60, 120))
    controller.select_track(a.id)
    window.start_tracking("forward", tracks=[a.id])
    assert window.runner.running()
    controller.select_track(b.id)
    window.actions_by_id["toggle_out_of_view"].trigger()  # another track: allowed during the run
    assert project.box_at(b.id, controller.frame).out_of_view
    controller.select_track(a.id)
    window.actions_by_id["toggle_out_of_view"].trigger()  # the track being tracked: waits
    assert "Tracking is running on this track" in window.statusBar().currentMessage()
    window.actions_by_id["undo"].trigger()  # not a one-track edit: waits for any run
    assert project.box_at(b.id, controller.frame).out_of_view
    window.act_cancel()
    _wait_tracking(qtbot, window)


def test_n_stops_where_the_engine_judged_the_object_gone(make_main_window, qtbot, videos_dir):
    """The first frame of a machine out-of-view span is flagged (did the object really leave?); the rest are not."""
    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    _object_with_rows(qtbot, window, lambda t, f: BoxRecord.absent(t, f, source="tracked", score=0.05) if 20 <= f < 40
                      else BoxRecord(t, f, 100.0, 80.0, 80.0, 80.0, "tracked", 0.9))
    window.timeline.set_threshold(0.5)
    assert window.timeline.low_count() == 1
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    c.seek(0)
    qtbot.keyClick(window, Qt.Key.Key_N)
    assert c.frame == 20


def test_alt_n_visits_the_longest_flagged_spans_first(make_main_window, qtbot, videos_dir):
    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    low = {10} | set(range(30, 41)) | {50, 52}  # 50 and 52 are one span: one frame apart
    _object_with_rows(qtbot, window, lambda t, f: BoxRecord(t, f, 100.0, 80.0, 80.0, 80.0, "tracked", 0.1 if f in low else 0.9))
    window.timeline.set_threshold(0.5)
    assert window.timeline.worst_spans() == [(30, 40), (50, 52), (10, 10)]
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    visited = []
    for _ in range(4):
        qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.AltModifier)
        visited.append(c.frame)
    assert visited == [30, 50, 10, 30]
    assert "span 1 of 3" in window.statusBar().currentMessage()


# -- runs and the undo stack (stop 40's review of the editing flows) --------------------------------


def test_an_edit_of_another_track_during_a_run_leaves_one_undo_step_per_ctrl_z(make_main_window, qtbot, videos_dir):
    """The run's step was created when it started but pushed when it ended, above the edits made
    meanwhile: the first Ctrl+Z was refused as "another process's" edit."""
    window = make_main_window(videos_dir / "tree.avi")
    c, project = window.controller, window.controller.project
    a, b = c.add_track("a"), c.add_track("b")
    c.set_box(a.id, (100, 80, 60, 60))
    c.set_box(b.id, (20, 20, 40, 40))
    c.select_track(a.id)
    window.start_tracking("forward", tracks=[a.id])
    qtbot.waitUntil(lambda: len(project.boxes(a.id)) >= 4, timeout=60000)
    c.seek(0)  # back to frame 1 (the view stops following the run), where b has its box
    c.select_track(b.id)
    window.actions_by_id["toggle_out_of_view"].trigger()  # allowed: another track
    assert project.box_at(b.id, c.frame).out_of_view
    flagged = c.frame
    _wait_tracking(qtbot, window)
    messages = []
    c.message.connect(messages.append)
    window.act_undo()  # the newest step in the project's history: the flag
    qtbot.wait(50)
    assert not messages and not project.box_at(b.id, flagged).out_of_view and len(project.boxes(a.id)) > 1
    window.act_undo()  # then the run
    qtbot.wait(50)
    assert not messages and len(project.boxes(a.id)) == 1


def test_a_run_that_fails_midway_is_one_undo_step(make_main_window, qtbot, videos_dir, monkeypatch):
    window = make_main_window(videos_dir / "tree.avi")
    c, project = window.controller, window.controller.project
    a = c.add_track("a")
    c.set_box(a.id, (100, 80, 60, 60))
    real_step, calls = window.runner.tracker.step, []

    def failing_on_the_sixth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_step(*args, **kwargs)

    monkeypatch.setattr(window.runner.tracker, "step", failing_on_the_sixth)
    monkeypatch.setattr(window, "show_error", lambda text: None)
    window.start_tracking("forward", tracks=[a.id])
    _wait_tracking(qtbot, window)
    assert len(project.boxes(a.id)) > 1  # what it wrote before it failed is kept ...
    window.act_undo()  # ... and is the step Ctrl+Z undoes
    qtbot.wait(50)
    assert len(project.boxes(a.id)) == 1


def test_a_run_with_nothing_to_track_keeps_the_users_redo(make_main_window, qtbot, videos_dir):
    window = make_main_window(videos_dir / "tree.avi")
    c, project = window.controller, window.controller.project
    a = c.add_track("a")
    c.set_box(a.id, (100, 80, 60, 60))
    c.seek(1)
    c.set_box(a.id, (102, 80, 60, 60))  # keyframes on frames 1 and 2: nothing between them
    c.toggle_flag("occluded")
    window.act_undo()
    c.seek(0)
    window.start_tracking("forward", tracks=[a.id], around=0)
    _wait_tracking(qtbot, window)
    window.act_redo()
    qtbot.wait(50)
    assert project.box_at(a.id, 1).occluded


def test_the_track_a_run_writes_cannot_be_nudged_or_deleted(make_main_window, qtbot, videos_dir, monkeypatch):
    """Nudges were missing from the edits a run guards; deleting the track killed the run with a
    raw "FOREIGN KEY constraint failed"."""
    window = make_main_window(videos_dir / "vtest.avi")
    c, project = window.controller, window.controller.project
    a = c.add_track("a")
    c.set_box(a.id, (300, 200, 60, 100))
    window.start_tracking("forward", tracks=[a.id])
    qtbot.waitUntil(lambda: len(project.boxes(a.id)) >= 4, timeout=60000)
    c.seek(2)
    before = project.box_at(a.id, 2)
    window.actions_by_id["nudge_right_10"].trigger()
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    window.track_panel.delete()
    assert project.box_at(a.id, 2) == before and [t.id for t in c.tracks()] == [a.id]
    assert window.runner.running()
    window.act_cancel()
    _wait_tracking(qtbot, window)


def test_undoing_the_selected_objects_creation_selects_one_that_exists(make_main_window, qtbot, videos_dir):
    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    _drag(qtbot, window, (100, 80), (180, 160))
    _drag(qtbot, window, (200, 20), (260, 80))  # selected
    first, _second = c.tracks()
    window.act_undo()  # its box
    window.act_undo()  # its track
    assert c.track_id == first.id


def test_deleting_a_track_clears_the_span_selected_on_its_timeline(make_main_window, qtbot, videos_dir, monkeypatch):
    """The span stayed selected, and Shift+O then marked it on the track selected next."""
    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    b, a = c.add_track("b"), c.add_track("a")
    c.select_track(a.id)
    window.timeline.select_span(10, 30)
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kwargs: QMessageBox.StandardButton.Yes)
    window.track_panel.delete()
    assert c.track_id == b.id and window.timeline.selection() is None


def test_a_drag_during_playback_edits_the_frame_it_began_on(make_main_window, qtbot, videos_dir):
    """Pressed on frame 11 while playing, released on 15: the moved box was written on frame 15."""
    window = make_main_window(videos_dir / "tree.avi")
    c, project = window.controller, window.controller.project
    a = c.add_track("a")
    with project.edit("machine rows"):
        project.put_boxes([BoxRecord(a.id, f, 100.0, 80.0, 60.0, 60.0, "tracked", 0.9) for f in range(68)])
    c.reload()
    c.seek(10)
    window.act_play()
    view = window.canvas
    start, end = view.mapFromScene(QPointF(130, 110)), view.mapFromScene(QPointF(150, 120))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    pressed_on = c.frame
    qtbot.mouseMove(view.viewport(), pos=QPoint((start.x() + end.x()) // 2, (start.y() + end.y()) // 2))
    qtbot.wait(300)  # the drag takes a moment
    qtbot.mouseMove(view.viewport(), pos=end)
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert not window.play_timer.isActive() and c.frame == pressed_on  # paused at the press
    manual = project.boxes(a.id)
    assert [r.frame for r in manual if r.source == "manual"] == [pressed_on]
    assert manual[pressed_on].x == pytest.approx(120, abs=2)


def test_a_frame_change_mid_drag_writes_nothing(make_main_window, qtbot, videos_dir):
    """The wheel steps frames while the button is held: the drawn box belonged to the frame left behind."""
    window = make_main_window(videos_dir / "tree.avi")
    c = window.controller
    view = window.canvas
    start, end = view.mapFromScene(QPointF(100, 80)), view.mapFromScene(QPointF(180, 160))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), pos=end)
    window.act_next_frame()
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert c.tracks() == [] and "frame changed during the drag" in window.statusBar().currentMessage()


@pytest.mark.parametrize("key", ["undo", "cancel"])
def test_undo_or_escape_mid_drag_drops_the_drag(make_main_window, qtbot, videos_dir, key):
    """Ctrl+Z mid-drag undid the box's creation, then the release created it again and cleared Redo."""
    window = make_main_window(videos_dir / "tree.avi")
    c, project = window.controller, window.controller.project
    _drag(qtbot, window, (100, 80), (180, 160))
    (track,) = c.tracks()
    before = project.box_at(track.id, 0)
    view = window.canvas
    start, end = view.mapFromScene(QPointF(140, 120)), view.mapFromScene(QPointF(160, 130))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    qtbot.mouseMove(view.viewport(), pos=end)
    window.actions_by_id[key].trigger()
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    if key == "undo":
        assert project.box_at(track.id, 0) is None and c.undo_stack.canRedo()
    else:
        assert project.box_at(track.id, 0) == before  # Esc: the box stays where it was


def test_a_running_track_does_not_move_the_frame_under_a_drag(make_main_window, qtbot, videos_dir):
    """The view follows a run; while the user moves another object's box it stays on the drag's frame,
    and the moved box is written there (the run tracks only the first object)."""
    window = make_main_window(videos_dir / "vtest.avi")
    c, project = window.controller, window.controller.project
    a, b = c.add_track("a"), c.add_track("b")
    c.set_box(a.id, (300, 200, 60, 100))
    c.select_track(b.id)
    c.set_box(b.id, (100, 100, 80, 80))
    window.start_tracking("forward", tracks=[a.id])
    qtbot.waitUntil(lambda: c.frame >= 2, timeout=60000)  # following the run
    c.set_box(b.id, (100, 100, 80, 80))
    view = window.canvas
    start, end = view.mapFromScene(QPointF(140, 140)), view.mapFromScene(QPointF(160, 150))
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=start)
    pressed_on, done = c.frame, window.runner._last.done
    qtbot.mouseMove(view.viewport(), pos=end)
    qtbot.waitUntil(lambda: window.runner._last.done >= done + 3, timeout=60000)
    assert c.frame == pressed_on
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=end)
    assert project.box_at(b.id, pressed_on).x == pytest.approx(120, abs=2)
    window.act_cancel()
    _wait_tracking(qtbot, window)


def test_closing_the_window_during_a_run_is_prompt_and_keeps_what_was_tracked(make_main_window, qtbot, videos_dir):
    """The worker's thread quit was queued to the GUI thread, which close() blocked in wait(): 60 s frozen."""
    import time

    from projects import Project

    window = make_main_window(videos_dir / "vtest.avi")
    c, project = window.controller, window.controller.project
    a = c.add_track("a")
    c.set_box(a.id, (300, 200, 60, 100))
    folder = project.folder
    window.start_tracking("forward", tracks=[a.id])
    qtbot.waitUntil(lambda: window.runner._last is not None and window.runner._last.done >= 5, timeout=60000)
    shown = window.runner._last.done
    started = time.perf_counter()
    window.close()
    took = time.perf_counter() - started
    qtbot.wait(100)  # the run's queued signals reach a window whose project is closed
    with Project.open(folder) as again:
        assert len(again.boxes(a.id)) >= shown + 1 and again.runs()[-1]["status"] in ("cancelled", "interrupted")
    assert took < 10, f"closing blocked the GUI for {took:.1f}s"


def test_an_elided_label_shows_a_short_text_whole_and_a_long_one_to_its_width_with_all_in_the_tooltip(qtbot):
    from app.elided_label import ElidedLabel

    label = ElidedLabel(200)
    qtbot.addWidget(label)
    label.setText("adapting… 4 s")
    label.resize(label.sizeHint())
    assert label.shown_text() == "adapting… 4 s" == label.text() and label.sizeHint().width() < 200
    assert label.toolTip() == "<p>adapting… 4 s</p>"
    long = "kept sstrack-lite: discarded, no clear gain with 0 held-out keyframes " * 3
    label.setText(long)
    label.resize(label.sizeHint())
    assert label.sizeHint().width() == 200 and label.width() == 200
    assert label.text() == label.accessibleName() == long and label.toolTip() == f'<table width="200"><tr><td>{long}</td></tr></table>'  # wraps
    assert label.shown_text().endswith("…") and long.startswith(label.shown_text()[:-1])
    assert label.fontMetrics().horizontalAdvance(label.shown_text()) <= label.contentsRect().width()
    # A result file in a project folder may be anyone's: a megabyte of reason is cut, and escaped.
    label.setText("<b>" + "x" * 10**6)
    assert len(label.text()) == 2000 and label.text().endswith("…") and "<td>&lt;b&gt;xx" in label.toolTip()
