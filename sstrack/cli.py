"""`sstrack`: track a box through a video, or evaluate trackers on SOT sequences side by side.

    sstrack track VIDEO_OR_IMAGE_DIR --box x,y,w,h [--model M] [--out boxes.txt]
    sstrack eval SEQ_DIR... [--model M] [--peers ../shared/peers] [--json out.json]
    sstrack info [MODEL]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from tqdm import tqdm

from sstrack.crops import check_box
from sstrack.errors import InputError, SSTrackError
from sstrack.fileio import atomic_write_bytes
from sstrack.metrics import mean_scores
from sstrack.sequences import count_frames, iter_frames, load_sequence, read_image

# torch, timm and the model load inside the commands, after the arguments and the input files
# have been checked: a mistyped box or a missing video is answered in well under a second.
if TYPE_CHECKING:
    from sstrack.evaluation import RunResult

DEFAULT_MODEL = "sstrack-lite"


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="sstrack", description="SSTrack tracker library tools.")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: the cores the load leaves idle)")
    sub = parser.add_subparsers(dest="command", required=True)

    track = sub.add_parser("track", help="track one box through a video or image folder")
    track.add_argument("source", type=Path, help="video file or folder of frames")
    track.add_argument("--box", required=True, help="x,y,w,h of the target in the first frame (pixels)")
    track.add_argument("--model", default=DEFAULT_MODEL, help="model name or weight file")
    track.add_argument("--device", default="auto")
    track.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"),
                       help="network runtime: auto = ONNX Runtime on the CPU where it is exact, else torch")
    track.add_argument("--out", type=Path, help="write one x,y,w,h line per frame here (default: stdout)")

    evaluate = sub.add_parser("eval", help="one-pass evaluation against ground truth, with peers")
    evaluate.add_argument("sequences", nargs="+", type=Path, help="SOT folders (img/ + groundtruth.txt)")
    evaluate.add_argument("--model", nargs="*", default=[DEFAULT_MODEL], help="our model(s) to evaluate")
    evaluate.add_argument("--peers", type=Path, default=None, help="folder with nanotrack_v2/ and vittrack/")
    evaluate.add_argument("--no-peers", action="store_true", help="evaluate only our model(s)")
    evaluate.add_argument("--device", default="auto")
    evaluate.add_argument("--json", type=Path, help="write every number here")

    info = sub.add_parser("info", help="show a model's card")
    info.add_argument("model", nargs="?", default=DEFAULT_MODEL)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "track":
            return _track(args)
        if args.command == "eval":
            return _eval(args)
        return _info(args)
    except SSTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def parse_box(text: str) -> np.ndarray:
    """'x,y,w,h' -> array; a clear error otherwise."""
    try:
        values = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError as error:
        raise InputError(f"--box {text!r}: expected four numbers x,y,w,h, e.g. --box 120,80,60,40") from error
    if len(values) != 4:
        raise InputError(f"--box {text!r}: expected four numbers x,y,w,h, e.g. --box 120,80,60,40")
    return np.asarray(values)


def _track(args: argparse.Namespace) -> int:
    box = parse_box(args.box)
    total = count_frames(args.source)
    frames = iter_frames(args.source)
    first = next(frames)
    check_box(box, first.shape[1], first.shape[0])  # a box off the frame is refused before the model loads
    from sstrack.checkpoints import load_model
    from sstrack.tracker import Tracker

    _use_threads(args)
    tracker = Tracker(load_model(args.model), device=args.device, backend=args.backend)
    state = tracker.start(first, box)
    lines = [_fmt(state.box)]
    start = time.perf_counter()
    with tqdm(total=total, unit="frame", desc="tracking", file=sys.stderr) as bar:
        bar.update(1)
        for frame in frames:
            ((result, _score),) = tracker.step([state], frame)
            lines.append(_fmt(result))
            bar.update(1)
    elapsed = time.perf_counter() - start
    text = "\n".join(lines) + "\n"
    if args.out:
        try:
            atomic_write_bytes(args.out, text.encode())
        except OSError as error:
            raise InputError(f"{args.out}: cannot write ({error.strerror}); choose another path") from error
    else:
        sys.stdout.write(text)
    fps = (len(lines) - 1) / elapsed if elapsed > 0 else float("nan")
    where = f" -> {args.out}" if args.out else ""
    print(f"{len(lines)} frames tracked at {fps:.1f} fps on {tracker.device.type} ({tracker.precision}, {tracker.backend}){where}", file=sys.stderr)
    return 0


def _use_threads(args: argparse.Namespace) -> None:
    from sstrack.threads import use_cpu_threads

    use_cpu_threads(args.threads)  # the idle cores unless --threads says otherwise


def _fmt(box: np.ndarray | tuple) -> str:
    return ",".join(f"{v:.2f}" for v in box)


def _eval(args: argparse.Namespace) -> int:
    sequences = [load_sequence(p) for p in args.sequences]
    from sstrack.checkpoints import load_model
    from sstrack.evaluation import OursSingle, opencv_peers, run_sequence
    from sstrack.tracker import Tracker

    _use_threads(args)
    trackers = [OursSingle(Tracker(load_model(m), device=args.device), Path(str(m)).stem) for m in args.model]
    if not args.no_peers:
        trackers += opencv_peers(args.peers)
    results: dict[str, list[RunResult]] = {t.name: [] for t in trackers}
    for sequence in sequences:
        frames = [read_image(p) for p in sequence.frames]
        for tracker in trackers:
            result = run_sequence(tracker, sequence, frames)
            results[tracker.name].append(result)
            print(f"{sequence.name:>14} {tracker.name:>16}  AUC {100 * result.scores.auc:5.1f}  {result.fps:7.1f} fps", file=sys.stderr)
    table = format_table(results)
    print(table)
    if args.json:
        atomic_write_bytes(args.json, json.dumps(results_json(results), indent=2).encode())
    return 0


def format_table(results: dict[str, list[RunResult]]) -> str:
    """Markdown OPE table: AUC per sequence, then mean AUC / precision / norm. precision / fps."""
    names = list(results)
    sequences = [r.sequence for r in results[names[0]]]
    lines = ["| sequence | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for i, seq in enumerate(sequences):
        lines.append(f"| {seq} | " + " | ".join(f"{100 * results[n][i].scores.auc:.1f}" for n in names) + " |")
    means = {n: mean_scores([r.scores for r in results[n]]) for n in names}
    for key, label in (("auc", "**mean AUC**"), ("precision", "mean precision@20px"), ("norm_precision", "mean norm. precision")):
        lines.append(f"| {label} | " + " | ".join(f"{means[n][key]:.1f}" for n in names) + " |")
    fps = {n: float(np.median([r.fps for r in results[n]])) for n in names}
    lines.append("| median fps | " + " | ".join(f"{fps[n]:.1f}" for n in names) + " |")
    return "\n".join(lines)


def results_json(results: dict[str, list[RunResult]]) -> dict:
    """Every number of an evaluation, JSON-able."""
    return {
        name: {
            "mean": mean_scores([r.scores for r in runs]),
            "median_fps": float(np.median([r.fps for r in runs])),
            "sequences": {
                r.sequence: {
                    "auc": 100 * r.scores.auc,
                    "precision": 100 * r.scores.precision,
                    "norm_precision": 100 * r.scores.norm_precision,
                    "fps": r.fps,
                    "success_curve": r.scores.success_curve.tolist(),
                    "precision_curve": r.scores.precision_curve.tolist(),
                }
                for r in runs
            },
        }
        for name, runs in results.items()
    }


def _info(args: argparse.Namespace) -> int:
    from sstrack.checkpoints import load_model, read_card, shipped_model_path
    from sstrack.config import CONFIGS

    path = shipped_model_path(args.model) if args.model in CONFIGS else Path(args.model)
    model = load_model(args.model)
    card = read_card(path) if path.suffix == ".safetensors" else {}
    params = sum(p.numel() for p in model.parameters())
    print(f"model: {args.model}\nconfig: {model.config.name}  parameters: {params:,}")
    if card:
        print(json.dumps({k: v for k, v in card.items() if k != "config"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
