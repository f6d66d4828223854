"""The model card's config, checked field by field before anything is built from it.

A card is a file a user may have been sent: an unbounded `depth` would build gigabytes of model
before the shape check, a `trunk` such as "hf-hub:..." makes timm go to the network, and odd types
surfaced as ZeroDivisionError or RecursionError. Every field has a type and a range here, the trunk
is one timm knows locally, and any violation is one CheckpointError naming the card and the field.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sstrack.errors import CheckpointError

KNOWN_TRUNKS = ("efficientnet_lite0",)

# field: (kind, low, high) for numbers, or the allowed values for choices.
_INTS = {
    "embed_dim": (16, 2048), "depth": (1, 48), "num_heads": (1, 64), "template_size": (32, 1024),
    "search_size": (32, 2048), "patch_size": (4, 64), "head_channels": (8, 2048), "template_number": (0, 16),
    "pretrain_grid": (1, 128), "trunk_stages": (1, 7), "refine_side": (0, 128), "redetect_crops": (1, 64),
}
_FLOATS = {
    "search_factor": (0.5, 16.0), "template_factor": (0.5, 16.0), "mlp_ratio": (0.25, 16.0),
    "ce_keep_ratio": (0.05, 1.0), "drop_path_rate": (0.0, 1.0),
    "refine_radius": (0.0, 2.0), "refine_gate": (-1.0, 1.0), "refine_rate": (0.0, 1.0), "refine_scale_step": (1.0, 2.0),
    "refine_size_weight": (0.0, 1.0), "refine_vouch": (0.0, 1.0), "scale_bias": (-1.0, 1.0), "scale_carry": (0.0, 0.9),
    "scale_own_weight": (0.0, 1.0), "window_power": (0.0, 8.0), "redetect_ratio": (0.0, 1.0), "redetect_margin": (1.0, 100.0),
}
_CHOICES = {
    "backbone": ("vit", "lite"), "crop_padding": ("zero", "mean"), "trunk": KNOWN_TRUNKS,
    "template_attention": ("joint", "own"),
}
_BOOLS = ("track_query", "temporal_embed", "size_calibration", "reuse_templates")


def check_config(config: Any, card: Path) -> dict[str, Any]:
    """Return `config` if every field is of the right type and in range; else CheckpointError."""

    def bad(field: str, why: str) -> CheckpointError:
        return CheckpointError(f"{card}: model card field config.{field} {why}; restore the card that came with the weights")

    if not isinstance(config, dict):
        raise CheckpointError(f"{card}: model card config is not an object; restore the card that came with the weights")
    for field, value in config.items():
        if field in _INTS:
            low, high = _INTS[field]
            if type(value) is not int or not low <= value <= high:
                raise bad(field, f"must be an integer in {low}..{high}, not {value!r:.40}")
        elif field in _FLOATS:
            low, high = _FLOATS[field]
            if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
                raise bad(field, f"must be a number in {low}..{high}, not {value!r:.40}")
        elif field in _CHOICES:
            if value not in _CHOICES[field]:
                raise bad(field, f"must be one of {', '.join(_CHOICES[field])}, not {value!r:.40}")
        elif field in _BOOLS:
            if type(value) is not bool:
                raise bad(field, "must be true or false")
        elif field == "name":
            if not isinstance(value, str) or len(value) > 80:
                raise bad(field, "must be a short string")
        elif field == "size_lr":
            if value is not None and (type(value) not in (int, float) or not 0 <= value <= 1):
                raise bad(field, "must be null or a number in 0..1")
        elif field in ("mean", "std"):
            if not isinstance(value, list) or len(value) != 3 or not all(type(v) in (int, float) and math.isfinite(v) for v in value):
                raise bad(field, "must be three numbers")
            if field == "std" and min(value) <= 0:
                raise bad(field, "must be positive")
        elif field == "ce_loc":
            depth = config.get("depth", 48)
            if not isinstance(value, list) or not all(type(v) is int and 0 <= v < (depth if type(depth) is int else 48) for v in value):
                raise bad(field, "must be a list of block indices below depth")
        else:
            raise bad(field, "is not a field this version knows")
    dim, heads = config.get("embed_dim"), config.get("num_heads")
    if isinstance(dim, int) and isinstance(heads, int) and dim % heads:
        raise bad("embed_dim", f"must be divisible by num_heads ({heads})")
    if config.get("template_attention") == "own" and config.get("ce_loc"):
        raise bad("template_attention", "'own' cannot be combined with candidate elimination (ce_loc)")
    patch = config.get("patch_size", 16)
    for field in ("template_size", "search_size"):
        if isinstance(config.get(field), int) and isinstance(patch, int) and config[field] % patch:
            raise bad(field, f"must be a multiple of patch_size ({patch})")
    return config


def check_card_files(card: dict[str, Any], weights: Path, card_path: Path, digest: str) -> None:
    """The card must name the weights file beside it and carry that file's sha256, if it says one."""
    named = card.get("weights")
    if named is not None and (not isinstance(named, str) or Path(named).name != named or named != weights.name):
        raise CheckpointError(f"{card_path}: names weights {named!r:.60}, not {weights.name}; restore the card that came with the weights")
    expected = card.get("sha256")
    if expected is not None and expected != digest:
        raise CheckpointError(
            f"{weights}: its sha256 differs from the one in {card_path.name}; the file is damaged or not the one "
            "the card describes, copy both again"
        )
