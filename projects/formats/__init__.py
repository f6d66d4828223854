"""Export / import of LaSOT, GOT-10k, COCO-VID, MOT and CVAT for video 1.1; one plain module per format."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path

from projects.errors import FormatError
from projects.formats.cocovid import export_cocovid, import_cocovid
from projects.formats.common import ExportCancelled, ExportOptions, ExportReport, Progress
from projects.formats.cvat import export_cvat, import_cvat
from projects.formats.got10k import export_got10k, import_got10k
from projects.formats.lasot import export_lasot, import_lasot
from projects.formats.mot import export_mot, import_mot
from projects.store import Project

EXPORTERS: dict[str, Callable[..., ExportReport]] = {
    "lasot": export_lasot, "got10k": export_got10k, "cocovid": export_cocovid, "mot": export_mot, "cvat": export_cvat,
}
IMPORTERS: dict[str, Callable[[Project, Path], list[int]]] = {
    "lasot": import_lasot, "got10k": import_got10k, "cocovid": import_cocovid, "mot": import_mot, "cvat": import_cvat,
}
FORMAT_NAMES = {"lasot": "LaSOT", "got10k": "GOT-10k", "cocovid": "COCO-VID", "mot": "MOT", "cvat": "CVAT for video 1.1"}
# What each format keeps of a project and what it cannot carry (shown in the export dialog and by
# the CLI; tests/test_formats.py::test_round_trip encodes the same list).
FORMAT_LIMITS = {
    "lasot": "One sequence per track, named <class>-<k>: a class keeps letters, digits and _ only (pytracking "
             "splits a name at '-'). Boxes are 1-based whole pixels clipped to the frame. Not carried: object names "
             "(only classes), attributes, which boxes are manual, tracked or interpolated, and scores (an import marks every box manual); "
             "which model made which frames is in the export's marker beside it (<folder>.sstrack-export.json).",
    "got10k": "One sequence per track. Out of view is absence, a fully occluded box is cover 0, and a fully occluded frame "
              "without a box is absence too (GOT-10k's 'absent': it reads back as out of view); the frame rate and a "
              "GOT-10k source's url and classes are kept. Not carried: object names (only the class), attributes, "
              "box sources and scores (an import marks every box manual); which model made which frames is in the "
              "export's marker beside it (<folder>.sstrack-export.json).",
    "cocovid": "Everything a project stores per box, with source, score and the model that made it (maker) as extra fields, and each object's "
               "name and attributes. A hidden object's box "
               "is an ignore region (iscrowd 1, ignore 1, visibility 0): pycocotools and mmtracking skip it, but TrackEval's TAO "
               "loader reads every annotation as ground truth, hidden ones too. "
               "Not carried: frames marked hidden with no box.",
    "mot": "MOT17 class table (pedestrian = 1), a label map beside gt. Occluded is visibility 0. Not carried: "
           "out-of-view frames (no row), attributes, box sources and scores (which model made which frames is in the "
           "export's marker beside it (<folder>.sstrack-export.json)); the frame rate is a whole number.",
    "cvat": "Everything: every box a keyframe, outside for out of view and track ends, occluded, labels (classes), "
            "object attributes on every shape; our names, sources, scores and models as extra fields CVAT ignores. "
            "An import keeps one value per attribute and object (the first shape's).",
}


def export(project: Project, fmt: str, out: str | Path, options: ExportOptions | None = None, progress: Progress | None = None) -> ExportReport:
    """Export the project in format `fmt` to the folder `out` (atomically)."""
    if fmt not in EXPORTERS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(EXPORTERS)}")
    return EXPORTERS[fmt](project, Path(out), options or ExportOptions(), progress)


def import_(project: Project, fmt: str, path: str | Path) -> list[int]:
    """Import annotations in format `fmt` from `path`; returns the new track ids."""
    if fmt not in IMPORTERS:
        raise FormatError(f"unknown format {fmt!r}; choose one of {', '.join(IMPORTERS)}")
    if not Path(path).exists():
        raise FormatError(f"{path}: no such file or folder")
    try:
        return IMPORTERS[fmt](project, Path(path))
    except (ValueError, ArithmeticError, TypeError, sqlite3.IntegrityError) as error:
        # A value no reader's check foresaw (a 5,000-digit number, 1e400 as an integer): still a
        # one-line error, not a traceback (nor, in the app, an import that silently does nothing).
        # The import's single edit was rolled back whole.
        raise FormatError(
            f"{path}: cannot be imported as {FORMAT_NAMES[fmt]} ({type(error).__name__}: {str(error)[:100]}); "
            "check the file"
        ) from error


__all__ = ["EXPORTERS", "ExportCancelled", "ExportOptions", "ExportReport", "FORMAT_LIMITS", "FORMAT_NAMES", "IMPORTERS", "export", "import_"]
