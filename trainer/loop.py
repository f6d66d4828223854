"""The training loop: data, optimiser, schedule, checkpoints, resume, progress, DDP.

The loop knows no objective: `SSTrackStep` returns (loss, stats). Checkpoints are safetensors +
JSON card (the weights) and a separate `.state.pt` (optimiser, schedule, RNG, step), each written
atomically, then `latest.json` points at them; a kill at any moment leaves the previous complete
checkpoint as the latest. Sample i of the run is a pure function of (seed, i), so `resume`
continues exactly where the interrupted run was.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset

from sstrack import load_model, read_card, save_model
from sstrack.fileio import atomic_path, atomic_write_bytes, regular_file_problem
from sstrack.tracker import resolve_device
from trainer.actors import SSTrackStep
from trainer.clips import ClipSpec, NoUsableClipsError, expand_sources, load_clips
from trainer.config import TrainConfig
from trainer.samples import SampleError, SampleMaker, clip_weights

_logger = logging.getLogger(__name__)
_KEEP_CHECKPOINTS = 3
# Settings a resumed run may change: how long it runs and how it loads and saves, not what it learns.
_RESUME_MAY_CHANGE = frozenset({"steps", "workers", "checkpoint_every", "log_every"})
# A checkpoint state holds the optimiser moments of a model of at most 4 GiB (sstrack.checkpoints): 3x that.
MAX_STATE_BYTES = 12 << 30


class TrainingError(Exception):
    """A run that cannot start or continue (message names the cause and the fix)."""


@dataclass(frozen=True)
class StepReport:
    """Progress after one optimiser step."""

    step: int
    steps: int
    stats: dict[str, float]
    samples_per_s: float
    eta_s: float
    lr: float


@dataclass
class _Run:
    out_dir: Path
    rank: int = 0
    world: int = 1
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def main(self) -> bool:
        return self.rank == 0


def finetune(
    sources: list[str | Path | ClipSpec],
    base_model: str | Path = "sstrack-lite",
    out_dir: str | Path = "runs/finetune",
    steps: int | None = None,
    train: TrainConfig | None = None,
    resume: bool = False,
    device: str = "auto",
    on_step: Callable[[StepReport], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    card: dict[str, Any] | None = None,
    max_seconds: float | None = None,
    resume_settings: dict[str, Any] | None = None,
    model_changes: dict[str, Any] | None = None,
    snapshots: Collection[int] = (),
) -> Path:
    """Fine-tune `base_model` on `sources` with the SSTrack objectives; returns the model path.

    Args:
        sources: video files, image-sequence folders, folders of videos, or ClipSpecs with user
            boxes (e.g. a project's manual keyframes).
        base_model: anything `sstrack.load_model` accepts, e.g. `sstrack-lite:imagenet`.
        out_dir: run folder (checkpoints/, metrics.jsonl, model.safetensors + model.json).
        steps: total optimiser steps (overrides `train.steps`).
        resume: continue from `out_dir/latest.json`, exactly.
        on_step: progress callback; should_stop: polled each step, a True saves and stops.
        max_seconds: a wall-clock budget for the optimiser steps (clip caching not counted): when
            it is spent the run saves its checkpoint and model as at the end, and `--resume`
            continues it (a lent GPU's fixed time).
        card: extra fields for the final model card (e.g. the command that ran).
        resume_settings: on resume, the settings the caller asked for (a command line's options);
            a resume continues the run exactly, so one that differs from the run's is refused, as
            is a `train` that differs in more than how long the run goes and how it loads and
            saves (`_RESUME_MAY_CHANGE`).
        model_changes: config fields of the base model to change before training, keeping its
            weights (e.g. {"template_attention": "own"}); a resumed run keeps its own.
        snapshots: steps before the last at which the model is also written, as
            `snapshot_path(out_dir, step)` (early-stopping candidates for a gate to judge).
    """
    out = Path(out_dir)
    run = _Run(out, *_distributed_rank())
    if not resume and run.rank == 0:
        _require_new_folder(out)
    state: dict[str, Any] | None = None
    start_step = 0
    if resume:
        state, weights, saved = _read_latest(out)
        asked = {**(train.to_dict() if train else {}), **(resume_settings or {})}
        _require_same_settings(out, saved, asked)
        train = saved.replace(**{name: value for name, value in asked.items() if name in _RESUME_MAY_CHANGE})
        start_step = int(state["step"])
        base_for_model: str | Path = weights
    else:
        train = train or TrainConfig()
        base_for_model = base_model
    if steps is not None:
        train = train.replace(steps=steps)
    dev = _device(device, run)
    torch.manual_seed(train.seed + run.rank)
    model = load_model(base_for_model, device="cpu")  # raises CheckpointError before any work
    if model_changes and resume:
        differ = {k: v for k, v in model_changes.items() if getattr(model.config, k, None) != v}
        if differ:
            raise ValueError(
                f"{out}: this run trains its model with {', '.join(f'{k}={getattr(model.config, k, None)}' for k in differ)}; "
                "a resume continues it as it was, so leave that option out or start a new run"
            )
    elif model_changes:
        model = model.reconfigured(**model_changes)
    specs = [s if isinstance(s, ClipSpec) else None for s in sources]
    paths = [Path(s) for s in sources if not isinstance(s, ClipSpec)]
    clip_specs = [s for s in specs if s is not None] + expand_sources(paths)
    if not clip_specs:  # folders without a video or frame folder in them
        names = ", ".join(str(s) for s in sources) or "(no --data given)"
        raise NoUsableClipsError(f"no video, frame folder or project found in: {names}; give videos or folders that hold them")
    cache_bytes = None if train.frame_cache_mb is None else train.frame_cache_mb << 20
    clips = load_clips(
        clip_specs, train.frame_side, train.proposal_stride, lambda m: _logger.info(m), train.autobox_aspects, cache_bytes,
    )
    _logger.info("%d usable clips, %d frames", len(clips), sum(len(c) for c in clips))
    user = [c.user_boxes for c in clips]
    if any(user):
        share = float(clip_weights(clips, train.user_box_share)[user].sum())
        _logger.info("%d clips with user boxes, drawn for %.1f%% of the samples", sum(user), 100 * share)
    frozen = train.freeze_stages
    model.backbone.freeze_early(frozen if frozen is not None else (3 if model.config.backbone == "lite" else 0))
    # channels_last: the trunk's convolutions run 1.2-1.3x faster forward on this CPU
    # (benchmarks/training_speed.py); values are the same up to float rounding.
    model.to(dev, memory_format=torch.channels_last if train.channels_last else torch.preserve_format).train()
    step_module: torch.nn.Module = SSTrackStep(model, train)
    if run.world > 1:
        step_module = DistributedDataParallel(step_module, find_unused_parameters=True)
    optimizer = _optimizer(model, train)
    anchor = _anchor(base_model, model, dev) if train.anchor_weight > 0 else None
    drop_at = int(train.steps * train.lr_drop_fraction)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 if s < drop_at else 0.1)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        _truncate_metrics(out / "metrics.jsonl", start_step)
    if run.main:
        out.mkdir(parents=True, exist_ok=True)
        run_info = {"base_model": str(base_model), "sources": [c.name for c in clips], "train": train.to_dict()}
        atomic_write_bytes(out / "run.json", json.dumps(run_info, indent=2).encode())
    maker = SampleMaker(clips, model.config, train)
    loader = _loader(maker, train, start_step, run)
    meta = {"base_model": str(base_model), "sources": [c.name for c in clips], **(card or {})}
    step = start_step
    last_report: dict[str, float] = {}
    timer = time.perf_counter()
    deadline = None if max_seconds is None else timer + max_seconds
    rate = float("nan")
    opencv_threads = cv2.getNumThreads()
    if train.workers > 0:
        # Forked loader workers inherit OpenCV's thread pool but not its threads: a worker's
        # parallel cv2 call can then wait for them forever. A 2-worker loader of this SampleMaker
        # on six ../shared/data/train clips hung at its first batch in 1 of 4 runs, and
        # cv2.setNumThreads(1) inside a worker hung in both tries. With one thread here before
        # the fork the workers have no pool to wait on (mmengine does the same); 3 runs that way
        # never hung and loaded as fast (73-102 samples/s either way, 2 cores).
        cv2.setNumThreads(1)
    try:
        for batch in loader:
            if step >= train.steps:
                break
            # Time blocked on the loader since the last step ended: when it is most of a step, sample
            # assembly, not the device, bounds the rate (what a GPU run needs to know).
            data_wait = time.perf_counter() - timer
            batch = {k: v.to(dev, non_blocking=True) for k, v in batch.items()}
            keep = _ce_keep_rate(model.config.ce_loc, model.config.ce_keep_ratio, step, train.steps)
            # bf16 autocast on CUDA (reference §5.5); the CPU stays fp32, where bf16 is slower.
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dev.type == "cuda"):
                loss, stats = step_module(batch, step >= train.warmup_steps, keep)
            if anchor is not None:
                drift = _squared_distance(model, anchor)
                loss = loss + train.anchor_weight * drift
                stats = {**stats, "anchor_drift": float(drift.detach())}
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
            scheduler.step()
            step += 1
            now = time.perf_counter()
            samples = train.batch_size * run.world
            instant = samples / max(now - timer, 1e-9)
            rate = instant if math.isnan(rate) else 0.9 * rate + 0.1 * instant
            timer = now
            last_report = {k: v for k, v in stats.items() if not math.isnan(v)}
            if run.main:
                lr = optimizer.param_groups[-1]["lr"]
                eta = (train.steps - step) * samples / rate
                _append_metrics(out / "metrics.jsonl", {"step": step, "lr": lr, "samples_per_s": round(instant, 3), "data_wait_s": round(data_wait, 4), **last_report})
                if on_step:
                    on_step(StepReport(step, train.steps, last_report, rate, eta, lr))
                if step % train.checkpoint_every == 0 and step < train.steps:
                    _checkpoint(out, model, optimizer, scheduler, step, train, meta, last_report)
                if step in snapshots and step < train.steps:
                    save_model(model, snapshot_path(out, step), _card(meta, train, step, last_report))
            if should_stop and should_stop():
                raise KeyboardInterrupt
            if deadline is not None and _budget_spent(deadline, dev, run):
                _logger.info("time budget spent at step %d of %d; saving (continue with --resume)", step, train.steps)
                break
    except SampleError as error:  # raised in a loader worker, it came back as a traceback
        if run.main and step > start_step:
            _checkpoint(out, model, optimizer, scheduler, step, train, meta, last_report)
        raise TrainingError(
            "no valid training sample could be built from these clips in 20 tries: their boxes are too "
            "small or too close to the frame's edge; give larger objects or a larger frame_side"
        ) from error
    except KeyboardInterrupt:
        if run.main and step > start_step:
            _checkpoint(out, model, optimizer, scheduler, step, train, meta, last_report)
            _logger.warning("interrupted at step %d; continue with --resume", step)
        elif run.main and not resume:
            # Stopped before its first step: the folder (new or empty when the run began) goes
            # back to empty, so the same command can start again; it held nothing to resume.
            for name in ("run.json", "metrics.jsonl"):
                (out / name).unlink(missing_ok=True)
        raise
    finally:
        cv2.setNumThreads(opencv_threads)
        if run.world > 1 and dist.is_initialized():
            dist.destroy_process_group()
    final = out / "model.safetensors"
    if run.main:
        _checkpoint(out, model, optimizer, scheduler, step, train, meta, last_report)
        save_model(model.eval(), final, _card(meta, train, step, last_report))
    return final


def snapshot_path(out_dir: str | Path, step: int) -> Path:
    """Where `finetune(..., snapshots=...)` writes the model as it was after `step` steps."""
    return Path(out_dir) / "snapshots" / f"step_{step:07d}" / "model.safetensors"


# -- pieces --------------------------------------------------------------------------------------
def _optimizer(model: torch.nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
    groups = {k: [p for p in v if p.requires_grad] for k, v in model.parameter_groups().items()}
    return torch.optim.AdamW(
        [
            {"params": groups["pretrained"], "lr": train.lr * train.pretrained_lr_multiplier},
            {"params": groups["new"], "lr": train.lr},
        ],
        lr=train.lr,
        weight_decay=train.weight_decay,
    )


def _anchor(base_model: str | Path, model: torch.nn.Module, dev: torch.device) -> dict[str, torch.Tensor]:
    """The base model's trainable weights (L2-SP's anchor); the base, also when a run resumes."""
    base = dict(load_model(base_model, device="cpu").named_parameters())
    return {name: base[name].detach().to(dev) for name, p in model.named_parameters() if p.requires_grad}


def _squared_distance(model: torch.nn.Module, anchor: dict[str, torch.Tensor]) -> torch.Tensor:
    """Sum over trainable weights of (w - w_base)^2."""
    terms = [(p - anchor[name]).pow(2).sum() for name, p in model.named_parameters() if name in anchor]
    return torch.stack(terms).sum()


def _ce_keep_rate(ce_loc: tuple[int, ...], base: float, step: int, steps: int) -> float | None:
    """Official CE schedule (§5.4) mapped from epochs 20 -> 100 of 150 onto steps."""
    if not ce_loc or base >= 1:
        return None
    start, end = steps * 20 / 150, steps * 100 / 150
    if step < start:
        return 1.0
    if step >= end:
        return base
    return base + (1 - base) * (math.cos(math.pi * (step - start) / (end - start)) + 1) / 2


class _RunSamples(Dataset):
    """Item k -> run sample index for this rank, continuing from `start_step`."""

    def __init__(self, maker: SampleMaker, train: TrainConfig, start_step: int, run: _Run) -> None:
        self.maker, self.train, self.start, self.run = maker, train, start_step, run

    def __len__(self) -> int:
        return max(0, self.train.steps - self.start) * self.train.batch_size

    def __getitem__(self, k: int) -> dict:
        step = self.start + k // self.train.batch_size
        index = (step * self.run.world + self.run.rank) * self.train.batch_size + k % self.train.batch_size
        return self.maker.make(self.train.seed, index)


def _loader(maker: SampleMaker, train: TrainConfig, start_step: int, run: _Run) -> DataLoader:
    workers = max(0, train.workers)
    return DataLoader(
        _RunSamples(maker, train, start_step, run),
        batch_size=train.batch_size,
        shuffle=False,
        num_workers=workers,
        drop_last=True,
        persistent_workers=False,
        prefetch_factor=2 if workers else None,
    )


def _checkpoint(
    out: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, step: int,
    train: TrainConfig, meta: dict[str, Any], stats: dict[str, float],
) -> None:
    folder = out / "checkpoints"
    weights = folder / f"step_{step:07d}.safetensors"
    state_path = folder / f"step_{step:07d}.state.pt"
    was_training = model.training
    save_model(model, weights, _card(meta, train, step, stats))
    model.train(was_training)
    pointer = {"step": step, "weights": str(weights.relative_to(out)), "state": str(state_path.relative_to(out))}
    target = state_path
    try:
        with atomic_path(state_path) as tmp:
            torch.save(
                {
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "train": json.dumps(train.to_dict()),
                },
                tmp,
            )
        target = out / "latest.json"
        atomic_write_bytes(target, json.dumps(pointer).encode())
    except OSError as error:  # a full disk: say so in one line; latest.json still names the previous one
        raise TrainingError(
            f"{target}: could not write the checkpoint ({error.strerror or error}); free disk space, "
            "then continue with --resume from the previous checkpoint"
        ) from error
    old = sorted(folder.glob("step_*.state.pt"))[:-_KEEP_CHECKPOINTS]
    for path in old:
        stem = path.name.removesuffix(".state.pt")
        for suffix in (".state.pt", ".safetensors", ".json"):
            (folder / f"{stem}{suffix}").unlink(missing_ok=True)


def _require_new_folder(out: Path) -> None:
    """A new run starts in a new or empty folder: it never writes over another run or the user's files.

    Into a folder holding a finished run, a new one replaced its model silently, and its first
    checkpoint pruned the older run's "newer" checkpoints (its own, by name), so --resume failed.
    """
    try:
        present = sorted(entry.name for entry in out.iterdir()) if out.exists() else []
    except OSError as error:
        raise TrainingError(f"{out}: cannot be used as the run folder ({error.strerror}); choose another --out") from error
    if present:
        raise TrainingError(
            f"{out}: already holds {present[0]} ({len(present)} entries); a new run needs a new or empty folder: "
            "choose another --out, or add --resume to continue the run there"
        )
    try:  # made now (an empty folder stays usable): a bad path is said before the model loads and clips decode
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise TrainingError(f"{out}: cannot be created ({error.strerror}); choose another --out") from error


def _read_latest(out: Path) -> tuple[dict[str, Any], Path, TrainConfig]:
    pointer_path = out / "latest.json"
    if not pointer_path.exists():
        raise TrainingError(f"{out}: nothing to resume (no latest.json); start without --resume")
    try:
        _require_readable(pointer_path, 1 << 20)
        pointer = json.loads(pointer_path.read_text())
        state_path, weights = _inside(out, pointer["state"]), _inside(out, pointer["weights"])
        _require_readable(state_path, MAX_STATE_BYTES)
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrainingError(f"{pointer_path}: unreadable ({type(error).__name__}: {error}); delete it to start over") from error
    try:
        # weights_only: a state file is ours, so it holds only tensors and plain containers; a
        # pickle that tries to construct anything else is refused, never run.
        state = torch.load(state_path, map_location="cpu", weights_only=True)
        saved = TrainConfig(**json.loads(state["train"]))
        int(state["step"])
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError, ValueError, KeyError, TypeError) as error:
        raise TrainingError(
            f"{state_path}: cannot resume from this checkpoint state ({type(error).__name__}); "
            "it is damaged or not ours; delete latest.json to start over"
        ) from error
    training = read_card(weights).get("training") if weights.suffix == ".safetensors" else None
    card_step = training.get("steps") if isinstance(training, dict) else None
    if card_step is not None and card_step != int(state["step"]):
        raise TrainingError(
            f"{pointer_path}: names weights of step {card_step} ({weights.name}) but optimiser state of step "
            f"{int(state['step'])}; restore latest.json from the same checkpoint, or delete it to start over"
        )
    return state, weights, saved


def _require_same_settings(out: Path, saved: TrainConfig, asked: dict[str, Any]) -> None:
    """Refuse a resume asked to change the run's settings: they were silently dropped."""
    changed = [
        f"{name} {value!r:.30} (the run has {getattr(saved, name)!r:.30})"
        for name, value in asked.items()
        if name not in _RESUME_MAY_CHANGE and _comparable(value) != _comparable(getattr(saved, name, None))
    ]
    if changed:
        raise TrainingError(
            f"{out}: --resume continues the run with its own settings, but this asks for {'; '.join(changed[:3])}; "
            "drop those options to resume, or start a new run in another --out"
        )


def _comparable(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value  # a JSON round trip makes tuples lists


def _inside(out: Path, name: str) -> Path:
    """A file latest.json names, which must lie in the run folder: an absolute path or `../`
    resumed silently from another run's weights and optimiser state."""
    path = out / name
    if not path.resolve().is_relative_to(out.resolve()):
        raise ValueError(f"it names {name!r:.80}, outside the run folder")
    return path


def _require_readable(path: Path, max_bytes: int) -> None:
    problem = regular_file_problem(path, max_bytes)
    if problem is not None:
        raise ValueError(f"{path.name} is {problem}")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines after the resumed step, so the file reads like one uninterrupted run."""
    if not path.exists():
        return
    problem = regular_file_problem(path, 256 << 20)
    if problem is not None:
        raise TrainingError(f"{path}: {problem}; delete it to resume")
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    kept = []
    for number, line in enumerate(lines, start=1):
        try:
            row_step = json.loads(line)["step"]
            if type(row_step) is not int:  # a string or null step failed on the comparison below
                raise TypeError(f"step {row_step!r:.20} is not a whole number")
        except (ValueError, KeyError, TypeError) as error:
            if number == len(lines):
                break  # the half-written last line of a killed run: drop it
            raise TrainingError(f"{path}:{number}: damaged metrics line ({type(error).__name__}); delete the line to resume") from error
        if row_step <= step:
            kept.append(line)
    atomic_write_bytes(path, ("\n".join(kept) + "\n").encode() if kept else b"")


def _append_metrics(path: Path, row: dict[str, Any]) -> None:
    with open(path, "a") as handle:
        handle.write(json.dumps(row) + "\n")


def _card(meta: dict[str, Any], train: TrainConfig, step: int, stats: dict[str, float]) -> dict[str, Any]:
    return {
        "parent": meta.get("base_model"),
        "training": {
            "method": "SSTrack self-supervised (forward global + backward local + instance contrastive)",
            "sources": meta.get("sources", []),
            "steps": step,
            "samples": step * train.batch_size,
            "seed": train.seed,
            "config": train.to_dict(),
            "last_losses": stats,
            **{k: v for k, v in meta.items() if k not in ("base_model", "sources")},
        },
    }


def _budget_spent(deadline: float, dev: torch.device, run: _Run) -> bool:
    """Whether the wall-clock budget is over; under DDP every rank stops on the same step."""
    spent = time.perf_counter() >= deadline
    if run.world > 1:
        flag = torch.tensor([1.0 if spent else 0.0], device=dev)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        spent = bool(flag.item())
    return spent


def _distributed_rank() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), dist.get_world_size()


def _device(device: str, run: _Run) -> torch.device:
    if run.world > 1 and torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return resolve_device(device)
