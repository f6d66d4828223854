"""SSTrack network: joint encoder backbones, center head and the tracker module."""

from sstrack.model.sstrack import ModelOutput, SSTrack, build_model

__all__ = ["ModelOutput", "SSTrack", "build_model"]
