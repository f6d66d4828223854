"""CVAT for video 1.1 XML, the format of the tool most of our users come from.

    <video>/annotations.xml    one CVAT task per video (import it into a CVAT task made from the
                               same video: Actions > Upload annotations > "CVAT 1.1")

The layout follows CVAT's own dumper (cvat/apps/dataset_manager/formats/cvat.py): `<track
id label source>` holding one `<box frame outside occluded keyframe xtl ytl xbr ybr z_order>` per
frame, frames numbered from 0 in the video; a track ends with an `outside="1"` keyframe on the
frame after its last box, and CVAT interpolates the frames between two keyframes it is not given.

What maps to what:
- every box is a keyframe (`keyframe="1"`): CVAT's importer keeps only keyframes and would
  re-interpolate the rest; our source and score ride along as `sstrack_source` / `sstrack_score`
  attributes, which CVAT's parser ignores, so our own round trip keeps them;
- out of view is `outside="1"`, also for a box kept on a frame marked out of view (our
  `sstrack_box="1"` says so, for our round trip); a fully occluded frame without a box is
  `outside="1"` with `occluded="1"` (CVAT needs a box to show "occluded", so CVAT shows it as outside);
  in a file from CVAT, outside is out of view whatever its occluded flag says;
- an object without any box yet is an `<sstrack_object label>` element, which CVAT skips (a
  `<track>` without a shape fails CVAT's whole upload);
- a gap in a track (frames without any row) and the frame after its last box get an `outside="1"`
  keyframe without our attributes: our import drops those (a round trip is identical); in a file
  from CVAT every outside keyframe is an out-of-view mark (CVAT has no "not annotated").
- non-box shapes (polygons, points, skeletons, ...) and `<image>` blocks are not ours: they are
  skipped on import, and the import says so.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import re
import time
import xml.etree.ElementTree as ET
from pathlib import Path

from projects.errors import FormatError, MediaError, ProjectError
from projects.formats.common import (
    ExportCancelled,
    ExportOptions,
    ExportReport,
    Progress,
    Provenance,
    check_document_size,
    export_videos,
    read_text,
    staging,
    unique_folder_name,
)
from projects.media import open_media
from projects.store import SOURCES, BoxRecord, Project, Track, Video

_logger = logging.getLogger(__name__)
MAX_COORD = 1e6
# Characters XML 1.0 cannot hold even escaped: CVAT and expat reject a file with any of them, and a
# label can carry one in from an import or the API ("car\x01" from a COCO category).
_XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


# -- export -----------------------------------------------------------------------------------------
def export_cvat(project: Project, out: Path, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportReport:
    """Write one CVAT for video 1.1 annotations.xml per video under `out`."""
    pairs = export_videos(project, options)
    report = ExportReport(Path(out))
    started = time.perf_counter()
    used: set[str] = set()
    provenance = Provenance(project)
    with staging(report.out, options.overwrite, project, "cvat", provenance) as tmp:
        for video, tracks in pairs:
            name = unique_folder_name(video.name, used)
            (tmp / name).mkdir()
            document = _document(project, video, tracks, options, provenance, name)
            ET.indent(document, space="  ")
            text, dropped = _XML_FORBIDDEN.subn("", ET.tostring(document, encoding="unicode"))
            if dropped:
                report.warnings.append(f"{video.name}: {dropped} control character(s) in labels, attributes or names "
                                       "left out (XML cannot hold them)")
            (tmp / name / "annotations.xml").write_bytes(b"<?xml version='1.0' encoding='utf-8'?>\n" + text.encode("utf-8", "replace"))
            report.sequences += len(tracks)
            report.frames += video.frames
            if progress is not None and progress(report.frames, sum(v.frames for v, _ in pairs)) is False:
                raise ExportCancelled("export cancelled; nothing was written")
    report.seconds = time.perf_counter() - started
    return report


def _document(project: Project, video: Video, tracks: list[Track], options: ExportOptions, provenance: Provenance,
              folder: str) -> ET.Element:
    root = ET.Element("annotations")
    ET.SubElement(root, "version").text = "1.1"
    meta = ET.SubElement(root, "meta")
    task = ET.SubElement(meta, "task")
    for tag, value in (("name", video.name), ("size", video.frames), ("mode", "interpolation"), ("overlap", 0),
                       ("start_frame", 0), ("stop_frame", video.frames - 1), ("frame_filter", "")):
        ET.SubElement(task, tag).text = str(value)
    labels = ET.SubElement(task, "labels")
    seen: dict[str, str] = {}
    names: dict[str, dict[str, None]] = {}  # each label's attribute names, in first-seen order
    for track in tracks:
        label = options.class_name or track.class_name
        seen.setdefault(label, track.color)
        names.setdefault(label, {}).update(dict.fromkeys(track.attribute_map))
    for label, color in seen.items():
        element = ET.SubElement(labels, "label")
        ET.SubElement(element, "name").text = label
        ET.SubElement(element, "color").text = color
        ET.SubElement(element, "type").text = "rectangle"
        attributes = ET.SubElement(element, "attributes")
        for name in names[label]:
            # CVAT's label schema: an immutable text attribute (one value per object, on every shape).
            spec = ET.SubElement(attributes, "attribute")
            for tag, value in (("name", name), ("mutable", "False"), ("input_type", "text"), ("default_value", ""), ("values", "")):
                ET.SubElement(spec, tag).text = value
    size = ET.SubElement(task, "original_size")
    ET.SubElement(size, "width").text = str(video.width)
    ET.SubElement(size, "height").text = str(video.height)
    # CVAT's <source> is the uploaded file's name; a frame folder (often "img") goes by its video's name.
    source = ET.SubElement(meta, "source", sstrack_content_hash=video.content_hash)  # tells same-named videos apart
    source.text = Path(video.path).name if Path(video.path).is_file() else video.name
    number = 0
    for track in tracks:
        label = options.class_name or track.class_name
        rows = project.boxes(track.id)
        if not rows:
            # An object defined before any box was drawn. CVAT's importer (formats/cvat.py,
            # load_anno) reads track.shapes[0] at every </track> and fails the whole upload on a
            # track without shapes; it skips elements it does not know, so the object goes here.
            empty = ET.SubElement(root, "sstrack_object", label=label)
            if track.label != label:
                empty.set("sstrack_name", track.label)
            continue
        element = ET.SubElement(root, "track", id=str(number), label=label, source="manual")
        if track.label != label:
            element.set("sstrack_name", track.label)  # the object's own name; CVAT keeps only the class
        provenance.add(folder, track, rows, object_id=number)
        _write_track(element, rows, video.frames, track.attribute_map, provenance)
        number += 1
    return root


def _write_track(element: ET.Element, rows: list[BoxRecord], frames: int, attributes: dict[str, str], provenance: Provenance) -> None:
    """Every row as a keyframe (CVAT would re-interpolate, i.e. replace, any box that is not one)."""
    boxes = [r.box for r in rows if r.has_box]
    last = boxes[0] if boxes else (0.0, 0.0, 1.0, 1.0)  # a box-less state still needs coordinates
    previous: BoxRecord | None = None
    for record in rows:
        if previous is not None and previous.has_box and record.frame > previous.frame + 1:
            _box(element, previous.frame + 1, last, outside=True, extra=attributes)  # a gap: the track ends there
        if record.has_box:
            last = record.box
        _box(element, record.frame, last, outside=not record.has_box or record.out_of_view, record=record, extra=attributes,
             maker=provenance.maker(record))
        previous = record
    if previous is not None and previous.has_box and previous.frame + 1 < frames:
        _box(element, previous.frame + 1, last, outside=True, extra=attributes)


def _box(element: ET.Element, frame: int, box: tuple[float, float, float, float], outside: bool, record: BoxRecord | None = None,
         extra: dict[str, str] | None = None, maker: str | None = None) -> None:
    """One keyframe shape; `extra`: the object's attributes, written on every shape as CVAT does."""
    x, y, w, h = box
    attributes = {
        "frame": str(frame), "keyframe": "1", "outside": str(int(outside)),
        "occluded": str(int(record is not None and record.occluded)),
        "xtl": f"{x:.2f}", "ytl": f"{y:.2f}", "xbr": f"{x + w:.2f}", "ybr": f"{y + h:.2f}", "z_order": "0",
    }
    if record is not None:
        attributes["sstrack_source"] = record.source
        if maker is not None and maker != record.source:
            attributes["sstrack_maker"] = maker  # the model's key in the marker beside the export
        if record.score is not None:
            attributes["sstrack_score"] = f"{record.score:.4f}"
        if record.has_box and record.out_of_view:
            attributes["sstrack_box"] = "1"  # outside for CVAT, but our box is kept on that frame
    shape = ET.SubElement(element, "box", attributes)
    for name, value in (extra or {}).items():
        ET.SubElement(shape, "attribute", name=name).text = value


