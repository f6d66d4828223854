"""Fine-tune dialog: a view of the project's fine-tuning run (app/finetune_run.py).

Start trains on this project's videos and manual boxes in a new run folder; Stop saves a checkpoint;
Resume continues a stopped run exactly; Close (or Esc) only hides the dialog while the run goes on,
and the status bar shows it. At the end the new model is offered only when it scores at least the
current one on the project's keyframe pairs.
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import Signal
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

from app.finetune_run import FinetuneRun
from projects import Project

# Measured by `python -m benchmarks.speed` on the 2-core CPU (2026-11-25, docs/results.md):
# sstrack-lite trains at about 3.3 samples/s; used only for the estimate before a run has measured its own.
CPU_SAMPLES_PER_S = 3.3
CURVES = {"loss": ("#8ab4f8", "total"), "loss_bwd": ("#81c995", "backward (local)"),
          "loss_fwd": ("#fdd663", "forward (global, CTP)"), "contrastive": ("#f28b82", "contrastive")}


class FinetuneDialog(QDialog):
    """Start, stop, resume and follow the project's fine-tuning run; offer its model when it is not worse."""

    model_ready = Signal(str, list)  # the new model's path and the video ids to use it for, when the user says so
    run_started = Signal(object)  # a new FinetuneRun: the main window keeps it beyond this dialog

    def __init__(self, project_folder: Path, base_model: str, run: FinetuneRun | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Fine-tune the tracker on this project")
        self.setMinimumSize(620, 520)
        self.folder = Path(project_folder)
        self.base_model = base_model
        self.run: FinetuneRun | None = None
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
            box.valueChanged.connect(self._refresh)
        form = QFormLayout()
        form.addRow("Data", self.summary)
        form.addRow("Starting from", QLabel(base_model))
        form.addRow("Steps", self.steps)
        form.addRow("Batch size", self.batch)
        form.addRow("Time", self.estimate)
        self.progress = QProgressBar()
        self.status = QLabel("Ready.")
        self.status.setWordWrap(True)
        self.plot = pg.PlotWidget(background="#1e1f22")
        self.plot.setLabel("bottom", "step")
        self.plot.setLabel("left", "loss")
        self.plot.addLegend(offset=(-10, 10))
        self.curves = {key: self.plot.plot([], [], pen=pg.mkPen(color, width=2 if key == "loss" else 1), name=name)
                       for key, (color, name) in CURVES.items()}
        self.start_button = QPushButton("Start")
        self.resume_button = QPushButton("Resume")
        self.stop_button = QPushButton("Stop")
        self.close_button = QPushButton("Close")
        self.use_button = QPushButton("Use the new model where it is not worse")
        self.start_button.clicked.connect(self.start)
        self.resume_button.clicked.connect(self.resume)
        self.stop_button.clicked.connect(self.stop)
        self.close_button.clicked.connect(self.reject)
        self.use_button.clicked.connect(self._use)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        for button in (self.use_button, self.start_button, self.resume_button, self.stop_button, self.close_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.progress)
        layout.addWidget(self.plot, stretch=1)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        if run is not None:
            self._follow(run)
        self._refresh()

    def _source_summary(self) -> str:
        with Project.open(self.folder) as project:
            videos = project.videos()
            boxes = sum(1 for v in videos for t in project.tracks(v.id) for r in project.boxes(t.id) if r.source == "manual")
        return f"{len(videos)} video(s) of this project; {boxes} manual box(es) as initial boxes (videos without any get automatic ones)"

    def start(self) -> None:
        """A new run in a new folder (an earlier run's folder and curve are left as they are)."""
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = self.folder / "models" / f"finetune-{stamp}"
        # Parented to the main window: the run outlives this dialog.
        run = FinetuneRun(self.folder, self.base_model, self.steps.value(), self.batch.value(), out_dir, self.parent() or self)
        self._follow(run)
        self.run_started.emit(run)
        run.start()

    def resume(self) -> None:
        """Continue the stopped run from its checkpoint."""
        if self.run is not None and self.run.resumable():
            self.run.start(resume=True)

    def stop(self) -> None:
        """Stop the run with a checkpoint (Resume continues it)."""
        if self.run is not None:
            self.run.stop()

    def _follow(self, run: FinetuneRun) -> None:
        if self.run is not None:
            self.run.changed.disconnect(self._refresh)
        self.run = run
        self.steps.setValue(run.steps)
        self.batch.setValue(run.batch)
        run.changed.connect(self._refresh)

    def _refresh(self) -> None:
        run = self.run
        active = run is not None and run.state in ("running", "stopping", "scoring")
        for box in (self.steps, self.batch):
            box.setEnabled(not active)
        self.start_button.setEnabled(not active)
        self.resume_button.setEnabled(run is not None and run.resumable())
        self.stop_button.setEnabled(run is not None and run.state == "running")
        self.use_button.setEnabled(run is not None and run.state == "done" and run.better)
        # One time figure: the run's measured rate once it has one, the CPU's before.
        left = run.minutes_left() if run is not None and run.state in ("running", "stopping") else None
        if left is not None:
            self.estimate.setText(f"about {math.ceil(left)} min left at the measured rate; Close keeps it running")
        else:
            minutes = self.steps.value() * self.batch.value() / CPU_SAMPLES_PER_S / 60
            self.estimate.setText(f"about {math.ceil(minutes)} min on this CPU (faster on a GPU); the app stays usable meanwhile")
        if run is None:
            return
        self.progress.setMaximum(run.steps)
        self.progress.setValue(run.step())
        steps = [row["step"] for row in run.rows]
        for key, curve in self.curves.items():
            curve.setData(steps, [row.get(key, float("nan")) for row in run.rows])
        if run.state == "running" and not run.rows:
            self.status.setText("Decoding the videos and proposing initial boxes…")
        elif run.state == "running":
            row = run.rows[-1]
            self.status.setText(f"step {row['step']} / {run.steps}, loss {row.get('loss', float('nan')):.3f}, "
                                f"{row.get('samples_per_s', 0):.1f} samples/s")
        else:
            self.status.setText(run.summary())

    def _use(self) -> None:
        assert self.run is not None
        self.model_ready.emit(str(self.run.out_dir / "model.safetensors"), list(self.run.adopt_for))
        self.accept()
