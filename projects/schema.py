"""The project database schema, its version and the migrations between versions."""

from __future__ import annotations

import functools
import json
import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 8

_TABLES = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE videos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused: an undo or a stale window may still name an old id
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
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- never reused, as videos
    video_id INTEGER NOT NULL REFERENCES videos(id) ON DELETE CASCADE,
    label TEXT NOT NULL,
    color TEXT NOT NULL,
    hidden INTEGER NOT NULL DEFAULT 0,
    description TEXT NOT NULL DEFAULT '',
    category TEXT NOT NULL DEFAULT '',  -- the object's class (label schema); '' = the label is the class
    attributes TEXT NOT NULL DEFAULT ''  -- the object's attributes as a JSON object of strings; '' = none
);
CREATE INDEX tracks_video ON tracks(video_id);
CREATE INDEX tracks_class ON tracks((CASE WHEN category != '' THEN category ELSE label END), id);
CREATE TABLE boxes (
    track_id INTEGER NOT NULL REFERENCES tracks(id) ON DELETE CASCADE,
    frame INTEGER NOT NULL,
    -- A row is a frame's state: a box (all four set, positive size), or no box (all four NULL)
    -- with the object marked occluded or out of view. A visible row always has a box.
    x REAL, y REAL, w REAL, h REAL,
    source TEXT NOT NULL CHECK (source IN ('manual', 'tracked', 'interpolated')),
    score REAL,
    occluded INTEGER NOT NULL DEFAULT 0,
    out_of_view INTEGER NOT NULL DEFAULT 0,
    run_id INTEGER,
    -- The machine box's grey content against its keyframe's (normalised cross-correlation,
    -- -1..1), for the review predictor (sstrack/review.py); NULL for manual rows and old runs.
    look REAL,
    PRIMARY KEY (track_id, frame),
    CHECK ((x IS NULL AND y IS NULL AND w IS NULL AND h IS NULL)
           OR (x IS NOT NULL AND y IS NOT NULL AND w > 0 AND h > 0)),
    CHECK (w IS NOT NULL OR occluded = 1 OR out_of_view = 1)
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


def _v2_to_v3(conn: sqlite3.Connection) -> None:
    # Version 3 stores "no box" as NULL geometry instead of a 0x0 box (the old absent marks), with
    # CHECKs that keep the two apart. The history's saved rows are rewritten the same way, so an
    # undo never puts a 0x0 box back. A 0x0 row with no flag meant nothing and is dropped.
    boxes = _TABLES[_TABLES.index("CREATE TABLE boxes") : _TABLES.index("CREATE TABLE models")]
    conn.execute("ALTER TABLE boxes RENAME TO boxes_v2")
    conn.execute(boxes.replace("CREATE TABLE boxes", "CREATE TABLE boxes", 1))
    no_box = "(w <= 0 OR h <= 0)"
    conn.execute(
        "INSERT INTO boxes(track_id, frame, x, y, w, h, source, score, occluded, out_of_view, run_id) SELECT track_id, frame, "
        + ", ".join(f"CASE WHEN {no_box} THEN NULL ELSE {c} END" for c in "xywh")
        + f", source, score, occluded, out_of_view, run_id FROM boxes_v2 WHERE NOT ({no_box} AND occluded = 0 AND out_of_view = 0)"
        + " AND track_id IN (SELECT id FROM tracks)"  # a box of a missing track (a file edited with foreign keys off)
    )
    conn.execute("DROP TABLE boxes_v2")
    changes = conn.execute("SELECT entry_id, seq, before, after FROM history_changes WHERE tbl = 'boxes'").fetchall()
    for entry_id, seq, before, after in changes:
        conn.execute(
            "UPDATE history_changes SET before = ?, after = ? WHERE entry_id = ? AND seq = ?",
            (_v3_row(before), _v3_row(after), entry_id, seq),
        )


def _v3_row(saved: str | None) -> str | None:
    """A history row (JSON) in version 3's form: no box is NULL geometry; meaningless rows go."""
    if saved is None:
        return None
    row = json.loads(saved)
    if row["w"] > 0 and row["h"] > 0:
        return saved
    if not (row["occluded"] or row["out_of_view"]):
        return None
    return json.dumps({**row, "x": None, "y": None, "w": None, "h": None})


def _v3_to_v4(conn: sqlite3.Connection) -> None:
    # Version 4: a track's class apart from its name. Existing tracks keep their label as class.
    if "category" not in {row[1] for row in conn.execute("PRAGMA table_info(tracks)")}:
        conn.execute("ALTER TABLE tracks ADD COLUMN category TEXT NOT NULL DEFAULT ''")


def _v4_to_v5(conn: sqlite3.Connection) -> None:
    # Version 5: attributes per object (the label schema's key = value pairs).
    if "attributes" not in {row[1] for row in conn.execute("PRAGMA table_info(tracks)")}:
        conn.execute("ALTER TABLE tracks ADD COLUMN attributes TEXT NOT NULL DEFAULT ''")


def _v5_to_v6(conn: sqlite3.Connection) -> None:
    # Version 6: each machine box's look against its keyframe, for the review predictor.
    if "look" not in {row[1] for row in conn.execute("PRAGMA table_info(boxes)")}:
        conn.execute("ALTER TABLE boxes ADD COLUMN look REAL")


def _v6_to_v7(conn: sqlite3.Connection) -> None:
    # Version 7: an index on each track's class, which add_track looks up for the class's colour;
    # without it an import of N objects scanned the tracks N times (40,000 tracks: 51 s, holding
    # the write lock past another writer's 30 s wait).
    conn.execute("CREATE INDEX IF NOT EXISTS tracks_class ON tracks((CASE WHEN category != '' THEN category ELSE label END), id)")


# Children before their parents: the order in which the tables can be dropped with foreign keys on.
_REBUILT_IN_V8 = ("history_changes", "boxes", "runs", "tracks", "history", "videos")


def _v7_to_v8(conn: sqlite3.Connection) -> None:
    # Version 8: the ids of videos, tracks and history entries are never reused (AUTOINCREMENT).
    # SQLite handed a deleted top id out again: undoing the deletion then overwrote the newer video
    # or track, and a run or a window still holding the old id wrote onto another video's object.
    # Files from version 1 also lacked it for the history, so a new edit could take an undone
    # entry's id. The six tables are renamed aside (which repoints their foreign keys at the old
    # copies), made again from the current schema (a later version's columns get their defaults
    # here, so its own step must add them only where missing, as _v3_to_v4 does), refilled parents
    # first, and the old copies dropped children first, so no delete ever cascades. Each counter
    # starts above every id the history still names, so an undo's row never meets a newer one. A
    # key that is not a JSON list of ids (a file edited by hand) names no id.
    named = ("SELECT max(json_extract(key, '$[0]')) FROM history_changes "
             "WHERE tbl IN ({}) AND json_valid(key) AND json_type(key, '$[0]') = 'integer'")
    has_counters = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
    old_counter = "SELECT seq FROM sqlite_sequence WHERE name = 'history'" if has_counters else "SELECT NULL"
    floors = {
        "videos": "SELECT max(id) FROM videos UNION ALL SELECT max(video_id) FROM runs UNION ALL " + named.format("'videos'"),
        "tracks": "SELECT max(id) FROM tracks UNION ALL SELECT max(track_id) FROM boxes UNION ALL " + named.format("'tracks', 'boxes'"),
        # The old counter too: an entry dropped as empty or as an abandoned redo had taken an id.
        "history": "SELECT max(id) FROM history UNION ALL SELECT max(entry_id) FROM history_changes UNION ALL " + old_counter,
    }
    floor = {table: max((int(v) for (v,) in conn.execute(query) if isinstance(v, int)), default=0) for table, query in floors.items()}
    for index in ("tracks_video", "tracks_class"):
        conn.execute(f"DROP INDEX IF EXISTS {index}")
    for table in _REBUILT_IN_V8:
        conn.execute(f"ALTER TABLE {table} RENAME TO {table}_v7")
    fresh = sqlite3.connect(":memory:")
    try:
        create(fresh)
        ddl = dict(fresh.execute("SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"))
    finally:
        fresh.close()
    # Rows whose parent is gone (only a file edited with foreign keys off has them) go as the
    # cascades would have taken them; the backup of the old version keeps them.
    keep = {
        "tracks": "WHERE video_id IN (SELECT id FROM videos)",
        "boxes": "WHERE track_id IN (SELECT id FROM tracks)",
        "history_changes": "WHERE entry_id IN (SELECT id FROM history)",
    }
    for table in reversed(_REBUILT_IN_V8):  # parents first
        conn.execute(ddl[table])
        # The columns both have: this step runs before any later version's ADD COLUMN.
        old_columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table}_v7)")}
        names = [row[1] for row in conn.execute(f"PRAGMA table_info({table})") if row[1] in old_columns]
        values = [f'"{name}"' for name in names]
        if table == "runs":  # ON DELETE SET NULL
            values[names.index("video_id")] = "CASE WHEN video_id IN (SELECT id FROM videos) THEN video_id END"
        columns = ", ".join(f'"{name}"' for name in names)
        conn.execute(f"INSERT INTO {table}({columns}) SELECT {', '.join(values)} FROM {table}_v7 {keep.get(table, '')}")
    for index in ("tracks_video", "tracks_class"):
        conn.execute(ddl[index])
    for table in _REBUILT_IN_V8:
        conn.execute(f"DROP TABLE {table}_v7")
    for table, value in floor.items():
        if conn.execute("UPDATE sqlite_sequence SET seq = max(seq, ?) WHERE name = ?", (value, table)).rowcount == 0:
            conn.execute("INSERT INTO sqlite_sequence(name, seq) VALUES (?, ?)", (table, value))


