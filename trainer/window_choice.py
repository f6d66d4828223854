"""The tracker's motion prior, chosen for each video from the user's own keyframes (#15).

The Hann window on the score map (`ModelConfig.window_power`) decides how far the tracker may jump
in a frame. The official window (power 1) lets it jump to a similar object a few cells away; the
squared one (power 2) holds it near where it was. On the dev set the squared window halved
Football1's corrections and wrote fast runners off as gone on Jogging-1 and MotorRolling
(docs/results-window-2026-12-07.md), so neither suits every video, and nothing tells which before
the user has labelled some of it.

Each keyframe is a label that no window setting was fitted on. Every setting replays the span to
it from the keyframe before, and another setting is taken only when it lands clearly closer there:
at least `MIN_GAIN` more mean IoU, over at least `MIN_PAIRS` spans. A tie keeps what the video
tracks with now. Only the card changes: the weights are the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from projects import Project
from sstrack import Tracker, load_model, read_card, save_model
from sstrack.boxes import xywh_iou
from sstrack.checkpoints import shipped_model_path
from sstrack.config import CONFIGS
from trainer.clips import Box, keyframe_tracks

POWERS = (1.0, 2.0)
MAX_PAIRS = 8  # the latest spans: a long video's early ones need not be replayed at every round
MIN_PAIRS = 3
MIN_GAIN = 0.1
# What was measured on the parent's tracker, not on this one. The review flagger stays: it reads
# the network's own score, which the window does not change.
MEASURED_ON_PARENT = ("format", "config", "weights", "sha256", "created", "metrics")

Span = tuple[int, Box, int, Box]


@dataclass(frozen=True)
class WindowChoice:
    """The window power a video tracks with from now on, the one it had, and why."""

    current: float
    chosen: float
    scores: dict[float, float]  # each power's mean IoU at the end of the replayed spans
    spans: int
    reason: str

    @property
    def changed(self) -> bool:
        """Whether the chosen power differs from the current one."""
        return self.chosen != self.current


def keyframe_spans(tracks: list[dict[int, Box]], limit: int = MAX_PAIRS) -> list[Span]:
    """(keyframe, its box, the object's next keyframe, its box) for every object; the `limit` latest by their end."""
    spans = []
    for boxes in tracks:
        frames = sorted(boxes)
        spans += [(a, boxes[a], b, boxes[b]) for a, b in zip(frames, frames[1:])]
    return sorted(spans, key=lambda span: span[2])[-limit:] if limit > 0 else []


def tracker_with_window(model: str | Path, power: float) -> Tracker:
    """A CPU tracker of `model` with the window raised to `power`."""
    network = load_model(model)
    network.config = network.config.replace(window_power=power)
    return Tracker(network, device="cpu", backend="torch")


def replay(tracker: Tracker, project: Project, video_id: int, spans: list[Span]) -> list[float]:
    """IoU with each span's end keyframe after tracking to it from its start keyframe."""
    ious = []
    with project.open_media(video_id) as media:
        for start, box, end, truth in spans:
            state = tracker.start(media.frame(start), box)
            current = box
            for index in range(start + 1, end + 1):
                ((current, _score),) = tracker.step([state], media.frame(index))
            ious.append(xywh_iou(tuple(np.asarray(current, dtype=np.float64)), truth))
    return ious


def choose_window(
    project: Project,
    video_id: int,
    model: str | Path,
    tracks: list[dict[int, Box]] | None = None,
    powers: tuple[float, ...] = POWERS,
    build: Callable[[str | Path, float], Tracker] = tracker_with_window,
) -> WindowChoice:
    """The window power for this video: the current one unless another is clearly closer at the keyframes."""
    current = float(load_model(model).config.window_power)
    spans = keyframe_spans(keyframe_tracks(project, video_id) if tracks is None else tracks)
    if len(spans) < MIN_PAIRS:
        return WindowChoice(current, current, {}, len(spans),
                            f"window power {current:g} kept: {len(spans)} keyframe span(s) to judge it by, {MIN_PAIRS} needed")
    scores = {power: float(np.mean(replay(build(model, power), project, video_id, spans))) for power in (current, *powers)}
    best = max((p for p in scores if p != current), key=scores.__getitem__, default=current)
    where = ", ".join(f"power {p:g} {scores[p]:.2f}" for p in sorted(scores))
    if best != current and scores[best] >= scores[current] + MIN_GAIN - 1e-9:
        return WindowChoice(current, best, scores, len(spans),
                            f"window power {current:g} -> {best:g}: IoU at {len(spans)} keyframes replayed: {where}")
    return WindowChoice(current, current, scores, len(spans),
                        f"window power {current:g} kept (another needs +{MIN_GAIN:g}): IoU at {len(spans)} keyframes replayed: {where}")


def write_with_window(model: str | Path, choice: WindowChoice, out: Path) -> Path:
    """`model`'s weights saved as `out` (.safetensors) with the chosen window; the card keeps its lineage and says why."""
    network = load_model(model)
    network.config = network.config.replace(window_power=choice.chosen)
    source = shipped_model_path(str(model)) if str(model) in CONFIGS else Path(model)
    card = {key: value for key, value in read_card(source).items() if key not in MEASURED_ON_PARENT}
    card["window_choice"] = {"from": choice.current, "to": choice.chosen, "spans": choice.spans,
                             "iou": {f"{p:g}": round(v, 4) for p, v in choice.scores.items()}, "parent": str(model)}
    save_model(network, out, card)
    return out
