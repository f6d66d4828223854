"""`sstrack-train`: fine-tune a tracker on unlabeled footage with the SSTrack objectives."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import signal
import sys
from pathlib import Path

import torch

from sstrack.errors import SSTrackError
from sstrack.fileio import regular_file_problem
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
    parser.add_argument("--template-attention", choices=("joint", "own"), default=None,
                        help="train the base model's weights with template tokens attending to everything (joint) "
                             "or to their own template only (own: cacheable, faster tracking)")
    parser.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                        help="other TrainConfig fields; repeated --set options add up, the last value of a key wins")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    prepare_training_process(args.threads)
    try:
        train, given = _train_config(args)
        sources = _sources(args)
        command = "sstrack-train " + shlex.join(sys.argv[1:] if argv is None else argv)
        path = finetune(
            sources, args.base, args.out, steps=args.steps, train=None if args.resume else train, resume=args.resume,
            device=args.device, on_step=_print_progress, card={"command": command},
            max_seconds=None if args.max_minutes is None else args.max_minutes * 60, resume_settings=given,
            model_changes={"template_attention": args.template_attention} if args.template_attention else None,
        )
    except KeyboardInterrupt:
        if (args.out / "latest.json").exists():
            print(f"\ninterrupted; continue with: sstrack-train --resume --out {args.out} --data ...", file=sys.stderr)
        else:  # stopped while decoding or before the first step: there is nothing to resume
            print("\ninterrupted before anything was saved; run the same command again to start over", file=sys.stderr)
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


def _train_config(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, object]]:
    """The run's settings, and those the command line set explicitly (a resume must not change them)."""
    overrides: dict[str, object] = {}
    defaults = TrainConfig()
    if args.recipe == "adapt":  # a long run still checkpoints (resume) and loads in a worker like the default
        adapt = ADAPT_RECIPE.replace(checkpoint_every=defaults.checkpoint_every, workers=defaults.workers)
        overrides.update({k: v for k, v in adapt.to_dict().items() if v != getattr(defaults, k)})
    if args.batch_size:
        overrides["batch_size"] = args.batch_size
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.no_global:
        overrides["global_stage"] = False
    if args.no_contrastive:
        overrides["contrastive"] = False
    for item in args.set:
        key, _, value = item.partition("=")
        current = getattr(defaults, key, None)
        overrides[key] = json.loads(value) if not isinstance(current, str) else value
    train = defaults.replace(**overrides)
    return train, {key: getattr(train, key) for key in overrides}  # as the config normalised them


def _sources(args: argparse.Namespace) -> list[Path | ClipSpec]:
    if not args.boxes:
        return list(args.data)
    table = _read_boxes(args.boxes)
    by_path = {_resolved(Path(key)): boxes for key, boxes in table.items()}
    data = {_resolved(Path(path)) for path in args.data}
    unmatched = [key for key in table if _resolved(Path(key)) not in data]
    if unmatched:  # such boxes were dropped without a word, and the run trained on automatic boxes
        raise ValueError(
            f"{args.boxes}: {unmatched[0]!r} is not one of the --data files; key each video's boxes by the path given to --data"
        )
    return [ClipSpec(path, by_path[_resolved(Path(path))]) if by_path.get(_resolved(Path(path))) else path for path in args.data]


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a link loop: compared as written (the clip loader reports it)
        return path.absolute()


def _read_boxes(path: Path) -> dict[str, dict[int, tuple[float, float, float, float]]]:
    """The --boxes file: {video path: {frame (0-based): [x, y, w, h]}}, every value checked."""
    problem = regular_file_problem(path, 64 << 20)
    if problem is not None:
        raise ValueError(f"{path}: {problem}; --boxes takes a JSON file")
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"{path}: not readable JSON ({type(error).__name__}); fix the --boxes file") from error
    shape = '{"video path": {"frame": [x, y, w, h], ...}, ...}'
    if not isinstance(table, dict) or not all(isinstance(boxes, dict) for boxes in table.values()):
        raise ValueError(f"{path}: --boxes must be {shape}")
    parsed: dict[str, dict[int, tuple[float, float, float, float]]] = {}
    for clip, boxes in table.items():
        parsed[clip] = {}
        for frame, box in boxes.items():
            try:
                index, values = int(frame), tuple(float(v) for v in box)
            except (TypeError, ValueError, OverflowError) as error:
                raise ValueError(f"{path}: {clip!r} frame {frame!r:.20}: not a frame number and four numbers; --boxes must be {shape}") from error
            if index < 0 or len(values) != 4 or not all(math.isfinite(v) for v in values) or min(values[2:]) <= 0:
                raise ValueError(f"{path}: {clip!r} frame {frame!r:.20}: a box is x, y, w, h with w and h above 0 on a frame from 0")
            parsed[clip][index] = values  # type: ignore[assignment]
    return parsed


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