# Migration i upgrades a database at version i to version i + 1.
MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {
    1: _v1_to_v2, 2: _v2_to_v3, 3: _v3_to_v4, 4: _v4_to_v5, 5: _v5_to_v6, 6: _v6_to_v7, 7: _v7_to_v8,
}


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
    if not row:
        return None
    try:
        found = int(row[0])
    except (TypeError, ValueError):  # a hand-edited or hostile file: not a version this tool wrote
        return None
    return found if found >= 1 else None  # 0 or -3 made an upgrade backup before being refused


# -- what a project file may hold --------------------------------------------------------------
# A project folder is shared and opened like any file, so its database may be hostile. SQLite
# runs no code of its own, but a trigger in the file runs on our writes: one that deletes boxes
# took every edit but the last, and one with a recursive query hangs the first edit. Nothing this
# tool makes is a trigger or a view, so any such object is refused before a single write.

# The largest value a text column of the small tables may hold (bytes); larger is damage or an
# attack on memory (a 200 MB track name was read into every list of tracks).
_VALUE_LIMIT = 1 << 20
_VALUE_LIMITS = {("videos", "media_index"): 64 << 20, ("models", "card"): 16 << 20, ("runs", "params"): 16 << 20,
                 ("meta", "value"): 16 << 20}
# Any single value (history rows included): SQLite refuses to read a larger one.
MAX_VALUE_BYTES = 256 << 20


