"""GOT-10k layout (docs/annotation-landscape.md §3.2), as the got10k toolkit, pytracking and
mmtracking read it.

    <split>/list.txt                             one sequence folder name per line
    <split>/GOT-10k_<Split>_000001/00000001.jpg  frames directly in the folder, 8-digit, 1-based
    .../groundtruth.txt                          x,y,w,h per frame, comma-separated floats
    .../absence.label                            one 0/1 per line (1 = absent)
    .../cover.label                              one 0..8 per line (8 = fully visible, 0 = none)
    .../cut_by_image.label                       one 0/1 per line (box crosses the image border)
    .../meta_info.ini                            [METAINFO] then key: value lines in the readers' order

pytracking reads meta_info.ini lines 5-9 by index and the toolkit literal-evals `resolution`, so
the key order is fixed. Our flags map as: out of view -> absence 1 / cover 0; fully occluded ->
cover 0; visible -> cover 8 (we do not record partial occlusion). A fully occluded frame without
a box is GOT-10k's "absent" (absence 1), so it reads back as out of view: the format has one
state for both.
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
    Provenance,
    add_imported_sequences,
    check_box,
    cut_by_image,
    dense_rows,
    export_videos,
    frame_lines,
    frame_rate,
    inside,
    link_frames,
    parse_numbers,
    read_text,
    safe_name,
    sequence_rows,
    single_object_track,
    staging,
)
from projects.store import Project

META_KEYS = ("url", "begin", "end", "anno_fps", "object_class", "motion_class", "major_class", "root_class", "motion_adverb", "resolution")


def export_got10k(project: Project, out: Path, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportReport:
    """Write every track as a GOT-10k sequence under `out/<split>/`."""
    pairs = export_videos(project, options)
    report = ExportReport(Path(out))
    started = time.perf_counter()
    split = safe_name(options.split).lower()
    if split not in ("train", "val", "test"):
        # got10k toolkit, got10k/datasets/got10k.py: assert subset in ['train', 'val', 'test'];
        # pytracking's GOT10KDataset reads any other split from train/.
        report.warnings.append(f"split {split!r}: the got10k toolkit reads only train, val and test")
    prefix = f"GOT-10k_{split.capitalize()}_"
    names = []
    provenance = Provenance(project)
    with staging(report.out, options.overwrite, project, "got10k", provenance) as tmp:
        writer = FrameWriter(project, options.jpeg_quality, progress, sum(v.frames for v, _ in pairs))
        for video, tracks in pairs:
            first = None
            for track in tracks:
                rows = dense_rows(project, track, video.frames)
                if not single_object_track(f"{video.name}/{track.label}", rows, report):
                    continue
                name = f"{prefix}{len(names) + 1:06d}"
                names.append(name)
                seq = tmp / split / name
                provenance.add(f"{split}/{name}", track, rows)
                if first is None:
                    writer.write_video(video, seq, lambda i: f"{i + 1:08d}.jpg")
                    first = seq
                else:
                    link_frames(first, seq)
                absent = [int(r is None or r.out_of_view or not r.has_box) for r in rows]
                cover = [0 if a or (r is not None and r.occluded) else 8 for a, r in zip(absent, rows)]
                lines = []
                for r in rows:
                    box = r.box if r is not None and r.has_box else (0.0, 0.0, 0.0, 0.0)
                    lines.append(",".join(f"{v:.4f}" for v in box))
                (seq / "groundtruth.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
                (seq / "absence.label").write_text("".join(f"{a}\n" for a in absent), encoding="utf-8")
                (seq / "cover.label").write_text("".join(f"{c}\n" for c in cover), encoding="utf-8")
                (seq / "cut_by_image.label").write_text("".join(f"{cut_by_image(r, video.width, video.height)}\n" for r in rows), encoding="utf-8")
                meta = {
                    "url": Path(video.path).as_uri() if Path(video.path).is_absolute() else video.path,
                    "begin": "00:00:00",
                    "end": _timestamp(video.frames / max(video.fps, 1e-6)),
                    "anno_fps": f"{video.fps:.10g}Hz",
                    "object_class": options.class_name or track.class_name,
                    "motion_class": "unknown",
                    "major_class": "unknown",
                    "root_class": "unknown",
                    "motion_adverb": "unknown",
                    "resolution": f"({video.width}, {video.height})",
                }
                meta.update(_source_meta(Path(video.path), meta["object_class"]))
                if meta_value(meta["object_class"]) != meta["object_class"]:
                    report.warnings.append(f"{name}: class {meta['object_class']!r} written as {meta_value(meta['object_class'])!r} "
                                           "(': ' and line breaks would make the GOT-10k readers disagree)")
                (seq / "meta_info.ini").write_text("[METAINFO]\n" + "".join(f"{k}: {meta_value(str(meta[k]))}\n" for k in META_KEYS), encoding="utf-8")
                report.sequences += 1
        (tmp / split / "list.txt").write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
        report.frames = writer.done
    report.seconds = time.perf_counter() - started
    return report


def meta_value(text: str) -> str:
    """A meta_info.ini value both readers read alike: no line break, no ': ' inside.

    The got10k toolkit takes `line.split(': ')[1]`, pytracking `line.split(': ')[-1]`
    (ltr/dataset/got10k.py): with ': ' in the value they read different classes.
    """
    text = " ".join(text.splitlines())
    while ": " in text:
        text = text.replace(": ", ":")
    return text


def _source_meta(folder: Path, object_class: str) -> dict[str, str]:
    """What a GOT-10k sequence the video was imported from says that a project does not store.

    The url (the original video, e.g. YouTube) names the video; the motion and class fields
    describe one object, so they are kept only for the track of the same object_class.
    """
    path = folder / "meta_info.ini"
    if not folder.is_dir() or not path.is_file():
        return {}
    try:
        source = read_meta(path)
    except FormatError:
        return {}  # an unreadable meta file only loses these extras; the export goes on
    keep = ["url"] + (["motion_class", "major_class", "root_class", "motion_adverb"] if source.get("object_class") == object_class else [])
    return {key: source[key] for key in keep if source.get(key)}


def _timestamp(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def read_meta(path: Path, root: Path | None = None) -> dict[str, str]:
    """meta_info.ini as the got10k toolkit reads it: drop line 0, split on ': '."""
    meta = {}
    for line in read_text(path, root).splitlines()[1:]:
        if ": " in line:
            key, value = line.split(": ", 1)
            meta[key.strip()] = value.strip()
    return meta


def import_got10k(project: Project, root: Path) -> list[int]:
    """Import GOT-10k sequences (a split folder with list.txt, or one sequence folder)."""
    root = Path(root)
    if (root / "list.txt").exists():
        listed = [name.strip() for name in read_text(root / "list.txt", root).splitlines() if name.strip()]
        seen: set[str] = set()
        repeated = next((name for name in listed if name in seen or seen.add(name)), None)
        if repeated is not None:  # each entry would become one more copy of the same track
            raise FormatError(f"{root / 'list.txt'}: lists {repeated} more than once; list each sequence once")
        sequences = [inside(root, root / name, root / "list.txt") for name in listed]
    elif (root / "groundtruth.txt").exists():
        sequences = [root]
    else:
        sequences = sorted(p.parent for p in root.rglob("groundtruth.txt") if (p.parent / "absence.label").exists())
    if not sequences:
        raise FormatError(f"{root}: no GOT-10k sequence (list.txt or <seq>/groundtruth.txt + absence.label) found")
    parsed = []
    for seq in sequences:
        gt_path = seq / "groundtruth.txt"
        boxes = [check_box(gt_path, n, parse_numbers(gt_path, line, n, 4)) for n, line in frame_lines(gt_path, root, seq)]
        absence = _labels(seq / "absence.label", len(boxes), {0, 1}, root=root)
        cover = _labels(seq / "cover.label", len(boxes), set(range(9)), default=8, root=root)
        occluded = [int(c == 0 and not a) for c, a in zip(cover, absence)]
        meta = read_meta(seq / "meta_info.ini", root) if (seq / "meta_info.ini").exists() else {}
        rows = sequence_rows(boxes, occluded, absence, gt_path)
        parsed.append(ParsedSequence(seq, meta.get("object_class", "object"), rows, fps=_hertz(meta.get("anno_fps", ""))))
    return add_imported_sequences(project, parsed, root.name)


def _hertz(text: str) -> float | None:
    """anno_fps as GOT-10k writes it ("10Hz"), or None when it is missing or not a rate."""
    try:
        value = float(text.strip().removesuffix("Hz"))
    except ValueError:
        return None
    return frame_rate(value)


def _labels(path: Path, frames: int, allowed: set[int], default: int = 0, root: Path | None = None) -> list[int]:
    if not path.exists():
        return [default] * frames
    values = [parse_numbers(path, line, n, 1)[0] for n, line in enumerate(read_text(path, root).splitlines(), 1) if line.strip()]
    if len(values) != frames:
        raise FormatError(f"{path}: {len(values)} lines for {frames} frames in groundtruth.txt")
    bad = next((n for n, v in enumerate(values, 1) if v not in allowed), None)
    if bad is not None:
        raise FormatError(f"{path}:{bad}: value {values[bad - 1]!r} is not one of {sorted(allowed)}")
    return [int(v) for v in values]
