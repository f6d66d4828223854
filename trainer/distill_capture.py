"""What a teacher tracker sees and answers, recorded for distillation into a cheaper network (issue 18).

    python -m trainer.distill_capture --teacher v4.safetensors --clips ../shared/data/train --out DATA_DIR

The teacher tracks each clip from its `first_box` (the JSON beside it) with the real `Tracker`.
On every `--stride`-th frame (2 by default) three search crops are kept, each with the template
crops the step used:
- the crop the tracker itself searched (around its previous box, with its query): the inputs a
  student meets when it tracks as well as the teacher;
- a crop around the teacher's new box, shifted and rescaled at random: an object off centre, as
  after a fast move or a student's own drift;
- a crop of the same size somewhere else in the frame, without a query: usually the object is
  not there, which is what the absence watch and the review queue read.
The teacher's network then answers each crop: score, size and offset maps, the search features
and the next query. One .npz per clip; `trainer.distill` trains on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from sstrack.checkpoints import load_model
from sstrack.crops import CropWindow, crop_window, extract, padding_value
from sstrack.errors import SSTrackError
from sstrack.model import SSTrack
from sstrack.normalise import Normaliser
from sstrack.sequences import iter_frames
from sstrack.tracker import TargetState, Tracker

KINDS = ("tracked", "shifted", "elsewhere")
_TEACHER_BATCH = 32


class RecordingTracker(Tracker):
    """The teacher's tracker, remembering which template crops its last forward used."""

    last_templates: list[np.ndarray] = []

    def _template_tokens(self, state: TargetState, selection: list[int]) -> torch.Tensor:
        self.last_templates = [state.memory[i] for i in selection]
        return super()._template_tokens(state, selection)


def shifted_window(box: np.ndarray, factor: float, out: int, rng: np.random.Generator) -> CropWindow:
    """A search window around `box` moved by up to about one box side and rescaled by up to ~1.35x."""
    side = float(np.sqrt(box[2] * box[3]))
    centre = box[:2] + box[2:] / 2 + rng.normal(0.0, 0.45 * side, 2)
    size = box[2:] * float(np.exp(rng.normal(0.0, 0.15)))
    return crop_window(np.concatenate([centre - size / 2, size]), factor, out)


def elsewhere_window(box: np.ndarray, width: int, height: int, factor: float, out: int, rng: np.random.Generator) -> CropWindow:
    """A search window of the box's size centred anywhere in the frame."""
    centre = rng.uniform([0.0, 0.0], [width, height])
    return crop_window(np.concatenate([centre - box[2:] / 2, box[2:]]), factor, out)


def record_clip(tracker: RecordingTracker, video: Path, first_box: np.ndarray, seed: int, stride: int = 1) -> dict[str, np.ndarray] | None:
    """Track `video` from `first_box`; on every `stride`-th frame with a full template set, the
    templates, the three crops and their queries (None: a clip too short to hold one)."""
    cfg = tracker.config
    rng = np.random.default_rng(seed)
    frames = iter_frames(video)
    first = next(frames)
    state = tracker.start(first, first_box)
    templates, searches, queries, has_query = [], [], [], []
    for number, image in enumerate(frames, 1):
        before, query = state.box.copy(), state.query
        tracker.step([state], image)
        if number % stride or len(tracker.last_templates) != cfg.template_number + 1:
            continue  # the initial template and one per slot, as on all but the first few frames: one shape per array
        border = padding_value(image, cfg.crop_padding)
        windows = [
            crop_window(before, cfg.search_factor, cfg.search_size),
            shifted_window(state.box, cfg.search_factor, cfg.search_size, rng),
            elsewhere_window(state.box, image.shape[1], image.shape[0], cfg.search_factor, cfg.search_size, rng),
        ]
        use_query = [query is not None, query is not None and rng.random() < 0.5, False]
        vector = np.zeros(cfg.embed_dim, np.float32) if query is None else query.reshape(-1).cpu().numpy()
        templates.append(np.stack(tracker.last_templates))
        searches.append(np.stack([extract(image, w, border) for w in windows]))
        queries.append(np.stack([vector if used else np.zeros_like(vector) for used in use_query]))
        has_query.append(use_query)
    if not templates:
        return None
    return {
        "templates": np.stack(templates),  # (F, T, Hz, Hz, 3) uint8
        "searches": np.stack(searches),  # (F, 3, Hx, Hx, 3) uint8, in KINDS order
        "queries": np.stack(queries).astype(np.float32),  # (F, 3, C)
        "has_query": np.asarray(has_query, dtype=bool),  # (F, 3)
    }


