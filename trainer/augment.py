"""Image augmentations that carry boxes exactly: views, shear, blur, flip, crop-transform-paste.

Boxes are x, y, w, h in pixel-edge coordinates. Every geometric transform is applied to the
pixels and to the box corners with the same matrix, so the box after augmentation is the tight
box of the transformed object (tests check this with a drawn square).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from sstrack.crops import CropWindow, crop_window, extract


def affine_about_centre(matrix: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """2x3 warpAffine matrix (pixel-centre convention) applying `matrix` about `centre` (edges)."""
    a = np.asarray(matrix, dtype=np.float64).reshape(2, 2)
    c = np.asarray(centre, dtype=np.float64)
    # In edge coordinates p' = A (p - c) + c; warpAffine works on pixel centres q = p - 0.5.
    t = a @ (0.5 - c) + c - 0.5
    return np.hstack([a, t[:, None]])


def transform_box(box: np.ndarray, warp: np.ndarray) -> np.ndarray:
    """Tight box around the four corners of `box` moved by a pixel-centre warp matrix."""
    x, y, w, h = box
    corners = np.array([[x, y], [x + w, y], [x, y + h], [x + w, y + h]], dtype=np.float64)
    # Convert edge corners to centre coordinates, warp, convert back.
    moved = (warp[:, :2] @ (corners - 0.5).T).T + warp[:, 2] + 0.5
    x1, y1 = moved.min(axis=0)
    x2, y2 = moved.max(axis=0)
    return np.array([x1, y1, x2 - x1, y2 - y1])


def shear(
    image: np.ndarray, box: np.ndarray, rng: np.random.Generator, max_shear: float = 0.2,
    border: tuple[float, float, float] = (0, 0, 0),
) -> tuple[np.ndarray, np.ndarray]:
    """Random x/y shear about the image centre (pytracking RandomAffine, rotation 0)."""
    sx, sy = rng.uniform(-max_shear, max_shear, 2)
    h, w = image.shape[:2]
    warp = affine_about_centre(np.array([[1.0, sx], [sy, 1.0]]), (w / 2, h / 2))
    out = cv2.warpAffine(image, warp, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
    return out, transform_box(box, warp)


def motion_blur(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Line-kernel motion blur (official CTP: odd size 5..45, mixed vertical/horizontal)."""
    size = int(rng.choice(np.arange(5, 46, 2)))
    size = max(3, min(size, (min(image.shape[:2]) // 4) * 2 + 1))
    kernel = np.zeros((size, size), np.float32)
    wx = rng.uniform()
    kernel[:, size // 2] += wx / size
    kernel[size // 2, :] += (1 - wx) / size
    return cv2.filter2D(image, -1, kernel)


def hflip(image: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror left-right; in edge coordinates x' = W - (x + w)."""
    width = image.shape[1]
    return image[:, ::-1].copy(), np.array([width - box[0] - box[2], box[1], box[2], box[3]])


def jitter_window(
    box: np.ndarray, factor: float, out: int, rng: np.random.Generator, scale_sigma: float, centre_jitter: float
) -> CropWindow:
    """Search window around a jittered box (official grounding jitter, §4.3 step 5)."""
    x, y, w, h = box
    jw = w * math.exp(float(np.clip(rng.normal(), -2.5, 2.5)) * scale_sigma)
    jh = h * math.exp(float(np.clip(rng.normal(), -2.5, 2.5)) * scale_sigma)
    reach = math.sqrt(jw * jh) * centre_jitter
    cx = x + w / 2 + reach * (rng.uniform() - 0.5)
    cy = y + h / 2 + reach * (rng.uniform() - 0.5)
    return crop_window(np.array([cx - jw / 2, cy - jh / 2, jw, jh]), factor, out)


def visible_fraction(box: np.ndarray, side: float) -> float:
    """Fraction of `box`'s area inside the square [0, side)^2."""
    x1, y1 = max(box[0], 0.0), max(box[1], 0.0)
    x2, y2 = min(box[0] + box[2], side), min(box[1] + box[3], side)
    area = box[2] * box[3]
    return max(0.0, x2 - x1) * max(0.0, y2 - y1) / area if area > 0 else 0.0


def paste_patch(
    image: np.ndarray,
    patch: np.ndarray,
    rng: np.random.Generator,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Crop-transform-paste: rescale `patch` by 1 + U(-1,1)*scale per axis, overwrite it at a
    random place, return the image and the exact paste box (official `crop_rescale_paste_nopad`
    without its +1 on the box size)."""
    height, width = image.shape[:2]
    ph, pw = patch.shape[:2]
    sw = 1 + rng.uniform(-1, 1) * scale
    sh = 1 + rng.uniform(-1, 1) * scale
    new_w, new_h = max(8, round(pw * sw)), max(8, round(ph * sh))
    # Keep the paste well inside the frame (the official keeps >= 10 px margin).
    fit = min(1.0, (width - 12) / new_w, (height - 12) / new_h)
    new_w, new_h = max(4, int(new_w * fit)), max(4, int(new_h * fit))
    xs = int(rng.integers(1, max(2, width - new_w - 10)))
    ys = int(rng.integers(1, max(2, height - new_h - 10)))
    out = image.copy()
    out[ys : ys + new_h, xs : xs + new_w] = cv2.resize(patch, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    return out, np.array([xs, ys, new_w, new_h], dtype=np.float64)


def occlude(image: np.ndarray, box: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One dark block over part of the box (official CTP occlusion)."""
    x, y, w, h = box
    if w < 12 or h < 12 or not 0.2 <= w / h <= 5:
        return image
    side = math.sqrt(0.25 + 0.1 * rng.uniform())
    bw, bh = int(w * side), int(h * side)
    bx = int(x + rng.uniform() * (w - bw))
    by = int(y + rng.uniform() * (h - bh))
    out = image.copy()
    out[max(by, 0) : by + bh, max(bx, 0) : bx + bw] = int(rng.integers(0, 10))
    return out


def view_of(
    image: np.ndarray,
    box: np.ndarray,
    factor: float,
    out: int,
    rng: np.random.Generator,
    scale_sigma: float,
    centre_jitter: float,
    border: tuple[float, float, float],
) -> tuple[np.ndarray, np.ndarray]:
    """A jittered search crop of `image` and the target `box` in crop pixels (>= 50% visible)."""
    for _ in range(10):
        window = jitter_window(box, factor, out, rng, scale_sigma, centre_jitter)
        target = window.to_crop(box)
        if visible_fraction(target, out) >= 0.5 and target[2] >= 2 and target[3] >= 2:
            return extract(image, window, border), target
    window = crop_window(box, factor, out)
    return extract(image, window, border), window.to_crop(box)
