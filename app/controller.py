"""The one controller in front of the Project: edits, undo stack, current video/frame/track.

Views never run SQL; they call the controller and listen to its signals, which say precisely
what changed (napari-style). Every edit is in the database the moment it is made (autosave);
QUndoStack commands call the project's persisted history, so undo survives a restart.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from projects import BoxRecord, Project, ProjectError, Track, Video, interpolate
from projects.formats import import_
from projects.media import Media
from projects.spans import delete_machine_boxes, mark_span, span_to_next_keyframe
from projects.track_edits import merge_tracks, split_track, swap_tracks


class ProjectCommand(QUndoCommand):
    """One entry of the project's persisted history, by id; undo/redo replay exactly that entry.

    The project's history is the one owner of edits; this stack mirrors it for Qt's menus and
    shortcuts. When the project's next step is not this entry (another process edited since),
    nothing is changed, the user is told, and the stack is rebuilt from the project's history.
    """

    def __init__(self, controller: ProjectController, label: str, entry_id: int) -> None:
        super().__init__(label)
        self._controller = controller
        self.entry_id = entry_id
        self._done = True  # the edit was applied when it was made

    def redo(self) -> None:
        """Re-apply (skipped on push: the edit is already in the database)."""
        if self._done:
            self._done = False
            return
        self._controller.replay(lambda: self._controller.project.redo(expected=self.entry_id))

    def undo(self) -> None:
        """Revert through the project's persisted history."""
        self._controller.replay(lambda: self._controller.project.undo(expected=self.entry_id))


