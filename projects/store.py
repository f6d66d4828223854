"""The annotation project: one folder with `project.sqlite`, `models/` and `exports/`.

Every edit is written in its own transaction the moment it is made, together with the history
rows that undo it, so a crash loses nothing acknowledged. WAL mode lets a second process (a
training child, a CLI export) read while the app writes; a busy timeout waits out short write
locks instead of surfacing "database is locked". One `Project` object per thread: sqlite3
connections are bound to the thread that opened them.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from projects import schema
from projects.errors import MediaError, ProjectError, SchemaError, StorageError

if TYPE_CHECKING:
    from projects.media import Media

DB_NAME = "project.sqlite"
SOURCES = ("manual", "tracked", "interpolated")
_VIDEO_COLUMNS = ("id", "path", "name", "content_hash", "size_bytes", "frames", "fps", "width", "height", "added", "media_index")
# The first track of a class, for its colour; the expression is the one schema.py indexes (tracks_class).
CLASS_COLOUR_QUERY = "SELECT color FROM tracks WHERE (CASE WHEN category != '' THEN category ELSE label END) = ? ORDER BY id LIMIT 1"
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#46f0f0", "#f032e6", "#bcf60c", "#fabebe", "#008080")


@dataclass(frozen=True)
class Video:
    """A video file or image folder registered in the project."""

    id: int
    path: str
    name: str
    content_hash: str
    size_bytes: int
    frames: int
    fps: float
    width: int
    height: int
    access: str = "unverified"  # "seek" / "linear" once its random access was verified, see sstrack.video

    @property
    def missing(self) -> bool:
        """True when the file is no longer where the project expects it."""
        return not Path(self.path).exists()


@dataclass(frozen=True)
class Track:
    """One annotated object in one video."""

    id: int
    video_id: int
    label: str
    color: str
    hidden: bool
    description: str
    category: str = ""  # the object's class; "" = its label is the class
    attributes: str = ""  # the object's attributes, a JSON object of strings ("" = none); see attribute_map

    @property
    def class_name(self) -> str:
        """The class exports write (category, class, LaSOT class): the category, else the label."""
        return self.category or self.label

    @property
    def attribute_map(self) -> dict[str, str]:
        """The object's attributes, name -> value, in the order they were set."""
        return json.loads(self.attributes) if self.attributes else {}


@dataclass(frozen=True)
class BoxRecord:
    """A track's state on one frame: a box, or no box with the object occluded or out of view.

    `source` says who decided it (manual: a human keyframe; tracked / interpolated: the machine).
    """

    track_id: int
    frame: int
    x: float | None
    y: float | None
    w: float | None
    h: float | None
    source: str = "manual"
    score: float | None = None
    occluded: bool = False
    out_of_view: bool = False
    run_id: int | None = None
    look: float | None = None  # a machine box's grey look against its keyframe's (sstrack.review.look_similarity)

    @classmethod
    def absent(
        cls, track_id: int, frame: int, out_of_view: bool = True, occluded: bool = False, source: str = "manual", **extra: Any
    ) -> BoxRecord:
        """A frame where the object has no box: out of view (default) or fully occluded."""
        return cls(track_id, frame, None, None, None, None, source, occluded=occluded, out_of_view=out_of_view, **extra)

    @property
    def has_box(self) -> bool:
        """A drawn box (False: only a visibility state)."""
        return self.w is not None

    @property
    def box(self) -> tuple[float, float, float, float]:
        """(x, y, w, h); only for a row that has a box (check `has_box`)."""
        if self.x is None or self.y is None or self.w is None or self.h is None:
            raise ValueError(f"track {self.track_id} has no box on frame {self.frame + 1}, only a visibility state")
        return (self.x, self.y, self.w, self.h)

    @property
    def visible(self) -> bool:
        """Neither fully occluded nor out of view."""
        return not (self.occluded or self.out_of_view)