# -- import -----------------------------------------------------------------------------------------
def import_cvat(project: Project, path: Path) -> list[int]:
    """Import a CVAT for video 1.1 annotations.xml (or a folder holding them) into its video.

    The video is the project's video named in `<meta><source>`, else that file beside the XML
    (added to the project). Boxes are in CVAT's original frame size; a video of another size
    with the same aspect ratio gets them scaled, any other size is refused.
    """
    path = Path(path)
    files = [path] if path.is_file() else sorted(path.rglob("annotations.xml"))
    if not files:
        raise FormatError(f"{path}: no CVAT annotations.xml found")
    parsed = [_parse(project, file) for file in files]  # every file checked before anything is written
    # A video beside the XML is opened and measured before the write lock: indexing a long video
    # there kept every other writer waiting (past their 30 s, for a long one).
    targets = [_find_video(project, video_path, file, content_hash) for file, video_path, content_hash, _ in parsed]
    infos = {target: _media_info(target) for target in targets if isinstance(target, Path)}
    added: dict[Path, Video] = {}
    track_ids: list[int] = []
    try:
        with project.edit(f"import {path.name}"):
            for (file, _video_path, _hash, tracks), target in zip(parsed, targets):
                if isinstance(target, Path):
                    if target not in added:
                        added[target] = project.add_video(target, infos[target])
                    video = added[target]
                else:
                    video = target
                before = _TracksBefore(project, video)
                for name, label, attributes, rows in tracks:
                    records = [r for r in (_record(0, row, video, file) for row in rows) if r is not None]
                    twin = before.same_as(name, label, records)
                    if twin is not None:
                        raise FormatError(
                            f"{file}: its track {name!r} is already track {twin} of {video.name}, box for box "
                            "(imported before?); delete that track first to import it again"
                        )
                    track = project.add_track(video.id, name, category=label)
                    if attributes:
                        project.update_track(track.id, attributes=attributes)
                    project.put_boxes([dataclasses.replace(r, track_id=track.id) for r in records])
                    track_ids.append(track.id)
    except FormatError:
        raise  # already names its file
    except ProjectError as error:
        raise FormatError(f"{path}: {error}") from error
    return track_ids


