"""Box geometry shared by every package: continuous-coordinate IoU of x, y, w, h boxes.

OPE scoring uses the benchmarks' pixel-inclusive IoU instead (`sstrack.metrics.iou`); this one is
for the product's own decisions (fusing two passes, matching proposals, keyframe checks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_iou

BoxLike = Sequence[float]


def xywh_iou(a: BoxLike, b: BoxLike) -> float:
    """IoU of two x, y, w, h boxes (0 when either has no area)."""
    if a[2] <= 0 or a[3] <= 0 or b[2] <= 0 or b[3] <= 0:
        return 0.0
    pair = torch.tensor([[a[0], a[1], a[0] + a[2], a[1] + a[3]], [b[0], b[1], b[0] + b[2], b[1] + b[3]]], dtype=torch.float64)
    return float(box_iou(pair[:1], pair[1:])[0, 0])
