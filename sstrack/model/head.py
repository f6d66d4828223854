"""CenterNet-style box head of OSTrack / SSTrack (docs/sstrack-reference.md §1.9).

Three conv branches (centre score, size, offset) over the search feature map; the box is read at
the arg-max cell. Module names (`conv1_ctr.0.weight`, ...) match the official checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv_bn_relu(in_planes: int, out_planes: int) -> nn.Sequential:
    """3x3 conv + BatchNorm + ReLU; children 0/1/2 as in the official key names."""
    return nn.Sequential(
        nn.Conv2d(in_planes, out_planes, kernel_size=3, padding=1, bias=True),
        nn.BatchNorm2d(out_planes),
        nn.ReLU(inplace=True),
    )


class CenterPredictor(nn.Module):
    """Score / size / offset maps from a (B, C, S, S) feature map."""

    def __init__(self, inplanes: int, channel: int, feat_sz: int) -> None:
        super().__init__()
        self.feat_sz = feat_sz
        widths = [inplanes, channel, channel // 2, channel // 4, channel // 8]
        for branch, out in (("ctr", 1), ("offset", 2), ("size", 2)):
            for i in range(4):
                setattr(self, f"conv{i + 1}_{branch}", _conv_bn_relu(widths[i], widths[i + 1]))
            setattr(self, f"conv5_{branch}", nn.Conv2d(widths[4], out, kernel_size=1))
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)
        # CenterNet's prior (p = 0.1 per cell) instead of p = 0.5: with 0.5 everywhere the focal
        # loss of the empty cells swamps the first few hundred steps. Official weights overwrite it.
        nn.init.constant_(self.conv5_ctr.bias, -2.19)

    def _branch(self, x: torch.Tensor, name: str) -> torch.Tensor:
        for i in range(1, 6):
            x = getattr(self, f"conv{i}_{name}")(x)
        return x

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Return (score_map (B,1,S,S), size_map (B,2,S,S), offset_map (B,2,S,S))."""
        score = self._branch(x, "ctr").sigmoid().clamp(1e-4, 1 - 1e-4)
        size = self._branch(x, "size").sigmoid().clamp(1e-4, 1 - 1e-4)
        offset = self._branch(x, "offset")
        return score, size, offset


def decode_boxes(
    response: torch.Tensor, size_map: torch.Tensor, offset_map: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Boxes (B, 4) as normalised (cx, cy, w, h) read at the arg-max of `response`, and that index."""
    batch, _, side, _ = response.shape
    idx = response.flatten(1).argmax(dim=1)
    iy = torch.div(idx, side, rounding_mode="floor")
    ix = idx % side
    size = size_map.flatten(2).gather(2, idx.view(batch, 1, 1).expand(batch, 2, 1)).squeeze(2)
    offset = offset_map.flatten(2).gather(2, idx.view(batch, 1, 1).expand(batch, 2, 1)).squeeze(2)
    # No +0.5 cell-centre shift: the official decode (and its training targets) omit it.
    cx = (ix.to(size.dtype) + offset[:, 0]) / side
    cy = (iy.to(size.dtype) + offset[:, 1]) / side
    return torch.stack([cx, cy, size[:, 0], size[:, 1]], dim=1), idx