class _TracksBefore:
    """The video's tracks before this import, to find one the file would add a second time.

    CVAT imports into a video already in the project, so importing the same file twice doubled
    every object, silently. Boxes are compared as CVAT writes them (two decimals).
    """

    def __init__(self, project: Project, video: Video) -> None:
        self._project = project
        self._by_name: dict[tuple[str, str], list[Track]] = {}
        for track in project.tracks(video.id):
            self._by_name.setdefault((track.label, track.class_name), []).append(track)  # "" category: the label
        self._signatures: dict[int, tuple] = {}

    def same_as(self, name: str, label: str, records: list[BoxRecord]) -> int | None:
        """The id of a track of this name and class with exactly these boxes, if there is one."""
        wanted = _signature(records)
        for track in self._by_name.get((name, label), []):
            if track.id not in self._signatures:
                self._signatures[track.id] = _signature(self._project.boxes(track.id))
            if self._signatures[track.id] == wanted:
                return track.id
        return None


def _signature(records: list[BoxRecord]) -> tuple:
    return tuple(sorted((r.frame, r.x is None, *(round(v or 0.0, 2) for v in (r.x, r.y, r.w, r.h))) for r in records))


def _parse(project: Project, file: Path) -> tuple[Path, Path | None, str | None, list[tuple[str, str, dict[str, str], list[dict]]]]:
    text = read_text(file)
    check_document_size(file, text, "xml")
    try:
        # Python's expat refuses entity-expansion bombs and never fetches external entities.
        root = ET.fromstring(text)
    except ET.ParseError as error:
        raise FormatError(f"{file}: not well-formed XML ({error}); export 'CVAT for video 1.1' from CVAT again") from error
    if root.tag != "annotations":
        raise FormatError(f"{file}: not a CVAT annotations file (root <{root.tag}>)")
    if root.find("track") is None and root.find("image") is not None:
        raise FormatError(f"{file}: this is 'CVAT for images'; export the task as 'CVAT for video 1.1'")
    source = (root.findtext("meta/source") or root.findtext("meta/task/name") or "").strip()
    content_hash = root.find("meta/source").get("sstrack_content_hash") if root.find("meta/source") is not None else None
    # A job's export (CVAT's "Export job annotations": bindings.py, JobData) has <meta><job> and
    # <meta><original_size>, and names no video: it goes to the project's only video.
    job = not source and root.find("meta/job") is not None
    if not source and not job:
        raise FormatError(f"{file}: names no video (<meta><source>); cannot tell which video the boxes belong to")
    size = (root.findtext("meta/task/original_size/width") or root.findtext("meta/original_size/width"),
            root.findtext("meta/task/original_size/height") or root.findtext("meta/original_size/height"))
    skipped = 0
    tracks = []
    for element in root.findall("track"):
        label = (element.get("label") or "object").strip() or "object"
        name = (element.get("sstrack_name") or "").strip() or label
        rows = []
        attributes: dict[str, str] = {}
        for shape in element:
            if shape.tag != "box":
                skipped += shape.tag != "attribute"
                continue
            rows.append(_shape(file, shape))
            if not attributes:  # the object's attributes: the first shape's (per-frame values are not kept)
                attributes = {a.get("name") or "": a.text or "" for a in shape.findall("attribute") if a.get("name")}
        if any(r["ours"] for r in rows):
            # Our own export: an outside shape without our source is the end-of-track marker
            # CVAT needs after a last box or before a gap, not an out-of-view mark.
            rows = [r for r in rows if r["ours"] or not r["outside"]]
        # A track with no shape at all is an object defined before any box was drawn (our exports
        # before 2026-12-06 wrote one so): kept, with its name and class. One of only polygons or
        # points is not a box track.
        if rows or not any(shape.tag != "attribute" for shape in element):
            tracks.append((name, label, attributes, sorted(rows, key=lambda r: r["frame"])))
    for element in root.findall("sstrack_object"):  # our exports' objects without a box yet
        label = (element.get("label") or "object").strip() or "object"
        tracks.append(((element.get("sstrack_name") or "").strip() or label, label, {}, []))
    if skipped:
        _logger.warning("%s: %d non-box shapes (polygons, points, skeletons, ...) skipped; only boxes are imported", file, skipped)
    if not tracks:
        raise FormatError(f"{file}: no box track; nothing to import")
    original = _original_size(file, size) if all(size) else None
    for _name, _label, _attributes, rows in tracks:
        for row in rows:
            row["original"] = original
    return file, Path(source) if source else None, content_hash, tracks