@functools.lru_cache(maxsize=1)
def _current() -> tuple[dict[str, str], dict[str, tuple[tuple[str, int], ...]]]:
    """The current schema's objects {name: type} and each table's columns (name, hidden)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        create(conn)
        objects = {name: kind for kind, name in conn.execute("SELECT type, name FROM sqlite_master")}
        columns = {name: _columns(conn, name) for name, kind in objects.items() if kind == "table"}
    finally:
        conn.close()
    return objects, columns


def _columns(conn: sqlite3.Connection, table: str) -> tuple[tuple[str, int], ...]:
    return tuple((row[1], row[6]) for row in conn.execute(f'PRAGMA table_xinfo("{table}")'))


def foreign_object(conn: sqlite3.Connection) -> str | None:
    """A trigger, view, table or index this tool never makes, described; None when there is none.

    Checked before any write (an upgrade included), so no trigger of the file ever fires.
    """
    known, _ = _current()
    for kind, name in conn.execute("SELECT type, name FROM sqlite_master ORDER BY type, name"):
        if kind in ("trigger", "view") or (known.get(name) != kind and not name.startswith("sqlite_")):
            return f"{'an' if kind == 'index' else 'a'} {kind} {name!r:.60}"
    return None


def foreign_column(conn: sqlite3.Connection) -> str | None:
    """A column the current schema does not have (a generated one, say), described; None if none."""
    _, expected = _current()
    for table, columns in expected.items():
        found = _columns(conn, table)
        if found != columns:
            extra = [name for name, hidden in found if (name, hidden) not in columns]
            return f"table {table} with columns {[name for name, _ in found]!r:.120}" + (f" ({extra[0]!r:.40} is not ours)" if extra else "")
    return None


def oversized_value(conn: sqlite3.Connection) -> str | None:
    """A value of the small tables (videos, tracks, models, runs, meta) beyond its limit, described.

    Every column is checked, not only the TEXT ones: SQLite stores any value in any column.
    """
    _, expected = _current()
    for table in ("meta", "videos", "tracks", "models", "runs"):
        for column, _hidden in expected[table]:
            limit = _VALUE_LIMITS.get((table, column), _VALUE_LIMIT)
            # length() of a BLOB cast is the byte count, read from the record header.
            (largest,) = conn.execute(f'SELECT max(length(CAST("{column}" AS BLOB))) FROM "{table}"').fetchone()
            if largest is not None and largest > limit:
                return f"a {largest / 2**20:.0f} MiB value in {table}.{column} (at most {limit >> 20 or 1} MiB)"
    return None


def row_problem(conn: sqlite3.Connection, table: str, rowid: int) -> str | None:
    """What the checks on opening would refuse in one row of `table` just written, described; None
    when it is sound. The write side of the same rules: a value they refuse made the whole
    project unopenable (a 1 MiB track description, saved without complaint)."""
    for column, _hidden in _current()[1][table]:
        limit = _VALUE_LIMITS.get((table, column), _VALUE_LIMIT)
        (size,) = conn.execute(f'SELECT length(CAST("{column}" AS BLOB)) FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()
        if size is not None and size > limit:
            return f"its {column} of {size:,} bytes is more than a project keeps ({limit:,} bytes)"
    for column, rule in _rules(table).items():
        if not conn.execute(f'SELECT {rule} FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()[0]:
            (value,) = conn.execute(f'SELECT "{column}" FROM "{table}" WHERE rowid = ?', (rowid,)).fetchone()
            return f"its {column} {value!r:.40} is not a value a project keeps"
    return None


# Each column's values as this tool writes them, as SQL conditions on the column {c}: SQLite
# stores any value in any column, and a file that broke them (a text frame count, an infinite box
# written past the CHECKs with PRAGMA ignore_check_constraints) made tracebacks, a 10^12-frame
# export and silent `inf` coordinates in exports.
MAX_FRAMES = 10_000_000  # 46 hours at 60 fps
_TEXT = "typeof({c}) = 'text'"
_INTEGER = "typeof({c}) = 'integer'"
_FLAG = "{c} IN (0, 1)"


def _whole(low: int, high: int) -> str:
    return f"typeof({{c}}) = 'integer' AND {{c}} BETWEEN {low} AND {high}"


def _number(limit: float, positive: bool = False) -> str:
    # SQLite orders every text and blob after every number, so a range holds numbers only (and
    # no infinity); a column's affinity has already turned numeric text into a number.
    return f"{{c}} BETWEEN {0 if positive else -limit} AND {limit}" + (" AND {c} > 0" if positive else "")


def _optional(condition: str) -> str:
    return "{c} IS NULL OR (" + condition + ")"


_ID = _whole(1, 2**62)
_VALUES: dict[str, dict[str, str]] = {
    "meta": {"key": _TEXT, "value": _optional(_TEXT)},
    "videos": {
        "id": _ID, "path": _TEXT, "name": _TEXT, "content_hash": _TEXT, "size_bytes": _whole(0, 2**62),
        "frames": _whole(1, MAX_FRAMES), "fps": _number(1000, positive=True), "width": _whole(1, 1_000_000),
        "height": _whole(1, 1_000_000), "added": _TEXT, "media_index": _optional(_TEXT),
    },
    "tracks": {
        "id": _ID, "video_id": _INTEGER, "label": _TEXT, "color": _TEXT, "hidden": _FLAG, "description": _TEXT,
        "category": _TEXT, "attributes": _TEXT,
    },
    # The largest table (a million rows scan in about a second): the fewest tests that hold it.
    "boxes": {
        "track_id": _INTEGER, "frame": _whole(0, MAX_FRAMES),
        "geometry": "(x IS NULL AND y IS NULL AND w IS NULL AND h IS NULL) OR (x BETWEEN -1e7 AND 1e7 AND "
                    "y BETWEEN -1e7 AND 1e7 AND w > 0 AND w <= 1e7 AND h > 0 AND h <= 1e7)",
        "source": "{c} IN ('manual', 'tracked', 'interpolated')", "score": _optional(_number(1e308)),
        "occluded": _FLAG, "out_of_view": _FLAG, "run_id": _optional(_INTEGER), "look": _optional(_number(2)),
    },
    "models": {"id": _ID, "path": _TEXT, "name": _TEXT, "card": _TEXT, "parent": _optional(_TEXT), "added": _TEXT},
    "runs": {
        "id": _ID, "kind": _TEXT, "video_id": _optional(_INTEGER), "params": _TEXT, "status": _TEXT,
        "frames_done": _whole(0, 2**62), "started": _TEXT, "finished": _optional(_TEXT),
    },
    "history": {"id": _ID, "label": _TEXT, "created": _TEXT, "undone": _FLAG},
    # history_changes: read only by undo and redo, which check each saved row (Project._replay).
}
# Columns read with json.loads: each holds a JSON object ('' allowed where the flag says so).
_JSON_OBJECTS = (("videos", "media_index", True), ("tracks", "attributes", True), ("models", "card", False),
                 ("runs", "params", False))


def _rules(table: str) -> dict[str, str]:
    """{what it checks: a SQL expression that is 1 for a sound row} (NULL counts as broken)."""
    return {column: "coalesce((" + rule.replace("{c}", f'"{column}"') + "), 0)" for column, rule in _VALUES[table].items()}


def invalid_value(conn: sqlite3.Connection) -> str | None:
    """The first value no version of this tool writes (a text frame count, an infinite box, a
    run's parameters that are not a JSON object), described; None when every value is sound."""
    for table in _VALUES:
        rules = _rules(table)
        # One scan of the table for any broken row; only then which rule it breaks.
        key = "track_id, frame" if table == "boxes" else "rowid"
        found = conn.execute(f'SELECT {key} FROM "{table}" WHERE ' + " OR ".join(f"NOT {r}" for r in rules.values()) + " LIMIT 1").fetchone()
        if found is None:
            continue
        where = " AND ".join(f"{name} IS ?" for name in key.split(", "))
        row = f"track {found[0]!r:.20}, frame {found[1]!r:.20}" if table == "boxes" else f"row {found[0]}"
        for what, rule in rules.items():
            if not conn.execute(f'SELECT {rule} FROM "{table}" WHERE {where}', tuple(found)).fetchone()[0]:
                if what == "geometry":
                    return f"a box that is neither four finite numbers with a positive size nor none ({row})"
                (value,) = conn.execute(f'SELECT "{what}" FROM "{table}" WHERE {where}', tuple(found)).fetchone()
                return f"{table}.{what} = {value!r:.40} ({row})"
    for table, column, empty_allowed in _JSON_OBJECTS:
        for key, text in conn.execute(f'SELECT rowid, "{column}" FROM "{table}"'):
            if text is None or (empty_allowed and text == ""):
                continue
            try:
                value = json.loads(text)
            except (ValueError, RecursionError):  # not JSON, or nested past Python's stack
                value = None
            if not isinstance(value, dict):
                return f"{table}.{column} that is not a JSON object (row {key})"
            if column == "attributes" and not all(isinstance(v, str) for v in value.values()):
                return f"{table}.{column} whose values are not all text (row {key})"
    return None
