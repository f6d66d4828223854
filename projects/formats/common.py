"""Shared pieces of the exporters and importers: atomic staging, frame writing, parsing checks."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2

from projects.errors import FormatError, ProjectError
from projects.media import MediaError, open_media
from projects.store import BoxRecord, Project, Track, Video, now
from sstrack.fileio import read_json_file
from sstrack.sequences import image_files

Progress = Callable[[int, int], bool | None]  # (done, total) -> False to cancel

MAX_COORD = 1e6  # a box coordinate beyond a million pixels is a broken file, not a real image


class ExportCancelled(FormatError):
    """The user cancelled; nothing was written under the final name."""


@dataclass(frozen=True)
class ExportOptions:
    """What to export and format-specific fields."""

    videos: list[int] | None = None  # None: every video that has tracks
    class_name: str | None = None  # one class for every track; default: each track's class (category, else label)
    description: str | None = None  # LaSOT nlp.txt; default: the track's description or label
    split: str = "train"  # GOT-10k split folder
    toolkit_annos: bool = False  # LaSOT: also the MATLAB toolkit's annos/ copies
    jpeg_quality: int = 95
    overwrite: bool = False


@dataclass
class ExportReport:
    """What an export wrote."""

    out: Path
    sequences: int = 0
    frames: int = 0
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the UI and CLI."""
        fps = self.frames / self.seconds if self.seconds > 0 else 0.0
        note = f"; {len(self.warnings)} warning(s)" if self.warnings else ""
        return f"exported {self.sequences} sequence(s), {self.frames} frames to {self.out} in {self.seconds:.1f} s ({fps:.0f} frames/s){note}"


EXPORT_MARKER = ".sstrack-export.json"  # inside the folder: exports written before 2026-12-06
MARKER_SUFFIX = ".sstrack-export.json"


def marker_path(out: Path) -> Path:
    """The export's marker file, beside its folder (`lasot/` -> `lasot.sstrack-export.json`).

    Not inside: readers list the export's root and take every entry for a sequence or a class
    (mmtracking's mot2coco and lasot2coco, pytracking's LaSOT loader), and TrackEval's TAO loader
    refuses a folder with two .json files.
    """
    room = 255 - len(MARKER_SUFFIX)  # a name's limit is 255 bytes
    name = out.name
    if len(name.encode()) > room:  # cut, and told apart from other names cut the same way
        name = _short(name, room - 9) + "-" + hashlib.sha256(name.encode()).hexdigest()[:8]
    return out.with_name(name + MARKER_SUFFIX)


def _file_stamp(path: Path) -> list[int]:
    """(size, mtime in ns) of a file as written: what tells our file from another of the same name."""
    info = path.lstat()
    return [info.st_size, info.st_mtime_ns]


def _our_marker(path: Path) -> dict[str, Any] | None:
    """The marker at `path` if it is one this tool wrote, else None."""
    try:  # the file may be another's: a huge or deeply nested one must not be read whole
        marker = read_json_file(path, 16 << 20)
    except (OSError, ValueError):
        return None
    return marker if isinstance(marker, dict) and marker.get("tool") == "sstrack-annotate" else None


