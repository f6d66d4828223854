"""Edits of whole tracks (MOT-style identity fixes): split a track at a frame, merge two tracks,
swap two tracks' identities from a frame on. Each is one undo step through `Project.edit`, and
reads the rows it moves inside that write transaction.
"""

from __future__ import annotations

from dataclasses import replace

from projects.errors import ProjectError
from projects.store import BoxRecord, Project, Track


def split_track(project: Project, track_id: int, frame: int) -> Track:
    """Move the track's rows from `frame` on into a new track (same class); returns the new track."""
    track = project.track(track_id)
    with project.edit(f"split {track.label} at frame {frame + 1}"):
        moving = project.boxes(track_id, frame, None)
        if not moving:
            raise ProjectError(f"{track.label} has no box from frame {frame + 1} on; nothing to split off")
        if len(moving) == len(project.boxes(track_id)):
            raise ProjectError(f"{track.label} starts at frame {frame + 1}; split after its first frame")
        new = project.add_track(track.video_id, f"{track.label}-{frame + 1}", category=track.class_name)
        _move(project, moving, new.id)
    return project.track(new.id)


def merge_tracks(project: Project, keep_id: int, other_id: int) -> int:
    """Move `other`'s rows into `keep` and delete `other`; returns the rows moved.

    On a frame both have, a manual row beats a machine one; two manual rows (two human
    decisions that disagree) refuse the merge, naming the first such frame.
    """
    keep, other = project.track(keep_id), project.track(other_id)
    if keep.id == other.id or keep.video_id != other.video_id:
        raise ProjectError(f"cannot merge {other.label} into {keep.label}: choose another track of the same video")
    with project.edit(f"merge {other.label} into {keep.label}"):
        kept = {r.frame: r for r in project.boxes(keep.id)}
        incoming = project.boxes(other.id)
        clash = next((r.frame for r in incoming if r.source == "manual" and r.frame in kept and kept[r.frame].source == "manual"), None)
        if clash is not None:
            raise ProjectError(f"{keep.label} and {other.label} both have a manual box on frame {clash + 1}; "
                               "delete one of them, then merge")
        winners = [r for r in incoming if r.frame not in kept or (r.source == "manual" and kept[r.frame].source != "manual")]
        project.delete_boxes([kept[r.frame] for r in winners if r.frame in kept])
        _move(project, winners, keep.id)
        project.delete_track(other.id)  # its remaining rows lost to `keep`'s on the same frames
    return len(winners)


def swap_tracks(project: Project, a_id: int, b_id: int, frame: int) -> int:
    """Exchange the two tracks' rows from `frame` on (an identity switch); returns the rows moved."""
    a, b = project.track(a_id), project.track(b_id)
    if a.id == b.id or a.video_id != b.video_id:
        raise ProjectError(f"cannot swap {a.label} and {b.label}: choose two tracks of the same video")
    with project.edit(f"swap {a.label} and {b.label} from frame {frame + 1}"):
        rows_a, rows_b = project.boxes(a.id, frame, None), project.boxes(b.id, frame, None)
        project.delete_boxes(rows_a + rows_b)
        project.put_boxes([replace(r, track_id=b.id) for r in rows_a] + [replace(r, track_id=a.id) for r in rows_b])
    return len(rows_a) + len(rows_b)


def _move(project: Project, rows: list[BoxRecord], track_id: int) -> None:
    project.delete_boxes(rows)
    project.put_boxes([replace(r, track_id=track_id) for r in rows])
