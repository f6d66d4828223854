"""Adaptation in the app (#15): an adopted model re-tracks the machine boxes in one undo step and
never touches manual boxes; a discarded one changes nothing; closing the app stops a round cleanly.
Real window, real project, real model files and a real `sstrack-adapt` child process."""

from __future__ import annotations

import dataclasses
import html
import json
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QPoint, QPointF, QSettings, Qt  # noqa: E402
from PySide6.QtTest import QTest  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app.adapt_run import AdaptRun  # noqa: E402
from app.main_window import MainWindow  # noqa: E402
from app.settings import Preferences  # noqa: E402
from sstrack import load_model, save_model  # noqa: E402

pytestmark = pytest.mark.slow


def _window(qtbot, tmp_path, videos_dir, auto: bool = False) -> MainWindow:
    prefs = Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    prefs.set("adapt_auto", int(auto))
    window = MainWindow(prefs)
    qtbot.addWidget(window)
    window.load_model()
    assert window.open_project(tmp_path / "project", create=True)
    assert window.add_video(videos_dir / "tree.avi")
    window.show()
    qtbot.waitExposed(window)
    return window


def _tracked(qtbot, window: MainWindow) -> int:
    """One object with keyframes on frames 1 and 41, tracked between them; its id."""
    c = window.controller
    track = c.add_track("tree")
    c.set_box(track.id, (100, 80, 60, 60))
    c.seek(40)
    c.set_box(track.id, (104, 82, 60, 60))
    c.seek(0)
    window.start_tracking("both", tracks=[track.id])
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120_000)
    qtbot.wait(50)
    return track.id


def _copy_of_the_shipped_model(tmp_path, name: str = "adapt-1-test"):
    """The shipped weights saved as a round saves its model (training is tested in test_adapt.py)."""
    folder = tmp_path / "project" / "models" / name
    save_model(load_model("sstrack-lite"), folder / "model.safetensors")
    return folder / "model.safetensors"


def test_an_adopted_model_re_tracks_machine_boxes_in_one_undo_step_and_keeps_manual_boxes(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    track_id = _tracked(qtbot, window)
    project = window.controller.project
    manual = [r for r in project.boxes(track_id) if r.source == "manual"]
    # Mark the machine boxes so a re-track shows: every one gets a score no tracker writes.
    machine = [r for r in project.boxes(track_id) if r.source != "manual"]
    assert len(machine) > 39  # between the keyframes and on to the end
    with project.edit("marked"):
        project.put_boxes([dataclasses.replace(r, score=-1.0) for r in machine])
    window.controller.resync_history()  # the marking is a step of the project's history too
    window.controller.reload()
    steps_before = window.controller.undo_stack.count()
    model = _copy_of_the_shipped_model(tmp_path)
    window.start_adaptation()  # a real child starts; its own result is replaced by this one
    run = window.adapt_run
    run.stop()
    run.wait(60_000)
    window._adaptation_done(run, {"accepted": True, "model": str(model), "reason": "adapted: IoU at held-out keyframes 0.50 -> 0.70 (1)"})
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120_000)
    qtbot.wait(50)
    assert window.runner.model_name == str(model) and window.wanted_model() == str(model)
    assert project.get_path_setting("adapted_model/1") == str(model)
    assert [m["path"] for m in project.models()] == [str(model)]
    assert "adapted: IoU at held-out keyframes" in window.adapt_label.text()
    assert window.model_label.text().startswith("model: adapt-1-test |")  # the round's name, not "model"
    after = project.boxes(track_id)
    assert [r for r in after if r.source == "manual"] == manual
    assert all(r.score != -1.0 for r in after if r.source != "manual") and len(after) == len(manual) + len(machine)
    assert window.controller.undo_stack.count() == steps_before + 1  # the re-track is one step
    window.controller.undo_stack.undo()
    assert [r.score for r in project.boxes(track_id) if r.source != "manual"] == [-1.0] * len(machine)
    assert [r for r in project.boxes(track_id) if r.source == "manual"] == manual
    window.act_adapt_reset()  # back to the model before adaptation
    assert window.runner.model_name == "sstrack-lite"
    window.close()


