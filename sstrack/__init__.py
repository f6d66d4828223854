"""SSTrack tracker library: configs, model, checkpoints, crops, inference tracker, metrics.

Usable alone: `from sstrack import Tracker, load_model`.
"""

from sstrack.checkpoints import load_model, read_card, review_predictor, review_threshold, save_model
from sstrack.config import CONFIGS, ModelConfig, get_config
from sstrack.errors import CheckpointError, ConfigError, InputError, SSTrackError
from sstrack.model import SSTrack, build_model
from sstrack.tracker import TargetState, Tracker

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
