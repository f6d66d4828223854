"""Shared fixtures: the read-only data beside the repository (../shared)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"{path} is missing: the tests read ../shared (data, peers) beside the repository")
    return path


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder (data/, peers/, docs/)."""
    return _require(SHARED)


@pytest.fixture(scope="session")
def sot_dir(shared: Path) -> Path:
    """The 12 labelled SOT sequences."""
    return _require(shared / "data" / "sot")


@pytest.fixture(scope="session")
def videos_dir(shared: Path) -> Path:
    """Real unlabeled clips (and damaged/ ones)."""
    return _require(shared / "data" / "videos")


@pytest.fixture(scope="session")
def peers_dir(shared: Path) -> Path:
    """NanoTrack and VitTrack ONNX weights."""
    return _require(shared / "peers")


@pytest.fixture()
def rng() -> np.random.Generator:
    """A seeded random generator."""
    return np.random.default_rng(1234)
