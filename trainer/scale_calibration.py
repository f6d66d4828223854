"""A model's scale correction, measured on clips whose first-frame box is known.

    python -m trainer.scale_calibration --model M [--clips ../shared/data/train] [--write-card]

Each frame's search crop follows the previous box. A network whose box is off by a (log scale) on
a crop of the true box, and keeps c of a crop's scale error, settles at a / (1 - c): the shipped
lite, a little small on each frame, tracks objects at a fraction of their size. On a start frame
the box is true. The network, shown crops of it scaled from a quarter too tight to half again too
wide (sstrack/calibration.py `scale_views`), gives a and c for that clip (`scale_response`). One
clip says little; the medians over many are the model's. `--write-card` stores them as the card's
`config.scale_bias` and `config.scale_carry`, with which the tracker follows each target's expected
drift from its keyframe and undoes it on the reported boxes, and the measurement as
`scale_calibration`.

The clips are a folder of videos, each with a JSON beside it holding `first_box` (x, y, w, h on
frame 1): ../shared/data/train's layout. They are training footage; never calibrate on the
footage a model is evaluated on.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from sstrack.calibration import scale_response, scale_views, settled_scale_error
from sstrack.checkpoints import load_model, read_card, shipped_model_path
from sstrack.errors import InputError, SSTrackError
from sstrack.fileio import atomic_write_bytes
from sstrack.sequences import iter_frames
from sstrack.tracker import Tracker

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CLIPS = REPO.parent / "shared" / "data" / "train"


def clip_responses(tracker: Tracker, clips: Path) -> dict[str, tuple[float, float]]:
    """(bias a, carry c) of the network on the first frame of every clip of `clips` with a `first_box` JSON."""
    responses = {}
    for meta in sorted(clips.glob("*.json")):
        try:
            box = np.asarray(json.loads(meta.read_text())["first_box"], dtype=np.float64)
        except (ValueError, KeyError, TypeError):
            continue  # not a clip's description (e.g. a folder's own index)
        videos = [p for p in meta.parent.glob(meta.stem + ".*") if p.suffix != ".json"]
        if not videos or box.shape != (4,):
            continue
        first = next(iter_frames(videos[0]))  # a damaged video's error names the video
        try:
            predictions = tracker.view_boxes(first, box, scale_views(box))
        except InputError as error:  # a box off the frame: name the JSON that holds it
            raise InputError(f"{meta}: {error}") from None
        responses[videos[0].name] = scale_response(box, predictions)
    return responses


def model_response(responses: dict[str, tuple[float, float]]) -> tuple[float, float]:
    """The model's (scale_bias, scale_carry): the medians over the clips, rounded to 0.001, the carry kept in 0..0.9."""
    bias = statistics.median(a for a, _ in responses.values())
    carry = statistics.median(c for _, c in responses.values())
    return round(bias, 3), round(min(max(carry, 0.0), 0.9), 3)


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and with --write-card store the correction in the model's card."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="sstrack-lite", help="a model name or a .safetensors file with its card")
    parser.add_argument("--clips", type=Path, default=DEFAULT_CLIPS, help="videos with a first_box JSON beside each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--write-card", action="store_true", help="store the correction in the model's JSON card")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.clips.is_dir():
        print(f"error: {args.clips}: no such folder; give --clips a folder of videos with first_box JSONs (../shared/data/train)", file=sys.stderr)
        return 2
    try:
        model = load_model(args.model)
        responses = clip_responses(Tracker(model, device="cpu"), args.clips)
    except SSTrackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if len(responses) < 5:
        print(f"error: {args.clips}: {len(responses)} clips with a first_box JSON; a model's bias needs at least 5", file=sys.stderr)
        return 2
    bias, carry = model_response(responses)
    biases = np.array([a for a, _ in responses.values()])
    for name, (a, c) in responses.items():
        print(f"{name:>32} a {a:+.3f} c {c:+.3f}")
    print(f"{len(responses)} clips: scale_bias {bias:+.3f} (sd over clips {biases.std():.3f}), scale_carry {carry:.3f}:"
          f" tracking settles at {settled_scale_error(bias, carry):+.3f} (log scale)")
    if args.write_card:
        weights = Path(args.model) if Path(args.model).is_file() else shipped_model_path(args.model)
        card_path = weights.with_suffix(".json")
        if not card_path.is_file():
            print(f"error: {args.model} has no JSON card to write into", file=sys.stderr)
            return 2
        card = read_card(weights)
        card["config"].update(scale_bias=bias, scale_carry=carry)
        card["scale_calibration"] = {
            "clips": len(responses), "bias_sd": round(float(biases.std()), 4),
            "settles_at": round(settled_scale_error(bias, carry), 4), "source": _shown(args.clips),
            "measured_by": f"python -m trainer.scale_calibration --model {_shown(Path(args.model))} --clips {_shown(args.clips)} --write-card",
        }
        atomic_write_bytes(card_path, (json.dumps(card, indent=2) + "\n").encode())
        print(f"wrote scale_bias {bias:+.3f} and scale_carry {carry:.3f} into {card_path}")
    return 0


def _shown(path: Path) -> str:
    """A path as the card records it: relative to the repository when beside it (../shared/...)."""
    try:
        return os.path.relpath(path.resolve(), REPO) if path.exists() and path.resolve().is_relative_to(REPO.parent) else str(path)
    except ValueError:  # another drive (Windows)
        return str(path)


if __name__ == "__main__":
    sys.exit(main())
