"""SSTrack: one-stream tracker with a track query (Zheng et al., "Decoupled Spatio-Temporal
Consistency Learning for Self-Supervised Tracking", AAAI 2025).

Backbone tokens -> search tokens re-weighted by their dot product with the output query
(docs/sstrack-reference.md §1.8) -> CENTER head. The track query is explicit input and output here
(the official model keeps it as hidden state), so one model serves many targets and videos.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sstrack.config import ModelConfig
from sstrack.model.backbones import LiteBackbone, VisionTransformerCE
from sstrack.model.encoder import JointEncoder
from sstrack.model.head import CenterPredictor, decode_boxes


@dataclass
class ModelOutput:
    """One search image's prediction for a batch of targets."""

    pred_boxes: torch.Tensor  # (B, 4) normalised cx, cy, w, h in the search image
    score_map: torch.Tensor  # (B, 1, S, S)
    size_map: torch.Tensor  # (B, 2, S, S)
    offset_map: torch.Tensor  # (B, 2, S, S)
    search_features: torch.Tensor  # (B, S*S, C) after the final norm, before query re-weighting
    next_query: torch.Tensor | None  # (B, 1, C) detached output query, carried to the next frame


class SSTrack(nn.Module):
    """Backbone + query re-weighting + center head."""

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        # {"name", "path", "sha256"} of the weights, set by `load_model`; None for a model built in memory.
        self.weights_identity: dict[str, str | None] | None = None
        encoder_args = dict(
            embed_dim=config.embed_dim,
            depth=config.depth,
            num_heads=config.num_heads,
            mlp_ratio=config.mlp_ratio,
            template_grid=config.template_grid,
            search_grid=config.search_grid,
            ce_loc=config.ce_loc,
            ce_keep_ratio=config.ce_keep_ratio,
            track_query=config.track_query,
            temporal_embed=config.temporal_embed,
            drop_path_rate=config.drop_path_rate,
            template_attention=config.template_attention,
        )
        self.backbone: JointEncoder
        if config.backbone == "vit":
            self.backbone = VisionTransformerCE(config.patch_size, config.pretrain_grid, **encoder_args)
        else:
            self.backbone = LiteBackbone(config.trunk, config.trunk_stages, **encoder_args)
        self.box_head = CenterPredictor(config.embed_dim, config.head_channels, config.search_grid)

    def embed_templates(self, templates: torch.Tensor) -> torch.Tensor:
        """Template crops (B, T, 3, Hz, Hz) -> concatenated tokens (B, T*Nz, C)."""
        batch, count = templates.shape[:2]
        tokens = self.backbone.embed_template(templates.flatten(0, 1))
        return tokens.reshape(batch, count * tokens.shape[1], tokens.shape[2])

    def forward(
        self,
        template_tokens: torch.Tensor,
        search: torch.Tensor,
        track_query: torch.Tensor | None = None,
        ce_keep_rate: float | None = None,
    ) -> ModelOutput:
        """Predict the target in one search image per batch item."""
        return self._predict(self.backbone(template_tokens, search, track_query, ce_keep_rate))

    def template_cache(self, templates: torch.Tensor) -> torch.Tensor:
        """What a tracker keeps of each template crop (B, 3, Hz, Hz): its tokens (B, Nz, C), or with
        "own" template attention its keys and values (`template_memory`); token-major either way,
        so the selected templates' caches concatenate along dim 1."""
        if self.config.template_attention == "own":
            return self.template_memory(templates)
        return self.backbone.embed_template(templates)

    def forward_from_cache(
        self, cache: torch.Tensor, search: torch.Tensor, track_query: torch.Tensor | None = None
    ) -> ModelOutput:
        """`forward` from the selected templates' `template_cache` outputs, concatenated along dim 1."""
        if self.config.template_attention == "own":
            return self.forward_cached(cache, search, track_query)
        return self(cache, search, track_query)

    def template_memory(self, templates: torch.Tensor) -> torch.Tensor:
        """Template crops (B, 3, Hz, Hz) to their cached keys and values, (B, Nz, depth, 2, heads,
        head_dim); for "own" template attention, where `forward_cached` reads them."""
        return self.backbone.template_memory(self.backbone.embed_template(templates))

    def forward_cached(
        self, memory: torch.Tensor, search: torch.Tensor, track_query: torch.Tensor | None = None
    ) -> ModelOutput:
        """`forward` of an "own" template-attention model from the templates' cached memories
        (concatenated along dim 1), without recomputing the templates' rows."""
        return self._predict(self.backbone.forward_cached(memory, search, track_query))

    def _predict(self, tokens: torch.Tensor) -> ModelOutput:
        """The head on the encoder's output (the query first, the search tokens last)."""
        side = self.config.search_grid
        features = tokens[:, -side * side :]
        next_query = None
        if self.config.track_query:
            query = tokens[:, :1]
            weight = features @ query.transpose(1, 2)  # raw dot product, no scale or softmax
            opt = features * weight
            next_query = query.detach().clone()
        else:
            opt = features
        fmap = opt.transpose(1, 2).reshape(opt.shape[0], -1, side, side)
        score, size, offset = self.box_head(fmap)
        boxes, _ = decode_boxes(score, size, offset)
        return ModelOutput(boxes, score, size, offset, features, next_query)

    def reconfigured(self, **changes: Any) -> SSTrack:
        """The same weights under a config with `changes` (fields that keep every weight's shape,
        e.g. template_attention); a change that alters a shape raises from the strict load."""
        model = SSTrack(self.config.replace(**changes))
        model.load_state_dict(self.state_dict(), strict=True)
        model.weights_identity = self.weights_identity
        return model.to(next(self.parameters()).device).train(self.training)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Pretrained and freshly initialised parameters, for the trainer's two learning rates.

        The official recipe gives every `backbone.*` parameter 0.1x the head's rate because the
        whole ViT is pretrained. In the lite model only the CNN trunk is pretrained; its
        transformer blocks start from scratch and learn at the full rate.
        """
        prefix = "backbone.trunk." if self.config.backbone == "lite" else "backbone."
        groups: dict[str, list[nn.Parameter]] = {"pretrained": [], "new": []}
        for name, param in self.named_parameters():
            groups["pretrained" if name.startswith(prefix) else "new"].append(param)
        return groups


def build_model(config: ModelConfig) -> SSTrack:
    """A randomly initialised model for `config`."""
    return SSTrack(config)
