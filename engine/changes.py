"""What changed in a lab since the last look: which tables, and which VMs' rows.

A reader that shows the whole lab (the app) reads again only what changed. Temporary triggers on
the lab's own SQLite connection note each changed row in a temporary table: nothing is written
to the vault's schema or its file, and changes made through another connection (another srlab
process) are not seen: such a reader must read everything.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

# table -> the column naming the VM a row belongs to ("" : the row is about no one VM)
VM_COLUMN = {"vms": "name", "items": "vm", "points": "vm", "disks": "vm", "transfers": "vm", "resyncs": "vm",
             "a2a_sides": "vm", "recovered": "vm", "jobs": "target"}
# tables no judgement of what is allowed reads (a log, a history, the clock)
QUIET = {"events", "rpo_samples", "meta"}
# columns that move on every slice for every running VM: counters, not facts a reader judges by
COUNTERS = {"vms": {"run_seconds", "writes_done"}, "recovered": {"run_seconds", "writes_done"}}
_SKIP = {"sqlite_sequence"} | QUIET  # (a reader reads these whole: no note is worth its cost there)
_LOG = "srlab_changed"


@dataclass
class Changes:
    """Tables with a changed row, and the names (a VM, a job's target) the changed rows belong to.
    `everything`: the first look, or the notes were lost: read it all."""

    tables: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    everything: bool = False

    def table(self, *names: str) -> bool:
        return self.everything or any(n in self.tables for n in names)

    def vms(self, vms: set[str]) -> set[str] | None:
        """The VMs among `vms` whose rows changed; None when a change is not about one VM (a
        fault, a link, a policy, a job on a cloud...): then any VM may be judged otherwise."""
        if self.everything or self.tables - set(VM_COLUMN) - {"job_steps"} - QUIET or self.names - vms:
            return None
        return self.names & vms


def _columns(conn: sqlite3.Connection, table: str) -> list[str]:
    return [r[1] for r in conn.execute(f"PRAGMA main.table_info({table})")]


def watch(conn: sqlite3.Connection) -> None:
    """Start noting changes on this connection (again after the connection changed)."""
    # no UNIQUE key: a trigger's OR IGNORE gives way to the outer statement's conflict clause, so
    # a row already noted is skipped with NOT EXISTS instead
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {_LOG} (tbl TEXT, name TEXT)")
    conn.execute(f"CREATE INDEX IF NOT EXISTS temp.{_LOG}_key ON {_LOG} (tbl, name)")
    tables = [r[0] for r in conn.execute("SELECT name FROM main.sqlite_master WHERE type='table'")]
    for table in tables:
        if table in _SKIP:
            continue
        col = VM_COLUMN.get(table, "")
        for op, row in (("INSERT", "NEW"), ("DELETE", "OLD"), ("UPDATE", "NEW")):
            name = f"{row}.{col}" if col else "''"
            when = ""
            if op == "UPDATE":  # a row written as it was, or a counter moving alone, is no change
                facts = [c for c in _columns(conn, table) if c not in COUNTERS.get(table, ())]
                when = "WHEN " + " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in facts)
            if table == "job_steps":  # a job's step belongs to the job's target
                name = f"(SELECT target FROM main.jobs WHERE id={row}.job)"
            conn.execute(f"CREATE TEMP TRIGGER IF NOT EXISTS srlab_{table}_{op.lower()} AFTER {op} ON main.{table} "
                         f"{when} BEGIN {_note(table, name)} END")


def _note(table: str, name: str) -> str:
    return (f"INSERT INTO {_LOG} SELECT '{table}', COALESCE({name}, '') WHERE NOT EXISTS "
            f"(SELECT 1 FROM {_LOG} WHERE tbl='{table}' AND name=COALESCE({name}, ''));")


def take_lab(lab) -> Changes:
    """What changed in this lab (Lab) through its own connection since the last take."""
    return take(lab.db.conn)


def take(conn: sqlite3.Connection) -> Changes:
    """What changed since the last take (or since watch), and forget it."""
    try:
        rows = conn.execute(f"SELECT tbl, name FROM temp.{_LOG}").fetchall()
        conn.execute(f"DELETE FROM temp.{_LOG}")
    except sqlite3.OperationalError:  # not watched (yet) on this connection
        try:
            watch(conn)
        except sqlite3.Error:  # (then every look reads everything)
            pass
        return Changes(everything=True)
    return Changes({t for t, _ in rows}, {n for _, n in rows if n})
