"""MOTChallenge layout (CVAT "MOT", X-AnyLabeling), one sequence per video, all its tracks.

    <video>/img1/000001.jpg ...    6-digit, 1-based frames
    <video>/gt/gt.txt              frame(1-based),id,x,y,w,h,not_ignored,class_id,visibility
    <video>/gt/labels.txt          class names, line i = class_id i (CVAT)
    <video>/gt/labels.json         {"classes": {label: class_id}, "tracks": {id: label}} (ours)
    <video>/seqinfo.ini            [Sequence] name, imDir, frameRate, seqLength, imWidth, imHeight, imExt

MOT has no out-of-view state: such frames simply have no row. A fully occluded box is written with
visibility 0.

class_id follows the MOT17 table TrackEval reads (trackeval/datasets/mot_challenge_2d_box.py,
class_name_to_class_id): a label naming a table class gets its id, any other label an id from 14
up. labels.txt lists the table then those labels; labels.json keeps each track's own label, so a
round trip keeps "person" although its class is pedestrian.
"""

from __future__ import annotations

import configparser
import json
import logging
import math
import time
from pathlib import Path

from projects.errors import FormatError
from projects.formats.common import (
    ExportOptions,
    ExportReport,
    FrameWriter,
    Progress,
    Provenance,
    check_box,
    check_document_size,
    export_videos,
    file_record,
    frame_rate,
    inside,
    parse_numbers,
    read_text,
    staging,
    unique_folder_name,
)
from projects.media import MediaError, open_media
from projects.store import Project

_logger = logging.getLogger(__name__)

MOT17_CLASSES = [
    "pedestrian", "person_on_vehicle", "car", "bicycle", "motorbike", "non_mot_vehicle", "static_person",
    "distractor", "occluder", "occluder_on_ground", "occluder_full", "reflection", "crowd",
]  # class_id = index + 1


def mot_class_id(label: str) -> int | None:
    """The MOT17 class_id a label names ('Person', 'static person' -> 1, 7), or None."""
    key = "_".join(label.strip().lower().replace("-", " ").replace("_", " ").split())
    key = "pedestrian" if key == "person" else key
    return MOT17_CLASSES.index(key) + 1 if key in MOT17_CLASSES else None


def _one_line(label: str, class_id: int) -> str:
    """A class name as one non-blank line: labels.txt's line i names class i, so a label with a
    line break or a blank one shifted every later class (labels.json keeps the exact label)."""
    return " ".join(label.split()) or f"class{class_id}"


