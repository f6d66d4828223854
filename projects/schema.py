"""The project database schema, its version and the migrations between versions."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 2

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE videos (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    size_bytes INTEGER NOT NULL,
    frames INTEGER NOT NULL,
    fps REAL NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    added TEXT NOT NULL,
    media_index TEXT  -- sstrack.video.VideoIndex as JSON: verified frame count, timestamps, access path
);
CREATE TABLE tracks (
    id INTEGER PRIMARY KEY,
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    color TEXT NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT ''
);
CREATE INDEX tracks_video ON tracks(video_id);
CREATE TABLE boxes (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    x REAL NOT NULL, y REAL NOT NULL, w REAL NOT NULL, h REAL NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('manual', 'tracked', 'interpolated')),
    score REAL,
    occluded INTEGER NOT NULL DEFAULT 0,
    out_of_view INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER,
    PRIMARY KEY (track_id, frame)
) WITHOUT ROWID;
CREATE TABLE models (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    name TEXT NOT NULL,
    card TEXT NOT NULL,
    parent TEXT,
    added TEXT NOT NULL
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    video_id INTEGER REFERENCES videos(id) ON DELETE SET NULL,
    params TEXT NOT NULL,
    status TEXT NOT NULL,
    frames_done INTEGER NOT NULL DEFAULT 0,
    started TEXT NOT NULL,
    finished TEXT
);
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, so the newest id tells an edit happened
    label TEXT NOT NULL,
    created TEXT NOT NULL,
    undone INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE history_changes (
    entry_id INTEGER NOT NULL REFERENCES history(id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    tbl TEXT NOT NULL,
    key TEXT NOT NULL,
    before TEXT,
    after TEXT,
    PRIMARY KEY (entry_id, seq)
) WITHOUT ROWID;
"""

def _v1_to_v2(conn: sqlite3.Connection) -> None:
    # Version 2 keeps each video's verified index. Old rows get none and are indexed (and their
    # random access verified) the next time they are opened.
    conn.execute("ALTER TABLE videos ADD COLUMN media_index TEXT")


# Migration i upgrades a database at version i to version i + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _v1_to_v2}


def create(conn: sqlite3.Connection) -> None:
    """Create every table of the current schema in an empty database, in one transaction."""
    # executescript() commits whatever is open first, so the script carries its own transaction.
    conn.executescript(
        f"BEGIN IMMEDIATE;\n{_TABLES}\nINSERT INTO meta(key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\nCOMMIT;"
    )


def version(conn: sqlite3.Connection) -> int | None:
    """The schema version stored in the database, or None for a database that is not a project."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    except sqlite3.DatabaseError:
        return None
    return int(row[0]) if row else None
