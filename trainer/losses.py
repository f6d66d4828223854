"""Losses of the SSTrack objectives (docs/sstrack-reference.md §5.2-5.3).

Tracking: focal loss on a Gaussian centre heatmap + 2.0 x GIoU + 5.0 x L1 on the box.
Instance contrastive: NT-Xent (temperature 0.5) over features pooled inside predicted boxes.
All per-sample so that a mask can restrict a loss to part of the batch (CTP samples).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def cxcywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    """(..., 4) centre form to corner form."""
    cx, cy, w, h = box.unbind(-1)
    return torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=-1)


def xywh_to_xyxy(box: torch.Tensor) -> torch.Tensor:
    """(..., 4) top-left form to corner form."""
    x, y, w, h = box.unbind(-1)
    return torch.stack([x, y, x + w, y + h], dim=-1)


def gaussian_radius(width: float, height: float, min_overlap: float = 0.7) -> float:
    """CenterNet's radius (the three-root minimum, as in the official code)."""
    a1, b1, c1 = 1.0, height + width, width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + math.sqrt(max(b1**2 - 4 * a1 * c1, 0))) / 2
    a2, b2, c2 = 4.0, 2 * (height + width), (1 - min_overlap) * width * height
    r2 = (b2 + math.sqrt(max(b2**2 - 4 * a2 * c2, 0))) / 2
    a3, b3, c3 = 4 * min_overlap, -2 * min_overlap * (height + width), (min_overlap - 1) * width * height
    r3 = (b3 + math.sqrt(max(b3**2 - 4 * a3 * c3, 0))) / 2
    return max(0.0, min(r1, r2, r3))


