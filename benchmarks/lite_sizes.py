"""Measure candidate sstrack-lite sizes on this CPU: one target, steady-state template memory.

Times what `Tracker.step` pays per frame in the network: one search forward (trunk + encoder +
head) and one new template embedding (the memory update). Median of 3 runs of 30 frames after a
10-frame warm-up.

    python -m benchmarks.lite_sizes --out runs/lite_sizes
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

from sstrack.config import get_config
from sstrack.model import build_model

CANDIDATES = [
    dict(template_size=128, search_size=256, head_channels=256),
    dict(template_size=128, search_size=256, head_channels=128),
    dict(template_size=128, search_size=256, head_channels=128, depth=3, template_number=2),
    dict(template_size=112, search_size=224, head_channels=128),
    dict(template_size=96, search_size=192, head_channels=128),
    dict(template_size=96, search_size=192, head_channels=128, embed_dim=256, num_heads=4),
    dict(template_size=96, search_size=192, head_channels=256),
]


def time_candidate(overrides: dict, frames: int = 30, runs: int = 3) -> float:
    """Median frames per second of search forward + template embedding."""
    config = get_config("sstrack-lite", **overrides)
    model = build_model(config).eval()
    # Steady state: the initial template plus `template_number` online ones.
    memory = torch.randn(1, config.template_number + 1, 3, config.template_size, config.template_size)
    search = torch.randn(1, 3, config.search_size, config.search_size)
    new_template = torch.randn(1, 1, 3, config.template_size, config.template_size)
    fps = []
    with torch.inference_mode():
        tokens = model.embed_templates(memory)
        query = None
        for _ in range(10):
            query = model(tokens, search, query).next_query
        for _ in range(runs):
            start = time.perf_counter()
            for _ in range(frames):
                query = model(tokens, search, query).next_query
                model.embed_templates(new_template)
            fps.append(frames / (time.perf_counter() - start))
    return statistics.median(fps)


def main() -> None:
    """Run every candidate and write a JSON + Markdown table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("runs/lite_sizes"))
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for overrides in CANDIDATES:
        fps = time_candidate(overrides)
        rows.append({**overrides, "fps": round(fps, 1)})
        print(rows[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "lite_sizes.json").write_text(json.dumps(rows, indent=2))
    lines = ["| overrides | fps |", "|---|---|"]
    lines += [f"| {', '.join(f'{k}={v}' for k, v in r.items() if k != 'fps')} | {r['fps']} |" for r in rows]
    (args.out / "lite_sizes.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
