"""--overwrite replaces only an earlier export of this tool (issue 19, high): never the project,
a source video, or a folder holding anything the tool did not write."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from projects import Project
from projects.errors import FormatError
from projects.formats import export, import_
from projects.formats.common import EXPORT_MARKER, ExportOptions, marker_path

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
    assert marker_path(out).is_file()
    second = proj.add_track(proj.videos()[0].id, "bus")
    proj.set_box(second.id, 0, (10, 10, 40, 40))
    export(proj, fmt, out, OVERWRITE)  # the earlier export's files are replaced by the new one's

    def names_the_bus(path: Path) -> bool:
        return "bus" in str(path.relative_to(out)) or (path.suffix != ".jpg" and "bus" in path.read_text(errors="ignore"))

    assert marker_path(out).is_file()
    assert any(names_the_bus(path) for path in out.rglob("*") if path.is_file())


def test_an_export_from_before_the_marker_moved_beside_it_is_still_replaced(project, tmp_path):
    """Until 2026-12-06 the marker lay inside the folder; such an export is still ours to replace."""
    proj, _ = project
    out = tmp_path / "exports" / "lasot"
    export(proj, "lasot", out)
    marker_path(out).rename(out / EXPORT_MARKER)
    export(proj, "lasot", out, OVERWRITE)
    assert marker_path(out).is_file() and not (out / EXPORT_MARKER).exists()


@pytest.mark.parametrize("fmt", ["lasot", "mot"])
def test_overwrite_never_deletes_what_was_added_to_an_earlier_export(project, tmp_path, fmt):
    """--overwrite on an earlier export deleted the user's notes, and a whole project, saved there since."""
    proj, _ = project
    out = tmp_path / "exports" / fmt
    export(proj, fmt, out)
    (out / "review_notes.txt").write_text("two days of review notes")
    Project.create(out / "review_project").close()
    with pytest.raises(FormatError, match=r"holds review_notes.txt \(2 file\(s\) in all\) that the earlier export did not write"):
        export(proj, fmt, out, OVERWRITE)
    assert (out / "review_notes.txt").read_text() == "two days of review notes" and (out / "review_project" / "project.sqlite").is_file()
    marker = marker_path(out)  # an export from before markers listed their files: nothing there is known to be ours
    marker.write_text(json.dumps({k: v for k, v in json.loads(marker.read_text()).items() if k != "files"}))
    (out / "review_notes.txt").unlink()
    shutil.rmtree(out / "review_project")
    with pytest.raises(FormatError, match="that the earlier export did not write"):
        export(proj, fmt, out, OVERWRITE)


def test_a_file_saved_into_the_folder_during_an_export_is_never_deleted(project, tmp_path):
    """The folder was checked only before the export; at the end whatever was there by then was replaced."""
    proj, _ = project
    out = tmp_path / "out"

    def save_a_draft(done: int, total: int) -> bool:
        if done == 3:
            out.mkdir(exist_ok=True)
            (out / "report_draft.docx").write_text("the user's work")
        return True

    with pytest.raises(FormatError, match="already exists and is not empty"):
        export(proj, "lasot", out, ExportOptions(), save_a_draft)
    assert (out / "report_draft.docx").read_text() == "the user's work"
    assert [p.name for p in tmp_path.iterdir() if ".partial-" in p.name] == []


def test_never_inside_a_frame_folder_video(tmp_path, videos_dir):
    """Its files identify the video: an export inside made the project refuse its own video."""
    import cv2

    folder = tmp_path / "frames"
    folder.mkdir()
    for index in range(4):
        cv2.imwrite(str(folder / f"{index:06d}.jpg"), cv2.imread(str(videos_dir.parent / "sot" / "Deer" / "img" / f"{index + 1:08d}.jpg")))
    with Project.create(tmp_path / "p") as proj:
        video = proj.add_video(folder)
        proj.set_box(proj.add_track(video.id, "deer").id, 0, (10, 10, 40, 40))
        with pytest.raises(FormatError, match="labels: is inside the frame folder of video "):
            export(proj, "cvat", folder / "labels")
        proj.open_media(video.id).close()  # still the folder it was added from
        assert sorted(p.name for p in folder.iterdir()) == [f"{i:06d}.jpg" for i in range(4)]


