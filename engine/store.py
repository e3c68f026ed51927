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
    # 2: the vault's setup, protected items, replication and jobs.
    """
    CREATE TABLE servers (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,             -- vmm | configuration
        registered_at INTEGER NOT NULL,
        key_file TEXT NOT NULL          -- data-encryption key, relative to the lab
    );
    CREATE TABLE agents (host TEXT PRIMARY KEY, installed_at INTEGER NOT NULL);
    CREATE TABLE cloud_protection (
        cloud TEXT PRIMARY KEY,
        target_kind TEXT NOT NULL,      -- azure | cloud
        target TEXT NOT NULL,           -- region (azure) or recovery cloud
        storage_account TEXT NOT NULL DEFAULT '',
        frequency INTEGER NOT NULL,     -- seconds: 30, 300, 900
        retention_h INTEGER NOT NULL,
        app_consistent_h INTEGER NOT NULL,
        encrypt INTEGER NOT NULL,
        start TEXT NOT NULL,            -- now | HH:MM
        configured_at INTEGER NOT NULL
    );
    CREATE TABLE network_mappings (source TEXT PRIMARY KEY, target TEXT NOT NULL);
    CREATE TABLE links (
        source TEXT NOT NULL, target TEXT NOT NULL,
        mbps REAL NOT NULL, state TEXT NOT NULL,
        PRIMARY KEY (source, target)
    );
    CREATE TABLE items (
        vm TEXT PRIMARY KEY REFERENCES vms(name),
        state TEXT NOT NULL,
        target_kind TEXT NOT NULL, target TEXT NOT NULL,
        store TEXT NOT NULL,            -- replica store folder, relative to the lab
        target_name TEXT NOT NULL, target_size TEXT NOT NULL, nic TEXT NOT NULL,
        enabled_at INTEGER NOT NULL,
        start_at INTEGER,               -- when initial replication starts
        tracking INTEGER NOT NULL DEFAULT 0,
        initial_total INTEGER NOT NULL DEFAULT 0,
        initial_done INTEGER NOT NULL DEFAULT 0,
        cursor_disk INTEGER NOT NULL DEFAULT 0,
        cursor_offset INTEGER NOT NULL DEFAULT 0,
        initial_done_at INTEGER,
        next_cycle INTEGER,
        next_app INTEGER,
        failover_state TEXT NOT NULL DEFAULT '',
        last_replication INTEGER,
        error TEXT NOT NULL DEFAULT ''
    );
    CREATE TABLE transfers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vm TEXT NOT NULL,
        kind TEXT NOT NULL,             -- initial | delta
        source TEXT NOT NULL, target TEXT NOT NULL,   -- the link
        dir TEXT NOT NULL,              -- staged frames, relative to the lab
        disk INTEGER,                   -- initial: the disk of the chunk
        raw_bytes INTEGER NOT NULL,
        wire_bytes INTEGER NOT NULL,
        sent_bytes INTEGER NOT NULL DEFAULT 0,
        point_time INTEGER,             -- delta: the instant the logs were frozen
        app INTEGER NOT NULL DEFAULT 0,
        fingerprints TEXT NOT NULL DEFAULT '[]',
        last_seq INTEGER NOT NULL DEFAULT 0,
        created INTEGER NOT NULL
    );
    CREATE TABLE points (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        vm TEXT NOT NULL,
        time INTEGER NOT NULL,
        kind TEXT NOT NULL,             -- crash-consistent | app-consistent
        dir TEXT NOT NULL,              -- the point's frames, relative to the lab
        size INTEGER NOT NULL,
        fingerprints TEXT NOT NULL,     -- per disk, of the source at `time`
        last_seq INTEGER NOT NULL,      -- last application transaction written by `time`
        arrived INTEGER NOT NULL
    );
    CREATE INDEX points_vm ON points(vm, time);
    CREATE TABLE jobs (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL, name TEXT NOT NULL, target TEXT NOT NULL,
        state TEXT NOT NULL, started INTEGER NOT NULL, ended INTEGER,
        error TEXT NOT NULL DEFAULT '', step INTEGER NOT NULL DEFAULT 0, data TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE job_steps (
        job INTEGER NOT NULL REFERENCES jobs(id), idx INTEGER NOT NULL,
        name TEXT NOT NULL, seconds INTEGER, state TEXT NOT NULL,   -- seconds NULL: waits for action
        started INTEGER, ended INTEGER,
        PRIMARY KEY (job, idx)
    );
    CREATE TABLE rpo_samples (place TEXT NOT NULL, time INTEGER NOT NULL, rpo INTEGER, PRIMARY KEY (place, time));
    """,
    # 3: a job may wait on child jobs (a recovery plan's failover runs one job per VM).
    """
    ALTER TABLE jobs ADD COLUMN parent INTEGER REFERENCES jobs(id);
    """,
    # 4: failover. Where each item's workload runs, the VMs built at the recovery side, and
    # what each failover job cost (its report). seq_offset: a VM's transaction numbers go on
    # from where the disks it runs on left off (after a failback, from the recovered VM's).
    """
    -- active: primary | recovery; last_failover: planned | unplanned
    ALTER TABLE items ADD COLUMN active TEXT NOT NULL DEFAULT 'primary';
    ALTER TABLE items ADD COLUMN last_failover TEXT NOT NULL DEFAULT '';
    ALTER TABLE vms ADD COLUMN seq_offset INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE jobs ADD COLUMN report TEXT NOT NULL DEFAULT '';
    CREATE TABLE recovered (
        name TEXT PRIMARY KEY,          -- the VM at the recovery side: the target name, or VM-test
        vm TEXT NOT NULL,               -- the protected item it was recovered from
        role TEXT NOT NULL,             -- test | failover
        place TEXT NOT NULL,            -- Azure region or recovery cloud
        network TEXT NOT NULL,          -- '' = isolated
        dir TEXT NOT NULL,              -- its disks, relative to the lab
        point INTEGER,                  -- the recovery point it was built from
        power TEXT NOT NULL,            -- running | off
        run_seconds INTEGER NOT NULL DEFAULT 0,
        seq_offset INTEGER NOT NULL,    -- the last transaction its disks held when it was built
        writes_done INTEGER NOT NULL,   -- its last transaction so far
        tracking INTEGER NOT NULL DEFAULT 0,  -- reverse replication logs its writes
        created INTEGER NOT NULL
    );
    """,
    # 5: hardening. A link bandwidth is finite and at most 1 Tbps (older versions accepted inf).
    """
    UPDATE links SET mbps=1000000.0 WHERE mbps > 1000000.0;
    """,
    # 6: recovery plans (ordered groups of protected VMs, manual actions and scripts) and
    # replication groups (multi-VM consistency: members share recovery points).
    """
    CREATE TABLE plans (
        name TEXT PRIMARY KEY,
        source TEXT NOT NULL,           -- the container its VMs are protected from
        target TEXT NOT NULL,           -- where they replicate to (region or recovery cloud)
        groups INTEGER NOT NULL DEFAULT 1,
        rto_target INTEGER,             -- seconds; the drill report compares against it
        created INTEGER NOT NULL
    );
    CREATE TABLE plan_items (
        plan TEXT NOT NULL REFERENCES plans(name) ON DELETE CASCADE,
        vm TEXT NOT NULL,
        grp INTEGER NOT NULL,
        PRIMARY KEY (plan, vm)
    );
    CREATE TABLE plan_actions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        plan TEXT NOT NULL REFERENCES plans(name) ON DELETE CASCADE,
        grp INTEGER NOT NULL,
        phase TEXT NOT NULL,            -- before | after (the group)
        kind TEXT NOT NULL,             -- manual | script
        text TEXT NOT NULL              -- the manual action's instructions, or the script's path
    );
    CREATE TABLE replication_groups (name TEXT NOT NULL, vm TEXT PRIMARY KEY);
    """,
    # 7: faults. Faults injected on purpose (lab state until cleared or their time is up), the
    # retry state of each item (seed 000's retry logic), error codes and recommended actions on
    # events, a VM's workload rate set at run time, transfers held until their retry, resyncs.
    """
    CREATE TABLE faults (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,             -- link-down | link-flaky | ... (faults.KINDS)
        target TEXT NOT NULL DEFAULT '', -- what it touches ('' = everything it can)
        since INTEGER NOT NULL,
        until INTEGER,                  -- cleared by itself at this lab time (NULL: until cleared)
        amount REAL                     -- link-flaky: share of transfers failing; link-slow: bandwidth share
    );
    ALTER TABLE events ADD COLUMN code TEXT NOT NULL DEFAULT '';
    ALTER TABLE events ADD COLUMN action TEXT NOT NULL DEFAULT '';
    ALTER TABLE items ADD COLUMN error_code TEXT NOT NULL DEFAULT '';
    ALTER TABLE items ADD COLUMN resync_required INTEGER NOT NULL DEFAULT 0;
    -- failed attempts in a row, the first one's time and the next attempt's (retry logic)
    ALTER TABLE items ADD COLUMN failures INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE items ADD COLUMN first_failure INTEGER;
    ALTER TABLE items ADD COLUMN retry_at INTEGER;
    -- a workload rate set at run time (NULL: the site file's), from run_seconds rate_since on,
    -- after rate_base writes
    ALTER TABLE vms ADD COLUMN rate_kib REAL;
    ALTER TABLE vms ADD COLUMN rate_since INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE vms ADD COLUMN rate_base INTEGER NOT NULL DEFAULT 0;
    -- a transfer lost on the way is sent again at the item's next attempt
    ALTER TABLE transfers ADD COLUMN hold_until INTEGER;
    CREATE TABLE resyncs (
        vm TEXT PRIMARY KEY,
        job INTEGER,                    -- the Resynchronize job
        started INTEGER NOT NULL,       -- tracking restarted here: later writes are in the log
        disk INTEGER NOT NULL DEFAULT 0,
        offset INTEGER NOT NULL DEFAULT 0,  -- the next chunk to compare
        total INTEGER NOT NULL DEFAULT 0,   -- bytes to compare
        compared INTEGER NOT NULL DEFAULT 0,
        differing INTEGER NOT NULL DEFAULT 0,  -- chunks whose checksums differ
        sent INTEGER NOT NULL DEFAULT 0,    -- bytes on the wire: checksums and differing blocks
        base_point INTEGER,             -- the recovery point compared against (NULL: the base)
        dir TEXT NOT NULL DEFAULT ''    -- staged differing blocks, relative to the lab
    );
    """,
    # 8: protection containers. The replication policy hangs off a container (a VMM cloud, an
    # Azure region, a configuration server), not off a VMM cloud; Azure -> Azure (seed 002): the
    # resources Site Recovery creates, and each item's two sides (where it runs, where it goes).
    """
    ALTER TABLE cloud_protection RENAME TO protection_settings;
    ALTER TABLE protection_settings RENAME COLUMN cloud TO container;
    ALTER TABLE protection_settings ADD COLUMN container_kind TEXT NOT NULL DEFAULT 'VMM cloud';
    -- the policy's name ('' for a cloud's own settings)
    ALTER TABLE protection_settings ADD COLUMN policy_name TEXT NOT NULL DEFAULT '';
    -- continuous replication: seconds between the batches sent to the cache (0: copy cycles)
    ALTER TABLE protection_settings ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE azure_resources (
        kind TEXT NOT NULL,             -- resource group | virtual network | storage account | availability set
        name TEXT NOT NULL,
        region TEXT NOT NULL,
        made_for TEXT NOT NULL,         -- the VM whose protection created it
        detail TEXT NOT NULL DEFAULT '', -- a virtual network's address space and subnets
        created INTEGER NOT NULL,
        PRIMARY KEY (kind, name, region)
    );
    CREATE TABLE a2a_sides (
        vm TEXT NOT NULL,
        side TEXT NOT NULL,             -- primary (where the VM was) | recovery (where it fails over to)
        region TEXT NOT NULL,
        resource_group TEXT NOT NULL, network TEXT NOT NULL, subnet TEXT NOT NULL,
        storage_account TEXT NOT NULL,  -- replicas arriving on this side land here
        cache_account TEXT NOT NULL,    -- writes leaving this side wait here
        availability_set TEXT NOT NULL,
        PRIMARY KEY (vm, side)
    );
    ALTER TABLE recovered ADD COLUMN resource_group TEXT NOT NULL DEFAULT '';
    ALTER TABLE recovered ADD COLUMN subnet TEXT NOT NULL DEFAULT '';
    ALTER TABLE recovered ADD COLUMN availability_set TEXT NOT NULL DEFAULT '';
    """,
    # 9: physical servers (seed 003): the mobility service on each server (and the process server
    # it sends to), replication policies made on their own and associated with a configuration
    # server, each with its failback policy.
    """
    CREATE TABLE mobility (
        server TEXT PRIMARY KEY,
        method TEXT NOT NULL,           -- push | manual
        installed_at INTEGER NOT NULL,
        process_server TEXT NOT NULL DEFAULT ''  -- set when the server is protected
    );
    CREATE TABLE policies (
        name TEXT PRIMARY KEY,
        kind TEXT NOT NULL,             -- replication | failback
        retention_h INTEGER NOT NULL,
        app_consistent_h INTEGER NOT NULL,
        created INTEGER NOT NULL,
        server TEXT NOT NULL DEFAULT '' -- the configuration server it is associated with
    );
    -- a server failing back from Azure to a VMware VM: through which process server in Azure
    -- and master target, to which datastore
    CREATE TABLE failbacks (
        vm TEXT PRIMARY KEY,
        region TEXT NOT NULL,           -- the Azure region it runs in
        process_server TEXT NOT NULL, master_target TEXT NOT NULL,
        vmware_site TEXT NOT NULL, vcenter TEXT NOT NULL, esxi_host TEXT NOT NULL, datastore TEXT NOT NULL,
        policy TEXT NOT NULL,           -- the failback policy
        disks_dir TEXT NOT NULL,        -- where the server's own disks were (they go at the commit)
        created INTEGER NOT NULL
    );
    -- what a failed-back server runs on now ('': as the site file says)
    ALTER TABLE vms ADD COLUMN platform TEXT NOT NULL DEFAULT '';
""",
]
SCHEMA_VERSION = len(MIGRATIONS)
SQLITE_HEADER = b"SQLite format 3\x00"