def check_overwrite(out: Path, overwrite: bool, project: Project) -> None:
    """Refuse an export folder whose replacement could delete anything but an earlier export of ours.

    Overwrite replaces the whole folder, so it is allowed only for an empty folder or one this tool
    wrote and nobody added to since (its marker lists every file it wrote), and never for a folder
    holding the project or a source video, nor one inside a frame-folder video. The marker beside
    the folder is replaced too, so it must be ours where it exists.
    """
    if out.exists() and not out.is_dir():
        raise FormatError(f"{out}: is a file, not a folder; choose a folder for the export")
    protected = [project.folder.resolve(), *(Path(v.path).resolve() for v in project.videos())]
    for path in protected:
        if path == out or out in path.parents:
            raise FormatError(f"{out}: holds {path.name} (the project or one of its videos); export into another folder")
    for video in project.videos():
        # A frame folder is identified by every file below it: an export inside it would make the
        # project refuse its own video as "not the file it was added from".
        if Path(video.path).resolve() in out.parents:
            raise FormatError(f"{out}: is inside the frame folder of video {video.name}; export into another folder")
    sidecar = marker_path(out)
    if (sidecar.exists() or sidecar.is_symlink()) and (sidecar.is_symlink() or _our_marker(sidecar) is None):
        raise FormatError(f"{sidecar}: is not an export marker of this tool, and the export would replace it; move it or choose another folder")
    if not out.exists() or not any(out.iterdir()):
        return
    if not overwrite:
        raise FormatError(f"{out}: already exists and is not empty; choose another folder or allow overwrite")
    marker = sidecar if sidecar.is_file() else out / EXPORT_MARKER
    if not marker.is_file():
        raise FormatError(
            f"{out}: not an export of this tool (no {sidecar.name} beside it), so overwrite would delete files it "
            "did not write; choose another folder, or empty this one yourself"
        )
    foreign = _files_not_written_by_export(out, marker)
    if foreign:
        raise FormatError(
            f"{out}: holds {foreign[0]} ({len(foreign)} file(s) in all) that the earlier export did not write, and "
            "overwrite would delete them; move them out, or choose another folder"
        )


def _files_not_written_by_export(out: Path, marker: Path) -> list[str]:
    """Files under an earlier export that its marker does not list, or lists with another size or
    time (all of them for a marker without a list: older versions did not keep one, so nothing
    there is known to be ours).

    The stamps matter because the marker lies beside the folder: an export moved or deleted leaves
    it there, and a folder the user then makes at that path may hold a file of a listed name.
    """
    content = _our_marker(marker) or {}
    listed, stamps = content.get("files"), content.get("stamps")
    written: dict[str, Any] = {}
    if isinstance(listed, list):
        paired = stamps if isinstance(stamps, list) and len(stamps) == len(listed) else [None] * len(listed)
        written = {name: stamp for name, stamp in zip(listed, paired) if isinstance(name, str)}
    foreign = []
    for name in sorted(_relative_files(out)):
        if name == EXPORT_MARKER:
            continue
        if name not in written:
            foreign.append(name)
            continue
        with contextlib.suppress(OSError):
            if written[name] is not None and _file_stamp(out / name) != written[name]:
                foreign.append(name)
    return foreign


def _short(name: str, limit: int = 100) -> str:
    """`name` cut to `limit` UTF-8 bytes: a hidden sibling's name has room for its suffix."""
    return name.encode()[:limit].decode(errors="ignore")


def _relative_files(folder: Path) -> Iterator[str]:
    for root, dirs, files in os.walk(folder):  # links are listed, not followed
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            yield os.path.relpath(os.path.join(root, name), folder)


class Provenance:
    """Which model made which boxes, for every export.

    The formats' own files have no place for it (LaSOT, GOT-10k, MOT) or a loose one (COCO-VID and
    CVAT carry `maker` per box as an extra field). So the export's marker file (`marker_path`, beside
    its folder, out of the readers' way) lists the models by the first 12 hex digits of their sha256 and,
    per sequence and object, the runs of frames by maker: "manual", "interpolated", a model key, or
    "unknown model" for boxes tracked before runs recorded their model.
    """

    def __init__(self, project: Project) -> None:
        self.runs = project.run_models()
        self.models: dict[str, dict[str, Any]] = {}
        self.objects: list[dict[str, Any]] = []

    def maker(self, record: BoxRecord) -> str:
        """Who made this row: its source, or for a tracked one the key of the model that tracked it."""
        if record.source != "tracked":
            return record.source
        model = self.runs.get(record.run_id) if record.run_id is not None else None
        if not model:
            return "unknown model"
        key = str(model.get("sha256") or "")[:12] or str(model.get("name"))  # an untrained variant has no file
        self.models.setdefault(key, model)
        return key

    def add(self, sequence: str, track: Track, rows: list[BoxRecord | None] | list[BoxRecord], object_id: int | None = None) -> None:
        """One exported object: its rows' makers as [first frame, last frame, maker] runs (0-based frames)."""
        runs: list[list[Any]] = []
        for record in rows:
            if record is None:
                continue
            maker = self.maker(record)
            if runs and runs[-1][2] == maker and runs[-1][1] == record.frame - 1:
                runs[-1][1] = record.frame
            else:
                runs.append([record.frame, record.frame, maker])
        entry: dict[str, Any] = {"sequence": sequence, "name": track.label, "frames": runs}
        if object_id is not None:
            entry["object_id"] = object_id
        self.objects.append(entry)

    def as_dict(self) -> dict[str, Any]:
        """The marker file's "provenance" entry."""
        return {"frames": "0-based frame indices, first and last inclusive", "models": self.models, "objects": self.objects}


