"""A model file can never run code (issue 19, critical): a TorchScript archive named like an
official checkpoint is refused before torch sees it, through every entry point that loads one.

The payload is real code in the archive: its __setstate__ (run by torch.jit.load, which torch.load
with weights_only=False calls for TorchScript archives) prints a marker from TorchScript's C++
runtime; the tests read the process's own stdout (file descriptor 1) for it.
"""

# No `from __future__ import annotations`: TorchScript needs the annotations as real types.
import json
from pathlib import Path

import pytest
import torch

from sstrack import load_model
from sstrack.errors import CheckpointError

MARKER = "PAYLOAD-RAN"


class _Payload(torch.nn.Module):
    """TorchScript module whose unpickling writes into `marker_path`."""

    marker_path: str

    def __init__(self, marker_path: str) -> None:
        super().__init__()
        self.marker_path = marker_path
        self.x = torch.zeros(1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return t

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return (self.x, self.marker_path, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        print("PAYLOAD-RAN", state[1])
        self.x = state[0]
        self.marker_path = state[1]
        self.training = state[2]


@pytest.fixture()
def payload(tmp_path: Path, capfd):
    archive = tmp_path / "SSTrack_ep0150.pth.tar"
    torch.jit.script(_Payload("archive")).save(str(archive))
    assert MARKER not in capfd.readouterr().out  # scripting and saving run nothing
    return archive


@pytest.mark.filterwarnings("ignore")
def test_the_payload_is_live(payload, capfd):
    # Without our check the payload runs: this is what every entry point below must prevent.
    torch.load(payload, weights_only=False)
    assert MARKER in capfd.readouterr().out


def test_load_model_refuses(payload, capfd):
    with pytest.raises(CheckpointError, match="TorchScript"):
        load_model(payload)
    assert MARKER not in capfd.readouterr().out


@pytest.mark.filterwarnings("ignore")
def test_plain_torch_save_archives_still_load_as_far_as_their_content(tmp_path):
    path = tmp_path / "plain.pth.tar"
    torch.save({"net": {"unrelated.weight": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError) as error:
        load_model(path)
    assert "TorchScript" not in str(error.value) and "refused" not in str(error.value)


def test_cli_entry_points_refuse(payload, tmp_path, videos_dir, capfd):
    from projects import Project
    from projects.cli import main as project_main
    from sstrack.cli import main as sstrack_main
    from trainer.cli import main as train_main

    archive = payload

    def refused(main, argv: list[str]) -> None:
        assert main(argv) != 0
        captured = capfd.readouterr()
        assert "TorchScript" in captured.err, (argv, captured.err)

    refused(sstrack_main, ["info", str(archive)])
    refused(sstrack_main, ["track", str(videos_dir / "tree.avi"), "--box", "100,80,40,40", "--model", str(archive)])
    with Project.create(tmp_path / "proj") as project:
        video = project.add_video(videos_dir / "tree.avi")
        project.set_box(project.add_track(video.id, "a").id, 0, (100, 80, 40, 40))
    refused(project_main, ["track", str(tmp_path / "proj"), "--model", str(archive)])
    refused(train_main, ["--data", str(videos_dir / "tree.avi"), "--base", str(archive), "--steps", "1", "--out", str(tmp_path / "run")])
    # --resume: a latest.json whose "weights" names the payload.
    run = tmp_path / "resume"
    run.mkdir()
    from trainer.config import TrainConfig

    torch.save({"step": 1, "train": json.dumps(TrainConfig().to_dict())}, run / "ckpt.state.pt")
    (run / "evil.pth.tar").write_bytes(archive.read_bytes())
    (run / "latest.json").write_text(json.dumps({"state": "ckpt.state.pt", "weights": "evil.pth.tar"}))
    refused(train_main, ["--data", str(videos_dir / "tree.avi"), "--resume", "--out", str(run)])