def now() -> str:
    """UTC timestamp for rows."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def content_hash(path: Path) -> str:
    """A quick identity of a media file (size + first/middle/last 1 MiB) to re-link moved files.

    Hashing a multi-GB video completely would take minutes; these samples tell files apart in
    practice and take milliseconds. Image folders hash their sorted file names and sizes.
    """
    path = Path(path)
    digest = hashlib.sha256()
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file():
                digest.update(f"{child.relative_to(path)}:{child.stat().st_size};".encode())
        return digest.hexdigest()
    size = path.stat().st_size
    digest.update(str(size).encode())
    chunk = 1 << 20
    with open(path, "rb") as handle:
        for offset in sorted({0, max(0, size // 2 - chunk // 2), max(0, size - chunk)}):
            handle.seek(offset)
            digest.update(handle.read(chunk))
    return digest.hexdigest()


class Project:
    """A project folder and its database; create with `Project.create`, open with `Project.open`."""

    def __init__(self, folder: Path, conn: sqlite3.Connection, read_only: bool = False) -> None:
        self.folder = Path(folder)
        self.conn = conn
        # On a read-only disk (an archive, a colleague's share) the project can still be viewed
        # and exported; any edit is the one-line "cannot write here" error.
        self.read_only = read_only
        self._entry: int | None = None  # history entry of the transaction being written
        self._pending_label: str | None = None  # label of an entry not created until it records a change
        # The newest history entry this connection created: what an editor's undo stack holds by
        # id (history_head() may be another process's entry).
        self.last_entry: int | None = None
        self._seq = 0

    # -- lifecycle ------------------------------------------------------------------------------
    @classmethod
    def create(cls, folder: str | Path) -> Project:
        """Make a new project folder (it must not already hold a project)."""
        folder = Path(folder)
        if (folder / DB_NAME).exists():
            raise ProjectError(f"{folder}: already holds a project; open it instead")
        try:
            for sub in ("", "models", "exports"):
                (folder / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ProjectError(f"{folder}: cannot create the project folder ({error.strerror})") from error
        # A deleted project's write-ahead log beside the new file would be replayed into it (its
        # rows, or a corrupt index): it holds edits that are not ours to drop, so the user decides.
        leftovers = [folder / f"{DB_NAME}{suffix}" for suffix in ("-wal", "-shm", "-journal")]
        found = [path.name for path in leftovers if path.exists()]
        if found:
            raise ProjectError(
                f"{folder}: holds {found[0]}, left by a project whose {DB_NAME} is gone; move it away (or delete "
                "it) before making a new project here"
            )
        # Built aside and linked into place whole: a create killed half-way left a project.sqlite
        # that open refused ("not a project") and create refused too ("already holds a project").
        staged = folder / f".{DB_NAME}.creating-{os.getpid()}-{threading.get_ident()}"
        staged.unlink(missing_ok=True)
        try:
            conn = _connect(staged, shown=folder / DB_NAME)
            try:
                schema.create(conn)
                with _transaction(conn):
                    conn.execute("INSERT INTO meta(key, value) VALUES ('created', ?)", (now(),))
            finally:
                conn.close()  # the last connection: its write-ahead log is folded into the file
            _move_into_place(staged, folder / DB_NAME)
        except FileExistsError as error:
            raise ProjectError(f"{folder}: already holds a project; open it instead") from error
        except sqlite3.Error as error:
            raise storage_error(folder / DB_NAME, error, writing=True) from error
        finally:
            with contextlib.suppress(OSError):  # Windows: a virus scanner may hold it; the project is made
                staged.unlink(missing_ok=True)
        return cls(folder, _connect(folder / DB_NAME))

    @classmethod
    def open(cls, folder: str | Path) -> Project:
        """Open an existing project, upgrading an older schema (after a backup copy)."""
        folder = Path(folder)
        path = folder / DB_NAME
        if not path.exists():
            raise ProjectError(f"{folder}: no project here ({DB_NAME} missing); create one with 'new'")
        read_only = not _writable(path)
        conn = _connect_read_only(path) if read_only else _connect(path)
        try:
            found = schema.version(conn)
        except sqlite3.DatabaseError as error:
            conn.close()
            raise storage_error(path, error) from error
        if found is None:
            conn.close()
            raise SchemaError(f"{path}: not a project database (no schema version); check the folder")
        if found > schema.SCHEMA_VERSION:
            conn.close()
            raise SchemaError(
                f"{path}: written by a newer version (schema {found}; this version knows "
                f"{schema.SCHEMA_VERSION}); upgrade sstrack-annotate to open it"
            )
        # Before any write (an upgrade included), so no trigger of the file ever fires; after the
        # version check, so a newer version's tables are "upgrade", not "altered".
        _refuse_foreign(conn, path, schema.foreign_object)
        if found < schema.SCHEMA_VERSION:
            if read_only:
                conn.close()
                raise StorageError(
                    f"{path}: an older project (schema {found}) on a read-only disk, and opening it needs an upgrade; "
                    "copy the project folder somewhere writable and open the copy"
                )
            try:
                _migrate(conn, path, found)
            except (sqlite3.Error, OSError, ValueError, KeyError) as error:  # each step is one transaction: the failed one rolled back
                reached = schema.version(conn) or found
                conn.close()
                backup = path.with_name(f"{path.stem}.v{found}.backup.sqlite")
                kept = f"{backup.name} beside it holds schema {found}" if backup.exists() else "no backup could be written"
                raise SchemaError(
                    f"{path}: upgrading it from schema {found} stopped at schema {reached} ({type(error).__name__}: "
                    f"{str(error)[:80]}); the file is left at schema {reached}, and {kept}; free disk space, or "
                    "report the message"
                ) from error
        _refuse_foreign(conn, path, schema.foreign_column)
        _refuse_foreign(conn, path, schema.oversized_value)
        _refuse_foreign(conn, path, schema.invalid_value)
        project = cls(folder, conn, read_only)
        if not read_only:
            project._mark_interrupted_runs()
        return project

    def close(self) -> None:
        """Close the database connection."""
        self.conn.close()

    def __enter__(self) -> Project:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db_path(self) -> Path:
        """The project database file."""
        return self.folder / DB_NAME

    # -- videos ---------------------------------------------------------------------------------
    def add_video(self, path: str | Path, info: dict[str, Any] | None = None) -> Video:
        """Register a video or image folder, verifying a video's frame-exact access once.

        `info` (frames, fps, width, height) skips reading the media (importers that know it).
        """
        from projects.media import VideoMedia, open_media

        try:
            path = Path(path).resolve()
        except (OSError, RuntimeError) as error:  # RuntimeError: a link that points back at itself
            raise MediaError(f"{path}: cannot be resolved ({error}); point the link at the real video") from error
        self._refuse_added_twice(path)  # before the slow index; again under the write lock below
        index = None
        if info is None:
            with open_media(path) as media:
                info = {"frames": media.frame_count, "fps": media.fps, "width": media.width, "height": media.height}
                index = media.index if isinstance(media, VideoMedia) else None
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        row = {
            "path": self.stored_path(path), "name": _video_name(path), "content_hash": content_hash(path), "size_bytes": size,
            "added": now(), **{k: info[k] for k in ("frames", "fps", "width", "height")},
            "media_index": json.dumps(index.to_dict()) if index else None,
        }
        with self._write():
            self._refuse_added_twice(path)
            cur = self.conn.execute(
                "INSERT INTO videos(path, name, content_hash, size_bytes, frames, fps, width, height, added, media_index) "
                "VALUES (:path, :name, :content_hash, :size_bytes, :frames, :fps, :width, :height, :added, :media_index)",
                row,
            )
            video_id = int(cur.lastrowid)
            # Inside an edit (an import) the new video is part of its undo step, so undoing the
            # import leaves no empty video behind; added on its own it is not an undo step.
            self._record("videos", [video_id], None, dict(self.conn.execute("SELECT * FROM videos WHERE id = ?", (video_id,)).fetchone()))
        return self.video(video_id)

    def _refuse_added_twice(self, path: Path) -> None:
        # A second copy of a video splits its labels in two: re-importing a dataset doubled every
        # track, silently. The app shows the video already there instead.
        existing = next((v for v in self.videos() if Path(v.path) == path), None)
        if existing is not None:
            raise ProjectError(
                f"{path}: already in this project as video {existing.id} ({existing.name}), with its boxes; "
                "remove that video first to add or import it again"
            )

    def open_media(self, video_id: int, cache_bytes: int | None = None) -> Media:
        """The video's frames, after checking the file is still the one that was added.

        Boxes are stored by frame number, so a file swapped behind the project's back (another
        size, another length) would silently attach every label to another image: refuse it.
        The stored index is reused; a video without one (an older project) is indexed now.
        """
        from projects.media import VideoMedia, open_media
        from sstrack.video import VideoError, VideoIndex

        video = self.video(video_id)
        self.check_identity(video)
        index = None
        stored = self.conn.execute("SELECT media_index FROM videos WHERE id = ?", (video_id,)).fetchone()[0]
        if stored:
            with contextlib.suppress(VideoError, ValueError):
                index = VideoIndex.from_dict(json.loads(stored))
        media = open_media(video.path, cache_bytes=cache_bytes, index=index)
        if (media.frame_count, media.width, media.height) != (video.frames, video.width, video.height):
            media.close()
            raise MediaError(
                f"{video.path}: decodes as {media.frame_count} frames of {media.width}x{media.height}, but "
                f"{video.name} was added with {video.frames} of {video.width}x{video.height}; put the original "
                f"file back or re-link it (sstrack-project relink {self.folder} {video.id} NEW_PATH)"
            )
        if index is None and isinstance(media, VideoMedia):
            with self._write():
                self.conn.execute("UPDATE videos SET media_index = ? WHERE id = ?", (json.dumps(media.index.to_dict()), video_id))
        return media

    def check_identity(self, video: Video) -> None:
        """Raise MediaError unless the video's file is where it was and is the same file."""
        relink = f"re-link it (sstrack-project relink {self.folder} {video.id} NEW_PATH, or the app's video list)"
        path = Path(video.path)
        if not path.exists():
            raise MediaError(f"{path}: {video.name} is no longer there; {relink}")
        if not (path.is_file() or path.is_dir()):  # hashing a FIFO's contents waited for ever
            raise MediaError(f"{path}: not a regular file or a frame folder (a FIFO or a device); {relink}")
        size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
        if size != video.size_bytes or content_hash(path) != video.content_hash:
            raise MediaError(
                f"{path}: this is not the file {video.name} was added from (size {size} bytes, was "
                f"{video.size_bytes}; contents differ); put the original back or {relink}"
            )

    def videos(self) -> list[Video]:
        """All videos, in the order they were added."""
        return [_video(r, self.folder) for r in self.conn.execute("SELECT * FROM videos ORDER BY id")]

    def video(self, video_id: int) -> Video:
        """One video by id."""
        row = self.conn.execute("SELECT * FROM videos WHERE id = ?", (video_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no video with id {video_id} in {self.folder}")
        return _video(row, self.folder)

    def find_video(self, name_or_path: str) -> Video:
        """A video by path, id, name or file name (for the CLI); a text that names two videos
        (a video named "2" and the video with id 2) is refused, not guessed."""
        videos = self.videos()
        with contextlib.suppress(OSError):
            path = Path(name_or_path).resolve()
            by_path = [v for v in videos if path == Path(v.path)]
            if len(by_path) == 1 and path.exists():
                return by_path[0]
        matches = [v for v in videos if name_or_path in (str(v.id), v.name, Path(v.path).name, v.path)]
        if len(matches) > 1:
            named = " and ".join(f"video {v.id} ({Path(v.path).name})" for v in matches)
            raise ProjectError(f"{name_or_path!r} names {named} in {self.folder}; name the video by its path")
        if not matches:
            raise ProjectError(f"no video {name_or_path!r} in {self.folder}; see 'info' for the list")
        return matches[0]

    def relink_video(self, video_id: int, new_path: str | Path, force: bool = False) -> Video:
        """Point a video at a new file: the same video moved, or (with `force`) a re-encode of it.

        The new file must decode to the same frame count and size; its content must match what was
        added unless `force` (the user confirmed it is the same video, e.g. re-encoded).
        """
        from projects.media import VideoMedia, open_media

        video = self.video(video_id)
        new_path = Path(new_path).resolve()
        if not new_path.exists():
            raise ProjectError(f"{new_path}: no such file")
        new_hash = content_hash(new_path)
        if new_hash != video.content_hash and not force:
            raise ProjectError(
                f"{new_path}: content differs from {video.name} as it was added; pick the same file "
                "(or confirm it is the same video re-encoded: relink --force)"
            )
        with open_media(new_path) as media:
            if (media.frame_count, media.width, media.height) != (video.frames, video.width, video.height):
                raise ProjectError(
                    f"{new_path}: {media.frame_count} frames of {media.width}x{media.height}, but {video.name} has "
                    f"{video.frames} of {video.width}x{video.height}; boxes would land on other images, pick the same video"
                )
            index = media.index if isinstance(media, VideoMedia) else None
        size = sum(p.stat().st_size for p in new_path.rglob("*") if p.is_file()) if new_path.is_dir() else new_path.stat().st_size
        with self._write():
            self.conn.execute(
                "UPDATE videos SET path = ?, content_hash = ?, size_bytes = ?, media_index = ? WHERE id = ?",
                (self.stored_path(new_path), new_hash, size, json.dumps(index.to_dict()) if index else None, video_id),
            )
        return self.video(video_id)

    def remove_video(self, video_id: int) -> None:
        """Remove a video with its tracks and boxes from the project (one undo step; the file stays)."""
        video = self.video(video_id)
        row = dict(self.conn.execute("SELECT * FROM videos WHERE id = ?", (video_id,)).fetchone())
        with self._write(f"remove video {video.name}"):
            for track in self.tracks(video_id):
                before = self._track_row(track.id)
                for record in self.boxes(track.id):
                    self._record("boxes", [track.id, record.frame], _box_row(record), None)
                self.conn.execute("DELETE FROM boxes WHERE track_id = ?", (track.id,))
                self.conn.execute("DELETE FROM tracks WHERE id = ?", (track.id,))
                self._record("tracks", [track.id], before, None)
            for (run_id,) in self.conn.execute("SELECT id FROM runs WHERE video_id = ?", (video_id,)).fetchall():
                self.conn.execute("UPDATE runs SET video_id = NULL WHERE id = ?", (run_id,))
                self._record("runs", [run_id], {"video_id": video_id}, {"video_id": None})
            self.conn.execute("DELETE FROM videos WHERE id = ?", (video_id,))
            self._record("videos", [video_id], row, None)

    def search_moved(self, video_id: int, folder: str | Path) -> Path | None:
        """Look under `folder` for a file with the video's content; relink and return it if found."""
        video = self.video(video_id)
        for candidate in Path(folder).rglob(Path(video.path).name if video.path else "*"):
            if candidate.is_file() and candidate.stat().st_size == video.size_bytes and content_hash(candidate) == video.content_hash:
                self.relink_video(video_id, candidate)
                return candidate
        return None

    # -- tracks ---------------------------------------------------------------------------------
    def add_track(self, video_id: int, label: str = "object", color: str | None = None, category: str = "") -> Track:
        """A new track in a video (one undo step); `category`: its class when that is not its label."""
        self.video(video_id)
        # Objects of one class share its colour (the first such object's), as in CVAT's label schema.
        same_class = None if color else self.conn.execute(CLASS_COLOUR_QUERY, (category or label,)).fetchone()
        if not color and same_class:
            color = same_class[0]
        elif not color:
            # Counted only for a new class: a count per track made an import of N objects O(N^2).
            count = self.conn.execute("SELECT COUNT(*) FROM tracks WHERE video_id = ?", (video_id,)).fetchone()[0]
            color = PALETTE[count % len(PALETTE)]
        category = "" if category == label else category
        with self._write(f"add track {label}"):
            cur = self.conn.execute(
                "INSERT INTO tracks(video_id, label, color, category) VALUES (?, ?, ?, ?)", (video_id, label, color, category)
            )
            track_id = int(cur.lastrowid)
            self._refuse_unkept("tracks", track_id, label)
            self._record("tracks", [track_id], None, self._track_row(track_id))
        return self.track(track_id)

    def classes(self) -> list[str]:
        """Every class used in the project (the label schema), sorted."""
        rows = self.conn.execute("SELECT DISTINCT CASE WHEN category != '' THEN category ELSE label END FROM tracks ORDER BY 1")
        return [r[0] for r in rows]

    def tracks(self, video_id: int) -> list[Track]:
        """Tracks of a video, in creation order."""
        return [_track(r) for r in self.conn.execute("SELECT * FROM tracks WHERE video_id = ? ORDER BY id", (video_id,))]

    def track(self, track_id: int) -> Track:
        """One track by id."""
        row = self.conn.execute("SELECT * FROM tracks WHERE id = ?", (track_id,)).fetchone()
        if row is None:
            raise ProjectError(f"no track with id {track_id}")
        return _track(row)

    def find_track(self, video_id: int, name: str) -> Track | None:
        """The video's track with this label, or "id:N" (for the CLI); None when there is none.

        Labels need not be unique (a MOT import names every object by its class), so a label that
        several tracks share is refused with their ids rather than read as the first of them.
        """
        tracks = self.tracks(video_id)
        if name.startswith("id:"):
            chosen = [t for t in tracks if f"id:{t.id}" == name]
            if not chosen:
                raise ProjectError(f"video {video_id} has no track {name} (tracks: {_track_list(tracks)})")
            return chosen[0]
        named = [t for t in tracks if t.label == name]
        if len(named) > 1:
            raise ProjectError(
                f"{len(named)} tracks of video {video_id} are named {name!r} (ids {', '.join(str(t.id) for t in named)}); "
                f"name one by its id, e.g. id:{named[0].id}"
            )
        return named[0] if named else None

    def update_track(self, track_id: int, **fields: Any) -> Track:
        """Rename, recolour, hide, describe, classify or give attributes to a track (one undo step);
        `attributes` is a dict of strings."""
        allowed = {"label", "color", "hidden", "description", "category", "attributes"}
        if set(fields) - allowed:
            raise ProjectError(f"cannot change {sorted(set(fields) - allowed)} of a track")
        if "attributes" in fields:
            fields["attributes"] = attributes_text(fields["attributes"])
        with self._write(f"edit track {self.track(track_id).label}"):
            before = self._track_row(track_id)  # read under the write lock, as every edit's rows
            sets = ", ".join(f"{k} = :{k}" for k in fields)
            self.conn.execute(f"UPDATE tracks SET {sets} WHERE id = :id", {**fields, "id": track_id})
            self._refuse_unkept("tracks", track_id, before["label"])
            self._record("tracks", [track_id], before, self._track_row(track_id))
        return self.track(track_id)

    def _refuse_unkept(self, table: str, rowid: int, name: str) -> None:
        """Roll back a write whose row the next open would refuse as damage (a ProjectError)."""
        problem = schema.row_problem(self.conn, table, rowid)
        if problem is not None:
            raise ProjectError(f"{table[:-1]} {name!r:.40}: {problem}; nothing was changed")

    def delete_track(self, track_id: int) -> None:
        """Delete a track and its boxes (one undo step: undo brings both back)."""
        with self._write(f"delete track {self.track(track_id).label}"):
            before = self._track_row(track_id)
            for record in self.boxes(track_id):
                self._record("boxes", [track_id, record.frame], _box_row(record), None)
            self.conn.execute("DELETE FROM boxes WHERE track_id = ?", (track_id,))
            self.conn.execute("DELETE FROM tracks WHERE id = ?", (track_id,))
            self._record("tracks", [track_id], before, None)

    # -- boxes ----------------------------------------------------------------------------------
    def set_box(
        self,
        track_id: int,
        frame: int,
        box: Iterable[float],
        source: str = "manual",
        score: float | None = None,
        occluded: bool | None = None,
        out_of_view: bool | None = None,
        label: str | None = None,
    ) -> BoxRecord:
        """Write one box (one undo step); flags not given keep the current box's (none: visible)."""
        track = self.track(track_id)
        video = self.video(track.video_id)
        x, y, w, h = (float(v) for v in box)
        _check_box(x, y, w, h, frame, video)
        with self._write(label or f"{source} box on frame {frame + 1}"):
            # Read under the write lock: read before it, another process's change to this frame
            # (committed in between) would be overwritten with what was there before it.
            old = self.box_at(track_id, frame)
            # A box moved or resized keeps its flags; a box drawn where the frame had none (an out
            # of view / occluded state, the engine's or a human's) says the object is there: visible.
            kept = old if old is not None and old.has_box else None
            record = BoxRecord(
                track_id, frame, x, y, w, h, source, score,
                bool(occluded if occluded is not None else (kept.occluded if kept else False)),
                bool(out_of_view if out_of_view is not None else (kept.out_of_view if kept else False)),
            )
            self._put_boxes([record])
        return record

    def set_flags(
        self, track_id: int, frame: int, occluded: bool | None = None, out_of_view: bool | None = None
    ) -> BoxRecord | None:
        """Set occlusion / out-of-view on a frame (one undo step); returns the frame's new state.

        A frame without a box becomes a manual "no box" state; clearing both flags of such a
        state removes it (None), since a visible object needs a box.
        """
        with self._write(f"flags on frame {frame + 1}"):
            old = self.box_at(track_id, frame)  # under the write lock, as in set_box
            base = old or BoxRecord.absent(track_id, frame, out_of_view=False)
            now_occluded = base.occluded if occluded is None else bool(occluded)
            now_out = base.out_of_view if out_of_view is None else bool(out_of_view)
            # A frame a human marks hidden is a human judgment: manual, so that the next re-track
            # cannot overwrite it (as mark_span does for a span).
            source = "manual" if now_occluded or now_out else base.source
            record = BoxRecord(
                track_id, frame, base.x, base.y, base.w, base.h, source, base.score, now_occluded, now_out,
                base.run_id, base.look,
            )
            if record.has_box or not record.visible:
                self._put_boxes([record])
                return record
            if old is not None:
                self._delete_boxes([old])
        return None

    def delete_box(self, track_id: int, frame: int) -> None:
        """Remove the box of a track on one frame (one undo step)."""
        with self._write(f"delete box on frame {frame + 1}"):
            old = self.box_at(track_id, frame)  # under the write lock, as in set_box
            if old is not None:
                self._delete_boxes([old])

    def box_at(self, track_id: int, frame: int) -> BoxRecord | None:
        """The box of a track on a frame, or None."""
        row = self.conn.execute("SELECT * FROM boxes WHERE track_id = ? AND frame = ?", (track_id, frame)).fetchone()
        return _box(row) if row else None

    def boxes(self, track_id: int, first: int | None = None, last: int | None = None) -> list[BoxRecord]:
        """Boxes of a track in frame order, optionally within [first, last]."""
        lo = -1 if first is None else first
        hi = 2**62 if last is None else last
        rows = self.conn.execute(
            "SELECT * FROM boxes WHERE track_id = ? AND frame BETWEEN ? AND ? ORDER BY frame", (track_id, lo, hi)
        )
        return [_box(r) for r in rows]

    def boxes_on_frame(self, video_id: int, frame: int) -> list[BoxRecord]:
        """Every track's box on one frame of a video."""
        rows = self.conn.execute(
            "SELECT b.* FROM boxes b JOIN tracks t ON t.id = b.track_id WHERE t.video_id = ? AND b.frame = ? ORDER BY t.id",
            (video_id, frame),
        )
        return [_box(r) for r in rows]

    def keyframes(self, track_id: int) -> list[int]:
        """Frames a human decided, sorted: manual boxes and manual "no box" (absent) states."""
        rows = self.conn.execute("SELECT frame FROM boxes WHERE track_id = ? AND source = 'manual' ORDER BY frame", (track_id,))
        return [r[0] for r in rows]

    def count_boxes(self) -> dict[str, int]:
        """Number of boxes per source over the whole project."""
        rows = self.conn.execute("SELECT source, COUNT(*) FROM boxes GROUP BY source")
        return {source: count for source, count in rows}

    # -- batched writes (propagation, import, interpolation) -----------------------------------
    @contextlib.contextmanager
    def edit(self, label: str) -> Iterator[None]:
        """Group several writes into one transaction and one undo step."""
        with self._write(label):
            yield

    def begin_history(self, label: str) -> int:
        """Open a history entry that several later transactions append to (a propagation run)."""
        # The redo branch is dropped by the entry's first change (_record), not here: a run that
        # finds nothing to track must leave the user's Redo as it was.
        with self._write():
            cur = self.conn.execute("INSERT INTO history(label, created) VALUES (?, ?)", (label, now()))
        self.last_entry = int(cur.lastrowid)
        return self.last_entry

    def discard_if_empty(self, entry_id: int) -> None:
        """Delete a `begin_history` entry that recorded no change (a run that wrote nothing)."""
        with self._write():
            self.conn.execute(
                "DELETE FROM history WHERE id = ? AND NOT EXISTS (SELECT 1 FROM history_changes WHERE entry_id = ?)",
                (entry_id, entry_id),
            )

    def write_boxes(self, records: list[BoxRecord], entry_id: int | None = None, delete: list[BoxRecord] | None = None) -> None:
        """Put `records` (and remove `delete`) in one transaction, recorded under `entry_id`."""
        with self._write(None if entry_id is not None else "write boxes", entry_id=entry_id):
            if delete:
                self._delete_boxes(delete)
            self._put_boxes(records)

    def write_machine_boxes(
        self, records: list[BoxRecord], entry_id: int, run_id: int, delete: list[BoxRecord] | None = None
    ) -> set[tuple[int, int]]:
        """A run's write: skips every frame whose box is manual or from a later run, and every frame
        of a track deleted meanwhile; returns them.

        The check and the write share one transaction, so a box the user (in this process or
        another) put on a frame while the run was tracking it always wins over the run's box.
        """
        with self._write(entry_id=entry_id):
            keys = {(r.track_id, r.frame) for r in records} | {(r.track_id, r.frame) for r in delete or []}
            ids = sorted({track_id for track_id, _ in keys})
            alive = {row[0] for row in self.conn.execute(f"SELECT id FROM tracks WHERE id IN ({', '.join('?' * len(ids))})", ids)}
            protected = {key for key in keys if key[0] not in alive or _protected(self.box_at(*key), run_id)}
            if delete:
                self._delete_boxes([r for r in delete if (r.track_id, r.frame) not in protected])
            self._put_boxes([r for r in records if (r.track_id, r.frame) not in protected])
        return protected

    def put_boxes(self, records: list[BoxRecord]) -> None:
        """Inside `edit()`: write boxes (recorded in its history entry)."""
        self._put_boxes(records)

    def delete_boxes(self, records: list[BoxRecord]) -> None:
        """Inside `edit()`: remove boxes (recorded in its history entry)."""
        self._delete_boxes(records)

    # -- undo / redo ----------------------------------------------------------------------------
    def undo(self, expected: int | None = None) -> str | None:
        """Revert the latest edit; returns its label (None when there is nothing to undo).

        `expected`: the entry the caller means to undo (an editor's undo stack). When the latest
        edit is another one (another process wrote after it), nothing changes and ProjectError
        names the edit that is in the way.
        """
        # The entry is chosen inside the write transaction: chosen before it, another process
        # could commit a newer edit in between, and undoing the older entry would overwrite it.
        with self._write():
            row = self.conn.execute("SELECT id, label FROM history WHERE undone = 0 ORDER BY id DESC LIMIT 1").fetchone()
            if row is None:
                return None
            _check_expected(row, expected, "undo")
            blocked = self.undo_blocked_by()
            if blocked:
                raise ProjectError(blocked)
            self._replay(row, "SELECT tbl, key, before FROM history_changes WHERE entry_id = ? ORDER BY seq DESC", "undone")
            self.conn.execute("UPDATE history SET undone = 1 WHERE id = ?", (row[0],))
        return row[1]

    def redo(self, expected: int | None = None) -> str | None:
        """Re-apply the latest undone edit; returns its label (None when nothing to redo); `expected` as in undo."""
        with self._write():  # chosen inside the transaction, as in undo()
            row = self.conn.execute("SELECT id, label FROM history WHERE undone = 1 ORDER BY id ASC LIMIT 1").fetchone()
            if row is None:
                return None
            _check_expected(row, expected, "redo")
            self._replay(row, "SELECT tbl, key, after FROM history_changes WHERE entry_id = ? ORDER BY seq ASC", "redone")
            self.conn.execute("UPDATE history SET undone = 0 WHERE id = ?", (row[0],))
        return row[1]

    def _replay(self, entry: sqlite3.Row, query: str, verb: str) -> None:
        """Write back the rows a history entry saved (inside the caller's transaction).

        The rows are data from the file: a damaged or altered one is refused in one line, and the
        caller's transaction rolls the entry back whole.
        """
        try:
            for table, key, saved in self.conn.execute(query, (entry[0],)).fetchall():
                self._apply(table, json.loads(key), json.loads(saved) if saved else None)
        except (ValueError, KeyError, TypeError, sqlite3.DataError, sqlite3.IntegrityError, sqlite3.ProgrammingError) as error:
            raise SchemaError(
                f"{self.db_path}: the saved rows of '{entry[1]}' are damaged ({type(error).__name__}); "
                f"it cannot be {verb}, and nothing was changed"
            ) from error

    def history_head(self) -> int:
        """Id of the newest history entry (0 when none): tells whether an edit was recorded."""
        return int(self.conn.execute("SELECT COALESCE(MAX(id), 0) FROM history").fetchone()[0])

    def history(self) -> list[tuple[int, str, bool]]:
        """(id, label, undone) of every history entry, oldest first."""
        return [(r[0], r[1], bool(r[2])) for r in self.conn.execute("SELECT id, label, undone FROM history ORDER BY id")]

    # -- models and runs -------------------------------------------------------------------------
    def add_model(self, path: str | Path, card: dict[str, Any], name: str | None = None, parent: str | None = None) -> int:
        """Register a model file (e.g. a fine-tuned one) with its card."""
        with self._write():
            cur = self.conn.execute(
                "INSERT INTO models(path, name, card, parent, added) VALUES (?, ?, ?, ?, ?)",
                (self.stored_path(path), name or Path(path).stem, json.dumps(card), parent, now()),
            )
        return int(cur.lastrowid)

    def models(self) -> list[dict[str, Any]]:
        """Registered models, newest last."""
        rows = self.conn.execute("SELECT id, path, name, card, parent, added FROM models ORDER BY id")
        return [
            {"id": r[0], "path": self.full_path(r[1]), "name": r[2], "card": json.loads(r[3]), "parent": r[4], "added": r[5]}
            for r in rows
        ]

    def start_run(self, kind: str, video_id: int | None, params: dict[str, Any], history_entry: int | None = None) -> int:
        """Record the start of a job; `history_entry`: the undo step it writes into."""
        # The pid and host tell a later open whether a "running" run's process is still alive.
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "process": _process_identity(os.getpid()),
                 "history_entry": history_entry}
        with self._write():
            cur = self.conn.execute(
                "INSERT INTO runs(kind, video_id, params, status, started) VALUES (?, ?, ?, 'running', ?)",
                (kind, video_id, json.dumps({**params, **owner}), now()),
            )
        return int(cur.lastrowid)

    def interrupted_runs(self) -> list[dict[str, Any]]:
        """Runs whose process died before they finished (marked when the project was opened)."""
        return [r for r in self.runs() if r["status"] == "interrupted"]

    def _mark_interrupted_runs(self) -> None:
        """A run still "running" whose process is gone was killed: say so instead of forever."""
        dead = [r["id"] for r in self.runs() if r["status"] == "running" and not _owner_alive(json.loads(r["params"]))]
        if dead:
            with self._write():
                self.conn.executemany("UPDATE runs SET status = 'interrupted', finished = ? WHERE id = ?", [(now(), i) for i in dead])

    def settle_interrupted(self, run_id: int, resumed: bool) -> None:
        """The user has seen an interrupted run: 'resumed' (a new run continues it) or 'abandoned'."""
        with self._write():
            self.conn.execute(
                "UPDATE runs SET status = ? WHERE id = ? AND status = 'interrupted'", ("resumed" if resumed else "abandoned", run_id)
            )

    def undo_blocked_by(self) -> str | None:
        """Why the next undo is refused (its step is still being written by a live run), or None.

        Undoing a step that a run is still writing would leave its later boxes without an undo
        step, and the next edit would then delete the undone entry under the run.
        """
        row = self.conn.execute("SELECT id, label FROM history WHERE undone = 0 ORDER BY id DESC LIMIT 1").fetchone()
        if row is None:
            return None
        for run in self.runs():
            owner = json.loads(run["params"])
            if run["status"] == "running" and owner.get("history_entry") == row[0] and _owner_alive(owner):
                return (
                    f"cannot undo '{row[1]}': that run is still tracking (pid {owner.get('pid')}); "
                    "wait for it to finish or cancel it, then undo"
                )
        return None

    def finish_run(self, run_id: int, status: str, frames_done: int) -> None:
        """Record how a job ended (done, cancelled, failed)."""
        with self._write():
            self.conn.execute(
                "UPDATE runs SET status = ?, frames_done = ?, finished = ? WHERE id = ?", (status, frames_done, now(), run_id)
            )

    def runs(self) -> list[dict[str, Any]]:
        """All recorded jobs."""
        cols = ("id", "kind", "video_id", "params", "status", "frames_done", "started", "finished")
        return [dict(zip(cols, r)) for r in self.conn.execute(f"SELECT {', '.join(cols)} FROM runs ORDER BY id")]

    def run_models(self) -> dict[int, dict[str, Any] | None]:
        """Each run's model ({"name", "path", "sha256"}); None for a run that recorded none (older projects)."""
        models = {}
        for run_id, params in self.conn.execute("SELECT id, params FROM runs"):
            try:
                model = json.loads(params).get("model")
            except (json.JSONDecodeError, AttributeError):
                model = None
            models[run_id] = model if isinstance(model, dict) else None
        return models

    # -- settings --------------------------------------------------------------------------------
    def get_setting(self, key: str, default: str | None = None) -> str | None:
        """A project-level setting (e.g. last frame, selected model)."""
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (f"setting:{key}",)).fetchone()
        return row[0] if row else default

    def set_setting(self, key: str, value: str) -> None:
        """Store a project-level setting (not part of undo)."""
        with self._write():
            self.conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (f"setting:{key}", value))

    def set_path_setting(self, key: str, path: str | Path) -> None:
        """Store a setting that names a file ("" for none), relative to the project when inside it."""
        self.set_setting(key, self.stored_path(path) if str(path) else "")

    def get_path_setting(self, key: str) -> str:
        """A setting stored by set_path_setting, as a full path ("" when unset)."""
        value = self.get_setting(key) or ""
        return self.full_path(value) if value else ""

    # -- paths ------------------------------------------------------------------------------------
    def stored_path(self, path: str | Path) -> str:
        """How a file's path is stored: relative to the project folder when inside it, so that a
        project folder moved or renamed with its own videos and models still finds them."""
        resolved = Path(path).resolve()
        with contextlib.suppress(ValueError):
            return resolved.relative_to(self.folder.resolve()).as_posix()
        return str(resolved)

    def full_path(self, stored: str) -> str:
        """A stored path as a full one (paths stored before they were relative are absolute)."""
        return stored if Path(stored).is_absolute() else str(self.folder.resolve() / stored)

    # -- internals --------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _write(self, label: str | None = None, entry_id: int | None = None) -> Iterator[None]:
        """One write transaction; with a label (or entry) the changes are recorded for undo."""
        if self.conn.in_transaction:  # nested edit: part of the outer transaction and entry
            yield
            return
        last_entry = self.last_entry
        with self._storage_errors(), _transaction(self.conn), self._forget_entry_on_rollback(last_entry):
            if entry_id is not None:
                self._entry = entry_id
                self._seq = self.conn.execute(
                    "SELECT COALESCE(MAX(seq), -1) + 1 FROM history_changes WHERE entry_id = ?", (entry_id,)
                ).fetchone()[0]
            elif label is not None:
                # The entry is created by the first change it records: an edit that changes
                # nothing (interpolate with one keyframe) must not become an undo step, which
                # the next Ctrl+Z would "undo" instead of the user's last real edit.
                self._pending_label, self._seq = label, 0
            try:
                yield
            finally:
                self._entry = None
                self._pending_label = None

    @contextlib.contextmanager
    def _storage_errors(self) -> Iterator[None]:
        # A full disk, a read-only file or a lock held too long, as a one-line error the CLI and
        # the app show (the edit was rolled back whole).
        try:
            yield
        except sqlite3.OperationalError as error:
            raise storage_error(self.db_path, error, writing=True) from error

    @contextlib.contextmanager
    def _forget_entry_on_rollback(self, last_entry: int | None) -> Iterator[None]:
        # A rolled-back edit's history id is free again, and SQLite gives it to the next edit:
        # left as last_entry, that next edit would look recorded already, and an editor would
        # leave it off its undo stack.
        try:
            yield
        except BaseException:
            self.last_entry = last_entry
            raise

    def _drop_redo(self) -> None:
        # A new edit after undos discards the redo branch, like every editor.
        self.conn.execute("DELETE FROM history WHERE undone = 1")

    def _record(self, table: str, key: list[int], before: dict | None, after: dict | None) -> None:
        if self._entry is None and self._pending_label is not None:
            self._drop_redo()
            cur = self.conn.execute("INSERT INTO history(label, created) VALUES (?, ?)", (self._pending_label, now()))
            self._entry, self._pending_label = int(cur.lastrowid), None
            self.last_entry = self._entry
        if self._entry is None:
            return
        if self._seq == 0:  # an opened entry's (begin_history) first change: now it is a new edit
            self._drop_redo()
        self.conn.execute(
            "INSERT INTO history_changes(entry_id, seq, tbl, key, before, after) VALUES (?, ?, ?, ?, ?, ?)",
            (self._entry, self._seq, table, json.dumps(key), json.dumps(before) if before else None, json.dumps(after) if after else None),
        )
        self._seq += 1

    def _put_boxes(self, records: list[BoxRecord]) -> None:
        for record in records:
            if record.source not in SOURCES:
                raise ProjectError(f"unknown box source {record.source!r}; use one of {SOURCES}")
            if not record.has_box and record.visible:
                raise ProjectError(
                    f"track {record.track_id}, frame {record.frame + 1}: a frame without a box must be marked "
                    "occluded or out of view"
                )
            old = self.box_at(record.track_id, record.frame)
            row = _box_row(record)
            self.conn.execute(
                "INSERT OR REPLACE INTO boxes(track_id, frame, x, y, w, h, source, score, occluded, out_of_view, run_id, look) "
                "VALUES (:track_id, :frame, :x, :y, :w, :h, :source, :score, :occluded, :out_of_view, :run_id, :look)",
                row,
            )
            self._record("boxes", [record.track_id, record.frame], _box_row(old) if old else None, row)

    def _delete_boxes(self, records: list[BoxRecord]) -> None:
        for record in records:
            self.conn.execute("DELETE FROM boxes WHERE track_id = ? AND frame = ?", (record.track_id, record.frame))
            self._record("boxes", [record.track_id, record.frame], _box_row(record), None)

    def _apply(self, table: str, key: list[int], row: dict | None) -> None:
        if table == "boxes":
            self.conn.execute("DELETE FROM boxes WHERE track_id = ? AND frame = ?", tuple(key))
            if row is not None:
                self.conn.execute(
                    "INSERT INTO boxes(track_id, frame, x, y, w, h, source, score, occluded, out_of_view, run_id, look) "
                    "VALUES (:track_id, :frame, :x, :y, :w, :h, :source, :score, :occluded, :out_of_view, :run_id, :look)",
                    {"look": None, **row},  # history written before schema 6 has no look
                )
        elif table == "videos":
            if row is None:
                self.conn.execute("DELETE FROM videos WHERE id = ?", (key[0],))
            else:
                values = {c: row.get(c) for c in _VIDEO_COLUMNS}  # fixed names: a history row is data, not SQL
                self.conn.execute(
                    f"INSERT INTO videos({', '.join(_VIDEO_COLUMNS)}) VALUES ({', '.join(':' + c for c in _VIDEO_COLUMNS)}) "
                    f"ON CONFLICT(id) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _VIDEO_COLUMNS[1:])}",
                    values,
                )
        elif table == "tracks":
            if row is None:
                self.conn.execute("DELETE FROM tracks WHERE id = ?", (key[0],))
            else:
                # An upsert, never INSERT OR REPLACE: REPLACE deletes the row first, and the
                # boxes' ON DELETE CASCADE would silently take every box of the track with it.
                self.conn.execute(
                    "INSERT INTO tracks(id, video_id, label, color, hidden, description, category, attributes) "
                    "VALUES (:id, :video_id, :label, :color, :hidden, :description, :category, :attributes) "
                    "ON CONFLICT(id) DO UPDATE SET video_id = excluded.video_id, label = excluded.label, "
                    "color = excluded.color, hidden = excluded.hidden, description = excluded.description, "
                    "category = excluded.category, attributes = excluded.attributes",
                    {"category": "", "attributes": "", **row},  # rows recorded before versions 4 and 5 lack them
                )
        elif table == "runs":  # only a run's video link is ever recorded (remove_video)
            self.conn.execute("UPDATE runs SET video_id = ? WHERE id = ?", ((row or {}).get("video_id"), key[0]))

    def _track_row(self, track_id: int) -> dict[str, Any]:
        return asdict(self.track(track_id))


