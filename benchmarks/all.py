"""Every benchmark in one command, then the results page.

    python -m benchmarks.all --out runs/all [--quick] [--ablation] [--gpu runs/gpu] [--docs]

--quick fits a 2-core machine in about 10 minutes: OPE on four short sequences, effort on two
of them, the shipped model's speed with the peers, one clip through the pipeline, a 20-step
fine-tune on two sequences. Without it, the full set: hours on 2 cores, mostly effort over all 12
sequences (it re-tracks after every correction); the ablation, which trains three models, runs
only with --ablation. --docs writes the page to docs/results.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from benchmarks import ablation, effort, finetune, ope, pipeline, report, speed

QUICK_SEQUENCES = ["Deer", "MountainBike6", "wakeboard7", "Football1"]
DOCS_PAGE = Path(__file__).resolve().parents[1] / "docs" / "results.md"


def plan(out: Path, quick: bool, with_ablation: bool) -> list[tuple[str, object, list[str]]]:
    """(name, module, argv) of each benchmark to run, in order."""
    seqs = ["--sequences", *QUICK_SEQUENCES] if quick else []
    steps = [
        ("ope", ope, [*seqs, "--out", str(out / "ope")]),
        # Effort re-tracks after every correction: the two drone clips keep it to ~3 minutes.
        ("effort", effort, (["--sequences", *QUICK_SEQUENCES[1:3]] if quick else []) + ["--out", str(out / "effort")]),
        ("speed", speed, (["--models", "sstrack-lite", "--train-steps", "8", "--train-batch", "8"] if quick else []) + ["--out", str(out / "speed")]),
        ("pipeline", pipeline, (["--clips", "01_dog.mp4"] if quick else []) + ["--out", str(out / "pipeline")]),
        ("finetune", finetune, (["--sequences", *QUICK_SEQUENCES[:2], "--steps", "20", "--batch-size", "4"] if quick else []) + ["--out", str(out / "finetune")]),
    ]
    if with_ablation:
        steps.append(("ablation", ablation, ["--out", str(out / "ablation")]))
    return steps


def main(argv: list[str] | None = None) -> int:
    """Run the plan, report the time each took, write the page."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/all"))
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--ablation", action="store_true")
    parser.add_argument("--gpu", type=Path, default=None, help="a folder written by benchmarks/gpu_run.sh")
    parser.add_argument("--docs", action="store_true", help="write docs/results.md")
    parser.add_argument("--only", nargs="*", default=None, help="re-run just these benchmarks into the same folder")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    commands = {}
    for name, module, module_argv in plan(args.out, args.quick, args.ablation):
        commands[name] = f"python -m benchmarks.{name} {' '.join(module_argv)}"
        if args.only is not None and name not in args.only:
            continue
        t0 = time.perf_counter()
        print(f"== {commands[name]}", flush=True)
        module.main(module_argv)
        print(f"== {name} took {time.perf_counter() - t0:.0f} s", flush=True)
    # The page lists the command behind each result in the folder (earlier --only runs included).
    commands = {n: c for n, c in commands.items() if (args.out / n / f"{n}.json").exists()}
    listed = list(commands.values())
    if args.gpu is not None:
        listed.append(f"benchmarks/gpu_run.sh VIDEOS BASE {args.gpu}  # on a lent GPU machine")
    page = report.build(args.out, DOCS_PAGE if args.docs else args.out / "results.md", args.gpu, listed)
    print(f"all benchmarks took {time.perf_counter() - started:.0f} s; wrote {page}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
