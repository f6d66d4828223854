"""What a model card's config would cost, measured on the meta device before anything is built.

Every card field can be within its own range while their product is not: embed_dim 2048 with
depth 48 and mlp_ratio 16 builds a 29 GB model, and patch_size 4 with search_size 2048 puts 330k
tokens through attention, so a 21 MB file never finishes its first frame. A model built on the
meta device has every shape and no storage, so its parameter shapes and its per-frame FLOPs
(torch's own FlopCounterMode) are known in well under a second, whatever the card says.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import torch
from torch.utils.flop_counter import FlopCounterMode

from sstrack.config import ModelConfig
from sstrack.errors import CheckpointError
from sstrack.model import build_model

# One tracking step of the largest tracker we know, sstrack-b384 with its 3 online templates, is
# 206 GFLOP (about 2 s a frame on two CPU cores). Five times that is still a model; beyond it a
# frame would take minutes, so such a card is refused, not run.
MAX_FRAME_GFLOP = 1000.0


@dataclass(frozen=True)
class ModelCost:
    """A config's parameter shapes and the GFLOP of one tracking step on one target."""

    shapes: Mapping[str, tuple[int, ...]]  # read-only: the instance is shared by the cache
    frame_gflop: float


@functools.lru_cache(maxsize=8)  # a config's cost never changes; tests and the app load the same one often
def measure(config: ModelConfig) -> ModelCost:
    """Build `config` on the meta device (shapes without storage) and count one step's FLOPs."""
    with torch.device("meta"):
        shell = build_model(config).eval()
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            templates = torch.empty(1, 1 + config.template_number, 3, config.template_size, config.template_size)
            search = torch.empty(1, 3, config.search_size, config.search_size)
            shell(shell.embed_templates(templates), search)
    shapes = {name: tuple(tensor.shape) for name, tensor in shell.state_dict().items()}
    return ModelCost(MappingProxyType(shapes), counter.get_total_flops() / 1e9)


def check_frame_cost(cost: ModelCost, card: Path) -> None:
    """Refuse a config whose one tracking step exceeds MAX_FRAME_GFLOP."""
    if cost.frame_gflop > MAX_FRAME_GFLOP:
        raise CheckpointError(
            f"{card}: the model card's config needs {cost.frame_gflop:,.0f} GFLOP a frame (at most {MAX_FRAME_GFLOP:,.0f}, "
            "about 5x the largest SSTrack); restore the card that came with the weights"
        )
