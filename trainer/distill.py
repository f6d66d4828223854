"""Distil a teacher tracker's network into a cheaper student (issue 18: a network ~1.75x cheaper than v4).

    python -m trainer.distill --student S.safetensors --data DATA_DIR --out RUN_DIR [--steps N] [--resume]

DATA_DIR holds `trainer.distill_capture`'s recordings: crops the teacher met while tracking the
training clips, and its answers. The student is the teacher with fewer joint blocks and a smaller
search crop at the same object scale (`trainer.drop_blocks`, `trainer.search_crop`), so its crop
is the centre of the teacher's and its score map the centre cells of the teacher's. It learns to
give the teacher's answers on them:
- the search features after the final norm (mean squared error): the dense signal, every token;
- the score map (binary cross-entropy against the teacher's probabilities): where the object is,
  and how sure, which the absence watch and the review queue read;
- the size and offset maps where the teacher's score is (L1, weighted by that score squared);
- the output query, which the student feeds itself on the next frame.
Checkpoints every `checkpoint_every` steps (weights, optimiser, step, RNG); `--resume` continues.
Every fourth clip (in name order) is held out, and its loss and arg-max agreement are logged.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import math
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from sstrack.checkpoints import load_model, save_model, weights_identity
from sstrack.errors import SSTrackError
from sstrack.fileio import atomic_write_bytes
from sstrack.model import SSTrack
from sstrack.normalise import Normaliser
from trainer.derived_card import parent_card

# How long a resumed run goes on and how often it saves, not what it learns (as trainer.loop).
_RESUME_MAY_CHANGE = frozenset({"steps", "checkpoint_every", "validate_every"})
TRACKED = 0  # the kind of crop the teacher's tracker searched (trainer.distill_capture.KINDS)


@dataclass(frozen=True)
class DistillConfig:
    """Everything a distillation run depends on (kept in its checkpoints and the model card)."""

    steps: int = 6000
    batch_size: int = 32
    lr: float = 2e-4
    trunk_lr_multiplier: float = 0.1  # the pretrained CNN trunk moves slower, as in trainer.config
    weight_decay: float = 1e-4
    warmup_steps: int = 200
    grad_clip: float = 1.0
    freeze_stages: int = 3  # stem + the first 3 trunk stages: generic filters, and half the backward cost
    feature_weight: float = 1.0
    score_weight: float = 5.0
    box_weight: float = 5.0
    query_weight: float = 1.0
    seed: int = 0
    checkpoint_every: int = 250
    validate_every: int = 250

    def __post_init__(self) -> None:
        # Checked before minutes of loading: batch 0 or a NaN weight would fail, or train nothing, later.
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            counts = field.name in ("steps", "batch_size", "checkpoint_every", "validate_every")
            if not math.isfinite(value) or value < (1 if counts else 0):
                raise SSTrackError(f"distillation setting {field.name} must be {'a whole number >= 1' if counts else 'a number >= 0'}, not {value}")


class DistillData:
    """All recorded crops in memory, with the teacher's answers cut to the student's centre crop."""

    def __init__(self, folder: Path, teacher_side: int, student_side: int, patch: int) -> None:
        files = sorted(folder.glob("*.npz"))
        files = [f for f in files if not f.name.endswith(".part.npz")]
        if not files:
            raise SSTrackError(f"{folder}: no recordings; make them with python -m trainer.distill_capture")
        margin = teacher_side - student_side
        if margin < 0 or margin % (2 * patch):
            raise SSTrackError(f"a {student_side} px student crop is not the centre of the teacher's {teacher_side} px by whole patches")
        self.pixels = slice(margin // 2, margin // 2 + student_side)
        cells = margin // (2 * patch)
        grid = teacher_side // patch
        self.cells = slice(cells, grid - cells)
        self.ratio = teacher_side / student_side  # sizes are fractions of the search crop's side
        parts: dict[str, list[np.ndarray]] = {}
        clip_of_frame = []
        for number, path in enumerate(files):
            try:  # np.load refuses pickled objects (allow_pickle=False): a recording is plain arrays
                with np.load(path) as record:
                    for key in record.files:
                        parts.setdefault(key, []).append(record[key])
                    clip_of_frame.append(np.full(len(record["searches"]), number))
            except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
                raise SSTrackError(f"{path}: not a recording of trainer.distill_capture ({error}); delete it and record the clip again") from None
        self.arrays = {key: np.concatenate(value) for key, value in parts.items()}
        self.grid = grid
        self.clips = [f.stem for f in files]
        clip = np.concatenate(clip_of_frame)
        kinds = self.arrays["searches"].shape[1]
        frames = np.repeat(np.arange(len(clip)), kinds)
        samples = np.stack([frames, np.tile(np.arange(kinds), len(clip))], axis=1)
        held_out = clip[frames] % 4 == 3
        self.train_samples, self.val_samples = samples[~held_out], samples[held_out]

    def batch(self, samples: np.ndarray) -> dict[str, torch.Tensor]:
        """Tensors for (frame, kind) rows: uint8 crops and the teacher's answers on the student's cells."""
        f, k = samples[:, 0], samples[:, 1]
        a, cells = self.arrays, self.cells
        features = a["teacher_features"][f, k].reshape(len(f), self.grid, self.grid, -1)[:, cells, cells]
        return {
            "templates": torch.from_numpy(a["templates"][f]),
            "search": torch.from_numpy(np.ascontiguousarray(a["searches"][f, k][:, self.pixels, self.pixels])),
            "query": torch.from_numpy(a["queries"][f, k]).unsqueeze(1),
            "kind": torch.from_numpy(k),
            "score": torch.from_numpy(a["teacher_score"][f, k][:, cells, cells]),
            "size": torch.from_numpy(a["teacher_size"][f, k][:, :, cells, cells] * self.ratio).clamp(1e-4, 1 - 1e-4),
            "offset": torch.from_numpy(a["teacher_offset"][f, k][:, :, cells, cells]),
            "features": torch.from_numpy(features.reshape(len(f), -1, features.shape[-1])).float(),
            "next_query": torch.from_numpy(a["teacher_next_query"][f, k]),
        }


def student_outputs(student: SSTrack, norm: Normaliser, batch: dict[str, torch.Tensor]) -> tuple[Any, torch.Tensor]:
    """The student's ModelOutput and its output query with gradients (ModelOutput's is detached)."""
    tokens = student.embed_templates(norm(batch["templates"]))
    encoded = student.backbone(tokens, norm(batch["search"]), batch["query"])
    return student._predict(encoded), encoded[:, 0]  # the head exactly as forward() runs it


def distill_loss(out: Any, query: torch.Tensor, batch: dict[str, torch.Tensor], cfg: DistillConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the feature, score, box and query terms, with each term for the log."""
    score = out.score_map[:, 0]
    # Boxes matter where the teacher would read one: cells weighted by its score squared (its maps
    # are broad, and off the peak the size and offset branches answer nothing anyone reads), and
    # crops by its peak, so a crop without the object counts little.
    squared = batch["score"] ** 2
    cells = squared / squared.sum(dim=(1, 2), keepdim=True)
    peak = batch["score"].flatten(1).amax(1)
    box = ((out.size_map - batch["size"]).abs() + (out.offset_map - batch["offset"]).abs()).sum(1)
    terms = {
        "feature": F.mse_loss(out.search_features, batch["features"]),
        "score": F.binary_cross_entropy(score, batch["score"]),
        "box": ((box * cells).sum(dim=(1, 2)) * peak).sum() / peak.sum(),
        "query": F.mse_loss(query, batch["next_query"]),
    }
    loss = (
        cfg.feature_weight * terms["feature"] + cfg.score_weight * terms["score"]
        + cfg.box_weight * terms["box"] + cfg.query_weight * terms["query"]
    )
    stats = {name: float(value.detach()) for name, value in terms.items()}
    same_peak = score.detach().flatten(1).argmax(1) == batch["score"].flatten(1).argmax(1)
    tracked = batch["kind"] == TRACKED
    stats["peak_agrees"] = float(same_peak[tracked].float().mean()) if bool(tracked.any()) else float("nan")
    stats["peak_gap"] = float((score.detach().flatten(1).amax(1) - batch["score"].flatten(1).amax(1)).abs().mean())
    return loss, stats


