"""Propagation engine: track from the human keyframes, forward and/or backward, as a generator.

A span runs from a manual keyframe to the frame before the next manual box of that track (or the
video's end); backward spans mirror that. Manual rows are never touched. "both" runs a forward
and a backward pass and fuses the two boxes of every frame between two keyframes (by score and
by distance to each keyframe), so a correction improves both sides of it. Where a track's
absence watch (sstrack/absence.py) judges its object gone, the run writes machine "out of view" /
"occluded" states instead of boxes until it finds the object again. All tracks active on a
frame go through one batched `Tracker.step`. Each frame's boxes are committed before its result
is yielded, so a kill loses at most the frame in flight; the consumer cancels by closing the
generator. The whole run is one undo step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import cv2
import numpy as np

from projects.media import Media
from projects.read_ahead import frames_ahead
from projects.store import BoxRecord, Project
from sstrack.absence import AbsenceRule, AbsenceWatch
from sstrack.errors import InputError
from sstrack.review import key_look, look_similarity, thumb_similarity

if TYPE_CHECKING:  # the tracker (torch) loads with the model; interpolating and exporting need neither
    from sstrack import TargetState, Tracker

_logger = logging.getLogger(__name__)

Direction = Literal["forward", "backward", "both"]
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class FrameResult:
    """What one frame of a run wrote: track id -> (box, score); progress so far."""

    frame: int
    boxes: dict[int, tuple[Box, float]]
    done: int
    total: int
    elapsed: float
    direction: str
    stopped: tuple[int, ...] = ()  # tracks stopped here because their score stayed low
    frames_done: int = 0  # frames stepped so far (`done` counts boxes: one per track per frame)
    entry: int = 0  # the run's undo step (history entry id)
    # The decoded frame (RGB uint8 HxWx3) the boxes were tracked on, so a viewer shows it
    # without decoding it again; compared by identity only.
    image: np.ndarray | None = field(default=None, compare=False, repr=False)
    absent: tuple[int, ...] = ()  # tracks judged gone on this frame (written as out of view / occluded)

    @property
    def fps(self) -> float:
        """Video frames per second so far (decode + track + commit), however many objects."""
        return self.frames_done / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def boxes_per_s(self) -> float:
        """Boxes written per second so far (fps x the objects tracked)."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


@dataclass(frozen=True)
class Span:
    """Frames a track is propagated over from one keyframe, in one direction."""

    track_id: int
    keyframe: int
    first: int  # first frame to write (keyframe +/- 1)
    last: int  # last frame to write, inclusive
    step: int  # +1 forward, -1 backward
    opposite: int | None  # the keyframe bounding the span's far end (None: video start/end)

    def frames(self) -> range:
        """The frames this span writes, in tracking order."""
        return range(self.first, self.last + self.step, self.step)


@dataclass
class _Active:
    span: Span
    state: TargetState
    watch: AbsenceWatch | None = None
    # While the object is judged gone, a second held search that follows its own best guess
    # across the frame (`state` stays where the object was last seen): an object that only
    # seemed to leave (the track had jumped onto something that left) is found again where it went.
    roam: TargetState | None = None
    low_streak: int = 0
    key: np.ndarray | None = None  # the keyframe box's grey look (sstrack.review.key_look)
    # The grey look of the last frame the absence watch counted as a sighting: a target that
    # turns or flips (MotorRolling) drifts away from its keyframe's look but not from its own of
    # a frame ago, while a box that jumped onto the background is unlike both.
    seen: np.ndarray | None = None
    # The last few frames' tracker answers (frame, box, score, look), so a verdict that covers
    # frames already written (AbsenceWatch.backdate) can rewrite them.
    recent: deque[tuple[int, Box, float, float | None]] = field(default_factory=lambda: deque(maxlen=8))
    # The frame (grey) on which the object was judged gone (AbsenceRule.unchanged); None while it is seen.
    left: np.ndarray | None = None


@dataclass
class _RunState:
    written: set[tuple[int, int]] = field(default_factory=set)
    halted: set[Span] = field(default_factory=set)  # spans cut short by a manual box written meanwhile
    done: int = 0
    frames: int = 0


