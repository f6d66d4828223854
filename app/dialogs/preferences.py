"""Preferences: model, device, review threshold, jump size and keyboard shortcuts."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.actions import ACTIONS
from app.settings import Preferences


class PreferencesDialog(QDialog):
    """Edits the Preferences; the project's models are offered in the model list."""

    def __init__(self, prefs: Preferences, project_models: list[dict], parent: QWidget | None = None,
                 model_threshold: float | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.setMinimumSize(560, 600)
        self.prefs = prefs
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItem("sstrack-lite (shipped default)", "sstrack-lite")
        for entry in project_models:
            self.model.addItem(f"{entry['name']} (this project)", entry["path"])
        current = prefs.get("model")
        index = self.model.findData(current)
        if index < 0:
            self.model.addItem(current, current)
            index = self.model.count() - 1
        self.model.setCurrentIndex(index)
        browse = QPushButton("File…")
        browse.clicked.connect(self._browse_model)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, stretch=1)
        model_row.addWidget(browse)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.device.setCurrentText(prefs.get("device"))
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        # Shown: the threshold in force (the model's calibrated one until the user picks their own).
        self._shown_threshold = prefs.review_threshold(model_threshold)
        self.threshold.setValue(self._shown_threshold)
        self.threshold.setToolTip("Frames scoring below this are highlighted and visited by N (next frame to review).")
        self.stop_below = QDoubleSpinBox()
        self.stop_below.setRange(0.0, 1.0)
        self.stop_below.setSingleStep(0.05)
        self.stop_below.setValue(prefs.get("stop_below"))
        self.stop_below.setSpecialValueText("never")
        self.jump = QSpinBox()
        self.jump.setRange(2, 10000)
        self.jump.setValue(prefs.get("jump"))
        form = QFormLayout()
        form.addRow("Tracking model", model_row)
        form.addRow("Device", self.device)
        form.addRow("Review threshold (score)", self.threshold)
        form.addRow("Stop a track when its score stays below", self.stop_below)
        form.addRow("Jump size (C / V), frames", self.jump)
        self.shortcuts = QTableWidget(len(ACTIONS), 2)
        self.shortcuts.setHorizontalHeaderLabels(["Action", "Keys (separate with ;)"])
        self.shortcuts.horizontalHeader().setStretchLastSection(True)
        for row, spec in enumerate(ACTIONS):
            name = QTableWidgetItem(spec.text.replace("&", ""))
            name.setFlags(name.flags() & ~Qt.ItemFlag.ItemIsEditable)
            self.shortcuts.setItem(row, 0, name)
            self.shortcuts.setItem(row, 1, QTableWidgetItem("; ".join(prefs.shortcuts(spec.id))))
        self.shortcuts.resizeColumnToContents(0)
        self.error = QLabel()
        self.error.setObjectName("shortcut-error")
        self.error.setStyleSheet("color: #d93025")
        self.error.setWordWrap(True)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.shortcuts, stretch=1)
        layout.addWidget(self.error)
        layout.addWidget(buttons)

    def _browse_model(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Model file", "", "Models (*.safetensors *.pth *.pth.tar *.tar)")
        if path:
            self.model.addItem(path, path)
            self.model.setCurrentIndex(self.model.count() - 1)

    def accept(self) -> None:
        """Store everything, unless a shortcut collides with another action's (then nothing is stored)."""
        bindings = {
            spec.id: [k.strip() for k in self.shortcuts.item(row, 1).text().split(";") if k.strip()]
            for row, spec in enumerate(ACTIONS)
        }
        conflict = self.prefs.shortcut_conflict(bindings)
        if conflict is not None:
            # Checked before anything is written, so a refused dialog leaves every preference as it was.
            self.error.setText(f"Shortcut not changed: {conflict}")
            box = QMessageBox(QMessageBox.Icon.Warning, "Keyboard shortcuts", self.error.text(), QMessageBox.StandardButton.Ok, self)
            box.setObjectName("shortcut-conflict-box")
            box.open()  # not exec(): the dialog stays open for the fix and nothing blocks
            return
        self.prefs.set("model", self.model.currentData() or self.model.currentText())
        self.prefs.set("device", self.device.currentText())
        if abs(self.threshold.value() - self._shown_threshold) > 1e-9:  # untouched: keep following the model
            self.prefs.set("threshold", self.threshold.value())
        self.prefs.set("stop_below", self.stop_below.value())
        self.prefs.set("jump", self.jump.value())
        self.prefs.set_all_shortcuts(bindings)
        super().accept()
