"""Throughput of the annotation pipeline on real 1280x720 clips (docs/benchmarks.md §3):

- decode: frames/s of the verified exact reader (sequential, random, scrubbing) beside decord's;
- propagation end to end: decode + track + SQLite commit for a whole video, one and three tracks,
  with the decoder thread ahead (projects/read_ahead.py) and in line, against bare `Tracker.step`
  (medians of `--repeats` interleaved runs);
- export: LaSOT frames/s (JPEG frames + label files, atomic).

    python -m benchmarks.pipeline --out runs/pipeline
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from projects import Project, PropagationPlan, open_media, run_plan
from projects.formats import export
from sstrack import Tracker, load_model
from sstrack.absence import AbsenceRule

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIPS = ["01_dog.mp4", "02_cups.mp4", "bedroom.mp4"]


def decode_rates(path: Path, samples: int = 40) -> dict[str, float]:
    """Frames per second of our exact reader and of decord (the reader before issue 11), one run.

    - index_s: the one-time sequential pass + seek verification when a video is added;
    - sequential_fps: reading every frame in order (a fresh reader with the stored index);
    - random_fps: `samples` uniformly random frames from a cold start with the default decode
      window (what the app does when the user jumps around);
    - random_nowindow_fps: the same with no window, every read a keyframe seek + decode forward;
    - scrub_fps: the pattern of dragging the timeline: +-1..8 frame steps around a position.
    """
    from sstrack.video import build_index

    started = time.perf_counter()
    index = build_index(path)
    row: dict[str, float] = {"index_s": time.perf_counter() - started, "access": index.access}
    order = np.random.default_rng(0).permutation(index.frames)[:samples]
    steps = np.random.default_rng(1).integers(-8, 9, size=samples)
    scrub = np.clip(index.frames // 2 + np.cumsum(steps), 0, index.frames - 1)
    for key, frames, window in (("sequential_fps", range(index.frames), None), ("random_fps", order, None),
                                ("random_nowindow_fps", order, 0), ("scrub_fps", scrub, None)):
        with open_media(path, cache_bytes=window, index=index) as media:
            started = time.perf_counter()
            for k in frames:
                media.frame(int(k))
            row[key] = len(frames) / (time.perf_counter() - started)
    row.update(_decord_rates(path, order))
    return {"frames": index.frames, "width": index.width, "height": index.height, **row}


def _decord_rates(path: Path, order: np.ndarray) -> dict[str, float]:
    """decord's sequential and random rates on the same frames (wrong on some files: see issue 11)."""
    try:
        import decord
    except ImportError:
        return {}
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    started = time.perf_counter()
    for k in range(len(reader)):
        reader[k].asnumpy()
    sequential = len(reader) / (time.perf_counter() - started)
    reader = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    started = time.perf_counter()
    for k in order:
        reader[int(k)].asnumpy()
    return {"decord_sequential_fps": sequential, "decord_random_fps": len(order) / (time.perf_counter() - started)}


def propagation_rate(path: Path, tracker: Tracker, tracks: int, read_ahead: bool = True, watch: bool = True) -> float:
    """Frames per second of a forward run over the whole video (decode + track + commit).

    `read_ahead` False decodes in line (before projects/read_ahead.py), for the same-run comparison.
    `watch` False turns the absence watch off: where it judges an object gone, the run also steps a
    roaming search for it (more tracker work than the bare loop does), so without it the run steps
    exactly the targets `bare_tracker_rate` steps and the ratio measures the pipeline alone.
    """
    with tempfile.TemporaryDirectory() as tmp, Project.create(Path(tmp) / "p") as project:
        video = project.add_video(path)
        for k in range(tracks):
            track = project.add_track(video.id, f"t{k}")
            project.set_box(track.id, 0, (video.width * (0.2 + 0.25 * k), video.height * 0.4, video.width * 0.12, video.height * 0.2))
        start = time.perf_counter()
        frames = {r.frame for r in run_plan(project, PropagationPlan(video.id, read_ahead=read_ahead, absence=AbsenceRule() if watch else None), tracker)}
        return len(frames) / (time.perf_counter() - start)


def propagation_rates(path: Path, tracker: Tracker, tracks: int, repeats: int) -> dict[str, float]:
    """Medians of `repeats` interleaved runs: propagation as the app runs it; the same without the
    absence watch, with and without read-ahead; and bare steps."""
    runs: dict[str, list[float]] = {"propagate": [], "propagate_plain": [], "propagate_inline": [], "bare": []}
    for _ in range(repeats):  # interleaved, so a noisy spell hits all four alike
        runs["propagate"].append(propagation_rate(path, tracker, tracks))
        runs["propagate_plain"].append(propagation_rate(path, tracker, tracks, watch=False))
        runs["propagate_inline"].append(propagation_rate(path, tracker, tracks, read_ahead=False, watch=False))
        runs["bare"].append(bare_tracker_rate(path, tracker, tracks))
    suffix = "1_track" if tracks == 1 else f"{tracks}_tracks"
    return {f"{key}_fps_{suffix}": float(np.median(values)) for key, values in runs.items()}