def _original_size(file: Path, size: tuple[str | None, str | None]) -> tuple[float, float]:
    """The task's <original_size>, which the boxes are scaled from: a real image size or an error."""
    try:
        width, height = float(size[0] or ""), float(size[1] or "")
    except ValueError as error:
        raise FormatError(f"{file}: <original_size> is not a number ({error}); export the task from CVAT again") from error
    if not all(math.isfinite(v) and 1 <= v <= MAX_COORD for v in (width, height)):
        raise FormatError(f"{file}: <original_size> {size[0]}x{size[1]} is not an image size; export the task from CVAT again")
    return width, height


def _shape(file: Path, shape: ET.Element) -> dict:
    try:
        frame = int(shape.get("frame", ""))
        xtl, ytl, xbr, ybr = (float(shape.get(k, "")) for k in ("xtl", "ytl", "xbr", "ybr"))
    except ValueError as error:
        raise FormatError(f"{file}: a <box> without a valid frame or xtl/ytl/xbr/ybr ({error})") from error
    if not all(math.isfinite(v) and abs(v) <= MAX_COORD for v in (xtl, ytl, xbr, ybr)) or frame < 0:
        raise FormatError(f"{file}: <box frame={frame}> has coordinates outside any image")
    source = shape.get("sstrack_source")
    keyframe = shape.get("keyframe", "1") == "1"
    try:
        score = float(shape.get("sstrack_score") or "nan")
    except ValueError as error:
        raise FormatError(f"{file}: <box frame={frame}> has a sstrack_score that is not a number ({error})") from error
    return {
        "frame": frame, "box": (xtl, ytl, xbr - xtl, ybr - ytl), "outside": shape.get("outside") == "1",
        "ours": source is not None,
        "kept_box": shape.get("sstrack_box") == "1",
        "occluded": shape.get("occluded") == "1",
        "source": source if source in SOURCES else ("manual" if keyframe else "interpolated"),
        "score": score if math.isfinite(score) else None,
    }