@contextlib.contextmanager
def staging(out: Path, overwrite: bool, project: Project, fmt: str = "", provenance: Provenance | None = None) -> Iterator[Path]:
    """Build an export in a hidden sibling folder, then rename it into place.

    A failure (including a full disk) or a cancel removes the partial folder: either the whole
    export appears under `out` or nothing does, and an existing export there is kept intact.
    `provenance`, filled while the export is written, goes into the marker file at the end,
    written beside the folder once the folder is in place.
    """
    try:
        out = Path(out).resolve()
        check_overwrite(out, overwrite, project)
    except (OSError, RuntimeError, ValueError) as error:  # a link loop, a name over 255 bytes, a NUL
        raise FormatError(f"{out}: not a folder this system can write to ({error}); choose another folder") from error
    made = [folder for folder in out.parents if not folder.exists()]  # deepest first: removed again if nothing lands
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{_short(out.name)}.partial-", dir=out.parent))
    except OSError as error:
        raise FormatError(f"{out}: cannot create the export folder ({error.strerror}); check the path and permissions") from error
    try:
        yield from _staged(out, tmp, overwrite, project, fmt, provenance)
    except BaseException:
        for folder in made:  # a failed or cancelled export leaves no folder it made behind
            with contextlib.suppress(OSError):
                folder.rmdir()  # only if empty
        raise


