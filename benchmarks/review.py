"""Review queue: do the flagged frames find the failures? (docs/benchmarks.md §6)

One forward propagation by the engine from the first-frame box on each sequence. Failure frames:
visible frames with IoU < 0.5 or no box, plus frames the truth marks absent that got a box.
Two flaggers, compared on the same pass:
- baseline: score below the model's calibrated review threshold (`benchmarks.calibrate`);
- predictor: `sstrack.review.FailurePredictor` over the tracking signals, fitted leave one
  sequence out (each sequence is scored by a model fitted on the others, its exit cut left out
  with it), flagging the top
  `--flag-fraction` of the training frames.

Frames to look at, to find every failure: flagged frames + for each failure frame f not flagged,
f - p(f), where p(f) is the latest flagged frame (or the first frame) before f: the annotator
steps from there to reach it.

    python -m benchmarks.review --out runs/review [--sequences ...] [--model M] [--exits] [--no-absence | --scores-only] [--write-card]

`--exits` adds, for each sequence whose object moves far enough, the same frames cut to a window
the object walks out of (`exit_sequence`): the dev set marks no frame absent, these do.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
import torch

from projects import Project, propagate
from sstrack import Tracker, load_model, review_threshold
from sstrack.absence import AbsenceRule
from sstrack.checkpoints import read_card, shipped_model_path
from sstrack.config import CONFIGS
from sstrack.metrics import iou, valid_frames
from sstrack.review import FailurePredictor, failure_features, fit_predictor
from sstrack.sequences import Sequence, load_sequence, read_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def forward_pass(tracker: Tracker, sequence: Sequence, absence: AbsenceRule | None) -> dict[str, np.ndarray]:
    """Boxes, scores, features and failure labels of one forward propagation by the engine.

    Failures: frames the truth shows whose written box misses it (IoU < 0.5) or that got no box,
    and frames the truth marks absent that got a box. Flags of frames the engine wrote as
    absent: the first of each such run (the annotator checks where the object went).
    """
    gt, valid = sequence.ground_truth, valid_frames(sequence.ground_truth, sequence.absent)
    with tempfile.TemporaryDirectory() as tmp, Project.create(Path(tmp) / "p") as project:
        video = project.add_video(sequence.frames[0].parent)
        track = project.add_track(video.id, sequence.name)
        project.set_box(track.id, 0, gt[0])
        for _ in propagate(project, video.id, tracker, direction="forward", absence=absence):
            pass
        rows = {r.frame: r for r in project.boxes(track.id)}
        width, height = video.width, video.height
    n = len(gt)
    boxes = np.full((n, 4), np.nan)
    scores, looks = np.ones(n), np.ones(n)
    written_absent = np.zeros(n, bool)
    for frame, row in rows.items():
        if row.has_box and row.visible:
            boxes[frame] = row.box
        else:
            written_absent[frame] = True
        if row.score is not None:
            scores[frame] = row.score
        if row.look is not None:
            looks[frame] = row.look
    manual = np.zeros(n, bool)
    manual[0] = True
    overlaps = iou(np.nan_to_num(boxes), np.where(valid[:, None], gt, 1.0))
    failed = np.where(valid, written_absent | (overlaps < 0.5), ~written_absent)
    failed[0] = False
    entering = written_absent & ~np.r_[False, written_absent[:-1]]
    return {"features": failure_features(boxes, scores, manual, width, height, looks), "scores": scores, "failed": failed,
            "absent": ~valid, "written_absent": written_absent, "absent_as_box": ~valid & ~written_absent, "entering": entering}


def exit_sequence(sequence: Sequence, folder: Path, fully_out: float = 0.1) -> Sequence | None:
    """The sequence seen through a fixed window that the object leaves (absent ground truth).

    Real frames, cropped: the window keeps the first box and the side it starts on, and ends
    halfway along the object's largest move away from it, so the object walks out (and maybe
    back). Truth: absent where less than `fully_out` of the object's box is inside the window,
    else the box clipped to the window. None when the object never moves far enough to leave.
    """
    gt = sequence.ground_truth
    first = read_image(sequence.frames[0])
    height, width = first.shape[:2]
    x0, y0, w0, h0 = gt[0]
    centres = gt[:, :2] + gt[:, 2:] / 2
    best = None
    for axis, size in ((0, width), (1, height)):
        moves = centres[:, axis] - centres[0, axis]
        for sign in (1, -1):
            reach = float(np.max(sign * moves))
            extent = gt[0, 2 + axis]
            if reach < 1.5 * extent:
                continue
            if sign > 0:
                lo, hi = 0.0, min(gt[0, axis] + extent + reach / 2, size)
            else:
                lo, hi = max(gt[0, axis] - reach / 2, 0.0), float(size)
            if best is None or reach / extent > best[0]:
                best = (reach / extent, axis, int(lo), int(np.ceil(hi)))
    if best is None:
        return None
    _, axis, lo, hi = best
    window = np.array([0, 0, width, height], dtype=np.float64)
    window[axis], window[2 + axis] = lo, hi - lo
    x1, y1 = np.maximum(gt[:, 0], window[0]), np.maximum(gt[:, 1], window[1])
    x2 = np.minimum(gt[:, 0] + gt[:, 2], window[0] + window[2])
    y2 = np.minimum(gt[:, 1] + gt[:, 3], window[1] + window[3])
    inside = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None) / np.maximum(gt[:, 2] * gt[:, 3], 1e-9)
    absent = inside < fully_out
    if absent.sum() < 10:
        return None
    clipped = np.stack([x1 - window[0], y1 - window[1], x2 - x1, y2 - y1], axis=1)
    clipped[absent] = 0.0
    folder.mkdir(parents=True, exist_ok=True)
    frames = []
    for i, path in enumerate(sequence.frames):
        image = read_image(path)[int(window[1]) : int(window[1] + window[3]), int(window[0]) : int(window[0] + window[2])]
        frames.append(folder / f"{i + 1:08d}.jpg")
        cv2.imwrite(str(frames[-1]), cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    return Sequence(f"{sequence.name}-exit", frames, clipped, absent)


def queue_quality(flags: np.ndarray, data: dict[str, np.ndarray]) -> dict[str, float]:
    """Flag share, recall / precision for failures, absent frames written as boxes, and frames to look at."""
    failed, absent = data["failed"].copy(), data["absent"]
    # Frames written as absent carry no box to judge; the first of each run is the one to check.
    flags = np.where(data["written_absent"], data["entering"], flags)
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
        "absent_as_box": int(data["absent_as_box"][1:].sum()), "visible_as_absent": int((~absent & data["written_absent"])[1:].sum()),
        "frames_to_look_at": look,
    }


def pooled(rows: list[dict[str, float]]) -> dict[str, float]:
    """Totals over sequences (fractions recomputed from the counts)."""
    keys = ("frames", "failures", "flagged", "absent_flagged", "absent", "absent_as_box", "visible_as_absent", "frames_to_look_at")
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
    parser.add_argument("--exits", action="store_true", help="also each sequence seen through a window its object leaves (absent truth)")
    parser.add_argument("--no-absence", action="store_true", help="the engine writes a box on every frame (before the absence watch)")
    parser.add_argument("--scores-only", action="store_true", help="the absence watch reads the scores only, not the boxes' look")
    parser.add_argument("--out", type=Path, default=Path("runs/review"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.sequences or sorted(p.name for p in args.sot.iterdir() if (p / "groundtruth.txt").exists())
    tracker = Tracker(load_model(args.model), device="cpu")
    absence = None if args.no_absence else AbsenceRule(unlike=None) if args.scores_only else AbsenceRule()
    passes = {}
    with tempfile.TemporaryDirectory() as cut:
        for name in names:
            sequence = load_sequence(args.sot / name)
            variants = [sequence]
            if args.exits:
                leaving = exit_sequence(sequence, Path(cut) / name)
                variants += [leaving] if leaving is not None else []
            for variant in variants:
                passes[variant.name] = forward_pass(tracker, variant, absence)
                data = passes[variant.name]
                print(f"{variant.name}: {len(data['failed'])} frames, {int(data['failed'].sum())} failures, "
                      f"{int(data['absent'].sum())} absent, {int(data['absent_as_box'].sum())} of them boxed", file=sys.stderr, flush=True)
    names = list(passes)
    threshold = review_threshold(args.model) or 0.5
    per_sequence, baseline = {}, {}
    for name, data in passes.items():
        others = [passes[n] for n in names if n != name and n.split("-exit")[0] != name.split("-exit")[0]]
        # Fitted on frames that have a box: a frame written absent is flagged by its own rule.
        train_x = np.vstack([d["features"][1:][~d["written_absent"][1:]] for d in others])
        train_y = np.concatenate([d["failed"][1:][~d["written_absent"][1:]] for d in others])
        predictor = fit_predictor(train_x, train_y, args.flag_fraction)
        per_sequence[name] = queue_quality(predictor.flags(data["features"]), data)
        baseline[name] = queue_quality(data["scores"] < threshold, data)
    report = {
        "model": args.model, "flag_fraction_target": args.flag_fraction, "baseline_threshold": threshold,
        "absence_watch": absence is not None,
        "overall": pooled(list(per_sequence.values())), "per_sequence": per_sequence,
        "baseline": {"overall": pooled(list(baseline.values())), "per_sequence": baseline},
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "review.json").write_text(json.dumps(report, indent=2))
    lines = [f"Review queue for `{args.model}`, one forward propagation per sequence, absence watch "
             f"{'on' if absence else 'off'}; predictor fitted leave one sequence out (a sequence's exit cut is left out with it).", "",
             f"| sequence | failures / frames | absent / boxed / visible written absent | flagged (score < {threshold:.2f}) | recall | look at "
             "| flagged (predictor) | recall | look at |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name in names + ["**all**"]:
        b = baseline.get(name) or report["baseline"]["overall"]
        p = per_sequence.get(name) or report["overall"]
        lines.append(f"| {name} | {b['failures']} / {b['frames']} | {b['absent']} / {b['absent_as_box']} / {b['visible_as_absent']} "
                     f"| {100 * b['flagged_fraction']:.0f}% | {100 * b['recall']:.0f}% "
                     f"| {b['frames_to_look_at']} | {100 * p['flagged_fraction']:.0f}% | {100 * p['recall']:.0f}% | {p['frames_to_look_at']} |")
    (args.out / "review.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if args.write_card:
        everything = fit_predictor(np.vstack([d["features"][1:][~d["written_absent"][1:]] for d in passes.values()]),
                                   np.concatenate([d["failed"][1:][~d["written_absent"][1:]] for d in passes.values()]), args.flag_fraction)
        card_path = (shipped_model_path(args.model) if args.model in CONFIGS else Path(args.model)).with_suffix(".json")
        card = read_card(card_path.with_suffix(".safetensors"))
        card["review_predictor"] = {**everything.to_dict(), "measured_by": "python -m benchmarks.review " + " ".join(map(str, argv if argv is not None else sys.argv[1:])),
                                    "loso_precision": round(report["overall"]["precision"], 3),
                                    "loso_frames_to_look_at": report["overall"]["frames_to_look_at"],
                                    "baseline_frames_to_look_at": report["baseline"]["overall"]["frames_to_look_at"],
                                    "loso_recall": round(report["overall"]["recall"], 3),
                                    "loso_flagged_fraction": round(report["overall"]["flagged_fraction"], 3)}
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        assert FailurePredictor.from_dict(card["review_predictor"]) is not None
        print(f"wrote review_predictor into {card_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
