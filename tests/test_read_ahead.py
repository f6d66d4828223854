"""Read-ahead decoding (projects/read_ahead.py) on real videos: the same frames as reading in line,
an idle-priority thread that stops when the reader does, errors and starvation handled."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch

from projects import Project, PropagationPlan, read_ahead, run_plan
from projects.media import MediaError, open_media
from projects.read_ahead import frames_ahead, idle_priority_available
from sstrack import Tracker, load_model

pytestmark = pytest.mark.skipif(not idle_priority_available(), reason="read-ahead needs Linux's SCHED_IDLE")


def _digests(frames) -> list[tuple[int, str]]:
    return [(i, hashlib.md5(f.tobytes()).hexdigest()) for i, f in frames]


def _ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "frames-ahead"]


def _wait_until_gone(seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while _ahead_threads() and time.monotonic() < deadline:
        time.sleep(0.02)
    return not _ahead_threads()


@pytest.mark.parametrize(("start", "stop", "step"), [(0, 120, 1), (119, -1, -1), (40, 75, 1)])
def test_frames_read_ahead_are_the_frames_read_in_line(videos_dir, start, stop, step):
    with open_media(videos_dir / "01_dog.mp4") as media:
        inline = _digests(media.iter_frames(start, stop, step))
        ahead = _digests(frames_ahead(media, start, stop, step))
    assert ahead == inline
    assert [i for i, _ in ahead] == list(range(start, stop, step))
    assert _wait_until_gone()


@pytest.mark.parametrize(("start", "stop", "step"), [(0, 71, 1), (70, -1, -1)])
def test_frames_of_an_image_folder_read_ahead_are_the_frames_read_in_line(sot_dir, start, stop, step):
    with open_media(sot_dir / "Deer") as media:
        inline = _digests(media.iter_frames(start, stop, step))
        ahead = _digests(frames_ahead(media, start, stop, step))
    assert ahead == inline and len(ahead) == 71
    assert _wait_until_gone()


def test_the_decoder_thread_runs_at_idle_priority_and_stops_when_the_reader_stops_early(videos_dir):
    with open_media(videos_dir / "01_dog.mp4") as media:
        # Patience enough for a busy machine, where the idle thread is slow to give the first frames.
        frames = frames_ahead(media, 0, media.frame_count, patience_s=30.0)
        next(frames)
        (thread,) = _ahead_threads()
        # SCHED_IDLE: it only gets a core the tracker leaves idle (the reason it does not slow the step);
        # nice 19 where this process could not lift it back (the test below).
        if read_ahead._may_leave_idle():
            assert os.sched_getscheduler(thread.native_id) == os.SCHED_IDLE
        else:
            assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == 19
        for _ in range(5):
            next(frames)
        frames.close()  # a run cancelled after 6 of 289 frames
        assert _wait_until_gone(), "the decoder thread outlived the run"


@pytest.mark.skipif(not read_ahead._may_leave_idle(), reason="this process may not lift a thread out of SCHED_IDLE")
def test_a_starved_decoder_thread_exits_as_soon_as_the_reader_is_done(videos_dir):
    # More busy processes than cores: no core is ever idle, so a SCHED_IDLE thread barely runs. Once
    # the reader is done the thread must still leave at once, not hold its decoder open for seconds.
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        time.sleep(0.5)
        with open_media(videos_dir / "01_dog.mp4") as media:
            frames = frames_ahead(media, 0, media.frame_count, patience_s=0.5)
            for _ in range(3):
                next(frames)
            frames.close()
            assert _wait_until_gone(1.0), "the starved decoder thread outlived the run"
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_where_idle_priority_could_not_be_left_the_decoder_runs_at_nice_19_and_still_exits_under_load(videos_dir, monkeypatch):
    # Unprivileged, with RLIMIT_NICE 0 (a desktop's default), a thread cannot leave SCHED_IDLE: it
    # would hold its decoder until a core fell idle. There it decodes at nice 19 instead (review 3).
    monkeypatch.setattr(read_ahead, "_may_leave_idle", lambda: False)
    burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2 * (os.cpu_count() or 1))]
    try:
        with open_media(videos_dir / "01_dog.mp4") as media:
            frames = frames_ahead(media, 0, media.frame_count, patience_s=30.0)
            next(frames)
            (thread,) = _ahead_threads()
            assert os.sched_getscheduler(thread.native_id) == os.SCHED_OTHER
            assert os.getpriority(os.PRIO_PROCESS, thread.native_id) == 19
            frames.close()
            assert _wait_until_gone(5.0), "the decoder thread at nice 19 outlived the run"  # 0.2-0.6 s seen
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def test_a_starved_decoder_thread_is_replaced_by_decoding_in_line(videos_dir):
    with open_media(videos_dir / "01_dog.mp4") as media:
        inline = _digests(media.iter_frames(10, 60))
        # No patience at all: every wait for the thread counts as starvation, so the reader takes
        # over in line at once, from wherever the thread had got to, without a gap or a repeat.
        ahead = _digests(frames_ahead(media, 10, 60, patience_s=0.0))
    assert ahead == inline
    assert _wait_until_gone()


def test_a_decode_error_on_the_thread_is_raised_to_the_reader(videos_dir, tmp_path):
    video = tmp_path / "bedroom.mp4"
    shutil.copyfile(videos_dir / "bedroom.mp4", video)
    with open_media(video) as media:
        # The file is replaced behind the index's back by a truncated copy.
        shutil.copyfile(videos_dir / "damaged" / "truncated_bedroom.mp4", video)
        with pytest.raises(MediaError, match="bedroom.mp4"):
            for _ in frames_ahead(media, 0, media.frame_count):
                pass
    assert _wait_until_gone()


def test_propagation_with_read_ahead_writes_the_boxes_it_writes_in_line(tmp_path, videos_dir):
    torch.set_num_threads(2)
    tracker = Tracker(load_model("sstrack-lite"), device="cpu")
    runs = []
    for ahead in (True, False):
        # A fresh project each: a second run over the first one's boxes fuses with them (where
        # one direction judges the dog gone, the other's old box stays), so it may differ.
        with Project.create(tmp_path / f"p{ahead}") as project:
            video = project.add_video(videos_dir / "01_dog.mp4")
            track = project.add_track(video.id, "dog")
            project.set_box(track.id, 0, (420.0, 260.0, 300.0, 260.0))
            project.set_box(track.id, 60, (380.0, 250.0, 300.0, 260.0))  # forward 1..59 and backward 59..1 fused
            # Only the span around frame 30 (the suite's time): both ways over the same 59 frames.
            plan = PropagationPlan(video.id, direction="both", around=30, read_ahead=ahead)
            results = list(run_plan(project, plan, tracker))
            rows = {r.frame: (r.x, r.y, r.w, r.h, r.score, r.out_of_view, r.occluded) for r in project.boxes(track.id) if r.source == "tracked"}
            runs.append((rows, [r.frame for r in results]))
    (ahead, ahead_order), (inline, inline_order) = runs
    assert ahead_order == inline_order and sorted(ahead) == list(range(1, 60))
    assert ahead.keys() == inline.keys()
    for frame, row in ahead.items():  # None where the object was judged gone
        np.testing.assert_allclose(np.array(row, dtype=float), np.array(inline[frame], dtype=float), atol=1e-6)
    assert _wait_until_gone()