def _staged(out: Path, tmp: Path, overwrite: bool, project: Project, fmt: str, provenance: Provenance | None) -> Iterator[Path]:
    try:
        marker: dict[str, Any] = {"tool": "sstrack-annotate", "format": fmt, "created": now()}
        yield tmp
        if provenance is not None:
            marker["provenance"] = provenance.as_dict()
        # The files this export wrote: a later overwrite deletes nothing else (check_overwrite).
        marker["files"] = sorted(_relative_files(tmp))
        marker["stamps"] = [_file_stamp(tmp / name) for name in marker["files"]]  # a rename keeps them
        staged_marker = tmp.with_name(tmp.name + MARKER_SUFFIX)
        staged_marker.write_text(json.dumps(marker), encoding="utf-8")
        # Checked again at the swap: a file saved into `out` while the export ran must not go.
        check_overwrite(out, overwrite, project)
        old = None
        if out.exists() and overwrite:
            old = out.with_name(f".{_short(out.name)}.old-{os.getpid()}")
            os.replace(out, old)
        # rename(2) onto a folder that is not empty fails, so a folder filled since the check
        # above is never replaced without overwrite (os.replace would be the same call).
        os.rename(tmp, out)
        # After the folder: a marker that lists files the folder does not hold would let a later
        # overwrite pass files it did not write. The export is in place; should the marker fail
        # to land, a later overwrite of the folder is only refused, never wrong.
        try:
            os.replace(staged_marker, marker_path(out))
        except OSError:
            staged_marker.unlink(missing_ok=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tmp.with_name(tmp.name + MARKER_SUFFIX).unlink()
        if error.errno in (errno.ENOTEMPTY, errno.EEXIST):  # filled by someone else while this export ran
            raise FormatError(f"{out}: files appeared there during the export; nothing was replaced, choose another folder") from error
        reason = "no space left on device" if error.errno == errno.ENOSPC else (error.strerror or str(error))
        raise FormatError(f"export to {out} failed: {reason}; nothing was written there, free space or pick another folder") from error
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        with contextlib.suppress(OSError):
            tmp.with_name(tmp.name + MARKER_SUFFIX).unlink()
        raise


class FrameWriter:
    """Writes decoded frames as JPEG with real file I/O (so ENOSPC raises, unlike cv2.imwrite)."""

    def __init__(self, project: Project, quality: int, progress: Progress | None, total: int) -> None:
        self.project = project
        self.quality = quality
        self.progress = progress
        self.total = total
        self.done = 0
        self.started = time.perf_counter()

    def write_video(self, video: Video, folder: Path, name: Callable[[int], str]) -> int:
        """All frames of a video into `folder` with file names `name(index)`; returns the count."""
        folder.mkdir(parents=True, exist_ok=True)
        try:
            media = self.project.open_media(video.id)  # refuses a file swapped since it was added
        except MediaError as error:
            raise FormatError(f"cannot export {video.name}: {error}") from error
        with media:
            originals = _jpeg_originals(video, media.frame_count)
            if originals is not None:
                # A folder of JPEG frames is copied byte for byte: re-encoding would lose quality
                # at each round trip and make an export -> import -> export differ.
                for index, source in enumerate(originals):
                    with open(folder / name(index), "wb") as handle:
                        handle.write(source.read_bytes())
                    self.tick()
                return media.frame_count
            for index, frame in media.iter_frames(0, media.frame_count):
                ok, data = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, self.quality])
                if not ok:
                    raise FormatError(f"frame {index + 1} of {video.name} could not be encoded as JPEG")
                with open(folder / name(index), "wb") as handle:
                    handle.write(data.tobytes())
                self.tick()
            return media.frame_count

    def tick(self) -> None:
        """Count one frame and honour a cancel."""
        self.done += 1
        if self.progress is not None and self.progress(self.done, self.total) is False:
            raise ExportCancelled("export cancelled; nothing was written")


def _jpeg_originals(video: Video, frames: int) -> list[Path] | None:
    """The frame files of a video that is a folder of JPEGs, one per frame, else None."""
    folder = Path(video.path)
    if not folder.is_dir():
        return None
    files = image_files(folder)
    if len(files) != frames or any(f.suffix.lower() not in (".jpg", ".jpeg") for f in files):
        return None
    return files


def link_frames(source: Path, target: Path) -> None:
    """Give a second sequence the same frames: hard links where possible, else copies."""
    target.mkdir(parents=True, exist_ok=True)
    # Only the frames: a linked label file would be rewritten through the shared inode.
    for file in sorted(source.glob("*.jpg")):
        try:
            os.link(file, target / file.name)
        except OSError:
            shutil.copy2(file, target / file.name)


def export_videos(project: Project, options: ExportOptions) -> list[tuple[Video, list[Track]]]:
    """The videos to export with their tracks (videos without tracks are left out)."""
    chosen = options.videos
    pairs = []
    for video in project.videos():
        if chosen is not None and video.id not in chosen:
            continue
        tracks = project.tracks(video.id)
        if tracks:
            pairs.append((video, tracks))
    if not pairs:
        raise FormatError(f"nothing to export from {project.folder}: no video has a track yet")
    return pairs


def dense_rows(project: Project, track: Track, frames: int) -> list[BoxRecord | None]:
    """The track's row on every frame (None where it has none)."""
    rows: list[BoxRecord | None] = [None] * frames
    for record in project.boxes(track.id):
        if 0 <= record.frame < frames:
            rows[record.frame] = record
    return rows


