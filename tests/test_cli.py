"""End to end: the `sstrack` command on real sequences and videos from ../shared/data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from sstrack.sequences import read_boxes


def _run(*args, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "sstrack.cli", "--threads", "2", *args],
        capture_output=True, text=True, timeout=timeout,
    )


def test_track_image_folder_writes_one_box_per_frame(sot_dir, tmp_path):
    seq = sot_dir / "Deer"
    gt = read_boxes(seq / "groundtruth.txt")
    box = ",".join(f"{v:g}" for v in gt[0])
    out = tmp_path / "boxes.txt"
    result = _run("track", str(seq), "--box", box, "--out", str(out))
    assert result.returncode == 0, result.stderr
    boxes = read_boxes(out)
    assert boxes.shape == (len(gt), 4)
    assert np.isfinite(boxes).all() and (boxes[:, 2:] > 0).all()
    assert "fps" in result.stderr.splitlines()[-1]


def test_track_video_file(videos_dir, tmp_path):
    out = tmp_path / "tree.txt"
    result = _run("track", str(videos_dir / "tree.avi"), "--box", "100,100,60,60", "--out", str(out))
    assert result.returncode == 0, result.stderr
    from sstrack.video import build_index

    assert len(read_boxes(out)) == build_index(videos_dir / "tree.avi").frames


@pytest.mark.parametrize("name", ["truncated_bedroom.mp4", "empty.mp4", "not_a_video.mp4", "headless_box.mp4"])
def test_damaged_video_is_a_one_line_error(videos_dir, name):
    path = videos_dir / "damaged" / name
    result = _run("track", str(path), "--box", "10,10,20,20")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and name in lines[0] and lines[0].startswith("error:")


def test_bad_box_and_missing_file(sot_dir, tmp_path):
    result = _run("track", str(sot_dir / "Deer"), "--box", "5000,5000,20,20")
    assert result.returncode == 2 and "outside" in result.stderr
    result = _run("track", str(sot_dir / "Deer"), "--box", "1,2,3")
    assert result.returncode == 2 and "x,y,w,h" in result.stderr
    result = _run("track", str(tmp_path / "nope.mp4"), "--box", "1,2,3,4")
    assert result.returncode == 2 and "nope.mp4: no such file" in result.stderr


@pytest.mark.parametrize("where, box", [("Deer", "1,2,3"), ("Deer", "5000,5000,20,20"), ("nope.mp4", "1,2,3,4")])
def test_input_errors_come_before_torch_loads(sot_dir, where, box):
    # Importing torch and timm takes ~5 s here: a mistyped box or path is answered without them.
    probe = (
        "import sys\nfrom sstrack.cli import main\n"
        f"code = main(['track', {str(sot_dir / where)!r}, '--box', {box!r}])\n"
        "print(code, 'torch' in sys.modules, 'timm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["2", "False", "False"], result.stderr
    assert result.stderr.startswith("error:") and len(result.stderr.strip().splitlines()) == 1


def test_errors_while_a_video_is_open_reach_the_terminal(videos_dir):
    # The decoder's stderr used to stay pointed at /dev/null for as long as frames were being
    # read, so a box outside a video's frame exited 2 with nothing printed (and no progress bar).
    result = _run("track", str(videos_dir / "01_dog.mp4"), "--box", "5000,5000,50,50")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error:") and "outside" in result.stderr


def test_eval_prints_one_table_with_the_peers(sot_dir, peers_dir, tmp_path):
    out = tmp_path / "eval.json"
    result = _run("eval", str(sot_dir / "Deer"), "--peers", str(peers_dir), "--json", str(out))
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[0]
    for name in ("sstrack-lite", "MIL", "NanoTrack", "VitTrack"):
        assert name in header
    assert "mean AUC" in result.stdout and "median fps" in result.stdout
    numbers = json.loads(out.read_text())
    assert set(numbers) == {"sstrack-lite", "MIL", "NanoTrack", "VitTrack"}
    assert 0 <= numbers["NanoTrack"]["mean"]["auc"] <= 100
    assert numbers["MIL"]["sequences"]["Deer"]["fps"] > 0


def test_info_shows_the_shipped_card():
    result = _run("info")
    assert result.returncode == 0, result.stderr
    assert "sstrack-lite" in result.stdout and "training" in result.stdout


def test_labelling_without_tracking_never_loads_torch(sot_dir, tmp_path):
    # An annotator who only adds keyframes, interpolates and exports waits for no model.
    project = tmp_path / "p"
    steps = [
        ["new", str(project)],
        ["add-video", str(project), str(sot_dir / "Deer" / "img")],
        ["add-box", str(project), "1", "1", "300,80,100,90"],
        ["add-box", str(project), "1", "20", "320,90,100,90"],
        ["interpolate", str(project)],
        ["export", str(project), "--format", "mot", "--out", str(tmp_path / "mot")],
    ]
    probe = (
        "import sys\nfrom projects.cli import main\n"
        f"codes = [main(step) for step in {steps!r}]\n"
        "print(*codes, 'torch' in sys.modules, 'timm' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert result.stdout.split()[-8:] == ["0"] * 6 + ["False", "False"], result.stdout + result.stderr
    gt = (tmp_path / "mot" / "Deer" / "gt" / "gt.txt").read_text().splitlines()
    assert len(gt) == 20  # the two keyframes and the 18 boxes between them