def centre_cells(gt_xywh: torch.Tensor, side: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid cell (ix, iy) holding each box centre; the decoder reads (ix + offset) / side."""
    cx = (gt_xywh[:, 0] + gt_xywh[:, 2] / 2) * side
    cy = (gt_xywh[:, 1] + gt_xywh[:, 3] / 2) * side
    ix = cx.floor().clamp(0, side - 1).long()
    iy = cy.floor().clamp(0, side - 1).long()
    return ix, iy


def gaussian_heatmap(gt_xywh: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side, side) targets: 1 at the centre cell, a Gaussian of CenterNet radius around it."""
    ix, iy = centre_cells(gt_xywh, side)
    grid = torch.arange(side, device=gt_xywh.device, dtype=torch.float32)
    maps = []
    for b in range(gt_xywh.shape[0]):
        w, h = float(gt_xywh[b, 2]) * side, float(gt_xywh[b, 3]) * side
        radius = int(gaussian_radius(w, h))
        sigma = (2 * radius + 1) / 6
        dy = (grid - iy[b].float()).view(-1, 1)
        dx = (grid - ix[b].float()).view(1, -1)
        heat = torch.exp(-(dx**2 + dy**2) / (2 * sigma**2))
        heat = heat * ((dx.abs() <= radius) & (dy.abs() <= radius))
        heat[heat < torch.finfo(torch.float32).eps] = 0
        maps.append(heat)
    return torch.stack(maps)


def focal_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample CenterNet focal loss (alpha 2, beta 4) normalised by the positives; (B,)."""
    pred = pred.clamp(1e-12, 1 - 1e-6)
    pos = target.eq(1).float()
    neg_weight = (1 - target).pow(4)
    pos_loss = (torch.log(pred) * (1 - pred).pow(2) * pos).flatten(1).sum(1)
    neg_loss = (torch.log(1 - pred) * pred.pow(2) * neg_weight * (1 - pos)).flatten(1).sum(1)
    num_pos = pos.flatten(1).sum(1).clamp(min=1)
    return -(pos_loss + neg_loss) / num_pos


def generalized_iou(a_xyxy: torch.Tensor, b_xyxy: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row GIoU and IoU of two (B, 4) corner-form box sets."""
    area_a = (a_xyxy[:, 2] - a_xyxy[:, 0]).clamp(min=0) * (a_xyxy[:, 3] - a_xyxy[:, 1]).clamp(min=0)
    area_b = (b_xyxy[:, 2] - b_xyxy[:, 0]).clamp(min=0) * (b_xyxy[:, 3] - b_xyxy[:, 1]).clamp(min=0)
    lt = torch.max(a_xyxy[:, :2], b_xyxy[:, :2])
    rb = torch.min(a_xyxy[:, 2:], b_xyxy[:, 2:])
    inter = (rb - lt).clamp(min=0).prod(1)
    union = area_a + area_b - inter
    iou = inter / union.clamp(min=1e-7)
    lt_c = torch.min(a_xyxy[:, :2], b_xyxy[:, :2])
    rb_c = torch.max(a_xyxy[:, 2:], b_xyxy[:, 2:])
    enclose = (rb_c - lt_c).clamp(min=0).prod(1)
    return iou - (enclose - union) / enclose.clamp(min=1e-7), iou


def boxes_at_cells(size_map: torch.Tensor, offset_map: torch.Tensor, ix: torch.Tensor, iy: torch.Tensor) -> torch.Tensor:
    """Decode (B, 4) cx, cy, w, h (normalised) at given cells, as the head's decoder does."""
    side = size_map.shape[-1]
    idx = (iy * side + ix).view(-1, 1, 1)
    size = size_map.flatten(2).gather(2, idx.expand(-1, 2, 1)).squeeze(2)
    offset = offset_map.flatten(2).gather(2, idx.expand(-1, 2, 1)).squeeze(2)
    cx = (ix.float() + offset[:, 0]) / side
    cy = (iy.float() + offset[:, 1]) / side
    return torch.stack([cx, cy, size[:, 0], size[:, 1]], dim=1)


def neighbour_cells(
    ix: torch.Tensor, iy: torch.Tensor, side: int, radius: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(B, K) cells within `radius` (Chebyshev) of each centre cell, and their weights (B, K).

    Weights are a Gaussian of one cell (1 at the centre, 0.61 beside it, 0.37 diagonally) and
    0 for cells outside the map; each row sums to 1.
    """
    steps = torch.arange(-radius, radius + 1, device=ix.device)
    dy, dx = torch.meshgrid(steps, steps, indexing="ij")
    dx, dy = dx.reshape(1, -1), dy.reshape(1, -1)
    nx, ny = ix.view(-1, 1) + dx, iy.view(-1, 1) + dy
    inside = (nx >= 0) & (nx < side) & (ny >= 0) & (ny < side)
    weight = torch.exp(-(dx**2 + dy**2).float() / 2) * inside
    return nx.clamp(0, side - 1), ny.clamp(0, side - 1), weight / weight.sum(1, keepdim=True)


def tracking_loss(
    score_map: torch.Tensor,
    size_map: torch.Tensor,
    offset_map: torch.Tensor,
    gt_xywh: torch.Tensor,
    weights: tuple[float, float, float] = (1.0, 2.0, 5.0),
    regression_radius: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample focal + GIoU + L1 loss (B,) and the IoU of the box decoded at the centre cell (B,).

    Size and offset are read at the ground-truth centre cell (CenterNet-style), not at the
    predicted arg-max as the official code does: early in training the arg-max is anywhere and
    regressing there teaches the offsets nothing useful; on our CPU budget this converges faster.
    With `regression_radius` r > 0 the box is also regressed from every cell within r of the
    centre (offsets pointing back to the true centre, Gaussian-weighted): for objects of about
    three cells the heatmap's radius is 0, yet the shipped model's arg-max left the centre cell on
    half of the one-step starts, where the offsets had never been trained (decoding at the true
    cell instead gained 0.04 IoU).
    """
    side = score_map.shape[-1]
    heat = gaussian_heatmap(gt_xywh.detach().float(), side)
    focal = focal_loss(score_map[:, 0].float(), heat)
    ix, iy = centre_cells(gt_xywh, side)
    gt = xywh_to_xyxy(gt_xywh.float()).clamp(0, 1)
    nx, ny, cell_weight = neighbour_cells(ix, iy, side, regression_radius)
    batch, cells = nx.shape
    flat = lambda t: t.reshape(batch * cells)  # noqa: E731
    size = size_map.float().repeat_interleave(cells, dim=0)
    offset = offset_map.float().repeat_interleave(cells, dim=0)
    pred = cxcywh_to_xyxy(boxes_at_cells(size, offset, flat(nx), flat(ny)))
    giou, iou = generalized_iou(pred, gt.repeat_interleave(cells, dim=0))
    l1 = (pred - gt.repeat_interleave(cells, dim=0)).abs().mean(1)
    w_focal, w_giou, w_l1 = weights
    regression = ((w_giou * (1 - giou) + w_l1 * l1).view(batch, cells) * cell_weight).sum(1)
    centre = cells // 2  # the middle of the (2r+1)^2 block is the centre cell itself
    return w_focal * focal + regression, iou.view(batch, cells)[:, centre].detach()


def box_mask(pred_cxcywh: torch.Tensor, side: int) -> torch.Tensor:
    """(B, side*side) 0/1 mask of the cells a predicted box covers (at least its centre cell).

    A correct box->mask: the official code reads (cx, cy) as if it were the top-left corner,
    so its mask starts at the centre and misses the left/top half of the object.
    """
    xyxy = cxcywh_to_xyxy(pred_cxcywh.detach().float()) * side
    cells = torch.arange(side, device=pred_cxcywh.device, dtype=torch.float32)
    inside_x = (cells.view(1, -1) + 1 > xyxy[:, 0:1]) & (cells.view(1, -1) < xyxy[:, 2:3])
    inside_y = (cells.view(1, -1) + 1 > xyxy[:, 1:2]) & (cells.view(1, -1) < xyxy[:, 3:4])
    mask = (inside_y.unsqueeze(2) & inside_x.unsqueeze(1)).float()
    cx = (pred_cxcywh[:, 0].detach() * side).floor().clamp(0, side - 1).long()
    cy = (pred_cxcywh[:, 1].detach() * side).floor().clamp(0, side - 1).long()
    mask[torch.arange(len(cx)), cy, cx] = 1.0
    return mask.flatten(1)


def pool_in_box(features: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of (B, N, C) token features over the masked cells: (B, C)."""
    weights = mask / mask.sum(1, keepdim=True).clamp(min=1)
    return (features * weights.unsqueeze(-1)).sum(1)


def nt_xent(view_a: torch.Tensor, view_b: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """SimCLR NT-Xent: row i of each view is positive with row i of the other, negative with all else."""
    n = view_a.shape[0]
    z = F.normalize(torch.cat([view_a, view_b]).float(), dim=1)
    logits = z @ z.t() / temperature
    logits = logits.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(logits, targets, reduction="sum") / (2 * n)