def _track_list(tracks: list[Track]) -> str:
    return ", ".join(f"id:{t.id} {t.label}" for t in tracks) or "none"


def _check_expected(row: tuple[int, str], expected: int | None, verb: str) -> None:
    if expected is not None and row[0] != expected:
        raise ProjectError(
            f"cannot {verb} here: the next step to {verb} is '{row[1]}', which another window or process made; "
            f"the undo list now shows it, {verb} again to {verb} it"
        )


def _protected(current: BoxRecord | None, run_id: int) -> bool:
    """A box a run must not overwrite: a human's, or one written by a newer run."""
    if current is None:
        return False
    return current.source == "manual" or (current.run_id is not None and current.run_id > run_id)


def _owner_alive(params: dict[str, Any]) -> bool:
    """Whether the process recorded in a run's params still exists (on this host)."""
    pid = params.get("pid")
    if not isinstance(pid, int) or params.get("host") != socket.gethostname():
        # A run from before pids were recorded, or from another machine sharing the folder:
        # only the former can be judged; a foreign host's run is left as it is.
        return params.get("host") not in (None, socket.gethostname())
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's live process
    # The pid of a run killed long ago (or before a reboot) may name another process now: that
    # blocked the undo of the run's step for ever. Its start time tells them apart (Linux).
    recorded, current = params.get("process"), _process_identity(pid)
    return not (isinstance(recorded, str) and current is not None and current != recorded)


