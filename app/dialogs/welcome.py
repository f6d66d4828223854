"""First start: where to create the project, with a Browse button, or open an existing one."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)


class WelcomeDialog(QDialog):
    """Create a project in a folder (typed or browsed), or open one that exists."""

    def __init__(self, suggestion: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Welcome")
        self.setMinimumWidth(560)
        self.opening = False  # True: the folder is an existing project to open
        intro = QLabel("No project yet. A project is a folder holding your labels (project.sqlite); "
                       "your videos stay where they are. Create one in this folder:")
        intro.setWordWrap(True)
        self.folder = QLineEdit(str(suggestion))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.folder)
        row.addWidget(browse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.create_button = buttons.addButton("Create", QDialogButtonBox.ButtonRole.AcceptRole)
        self.open_button = buttons.addButton("Open existing…", QDialogButtonBox.ButtonRole.ActionRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.open_button.clicked.connect(self._open_existing)
        self.folder.textChanged.connect(lambda text: self.create_button.setEnabled(bool(text.strip())))
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(row)
        layout.addWidget(QLabel("Then add a video (Ctrl+I), drag a box around an object and press T."))
        layout.addWidget(buttons)

    def chosen(self) -> Path:
        """The folder typed or picked."""
        return Path(self.folder.text().strip()).expanduser()

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder for the new project", str(self.chosen().parent))
        if folder:
            self.folder.setText(str(Path(folder) / self.chosen().name))

    def _open_existing(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.folder.setText(folder)
            self.opening = True
            self.accept()