def plan_spans(
    project: Project, video_id: int, track_ids: list[int] | None, direction: Direction, around: int | None = None
) -> list[Span]:
    """The spans a run will track (keyframes from the database; `around` limits to one frame's)."""
    video = project.video(video_id)
    tracks = track_ids if track_ids is not None else [t.id for t in project.tracks(video_id)]
    spans: list[Span] = []
    for track_id in tracks:
        manual = {r.frame: r for r in project.boxes(track_id) if r.source == "manual"}
        keys = sorted(manual)
        for i, key in enumerate(keys):
            record = manual[key]
            if not (record.visible and record.has_box):
                continue  # a human "absent" keyframe starts nothing
            nxt = keys[i + 1] if i + 1 < len(keys) else video.frames
            prv = keys[i - 1] if i > 0 else -1
            if around is not None and not prv < around < nxt and around != key:
                continue
            if direction in ("forward", "both") and key + 1 <= nxt - 1:
                if around is None or key <= around < nxt:
                    spans.append(Span(track_id, key, key + 1, nxt - 1, 1, nxt if nxt < video.frames else None))
            if direction in ("backward", "both") and prv + 1 <= key - 1:
                if around is None or prv < around <= key:
                    spans.append(Span(track_id, key, key - 1, prv + 1, -1, prv if prv >= 0 else None))
    return spans


@dataclass(frozen=True)
class PropagationPlan:
    """What a run does: which tracks, which way, around which correction, when to give up."""

    video_id: int
    track_ids: list[int] | None = None  # None: every track of the video
    direction: Direction = "forward"
    around: int | None = None  # only the spans touching this frame (re-track after a correction)
    stop_below: float | None = None  # stop a track once its score stays below this ...
    patience: int = 5  # ... for this many frames
    # Write "out of view" / "occluded" states where the object is judged gone (None: always boxes).
    absence: AbsenceRule | None = AbsenceRule()
    # Decode the next frames on an idle-priority thread (projects/read_ahead.py); False: in line.
    read_ahead: bool = True

    @property
    def label(self) -> str:
        """The run's undo-step label."""
        return f"track {self.direction}" + (f" around frame {self.around + 1}" if self.around is not None else "")


class RunWriter:
    """The run's only path into the project: one undo entry, the run record, machine boxes.

    Every write re-checks its frames in the same transaction (`Project.write_machine_boxes`), so
    a box a human wrote meanwhile always wins; `commit` returns those frames.
    """

    def __init__(self, project: Project, plan: PropagationPlan, model: dict[str, str | None] | None = None) -> None:
        self.project = project
        # `model`: which weights make this run's boxes (exports say so per box).
        params = {"direction": plan.direction, "tracks": plan.track_ids, "around": plan.around, "stop_below": plan.stop_below,
                  "model": model}
        self.entry = project.begin_history(plan.label)
        self.run_id = project.start_run("propagate", plan.video_id, params, history_entry=self.entry)

    def commit(self, records: list[BoxRecord], delete: list[BoxRecord] | None = None) -> set[tuple[int, int]]:
        """Write one frame's machine boxes; returns the (track, frame) keys a human protected."""
        return self.project.write_machine_boxes(records, self.entry, self.run_id, delete=delete)

    def close(self, status: str, done: int) -> None:
        """Finish the run record; a run that wrote nothing leaves no undo step."""
        self.project.discard_if_empty(self.entry)
        self.project.finish_run(self.run_id, status, done)


@dataclass
class _Pass:
    """One direction of a run over its spans (what `_run_pass` needs besides the frames)."""

    project: Project
    tracker: Tracker
    writer: RunWriter
    plan: PropagationPlan
    spans: list[Span]
    step: int
    fuse: bool
    run: _RunState
    total: int
    started: float


def propagate(
    project: Project,
    video_id: int,
    tracker: Tracker,
    track_ids: list[int] | None = None,
    direction: Direction = "forward",
    around: int | None = None,
    stop_below: float | None = None,
    patience: int = 5,
    media: Media | None = None,
    absence: AbsenceRule | None = AbsenceRule(),
) -> Iterator[FrameResult]:
    """Track the given tracks (default all) of a video; yields one FrameResult per frame written.

    Args:
        around: only the spans touching this frame (re-track after a correction there).
        stop_below: stop a track once its score stays below this for `patience` frames; the rest
            of its span is left for review (its old machine boxes there are removed).
        absence: when to judge an object gone and write "out of view" / "occluded" states
            instead of boxes (sstrack/absence.py); None writes a box on every frame.
    """
    if direction not in ("forward", "backward", "both"):
        raise ValueError(f"direction must be forward, backward or both, not {direction!r}")
    plan = PropagationPlan(video_id, track_ids, direction, around, stop_below, patience, absence)
    return run_plan(project, plan, tracker, media)


