"""Import dialog: bring labels from LaSOT, GOT-10k, COCO-VID/TAO, MOT or CVAT into the project."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from projects.formats import FORMAT_NAMES

# What each importer reads (projects/formats/*.py import_*), said before the user picks a path.
EXPECTS = {
    "lasot": "a LaSOT folder (<class>/<class>-<k>/ with groundtruth.txt and img/), or one sequence folder",
    "got10k": "a GOT-10k split folder with list.txt, or one sequence folder",
    "cocovid": "annotations.json (COCO-VID or TAO), with the frame folders its file names point to",
    "mot": "a MOT sequence folder (gt/gt.txt, img1/, seqinfo.ini), or a folder of them",
    "cvat": "a 'CVAT for video 1.1' annotations.xml; its video must be in the project or beside the file",
}
FILE_FORMATS = {"cocovid": "COCO-VID (*.json)", "cvat": "CVAT XML (*.xml)"}


class ImportDialog(QDialog):
    """Pick a format and a file or folder; the main window runs the import as one undo step."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Import labels")
        self.setMinimumWidth(560)
        self.format = QComboBox()
        for key, name in FORMAT_NAMES.items():
            self.format.addItem(name, key)
        self.path = QLineEdit()
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.path)
        row.addWidget(browse)
        self.expects = QLabel()
        self.expects.setWordWrap(True)
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("From", row)
        form.addRow("", self.expects)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(buttons)
        self.format.currentIndexChanged.connect(self._format_changed)
        self.path.textChanged.connect(lambda text: self.import_button.setEnabled(bool(text.strip())))
        self._format_changed()
        self.import_button.setEnabled(False)

    def choice(self) -> tuple[str, Path]:
        """The chosen format key and path."""
        return self.format.currentData(), Path(self.path.text().strip())

    def _format_changed(self) -> None:
        self.expects.setText("Expects " + EXPECTS[self.format.currentData()] + ". The import is one undo step.")

    def _browse(self) -> None:
        key = self.format.currentData()
        if key in FILE_FORMATS:
            path, _ = QFileDialog.getOpenFileName(self, "Import labels from", "", f"{FILE_FORMATS[key]};;All files (*)")
        else:
            path = QFileDialog.getExistingDirectory(self, "Import labels from")
        if path:
            self.path.setText(path)
