"""The main window: video list and tracks on the left, the frame canvas, transport and timeline,
menus built from the action table, a status bar with model, device and tracking fps."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QDockWidget,
    QFileDialog,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.actions import ACTIONS
from app.adapt_run import AdaptRun
from app.canvas import FrameView
from app.controller import ProjectController
from app.dialogs.export_dialog import ExportDialog
from app.dialogs.finetune_dialog import FinetuneDialog
from app.dialogs.import_dialog import ImportDialog
from app.dialogs.preferences import PreferencesDialog
from app.dialogs.shortcuts import ShortcutsDialog
from app.elided_label import ElidedLabel
from app.finetune_run import FinetuneRun, current_model
from app.panels import TrackPanel, VideoList
from app.settings import Preferences
from app.timeline import Timeline
from app.tracking import TrackingRunner
from projects import FrameResult, ProjectError
from sstrack import SSTrackError, read_card, review_predictor, review_threshold
from sstrack.fileio import read_json_file
from trainer import ROUND_EVERY
from trainer.adapt import first_taken_back, trained_boxes

PLAY_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)  # playback speed steps ([ and ]), times the video's frame rate

# Edits of the selected track only: allowed while a run tracks other tracks (or another video).
TRACK_EDITS = {
    "delete_box", "toggle_keyframe", "toggle_out_of_view", "toggle_occluded", "mark_span_out_of_view",
    "mark_span_occluded", "mark_span_visible", "delete_machine_span", "interpolate_span", "copy_box_forward", "add_track",
    "nudge_left", "nudge_right", "nudge_up", "nudge_down", "nudge_left_10", "nudge_right_10", "nudge_up_10", "nudge_down_10",
}
EDIT_ACTIONS = {
    "delete_box", "toggle_keyframe", "toggle_out_of_view", "toggle_occluded", "undo", "redo", "add_track", "interpolate",
    "track_forward", "track_backward", "fill_between", "retrack_here", "finetune", "export", "add_video", "adapt_reset",
    "mark_span_out_of_view", "mark_span_occluded", "mark_span_visible", "delete_machine_span", "interpolate_span", "import_labels",
    "split_track", "merge_track", "swap_tracks", "copy_box_forward",
    "nudge_left", "nudge_right", "nudge_up", "nudge_down", "nudge_left_10", "nudge_right_10", "nudge_up_10", "nudge_down_10",
}


def model_display_name(model: str) -> str:
    """A model's short name: the file's stem, or the run folder's name for a run's model.safetensors."""
    path = Path(model)
    return path.parent.name if path.stem == "model" and path.parent.name else path.stem


class MainWindow(QMainWindow):
    """The annotation window; all state lives in the project behind the controller."""

    def __init__(self, prefs: Preferences | None = None) -> None:
        super().__init__()
        self.prefs = prefs or Preferences()
        self.controller = ProjectController()
        self.runner = TrackingRunner()
        self.play_speed = 1.0
        self.finetune_run: FinetuneRun | None = None  # the project's fine-tuning run, kept beyond its dialog
        self.finetune_dialog: FinetuneDialog | None = None
        self.adapt_run: AdaptRun | None = None  # the adaptation round in progress or last finished
        self._adapted_at: dict[int, int] = {}  # video id -> its keyframe count when its last round started
        # video id -> its keyframe count when its model, adopted without labels, was adopted or last re-judged
        self._rechecked_at: dict[int, int] = {}
        self._broken_models: set[str] = set()  # videos' adapted models that would not load this session
        self._closing = False  # a round or a recheck that ends while the window closes adopts nothing
        self.import_dialog: ImportDialog | None = None
        self.setWindowTitle("sstrack-annotate")
        self.resize(1400, 900)
        self.canvas = FrameView()
        self.timeline = Timeline()
        self.timeline.set_threshold(self.prefs.review_threshold(None))
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.frame_label = QLabel("no video")
        self.frame_label.setMinimumWidth(170)
        self.play_timer = QTimer(self)
        self.play_timer.timeout.connect(self._play_tick)
        self._build_layout()
        self.actions_by_id: dict[str, QAction] = {}
        self._build_actions()
        self._build_status_bar()
        self._connect()
        self._last_canvas_update = 0.0
        self._following: int | None = None  # the frame the view was last put on by a running track
        self._edit_at: tuple[int, int] | None = None  # (video id, frame) where the drag in progress began
        self._run_folder: Path | None = None  # the project of the run in progress or last run
        self._history_at_run_start = 0  # the project's newest history entry when that run started

    # -- construction -------------------------------------------------------------------------------
    def _build_layout(self) -> None:
        transport = QHBoxLayout()
        transport.addWidget(self.frame_label)
        transport.addWidget(self.slider, stretch=1)
        centre = QWidget()
        column = QVBoxLayout(centre)
        column.setContentsMargins(4, 4, 4, 4)
        splitter = QSplitter(Qt.Orientation.Vertical)
        splitter.addWidget(self.canvas)
        bottom = QWidget()
        bottom_layout = QVBoxLayout(bottom)
        bottom_layout.setContentsMargins(0, 0, 0, 0)
        bottom_layout.addLayout(transport)
        bottom_layout.addWidget(self.timeline)
        splitter.addWidget(bottom)
        splitter.setStretchFactor(0, 5)
        column.addWidget(splitter)
        self.setCentralWidget(centre)
        self.video_list = VideoList(self.controller)
        self.video_list.setMaximumHeight(200)  # tracks need the room more than a handful of videos
        self.track_panel = TrackPanel(self.controller)
        for title, widget in (("Videos", self.video_list), ("Tracks", self.track_panel)):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"dock-{title}")
            dock.setWidget(widget)
            dock.setFeatures(QDockWidget.DockWidgetFeature.DockWidgetMovable)
            self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, dock)

    def _build_actions(self) -> None:
        menus: dict[str, object] = {}
        for spec in ACTIONS:
            action = QAction(spec.text, self)
            action.setShortcuts([QKeySequence(k) for k in self.prefs.shortcuts(spec.id)])
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            if spec.tip:
                action.setStatusTip(spec.tip)
            handler = getattr(self, f"act_{spec.id}")
            edits = "track" if spec.id in TRACK_EDITS else spec.id in EDIT_ACTIONS
            action.triggered.connect(lambda _checked=False, h=handler, e=edits: self._guarded(h, e))
            if spec.id in ("all_tracks", "adapt_auto"):
                action.setCheckable(True)
            if spec.id == "adapt_auto":
                action.setChecked(bool(self.prefs.get("adapt_auto")))
            menu = menus.get(spec.menu) or self.menuBar().addMenu(f"&{spec.menu}")
            menus[spec.menu] = menu
            menu.addAction(action)
            self.addAction(action)
            self.actions_by_id[spec.id] = action

    def _build_status_bar(self) -> None:
        self.model_label = QLabel()
        self.fps_label = QLabel("")
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setVisible(False)
        self.cancel_button.clicked.connect(self.act_cancel)
        self.all_tracks_box = QCheckBox("all tracks")
        self.all_tracks_box.toggled.connect(lambda on: self.actions_by_id["all_tracks"].setChecked(on))
        # The project's fine-tuning run, shown while it goes on whether or not its dialog is open.
        self.finetune_button = QPushButton("")
        self.finetune_button.setFlat(True)
        self.finetune_button.setVisible(False)
        self.finetune_button.clicked.connect(self.act_finetune)
        self.adapt_label = ElidedLabel(480)  # the whole verdict is its tooltip
        self.adapt_label.setVisible(False)
        bar = self.statusBar()
        for widget in (self.adapt_label, self.finetune_button, self.all_tracks_box, self.progress, self.cancel_button, self.fps_label, self.model_label):
            bar.addPermanentWidget(widget)

    def _connect(self) -> None:
        c = self.controller
        c.frame_changed.connect(self._frame_changed)
        c.video_changed.connect(self._video_changed)
        c.boxes_changed.connect(self._boxes_changed)
        c.track_selected.connect(lambda _t: (self.timeline.clear_selection(), self._refresh_timeline()))
        c.tracks_changed.connect(lambda _v: (self._refresh_canvas(), self._refresh_timeline()))
        c.message.connect(self.show_error)
        c.undo_stack.indexChanged.connect(lambda _i: self._update_title())
        self.canvas.edit_started.connect(self._edit_started)
        self.canvas.box_drawn.connect(self._box_drawn)
        self.canvas.box_edited.connect(self._box_edited)
        self.canvas.track_clicked.connect(c.select_track)
        self.canvas.frame_step.connect(lambda step: c.seek(c.frame + step))
        self.slider.valueChanged.connect(lambda value: c.seek(value) if value != c.frame else None)
        self.timeline.seek_requested.connect(c.seek)
        self.runner.progress.connect(self._tracking_progress)
        self.runner.finished.connect(lambda label, last: self._tracking_done(label, last, "done"))
        self.runner.cancelled.connect(lambda label, last: self._tracking_done(label, last, "cancelled"))
        self.runner.failed.connect(self._tracking_failed)
        self.controller.run_writes = lambda video, track: (
            self.runner.writes_video(video) if track is None else self.runner.writes(video, track)
        )

    # -- model and project ---------------------------------------------------------------------------
    def wanted_model(self) -> str:
        """This video's adapted model when it has one (and the file is there), else the preferred model."""
        c = self.controller
        if c.project is not None and c.video is not None:
            return self.video_model(c.video.id)
        return self.prefs.get("model")

    def video_model(self, video_id: int) -> str:
        """The model a video of the open project tracks with: its adapted model unless that would not load, else the preferred."""
        preferred = self.prefs.get("model")
        model = current_model(self.controller.project, video_id, preferred)
        return preferred if model in self._broken_models else model

    def load_model(self) -> None:
        """Load the wanted model; a wrong file falls back (a video's adapted model to the preferred one, that to the shipped one) and says so."""
        wanted = self.wanted_model()
        try:
            self.runner.load(wanted, self.prefs.get("device"))
        except (SSTrackError, ValueError, RuntimeError) as error:
            preferred = self.prefs.get("model")
            if wanted != preferred:
                # One video's adapted model is that video's alone: the preference, which every other
                # video tracks with, stays; this session stops trying the broken file.
                self._broken_models.add(wanted)
                self.show_error(f"{error}\nThis video's adapted model would not load; it tracks with "
                                f"{model_display_name(preferred)}. Track > Use the model before adaptation forgets the broken one.")
                self.load_model()
                return
            self.show_error(f"{error}\nUsing the shipped model sstrack-lite instead.")
            self.prefs.set("model", "sstrack-lite")
            self.runner.load("sstrack-lite", "auto")
        # Scores differ between models: the default review threshold is the one calibrated for this one,
        # and the model's failure predictor (card) flags frames unless the user set their own threshold.
        self.timeline.set_threshold(self.prefs.review_threshold(review_threshold(self.runner.model_name)))
        self.timeline.predictor = None if self.prefs.qsettings.contains("threshold") else review_predictor(self.runner.model_name)
        self._refresh_timeline()
        self._update_model_label()

    def open_project(self, folder: str | Path, create: bool = False) -> bool:
        """Open or create a project; errors are shown, the window stays usable."""
        if self.runner.running():  # its undo step and its view belong to the project it writes
            self.show_error("Tracking is running: wait for it, or press Esc to cancel it, before opening another project.")
            return False
        try:
            self.controller.open_project(folder, create=create)
        except ProjectError as error:
            self.show_error(str(error))
            return False
        self.prefs.last_project = str(Path(folder).resolve())
        # The round schedule counts this project's keyframes, by its video ids.
        self._adapted_at.clear()
        self._rechecked_at.clear()
        run = self.finetune_run
        if run is not None and not run.running() and run.folder.resolve() != Path(folder).resolve():
            self._keep_finetune_run(None)  # another project's finished run; a running one stays shown
        self._refresh_canvas()  # an empty project says how to start
        self._update_title()
        if self.controller.project.read_only:
            self.statusBar().showMessage(
                "This project is on a read-only disk: view and export it; copy its folder somewhere writable to edit it.", 15000)
            return True
        self._offer_interrupted_runs()
        return True

    def _offer_interrupted_runs(self) -> None:
        """A tracking run killed with the app (or a CLI) is offered to continue, once."""
        project = self.controller.project
        runs = [r for r in project.interrupted_runs() if r["kind"] == "propagate" and r["video_id"] is not None] if project else []
        if not runs:
            return
        run = runs[-1]
        params = json.loads(run["params"])
        video = project.video(run["video_id"])
        text = (
            f"A tracking run ({params.get('direction', 'forward')}) on {video.name} was interrupted after "
            f"{run['frames_done']} boxes; what it wrote is kept. Continue it now?"
        )
        box = QMessageBox(QMessageBox.Icon.Question, "sstrack-annotate", text,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setObjectName("interrupted-run-box")

        def answered(button: int) -> None:
            resume = button == QMessageBox.StandardButton.Yes
            for r in runs:
                project.settle_interrupted(r["id"], resumed=resume and r is run)
            if resume:
                self.controller.select_video(video.id)
                tracks = params.get("tracks") or [t.id for t in project.tracks(video.id)]
                self.start_tracking(params.get("direction", "forward"), params.get("around"), tracks=tracks)

        box.finished.connect(answered)
        box.open()

    def add_video(self, path: str | Path) -> bool:
        """Add a video to the open project (one already there is just shown)."""
        if self.controller.project is None:
            self.show_error("Open or create a project first (Ctrl+O / Ctrl+N).")
            return False
        existing = next((v for v in self.controller.project.videos() if v.path == str(Path(path).resolve())), None)
        if existing is not None:
            self.controller.select_video(existing.id)
            return True
        try:
            self.controller.add_video(path)
        except ProjectError as error:
            self.show_error(str(error))
            return False
        return True

    def show_error(self, message: str) -> None:
        """A readable message; never a crash."""
        self.statusBar().showMessage(message.splitlines()[0], 10000)
        box = QMessageBox(QMessageBox.Icon.Warning, "sstrack-annotate", message, QMessageBox.StandardButton.Ok, self)
        box.setObjectName("error-box")
        box.open()

    # -- view refresh -------------------------------------------------------------------------------
    def _video_changed(self, _video_id: int) -> None:
        video = self.controller.video
        if video is None:
            return
        self.slider.blockSignals(True)
        self.slider.setRange(0, video.frames - 1)
        self.slider.blockSignals(False)
        self.timeline.set_length(video.frames, video.width, video.height)
        self.timeline.clear_selection()
        self.canvas._fitted = False
        if self.runner.tracker is not None and self.wanted_model() != self.runner.model_name and not self.runner.running():
            self.load_model()  # each video tracks with its own adapted model
        self._refresh_timeline()

    def _frame_changed(self, frame: int) -> None:
        video = self.controller.video
        if video is None:
            return
        self.slider.blockSignals(True)
        self.slider.setValue(frame)
        self.slider.blockSignals(False)
        self.timeline.set_frame(frame)
        self.frame_label.setText(f"frame {frame + 1} / {video.frames}")
        self._refresh_canvas()

    def _refresh_canvas(self) -> None:
        c = self.controller
        if c.video is None:
            self.canvas.set_hint("")
            self.canvas.show_frame(None, "Add a video (File > Add video…, Ctrl+I) to start." if c.project is not None
                                   else "Create a project (Ctrl+N) or open one (Ctrl+O) to start.")
            return
        # An empty video says how to start; the hint goes once the first object exists.
        self.canvas.set_hint("" if c.tracks() else "Drag a box around an object to label it, then press T to track it. "
                             "F1 lists every key.")
        try:
            image = c.image()
            message = "" if image is not None else f"{c.video.path}: cannot be decoded or is missing; re-link or replace it"
        except ProjectError as error:
            image, message = None, str(error)
        self.canvas.show_frame(image, message)
        self.canvas.set_boxes(c.boxes_here(), c.tracks(), c.track_id)

    def _refresh_timeline(self) -> None:
        c = self.controller
        records = c.project.boxes(c.track_id) if c.project is not None and c.track_id is not None else []
        self.timeline.set_track(records)

    def _boxes_changed(self, _video: int, track: int, first: int, last: int) -> None:
        if first <= self.controller.frame <= last:
            self._refresh_canvas()
        if track in (-1, self.controller.track_id):
            self._refresh_timeline()

    def _update_model_label(self) -> None:
        self.model_label.setText(f"model: {model_display_name(self.runner.model_name)} | device: {self.runner.device_text()}")

    def _update_title(self) -> None:
        project = self.controller.project
        read_only = " (read-only)" if project is not None and project.read_only else ""
        self.setWindowTitle(f"{project.folder.name}{read_only} — sstrack-annotate" if project else "sstrack-annotate")

    # -- editing ------------------------------------------------------------------------------------
    def _guarded(self, handler, edits: bool | str = False) -> None:
        """Run a handler; user errors become a message, the window stays usable.

        Edits wait while a tracking run writes to the same rows: an edit of the selected track
        ("track") only while the run tracks that track, any other edit while any run goes.
        """
        c = self.controller
        busy = self.runner.writes(c.video.id if c.video else None, c.track_id) if edits == "track" else edits and self.runner.running()
        if busy:
            self.statusBar().showMessage("Tracking is running on this track: wait or press Esc to cancel.", 4000)
            return
        try:
            handler()
        except (ProjectError, SSTrackError, OSError) as error:
            self.show_error(str(error))

    def _edit_started(self) -> None:
        # A drag edits the frame shown at the press: playback pauses there, as CVAT's does, and a
        # run's view-follow waits for the release (see _tracking_progress).
        self.play_timer.stop()
        c = self.controller
        self._edit_at = (c.video.id, c.frame) if c.video is not None else None

    def _edit_still_shown(self) -> bool:
        """Whether the frame the drag began on is still shown; if not, the edit is dropped, said so."""
        c = self.controller
        if c.video is not None and self._edit_at == (c.video.id, c.frame):
            return True
        self.statusBar().showMessage("The frame changed during the drag, so nothing was written; draw the box again.", 6000)
        return False

    def _box_edited(self, track_id: int, box) -> None:
        # The press selected `track_id`, so the "track" guard asks whether a run writes this one:
        # another object's box can be fixed while a run tracks the first, as a nudge can.
        if self._edit_still_shown() and track_id == self.controller.track_id:
            self._guarded(lambda: self.controller.set_box(track_id, box), "track")

    def _box_drawn(self, box, for_selected: bool = False) -> None:
        c = self.controller
        if c.video is None or not self._edit_still_shown():
            return
        if self.runner.running():
            self.statusBar().showMessage("Tracking is running: wait or press Esc to cancel.", 4000)
            return
        try:
            # The canvas emits box_drawn only for drags that start on empty canvas (inside a box or on
            # its handles is an edit, box_edited). Such a drag is a new object (CVAT's N, DarkLabel's
            # draw): writing it into the selected track would jump that track's keyframe onto
            # another object.
            if for_selected and c.track_id is not None:
                # Shift+drag: the selected track's box here, e.g. where its object was lost.
                c.set_box(c.track_id, box)
                self.statusBar().showMessage(f"box drawn for {c.project.track(c.track_id).label}", 3000)
                return
            category = self.track_panel.new_class()
            track = c.add_track(f"{category or 'object'}{len(c.tracks()) + 1}", category=category)
            c.set_box(track.id, box)
        except ProjectError as error:
            self.show_error(str(error))

    def _nudge(self, dx: float, dy: float) -> None:
        c = self.controller
        record = self.canvas.selected_box()
        if record is not None:
            c.set_box(record.track_id, (record.x + dx, record.y + dy, record.w, record.h))

    # -- tracking -----------------------------------------------------------------------------------
    def start_tracking(self, direction: str, around: int | None = None, tracks: list[int] | None = None,
                       label: str | None = None, follow: bool = True) -> None:
        """Propagate the current track (or all, or `tracks`) in a worker; the canvas follows unless `follow` is False."""
        c = self.controller
        if c.project is None or c.video is None or self.runner.running():
            return
        if self.runner.tracker is None or self.wanted_model() != self.runner.model_name:
            self.load_model()  # e.g. a round adopted a model for this video while another run went on
        all_tracks = self.actions_by_id["all_tracks"].isChecked()
        if tracks is None:
            if not all_tracks and c.track_id is None:
                self.show_error("Draw a box first: drag on the frame to create a track.")
                return
            tracks = None if all_tracks else [c.track_id]
        stop = self.prefs.get("stop_below") or None
        label = label or f"track {direction}" + (f" around frame {around + 1}" if around is not None else "")
        self.progress.setVisible(True)
        self.cancel_button.setVisible(True)
        self.progress.setValue(0)
        self.statusBar().showMessage(f"{label}… (Esc cancels)")
        # The view follows a run until the user goes to another frame; then it stays where
        # they are (review elsewhere while it runs) and the run never moves it again. A re-track
        # after a correction (G) does not move it at all: the user is reviewing that correction.
        self._following = None if not follow or (direction == "both" and around is not None) else c.frame
        self._run_folder = c.project.folder
        self._history_at_run_start = c.project.history_head()
        self.runner.start(c.project.folder, c.video.id, tracks, direction, around, stop, label)

    def _tracking_progress(self, result: FrameResult) -> None:
        self.progress.setMaximum(max(result.total, 1))
        self.progress.setValue(result.done)
        targets = len(result.boxes)
        self.fps_label.setText(f"{result.fps:.1f} fps" + (f" x {targets} objects" if targets > 1 else ""))
        if self.canvas.editing():
            return  # never move the frame under a drag; following resumes after the release
        if self._following is None or self.controller.frame != self._following or not self._run_is_shown():
            self._following = None  # the user went elsewhere (another frame, or another video)
            return
        now = time.perf_counter()
        if now - self._last_canvas_update > 0.06:  # follow live at ~15 Hz, on the run's own decoded frame
            self._last_canvas_update = now
            self.controller.seek(result.frame, result.image)
            self._following = self.controller.frame

    def _run_is_shown(self) -> bool:
        """Whether the window shows the video the run in progress (or just ended) writes."""
        c = self.controller
        return (c.project is not None and c.video is not None and c.project.folder == self._run_folder
                and c.video.id == self.runner.video_id)

    def _take_run_into_undo(self) -> None:
        """The run's undo step, in its place among the user's: it was made when the run started,
        and edits of other tracks during the run came after it. Rebuilt from the project's history,
        which also covers a run that failed, or cleared machine boxes and tracked nothing."""
        c = self.controller
        # Nothing recorded since the run started (it found nothing to track): the stack, and the
        # user's Redo in it, stay as they are.
        if c.project is not None and c.project.folder == self._run_folder and c.project.history_head() > self._history_at_run_start:
            c.resync_history()

    def _tracking_done(self, label: str, last: FrameResult | None, how: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self._take_run_into_undo()
        if last is not None and self._following is not None and self._run_is_shown():
            self.controller.seek(last.frame)  # still following: end on the run's last frame
        self._following = None
        self.controller.reload()
        if last is None:
            self.statusBar().showMessage("Nothing to track: add a manual box (drag on the frame).", 6000)
            return
        low = self.timeline.low_count()
        note = f"; {low} frames {self.timeline.flag_reason()}, press N to review them" if low else ""
        self.statusBar().showMessage(f"{label} {how}: {last.done} boxes at {last.fps:.1f} fps{note}", 10000)
        # A round is for the video the run tracked; when another is on screen now, it waits for that video's next run.
        if how == "done" and not label.startswith("re-track with the adapted model") and self._run_is_shown():
            self._adapt_if_due()

    def _tracking_failed(self, message: str) -> None:
        self.progress.setVisible(False)
        self.cancel_button.setVisible(False)
        self._take_run_into_undo()  # what it wrote before it failed stays, as one undo step
        self._following = None
        self.controller.reload()
        self.show_error(f"Tracking stopped: {message}")

    # -- action handlers (names match app/actions.py ids) -------------------------------------------
    def act_new_project(self) -> None:
        folder = QFileDialog.getSaveFileName(self, "New project folder", str(Path.home() / "sstrack-project"))[0]
        if folder:
            self.open_project(folder, create=True)

    def act_open_project(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open project folder")
        if folder:
            self.open_project(folder)

    def act_add_video(self) -> None:
        if self.controller.project is None:
            self.show_error("Open or create a project first (Ctrl+O / Ctrl+N).")
            return
        path, _ = QFileDialog.getOpenFileName(self, "Add video", "", "Videos (*.mp4 *.avi *.mov *.mkv *.webm *.m4v);;All files (*)")
        if path:
            self.add_video(path)

    def act_save(self) -> None:
        self.controller.remember_position()
        self.statusBar().showMessage("Everything is saved: every edit is written to the project as you make it.", 4000)

    def act_import_labels(self) -> None:
        if self.controller.project is None:
            self.show_error("Open or create a project first (Ctrl+O / Ctrl+N).")
            return
        dialog = ImportDialog(self)
        dialog.accepted.connect(lambda: self.import_labels(*dialog.choice()))
        dialog.open()
        self.import_dialog = dialog

    def import_labels(self, fmt: str, path: Path) -> bool:
        """Import labels into the open project; errors are shown and leave the project as it was."""
        QApplication.setOverrideCursor(Qt.CursorShape.WaitCursor)
        try:
            ids = self.controller.import_labels(fmt, path)
        except (ProjectError, SSTrackError) as error:
            self.show_error(str(error))
            return False
        finally:
            QApplication.restoreOverrideCursor()
        self.statusBar().showMessage(f"Imported {len(ids)} track(s) from {path} (Ctrl+Z undoes the import).", 8000)
        return True

    def act_export(self) -> None:
        if self.controller.project is not None:
            ExportDialog(self.controller.project.folder, self).open()

    def act_preferences(self) -> None:
        models = self.controller.project.models() if self.controller.project else []
        dialog = PreferencesDialog(self.prefs, models, self, review_threshold(self.runner.model_name))
        if dialog.exec():
            for spec in ACTIONS:
                self.actions_by_id[spec.id].setShortcuts([QKeySequence(k) for k in self.prefs.shortcuts(spec.id)])
            self.load_model()

    def act_quit(self) -> None:
        self.close()

    def act_undo(self) -> None:
        self.canvas.cancel_edit()  # a drag in progress started from the state the undo takes away
        project = self.controller.project
        blocked = project.undo_blocked_by() if project is not None else None
        if blocked:  # asked before the Qt stack moves, so it stays in step with the history
            self.statusBar().showMessage(blocked, 6000)
            return
        self.controller.undo_stack.undo()

    def act_redo(self) -> None:
        self.canvas.cancel_edit()
        self.controller.undo_stack.redo()

    def act_add_track(self) -> None:
        self.track_panel.add()

    def act_delete_box(self) -> None:
        self.controller.delete_box()

    def act_toggle_keyframe(self) -> None:
        self.controller.toggle_keyframe()

    def act_toggle_out_of_view(self) -> None:
        self.controller.toggle_flag("out_of_view")

    def act_toggle_occluded(self) -> None:
        self.controller.toggle_flag("occluded")

    def act_mark_span_out_of_view(self) -> None:
        self._edit_span("out_of_view")

    def act_mark_span_occluded(self) -> None:
        self._edit_span("occluded")

    def act_mark_span_visible(self) -> None:
        self._edit_span("visible")

    def act_delete_machine_span(self) -> None:
        self._edit_span("delete_machine")

    def act_interpolate_span(self) -> None:
        self._edit_span("interpolate")

    def _edit_span(self, verb: str) -> None:
        """A span edit on the timeline's selection, else from this frame up to the next keyframe."""
        span = self.timeline.selection() or self.controller.span_from_here()
        if span is None:
            self.statusBar().showMessage("select or add a track first", 5000)
            return
        count = self.controller.edit_span(span, verb)
        first, last = span[0] + 1, span[1] + 1
        done = {"delete_machine": f"deleted {count} machine boxes", "interpolate": f"interpolated {count} boxes"}.get(
            verb, f"marked {verb.replace('_', ' ')} ({count} frames changed)")
        self.statusBar().showMessage(f"frames {first}-{last}: {done}", 8000)

    def act_next_object(self) -> None:
        self.controller.cycle_object(+1)

    def act_prev_object(self) -> None:
        self.controller.cycle_object(-1)

    def act_copy_box_forward(self) -> None:
        c = self.controller
        if c.video is None or c.track_id is None:
            return

        frame, track = c.frame, c.track_id  # as asked: a run may move the view while the dialog is open

        def copy(count: int) -> None:
            written = c.copy_box_forward(count, frame, track)
            self.statusBar().showMessage(f"copied the box to {written} frames (Ctrl+Z undoes it)", 6000)

        self._ask_int("copy-box-forward", "Copy box forward", "Copy the selected box to how many following frames?",
                      (1, max(c.video.frames - 1, 1)), self.prefs.get("jump"), copy)

    def act_split_track(self) -> None:
        self._edit_tracks("split")

    def act_merge_track(self) -> None:
        self._edit_tracks("merge")

    def act_swap_tracks(self) -> None:
        self._edit_tracks("swap")

    def _edit_tracks(self, verb: str) -> None:
        """Split / merge / swap the selected track; merge and swap ask which other track."""
        c = self.controller
        if c.project is None or c.track_id is None:
            self.statusBar().showMessage("select or add a track first", 5000)
            return
        other = None
        if verb != "split":
            others = [t for t in c.tracks() if t.id != c.track_id]
            if not others:
                self.statusBar().showMessage("this video has no other track", 5000)
                return
            question = "Merge which track into this one?" if verb == "merge" else f"Swap identities from frame {c.frame + 1} with:"
            name, ok = QInputDialog.getItem(self, "Tracks", question, [t.label for t in others], 0, False)
            if not ok:
                return
            other = next(t.id for t in others if t.label == name)
        try:
            done = c.edit_tracks(verb, other)
        except ProjectError as error:
            self.show_error(str(error))
            return
        self.statusBar().showMessage(f"{done} (Ctrl+Z undoes it)", 8000)

    def act_nudge_left(self) -> None:
        self._nudge(-1, 0)

    def act_nudge_right(self) -> None:
        self._nudge(1, 0)

    def act_nudge_up(self) -> None:
        self._nudge(0, -1)

    def act_nudge_down(self) -> None:
        self._nudge(0, 1)

    def act_nudge_left_10(self) -> None:
        self._nudge(-10, 0)

    def act_nudge_right_10(self) -> None:
        self._nudge(10, 0)

    def act_nudge_up_10(self) -> None:
        self._nudge(0, -10)

    def act_nudge_down_10(self) -> None:
        self._nudge(0, 10)

    def act_play(self) -> None:
        if self.play_timer.isActive():
            self.play_timer.stop()
        elif self.controller.video is not None:
            self.play_timer.start(self._play_interval())

    def act_play_faster(self) -> None:
        self._set_play_speed(+1)

    def act_play_slower(self) -> None:
        self._set_play_speed(-1)

    def _set_play_speed(self, step: int) -> None:
        self.play_speed = PLAY_SPEEDS[min(max(PLAY_SPEEDS.index(self.play_speed) + step, 0), len(PLAY_SPEEDS) - 1)]
        if self.play_timer.isActive():
            self.play_timer.start(self._play_interval())
        self.statusBar().showMessage(f"playback {self.play_speed:g}x", 3000)

    def _play_interval(self) -> int:
        """Milliseconds between frames at the chosen playback speed (as fast as frames come, at most)."""
        fps = max(self.controller.video.fps if self.controller.video is not None else 25.0, 1.0)
        return max(int(1000 / (fps * self.play_speed)), 1)

    def _play_tick(self) -> None:
        c = self.controller
        if c.video is None or c.frame >= c.video.frames - 1:
            self.play_timer.stop()
            return
        c.seek(c.frame + 1)

    def act_next_frame(self) -> None:
        self.controller.seek(self.controller.frame + 1)

    def act_prev_frame(self) -> None:
        self.controller.seek(self.controller.frame - 1)

    def act_jump_forward(self) -> None:
        self.controller.seek(self.controller.frame + self.prefs.get("jump"))

    def act_jump_back(self) -> None:
        self.controller.seek(self.controller.frame - self.prefs.get("jump"))

    def act_first_frame(self) -> None:
        self.controller.seek(0)

    def act_last_frame(self) -> None:
        if self.controller.video is not None:
            self.controller.seek(self.controller.video.frames - 1)

    def act_next_keyframe(self) -> None:
        later = [k for k in self.controller.keyframes() if k > self.controller.frame]
        if later:
            self.controller.seek(later[0])

    def act_prev_keyframe(self) -> None:
        earlier = [k for k in self.controller.keyframes() if k < self.controller.frame]
        if earlier:
            self.controller.seek(earlier[-1])

    def act_next_review(self) -> None:
        frame = self.timeline.next_low(self.controller.frame)
        if frame is None:
            self.statusBar().showMessage(f"No frame after this one to review ({self.timeline.flag_reason()}).", 4000)
        else:
            self.controller.seek(frame)

    def act_prev_review(self) -> None:
        frame = self.timeline.previous_low(self.controller.frame)
        if frame is None:
            self.statusBar().showMessage(f"No frame before this one to review ({self.timeline.flag_reason()}).", 4000)
        else:
            self.controller.seek(frame)

    def act_worst_review(self) -> None:
        spans = self.timeline.worst_spans()
        if not spans:
            self.statusBar().showMessage("No frame of this track is flagged for review.", 4000)
            return
        frame = self.controller.frame
        current = next((i for i, (first, last) in enumerate(spans) if first <= frame <= last), -1)
        rank = (current + 1) % len(spans)
        first, last = spans[rank]
        self.controller.seek(first)
        self.statusBar().showMessage(
            f"Flagged span {rank + 1} of {len(spans)}, longest first: frames {first + 1}-{last + 1} ({last - first + 1} frames).", 6000)

    def act_go_to_frame(self) -> None:
        video = self.controller.video
        if video is None:
            return
        # Shown 1-based, as everywhere.
        self._ask_int("go-to-frame", "Go to frame", f"Frame (1 to {video.frames}):", (1, video.frames),
                      self.controller.frame + 1, lambda value: self.controller.seek(value - 1))

    def _ask_int(self, name: str, title: str, text: str, bounds: tuple[int, int], value: int, chosen) -> None:
        """A non-blocking whole-number prompt (object name `name`, for tests); `chosen(value)` on OK."""
        dialog = QInputDialog(self)
        dialog.setObjectName(name)
        dialog.setWindowTitle(title)
        dialog.setLabelText(text)
        dialog.setInputMode(QInputDialog.InputMode.IntInput)
        dialog.setIntRange(*bounds)
        dialog.setIntValue(value)
        dialog.intValueSelected.connect(chosen)
        dialog.open()

    def act_track_forward(self) -> None:
        self.start_tracking("forward", around=self.controller.frame)

    def act_track_backward(self) -> None:
        self.start_tracking("backward", around=self.controller.frame)

    def act_fill_between(self) -> None:
        self.start_tracking("both")

    def act_retrack_here(self) -> None:
        self.start_tracking("both", around=self.controller.frame)

    def act_all_tracks(self) -> None:
        self.all_tracks_box.setChecked(self.actions_by_id["all_tracks"].isChecked())

    def act_interpolate(self) -> None:
        c = self.controller
        if c.project is None or c.video is None:
            return
        tracks = None if self.actions_by_id["all_tracks"].isChecked() else ([c.track_id] if c.track_id else [])
        count = c.interpolate(tracks)
        self.statusBar().showMessage(f"Interpolated {count} boxes between keyframes.", 5000)

    def act_cancel(self) -> None:
        if self.canvas.editing():  # Esc mid-drag drops the drag, as in every drawing tool
            self.canvas.cancel_edit()
            return
        if self.runner.running():
            self.runner.cancel()
            self.statusBar().showMessage("Cancelling: the frames already tracked are kept.", 4000)

    def act_finetune(self) -> None:
        if self.controller.project is None:
            return
        folder = self.controller.project.folder
        run = self.finetune_run
        if run is not None and run.folder.resolve() != folder.resolve():
            if run.running():
                self.show_error(f"A fine-tuning run of {run.folder.name} is still going on; stop it before starting one here.")
                return
            run = None
        if run is None:  # a run stopped in an earlier session can be resumed
            self._keep_finetune_run(FinetuneRun.find_stopped(folder, self))
        if self.finetune_dialog is not None:
            self.finetune_dialog.deleteLater()  # one view at a time; the run lives on in the window
        dialog = FinetuneDialog(folder, self.runner.model_name or self.prefs.get("model"), self.finetune_run, self)
        dialog.model_ready.connect(self.use_finetuned_model)
        dialog.run_started.connect(self._keep_finetune_run)
        dialog.open()
        self.finetune_dialog = dialog

    def _keep_finetune_run(self, run: FinetuneRun | None) -> None:
        self.finetune_run = run
        if run is not None:
            run.changed.connect(self._show_finetune_run)
        self._show_finetune_run()

    def _show_finetune_run(self) -> None:
        run = self.finetune_run
        self.finetune_button.setVisible(run is not None)
        if run is not None:
            self.finetune_button.setText(run.summary()[:90])
            self.finetune_button.setToolTip("Open the fine-tune dialog")

    def _stop_training_before_quit(self) -> bool:
        """Ask before quitting while a fine-tuning run goes on; Yes stops it with a checkpoint."""
        run = self.finetune_run
        if run is None or not run.running():
            return True
        answer = QMessageBox.question(
            self, "sstrack-annotate",
            f"Fine-tuning is at step {run.step()} of {run.steps}. Stop it and quit? A checkpoint is saved, "
            "and Fine-tune… > Resume continues it next time.",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, QMessageBox.StandardButton.No,
        )
        if answer != QMessageBox.StandardButton.Yes:
            return False
        run.stop()
        run.wait(120_000)  # the trainer writes its checkpoint, then exits
        return True

    # -- adaptation to the video (#15) ----------------------------------------------------------------
    def act_adapt_video(self) -> None:
        self.start_adaptation()

    def act_adapt_auto(self) -> None:
        self.prefs.set("adapt_auto", int(self.actions_by_id["adapt_auto"].isChecked()))

    def act_adapt_reset(self) -> None:
        c = self.controller
        if c.project is None or c.video is None:
            return
        c.project.set_path_setting(f"adapted_model/{c.video.id}", "")
        self.load_model()
        self.statusBar().showMessage(f"This video tracks with {model_display_name(self.runner.model_name)} again; "
                                     "the adapted model stays registered in the project.", 8000)

    def _keyframe_count(self) -> int:
        c = self.controller
        return sum(len(c.project.keyframes(t.id)) for t in c.tracks()) if c.project is not None and c.video is not None else 0

    def _adapt_if_due(self) -> None:
        """Adapt while labelling: after the first track run, then every ROUND_EVERY new keyframes."""
        c = self.controller
        if not self.actions_by_id["adapt_auto"].isChecked() or c.video is None or (self.adapt_run and self.adapt_run.running()):
            return
        unlabelled = self._unlabelled_model()
        if unlabelled and self._keyframe_count() > self._rechecked_at.get(c.video.id, 0):
            self.start_recheck(unlabelled)  # a round that is due starts when it is done
            return
        last = self._adapted_at.get(c.video.id)
        if last is None or self._keyframe_count() >= last + ROUND_EVERY:
            self.start_adaptation()

    def _unlabelled_model(self) -> str | None:
        """This video's adapted model when its round adopted it with no held-out keyframe (its result.json says so)."""
        c = self.controller
        adapted = c.project.get_path_setting(f"adapted_model/{c.video.id}") if c.project is not None and c.video is not None else ""
        if not adapted or not Path(adapted).is_file():
            return None
        try:  # in the project folder, so possibly another's: read only as a small plain file
            unlabelled = read_json_file(Path(adapted).parent / "result.json", 1 << 20).get("unlabelled")
        except (OSError, ValueError, AttributeError):
            return None
        return adapted if unlabelled is True else None

    def start_recheck(self, model: str) -> None:
        """Re-judge `model`, adopted without labels, on the keyframes drawn since (a child process, seconds)."""
        c = self.controller
        self._rechecked_at[c.video.id] = self._keyframe_count()
        out = c.project.folder / "models" / f"recheck-{c.video.id}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = AdaptRun(c.project.folder, c.video.id, model, out, parent=self, recheck=True)
        self._launch(run, self._recheck_done, "checking the adapted model on your new keyframes…")

    def _recheck_done(self, run: AdaptRun, result: dict | None) -> None:
        c = self.controller
        shutil.rmtree(run.out_dir, ignore_errors=True)  # the app made it for one verdict, now in the status bar
        if self._closing:
            return
        if result is None:
            self.adapt_label.setText(f"checking the adapted model stopped: {run.error}")
            return
        self.adapt_label.setText(str(result.get("reason", "")))
        if c.project is None or c.project.folder != run.folder:
            return
        if result.get("accepted"):
            if c.video is not None and c.video.id == run.video_id:
                self._adapt_if_due()
            return
        if self.video_model(run.video_id) != run.base_model:
            # The user (or another window) chose another model while it was judged: theirs stands.
            self.adapt_label.setText(f"{self.adapt_label.text()}; not applied: the video's model changed meanwhile")
            return
        fallback = str(result.get("model") or "")
        c.project.set_path_setting(f"adapted_model/{run.video_id}", fallback if Path(fallback).is_file() else "")
        # The model it replaced re-tracks the machine boxes: manual boxes never change, one undo step.
        self._retrack_in_background(run.folder, run.video_id, "re-track with the model before adaptation")

    def start_adaptation(self) -> None:
        """One round for this video in a child process; the status bar shows it."""
        c = self.controller
        if c.project is None or c.video is None:
            return
        if self.adapt_run is not None and self.adapt_run.running():
            self.statusBar().showMessage("Already adapting; the result comes in the status bar.", 4000)
            return
        if self._keyframe_count() == 0:
            self.show_error("Draw a box first: adaptation learns from your keyframes.")
            return
        self._adapted_at[c.video.id] = self._keyframe_count()
        out = c.project.folder / "models" / f"adapt-{c.video.id}-{time.strftime('%Y%m%d-%H%M%S')}"
        run = AdaptRun(c.project.folder, c.video.id, self.wanted_model(), out, parent=self)
        run.ticked.connect(lambda: self.adapt_label.setText(f"adapting… {run.elapsed_s():.0f} s"))
        self._launch(run, self._adaptation_done, "adapting… 0 s")

    def _launch(self, run: AdaptRun, on_done: Callable[[AdaptRun, dict | None], None], label: str) -> None:
        """Start a round or a recheck as the one adaptation child; the status bar shows `label`."""
        run.finished.connect(lambda result: on_done(run, result))
        self.adapt_run = run
        self.adapt_label.setText(label)
        self.adapt_label.setVisible(True)
        run.start()

    def _adaptation_done(self, run: AdaptRun, result: dict | None) -> None:
        c = self.controller
        if self._closing:
            return  # closing stops a round, and one that ended just now is not adopted either
        if result is None:
            self.adapt_label.setText(f"adaptation stopped: {run.error}")
            return
        if not result.get("accepted") or not result.get("model"):
            self.adapt_label.setText(f"kept {model_display_name(run.base_model)}: {result.get('reason', '')}")
            return
        if c.project is None or c.project.folder != run.folder:
            return  # another project is open now; the round's folder stays on disk
        model = str(result["model"])
        unused = self._why_not_adopt(run, result)
        if unused:
            self.adapt_label.setText(f"not used: {unused}")
            return
        c.project.add_model(model, read_card(model), name=Path(model).parent.name, parent=run.base_model)
        c.project.set_path_setting(f"adapted_model/{run.video_id}", model)
        self._rechecked_at[run.video_id] = self._adapted_at.get(run.video_id, 0)  # keyframes since the round began are new to it
        self.adapt_label.setText(str(result.get("reason", "")))
        if c.video is None or c.video.id != run.video_id or self.runner.running():
            self.adapt_label.setText(f"{self.adapt_label.text()}; used from the next track run on that video")
            return
        # The machine boxes are re-tracked with the adapted model; manual boxes never change, and
        # the whole re-track is one undo step.
        self._retrack_in_background(run.folder, run.video_id, "re-track with the adapted model")

    def _why_not_adopt(self, run: AdaptRun, result: dict) -> str:
        """Why a round's model, judged better than its base, must still not replace the video's model ("": adopt it)."""
        now = self.video_model(run.video_id)
        if now != run.base_model:
            # Reverted meanwhile, or another window adopted its own round: this one was never compared with that model.
            return f"the video's model changed to {model_display_name(now)} while it learnt from {model_display_name(run.base_model)}"
        try:
            read = trained_boxes(result.get("read", result.get("trained", [])))
            frame = first_taken_back(self.controller.project, run.video_id, read)
        except (TypeError, ValueError):
            return "its result does not say which keyframes it learnt from"
        if frame is not None:
            return f"your keyframes from frame {frame + 1}, which it learnt from or was judged on, changed while it trained"
        return ""

    def _retrack_in_background(self, folder: Path, video_id: int, label: str) -> None:
        """Re-track the shown video's machine boxes with its model now, as one undo step, without moving the view.

        It waits for a drag to end (the box being dragged is the user's), and does not run while the
        user has an undone edit: a new step would drop their Redo.
        """
        c = self.controller
        if self._closing or c.project is None or c.project.folder != folder or c.video is None or c.video.id != video_id:
            return
        if self.runner.running():
            return
        if self.canvas.editing():
            QTimer.singleShot(200, lambda: self._retrack_in_background(folder, video_id, label))
            return
        model = self.video_model(video_id)
        self.load_model()
        if self.runner.model_name != model:
            return  # it would not load (load_model said why and which model the video uses now)
        if any(undone for _, _, undone in c.project.history()):
            self.adapt_label.setText(f"{self.adapt_label.text()}; machine boxes not re-tracked, to keep your Redo (T re-tracks)")
            return
        self.start_tracking("both", tracks=[t.id for t in c.tracks()], label=label, follow=False)

    def use_finetuned_model(self, path: str, video_ids: list[int]) -> None:
        """The one-click model becomes the model of the videos where it was judged not worse."""
        c = self.controller
        if c.project is None:
            return
        for video_id in video_ids:
            c.project.set_path_setting(f"adapted_model/{video_id}", path)
        self.load_model()
        others = len(c.project.videos()) - len(video_ids)
        self.statusBar().showMessage(
            f"{len(video_ids)} video(s) now track with {model_display_name(path)}"
            + (f"; {others} other(s) keep their model" if others else "") + ". Track > Use the model before adaptation undoes it per video.",
            10000)

    def act_fit(self) -> None:
        self.canvas.fit()

    def act_zoom_in(self) -> None:
        self.canvas.zoom(1.25)

    def act_zoom_out(self) -> None:
        self.canvas.zoom(0.8)

    def act_shortcuts(self) -> None:
        ShortcutsDialog(self.prefs, self).open()

    # -- lifecycle ----------------------------------------------------------------------------------
    def closeEvent(self, event) -> None:
        """Stop a running job (what it wrote stays), remember the position, close the project."""
        if not self._stop_training_before_quit():
            event.ignore()
            return
        if self.controller.project is None:
            super().closeEvent(event)
            return
        self._closing = True
        if self.adapt_run is not None and self.adapt_run.running():
            self.adapt_run.stop()  # the round keeps its checkpoint and adopts nothing
            self.adapt_run.wait(60_000)
        if self.runner.running():
            self.runner.cancel()
            self.runner.wait()
        self.controller.remember_position()
        self.controller.undo_stack.indexChanged.disconnect()
        self.controller.close_project()
        super().closeEvent(event)
