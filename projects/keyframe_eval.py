"""How well a model tracks a project's own footage: from each manual keyframe to the next one.

The user's keyframes are the only ground truth a project has. For each pair of consecutive
visible manual boxes of a track, the model starts on the first and tracks to the second; the IoU
there (and the mean over pairs) says how far it would get without help. Used by the fine-tune
dialog to compare a new model with the previous one on the same pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from projects.store import Project
from sstrack import Tracker
from sstrack.boxes import xywh_iou


@dataclass(frozen=True)
class KeyframeScore:
    """Mean IoU at the next keyframe over `pairs` keyframe pairs (nan when there are none)."""

    mean_iou: float
    pairs: int


def keyframe_score(
    project: Project,
    tracker: Tracker,
    max_gap: int = 300,
    max_pairs: int = 40,
    progress: Callable[[int, int], bool] | None = None,
) -> KeyframeScore:
    """Track keyframe -> next keyframe for up to `max_pairs` pairs no more than `max_gap` apart."""
    pairs = []
    for video in project.videos():
        if video.missing:
            continue
        for track in project.tracks(video.id):
            manual = [r for r in project.boxes(track.id) if r.source == "manual" and r.visible and r.has_box]
            pairs += [(video, a, b) for a, b in zip(manual, manual[1:]) if 0 < b.frame - a.frame <= max_gap]
    pairs = pairs[:max_pairs]
    ious = []
    for done, (video, first, last) in enumerate(pairs, start=1):
        with project.open_media(video.id) as media:
            state = tracker.start(media.frame(first.frame), first.box)
            box = first.box
            for _, image in media.iter_frames(first.frame + 1, last.frame + 1):
                ((box, _score),) = tracker.step([state], image)
        ious.append(xywh_iou(np.asarray(box), np.asarray(last.box)))
        if progress is not None and progress(done, len(pairs)) is False:
            break
    return KeyframeScore(float(np.mean(ious)) if ious else float("nan"), len(ious))



def adoption_verdict(before: KeyframeScore, after: KeyframeScore, base_name: str, margin: float = 0.0) -> tuple[bool, str]:
    """Whether a fine-tuned model may replace the current one, and the sentence that says why.

    Never worse: on the same keyframe pairs the new model must score at least the current one
    (plus `margin`); with no pairs to compare on, nothing shows it is not worse, so it is not
    offered as the default either (the user can still pick it in Preferences).
    """
    if before.pairs == 0 or after.pairs == 0 or not np.isfinite(after.mean_iou):
        return False, ("Trained and registered in the project, but there are no two keyframes on a track to check it on; "
                       f"keeping {base_name}. Add a second keyframe to a track and fine-tune again, or pick it in Preferences.")
    scores = (f"mean IoU at the next keyframe over {after.pairs} keyframe pair(s): {before.mean_iou:.2f} with {base_name}, "
              f"{after.mean_iou:.2f} with the new model")
    if after.mean_iou + 1e-9 < before.mean_iou + margin:
        return False, f"The new model is worse on your keyframes ({scores}); keeping {base_name}. It stays registered in the project."
    return True, f"Trained and registered; {scores}."
