"""One-pass evaluation (OPE) metrics exactly as docs/benchmarks.md §1 defines them.

Pixel-inclusive IoU (right = x + w - 1, as the pytracking/LaSOT toolkits), success AUC over the
21 thresholds 0, 0.05, ..., 1.0 with a strict `>`, precision at 20 px, normalised precision at
0.2. Frames flagged absent or with a ground-truth w <= 0 or h <= 0 are left out of every metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SUCCESS_THRESHOLDS = np.linspace(0.0, 1.0, 21)
PRECISION_THRESHOLDS = np.arange(0, 51, dtype=np.float64)  # pixels
NORM_PRECISION_THRESHOLDS = np.linspace(0.0, 0.5, 51)


@dataclass(frozen=True)
class SequenceScores:
    """OPE scores of one sequence (fractions in [0, 1]; AUC too) plus the curves behind them."""

    auc: float
    precision: float
    norm_precision: float
    success_curve: np.ndarray
    precision_curve: np.ndarray
    norm_precision_curve: np.ndarray
    frames: int


def iou(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Pixel-inclusive IoU of matching rows of two (N, 4) x, y, w, h arrays."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    tl = np.maximum(pred[:, :2], gt[:, :2])
    br = np.minimum(pred[:, :2] + pred[:, 2:] - 1.0, gt[:, :2] + gt[:, 2:] - 1.0)
    inter = np.prod(np.clip(br - tl + 1.0, 0.0, None), axis=1)
    union = pred[:, 2] * pred[:, 3] + gt[:, 2] * gt[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def centers(boxes: np.ndarray) -> np.ndarray:
    """Pixel-inclusive centres x + (w - 1) / 2."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return boxes[:, :2] + 0.5 * (boxes[:, 2:] - 1.0)


def valid_frames(gt: np.ndarray, absent: np.ndarray | None = None) -> np.ndarray:
    """Frames that count: ground truth with positive size and not flagged absent."""
    gt = np.asarray(gt, dtype=np.float64)
    valid = np.isfinite(gt).all(axis=1) & (gt[:, 2] > 0) & (gt[:, 3] > 0)
    if absent is not None:
        valid &= ~np.asarray(absent, dtype=bool)
    return valid


def score_sequence(pred: np.ndarray, gt: np.ndarray, absent: np.ndarray | None = None) -> SequenceScores:
    """OPE scores of one sequence; `pred` and `gt` are (N, 4) x, y, w, h for the same frames."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if pred.shape != gt.shape:
        raise ValueError(f"prediction has shape {pred.shape} but ground truth {gt.shape}")
    keep = valid_frames(gt, absent)
    pred, gt = pred[keep], gt[keep]
    n = max(len(gt), 1)
    overlaps = iou(pred, gt)
    error = np.linalg.norm(centers(pred) - centers(gt), axis=1)
    norm_error = np.linalg.norm((centers(pred) - centers(gt)) / gt[:, 2:], axis=1)
    success = np.array([(overlaps > t).sum() / n for t in SUCCESS_THRESHOLDS])
    prec = np.array([(error <= t).sum() / n for t in PRECISION_THRESHOLDS])
    norm_prec = np.array([(norm_error <= t).sum() / n for t in NORM_PRECISION_THRESHOLDS])
    return SequenceScores(
        auc=float(success.mean()),
        precision=float(prec[20]),
        norm_precision=float(norm_prec[20]),
        success_curve=success,
        precision_curve=prec,
        norm_precision_curve=norm_prec,
        frames=int(keep.sum()),
    )


def mean_scores(scores: list[SequenceScores]) -> dict[str, float]:
    """Mean over sequences of AUC, precision and normalised precision, x100."""
    if not scores:
        return {"auc": float("nan"), "precision": float("nan"), "norm_precision": float("nan")}
    return {
        "auc": 100 * float(np.mean([s.auc for s in scores])),
        "precision": 100 * float(np.mean([s.precision for s in scores])),
        "norm_precision": 100 * float(np.mean([s.norm_precision for s in scores])),
    }
