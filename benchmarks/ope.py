"""One-pass evaluation on ../shared/data/sot: our model(s) and the OpenCV peers in one run.

    python -m benchmarks.ope --out runs/ope [--model sstrack-lite other.safetensors] [--no-peers] [--starts 3]

`--starts K` runs each sequence from K start frames spread over it and pools their frames (OTB's
TRE, `sstrack.evaluation.run_restarts`): less at the mercy of one jump than OPE, for comparing
two versions of a method. K = 1 (the default) is OPE.

Writes ope.json (every number, curves included) and ope.md (the table), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from sstrack import Tracker, load_model
from sstrack.cli import format_table, results_json
from sstrack.evaluation import OursSingle, RunResult, opencv_peers, run_restarts, run_sequence
from sstrack.sequences import load_sequence, read_image

SHARED = Path(__file__).resolve().parents[2] / "shared"


def add_tracker_arguments(parser: argparse.ArgumentParser, out: Path) -> None:
    """The arguments every per-sequence tracker benchmark takes (models, data, peers, threads, out)."""
    parser.add_argument("--model", nargs="*", default=["sstrack-lite"])
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--peers", type=Path, default=SHARED / "peers")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--sequences", nargs="*", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backend", nargs="*", default=["auto"], choices=("auto", "torch", "onnx"),
                        help="runtime(s) of our network; several: one column each (same run)")
    parser.add_argument("--out", type=Path, default=out)


def our_trackers(models: list[str], backends: tuple[str, ...] | list[str] = ("auto",)) -> list[OursSingle]:
    """Our trackers, one per model and backend, named by model_labels (plus the backend when several)."""
    trackers = []
    for model, label in zip(models, model_labels(models)):
        loaded = load_model(model)
        for backend in backends:
            name = f"{label} [{backend}]" if len(backends) > 1 else label
            trackers.append(OursSingle(Tracker(loaded, device="cpu", backend=backend), name))
    return trackers


def model_labels(models: list[str]) -> list[str]:
    """A column name per model: the file stem, with its folder where two stems are the same."""
    stems = [Path(m).stem for m in models]
    return [
        f"{Path(m).parent.name}/{stem}" if stems.count(stem) > 1 and Path(m).parent.name else stem
        for m, stem in zip(models, stems)
    ]


def evaluate(models: list[str], sot: Path, peers_dir: Path | None, names: list[str] | None = None,
             backends: tuple[str, ...] | list[str] = ("auto",), starts: int = 1) -> dict[str, list[RunResult]]:
    """OPE (TRE with `starts` > 1) of every model (and peer) on every sequence; frames decoded once per sequence."""
    names = names or sorted(p.name for p in sot.iterdir() if (p / "groundtruth.txt").exists())
    trackers: list = our_trackers(models, backends)
    if peers_dir is not None:
        trackers += opencv_peers(peers_dir)
    results: dict[str, list[RunResult]] = {t.name: [] for t in trackers}
    for name in names:
        sequence = load_sequence(sot / name)
        frames = [read_image(p) for p in sequence.frames]
        for tracker in trackers:
            result = run_sequence(tracker, sequence, frames) if starts == 1 else run_restarts(tracker, sequence, frames, starts)
            results[tracker.name].append(result)
            print(f"{name:>14} {tracker.name:>24} AUC {100 * result.scores.auc:5.1f} {result.fps:7.1f} fps", file=sys.stderr, flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    """Run and write the report."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tracker_arguments(parser, Path("runs/ope"))
    parser.add_argument("--starts", type=int, default=1, help="start frames per sequence, pooled (TRE); 1: OPE")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.starts < 1:
        parser.error("--starts must be at least 1")
    results = evaluate(args.model, args.sot, None if args.no_peers else args.peers, args.sequences, args.backend, args.starts)
    table = format_table(results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ope.json").write_text(json.dumps(results_json(results), indent=2))
    (args.out / "ope.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
