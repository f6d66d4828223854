"""Tracking jobs for the window: the model, and propagation runs on a worker thread."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from PySide6.QtCore import QObject, Signal

from app.workers import GeneratorWorker
from projects import FrameResult, Project, propagate
from sstrack import Tracker, load_model
from sstrack.threads import use_cpu_threads


class TrackingRunner(QObject):
    """Holds the Tracker and runs at most one propagation at a time."""

    progress = Signal(object)  # FrameResult
    finished = Signal(str, object)  # label, last FrameResult or None
    failed = Signal(str)
    cancelled = Signal(str, object)

    def __init__(self) -> None:
        super().__init__()
        self.tracker: Tracker | None = None
        self.model_name = ""
        self.worker: GeneratorWorker | None = None
        self._last: FrameResult | None = None
        self._label = ""
        self.video_id: int | None = None  # what the run in progress writes
        self.track_ids: list[int] | None = None

    def load(self, model: str, device: str) -> None:
        """Load a model (raises CheckpointError with a clear message on a wrong file)."""
        tracker = Tracker(load_model(model), device=device)
        self.tracker, self.model_name = tracker, model

    def device_text(self) -> str:
        """'cpu (fp32)' / 'cuda (bf16)' for the status bar."""
        if self.tracker is None:
            return "no model"
        return f"{self.tracker.device.type} ({self.tracker.precision}, {self.tracker.backend})"

    def running(self) -> bool:
        """True while a run is in progress."""
        return self.worker is not None and self.worker.is_running()

    def start(
        self,
        folder: Path,
        video_id: int,
        track_ids: list[int] | None,
        direction: str,
        around: int | None,
        stop_below: float | None,
        label: str,
    ) -> None:
        """Start a run; the worker opens its own project connection (one per thread)."""
        assert self.tracker is not None and not self.running()
        tracker = self.tracker

        def run() -> Iterator[FrameResult]:
            if tracker.device.type == "cpu":
                # The cores idle now (a fine-tune in the background holds one). Here, not in the
                # window: measuring them samples /proc/stat for 0.25 s, a freeze at every T.
                use_cpu_threads()
            project = Project.open(folder)
            try:
                yield from propagate(project, video_id, tracker, track_ids, direction, around, stop_below)
            finally:
                project.close()

        self._last, self._label = None, label
        self.video_id, self.track_ids = video_id, track_ids
        self.worker = GeneratorWorker(run)
        self.worker.yielded.connect(self._yielded)
        self.worker.finished.connect(lambda: self.finished.emit(self._label, self._last))
        self.worker.errored.connect(self.failed.emit)
        self.worker.aborted.connect(lambda: self.cancelled.emit(self._label, self._last))
        self.worker.start()

    def writes(self, video_id: int | None, track_id: int | None) -> bool:
        """Whether the run in progress writes this track's boxes (None tracks: all of its video)."""
        if not self.running() or video_id != self.video_id:
            return False
        return self.track_ids is None or track_id in self.track_ids

    def writes_video(self, video_id: int | None) -> bool:
        """Whether the run in progress writes any track of this video."""
        return self.running() and video_id == self.video_id

    def cancel(self) -> None:
        """Stop at the next frame (what is written stays)."""
        if self.worker is not None:
            self.worker.quit()

    def wait(self, msecs: int = 60000) -> bool:
        """Block until the run ends (shutdown, tests)."""
        return self.worker.wait(msecs) if self.worker is not None else True

    def _yielded(self, result: FrameResult) -> None:
        self._last = result
        self.progress.emit(result)
