"""Annotation effort with adaptation in the loop (docs/benchmarks.md §7).

The simulated annotator of `benchmarks.effort` (§2), once as it is and once with adaptation
switched on as the app does it: first box -> propagate -> adapt -> re-track -> correct -> every
`--every` corrections adapt again (`trainer.adapt.adapt_video`: a time-boxed fine-tune on the
annotator's boxes so far, then the never-worse gate; a discarded model changes nothing). Each
sequence starts again from the shipped model. The adaptation sees only the boxes the annotator
drew, as the app would; each run's models live in a temporary folder and are deleted. Rounds train
for the app's wall-clock budget, so a busier machine gets fewer steps and other models; with
`--round-steps N` each trains exactly N steps instead, and the run repeats on any load.

    python -m benchmarks.adapt --out runs/adapt [--sequences Deer Dog ...] [--taus 0.5 0.7]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from benchmarks.effort import Adapter, effort_ours
from projects import Project
from sstrack import Tracker, load_model
from sstrack.sequences import load_sequence
from trainer.adapt import (
    ADAPT_RECIPE,
    EARLY_STEPS,
    HELD_OUT_PER_OBJECT,
    MAX_ROUND_SECONDS,
    ROUND_EVERY,
    SECONDS_PER_100_FRAMES,
    adapt_video,
    recheck_unlabelled,
    round_budget,
)
from trainer.clips import Box
from trainer.config import TrainConfig

SHARED = Path(__file__).resolve().parents[2] / "shared"


class LoopAdapter:
    """The app's schedule for one sequence: adapt after the first box, then every `every` corrections.

    A model kept without a label to judge it by (no held-out keyframe) is re-judged at each later
    correction against the model it replaced (`recheck_unlabelled`), and undone if it loses there.
    """

    def __init__(self, base: str, folder: Path, every: int, budget_s: float, backend: str, held_out: int = HELD_OUT_PER_OBJECT,
                 recheck: bool = True, recipe: TrainConfig = ADAPT_RECIPE, early_steps: tuple[int, ...] = EARLY_STEPS) -> None:
        self.current: str | Path = base
        self.folder, self.every, self.budget_s, self.backend, self.held_out = folder, every, budget_s, backend, held_out
        self.recheck, self.recipe, self.early_steps = recheck, recipe, early_steps
        self.unlabelled: tuple[str | Path, list[dict[int, Box]]] | None = None  # (the model it replaced, its training keyframes)
        self.seconds = 0.0
        self.rounds: list[dict[str, object]] = []

    def __call__(self, project: Project, video_id: int, corrections: int) -> Tracker | None:
        """One round when the schedule says so; the adapted (or restored) tracker when the model changes."""
        started = time.perf_counter()
        restored = self._recheck(project, video_id, corrections) if self.unlabelled else None
        if corrections % self.every:
            self.seconds += time.perf_counter() - started
            return restored
        result = adapt_video(project, video_id, self.current, self.folder / f"round_{len(self.rounds)}", self.budget_s,
                             recipe=self.recipe, held_out=self.held_out, early_steps=self.early_steps)
        tracker = self._tracker(result.model) if result.accepted and result.model else None
        if tracker is not None:
            self.unlabelled = (self.current, list(result.trained)) if self.recheck and result.unlabelled else None
            self.current = result.model  # type: ignore[assignment]
        self.seconds += time.perf_counter() - started
        self.rounds.append({"after_corrections": corrections, "steps": result.steps, "accepted": result.accepted, "reason": result.reason,
                            "before": asdict(result.before) if result.before else None, "after": asdict(result.after) if result.after else None})
        print(f"    round {len(self.rounds)} after {corrections} corrections: {result.steps} steps, {result.reason}", flush=True)
        return tracker or restored

    def _recheck(self, project: Project, video_id: int, corrections: int) -> Tracker | None:
        assert self.unlabelled is not None
        fallback, trained = self.unlabelled
        judged = recheck_unlabelled(project, video_id, self.current, fallback, trained)
        if judged is None:
            return None
        self.rounds.append({"after_corrections": corrections, "steps": 0, "accepted": judged.accepted, "reason": judged.reason,
                            "recheck": True})
        print(f"    recheck after {corrections} corrections: {judged.reason}", flush=True)
        if judged.accepted:
            return None
        self.current, self.unlabelled = fallback, None
        return self._tracker(fallback)

    def _tracker(self, model: str | Path) -> Tracker:
        return Tracker(load_model(model), device="cpu", backend=self.backend)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write adapt.json + adapt.md."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sot", type=Path, default=SHARED / "data" / "sot")
    parser.add_argument("--sequences", nargs="*", default=None)
    parser.add_argument("--taus", nargs="*", type=float, default=[0.5, 0.7])
    parser.add_argument("--model", default="sstrack-lite")
    parser.add_argument("--every", type=int, default=ROUND_EVERY, help="adapt again after this many corrections")
    parser.add_argument("--seconds-per-100", type=float, default=SECONDS_PER_100_FRAMES, help="training budget of a round per 100 frames of the video")
    parser.add_argument("--max-round-s", type=float, default=MAX_ROUND_SECONDS, help="cap on a round's training budget")
    parser.add_argument("--round-steps", type=int, default=None, metavar="N",
                        help="train each round for exactly N steps instead of a wall-clock budget: a run that repeats on any machine")
    parser.add_argument("--early-steps", type=int, nargs="*", default=list(EARLY_STEPS), metavar="N",
                        help="also judge the model after these steps when a round's own is discarded (default: the app's, off)")
    parser.add_argument("--held-out", type=int, default=HELD_OUT_PER_OBJECT, help="latest keyframes per object the gate keeps out of training")
    parser.add_argument("--no-recheck", action="store_true", help="keep a model adopted without labels even if later keyframes say it is worse")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"))
    parser.add_argument("--out", type=Path, default=Path("runs/adapt"))
    args = parser.parse_args(argv)
    if args.round_steps is not None and args.round_steps < 1:
        parser.error("--round-steps must be at least 1")
    if any(n < 1 for n in args.early_steps):
        parser.error("--early-steps must be at least 1")
    torch.set_num_threads(args.threads)
    names = args.sequences or sorted(p.name for p in args.sot.iterdir() if (p / "groundtruth.txt").exists())
    base_tracker = Tracker(load_model(args.model), device="cpu", backend=args.backend)
    # A wall-clock budget gives a busy machine fewer steps and so another model; a step budget does not.
    recipe = ADAPT_RECIPE if args.round_steps is None else ADAPT_RECIPE.replace(steps=args.round_steps)
    results: dict[str, dict[str, dict[str, object]]] = {}
    for name in names:
        sequence = load_sequence(args.sot / name)
        frames = len(sequence)
        budget = round_budget(frames, args.seconds_per_100, args.max_round_s) if args.round_steps is None else float("inf")
        for tau in args.taus:
            without, _ = effort_ours(sequence, base_tracker, tau)
            with tempfile.TemporaryDirectory() as tmp:
                adapter: Adapter = LoopAdapter(args.model, Path(tmp), args.every, budget, args.backend, args.held_out, not args.no_recheck,
                                               recipe, tuple(args.early_steps))
                with_adapt, seconds = effort_ours(sequence, base_tracker, tau, adapter=adapter)
            row = {
                "without": 100 * without / frames, "with": 100 * with_adapt / frames, "adapt_s": round(adapter.seconds, 1),
                "total_s": round(seconds, 1), "rounds": adapter.rounds,
            }
            results.setdefault(f"{tau:g}", {})[name] = row
            trained = [r for r in adapter.rounds if not r.get("recheck")]
            print(f"{name:>14} tau {tau:g}: without {row['without']:.2f}  with {row['with']:.2f}  "
                  f"({adapter.seconds:.0f} s adapting, {sum(bool(r['accepted']) for r in trained)}/{len(trained)} rounds accepted)", flush=True)
    summary = {
        tau: {
            "without": float(np.mean([r["without"] for r in rows.values()])),
            "with": float(np.mean([r["with"] for r in rows.values()])),
            "adapt_s": float(np.mean([r["adapt_s"] for r in rows.values()])),
            "worse": sorted(n for n, r in rows.items() if r["with"] > r["without"]),
        }
        for tau, rows in results.items()
    }
    settings = {"every": args.every, "seconds_per_100": args.seconds_per_100, "max_round_s": args.max_round_s, "threads": args.threads,
                "held_out": args.held_out, "recheck": not args.no_recheck, "round_steps": args.round_steps,
                "early_steps": args.early_steps}
    args.out.mkdir(parents=True, exist_ok=True)
    report = {"model": args.model, "settings": settings, "measured_by": "python -m benchmarks.adapt " + " ".join(argv or sys.argv[1:]),
              "per_sequence": results, "mean": summary}
    (args.out / "adapt.json").write_text(json.dumps(report, indent=2))
    lines = []
    for tau, rows in results.items():
        lines += [f"### tau = {tau} (manual boxes per 100 frames, lower is better)", "",
                  "| sequence | without | with adaptation | change | s adapting | rounds accepted |", "|---|---|---|---|---|---|"]
        for seq, row in rows.items():
            rounds = [r for r in row["rounds"] if not r.get("recheck")]  # type: ignore[union-attr]
            accepted = sum(bool(r["accepted"]) for r in rounds)
            lines.append(f"| {seq} | {row['without']:.2f} | {row['with']:.2f} | {row['with'] - row['without']:+.2f} | "  # type: ignore[operator]
                         f"{row['adapt_s']:.0f} | {accepted}/{len(rounds)} |")
        mean = summary[tau]
        lines += [f"| **mean** | **{mean['without']:.2f}** | **{mean['with']:.2f}** | | {mean['adapt_s']:.0f} | |",
                  f"Sequences worse with adaptation: {', '.join(mean['worse']) or 'none'}.", ""]
    (args.out / "adapt.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