def single_object_track(name: str, rows: list[BoxRecord | None], report: ExportReport) -> bool:
    """Whether a track can be a single-object sequence (LaSOT, GOT-10k); warns as the readers need.

    Their readers (pytracking's LaSOT/GOT-10k loaders and evaluation, the got10k toolkit) start
    every tracker from the box on frame 1: a track without any box is left out, and one without a
    box on frame 1 is written as it is, with a warning.
    """
    if not any(r is not None and r.has_box for r in rows):
        report.warnings.append(f"{name}: no box on any frame; left out (a single-object sequence needs one)")
        return False
    if rows[0] is None or not rows[0].has_box:
        report.warnings.append(f"{name}: no box on frame 1; single-object readers start trackers from frame 1's box")
    return True


def unique_folder_name(text: str, used: set[str]) -> str:
    """safe_name(text), with '_' appended until it is not in `used` (two videos of one name); records it."""
    name = safe_name(text)
    while name in used:
        name += "_"
    used.add(name)
    return name


def safe_name(text: str) -> str:
    """A folder-safe version of a label ('red car' -> 'red_car'; letters of any script are kept)."""
    cleaned = re.sub(r"[^\w.-]+", "_", text.strip()).strip("._")
    return capped_name(cleaned or "object", text)


def capped_name(name: str, text: str, limit: int = 100) -> str:
    """`name` within `limit` UTF-8 bytes, so that with a suffix ('-12', '_') it stays a legal file
    name (255 bytes): a longer one ends in a hash of the full `text`, which keeps names distinct.
    One label of 92 CJK characters made a whole LaSOT export fail with "File name too long"."""
    if len(name.encode()) <= limit:
        return name
    return name.encode()[: limit - 9].decode(errors="ignore") + "_" + hashlib.sha1(text.encode()).hexdigest()[:8]


def parse_numbers(path: Path, line: str, number: int, count: int | None = None) -> list[float]:
    """Numbers of one text line (comma, tab or space separated); FormatError names file:line."""
    parts = [p for p in re.split(r"[,\s]+", line.strip()) if p]
    try:
        values = [float(p) for p in parts]
    except ValueError as error:
        raise FormatError(f"{path}:{number}: not numbers: {line.strip()[:60]!r}; fix or remove the line") from error
    if count is not None and len(values) != count:
        raise FormatError(f"{path}:{number}: expected {count} values, found {len(values)}")
    return values


MAX_FPS = 1000.0  # high-speed footage runs at hundreds of frames per second; past this it is a broken file


