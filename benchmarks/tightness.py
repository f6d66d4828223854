"""Tightness: one step from the truth (docs/benchmarks.md §5), our models and the peers side by side.

For each sequence, 15 start frames i spread evenly over it (absent frames skipped): start on frame
i with the ground-truth box, one step into frame i+1, compare with the truth there. Reported per
sequence and overall: mean and median IoU, the centre error in units of the true box's sqrt(w*h),
and the mean and spread of log(w_pred / w_true) and log(h_pred / h_true) (a non-zero mean is a bias).
Peers are re-created per start, as ours is.

    python -m benchmarks.tightness --out runs/tightness [--model sstrack-lite other.safetensors] [--no-peers]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.ope import add_tracker_arguments, our_trackers
from sstrack.evaluation import SingleTracker, opencv_peers
from sstrack.metrics import iou, valid_frames
from sstrack.sequences import load_sequence, read_image

STARTS = 15


def start_frames(gt: np.ndarray, absent: np.ndarray, count: int = STARTS) -> list[int]:
    """Up to `count` frames i, evenly spread, where both i and i + 1 have a visible true box."""
    valid = valid_frames(gt, absent)
    usable = [i for i in range(len(gt) - 1) if valid[i] and valid[i + 1]]
    if len(usable) <= count:
        return usable
    return [usable[int(round(k))] for k in np.linspace(0, len(usable) - 1, count)]


def one_step(tracker: SingleTracker, frames: list[np.ndarray], gt: np.ndarray, starts: list[int]) -> np.ndarray:
    """(len(starts), 4) boxes predicted on frame i + 1 from the truth on frame i."""
    predicted = []
    for i in starts:
        tracker.init(frames[i], gt[i])
        predicted.append(np.asarray(tracker.update(frames[i + 1]), dtype=np.float64))
    return np.stack(predicted) if predicted else np.zeros((0, 4))


def tightness(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """IoU, normalised centre error and log size ratios of predictions against the truth."""
    overlaps = iou(pred, truth)
    scale = np.sqrt(truth[:, 2] * truth[:, 3])
    centre_error = np.linalg.norm((pred[:, :2] + pred[:, 2:] / 2) - (truth[:, :2] + truth[:, 2:] / 2), axis=1) / scale
    log_w = np.log(np.maximum(pred[:, 2], 1e-3) / truth[:, 2])
    log_h = np.log(np.maximum(pred[:, 3], 1e-3) / truth[:, 3])
    return {
        "iou_mean": float(overlaps.mean()), "iou_median": float(np.median(overlaps)),
        "centre_error": float(centre_error.mean()),
        "log_w_mean": float(log_w.mean()), "log_w_std": float(log_w.std()),
        "log_h_mean": float(log_h.mean()), "log_h_std": float(log_h.std()), "n": int(len(overlaps)),
    }


def evaluate(trackers: list[SingleTracker], sot: Path, names: list[str] | None = None) -> dict[str, dict]:
    """Per tracker: per-sequence and overall tightness (overall = all starts pooled)."""
    names = names or sorted(p.name for p in sot.iterdir() if (p / "groundtruth.txt").exists())
    pooled: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {t.name: ([], []) for t in trackers}
    report: dict[str, dict] = {t.name: {"per_sequence": {}, "seconds": 0.0} for t in trackers}
    for name in names:
        sequence = load_sequence(sot / name)
        starts = start_frames(sequence.ground_truth, sequence.absent)
        needed = sorted({i for s in starts for i in (s, s + 1)})
        frames = {i: read_image(sequence.frames[i]) for i in needed}
        dense = [frames.get(i) for i in range(len(sequence.frames))]
        truth = sequence.ground_truth[[s + 1 for s in starts]]
        for tracker in trackers:
            began = time.perf_counter()
            pred = one_step(tracker, dense, sequence.ground_truth, starts)
            report[tracker.name]["seconds"] += time.perf_counter() - began
            report[tracker.name]["per_sequence"][name] = tightness(pred, truth)
            pooled[tracker.name][0].append(pred)
            pooled[tracker.name][1].append(truth)
            print(f"{name:>14} {tracker.name:>24} one-step IoU {report[tracker.name]['per_sequence'][name]['iou_mean']:.3f}", file=sys.stderr, flush=True)
    for tracker in trackers:
        pred, truth = (np.concatenate(parts) for parts in pooled[tracker.name])
        report[tracker.name]["overall"] = tightness(pred, truth)
        per = report[tracker.name]["per_sequence"].values()
        report[tracker.name]["overall"]["iou_mean_of_sequences"] = float(np.mean([s["iou_mean"] for s in per]))
    return report


def table(report: dict[str, dict]) -> str:
    """Markdown table of the overall figures."""
    lines = [
        "| tracker | one-step IoU (mean of sequences) | pooled mean | median | centre error / sqrt(wh) | log w/w* (mean ± sd) | log h/h* (mean ± sd) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, entry in report.items():
        o = entry["overall"]
        lines.append(
            f"| {name} | {o['iou_mean_of_sequences']:.3f} | {o['iou_mean']:.3f} | {o['iou_median']:.3f} | {o['centre_error']:.3f} | "
            f"{o['log_w_mean']:+.3f} ± {o['log_w_std']:.3f} | {o['log_h_mean']:+.3f} ± {o['log_h_std']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Measure and write tightness.json / tightness.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tracker_arguments(parser, Path("runs/tightness"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    trackers: list[SingleTracker] = list(our_trackers(args.model, args.backend))
    if not args.no_peers:
        trackers += opencv_peers(args.peers)
    report = evaluate(trackers, args.sot, args.sequences)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "tightness.json").write_text(json.dumps(report, indent=2))
    text = table(report)
    (args.out / "tightness.md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
