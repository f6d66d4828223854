"""The timeline (pyqtgraph): the selected track's tracker score over frames, its keyframes,
occluded / out-of-view spans, low-score frames, and the current frame; click or drag to seek.
Shift+click selects the span from the current frame to the clicked one (for span edits); its
edges can be dragged, and a right click clears it."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal

from projects import BoxRecord
from sstrack.review import FailurePredictor, failure_features


class Timeline(pg.PlotWidget):
    """Score curve, keyframe markers, flag spans and a draggable current-frame line."""

    seek_requested = Signal(int)
    selection_changed = Signal()

    def __init__(self) -> None:
        super().__init__(background="#1e1f22")
        self.setMinimumHeight(120)
        self.setMaximumHeight(170)
        self.setMouseEnabled(x=True, y=False)
        self.setMenuEnabled(False)
        self.hideButtons()
        self.setYRange(0, 1.12, padding=0)
        self.getAxis("left").setTicks([[(0, "0"), (0.5, "0.5"), (1, "1")]])
        self.getAxis("left").setWidth(30)
        self.showGrid(x=False, y=True, alpha=0.15)
        self.threshold = 0.5
        self._frames = 1
        self._curve = self.plot([], [], pen=pg.mkPen("#8ab4f8", width=1.5), connect="finite")
        self._low = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush("#f28b82"))
        self._keys = pg.ScatterPlotItem(size=11, symbol="t1", pen=pg.mkPen("#ffffff"), brush=pg.mkBrush("#fdd663"))
        self._absent = pg.BarGraphItem(x=[], height=[], width=1, y0=0, brush=pg.mkBrush(150, 150, 150, 70), pen=None)
        self._occluded = pg.BarGraphItem(x=[], height=[], width=1, y0=0, brush=pg.mkBrush(251, 188, 4, 60), pen=None)
        self._threshold_line = pg.InfiniteLine(pos=self.threshold, angle=0, pen=pg.mkPen("#f28b82", style=Qt.PenStyle.DashLine))
        self._cursor = pg.InfiniteLine(pos=0, angle=90, movable=True, pen=pg.mkPen("#ffffff", width=2))
        for item in (self._absent, self._occluded, self._low, self._keys, self._threshold_line, self._cursor):
            self.addItem(item)
        self._cursor.sigPositionChanged.connect(self._cursor_moved)
        self.scene().sigMouseClicked.connect(self._clicked)
        self._scores = np.zeros(0)
        self._review = np.zeros(0, bool)  # frames to review (predictor flags, else score < threshold)
        self._by_predictor = False  # whether the predictor made the current flags
        self._size = (1, 1)
        self.predictor: FailurePredictor | None = None
        self._bands = pg.BarGraphItem(x=[], height=[], width=1, y0=0, brush=pg.mkBrush(242, 139, 130, 70), pen=None)
        self.addItem(self._bands)
        self.set_length(1)  # no video yet: no frame numbers (pyqtgraph would show -0.4...0.4)
        self._selection = pg.LinearRegionItem(orientation="vertical", brush=pg.mkBrush(138, 180, 248, 50),
                                              pen=pg.mkPen("#8ab4f8"))
        self._selection.setVisible(False)
        self._selection.sigRegionChangeFinished.connect(lambda _item: self.selection_changed.emit())
        self.addItem(self._selection)

    def set_length(self, frames: int, width: int = 1, height: int = 1) -> None:
        """A new video: frames 1..N on the x axis (its frame size for the review signals)."""
        self._frames = max(frames, 1)
        self._size = (width, height)
        self.setXRange(0, max(self._frames - 1, 1), padding=0.01)
        self.getAxis("bottom").setStyle(showValues=self._frames > 1)
        self._cursor.setBounds((0, self._frames - 1))

    def set_threshold(self, value: float) -> None:
        """The review threshold (low-score frames are highlighted)."""
        self.threshold = value
        self._threshold_line.setPos(value)

    def set_track(self, records: list[BoxRecord]) -> None:
        """Show one track's rows (None/empty for no track)."""
        scores = np.full(self._frames, np.nan)
        keys, absent, occluded = [], [], []
        for r in records:
            if not 0 <= r.frame < self._frames:
                continue
            if r.source == "manual":
                keys.append(r.frame)
                scores[r.frame] = 1.0 if r.visible else np.nan
            elif r.score is not None:
                scores[r.frame] = r.score
            elif r.source == "interpolated":
                scores[r.frame] = np.nan
            if r.out_of_view:
                absent.append(r.frame)
            elif r.occluded:
                occluded.append(r.frame)
        self._scores = scores
        x = np.arange(self._frames)
        self._curve.setData(x, scores)
        self._review = self._flags(records)
        low = np.flatnonzero(self._review)
        self._low.setData(low, np.nan_to_num(scores[low], nan=0.0))
        # Flagged frames as bands over the whole height: spans read as spans, not scattered dots.
        self._bands.setOpts(x=low, height=[1.12] * len(low))
        self._keys.setData(keys, [1.06] * len(keys))
        self._absent.setOpts(x=absent, height=[1.0] * len(absent))
        self._occluded.setOpts(x=occluded, height=[1.0] * len(occluded))

    def selection(self) -> tuple[int, int] | None:
        """The selected span of frames (0-based, inclusive), or None."""
        if not self._selection.isVisible():
            return None
        low, high = self._selection.getRegion()
        first = min(max(int(round(low)), 0), self._frames - 1)
        return first, min(max(int(round(high)), first), self._frames - 1)

    def select_span(self, first: int, last: int) -> None:
        """Select frames first..last (either order)."""
        first, last = sorted((first, last))
        self._selection.setBounds((0, self._frames - 1))
        self._selection.setRegion((first, last))
        self._selection.setVisible(True)
        self.selection_changed.emit()

    def clear_selection(self) -> None:
        """No span selected."""
        if self._selection.isVisible():
            self._selection.setVisible(False)
            self.selection_changed.emit()

    def set_frame(self, frame: int) -> None:
        """Move the current-frame line (without echoing a seek)."""
        self._cursor.blockSignals(True)
        self._cursor.setPos(frame)
        self._cursor.blockSignals(False)

    def next_low(self, after: int) -> int | None:
        """The next frame after `after` to review."""
        hits = np.flatnonzero(self._review[after + 1 :])
        return int(after + 1 + hits[0]) if len(hits) else None

    def previous_low(self, before: int) -> int | None:
        """The last frame before `before` to review."""
        hits = np.flatnonzero(self._review[: max(before, 0)])
        return int(hits[-1]) if len(hits) else None

    def worst_spans(self, gap: int = 2) -> list[tuple[int, int]]:
        """Flagged spans (first, last), flags at most `gap` frames apart joined, longest first.

        A long run of flagged frames is where a track most likely went wrong for good; a lone
        flag is more often a blip, so the annotator who asks for the worst first sees runs first.
        """
        frames = np.flatnonzero(self._review)
        spans: list[tuple[int, int]] = []
        for frame in frames.tolist():
            if spans and frame - spans[-1][1] <= gap + 1:
                spans[-1] = (spans[-1][0], frame)
            else:
                spans.append((frame, frame))
        return sorted(spans, key=lambda span: (span[0] - span[1], span[0]))

    def flag_reason(self) -> str:
        """What the flags mean, for messages: the predictor's verdict or the score threshold."""
        return "flagged by the failure predictor" if self._by_predictor else f"scoring below {self.threshold:.2f}"

    def low_count(self) -> int:
        """Frames of the shown track to review."""
        return int(self._review.sum())

    def _flags(self, records: list[BoxRecord]) -> np.ndarray:
        """Machine frames to review: the model's failure predictor when it has one, else score < threshold;
        and the first frame of each span the engine judged the object gone (did it really leave?)."""
        flags = np.zeros(self._frames, bool)
        gone = {r.frame for r in records if 0 <= r.frame < self._frames and r.source != "manual" and not r.visible}
        for frame in gone:
            flags[frame] = frame - 1 not in gone
        machine = [r for r in records if 0 <= r.frame < self._frames and r.source != "manual" and r.has_box]
        # The predictor reads each machine box's look; boxes tracked before it was stored have none.
        self._by_predictor = not (self.predictor is None or any(r.look is None for r in machine if r.source == "tracked"))
        if not self._by_predictor:
            for r in machine:
                flags[r.frame] = r.score is not None and r.score < self.threshold and r.visible
            return flags
        rows = sorted((r for r in records if 0 <= r.frame < self._frames and r.has_box and r.visible), key=lambda r: r.frame)
        if not rows:
            return flags
        boxes = np.array([r.box for r in rows])
        scores = np.array([r.score if r.score is not None else np.nan for r in rows])
        manual = np.array([r.source == "manual" for r in rows])
        looks = np.array([r.look if r.look is not None else np.nan for r in rows])
        features = failure_features(boxes, scores, manual, *self._size, looks)
        for r, flagged in zip(rows, self.predictor.flags(features)):
            flags[r.frame] = bool(flagged) and r.source != "manual"
        return flags

    def _cursor_moved(self) -> None:
        self.seek_requested.emit(int(round(self._cursor.value())))

    def _clicked(self, event) -> None:
        if event.button() == Qt.MouseButton.RightButton:
            self.clear_selection()
            return
        if event.button() != Qt.MouseButton.LeftButton:
            return
        point = self.plotItem.vb.mapSceneToView(event.scenePos())
        frame = int(round(point.x()))
        if not 0 <= frame < self._frames:
            return
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self.select_span(int(round(self._cursor.value())), frame)
        else:
            self.seek_requested.emit(frame)

