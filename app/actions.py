"""Every action of the app in one table: id, menu text, default shortcuts, menu.

Keys follow the conventions of docs/annotation-landscape.md (CVAT / DarkLabel): Space play,
D/F or arrows one frame, C/V +/- N frames, Home/End, K keyframe, O out of view, Q occluded
(with Shift: the whole span selected on the timeline),
R/E next/previous keyframe, T track forward, Shift+T backward, N next frame to review.
Users remap them in Preferences (stored in QSettings).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ActionSpec:
    """One action: stable id, text, default key sequences, menu it lives in."""

    id: str
    text: str
    keys: tuple[str, ...]
    menu: str
    tip: str = ""


_SPAN_TIP = "The span selected on the timeline (Shift+click it), else this frame up to the next keyframe"

ACTIONS: tuple[ActionSpec, ...] = (
    ActionSpec("new_project", "&New project…", ("Ctrl+N",), "File"),
    ActionSpec("open_project", "&Open project…", ("Ctrl+O",), "File"),
    ActionSpec("add_video", "&Add video…", ("Ctrl+I",), "File"),
    ActionSpec("save", "&Save", ("Ctrl+S",), "File", "Everything is saved as you edit; this confirms it"),
    ActionSpec("import_labels", "&Import labels…", ("Ctrl+Shift+I",), "File", "LaSOT, GOT-10k, COCO-VID/TAO, MOT or CVAT for video"),
    ActionSpec("export", "&Export…", ("Ctrl+E",), "File"),
    ActionSpec("preferences", "&Preferences…", ("Ctrl+,",), "File"),
    ActionSpec("quit", "&Quit", ("Ctrl+Q",), "File"),
    ActionSpec("undo", "&Undo", ("Ctrl+Z",), "Edit"),
    ActionSpec("redo", "&Redo", ("Ctrl+Shift+Z", "Ctrl+Y"), "Edit"),
    ActionSpec("add_track", "Add &track", ("Ctrl+Shift+N",), "Edit"),
    ActionSpec("delete_box", "&Delete box on this frame", ("Delete",), "Edit"),
    ActionSpec("toggle_keyframe", "Toggle &keyframe", ("K",), "Edit"),
    ActionSpec("toggle_out_of_view", "Out of &view", ("O",), "Edit"),
    ActionSpec("toggle_occluded", "Fully &occluded", ("Q",), "Edit"),
    ActionSpec("mark_span_out_of_view", "Mark span out of &view", ("Shift+O",), "Edit", _SPAN_TIP),
    ActionSpec("mark_span_occluded", "Mark span fully o&ccluded", ("Shift+Q",), "Edit", _SPAN_TIP),
    ActionSpec("mark_span_visible", "Mark span visi&ble", ("Shift+V",), "Edit", _SPAN_TIP),
    ActionSpec("delete_machine_span", "Delete &machine boxes in span", ("Shift+Delete",), "Edit", _SPAN_TIP),
    ActionSpec("interpolate_span", "&Interpolate span between keyframes", ("Shift+I",), "Edit", _SPAN_TIP),
    ActionSpec("next_object", "Select &next object on this frame", ("Tab",), "Edit"),
    ActionSpec("prev_object", "Select previous object on this frame", ("Shift+Tab",), "Edit"),
    ActionSpec("copy_box_forward", "&Copy box to the next frames…", ("Ctrl+B",), "Edit",
               "CVAT's propagate: the selected box on the next N frames, as machine boxes (K makes one a keyframe)"),
    ActionSpec("split_track", "S&plit track at this frame", ("Ctrl+Shift+S",), "Edit", "This frame on becomes a new track of the same class"),
    ActionSpec("merge_track", "Mer&ge another track into this one…", ("Ctrl+Shift+M",), "Edit", "Manual boxes win; two that disagree refuse"),
    ActionSpec("swap_tracks", "S&wap identities from this frame…", ("Ctrl+Shift+W",), "Edit", "Fix an identity switch: exchange two tracks' boxes from here on"),
    ActionSpec("nudge_left", "Nudge box left", ("Ctrl+Left",), "Edit"),
    ActionSpec("nudge_right", "Nudge box right", ("Ctrl+Right",), "Edit"),
    ActionSpec("nudge_up", "Nudge box up", ("Ctrl+Up",), "Edit"),
    ActionSpec("nudge_down", "Nudge box down", ("Ctrl+Down",), "Edit"),
    ActionSpec("nudge_left_10", "Nudge box left 10 px", ("Ctrl+Shift+Left",), "Edit"),
    ActionSpec("nudge_right_10", "Nudge box right 10 px", ("Ctrl+Shift+Right",), "Edit"),
    ActionSpec("nudge_up_10", "Nudge box up 10 px", ("Ctrl+Shift+Up",), "Edit"),
    ActionSpec("nudge_down_10", "Nudge box down 10 px", ("Ctrl+Shift+Down",), "Edit"),
    ActionSpec("play", "&Play / pause", ("Space",), "Go"),
    ActionSpec("play_faster", "Play faster", ("]",), "Go", "Playback speed: 0.25x to 8x the video's frame rate"),
    ActionSpec("play_slower", "Play slower", ("[",), "Go", "Playback speed: 0.25x to 8x the video's frame rate"),
    ActionSpec("next_frame", "Next frame", ("F", "Right"), "Go"),
    ActionSpec("prev_frame", "Previous frame", ("D", "Left"), "Go"),
    ActionSpec("jump_forward", "Jump forward N frames", ("V",), "Go"),
    ActionSpec("jump_back", "Jump back N frames", ("C",), "Go"),
    ActionSpec("first_frame", "First frame", ("Home",), "Go"),
    ActionSpec("last_frame", "Last frame", ("End",), "Go"),
    ActionSpec("next_keyframe", "Next keyframe", ("R",), "Go"),
    ActionSpec("prev_keyframe", "Previous keyframe", ("E",), "Go"),
    ActionSpec("next_review", "Next frame to review (flagged)", ("N",), "Go"),
    ActionSpec("prev_review", "Previous frame to review (flagged)", ("Shift+N",), "Go"),
    ActionSpec("worst_review", "Worst flagged span next (longest first)", ("Alt+N",), "Go"),
    ActionSpec("go_to_frame", "&Go to frame…", ("Ctrl+G",), "Go"),
    ActionSpec("track_forward", "Track &forward to the next keyframe", ("T",), "Track",
               "From the keyframe at or before this frame, forward up to the next keyframe"),
    ActionSpec("track_backward", "Track &backward to the previous keyframe", ("Shift+T",), "Track",
               "From the keyframe at or after this frame, backward down to the previous keyframe"),
    ActionSpec("fill_between", "Fill between &keyframes (both directions, fused)", ("Ctrl+T",), "Track",
               "Every span of the track, tracked from both of its keyframes and fused"),
    ActionSpec("retrack_here", "&Re-track around this correction", ("G",), "Track",
               "Both sides of this keyframe, up to the neighbouring keyframes, fused; nothing else changes"),
    ActionSpec("all_tracks", "Apply to &all tracks", ("A",), "Track"),
    ActionSpec("interpolate", "&Interpolate between keyframes", ("Ctrl+L",), "Track"),
    ActionSpec("cancel", "&Cancel tracking", ("Escape",), "Track"),
    ActionSpec("finetune", "Fine-&tune on this project…", ("Ctrl+Shift+F",), "Track"),
    ActionSpec("adapt_video", "&Adapt the model to this video", ("Ctrl+Shift+A",), "Track",
               "Fine-tune on this video's keyframes in the background; used only if no worse on keyframes it did not see"),
    ActionSpec("adapt_auto", "Adapt &while labelling", (), "Track",
               "After the first track run and every 4 new keyframes, adapt in the background, then re-track the machine boxes"),
    ActionSpec("adapt_reset", "Use the model &before adaptation", (), "Track", "Forget this video's adapted model"),
    ActionSpec("fit", "&Fit frame", ("Ctrl+0",), "View"),
    ActionSpec("zoom_in", "Zoom &in", ("Ctrl+=", "Ctrl++"), "View"),
    ActionSpec("zoom_out", "Zoom &out", ("Ctrl+-",), "View"),
    ActionSpec("shortcuts", "&Keyboard shortcuts", ("F1",), "Help"),
)

BY_ID = {spec.id: spec for spec in ACTIONS}
