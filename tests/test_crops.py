"""Crops: the crop <-> image mapping is exact, and the pixels agree with it near borders."""

from __future__ import annotations

import numpy as np
import pytest

from sstrack.crops import clip_box, crop_around, crop_window


def _draw(height, width, box):
    image = np.zeros((height, width, 3), np.uint8)
    x, y, w, h = box
    image[y : y + h, x : x + w] = 255
    return image


def _bright_box(patch):
    ys, xs = np.nonzero(patch[..., 0] > 127)
    return np.array([xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()], dtype=float)


@pytest.mark.parametrize(
    "box",
    [(0, 0, 40, 30), (600, 440, 40, 40), (3, 200, 25, 60), (300, 461, 90, 19), (620, 0, 20, 20), (250, 180, 64, 48)],
)
@pytest.mark.parametrize("factor,out", [(2.0, 128), (4.0, 256), (5.0, 384), (4.0, 192)])
def test_crop_and_map_back_agree_to_a_pixel(box, factor, out):
    height, width = 480, 640
    image = _draw(height, width, box)
    patch, window = crop_around(image, np.array(box, float), factor, out, "mean")
    assert patch.shape == (out, out, 3)
    # The mapping itself is exact both ways.
    np.testing.assert_allclose(window.to_image(window.to_crop(np.array(box, float))), box, atol=1e-9)
    # The square drawn in the image is where the mapping says it is in the crop (the part of it
    # inside the crop, to a pixel)...
    found = _edges(_bright_box(patch))
    expected = np.clip(_edges(window.to_crop(np.array(box, float))), 0, out)
    np.testing.assert_allclose(found, expected, atol=1.0)
    # ...and the found box mapped back lands on the drawn one (to a pixel of either image).
    back = _edges(window.to_image(_bright_box(patch)))
    drawn = np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]], float)
    window_edges = np.array([window.x0, window.y0, window.x0 + window.size, window.y0 + window.size])
    visible = np.concatenate([np.maximum(drawn[:2], window_edges[:2]), np.minimum(drawn[2:], window_edges[2:])])
    np.testing.assert_allclose(back, visible, atol=max(1.0, 1.0 / window.scale))


def _edges(box):
    return np.array([box[0], box[1], box[0] + box[2], box[1] + box[3]])


def test_padding_uses_the_mean_colour():
    image = np.full((100, 100, 3), (10, 200, 30), np.uint8)
    patch, _ = crop_around(image, np.array([0, 0, 20, 20.0]), 4.0, 64, "mean")
    assert tuple(patch[0, 0]) == (10, 200, 30)
    black, _ = crop_around(image, np.array([0, 0, 20, 20.0]), 4.0, 64, "zero")
    assert tuple(black[0, 0]) == (0, 0, 0)


def test_crop_window_is_official_size_and_centred():
    window = crop_window(np.array([10, 20, 30, 40.0]), 4.0, 256)
    assert window.size == np.ceil(np.sqrt(30 * 40) * 4)
    assert window.x0 + window.size / 2 == pytest.approx(25.0)


def test_clip_box_official_margin():
    np.testing.assert_allclose(clip_box(np.array([-20, -5, 30, 20.0]), 100, 50), [0, 0, 10, 15])
    np.testing.assert_allclose(clip_box(np.array([95, 45, 30, 20.0]), 100, 50), [90, 40, 10, 10])


def test_device_crops_match_opencv_to_a_grey_level(sot_dir):
    # The GPU tracker's batched grid_sample crops (sstrack/frame_crops.py) must be the OpenCV
    # crops: same pixel mapping, same bilinear blend, same padding colour. Only OpenCV's 1/32-step
    # interpolation weights differ (one grey level, on few pixels). Run here on the CPU: the op is
    # the same on any device.
    import torch

    from sstrack import load_model
    from sstrack.crops import extract, padding_value
    from sstrack.frame_crops import DeviceCrops
    from sstrack.normalise import Normaliser
    from sstrack.sequences import load_sequence, read_image

    image = read_image(load_sequence(sot_dir / "Crossing").frames[0])
    height, width = image.shape[:2]
    normalise = Normaliser(load_model("sstrack-lite:random").config)
    rng = np.random.default_rng(0)
    # Windows inside, across every border and mostly outside the frame, batched in one call.
    boxes = [np.array([rng.uniform(-60, width), rng.uniform(-60, height), rng.uniform(4, 150), rng.uniform(4, 150)]) for _ in range(24)]
    windows = [crop_window(b, 4.0, 128) for b in boxes]
    for padding in ("mean", "zero"):
        crops = DeviceCrops(image, padding, normalise, torch.device("cpu"))
        ours = crops.resample(windows).permute(0, 2, 3, 1).numpy().astype(int)
        border = padding_value(image, padding)
        opencv = np.stack([extract(image, w, border) for w in windows]).astype(int)
        assert np.abs(ours - opencv).max() <= 1
        assert (ours != opencv).mean() < 0.01
        # What the network reads is the normalised batch of the same crops.
        expected = normalise(torch.from_numpy(opencv.astype(np.uint8)))
        one_grey_level = 1.0 / normalise.std.min().item()  # normalised units (std is in grey levels)
        assert torch.allclose(crops.patches(windows), expected, atol=one_grey_level + 1e-4)
        templates = crops.templates(windows[:3])
        assert [t.dtype for t in templates] == [torch.uint8] * 3
        np.testing.assert_array_equal(np.stack([t.numpy() for t in templates]), ours[:3])
