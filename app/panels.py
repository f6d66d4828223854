"""Side panels: the project's videos, and the current video's tracks (add, rename, colour, hide,
delete with confirmation)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import (
    QColorDialog,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QListWidget,
    QListWidgetItem,
    QMenu,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.controller import ProjectController
from projects.errors import ProjectError


def _swatch(color: str) -> QIcon:
    pixmap = QPixmap(14, 14)
    pixmap.fill(QColor(color))
    return QIcon(pixmap)


_ACCESS = {
    "seek": "keyframe seeks, verified against a sequential decode",
    "linear": "decoded from the start (its seeks did not match a sequential decode)",
    "folder": "image files",
    "unverified": "checked when first opened",
}


class VideoList(QListWidget):
    """The project's videos; a missing file is marked and stays listed."""

    def __init__(self, controller: ProjectController) -> None:
        super().__init__()
        self.controller = controller
        controller.project_changed.connect(self.refresh)
        controller.video_changed.connect(self._select)
        self.itemActivated.connect(self._activated)
        self.itemClicked.connect(self._activated)
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.customContextMenuRequested.connect(self._context_menu)

    def refresh(self) -> None:
        """Rebuild from the project."""
        self.blockSignals(True)
        self.clear()
        if self.controller.project is not None:
            for video in self.controller.project.videos():
                text = f"{video.name}  ({video.frames} fr)" + ("  — MISSING" if video.missing else "")
                item = QListWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, video.id)
                item.setToolTip(f"{video.path}\nframe access: {_ACCESS.get(video.access, video.access)}")
                self.addItem(item)
        self.blockSignals(False)

    def _context_menu(self, position) -> None:  # noqa: ANN001 - QPoint
        item = self.itemAt(position)
        if item is None:
            return
        video_id = item.data(Qt.ItemDataRole.UserRole)
        menu = QMenu(self)
        menu.addAction("Re-link to a file…", lambda: self.relink(video_id))
        menu.addAction("Remove from project", lambda: self.remove(video_id))
        menu.exec(self.mapToGlobal(position))

    def relink(self, video_id: int, path: str | None = None) -> None:
        """Point a moved video at its file; a different video asks before it is accepted."""
        if path is None:
            path, _ = QFileDialog.getOpenFileName(self, "Where is the video now?")
            if not path:
                return
        try:
            self.controller.relink_video(video_id, path)
        except ProjectError as error:
            if "content differs" not in str(error):
                QMessageBox.warning(self, "Re-link", str(error))
                return
            answer = QMessageBox.question(
                self, "Re-link", f"{path} has other bytes than the video that was added.\n"
                "Is it the same video re-encoded (same frames, same size)? Boxes stay on their frame numbers.",
            )
            if answer == QMessageBox.StandardButton.Yes:
                try:
                    self.controller.relink_video(video_id, path, force=True)
                except ProjectError as second:
                    QMessageBox.warning(self, "Re-link", str(second))

    def remove(self, video_id: int) -> None:
        """Remove a video and its tracks (undoable with Ctrl+Z; the file on disk stays)."""
        self.controller.remove_video(video_id)

    def _select(self, video_id: int) -> None:
        for row in range(self.count()):
            if self.item(row).data(Qt.ItemDataRole.UserRole) == video_id:
                self.blockSignals(True)
                self.setCurrentRow(row)
                self.blockSignals(False)

    def _activated(self, item: QListWidgetItem) -> None:
        video_id = item.data(Qt.ItemDataRole.UserRole)
        if self.controller.video is None or self.controller.video.id != video_id:
            self.controller.select_video(video_id)


