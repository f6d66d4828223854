"""One Qt worker pattern: run a generator on a QThread, report each yield as a signal.

Shaped like superqt's GeneratorWorker: `yielded` / `finished` / `errored` / `aborted`. `quit()`
sets a flag checked between yields; the generator is then closed on the worker thread (so its
`finally` blocks, e.g. committing the last frame and recording the run, run there). Slots on the
GUI thread only update views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from PySide6.QtCore import QObject, Qt, QThread, Signal


class GeneratorWorker(QObject):
    """Runs `factory()` (which returns a generator) on its own thread."""

    yielded = Signal(object)
    finished = Signal()
    errored = Signal(str)
    aborted = Signal()

    def __init__(self, factory: Callable[[], Iterator[Any]]) -> None:
        super().__init__()
        self._factory = factory
        self._quit = False
        self._thread = QThread()
        self._thread.setObjectName("generator-worker")
        self.moveToThread(self._thread)
        self._thread.started.connect(self._run)
        for signal in (self.finished, self.errored, self.aborted):
            # Direct: QThread.quit is thread-safe. Queued (the default, as the QThread object lives
            # in the GUI thread) it waited for a GUI thread blocked in wait(): closing the window
            # during a run froze it for the whole 60 s timeout.
            signal.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)

    def start(self) -> None:
        """Start the thread (and the generator on it)."""
        self._thread.start()

    def quit(self) -> None:
        """Ask the generator to stop at its next yield."""
        self._quit = True

    def is_running(self) -> bool:
        """True while the thread runs."""
        return self._thread.isRunning()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the thread ends (tests, shutdown)."""
        return self._thread.wait(msecs)

    def _run(self) -> None:
        generator = None
        try:
            generator = self._factory()
            for item in generator:
                self.yielded.emit(item)
                if self._quit:
                    generator.close()
                    self.aborted.emit()
                    return
        except Exception as error:  # shown to the user as one line; the window stays usable
            if generator is not None:
                generator.close()
            self.errored.emit(str(error) or type(error).__name__)
            return
        self.finished.emit()


class FunctionWorker(QObject):
    """Runs `function(progress)` on its own thread; `progress(done, total)` returns False to cancel."""

    progress = Signal(int, int)
    result = Signal(object)
    errored = Signal(str)
    aborted = Signal()

    def __init__(self, function: Callable[[Callable[[int, int], bool]], Any], cancelled_type: type[BaseException] | None = None) -> None:
        super().__init__()
        self._function = function
        self._cancelled_type = cancelled_type
        self._quit = False
        self._thread = QThread()
        self._thread.setObjectName("function-worker")
        self.moveToThread(self._thread)
        self._thread.started.connect(self._run)
        for signal in (self.result, self.errored, self.aborted):
            signal.connect(self._thread.quit, Qt.ConnectionType.DirectConnection)  # see GeneratorWorker

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def quit(self) -> None:
        """Ask the function to stop at its next progress report."""
        self._quit = True

    def is_running(self) -> bool:
        """True while the thread runs."""
        return self._thread.isRunning()

    def wait(self, msecs: int = 30000) -> bool:
        """Block until the thread ends."""
        return self._thread.wait(msecs)

    def _report(self, done: int, total: int) -> bool:
        self.progress.emit(done, total)
        return not self._quit

    def _run(self) -> None:
        try:
            value = self._function(self._report)
        except Exception as error:  # shown as one line; the window stays usable
            if self._cancelled_type is not None and isinstance(error, self._cancelled_type):
                self.aborted.emit()
            else:
                self.errored.emit(str(error) or type(error).__name__)
            return
        self.result.emit(value)
