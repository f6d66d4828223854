"""Identity fixes (issue 16): split a track, merge two, swap two from a frame on; one undo step each,
on a real project, and from the CLI."""

from __future__ import annotations

import pytest

from projects import Project, ProjectError
from projects.cli import main
from projects.store import BoxRecord
from projects.track_edits import merge_tracks, split_track, swap_tracks


@pytest.fixture()
def project(tmp_path, videos_dir):
    """tree.avi: "a" has boxes on frames 0..19 (manual on 0), "b" on frames 10..29 (manual on 10)."""
    proj = Project.create(tmp_path / "proj")
    video = proj.add_video(videos_dir / "tree.avi")
    a = proj.add_track(video.id, "a", category="car")
    b = proj.add_track(video.id, "b", category="car")
    with proj.edit("fill"):
        proj.put_boxes([BoxRecord(a.id, f, 10.0 + f, 20.0, 40.0, 30.0, "manual" if f == 0 else "tracked", None if f == 0 else 0.5) for f in range(20)])
        proj.put_boxes([BoxRecord(b.id, f, 200.0 - f, 90.0, 40.0, 30.0, "manual" if f == 10 else "tracked", None if f == 10 else 0.6) for f in range(10, 30)])
    yield proj, a, b
    proj.close()


def _xs(proj: Project, track_id: int) -> dict[int, float]:
    return {r.frame: r.x for r in proj.boxes(track_id)}


def test_split_moves_the_frames_from_here_into_a_new_track_of_the_same_class(project):
    proj, a, _ = project
    before = proj.boxes(a.id)
    new = split_track(proj, a.id, 12)
    assert (new.label, new.class_name) == ("a-13", "car")
    assert sorted(_xs(proj, a.id)) == list(range(12)) and sorted(_xs(proj, new.id)) == list(range(12, 20))
    assert proj.undo() == "split a at frame 13"
    assert proj.boxes(a.id) == before and len(proj.tracks(a.video_id)) == 2
    with pytest.raises(ProjectError, match="nothing to split off"):
        split_track(proj, a.id, 40)


def test_merge_keeps_manual_boxes_and_refuses_two_that_disagree(project):
    proj, a, b = project
    a_before, b_before = _xs(proj, a.id), _xs(proj, b.id)
    assert merge_tracks(proj, a.id, b.id) == 11  # frames 20..29, and b's manual box on frame 10
    merged = {r.frame: r for r in proj.boxes(a.id)}
    assert sorted(merged) == list(range(30)) and [t.label for t in proj.tracks(a.video_id)] == ["a"]
    assert merged[10].source == "manual" and merged[10].x == b_before[10]  # the human's box wins
    assert merged[15].x == a_before[15] and merged[25].x == b_before[25]
    proj.undo()
    assert _xs(proj, a.id) == a_before and _xs(proj, b.id) == b_before
    proj.set_box(a.id, 10, (50, 20, 40, 30))  # now both have a manual box on frame 10
    with pytest.raises(ProjectError, match="both have a manual box on frame 11"):
        merge_tracks(proj, a.id, b.id)
    assert _xs(proj, b.id) == b_before  # a refused merge changes nothing


def test_swap_exchanges_identities_from_a_frame_on(project):
    proj, a, b = project
    a_before, b_before = _xs(proj, a.id), _xs(proj, b.id)
    assert swap_tracks(proj, a.id, b.id, 15) == 5 + 15
    assert _xs(proj, a.id) == {**{f: a_before[f] for f in range(15)}, **{f: b_before[f] for f in range(15, 30)}}
    assert _xs(proj, b.id) == {**{f: b_before[f] for f in range(10, 15)}, **{f: a_before[f] for f in range(15, 20)}}
    assert proj.undo() == "swap a and b from frame 16"
    assert _xs(proj, a.id) == a_before and _xs(proj, b.id) == b_before


def test_the_cli_splits_merges_and_swaps(project, capsys):
    proj, a, b = project
    folder = str(proj.folder)
    assert main(["swap-tracks", folder, "tree", "a", "b", "--from", "16"]) == 0
    assert main(["split-track", folder, "tree", "a", "--at", "21"]) == 0
    assert "a-21" in capsys.readouterr().out
    assert main(["merge-tracks", folder, "tree", "a", "a-21"]) == 0
    assert sorted(_xs(proj, a.id)) == list(range(30))
    assert main(["merge-tracks", folder, "tree", "a", "zzz"]) == 2
    assert "no track 'zzz'" in capsys.readouterr().err
