"""COCO-VID (mmtracking CocoVideoDataset) with TAO's spellings too (docs/annotation-landscape.md §3.5).

    annotations.json   {categories, videos, images, annotations, tracks}
    <video>/img/00000001.jpg ...

Images carry `video_id`, a 0-based `frame_id` and TAO's `frame_index`; annotations carry both
`instance_id` and `track_id`, plus `occluded` / `full_occlusion` / `out_of_view`, and our
provenance (`source`: manual / tracked / interpolated, `score`) so a round trip keeps it.

There is no separate TAO mode: every export carries TAO's spellings, so every video also gets
TAO's `neg_category_ids` and `not_exhaustive_category_ids` (tao/toolkit/tao/tao.py indexes them on
each video and raises KeyError without them; empty lists claim nothing about other classes).
A row without a box (flags only) is not an annotation: COCO's and TAO's evaluators would count a
zero-area box as ground truth, so it is left out and the report counts it.

A box on a frame where the object is hidden (fully occluded or out of view) must not count as a
visible object, so it is written as the readers' ignore region:
- `iscrowd: 1`: pycocotools' COCOeval._prepare sets `gt['ignore'] = 'iscrowd' in gt and
  gt['iscrowd']`, overwriting any `ignore` field, so iscrowd is the only way to make it ignored;
- `ignore: 1`: mmdet/mmtracking's CocoVideoDataset._parse_ann_info skips `ann.get('ignore')`;
- `visibility: 0.0`, as mmtracking's mot2coco writes it and its MOT datasets filter on;
- `occluded` / `full_occlusion` / `out_of_view` say which, and tell our importer that this ignore
  region is one object's box, not a crowd region (a plain iscrowd annotation is not imported).
  Read back, only `full_occlusion` means fully occluded: other files' bare `occluded` (ImageNet
  VID through mmtracking) marks a partly occluded, visible box.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

from projects.errors import FormatError, ProjectError
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
    read_text,
    staging,
    unique_folder_name,
)
from projects.media import MediaError, open_media
from projects.store import SOURCES, Project
from sstrack.sequences import image_files


def export_cocovid(project: Project, out: Path, options: ExportOptions = ExportOptions(), progress: Progress | None = None) -> ExportReport:
    """Write all videos' frames and one annotations.json under `out`."""
    pairs = export_videos(project, options)
    report = ExportReport(Path(out))
    started = time.perf_counter()
    categories: dict[str, int] = {}
    doc: dict[str, list] = {"categories": [], "videos": [], "images": [], "annotations": [], "tracks": []}
    used_names: set[str] = {"annotations.json"}  # no video folder may take the document's name
    provenance = Provenance(project)
    with staging(report.out, options.overwrite, project, "cocovid", provenance) as tmp:
        writer = FrameWriter(project, options.jpeg_quality, progress, sum(v.frames for v, _ in pairs))
        for video_id, (video, tracks) in enumerate(pairs, start=1):
            name = unique_folder_name(video.name, used_names)
            writer.write_video(video, tmp / name / "img", lambda i: f"{i + 1:08d}.jpg")
            doc["videos"].append({
                "id": video_id, "name": name, "fps": video.fps, "width": video.width, "height": video.height,
                "neg_category_ids": [], "not_exhaustive_category_ids": [],
            })
            first_image = len(doc["images"]) + 1
            for frame in range(video.frames):
                doc["images"].append({
                    "id": first_image + frame, "video_id": video_id, "frame_id": frame, "frame_index": frame,
                    "file_name": f"{name}/img/{frame + 1:08d}.jpg", "width": video.width, "height": video.height,
                })
            flag_only = 0
            for track in tracks:
                label = options.class_name or track.class_name
                category = categories.setdefault(label, len(categories) + 1)
                instance = len(doc["tracks"]) + 1
                attributes = track.attribute_map
                doc["tracks"].append({"id": instance, "category_id": category, "video_id": video_id, "name": track.label,
                                      "attributes": attributes})
                rows = project.boxes(track.id)
                provenance.add(name, track, rows, object_id=instance)
                for record in rows:
                    if not record.has_box:
                        flag_only += 1
                        continue
                    hidden = record.occluded or record.out_of_view
                    doc["annotations"].append({
                        "id": len(doc["annotations"]) + 1, "image_id": first_image + record.frame, "video_id": video_id,
                        "instance_id": instance, "track_id": instance, "category_id": category,
                        "bbox": [record.x, record.y, record.w, record.h], "area": record.w * record.h,
                        "iscrowd": int(hidden), "ignore": int(hidden),
                        "occluded": record.occluded, "full_occlusion": record.occluded, "out_of_view": record.out_of_view,
                        "visibility": 0.0 if hidden else 1.0,
                        "source": record.source, "score": record.score, "maker": provenance.maker(record),
                        "attributes": attributes,  # where CVAT's COCO export puts them
                    })
            report.sequences += len(tracks)
            if flag_only:
                report.warnings.append(f"{name}: {flag_only} frames with flags but no box left out (no zero-area annotations)")
        doc["categories"] = [{"id": i, "name": n} for n, i in categories.items()]
        doc["models"] = [{"maker": key, **model} for key, model in provenance.models.items()]  # what each "maker" key is
        (tmp / "annotations.json").write_text(json.dumps(doc), encoding="utf-8")
        report.frames = writer.done
    report.seconds = time.perf_counter() - started
    return report


