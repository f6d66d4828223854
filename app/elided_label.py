"""A one-line label for the status bar that elides a long text and shows all of it as a tooltip."""

from __future__ import annotations

import html

from PySide6.QtCore import QSize, Qt
from PySide6.QtGui import QPainter, QPaintEvent
from PySide6.QtWidgets import QLabel, QWidget


class ElidedLabel(QLabel):
    """A label at most `max_width` pixels wide: a longer text ends in "…", and its tooltip holds all of it.

    The adaptation verdict runs to 300 characters; as a plain permanent QLabel it took the whole
    status bar, and the messages shown there (a re-track's result, the frames to review) vanished
    behind it. `text()` is the whole text as set, up to `max_chars`: the verdict comes from a
    result file in the project folder, which may be anyone's.
    """

    def __init__(self, max_width: int, max_chars: int = 2000, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._text = ""
        self._max_chars = max_chars
        self.setMaximumWidth(max_width)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        """Show `text`, elided to the label's width; the tooltip and the accessible name get all of it."""
        self._text = text if len(text) <= self._max_chars else text[: self._max_chars - 1] + "…"
        # Escaped rich text: Qt would take a text that merely looks like HTML for HTML. A plain long
        # tooltip runs off the screen's edge; in a table as wide as the label it wraps there, not
        # in Qt's narrow default column.
        escaped = html.escape(self._text)
        wide = self.fontMetrics().horizontalAdvance(self._text) > self.maximumWidth()
        self.setToolTip(f'<table width="{self.maximumWidth()}"><tr><td>{escaped}</td></tr></table>' if wide else f"<p>{escaped}</p>")
        self.setAccessibleName(self._text)
        self.updateGeometry()
        self.update()

    def text(self) -> str:
        """The whole text, as set (not the elided one on screen)."""
        return self._text

    def shown_text(self) -> str:
        """The text as it is drawn at the label's present width."""
        return self.fontMetrics().elidedText(self._text, Qt.TextElideMode.ElideRight, self.contentsRect().width())

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """As wide as the whole text, up to the maximum width."""
        margins = self.contentsMargins()
        wanted = self.fontMetrics().horizontalAdvance(self._text) + margins.left() + margins.right() + 2 * self.margin()
        return QSize(min(wanted, self.maximumWidth()), self.fontMetrics().height() + margins.top() + margins.bottom())

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        """Small enough for a narrow window: the text elides further."""
        return QSize(min(self.sizeHint().width(), 8 * self.fontMetrics().averageCharWidth()), self.sizeHint().height())

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        """Draw the elided text."""
        painter = QPainter(self)
        painter.drawText(self.contentsRect(), int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), self.shown_text())
