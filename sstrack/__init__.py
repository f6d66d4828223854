"""SSTrack tracker library: configs, model, checkpoints, crops, inference tracker, metrics.

Usable alone: `from sstrack import Tracker, load_model`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Exports load on first use (PEP 562): importing a light module such as `sstrack.crops` or the CLI
# must not pay for torch and timm (~5 s), so a mistyped argument is answered at once.
_EXPORTS = {
    "load_model": "sstrack.checkpoints",
    "read_card": "sstrack.checkpoints",
    "review_predictor": "sstrack.checkpoints",
    "review_threshold": "sstrack.checkpoints",
    "save_model": "sstrack.checkpoints",
    "CONFIGS": "sstrack.config",
    "ModelConfig": "sstrack.config",
    "get_config": "sstrack.config",
    "CheckpointError": "sstrack.errors",
    "ConfigError": "sstrack.errors",
    "InputError": "sstrack.errors",
    "SSTrackError": "sstrack.errors",
    "SSTrack": "sstrack.model",
    "build_model": "sstrack.model",
    "TargetState": "sstrack.tracker",
    "Tracker": "sstrack.tracker",
}

__all__ = [
    "CONFIGS",
    "CheckpointError",
    "ConfigError",
    "InputError",
    "ModelConfig",
    "SSTrack",
    "SSTrackError",
    "TargetState",
    "Tracker",
    "build_model",
    "get_config",
    "load_model",
    "read_card",
    "review_predictor",
    "review_threshold",
    "save_model",
]

if TYPE_CHECKING:  # what type checkers and IDEs see
    from sstrack.checkpoints import load_model, read_card, review_predictor, review_threshold, save_model
    from sstrack.config import CONFIGS, ModelConfig, get_config
    from sstrack.errors import CheckpointError, ConfigError, InputError, SSTrackError
    from sstrack.model import SSTrack, build_model
    from sstrack.tracker import TargetState, Tracker


def __getattr__(name: str) -> Any:
    """Import an export's module when the export is first used."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sstrack' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    """The exports, for tab completion."""
    return sorted(set(globals()) | set(__all__))
