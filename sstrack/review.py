"""Which frames of a track to review: a per-frame failure probability from what tracking left behind.

The raw peak score alone is a weak signal (the shipped lite model scores 0.4-0.5 on good frames
and 0.5-0.6 on boxes left on the background). The predictor combines it with signals computed
from the stored boxes and scores, at no extra tracking cost: the score relative to the track's
own recent level, jumps in size and position, drift of area and aspect from the keyframe, how
much of the box is inside the frame, the distance from the keyframe, and the box's grey look
against its keyframe's (`look_similarity`, computed by the engine as it writes each box). A logistic model over
them is fitted per tracker model (`python -m benchmarks.review --write-card`, leave one sequence
out for every reported figure) and stored in the model card as `review_predictor`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np

FEATURES = (
    "score", "score_vs_recent", "recent_score", "size_jump", "centre_jump", "area_drift", "aspect_drift", "inside",
    "log_frames_since_key", "look",
)
RECENT = 10  # frames of the track's own score level
LOOK_SIDE = 24  # px of the square grey thumbnail a box's look is compared at


def key_look(image: np.ndarray, box: np.ndarray | tuple[float, ...]) -> np.ndarray | None:
    """The zero-mean, unit-norm grey thumbnail of `box` in `image`, RGB or already grey (None:
    nothing inside the frame)."""
    x, y, w, h = (float(v) for v in box)
    x0, y0 = int(max(x, 0.0)), int(max(y, 0.0))
    x1, y1 = int(min(x + w, image.shape[1])), int(min(y + h, image.shape[0]))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    patch = np.ascontiguousarray(image[y0:y1, x0:x1])
    grey = (patch if patch.ndim == 2 else cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)).astype(np.float32)
    thumb = cv2.resize(grey, (LOOK_SIDE, LOOK_SIDE), interpolation=cv2.INTER_AREA)
    thumb -= thumb.mean()
    return thumb / (float(np.linalg.norm(thumb)) + 1e-6)


def look_similarity(image: np.ndarray, box: np.ndarray | tuple[float, ...], key: np.ndarray | None) -> float | None:
    """Normalised cross-correlation (-1..1) of `box`'s grey content with a keyframe's `key_look`.

    The one signal here that looks at the pixels: on the dev set it is 0.48-0.68 on good frames
    and 0.15-0.41 on failed ones for most sequences (a box left on the background or on another
    object); a deforming or rotating target lowers it too, which the fitted model weighs.
    """
    return thumb_similarity(key_look(image, box) if key is not None else None, key)


def thumb_similarity(thumb: np.ndarray | None, key: np.ndarray | None) -> float | None:
    """Normalised cross-correlation of two `key_look` thumbnails (None if either is missing)."""
    return None if thumb is None or key is None else float((thumb * key).sum())


def failure_features(
    boxes: np.ndarray, scores: np.ndarray, manual: np.ndarray, width: int, height: int, looks: np.ndarray | None = None
) -> np.ndarray:
    """(N, len(FEATURES)) signals for N consecutive frames of one track (x, y, w, h boxes).

    `scores` of manual frames are ignored (they are keyframes); a NaN row (no box) gets the
    previous box's values so that it never looks like a jump. `looks`: each box's
    `look_similarity` to its keyframe (a keyframe's own is 1; NaN or None counts as 1 too).
    """
    n = len(boxes)
    out = np.zeros((n, len(FEATURES)))
    boxes = np.asarray(boxes, dtype=np.float64).copy()
    for i in range(1, n):  # carry the last box over box-less frames
        if not np.all(np.isfinite(boxes[i])):
            boxes[i] = boxes[i - 1]
    scores = np.where(manual, 1.0, np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=1.0))
    look = np.ones(n) if looks is None else np.where(manual, 1.0, np.nan_to_num(np.asarray(looks, dtype=np.float64), nan=1.0))
    key = 0
    recent: list[float] = []
    for i in range(n):
        x, y, w, h = np.maximum(boxes[i], [-1e9, -1e9, 1e-3, 1e-3])
        if manual[i]:
            key, recent = i, []
        kx, ky, kw, kh = np.maximum(boxes[key], [-1e9, -1e9, 1e-3, 1e-3])
        px, py, pw, ph = np.maximum(boxes[i - 1], [-1e9, -1e9, 1e-3, 1e-3]) if i > 0 else (x, y, w, h)
        level = float(np.median(recent)) if recent else scores[i]
        inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
        inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
        out[i] = (
            scores[i],
            scores[i] / max(level, 1e-3),
            float(np.mean(recent[-3:])) if recent else scores[i],
            abs(np.log(w / pw)) + abs(np.log(h / ph)),
            np.hypot(x + w / 2 - px - pw / 2, y + h / 2 - py - ph / 2) / np.sqrt(pw * ph),
            abs(np.log(w * h / (kw * kh))),
            abs(np.log((w / h) / (kw / kh))),
            inside_w * inside_h / (w * h),
            np.log1p(i - key),
            look[i],
        )
        if not manual[i]:
            recent = (recent + [scores[i]])[-RECENT:]
    return out


@dataclass(frozen=True)
class FailurePredictor:
    """Logistic model over standardised FEATURES; frames with p >= threshold are flagged."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float

    def probability(self, features: np.ndarray) -> np.ndarray:
        """P(failure) per row of `features`."""
        z = (np.asarray(features) - np.asarray(self.mean)) / np.asarray(self.scale)
        logit = z @ np.asarray(self.weights) + self.bias
        return 0.5 * (1.0 + np.tanh(logit / 2))  # the logistic function, without exp's overflow on odd rows

    def flags(self, features: np.ndarray) -> np.ndarray:
        """True for the frames to review."""
        return self.probability(features) >= self.threshold

    def to_dict(self) -> dict[str, Any]:
        """JSON for the model card."""
        return {"features": list(FEATURES), **asdict(self)}

    @classmethod
    def from_dict(cls, data: Any) -> FailurePredictor | None:
        """The predictor of a card entry, or None when it is missing or not for these features."""
        try:
            if list(data["features"]) != list(FEATURES):
                return None
            values = {k: data[k] for k in ("mean", "scale", "weights")}
            if not all(len(v) == len(FEATURES) and all(np.isfinite(v)) for v in values.values()):
                return None
            bias, threshold = float(data["bias"]), float(data["threshold"])
        except (KeyError, TypeError, ValueError):
            return None
        if not (np.isfinite(bias) and 0 < threshold < 1) or min(values["scale"]) <= 0:
            return None
        return cls(*(tuple(float(x) for x in values[k]) for k in ("mean", "scale", "weights")), bias, threshold)


def fit_predictor(features: np.ndarray, failed: np.ndarray, flag_fraction: float = 0.2, l2: float = 1e-2) -> FailurePredictor:
    """Logistic regression (Newton steps) whose threshold flags `flag_fraction` of these frames."""
    mean = features.mean(0)
    scale = np.maximum(features.std(0), 1e-6)
    z = np.hstack([(features - mean) / scale, np.ones((len(features), 1))])
    y = failed.astype(np.float64)
    w = np.zeros(z.shape[1])
    for _ in range(30):
        p = 1.0 / (1.0 + np.exp(-z @ w))
        gradient = z.T @ (p - y) + l2 * np.r_[w[:-1], 0.0]
        hessian = (z * (p * (1 - p))[:, None]).T @ z + l2 * np.diag(np.r_[np.ones(len(w) - 1), 0.0])
        step = np.linalg.solve(hessian + 1e-9 * np.eye(len(w)), gradient)
        w -= step
        if np.abs(step).max() < 1e-8:
            break
    predictor = FailurePredictor(tuple(mean), tuple(scale), tuple(w[:-1]), float(w[-1]), 0.5)
    p = predictor.probability(features)
    threshold = float(np.clip(np.quantile(p, 1 - flag_fraction), 1e-6, 1 - 1e-6))
    return FailurePredictor(predictor.mean, predictor.scale, predictor.weights, predictor.bias, threshold)
