"""The card of a model derived from another without training (a smaller search crop, fewer blocks)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sstrack.checkpoints import read_card, shipped_model_path
from sstrack.config import CONFIGS

# What describes the parent's own weights or was measured on them: not true of the derived model.
PARENT_ONLY = ("format", "config", "weights", "sha256", "created", "metrics", "review_threshold", "review_predictor")


def parent_card(model: str) -> dict[str, Any]:
    """The parent's card (a shipped name or a weight file) without its own weights' fields and
    measured figures; its lineage, training and calibration stay."""
    source = shipped_model_path(model) if model in CONFIGS else Path(model)
    return {key: value for key, value in read_card(source).items() if key not in PARENT_ONLY}
