"""Drive the app on a real clip and save the screenshots the README shows (run under Xvfb).

    xvfb-run -s "-screen 0 1600x1000x24" python docs/make_screenshots.py [--finetune]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from app.dialogs.finetune_dialog import FinetuneDialog
from app.main_window import MainWindow
from app.platform_fixes import preload_system_xcb
from app.settings import Preferences

DOCS = Path(__file__).resolve().parent
VIDEO = DOCS.parents[1] / "shared" / "data" / "videos" / "01_dog.mp4"
DOG_BOX = (450, 380, 250, 165)  # the whole dog on frame 1 of 01_dog.mp4 (head to tail, back to paws)


def wait(app: QApplication, condition, timeout: float) -> None:
    """Process events until `condition()` or timeout."""
    end = time.time() + timeout
    while not condition() and time.time() < end:
        app.processEvents()
        time.sleep(0.02)


def main() -> int:
    """Make the screenshots."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--finetune", action="store_true", help="also the fine-tune dialog mid-run (trains for a minute)")
    args = parser.parse_args()
    preload_system_xcb()
    app = QApplication(sys.argv[:1])
    tmp = Path(tempfile.mkdtemp())
    prefs = Preferences(QSettings(str(tmp / "s.ini"), QSettings.Format.IniFormat))
    prefs.set("adapt_auto", 0)  # the shots show the shipped model's boxes
    window = MainWindow(prefs)
    window.load_model()
    window.open_project(tmp / "dog-project", create=True)
    window.add_video(VIDEO)
    window.resize(1500, 940)
    window.show()
    wait(app, lambda: False, 0.5)
    window.track_panel.new_class_box.setEditText("dog")  # the label schema: class apart from the name
    window.controller.add_track("Rex", category="dog")
    window.controller.set_box(window.controller.track_id, DOG_BOX)
    window.start_tracking("forward")
    wait(app, lambda: not window.runner.running(), 600)
    window.controller.seek(150)
    wait(app, lambda: False, 0.5)
    window.grab().save(str(DOCS / "screenshot-main.png"))
    low = window.timeline.next_low(0)
    if low is not None:
        window.controller.seek(low)
        wait(app, lambda: False, 0.5)
        window.grab().save(str(DOCS / "screenshot-review.png"))
    # A span selected on the timeline (Shift+click), ready for Shift+O / Shift+Q / Shift+Delete.
    window.controller.seek(60)
    window.timeline.select_span(60, 120)
    wait(app, lambda: False, 0.5)
    window.grab().save(str(DOCS / "screenshot-span.png"))
    if args.finetune:
        dialog = FinetuneDialog(window.controller.project.folder, "sstrack-lite", None, window)
        dialog.steps.setValue(40)
        dialog.batch.setValue(4)
        dialog.show()
        dialog.start()
        wait(app, lambda: dialog.run.step() >= 12, 900)
        app.processEvents()
        dialog.grab().save(str(DOCS / "screenshot-finetune.png"))
        dialog.stop()
        wait(app, lambda: not dialog.run.running(), 120)
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
