"""trainer.drop_blocks: a model with some joint blocks removed (issue 18)."""

from __future__ import annotations

import numpy as np
import torch

from sstrack import Tracker, load_model
from sstrack.checkpoints import read_card
from sstrack.metrics import iou
from sstrack.sequences import load_sequence, read_image
from trainer.drop_blocks import main, without_blocks


def test_the_kept_blocks_keep_their_weights_in_order():
    parent = load_model("sstrack-lite")
    cut = without_blocks(parent, [1])
    assert cut.config.depth == parent.config.depth - 1
    before, after = parent.state_dict(), cut.state_dict()
    for new, old in enumerate([0, 2, 3]):
        for key in ("attn.qkv.weight", "mlp.fc2.bias", "norm1.weight"):
            assert torch.equal(after[f"backbone.blocks.{new}.{key}"], before[f"backbone.blocks.{old}.{key}"])
    assert not any(k.startswith("backbone.blocks.3.") for k in after)
    assert torch.equal(after["backbone.pos_embed_x"], before["backbone.pos_embed_x"])


def test_the_cut_model_still_tracks(sot_dir):
    """Untrained, v4 without block 1 scored OPE 58.9 on the dev set (v4 61.2): it still follows the person."""
    torch.set_num_threads(2)
    sequence = load_sequence(sot_dir / "Crossing")
    tracker = Tracker(without_blocks(load_model("sstrack-lite"), [1]), device="cpu")
    state = tracker.start(read_image(sequence.frames[0]), sequence.ground_truth[0])
    boxes = [tracker.step([state], read_image(p))[0][0] for p in sequence.frames[1:30]]
    assert iou(np.asarray(boxes), sequence.ground_truth[1:30]).mean() > 0.6


def test_bad_block_lists_are_one_line_errors_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "m.safetensors"
    for drop in ("4", "0,1,2,3", "1,1", "one"):
        assert main(["sstrack-lite", "--drop", drop, "--out", str(out)]) == 2
        error = capsys.readouterr().err
        assert f"--drop {drop}" in error and len(error.strip().splitlines()) == 1
    assert main([str(tmp_path / "missing.safetensors"), "--drop", "1", "--out", str(out)]) == 2
    assert "missing.safetensors" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_the_card_keeps_the_lineage_and_drops_the_parents_figures(tmp_path):
    out = tmp_path / "cut.safetensors"
    assert main(["sstrack-lite", "--drop", "1", "--out", str(out)]) == 0
    card = read_card(out)
    assert card["config"]["depth"] == 3 and card["drop_blocks"]["dropped"] == [1] and card["drop_blocks"]["depth"] == [4, 3]
    assert card["parent"] and "metrics" not in card and "review_threshold" not in card
    assert load_model(out).config.depth == 3
