"""When a tracked object is gone: a per-target watch over the tracker's scores.

On a frame where its object has left, the lite network keeps answering: on 01_dog.mp4 its score
falls from ~0.47 to 0.06-0.2 as the dog runs out of the right edge, and its box sits on the grass
at the edge. If tracking goes on as usual, the template memory fills with that grass and within
some 30 frames the score climbs back to the good-frame level (0.35-0.4) on the background, so no
later threshold can tell. The watch therefore decides early, relative to the track's own level:
`patience` frames in a row below `lost_ratio` x the median score of its recent sightings mean
"gone". So do frames whose box looks unlike the object (`unlike`): the score alone misses a box
on background that fills the search crop, where it can stay at the object's level. From then on the engine writes absent states, and the tracker holds (TargetState.hold):
it searches around the last sighting with the templates it had (and the engine adds a second,
roaming search, projects/propagate.py), and the watch calls the object back once `resume_after`
frames in a row reach `resume_ratio` x that level again, look like it, and hold something that
was not there when it left (`unchanged`). A target last seen touching a frame
border is "out of view"; elsewhere, "occluded".
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

Verdict = Literal["visible", "out_of_view", "occluded"]


@dataclass(frozen=True)
class AbsenceRule:
    """The watch's settings, chosen on 01_dog.mp4 and the dev set's exit cuts (`benchmarks.review
    --exits`, which also runs the 12 sequences themselves), with the engine's roaming search.
    0.4 over the last 10 scores (back at 0.8) wrote 24 of the cuts' 166 absent frames as absent;
    these write 81 on the scores alone, 94 with the look (docs/results-review-2026-12-03.md). Without the roaming search they held Suv's track for 227 frames where the
    tracker alone found the car again (it had jumped onto a car that then left the frame)."""

    lost_ratio: float = 0.5
    patience: int = 3
    resume_ratio: float = 0.9
    resume_after: int = 3
    # Sightings whose median score is the track's level: 30, not 10, because an object that
    # leaves slowly lowers its scores as it goes, and a level that follows them down lets the
    # background's scores pass for the object coming back (Crossing's exit cut, resumed at once).
    recent: int = 30
    # Sightings needed before anything is judged gone: a level from a handful of frames after a
    # keyframe is noise (the effort benchmark's re-tracks on Football1 were cut short at once).
    warmup: int = 10
    edge: float = 0.25  # a last box within this share of the object's usual size from a border: out of view
    # A box whose look (the NCC of its grey thumbnail with its keyframe's and with its last
    # sighting's, the better of the two: projects/propagate.py) is below this argues "gone"
    # whatever its score: the tracker's score is relative to what the search crop holds, so on
    # background that is all there is it can stay at the object's level (Couple's and
    # Football1's exit cuts: 0.15-0.4 against a level of 0.3-0.5), while the box's content is
    # anti-correlated with the object's (-0.1 to -0.3). 0 is NCC's own zero (no likeness at
    # all), not a value fitted to the dev set. None: scores only.
    unlike: float | None = 0.0
    # While the object is gone, a box whose content has not changed since the frame it was judged
    # gone (NCC of its grey thumbnail there and then, above this) is the background it left, not
    # the object back: the held search at the exit point scores the background there as high as
    # the object (01_dog.mp4: the bushes at the right edge, NCC 1.0 with a still camera, where the
    # dog coming back in changes its box to 0.68 and then below 0.1). None: not checked.
    unchanged: float | None = 0.9


@dataclass
class AbsenceWatch:
    """Feed it every tracked frame of one target; it says whether the object is there."""

    width: int
    height: int
    rule: AbsenceRule = AbsenceRule()
    scores: deque[float] = field(default_factory=deque)
    sizes: deque[tuple[float, float]] = field(default_factory=deque)
    last_seen: np.ndarray | None = None
    motion: np.ndarray = field(default_factory=lambda: np.zeros(2))  # centre px per frame over the last two sightings
    streak: int = 0  # frames in a row that argue against the current verdict
    verdict: Verdict = "visible"
    # Set by the update that changed the verdict: how many frames before this one the new
    # verdict covers too (the streak that led to it); the engine rewrites them. 0 otherwise.
    backdate: int = 0

    def update(
        self, box: tuple[float, float, float, float] | np.ndarray, score: float, look: float | None = None,
        since_gone: float | None = None,
    ) -> Verdict:
        """The verdict for this frame, given the tracker's box, its score and its look (None: unknown).

        `since_gone`: while gone, the NCC of the box's content with the same box on the frame the
        object was judged gone (None: unknown).
        """
        level = float(np.median(self.scores)) if self.scores else score
        unlike = look is not None and self.rule.unlike is not None and look < self.rule.unlike
        self.backdate = 0
        if self.verdict == "visible":
            self.streak = self.streak + 1 if unlike or score < self.rule.lost_ratio * level else 0
            if self.streak == 0:
                self.scores.append(score)
                self.sizes.append((float(box[2]), float(box[3])))
                while len(self.scores) > self.rule.recent:
                    self.scores.popleft()
                    self.sizes.popleft()
                seen = np.asarray(box, dtype=np.float64)
                if self.last_seen is not None:
                    self.motion = (seen[:2] + seen[2:] / 2) - (self.last_seen[:2] + self.last_seen[2:] / 2)
                self.last_seen = seen
            elif self.streak >= self.rule.patience and len(self.scores) >= min(self.rule.warmup, self.rule.recent):
                self.verdict, self.backdate, self.streak = self._gone_verdict(), self.streak - 1, 0
        else:
            # Back only at the usual score and not unlike the object: the background's score can
            # reach the object's level (Couple's exit cut, where the couple walk along the edge).
            unchanged = since_gone is not None and self.rule.unchanged is not None and since_gone > self.rule.unchanged
            self.streak = self.streak + 1 if score >= self.rule.resume_ratio * level and not unlike and not unchanged else 0
            if self.streak >= self.rule.resume_after:
                self.verdict, self.backdate, self.streak = "visible", self.streak - 1, 0
                self.last_seen = np.asarray(box, dtype=np.float64)
        return self.verdict

    def usual_size(self) -> np.ndarray | None:
        """The median width and height of the recent sightings."""
        return np.median(np.asarray(self.sizes), axis=0) if self.sizes else None

    def search_box(self) -> np.ndarray | None:
        """Where to look for the object while it is gone: its usual size, where it was last seen.

        A box at a border has shrunk to the sliver still inside the frame; searching around that
        sliver would only cover a few pixels of the border the object may come back through.
        """
        usual = self.usual_size()
        if self.last_seen is None or usual is None:
            return None
        w, h = usual
        x, y, lw, lh = self.last_seen
        cx = min(max(x + lw / 2, w / 2), self.width - w / 2)
        cy = min(max(y + lh / 2, h / 2), self.height - h / 2)
        return np.array([cx - w / 2, cy - h / 2, w, h])

    def _gone_verdict(self) -> Verdict:
        """Out of view when last seen at a frame border, or heading out across one; else occluded."""
        if self.last_seen is None:
            return "occluded"
        usual = self.usual_size()
        left = left_the_frame(self.last_seen, self.motion, usual, (self.width, self.height), self.rule.edge, self.rule.patience + 1)
        return "out_of_view" if left else "occluded"


def left_the_frame(
    last_seen: np.ndarray, motion: np.ndarray, usual: np.ndarray | None, frame_size: tuple[int, int], edge: float, frames_ahead: int
) -> bool:
    """Whether an object last seen at `last_seen` (x, y, w, h), moving `motion` px a frame, was at a
    frame border (within `edge` x its size) or would be past one `frames_ahead` frames on."""
    width, height = frame_size
    x, y, w, h = (float(v) for v in last_seen)
    # The margin is a share of the object's usual size, not of the last box: a box leaving the
    # frame shrinks to the sliver still inside it (01_dog.mp4: 27 px wide, 8 px from the border,
    # where the dog is 110 px wide), and a quarter of a sliver is no margin at all.
    usual_w, usual_h = (float(v) for v in usual) if usual is not None else (w, h)
    margin_x, margin_y = edge * max(w, usual_w), edge * max(h, usual_h)
    near = x <= margin_x or y <= margin_y or x + w >= width - margin_x or y + h >= height - margin_y
    # A box that lags behind a fast object leaving (a running dog) is not at the border yet;
    # where its centre would be by the time the watch decided tells.
    cx, cy = np.array([x + w / 2, y + h / 2]) + np.asarray(motion, dtype=np.float64) * frames_ahead
    heading_out = not (0 <= cx <= width and 0 <= cy <= height)
    return bool(near or heading_out)
