"""`sstrack-annotate [PROJECT_DIR] [VIDEO...]`: open the desktop app.

With no argument it reopens the last project, or offers to create one in the user's data folder.
A PROJECT_DIR that does not hold a project yet is created. VIDEOs are added to the project.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PySide6.QtCore import QStandardPaths
from PySide6.QtWidgets import QApplication

from app.dialogs.welcome import WelcomeDialog
from app.main_window import MainWindow
from app.platform_fixes import preload_system_xcb
from app.settings import Preferences


def default_project_folder() -> Path:
    """<user data folder>/projects/untitled (numbered if taken)."""
    base = Path(QStandardPaths.writableLocation(QStandardPaths.StandardLocation.AppDataLocation)) / "projects"
    folder, n = base / "untitled", 1
    while (folder / "project.sqlite").exists():
        n += 1
        folder = base / f"untitled-{n}"
    return folder


def open_initial_project(window: MainWindow, project: Path | None, prefs: Preferences) -> None:
    """The argument, else the last project, else offer a new one."""
    if project is not None:
        window.open_project(project, create=not (project / "project.sqlite").exists())
        return
    last = prefs.last_project
    if last and (Path(last) / "project.sqlite").exists() and window.open_project(last):
        return
    dialog = WelcomeDialog(default_project_folder(), window)
    if dialog.exec():
        window.open_project(dialog.chosen(), create=not dialog.opening)


def main(argv: list[str] | None = None) -> int:
    """Start the app."""
    parser = argparse.ArgumentParser(prog="sstrack-annotate", description="Label objects in video with one box.")
    parser.add_argument("project", nargs="?", type=Path, help="project folder (created if new)")
    parser.add_argument("videos", nargs="*", type=Path, help="videos to add to the project")
    args = parser.parse_args(argv)
    preload_system_xcb()  # before PyAV's libraries load (see the function)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setOrganizationName("sstrack")
    app.setApplicationName("annotate")
    prefs = Preferences()
    window = MainWindow(prefs)
    window.load_model()
    open_initial_project(window, args.project, prefs)
    for video in args.videos:
        window.add_video(video)
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
