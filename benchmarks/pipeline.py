"""Throughput of the annotation pipeline on real 1280x720 clips (docs/benchmarks.md §3):

- decode: decord frames/s, sequential and random access (frame-exact reads);
- propagation end to end: decode + track + SQLite commit for a whole video, one and three tracks;
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

from projects import Project, open_media, propagate
from projects.formats import export
from sstrack import Tracker, load_model

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIPS = ["01_dog.mp4", "02_cups.mp4", "bedroom.mp4"]


def decode_rates(path: Path, samples: int = 40) -> dict[str, float]:
    """Sequential and random-access frames per second of one clip (no cache)."""
    with open_media(path, cache_bytes=0) as media:
        start = time.perf_counter()
        for _ in media.iter_frames(0, media.frame_count):
            pass
        sequential = media.frame_count / (time.perf_counter() - start)
        order = np.random.default_rng(0).permutation(media.frame_count)[:samples]
        start = time.perf_counter()
        for index in order:
            media.frame(int(index))
        random_rate = len(order) / (time.perf_counter() - start)
        return {"frames": media.frame_count, "width": media.width, "height": media.height, "sequential_fps": sequential, "random_fps": random_rate}


def propagation_rate(path: Path, tracker: Tracker, tracks: int) -> float:
    """Frames per second of a forward run over the whole video (decode + track + commit)."""
    with tempfile.TemporaryDirectory() as tmp, Project.create(Path(tmp) / "p") as project:
        video = project.add_video(path)
        for k in range(tracks):
            track = project.add_track(video.id, f"t{k}")
            project.set_box(track.id, 0, (video.width * (0.2 + 0.25 * k), video.height * 0.4, video.width * 0.12, video.height * 0.2))
        start = time.perf_counter()
        frames = {r.frame for r in propagate(project, video.id, tracker)}
        return len(frames) / (time.perf_counter() - start)


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
    parser.add_argument("--out", type=Path, default=Path("runs/pipeline"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    tracker = Tracker(load_model(args.model), device="cpu")
    rows = []
    for name in args.clips:
        path = args.videos / name
        row = {"clip": name, **decode_rates(path)}
        row["propagate_fps_1_track"] = propagation_rate(path, tracker, 1)
        row["propagate_fps_3_tracks"] = propagation_rate(path, tracker, 3)
        row["export_lasot_fps"] = export_rate(path)
        rows.append(row)
        print(row, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pipeline.json").write_text(json.dumps({"model": args.model, "threads": args.threads, "rows": rows}, indent=2))
    lines = ["| clip | size | decode seq. fps | decode random fps | propagate fps (1 track) | propagate fps (3 tracks) | LaSOT export fps |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['clip']} | {r['width']}x{r['height']}, {r['frames']} fr | {r['sequential_fps']:.0f} | {r['random_fps']:.1f} | {r['propagate_fps_1_track']:.1f} | {r['propagate_fps_3_tracks']:.1f} | {r['export_lasot_fps']:.0f} |" for r in rows]
    (args.out / "pipeline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
