"""The annotation project: SQLite store, media access, propagation engine, formats, CLI. No Qt."""

from projects.errors import FormatError, MediaError, ProjectError, SchemaError, StorageError
from projects.media import Media, open_media
from projects.propagate import FrameResult, PropagationPlan, interpolate, plan_spans, propagate, run_plan
from projects.store import BoxRecord, Project, Track, Video

__all__ = [
    "BoxRecord", "FormatError", "FrameResult", "Media", "MediaError", "Project", "ProjectError", "PropagationPlan",
    "SchemaError", "StorageError", "Track", "Video", "interpolate", "open_media", "plan_spans", "propagate", "run_plan",
]