def run_plan(project: Project, plan: PropagationPlan, tracker: Tracker, media: Media | None = None) -> Iterator[FrameResult]:
    """The engine: a generator of per-frame results (with their images) for `plan`."""
    spans = plan_spans(project, plan.video_id, plan.track_ids, plan.direction, plan.around)
    own_media = media is None
    media = media or project.open_media(plan.video_id)
    writer = RunWriter(project, plan, getattr(tracker, "weights_identity", None))  # a stand-in tracker has none
    run = _RunState()
    total = sum(len(s.frames()) for s in spans)
    started = time.perf_counter()
    status = "cancelled"
    try:
        for step in (1, -1):
            passes = [s for s in spans if s.step == step]
            # A full run's forward pass starts afresh; every later pass (and a re-track around a
            # correction) fuses with the machine box already there, which was tracked from the
            # keyframe at the other end of the span.
            # A re-track around a correction (G) re-tracks both sides of it up to the neighbouring
            # keyframes, as it says. An annotator who works forward and has accepted the boxes
            # before the correction continues forward from it instead (T: direction "forward",
            # around the correction); blending those accepted boxes cost the simulated annotator
            # extra corrections (benchmarks/effort.py, tau 0.5: Deer 25 manual boxes vs 15).
            fuse = not (step == 1 and plan.around is None)
            if passes:
                context = _Pass(project, tracker, writer, plan, passes, step, fuse, run, total, started)
                yield from _run_pass(context, media)
        _clear_unwritten(project, spans, run, writer)
        status = "done"
    except Exception:
        status = "failed"
        raise
    finally:
        writer.close(status, run.done)
        if own_media:
            media.close()


def _run_pass(ctx: _Pass, media: Media) -> Iterator[FrameResult]:
    starts: dict[int, list[Span]] = {}
    for span in ctx.spans:
        starts.setdefault(span.keyframe, []).append(span)
    lo = min(min(s.keyframe, s.last) for s in ctx.spans)
    hi = max(max(s.keyframe, s.last) for s in ctx.spans)
    first, stop = (lo, hi + 1) if ctx.step == 1 else (hi, lo - 1)
    frames = frames_ahead(media, first, stop, ctx.step) if ctx.plan.read_ahead else media.iter_frames(first, stop, ctx.step)
    with contextlib.closing(frames):  # a run cancelled or stopped early stops the decoder thread now
        yield from _step_frames(ctx, frames, starts)