class ProjectController(QObject):
    """Holds the open project and the current selection; emits what changed."""

    project_changed = Signal()
    video_changed = Signal(int)
    frame_changed = Signal(int)
    track_selected = Signal(int)
    tracks_changed = Signal(int)  # video id
    boxes_changed = Signal(int, int, int, int)  # video id, track id (-1 all), first, last frame
    message = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.project: Project | None = None
        self.media: Media | None = None
        self.video: Video | None = None
        self.frame = 0
        self._given: tuple[int, np.ndarray] | None = None  # a frame handed over already decoded
        self.track_id: int | None = None
        self.undo_stack = QUndoStack(self)
        # Whether a tracking run in progress writes (video, track); None track: any of the video's.
        # Set by the window that owns the runner: deleting what a run writes would kill the run.
        self.run_writes: Callable[[int | None, int | None], bool] = lambda _video, _track: False

    # -- project / video ----------------------------------------------------------------------------
    def open_project(self, folder: str | Path, create: bool = False) -> None:
        """Open (or create) a project; restores the last video and frame."""
        project = Project.create(folder) if create else Project.open(folder)
        self.close_project()
        self.project = project
        self.resync_history()
        self.project_changed.emit()
        videos = project.videos()
        last = project.get_setting("last_video")
        chosen = next((v for v in videos if str(v.id) == last), videos[0] if videos else None)
        if chosen is not None:
            try:
                frame = int(project.get_setting("last_frame", "0") or 0)
            except ValueError:  # a view setting, not a label: one the file garbled reopens on frame 1
                frame = 0
            self.select_video(chosen.id, frame)

    def close_project(self) -> None:
        """Close media and database."""
        if self.media is not None:
            self.media.close()
        if self.project is not None:
            self.project.close()
        self.project, self.media, self.video, self.track_id = None, None, None, None

    def add_video(self, path: str | Path) -> Video:
        """Register a video and show it."""
        assert self.project is not None
        video = self.project.add_video(path)
        self.project_changed.emit()
        self.select_video(video.id)
        return video

    def relink_video(self, video_id: int, path: str | Path, force: bool = False) -> Video:
        """Point a moved video at its file again (checked to be the same video) and show it."""
        assert self.project is not None
        video = self.project.relink_video(video_id, path, force=force)
        self.project_changed.emit()
        self.select_video(video_id, self.frame if self.video and self.video.id == video_id else 0)
        return video

    def remove_video(self, video_id: int) -> None:
        """Remove a video and its tracks from the project (one undo step; the file stays)."""
        assert self.project is not None
        if self.run_writes(video_id, None):
            self.message.emit("Tracking is running on this video: wait or press Esc to cancel.")
            return
        self._edit(lambda: self.project.remove_video(video_id), "remove video")
        self._forget_missing_video()

    def _forget_missing_video(self) -> None:
        """After a removal (or an undo that removed one): show another video, or none."""
        assert self.project is not None
        self.project_changed.emit()
        videos = self.project.videos()
        if self.video is not None and all(v.id != self.video.id for v in videos):
            if self.media is not None:
                self.media.close()
            self.video, self.media, self.track_id = None, None, None
            if videos:
                self.select_video(videos[0].id)
            else:
                self.message.emit("no video in the project: add one (File > Add video)")

    def select_video(self, video_id: int, frame: int = 0) -> None:
        """Show a video (a missing or damaged file keeps the project usable and says why)."""
        assert self.project is not None
        video = self.project.video(video_id)
        if self.media is not None:
            self.media.close()
        self.video, self.media = video, None
        try:
            self.media = self.project.open_media(video.id)
        except Exception as error:  # MediaError: shown, window stays usable
            self.message.emit(str(error))
        self._remember("last_video", str(video_id))
        tracks = self.project.tracks(video_id)
        last = self.project.get_setting("last_track")
        chosen = next((t for t in tracks if str(t.id) == last), tracks[0] if tracks else None)
        self.track_id = chosen.id if chosen else None
        self.video_changed.emit(video_id)
        self.seek(min(frame, video.frames - 1))
        if self.track_id is not None:
            self.track_selected.emit(self.track_id)

    def image(self) -> np.ndarray | None:
        """The current frame, or None when the video cannot be decoded."""
        if self._given is not None and self._given[0] == self.frame:
            return self._given[1]
        if self.media is None:
            return None
        return self.media.frame(self.frame)

    def seek(self, frame: int, image: np.ndarray | None = None) -> None:
        """Go to a frame (clamped to the video); `image`: that frame, already decoded (a run's)."""
        if self.video is None:
            return
        self.frame = max(0, min(frame, self.video.frames - 1))
        self._given = (self.frame, image) if image is not None and self.frame == frame else None
        self.frame_changed.emit(self.frame)

    def remember_position(self) -> None:
        """Store the current frame so reopening restores it."""
        if self.project is not None and self.video is not None:
            self._remember("last_frame", str(self.frame))

    def _remember(self, key: str, value: str) -> None:
        # Where the user was is a convenience: a read-only project is viewed without it.
        if self.project is not None and not self.project.read_only:
            self.project.set_setting(key, value)

    # -- tracks -------------------------------------------------------------------------------------
    def tracks(self) -> list[Track]:
        """Tracks of the current video."""
        if self.project is None or self.video is None:
            return []
        return self.project.tracks(self.video.id)

    def select_track(self, track_id: int | None) -> None:
        """Make a track current."""
        self.track_id = track_id
        if track_id is not None:
            self._remember("last_track", str(track_id))
            self.track_selected.emit(track_id)

    def add_track(self, label: str, category: str = "") -> Track:
        """A new track in the current video (`category`: its class, when not its name)."""
        assert self.project is not None and self.video is not None
        track = self._edit(lambda: self.project.add_track(self.video.id, label, category=category), f"add track {label}")
        self.tracks_changed.emit(self.video.id)
        self.select_track(track.id)
        return track

    def update_track(self, track_id: int, **fields) -> None:
        """Rename / recolour / hide / classify a track."""
        assert self.project is not None and self.video is not None
        self._edit(lambda: self.project.update_track(track_id, **fields), "edit track")
        self.tracks_changed.emit(self.video.id)
        self.boxes_changed.emit(self.video.id, track_id, 0, self.video.frames - 1)

    def delete_track(self, track_id: int) -> None:
        """Delete a track and its boxes (undoable)."""
        assert self.project is not None and self.video is not None
        if self.run_writes(self.video.id, track_id):
            self.message.emit("Tracking is running on this track: wait or press Esc to cancel.")
            return
        self._edit(lambda: self.project.delete_track(track_id), "delete track")
        if self.track_id == track_id:
            remaining = self.tracks()
            self.track_id = None
            if remaining:  # selected as by a click, so the views drop the deleted track's span selection
                self.select_track(remaining[0].id)
        self.tracks_changed.emit(self.video.id)
        self.boxes_changed.emit(self.video.id, -1, 0, self.video.frames - 1)

    # -- boxes --------------------------------------------------------------------------------------
    def boxes_here(self) -> list[BoxRecord]:
        """Every track's box on the current frame."""
        if self.project is None or self.video is None:
            return []
        return self.project.boxes_on_frame(self.video.id, self.frame)

    def set_box(self, track_id: int, box: tuple[float, float, float, float]) -> None:
        """A manual box on the current frame (a keyframe)."""
        assert self.project is not None and self.video is not None
        frame = self.frame
        self._edit(lambda: self.project.set_box(track_id, frame, box), f"manual box on frame {frame + 1}")
        self.boxes_changed.emit(self.video.id, track_id, frame, frame)

    def toggle_flag(self, flag: str) -> None:
        """Toggle occluded / out_of_view on the current frame of the current track."""
        assert self.project is not None and self.video is not None
        if self.track_id is None:
            self.message.emit("select or add a track first")
            return
        current = self.project.box_at(self.track_id, self.frame)
        value = not bool(getattr(current, flag)) if current else True
        frame = self.frame
        self._edit(lambda: self.project.set_flags(self.track_id, frame, **{flag: value}), f"{flag} on frame {frame + 1}")
        self.boxes_changed.emit(self.video.id, self.track_id, frame, frame)

    def toggle_keyframe(self) -> None:
        """K: make the current box manual (a keyframe), or turn a keyframe back into a machine box."""
        assert self.project is not None and self.video is not None
        if self.track_id is None:
            return
        current = self.project.box_at(self.track_id, self.frame)
        if current is None or not current.has_box:
            self.message.emit("no box on this frame to make a keyframe")
            return
        source = "tracked" if current.source == "manual" else "manual"
        frame, track = self.frame, self.track_id
        self._edit(
            lambda: self.project.set_box(track, frame, current.box, source=source, score=current.score),
            f"{'keyframe' if source == 'manual' else 'un-keyframe'} frame {frame + 1}",
        )
        self.boxes_changed.emit(self.video.id, track, frame, frame)

    def delete_box(self) -> None:
        """Delete the current track's box on the current frame."""
        assert self.project is not None and self.video is not None
        if self.track_id is None:
            return
        frame, track = self.frame, self.track_id
        self._edit(lambda: self.project.delete_box(track, frame), f"delete box on frame {frame + 1}")
        self.boxes_changed.emit(self.video.id, track, frame, frame)

    def edit_span(self, span: tuple[int, int], verb: str) -> int:
        """Mark the current track's span out_of_view / occluded / visible, delete its machine boxes
        ("delete_machine") or interpolate it between keyframes; one undo step. Returns the frames changed."""
        assert self.project is not None and self.video is not None
        if self.track_id is None:
            self.message.emit("select or add a track first")
            return 0
        track, (first, last) = self.track_id, span
        if verb == "delete_machine":
            count = self._edit(lambda: delete_machine_boxes(self.project, track, first, last), "delete machine boxes")
        elif verb == "interpolate":
            count = self._edit(lambda: interpolate(self.project, self.video.id, [track], (first, last)), "interpolate span")
        else:
            flags = {"occluded": verb == "occluded", "out_of_view": verb == "out_of_view"}
            count = self._edit(lambda: mark_span(self.project, track, first, last, **flags), f"mark span {verb}")
        self.boxes_changed.emit(self.video.id, track, first, last)
        return count

    def cycle_object(self, step: int) -> int | None:
        """Select the next (+1) or previous (-1) visible object with a box on this frame (Tab)."""
        hidden = {t.id for t in self.tracks() if t.hidden}
        here = sorted(r.track_id for r in self.boxes_here() if r.has_box and r.track_id not in hidden)
        if not here:
            return None
        if self.track_id in here:
            chosen = here[(here.index(self.track_id) + step) % len(here)]
        else:
            chosen = here[0] if step > 0 else here[-1]
        self.select_track(chosen)
        return chosen

    def copy_box_forward(self, count: int, frame: int | None = None, track_id: int | None = None) -> int:
        """A track's box (default: the current track's, on the current frame) on the next `count`
        frames, where no human decided otherwise (one undo step, machine boxes); returns how many
        were written."""
        assert self.project is not None and self.video is not None
        frame = self.frame if frame is None else frame
        track = self.track_id if track_id is None else track_id
        current = self.project.box_at(track, frame) if track is not None else None
        if current is None or not current.has_box:
            return 0
        first, last = frame + 1, min(frame + count, self.video.frames - 1)

        def write() -> int:
            with self.project.edit(f"copy box to frames {first + 1}-{last + 1}"):
                manual = {r.frame for r in self.project.boxes(track, first, last) if r.source == "manual"}
                records = [BoxRecord(track, f, *current.box, source="interpolated") for f in range(first, last + 1) if f not in manual]
                self.project.put_boxes(records)
            return len(records)

        written = self._edit(write, "copy box forward")
        self.boxes_changed.emit(self.video.id, track, first, last)
        return written

    def edit_tracks(self, verb: str, other_id: int | None = None) -> str:
        """Split the current track at this frame, or merge / swap it with `other_id`; one undo step.
        Returns what was done, for the status bar."""
        assert self.project is not None and self.video is not None and self.track_id is not None
        track, frame = self.track_id, self.frame
        if verb == "split":
            new = self._edit(lambda: split_track(self.project, track, frame), "split track")
            done = f"frames {frame + 1}+ are now {new.label}"
        elif verb == "merge":
            assert other_id is not None
            moved = self._edit(lambda: merge_tracks(self.project, track, other_id), "merge tracks")
            done = f"merged: {moved} boxes moved"
        else:
            assert other_id is not None
            moved = self._edit(lambda: swap_tracks(self.project, track, other_id, frame), "swap tracks")
            done = f"swapped from frame {frame + 1}: {moved} boxes"
        self.reload()
        return done

    def span_from_here(self) -> tuple[int, int] | None:
        """This frame up to the frame before the current track's next keyframe (or the video's end)."""
        if self.project is None or self.track_id is None:
            return None
        return span_to_next_keyframe(self.project, self.track_id, self.frame)

    def keyframes(self) -> list[int]:
        """Manual frames of the current track."""
        if self.project is None or self.track_id is None:
            return []
        return self.project.keyframes(self.track_id)

    # -- undo ---------------------------------------------------------------------------------------
    def push_command(self, label: str, entry_id: int) -> None:
        """Record an edit made elsewhere (a propagation run's entry) as one undo step."""
        self.undo_stack.push(ProjectCommand(self, label, entry_id))

    def resync_history(self) -> None:
        """Rebuild the undo stack from the project's history (its live entries, oldest first)."""
        self.undo_stack.clear()
        if self.project is not None:
            for entry_id, label, undone in self.project.history():
                if not undone:
                    self.undo_stack.push(ProjectCommand(self, label, entry_id))

    def replay(self, step: Callable[[], object]) -> None:
        """Run an undo/redo of the project's history; on refusal say why and resync (after Qt's turn)."""
        try:
            step()
        except ProjectError as error:
            self.message.emit(str(error))
            # The stack is mid-undo here; rebuilding it is only allowed once Qt has finished.
            QTimer.singleShot(0, self.resync_history)
        self.reload()

    def interpolate(self, track_ids: list[int] | None) -> int:
        """Linear interpolation between keyframes (one undo step when it wrote anything)."""
        assert self.project is not None and self.video is not None
        count = self._edit(lambda: interpolate(self.project, self.video.id, track_ids), "interpolate")
        self.reload()
        return count

    def import_labels(self, fmt: str, path: Path) -> list[int]:
        """Import a label file or folder (one undo step); shows the first imported track."""
        assert self.project is not None
        ids = self._edit(lambda: import_(self.project, fmt, path), f"import {Path(path).name}")
        self.reload()
        if ids:
            track = self.project.track(ids[0])
            if self.video is None or self.video.id != track.video_id:
                self.select_video(track.video_id)
            self.select_track(track.id)
        return ids

    def reload(self) -> None:
        """Everything may have changed (after undo/redo)."""
        if self.project is not None:  # an undone / redone "remove video" changes the list
            self._forget_missing_video()
            if self.video is None and self.project.videos():
                self.select_video(self.project.videos()[0].id)
        if self.video is not None and self.track_id is not None and self.track_id not in {t.id for t in self.tracks()}:
            # The selected track was undone away (its "add track" undone): keys must not act on it.
            remaining = self.tracks()
            self.track_id = None
            if remaining:
                self.select_track(remaining[0].id)
        if self.video is not None:
            self.tracks_changed.emit(self.video.id)
            self.boxes_changed.emit(self.video.id, -1, 0, self.video.frames - 1)

    def _edit(self, action: Callable, label: str):
        assert self.project is not None
        before = self.project.last_entry
        result = action()
        entry = self.project.last_entry
        if entry is not None and entry != before:  # only edits that wrote something are undo steps
            self.undo_stack.push(ProjectCommand(self, label, entry))
        return result
