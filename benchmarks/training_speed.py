"""Where a training step's time goes (issue 12, item 2): cache, sample assembly, forward, backward, optimiser.

Measures, on real training clips and the real model, in one process:
- `cache_ms_per_frame`: decoding a source once into the frame cache (per frame);
- `frame_ms`: one cached frame read back (what every sample pays 4-5 times);
- `sample_ms`: one whole training sample (frames + crops + augmentation), and `collate_ms` per batch;
- `forward_ms`, `backward_ms`, `optimizer_ms` per batch, for each variant asked for (`fp32`,
  `channels_last`, `bf16`: autocast on the device, `channels_last_bf16`: what the trainer runs on
  CUDA), with samples/s of the model part and of a whole step (sample assembly in a worker overlaps
  the model only when workers > 0 and a core is free);
- with `--loader-workers N`: samples/s of the trainer's own DataLoader with N worker processes
  alone (no model), the rate a GPU run cannot exceed, and with the batches copied to `--device`.

    python -m benchmarks.training_speed --out runs/training_speed [--threads 1] [--batch-size 16]
        [--steps 4] [--variants fp32 channels_last bf16] [--clips 4] [--device cuda]
        [--loader-workers 14 --loader-batches 20] [--data ../shared/data/train]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import default_collate

from sstrack import load_model
from trainer.actors import SSTrackStep
from trainer.clips import ClipSpec, load_clips
from trainer.config import TrainConfig
from trainer.loop import _optimizer
from trainer.samples import SampleMaker

DATA = Path("../shared/data/train")


def _median_ms(times: list[float]) -> float:
    return float(np.median(times) * 1000)


def model_timings(
    model: torch.nn.Module, train: TrainConfig, batches: list[dict], variant: str, device: str = "cpu"
) -> dict[str, float]:
    """Median forward / backward / optimiser ms per batch for one variant (the first batch warms up)."""
    memory_format = torch.channels_last if variant.startswith("channels_last") else torch.contiguous_format
    model = model.to(device, memory_format=memory_format).train()
    step = SSTrackStep(model, train)
    optimizer = _optimizer(model, train)
    kind = torch.device(device).type
    sync = torch.cuda.synchronize if kind == "cuda" else (lambda: None)
    forward, backward, optim = [], [], []
    for number, batch in enumerate(batches):
        batch = {k: v.to(device) for k, v in batch.items()}
        sync()
        start = time.perf_counter()
        with torch.autocast(kind, dtype=torch.bfloat16, enabled=variant.endswith("bf16")):
            loss, _ = step(batch, True)
        sync()
        after_forward = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        sync()
        after_backward = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
        sync()
        done = time.perf_counter()
        if number:  # the first batch pays one-time allocation and kernel selection
            forward.append(after_forward - start)
            backward.append(after_backward - after_forward)
            optim.append(done - after_backward)
    result = {"forward_ms": _median_ms(forward), "backward_ms": _median_ms(backward), "optimizer_ms": _median_ms(optim)}
    result["model_samples_per_s"] = train.batch_size * 1000 / sum(result.values())
    return result


def loader_rate(maker: SampleMaker, train: TrainConfig, workers: int, batches: int, device: str) -> dict[str, float]:
    """Samples/s of the trainer's DataLoader with `workers` processes, alone and with each batch
    copied to `device` (after 2 warm-up batches)."""
    import cv2

    from trainer.loop import _loader, _Run

    loaded = _loader(maker, replace(train, workers=workers, steps=batches + 2), 0, _Run(Path(".")))
    cv2.setNumThreads(1)  # as the trainer does before its workers fork (trainer/loop.py)
    times = []
    start = time.perf_counter()
    for number, batch in enumerate(loaded):
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        if torch.device(device).type == "cuda":
            torch.cuda.synchronize()
        if number >= 2:
            times.append(time.perf_counter() - start)
        start = time.perf_counter()
    return {"workers": workers, "samples_per_s": train.batch_size * len(times) / sum(times)}


def main(argv: list[str] | None = None) -> int:
    """Run the profile and write training_speed.json."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/training_speed"))
    parser.add_argument("--model", default="sstrack-lite")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4, help="batches per variant (the first one warms up)")
    parser.add_argument("--clips", type=int, default=4, help="training clips to cache from ../shared/data/train")
    parser.add_argument("--device", default="cpu", help="where the model part runs (cuda: bf16 is CUDA autocast)")
    parser.add_argument("--data", type=Path, default=DATA, help="the training clips (mp4 + first-box json)")
    parser.add_argument("--loader-workers", type=int, nargs="*", default=[], help="time the DataLoader with these worker counts")
    parser.add_argument("--loader-batches", type=int, default=10)
    parser.add_argument("--variants", nargs="+", default=["fp32", "channels_last", "bf16"],
                        choices=["fp32", "channels_last", "bf16", "channels_last_bf16"],
                        help="channels_last_bf16 is what the trainer runs on CUDA")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train = TrainConfig(batch_size=args.batch_size, workers=0)
    model = load_model(args.model, device="cpu")
    model.backbone.freeze_early(3 if model.config.backbone == "lite" else 0)

    sources = []
    for meta in sorted(args.data.glob("*.json"))[: args.clips]:
        sources.append(ClipSpec(meta.with_suffix(".mp4"), {0: tuple(json.loads(meta.read_text())["first_box"])}))
    start = time.perf_counter()
    clips = load_clips(sources, train.frame_side, train.proposal_stride)
    frames = sum(len(c) for c in clips)
    cache_ms = (time.perf_counter() - start) * 1000 / frames

    clip = clips[0]
    start = time.perf_counter()
    for index in range(50):
        clip.frame(index % len(clip))
    frame_ms = (time.perf_counter() - start) * 1000 / 50

    maker = SampleMaker(clips, model.config, train)
    sample_times, batches, collate_times = [], [], []
    for number in range(args.steps):
        samples = []
        for k in range(args.batch_size):
            start = time.perf_counter()
            samples.append(maker.make(train.seed, number * args.batch_size + k))
            sample_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        batch = default_collate(samples)
        collate_times.append(time.perf_counter() - start)
        batches.append(batch)
    report: dict = {
        "threads": args.threads, "batch_size": args.batch_size, "clips": len(clips), "frames": frames,
        "cache_ms_per_frame": cache_ms, "frame_ms": frame_ms,
        "sample_ms": _median_ms(sample_times), "collate_ms": _median_ms(collate_times), "variants": {},
    }
    data_ms = report["sample_ms"] * args.batch_size + report["collate_ms"]
    for variant in args.variants:
        timings = model_timings(load_model(args.model, device="cpu"), train, batches, variant, args.device)
        model_ms = timings["forward_ms"] + timings["backward_ms"] + timings["optimizer_ms"]
        timings["step_samples_per_s_serial"] = args.batch_size * 1000 / (model_ms + data_ms)
        report["variants"][variant] = timings
        print(f"{variant:14s} " + "  ".join(f"{k} {v:.1f}" for k, v in timings.items()), flush=True)
    print(f"data: cache {cache_ms:.2f} ms/frame, frame {frame_ms:.2f} ms, sample {report['sample_ms']:.1f} ms, "
          f"collate {report['collate_ms']:.1f} ms/batch; data per batch {data_ms:.0f} ms")
    report["loader"] = [loader_rate(maker, train, w, args.loader_batches, args.device) for w in args.loader_workers]
    for entry in report["loader"]:
        print(f"loader: {entry['workers']} workers, {entry['samples_per_s']:.1f} samples/s (batch {args.batch_size}, copied to {args.device})", flush=True)
    report["device"] = torch.cuda.get_device_name(0) if torch.device(args.device).type == "cuda" else "cpu"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "training_speed.json").write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
