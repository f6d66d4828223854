"""Training run settings: one explicit dataclass, paths given by arguments, no global state."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any


def check_share(name: str, value: float | None) -> None:
    """Refuse a share that is not strictly between 0 and 1 (None: not set)."""
    if value is not None and not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


_INT_RANGES = {
    "steps": (1, 10**9), "batch_size": (1, 4096), "freeze_stages": (0, 64), "search_frames": (1, 16), "views": (1, 16),
    "max_interval": (1, 10**6), "warmup_steps": (0, 10**9), "regression_radius": (0, 16), "frame_side": (32, 4096),
    "proposal_stride": (1, 10**6), "workers": (0, 64), "checkpoint_every": (1, 10**9), "log_every": (1, 10**9),
    "frame_cache_mb": (1, 10**8),
}
_FLOAT_RANGES = {
    "lr": (0.0, 1.0), "pretrained_lr_multiplier": (0.0, 10.0), "weight_decay": (0.0, 1.0), "lr_drop_fraction": (0.0, 1.0),
    "grad_clip": (0.0, 1e6), "ctp_ratio": (0.0, 1.0), "contrastive_temperature": (1e-3, 100.0), "pair_ratio": (0.0, 1.0),
    "anchor_weight": (0.0, 1e6), "focal_weight": (0.0, 1e3), "giou_weight": (0.0, 1e3), "l1_weight": (0.0, 1e3),
    "view_scale_sigma": (0.0, 5.0), "view_center_jitter": (0.0, 100.0), "shear_prob": (0.0, 1.0), "blur_prob": (0.0, 1.0),
    "lsj_prob": (0.0, 1.0), "negative_weight": (0.0, 1e3),
}


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fine-tuning run depends on (saved in checkpoints and model cards)."""

    steps: int = 2000
    batch_size: int = 16
    seed: int = 42
    # Optimiser (docs/sstrack-reference.md §5.5): AdamW, head lr 2.5e-4, pretrained weights x0.1,
    # weight decay 1e-4 on everything, one x0.1 step decay, gradient clip 0.1.
    lr: float = 2.5e-4
    pretrained_lr_multiplier: float = 0.1
    weight_decay: float = 1e-4
    lr_drop_fraction: float = 0.8  # official: epoch 120 of 150
    # Early pretrained layers kept frozen: lite, the stem + this many of its 5 trunk stages; ViT,
    # the patch embedding + this many blocks. None: 3 for lite, 0 for ViT (the official recipe).
    freeze_stages: int | None = None
    grad_clip: float = 0.1
    # Sample composition (§4.1): half crop-transform-paste, 3 global search frames, 2 local views.
    ctp_ratio: float = 0.5
    search_frames: int = 3
    views: int = 2
    max_interval: int = 100  # frames between the initial frame and a search frame
    # Objectives. `global_stage=False` drops forward tracking: the backward templates are then
    # augmented crops of the initial frame (and of the known paste boxes in CTP samples).
    global_stage: bool = True
    contrastive: bool = True
    contrastive_temperature: float = 0.5
    # Forward predictions are poor at first; the global stage joins after this many steps.
    warmup_steps: int = 400
    # CTP search frames have known paste boxes; supervise the forward (global) predictions on them
    # too so forward localisation, which the backward templates depend on, is learned directly.
    ctp_forward_loss: bool = True
    # Share of samples built from two keyframes of one object (`ClipSpec.tracks`): the search
    # frames are the object's other keyframes with their true boxes, which supervise the forward
    # predictions and crop the backward templates (a real appearance change, labelled by the user).
    pair_ratio: float = 0.0
    # L2-SP: weight of the squared distance of the trainable weights from the base model's, so a
    # short adaptation on one video cannot wander far from what the base model knows.
    anchor_weight: float = 0.0
    focal_weight: float = 1.0
    # Absent-object views (ours, not the paper's): each sample's templates also search another
    # clip's view, where the object is not, and the focal loss pushes that whole score map to 0
    # with this weight. The objectives above only ever show the network crops that hold its
    # object, so nothing teaches its score to fall when the object has gone (an exit, a full
    # occlusion), which is what the absence watch and the review queue read. 0: off.
    negative_weight: float = 0.0
    giou_weight: float = 2.0
    l1_weight: float = 5.0
    # Box regression also from the cells within this many cells of the true centre (0: the
    # centre cell only, as CenterNet), so an arg-max one cell off still decodes a good box.
    regression_radius: int = 1
    # Views of the initial frame (§4.3): scale sigma 0.5, centre jitter 3; plus the paper's shear,
    # blur and large-scale jitter.
    view_scale_sigma: float = 0.5
    view_center_jitter: float = 3.0
    shear_prob: float = 0.3
    blur_prob: float = 0.2
    lsj_prob: float = 0.2
    # Decoded frames are cached at this long side (JPEG in memory) for fast random access.
    frame_side: int = 512
    # The frame cache's budget in MiB; footage beyond it is left out with a warning. None: a
    # quarter of the machine's memory (trainer.clips.default_cache_bytes).
    frame_cache_mb: int | None = None
    # Automatic initial boxes are proposed on every n-th frame of footage without boxes.
    proposal_stride: int = 10
    # The proposals' window shapes (w/h). None: trainer.autobox's own (0.6, 1, 1.7).
    autobox_aspects: tuple[float, ...] | None = None
    # Share of samples drawn from clips with user (real) boxes. None: every clip weighted by its
    # number of initial frames, which gives 32 real first-frame boxes about 2% of the samples
    # beside ~1,900 automatic ones.
    user_box_share: float | None = None
    workers: int = 1
    # Model and conv activations in channels_last memory format (faster on CPU and CUDA).
    channels_last: bool = True
    checkpoint_every: int = 500
    log_every: int = 10

    def __post_init__(self) -> None:
        # Checked here so a bad value fails before minutes of decoding, not after: batch 10^9 or
        # 1000 workers exhausted memory, checkpoint_every 0 crashed after a step and lost it, and
        # grad_clip -1 flipped every gradient with exit 0.
        check_share("user_box_share", self.user_box_share)
        for name, (low, high) in _INT_RANGES.items():
            value = getattr(self, name)
            if value is not None and (type(value) is not int or not low <= value <= high):
                raise ValueError(f"training setting {name} must be a whole number in {low}..{high}, not {value!r:.40}")
        for name, (low, high) in _FLOAT_RANGES.items():
            value = getattr(self, name)
            if type(value) not in (int, float) or not math.isfinite(value) or not low <= value <= high:
                raise ValueError(f"training setting {name} must be a number in {low}..{high}, not {value!r:.40}")
        aspects = self.autobox_aspects
        if aspects is not None and (not isinstance(aspects, (list, tuple)) or not aspects or not all(
                type(a) in (int, float) and math.isfinite(a) and 0.05 <= a <= 20 for a in aspects)):
            raise ValueError(f"training setting autobox_aspects must be a list of widths/heights in 0.05..20, not {aspects!r:.60}")

    def replace(self, **overrides: Any) -> TrainConfig:
        """A copy with some fields changed; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(names)}")
        return dataclasses.replace(self, **overrides)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return dataclasses.asdict(self)
