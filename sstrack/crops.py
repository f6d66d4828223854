"""Square crops around a box, and the exact mapping between crop and image coordinates.

Boxes are `x, y, w, h` in pixel-edge coordinates (a pixel spans [i, i+1)). A crop of side `size`
image pixels starting at (x0, y0) is resampled to `out` x `out` pixels; crop coordinate u maps to
image coordinate x0 + u * size / out. The resampling (one `cv2.warpAffine`, bilinear) uses exactly
that mapping, so `to_image(to_crop(box)) == box` and the pixels agree with the boxes to a pixel.

Differences from the official `sample_target` (docs/sstrack-reference.md §3.2), on purpose: the
crop origin is not rounded to an integer and there is no +1 right/bottom padding quirk, because
both shift the crop against the box mapping the tracker uses to map predictions back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from sstrack.errors import InputError

Padding = Literal["zero", "mean"]


@dataclass(frozen=True)
class CropWindow:
    """Where a crop lies in its image: origin (x0, y0), side `size` px, output side `out` px."""

    x0: float
    y0: float
    size: float
    out: int

    @property
    def scale(self) -> float:
        """Output pixels per image pixel."""
        return self.out / self.size

    def to_crop(self, box: np.ndarray) -> np.ndarray:
        """Image-coordinate box(es) (..., 4) -> crop coordinates."""
        box = np.asarray(box, dtype=np.float64)
        out = box.copy()
        out[..., 0] = (box[..., 0] - self.x0) * self.scale
        out[..., 1] = (box[..., 1] - self.y0) * self.scale
        out[..., 2:] = box[..., 2:] * self.scale
        return out

    def to_image(self, box: np.ndarray) -> np.ndarray:
        """Crop-coordinate box(es) (..., 4) -> image coordinates."""
        box = np.asarray(box, dtype=np.float64)
        out = box.copy()
        out[..., 0] = box[..., 0] / self.scale + self.x0
        out[..., 1] = box[..., 1] / self.scale + self.y0
        out[..., 2:] = box[..., 2:] / self.scale
        return out


def crop_window(box: np.ndarray, factor: float, out: int) -> CropWindow:
    """The square window of side ceil(sqrt(w*h) * factor) centred on `box`."""
    x, y, w, h = (float(v) for v in box)
    size = math.ceil(math.sqrt(max(w, 0.0) * max(h, 0.0)) * factor)
    if size < 1:
        raise InputError(f"box {x:.1f},{y:.1f},{w:.1f},{h:.1f} is too small to crop around")
    return CropWindow(x + w / 2 - size / 2, y + h / 2 - size / 2, float(size), out)


def padding_value(image: np.ndarray, padding: Padding) -> tuple[float, float, float]:
    """Border colour: black, or the image's mean colour (SiamFC-style, less edge artefact)."""
    if padding == "mean":
        mean = cv2.mean(image)
        return (mean[0], mean[1], mean[2])
    return (0.0, 0.0, 0.0)


def extract(
    image: np.ndarray, window: CropWindow, border: tuple[float, float, float] = (0.0, 0.0, 0.0)
) -> np.ndarray:
    """Resample `window` of `image` to an (out, out, 3) uint8 patch, padding outside the image."""
    s = window.scale
    # Pixel centres: image pixel x (centre x + 0.5) lands on crop pixel (x + 0.5 - x0) * s - 0.5.
    matrix = np.array(
        [[s, 0.0, (0.5 - window.x0) * s - 0.5], [0.0, s, (0.5 - window.y0) * s - 0.5]],
        dtype=np.float64,
    )
    return cv2.warpAffine(
        image,
        matrix,
        (window.out, window.out),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=border,
    )


def crop_around(
    image: np.ndarray, box: np.ndarray, factor: float, out: int, padding: Padding = "zero"
) -> tuple[np.ndarray, CropWindow]:
    """Crop a square of `factor` x the box's geometric-mean side around it, resized to `out`."""
    window = crop_window(box, factor, out)
    return extract(image, window, padding_value(image, padding)), window


def clip_box(box: np.ndarray, width: int, height: int, margin: float = 10.0) -> np.ndarray:
    """Keep a predicted box inside the image with at least `margin` px visible (official clip)."""
    x1, y1, w, h = (float(v) for v in box)
    x2, y2 = x1 + w, y1 + h
    x1 = min(max(0.0, x1), width - margin)
    x2 = min(max(margin, x2), float(width))
    y1 = min(max(0.0, y1), height - margin)
    y2 = min(max(margin, y2), float(height))
    return np.array([x1, y1, max(margin, x2 - x1), max(margin, y2 - y1)], dtype=np.float64)


def check_box(box: tuple[float, float, float, float] | np.ndarray, width: int, height: int) -> np.ndarray:
    """Validate a user box and clip it to the image; refuse one with nothing inside the frame."""
    values = np.asarray(box, dtype=np.float64).reshape(-1)
    text = ",".join(f"{v:g}" for v in values)
    if values.size != 4 or not np.all(np.isfinite(values)):
        raise InputError(f"box {text} must be four finite numbers x,y,w,h")
    x, y, w, h = values
    if w <= 0 or h <= 0:
        raise InputError(f"box {text} has no area; give a positive width and height")
    x1, y1 = max(x, 0.0), max(y, 0.0)
    x2, y2 = min(x + w, float(width)), min(y + h, float(height))
    if x2 - x1 < 1 or y2 - y1 < 1:
        raise InputError(
            f"box {text} lies outside the {width}x{height} frame; draw it on the object inside the frame"
        )
    return np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float64)
