"""Automatic initial boxes for footage that has none.

The trainer needs one box per clip to start from (the paper's "initial bounding box setting").
On unlabeled footage we propose boxes around regions that stand out from their surroundings,
by centre-surround contrast of three cues computed on a 128-px copy of the frame:

- colour: the Lab mean inside a window against the ring around it (objects differ in colour
  from their background more often than not);
- texture: mean gradient magnitude inside against the ring (objects are usually more textured
  than walls, sky, road or floor);
- motion: mean absolute difference to a frame a few steps later, inside against the ring (what
  moves is what people want to track); ignored when the whole frame moves (camera motion).

Each cue is normalised by its spread over the frame, windows of 5 sizes x 3 aspect ratios are
scored with integral images, and the best non-overlapping ones are kept. This favours compact,
distinct regions: exactly what a tracker can learn to follow. It is cheap (~2 ms per frame) so it
runs on every n-th frame of every clip, giving many different instances per video.
"""

from __future__ import annotations

import cv2
import numpy as np

from sstrack.boxes import xywh_iou

_WORK_SIDE = 128
_SIZES = (0.14, 0.2, 0.28, 0.38, 0.5)  # window side as a fraction of the frame's short side
_ASPECTS = (0.6, 1.0, 1.7)
_RING = 1.8  # the surround is the window scaled by this, minus the window


def propose_boxes(
    frame: np.ndarray, later: np.ndarray | None = None, max_boxes: int = 3, min_score: float = 0.8,
    aspects: tuple[float, ...] = _ASPECTS,
) -> list[np.ndarray]:
    """Up to `max_boxes` (x, y, w, h) boxes in `frame` pixels, best first; `aspects`: the windows' w/h."""
    height, width = frame.shape[:2]
    scale = _WORK_SIDE / max(height, width)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    cues = _cues(small, None if later is None else cv2.resize(later, size, interpolation=cv2.INTER_AREA))
    boxes, scores = _score_windows(cues, size, aspects)
    keep = _nms(boxes, scores, max_boxes, min_score)
    return [boxes[i] / scale for i in keep]


def _cues(small: np.ndarray, later: np.ndarray | None) -> list[np.ndarray]:
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB).astype(np.float32)
    gray = lab[..., 0]
    grad = cv2.magnitude(cv2.Sobel(gray, cv2.CV_32F, 1, 0), cv2.Sobel(gray, cv2.CV_32F, 0, 1))
    cues = [lab[..., 0], lab[..., 1], lab[..., 2], cv2.GaussianBlur(grad, (5, 5), 0)]
    if later is not None:
        other = cv2.cvtColor(later, cv2.COLOR_RGB2LAB).astype(np.float32)[..., 0]
        motion = cv2.GaussianBlur(np.abs(gray - other), (5, 5), 0)
        # Camera motion makes everything move: then motion says nothing about objects.
        if np.median(motion) < 0.5 * motion.mean() + 1.0:
            cues.append(motion)
    return [c / (c.std() + 1e-3) for c in cues]


def _score_windows(cues: list[np.ndarray], size: tuple[int, int], aspects: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    width, height = size
    integrals = [cv2.integral(c.astype(np.float64)) for c in cues]
    short = min(width, height)
    all_boxes, all_scores = [], []
    for frac in _SIZES:
        for aspect in aspects:
            bw = max(3, int(round(frac * short * np.sqrt(aspect))))
            bh = max(3, int(round(frac * short / np.sqrt(aspect))))
            rw, rh = int(round(bw * _RING)), int(round(bh * _RING))
            stride = max(1, min(bw, bh) // 4)
            # Windows whose whole ring lies inside the frame, so inside/outside are comparable.
            xs = np.arange((rw - bw) // 2, width - bw - (rw - bw) // 2, stride)
            ys = np.arange((rh - bh) // 2, height - bh - (rh - bh) // 2, stride)
            if len(xs) == 0 or len(ys) == 0:
                continue
            gx, gy = np.meshgrid(xs, ys)
            gx, gy = gx.ravel(), gy.ravel()
            ox, oy = gx - (rw - bw) // 2, gy - (rh - bh) // 2
            inner_area, outer_area = bw * bh, rw * rh - bw * bh
            colour = np.zeros(len(gx))
            score = np.zeros(len(gx))
            for k, integral in enumerate(integrals):
                inner = _box_sum(integral, gx, gy, bw, bh)
                outer = _box_sum(integral, ox, oy, rw, rh) - inner
                diff = inner / inner_area - outer / outer_area
                if k < 3:
                    colour += diff**2
                elif k == 3:
                    score += np.maximum(diff, 0)  # texture: only more textured than around
                else:
                    score += 2 * np.maximum(diff, 0)  # motion counts double
            score += np.sqrt(colour)
            all_boxes.append(np.stack([gx, gy, np.full_like(gx, bw), np.full_like(gy, bh)], 1))
            all_scores.append(score)
    if not all_boxes:
        return np.zeros((0, 4)), np.zeros(0)
    return np.concatenate(all_boxes).astype(np.float64), np.concatenate(all_scores)


def _box_sum(integral: np.ndarray, x: np.ndarray, y: np.ndarray, w: int, h: int) -> np.ndarray:
    return integral[y + h, x + w] - integral[y, x + w] - integral[y + h, x] + integral[y, x]


def _nms(boxes: np.ndarray, scores: np.ndarray, limit: int, min_score: float) -> list[int]:
    order = np.argsort(-scores)
    keep: list[int] = []
    for i in order:
        if scores[i] < min_score or len(keep) >= limit:
            break
        if all(xywh_iou(boxes[i], boxes[j]) < 0.2 for j in keep):
            keep.append(int(i))
    return keep