def _process_identity(pid: int) -> str | None:
    """A process's boot and start time, unlike any later process given the same pid (None: unknown)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):  # not Linux, or the process is gone
        return None
    return f"{boot}:{fields[19]}" if len(fields) > 19 else None  # field 22 of stat: start time in ticks


def storage_error(path: Path, error: sqlite3.Error, writing: bool = False) -> ProjectError:
    """The one-line error for a project file SQLite cannot use, naming the cause and the fix.

    A read-only folder and a full disk are not damage: telling the user to restore a backup over
    a good project would be the wrong fix.
    """
    text = str(error)
    folder = path.parent
    if "not a database" in text or "malformed" in text:  # damage, wherever the file is
        return SchemaError(f"{path}: not a readable SQLite database ({text}); restore it from a backup")
    if "full" in text:
        return StorageError(f"{path}: the disk is full ({text}); free some space and try again (what was saved before is intact)")
    if "readonly" in text or "read-only" in text or not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        return StorageError(
            f"{path}: cannot write here ({text}): the folder or file is read-only or not yours; "
            "copy the project folder somewhere writable, or fix its permissions"
        )
    if "locked" in text or "busy" in text:
        return StorageError(f"{path}: another process has held the project for 30 s ({text}); try again when it is done")
    if "disk I/O" in text or "unable to open" in text:
        return StorageError(f"{path}: cannot read or write the file ({text}); check the disk and its free space")
    if writing:
        return StorageError(f"{path}: the edit could not be saved ({text}); nothing was changed, try again")
    return SchemaError(f"{path}: not a readable SQLite database ({text}); restore it from a backup")


def _refuse_foreign(conn: sqlite3.Connection, path: Path, check: Callable[[sqlite3.Connection], str | None]) -> None:
    """Close and refuse a database holding something this tool never writes (schema.foreign_object)."""
    try:
        problem = check(conn)
    except sqlite3.DatabaseError as error:
        conn.close()
        raise storage_error(path, error) from error
    if problem is not None:
        conn.close()
        raise SchemaError(
            f"{path}: holds {problem}, which this tool never makes: the file is damaged or was altered, and opening it "
            "could change or lose labels; restore a backup, or import its labels from an export instead"
        )


def _guard(conn: sqlite3.Connection) -> None:
    """Limits for a database that may be hostile: no value larger than schema.MAX_VALUE_BYTES is
    read into memory, and functions called from the file's schema are refused (trusted_schema)."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, schema.MAX_VALUE_BYTES)
    conn.execute("PRAGMA trusted_schema = OFF")


