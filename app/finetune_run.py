"""One fine-tuning run of a project: the trainer child process, its progress, its verdict.

The main window owns the run, not the dialog that shows it: closing the dialog (Esc, Close) leaves
the run going and the status bar shows it; quitting asks first and stops it with a checkpoint
(SIGTERM), and Resume continues it exactly (`sstrack-train --resume`). The trainer runs as
`python -m trainer.cli`, so it can use every core and a crash of either side does not take the
other down. At the end the model is registered in the project and judged on each video against the model that
video tracks with now (`trainer.adapt.judge_project`): it is offered only for the videos where it is
not worse, so one wrecked video never costs the others their gain, nor keeps it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QProcess, QTimer, Signal

from app.workers import FunctionWorker
from projects import Project
from sstrack import read_card
from sstrack.fileio import read_json_file, regular_file_problem
from trainer.adapt import VideoVerdict, judge_project

# A run's metrics are about 200 bytes a step; a larger file is not a run of ours (it is read each second).
MAX_METRICS_BYTES = 64 << 20


class FinetuneRun(QObject):
    """A trainer process over a project's videos, followed through its metrics.jsonl."""

    changed = Signal()  # a new step, or a new state

    def __init__(self, project_folder: Path, base_model: str, steps: int, batch: int, out_dir: Path,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.folder = Path(project_folder)
        self.base_model = base_model
        self.steps = steps
        self.batch = batch
        self.out_dir = Path(out_dir)
        self.state = "ready"  # running, stopping, stopped, scoring, done, failed
        self.rows: list[dict] = []
        self.verdict = ""
        self.adopt_for: list[int] = []  # the videos where the new model is not worse (offered for those)
        self.process: QProcess | None = None
        self.scorer: FunctionWorker | None = None
        self._tail = ""
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self._poll)

    @classmethod
    def find_stopped(cls, project_folder: Path, parent: QObject | None = None) -> FinetuneRun | None:
        """The project's newest run that stopped before its end (app closed, Stop), to resume."""
        for out_dir in sorted(Path(project_folder).glob("models/finetune-*"), reverse=True):
            if not (out_dir / "latest.json").is_file() or (out_dir / "model.safetensors").exists():
                continue
            try:  # a shared project's folder: run.json (or metrics.jsonl) may be a FIFO or huge
                info = read_json_file(out_dir / "run.json", 1 << 20)
                steps, batch = int(info["train"]["steps"]), int(info["train"]["batch_size"])
                base = str(info["base_model"])
            except (OSError, ValueError, KeyError, TypeError):
                continue  # not a run this app can continue; left as it is
            run = cls(project_folder, base, steps, batch, out_dir, parent)
            run._poll()
            run.state = "stopped"
            run.verdict = f"Training stopped at step {run.step()} / {steps}; Resume continues it."
            return run
        return None

    # -- control ------------------------------------------------------------------------------------
    def command(self, resume: bool = False) -> list[str]:
        """The child process' arguments (after the Python executable)."""
        return [
            "-m", "trainer.cli", "--data", str(self.folder), "--base", self.base_model, "--recipe", "adapt",
            "--steps", str(self.steps), "--batch-size", str(self.batch), "--out", str(self.out_dir),
            *(["--resume"] if resume else []),
        ]

    def start(self, resume: bool = False) -> None:
        """Launch the trainer (continuing the run's checkpoint when `resume`)."""
        self.process = QProcess(self)
        self.process.setProcessChannelMode(QProcess.ProcessChannelMode.MergedChannels)
        self.process.finished.connect(self._finished)
        self.process.readyReadStandardOutput.connect(self._read_output)
        self._tail = ""
        self.rows = []  # a resumed trainer truncates metrics.jsonl to its checkpoint: read it afresh
        self.state = "running"
        self.process.start(sys.executable, self.command(resume))
        self._timer.start()
        self.changed.emit()

    def stop(self) -> None:
        """SIGTERM: the trainer saves a checkpoint at its current step and exits."""
        if self.running():
            assert self.process is not None
            self.state = "stopping"
            self.process.terminate()
            self.changed.emit()

    def running(self) -> bool:
        """The trainer process is alive."""
        return self.process is not None and self.process.state() != QProcess.ProcessState.NotRunning

    def wait(self, msecs: int) -> bool:
        """Block until the trainer exits (quitting the app); True when it did."""
        return self.process is None or self.process.waitForFinished(msecs)

    def resumable(self) -> bool:
        """Stopped before its last step with a checkpoint to continue from."""
        return (not self.running() and self.state in ("stopped", "failed")
                and (self.out_dir / "latest.json").is_file() and self.step() < self.steps)

    # -- progress -----------------------------------------------------------------------------------
    def step(self) -> int:
        """The last step the trainer reported."""
        return int(self.rows[-1]["step"]) if self.rows else 0

    def minutes_left(self) -> float | None:
        """At the rate measured over the last reported steps; None before any."""
        rates = [r["samples_per_s"] for r in self.rows[-10:] if r.get("samples_per_s")]
        if not rates:
            return None
        return (self.steps - self.step()) * self.batch / (sum(rates) / len(rates)) / 60

    def summary(self) -> str:
        """One line for the status bar."""
        if self.state in ("running", "stopping"):
            left = self.minutes_left()
            eta = f", about {math.ceil(left)} min left" if left is not None else ""
            doing = "stopping (saving a checkpoint)" if self.state == "stopping" else "fine-tuning"
            return f"{doing}: step {self.step()} / {self.steps}{eta}"
        if self.state == "stopped":
            return f"fine-tuning stopped at step {self.step()} / {self.steps}; Fine-tune… > Resume continues it"
        if self.state == "scoring":
            return "fine-tuned; checking both models on each video from your keyframes…"
        return self.verdict

    def _read_output(self) -> None:
        assert self.process is not None
        text = bytes(self.process.readAllStandardOutput()).decode(errors="replace")
        self._tail = (self._tail + text)[-2000:]

    def _poll(self) -> None:
        metrics = self.out_dir / "metrics.jsonl"
        if regular_file_problem(metrics, MAX_METRICS_BYTES) is not None:  # not there yet, or not a file to read
            return
        try:
            lines = metrics.read_text(errors="replace").splitlines()
        except OSError:
            return
        if len(lines) < len(self.rows):
            self.rows = []  # truncated by a resume
        added = False
        for line in lines[len(self.rows):]:
            try:
                self.rows.append(json.loads(line))
            except (ValueError, RecursionError):
                break  # a line being written (read it next time), or not ours
            added = True
        if added:
            self.changed.emit()

    def _finished(self, code: int, _status) -> None:
        self._timer.stop()
        self._poll()
        model = self.out_dir / "model.safetensors"
        if code != 0 or not model.exists():
            stopped = self.state == "stopping" or code in (130, 15, -15)
            self.state = "stopped" if stopped and (self.out_dir / "latest.json").is_file() else "failed"
            last = self._tail.strip().splitlines()[-1:] or ["(no output)"]
            self.verdict = (f"Training stopped at step {self.step()} / {self.steps}; Resume continues it." if self.state == "stopped"
                            else f"Training failed (exit code {code}): {last[0]}")
            self.changed.emit()
            return
        with Project.open(self.folder) as project:
            project.add_model(model, read_card(model), name=self.out_dir.name, parent=self.base_model)
        self.state = "scoring"
        self.changed.emit()
        base, new, folder = self.base_model, str(model), self.folder

        def score(progress):
            with Project.open(folder) as project:
                verdicts = judge_project(project, new, current=lambda video_id: current_model(project, video_id, base))
                names = {v.id: v.name for v in project.videos()}
            return verdicts, names

        self.scorer = FunctionWorker(score)
        self.scorer.result.connect(self._scored)
        self.scorer.errored.connect(lambda message: self._conclude([], f"Trained, but scoring failed: {message}"))
        self.scorer.start()

    def _scored(self, result) -> None:
        verdicts, names = result
        self._conclude(*per_video_summary(verdicts, names, self.base_model))

    @property
    def better(self) -> bool:
        """Whether the new model is offered (for `adopt_for`)."""
        return bool(self.adopt_for)

    def _conclude(self, adopt_for: list[int], text: str) -> None:
        self.adopt_for = adopt_for  # never offered where it is worse, or where nothing shows it is not
        self.verdict = text
        self.state = "done"
        self.changed.emit()


