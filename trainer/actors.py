"""The SSTrack objectives, one actor each, and the module that composes them into a step.

- `GlobalForward` (forward tracking, global localisation): the initial template against whole
  later frames; its predictions crop the online reference templates (factor 2). On CTP samples
  the paste boxes are known, so it can also be supervised there.
- `LocalBackward` (backward tracking, local association): the online templates against augmented
  views of the initial frame, whose target (the initial box through the augmentation) is exact.
- `InstanceContrastive` (Eq. 5): NT-Xent between the two views' box-pooled search features.

`SSTrackStep` runs them for one batch and returns (loss, stats); as a single nn.Module it is what
DistributedDataParallel wraps (DDP needs every forward pass of a step inside one forward call).
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.ops import roi_align

from sstrack.model import ModelOutput, SSTrack
from sstrack.normalise import Normaliser
from trainer.config import TrainConfig
from trainer.losses import box_mask, focal_loss, nt_xent, pool_in_box, tracking_loss


def crop_online_templates(
    frames: torch.Tensor, means: torch.Tensor, valid: torch.Tensor, boxes: torch.Tensor, factor: float, out: int
) -> torch.Tensor:
    """Crop (B, 3, out, out) templates around normalised cx,cy,w,h `boxes` from uint8 frames.

    `frames` is (B, F, F, 3) uint8 square frames, `valid` (B, 2) the image region (w, h) in them.
    Boxes are clipped to the valid region first (§5.1 step 2a); the crop window is the official
    sqrt(w*h) * factor square. Bilinear roi_align, with the padding colour put back outside.
    """
    size = frames.shape[1]
    x = frames.permute(0, 3, 1, 2).float() - means.view(-1, 3, 1, 1)
    cx, cy, w, h = (boxes.detach().float() * size).unbind(1)
    x1 = (cx - w / 2).clamp(min=0)
    y1 = (cy - h / 2).clamp(min=0)
    x2 = torch.min(cx + w / 2, valid[:, 0])
    y2 = torch.min(cy + h / 2, valid[:, 1])
    w = (x2 - x1).clamp(min=2)
    h = (y2 - y1).clamp(min=2)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    side = (w * h).sqrt() * factor
    rois = torch.stack(
        [torch.arange(len(cx), device=x.device, dtype=x.dtype), cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2],
        dim=1,
    )
    crops = roi_align(x, rois, (out, out), spatial_scale=1.0, sampling_ratio=2, aligned=True)
    return (crops + means.view(-1, 3, 1, 1)).clamp(0, 255)


class GlobalForward:
    """Forward tracking over whole frames; returns the online templates and the CTP loss."""

    def __init__(self, train: TrainConfig) -> None:
        self.train = train

    def __call__(
        self,
        model: SSTrack,
        batch: dict[str, torch.Tensor],
        norm: Normaliser,
        template_tokens: torch.Tensor,
        keep: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """(templates uint8-range (B, S, 3, Hz, Hz), loss, stats)."""
        cfg = model.config
        searches = norm(batch["global_search"])
        known = batch["known_boxes"]  # CTP paste boxes, or a keyframe pair's user boxes
        supervised = self.train.ctp_forward_loss and torch.is_grad_enabled() and bool(known.any())
        predictions = torch.zeros(searches.shape[0], searches.shape[1], 4, device=searches.device)
        loss = searches.new_zeros(())
        ious = []
        # Samples are independent (each carries its own query), so the CTP part runs with
        # gradients for its loss and the rest without: same result, a third less compute.
        for part, grad in ((known, supervised), (~known if supervised else torch.ones_like(known), False)):
            index = part.nonzero().flatten()
            if len(index) == 0:
                continue
            query = None
            with torch.set_grad_enabled(grad):
                for k in range(searches.shape[1]):
                    out: ModelOutput = model(template_tokens[index], searches[index, k], query, keep)
                    query = out.next_query
                    predictions[index, k] = out.pred_boxes.detach().float()  # bf16 under CUDA autocast
                    if grad:
                        per_sample, iou = tracking_loss(
                            out.score_map, out.size_map, out.offset_map, batch["global_boxes"][index, k], self._weights(),
                            self.train.regression_radius,
                        )
                        loss = loss + per_sample.mean()
                        ious.append(iou.mean())
        templates = torch.stack(
            [
                crop_online_templates(
                    batch["global_frames"][:, k], batch["global_means"][:, k], batch["global_valid"][:, k],
                    predictions[:, k], cfg.template_factor, cfg.template_size,
                )
                for k in range(predictions.shape[1])
            ],
            dim=1,
        )
        stats = {"fwd_ctp_iou": float(torch.stack(ious).mean()) if ious else float("nan")}
        return templates, loss, stats

    def _weights(self) -> tuple[float, float, float]:
        return (self.train.focal_weight, self.train.giou_weight, self.train.l1_weight)


def oracle_templates(model: SSTrack, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Templates without the global stage: augmented initial crops; known paste boxes for CTP."""
    cfg = model.config
    statics = batch["static_templates"].permute(0, 1, 4, 2, 3).float()
    known = torch.stack(
        [
            crop_online_templates(
                batch["global_frames"][:, k], batch["global_means"][:, k], batch["global_valid"][:, k],
                _cxcywh(batch["global_boxes"][:, k]), cfg.template_factor, cfg.template_size,
            )
            for k in range(batch["global_frames"].shape[1])
        ],
        dim=1,
    )
    has_boxes = batch["known_boxes"].view(-1, 1, 1, 1, 1)
    return torch.where(has_boxes, known, statics)