def frame_rate(value: object) -> float | None:
    """A frame rate read from a file, or None when it is missing or not a rate (0 < fps <= MAX_FPS)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        fps = float(value)
    except OverflowError:  # an integer no float holds (10**400)
        return None
    return fps if math.isfinite(fps) and 0 < fps <= MAX_FPS else None


def check_box(path: Path, number: int, box: list[float]) -> list[float]:
    """Refuse NaN, infinite, negative-size or absurdly large boxes from a file."""
    if len(box) != 4 or not all(math.isfinite(v) for v in box):
        raise FormatError(f"{path}:{number}: box {box} is not four finite numbers")
    if box[2] < 0 or box[3] < 0:
        raise FormatError(f"{path}:{number}: box {box} has a negative width or height")
    if any(abs(v) > MAX_COORD for v in box):
        raise FormatError(f"{path}:{number}: box {box} is far outside any image (> {MAX_COORD:g} px)")
    return box


def inside(root: Path, path: Path, source: Path) -> Path:
    """`path` resolved (symlinks followed), refused unless it stays under the dataset folder `root`.

    An annotation file is data: its `../` or absolute file names, `imDir=../`, `list.txt` entries
    or symlinks must not make an import read (or register as videos) files outside the dataset.
    """
    resolved, base = Path(path).resolve(), Path(root).resolve()
    if resolved != base and base not in resolved.parents:
        raise FormatError(f"{source}: refers to {path}, outside the dataset folder {base}; move the files inside it")
    return resolved


MAX_LABEL_FILE_BYTES = 1 << 30  # TAO's largest annotation json is ~0.3 GB; anything past 1 GiB is not labels


def read_text(path: Path, root: Path | None = None) -> str:
    """A label file's text; FormatError if missing, not a regular file, too large or undecodable,
    or (with `root`, the dataset folder) a symlink to a file outside it.

    Only regular files are read, and at most MAX_LABEL_FILE_BYTES of them: a label file that is
    a FIFO (hangs forever) or /dev/zero (fills memory) must fail at once with one line. A label
    file symlinked to a private file elsewhere would otherwise be stored (nlp.txt as a track's
    description) and written out again by the next export.
    """
    path = Path(path)
    if root is not None and path.is_symlink():
        target, base = path.resolve(), Path(root).resolve()
        if base not in target.parents:
            raise FormatError(f"{path}: a link to {target}, outside the dataset folder {base}; copy the file into the dataset")
    try:
        if not path.exists():
            raise FormatError(f"{path}: missing; the dataset layout is incomplete")
        if not path.is_file():
            raise FormatError(f"{path}: not a regular file (a device, FIFO or folder); point the import at real label files")
        with open(path, "rb") as handle:
            data = handle.read(MAX_LABEL_FILE_BYTES + 1)
        if len(data) > MAX_LABEL_FILE_BYTES:
            raise FormatError(f"{path}: larger than {MAX_LABEL_FILE_BYTES >> 20} MiB, too large for a label file; check the file")
        # utf-8-sig: a byte order mark (Windows editors write one) is not part of the first value.
        return data.decode("utf-8-sig", errors="strict")
    except (OSError, UnicodeDecodeError) as error:
        raise FormatError(f"{path}: cannot be read as text ({error}); check the file") from error


# Parsed JSON and XML take 20-100x their text in memory ({} is 2 bytes of text, 64 of dict), so
# the file-size cap alone let a 1 GiB file of {} need ~24 GiB. A budget of values bounds it at a
# few GiB; TAO's largest annotation file (~0.3 GB) holds about a tenth of it.
MAX_DOCUMENT_VALUES = 30_000_000


def check_document_size(path: Path, text: str, kind: str) -> None:
    """Refuse a JSON or XML document with more values or elements than MAX_DOCUMENT_VALUES, before
    it is parsed (an upper bound from its separators: ',' and ':' for JSON, '<' for XML)."""
    count = text.count(",") + text.count(":") if kind == "json" else text.count("<")
    if count > MAX_DOCUMENT_VALUES:
        raise FormatError(
            f"{path}: about {count:,} {'values' if kind == 'json' else 'elements'}, more than any annotation file "
            f"(limit {MAX_DOCUMENT_VALUES:,}); split it, or check that it is an annotation file"
        )


def frame_lines(path: Path, root: Path | None, frames_folder: Path) -> list[tuple[int, str]]:
    """A one-line-per-frame file's (number, line) pairs, refused before they are parsed when there
    are more lines than the frame folder has frames (3.3M lines for 68 frames took 1.3 GB)."""
    text = read_text(path, root)
    frames = len(image_files(frames_folder)) if frames_folder.is_dir() else 0
    if text.count("\n") > frames + 1:
        lines = sum(1 for line in io.StringIO(text) if line.strip())  # counted without a list of them
        if lines > frames:
            raise FormatError(f"{path}: {lines} lines for the {frames} frames of {frames_folder}; one line per frame")
    return [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


@dataclass(frozen=True)
class ParsedSequence:
    """One imported sequence, parsed and checked before anything is written."""

    frames_folder: Path
    label: str
    rows: list[dict]
    description: str = ""
    fps: float | None = None  # the rate the format records, when it records one


def add_imported_sequences(project: Project, sequences: list[ParsedSequence], label: str) -> list[int]:
    """Register each frame folder as a video with one track holding its rows.

    All sequences go in one transaction (one undo step): a bad one leaves the project unchanged.
    """
    infos = []
    for seq in sequences:
        try:
            with open_media(seq.frames_folder) as media:
                info = {"frames": media.frame_count, "fps": seq.fps or media.fps, "width": media.width, "height": media.height}
        except MediaError as error:
            raise FormatError(str(error)) from error
        for row in seq.rows:
            if not 0 <= row["frame"] < info["frames"]:
                raise FormatError(f"{seq.frames_folder}: a box on frame {row['frame'] + 1} but the folder has {info['frames']} frames")
        infos.append(info)
    track_ids = []
    videos: dict[tuple, Video] = {}
    try:
        with project.edit(f"import {label}"):
            for seq, info in zip(sequences, infos):
                # Sequences with the same frames are tracks of one video (our LaSOT / GOT-10k
                # exports write one sequence per track, their frames hard-linked).
                key = same_frames_key(seq.frames_folder)
                video = videos.get(key) if key is not None else None
                if video is None:
                    video = project.add_video(seq.frames_folder, info)
                    if key is not None:
                        videos[key] = video
                track = project.add_track(video.id, seq.label)
                if seq.description:
                    project.update_track(track.id, description=seq.description)
                project.put_boxes([BoxRecord(track_id=track.id, **row) for row in seq.rows])
                track_ids.append(track.id)
    except ProjectError as error:
        raise FormatError(f"{label}: {error}") from error
    return track_ids


def same_frames_key(folder: Path) -> tuple | None:
    """What identifies a frame folder's frames: their count, every file's size, and the bytes of
    five frames spread over it.

    The first and last frames alone merged two clips that fade from and to black into one
    video. Every frame's bytes would be sure but would read a whole dataset; sizes are a stat.
    """
    files = image_files(folder)
    if not files:
        return None
    try:
        sizes = hashlib.sha1(",".join(str(f.stat().st_size) for f in files).encode()).hexdigest()
        spread = sorted({0, len(files) // 4, len(files) // 2, 3 * len(files) // 4, len(files) - 1})
        digest = tuple(hashlib.sha1(files[i].read_bytes()).hexdigest() for i in spread)
    except OSError:
        return None
    return (len(files), sizes, *digest)


def sequence_rows(boxes: list[list[float]], occluded: list[int], out_of_view: list[int], path: Path) -> list[dict]:
    """Rows for an imported sequence: frames with a box or an absence flag."""
    rows = []
    for frame, box in enumerate(boxes):
        occ = bool(occluded[frame]) if frame < len(occluded) else False
        oov = bool(out_of_view[frame]) if frame < len(out_of_view) else False
        has_box = box[2] > 0 and box[3] > 0
        if not (has_box or occ or oov):
            continue
        x, y, w, h = box if has_box else (None, None, None, None)  # the formats' 0,0,0,0 is "no box"
        rows.append({"frame": frame, "x": x, "y": y, "w": w, "h": h, "source": "manual", "occluded": occ, "out_of_view": oov})
    if not rows:
        raise FormatError(f"{path}: no box on any frame; nothing to import")
    return rows


def file_record(track_id: int, frame: int, x: float, y: float, w: float, h: float, **fields: Any) -> BoxRecord | None:
    """A row read from a file: a zero-area box is "no box" (kept only if it marks absence)."""
    if w > 0 and h > 0:
        return BoxRecord(track_id, frame, x, y, w, h, **fields)
    if fields.get("occluded") or fields.get("out_of_view"):
        return BoxRecord(track_id, frame, None, None, None, None, **fields)
    return None


def as_int_box(record: BoxRecord | None) -> list[int]:
    """Integer x,y,w,h (rounded) for the integer formats; zeros for no box."""
    if record is None or not record.has_box:
        return [0, 0, 0, 0]
    return [int(round(v)) for v in record.box]


def cut_by_image(record: BoxRecord | None, width: int, height: int) -> int:
    """1 when the box extends beyond the image border (GOT-10k cut_by_image)."""
    if record is None or not record.has_box:
        return 0
    x, y, w, h = record.box
    return int(x < 0 or y < 0 or x + w > width or y + h > height)

