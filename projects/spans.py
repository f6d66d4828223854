"""Edits over a span of frames of one track: mark it hidden or visible, delete the machine's boxes.

Each is one undo step, written through `Project.edit`, and reads the frames it changes inside that
write transaction, so a box another window or process wrote a moment before is seen, not undone.
"""

from __future__ import annotations

from dataclasses import replace

from projects.errors import ProjectError
from projects.store import BoxRecord, Project


def check_span(project: Project, track_id: int, first: int, last: int) -> tuple[int, int]:
    """The span (0-based, inclusive, in order) if it lies inside the track's video, else ProjectError."""
    video = project.video(project.track(track_id).video_id)
    first, last = sorted((first, last))
    if first < 0 or last >= video.frames:
        raise ProjectError(f"frames {first + 1}-{last + 1} are not all in {video.name} (frames 1-{video.frames})")
    return first, last


def span_to_next_keyframe(project: Project, track_id: int, frame: int) -> tuple[int, int]:
    """From `frame` to the frame before the track's next keyframe after it (or the video's end)."""
    video = project.video(project.track(track_id).video_id)
    later = [k for k in project.keyframes(track_id) if k > frame]
    return frame, (later[0] - 1 if later else video.frames - 1)


def mark_span(
    project: Project, track_id: int, first: int, last: int, occluded: bool = False, out_of_view: bool = False
) -> int:
    """Mark frames first..last hidden (occluded and/or out of view) or, with both False, visible.

    Hiding leaves no machine box in the span: a tracker's box where the object is hidden is a box
    on the background, so it becomes a human "no box" state, as does a frame without a row; a
    manual box keeps its geometry and takes the flags. Marking visible clears the flags of every
    box and removes the "no box" states (a visible object needs a box, which the user or a re-track
    gives it). Returns the number of frames changed (0: nothing changed, and no undo step).
    """
    first, last = check_span(project, track_id, first, last)
    hide = occluded or out_of_view
    what = "out of view" if out_of_view else "occluded" if occluded else "visible"
    with project.edit(f"mark frames {first + 1}-{last + 1} {what}"):
        rows = {r.frame: r for r in project.boxes(track_id, first, last)}
        puts: list[BoxRecord] = []
        deletes: list[BoxRecord] = []
        for frame in range(first, last + 1):
            old = rows.get(frame)
            if old is not None and old.has_box and (old.source == "manual" or not hide):
                new = replace(old, occluded=occluded, out_of_view=out_of_view)
            elif hide:
                new = BoxRecord.absent(track_id, frame, out_of_view=out_of_view, occluded=occluded)
            else:
                if old is not None:
                    deletes.append(old)  # a "no box" state, now visible without a box: gone
                continue
            if new != old:
                puts.append(new)
        project.delete_boxes(deletes)
        project.put_boxes(puts)
    return len(puts) + len(deletes)


def delete_machine_boxes(project: Project, track_id: int, first: int, last: int) -> int:
    """Delete the tracked and interpolated rows in frames first..last; manual rows stay. Returns the count."""
    first, last = check_span(project, track_id, first, last)
    with project.edit(f"delete machine boxes on frames {first + 1}-{last + 1}"):
        machine = [r for r in project.boxes(track_id, first, last) if r.source != "manual"]
        project.delete_boxes(machine)
    return len(machine)


def parse_span(text: str) -> tuple[int, int | None]:
    """A 1-based span from the command line as 0-based (first, last): "40-80", "40", or "40-" (last None:
    up to the next keyframe)."""
    start, dash, end = text.strip().partition("-")
    try:
        first = int(start) - 1
        last = (int(end) - 1 if end.strip() else None) if dash else first
    except ValueError:
        raise ProjectError(f"frames {text!r}: expected 1-based frames like 40-80, 40, or 40- (to the next keyframe)") from None
    return first, last