def _learning_rate(step: int, cfg: DistillConfig) -> float:
    """Linear warm-up, then cosine decay to zero."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def _optimiser(student: SSTrack, cfg: DistillConfig) -> torch.optim.Optimizer:
    groups = student.parameter_groups()
    return torch.optim.AdamW(
        [
            {"params": [p for p in groups["pretrained"] if p.requires_grad], "lr": cfg.lr * cfg.trunk_lr_multiplier},
            {"params": [p for p in groups["new"] if p.requires_grad], "lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )


@torch.no_grad()
def validate(student: SSTrack, norm: Normaliser, data: DistillData, cfg: DistillConfig, count: int = 384) -> dict[str, float]:
    """Mean loss terms on a fixed sample of the held-out clips' crops."""
    rows = data.val_samples[np.random.default_rng(0).permutation(len(data.val_samples))[:count]]
    student.eval()
    totals: dict[str, list[float]] = {}
    for start in range(0, len(rows), cfg.batch_size):
        batch = data.batch(rows[start : start + cfg.batch_size])
        out, query = student_outputs(student, norm, batch)
        loss, stats = distill_loss(out, query, batch, cfg)
        for key, value in {"loss": float(loss), **stats}.items():
            totals.setdefault(f"val_{key}", []).append(value)
    student.train()
    return {key: float(np.nanmean(values)) for key, values in totals.items()}


