"""Calibrate a model's review threshold: which tracker score says "look at this frame".

The app's "next frame to review" (N) jumps to frames whose score is below a threshold. Scores
are not probabilities and their range differs between models (the shipped lite model rarely
scores above 0.5 even when right), so a fixed 0.5 flags nearly every frame. This runs the model
one-pass on ../shared/data/sot, pairs each frame's score with its IoU against the ground truth,
and picks the threshold that best separates failures (IoU < 0.5) from good frames (max F1).

    python -m benchmarks.calibrate --out runs/calibrate [--model sstrack-lite] [--write-card]

--write-card stores the threshold as `review_threshold` in the model's JSON card (the app's
default threshold for that model until the user sets one).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sstrack import Tracker, load_model
from sstrack.checkpoints import read_card, shipped_model_path
from sstrack.config import CONFIGS
from sstrack.metrics import iou, valid_frames
from sstrack.sequences import load_sequence, read_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def scores_and_overlaps(model: str, sot: Path, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per visible frame after the first: the tracker's score and its IoU with the truth."""
    tracker = Tracker(load_model(model), device="cpu")
    scores, overlaps = [], []
    for name in names:
        sequence = load_sequence(sot / name)
        gt, valid = sequence.ground_truth, valid_frames(sequence.ground_truth, sequence.absent)
        state = tracker.start(read_image(sequence.frames[0]), gt[0])
        for k in range(1, len(sequence)):
            (box, score), = tracker.step([state], read_image(sequence.frames[k]))
            if valid[k]:
                scores.append(score)
                overlaps.append(float(iou(np.asarray(box)[None], gt[k][None])[0]))
        print(f"{name}: {len(scores)} frames so far", file=sys.stderr, flush=True)
    return np.asarray(scores), np.asarray(overlaps)


def flag_quality(scores: np.ndarray, failed: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall and F1 of 'score < threshold' as a detector of failed frames."""
    flagged = scores < threshold
    hits = float((flagged & failed).sum())
    precision = hits / max(flagged.sum(), 1)
    recall = hits / max(failed.sum(), 1)
    f1 = 2 * precision * recall / max(precision + recall, 1e-9)
    return {"threshold": threshold, "flagged_fraction": float(flagged.mean()), "precision": precision, "recall": recall, "f1": f1}


def best_threshold(scores: np.ndarray, failed: np.ndarray) -> dict[str, float]:
    """The threshold (on a 0.01 grid) with the highest F1."""
    candidates = [flag_quality(scores, failed, t) for t in np.round(np.arange(0.01, 1.0, 0.01), 2)]
    return max(candidates, key=lambda c: c["f1"])


def main(argv: list[str] | None = None) -> int:
    """Calibrate and report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sstrack-lite")
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--sequences", nargs="*", default=None)
    parser.add_argument("--iou", type=float, default=0.5, help="a frame below this IoU is a failure")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-card", action="store_true")
    parser.add_argument("--out", type=Path, default=Path("runs/calibrate"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.sequences or sorted(p.name for p in args.sot.iterdir() if (p / "groundtruth.txt").exists())
    scores, overlaps = scores_and_overlaps(args.model, args.sot, names)
    failed = overlaps < args.iou
    best = best_threshold(scores, failed)
    fixed = flag_quality(scores, failed, 0.5)
    report = {"model": args.model, "sequences": names, "frames": len(scores), "failure_iou": args.iou,
              "failed_fraction": float(failed.mean()), "score_quartiles": np.percentile(scores, [25, 50, 75]).tolist(),
              "best": best, "at_0.5": fixed}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibrate.json").write_text(json.dumps(report, indent=2))
    lines = [f"Review threshold for `{args.model}` on {len(names)} sequences, {len(scores)} frames; "
             f"{100 * failed.mean():.1f}% of frames have IoU < {args.iou}.", "",
             "| threshold | frames flagged | precision (flagged that failed) | recall (failures flagged) | F1 |", "|---|---|---|---|---|"]
    for label, row in (("best", best), ("fixed 0.5", fixed)):
        lines.append(f"| {row['threshold']:.2f} ({label}) | {100 * row['flagged_fraction']:.1f}% | {100 * row['precision']:.1f}% | {100 * row['recall']:.1f}% | {row['f1']:.2f} |")
    (args.out / "calibrate.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.write_card:
        card_path = (shipped_model_path(args.model) if args.model in CONFIGS else Path(args.model)).with_suffix(".json")
        card = read_card(card_path.with_suffix(".safetensors"))
        card["review_threshold"] = {"value": best["threshold"], "f1": round(best["f1"], 3), "failure_iou": args.iou,
                                    "measured_by": f"python -m benchmarks.calibrate --model {args.model} --write-card"}
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote review_threshold {best['threshold']:.2f} into {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