def import_cocovid(project: Project, path: Path) -> list[int]:
    """Import a COCO-VID / TAO json (frames read from the folders its file names point to)."""
    path = Path(path)
    json_path = path / "annotations.json" if path.is_dir() else path
    try:
        text = read_text(json_path)
        check_document_size(json_path, text, "json")
        doc = json.loads(text)
    except json.JSONDecodeError as error:
        raise FormatError(f"{json_path}: not valid JSON ({error.msg} at line {error.lineno}); fix or re-export it") from error
    except RecursionError as error:  # a hostile file nests arrays thousands deep
        raise FormatError(f"{json_path}: JSON nested too deeply to be a COCO-VID file; fix or re-export it") from error
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("videos", "images", "annotations")):
        raise FormatError(f"{json_path}: expected a COCO-VID object with videos, images and annotations lists")
    try:
        per_track, folders, fps = _parse(doc, json_path)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        # Any other wrong type or shape in the document (a list where an id belongs, a string
        # for fps, an annotation that is not an object): one line naming the file.
        reason = str(error).splitlines()[0][:80] if str(error) else ""
        raise FormatError(f"{json_path}: malformed COCO-VID document ({type(error).__name__}: {reason}); fix or re-export it") from error
    # Every frame folder is read and every row checked before the write transaction opens, so
    # the project's write lock is never held while files are read (other writers keep working).
    infos: dict[int, dict] = {}
    for (video_key, _instance), rows in per_track.items():
        if video_key not in folders:
            raise FormatError(f"{json_path}: annotations refer to video {video_key} that has no images")
        if video_key not in infos:
            try:
                with open_media(folders[video_key]) as media:
                    infos[video_key] = {"frames": media.frame_count, "fps": fps.get(video_key) or media.fps, "width": media.width, "height": media.height}
            except MediaError as error:
                raise FormatError(str(error)) from error
        frames = infos[video_key]["frames"]
        bad = next((row for row in rows if not 0 <= row["frame"] < frames), None)
        if bad is not None:
            raise FormatError(f"{json_path}: an annotation on frame {bad['frame'] + 1} but {folders[video_key]} has {frames} frames")
    track_ids = []
    with project.edit(f"import {json_path.name}"):
        added: dict[int, int] = {}
        for (video_key, _instance), rows in per_track.items():
            if video_key not in added:
                added[video_key] = project.add_video(folders[video_key], infos[video_key]).id
            category = rows[0]["category"]
            track = project.add_track(added[video_key], rows[0]["name"] or category, category=category)
            if rows[0]["attributes"]:
                try:
                    project.update_track(track.id, attributes=rows[0]["attributes"])
                except FormatError:
                    raise
                except ProjectError as error:  # attributes that are not name -> text pairs
                    raise FormatError(f"{json_path}: {error}") from error
            records = [file_record(track.id, **{k: v for k, v in row.items() if k not in ("category", "name", "attributes")}) for row in rows]
            project.put_boxes([r for r in records if r is not None])
            track_ids.append(track.id)
    return track_ids


