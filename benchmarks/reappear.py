"""Found again: the object reappears away from where the tracker last saw it (issue 12; results in
docs/results-redetect-2026-12-06.md).

Each dev sequence is cut so that the object is elsewhere after the cut: frames 1..a, then b..b+60,
where b is the first frame after a whose box centre is outside a's search crop (more than
search_factor / 2 box sizes, plus half the object, away on some axis), for up to 3 values of a
spread over the sequence. This is what a full occlusion or a jump onto a look-alike leaves the
tracker facing; the dev set itself has few such events (Jogging-1, Suv). Scored on the frames
after the cut: mean IoU, the share above 0.5, and how many cuts end found (IoU > 0.3 on most of
their last 20 frames). Every model in the same run.

    python -m benchmarks.reappear --out runs/reappear [--model sstrack-lite other.safetensors] [--sequences ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.ope import SHARED, model_labels
from sstrack import Tracker, load_model
from sstrack.metrics import iou
from sstrack.sequences import load_sequence, read_image

AFTER = 60  # frames tracked after each cut
CUTS = 3  # per sequence, at most


def cut_points(gt: np.ndarray, search_factor: float) -> list[tuple[int, int]]:
    """(a, b) pairs: the object's box at b lies outside the search crop around its box at a."""
    centres = gt[:, :2] + gt[:, 2:] / 2
    sizes = np.sqrt(gt[:, 2] * gt[:, 3])
    cuts = []
    for a in range(10, len(gt) - 20, max(1, (len(gt) - 30) // 6)):
        reach = search_factor / 2 * sizes[a] + gt[a + 1 :, 2:].max(axis=1) / 2
        far = np.flatnonzero(np.abs(centres[a + 1 :] - centres[a]).max(axis=1) > reach)
        far = far[far + a + 1 < len(gt) - 10]
        if len(far):
            cuts.append((a, int(far[0]) + a + 1))
    return cuts[:CUTS]


def track_cut(tracker: Tracker, frames: list[np.ndarray], gt: np.ndarray, a: int, b: int) -> np.ndarray:
    """IoU with the truth on each frame after the cut, tracking frames 0..a then b..b+AFTER."""
    order = [*range(1, a + 1), *range(b, min(b + AFTER, len(frames)))]
    state = tracker.start(frames[0], gt[0])
    overlaps = []
    for index in order:
        [(box, _score)] = tracker.step([state], frames[index])
        if index >= b:
            overlaps.append(float(iou(np.array([box]), gt[index : index + 1])[0]))
    return np.array(overlaps)


def main(argv: list[str] | None = None) -> int:
    """Run the cuts for every model and write reappear.json / reappear.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="*", default=["sstrack-lite"])
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--sequences", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/reappear"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    labels = model_labels(args.model)
    trackers = {label: Tracker(load_model(m), device="cpu") for m, label in zip(args.model, labels)}
    names = args.sequences or sorted(p.name for p in args.sot.iterdir() if (p / "groundtruth.txt").exists())
    rows = []
    for name in names:
        sequence = load_sequence(args.sot / name)
        factor = next(iter(trackers.values())).config.search_factor
        cuts = cut_points(sequence.ground_truth, factor)
        if not cuts:
            continue
        frames = [read_image(p) for p in sequence.frames]
        for a, b in cuts:
            row = {"sequence": name, "a": a, "b": b}
            for label, tracker in trackers.items():
                row[label] = track_cut(tracker, frames, sequence.ground_truth, a, b).tolist()
            rows.append(row)
            print(f"{name:>14} cut {a}->{b}: " + ", ".join(f"{lb} {np.mean(row[lb]):.3f}" for lb in labels), file=sys.stderr, flush=True)
    summary = {}
    for label in labels:
        runs = [np.array(r[label]) for r in rows]
        pooled = np.concatenate(runs) if runs else np.zeros(0)
        summary[label] = {"cuts": len(runs), "mean_iou": float(pooled.mean()) if len(pooled) else float("nan"),
                          "share_above_0.5": float((pooled > 0.5).mean()) if len(pooled) else float("nan"),
                          "cuts_found": int(sum((r[-20:] > 0.3).mean() > 0.5 for r in runs))}
    lines = ["| model | cuts | mean IoU after the cut | share > 0.5 | cuts ending found |", "|---|---|---|---|---|"]
    lines += [f"| {lb} | {s['cuts']} | {s['mean_iou']:.3f} | {s['share_above_0.5']:.3f} | {s['cuts_found']} |" for lb, s in summary.items()]
    lines += ["", "| sequence | cut | " + " | ".join(labels) + " |", "|---|---|" + "---|" * len(labels)]
    lines += [f"| {r['sequence']} | {r['a']}->{r['b']} | " + " | ".join(f"{np.mean(r[lb]):.3f}" for lb in labels) + " |" for r in rows]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "reappear.json").write_text(json.dumps({"summary": summary, "cuts": rows}, indent=2))
    (args.out / "reappear.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