def test_a_discarded_model_changes_nothing_and_says_why(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    track_id = _tracked(qtbot, window)
    project = window.controller.project
    before = project.boxes(track_id)
    model = _copy_of_the_shipped_model(tmp_path)
    window.start_adaptation()
    run = window.adapt_run
    run.stop()
    run.wait(60_000)
    reason = ("discarded, worse on IoU at held-out keyframes: IoU at held-out keyframes 0.70 -> 0.40 (1); "
              "forward-backward IoU from keyframes 0.82 -> 0.80 (8); forward-backward IoU far from the first keyframes 0.71 -> 0.86 (2)")
    window.resize(1400, 900)
    window._adaptation_done(run, {"accepted": False, "model": str(model), "reason": reason})
    assert not window.runner.running() and window.runner.model_name == "sstrack-lite"
    assert project.boxes(track_id) == before and project.models() == [] and not project.get_path_setting("adapted_model/1")
    label = window.adapt_label
    assert label.text() == f"kept sstrack-lite: {reason}" and f"<td>{html.escape(label.text())}</td>" in label.toolTip()
    # The whole verdict is the tooltip; on the bar it ends in "…" and leaves the bar's messages
    # room: as a plain QLabel it took the whole bar and hid the re-track's result.
    window.statusBar().showMessage("track forward around frame 1 done")
    qtbot.waitUntil(lambda: label.width() == 480)  # as wide as it may be, and no wider
    assert label.shown_text().endswith("…")
    assert label.shown_text().startswith("kept sstrack-lite: discarded") and label.mapTo(window.statusBar(), QPoint(0, 0)).x() > 400
    window.close()


def test_adapting_while_labelling_starts_after_a_track_run_and_closing_stops_it_cleanly(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir, auto=True)
    _tracked(qtbot, window)  # the first track run starts the first round by itself
    run = window.adapt_run
    assert run is not None and run.running() and window.adapt_label.text().startswith("adapting…")
    assert "trainer.adapt_cli" in run.command()
    assert run.command()[run.command().index("--parent-pid") + 1] == str(os.getpid())  # it stops if the app is killed
    qtbot.waitUntil(lambda: (run.out_dir / "metrics.jsonl").is_file() and bool((run.out_dir / "metrics.jsonl").read_text().strip()),
                    timeout=180_000)
    window.close()  # stops the round: its checkpoint is kept, nothing is adopted or half-written
    assert not run.running()
    assert (run.out_dir / "latest.json").is_file()
    step = json.loads((run.out_dir / "latest.json").read_text())["step"]
    assert step >= 1 and (run.out_dir / json.loads((run.out_dir / "latest.json").read_text())["weights"]).is_file()
    assert not (run.out_dir / "result.json").exists()
    from projects import Project

    with Project.open(tmp_path / "project") as project:
        assert project.models() == [] and not project.get_path_setting("adapted_model/1")


def test_the_one_click_model_is_used_only_for_the_videos_where_it_was_judged_not_worse(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    assert window.add_video(videos_dir / "vtest.avi")
    c = window.controller
    tree, other = c.project.videos()
    model = str(_copy_of_the_shipped_model(tmp_path))
    window.use_finetuned_model(model, [tree.id])  # what the dialog's "Use" sends for a verdict on one video of two
    assert c.project.get_path_setting(f"adapted_model/{tree.id}") == model
    assert not c.project.get_path_setting(f"adapted_model/{other.id}")
    assert window.prefs.get("model") == "sstrack-lite"  # the preference (every other video's model) is unchanged
    c.select_video(tree.id)
    window.load_model()
    assert window.runner.model_name == model
    c.select_video(other.id)
    window.load_model()
    assert window.runner.model_name == "sstrack-lite"
    assert "1 video(s) now track with adapt-1-test; 1 other(s) keep their model" in window.statusBar().currentMessage()


def test_a_model_adopted_without_labels_is_rechecked_on_new_keyframes_and_undone_when_worse(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir, auto=True)
    c = window.controller
    track = c.add_track("tree")
    c.set_box(track.id, (100, 80, 60, 60))
    model = _copy_of_the_shipped_model(tmp_path)
    # What a first round leaves when it adopts a model on one box (sstrack-adapt's result.json).
    (model.parent / "result.json").write_text(json.dumps(
        {"accepted": True, "model": str(model), "base": "sstrack-lite", "unlabelled": True, "trained": [[[0, 100, 80, 60, 60]]]}))
    c.project.set_path_setting(f"adapted_model/{c.video.id}", model)
    window._adapted_at[c.video.id] = 1  # its round began at one keyframe: the next round is three keyframes away
    window.load_model()
    c.seek(30)
    c.set_box(track.id, (103, 81, 60, 60))  # a keyframe the model never saw
    window._adapt_if_due()  # what the end of a track run does
    run = window.adapt_run
    assert run.recheck and "--recheck" in run.command() and str(model) in run.command()
    qtbot.waitUntil(lambda: not run.running(), timeout=120_000)
    qtbot.wait(50)
    # A real child judged the same weights on both sides: no worse, so kept; no round is due yet.
    assert window.adapt_label.text().startswith("adapted model confirmed on IoU at keyframes drawn since it was adopted")
    assert window.adapt_run is run and not run.out_dir.exists()  # its verdict folder is removed
    assert c.project.get_path_setting(f"adapted_model/{c.video.id}") == str(model)
    window._adapt_if_due()
    assert window.adapt_run is run  # nothing new to judge by: no second child
    manual = [r for r in c.project.boxes(track.id) if r.source == "manual"]
    steps_before = c.undo_stack.count()
    window._recheck_done(run, {"recheck": True, "accepted": False, "model": "sstrack-lite",
                               "reason": "adapted model undone, worse than the one it replaced on IoU at keyframes drawn since it was adopted 0.80 -> 0.30 (1)"})
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120_000)
    qtbot.wait(50)
    assert not c.project.get_path_setting(f"adapted_model/{c.video.id}") and window.runner.model_name == "sstrack-lite"
    assert window.adapt_label.text().startswith("adapted model undone")
    assert [r for r in c.project.boxes(track.id) if r.source == "manual"] == manual
    assert any(r.source != "manual" for r in c.project.boxes(track.id))  # the model before adaptation re-tracked
    assert c.undo_stack.count() == steps_before + 1
    window.close()


def _round(window: MainWindow, tmp_path, name: str = "adapt-1-round", recheck: bool = False, base: str | None = None) -> AdaptRun:
    """A round of the shown video from its model now, as start_adaptation makes it; its result is given to the window
    directly (a real child's result is tested above and in test_adapt.py)."""
    c = window.controller
    return AdaptRun(c.project.folder, c.video.id, base or window.wanted_model(), tmp_path / "project" / "models" / name,
                    parent=window, recheck=recheck)


def _adopted(model, trained=((0, (100, 80, 60, 60)), (40, (104, 82, 60, 60)))) -> dict:
    """What sstrack-adapt writes for a round adopted after training on `_tracked`'s keyframes."""
    return {"accepted": True, "model": str(model), "reason": "adapted: IoU at held-out keyframes 0.50 -> 0.70 (1)",
            "trained": [[[frame, *box] for frame, box in trained]]}


def test_a_round_is_not_adopted_when_the_videos_model_changed_while_it_trained(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    _tracked(qtbot, window)
    c = window.controller
    first, second = _copy_of_the_shipped_model(tmp_path, "adapt-1-first"), _copy_of_the_shipped_model(tmp_path, "adapt-1-second")
    c.project.set_path_setting("adapted_model/1", first)
    window.load_model()
    run = _round(window, tmp_path)  # it learns from `first`
    window.act_adapt_reset()  # meanwhile the user goes back to the model before adaptation
    steps = c.undo_stack.count()
    window._adaptation_done(run, _adopted(second))
    assert not c.project.get_path_setting("adapted_model/1") and window.runner.model_name == "sstrack-lite"
    assert not window.runner.running() and c.undo_stack.count() == steps and c.project.models() == []
    assert window.adapt_label.text().startswith("not used: the video's model changed to sstrack-lite while it learnt from adapt-1-first")
    # A recheck that would undo `second` and bring back `first`: the user's revert stands there too.
    c.project.set_path_setting("adapted_model/1", second)
    recheck = _round(window, tmp_path, "recheck-1", recheck=True)
    window.act_adapt_reset()
    window._recheck_done(recheck, {"recheck": True, "accepted": False, "model": str(first), "reason": "adapted model undone, worse"})
    assert not c.project.get_path_setting("adapted_model/1") and not window.runner.running()
    assert window.adapt_label.text().endswith("not applied: the video's model changed meanwhile")
    window.close()


def test_a_round_is_not_adopted_when_a_keyframe_it_learnt_from_was_taken_back(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    track_id = _tracked(qtbot, window)
    c = window.controller
    run = _round(window, tmp_path)
    c.seek(40)
    c.set_box(track_id, (140, 82, 60, 60))  # the user moves the keyframe of frame 41 while the round trains
    window._adaptation_done(run, _adopted(_copy_of_the_shipped_model(tmp_path)))
    assert not c.project.get_path_setting("adapted_model/1") and not window.runner.running()
    assert window.adapt_label.text() == "not used: your keyframes from frame 41, which it learnt from or was judged on, changed while it trained"
    window.close()


def test_an_adopted_models_re_track_keeps_the_users_redo_their_drag_and_their_place(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    track_id = _tracked(qtbot, window)
    c = window.controller
    # Redo: the user undid a correction while the round trained. A re-track now would drop their Redo.
    c.seek(20)
    c.set_box(track_id, (120, 90, 60, 60))
    c.undo_stack.undo()
    model = _copy_of_the_shipped_model(tmp_path)
    window._adaptation_done(_round(window, tmp_path), _adopted(model))
    assert c.project.get_path_setting("adapted_model/1") == str(model)  # adopted, for the next track run
    assert not window.runner.running() and "not re-tracked, to keep your Redo" in window.adapt_label.text()
    c.undo_stack.redo()
    assert c.project.box_at(track_id, 20).source == "manual" and c.project.box_at(track_id, 20).box == (120, 90, 60, 60)
    # A drag: the re-track waits for the release, and the box dragged is the user's.
    c.seek(30)
    c.select_track(track_id)
    qtbot.wait(50)
    before = c.project.box_at(track_id, 30)
    view = window.canvas
    start = view.mapFromScene(QPointF(before.x + before.w / 2, before.y + before.h / 2))
    end = start + QPoint(30, 15)
    QTest.mousePress(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, start)
    QTest.mouseMove(view.viewport(), start + QPoint(10, 5))
    assert view.editing()
    second = _copy_of_the_shipped_model(tmp_path, "adapt-1-second")
    window._adaptation_done(_round(window, tmp_path), _adopted(second, ((0, (100, 80, 60, 60)), (20, (120, 90, 60, 60)),
                                                                          (40, (104, 82, 60, 60)))))
    qtbot.wait(300)
    assert not window.runner.running()  # still dragging
    QTest.mouseMove(view.viewport(), end)
    QTest.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier, end)
    dragged = c.project.box_at(track_id, 30)
    assert dragged.source == "manual" and dragged.x > before.x + 10
    qtbot.waitUntil(lambda: window.runner.running(), timeout=5_000)
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120_000)
    qtbot.wait(50)
    assert c.frame == 30  # the background re-track never moved the view
    assert c.project.box_at(track_id, 30) == dragged and window.runner.model_name == str(second)
    window.close()


def test_the_round_after_a_track_run_is_for_the_video_tracked_and_only_while_it_is_shown(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir, auto=True)
    assert window.add_video(videos_dir / "vtest.avi")
    c = window.controller
    tree, other = c.project.videos()
    c.select_video(tree.id)
    window.load_model()
    track = c.add_track("tree")
    c.set_box(track.id, (100, 80, 60, 60))
    window.start_tracking("forward", tracks=[track.id])
    c.select_video(other.id)  # the user looks at the other video while the first one tracks
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120_000)
    qtbot.wait(50)
    assert window.adapt_run is None  # not a round for the video on screen, from the tracked video's model
    assert not window.findChildren(QMessageBox, "error-box")  # and no "Draw a box first" from nowhere
    # A round by hand on the other video learns from that video's model, not the one the runner still holds.
    tree_model = _copy_of_the_shipped_model(tmp_path, "adapt-1-tree")
    c.project.set_path_setting(f"adapted_model/{tree.id}", tree_model)
    c.select_video(tree.id)
    window.load_model()
    window.start_tracking("forward", tracks=[track.id])
    c.select_video(other.id)
    walker = c.add_track("walker")
    c.set_box(walker.id, (300, 200, 40, 90))
    window.start_adaptation()
    run = window.adapt_run
    assert window.runner.model_name == str(tree_model) and run.base_model == "sstrack-lite"
    run.stop()
    run.wait(60_000)
    qtbot.waitUntil(lambda: not window.runner.running(), timeout=120_000)
    window._adapted_at[tree.id] = 1
    window._rechecked_at[tree.id] = 1
    assert window.open_project(tmp_path / "second", create=True)
    assert window._adapted_at == {} and window._rechecked_at == {}  # another project's video 1 is another video
    window.close()


def test_a_broken_adapted_model_falls_back_for_its_video_only_and_says_so_once(qtbot, tmp_path, videos_dir):
    window = _window(qtbot, tmp_path, videos_dir)
    c = window.controller
    mine = tmp_path / "mine" / "model.safetensors"
    save_model(load_model("sstrack-lite"), mine)
    window.prefs.set("model", str(mine))
    broken = _copy_of_the_shipped_model(tmp_path)
    broken.write_bytes(broken.read_bytes()[: broken.stat().st_size // 2])  # a sync tool's half copy
    c.project.set_path_setting("adapted_model/1", broken)
    window.load_model()
    assert window.runner.model_name == str(mine) and window.prefs.get("model") == str(mine)
    assert len(window.findChildren(QMessageBox, "error-box")) == 1
    window.load_model()  # the next visit to the video
    assert window.runner.model_name == str(mine) and len(window.findChildren(QMessageBox, "error-box")) == 1
    window.close()


@pytest.mark.parametrize("recheck", [False, True])
def test_a_round_or_recheck_that_ends_while_the_window_closes_changes_nothing(qtbot, tmp_path, videos_dir, recheck):
    window = _window(qtbot, tmp_path, videos_dir)
    _tracked(qtbot, window)
    c = window.controller
    model = _copy_of_the_shipped_model(tmp_path)
    if recheck:  # a model on probation, whose recheck would undo it
        c.project.set_path_setting("adapted_model/1", model)
        window.load_model()
    run = _round(window, tmp_path, recheck=recheck)
    done = window._recheck_done if recheck else window._adaptation_done
    run.finished.connect(lambda result: done(run, result))
    window.adapt_run = run
    verdict = {"recheck": True, "accepted": False, "model": "sstrack-lite", "reason": "adapted model undone"} if recheck else _adopted(model)
    # The race: the child exits with its result before the close, and Qt delivers the exit inside
    # closeEvent's wait (a child cannot be timed to end between two events).
    run.running = lambda: True
    run.stop = lambda: None
    run.wait = lambda msecs: run.finished.emit(verdict) or True
    folder = c.project.folder
    window.close()
    from projects import Project

    with Project.open(folder) as project:
        assert project.get_path_setting("adapted_model/1") == (str(model) if recheck else "") and project.models() == []
        assert [r for r in project.runs() if r["status"] == "cancelled"] == []
