"""`sstrack-train`: fine-tune a tracker on unlabeled footage with the SSTrack objectives."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
from pathlib import Path

import torch

from sstrack.errors import SSTrackError
from sstrack.sequences import quiet_decoder_logs
from trainer.adapt import ADAPT_RECIPE
from trainer.clips import ClipSpec, NoUsableClipsError
from trainer.config import TrainConfig
from trainer.loop import StepReport, TrainingError, finetune


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="sstrack-train",
        description="Fine-tune an SSTrack model on your own (unlabeled) videos.",
    )
    parser.add_argument("--data", nargs="+", required=True, type=Path, help="videos, image folders or folders of videos")
    parser.add_argument("--boxes", type=Path, help='JSON {"path": {"frame": [x, y, w, h]}} of initial boxes')
    parser.add_argument("--base", default="sstrack-lite", help="base model: name, file, or sstrack-lite:imagenet")
    parser.add_argument("--steps", type=int, default=None, help="optimiser steps (default 2000)")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--out", type=Path, default=Path("runs/finetune"), help="run folder")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out exactly")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--no-global", action="store_true", help="ablation: no forward (global) stage")
    parser.add_argument("--no-contrastive", action="store_true", help="ablation: no instance contrastive loss")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="stop and save after this much training time (resume continues); for a lent GPU")
    parser.add_argument("--recipe", choices=("default", "adapt"), default="default",
                        help="adapt: the safe recipe of adaptation to one's own footage (trainer.adapt.ADAPT_RECIPE: frozen "
                             "trunk, keyframe pairs, anchored to the base), for the app's one-click fine-tune")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="other TrainConfig fields; repeated --set options add up, the last value of a key wins")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    prepare_training_process(args.threads)
    try:
        train = _train_config(args)
        sources = _sources(args)
        command = "sstrack-train " + shlex.join(sys.argv[1:] if argv is None else argv)
        path = finetune(
            sources, args.base, args.out, steps=args.steps, train=train, resume=args.resume,
            device=args.device, on_step=_print_progress, card={"command": command},
            max_seconds=None if args.max_minutes is None else args.max_minutes * 60,
        )
    except KeyboardInterrupt:
        print(f"\ninterrupted; continue with: sstrack-train --resume --out {args.out} --data ...", file=sys.stderr)
        return 130
    except (SSTrackError, NoUsableClipsError, TrainingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if os.environ.get("RANK", "0") == "0":  # under torchrun only rank 0 writes the model
        print(f"\nmodel written: {path} (card: {path.with_suffix('.json')})")
    return 0


def prepare_training_process(threads: int | None) -> None:
    """What a training command sets up first: log lines, quiet decoders, clean stops, torch threads."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    quiet_decoder_logs()
    _stop_cleanly_on_signals()
    if threads:
        torch.set_num_threads(threads)


def _stop_cleanly_on_signals() -> None:
    """SIGTERM (the app's Cancel, `kill`) and SIGINT save a checkpoint and stop, like Ctrl+C.

    SIGINT is set explicitly because a shell starts background jobs with it ignored.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, interrupt)


def _train_config(args: argparse.Namespace) -> TrainConfig:
    overrides: dict[str, object] = {}
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.no_global:
        overrides["global_stage"] = False
    if args.no_contrastive:
        overrides["contrastive"] = False
    defaults = TrainConfig()
    if args.recipe == "adapt":  # a long run still checkpoints (resume) and loads in a worker like the default
        defaults = ADAPT_RECIPE.replace(checkpoint_every=defaults.checkpoint_every, workers=defaults.workers)
    for item in args.set:
        key, _, value = item.partition("=")
        current = getattr(defaults, key, None)
        overrides[key] = json.loads(value) if not isinstance(current, str) else value
    return defaults.replace(**overrides)


def _sources(args: argparse.Namespace) -> list[Path | ClipSpec]:
    if not args.boxes:
        return list(args.data)
    table = json.loads(args.boxes.read_text())
    sources: list[Path | ClipSpec] = []
    for path in args.data:
        boxes = table.get(str(path))
        if boxes:
            sources.append(ClipSpec(path, {int(k): tuple(v) for k, v in boxes.items()}))
        else:
            sources.append(path)
    return sources


def _print_progress(report: StepReport) -> None:
    eta = int(report.eta_s)
    losses = " ".join(f"{k} {v:.3f}" for k, v in report.stats.items())
    print(
        f"\rstep {report.step}/{report.steps} {losses} | {report.samples_per_s:.1f} samples/s "
        f"| ETA {eta // 3600}:{eta % 3600 // 60:02d}:{eta % 60:02d}",
        end="\n" if report.step % 50 == 0 or report.step == report.steps else "",
        flush=True,
    )


if __name__ == "__main__":
    sys.exit(main())
