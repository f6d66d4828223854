"""Media: frame-exact random access, reverse reading, the byte-bounded cache, errors."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from projects.media import FrameCache, MediaError, open_media
from tests.reliability_support import png_declaring


def _digest(frame: np.ndarray) -> str:
    return hashlib.md5(frame.tobytes()).hexdigest()


@pytest.mark.parametrize("name", ["01_dog.mp4", "vtest.avi"])
def test_random_order_reads_equal_sequential_reads(videos_dir, name, rng):
    with open_media(videos_dir / name, cache_bytes=0) as media:
        sequential = [_digest(frame) for _, frame in media.iter_frames(0, media.frame_count)]
        index = media.index  # fresh readers below, without indexing the file again
    order = rng.permutation(len(sequential))[:25]
    with open_media(videos_dir / name, cache_bytes=0, index=index) as media:
        assert [_digest(media.frame(int(i))) for i in order] == [sequential[i] for i in order]
    with open_media(videos_dir / name, cache_bytes=0, index=index) as media:
        backward = [(i, _digest(f)) for i, f in media.iter_frames(media.frame_count - 1, -1, -1)]
    assert [i for i, _ in backward] == list(range(len(sequential) - 1, -1, -1))
    assert [d for _, d in backward] == sequential[::-1]


def test_image_folder_media(sot_dir):
    with open_media(sot_dir / "Deer") as media:
        assert media.frame_count == 71 and media.frame(70).shape == (media.height, media.width, 3)


def test_cache_respects_its_byte_bound():
    cache = FrameCache(max_bytes=10 * 1000)
    for i in range(50):
        cache.put(i, np.zeros(1000, np.uint8))
    assert cache.bytes <= 10 * 1000 and len(cache) == 10
    assert cache.get(0) is None and cache.get(49) is not None


def test_missing_and_damaged(videos_dir, tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        open_media(tmp_path / "gone.mp4")
    with pytest.raises(MediaError, match="empty file"):
        open_media(videos_dir / "damaged" / "empty.mp4")
    with pytest.raises(MediaError, match="random_bytes.avi"):
        open_media(videos_dir / "damaged" / "random_bytes.avi")
    with open_media(videos_dir / "tree.avi") as media, pytest.raises(MediaError, match="frame 69"):
        media.frame(68)


@pytest.mark.parametrize("side", [11_000, 15_000])  # past our 100 MP limit; past Pillow's own bomb limit
def test_a_frame_declaring_a_huge_size_is_refused_before_it_is_decoded(sot_dir, tmp_path, side):
    import shutil
    import time

    folder = tmp_path / "img"
    shutil.copytree(sot_dir / "Deer" / "img", folder)
    first = sorted(folder.iterdir())[0]
    first.unlink()
    png_declaring(first.with_suffix(".png"), side, side)  # about 1 MB on disk, 120-225 MP decoded
    started = time.monotonic()
    with pytest.raises(MediaError, match=r"00000001\.png: declares"):
        open_media(folder)
    assert time.monotonic() - started < 5  # decoding it would take 10-20 s and 0.4-0.7 GB


def test_a_frame_of_another_size_is_refused_with_its_name(sot_dir, tmp_path):
    """Boxes are per frame in one coordinate system: a frame of another size must not be shown."""
    import shutil

    import cv2

    folder = tmp_path / "img"
    shutil.copytree(sot_dir / "Deer" / "img", folder)
    odd = sorted(folder.iterdir())[5]
    cv2.imwrite(str(odd), np.zeros((100, 120, 3), np.uint8))
    with open_media(folder) as media:
        media.frame(4)
        with pytest.raises(MediaError, match=f"{odd.name}: 120x100, but the folder's first frame is"):
            media.frame(5)
