"""The vault database: SQLite (WAL) through sqlite-utils, a schema version and forward migrations."""

from __future__ import annotations

import json
from pathlib import Path

import sqlite_utils

from .errors import Refused

# Each migration takes the schema from version i to i + 1. Never edit one that has shipped.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE vms (
        name TEXT PRIMARY KEY,
        power TEXT NOT NULL,            -- running | off
        run_seconds INTEGER NOT NULL DEFAULT 0,  -- lab seconds spent running: drives the workload
        writes_done INTEGER NOT NULL DEFAULT 0,  -- guest writes applied to the disk files
        last_shutdown TEXT NOT NULL DEFAULT ''   -- '' | clean | hard
    );
    CREATE TABLE disks (
        vm TEXT NOT NULL REFERENCES vms(name),
        idx INTEGER NOT NULL,
        name TEXT NOT NULL,
        path TEXT NOT NULL,             -- relative to the lab directory
        size_bytes INTEGER NOT NULL,
        PRIMARY KEY (vm, idx)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        time INTEGER NOT NULL,
        level TEXT NOT NULL,            -- info | warning | error
        subject TEXT NOT NULL,
        message TEXT NOT NULL
    );
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


def connect(path: Path) -> sqlite_utils.Database:
    import sqlite3

    conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.execute("PRAGMA journal_mode=WAL")
    # FULL: each commit is durable, so a recovery point recorded is never lost to a crash.
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def schema_version(db: sqlite_utils.Database) -> int:
    if "meta" not in db.table_names():
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    return int(row[0]) if row else 0


def migrate(db: sqlite_utils.Database) -> None:
    """Bring the database forward to SCHEMA_VERSION, one transaction per migration."""
    current = schema_version(db)
    if current > SCHEMA_VERSION:
        raise Refused(
            f"this lab was made by a newer srlab (schema {current}, this one knows {SCHEMA_VERSION})",
            "upgrade srlab, or create a new lab",
        )
    for version in range(current, SCHEMA_VERSION):
        with transaction(db):
            for stmt in MIGRATIONS[version].split(";\n"):
                if stmt.strip():
                    db.execute(stmt)
            set_meta(db, "schema_version", version + 1)


class transaction:
    """`with transaction(db):` BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on error. Nests as a no-op."""

    def __init__(self, db: sqlite_utils.Database):
        self.conn = db.conn
        self.outer = False

    def __enter__(self):
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self

    def __exit__(self, exc_type, *_):
        if self.outer:
            self.conn.execute("ROLLBACK" if exc_type else "COMMIT")
        return False


def get_meta(db: sqlite_utils.Database, key: str, default=None):
    row = db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
    return json.loads(row[0]) if row else default


def set_meta(db: sqlite_utils.Database, key: str, value) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [key, json.dumps(value)],
    )
