"""One-pass evaluation of our tracker and the OpenCV peers on SOT sequences, side by side.

Peers (docs/benchmarks.md): OpenCV's TrackerMIL (no weights), NanoTrack v2 and VitTrack (ONNX
weights in ../shared/peers). All trackers are driven through the same two calls, `init` and
`update`, on the same decoded frames, and timed per frame the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from sstrack.errors import InputError
from sstrack.metrics import SequenceScores, score_sequence, valid_frames
from sstrack.sequences import Sequence, read_image
from sstrack.tracker import TargetState, Tracker


class SingleTracker(Protocol):
    """The two-verb contract every evaluated tracker follows (pytracking style)."""

    name: str

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        """Start on `image` (RGB) with the ground-truth box."""

    def update(self, image: np.ndarray) -> np.ndarray:
        """Return the box (x, y, w, h) in the next frame."""


class OursSingle:
    """Our `Tracker` behind the single-target contract."""

    def __init__(self, tracker: Tracker, name: str) -> None:
        self.tracker = tracker
        self.name = name
        self.state: TargetState | None = None

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        """Start tracking."""
        self.state = self.tracker.start(image, box)

    def update(self, image: np.ndarray) -> np.ndarray:
        """Track one frame."""
        assert self.state is not None
        (box, _score), = self.tracker.step([self.state], image)
        return np.asarray(box)


class OpenCVPeer:
    """An OpenCV tracker (MIL, NanoTrack, VitTrack); frames are converted to BGR at this edge."""

    def __init__(self, name: str, factory: Callable[[], cv2.Tracker]) -> None:
        self.name = name
        self._factory = factory
        self._tracker: cv2.Tracker | None = None
        self._last = np.zeros(4)

    def init(self, image: np.ndarray, box: np.ndarray) -> None:
        """Create a fresh OpenCV tracker and initialise it."""
        self._tracker = self._factory()
        x, y, w, h = (int(round(v)) for v in box)
        self._tracker.init(cv2.cvtColor(image, cv2.COLOR_RGB2BGR), (x, y, max(w, 1), max(h, 1)))
        self._last = np.asarray(box, dtype=np.float64)

    def update(self, image: np.ndarray) -> np.ndarray:
        """Track one frame; a lost target keeps the last box (as the benchmark toolkits do)."""
        assert self._tracker is not None
        ok, box = self._tracker.update(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        if ok and box[2] > 0 and box[3] > 0:
            self._last = np.asarray(box, dtype=np.float64)
        return self._last


def opencv_peers(peers_dir: Path | None) -> list[OpenCVPeer]:
    """MIL always; NanoTrack and VitTrack when their ONNX files are in `peers_dir`."""
    peers = [OpenCVPeer("MIL", cv2.TrackerMIL_create)]
    if peers_dir is None:
        return peers
    peers_dir = Path(peers_dir)
    nano = peers_dir / "nanotrack_v2"
    if (nano / "nanotrack_backbone_sim.onnx").exists():

        def make_nano() -> cv2.Tracker:
            params = cv2.TrackerNano_Params()
            params.backbone = str(nano / "nanotrack_backbone_sim.onnx")
            params.neckhead = str(nano / "nanotrack_head_sim.onnx")
            return cv2.TrackerNano_create(params)

        peers.append(OpenCVPeer("NanoTrack", make_nano))
    vit = peers_dir / "vittrack" / "vittrack.onnx"
    if vit.exists():

        def make_vit() -> cv2.Tracker:
            params = cv2.TrackerVit_Params()
            params.net = str(vit)
            return cv2.TrackerVit_create(params)

        peers.append(OpenCVPeer("VitTrack", make_vit))
    if len(peers) == 1:
        raise InputError(f"{peers_dir}: no peer weights found; expected nanotrack_v2/ and vittrack/")
    return peers


@dataclass(frozen=True)
class RunResult:
    """One tracker on one sequence: boxes, scores and per-frame speed."""

    tracker: str
    sequence: str
    boxes: np.ndarray
    scores: SequenceScores
    fps: float


def run_sequence(tracker: SingleTracker, sequence: Sequence, frames: list[np.ndarray] | None = None, start: int = 0) -> RunResult:
    """OPE on one sequence: init on frame `start` (default the first) with ground truth, track every
    later frame; scored on the frames from `start` on."""
    images = frames if frames is not None else [read_image(p) for p in sequence.frames]
    truth, absent = sequence.ground_truth[start:], sequence.absent[start:]
    boxes = np.zeros((len(images) - start, 4))
    boxes[0] = truth[0]
    tracker.init(images[start], truth[0])
    elapsed = 0.0
    for i in range(1, len(boxes)):
        began = time.perf_counter()
        boxes[i] = tracker.update(images[start + i])
        elapsed += time.perf_counter() - began
    fps = (len(boxes) - 1) / elapsed if elapsed > 0 else float("nan")
    scores = score_sequence(boxes, truth, absent)
    return RunResult(tracker.name, sequence.name, boxes, scores, fps)


def restart_frames(sequence: Sequence, starts: int) -> list[int]:
    """`starts` start frames spread evenly over the sequence (OTB's temporal robustness, TRE): frame
    1, then the first visible frame with a box at or after each k/starts of its length."""
    visible = valid_frames(sequence.ground_truth, sequence.absent)
    chosen: list[int] = []
    for k in range(starts):
        candidates = np.flatnonzero(visible[k * len(sequence) // starts:]) + k * len(sequence) // starts
        if len(candidates) and candidates[0] < len(sequence) - 1 and candidates[0] not in chosen:
            chosen.append(int(candidates[0]))
    return chosen


def run_restarts(tracker: SingleTracker, sequence: Sequence, frames: list[np.ndarray], starts: int) -> RunResult:
    """TRE: a run from each of `restart_frames`, scored as one pool of their frames (OTB's TRE pools
    them the same way). One jump onto a distractor decides an OPE run; pooled restarts average
    over where the tracker starts, so a small change of method moves the score less by chance.
    `boxes` are the runs' boxes one after the other."""
    firsts = restart_frames(sequence, starts) or [0]  # a one-frame sequence: OPE's single start
    runs = [run_sequence(tracker, sequence, frames, start) for start in firsts]
    truth = np.concatenate([sequence.ground_truth[f:] for f in firsts])
    absent = np.concatenate([sequence.absent[f:] for f in firsts])
    boxes = np.concatenate([r.boxes for r in runs])
    tracked = [len(r.boxes) - 1 for r in runs]
    fps = sum(tracked) / sum(n / r.fps for n, r in zip(tracked, runs) if n) if sum(tracked) else float("nan")
    return RunResult(tracker.name, sequence.name, boxes, score_sequence(boxes, truth, absent), fps)