def bare_tracker_rate(path: Path, tracker: Tracker, tracks: int) -> float:
    """Frames per second of `Tracker.step` alone on the same frames and boxes (decoded beforehand),
    the bound propagation is measured against."""
    with open_media(path) as media:
        frames = [image for _, image in media.iter_frames(0, media.frame_count)]
        width, height = media.width, media.height
    boxes = [np.array([width * (0.2 + 0.25 * k), height * 0.4, width * 0.12, height * 0.2]) for k in range(tracks)]
    states = [tracker.start(frames[0], box) for box in boxes]
    start = time.perf_counter()
    for image in frames[1:]:
        tracker.step(states, image)
    return (len(frames) - 1) / (time.perf_counter() - start)


def export_rate(path: Path) -> float:
    """LaSOT export frames per second (one track, every frame written)."""
    with tempfile.TemporaryDirectory() as tmp, Project.create(Path(tmp) / "p") as project:
        video = project.add_video(path)
        track = project.add_track(video.id, "object")
        with project.edit("fill"):
            for frame in range(video.frames):
                project.set_box(track.id, frame, (100, 100, 80, 60), source="tracked", score=0.9)
        report = export(project, "lasot", Path(tmp) / "out")
        return report.frames / report.seconds


def main(argv: list[str] | None = None) -> int:
    """Measure and write pipeline.json / pipeline.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=SHARED / "data" / "videos")
    parser.add_argument("--clips", nargs="*", default=CLIPS)
    parser.add_argument("--model", default="sstrack-lite")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--decode-only", action="store_true", help="skip propagation and export")
    parser.add_argument("--repeats", type=int, default=3, help="propagation and bare runs per figure (medians)")
    parser.add_argument("--out", type=Path, default=Path("runs/pipeline"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tracker = Tracker(load_model(args.model), device="cpu")
    rows = []
    for name in args.clips:
        path = args.videos / name
        row = {"clip": name, **decode_rates(path)}
        if args.decode_only:
            row.update({f"{key}_fps_{n}": float("nan") for key in ("propagate", "propagate_plain", "propagate_inline", "bare") for n in ("1_track", "3_tracks")})
            row["export_lasot_fps"] = float("nan")
        else:
            row.update(propagation_rates(path, tracker, 1, args.repeats))
            row.update(propagation_rates(path, tracker, 3, args.repeats))
            row["export_lasot_fps"] = export_rate(path)
        rows.append(row)
        print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline.json").write_text(json.dumps({"model": args.model, "threads": args.threads, "rows": rows}, indent=2))
    lines = [
        "| clip | size | access | index s | seq. fps (decord) | random fps (decord) | random, no window | scrub fps | LaSOT export fps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['clip']} | {r['width']}x{r['height']}, {r['frames']} fr | {r['access']} | {r['index_s']:.1f} | "
        f"{r['sequential_fps']:.0f} ({r.get('decord_sequential_fps', float('nan')):.0f}) | "
        f"{r['random_fps']:.1f} ({r.get('decord_random_fps', float('nan')):.1f}) | {r['random_nowindow_fps']:.1f} | "
        f"{r['scrub_fps']:.0f} | {r['export_lasot_fps']:.0f} |"
        for r in rows
    ]
    lines += [
        "",
        "Propagation fps, 1 / 3 tracks (medians of interleaved runs). The ratio to bare `Tracker.step` is "
        "taken without the absence watch, which steps extra roaming searches:",
        "",
        "| clip | as the app runs it | no absence watch | / bare | decoded in line, no watch | / bare | bare Tracker.step |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['clip']} | " + " | ".join(
            f"{r[f'{key}_fps_1_track']:.1f} / {r[f'{key}_fps_3_tracks']:.1f}"
            + ("" if key in ("propagate", "bare") else
               f" | {r[f'{key}_fps_1_track'] / r['bare_fps_1_track']:.2f} / {r[f'{key}_fps_3_tracks'] / r['bare_fps_3_tracks']:.2f}")
            for key in ("propagate", "propagate_plain", "propagate_inline", "bare")) + " |"
        for r in rows
    ]
    (args.out / "pipeline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