def _parse(doc: dict, json_path: Path) -> tuple[dict[tuple[int, int], list[dict]], dict[int, Path], dict[int, float]]:
    """Rows per (video, instance), the frame folder and fps of each video, all checked."""
    base = json_path.parent
    try:
        categories = {c["id"]: str(c["name"]) for c in doc.get("categories", [])}
        images = {im["id"]: im for im in doc["images"]}
        videos = {v["id"]: v for v in doc["videos"]}
    except (KeyError, TypeError) as error:
        raise FormatError(f"{json_path}: a category, image or video entry lacks its id/name ({error})") from error
    per_track: dict[tuple[int, int], list[dict]] = {}
    # Our export names each object in "tracks" (the class is its category); other files may not.
    names = {t.get("id"): t["name"] for t in doc.get("tracks", []) if isinstance(t, dict) and isinstance(t.get("name"), str) and t["name"].strip()}
    attributes = {t.get("id"): t["attributes"] for t in doc.get("tracks", []) if isinstance(t, dict) and t.get("attributes")}
    positions = _frame_positions(doc["images"], base, json_path)
    for n, ann in enumerate(doc["annotations"], 1):
        if isinstance(ann, dict) and ann.get("iscrowd") and not _hidden_object(ann):
            continue  # a crowd region (COCO iscrowd=1) is an area to ignore, not an object to track
        try:
            image = images[ann["image_id"]]
            video_id = ann.get("video_id", image["video_id"])
            instance = ann.get("instance_id", ann.get("track_id"))
            # The frame is where its file sits in the folder: TAO's frame_id counts annotated
            # frames only (frame0391.jpg, frame0421.jpg had frame_id 1, 2), frame_index is the
            # original video's; the folder holds the files themselves.
            frame = positions.get(image["id"])
            if frame is None:
                frame = int(image.get("frame_id", image.get("frame_index")))
            box = check_box(json_path, n, [float(v) for v in ann["bbox"]])
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as error:
            raise FormatError(f"{json_path}: annotation #{n} is incomplete or malformed ({error})") from error
        if instance is None:
            raise FormatError(f"{json_path}: annotation #{n} has no instance_id or track_id")
        source = ann.get("source", "manual")
        score = ann.get("score")
        per_track.setdefault((video_id, instance), []).append({
            "frame": frame, "x": box[0], "y": box[1], "w": box[2], "h": box[3],
            "source": source if isinstance(source, str) and source in SOURCES else "manual",
            "score": float(score) if isinstance(score, (int, float)) and math.isfinite(score) else None,
            # Fully occluded only by `full_occlusion` (ours, mmtracking's lasot2coco). A bare
            # `occluded` is ImageNet-VID's partial occlusion (mmtracking imagenet2coco_vid.py
            # writes occluded == '1' on every visible box): the box is still the object's.
            "occluded": bool(ann.get("full_occlusion", False)),
            "out_of_view": bool(ann.get("out_of_view", False)),
            "category": categories.get(ann.get("category_id"), "object"),
            "name": names.get(instance),
            "attributes": attributes.get(instance) or ann.get("attributes") or {},
        })
    fps = {}
    for key, video in videos.items():
        value = video.get("fps") if isinstance(video, dict) else None
        fps[key] = frame_rate(value)
    # Sorted here, where ids of mixed types (a malformed file) raise TypeError and are reported.
    return dict(sorted(per_track.items())), _video_folders(doc["images"], base, json_path), fps


def _hidden_object(ann: dict) -> bool:
    """An ignore region that is one object's box on a frame where it is hidden (as we write them)."""
    return any(ann.get(key) is True for key in ("full_occlusion", "out_of_view"))


def _frame_positions(images: list[dict], base: Path, json_path: Path) -> dict[object, int]:
    """Image id -> index of its file among its folder's frames (the order the video is read in)."""
    positions: dict[object, int] = {}
    listed: dict[Path, dict[str, int]] = {}
    for image in images:
        try:
            path = base / image["file_name"]
            folder = inside(base, path.parent, json_path)
        except (KeyError, TypeError):
            continue  # reported with its line by _video_folders
        if folder not in listed:
            listed[folder] = {p.name: i for i, p in enumerate(image_files(folder))} if folder.is_dir() else {}
        index = listed[folder].get(path.name)
        if index is not None:
            positions[image.get("id")] = index
    return positions


def _video_folders(images: list[dict], base: Path, json_path: Path) -> dict[int, Path]:
    """The one frame folder of each video, checked to hold frames in frame_id order."""
    folders: dict[int, Path] = {}
    for image in images:
        try:
            folder = inside(base, (base / image["file_name"]).parent, json_path)
            video_id = image["video_id"]
        except (KeyError, TypeError) as error:
            raise FormatError(f"{json_path}: image entry without file_name/video_id ({error})") from error
        if folders.setdefault(video_id, folder) != folder:
            raise FormatError(f"{json_path}: video {video_id} has frames in several folders; expected one folder per video")
    return folders
