"""Export dialog: format, destination, class name / description, progress, a clear result line."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.workers import FunctionWorker
from projects import Project
from projects.formats import FORMAT_LIMITS, FORMAT_NAMES, ExportCancelled, ExportOptions, export


class ExportDialog(QDialog):
    """Runs an export on a worker thread with its own project connection."""

    def __init__(self, project_folder: Path, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export labels")
        self.setMinimumWidth(520)
        self.folder = Path(project_folder)
        self.worker: FunctionWorker | None = None
        self.last_report = None
        self.format = QComboBox()
        for key, name in FORMAT_NAMES.items():
            self.format.addItem(name, key)
        self.destination = QLineEdit(str(self.folder / "exports" / "lasot"))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        row = QHBoxLayout()
        row.addWidget(self.destination)
        row.addWidget(browse)
        self.class_name = QLineEdit()
        self.class_name.setPlaceholderText("default: each track's label")
        self.description = QLineEdit()
        self.description.setPlaceholderText("LaSOT nlp.txt; default: the track's description or label")
        self.split = QLineEdit("train")
        self.toolkit = QCheckBox("also write annos/ for the LaSOT MATLAB toolkit")
        self.overwrite = QCheckBox("replace an existing export in that folder")
        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("Destination", row)
        form.addRow("Class name", self.class_name)
        form.addRow("Description", self.description)
        form.addRow("GOT-10k split", self.split)
        form.addRow("", self.toolkit)
        form.addRow("", self.overwrite)
        # What the chosen format keeps and cannot carry, said before the user exports.
        self.limits = QLabel(FORMAT_LIMITS[self.format.currentData()])
        self.limits.setWordWrap(True)
        self.progress = QProgressBar()
        self.result = QLabel("")
        self.result.setWordWrap(True)
        self.buttons = QDialogButtonBox()
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.cancel_button = self.buttons.addButton("Close", QDialogButtonBox.ButtonRole.RejectRole)
        self.export_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.limits)
        layout.addWidget(self.progress)
        layout.addWidget(self.result)
        layout.addWidget(self.buttons)
        self.format.currentIndexChanged.connect(self._format_changed)

    def _format_changed(self) -> None:
        key = self.format.currentData()
        self.destination.setText(str(self.folder / "exports" / key))
        self.limits.setText(FORMAT_LIMITS[key])
        self.split.setEnabled(key == "got10k")
        self.toolkit.setEnabled(key == "lasot")
        self.description.setEnabled(key == "lasot")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export to folder", str(self.folder / "exports"))
        if folder:
            self.destination.setText(str(Path(folder) / self.format.currentData()))

    def options(self) -> ExportOptions:
        """The options chosen in the form."""
        return ExportOptions(
            class_name=self.class_name.text().strip() or None,
            description=self.description.text().strip() or None,
            split=self.split.text().strip() or "train",
            toolkit_annos=self.toolkit.isChecked(),
            overwrite=self.overwrite.isChecked(),
        )

    def start(self) -> None:
        """Run the export in the background."""
        fmt, out, options, folder = self.format.currentData(), Path(self.destination.text()), self.options(), self.folder

        def run(progress):
            with Project.open(folder) as project:  # this thread's own connection
                return export(project, fmt, out, options, progress)

        self.worker = FunctionWorker(run, ExportCancelled)
        self.worker.progress.connect(self._progress)
        self.worker.result.connect(self._done)
        self.worker.errored.connect(self._failed)
        self.worker.aborted.connect(lambda: self._finish("Export cancelled; nothing was written."))
        self.export_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.result.setText("Exporting…")
        self.worker.start()

    def _progress(self, done: int, total: int) -> None:
        self.progress.setMaximum(max(total, 1))
        self.progress.setValue(done)

    def _done(self, report) -> None:
        self.last_report = report
        warnings = "".join(f"\n{w}" for w in report.warnings[:3])
        self._finish(report.summary().capitalize() + warnings)

    def _failed(self, message: str) -> None:
        self._finish(f"Export failed: {message}")

    def _finish(self, text: str) -> None:
        self.result.setText(text)
        self.export_button.setEnabled(True)
        self.cancel_button.setText("Close")

    def _cancel_or_close(self) -> None:
        if self.worker is not None and self.worker.is_running():
            self.worker.quit()
        else:
            self.reject()
