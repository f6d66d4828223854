"""Fine-tune dialog: one click trains on this project's videos and manual boxes.

The trainer runs in a child process (`python -m trainer.cli`), so it can use every core and a
crash of either side does not take the other down. Progress and loss curves come from the run's
metrics.jsonl; Cancel sends SIGTERM, which makes the trainer save a checkpoint and stop. At the
end the model is registered in the project, scored on the project's own keyframe pairs against
the model it started from, and offered as the new tracking model.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QProcess, QTimer, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.workers import FunctionWorker
from projects import Project
from projects.keyframe_eval import adoption_verdict, keyframe_score
from sstrack import Tracker, load_model, read_card

# Measured by `python -m benchmarks.speed` on the 2-core CPU (2026-11-25, docs/results.md):
# sstrack-lite trains at about 3.3 samples/s; used only for the estimate shown before starting.
CPU_SAMPLES_PER_S = 3.3


class FinetuneDialog(QDialog):
    """Estimate, run, follow and conclude a fine-tuning run."""

    model_ready = Signal(str)  # path of the new model, when the user switches to it

    def __init__(self, project_folder: Path, base_model: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune the tracker on this project")
        self.setMinimumSize(620, 520)
        self.folder = Path(project_folder)
        self.base_model = base_model
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        self.out_dir = self.folder / "models" / f"finetune-{stamp}"
        self.process: QProcess | None = None
        self.scorer: FunctionWorker | None = None
        self._lines_read = 0
        self.summary = QLabel(self._source_summary())
        self.summary.setWordWrap(True)
        self.steps = QSpinBox()
        self.steps.setRange(20, 100000)
        self.steps.setSingleStep(50)
        self.steps.setValue(300)
        self.batch = QSpinBox()
        self.batch.setRange(2, 64)
        self.batch.setValue(8)
        self.estimate = QLabel()
        for box in (self.steps, self.batch):
            box.valueChanged.connect(self._update_estimate)
        form = QFormLayout()
        form.addRow("Data", self.summary)
        form.addRow("Starting from", QLabel(base_model))
        form.addRow("Steps", self.steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Estimate", self.estimate)
        self.progress = QProgressBar()
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.plot = pg.PlotWidget(background="#1e1f22")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.curves = {
            "loss": self.plot.plot([], [], pen=pg.mkPen("#8ab4f8", width=2), name="total"),
            "loss_bwd": self.plot.plot([], [], pen=pg.mkPen("#81c995"), name="backward (local)"),
            "loss_fwd": self.plot.plot([], [], pen=pg.mkPen("#fdd663"), name="forward (global, CTP)"),
            "contrastive": self.plot.plot([], [], pen=pg.mkPen("#f28b82"), name="contrastive"),
        }
        self.history: dict[str, list[float]] = {k: [] for k in self.curves}
        self.steps_seen: list[int] = []
        self.start_button = QPushButton("Start")
        self.cancel_button = QPushButton("Close")
        self.use_button = QPushButton("Use the new model")
        self.use_button.setEnabled(False)
        self.start_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self._cancel_or_close)
        self.use_button.clicked.connect(self._use)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.use_button, self.start_button, self.cancel_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, stretch=1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self.timer = QTimer(self)
        self.timer.setInterval(1000)
        self.timer.timeout.connect(self._poll)
        self._update_estimate()

    def _source_summary(self) -> str:
        with Project.open(self.folder) as project:
            videos = project.videos()
            boxes = sum(1 for v in videos for t in project.tracks(v.id) for r in project.boxes(t.id) if r.source == "manual")
        return f"{len(videos)} video(s) of this project; {boxes} manual box(es) as initial boxes (videos without any get automatic ones)"

    def _update_estimate(self) -> None:
        minutes = self.steps.value() * self.batch.value() / CPU_SAMPLES_PER_S / 60
        self.estimate.setText(f"about {math.ceil(minutes)} min on this CPU (faster on a GPU); the app stays usable meanwhile")

    def command(self) -> list[str]:
        """The child process' arguments (after the Python executable)."""
        return [
            "-m", "trainer.cli", "--data", str(self.folder), "--base", self.base_model,
            "--steps", str(self.steps.value()), "--batch-size", str(self.batch.value()), "--out", str(self.out_dir),
        ]

    def start(self) -> None:
        """Launch the trainer."""
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.finished.connect(self._finished)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self._tail = ""
        self.process.start(sys.executable, self.command())
        self.start_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.status.setText("Decoding the videos and proposing initial boxes…")
        self.progress.setMaximum(self.steps.value())
        self.timer.start()

    def _read_output(self) -> None:
        assert self.process is not None
        text = bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        self._tail = (self._tail + text)[-2000:]

    def _poll(self) -> None:
        metrics = self.out_dir / "metrics.jsonl"
        if not metrics.exists():
            return
        lines = metrics.read_text().splitlines()
        for line in lines[self._lines_read :]:
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                break  # a line being written; read it next time
            self._lines_read += 1
            self.steps_seen.append(row["step"])
            for key in self.curves:
                self.history[key].append(row.get(key, float("nan")))
            self.progress.setValue(row["step"])
            remaining = (self.steps.value() - row["step"]) * self.batch.value() / max(row.get("samples_per_s", 1.0), 1e-3)
            self.status.setText(f"step {row['step']} / {self.steps.value()}, loss {row.get('loss', float('nan')):.3f}, "
                                f"{row.get('samples_per_s', 0):.1f} samples/s, about {remaining / 60:.0f} min left")
        for key, curve in self.curves.items():
            curve.setData(self.steps_seen, self.history[key])

    def _finished(self, code: int, _status) -> None:
        self.timer.stop()
        self._poll()
        model = self.out_dir / "model.safetensors"
        if code != 0 or not model.exists():
            last = self._tail.strip().splitlines()[-1:] or ["(no output)"]
            self._done(f"Training stopped ({'cancelled' if code in (130, 15, -15) else f'exit code {code}'}): {last[0]}")
            return
        with Project.open(self.folder) as project:
            project.add_model(model, read_card(model), name=self.out_dir.name, parent=self.base_model)
        self.status.setText("Trained. Scoring both models on your keyframe pairs…")
        base, new, folder = self.base_model, str(model), self.folder

        def score(progress):
            with Project.open(folder) as project:
                before = keyframe_score(project, Tracker(load_model(base), device="cpu"))
                after = keyframe_score(project, Tracker(load_model(new), device="cpu"))
            return before, after

        self.scorer = FunctionWorker(score)
        self.scorer.result.connect(self._scored)
        self.scorer.errored.connect(lambda message: self._done(f"Trained, but scoring failed: {message}"))
        self.scorer.start()

    def _scored(self, scores) -> None:
        before, after = scores
        better, text = adoption_verdict(before, after, self.base_model)
        self.use_button.setEnabled(better)  # never offered when it is worse, or when nothing shows it is not
        self._done(text)

    def _done(self, text: str) -> None:
        self.status.setText(text)
        self.start_button.setEnabled(True)
        self.cancel_button.setText("Close")

    def _use(self) -> None:
        self.model_ready.emit(str(self.out_dir / "model.safetensors"))
        self.accept()

    def _cancel_or_close(self) -> None:
        if self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning:
            self.status.setText("Stopping: saving a checkpoint…")
            self.process.terminate()  # SIGTERM: the trainer checkpoints and exits
        else:
            self.reject()
