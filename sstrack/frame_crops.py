"""The crops of one frame that the tracker feeds its network, made where the network runs.

`HostCrops` resamples on the CPU with OpenCV (`sstrack.crops.extract`) and uploads the patches:
the exact, fastest path on a CPU. `DeviceCrops` uploads the frame once and resamples every window
of every target in one batched `grid_sample` on the device, so a GPU tracker does no per-target
pixel work in Python (issue 18). Both use the same pixel mapping (crop pixel u samples image pixel
x0 + (u + 0.5) / scale - 0.5), the same bilinear weights and the same padding colour, and both
round to uint8 as OpenCV does; they differ by OpenCV's 1/32-step interpolation weights (a grey
level at most).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from sstrack.crops import CropWindow, Padding, extract, padding_value
from sstrack.normalise import Normaliser


class HostCrops:
    """Crops of one RGB uint8 frame made on the CPU with OpenCV."""

    def __init__(self, image: np.ndarray, padding: Padding, normalise: Normaliser, device: torch.device) -> None:
        self.image = image
        self.border = padding_value(image, padding)
        self._normalise = normalise
        self.device = device

    def patches(self, windows: Sequence[CropWindow]) -> torch.Tensor:
        """Normalised (B, 3, out, out) network input, one crop per window."""
        crops = np.stack([extract(self.image, w, self.border) for w in windows])
        return self._normalise(torch.from_numpy(crops).to(self.device))

    def templates(self, windows: Sequence[CropWindow]) -> list[np.ndarray]:
        """uint8 (out, out, 3) crops to keep in the targets' template memories."""
        return [extract(self.image, w, self.border) for w in windows]


def resample_frame(frame: torch.Tensor, table: torch.Tensor, steps: torch.Tensor, mean_padding: bool) -> tuple[torch.Tensor]:
    """uint8-valued float (B, 3, out, out) crops of an (H, W, 3) uint8 frame on the device.

    `table` (B, 4) holds, per window, the affine map g = a * u + b from crop pixel u to
    grid_sample's [-1, 1] coordinate, for x then y; `steps` is arange(out). Only tensors in and out,
    so a CUDA graph can capture it (sstrack/cuda_graphs.py).
    """
    chw = frame.permute(2, 0, 1).unsqueeze(0).float()
    # The padding colour stays on the device: the frame's mean colour, or black.
    border = chw.mean(dim=(2, 3), keepdim=True) if mean_padding else torch.zeros_like(chw[:, :, :1, :1])
    batch, out = table.shape[0], steps.shape[0]
    gx = (table[:, 0:1] * steps + table[:, 1:2]).float()
    gy = (table[:, 2:3] * steps + table[:, 3:4]).float()
    grid = torch.stack([gx[:, None, :].expand(batch, out, out), gy[:, :, None].expand(batch, out, out)], dim=-1)
    # Zero padding of (frame - border), then + border: outside pixels count as the border colour
    # inside the bilinear blend, exactly as OpenCV's BORDER_CONSTANT.
    centred = (chw - border).expand(batch, -1, -1, -1)
    crops = F.grid_sample(centred, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return ((crops + border).round_().clamp_(0, 255),)


Resampler = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor | None, ...]]


class DeviceCrops:
    """Crops of one RGB uint8 frame resampled on `device` from a single upload of the frame.

    `resample` runs `resample_frame` (the tracker passes a CUDA-graphed one on a GPU).
    """

    def __init__(
        self, image: np.ndarray, padding: Padding, normalise: Normaliser, device: torch.device, resample: Resampler | None = None
    ) -> None:
        self._frame = torch.from_numpy(image).to(device, non_blocking=True)
        self.height, self.width = image.shape[:2]
        self._resample = resample or partial(resample_frame, mean_padding=padding == "mean")
        self._normalise = normalise
        self.device = device

    def resample(self, windows: Sequence[CropWindow]) -> torch.Tensor:
        """uint8-valued float (B, 3, out, out) crops, as `extract` makes them, in one batched op."""
        out = windows[0].out
        if any(w.out != out for w in windows):
            raise ValueError("all windows of one batch must have the same output size")
        # grid_sample's [-1, 1] coordinate of the image pixel-centre coordinate x that crop pixel u
        # samples, x = x0 + (u + 0.5) / scale - 0.5 (align_corners=False: pixel i's centre is at
        # (2i + 1) / size - 1), as an affine map g = a * u + b per window and axis; the (tiny)
        # table is made on the host and sent in one copy.
        coefficients = [
            (2 / (w.scale * self.width), (2 * w.x0 + 1 / w.scale) / self.width - 1,
             2 / (w.scale * self.height), (2 * w.y0 + 1 / w.scale) / self.height - 1)
            for w in windows
        ]
        table = torch.tensor(coefficients, dtype=torch.float64).to(self.device, non_blocking=True)
        steps = torch.arange(out, dtype=torch.float64, device=self.device)
        (crops,) = self._resample(self._frame, table, steps)
        assert crops is not None
        return crops

    def patches(self, windows: Sequence[CropWindow]) -> torch.Tensor:
        """Normalised (B, 3, out, out) network input, one crop per window."""
        return self._normalise.chw(self.resample(windows))

    def templates(self, windows: Sequence[CropWindow]) -> list[torch.Tensor]:
        """uint8 (out, out, 3) crops, kept on the device, for the targets' template memories."""
        return list(self.resample(windows).permute(0, 2, 3, 1).to(torch.uint8).unbind(0))
