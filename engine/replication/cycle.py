"""Replication over lab time: initial copy, change tracking, copy cycles, points, retention.

Most of this runs inside Lab.run's transaction for one slice of lab time; what must not be
undone by a rollback waits for the commit (`after_commit`). Files are written durably before
the rows that claim them, and work on files is safe to redo after a rollback, so a killed
process leaves at worst an orphan file, never a recovery point without its data:
- a frozen log stays on disk (`.hrl.frozen`) until the slice that shipped it is committed; a
  later freeze that finds one ships it again first (a replayed log does no harm);
- an arrival redone after a rollback finds its frames already moved or applied;
- expired points are folded after the commit, each step committed on its own.

Nothing damaged is applied: every arriving frame and every change-log record in it is checked
(changelog) before the arrival is claimed. A damaged arrival is dropped, the item's error says so
(health Critical: a resynchronization is needed) and the rest of the lab goes on.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from typing import Protocol

from .. import states, store
from ..errors import Damaged, LabError
from ..model import VM
from ..states import Protection
from ..disks import allocated_bytes, data_extents
from . import changelog, replica
from .link import bytes_per_second
from .points import PointInfo, points_to_keep

CHUNK = 16 * 1024 * 1024  # initial replication window


def log_path(disk: Path) -> Path:
    """The disk's change log, beside it (the seeds' .hrl)."""
    return disk.with_suffix(".hrl")


def frozen_path(disk: Path) -> Path:
    """A frozen log whose shipping is not committed yet."""
    return disk.with_suffix(".hrl.frozen")


class Surroundings(Protocol):
    """What replication needs from the lab, and nothing more."""

    path: Path  # the lab directory
    db: object  # the vault (the caller holds the slice's transaction)

    def vm(self, name: str) -> VM: ...
    def vm_names(self) -> list[str]: ...
    def disk_path(self, vm: str, idx: int) -> Path: ...
    def policy(self, vm: str) -> dict: ...  # the replication policy of the VM's container
    def link_of(self, vm: str) -> tuple[str, str]: ...  # (source place, target place)
    def encryption_key(self, vm: str) -> bytes: ...
    def writes_done(self, vm: str) -> int: ...  # the guest's last transaction so far
    def source_fingerprint(self, disk: Path, size: int) -> list: ...
    def event(self, time: int, level: str, subject: str, message: str) -> None: ...
    def initial_replication_done(self, vm: str, at: int) -> None: ...  # the first point arrived


class Replication:
    def __init__(self, env: Surroundings):
        self.env = env
        self.db = env.db
        self.begin_slice()

    def begin_slice(self) -> None:
        """Forget what an interrupted slice left to do after its commit (it was rolled back)."""
        self._frozen: list[Path] = []
        self._dropped: list[Path] = []
        self._retention_due: set[str] = set()

    def after_commit(self, now: int) -> None:
        """The slice is committed: its frozen logs are shipped for good, damaged arrivals are
        gone for good; fold expired points (a damaged point stops only its own item's folds)."""
        for f in self._frozen:
            f.unlink(missing_ok=True)
        for d in self._dropped:
            shutil.rmtree(d, ignore_errors=True)
        for vm in sorted(self._retention_due):
            item = self.item(vm)
            if item is not None:
                try:
                    self.apply_retention(item, now)
                except Damaged as e:
                    self.item_error(vm, now, f"retention cannot fold expired recovery points: {e.message}; "
                                             "resynchronization required")
        self.begin_slice()

    def item_error(self, vm: str, at: int, message: str) -> None:
        """Set an item's error (health Critical, with the message) and say so in the events, once."""
        with store.transaction(self.db):
            row = self.db.execute("SELECT error FROM items WHERE vm=?", [vm]).fetchone()
            if row is None or row[0] == message:
                return
            self.db.execute("UPDATE items SET error=? WHERE vm=?", [message, vm])
            self.env.event(at, "error", vm, message)

    # ---- helpers ----------------------------------------------------------------------

    def item(self, vm: str) -> dict | None:
        return states.item(self.db, vm)

    def items(self, *which: Protection) -> list[dict]:
        return states.items(self.db, *which)

    def policy(self, vm_name: str) -> dict:
        return self.env.policy(vm_name)

    def key_for(self, vm_name: str) -> bytes | None:
        if not self.policy(vm_name)["encrypt"]:
            return None
        return self.env.encryption_key(vm_name)

    def store_dir(self, item: dict) -> Path:
        return self.env.path / item["store"]

    def base_path(self, item: dict, idx: int) -> Path:
        return self.store_dir(item) / f"{idx}-{self.env.vm(item['vm']).disks[idx].name}.vhd"

    def labels(self, vm_name: str) -> list[str]:
        return [f"{vm_name}/{d.name}" for d in self.env.vm(vm_name).disks]

    def link_of(self, vm_name: str) -> tuple[str, str]:
        return self.env.link_of(vm_name)

    def _stage(self, vm_name: str, transfer_id: int) -> Path:
        return self.env.disk_path(vm_name, 0).parent / "outgoing" / f"t{transfer_id}"

    # ---- starting -----------------------------------------------------------------------

    def create_replica(self, item: dict, now: int) -> None:
        vm = self.env.vm(item["vm"])
        for i, d in enumerate(vm.disks):
            base = self.base_path(item, i)
            if not base.exists():
                replica.create_base(base, d.size_bytes, now)

    def start_initial(self, item: dict, now: int) -> None:
        """Tracking starts, then allocated extents are copied; writes meanwhile land in the logs."""
        vm = self.env.vm(item["vm"])
        total = 0
        for i, d in enumerate(vm.disks):
            p = self.env.disk_path(vm.name, i)
            log_path(p).write_bytes(b"")
            total += allocated_bytes(p, d.size_bytes)
        states.move(self.db, vm.name, Protection.INITIAL, tracking=1, initial_total=total, initial_done=0,
                    cursor_disk=0, cursor_offset=0, initial_done_at=None)
        self.env.event(now, "info", vm.name, f"initial replication started ({total} bytes to copy)")

    # ---- the source side ----------------------------------------------------------------

    def next_chunk(self, item: dict, now: int) -> int | None:
        """Stage the next initial-replication window of allocated data; None when all is copied."""
        vm = self.env.vm(item["vm"])
        disk, offset = item["cursor_disk"], item["cursor_offset"]
        while disk < len(vm.disks):
            size = vm.disks[disk].size_bytes
            with open(self.env.disk_path(vm.name, disk), "rb") as f:
                ext = next(data_extents(f.fileno(), size, offset), None)
                if ext is None:
                    disk, offset = disk + 1, 0
                    continue
                start = ext[0]
                end = min(start + CHUNK, size)
                buf = bytearray()
                raw = 0
                for s, n in data_extents(f.fileno(), end, start):
                    buf += changelog.record(s, os.pread(f.fileno(), n, s))
                    raw += n
            self.db.execute("UPDATE items SET cursor_disk=?, cursor_offset=? WHERE vm=?", [disk, end, vm.name])
            blob = changelog.seal(bytes(buf), self.key_for(vm.name), self.labels(vm.name)[disk])
            return self._enqueue(vm.name, "initial", now, {0: blob}, raw, disk=disk)
        self.db.execute("UPDATE items SET cursor_disk=? WHERE vm=?", [disk, vm.name])
        return None

    def freeze(self, vm_name: str, now: int, app: bool) -> int:
        """Freeze every disk's log at `now`, start new ones, and queue the frozen logs for shipping."""
        vm = self.env.vm(vm_name)
        key = self.key_for(vm_name)
        blobs, fps, raw = {}, [], 0
        for i, d in enumerate(vm.disks):
            disk = self.env.disk_path(vm.name, i)
            log, frozen = log_path(disk), frozen_path(disk)
            if frozen.exists():  # left by a killed process: its shipping was never committed
                changelog.write_durable(frozen, frozen.read_bytes() + (log.read_bytes() if log.exists() else b""))
            elif log.exists():
                os.replace(log, frozen)
            else:
                frozen.write_bytes(b"")
            log.write_bytes(b"")  # writes from now on go to the new log
            self._frozen.append(frozen)
            buf = frozen.read_bytes()
            raw += len(buf)
            blobs[i] = changelog.seal(buf, key, self.labels(vm_name)[i])
            fps.append(self.env.source_fingerprint(disk, d.size_bytes))
        last_seq = self.env.writes_done(vm.name)
        return self._enqueue(vm.name, "delta", now, blobs, raw, point_time=now, app=app,
                             fingerprints=fps, last_seq=last_seq)

    def _enqueue(self, vm_name, kind, now, blobs: dict[int, bytes], raw: int, **extra) -> int:
        source, target = self.link_of(vm_name)
        row = {"vm": vm_name, "kind": kind, "source": source, "target": target, "dir": "",
               "raw_bytes": raw, "wire_bytes": sum(len(b) for b in blobs.values()), "created": now,
               "disk": extra.get("disk"), "point_time": extra.get("point_time"), "app": int(extra.get("app", False)),
               "fingerprints": json.dumps(extra.get("fingerprints", [])), "last_seq": extra.get("last_seq", 0)}
        tid = self.db["transfers"].insert(row).last_pk
        stage = self._stage(vm_name, tid)
        shutil.rmtree(stage, ignore_errors=True)  # an id a rolled-back slice used may be used again
        encrypted = self.key_for(vm_name) is not None
        for i, blob in blobs.items():
            changelog.write_durable(stage / replica.frame_name(i, encrypted), blob)
        self.db.execute("UPDATE transfers SET dir=? WHERE id=?", [str(stage.relative_to(self.env.path)), tid])
        return tid

    # ---- the link -------------------------------------------------------------------------

    def serve_links(self, t0: int, t1: int) -> None:
        for link in self.db.query("SELECT * FROM links"):
            self._serve(link, t0, t1)

    def _serve(self, link: dict, t0: int, t1: int) -> None:
        rate = bytes_per_second(link["mbps"], link["state"])
        budget = rate * (t1 - t0)
        clock = float(t0)
        while budget > 0:
            head = next(self.db.query(
                "SELECT * FROM transfers WHERE source=? AND target=? ORDER BY id LIMIT 1",
                [link["source"], link["target"]]), None)
            if head is None:
                if self._feed_initial(link, t1) is None:
                    return
                continue
            need = head["wire_bytes"] - head["sent_bytes"]
            if need > budget:
                self.db.execute("UPDATE transfers SET sent_bytes=sent_bytes+? WHERE id=?", [int(budget), head["id"]])
                return
            budget -= need
            clock += need / rate
            self.arrive(head, min(t1, int(clock + 0.999)))

    def _feed_initial(self, link: dict, now: int) -> int | None:
        """Queue the next initial chunk of the first item on this link still copying."""
        for item in self.items(Protection.INITIAL):
            if self.link_of(item["vm"]) != (link["source"], link["target"]) or item["initial_done_at"]:
                continue
            tid = self.next_chunk(item, now)
            if tid is not None:
                return tid
            self.initial_copied(item, now)
        return None

    def initial_copied(self, item: dict, now: int) -> None:
        """All data copied: the first delta (writes made during the copy) makes the replica consistent."""
        self.db.execute("UPDATE items SET initial_done_at=? WHERE vm=?", [now, item["vm"]])
        self.freeze(item["vm"], now, app=False)

    # ---- the recovery side ----------------------------------------------------------------

    def _check_arrival(self, t: dict, stage: Path) -> None:
        """Raise Damaged unless every frame of an arrival unseals and every record in it checks."""
        vm = self.env.vm(t["vm"])
        disks = [t["disk"]] if t["kind"] == "initial" else range(len(vm.disks))
        try:
            key = self.key_for(vm.name)
        except LabError as e:
            raise Damaged(f"it cannot be checked: {e.message}") from None
        for i in disks:
            f = replica.frame_path(stage, 0 if t["kind"] == "initial" else i)
            if f is None:
                raise Damaged(f"its frame for disk {vm.disks[i].name} is missing")
            label = self.labels(vm.name)[i]
            try:
                buf = changelog.unseal(f.read_bytes(), key, label)
            except Damaged as e:
                raise Damaged(f"{e.message}; {f.name} was damaged on the way") from None
            try:
                changelog.check(buf, vm.disks[i].size_bytes)
            except Damaged as e:
                raise Damaged(f"{label}: {e.message}; the log was damaged before it was shipped") from None

    def _drop(self, t: dict, stage: Path, at: int, e: Damaged) -> None:
        """A damaged arrival: not applied; the transfer is gone (its folder after the commit)."""
        self._dropped.append(stage)
        what = "initial-replication chunk" if t["kind"] == "initial" else "change log"
        msg = (f"a damaged {what} arrived and was not applied (transfer {t['id']}: {e.message}); the replica "
               "misses its writes: resynchronization required")
        self.db.execute("UPDATE items SET error=? WHERE vm=?", [msg, t["vm"]])
        self.env.event(at, "error", t["vm"], msg)

    def arrive(self, t: dict, at: int) -> None:
        item = self.item(t["vm"])
        stage = self.env.path / t["dir"]
        self.db.execute("DELETE FROM transfers WHERE id=?", [t["id"]])
        if item is None or item["state"] == Protection.DISABLING:  # disabled while in flight
            shutil.rmtree(stage, ignore_errors=True)
            return
        if t["kind"] == "initial":
            f = replica.frame_path(stage, 0)
            if f is not None:  # None: applied already, by a slice that was then rolled back
                try:
                    self._check_arrival(t, stage)
                except Damaged as e:
                    self._drop(t, stage, at, e)
                    return
                replica.apply_blob(self.base_path(item, t["disk"]), f.read_bytes(), self.key_for(t["vm"]),
                                   self.labels(t["vm"])[t["disk"]])
            shutil.rmtree(stage, ignore_errors=True)
            self.db.execute("UPDATE items SET initial_done=initial_done+? WHERE vm=?", [t["raw_bytes"], t["vm"]])
            return
        points = self.store_dir(item) / "points"
        points.mkdir(parents=True, exist_ok=True)
        dest = points / f"p{t['id']}"
        if stage.exists() or not dest.exists():  # dest alone: moved by a slice that was rolled back
            try:
                if not stage.exists():
                    raise Damaged("its frames are gone")
                self._check_arrival(t, stage)
            except Damaged as e:
                self._drop(t, stage, at, e)
                return
            os.replace(stage, dest)
            changelog.fsync_dir(points)
        kind = "app-consistent" if t["app"] else "crash-consistent"
        self.db["points"].insert({
            "vm": t["vm"], "time": t["point_time"], "kind": kind, "dir": str(dest.relative_to(self.env.path)),
            "size": replica.dir_size(dest), "fingerprints": t["fingerprints"], "last_seq": t["last_seq"],
            "arrived": at,
        })
        self.db.execute("UPDATE items SET last_replication=? WHERE vm=?", [at, t["vm"]])
        if item["state"] == Protection.INITIAL:
            self._finish_initial(item, t["point_time"], at)
        self._retention_due.add(t["vm"])

    def _finish_initial(self, item: dict, point_time: int, at: int) -> None:
        freq = self.policy(item["vm"])["frequency"]
        app_h = self.policy(item["vm"])["app_consistent_h"]
        states.move(self.db, item["vm"], Protection.FINALIZING, next_cycle=point_time + freq,
                    next_app=point_time + app_h * 3600 if app_h else None)
        self.env.initial_replication_done(item["vm"], at)

    # ---- cycles ---------------------------------------------------------------------------

    def tick(self, now: int) -> None:
        for item in self.items(Protection.INITIAL_PENDING):
            if item["start_at"] is not None and item["start_at"] <= now:
                self.start_initial(item, now)
        for item in self.items(Protection.FINALIZING, Protection.PROTECTED):
            if item["next_cycle"] is None or item["next_cycle"] > now:
                continue
            pol = self.policy(item["vm"])
            freq = pol["frequency"]
            nxt = item["next_cycle"]
            while nxt <= now:
                nxt += freq
            # A replication group's members freeze together (their points share each instant),
            # so one member's log still on the wire holds the whole group's cycle back.
            in_flight = self.db.execute(
                "SELECT COUNT(*) FROM transfers WHERE kind='delta' AND created < ? AND (vm=? OR vm IN (SELECT vm "
                "FROM replication_groups WHERE name=(SELECT name FROM replication_groups WHERE vm=?)))",
                [now, item["vm"], item["vm"]]).fetchone()[0]
            if in_flight:
                # The last log is still on the wire: this cycle is missed and the log grows.
                self.db.execute("UPDATE items SET next_cycle=? WHERE vm=?", [nxt, item["vm"]])
                continue
            app = item["next_app"] is not None and item["next_app"] <= now
            next_app = item["next_app"]
            if app:
                # The guest is quiesced (VSS): its writes are flushed, so this point is app-consistent.
                while next_app <= now:
                    next_app += pol["app_consistent_h"] * 3600
            self.freeze(item["vm"], now, app)
            self.db.execute("UPDATE items SET next_cycle=?, next_app=? WHERE vm=?", [nxt, next_app, item["vm"]])

    def next_event(self) -> int | None:
        row = self.db.execute(
            "SELECT MIN(t) FROM (SELECT MIN(start_at) AS t FROM items WHERE state=? "
            "UNION ALL SELECT MIN(next_cycle) FROM items WHERE next_cycle IS NOT NULL)",
            [Protection.INITIAL_PENDING.value]).fetchone()
        return row[0]

    def stop(self, vm_name: str) -> None:
        """Stop tracking and drop what is queued or staged for this VM."""
        self.db.execute("UPDATE items SET tracking=0 WHERE vm=?", [vm_name])
        for t in self.db.query("SELECT dir FROM transfers WHERE vm=?", [vm_name]):
            shutil.rmtree(self.env.path / t["dir"], ignore_errors=True)
        self.db.execute("DELETE FROM transfers WHERE vm=?", [vm_name])
        for i in range(len(self.env.vm(vm_name).disks)):
            log_path(self.env.disk_path(vm_name, i)).unlink(missing_ok=True)
            frozen_path(self.env.disk_path(vm_name, i)).unlink(missing_ok=True)

    def sweep(self) -> list[Path]:
        """Remove folders a killed process left that nothing claims: staged transfers whose row
        was rolled back, and folded points whose folder outlived the commit. Only the clock's
        holder may call this (it alone stages and folds). Frozen logs are never swept: they
        hold writes not yet shipped."""
        transfers = {r[0] for r in self.db.execute("SELECT id FROM transfers")}
        claimed = {self.env.path / r[0] for r in self.db.execute("SELECT dir FROM points")}
        gone = []
        for vm in self.env.vm_names():
            outgoing = self.env.disk_path(vm, 0).parent / "outgoing"
            gone += [d for d in outgoing.glob("t*") if d.name[1:].isdigit() and int(d.name[1:]) not in transfers]
        for d in (self.env.path / "storage").glob("*/*/points/p*"):
            if d.name[1:].isdigit() and d not in claimed and int(d.name[1:]) not in transfers:
                gone.append(d)
        for d in gone:
            shutil.rmtree(d, ignore_errors=True)
        self.repair_logs()
        return gone

    def repair_logs(self) -> list[Path]:
        """Cut the torn last record a killed process may have left at the end of a change log
        (source disks' logs, and recovered VMs' for reverse replication), so that the next
        append follows whole records. Only the clock's holder may call this."""
        cut = []
        for root in (self.env.path / "sites", self.env.path / "recovery"):
            for log in [*root.glob("**/*.hrl"), *root.glob("**/*.hrl.frozen")]:
                buf = log.read_bytes()
                whole = changelog.complete_length(buf)
                if whole < len(buf):
                    with open(log, "r+b") as f:
                        f.truncate(whole)
                        os.fsync(f.fileno())
                    cut.append(log)
        return cut

    def remove_replica(self, item: dict) -> None:
        shutil.rmtree(self.store_dir(item), ignore_errors=True)
        self.db.execute("DELETE FROM points WHERE vm=?", [item["vm"]])

    # ---- retention ------------------------------------------------------------------------

    def point_rows(self, vm: str) -> list[dict]:
        return list(self.db.query("SELECT * FROM points WHERE vm=? ORDER BY time, id", [vm]))

    def apply_retention(self, item: dict, now: int) -> None:
        """Fold the points retention lets go, outside any slice: one committed step at a time, the
        oldest ones into the base one by one, each run of middle ones into the next kept point."""
        assert not self.db.conn.in_transaction, "each fold commits on its own"
        rows = self.point_rows(item["vm"])
        pol = self.policy(item["vm"])
        keep = points_to_keep([PointInfo(r["id"], r["time"], r["kind"] == "app-consistent") for r in rows],
                              now, pol["retention_h"])
        if len(keep) == len(rows):
            return
        key, labels = self.key_for(item["vm"]), self.labels(item["vm"])
        with replica.store_lock(self.store_dir(item), exclusive=True):
            expired: list[dict] = []
            for i, r in enumerate(rows):
                if r["id"] not in keep:
                    expired.append(r)
                    continue
                if expired and i == len(expired):  # nothing kept before them: into the base
                    for old in expired:
                        for d, label in enumerate(labels):
                            f = replica.frame_path(self.env.path / old["dir"], d)
                            if f is not None:
                                try:
                                    replica.apply_blob(self.base_path(item, d), f.read_bytes(), key, label)
                                except Damaged as e:
                                    raise Damaged(f"{f}: {e.message}", file=str(f)) from None
                        self._forget_points([old])
                elif expired:
                    newer = self.env.path / r["dir"]
                    replica.merge_into_next([self.env.path / x["dir"] for x in expired], newer, len(labels),
                                            key, labels)
                    self._forget_points(expired, resized=(r["id"], replica.dir_size(newer)))
                expired = []

    def _forget_points(self, rows: list[dict], resized: tuple[int, int] | None = None) -> None:
        """Commit that folded points are gone, then remove their folders (an orphan at worst)."""
        with store.transaction(self.db):
            self.db.execute(f"DELETE FROM points WHERE id IN ({','.join('?' * len(rows))})", [r["id"] for r in rows])
            if resized:
                self.db.execute("UPDATE points SET size=? WHERE id=?", [resized[1], resized[0]])
        for r in rows:
            shutil.rmtree(self.env.path / r["dir"], ignore_errors=True)
