"""Two writers on one project (issue 13): a run in this process, the CLI in another.

The probes of the issue as tests: a manual box written by another process while a run tracks
that frame survives; undo from another process during a run is refused, not half-applied; a run
killed with SIGKILL reads "interrupted" on the next open instead of "running" forever.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from projects import Project, propagate
from sstrack import Tracker, load_model
from tests.reliability_support import REPO, child_env


@pytest.fixture(scope="module")
def tracker():
    torch.set_num_threads(1)
    return Tracker(load_model("sstrack-lite"), device="cpu")


def cli(*args: str) -> subprocess.CompletedProcess:
    """The project CLI in its own process (another writer)."""
    return subprocess.run([sys.executable, "-m", "projects.cli", *args], cwd=REPO, env=child_env(),
                          capture_output=True, text=True, timeout=120)


def test_a_manual_box_written_by_another_process_during_a_run_survives(tmp_path, videos_dir, tracker):
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "object")
        proj.set_box(track.id, 0, (100, 80, 60, 60))
        run = propagate(proj, video.id, tracker, direction="forward")
        for result in run:
            if result.frame == 5:
                # Frame 21 (1-based) = index 20: ahead of the run, which will reach it soon.
                done = cli("add-box", str(folder), str(video.id), "21", "10,12,40,30", "--track", "object")
                assert done.returncode == 0, done.stderr
        rows = {r.frame: r for r in proj.boxes(track.id)}
        assert rows[20].source == "manual" and rows[20].box == (10, 12, 40, 30)
        # The run stopped at the new keyframe: nothing past it was written by this run.
        run_id = proj.runs()[-1]["id"]
        assert all(r.run_id == run_id for f, r in rows.items() if 0 < f < 20)
        assert not any(r.source == "tracked" and r.run_id == run_id for f, r in rows.items() if f > 20)
        # Undo takes back the manual box (the newest step), then the run, nothing else.
        assert proj.undo() == "add box on frame 21"
        assert proj.undo() == "track forward"
        assert [r.frame for r in proj.boxes(track.id)] == [0]


def test_undo_from_another_process_during_a_run_is_refused_and_history_stays_whole(tmp_path, videos_dir, tracker):
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "tree.avi")
        track = proj.add_track(video.id, "object")
        proj.set_box(track.id, 0, (100, 80, 60, 60))
        refused = None
        for result in propagate(proj, video.id, tracker, direction="forward"):
            if result.frame == 5:
                refused = cli("undo", str(folder))
        assert refused is not None and refused.returncode != 0
        assert "still tracking" in refused.stderr and str(os.getpid()) in refused.stderr
        assert len(proj.boxes(track.id)) == video.frames
        assert proj.conn.execute("PRAGMA foreign_key_check").fetchall() == []
        # After the run the same undo works and takes back every box the run wrote.
        done = cli("undo", str(folder))
        assert done.returncode == 0 and "track forward" in done.stdout
        assert [r.frame for r in proj.boxes(track.id)] == [0]


@pytest.mark.slow
def test_a_killed_run_reads_interrupted_on_reopen(tmp_path, videos_dir):
    folder = tmp_path / "proj"
    with Project.create(folder) as proj:
        video = proj.add_video(videos_dir / "vtest.avi")
        track = proj.add_track(video.id, "person")
        proj.set_box(track.id, 0, (320, 200, 60, 120))
    child = subprocess.Popen([sys.executable, "-m", "projects.cli", "--threads", "1", "track", str(folder)],
                             cwd=REPO, env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            with Project.open(folder) as watcher:
                if watcher.count_boxes().get("tracked", 0) >= 5:
                    assert watcher.runs()[-1]["status"] == "running"  # alive: not marked
                    break
            time.sleep(0.3)
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    with Project.open(folder) as proj:
        run = proj.runs()[-1]
        assert run["status"] == "interrupted" and run["finished"]
        assert [r["id"] for r in proj.interrupted_runs()] == [run["id"]]
        # Its undo step is usable again: the killed run no longer blocks undo.
        assert proj.undo() == "track both"
