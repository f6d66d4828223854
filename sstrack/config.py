"""Named model configurations: the paper's ViT-B trackers, OSTrack's, and the CPU default.

Configs are data (frozen dataclasses in one literal dict). Everything about a particular set of
weights (training data, scores) lives in the JSON model card beside the weights, not here.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

from sstrack.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# The EfficientNet-Lite0 ImageNet weights were trained on (x - 127) / 128 inputs (TF-Lite
# convention); with these statistics the trunk classifies the ../shared photos correctly.
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture and inference parameters of one tracker variant."""

    name: str
    backbone: Literal["vit", "lite"]
    embed_dim: int
    depth: int
    num_heads: int
    template_size: int
    search_size: int
    search_factor: float
    template_factor: float = 2.0
    mlp_ratio: float = 4.0
    patch_size: int = 16
    ce_loc: tuple[int, ...] = ()
    ce_keep_ratio: float = 1.0
    # What template tokens attend to in the joint blocks: everything ("joint", as trained by the
    # paper), or only their own template ("own", MixFormer's asymmetric mode). With "own" a
    # template's path through the blocks depends on that template alone, so its keys and values
    # are computed once and cached; each frame runs only the query and search rows (about half
    # the blocks' work; it needs weights trained that way, docs/results-onnx-2026-12-02.md).
    template_attention: Literal["joint", "own"] = "joint"
    head_channels: int = 256
    # SSTrack's track-query token (ViT cls token carried across frames) and its re-weighting of
    # search tokens; OSTrack has neither.
    track_query: bool = True
    temporal_embed: bool = True
    # Test-time template memory: this many online templates besides the initial one.
    template_number: int = 3
    crop_padding: Literal["zero", "mean"] = "zero"
    # Inference: the box size moves toward the prediction by size_lr x score per frame (None:
    # take the predicted size, as the official tracker does). Damps the scale spirals of a
    # weak model: on a 9-sequence subset of ../shared/data/sot, lite at training step 1000
    # went from 27.3 to 31.3 AUC with 0.6 (per-frame clamping of the scale change gave 28.1).
    size_lr: float | None = None
    # Inference: pixel refinement of each box (sstrack/refine.py); refine_side 0 turns it off.
    # The side (px) the target's grey appearance is matched at, the search margin in units of
    # sqrt(w*h), the NCC below which the network's box stands, how fast the appearance follows
    # the target (1: the previous frame only), the scale step searched (1: centre only), and the
    # network's share of the size (log space; 1: the network's size, 0: the searched size).
    refine_side: int = 0
    refine_radius: float = 0.5
    refine_gate: float = 0.5
    refine_rate: float = 1.0
    refine_scale_step: float = 1.0
    refine_size_weight: float = 1.0
    # The network must score the refined centre's cell at least this fraction of its peak score
    # (0: no such check): the matcher may not move the box where the network sees no target.
    refine_vouch: float = 0.0
    # Inference: correct each predicted box's shape (w/h, area kept) by the network's own shape
    # error on the start frame, where the user's box is the truth (sstrack/calibration.py).
    size_calibration: bool = False
    # Inference: the network's scale response on a crop of scale error x (log): its box is off by
    # scale_bias + scale_carry * x (trainer/scale_calibration.py measures both on training clips).
    # Each frame's crop follows the previous box, so from a keyframe the tracked box drifts toward
    # bias / (1 - carry). The tracker follows that expected drift per target and undoes it on the
    # reported boxes only; its own state keeps the network's box. 0, 0: no correction.
    scale_bias: float = 0.0
    scale_carry: float = 0.0
    # Inference: the weight of each target's own scale bias, measured on its start frame where the
    # box is true (the same views as the model's calibration), against the model's `scale_bias`
    # (0: the model's for every target). Per target, the network's bias varies (sd 0.11 over the
    # training clips' first frames) more than the model's median corrects.
    scale_own_weight: float = 0.0
    # Inference: the Hann window that weights the score map before its arg-max (the motion prior),
    # raised to this power. 1: the official tracker's window. Higher keeps the box from jumping to
    # a distractor a few cells away (a stronger prior), at the cost of objects that move far in
    # one frame (docs/results-window-2026-12-07.md).
    window_power: float = 1.0
    # Inference: a memory slot keeps its cached template while that stays within the slot's share
    # of the history, instead of moving to the official frame each time (sstrack.tracker.keep_cached):
    # far fewer template embeddings, 12-16% more frames per second for v4 on the CPU. Off in the
    # shipped card: it wrote twice as many visible exit frames as gone (docs/results-memory-2026-12-07.md).
    # False: the official selection.
    reuse_templates: bool = False
    # Inference: re-detection over the frame (sstrack/redetect.py). A target scoring below
    # redetect_ratio x its recent level for 3 frames in a row, unless last seen at a frame border
    # or heading out across one (then it waits there for 3 frames at 0.9 x the level), also
    # scans crops tiling the frame at its usual size (redetect_crops per frame), and moves to the
    # scan's best if that beats the local crop by redetect_margin (and is at least
    # redetect_ratio x the level itself). 0: off, as in the official tracker.
    redetect_ratio: float = 0.0
    redetect_margin: float = 2.0
    redetect_crops: int = 16
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    drop_path_rate: float = 0.1
    # ViT only: side of the pretraining position grid kept as `pos_embed` (224 / 16 = 14).
    pretrain_grid: int = 14
    # Lite only: the timm trunk truncated at stride 16 and how many of its stages are kept.
    trunk: str = "efficientnet_lite0"
    trunk_stages: int = 5

    @property
    def template_grid(self) -> int:
        """Side of the template feature map."""
        return self.template_size // self.patch_size

    @property
    def search_grid(self) -> int:
        """Side of the search feature map (and of the score map)."""
        return self.search_size // self.patch_size

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}

    def replace(self, **overrides: Any) -> ModelConfig:
        """A copy with some fields changed; unknown keys are refused."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise ConfigError(f"unknown model config keys {unknown}; known keys: {sorted(names)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in overrides.items()}
        return dataclasses.replace(self, **fixed)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Rebuild a config from `to_dict` output (as stored in a model card)."""
        base = CONFIGS.get(data.get("name", ""), None)
        if base is None:
            base = CONFIGS["sstrack-b256"] if data.get("backbone") == "vit" else CONFIGS["sstrack-lite"]
        return base.replace(**data)


