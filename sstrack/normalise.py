"""The one input normaliser: uint8 RGB images -> the float tensors a model expects.

The tracker (one crop at a time) and the trainer (batches, with brightness jitter) both use it,
so inference and training can never disagree on mean, std or channel order.
"""

from __future__ import annotations

import torch

from sstrack.config import ModelConfig


class Normaliser:
    """uint8 (..., H, W, 3) images -> normalised float (..., 3, H, W) on `device`."""

    def __init__(self, config: ModelConfig, device: torch.device | str = "cpu") -> None:
        self.mean = torch.tensor(config.mean, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(config.std, device=device).view(1, 3, 1, 1) * 255

    def __call__(self, images: torch.Tensor, brightness: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise (..., H, W, 3) uint8 images; optional per-image brightness factors."""
        lead = images.shape[:-3]
        x = images.reshape(-1, *images.shape[-3:]).permute(0, 3, 1, 2).float()
        return self.chw(x, brightness).reshape(*lead, *x.shape[1:])

    def chw(self, x: torch.Tensor, brightness: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise (N, 3, H, W) float images in 0..255."""
        if brightness is not None:
            x = (x * brightness.reshape(-1, 1, 1, 1)).clamp(0, 255)
        return (x - self.mean) / self.std