@torch.inference_mode()
def teacher_answers(teacher: SSTrack, record: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The teacher network's maps, features and next query on every recorded crop (eager, fp32)."""
    norm = Normaliser(teacher.config)
    frames, kinds = record["searches"].shape[:2]
    answers: dict[str, list[np.ndarray]] = {"score": [], "size": [], "offset": [], "features": [], "next_query": []}
    step = max(1, _TEACHER_BATCH // kinds)
    for start in range(0, frames, step):
        chunk = slice(start, start + step)
        # One embedding of a frame's templates serves its three crops.
        tokens = teacher.embed_templates(norm(torch.from_numpy(record["templates"][chunk]))).repeat_interleave(kinds, 0)
        search = norm(torch.from_numpy(record["searches"][chunk]).flatten(0, 1))
        query = torch.from_numpy(record["queries"][chunk]).flatten(0, 1).unsqueeze(1)
        used = torch.from_numpy(record["has_query"][chunk]).flatten(0, 1).view(-1, 1, 1)
        # A crop without a query gets zeros added to the learnt query token, as None does.
        out = teacher(tokens, search, torch.where(used, query, torch.zeros_like(query)))
        answers["score"].append(out.score_map[:, 0].numpy())
        answers["size"].append(out.size_map.numpy())
        answers["offset"].append(out.offset_map.numpy())
        answers["features"].append(out.search_features.numpy().astype(np.float16))
        answers["next_query"].append(out.next_query[:, 0].numpy())
    return {
        f"teacher_{key}": np.concatenate(parts).reshape(frames, kinds, *parts[0].shape[1:])
        for key, parts in answers.items()
    }


def clips_with_first_box(folder: Path) -> list[tuple[Path, np.ndarray]]:
    """(video, first box) of every clip in `folder` with a `first_box` JSON beside it."""
    clips = []
    for meta in sorted(folder.glob("*.json")):
        try:
            box = np.asarray(json.loads(meta.read_text())["first_box"], dtype=np.float64)
        except (ValueError, KeyError, TypeError):
            continue
        videos = [p for p in meta.parent.glob(meta.stem + ".*") if p.suffix != ".json"]
        if videos and box.shape == (4,):
            clips.append((videos[0], box))
    return clips


def main(argv: list[str] | None = None) -> int:
    """Record every clip of --clips into --out (skipping clips already recorded)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher", required=True, help="the teacher model (.safetensors or a shipped name)")
    parser.add_argument("--clips", type=Path, required=True, help="videos with a first_box JSON beside each (never ../sot)")
    parser.add_argument("--out", type=Path, required=True, help="folder for one .npz per clip")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stride", type=int, default=2, help="record every n-th frame (neighbours are near copies; the teacher's answers cost most)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    try:
        teacher = load_model(args.teacher).eval()
        tracker = RecordingTracker(teacher, device="cpu", backend="torch")
        clips = clips_with_first_box(args.clips)
        if not clips:
            raise SSTrackError(f"{args.clips}: no video with a first_box JSON beside it; give the training clips (../shared/data/train)")
        args.out.mkdir(parents=True, exist_ok=True)
        for number, (video, box) in enumerate(clips):
            target = args.out / f"{video.stem}.npz"
            if target.exists():
                continue
            record = record_clip(tracker, video, box, args.seed + number, args.stride)
            if record is None:
                print(f"{video.name}: skipped, too short for a full template set", flush=True)
                continue
            record.update(teacher_answers(teacher, record))
            partial = target.with_suffix(".part.npz")
            np.savez(partial, **record)
            partial.replace(target)  # a killed capture leaves no half-written clip behind
            print(f"{video.name}: {len(record['searches'])} frames", flush=True)
    except SSTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
