"""trainer.search_crop: a smaller search crop at the same object scale (issue 18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sstrack import Tracker, load_model
from sstrack.boxes import xywh_iou
from sstrack.checkpoints import read_card
from sstrack.errors import InputError
from sstrack.sequences import load_sequence, read_image
from trainer.search_crop import centre_crop_positions, main, with_search_size


def test_the_position_table_is_cut_to_its_centre():
    table = torch.arange(12 * 12, dtype=torch.float32).reshape(1, 144, 1)
    cut = centre_crop_positions(table, 10).reshape(10, 10)
    assert cut[0, 0] == 13 and cut[0, -1] == 22 and cut[-1, -1] == 130  # rows 1..10, columns 1..10 of 12
    with pytest.raises(InputError, match="evenly"):
        centre_crop_positions(table, 9)


@pytest.mark.slow
def test_the_cut_model_still_finds_the_object_one_step_from_the_truth(sot_dir):
    """The shipped model cut to 160 px still boxes the object one step from the truth, 16 starts.

    Measured with v4 (stop 48): mean IoU 0.86, lowest 0.77; the 192 px model 0.79 on the same
    starts. The network barely uses the search positions here: a table cut from a corner, or the
    search factor left at 4, scores the same one step out, so this checks that the cut model is
    whole (weights carried over, crops consistent), not which positions it kept.
    """
    cut = with_search_size(load_model("sstrack-lite"), 160)
    assert (cut.config.search_size, cut.config.search_factor) == (160, pytest.approx(4.0 * 160 / 192, abs=1e-3))
    tracker = Tracker(cut, backend="torch")
    overlaps = []
    for name in ("Crossing", "Deer"):
        sequence = load_sequence(sot_dir / name)
        for start in range(0, 40, 5):
            first, second = (read_image(sequence.frames[k]) for k in (start, start + 1))
            state = tracker.start(first, sequence.ground_truth[start])
            (box, _score), = tracker.step([state], second)
            overlaps.append(xywh_iou(box, sequence.ground_truth[start + 1]))
    assert np.mean(overlaps) > 0.75 and min(overlaps) > 0.5, overlaps


def test_a_size_off_the_patch_grid_is_a_one_line_error(tmp_path, capsys):
    assert main(["sstrack-lite", "--size", "150", "--out", str(tmp_path / "m.safetensors")]) == 2
    error = capsys.readouterr().err
    assert "--size 150" in error and "multiple of the patch size" in error and len(error.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())
    assert main([str(tmp_path / "missing.safetensors"), "--size", "160", "--out", str(tmp_path / "m.safetensors")]) == 2
    error = capsys.readouterr().err
    assert "missing.safetensors" in error and len(error.strip().splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_the_card_keeps_the_lineage_and_drops_the_parents_figures(tmp_path):
    out = tmp_path / "cut.safetensors"
    assert main(["sstrack-lite", "--size", "160", "--out", str(out)]) == 0
    card = read_card(out)
    assert card["config"]["search_size"] == 160 and card["search_crop"]["from"] == [192, 4.0]
    assert card["parent"] and "metrics" not in card and "review_threshold" not in card
    assert load_model(out).config.search_size == 160
