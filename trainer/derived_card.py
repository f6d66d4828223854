"""Models derived from another without training (a smaller search crop, fewer blocks): the shared
command line, and the card, which keeps the parent's lineage and says what changed."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sstrack.checkpoints import load_model, read_card, save_model, shipped_model_path, weights_identity
from sstrack.config import CONFIGS
from sstrack.errors import SSTrackError
from sstrack.model import SSTrack

# What describes the parent's own weights or was measured on them: not true of the derived model.
PARENT_ONLY = ("format", "config", "weights", "sha256", "created", "metrics", "review_threshold", "review_predictor")


def parent_card(model: str) -> dict[str, Any]:
    """The parent's card (a shipped name or a weight file) without its own weights' fields and
    measured figures; its lineage, training and calibration stay."""
    source = shipped_model_path(model) if model in CONFIGS else Path(model)
    return {key: value for key, value in read_card(source).items() if key not in PARENT_ONLY}


def derivation_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser with the parent MODEL and --out; the tool adds what it changes."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help="a .safetensors model or a shipped name (sstrack-lite)")
    parser.add_argument("--out", type=Path, required=True, help="output .safetensors")
    return parser


def write_derived(model: str, out: Path, key: str, derive: Callable[[SSTrack], tuple[SSTrack, dict[str, Any]]]) -> int:
    """Load `model`, derive the new one, save it with the parent's card plus card[key] (the parent
    and what `derive` records); 0, or 2 after a one-line error on stderr (nothing written)."""
    try:
        parent = load_model(model)
        child, record = derive(parent)
        card = parent_card(model)
        card[key] = {"parent": weights_identity(model), **record}
        print(save_model(child, out, card))
    except SSTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0