def current_model(project: Project, video_id: int, preferred: str) -> str:
    """The model a video tracks with now: its adapted model (a file that is there), else `preferred`."""
    adapted = project.get_path_setting(f"adapted_model/{video_id}")
    return adapted if adapted and Path(adapted).is_file() else preferred


def per_video_summary(verdicts: dict[int, VideoVerdict], names: dict[int, str], base_name: str) -> tuple[list[int], str]:
    """(videos to adopt the new model for, the sentence for the dialog and status bar)."""
    if not verdicts:
        return [], (f"Trained and registered in the project, but no video has a keyframe to check it on; keeping {base_name}. "
                    "Draw a box and fine-tune again, or pick it in Preferences.")
    adopt = [video_id for video_id, judged in verdicts.items() if judged.accepted]
    kept = [f"{names.get(video_id, video_id)} ({judged.reason})" for video_id, judged in verdicts.items() if not judged.accepted]
    better = [f"{names.get(video_id, video_id)} ({judged.reason.removeprefix('adapted: ')})" for video_id, judged in verdicts.items()
              if judged.accepted]
    text = f"Not worse on {len(adopt)} of {len(verdicts)} video(s)"
    text += (": " + "; ".join(better)) if better else ""
    text += (". Kept the current model on: " + "; ".join(kept)) if kept else ""
    return adopt, text + "."