def connect(path: Path, read_only: bool = False) -> sqlite_utils.Database:
    """The vault. read_only: for a lab on a read-only folder or file system (nothing is written,
    not even SQLite's -shm file: the database is opened immutable when it has none)."""
    import sqlite3

    if read_only:
        shared = Path(f"{path}-shm").exists() and Path(f"{path}-wal").exists()
        uri = f"{Path(path).absolute().as_uri()}?mode=ro" + ("" if shared else "&immutable=1")
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False, isolation_level=None)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
    db = sqlite_utils.Database(conn)
    db.srlab_read_only = read_only
    if not read_only:
        db.execute("PRAGMA journal_mode=WAL")
        # FULL: each commit is durable, so a recovery point recorded is never lost to a crash.
        db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    return db


def vault_problem(path: Path) -> str | None:
    """Why the file at `path` is not a vault srlab may open, judged without writing to it (an
    empty or foreign file must stay as it is); None when it looks like one."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as e:
        return f"cannot be read ({e.strerror})"
    if not head:
        return "is empty: it is not an srlab vault"
    if len(head) < 100 or not head.startswith(SQLITE_HEADER):
        return "is not an srlab vault (not a SQLite database)"
    return None


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
        self.db = db
        self.conn = db.conn
        self.outer = False

    def __enter__(self):
        if getattr(self.db, "srlab_read_only", False):
            raise Refused("the lab is read-only: nothing in it can change",
                          "make it writable (chmod -R u+w LAB) to change it; status, points, jobs, verify and "
                          "export work as it is")
        if not self.conn.in_transaction:
            self.conn.execute("BEGIN IMMEDIATE")
            self.outer = True
        return self

    def __exit__(self, exc_type, *_):
        if self.outer:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                except BaseException:  # e.g. the disk is full: nothing of it stays
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            elif self.conn.in_transaction:  # SQLite may have rolled back already (disk full)
                self.conn.execute("ROLLBACK")
        return False


def rows(db: sqlite_utils.Database, sql: str, params=()) -> list[dict]:
    """db.query's rows as dicts, without sqlite-utils' parsing of every query: the hot paths of a
    1,000-VM lab's slice ask thousands of them."""
    cur = db.conn.execute(sql, params)
    keys = [d[0] for d in cur.description]
    return [dict(zip(keys, r)) for r in cur]


def row(db: sqlite_utils.Database, sql: str, params=()) -> dict | None:
    """The first of rows(), or None."""
    cur = db.conn.execute(sql, params)
    r = cur.fetchone()
    return None if r is None else dict(zip([d[0] for d in cur.description], r))


def insert(db: sqlite_utils.Database, table: str, values: dict) -> int:
    """Insert a row and return its rowid, without sqlite-utils' look at the schema on every insert
    (two queries each: a 1,000-VM lab inserts thousands of rows a lab hour)."""
    cols = ", ".join(values)
    marks = ", ".join("?" * len(values))
    return db.conn.execute(f"INSERT INTO {table} ({cols}) VALUES ({marks})", list(values.values())).lastrowid


def get_meta(db: sqlite_utils.Database, key: str, default=None):
    row = db.execute("SELECT value FROM meta WHERE key=?", [key]).fetchone()
    return json.loads(row[0]) if row else default


def set_meta(db: sqlite_utils.Database, key: str, value) -> None:
    db.execute(
        "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
        [key, json.dumps(value)],
    )
