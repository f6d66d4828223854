"""A model with a smaller search crop at the same object scale (issue 18: a cheaper network per frame).

    python -m trainer.search_crop MODEL --size 160 --out OUT.safetensors

The search crop covers `search_factor` box sides in `search_size` pixels. Shrinking both by the
same ratio keeps the object at the pixel scale the network learned; only the area searched around
the last box shrinks, and the network's cost falls with the number of search tokens (192 -> 160 px:
144 -> 100 tokens). The search position table is cut to its centre rather than resampled, so each
remaining token keeps the position, relative to the object, that it was trained with. The result
is a starting point for fine-tuning at the new size (trainer/recipes/sstrack_lite_s160.sh).
"""

from __future__ import annotations

from typing import Any

import torch

from sstrack.errors import InputError
from sstrack.model import SSTrack
from trainer.derived_card import derivation_parser, write_derived


def centre_crop_positions(table: torch.Tensor, side: int) -> torch.Tensor:
    """(1, g*g, C) raster-order position table -> its centre (1, side*side, C)."""
    count, dim = table.shape[1], table.shape[2]
    grid = round(count**0.5)
    if grid * grid != count or side > grid or (grid - side) % 2:
        raise InputError(f"a {grid}x{grid} position table has no centred {side}x{side} part; choose a size that removes whole patches evenly")
    start = (grid - side) // 2
    square = table.reshape(1, grid, grid, dim)[:, start : start + side, start : start + side]
    return square.reshape(1, side * side, dim).clone()


def with_search_size(model: SSTrack, size: int) -> SSTrack:
    """A copy of `model` searching `size` px crops at the object scale of the original."""
    config = model.config
    if size % config.patch_size:
        raise InputError(f"--size {size}: the search crop must be a multiple of the patch size {config.patch_size}")
    smaller = config.replace(search_size=size, search_factor=round(config.search_factor * size / config.search_size, 4))
    state = dict(model.state_dict())
    state["backbone.pos_embed_x"] = centre_crop_positions(state["backbone.pos_embed_x"], smaller.search_grid)
    result = SSTrack(smaller)
    result.load_state_dict(state)
    return result.eval()


def main(argv: list[str] | None = None) -> int:
    """Write MODEL with a smaller search crop; its card keeps the parent's and says what changed."""
    parser = derivation_parser(__doc__)
    parser.add_argument("--size", type=int, required=True, help="search crop side in pixels (e.g. 160)")
    args = parser.parse_args(argv)

    def derive(parent: SSTrack) -> tuple[SSTrack, dict[str, Any]]:
        smaller = with_search_size(parent, args.size)
        return smaller, {
            "from": [parent.config.search_size, parent.config.search_factor],
            "to": [smaller.config.search_size, smaller.config.search_factor],
            "command": f"python -m trainer.search_crop {args.model} --size {args.size} --out {args.out}",
        }

    return write_derived(args.model, args.out, "search_crop", derive)


if __name__ == "__main__":
    raise SystemExit(main())
