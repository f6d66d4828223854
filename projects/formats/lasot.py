"""LaSOT layout (docs/annotation-landscape.md §3.1), as pytracking, the got10k toolkit, mmtracking
and the MATLAB toolkit read it.

    <class>/<class>-<k>/img/00000001.jpg ...   8-digit, 1-based JPEG frames
    <class>/<class>-<k>/groundtruth.txt        integer x,y,w,h per frame, comma, no spaces
    <class>/<class>-<k>/full_occlusion.txt     ONE line of N comma-separated 0/1
    <class>/<class>-<k>/out_of_view.txt        ONE line, same layout
    <class>/<class>-<k>/nlp.txt                one sentence
    annos/<seq>.txt, annos/absent/<seq>.txt    optional MATLAB-toolkit copies

One sequence per track. Integer boxes because mmtracking's converter parses them with int();
absent frames still get a line, `0,0,0,0`. Frames a track has no row for are written as out of
view (absent), since LaSOT has no "unlabelled" state; the report counts them.
"""

from __future__ import annotations

import time
from pathlib import Path

from projects.errors import FormatError
from projects.formats.common import (
    ExportOptions,
    ExportReport,
    FrameWriter,
    ParsedSequence,
    Progress,
    add_imported_sequences,
    as_int_box,
    check_box,
    dense_rows,
    export_videos,
    inside,
    link_frames,
    parse_numbers,
    read_text,
    safe_name,
    sequence_rows,
    staging,
)
from projects.store import Project


def export_lasot(project: Project, out: Path, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportReport:
    """Write every track as a LaSOT sequence under `out`."""
    pairs = export_videos(project, options)
    report = ExportReport(Path(out))
    started = time.perf_counter()
    total = sum(video.frames for video, _ in pairs)
    counters: dict[str, int] = {}
    with staging(report.out, options.overwrite, project, "lasot") as tmp:
        writer = FrameWriter(project, options.jpeg_quality, progress, total)
        for video, tracks in pairs:
            first_img = None
            for track in tracks:
                cls = safe_name(options.class_name or track.label)
                counters[cls] = counters.get(cls, 0) + 1
                seq_name = f"{cls}-{counters[cls]}"
                seq = tmp / cls / seq_name
                if first_img is None:
                    writer.write_video(video, seq / "img", lambda i: f"{i + 1:08d}.jpg")
                    first_img = seq / "img"
                else:
                    link_frames(first_img, seq / "img")
                rows = dense_rows(project, track, video.frames)
                unlabelled = sum(1 for r in rows if r is None)
                if unlabelled:
                    report.warnings.append(f"{seq_name}: {unlabelled} frames without a box written as out of view")
                boxes = [as_int_box(r) for r in rows]
                occlusion = [int(r is not None and r.occluded) for r in rows]
                out_of_view = [int(r is None or r.out_of_view or r.w <= 0) for r in rows]
                (seq / "groundtruth.txt").write_text("".join(f"{x},{y},{w},{h}\n" for x, y, w, h in boxes))
                (seq / "full_occlusion.txt").write_text(",".join(map(str, occlusion)) + "\n")
                (seq / "out_of_view.txt").write_text(",".join(map(str, out_of_view)) + "\n")
                (seq / "nlp.txt").write_text((options.description or track.description or track.label).strip() + "\n")
                if options.toolkit_annos:
                    (tmp / "annos" / "absent").mkdir(parents=True, exist_ok=True)
                    (tmp / "annos" / f"{seq_name}.txt").write_text((seq / "groundtruth.txt").read_text())
                    absent = [max(a, b) for a, b in zip(occlusion, out_of_view)]
                    (tmp / "annos" / "absent" / f"{seq_name}.txt").write_text("".join(f"{a}\n" for a in absent))
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
        boxes = [check_box(gt_path, n, parse_numbers(gt_path, line, n, 4)) for n, line in enumerate(read_text(gt_path).splitlines(), 1) if line.strip()]
        occlusion = _flag_line(seq / "full_occlusion.txt", len(boxes))
        out_of_view = _flag_line(seq / "out_of_view.txt", len(boxes))
        label = seq.name.rsplit("-", 1)[0] if "-" in seq.name else seq.parent.name
        nlp = read_text(seq / "nlp.txt").strip() if (seq / "nlp.txt").exists() else ""
        parsed.append(ParsedSequence(seq / "img", label, sequence_rows(boxes, occlusion, out_of_view, gt_path), nlp))
    return add_imported_sequences(project, parsed, Path(root).name)


def _flag_line(path: Path, frames: int) -> list[int]:
    """A one-line comma-separated 0/1 flag file (only row 0 is used, as pytracking does)."""
    if not path.exists():
        return [0] * frames
    lines = [line for line in read_text(path).splitlines() if line.strip()]
    if not lines:
        return [0] * frames
    values = parse_numbers(path, lines[0], 1)
    if any(v not in (0, 1) for v in values):
        raise FormatError(f"{path}:1: flags must be 0 or 1")
    if len(values) != frames:
        raise FormatError(f"{path}:1: {len(values)} flags for {frames} frames in groundtruth.txt")
    return [int(v) for v in values]