class TrackPanel(QWidget):
    """Tracks of the current video with their colour; checkbox = visible."""

    def __init__(self, controller: ProjectController) -> None:
        super().__init__()
        self.controller = controller
        self.list = QListWidget()
        self.list.itemChanged.connect(self._visibility_changed)
        self.list.currentItemChanged.connect(self._current_changed)
        self.list.itemDoubleClicked.connect(lambda _item: self.rename())
        # The label schema: the class new objects get (typed, or one the project already uses).
        self.new_class_box = QComboBox()
        self.new_class_box.setEditable(True)
        self.new_class_box.setToolTip("Class of the objects you draw next (empty: each object's name is its class)")
        self.new_class_box.lineEdit().setPlaceholderText("class for new objects")
        buttons = QHBoxLayout()
        for text, slot, tip in (("+", self.add, "Add a track"), ("Rename", self.rename, ""), ("Class", self.classify, "Set the object's class"),
                                ("Attributes", self.edit_attributes, "The object's attributes, e.g. color=red; parked=yes"),
                                ("Colour", self.recolour, ""), ("Delete", self.delete, "Delete the track and all its boxes")):
            button = QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.new_class_box)
        layout.addWidget(self.list)
        layout.addLayout(buttons)
        controller.tracks_changed.connect(lambda _v: self.refresh())
        controller.video_changed.connect(lambda _v: self.refresh())
        controller.track_selected.connect(self._select)

    def refresh(self) -> None:
        """Rebuild from the controller."""
        self.list.blockSignals(True)
        self.list.clear()
        classes = self.controller.project.classes() if self.controller.project is not None else []
        typed = self.new_class_box.currentText()
        self.new_class_box.blockSignals(True)
        self.new_class_box.clear()
        self.new_class_box.addItems(classes)
        self.new_class_box.setEditText(typed)
        self.new_class_box.blockSignals(False)
        for track in self.controller.tracks():
            item = QListWidgetItem(_swatch(track.color), f"{track.label} [{track.category}]" if track.category else track.label)
            item.setData(Qt.ItemDataRole.UserRole, track.id)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Unchecked if track.hidden else Qt.CheckState.Checked)
            self.list.addItem(item)
            if track.id == self.controller.track_id:
                self.list.setCurrentItem(item)
        self.list.blockSignals(False)

    def current_id(self) -> int | None:
        """Id of the highlighted track."""
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def add(self) -> None:
        """Ask for a name and add a track."""
        if self.controller.video is None:
            return
        label, ok = QInputDialog.getText(self, "Add track", "Track name:", text=f"object{len(self.controller.tracks()) + 1}")
        if ok and label.strip():
            self.controller.add_track(label.strip())

    def rename(self) -> None:
        """Rename the current track."""
        track_id = self.current_id()
        if track_id is None:
            return
        label, ok = QInputDialog.getText(self, "Rename track", "Track name:", text=self.list.currentItem().text())
        if ok and label.strip():
            self.controller.update_track(track_id, label=label.strip())

    def new_class(self) -> str:
        """The class for objects drawn next ("" for none)."""
        return self.new_class_box.currentText().strip()

    def classify(self) -> None:
        """Set the current track's class (one the project uses, or a new one)."""
        track_id = self.current_id()
        if track_id is None or self.controller.project is None:
            return
        track = self.controller.project.track(track_id)
        classes = self.controller.project.classes()
        current = classes.index(track.class_name) if track.class_name in classes else 0
        value, ok = QInputDialog.getItem(self, "Class", f"Class of {track.label}:", classes, current, True)
        if ok and value.strip():
            self.set_class(track_id, value.strip())

    def set_class(self, track_id: int, value: str) -> None:
        """Give a track a class (its name as class when they are the same)."""
        assert self.controller.project is not None
        label = self.controller.project.track(track_id).label
        self.controller.update_track(track_id, category="" if value == label else value)

    def edit_attributes(self) -> None:
        """Edit the current track's attributes as name=value pairs separated by ';'."""
        track_id = self.current_id()
        if track_id is None or self.controller.project is None:
            return
        track = self.controller.project.track(track_id)
        current = "; ".join(f"{k}={v}" for k, v in track.attribute_map.items())
        text, ok = QInputDialog.getText(self, "Attributes", f"Attributes of {track.label} (name=value; name=value):", text=current)
        if ok:
            try:
                self.set_attributes(track_id, text)
            except ProjectError as error:
                QMessageBox.warning(self, "Attributes", str(error))

    def set_attributes(self, track_id: int, text: str) -> None:
        """Give a track the attributes written as 'name=value; name=value' (one undo step)."""
        pairs = [part.split("=", 1) for part in text.split(";") if part.strip()]
        if any(len(pair) != 2 or not pair[0].strip() for pair in pairs):
            raise ProjectError(f"attributes {text!r}: write name=value pairs separated by ';', e.g. color=red; parked=yes")
        self.controller.update_track(track_id, attributes={name.strip(): value.strip() for name, value in pairs})

    def recolour(self) -> None:
        """Pick a colour for the current track."""
        track_id = self.current_id()
        if track_id is None:
            return
        color = QColorDialog.getColor(parent=self, title="Track colour")
        if color.isValid():
            self.controller.update_track(track_id, color=color.name())

    def delete(self) -> None:
        """Delete the current track after confirmation (undo brings it back)."""
        track_id = self.current_id()
        if track_id is None or self.controller.project is None:
            return
        count = len(self.controller.project.boxes(track_id))
        answer = QMessageBox.question(
            self, "Delete track",
            f"Delete track '{self.list.currentItem().text()}' and its {count} boxes?\n(Ctrl+Z undoes it.)",
        )
        if answer == QMessageBox.StandardButton.Yes:
            self.controller.delete_track(track_id)

    def _select(self, track_id: int) -> None:
        for row in range(self.list.count()):
            if self.list.item(row).data(Qt.ItemDataRole.UserRole) == track_id:
                self.list.blockSignals(True)
                self.list.setCurrentRow(row)
                self.list.blockSignals(False)

    def _current_changed(self, current: QListWidgetItem | None, _previous) -> None:
        if current is not None:
            self.controller.select_track(current.data(Qt.ItemDataRole.UserRole))

    def _visibility_changed(self, item: QListWidgetItem) -> None:
        hidden = item.checkState() != Qt.CheckState.Checked
        self.controller.update_track(item.data(Qt.ItemDataRole.UserRole), hidden=int(hidden))