def train(
    student_path: str, data_dir: Path, out_dir: Path, cfg: DistillConfig, resume: bool, teacher_path: str | None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> Path:
    """Run (or resume) the distillation; returns the final model's path. `progress` sees each
    step's record after any checkpoint of that step is written."""
    student = load_model(student_path)
    student.backbone.freeze_early(cfg.freeze_stages)
    data = DistillData(data_dir, _teacher_side(data_dir), student.config.search_size, student.config.patch_size)
    norm = Normaliser(student.config)
    optimiser = _optimiser(student, cfg)
    base_lrs = [group["lr"] for group in optimiser.param_groups]  # before a resumed state sets scheduled ones
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / "state.pt"
    step = 0
    rng = np.random.default_rng(cfg.seed)
    if resume and state_path.exists():
        # Tensors and plain values only: a run folder may come from anywhere, and a pickle runs code.
        state = torch.load(state_path, weights_only=True)
        student.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimiser"])
        step = state["step"]
        rng.bit_generator.state = json.loads(state["rng"])
        changed = {k for k, v in dataclasses.asdict(cfg).items() if state["config"].get(k) != v} - _RESUME_MAY_CHANGE
        if changed:
            raise SSTrackError(f"{out_dir}: the run was started with other {', '.join(sorted(changed))}; resume with the same or use a new --out")
    student.train()
    log = (out_dir / "metrics.jsonl").open("a")
    began = time.monotonic()
    while step < cfg.steps:
        rows = data.train_samples[rng.integers(0, len(data.train_samples), cfg.batch_size)]
        batch = data.batch(rows)
        for group, base in zip(optimiser.param_groups, base_lrs):
            group["lr"] = base * _learning_rate(step, cfg)
        out, query = student_outputs(student, norm, batch)
        loss, stats = distill_loss(out, query, batch, cfg)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(student.parameters(), cfg.grad_clip)
        optimiser.step()
        step += 1
        record: dict[str, Any] = {"step": step, "loss": float(loss.detach()), **stats}
        if (step % cfg.validate_every == 0 or step == cfg.steps) and len(data.val_samples):
            record.update(validate(student, norm, data, cfg))
        if step % 10 == 0 or "val_loss" in record:
            record["samples_per_s"] = round((step * cfg.batch_size) / (time.monotonic() - began), 1)
            log.write(json.dumps(record) + "\n")
            log.flush()
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _checkpoint(student, optimiser, step, rng, cfg, state_path)
        if progress is not None:
            progress(record)
    student.eval()
    card = parent_card(student_path)
    card["distill"] = {
        "student": weights_identity(student_path),
        "teacher": weights_identity(teacher_path) if teacher_path else None,
        "data": str(data_dir),
        "clips": data.clips,
        "config": dataclasses.asdict(cfg),
        "command": " ".join(["python -m trainer.distill", *sys.argv[1:]]),
    }
    save_model(student, out_dir / "model.safetensors", card)
    return out_dir / "model.safetensors"


def _teacher_side(data_dir: Path) -> int:
    """The teacher's search crop side, from the first recording."""
    first = next((p for p in sorted(data_dir.glob("*.npz")) if not p.name.endswith(".part.npz")), None)
    if first is None:
        raise SSTrackError(f"{data_dir}: no recordings; make them with python -m trainer.distill_capture")
    with np.load(first) as record:
        return int(record["searches"].shape[2])


def _checkpoint(student: SSTrack, optimiser: torch.optim.Optimizer, step: int, rng: np.random.Generator, cfg: DistillConfig, path: Path) -> None:
    """Weights, optimiser, step and RNG in one file, replaced atomically."""
    buffer = io.BytesIO()
    state = {"model": student.state_dict(), "optimiser": optimiser.state_dict(), "step": step,
             "rng": json.dumps(rng.bit_generator.state), "config": dataclasses.asdict(cfg)}
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    """Command line: distil into --student from --data, writing --out/model.safetensors."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--student", required=True, help="the student's starting weights (.safetensors)")
    parser.add_argument("--teacher", help="the teacher's weights, recorded in the card")
    parser.add_argument("--data", type=Path, required=True, help="trainer.distill_capture's folder")
    parser.add_argument("--out", type=Path, required=True, help="run folder (outside the repository)")
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="DistillConfig fields")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    fields = {f.name: f.type for f in dataclasses.fields(DistillConfig)}
    overrides: dict[str, Any] = {}
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in fields:
            print(f"error: --set {item}: unknown setting; known: {', '.join(fields)}", file=sys.stderr)
            return 2
        try:
            overrides[key] = (int if fields[key] == "int" else float)(value)
        except ValueError:
            print(f"error: --set {item}: give a {'whole number' if fields[key] == 'int' else 'number'}", file=sys.stderr)
            return 2
    try:
        path = train(args.student, args.data, args.out, DistillConfig(**overrides), args.resume, args.teacher)
    except SSTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