def _step_frames(ctx: _Pass, frames: Iterator[tuple[int, np.ndarray]], starts: dict[int, list[Span]]) -> Iterator[FrameResult]:
    active: dict[int, _Active] = {}
    name = "forward" if ctx.step == 1 else "backward"
    for index, image in frames:
        for span in starts.get(index, []):
            manual = ctx.project.box_at(span.track_id, span.keyframe)
            if manual is None or not manual.has_box:
                # Deleted, or marked hidden, by another window since the run was planned: no start.
                _logger.warning("track %s: its keyframe on frame %d is gone; skipped", span.track_id, span.keyframe + 1)
                continue
            try:
                state = ctx.tracker.start(image, manual.box)
            except InputError as error:
                # One unusable keyframe (e.g. an imported sliver at the frame's edge) skips its
                # track; it must not abort the run for every other track of the video.
                _logger.warning("track %s: keyframe on frame %d cannot start tracking (%s); skipped", span.track_id, span.keyframe + 1, error)
                continue
            rule = ctx.plan.absence
            watch = AbsenceWatch(image.shape[1], image.shape[0], rule) if rule else None
            if watch is not None:
                # The absence watch owns a lost target here, and its roaming search finds it again.
                # The tracker's own re-detection cannot tell "gone" from "elsewhere": on the dev
                # set's exit cuts it moved onto other objects after the object had left, and 130 of
                # 166 absent frames got a box instead of 76 (benchmarks.review --exits).
                state.loss_watch = None
            active[span.track_id] = _Active(span, state, watch, key=key_look(image, manual.box))
        stepping = [a for a in active.values() if _covers(a.span, index)]
        if not stepping:
            continue
        roaming = [a for a in stepping if a.roam is not None]
        results = ctx.tracker.step([a.state for a in stepping] + [a.roam for a in roaming], image)
        roamed = dict(zip((id(a) for a in roaming), results[len(stepping):]))
        records, written, stopped, gone, kept = [], {}, [], [], []
        for item, (box, score) in zip(stepping, results):
            track_id = item.span.track_id
            verdict = _judge(item, index, image, box, score, roamed.get(id(item)))
            if verdict == "visible" and id(item) in roamed:
                box, score = item.recent[-1][1:3]  # found again, maybe by the roaming search
            if verdict != "visible":
                gone.append(track_id)
                records.extend(_backdated(item, verdict, ctx.writer.run_id))
                other = ctx.project.box_at(track_id, index) if ctx.fuse and item.span.opposite is not None else None
                if other is not None and other.source == "tracked" and other.visible and other.has_box:
                    kept.append((track_id, index))  # the other direction still sees it: its box stays
                    continue
                records.append(_absent_record(track_id, index, verdict, score, ctx.writer.run_id))
                continue
            records.extend(_backdated(item, verdict, ctx.writer.run_id))
            look = item.recent[-1][3]
            if ctx.fuse and item.span.opposite is not None:
                existing = ctx.project.box_at(track_id, index)
                if existing is not None and existing.source == "tracked" and existing.visible and existing.has_box:
                    box, score = _fuse(existing, item.span, index, np.asarray(box), score)
                    look = look_similarity(image, box, item.key)
            box = tuple(float(v) for v in box)
            records.append(BoxRecord(track_id, index, *box, source="tracked", score=float(score), run_id=ctx.writer.run_id, look=look))
            written[track_id] = (box, float(score))
            if ctx.plan.stop_below is not None:
                item.low_streak = item.low_streak + 1 if score < ctx.plan.stop_below else 0
                if item.low_streak >= ctx.plan.patience:
                    stopped.append(track_id)
        protected = ctx.writer.commit(records)
        # A box a human put here while the run was on its way is a new keyframe: it wins, and
        # it bounds this track's span, so the track stops here (a later run starts from it).
        for track_id, _frame in protected:
            written.pop(track_id, None)
            halted = active.pop(track_id, None)
            if halted is not None:
                ctx.run.halted.add(halted.span)
        records = [r for r in records if (r.track_id, r.frame) not in protected]
        ctx.run.written.update((r.track_id, r.frame) for r in records)
        ctx.run.written.update(key for key in kept if key not in protected)
        for track_id in stopped:
            active.pop(track_id, None)
        for track_id in [t for t, a in active.items() if index == a.span.last]:
            active.pop(track_id)
        ctx.run.done += sum(1 for r in records if r.frame == index)  # a rewrite of earlier frames is not progress
        ctx.run.frames += 1
        yield FrameResult(
            index, written, ctx.run.done, ctx.total, time.perf_counter() - ctx.started, name, tuple(stopped),
            ctx.run.frames, ctx.writer.entry, image, tuple(t for t in gone if (t, index) not in protected),
        )


def _judge(item: _Active, index: int, image: np.ndarray, box: Box, score: float, roamed: tuple[Box, float] | None = None) -> str:
    """The absence watch's verdict on this frame; holds, roams or releases the tracker to match.

    `roamed`: the roaming search's answer on this frame (while the object is judged gone); the
    better-scored of the two answers is the one judged.
    """
    found_by_roam = roamed is not None and roamed[1] > score
    if roamed is not None and item.roam is not None:
        item.roam.box = np.asarray(roamed[0], dtype=np.float64)  # it follows its own best guess
        usual = item.watch.usual_size() if item.watch is not None else None
        if usual is not None:
            centre = item.roam.box[:2] + item.roam.box[2:] / 2
            item.roam.box = np.concatenate([centre - usual / 2, usual])
        if found_by_roam:
            box, score = roamed
    thumb = key_look(image, box) if item.key is not None else None
    look = thumb_similarity(thumb, item.key)
    item.recent.append((index, box, score, look))
    if item.watch is None:
        return "visible"
    was_gone = item.state.hold
    since_gone = thumb_similarity(thumb, key_look(item.left, box)) if item.left is not None and thumb is not None else None
    verdict = item.watch.update(box, score, _likeness(look, thumb_similarity(thumb, item.seen)), since_gone)
    if verdict == "visible" and item.watch.streak == 0:
        item.seen = thumb
    if verdict != "visible" and not was_gone:
        item.roam = item.state.copy()
        # Grey, as the thumbnails compare it: a third of the frame's memory per gone track (a
        # fresh array, so a reader reusing its frame buffer cannot change it).
        item.left = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        item.roam.hold = True
        # Search where the object was last seen, at its usual size (not the sliver at a border).
        search = item.watch.search_box()
        if search is not None:
            item.state.box = search
    elif verdict == "visible" and was_gone:
        if found_by_roam and item.roam is not None:
            item.state = item.roam
        item.state.box, item.state.score = np.asarray(box, dtype=np.float64), score  # found again: track from here
        item.roam = None
        item.left = None
    item.state.hold = verdict != "visible"
    return verdict


