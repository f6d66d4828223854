"""`sstrack-project`: manage an annotation project from the command line (headless).

    sstrack-project new DIR
    sstrack-project add-video DIR VIDEO
    sstrack-project add-box DIR VIDEO FRAME x,y,w,h [--track NAME]
    sstrack-project track DIR [--video V] [--direction forward|backward|both] [--model M]
    sstrack-project interpolate DIR [--video V]
    sstrack-project export DIR --format lasot|got10k|cocovid|mot|cvat --out OUT
    sstrack-project import DIR --format F PATH
    sstrack-project info DIR
    sstrack-project undo DIR / redo DIR
    sstrack-project mark DIR VIDEO FRAMES --track NAME --state out-of-view|occluded|visible
    sstrack-project delete-machine-boxes DIR VIDEO FRAMES --track NAME
    sstrack-project split-track DIR VIDEO TRACK --at FRAME / merge-tracks DIR VIDEO KEEP OTHER
    sstrack-project swap-tracks DIR VIDEO TRACK_A TRACK_B --from FRAME

FRAMES is a span: 40-80, 40, or 40- (from frame 40 up to the track's next keyframe).

FRAME is 1-based, as shown in the app and in exported file names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TextIO

from tqdm import tqdm

from projects.errors import ProjectError
from projects.formats import EXPORTERS, FORMAT_LIMITS, FORMAT_NAMES, ExportOptions, export, import_
from projects.propagate import interpolate, propagate
from projects.spans import delete_machine_boxes, mark_span, parse_span, span_to_next_keyframe
from projects.store import Project, Track
from projects.track_edits import merge_tracks, split_track, swap_tracks
from sstrack.absence import AbsenceRule
from sstrack.errors import SSTrackError


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="sstrack-project", description="Annotation projects, headless.")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: the cores the load leaves idle)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("new", help="create a project folder").add_argument("dir", type=Path)
    add = sub.add_parser("add-video", help="add a video file or frame folder")
    add.add_argument("dir", type=Path)
    add.add_argument("video", type=Path)
    box = sub.add_parser("add-box", help="add a manual box (a keyframe)")
    box.add_argument("dir", type=Path)
    box.add_argument("video", help="video id, name or path")
    box.add_argument("frame", type=int, help="1-based frame number")
    box.add_argument("box", help="x,y,w,h in pixels")
    box.add_argument("--track", default="object", help="track name, or id:N (a new name makes a new track)")
    track = sub.add_parser("track", help="propagate the keyframes with the tracker")
    track.add_argument("dir", type=Path)
    track.add_argument("--video", help="only this video (default: all)")
    track.add_argument("--direction", choices=("forward", "backward", "both"), default="both")
    track.add_argument("--model", default="sstrack-lite")
    track.add_argument("--device", default="auto")
    track.add_argument("--backend", default="auto", choices=("auto", "torch", "onnx"),
                       help="network runtime: auto = ONNX Runtime on the CPU where it is exact, else torch")
    track.add_argument("--stop-below", type=float, default=None, help="stop a track whose score stays below this")
    track.add_argument("--no-absence", action="store_true",
                       help="write a box on every frame, never an out-of-view / occluded state judged by the tracker")
    interp = sub.add_parser("interpolate", help="linear interpolation between keyframes")
    interp.add_argument("dir", type=Path)
    interp.add_argument("--video")
    exp = sub.add_parser("export", help="export labels (and frames)")
    exp.add_argument("dir", type=Path)
    exp.add_argument("--format", required=True, choices=sorted(EXPORTERS))
    exp.add_argument("--out", required=True, type=Path)
    exp.add_argument("--class-name", help="one class for every track: LaSOT class, GOT-10k object class, MOT class (default: each track's class)")
    exp.add_argument("--split", default="train", help="GOT-10k split folder")
    exp.add_argument("--toolkit-annos", action="store_true", help="LaSOT: also write annos/ for the MATLAB toolkit")
    exp.add_argument("--overwrite", action="store_true")
    imp = sub.add_parser("import", help="import labels")
    imp.add_argument("dir", type=Path)
    imp.add_argument("--format", required=True, choices=sorted(EXPORTERS))
    imp.add_argument("path", type=Path)
    relink = sub.add_parser("relink", help="point a moved (or re-encoded) video at its new file")
    relink.add_argument("dir", type=Path)
    relink.add_argument("video", help="video id, name or old path")
    relink.add_argument("new_path", type=Path)
    relink.add_argument("--force", action="store_true", help="accept a file with other bytes (a re-encode) of the same length and size")
    remove = sub.add_parser("remove-video", help="remove a video with its tracks from the project (undoable; the file stays)")
    remove.add_argument("dir", type=Path)
    remove.add_argument("video", help="video id, name or path")
    sub.add_parser("info", help="summary of a project").add_argument("dir", type=Path)
    sub.add_parser("undo", help="undo the latest edit").add_argument("dir", type=Path)
    sub.add_parser("redo", help="redo the latest undone edit").add_argument("dir", type=Path)
    for name, text in (("mark", "mark a span of frames out of view, occluded or visible (one undo step)"),
                       ("delete-machine-boxes", "delete tracked/interpolated boxes in a span; manual boxes stay")):
        span = sub.add_parser(name, help=text)
        span.add_argument("dir", type=Path)
        span.add_argument("video", help="video id, name or path")
        span.add_argument("frames", help="1-based frames: 40-80, 40, or 40- (up to the next keyframe)")
        span.add_argument("--track", required=True, help="track name, or id:N where names repeat")
        if name == "mark":
            span.add_argument("--state", required=True, choices=("out-of-view", "occluded", "visible"))
    split = sub.add_parser("split-track", help="move a track's frames from --at on into a new track (one undo step)")
    merge = sub.add_parser("merge-tracks", help="move OTHER's boxes into KEEP and delete OTHER (manual boxes win)")
    swap = sub.add_parser("swap-tracks", help="exchange two tracks' boxes from --from on (fix an identity switch)")
    for command, names in ((split, ("track",)), (merge, ("keep", "other")), (swap, ("track_a", "track_b"))):
        command.add_argument("dir", type=Path)
        command.add_argument("video", help="video id, name or path")
        for name in names:
            command.add_argument(name, help="track name, or id:N where names repeat")
    split.add_argument("--at", type=int, required=True, help="1-based first frame of the new track")
    swap.add_argument("--from", dest="start", type=int, required=True, help="1-based first frame to swap")
    return parser


def _say(line: str, file: TextIO | None = None) -> None:
    """Print one line whose names come from files (labels, video names, paths) with every
    unprintable character escaped: a label's newline forged a line of output, and its terminal
    escape sequences or bidi overrides were obeyed by the user's terminal."""
    shown = "".join(c if c.isprintable() else repr(c)[1:-1] for c in line)
    print(shown, file=file or sys.stdout)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        if args.command == "new":
            Project.create(args.dir).close()
            _say(f"created project {args.dir}")
            return 0
        with Project.open(args.dir) as project:
            return COMMANDS[args.command](project, args)
    except (ProjectError, SSTrackError) as error:
        _say(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; everything written so far is saved", file=sys.stderr)
        return 130


def _add_video(project: Project, args: argparse.Namespace) -> int:
    video = project.add_video(args.video)
    _say(f"added video {video.id}: {video.name} ({video.frames} frames, {video.width}x{video.height}, {video.fps:.2f} fps)")
    return 0


def _add_box(project: Project, args: argparse.Namespace) -> int:
    video = project.find_video(args.video)
    try:
        values = [float(v) for v in args.box.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise ProjectError(f"box {args.box!r}: expected x,y,w,h, e.g. 120,80,60,40")
    with project.edit(f"add box on frame {args.frame}"):  # a refused box leaves no new track behind
        track = project.find_track(video.id, args.track) or project.add_track(video.id, args.track)
        project.set_box(track.id, args.frame - 1, values)
    _say(f"manual box on frame {args.frame} of {video.name}, track {track.label}")
    return 0


def _track(project: Project, args: argparse.Namespace) -> int:
    videos = [project.find_video(args.video)] if args.video else project.videos()
    # torch and the model load only for tracking: export, import and edits start in well under a second.
    from sstrack.checkpoints import load_model
    from sstrack.threads import use_cpu_threads
    from sstrack.tracker import Tracker

    use_cpu_threads(args.threads)  # the idle cores unless --threads says otherwise
    tracker = Tracker(load_model(args.model), device=args.device, backend=args.backend)
    for video in videos:
        generator = propagate(project, video.id, tracker, direction=args.direction, stop_below=args.stop_below,
                              absence=None if args.no_absence else AbsenceRule())
        bar = tqdm(desc=video.name, unit="box", file=sys.stderr)
        last, gone = None, 0
        try:
            for result in generator:
                gone += len(result.absent)
                bar.total = result.total
                bar.update(result.done - bar.n)
                bar.set_postfix(fps=f"{result.fps:.1f}")
                last = result
        finally:
            generator.close()
            bar.close()
        if last is None:
            _say(f"{video.name}: nothing to track (add a manual box first)", file=sys.stderr)
        else:
            absent = f", {gone} of them judged gone (out of view / occluded: no box)" if gone else ""
            _say(f"{video.name}: {last.done} boxes in {last.elapsed:.1f} s ({last.fps:.1f} frames/s, {tracker.device.type}){absent}")
    return 0


def _interpolate(project: Project, args: argparse.Namespace) -> int:
    videos = [project.find_video(args.video)] if args.video else project.videos()
    total = sum(interpolate(project, v.id) for v in videos)
    _say(f"interpolated {total} boxes")
    return 0


def _export(project: Project, args: argparse.Namespace) -> int:
    options = ExportOptions(class_name=args.class_name, split=args.split, toolkit_annos=args.toolkit_annos, overwrite=args.overwrite)
    bar = tqdm(desc=f"export {args.format}", unit="frame", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.update(done - bar.n)

    try:
        report = export(project, args.format, args.out, options, progress)
    finally:
        bar.close()
    for warning in report.warnings:
        _say(f"warning: {warning}", file=sys.stderr)
    _say(report.summary())
    _say(f"{FORMAT_NAMES[args.format]}: {FORMAT_LIMITS[args.format]}")
    return 0


def _import(project: Project, args: argparse.Namespace) -> int:
    ids = import_(project, args.format, args.path)
    _say(f"imported {len(ids)} track(s) from {args.path}")
    return 0


def _info(project: Project, args: argparse.Namespace) -> int:
    _say(f"project {project.folder}")
    for video in project.videos():
        state = "MISSING " if video.missing else ""
        _say(
            f"  video {video.id}: {state}{video.name} {video.frames} frames {video.width}x{video.height} "
            f"access: {video.access} ({video.path})"
        )
        for track in project.tracks(video.id):
            rows = project.boxes(track.id)
            counts = {s: sum(1 for r in rows if r.source == s) for s in ("manual", "tracked", "interpolated")}
            _say(f"    track {track.id} {track.label}: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    return 0


def _relink(project: Project, args: argparse.Namespace) -> int:
    video = project.relink_video(project.find_video(args.video).id, args.new_path, force=args.force)
    _say(f"video {video.id} {video.name} now reads {video.path} ({video.frames} frames, access: {video.access})")
    return 0


def _remove_video(project: Project, args: argparse.Namespace) -> int:
    video = project.find_video(args.video)
    project.remove_video(video.id)
    _say(f"removed video {video.id} {video.name} and its tracks (undo brings them back; the file was not touched)")
    return 0


def _undo(project: Project, args: argparse.Namespace) -> int:
    label = project.undo()
    _say(f"undid: {label}" if label else "nothing to undo")
    return 0


def _redo(project: Project, args: argparse.Namespace) -> int:
    label = project.redo()
    _say(f"redid: {label}" if label else "nothing to redo")
    return 0


def _named_track(project: Project, video_name: str, label: str) -> Track:
    """The video's track of that name, or a one-line error listing the names there are."""
    video = project.find_video(video_name)
    track = project.find_track(video.id, label)
    if track is None:
        names = ", ".join(f"id:{t.id} {t.label}" for t in project.tracks(video.id)) or "none"
        raise ProjectError(f"{video.name} has no track {label!r} (tracks: {names})")
    return track


def _span(project: Project, args: argparse.Namespace) -> tuple[int, int, int, str]:
    """The track and 0-based span a span command names, with the video's name."""
    video = project.find_video(args.video)
    track = _named_track(project, args.video, args.track)
    first, last = parse_span(args.frames)
    if last is None:
        first, last = span_to_next_keyframe(project, track.id, first)
    return track.id, first, last, video.name


def _mark(project: Project, args: argparse.Namespace) -> int:
    track_id, first, last, name = _span(project, args)
    changed = mark_span(project, track_id, first, last, occluded=args.state == "occluded", out_of_view=args.state == "out-of-view")
    _say(f"{name}, track {args.track}: frames {first + 1}-{last + 1} marked {args.state} ({changed} frames changed)")
    return 0


def _delete_machine_boxes(project: Project, args: argparse.Namespace) -> int:
    track_id, first, last, name = _span(project, args)
    count = delete_machine_boxes(project, track_id, first, last)
    _say(f"{name}, track {args.track}: deleted {count} machine boxes on frames {first + 1}-{last + 1}")
    return 0


def _split_track(project: Project, args: argparse.Namespace) -> int:
    new = split_track(project, _named_track(project, args.video, args.track).id, args.at - 1)
    _say(f"frames from {args.at} on are now track {new.label}")
    return 0


def _merge_tracks(project: Project, args: argparse.Namespace) -> int:
    keep, other = (_named_track(project, args.video, name) for name in (args.keep, args.other))
    moved = merge_tracks(project, keep.id, other.id)
    _say(f"merged {other.label} into {keep.label} ({moved} boxes moved)")
    return 0


def _swap_tracks(project: Project, args: argparse.Namespace) -> int:
    a, b = (_named_track(project, args.video, name) for name in (args.track_a, args.track_b))
    moved = swap_tracks(project, a.id, b.id, args.start - 1)
    _say(f"swapped {a.label} and {b.label} from frame {args.start} ({moved} boxes)")
    return 0


COMMANDS = {
    "add-video": _add_video, "add-box": _add_box, "track": _track, "interpolate": _interpolate,
    "export": _export, "import": _import, "info": _info, "undo": _undo, "redo": _redo,
    "relink": _relink, "remove-video": _remove_video, "mark": _mark, "delete-machine-boxes": _delete_machine_boxes,
    "split-track": _split_track, "merge-tracks": _merge_tracks, "swap-tracks": _swap_tracks,
}


if __name__ == "__main__":
    sys.exit(main())