def test_a_long_folder_name_the_system_allows_is_exported_to(project, tmp_path):
    """Names of 238-255 bytes were refused: the hidden staging folder's name is 18 bytes longer."""
    proj, _ = project
    out = tmp_path / ("é" * 125)  # 250 bytes
    export(proj, "mot", out)
    assert marker_path(out).is_file() and len(marker_path(out).name.encode()) <= 255


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


def test_an_output_path_no_folder_can_have_is_a_one_line_error(project, tmp_path):
    """A link loop or a name over 255 bytes raised RuntimeError / OSError through the CLI."""
    proj, _ = project
    loop = tmp_path / "loop"
    loop.symlink_to(loop.name)
    for out in (loop, tmp_path / ("x" * 300)):
        with pytest.raises(FormatError, match="not a folder this system can write to") as error:
            export(proj, "mot", out)
        assert "\n" not in str(error.value)


def test_a_cancelled_export_leaves_no_folder_it_made(project, tmp_path):
    """It said "nothing was written" and left the parent folders it had made for the output."""
    from projects.formats import ExportCancelled

    proj, _ = project
    (tmp_path / "kept").mkdir()
    with pytest.raises(ExportCancelled):
        export(proj, "lasot", tmp_path / "kept" / "new" / "deeper" / "out", progress=lambda done, total: False)
    assert (tmp_path / "kept").is_dir() and list((tmp_path / "kept").iterdir()) == []


@pytest.mark.parametrize(
    "marker",
    ["[" * 100_000 + "]" * 100_000, '{"files": [["a"], 1, "labels.txt"]}', '{"tool": "sstrack-annotate", "files": [["a"], 1]}'],
)
def test_a_hostile_marker_is_no_traceback_and_lists_nothing(project, tmp_path, marker):
    """The marker was read whole with json.loads: deep nesting was a RecursionError, a list of
    lists a TypeError (unhashable), both as tracebacks in the middle of an export."""
    proj, _ = project
    out = tmp_path / "exports" / "mot"
    export(proj, "mot", out)
    marker_path(out).write_text(marker)
    refusals = "that the earlier export did not write|is not an export marker of this tool"
    with pytest.raises(FormatError, match=refusals) as error:
        export(proj, "mot", out, OVERWRITE)
    assert "\n" not in str(error.value)


def test_a_file_of_the_markers_name_that_is_not_ours_is_never_replaced(project, tmp_path):
    proj, _ = project
    out = tmp_path / "exports" / "mot"
    marker_path(out).parent.mkdir(parents=True)
    marker_path(out).write_text("the user's own notes")
    with pytest.raises(FormatError, match="is not an export marker of this tool"):
        export(proj, "mot", out)
    assert marker_path(out).read_text() == "the user's own notes" and not out.exists()


def test_a_marker_left_behind_by_a_moved_export_lets_nothing_be_deleted(project, tmp_path):
    """The marker lies beside the folder, so it stays when the export is moved away: the folder a
    user then makes at that path, with a file of a listed name, was overwritten (review 3)."""
    proj, _ = project
    out = tmp_path / "exports" / "mot"
    export(proj, "mot", out)
    listed = json.loads(marker_path(out).read_text())["files"][0]
    out.rename(tmp_path / "exports" / "archived")
    (out / listed).parent.mkdir(parents=True)
    (out / listed).write_text("the user's own file")
    with pytest.raises(FormatError, match="that the earlier export did not write"):
        export(proj, "mot", out, OVERWRITE)
    assert (out / listed).read_text() == "the user's own file"
    # The same when the export was deleted and the new folder took its inode (ext4 reuses them).
    shutil.rmtree(tmp_path / "exports" / "archived")
    with pytest.raises(FormatError, match="that the earlier export did not write"):
        export(proj, "mot", out, OVERWRITE)


def test_long_names_cut_the_same_way_get_markers_of_their_own(tmp_path):
    first, second = tmp_path / ("x" * 240 + "A"), tmp_path / ("x" * 240 + "B")
    assert marker_path(first) != marker_path(second)
    assert all(len(marker_path(p).name.encode()) <= 255 for p in (first, second))