def _likeness(to_key: float | None, to_seen: float | None) -> float | None:
    """How much a box looks like its object: the better of its NCC with the keyframe and with the last sighting."""
    known = [v for v in (to_key, to_seen) if v is not None]
    return max(known) if known else None


def _backdated(item: _Active, verdict: str, run_id: int) -> list[BoxRecord]:
    """Rewrites of the frames before this one that a new verdict covers too (see AbsenceWatch.backdate)."""
    count = item.watch.backdate if item.watch is not None else 0
    earlier = list(item.recent)[-1 - count : -1] if count else []
    track_id = item.span.track_id
    if verdict == "visible":
        return [BoxRecord(track_id, f, *b, source="tracked", score=float(s), run_id=run_id, look=lk) for f, b, s, lk in earlier]
    return [_absent_record(track_id, f, verdict, s, run_id) for f, _b, s, _lk in earlier]


def _absent_record(track_id: int, frame: int, verdict: str, score: float, run_id: int) -> BoxRecord:
    """A machine state with no box: the object judged out of view or fully occluded here."""
    return BoxRecord.absent(track_id, frame, out_of_view=verdict == "out_of_view", occluded=verdict == "occluded",
                            source="tracked", score=float(score), run_id=run_id)


def _covers(span: Span, index: int) -> bool:
    return span.first <= index <= span.last if span.step == 1 else span.last <= index <= span.first


def _fuse(existing: BoxRecord, span: Span, index: int, box: np.ndarray, score: float) -> tuple[np.ndarray, float]:
    """Blend this pass's box with the one tracked from the span's other keyframe.

    Trust = score x closeness to the keyframe a box was tracked from, so near each keyframe its
    own direction wins and in the middle the more confident one does; boxes that disagree
    (IoU < 0.5) are not averaged, the more trusted one is kept.
    """
    from sstrack.boxes import xywh_iou  # loaded already: a tracker is running

    assert span.opposite is not None
    length = abs(span.opposite - span.keyframe)
    other = np.asarray(existing.box)
    other_score = existing.score if existing.score is not None else 0.0
    weight_new = max(score, 1e-6) * (1 - abs(index - span.keyframe) / (length + 1))
    weight_old = max(other_score, 1e-6) * (1 - abs(index - span.opposite) / (length + 1))
    if xywh_iou(box, other) >= 0.5:
        return (weight_new * box + weight_old * other) / (weight_new + weight_old), max(score, other_score)
    return (box, score) if weight_new >= weight_old else (other, other_score)



def _clear_unwritten(project: Project, spans: list[Span], run: _RunState, writer: RunWriter) -> None:
    """Machine boxes left in the planned spans but not re-tracked (a stopped track) are stale."""
    stale = []
    for span in spans:
        if span in run.halted:
            continue  # beyond the human's new keyframe the old boxes are theirs to re-track
        for record in project.boxes(span.track_id, min(span.first, span.last), max(span.first, span.last)):
            if record.source != "manual" and (span.track_id, record.frame) not in run.written:
                stale.append(record)
    if stale:
        writer.commit([], delete=stale)


def interpolate(
    project: Project, video_id: int, track_ids: list[int] | None = None, frames: tuple[int, int] | None = None
) -> int:
    """Linear interpolation between consecutive visible manual keyframes (one undo step); `frames`
    (first, last): only the frames of that span (a span selected on the timeline)."""
    tracks = track_ids if track_ids is not None else [t.id for t in project.tracks(video_id)]
    lo, hi = frames if frames is not None else (0, 2**62)
    count = 0
    with project.edit("interpolate"):
        for track_id in tracks:
            manual = [r for r in project.boxes(track_id) if r.source == "manual"]
            records = []
            for left, right in zip(manual, manual[1:]):
                # A manual "absent" keyframe in between means the object left: no bridging.
                if not (left.visible and right.visible and left.has_box and right.has_box):
                    continue
                existing = {r.frame: r for r in project.boxes(track_id, left.frame + 1, right.frame - 1)}
                for frame in range(max(left.frame + 1, lo), min(right.frame, hi + 1)):
                    if frame in existing and existing[frame].source == "manual":
                        continue
                    t = (frame - left.frame) / (right.frame - left.frame)
                    box = [(1 - t) * a + t * b for a, b in zip(left.box, right.box)]
                    records.append(BoxRecord(track_id, frame, *box, source="interpolated"))
            project.put_boxes(records)
            count += len(records)
    return count
