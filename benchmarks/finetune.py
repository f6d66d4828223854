"""Self-supervised fine-tuning gain (docs/benchmarks.md §4).

Treats some labelled SOT sequences as a user's own footage: the trainer gets only each sequence's
frames and its first-frame box (read here from line 1 of groundtruth.txt and passed as a
ClipSpec; the trainer never opens the ground-truth file). The shipped model is fine-tuned on
them, then OPE (and annotation effort at tau 0.5) runs before and after on the same sequences.
"Adopted" is what the app's dialog gives each video: the new model where the per-video gate
(`trainer.adapt.gate_scores` from the first box, as `judge_project` does) finds it not worse, else
the base model.

    python -m benchmarks.finetune --out runs/finetune [--sequences Couple Crossing ...] [--recipe adapt|default]

`--recipe adapt` (the default) is what the app's Fine-tune dialog runs (`sstrack-train --recipe
adapt`); `--recipe default` is the original SSTrack fine-tuning recipe.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch

from benchmarks.effort import effort_ours
from benchmarks.ope import evaluate
from projects.media import open_media
from sstrack import Tracker, load_model
from sstrack.metrics import mean_scores
from sstrack.sequences import load_sequence
from trainer import ClipSpec, TrainConfig, finetune
from trainer.adapt import ADAPT_RECIPE, gate_scores, verdict

SHARED = Path(__file__).resolve().parents[2] / "shared"
DEFAULT_SEQUENCES = ["Couple", "Crossing", "MotorRolling", "Football1"]


def main(argv: list[str] | None = None) -> int:
    """Fine-tune, evaluate before/after, write finetune.json / .md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--sequences", nargs="*", default=DEFAULT_SEQUENCES)
    parser.add_argument("--base", default="sstrack-lite")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--recipe", choices=("adapt", "default"), default="adapt")
    parser.add_argument("--out", type=Path, default=Path("runs/finetune"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    specs = []
    for name in args.sequences:
        first_box = read_boxes_first_line(args.sot / name / "groundtruth.txt")
        specs.append(ClipSpec(args.sot / name / "img", {0: tuple(first_box)}))
    if args.recipe == "adapt":
        train = ADAPT_RECIPE.replace(batch_size=args.batch_size)
    else:
        train = TrainConfig(batch_size=args.batch_size, warmup_steps=args.steps // 4, checkpoint_every=10**9)
    tuned = args.out / "model.safetensors"
    if not tuned.exists():
        tuned = finetune(specs, args.base, args.out, steps=args.steps, train=train)
    results = evaluate([args.base, str(tuned)], args.sot, None, args.sequences)
    before, after = (mean_scores([r.scores for r in runs]) for runs in results.values())
    efforts = {}
    for label, model in (("before", args.base), ("after", str(tuned))):
        tracker = Tracker(load_model(model), device="cpu")
        efforts[label] = float(np.mean([
            100 * effort_ours(load_sequence(args.sot / n), tracker, 0.5)[0] / len(load_sequence(args.sot / n)) for n in args.sequences
        ]))
    gates = {spec.path.parent.name: judge_sequence(spec, args.base, str(tuned)) for spec in specs}
    per_sequence = {}
    for r_b, r_a in zip(*results.values()):
        accepted, reason = gates[r_b.sequence]
        per_sequence[r_b.sequence] = {"before": 100 * r_b.scores.auc, "after": 100 * r_a.scores.auc, "adopted": accepted,
                                      "gate": reason, "as_adopted": 100 * (r_a if accepted else r_b).scores.auc}
    report = {"sequences": args.sequences, "steps": args.steps, "batch_size": args.batch_size, "recipe": args.recipe,
              "auc_before": before["auc"], "auc_after": after["auc"],
              "auc_as_adopted": float(np.mean([v["as_adopted"] for v in per_sequence.values()])),
              "effort_before": efforts["before"], "effort_after": efforts["after"], "per_sequence": per_sequence}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "finetune.json").write_text(json.dumps(report, indent=2))
    lines = ["| sequence | AUC before | AUC after | gate | AUC as adopted |", "|---|---|---|---|---|"]
    lines += [f"| {s} | {v['before']:.1f} | {v['after']:.1f} | {'adopted' if v['adopted'] else 'kept base'}: {v['gate'].removeprefix('adapted: ')} | "
              f"{v['as_adopted']:.1f} |" for s, v in per_sequence.items()]
    worst = min(per_sequence.items(), key=lambda item: item[1]["after"] - item[1]["before"])
    worst_adopted = min(per_sequence.items(), key=lambda item: item[1]["as_adopted"] - item[1]["before"])
    lines += [f"| **mean** | **{before['auc']:.1f}** | **{after['auc']:.1f}** | | **{report['auc_as_adopted']:.1f}** |", "",
              f"Worst sequence: {worst[0]} ({worst[1]['before']:.1f} -> {worst[1]['after']:.1f}); as adopted: "
              f"{worst_adopted[0]} ({worst_adopted[1]['before']:.1f} -> {worst_adopted[1]['as_adopted']:.1f}).", "",
              f"Annotation effort at tau 0.5 (manual boxes / 100 frames): {efforts['before']:.2f} before, {efforts['after']:.2f} after."]
    (args.out / "finetune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


def judge_sequence(spec: ClipSpec, base: str, tuned: str) -> tuple[bool, str]:
    """The app's per-video gate on one sequence, from its first box (the only label the trainer had)."""
    box = tuple(float(v) for v in spec.boxes[0])
    with open_media(spec.path) as media:
        before, after = (gate_scores(Tracker(load_model(model), device="cpu", backend="torch"), media, [], [{0: box}])
                         for model in (base, tuned))
    return verdict(before, after)


def read_boxes_first_line(path: Path) -> np.ndarray:
    """Only the first ground-truth line (the 'user's first-frame box')."""
    with open(path) as handle:
        first = handle.readline()
    return np.asarray([float(v) for v in re.split(r"[,\s]+", first.strip()) if v])


if __name__ == "__main__":
    sys.exit(main())