def _connect(path: Path, shown: Path | None = None) -> sqlite3.Connection:
    """A connection as every writer uses it; errors name `shown` (the file the user knows) or `path`."""
    try:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30.0)
        conn.row_factory = sqlite3.Row
        _guard(conn)
        conn.execute("PRAGMA busy_timeout = 30000")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a committed transaction survives a killed process (the WAL is in
        # the OS already); only a power cut can lose the last few commits.
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as error:
        raise storage_error(shown or path, error) from error
    return conn


def _move_into_place(staged: Path, target: Path) -> None:
    """Put `staged` at `target`, never over a file already there (FileExistsError)."""
    try:
        os.link(staged, target)  # atomic and never replaces: a project another process made meanwhile stays
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links (FAT, some network shares)
        if target.exists():  # (a create racing this one in that gap wins or loses whole; both are new)
            raise FileExistsError(target) from None
        os.replace(staged, target)


def _writable(path: Path) -> bool:
    """Whether the project file and its folder (for SQLite's journal) can be written."""
    return os.access(path.parent, os.W_OK) and os.access(path, os.W_OK)


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that never writes, for a project on a read-only disk.

    A project closed cleanly has everything in its main file (no -wal beside it), so SQLite may
    treat it as immutable: no lock or shared-memory file is needed where none can be made. With a
    -wal left by a crash, its last edits are only in that file, and ignoring it would show an
    older project: such a copy must be opened once where it can be written.
    """
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        raise StorageError(
            f"{path}: its last edits are still in {wal.name}, and this project cannot be written here (a read-only "
            "disk, or not yours); copy the project folder somewhere writable and open the copy"
        )
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True, isolation_level=None)
        conn.row_factory = sqlite3.Row
        _guard(conn)
        conn.execute("PRAGMA foreign_keys = ON")
    except sqlite3.DatabaseError as error:
        raise storage_error(path, error) from error
    return conn


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    # IMMEDIATE takes the write lock up front, so two writers queue on busy_timeout instead of
    # failing later with SQLITE_BUSY on lock upgrade.
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        if conn.in_transaction:  # SQLite rolls back by itself after some errors (a full disk)
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error:
        if conn.in_transaction:  # SQLite usually rolls back a failed COMMIT (a full disk) itself
            conn.execute("ROLLBACK")
        raise


def _migrate(conn: sqlite3.Connection, path: Path, found: int) -> None:
    # Two processes may open an old project at once. Each step re-reads the version under the
    # write lock, so only one process runs it (run twice, a step breaks on its own output). The
    # backup is a snapshot kept only if it still holds the old version: one taken after the other
    # process upgraded must not overwrite the old version's copy.
    backup = path.with_name(f"{path.stem}.v{found}.backup.sqlite")
    snapshot = path.with_name(f"{backup.name}.{os.getpid()}.tmp")
    target = sqlite3.connect(str(snapshot))
    try:
        conn.backup(target)
        old = schema.version(target) == found
    except BaseException:
        target.close()
        snapshot.unlink(missing_ok=True)  # a partial copy (a full disk): nothing is upgraded without one
        raise
    finally:
        target.close()
    if old and not backup.exists():
        os.replace(snapshot, backup)
    else:
        snapshot.unlink()
    for version in range(found, schema.SCHEMA_VERSION):
        step = schema.MIGRATIONS.get(version)
        if step is None:
            raise SchemaError(f"{path}: schema {found} is too old to upgrade; open it with an older version and re-export")
        with _transaction(conn):
            if (schema.version(conn) or 0) > version:
                continue  # another process ran this step while this one waited for the lock
            step(conn)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version + 1),))


MIN_BOX_SIDE = 2.0  # pixels of the box that must lie inside the frame, per side


def _check_box(x: float, y: float, w: float, h: float, frame: int, video: Video) -> None:
    values = (x, y, w, h)
    text = ",".join(f"{v:g}" for v in values)
    if not all(map(_finite, values)) or w <= 0 or h <= 0:
        raise ProjectError(f"box {text} on frame {frame + 1}: needs finite x,y and a positive width and height")
    if not 0 <= frame < video.frames:
        raise ProjectError(f"frame {frame + 1} is outside {video.name} (1..{video.frames})")
    if w > 4 * video.width or h > 4 * video.height:
        raise ProjectError(f"box {text} is far larger than the {video.width}x{video.height} frame of {video.name}; check its units")
    # What lies inside the frame is what the tracker starts from: a sliver (0.01 px, or the 0.5 px
    # corner of a box hanging off the frame) gives it nothing to track and aborted whole runs.
    inside_w = min(x + w, video.width) - max(x, 0.0)
    inside_h = min(y + h, video.height) - max(y, 0.0)
    if inside_w < MIN_BOX_SIDE or inside_h < MIN_BOX_SIDE:
        raise ProjectError(
            f"box {text} has less than {MIN_BOX_SIDE:g}x{MIN_BOX_SIDE:g} px inside the {video.width}x{video.height} "
            f"frame of {video.name}; draw it around the object, inside the frame"
        )


def _finite(value: float) -> bool:
    return value == value and value not in (float("inf"), float("-inf"))


# Frame folders named for what they hold, not for the sequence: LaSOT/OTB img/, MOT img1/, ...
_GENERIC_FRAME_FOLDERS = {"img", "img1", "images", "frames", "rgb", "color"}


def _video_name(path: Path) -> str:
    if path.is_dir() and path.name.lower() in _GENERIC_FRAME_FOLDERS:
        return path.parent.name  # the sequence's own name (a MOT import was "img1" for every video)
    return path.stem if path.is_file() else path.name


def _video(row: sqlite3.Row, folder: Path) -> Video:
    path = row["path"] if Path(row["path"]).is_absolute() else str(folder.resolve() / row["path"])
    access = "unverified"
    if row["media_index"]:
        with contextlib.suppress(ValueError, AttributeError):
            access = json.loads(row["media_index"]).get("access", access)
    elif Path(path).is_dir():
        access = "folder"
    return Video(
        row["id"], path, row["name"], row["content_hash"], row["size_bytes"], row["frames"],
        row["fps"], row["width"], row["height"], access,
    )


def _track(row: sqlite3.Row) -> Track:
    return Track(row["id"], row["video_id"], row["label"], row["color"], bool(row["hidden"]), row["description"],
                 row["category"], row["attributes"])


MAX_ATTRIBUTES = 64  # per object; a file with thousands is not a label schema


def attributes_text(values: Any) -> str:
    """Attributes as stored: a JSON object of non-empty string names and string values ("" for none).

    ProjectError for anything else (an imported file may hold any JSON there).
    """
    if not isinstance(values, dict) or len(values) > MAX_ATTRIBUTES or not all(
        isinstance(k, str) and k.strip() and len(k) <= 200 and isinstance(v, str) and len(v) <= 2000 for k, v in values.items()
    ):
        raise ProjectError(f"attributes must be at most {MAX_ATTRIBUTES} name -> text pairs (names not empty), e.g. color=red")
    return json.dumps({k.strip(): v for k, v in values.items()}, ensure_ascii=False) if values else ""


def _box(row: sqlite3.Row) -> BoxRecord:
    look = row["look"]
    # A project file is user input: a look that is not a number (SQLite keeps any value in a REAL
    # column) reads as none, so the review falls back to the score threshold.
    look = float(look) if isinstance(look, (int, float)) and -1.0 <= look <= 1.0 else None
    return BoxRecord(
        row["track_id"], row["frame"], row["x"], row["y"], row["w"], row["h"], row["source"], row["score"],
        bool(row["occluded"]), bool(row["out_of_view"]), row["run_id"], look,
    )


def _box_row(record: BoxRecord) -> dict[str, Any]:
    row = asdict(record)
    row["occluded"] = int(row["occluded"])
    row["out_of_view"] = int(row["out_of_view"])
    return row

