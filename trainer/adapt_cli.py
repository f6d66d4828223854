"""`sstrack-adapt`: one adaptation round of a model to one video of a project (trainer.adapt).

    sstrack-adapt PROJECT [--video V] [--base MODEL] [--seconds S] [--out DIR]
    sstrack-adapt PROJECT --video V --recheck MODEL [--out DIR]

The project is only read. The round's folder (default PROJECT/models/adapt-<video>-<time>) gets
the checkpoint, the model and `result.json` (written last, atomically: a folder without it is a
round that did not finish). The app runs this as a child process (app/adapt_run.py); SIGTERM
stops the round with its checkpoint saved and writes no result.

`--recheck MODEL` trains nothing: a model a round adopted without a held-out keyframe (its
round's `result.json` says so) is judged on the keyframes drawn since, against the model it
replaced (`trainer.adapt.recheck_unlabelled`); `result.json` names the model to use from now on.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from projects import Project, ProjectError
from sstrack.errors import SSTrackError
from sstrack.fileio import atomic_write_bytes, regular_file_problem
from trainer.adapt import (
    MAX_ROUND_SECONDS,
    SECONDS_PER_100_FRAMES,
    AdaptResult,
    adapt_video,
    recheck_unlabelled,
    round_budget,
    trained_boxes,
)
from trainer.cli import prepare_training_process
from trainer.clips import NoUsableClipsError
from trainer.loop import TrainingError


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(prog="sstrack-adapt", description="Adapt a tracker to one video of a project, from its keyframes.")
    parser.add_argument("project", type=Path, help="project folder")
    parser.add_argument("--video", default=None, help="video id, name or path (default: the project's first)")
    parser.add_argument("--base", default="sstrack-lite", help="the model to adapt (name or file)")
    parser.add_argument("--seconds", type=float, default=None,
                        help=f"training budget (default {SECONDS_PER_100_FRAMES:g} s per 100 frames, at most {MAX_ROUND_SECONDS:g})")
    parser.add_argument("--out", type=Path, default=None, help="round folder (default PROJECT/models/adapt-...)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads for torch")
    parser.add_argument("--recheck", type=Path, default=None, metavar="MODEL",
                        help="train nothing: judge MODEL, adopted by a round without labels, on the keyframes drawn since")
    parser.add_argument("--parent-pid", type=int, default=None, metavar="PID",
                        help="stop as when told to (SIGTERM) once process PID, the app that started the round, is gone")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; exit 0 when the round ran (adopted or not), 2 on bad input, 130 when stopped."""
    args = build_parser().parse_args(argv)
    prepare_training_process(args.threads)
    if args.parent_pid is not None:
        stop_when_orphaned(args.parent_pid)
    try:
        with Project.open(args.project) as project:
            video = project.find_video(args.video) if args.video else _first_video(project)
            seconds = args.seconds if args.seconds is not None else round_budget(video.frames)
            # Absolute: the app stores this path as the video's model, and may run from elsewhere next time.
            kind = "recheck" if args.recheck else "adapt"
            out = (args.out or project.folder / "models" / f"{kind}-{video.id}-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
            if args.recheck:
                outcome = recheck_round(project, video.id, args.recheck)
            else:
                outcome = result_dict(adapt_video(project, video.id, args.base, out, seconds), args.base)
    except KeyboardInterrupt:
        print("\nstopped; the round's checkpoint is kept, no model was adopted", file=sys.stderr)
        return 130
    except (ProjectError, SSTrackError, NoUsableClipsError, TrainingError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "result.json", json.dumps(outcome, indent=2).encode())
    print(outcome["reason"])
    return 0


def result_dict(result: AdaptResult, base: str) -> dict[str, object]:
    """The JSON form of a round's result; `base` and `trained` let `--recheck` judge it later."""
    return {
        "accepted": result.accepted, "reason": result.reason, "model": str(result.model) if result.model else None,
        "before": asdict(result.before) if result.before else None, "after": asdict(result.after) if result.after else None,
        "seconds": round(result.seconds, 1), "steps": result.steps, "base": base, "unlabelled": result.unlabelled,
        "trained": _keyframes_json(result.trained), "read": _keyframes_json(result.read),
    }


def _keyframes_json(objects: tuple[dict[int, tuple[float, float, float, float]], ...]) -> list[list[list[float]]]:
    return [[[frame, *box] for frame, box in sorted(boxes.items())] for boxes in objects]


def recheck_round(project: Project, video_id: int, model: Path) -> dict[str, object]:
    """`--recheck`: the verdict on `model` from the keyframes drawn since its round; "model" is the one to use."""
    source = model.parent / "result.json"
    try:
        problem = regular_file_problem(source, 64 << 20)  # a FIFO here hung the recheck
        if problem is not None:
            raise ValueError(f"it is {problem}")
        round_result = json.loads(source.read_text())
        unlabelled, base = bool(round_result.get("unlabelled")), str(round_result["base"])
        trained = trained_boxes(round_result["trained"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:  # a list, deep nesting
        raise ValueError(f"{source}: not the result of an adaptation round ({error}); pass the model.safetensors an sstrack-adapt round wrote") from None
    judged = recheck_unlabelled(project, video_id, model, base, trained) if unlabelled else None
    if judged is None:
        why = "no keyframe drawn since it was adopted" if unlabelled else "it was judged on held-out keyframes when adopted"
        return {"recheck": True, "accepted": True, "model": str(model), "base": base, "reason": f"adapted model kept: {why}"}
    return {"recheck": True, "accepted": judged.accepted, "model": str(model) if judged.accepted else base, "base": base,
            "reason": judged.reason, "before": asdict(judged.before), "after": asdict(judged.after)}


def stop_when_orphaned(app_pid: int, every_s: float = 0.5) -> None:
    """SIGTERM to this process once the app that started it is gone: the round then stops as when the app closes.

    An app killed outright (SIGTERM at logout, SIGKILL) runs no close handler; without this its
    round trained on, then left a model and a result that nothing would ever adopt or remove.
    """
    first_parent = os.getppid()

    def watch() -> None:
        while not app_gone(app_pid, first_parent):
            time.sleep(every_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="stop-when-orphaned", daemon=True).start()


def app_gone(app_pid: int, first_parent: int) -> bool:
    """Whether the app is gone: this process was handed to another parent, or (POSIX) no process `app_pid` is left.

    Both, because a launcher may stand between the app and the interpreter (a Windows virtualenv's
    python.exe): the parent is then the launcher, which may outlive the app.
    """
    if os.getppid() != first_parent:
        return True
    if os.name != "posix":
        return False  # os.kill(pid, 0) would terminate the process there
    try:
        os.kill(app_pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, another user's (the pid was reused)
    return False


def _first_video(project: Project):  # noqa: ANN202 - projects.store.Video
    videos = project.videos()
    if not videos:
        raise ProjectError(f"{project.folder}: no video yet; add one with sstrack-project add-video")
    return videos[0]


if __name__ == "__main__":
    sys.exit(main())
