"""LaSOT layout (docs/annotation-landscape.md §3.1), as pytracking, the got10k toolkit, mmtracking
and the MATLAB toolkit read it.

    <class>/<class>-<k>/img/00000001.jpg ...   8-digit, 1-based JPEG frames
    <class>/<class>-<k>/groundtruth.txt        integer x,y,w,h per frame, 1-based, comma, no spaces
    <class>/<class>-<k>/full_occlusion.txt     ONE line of N comma-separated 0/1
    <class>/<class>-<k>/out_of_view.txt        ONE line, same layout
    <class>/<class>-<k>/nlp.txt                one sentence
    annos/<seq>.txt, annos/absent/<seq>.txt    optional MATLAB-toolkit copies

One sequence per track. Integer boxes because mmtracking's converter parses them with int();
absent frames still get a line, `0,0,0,0`. Boxes are clipped to the frame and written 1-based
(MATLAB pixel indices, as LaSOT ships them): pytracking's robust evaluation takes x <= 0 or y <= 0
as an invalid frame, so a 0-based box on the left or top border would be dropped. The class part
of a sequence name never holds `-`: pytracking (ltr/dataset/lasot.py, pytracking/evaluation/
lasotdataset.py) takes `seq_name.split('-')[0]` as the class, as does mmtracking's lasot2coco. Frames a track has no row for are written as out of
view (absent), since LaSOT has no "unlabelled" state; the report counts them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from projects.errors import FormatError
from projects.formats.common import (
    ExportOptions,
    ExportReport,
    FrameWriter,
    ParsedSequence,
    Progress,
    Provenance,
    add_imported_sequences,
    capped_name,
    check_box,
    cut_by_image,
    dense_rows,
    export_videos,
    frame_lines,
    inside,
    link_frames,
    parse_numbers,
    read_text,
    sequence_rows,
    single_object_track,
    staging,
)
from projects.store import BoxRecord, Project

ABSENT = [0, 0, 0, 0]


def lasot_class(label: str) -> str:
    """The LaSOT class for a label: letters (any script), digits and `_` only ('red-car' -> 'red_car')."""
    # `-` separates class and index in `<class>-<k>` and readers split at the first one; other
    # letters are fine in folder names (pytracking reads them as they are): 'Hünd' stays 'Hünd'.
    cleaned = re.sub(r"[^\w]+", "_", label.strip()).strip("_")
    return capped_name(cleaned, label) if cleaned else "object"


def lasot_box(record: BoxRecord | None, width: int, height: int) -> list[int]:
    """The 1-based integer box clipped to the frame, or 0,0,0,0 when none is left inside it."""
    if record is None or not record.has_box:
        return list(ABSENT)
    # Round the edges, not the size, so the clipped box never reaches past the last pixel.
    x0, y0 = round(max(0.0, record.x)), round(max(0.0, record.y))
    x1, y1 = round(min(float(width), record.x + record.w)), round(min(float(height), record.y + record.h))
    if x1 <= x0 or y1 <= y0:
        return list(ABSENT)
    return [x0 + 1, y0 + 1, x1 - x0, y1 - y0]


def export_lasot(project: Project, out: Path, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportReport:
    """Write every track as a LaSOT sequence under `out`."""
    pairs = export_videos(project, options)
    report = ExportReport(Path(out))
    started = time.perf_counter()
    total = sum(video.frames for video, _ in pairs)
    counters: dict[str, int] = {}
    renamed: dict[str, str] = {}
    provenance = Provenance(project)
    with staging(report.out, options.overwrite, project, "lasot", provenance) as tmp:
        writer = FrameWriter(project, options.jpeg_quality, progress, total)
        for video, tracks in pairs:
            first_img = None
            for track in tracks:
                rows = dense_rows(project, track, video.frames)
                if not single_object_track(f"{video.name}/{track.label}", rows, report):
                    continue
                label = options.class_name or track.class_name
                cls = lasot_class(label)
                if cls != label and label not in renamed:
                    renamed[label] = cls
                    report.warnings.append(f"label {label!r} written as LaSOT class {cls!r} (a class holds only letters, digits and _)")
                counters[cls] = counters.get(cls, 0) + 1
                seq_name = f"{cls}-{counters[cls]}"
                seq = tmp / cls / seq_name
                provenance.add(f"{cls}/{seq_name}", track, rows)
                if first_img is None:
                    writer.write_video(video, seq / "img", lambda i: f"{i + 1:08d}.jpg")
                    first_img = seq / "img"
                else:
                    link_frames(first_img, seq / "img")
                unlabelled = sum(1 for r in rows if r is None)
                if unlabelled:
                    report.warnings.append(f"{seq_name}: {unlabelled} frames without a box written as out of view")
                boxes = [lasot_box(r, video.width, video.height) for r in rows]
                # Readers drop a frame whose box has no whole pixel (pytracking: valid = w > 0 & h > 0).
                vanished = sum(1 for r, b in zip(rows, boxes) if r is not None and r.has_box and not r.out_of_view and b == ABSENT)
                if vanished:
                    report.warnings.append(f"{seq_name}: {vanished} boxes with no whole pixel inside the frame written as out of view")
                clipped = sum(cut_by_image(r, video.width, video.height) for r in rows if r is not None and r.has_box)
                if clipped:
                    report.warnings.append(f"{seq_name}: {clipped} boxes clipped to the {video.width}x{video.height} frame")
                occlusion = [int(r is not None and r.occluded) for r in rows]
                # A box wholly outside the frame leaves nothing to write: the target is out of view.
                out_of_view = [int(r is None or r.out_of_view or b == ABSENT) for r, b in zip(rows, boxes)]
                (seq / "groundtruth.txt").write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes), encoding="utf-8")
                (seq / "full_occlusion.txt").write_text(",".join(map(str, occlusion)) + "\n", encoding="utf-8")
                (seq / "out_of_view.txt").write_text(",".join(map(str, out_of_view)) + "\n", encoding="utf-8")
                (seq / "nlp.txt").write_text((options.description or track.description or track.label).strip() + "\n", encoding="utf-8")
                if options.toolkit_annos:
                    if report.sequences == 0:
                        report.warnings.append(
                            "annos/ (for the MATLAB toolkit) lies beside the class folders, where pytracking's and "
                            "mmtracking's LaSOT readers take it for a class: leave it out for those"
                        )
                    (tmp / "annos" / "absent").mkdir(parents=True, exist_ok=True)
                    (tmp / "annos" / f"{seq_name}.txt").write_text((seq / "groundtruth.txt").read_text(), encoding="utf-8")
                    absent = [max(a, b) for a, b in zip(occlusion, out_of_view)]
                    (tmp / "annos" / "absent" / f"{seq_name}.txt").write_text("".join(f"{a}\n" for a in absent), encoding="utf-8")
                report.sequences += 1
        report.frames = writer.done
    report.seconds = time.perf_counter() - started
    return report


def find_sequences(root: Path) -> list[Path]:
    """LaSOT sequence folders (holding groundtruth.txt and img/) at or under `root`."""
    root = Path(root)
    found = sorted(p.parent for p in root.rglob("groundtruth.txt") if (p.parent / "img").is_dir())
    if not found:
        raise FormatError(f"{root}: no LaSOT sequence (<class>-<k>/img + groundtruth.txt) found")
    return found


def import_lasot(project: Project, root: Path) -> list[int]:
    """Import every LaSOT sequence under `root` (a dataset, a class or a sequence folder)."""
    parsed = []
    for seq in find_sequences(root):
        inside(root, seq / "img", seq)  # a symlinked img/ must not pull in frames from elsewhere
        gt_path = seq / "groundtruth.txt"
        boxes = [check_box(gt_path, n, parse_numbers(gt_path, line, n, 4)) for n, line in frame_lines(gt_path, root, seq / "img")]
        # groundtruth.txt is 1-based; back to our 0-based pixels (0,0,0,0 absent rows stay as they are).
        boxes = [[x - 1, y - 1, w, h] if w > 0 and h > 0 else [x, y, w, h] for x, y, w, h in boxes]
        occlusion = _flag_line(seq / "full_occlusion.txt", len(boxes), root)
        out_of_view = _flag_line(seq / "out_of_view.txt", len(boxes), root)
        label = seq.name.rsplit("-", 1)[0] if "-" in seq.name else seq.parent.name
        nlp = read_text(seq / "nlp.txt", root).strip() if (seq / "nlp.txt").exists() else ""
        parsed.append(ParsedSequence(seq / "img", label, sequence_rows(boxes, occlusion, out_of_view, gt_path), nlp))
    return add_imported_sequences(project, parsed, Path(root).name)


def _flag_line(path: Path, frames: int, root: Path | None = None) -> list[int]:
    """A one-line comma-separated 0/1 flag file (only row 0 is used, as pytracking does)."""
    if not path.exists():
        return [0] * frames
    lines = [line for line in read_text(path, root).splitlines() if line.strip()]
    if not lines:
        return [0] * frames
    values = parse_numbers(path, lines[0], 1)
    if any(v not in (0, 1) for v in values):
        raise FormatError(f"{path}:1: flags must be 0 or 1")
    if len(values) != frames:
        raise FormatError(f"{path}:1: {len(values)} flags for {frames} frames in groundtruth.txt")
    return [int(v) for v in values]
