"""Pixel refinement: re-place the network's box by matching the target's look at image resolution.

The lite network places its box on a 12x12 score map whose cells are a third of the target wide,
and one step from a perfect start it loses more overlap (one-step IoU 0.71) than not moving at all
would (0.74; benchmarks.tightness). The target's own content in the previous frame is a far
sharper cue a frame later: normalised cross-correlation (NCC) of that grey patch, searched in a
window around the network's box, raised one-step IoU to 0.84 with the network's size and 0.89 with
the size searched too (the shipped card's settings: 0.853, centre error 0.146 -> 0.057 box sizes). The network stays the one that finds
the target: the search window is centred on its box, so a frame-to-frame matcher alone cannot
wander off (alone it drifted to OPE AUC 34).

The network also vets each move: with `refine_vouch` set, the refined centre must lie in a
score-map cell the network scores at least that fraction of its own peak; the matcher may sharpen
the network's answer but not overrule it (on the deforming "bag" sequence, where the grey
appearance pulled the box off the object, this raised OPE AUC from 51 to 65).

Everything is in `sstrack.config.ModelConfig`'s `refine_*` fields; `refine_side` 0 turns it off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from sstrack.config import ModelConfig


@dataclass
class Appearance:
    """The target's recent look: its grey box content, scaled so that sqrt(w*h) = side px."""

    patch: np.ndarray  # float32 (h, w)


def grey_patch(image: np.ndarray, centre: tuple[float, float], size: tuple[float, float], scale: float) -> np.ndarray:
    """The (w, h) region of `image` centred on `centre`, resampled by `scale`, as float32 grey."""
    width = max(int(round(size[0] * scale)), 4)
    height = max(int(round(size[1] * scale)), 4)
    cx, cy = centre
    # Output pixel (u, v) samples the image at centre + (u - (width - 1) / 2) / scale, so the
    # patch's middle is the centre exactly, whatever the rounding of its size.
    matrix = np.array(
        [[scale, 0.0, (width - 1) / 2 - cx * scale], [0.0, scale, (height - 1) / 2 - cy * scale]], dtype=np.float64
    )
    flags = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    patch = cv2.warpAffine(image, matrix, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)


def observe(image: np.ndarray, box: np.ndarray, config: ModelConfig, previous: Appearance | None) -> Appearance:
    """The appearance after seeing `box` in `image`: the new patch blended into the old one."""
    x, y, w, h = (float(v) for v in box)
    scale = config.refine_side / math.sqrt(w * h)
    patch = grey_patch(image, (x + w / 2, y + h / 2), (w, h), scale)
    rate = config.refine_rate
    if previous is not None and rate < 1.0:
        old = cv2.resize(previous.patch, (patch.shape[1], patch.shape[0]), interpolation=cv2.INTER_LINEAR)
        patch = (1 - rate) * old + rate * patch
    return Appearance(patch.astype(np.float32))


def _peak_offset(response: np.ndarray) -> tuple[float, float, float]:
    """Sub-pixel arg-max of a response map (parabola through the neighbours): (dx, dy, peak)."""
    y, x = np.unravel_index(int(np.argmax(response)), response.shape)

    def vertex(left: float, mid: float, right: float) -> float:
        curvature = left - 2 * mid + right
        return 0.0 if curvature >= 0 else 0.5 * (left - right) / curvature

    fy = y + (vertex(response[y - 1, x], response[y, x], response[y + 1, x]) if 0 < y < response.shape[0] - 1 else 0.0)
    fx = x + (vertex(response[y, x - 1], response[y, x], response[y, x + 1]) if 0 < x < response.shape[1] - 1 else 0.0)
    return fx - (response.shape[1] - 1) / 2, fy - (response.shape[0] - 1) / 2, float(response[y, x])


def refine(
    image: np.ndarray, box: np.ndarray, previous: np.ndarray, appearance: Appearance, config: ModelConfig
) -> tuple[np.ndarray, float]:
    """The network's `box` re-placed where the appearance matches best nearby, and the match's NCC.

    The search window is the previous box's size plus `refine_radius` x sqrt(w*h) on every side,
    centred on the network's box. With `refine_scale_step` above 1 the target is also searched one
    step smaller and larger than the previous size, and the size becomes a blend of that search and
    the network's (`refine_size_weight` is the network's share, in log space). A best match under
    `refine_gate` changes nothing: the target may be hidden or changed, and the network decides.
    """
    pw, ph = float(previous[2]), float(previous[3])
    scale = config.refine_side / math.sqrt(pw * ph)
    template = cv2.resize(appearance.patch, (max(int(round(pw * scale)), 4), max(int(round(ph * scale)), 4)))
    centre = (float(box[0] + box[2] / 2), float(box[1] + box[3] / 2))
    margin = config.refine_radius * math.sqrt(pw * ph)
    step = config.refine_scale_step
    best: tuple[float, float, float, float] | None = None  # peak, cx, cy, size factor
    for factor in (1.0, 1 / step, step) if step > 1 else (1.0,):
        # The target `factor` times bigger looks like the template when sampled `factor` times coarser.
        sampling = scale / factor
        search = grey_patch(image, centre, ((pw + 2 * margin) * factor, (ph + 2 * margin) * factor), sampling)
        if search.shape[0] < template.shape[0] or search.shape[1] < template.shape[1]:
            continue
        dx, dy, peak = _peak_offset(cv2.matchTemplate(search, template, cv2.TM_CCOEFF_NORMED))
        # A slight preference for no change in size: flat texture matches equally at every scale.
        peak *= 1.0 if factor == 1.0 else 0.99
        if best is None or peak > best[0]:
            best = (peak, centre[0] + dx / sampling, centre[1] + dy / sampling, factor)
    if best is None or not math.isfinite(best[0]) or best[0] < config.refine_gate:
        return np.asarray(box, dtype=np.float64), (best[0] if best else float("nan"))
    peak, cx, cy, factor = best
    share = config.refine_size_weight
    w = (pw * factor) ** (1 - share) * float(box[2]) ** share
    h = (ph * factor) ** (1 - share) * float(box[3]) ** share
    return np.array([cx - w / 2, cy - h / 2, w, h]), peak


def network_vouches(score_map: np.ndarray, crop_box: np.ndarray, config: ModelConfig, peak: float) -> bool:
    """Whether the network's (side x side) score map rates the cell of the refined box's centre
    (crop coordinates) at least `refine_vouch` x its peak score."""
    side = score_map.shape[0]
    # Cell i holds centres in [i, i + 1) x search_size / side (the head's decode adds an offset
    # in [0, 1) to the cell index).
    centre = (crop_box[0] + crop_box[2] / 2, crop_box[1] + crop_box[3] / 2)
    ix, iy = (min(max(int(math.floor(c / config.search_size * side)), 0), side - 1) for c in centre)
    return bool(score_map[iy, ix] >= config.refine_vouch * peak)