class LocalBackward:
    """Backward tracking into the augmented views of the initial frame (the supervised part)."""

    def __init__(self, train: TrainConfig) -> None:
        self.train = train

    def __call__(
        self,
        model: SSTrack,
        batch: dict[str, torch.Tensor],
        norm: Normaliser,
        templates: torch.Tensor,
        keep: float | None = None,
    ) -> tuple[torch.Tensor, list[ModelOutput], dict[str, float]]:
        """(loss, per-view outputs, stats)."""
        batch_size, count = templates.shape[:2]
        brightness = batch["brightness"][:, 1 : 1 + count].reshape(-1)
        normalised = norm.chw(templates.flatten(0, 1), brightness)
        tokens = model.embed_templates(normalised.view(batch_size, count, *templates.shape[2:]))
        views = batch["views"]
        loss = templates.new_zeros(())
        outputs, ious = [], []
        query, images = None, []
        for j in range(views.shape[1]):
            images.append(norm(views[:, j], batch["brightness"][:, -1 - j]))
            out = model(tokens, images[-1], query, keep)
            query = out.next_query
            per_sample, iou = tracking_loss(
                out.score_map, out.size_map, out.offset_map, batch["view_boxes"][:, j],
                (self.train.focal_weight, self.train.giou_weight, self.train.l1_weight),
                self.train.regression_radius,
            )
            loss = loss + per_sample.mean()  # summed over views, as the official loss
            outputs.append(out)
            ious.append(iou.mean())
        stats = {"bwd_iou": float(torch.stack(ious).mean())}
        if self.train.negative_weight > 0:
            absent_loss, absent_stats = self._absent_views(model, batch, tokens, images[0], outputs[0], keep)
            loss = loss + absent_loss
            stats.update(absent_stats)
        return loss, outputs, stats

    def _absent_views(
        self, model: SSTrack, batch: dict[str, torch.Tensor], tokens: torch.Tensor, first_views: torch.Tensor,
        first: ModelOutput, keep: float | None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Focal loss towards an all-zero score map on the next sample's first view, where the object is not.

        The query is the one the object's own first view produced: as in tracking, the object was
        seen on the frame before it vanished.
        """
        others = (batch["clip"] != batch["clip"].roll(1, dims=0)).nonzero().flatten()
        if len(others) == 0:
            return first_views.new_zeros(()), {}
        query = None if first.next_query is None else first.next_query[others]
        out = model(tokens[others], first_views.roll(1, dims=0)[others], query, keep)
        score = out.score_map[:, 0].float()
        absent = focal_loss(score, torch.zeros_like(score))  # no positive cell: the whole map is pushed down
        stats = {
            "absent_peak": float(score.detach().flatten(1).amax(1).mean()),
            "present_peak": float(first.score_map.detach()[:, 0].float().flatten(1).amax(1).mean()),
        }
        return self.train.negative_weight * self.train.focal_weight * absent.mean(), stats


class InstanceContrastive:
    """NT-Xent between views of the same instance; other instances in the batch are negatives."""

    def __init__(self, train: TrainConfig) -> None:
        self.train = train

    def __call__(self, outputs: list[ModelOutput]) -> tuple[torch.Tensor, dict[str, float]]:
        """(loss, stats) from the first two views' outputs."""
        first, second = outputs[0], outputs[1]
        side = first.score_map.shape[-1]
        pooled_a = pool_in_box(first.search_features, box_mask(first.pred_boxes, side))
        pooled_b = pool_in_box(second.search_features, box_mask(second.pred_boxes, side))
        loss = nt_xent(pooled_a, pooled_b, self.train.contrastive_temperature)
        return loss, {"contrastive": float(loss.detach())}


class SSTrackStep(nn.Module):
    """One training step's forward: all objectives -> (total loss, stats)."""

    def __init__(self, model: SSTrack, train: TrainConfig) -> None:
        super().__init__()
        self.model = model
        self.train_cfg = train
        self.forward_actor = GlobalForward(train)
        self.backward_actor = LocalBackward(train)
        self.contrastive_actor = InstanceContrastive(train)

    def forward(
        self, batch: dict[str, torch.Tensor], global_active: bool, keep: float | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """Loss of one batch.

        Args:
            global_active: forward tracking feeds the backward templates (after warm-up).
            keep: candidate-elimination keep rate for this step (ViT configs), None otherwise.
        """
        cfg = self.train_cfg
        norm = Normaliser(self.model.config, batch["template"].device)
        stats: dict[str, float] = {}
        loss_fwd = batch["template"].new_zeros((), dtype=torch.float32)
        templates = None
        # During warm-up the forward passes still run when CTP samples supervise them.
        if cfg.global_stage and (global_active or cfg.ctp_forward_loss):
            initial = norm(batch["template"], batch["brightness"][:, 0]).unsqueeze(1)
            template_tokens = self.model.embed_templates(initial)
            online, loss_fwd, fwd_stats = self.forward_actor(self.model, batch, norm, template_tokens, keep)
            stats.update(fwd_stats)
            if global_active:
                templates = online
        if templates is None:
            templates = oracle_templates(self.model, batch)
        loss_bwd, outputs, bwd_stats = self.backward_actor(self.model, batch, norm, templates, keep)
        stats.update(bwd_stats)
        loss = loss_bwd + loss_fwd
        stats.update({"loss_bwd": float(loss_bwd.detach()), "loss_fwd": float(loss_fwd.detach())})
        if self.train_cfg.contrastive and len(outputs) >= 2:
            loss_con, con_stats = self.contrastive_actor(outputs)
            loss = loss + loss_con
            stats.update(con_stats)
        stats["loss"] = float(loss.detach())
        return loss, stats


def _cxcywh(xywh: torch.Tensor) -> torch.Tensor:
    x, y, w, h = xywh.unbind(-1)
    return torch.stack([x + w / 2, y + h / 2, w, h], dim=-1)
