"""The frame canvas: the image with every track's box; draw, move, resize; zoom and pan.

The canvas speaks in signals (labelme-style) and never reaches into the project: `box_drawn`
when a new box is dragged out, `box_edited` when a box is moved or resized, `track_clicked`,
`frame_step` for the mouse wheel. Manual, tracked and interpolated boxes look different
(solid, dashed, dotted) so the annotator sees at a glance what a human decided.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QGraphicsPixmapItem, QGraphicsScene, QGraphicsView

from projects import BoxRecord, Track

HANDLE = 4.0  # handle half-size in view pixels
MIN_SIDE = 3.0


class _Mode(Enum):
    IDLE = 0
    DRAW = 1
    MOVE = 2
    RESIZE = 3


def qimage_from_rgb(image: np.ndarray) -> QImage:
    """Wrap an RGB uint8 HxWx3 array as a QImage (copied, so the array may go away)."""
    height, width = image.shape[:2]
    data = np.ascontiguousarray(image)
    return QImage(data.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()


def place_label(box: QRectF, size: tuple[float, float], scale: float, placed: list[QRectF]) -> QRectF:
    """Where a box's label goes (scene units): just above its top-left corner, else stepped down
    one label height at a time until it overlaps no label already placed (nearby boxes)."""
    width, height = size[0] / scale, (size[1] + 1) / scale
    rect = QRectF(box.left(), box.top() - height, width, height - 1 / scale)
    for _ in range(12):
        if not any(rect.intersects(other) for other in placed):
            break
        rect.translate(0, height)
    return rect


class FrameView(QGraphicsView):
    """QGraphicsView showing one frame and its boxes."""

    box_drawn = Signal(object, bool)  # (x, y, w, h) in image pixels; True: Shift held, for the selected track
    box_edited = Signal(int, object)  # track id, (x, y, w, h)
    track_clicked = Signal(int)
    frame_step = Signal(int)  # +1 / -1 from the wheel
    edit_started = Signal()  # a left press began drawing, moving or resizing a box

    def __init__(self) -> None:
        super().__init__()
        self.setScene(QGraphicsScene(self))
        self.setRenderHints(QPainter.RenderHint.Antialiasing | QPainter.RenderHint.SmoothPixmapTransform)
        self.setBackgroundBrush(QColor("#202124"))
        # Zoom anchors itself (see zoom): Qt's AnchorUnderMouse needs the base mouseMoveEvent to track
        # the cursor, which this view overrides, so the anchor went stale and zoom drifted to the top-left.
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.NoAnchor)
        self.setDragMode(QGraphicsView.DragMode.NoDrag)
        self.setMouseTracking(True)
        self._pixmap = QGraphicsPixmapItem()
        self.scene().addItem(self._pixmap)
        self._boxes: list[BoxRecord] = []
        self._tracks: dict[int, Track] = {}
        self._selected: int | None = None
        self._mode = _Mode.IDLE
        self._anchor = QPointF()
        self._edit_rect = QRectF()
        self._opposite = QPointF()
        self._fitted = False
        self._message = ""
        self._hint = ""
        self._labels: list[QRectF] = []
        self._cursor: QPointF | None = None  # the pointer in scene coordinates, for the crosshair guides

    # -- content ------------------------------------------------------------------------------------
    def set_hint(self, text: str) -> None:
        """A line of guidance over the top of the frame ("" for none), e.g. how to start."""
        if text != self._hint:
            self._hint = text
            self.viewport().update()

    def hint(self) -> str:
        """The guidance shown, if any."""
        return self._hint

    def show_frame(self, image: np.ndarray | None, message: str = "") -> None:
        """Display a frame (or a message when the video cannot be decoded)."""
        self._message = message
        if image is None:
            self._pixmap.setPixmap(QPixmap())
        else:
            self._pixmap.setPixmap(QPixmap.fromImage(qimage_from_rgb(image)))
            self.scene().setSceneRect(QRectF(0, 0, image.shape[1], image.shape[0]))
            if not self._fitted:
                self.fit()
        self.viewport().update()

    def set_boxes(self, boxes: list[BoxRecord], tracks: list[Track], selected: int | None) -> None:
        """The boxes of the current frame and the track list (for colours and names)."""
        self._boxes = boxes
        self._tracks = {t.id: t for t in tracks}
        self._selected = selected
        if self._mode in (_Mode.MOVE, _Mode.RESIZE):
            return
        self._follow_selected()
        self.viewport().update()

    def _follow_selected(self) -> None:
        """Zoomed in, keep the selected object in view: re-centre when its box leaves the view."""
        box = self.selected_box()
        if box is None or self._mode != _Mode.IDLE:
            return
        visible = self.mapToScene(self.viewport().rect()).boundingRect()
        if visible.contains(self.scene().sceneRect()):
            return  # the whole frame is in view: nothing to follow
        target = QRectF(box.x, box.y, box.w, box.h)
        if not visible.adjusted(visible.width() * 0.05, visible.height() * 0.05, -visible.width() * 0.05, -visible.height() * 0.05).contains(target):
            self.centerOn(target.center())

    def fit(self) -> None:
        """Fit the frame to the window."""
        rect = self.scene().sceneRect()
        if rect.width() > 0:
            self.fitInView(rect, Qt.AspectRatioMode.KeepAspectRatio)
            self._fitted = True

    def zoom(self, factor: float, at: QPointF | None = None) -> None:
        """Zoom keeping the scene point under `at` (viewport pixels; default the view centre) in place."""
        view_point = at if at is not None else QPointF(self.viewport().rect().center())
        scene_point = self.mapToScene(view_point.toPoint())
        self.scale(factor, factor)
        # Scroll so the same scene point is back under the anchor (exact to a pixel while the frame
        # is larger than the view; when it is smaller Qt centres it and there is nothing to scroll).
        drift = self.mapFromScene(scene_point) - view_point.toPoint()
        self.horizontalScrollBar().setValue(self.horizontalScrollBar().value() + drift.x())
        self.verticalScrollBar().setValue(self.verticalScrollBar().value() + drift.y())

    def selected_box(self) -> BoxRecord | None:
        """The selected track's box on this frame."""
        return next((b for b in self._boxes if b.track_id == self._selected and b.has_box), None)

    # -- painting -------------------------------------------------------------------------------------
    def drawForeground(self, painter: QPainter, rect: QRectF) -> None:
        """Boxes are painted over the scene (cheap to redraw on every frame)."""
        scale = self.transform().m11() or 1.0
        self._labels = []  # label rectangles placed so far this paint (scene units), so none overlap
        for record in self._boxes:
            track = self._tracks.get(record.track_id)
            if track is None or track.hidden or not record.has_box:
                continue
            moving = record.track_id == self._selected and self._mode in (_Mode.MOVE, _Mode.RESIZE)
            box = self._edit_rect if moving else QRectF(record.x, record.y, record.w, record.h)
            self._paint_box(painter, record, track, box, scale)
        if self._mode == _Mode.DRAW:
            painter.setPen(QPen(QColor("#ffffff"), 2 / scale, Qt.PenStyle.DashLine))
            painter.drawRect(self._edit_rect)
        frame = self.scene().sceneRect()
        if self._cursor is not None and self._mode in (_Mode.IDLE, _Mode.DRAW) and frame.contains(self._cursor):
            # Crosshair guides across the frame, as in CVAT, to line a box up with the object's extremes.
            painter.setPen(QPen(QColor(255, 255, 255, 90), 1 / scale, Qt.PenStyle.DashLine))
            painter.drawLine(QPointF(frame.left(), self._cursor.y()), QPointF(frame.right(), self._cursor.y()))
            painter.drawLine(QPointF(self._cursor.x(), frame.top()), QPointF(self._cursor.x(), frame.bottom()))
        if self._hint:
            painter.resetTransform()
            band = QRectF(0, 0, self.viewport().width(), 44)
            painter.fillRect(band, QColor(32, 33, 36, 200))
            painter.setPen(QColor("#e8eaed"))
            painter.setFont(QFont(self.font().family(), 11))
            painter.drawText(band.adjusted(12, 0, -12, 0), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._hint)
        if self._message:
            painter.resetTransform()
            painter.setPen(QColor("#ffb4ab"))
            painter.setFont(QFont(self.font().family(), 12))
            painter.drawText(self.viewport().rect().adjusted(20, 20, -20, -20), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._message)

    def _paint_box(self, painter: QPainter, record: BoxRecord, track: Track, box: QRectF, scale: float) -> None:
        color = QColor(track.color)
        selected = record.track_id == self._selected
        style = {"manual": Qt.PenStyle.SolidLine, "tracked": Qt.PenStyle.DashLine, "interpolated": Qt.PenStyle.DotLine}[record.source]
        width = (3.0 if record.source == "manual" else 2.0) * (1.5 if selected else 1.0)
        if record.occluded or record.out_of_view:
            color.setAlpha(110)
        painter.setPen(QPen(color, width / scale, style))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(box)
        flags = " occluded" if record.occluded else (" out of view" if record.out_of_view else "")
        score = f" {record.score:.2f}" if record.score is not None and record.source == "tracked" else ""
        name = f"{track.label} [{track.category}]" if track.category else track.label
        text = f"{name}{score}{flags}{'  (key)' if record.source == 'manual' else ''}"
        painter.save()
        font = QFont(self.font().family(), 9)
        painter.setFont(font)
        size = (painter.fontMetrics().horizontalAdvance(text) + 8, 17)
        label = place_label(box, size, scale, self._labels)
        self._labels.append(label)
        painter.translate(label.topLeft())
        painter.scale(1 / scale, 1 / scale)
        painter.fillRect(QRectF(0, 0, *size), QBrush(QColor(0, 0, 0, 160)))
        painter.setPen(color)
        painter.drawText(QPointF(4, 13), text)
        painter.restore()
        if selected:
            painter.setBrush(QBrush(color))
            for corner in _corners(box):
                painter.drawRect(QRectF(corner.x() - HANDLE / scale, corner.y() - HANDLE / scale, 2 * HANDLE / scale, 2 * HANDLE / scale))

    # -- mouse ---------------------------------------------------------------------------------------
    def mousePressEvent(self, event) -> None:
        """Start drawing, moving or resizing; middle/right button pans."""
        if event.button() in (Qt.MouseButton.MiddleButton, Qt.MouseButton.RightButton):
            self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
            fake = type(event)(event.type(), event.position(), event.globalPosition(), Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton, event.modifiers())
            super().mousePressEvent(fake)
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.mapToScene(event.position().toPoint())
        self._anchor = point
        selected = self.selected_box()
        if selected is not None:
            rect = QRectF(selected.x, selected.y, selected.w, selected.h)
            corner = self._hit_corner(rect, event.position())
            if corner is not None:
                # The opposite corner stays put while the grabbed one follows the mouse.
                self._mode, self._opposite, self._edit_rect = _Mode.RESIZE, _corners(rect)[(corner + 2) % 4], rect
                self.edit_started.emit()
                return
        hit = self._hit_box(point)
        if hit is not None:
            if hit.track_id != self._selected:
                self.track_clicked.emit(hit.track_id)
                self._selected = hit.track_id
            self._mode, self._edit_rect = _Mode.MOVE, QRectF(hit.x, hit.y, hit.w, hit.h)
            self.edit_started.emit()
            return
        self._mode, self._edit_rect = _Mode.DRAW, QRectF(point, point)
        # Shift+drag draws the selected track's box (a lost object found again); a plain drag is
        # a new object. Decided at the press, so releasing Shift mid-drag changes nothing.
        self._draw_for_selected = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        self.edit_started.emit()

    def editing(self) -> bool:
        """Whether a box is being drawn, moved or resized (the left button is down)."""
        return self._mode != _Mode.IDLE

    def cancel_edit(self) -> None:
        """Drop the drag in progress: its release then writes nothing (Esc, or an undo mid-drag)."""
        if self._mode != _Mode.IDLE:
            self._mode = _Mode.IDLE
            self._follow_selected()
            self.viewport().update()

    def mouseMoveEvent(self, event) -> None:
        """Update the rectangle being drawn / moved / resized."""
        if self.dragMode() == QGraphicsView.DragMode.ScrollHandDrag:
            super().mouseMoveEvent(event)
            return
        point = self.mapToScene(event.position().toPoint())
        if self._mode == _Mode.DRAW:
            self._edit_rect = QRectF(self._anchor, point).normalized()
        elif self._mode == _Mode.MOVE:
            delta = point - self._anchor
            self._anchor = point
            self._edit_rect.translate(delta)
        elif self._mode == _Mode.RESIZE:
            self._edit_rect = QRectF(self._opposite, point).normalized()
        self._cursor = point  # crosshair guides follow the pointer (drawing a box edge to edge)
        self.viewport().update()

    def leaveEvent(self, event) -> None:
        """No crosshair once the pointer has left the view."""
        self._cursor = None
        self.viewport().update()
        super().leaveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        """Emit the finished box."""
        if self.dragMode() == QGraphicsView.DragMode.ScrollHandDrag:
            super().mouseReleaseEvent(event)
            self.setDragMode(QGraphicsView.DragMode.NoDrag)
            return
        mode, rect = self._mode, self._edit_rect.normalized()
        self._mode = _Mode.IDLE
        box = (rect.x(), rect.y(), rect.width(), rect.height())
        if mode == _Mode.DRAW and rect.width() >= MIN_SIDE and rect.height() >= MIN_SIDE:
            self.box_drawn.emit(box, self._draw_for_selected)
        elif mode in (_Mode.MOVE, _Mode.RESIZE) and self._selected is not None:
            original = self.selected_box()
            if original is None or (abs(original.x - box[0]) + abs(original.y - box[1]) + abs(original.w - box[2]) + abs(original.h - box[3])) > 0.5:
                if rect.width() >= MIN_SIDE and rect.height() >= MIN_SIDE:
                    self.box_edited.emit(self._selected, box)
        self.viewport().update()

    def wheelEvent(self, event) -> None:
        """Ctrl+wheel zooms; the wheel alone steps frames."""
        delta = event.angleDelta().y()
        if event.modifiers() & Qt.KeyboardModifier.ControlModifier:
            self.zoom(1.25 if delta > 0 else 0.8, event.position())
        elif delta:
            self.frame_step.emit(-1 if delta > 0 else 1)

    def resizeEvent(self, event) -> None:
        """Keep the frame fitted until the user zooms."""
        super().resizeEvent(event)
        if self._fitted and abs(self.transform().m11() - self._fit_scale()) < 1e-3:
            self.fit()

    def _fit_scale(self) -> float:
        rect = self.scene().sceneRect()
        if rect.width() <= 0:
            return 1.0
        view = self.viewport().rect()
        return min(view.width() / rect.width(), view.height() / rect.height())

    def _hit_box(self, point: QPointF) -> BoxRecord | None:
        inside = [
            b for b in self._boxes
            if b.has_box and b.track_id in self._tracks and not self._tracks[b.track_id].hidden
            and QRectF(b.x, b.y, b.w, b.h).contains(point)
        ]
        # Prefer the selected track, then the smallest box (the one on top visually).
        inside.sort(key=lambda b: (b.track_id != self._selected, b.w * b.h))
        return inside[0] if inside else None

    def _hit_corner(self, rect: QRectF, view_point: QPointF) -> int | None:
        for index, corner in enumerate(_corners(rect)):
            if (self.mapFromScene(corner).toPointF() - view_point).manhattanLength() <= 2 * HANDLE:
                return index
        return None


def _corners(rect: QRectF) -> list[QPointF]:
    """Top-left, top-right, bottom-right, bottom-left."""
    return [rect.topLeft(), rect.topRight(), rect.bottomRight(), rect.bottomLeft()]

