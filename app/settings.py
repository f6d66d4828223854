"""App preferences in QSettings (per user), with typed accessors and defaults."""

from __future__ import annotations

from PySide6.QtCore import QSettings
from PySide6.QtGui import QKeySequence

from app.actions import BY_ID

DEFAULTS = {"threshold": 0.5, "jump": 10, "device": "auto", "model": "sstrack-lite", "stop_below": 0.0, "adapt_auto": 1}


class Preferences:
    """Typed view over QSettings('sstrack', 'annotate')."""

    def __init__(self, settings: QSettings | None = None) -> None:
        self.qsettings = settings or QSettings("sstrack", "annotate")

    def get(self, key: str):
        """A preference with its default and type."""
        default = DEFAULTS[key]
        value = self.qsettings.value(key, default)
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            return default

    def set(self, key: str, value) -> None:
        """Store a preference."""
        self.qsettings.setValue(key, value)

    def review_threshold(self, model_default: float | None) -> float:
        """The user's review threshold if they set one, else the model's calibrated one, else 0.5."""
        if self.qsettings.contains("threshold"):
            return self.get("threshold")
        return model_default if model_default is not None else DEFAULTS["threshold"]

    def shortcuts(self, action_id: str) -> list[str]:
        """Key sequences of an action (the user's remap, else the defaults)."""
        value = self.qsettings.value(f"shortcuts/{action_id}")
        if value is None:
            return list(BY_ID[action_id].keys)
        return [k.strip() for k in str(value).split(";") if k.strip()]

    def set_shortcuts(self, action_id: str, keys: list[str]) -> None:
        """Remap an action; ValueError (naming the other action) when a key is already taken."""
        self.set_all_shortcuts({action_id: keys})

    def set_all_shortcuts(self, bindings: dict[str, list[str]]) -> None:
        """Remap several actions at once (so keys can be swapped); nothing is stored on a conflict."""
        conflict = self.shortcut_conflict(bindings)
        if conflict is not None:
            raise ValueError(conflict)
        for action_id, keys in bindings.items():
            self.qsettings.setValue(f"shortcuts/{action_id}", ";".join(keys))

    def shortcut_conflict(self, bindings: dict[str, list[str]]) -> str | None:
        """Why `bindings` (action id -> keys, unlisted actions keep theirs) cannot be used, or None."""
        # Two QActions on one key make Qt fire neither (an "ambiguous" shortcut): refuse it up front.
        merged = {action_id: self.shortcuts(action_id) for action_id in BY_ID} | bindings
        owner: dict[str, str] = {}
        for action_id, keys in merged.items():
            for key in keys:
                sequence = QKeySequence(key)
                text = sequence.toString(QKeySequence.SequenceFormat.PortableText)  # "t" and "T" are one key
                if sequence.isEmpty() or not text:
                    return f"{key!r} is not a key sequence ({_name(action_id)})."
                other = owner.setdefault(text, action_id)
                if other != action_id:
                    return f"{text} is already the shortcut of \"{_name(other)}\"; it cannot also be \"{_name(action_id)}\"."
        return None

    @property
    def last_project(self) -> str | None:
        """The project opened last (reopened on start)."""
        value = self.qsettings.value("last_project")
        return str(value) if value else None

    @last_project.setter
    def last_project(self, folder: str) -> None:
        self.qsettings.setValue("last_project", folder)


def _name(action_id: str) -> str:
    """The action's menu text without the mnemonic ampersand."""
    return BY_ID[action_id].text.replace("&", "").rstrip("…")
