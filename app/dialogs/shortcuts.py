"""Help -> Keyboard shortcuts: every action with its current keys."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QDialogButtonBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from app.actions import ACTIONS
from app.settings import Preferences


class ShortcutsDialog(QDialog):
    """A read-only table; remap in Preferences."""

    def __init__(self, prefs: Preferences, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        self.setMinimumSize(480, 620)
        table = QTableWidget(len(ACTIONS), 3)
        table.setHorizontalHeaderLabels(["Menu", "Action", "Keys"])
        table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        table.verticalHeader().setVisible(False)
        for row, spec in enumerate(ACTIONS):
            table.setItem(row, 0, QTableWidgetItem(spec.menu))
            table.setItem(row, 1, QTableWidgetItem(spec.text.replace("&", "")))
            table.setItem(row, 2, QTableWidgetItem(", ".join(prefs.shortcuts(spec.id))))
        table.resizeColumnsToContents()
        table.horizontalHeader().setStretchLastSection(True)
        self.table = table
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(table)
        layout.addWidget(buttons)