def _media_info(path: Path) -> dict[str, float]:
    try:
        with open_media(path) as media:
            return {"frames": media.frame_count, "fps": media.fps, "width": media.width, "height": media.height}
    except MediaError as error:
        raise FormatError(str(error)) from error


def _find_video(project: Project, source: Path | None, file: Path, content_hash: str | None = None) -> Video | Path:
    """The project's video the XML names, or the file of that name beside the XML (to be added);
    for a job's export, which names none (`source` None), the project's only video.

    Two videos of one name (day1/cam, day2/cam) are told apart by the content hash our exports
    write beside the name; CVAT's own files name the video only.
    """
    if source is None:
        videos = project.videos()
        if len(videos) != 1:
            raise FormatError(
                f"{file}: a CVAT job's export names no video, and the project holds {len(videos)}; import it into a "
                "project holding only that video, or export the whole task from CVAT"
            )
        return videos[0]
    matches = [v for v in project.videos() if Path(v.path).name == source.name or v.name == source.stem]
    if len(matches) > 1 and content_hash:
        matches = [v for v in matches if v.content_hash == content_hash] or matches
    if len(matches) > 1:
        raise FormatError(
            f"{file}: {len(matches)} videos of the project match its video {source.name} "
            f"({', '.join(str(v.id) for v in matches)}); rename one (or import into a project holding one of them)"
        )
    if matches:
        return matches[0]
    beside = file.parent / source.name
    if beside.is_file():
        return beside.resolve()
    raise FormatError(
        f"{file}: its video {source.name} is not in the project; add it first (sstrack-project add-video) or put it beside the XML"
    )


def _record(track_id: int, row: dict, video: Video, file: Path) -> BoxRecord | None:
    """Our row for a CVAT shape: outside is a box-less state (out of view, or occluded when
    flagged so); a zero-area box that is not outside carries nothing and is dropped."""
    if row["frame"] >= video.frames:
        raise FormatError(f"{file}: a box on frame {row['frame']} but {video.name} has frames 0..{video.frames - 1}")
    x, y, w, h = row["box"]
    if row["original"] is not None and row["original"] != (video.width, video.height):
        ow, oh = row["original"]
        if abs(ow / oh - video.width / video.height) > 0.01:
            raise FormatError(
                f"{file}: made on {ow:g}x{oh:g} frames but {video.name} is {video.width}x{video.height}; "
                "import it into the video the CVAT task was made from"
            )
        scale = video.width / ow  # CVAT keeps boxes in the task's original size
        x, y, w, h = x * scale, y * scale, w * scale, h * scale
        if not all(abs(v) <= MAX_COORD for v in (x, y, w, h)):  # checked unscaled in _shape; scaling can grow them
            raise FormatError(f"{file}: <box frame={row['frame']}> lies far outside {video.name}'s frames once scaled from {ow:g}x{oh:g}")
    if row["outside"] and row["kept_box"] and w > 0 and h > 0:
        return BoxRecord(track_id, row["frame"], x, y, w, h, row["source"], row["score"], occluded=row["occluded"], out_of_view=True)
    if row["outside"]:
        # Ours write a fully occluded frame without a box as outside + occluded. CVAT's outside is
        # always "not in view": its dumper (dump_as_cvat_interpolation) copies the last shape's
        # occluded flag onto the outside keyframe that ends a track.
        hidden = row["occluded"] and row["ours"]
        return BoxRecord.absent(track_id, row["frame"], out_of_view=not hidden, occluded=hidden,
                                source=row["source"], score=row["score"])
    if w <= 0 or h <= 0:
        return None
    return BoxRecord(track_id, row["frame"], x, y, w, h, row["source"], row["score"], occluded=row["occluded"])
