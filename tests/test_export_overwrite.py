"""--overwrite replaces only an earlier export of this tool (issue 19, high): never the project,
a source video, or a folder holding anything the tool did not write."""

from __future__ import annotations

import shutil

import pytest

from projects import Project
from projects.errors import FormatError
from projects.formats import export, import_
from projects.formats.common import EXPORT_MARKER, ExportOptions

OVERWRITE = ExportOptions(overwrite=True)


@pytest.fixture()
def project(tmp_path, videos_dir):
    source = tmp_path / "media" / "tree.avi"
    source.parent.mkdir()
    shutil.copy(videos_dir / "tree.avi", source)
    proj = Project.create(tmp_path / "work" / "proj")
    video = proj.add_video(source)
    proj.set_box(proj.add_track(video.id, "car").id, 0, (100, 80, 40, 40))
    yield proj, source
    proj.close()


@pytest.mark.parametrize("fmt", ["lasot", "got10k", "cocovid", "mot"])
def test_an_earlier_export_is_replaced(project, tmp_path, fmt):
    proj, _ = project
    out = tmp_path / "exports" / fmt
    export(proj, fmt, out)
    assert (out / EXPORT_MARKER).is_file()
    (out / "stale.txt").write_text("from the earlier export's folder")
    export(proj, fmt, out, OVERWRITE)
    assert (out / EXPORT_MARKER).is_file() and not (out / "stale.txt").exists()


def test_an_export_still_imports_with_its_marker(project, tmp_path):
    proj, _ = project
    export(proj, "lasot", tmp_path / "lasot")
    with Project.create(tmp_path / "other") as other:
        assert len(import_(other, "lasot", tmp_path / "lasot")) == 1


def test_never_the_project_its_parent_or_a_video_folder(project):
    proj, source = project
    for target in (proj.folder, proj.folder.parent, source.parent):
        with pytest.raises(FormatError, match="export into another folder"):
            export(proj, "mot", target, OVERWRITE)
    assert proj.db_path.exists() and source.exists()


def test_never_a_folder_of_someone_elses_files(project, tmp_path):
    proj, _ = project
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "thesis.docx").write_text("two years of work")
    with pytest.raises(FormatError, match="not an export of this tool"):
        export(proj, "lasot", folder, OVERWRITE)
    assert (folder / "thesis.docx").read_text() == "two years of work"


def test_out_that_is_a_file_is_a_one_line_error(project, tmp_path):
    proj, _ = project
    target = tmp_path / "labels.txt"
    target.write_text("keep")
    with pytest.raises(FormatError, match="is a file, not a folder"):
        export(proj, "mot", target)
    assert target.read_text() == "keep"