_VIT_B = dict(backbone="vit", embed_dim=768, depth=12, num_heads=12, ce_loc=(3, 6, 9), ce_keep_ratio=0.7)

CONFIGS: dict[str, ModelConfig] = {
    # Official dropmae_256_150ep / dropmae_384_150ep (docs/sstrack-reference.md §0, §3.1).
    "sstrack-b256": ModelConfig(
        name="sstrack-b256", template_size=128, search_size=256, search_factor=4.0, **_VIT_B
    ),
    "sstrack-b384": ModelConfig(
        name="sstrack-b384", template_size=192, search_size=384, search_factor=5.0, **_VIT_B
    ),
    # OSTrack vitb_256_mae_ce / vitb_384_mae_ce: same backbone and head, no query token, no
    # temporal embeddings, only the initial template at test time.
    "ostrack-b256": ModelConfig(
        name="ostrack-b256", template_size=128, search_size=256, search_factor=4.0,
        track_query=False, temporal_embed=False, template_number=0, **_VIT_B,
    ),
    "ostrack-b384": ModelConfig(
        name="ostrack-b384", template_size=192, search_size=384, search_factor=5.0,
        track_query=False, temporal_embed=False, template_number=0, **_VIT_B,
    ),
    # The CPU default. EfficientNet-Lite0 to stride 16 (112 channels) -> Linear -> 4 timm blocks
    # (dim 192, 3 heads) over [query | templates | search] -> center head with 128 channels.
    # Sizes chosen by measurement (python -m benchmarks.lite_sizes, one target, steady-state
    # memory of 4 templates, 2 threads on this 2-core CPU, network time only, 2026-11-24):
    # template/search 128/256 ran 29.6 fps (24.3 with a 256-channel head), 112/224 ran 37.0 and
    # 96/192 ran 52.1; 96/192 keeps the >= 30 fps target with margin for crops and a loaded
    # machine, and trains ~1.8x more samples per second. Whole `Tracker.step`: MEASURE fps.
    "sstrack-lite": ModelConfig(
        name="sstrack-lite", backbone="lite", embed_dim=192, depth=4, num_heads=3,
        template_size=96, search_size=192, search_factor=4.0, head_channels=128,
        crop_padding="mean", mean=HALF_MEAN, std=HALF_STD, drop_path_rate=0.0, size_lr=0.6,
    ),
}


def get_config(name_or_config: str | ModelConfig, **overrides: Any) -> ModelConfig:
    """Look up a named config (optionally with overrides)."""
    if isinstance(name_or_config, ModelConfig):
        config = name_or_config
    elif name_or_config in CONFIGS:
        config = CONFIGS[name_or_config]
    else:
        raise ConfigError(
            f"unknown model config {name_or_config!r}; choose one of {', '.join(CONFIGS)}"
        )
    return config.replace(**overrides) if overrides else config
