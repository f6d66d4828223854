"""The fine-tune run belongs to the project, not to its dialog (issue 16): Esc leaves it running and
the status bar shows it, quitting asks and stops it with a checkpoint, and Resume in a new session
continues it exactly. A real trainer process on a real project (tree.avi)."""

from __future__ import annotations

import json
import os

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QSettings, Qt  # noqa: E402
from PySide6.QtWidgets import QMessageBox  # noqa: E402

from app.main_window import MainWindow  # noqa: E402
from app.settings import Preferences  # noqa: E402

pytestmark = pytest.mark.slow


def _window(qtbot, tmp_path, create: bool) -> MainWindow:
    prefs = Preferences(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    prefs.set("adapt_auto", 0)  # this test is about the one-click fine-tune alone
    window = MainWindow(prefs)
    qtbot.addWidget(window)
    window.load_model()
    assert window.open_project(tmp_path / "project", create=create)
    window.show()
    qtbot.waitExposed(window)
    return window


def test_closing_the_dialog_keeps_the_run_quitting_stops_it_and_resume_continues(qtbot, tmp_path, videos_dir, monkeypatch):
    window = _window(qtbot, tmp_path, create=True)
    assert window.add_video(videos_dir / "tree.avi")
    track = window.controller.add_track("tree")
    window.controller.set_box(track.id, (100, 80, 60, 60))
    window.act_finetune()
    dialog = window.finetune_dialog
    dialog.steps.setValue(20)  # the dialog's least
    dialog.batch.setValue(2)
    dialog.start()
    run = window.finetune_run
    assert run is dialog.run and run.out_dir.parent == tmp_path / "project" / "models"
    qtbot.waitUntil(lambda: run.step() >= 3, timeout=120_000)
    qtbot.keyClick(dialog, Qt.Key.Key_Escape)
    assert not dialog.isVisible() and run.running()  # Esc hides the view, the run goes on
    assert window.finetune_button.isVisible() and "fine-tuning: step" in window.finetune_button.text()

    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args, **kw: (asked.append(args[2]), answers.pop(0))[1])
    window.close()  # No: nothing stops, the window stays
    assert window.isVisible() and run.running() and "Stop it and quit?" in asked[0]
    window.close()  # Yes: the trainer saves a checkpoint at its step and exits
    assert not window.isVisible() and not run.running() and run.state == "stopped"
    stopped_at = json.loads((run.out_dir / "latest.json").read_text())["step"]
    assert 3 <= stopped_at < 20 and not (run.out_dir / "model.safetensors").exists()

    again = _window(qtbot, tmp_path, create=False)  # the next session finds the stopped run
    again.act_finetune()
    dialog = again.finetune_dialog
    assert dialog.run is not None and dialog.run.out_dir == run.out_dir and dialog.resume_button.isEnabled()
    assert dialog.start_button.isEnabled()  # a fresh run stays possible
    dialog.resume()
    resumed = dialog.run
    qtbot.waitUntil(lambda: resumed.state == "done", timeout=180_000)
    steps = [json.loads(line)["step"] for line in (run.out_dir / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 21))  # continued from the checkpoint: one curve, no restart at step 1
    assert (run.out_dir / "model.safetensors").is_file()
    # Judged on the one video from its keyframe's continuation (forward-backward IoU), and offered
    # only for the videos where it is not worse there.
    assert "of 1 video(s)" in resumed.verdict and "forward-backward IoU from keyframes" in resumed.verdict
    assert dialog.use_button.isEnabled() == bool(resumed.adopt_for) and set(resumed.adopt_for) <= {again.controller.video.id}
    assert again.finetune_button.text() == resumed.verdict[:90]
    again.close()
