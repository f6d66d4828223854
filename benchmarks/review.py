"""Review queue: do the flagged frames find the failures? (docs/benchmarks.md §6)

One forward pass from the first-frame box on each sequence (the tracker's own sequential steps, as
propagation runs them). Failure frames: visible frames with IoU < 0.5, plus frames the truth marks
absent (the engine writes a box on every frame it tracks). Two flaggers, compared on the same pass:
- baseline: score below the model's calibrated review threshold (`benchmarks.calibrate`);
- predictor: `sstrack.review.FailurePredictor` over the tracking signals, fitted leave one
  sequence out (each sequence is scored by a model fitted on the other eleven), flagging the top
  `--flag-fraction` of the training frames.

Frames to look at, to find every failure: flagged frames + for each failure frame f not flagged,
f - p(f), where p(f) is the latest flagged frame (or the first frame) before f: the annotator
steps from there to reach it.

    python -m benchmarks.review --out runs/review [--sequences ...] [--model M] [--write-card]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sstrack import Tracker, load_model, review_threshold
from sstrack.checkpoints import read_card, shipped_model_path
from sstrack.config import CONFIGS
from sstrack.metrics import iou, valid_frames
from sstrack.review import FailurePredictor, failure_features, fit_predictor
from sstrack.sequences import load_sequence, read_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def forward_pass(tracker: Tracker, sot: Path, name: str) -> dict[str, np.ndarray]:
    """Boxes, scores, features and failure labels of one forward pass (frame 0 is the keyframe)."""
    sequence = load_sequence(sot / name)
    gt, valid = sequence.ground_truth, valid_frames(sequence.ground_truth, sequence.absent)
    first = read_image(sequence.frames[0])
    state = tracker.start(first, gt[0])
    boxes, scores = [np.asarray(gt[0], dtype=np.float64)], [1.0]
    for path in sequence.frames[1:]:
        (box, score), = tracker.step([state], read_image(path))
        boxes.append(np.asarray(box))
        scores.append(score)
    boxes_array, scores_array = np.stack(boxes), np.asarray(scores)
    manual = np.zeros(len(boxes), bool)
    manual[0] = True
    overlaps = iou(boxes_array, np.where(valid[:, None], gt, 1.0))
    failed = np.where(valid, overlaps < 0.5, True)  # absent in truth but a box was written
    failed[0] = False
    height, width = first.shape[:2]
    return {"features": failure_features(boxes_array, scores_array, manual, width, height), "scores": scores_array,
            "failed": failed, "absent": ~valid}


def queue_quality(flags: np.ndarray, failed: np.ndarray, absent: np.ndarray) -> dict[str, float]:
    """Flag share, recall / precision for failures, absent frames caught, and frames to look at."""
    flags, failed = flags.copy(), failed.copy()
    flags[0] = failed[0] = False  # the keyframe
    frames = len(flags) - 1
    hits = int((flags & failed).sum())
    look, last = int(flags.sum()), 0
    for f in range(1, len(flags)):
        if flags[f]:
            last = f
        elif failed[f]:
            look += f - last
    return {
        "frames": frames, "failures": int(failed.sum()), "flagged": int(flags.sum()),
        "flagged_fraction": flags.sum() / max(frames, 1), "recall": hits / max(failed.sum(), 1),
        "precision": hits / max(flags.sum(), 1), "absent_flagged": int((flags & absent).sum()), "absent": int(absent[1:].sum()),
        "frames_to_look_at": look,
    }


def pooled(rows: list[dict[str, float]]) -> dict[str, float]:
    """Totals over sequences (fractions recomputed from the counts)."""
    keys = ("frames", "failures", "flagged", "absent_flagged", "absent", "frames_to_look_at")
    total = {k: int(sum(r[k] for r in rows)) for k in keys}
    hits = sum(r["recall"] * r["failures"] for r in rows)
    total.update(flagged_fraction=total["flagged"] / max(total["frames"], 1), recall=hits / max(total["failures"], 1),
                 precision=hits / max(total["flagged"], 1))
    return total


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; write review.json and review.md (and the predictor into the card)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--sequences", nargs="*", default=None)
    parser.add_argument("--model", default="sstrack-lite")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--flag-fraction", type=float, default=0.2)
    parser.add_argument("--write-card", action="store_true", help="store the predictor fitted on all sequences in the model card")
    parser.add_argument("--out", type=Path, default=Path("runs/review"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.sequences or sorted(p.name for p in args.sot.iterdir() if (p / "groundtruth.txt").exists())
    tracker = Tracker(load_model(args.model), device="cpu")
    passes = {}
    for name in names:
        passes[name] = forward_pass(tracker, args.sot, name)
        print(f"{name}: {len(passes[name]['failed'])} frames, {int(passes[name]['failed'].sum())} failures", file=sys.stderr, flush=True)
    threshold = review_threshold(args.model) or 0.5
    per_sequence, baseline = {}, {}
    for name, data in passes.items():
        others = [passes[n] for n in names if n != name]
        train_x = np.vstack([d["features"][1:] for d in others])
        train_y = np.concatenate([d["failed"][1:] for d in others])
        predictor = fit_predictor(train_x, train_y, args.flag_fraction)
        per_sequence[name] = queue_quality(predictor.flags(data["features"]), data["failed"], data["absent"])
        baseline[name] = queue_quality(data["scores"] < threshold, data["failed"], data["absent"])
    report = {
        "model": args.model, "flag_fraction_target": args.flag_fraction, "baseline_threshold": threshold,
        "overall": pooled(list(per_sequence.values())), "per_sequence": per_sequence,
        "baseline": {"overall": pooled(list(baseline.values())), "per_sequence": baseline},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "review.json").write_text(json.dumps(report, indent=2))
    lines = [f"Review queue for `{args.model}`, one forward pass per sequence; predictor fitted leave one sequence out.", "",
             f"| sequence | failures / frames | flagged (score < {threshold:.2f}) | recall | look at | flagged (predictor) | recall | look at |",
             "|---|---|---|---|---|---|---|---|"]
    for name in names + ["**all**"]:
        b = baseline.get(name) or report["baseline"]["overall"]
        p = per_sequence.get(name) or report["overall"]
        lines.append(f"| {name} | {b['failures']} / {b['frames']} | {100 * b['flagged_fraction']:.0f}% | {100 * b['recall']:.0f}% "
                     f"| {b['frames_to_look_at']} | {100 * p['flagged_fraction']:.0f}% | {100 * p['recall']:.0f}% | {p['frames_to_look_at']} |")
    (args.out / "review.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.write_card:
        everything = fit_predictor(np.vstack([d["features"][1:] for d in passes.values()]),
                                   np.concatenate([d["failed"][1:] for d in passes.values()]), args.flag_fraction)
        card_path = (shipped_model_path(args.model) if args.model in CONFIGS else Path(args.model)).with_suffix(".json")
        card = read_card(card_path.with_suffix(".safetensors"))
        card["review_predictor"] = {**everything.to_dict(), "measured_by": f"python -m benchmarks.review --model {args.model} --write-card",
                                    "loso_recall": round(report["overall"]["recall"], 3),
                                    "loso_flagged_fraction": round(report["overall"]["flagged_fraction"], 3)}
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        assert FailurePredictor.from_dict(card["review_predictor"]) is not None
        print(f"wrote review_predictor into {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