def export_mot(project: Project, out: Path, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportReport:
    """Write one MOT sequence per video under `out`."""
    pairs = export_videos(project, options)
    report = ExportReport(Path(out))
    started = time.perf_counter()
    used: set[str] = set()
    provenance = Provenance(project)
    with staging(report.out, options.overwrite, project, "mot", provenance) as tmp:
        writer = FrameWriter(project, options.jpeg_quality, progress, sum(v.frames for v, _ in pairs))
        for video, tracks in pairs:
            name = unique_folder_name(video.name, used)
            seq = tmp / name
            writer.write_video(video, seq / "img1", lambda i: f"{i + 1:06d}.jpg")
            labels = list(MOT17_CLASSES)
            classes: dict[str, int] = {}
            track_labels: dict[str, str] = {}
            lines = []
            unscored: list[str] = []
            for number, track in enumerate(tracks, start=1):
                label = options.class_name or track.class_name
                if label not in classes:
                    known = mot_class_id(label)
                    if known is None:  # not a MOT17 class: ids after the table, never colliding with it
                        labels.append(label)
                        known = len(labels)
                    if known != 1:
                        unscored.append(label)
                    classes[label] = known
                track_labels[str(number)] = label if options.class_name else track.label  # each object's own name
                rows = project.boxes(track.id)
                provenance.add(name, track, rows, object_id=number)
                for r in rows:
                    if r.out_of_view or not r.has_box:
                        continue
                    visibility = 0.0 if r.occluded else 1.0
                    lines.append((r.frame + 1, number, f"{r.frame + 1},{number},{r.x:.2f},{r.y:.2f},{r.w:.2f},{r.h:.2f},1,{classes[label]},{visibility:.1f}"))
            (seq / "gt").mkdir(parents=True, exist_ok=True)
            if unscored:
                # trackeval/datasets/mot_challenge_2d_box.py (MOT17 defaults) scores only class 1
                # (pedestrian) and refuses gt class ids above 13 ("invalid gt classes").
                report.warnings.append(
                    f"{name}: {', '.join(repr(label) for label in unscored[:3])}{' ...' if len(unscored) > 3 else ''} "
                    "are not pedestrians, the one class TrackEval's MOT17 loader scores (ids above 13 it refuses); "
                    "to score these tracks with TrackEval, export with one class, pedestrian (--class-name pedestrian)"
                )
            (seq / "gt" / "gt.txt").write_text("".join(text + "\n" for _, _, text in sorted(lines)), encoding="utf-8")
            (seq / "gt" / "labels.txt").write_text("".join(f"{_one_line(label, number)}\n" for number, label in enumerate(labels, 1)), encoding="utf-8")
            (seq / "gt" / "labels.json").write_text(json.dumps({"classes": classes, "tracks": track_labels}, indent=1), encoding="utf-8")
            (seq / "seqinfo.ini").write_text(
                f"[Sequence]\nname={name}\nimDir=img1\nframeRate={round(video.fps)}\nseqLength={video.frames}\n"
                f"imWidth={video.width}\nimHeight={video.height}\nimExt=.jpg\n",
                encoding="utf-8",
            )
            report.sequences += 1
        report.frames = writer.done
    report.seconds = time.perf_counter() - started
    return report


def import_mot(project: Project, root: Path) -> list[int]:
    """Import MOT sequences (folders with gt/gt.txt and img1/) at or under `root`."""
    root = Path(root)
    sequences = [root] if (root / "gt" / "gt.txt").exists() else sorted(p.parent.parent for p in root.rglob("gt/gt.txt"))
    if not sequences:
        raise FormatError(f"{root}: no MOT sequence (<seq>/gt/gt.txt + img1/) found")
    # Read and check every sequence first; the write transaction then only writes rows.
    parsed = [_read_sequence(seq) for seq in sequences]
    track_ids = []
    with project.edit(f"import {root.name}"):
        for seq in parsed:
            track_ids += _write_sequence(project, *seq)
    return track_ids


def _read_sequence(
    seq: Path,
) -> tuple[Path, dict, dict[int, list[tuple[int, list[float], int, float]]], list[str], dict[str, str], dict[int, str]]:
    gt_path = seq / "gt" / "gt.txt"
    labels_path = seq / "gt" / "labels.txt"
    labels = [line.strip() for line in read_text(labels_path, seq).splitlines() if line.strip()] if labels_path.exists() else []
    track_labels, class_names = _track_labels(seq / "gt" / "labels.json", seq)
    image_dir, frame_rate = _seqinfo(seq)
    img_dir = inside(seq, seq / image_dir, seq / "seqinfo.ini")
    try:
        with open_media(img_dir) as media:
            info = {"frames": media.frame_count, "fps": frame_rate or media.fps, "width": media.width, "height": media.height}
    except MediaError as error:
        raise FormatError(str(error)) from error
    per_id: dict[int, list[tuple[int, list[float], int, float]]] = {}
    ignored = 0
    for n, line in enumerate(read_text(gt_path, seq).splitlines(), 1):
        if not line.strip():
            continue
        values = parse_numbers(gt_path, line, n)
        if len(values) < 6:
            raise FormatError(f"{gt_path}:{n}: expected frame,id,x,y,w,h[,conf,class,visibility]")
        if not all(math.isfinite(v) and v == int(v) and abs(v) <= 2**53 for v in values[:2] + values[7:8]):
            # int() would truncate: id 1.5 would merge into id 1, frame 2.9 land on frame 2.
            raise FormatError(f"{gt_path}:{n}: frame, id and class must be finite whole numbers: {line.strip()[:60]!r}")
        frame, ident = int(values[0]) - 1, int(values[1])
        if not 0 <= frame < info["frames"]:
            raise FormatError(f"{gt_path}:{n}: frame {frame + 1} outside 1..{info['frames']}")
        box = check_box(gt_path, n, values[2:6])
        if len(values) > 6 and values[6] == 0:
            # conf 0 in gt marks a row to ignore (MOT17 distractors, reflections, ...): TrackEval
            # (mot_challenge_2d_box.py, zero_marked) and mmtracking's mot2coco leave it out.
            ignored += 1
            continue
        class_id = int(values[7]) if len(values) > 7 else 1
        # Visibility -1 is MOT15's "not given", not "hidden"; MOT17's 0.0 is fully occluded.
        visibility = values[8] if len(values) > 8 and values[8] >= 0 else 1.0
        per_id.setdefault(ident, []).append((frame, box, class_id, visibility))
    if ignored:
        _logger.info("%s: %d ignore rows (conf 0) left out", gt_path, ignored)
    return img_dir, info, per_id, labels, track_labels, class_names


def _track_labels(path: Path, root: Path | None = None) -> tuple[dict[str, str], dict[int, str]]:
    """Each track's own label and each class id's name, from our labels.json ({} when absent)."""
    if not path.exists():
        return {}, {}
    try:
        text = read_text(path, root)
        check_document_size(path, text, "json")
        doc = json.loads(text)
        tracks, classes = doc.get("tracks", {}), doc.get("classes", {})
    except (json.JSONDecodeError, RecursionError, AttributeError) as error:
        raise FormatError(f"{path}: not a labels.json object ({type(error).__name__}); fix or remove it") from error
    if not isinstance(tracks, dict) or not all(isinstance(v, str) for v in tracks.values()):
        raise FormatError(f"{path}: \"tracks\" must map track ids to label names; fix or remove it")
    if not isinstance(classes, dict) or not all(isinstance(v, int) for v in classes.values()):
        raise FormatError(f"{path}: \"classes\" must map class names to class ids; fix or remove it")
    return tracks, {number: name for name, number in classes.items()}


def _write_sequence(
    project: Project, img_dir: Path, info: dict, per_id: dict[int, list[tuple[int, list[float], int, float]]], labels: list[str],
    track_labels: dict[str, str], class_names: dict[int, str],
) -> list[int]:
    if not per_id:
        return []
    video = project.add_video(img_dir, info)
    track_ids = []
    for ident, rows in sorted(per_id.items()):
        class_id = rows[0][2]
        # Our own label first, then labels.txt (CVAT), then TrackEval's MOT17 names.
        table = labels or MOT17_CLASSES
        class_name = class_names.get(class_id) or (table[class_id - 1] if 0 < class_id <= len(table) else f"class{class_id}")
        label = track_labels.get(str(ident)) or class_name
        track = project.add_track(video.id, label, category=class_name)
        records = [file_record(track.id, frame, *box, source="manual", occluded=visibility == 0.0) for frame, box, _, visibility in rows]
        project.put_boxes([r for r in records if r is not None])
        track_ids.append(track.id)
    return track_ids


def _seqinfo(seq: Path) -> tuple[str, float | None]:
    """imDir and frameRate of seqinfo.ini (img1 and None without one)."""
    ini = seq / "seqinfo.ini"
    if ini.exists():
        parser = configparser.ConfigParser()
        try:
            parser.read_string(read_text(ini, seq))
            rate = parser.get("Sequence", "frameRate", fallback="")
            fps = float(rate) if rate.strip() else None
            return parser.get("Sequence", "imDir", fallback="img1"), frame_rate(fps)
        except (configparser.Error, ValueError) as error:
            # configparser's messages span several lines; the first one says what is wrong.
            raise FormatError(f"{ini}: malformed ({str(error).splitlines()[0]}); fix or remove it") from error
    return "img1", None
