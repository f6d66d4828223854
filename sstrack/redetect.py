"""Re-detection over the whole frame when a target's score collapses.

The tracker searches a crop 4x the object's size around its last box. Once it has lost the
object (a full occlusion, a jump onto a look-alike that then leaves), the object can be back in
view anywhere else and the local search never sees it: on Jogging-1 the box sat on the road for
110 frames while the jogger ran on 50 px away. When a target's score stays below
`redetect_ratio` x its level (the median of its last confident scores) for PATIENCE frames in a
row, the tracker also scores
crops tiling the frame at the object's usual size, with the same templates (`redetect_crops` per
frame; a larger frame is scanned over several), and moves to the best of the scan when it beats
the local crop by `redetect_margin` and is itself at least `redetect_ratio` x the level.

The usual size is the median of the box sizes of the last confident frames, not the current box:
while the object is lost the box shrinks onto whatever the tracker follows (Jogging-1's fell from
25x101 to 10x20 px), and crops at that size show heads and parts, where a look-alike wins.

A target lost while last seen at a frame border (or heading out across one: the absence watch's
out-of-view rule) does not scan: it left the frame and comes back through the same border, where
its local crop waits, and a scan would move onto whatever else the frame holds (01_dog.mp4's
woman). It is found again only after 3 frames in a row at the absence watch's resume scores, not
at the first frame above half its level: the background a lost box waits on scores that much.

Off unless a model's card sets `redetect_ratio`; the shipped card does not. When the object is
in one of the crops, the lite network's peak score mostly picks it (18 of 22 scans on the dev
set), but no level of it means "the object is in none of these crops", so a scan for an object
hidden in mid-frame can settle on a look-alike. The scan's dev-set gain came from Jogging-1, a
target that had followed a look-alike out of the frame, which the border rule now leaves alone
(docs/results-redetect-2026-12-06.md).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from sstrack.absence import AbsenceRule, left_the_frame

# Confident frames a target's level and usual size are taken from; the level needs this many
# before anything is judged lost (the first frames after a start are the least settled).
RECENT = 30
WARMUP = 5
# Neighbouring tiles overlap by a quarter of a crop, so an object on a tile border is whole in one.
TILE_STEP = 0.75
# After n scans in a row found nothing, the next waits min(2^(n-1), MAX_IDLE) frames: an object
# that has left costs about a scan a second at 16 fps instead of one on every frame.
MAX_IDLE = 16
# Frames in a row a target must be lost before it scans (the absence watch's `patience`): a dip of
# a frame or two (a partial occlusion, blur) is not a loss, and a look-alike elsewhere in the
# frame can outscore the object then (Crossing's exit cut: a scan at a one-frame dip moved to
# another pedestrian while the person was still in view).
PATIENCE = AbsenceRule.patience
# A target lost while it was last seen at a frame border (or heading out across one: the absence
# watch's out-of-view rule) has left the frame. It does not scan: it comes back through the same
# border, where its local crop waits, and a scan would move onto whatever else the frame holds
# (01_dog.mp4's woman). It is found again only after RESUME_AFTER frames in a row at RESUME_RATIO x
# its level (the absence watch's resume scores), not at the first frame above half of it: the
# bushes its box waited on scored 0.2-0.28 against a level of 0.37, and taken for the dog they
# made its last sighting the middle of the frame, whose next loss scanned and moved onto the woman.
# An object that comes back scoring less than that stays out of view, tracked as by the plain
# tracker (no scans) until it reaches them: a bound in frames would let background that scores
# above half the level (the bushes did for 12 frames) pass for the object after a while.
RESUME_RATIO = AbsenceRule.resume_ratio
RESUME_AFTER = AbsenceRule.resume_after
# Confident frames the object's motion is averaged over, for whether it was heading out of view:
# from one frame to the next the lite network's box jitters by up to half its width (Suv: +30,
# then -48 px), which read as a car heading out of the frame it was in the middle of.
MOTION_FRAMES = 5


@dataclass
class LossWatch:
    """One target's recent confident scores and sizes, and its scan of the frame while lost."""

    scores: deque[float] = field(default_factory=lambda: deque(maxlen=RECENT))
    sizes: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=RECENT))
    next_tile: int = 0
    # Where the best crop of the scan's earlier frames found something: (centre, score). A scan
    # longer than one frame's crops decides only once it has seen every tile (the best of a part
    # of the frame may be a look-alike while the object is in a tile not yet searched), and it
    # decides on that frame's scores: this place is scored again there, as the object may have
    # moved on since.
    earlier_best: tuple[np.ndarray, float] | None = None
    # Scans that ended without a move since the last confident frame, and frames still to wait
    # before the next scan: an object that has left would otherwise cost a scan on every frame.
    failed_scans: int = 0
    idle: int = 0
    lost_frames: int = 0  # lost frames since the target was last seen; PATIENCE in a row: lost
    out_of_view: bool = False  # lost when last seen at a border: no scans, found again at RESUME_RATIO
    back_frames: int = 0  # while out of view, frames in a row at RESUME_RATIO x the level
    last_box: np.ndarray | None = None  # the last confident frame's box
    # The centres of the confident boxes since the last loss of PATIENCE frames or more (or a
    # move), for the object's motion.
    centres: deque[np.ndarray] = field(default_factory=lambda: deque(maxlen=MOTION_FRAMES + 1))

    def lost_in_view(self, width: int, height: int) -> bool:
        """Count a lost frame; whether the target should scan the `width` x `height` frame for
        itself: lost for PATIENCE frames in a row, and not out of view (decided when the loss
        reaches PATIENCE)."""
        self.lost_frames += 1
        self.back_frames = 0
        if self.lost_frames == PATIENCE:
            self.out_of_view = self.last_seen_leaving(width, height)
        return self.lost_frames >= PATIENCE and not self.out_of_view

    def not_lost(self, score: float, box: np.ndarray) -> None:
        """Count a frame that `is_lost` passed: the target is seen, except that one out of view is
        found again only after RESUME_AFTER frames in a row at RESUME_RATIO x its level."""
        if self.out_of_view:
            level = self.level()
            self.back_frames = self.back_frames + 1 if level is not None and score >= RESUME_RATIO * level else 0
            if self.back_frames < RESUME_AFTER:
                return
        self.seen(score, box)

    def level(self) -> float | None:
        """The median of the recent confident scores, or None before WARMUP of them."""
        return float(np.median(self.scores)) if len(self.scores) >= WARMUP else None

    def is_lost(self, score: float, ratio: float) -> bool:
        """Whether `score` is below `ratio` x the level."""
        level = self.level()
        return level is not None and score < ratio * level

    def seen(self, score: float, box: np.ndarray) -> None:
        """Record a confident frame's score and box size; a scan under way is over."""
        self.scores.append(float(score))
        self.sizes.append((float(box[2]), float(box[3])))
        self.last_box = np.asarray(box, dtype=np.float64)
        if self.lost_frames >= PATIENCE:
            self.centres.clear()  # the place before the loss (or a move) is no motion of the object
        self.centres.append(self.last_box[:2] + self.last_box[2:] / 2)
        self.lost_frames = self.back_frames = 0
        self.out_of_view = False
        self.restart_scan()
        self.failed_scans = self.idle = 0

    def restart_scan(self) -> None:
        """Forget the scan under way: the next one starts from the first tile."""
        self.next_tile, self.earlier_best = 0, None

    def last_seen_leaving(self, width: int, height: int) -> bool:
        """Whether the object was last seen at a border of the `width` x `height` frame, or
        heading out across one (the absence watch's out-of-view rule)."""
        assert self.last_box is not None
        return left_the_frame(self.last_box, self.motion(), self.usual_size(), (width, height), AbsenceRule.edge, PATIENCE + 1)

    def motion(self) -> np.ndarray:
        """The object's mean motion (px a frame) over its last MOTION_FRAMES confident frames;
        zero until it has that many since the last loss (fewer would be one step's jitter)."""
        if len(self.centres) <= MOTION_FRAMES:
            return np.zeros(2)
        return (self.centres[-1] - self.centres[0]) / (len(self.centres) - 1)

    def usual_size(self) -> np.ndarray:
        """The median (w, h) of the recent confident boxes."""
        return np.median(np.asarray(self.sizes), axis=0)

    def scan_due(self) -> bool:
        """Whether this lost frame scans (False while backing off after failed scans)."""
        if self.idle > 0:
            self.idle -= 1
            return False
        return True

    def take_tiles(self, tiles: list[np.ndarray], count: int) -> tuple[list[np.ndarray], bool]:
        """The next `count` of `tiles` in turn, and whether they end the scan of the frame."""
        chosen = tiles[self.next_tile : self.next_tile + count]
        self.next_tile += len(chosen)
        if self.next_tile >= len(tiles):
            self.next_tile = 0
            return chosen, True
        return chosen, False

    def offer(self, boxes: list[np.ndarray], scores: np.ndarray) -> None:
        """Keep the best place of these crops' answers for the scan's last frame."""
        if len(boxes) == 0:
            return
        best = int(np.argmax(scores))
        if self.earlier_best is None or scores[best] > self.earlier_best[1]:
            box = np.asarray(boxes[best], dtype=np.float64)
            self.earlier_best = (box[:2] + box[2:] / 2, float(scores[best]))

    def end_scan(self, moved: bool) -> None:
        """The scan is over; one that found nothing worth moving to makes the next wait longer."""
        self.restart_scan()
        if not moved:
            self.failed_scans += 1
            self.idle = min(2 ** (self.failed_scans - 1), MAX_IDLE)


def frame_tiles(width: int, height: int, size: np.ndarray, search_factor: float) -> list[np.ndarray]:
    """Boxes of `size` (w, h) whose search crops tile a `width` x `height` frame, row by row."""
    side = search_factor * math.sqrt(float(size[0]) * float(size[1]))

    def centres(extent: int) -> np.ndarray:
        if extent <= side:
            return np.array([extent / 2])
        count = math.ceil((extent - side) / (side * TILE_STEP)) + 1
        return np.linspace(side / 2, extent - side / 2, count)

    w, h = float(size[0]), float(size[1])
    return [np.array([cx - w / 2, cy - h / 2, w, h]) for cy in centres(height) for cx in centres(width)]


def place_to_move_to(scores: np.ndarray, level: float, ratio: float, margin: float) -> int | None:
    """Index of the crop to move to, or None: `scores[0]` is the local crop's, the rest the scan's;
    the best of the scan must beat the local one by `margin` and reach `ratio` x the level."""
    if len(scores) < 2:
        return None
    best = int(np.argmax(scores[1:])) + 1
    return best if scores[best] > margin * max(float(scores[0]), 1e-6) and scores[best] >= ratio * level else None
