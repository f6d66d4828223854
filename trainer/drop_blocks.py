"""A model with some of its joint blocks removed (issue 18: a cheaper network per frame).

    python -m trainer.drop_blocks MODEL --drop 1 --out OUT.safetensors

The remaining blocks keep their weights and order; the trunk, the position tables and the head are
unchanged. Untrained, v4 without one block scored on the dev set's OPE (stop 49; v4 61.2): block 0
56.4, block 1 58.9, block 2 45.8, block 3 48.7; without two (1 and 2) 40.9. Without block 1 it ran
1.12x faster with one target (2 threads). The result is a starting point for fine-tuning, on a
GPU: `BASE=OUT.safetensors trainer/recipes/sstrack_lite_gpu_budget.sh ...`
(docs/results-memory-2026-12-07.md, section 4).
"""

from __future__ import annotations

import re
from typing import Any

from sstrack.errors import InputError
from sstrack.model import SSTrack
from trainer.derived_card import derivation_parser, write_derived

_BLOCK = re.compile(r"backbone\.blocks\.(\d+)\.(.+)")


def without_blocks(model: SSTrack, drop: list[int]) -> SSTrack:
    """A copy of `model` without the joint blocks numbered in `drop` (0-based)."""
    depth = model.config.depth
    if not drop or len(set(drop)) != len(drop) or any(not 0 <= b < depth for b in drop) or len(drop) >= depth:
        raise InputError(f"--drop {','.join(map(str, drop))}: give distinct blocks in 0..{depth - 1}, keeping at least one of the {depth}")
    kept = [b for b in range(depth) if b not in drop]
    renumber = {old: new for new, old in enumerate(kept)}
    # Candidate elimination (ViT configs) runs after given blocks: it stays after the same ones.
    ce_loc = tuple(renumber[b] for b in model.config.ce_loc if b in renumber)
    config = model.config.replace(depth=len(kept), ce_loc=ce_loc)
    state = {}
    for key, value in model.state_dict().items():
        match = _BLOCK.fullmatch(key)
        if match is None:
            state[key] = value
        elif int(match.group(1)) in renumber:
            state[f"backbone.blocks.{renumber[int(match.group(1))]}.{match.group(2)}"] = value
    result = SSTrack(config)
    result.load_state_dict(state)
    return result.eval()


def main(argv: list[str] | None = None) -> int:
    """Write MODEL without the given blocks; its card keeps the parent's and says what changed."""
    parser = derivation_parser(__doc__)
    parser.add_argument("--drop", required=True, help="block numbers to remove, comma-separated (e.g. 1)")
    args = parser.parse_args(argv)

    def derive(parent: SSTrack) -> tuple[SSTrack, dict[str, Any]]:
        try:
            drop = [int(part) for part in args.drop.split(",")]
        except ValueError:
            raise InputError(f"--drop {args.drop}: give block numbers separated by commas, e.g. --drop 1") from None
        smaller = without_blocks(parent, drop)
        command = f"python -m trainer.drop_blocks {args.model} --drop {args.drop} --out {args.out}"
        return smaller, {"dropped": drop, "depth": [parent.config.depth, smaller.config.depth], "command": command}

    return write_derived(args.model, args.out, "drop_blocks", derive)


if __name__ == "__main__":
    raise SystemExit(main())
