"""Shape calibration: the network's own shape error on the start frame, where the user's box is true.

The lite network's box shapes are biased per object, and the bias is steady: on the dev set's tall
pedestrians (Crossing, Jogging-1) it predicts boxes squarer than the person frame after frame, so
the tracked box ends up 45% too short although its centre stays on the target (mean log h/h*
-0.59 over Crossing). The size is damped toward each prediction, so a steady bias is reached
whatever the damping. On the start frame the truth is known: the network, shown search crops of
that frame around the user's box, predicts some box; the log ratio of the true aspect (w/h) to the
predicted one is this object's bias, and every later box's aspect is corrected by it, its area
kept. The views are the ones tracking produces: the crop centred on the previous box, off by a
fraction of its size.

Only the shape, per object. Correcting the scale as well (w and h each by their own ratio) compounded: the
network's scale follows the crop, which follows the previous box, so a constant factor grew the
box frame after frame (Deer and MountainBike6 ended 40-50% too large; AUC 56.7 -> 50.4 on the dev
set, against 55.0 with the shape only; docs/results-calibration-2026-12-03.md). One start frame
tells the object's scale error poorly (Deer: -0.38 on its first frame, -0.17 on average on later
ones). The scale is corrected per model instead, on the reported boxes only
(`ModelConfig.scale_bias`, `scale_carry`): the median `scale_response` over many clips' start
frames (trainer/scale_calibration.py) says how the tracked box drifts from a keyframe. Each
target's drift follows that bias blended with its own, measured by the same views on its start
frame (`ModelConfig.scale_own_weight`), on the reported boxes only, so nothing compounds.
"""

from __future__ import annotations

import numpy as np

# Centre offsets of the calibration views, in units of sqrt(w*h) of the box: the exact crop and
# four crops off by 0.1 (a typical frame-to-frame move, as the tracker sees it).
VIEW_SHIFTS = ((0.0, 0.0), (0.1, 0.0), (-0.1, 0.0), (0.0, 0.1), (0.0, -0.1))
# The model's scale calibration (trainer/scale_calibration.py): crops of the true box scaled by
# exp(x), from a quarter too tight to half again too wide.
SCALE_VIEW_LOGS = (-0.4, -0.2, 0.0, 0.2, 0.4)
# A guard, not a tuned value: a broken model's degenerate box (zero width) must not turn every later
# box into a sliver. log(8): the largest correction seen on the dev set is log(2.4).
MAX_LOG_ASPECT = float(np.log(8.0))


def calibration_views(box: np.ndarray) -> list[np.ndarray]:
    """The boxes (x, y, w, h) the calibration crops are centred on: the user's box, shifted."""
    x, y, w, h = (float(v) for v in box)
    side = float(np.sqrt(w * h))
    return [np.array([x + dx * side, y + dy * side, w, h]) for dx, dy in VIEW_SHIFTS]


def size_bias(truth: np.ndarray, predictions: list[np.ndarray]) -> np.ndarray:
    """Log factors for w and h (a/2, -a/2), where a is the median over the views of log(true w/h / predicted w/h)."""
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1, 4)
    ratios = np.log(np.asarray(truth, dtype=np.float64)[2:4]) - np.log(np.maximum(predicted[:, 2:4], 1e-6))
    aspect = float(np.clip(np.median(ratios[:, 0] - ratios[:, 1]), -MAX_LOG_ASPECT, MAX_LOG_ASPECT))
    return np.array([aspect / 2, -aspect / 2])


def scale_views(box: np.ndarray) -> list[np.ndarray]:
    """The box scaled about its centre by exp(x) for each x of SCALE_VIEW_LOGS: crops too tight and too wide."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    return [np.array([cx - w * f / 2, cy - h * f / 2, w * f, h * f]) for f in np.exp(SCALE_VIEW_LOGS)]


def scale_response(truth: np.ndarray, predictions: list[np.ndarray]) -> tuple[float, float]:
    """(a, c) of the least-squares line y = a + c x over the scale views: x the view's log scale
    error, y the predicted box's (0.5 log of the area ratio). a is the bias on the true crop, c the
    share of the crop's error the prediction keeps."""
    predicted = np.asarray(predictions, dtype=np.float64).reshape(-1, 4)
    true_area = float(np.prod(np.asarray(truth, dtype=np.float64)[2:4]))
    errors = 0.5 * np.log(np.maximum(predicted[:, 2] * predicted[:, 3], 1e-6) / true_area)
    carry, bias = np.polyfit(np.asarray(SCALE_VIEW_LOGS), errors, 1)
    return float(bias), float(carry)


def settled_scale_error(bias: float, carry: float) -> float:
    """Where tracking settles (log scale error) when each box is bias + carry x the previous box's error: a / (1 - c)."""
    return bias / max(1.0 - carry, 0.1)  # c near 1 (a network blind to scale) would divide by ~0


def corrected(box: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """`box` with its size multiplied by exp(bias), about the same centre."""
    x, y, w, h = (float(v) for v in box)
    cx, cy = x + w / 2, y + h / 2
    w, h = w * float(np.exp(bias[0])), h * float(np.exp(bias[1]))
    return np.array([cx - w / 2, cy - h / 2, w, h])
