"""Annotation effort: the simulated annotator of docs/benchmarks.md §2.

An annotator with the ground truth as its eyes draws the box on frame 1, lets the tool propagate,
then goes forward to the first visible frame whose box has IoU < tau with the truth, replaces it
with the true box (one more manual box) and lets the tool re-track; until every visible frame
meets tau. Effort = manual boxes per 100 frames (lower is better).

- ours: the real product path: a project on disk, `projects.propagate` forward from frame 1, then
  after every correction a re-track around it in both directions (fused with the other side);
- interpolation (CVAT's workflow): keyframes on the first and last frame, add the first failing
  frame as a keyframe, repeat;
- each OpenCV peer, re-initialised on the corrected frame and run forward from there.

    python -m benchmarks.effort --out runs/effort [--sequences Deer Dog ...] [--taus 0.5 0.7]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from projects import FrameResult, Project, propagate
from sstrack import Tracker, load_model
from sstrack.absence import AbsenceRule
from sstrack.evaluation import OpenCVPeer, opencv_peers
from sstrack.metrics import iou, valid_frames
from sstrack.sequences import Sequence, load_sequence, read_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def first_failure(boxes: np.ndarray, gt: np.ndarray, valid: np.ndarray, tau: float, done: np.ndarray) -> int | None:
    """First visible frame whose box misses the truth (IoU < tau); frames in `done` are manual."""
    overlaps = iou(np.nan_to_num(boxes), gt)
    bad = valid & ~done & (overlaps < tau)
    hits = np.flatnonzero(bad)
    return int(hits[0]) if len(hits) else None


# Called after the first propagation (0 corrections) and after each correction, before the
# re-track; returns a tracker to use from then on (an adapted model), or None to keep the current.
Adapter = Callable[[Project, int, int], "Tracker | None"]


def effort_ours(
    sequence: Sequence, tracker: Tracker, tau: float, absence: AbsenceRule | None = AbsenceRule(), adapter: Adapter | None = None,
) -> tuple[int, float]:
    """Manual boxes our engine needs, and seconds spent."""
    gt, valid = sequence.ground_truth, valid_frames(sequence.ground_truth, sequence.absent)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp, Project.create(Path(tmp) / "p") as project:
        video = project.add_video(sequence.frames[0].parent)
        track = project.add_track(video.id, sequence.name)
        project.set_box(track.id, 0, gt[0])
        retrack_until_failure(propagate(project, video.id, tracker, direction="forward", absence=absence), track.id, gt, valid, tau)
        adapted = adapter(project, video.id, 0) if adapter else None
        if adapted is not None:  # the machine boxes nobody has reviewed yet are re-tracked
            tracker = adapted
            retrack_until_failure(propagate(project, video.id, tracker, direction="forward", around=0, absence=absence), track.id, gt, valid, tau)
        manual = np.zeros(len(gt), bool)
        manual[0] = True
        while True:
            boxes = np.full((len(gt), 4), np.nan)
            for record in project.boxes(track.id):
                if record.has_box:
                    boxes[record.frame] = record.box
            frame = first_failure(boxes, gt, valid, tau, manual)
            if frame is None:
                break
            project.set_box(track.id, frame, gt[frame])
            manual[frame] = True
            adapted = adapter(project, video.id, int(manual.sum()) - 1) if adapter else None
            tracker = adapted or tracker
            # Working forward, the annotator has accepted every box before this correction and
            # continues forward from it (T), up to the next keyframe.
            retrack_until_failure(propagate(project, video.id, tracker, direction="forward", around=frame, absence=absence), track.id, gt, valid, tau)
    return int(manual.sum()), time.perf_counter() - started


def retrack_until_failure(run: Iterator[FrameResult], track_id: int, gt: np.ndarray, valid: np.ndarray, tau: float) -> None:
    """Consume a re-track, cancelling it at the first forward frame that misses (IoU < tau).

    The annotator's next correction is that frame, so nothing tracked after it can change the
    count; cancelling keeps what was written. Same count as running every re-track to the end,
    far less work.
    """
    for result in run:
        written = result.boxes.get(track_id)
        if result.direction == "forward" and written is not None and valid[result.frame]:
            if iou(np.asarray([written[0]]), gt[result.frame : result.frame + 1])[0] < tau:
                run.close()
                return


def effort_interpolation(sequence: Sequence, tau: float) -> int:
    """Greedy keyframes with linear interpolation (first and last frame to start)."""
    gt, valid = sequence.ground_truth, valid_frames(sequence.ground_truth, sequence.absent)
    usable = np.flatnonzero(valid)
    keys = sorted({int(usable[0]), int(usable[-1])})
    manual = np.zeros(len(gt), bool)
    manual[keys] = True
    while True:
        boxes = np.full((len(gt), 4), np.nan)
        for left, right in zip(keys, keys[1:]):
            for frame in range(left, right + 1):
                t = (frame - left) / (right - left)
                boxes[frame] = (1 - t) * gt[left] + t * gt[right]
        frame = first_failure(boxes, gt, valid, tau, manual)
        if frame is None:
            return len(keys)
        keys = sorted(keys + [frame])
        manual[frame] = True


def effort_peer(sequence: Sequence, peer: OpenCVPeer, images: list[np.ndarray], tau: float) -> int:
    """A peer re-initialised on each corrected frame and run forward from there."""
    gt, valid = sequence.ground_truth, valid_frames(sequence.ground_truth, sequence.absent)
    boxes = np.full((len(gt), 4), np.nan)
    manual = np.zeros(len(gt), bool)
    start = 0
    while True:
        manual[start] = True
        boxes[start] = gt[start]
        peer.init(images[start], gt[start])
        for frame in range(start + 1, len(gt)):
            boxes[frame] = peer.update(images[frame])
            if valid[frame] and iou(boxes[frame : frame + 1], gt[frame : frame + 1])[0] < tau:
                break  # the next correction is here: what the peer would track after it cannot count
        failure = first_failure(boxes, gt, valid, tau, manual)
        if failure is None:
            return int(manual.sum())
        start = failure


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write effort.json + effort.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--peers", type=Path, default=SHARED / "peers")
    parser.add_argument("--sequences", nargs="*", default=None)
    parser.add_argument("--taus", nargs="*", type=float, default=[0.5, 0.7])
    parser.add_argument("--model", default="sstrack-lite")
    parser.add_argument("--no-peers", action="store_true", help="ours and interpolation only (quick design comparisons)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"), help="runtime of our network")
    parser.add_argument("--no-absence", action="store_true", help="our engine writes a box on every frame (no absence watch)")
    parser.add_argument("--out", type=Path, default=Path("runs/effort"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.sequences or sorted(p.name for p in args.sot.iterdir() if (p / "groundtruth.txt").exists())
    tracker = Tracker(load_model(args.model), device="cpu", backend=args.backend)
    peers = [] if args.no_peers else opencv_peers(args.peers)
    methods = ["ours", "interpolation"] + [p.name for p in peers]
    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in names:
        sequence = load_sequence(args.sot / name)
        images = [read_image(p) for p in sequence.frames]
        frames = len(sequence)
        for tau in args.taus:
            row: dict[str, float] = {}
            manual, seconds = effort_ours(sequence, tracker, tau, None if args.no_absence else AbsenceRule())
            row["ours"] = 100 * manual / frames
            row["interpolation"] = 100 * effort_interpolation(sequence, tau) / frames
            for peer in peers:
                row[peer.name] = 100 * effort_peer(sequence, peer, images, tau) / frames
            results.setdefault(f"{tau:g}", {})[name] = row
            print(f"{name:>14} tau {tau:g}: " + "  ".join(f"{m} {row[m]:.2f}" for m in methods) + f"  ({seconds:.0f} s ours)", flush=True)
    summary = {tau: {m: float(np.mean([r[m] for r in rows.values()])) for m in methods} for tau, rows in results.items()}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "effort.json").write_text(json.dumps({"model": args.model, "per_sequence": results, "mean": summary}, indent=2))
    lines = []
    for tau, rows in results.items():
        lines += [f"### tau = {tau} (manual boxes per 100 frames, lower is better)", "", "| sequence | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
        lines += [f"| {seq} | " + " | ".join(f"{row[m]:.2f}" for m in methods) + " |" for seq, row in rows.items()]
        lines += ["| **mean** | " + " | ".join(f"**{summary[tau][m]:.2f}**" for m in methods) + " |", ""]
    (args.out / "effort.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
