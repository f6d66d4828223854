"""Issue 19 (medium): a model card is validated before anything is built from it, its sha256 is
checked, and every malformed card is one CheckpointError naming the card (no foreign exception,
no network, no gigabyte model built before the shape check)."""

from __future__ import annotations

import json
import shutil
import time

import pytest

from sstrack import load_model
from sstrack.checkpoints import shipped_model_path
from sstrack.errors import CheckpointError


@pytest.fixture()
def model_copy(tmp_path):
    source = shipped_model_path("sstrack-lite")
    weights = tmp_path / "mine.safetensors"
    shutil.copy(source, weights)
    card = json.loads(source.with_suffix(".json").read_text())
    card["weights"] = weights.name
    return weights, card


def _write(weights, card):
    weights.with_suffix(".json").write_text(json.dumps(card))


def test_the_copy_loads(model_copy):
    weights, card = model_copy
    _write(weights, card)
    assert load_model(weights) is not None


@pytest.mark.parametrize(
    "change",
    [
        {"depth": 600}, {"trunk": "hf-hub:timm/efficientnet_b0"}, {"num_heads": 0}, {"embed_dim": 190},
        {"search_size": "big"}, {"std": [0, 1, 1]}, {"template_number": -1}, {"ce_loc": [99]},
        {"search_factor": float("nan")}, {"patch_size": 0}, {"unknown_field": 1}, {"track_query": "yes"},
        {"size_calibration": 1},
        # exp(3) = 20 times every box is a typo, not a model's bias; a carry of 1 would never settle.
        {"scale_bias": 3.0}, {"scale_bias": None}, {"scale_carry": 1.0}, {"scale_own_weight": 1.5},
        # A huge matching side or search margin would make each frame's refinement seconds long.
        {"refine_side": 100_000}, {"refine_radius": 50.0}, {"refine_scale_step": 0.5}, {"refine_rate": -1},
        # 100,000 crops a frame would stall a lost target's every frame; a margin under 1 moves to worse.
        {"redetect_crops": 100_000}, {"redetect_crops": 0}, {"redetect_margin": 0.5}, {"redetect_ratio": 2.0},
        # Template tokens attend to everything or to their own template; CE prunes by what they attend to.
        {"template_attention": "none"}, {"template_attention": "own", "ce_loc": [1]},
        # The motion prior's power: a negative one would favour the crop's edges, a huge one freeze the box.
        {"window_power": -1.0}, {"window_power": 100.0},
    ],
)
def test_malformed_config_fields(model_copy, change):
    weights, card = model_copy
    card["config"] = {**card["config"], **change}
    _write(weights, card)
    started = time.monotonic()
    with pytest.raises(CheckpointError) as error:
        load_model(weights)
    assert "mine.json" in str(error.value) and "\n" not in str(error.value)
    assert time.monotonic() - started < 5  # no network attempt, no huge model


@pytest.mark.parametrize("card_text", ["[]", "[" * 50_000 + "]" * 50_000, '{"config": 5}', '"text"'])
def test_cards_that_are_not_objects(model_copy, card_text):
    weights, _card = model_copy
    weights.with_suffix(".json").write_text(card_text)
    with pytest.raises(CheckpointError, match="mine.json"):
        load_model(weights)


def test_weights_path_and_hash_are_checked(model_copy):
    weights, card = model_copy
    _write(weights, {**card, "weights": "../../etc/shadow", "sha256": "0" * 64})
    with pytest.raises(CheckpointError, match="names weights"):
        load_model(weights)
    _write(weights, card)
    data = bytearray(weights.read_bytes())
    data[-8192:-4096] = bytes(4096)  # 4 KiB zeroed inside the weights: shapes still fit
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256 differs"):
        load_model(weights)
