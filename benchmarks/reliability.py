"""Reliability under load: a long 720p video propagated and exported in bounded memory, a
100,000-box project opened and seeked, and repeated SIGKILLs of an edit burst.

    python -m benchmarks.reliability --out runs/reliability            # 20,000 frames
    python -m benchmarks.reliability --quick --out runs/reliability    # 2,000 frames, fewer kills

Each phase runs in its own child process so its peak RSS (resource.getrusage) is its own.
Writes reliability.json and reliability.md into --out and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CACHE_BYTES = 64 * 1024 * 1024  # the propagation's frame cache bound under test
WIDTH, HEIGHT = 1280, 720


def _rss_mib() -> float:
    """Current resident set size (MiB) from /proc, for samples along a phase."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mib() -> float:
    """Peak resident set size of this process so far (MiB); ru_maxrss is KiB on Linux."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- phases (each runs in a child) -----------------------------------------------------------------
def phase_generate(work: Path, frames: int) -> dict[str, Any]:
    """Write a mostly static 1280x720 video with a moving square (fast to encode, real to decode)."""
    import cv2
    import numpy as np

    path = work / "long.mp4"
    started = time.perf_counter()
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (WIDTH, HEIGHT))
    background = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
    background[::40] = 60  # some texture for the tracker and the encoder
    for i in range(frames):
        image = background.copy()
        x = int(100 + (WIDTH - 300) * (0.5 + 0.5 * np.sin(i / 150)))
        image[300:380, x:x + 80] = (0, 0, 255)
        writer.write(image)
    writer.release()
    return {"path": str(path), "frames": frames, "seconds": time.perf_counter() - started, "bytes": path.stat().st_size}


def _square_box(i: int) -> tuple[float, float, float, float]:
    import math

    return (float(int(100 + (WIDTH - 300) * (0.5 + 0.5 * math.sin(i / 150)))), 300.0, 80.0, 80.0)


def phase_propagate(work: Path, frames: int, span: int) -> dict[str, Any]:
    """Keyframes every 1,000 frames, interpolation over the whole video, the real tracker on a span."""
    import torch

    from projects import Project, interpolate, open_media, propagate
    from sstrack import Tracker, load_model

    torch.set_num_threads(2)
    video_path = work / "long.mp4"
    started = time.perf_counter()
    project = Project.create(work / "proj")
    video = project.add_video(video_path)
    track = project.add_track(video.id, "square")
    keys = list(range(0, video.frames, 1000)) + [video.frames - 1]
    for frame in keys:
        project.set_box(track.id, frame, _square_box(frame))
    interpolated = interpolate(project, video.id)
    interp_s = time.perf_counter() - started
    # The real tracker over [0, span): a second track with keyframes only at both ends.
    tracked = project.add_track(video.id, "square-tracked")
    span = min(span or video.frames, video.frames)
    project.set_box(tracked.id, 0, _square_box(0))
    if span < video.frames:
        project.set_flags(tracked.id, span, out_of_view=True)  # an "absent" keyframe ends the span, starts nothing
    tracker = Tracker(load_model("sstrack-lite"), device="cpu")
    samples, cache_ok, last = [], True, None
    with open_media(video_path, cache_bytes=CACHE_BYTES) as media:
        track_started = time.perf_counter()
        for result in propagate(project, video.id, tracker, track_ids=[tracked.id], direction="forward", media=media):
            cache_ok &= media.cache.bytes <= media.cache.max_bytes
            if result.done % max(1, span // 10) == 0:
                samples.append({"done": result.done, "rss_mib": round(_rss_mib(), 1), "cache_mib": round(media.cache.bytes / 2**20, 1)})
            last = result
        track_s = time.perf_counter() - track_started
        cache = {"max_mib": CACHE_BYTES / 2**20, "final_mib": media.cache.bytes / 2**20, "frames_cached": len(media.cache)}
    errors = [abs(r.x - _square_box(r.frame)[0]) for r in project.boxes(tracked.id)]
    counts = project.count_boxes()
    project.close()
    return {
        "video_frames": video.frames, "keyframes": len(keys), "interpolated": interpolated, "interpolate_s": interp_s,
        "tracked_frames": last.done if last else 0, "track_s": track_s, "track_fps": (last.done / track_s) if last else 0,
        "mean_abs_x_error_px": sum(errors) / len(errors), "boxes": counts, "rss_samples": samples,
        "cache": cache, "cache_within_bound": bool(cache_ok), "peak_rss_mib": _peak_mib(),
    }


def phase_export(work: Path) -> dict[str, Any]:
    """Export the long video as MOT (every frame as JPEG), sampling RSS along the way."""
    import shutil

    from projects import Project
    from projects.formats import export

    out = work / "mot"
    samples: list[dict[str, float]] = []

    def progress(done: int, total: int) -> None:
        if done % max(1, total // 10) == 0:
            samples.append({"done": done, "rss_mib": round(_rss_mib(), 1)})

    with Project.open(work / "proj") as project:
        report = export(project, "mot", out, progress=progress)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    shutil.rmtree(out)  # gigabytes of JPEGs: measured, not kept
    return {"frames": report.frames, "seconds": report.seconds, "fps": report.frames / report.seconds, "bytes": size, "rss_samples": samples, "peak_rss_mib": _peak_mib()}


def phase_big_project(work: Path, boxes: int) -> dict[str, Any]:
    """Write a project with `boxes` boxes (5 tracks) on the long video; one undo step."""
    from projects import Project
    from projects.store import BoxRecord

    started = time.perf_counter()
    with Project.create(work / "big") as project:
        per_track = boxes // 5
        info = {"frames": per_track, "fps": 30.0, "width": WIDTH, "height": HEIGHT}
        video = project.add_video(work / "long.mp4", info)
        entry = project.begin_history("bulk")
        for k in range(5):
            track = project.add_track(video.id, f"t{k}")
            for first in range(0, per_track, 5000):
                project.write_boxes([
                    BoxRecord(track.id, f, 10.0 + f % 1000, 20.0 + k * 50, 40.0, 30.0, "tracked", 0.8)
                    for f in range(first, min(first + 5000, per_track))
                ], entry_id=entry)
    return {"boxes": boxes, "write_s": time.perf_counter() - started, "db_mib": (work / "big" / "project.sqlite").stat().st_size / 2**20}


def phase_open_seek(work: Path, seeks: int = 200) -> dict[str, Any]:
    """Time what the app does on open (history, videos, tracks, the timeline's track) and seeks."""
    from projects import Project, open_media

    started = time.perf_counter()
    project = Project.open(work / "big")
    history = project.history()
    video = project.videos()[0]
    tracks = project.tracks(video.id)
    timeline = project.boxes(tracks[0].id)
    here = project.boxes_on_frame(video.id, 0)
    open_s = time.perf_counter() - started
    rng = random.Random(0)
    frames = [rng.randrange(video.frames) for _ in range(seeks)]
    times = []
    for frame in frames:
        t = time.perf_counter()
        rows = project.boxes_on_frame(video.id, frame)
        times.append(time.perf_counter() - t)
        assert len(rows) == len(tracks)
    decode = []
    with open_media(video.path) as media:
        for frame in frames[:30]:
            t = time.perf_counter()
            media.frame(min(frame, media.frame_count - 1))
            decode.append(time.perf_counter() - t)
    project.close()
    times.sort()
    decode.sort()
    return {
        "open_s": open_s, "history_entries": len(history), "timeline_boxes": len(timeline), "first_frame_boxes": len(here),
        "seek_db_median_ms": 1000 * times[len(times) // 2], "seek_db_max_ms": 1000 * times[-1],
        "seek_frame_median_ms": 1000 * decode[len(decode) // 2], "seek_frame_max_ms": 1000 * decode[-1],
    }


EDIT_BURST = """
import sys
from projects import Project
with Project.open(sys.argv[1]) as project:
    track = int(sys.argv[2])
    for i in range(1000):
        project.set_box(track, i, (1.0 + i % 97, 2.0, 10.0 + i % 13, 12.0))
        print(i, flush=True)
"""


def phase_kills(work: Path, runs: int) -> dict[str, Any]:
    """SIGKILL a 1,000-edit burst at random points `runs` times; count acknowledged edits lost."""
    from projects import Project

    rng = random.Random(1)
    acked_total, lost, bad_integrity = 0, 0, 0
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    for run in range(runs):
        folder = work / f"kill{run}"
        with Project.create(folder) as project:
            video = project.add_video(work / "long.mp4", {"frames": 1000, "fps": 30.0, "width": WIDTH, "height": HEIGHT})
            track = project.add_track(video.id, "a").id
        child = subprocess.Popen([sys.executable, "-c", EDIT_BURST, str(folder), str(track)], cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
        target = rng.randrange(20, 980)
        acks = []
        assert child.stdout is not None
        while len(acks) < target:
            line = child.stdout.readline()
            if not line.endswith("\n"):
                break  # the end of output, or a line cut short: never acknowledged
            acks.append(int(line))
        os.kill(child.pid, signal.SIGKILL)
        rest, _ = child.communicate()
        # The kill can cut the last line ("51" of "512"): only whole lines were acknowledged.
        acks += [int(v) for v in rest.split("\n")[:-1] if v]
        with Project.open(folder) as project:
            bad_integrity += project.conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok"
            stored = {r.frame: r.box for r in project.boxes(track)}
        lost += sum(1 for i in acks if stored.get(i) != (1.0 + i % 97, 2.0, 10.0 + i % 13, 12.0))
        acked_total += len(acks)
    return {"runs": runs, "acknowledged_edits": acked_total, "lost": lost, "integrity_failures": bad_integrity}


PHASES = {"generate": phase_generate, "propagate": phase_propagate, "export": phase_export, "big": phase_big_project, "open": phase_open_seek, "kills": phase_kills}


def _child(phase: str, work: Path, **kwargs: Any) -> dict[str, Any]:
    """Run one phase in a fresh interpreter and return its JSON result."""
    env = dict(os.environ, PYTHONPATH=str(REPO))
    command = [sys.executable, "-m", "benchmarks.reliability", "--phase", phase, "--work", str(work), "--kwargs", json.dumps(kwargs)]
    print(f"[{time.strftime('%H:%M:%S')}] {phase} ...", file=sys.stderr, flush=True)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _table(results: dict[str, Any], command: str) -> str:
    prop, exp, opened, kills = results["propagate"], results["export"], results["open_seek"], results["kills"]
    lines = [
        f"Command: `{command}`",
        "",
        "| what | runs | survived | lost | measured |",
        "|---|---|---|---|---|",
        f"| SIGKILL mid edit burst (1,000 edits, random kill point) | {kills['runs']} | {kills['acknowledged_edits']} acknowledged edits, integrity ok in {kills['runs'] - kills['integrity_failures']}/{kills['runs']} | {kills['lost']} | |",
        f"| long video: {prop['video_frames']} frames 1280x720, interpolate + track | 1 | {prop['boxes'].get('manual', 0) + prop['boxes'].get('interpolated', 0) + prop['boxes'].get('tracked', 0)} boxes | 0 | interpolate {prop['interpolate_s']:.1f} s; tracker {prop['tracked_frames']} frames at {prop['track_fps']:.1f} fps; peak RSS {prop['peak_rss_mib']:.0f} MiB; frame cache {prop['cache']['final_mib']:.1f}/{prop['cache']['max_mib']:.0f} MiB (within bound: {prop['cache_within_bound']}) |",
        f"| long video: MOT export of every frame | 1 | {exp['frames']} frames, {exp['bytes'] / 2**20:.0f} MiB | 0 | {exp['fps']:.0f} frames/s; peak RSS {exp['peak_rss_mib']:.0f} MiB (RSS from {exp['rss_samples'][0]['rss_mib'] if exp['rss_samples'] else 0:.0f} to {exp['rss_samples'][-1]['rss_mib'] if exp['rss_samples'] else 0:.0f} MiB along the export) |",
        f"| project with {results['big']['boxes']:,} boxes: open + seek | 1 | all rows | 0 | open (history, tracks, timeline track, first frame) {1000 * opened['open_s']:.0f} ms; seek (boxes on a frame) median {opened['seek_db_median_ms']:.2f} ms, max {opened['seek_db_max_ms']:.2f} ms; frame decode on seek median {opened['seek_frame_median_ms']:.0f} ms, max {opened['seek_frame_max_ms']:.0f} ms |",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run every phase (or one, as a child) and write the report."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reliability", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/reliability"))
    parser.add_argument("--quick", action="store_true", help="2,000 frames, 200-frame tracker span, 5 kills")
    parser.add_argument("--frames", type=int, default=None, help="frames of the long video (default 20,000)")
    parser.add_argument("--span", type=int, default=None, help="frames for the real tracker (0 = the whole video; default 2,000)")
    parser.add_argument("--boxes", type=int, default=100_000)
    parser.add_argument("--kills", type=int, default=None)
    parser.add_argument("--phase", choices=sorted(PHASES), help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--kwargs", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        print(json.dumps(PHASES[args.phase](args.work, **json.loads(args.kwargs))))
        return 0
    frames = args.frames or (2_000 if args.quick else 20_000)
    span = args.span if args.span is not None else (200 if args.quick else 2_000)
    kills = args.kills or (5 if args.quick else 20)
    command = "python -m benchmarks.reliability " + " ".join(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        work = Path(tmp)
        results: dict[str, Any] = {"frames": frames, "span": span}
        results["generate"] = _child("generate", work, frames=frames)
        results["propagate"] = _child("propagate", work, frames=frames, span=span)
        results["export"] = _child("export", work)
        results["big"] = _child("big", work, boxes=args.boxes)
        results["open_seek"] = _child("open", work)
        results["kills"] = _child("kills", work, runs=kills)
    args.out.mkdir(parents=True, exist_ok=True)
    table = _table(results, command)
    (args.out / "reliability.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "reliability.md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
