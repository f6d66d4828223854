"""Objective ablation on our data and one fixed budget (the direction of the paper's Tab. 6).

Trains sstrack-lite from the ImageNet trunk on the unlabeled clips of ../shared/data/videos with
the same steps, batch, seed and data for each variant, then runs OPE on ../shared/data/sot:

- full: global forward + local backward + instance contrastive (warm-up, then global stage);
- no-contrastive: without the instance contrastive loss;
- no-global: without the forward (global) stage: templates are augmented initial crops;
- no-warmup: the full objective with the global stage from step 0.

    python -m benchmarks.ablation --out runs/ablation [--steps 600] [--batch-size 8]
        [--device cuda --workers 8 --no-eval]   # train on a GPU machine, evaluate later on the CPU

A variant whose OUT/<variant>/model.safetensors exists is not trained again, so models trained
elsewhere are evaluated by re-running the same command without --no-eval; one with a checkpoint
but no final model resumes from it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from benchmarks.ope import evaluate
from sstrack.metrics import mean_scores
from trainer import TrainConfig, finetune

SHARED = Path(__file__).resolve().parents[2] / "shared"
VARIANTS = {
    "full": {},
    "no-contrastive": {"contrastive": False},
    "no-global": {"global_stage": False},
    "no-warmup": {"warmup_steps": 0},
}


def training_clips(videos: Path) -> list[Path]:
    """The unlabeled clips (top level and extra/); never the SOT evaluation set."""
    return sorted([*videos.glob("*.mp4"), *videos.glob("*.avi"), *(videos / "extra").glob("*.mp4")])


def main(argv: list[str] | None = None) -> int:
    """Train each variant, evaluate, write ablation.json / ablation.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--videos", type=Path, default=SHARED / "data" / "videos")
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--warmup", type=int, default=150)
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--base", default="sstrack-lite:imagenet")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--no-eval", action="store_true", help="train only")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("runs/ablation"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = training_clips(args.videos)
    rows = {}
    for name in args.variants:
        base = TrainConfig(batch_size=args.batch_size, warmup_steps=args.warmup, checkpoint_every=args.checkpoint_every, workers=args.workers)
        train = base.replace(**VARIANTS[name])
        model = args.out / name / "model.safetensors"
        if not model.exists():
            # Checkpoints let a run cut short (a time-limited GPU call) continue exactly next time.
            resume = (args.out / name / "latest.json").exists()
            model = finetune(clips, args.base, args.out / name, steps=args.steps, train=train, device=args.device, resume=resume)
        if args.no_eval:
            continue
        results = evaluate([str(model)], args.sot, None)
        scores = mean_scores([r.scores for r in next(iter(results.values()))])
        rows[name] = {**scores, "per_sequence": {r.sequence: 100 * r.scores.auc for r in next(iter(results.values()))}}
        print(f"{name}: AUC {scores['auc']:.1f}", flush=True)
    if args.no_eval:
        return 0
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ablation.json").write_text(json.dumps({"steps": args.steps, "batch_size": args.batch_size, "warmup": args.warmup, "variants": rows}, indent=2))
    lines = [f"Ablation: sstrack-lite from the ImageNet trunk, {args.steps} steps x batch {args.batch_size}, same data and seed", "",
             "| variant | AUC | precision | norm. precision |", "|---|---|---|---|"]
    lines += [f"| {n} | {r['auc']:.1f} | {r['precision']:.1f} | {r['norm_precision']:.1f} |" for n, r in rows.items()]
    (args.out / "ablation.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
