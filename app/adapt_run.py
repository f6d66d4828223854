"""One adaptation round of the video being labelled (#15): the `sstrack-adapt` child and its result.

The round runs as `python -m trainer.adapt_cli`, a child process with its own cores, so the window
stays responsive and a crash of either side spares the other. Its verdict is `result.json` in
the round's folder, written last; `stop()` (the app closing) sends SIGTERM, the trainer keeps its
checkpoint and no result is written, so nothing half-done is ever adopted. An app killed without
closing takes its round with it (`--parent-pid`).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from sstrack.threads import available_cores


class AdaptRun(QObject):
    """A round for one video of a project; `finished` carries the result dict (None: no result)."""

    finished = Signal(object)
    ticked = Signal()  # once a second while it runs (the status bar's clock)

    def __init__(self, project_folder: Path, video_id: int, base_model: str, out_dir: Path, seconds: float | None = None,
                 parent: QObject | None = None, recheck: bool = False) -> None:
        super().__init__(parent)
        self.folder, self.video_id, self.base_model, self.out_dir = Path(project_folder), video_id, base_model, Path(out_dir)
        self.seconds = seconds
        self.recheck = recheck  # train nothing: re-judge `base_model`, adopted without labels (sstrack-adapt --recheck)
        self.process: QProcess | None = None
        self.started_at = 0.0
        self.error = ""
        self._tail = ""
        self._clock = QTimer(self)
        self._clock.setInterval(1000)
        self._clock.timeout.connect(self.ticked.emit)

    def command(self) -> list[str]:
        """The child process' arguments (after the Python executable)."""
        budget = [] if self.seconds is None else ["--seconds", f"{self.seconds:g}"]
        if self.recheck:
            budget = ["--recheck", self.base_model]
        # A background job: it leaves one core to the window and its tracking runs.
        threads = str(max(1, available_cores() - 1))
        return ["-m", "trainer.adapt_cli", str(self.folder), "--video", str(self.video_id), "--base", self.base_model,
                "--out", str(self.out_dir), "--threads", threads, "--parent-pid", str(os.getpid()), *budget]

    def start(self) -> None:
        """Launch the round."""
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self.process.finished.connect(self._finished)
        self.started_at = time.monotonic()
        self.process.start(sys.executable, self.command())
        self._clock.start()

    def running(self) -> bool:
        """The child is alive."""
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def elapsed_s(self) -> float:
        """Seconds since the round started."""
        return time.monotonic() - self.started_at

    def stop(self) -> None:
        """SIGTERM: the trainer saves its checkpoint and exits without a result."""
        if self.running():
            assert self.process is not None
            self.process.terminate()

    def wait(self, msecs: int) -> bool:
        """Block until the child exits; True when it did."""
        return self.process is None or self.process.waitForFinished(msecs)

    def _read_output(self) -> None:
        assert self.process is not None
        self._tail = (self._tail + bytes(self.process.readAllStandardOutput()).decode(errors="replace"))[-2000:]

    def _finished(self, code: int, _status: object) -> None:
        self._clock.stop()
        self._read_output()
        result_path = self.out_dir / "result.json"
        try:
            result = json.loads(result_path.read_text()) if code == 0 else None
        except (OSError, ValueError):
            result = None
        if result is None:
            lines = [line for line in self._tail.splitlines() if line.strip()]
            self.error = lines[-1] if lines else f"exit code {code}"
        self.finished.emit(result)
