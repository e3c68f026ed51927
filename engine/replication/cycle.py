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
(changelog), and the replica it lands on too, before the arrival is claimed. A damaged initial
chunk is sent again from the source (initial replication restarts); a damaged log or replica
makes the item Critical with a resynchronization required, and the rest of the lab goes on.

Faults (engine.faults, through Surroundings) stop what they touch: an item whose attempt finds a
problem is retried on seed 000's schedule (recoverable) or waits for a resync (unrecoverable);
its queued shipments wait; a link carries the share of its bandwidth the faults leave it.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
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
# One thread reads and compresses the next two initial windows (lz4, AES-GCM and file reads
# release the GIL) while the calling thread keeps the books: both cores work.
_AHEAD = ThreadPoolExecutor(1, thread_name_prefix="srlab-initial")
# And one thread reads, unseals, checks and writes an initial chunk into the replica base at the
# recovery side (made durable by the slice's flush when it arrives in the slice).
_RECEIVE = ThreadPoolExecutor(1, thread_name_prefix="srlab-arrival")


def _reuse_big_buffers() -> None:
    """Have glibc keep freed buffers of up to 64 MiB for the next ones instead of handing them
    back to the kernel at once: an initial window's 16 MiB buffers (its frame, its unsealed
    records) are then not faulted in and zeroed page by page every time, which cost about a third
    of an initial replication's CPU time."""
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):  # not glibc: its own ways
        pass


_reuse_big_buffers()
# Where a damaged arrival was damaged (Damaged.hint): on the way (the frame), or at the source
# before it was shipped (a record of the log: the VHD chain is broken).
DAMAGED_ON_THE_WAY = "damaged on the way"
CHAIN_BROKEN = "damaged at the source"


def cadence(policy: dict) -> int:
    """Lab seconds between two freezes of a VM's logs: the copy frequency, or with continuous
    replication (Azure -> Azure) the batch interval."""
    return policy["batch"] or policy["frequency"]


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
    def stage_dir(self, vm: str) -> Path: ...  # where its shipments wait (an Azure VM's: the cache account)
    def encryption_key(self, vm: str) -> bytes: ...
    def writes_done(self, vm: str) -> int: ...  # the guest's last transaction so far
    def source_fingerprint(self, disk: Path, size: int) -> list: ...
    def event(self, time: int, level: str, subject: str, message: str, code: str = "", action: str = "") -> None: ...
    def initial_replication_done(self, vm: str, at: int) -> None: ...  # the first point arrived
    # faults (engine.faults): what stops a VM's replication now, and the retry logic's bookkeeping
    def problem(self, vm: str, leg: str) -> object: ...  # a faults.Problem or None (legs: Replication.problem)
    def throttled(self, vm: str) -> object: ...  # a Problem when its process server's cache is full
    def attempt_failed(self, vm: str, now: int, problem) -> int | None: ...  # the retry time, None: never
    def transfer_lost(self, vm: str, source: str, target: str, transfer_id: int): ...  # a Problem or None
    def resumed(self, vm: str, now: int) -> None: ...  # a shipment arrived after failed attempts
    def between_vms(self) -> None: ...  # between VMs' work in a slice (Lab.between_vms)
    def needs_resync(self, vm: str, at: int, code: str, message: str) -> None: ...
    def rate_factor(self, source: str, target: str) -> float: ...  # share of the bandwidth left


class Replication:
    def __init__(self, env: Surroundings):
        self.env = env
        self.db = env.db
        self._ahead: list[tuple[tuple, tuple, Future]] = []  # the next initial windows being sealed, in order:
        # (their window, _seal_job, the future)
        self._arriving: dict[Path, Future] = {}  # staged initial frames, being checked (_unseal_frame)
        self._buffer = bytearray()  # the initial windows' records, one at a time (see _seal_window)
        self.syncs: changelog.Syncs | None = None  # a slice's files, made durable by flush()
        self._reset()

    def begin_slice(self) -> None:
        """A slice starts: forget what an interrupted one left to do after its commit (it was
        rolled back); the files it writes are made durable together by flush()."""
        self._reset()
        self.syncs = changelog.Syncs()

    def flush(self) -> None:
        """Just before the slice's commit: every file it wrote is made durable, in one round (no
        committed row may claim data that a power cut could lose). An initial chunk held in
        memory that did not arrive in the slice is staged now."""
        self._discard_ahead()
        held, self._held = self._held, {}
        for f, blob in held.items():
            changelog.write_durable(f, blob, self.syncs)
            if self.syncs is not None:
                self.syncs.add(f.parent)  # the new folder's own entry too
        if self.syncs is not None:
            self.syncs.flush()
        self.syncs = None

    def _reset(self) -> None:
        self._discard_ahead()
        self._frozen: list[Path] = []
        self._dropped: list[Path] = []
        self._retention_due: set[str] = set()
        self._emptied: list[Path] = []  # disks whose pending logs are dropped after the commit
        self._problems: dict[str, object] = {}  # per slice: faults change only between slices
        # initial chunks sent and received within this slice: their frames never need a file
        self._held: dict[Path, bytes] = {}

    def problem(self, vm: str, leg: str = "source"):
        """What stops the VM's replication now (a faults.Problem), or None. With a cache on the
        way (an Azure VM's cache account, a physical server's process server) there are two
        legs: "source" (the VM to the cache) and "link" (the cache across to the target)."""
        if (vm, leg) not in self._problems:
            self._problems[vm, leg] = self.env.problem(vm, leg)
        return self._problems[vm, leg]

    def after_commit(self, now: int) -> None:
        """The slice is committed: its frozen logs are shipped for good, damaged arrivals are
        gone for good; fold expired points (a damaged point stops only its own item's folds)."""
        folds = _Folds()
        for vm in sorted(self._retention_due):
            self.env.between_vms()
            item = self.item(vm)
            if item is not None:
                try:
                    self.apply_retention(item, now, folds)
                except LabError as e:
                    if not isinstance(e, Damaged):  # e.g. its key file is missing: folded once it is back
                        continue
                    with store.transaction(self.db):
                        self.env.needs_resync(vm, now, "ReplicaInvalid",
                                              f"retention cannot fold expired recovery points: {e.message}")
        # Every VM's points folded into its base: the bases durable in one round, then one commit.
        folds.syncs.flush()
        if folds.rows:
            self._forget_points(folds.rows)
        for f in self._frozen:
            f.unlink(missing_ok=True)
        for d in self._dropped:
            shutil.rmtree(d, ignore_errors=True)
        for disk in self._emptied:
            frozen_path(disk).unlink(missing_ok=True)
            if log_path(disk).exists():
                log_path(disk).write_bytes(b"")
        self._reset()
        self.syncs = None

    def retention_check(self, now: int) -> None:
        """Retention runs while no new point arrives too (an outage must not keep old points)."""
        self._retention_due.update(i["vm"] for i in self.items(Protection.PROTECTED))

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
        return self.env.stage_dir(vm_name) / f"t{transfer_id}"

    # ---- starting -----------------------------------------------------------------------

    def create_replica(self, item: dict, now: int) -> None:
        vm = self.env.vm(item["vm"])
        for i, d in enumerate(vm.disks):
            base = self.base_path(item, i)
            if not base.exists():
                replica.create_base(base, d.size_bytes, now)

    def start_initial(self, item: dict, now: int, again: bool = False) -> None:
        """Tracking starts, then allocated extents are copied; writes meanwhile land in the logs."""
        vm = self.env.vm(item["vm"])
        total = 0
        for i, d in enumerate(vm.disks):
            p = self.env.disk_path(vm.name, i)
            if not again:  # again: drop_pending empties the logs once this is committed
                log_path(p).write_bytes(b"")
            total += allocated_bytes(p, d.size_bytes)
        # A new replica from scratch: nothing of an old error or a resync still owed applies to it.
        cols = dict(tracking=1, initial_total=total, initial_done=0, cursor_disk=0, cursor_offset=0,
                    initial_done_at=None, resync_required=0, error="", error_code="", failures=0,
                    first_failure=None, retry_at=None)
        if again:  # already copying: the same state, from the start
            self.db["items"].update(vm.name, cols)
        else:
            states.move(self.db, vm.name, Protection.INITIAL, **cols)
        self.env.event(now, "info", vm.name, f"initial replication {'restarted' if again else 'started'} "
                                             f"({total} bytes to copy)")

    # ---- the source side ----------------------------------------------------------------

    def next_chunk(self, item: dict, now: int, ahead: bool = False) -> int | None:
        """Stage the next initial-replication window of allocated data; None when all is copied.
        `ahead`: the link can take more now, so the windows after it are sealed meanwhile."""
        vm = self.env.vm(item["vm"])
        window = self._window(vm.name, item["cursor_disk"], item["cursor_offset"])
        if window is None:
            self.db.execute("UPDATE items SET cursor_disk=? WHERE vm=?", [len(vm.disks), vm.name])
            return None
        disk, start, end = window
        key = self.key_for(vm.name)
        job = self._seal_job(vm.name, disk, start, end, key)
        found = self._take_ahead(job)
        blob, raw = found if found is not None else self._seal_window(*job)
        self.db.execute("UPDATE items SET cursor_disk=?, cursor_offset=? WHERE vm=?", [disk, end, vm.name])
        if ahead:  # keep the sealing thread two windows ahead: it never waits for this one's books
            last = self._ahead[-1][0] if self._ahead else (disk, start, end)
            while len(self._ahead) < 2 and (after := self._window(vm.name, last[0], last[2])) is not None:
                nxt = self._seal_job(vm.name, *after, key)
                self._ahead.append((after, nxt, _AHEAD.submit(self._seal_window, *nxt)))
                last = after
        hold = ahead and self.syncs is not None
        tid = self._enqueue(vm.name, "initial", now, {0: blob}, raw, hold=hold, disk=disk)
        if ahead:  # it arrives in this slice: its checks and its write start now
            f = self._stage(vm.name, tid) / replica.frame_name(0, key is not None)
            self._arriving[f] = _RECEIVE.submit(_receive_initial, f, key, job[-1], vm.disks[disk].size_bytes,
                                                self._held.get(f), self.base_path(item, disk))
        return tid

    def _seal_job(self, vm_name: str, disk: int, start: int, end: int, key: bytes | None) -> tuple:
        """_seal_window's arguments: all the lab state it needs, looked up here (the vault is
        this thread's alone)."""
        return self.env.disk_path(vm_name, disk), start, end, key, self.labels(vm_name)[disk]

    def _window(self, vm_name: str, disk: int, offset: int) -> tuple[int, int, int] | None:
        """(disk, start, end) of the next window holding data from (disk, offset) on, or None."""
        disks = self.env.vm(vm_name).disks
        while disk < len(disks):
            size = disks[disk].size_bytes
            with open(self.env.disk_path(vm_name, disk), "rb") as f:
                ext = next(data_extents(f.fileno(), size, offset), None)
            if ext is not None:
                return disk, ext[0], min(ext[0] + CHUNK, size)
            disk, offset = disk + 1, 0
        return None

    def _seal_window(self, path: Path, start: int, end: int, key: bytes | None, label: str) -> tuple[bytes, int]:
        """A window's allocated extents as one sealed frame of records, and their bytes. No lab
        state is touched here: it may run on the _AHEAD thread (one window at a time, so they
        share one buffer)."""
        with open(path, "rb") as f:
            extents = list(data_extents(f.fileno(), end, start))
            view = changelog.read_records(f.fileno(), extents, self._buffer)
        try:
            return changelog.seal(view, key, label), sum(n for _, n in extents)
        finally:
            view.release()

    def _held_frame(self, stage: Path) -> Path | None:
        """The frame of an initial chunk held in memory in this slice, or None."""
        return next((f for f in (stage / replica.frame_name(0, enc) for enc in (False, True)) if f in self._held),
                    None)

    def _take_ahead(self, job: tuple) -> tuple[bytes, int] | None:
        """The sealed window of `job` if it was sealed ahead (a window sealed for another
        position is thrown away: the cursor moved, or a guest wrote into a hole before it)."""
        if not self._ahead:
            return None
        _, sealed, pending = self._ahead.pop(0)
        found = pending.result()  # an error reading ahead is raised here, as if read now
        if sealed == job:
            return found
        self._drop_ahead()  # waited for: they share the buffer this window is now read into
        return None

    def _drop_ahead(self) -> None:
        ahead, self._ahead = self._ahead, []
        for *_, pending in ahead:
            pending.exception()

    def _discard_ahead(self) -> None:
        """Wait for the windows sealed ahead and drop them: they are not read on into the next slice
        (a rolled-back or restarted initial replication, guest writes)."""
        self._drop_ahead()
        arriving, self._arriving = self._arriving, {}
        for pending in arriving.values():
            pending.exception()

    def freeze(self, vm_name: str, now: int, app: bool) -> int:
        """Freeze every disk's log at `now`, start new ones, and queue the frozen logs for shipping."""
        return self.ship(vm_name, now, self.freeze_logs(vm_name), app)

    def freeze_logs(self, vm_name: str) -> list[bytes]:
        """Freeze every disk's log now and start new ones: the frozen records, per disk. The
        frozen files stay until the slice is committed (a rolled-back slice ships them again)."""
        bufs = []
        for i in range(len(self.env.vm(vm_name).disks)):
            disk = self.env.disk_path(vm_name, i)
            log, frozen = log_path(disk), frozen_path(disk)
            if frozen.exists():  # left by a killed process: its shipping was never committed
                changelog.write_durable(frozen, frozen.read_bytes() + (log.read_bytes() if log.exists() else b""),
                                        self.syncs)
            elif log.exists():
                os.replace(log, frozen)
            else:
                frozen.write_bytes(b"")
            log.write_bytes(b"")  # writes from now on go to the new log
            self._frozen.append(frozen)
            bufs.append(frozen.read_bytes())
        return bufs

    def ship(self, vm_name: str, now: int, bufs: list[bytes], app: bool, on_wire: int | None = None) -> int:
        """Queue change-log records (one buffer per disk) as the recovery point of `now`, with the
        source's fingerprints and last transaction now. `on_wire`: the bytes the link still has to
        carry, when part of the records is at the recovery side already (a resync's blocks)."""
        vm = self.env.vm(vm_name)
        key, labels = self.key_for(vm_name), self.labels(vm_name)
        blobs = {i: changelog.seal(buf, key, labels[i]) for i, buf in enumerate(bufs)}
        fps = [self.env.source_fingerprint(self.env.disk_path(vm.name, i), d.size_bytes)
               for i, d in enumerate(vm.disks)]
        tid = self._enqueue(vm.name, "delta", now, blobs, sum(len(b) for b in bufs), point_time=now, app=app,
                            fingerprints=fps, last_seq=self.env.writes_done(vm.name))
        if on_wire is not None:
            self.db.execute("UPDATE transfers SET wire_bytes=? WHERE id=?", [on_wire, tid])
        return tid

    def remove_after_commit(self, path: Path) -> None:
        """Remove a folder once the slice is committed (what its rows stop claiming)."""
        self._dropped.append(path)

    def _enqueue(self, vm_name, kind, now, blobs: dict[int, bytes], raw: int, hold: bool = False, **extra) -> int:
        """Queue a shipment: its row, and its frames staged durably (`hold`: kept in memory
        instead, as it arrives in this slice; flush() stages it if it does not)."""
        source, target = self.link_of(vm_name)
        row = {"vm": vm_name, "kind": kind, "source": source, "target": target, "dir": "",
               "raw_bytes": raw, "wire_bytes": sum(len(b) for b in blobs.values()), "created": now,
               "disk": extra.get("disk"), "point_time": extra.get("point_time"), "app": int(extra.get("app", False)),
               "fingerprints": json.dumps(extra.get("fingerprints", [])), "last_seq": extra.get("last_seq", 0)}
        tid = store.insert(self.db, "transfers", row)
        stage = self._stage(vm_name, tid)
        shutil.rmtree(stage, ignore_errors=True)  # an id a rolled-back slice used may be used again
        if stage in self._dropped:  # an id this slice used and freed: its new frames stay
            self._dropped = [d for d in self._dropped if d != stage]
        encrypted = self.key_for(vm_name) is not None
        for i, blob in blobs.items():
            if hold:
                self._held[stage / replica.frame_name(i, encrypted)] = blob
            else:
                changelog.write_durable(stage / replica.frame_name(i, encrypted), blob, self.syncs)
        if self.syncs is not None and not hold:
            self.syncs.add(stage)  # the new folder's own entry too
        self.db.execute("UPDATE transfers SET dir=? WHERE id=?", [str(stage.relative_to(self.env.path)), tid])
        return tid

    # ---- the link -------------------------------------------------------------------------

    def serve_links(self, t0: int, t1: int) -> None:
        for link in self.db.query("SELECT * FROM links"):
            self._serve(link, t0, t1)

    def _serve(self, link: dict, t0: int, t1: int) -> None:
        rate = bytes_per_second(link["mbps"], link["state"]) * self.env.rate_factor(link["source"], link["target"])
        budget = rate * (t1 - t0)
        clock = float(t0)
        while budget > 0:
            # The oldest shipment that may go now: not waiting for its retry, its VM not stopped.
            head = next((t for t in self.db.query(
                "SELECT * FROM transfers WHERE source=? AND target=? AND (hold_until IS NULL OR hold_until <= ?) "
                "ORDER BY id", [link["source"], link["target"], int(clock)]) if self.problem(t["vm"], "link") is None),
                None)
            if head is None:
                if self._feed_initial(link, t1, budget) is None:
                    return
                if budget > 4 * CHUNK:  # a second chunk behind it: checked while the first is applied
                    self._feed_initial(link, t1, budget, finish=False)
                continue
            need = head["wire_bytes"] - head["sent_bytes"]
            if need > budget:
                self.db.execute("UPDATE transfers SET sent_bytes=sent_bytes+? WHERE id=?", [int(budget), head["id"]])
                return
            budget -= need
            clock += need / rate
            at = min(t1, int(clock + 0.999))
            lost = self.env.transfer_lost(head["vm"], link["source"], link["target"], head["id"])
            if lost is not None:  # sent again, from its first byte, at the item's next attempt
                retry = self.env.attempt_failed(head["vm"], at, lost)
                self.db.execute("UPDATE transfers SET sent_bytes=0, hold_until=? WHERE id=?", [retry, head["id"]])
                continue
            self.arrive(head, at)

    def _feed_initial(self, link: dict, now: int, budget: float, finish: bool = True) -> int | None:
        """Queue the next initial chunk of the first item on this link still copying. `finish`: an
        item all copied queues its first delta (else it waits for the next call)."""
        for item in self.items(Protection.INITIAL):
            if (self.link_of(item["vm"]) != (link["source"], link["target"]) or item["initial_done_at"]
                    or self.problem(item["vm"]) is not None or self.problem(item["vm"], "link") is not None):
                continue
            # Seal the window after it meanwhile only when the link can surely carry both now.
            tid = self.next_chunk(item, now, ahead=budget > 3 * CHUNK)
            if tid is not None:
                return tid
            if not finish:
                return None
            self.initial_copied(item, now)
        return None

    def initial_copied(self, item: dict, now: int) -> None:
        """All data copied: the first delta (writes made during the copy) makes the replica consistent."""
        self.db.execute("UPDATE items SET initial_done_at=? WHERE vm=?", [now, item["vm"]])
        self.freeze(item["vm"], now, app=False)

    # ---- the recovery side ----------------------------------------------------------------

    def _check_arrival(self, t: dict, stage: Path) -> dict[int, tuple]:
        """Raise Damaged unless every frame of an arrival unseals and every record in it checks;
        return each disk's frame with its records unsealed and checked (for replica.apply_blob),
        and what the arrival thread did with them (see _receive_initial; None: not written)."""
        vm = self.env.vm(t["vm"])
        disks = [t["disk"]] if t["kind"] == "initial" else range(len(vm.disks))
        try:
            key = self.key_for(vm.name)
        except LabError as e:
            raise Damaged(f"it cannot be checked: {e.message}") from None
        found = {}
        for i in disks:
            f = replica.frame_path(stage, 0 if t["kind"] == "initial" else i) or self._held_frame(stage)
            if f is None:
                raise Damaged(f"its frame for disk {vm.disks[i].name} is missing")
            pending = self._arriving.pop(f, None)
            found[i] = (pending.result() if pending is not None
                        else (*_unseal_frame(f, key, self.labels(vm.name)[i], vm.disks[i].size_bytes,
                                             self._held.get(f)), None))
        return found

    def _drop(self, t: dict, stage: Path, at: int, e: Damaged) -> None:
        """A damaged arrival: not applied; the transfer is gone (its folder after the commit). An
        initial chunk is read again from the source (initial replication restarts: a re-send
        fixes it); a log is not on the source any more: the replica needs a resynchronization."""
        self._dropped.append(stage)
        item = self.item(t["vm"])
        if t["kind"] == "initial" or item["state"] == Protection.INITIAL:  # no replica to resync yet
            what = "initial-replication chunk" if t["kind"] == "initial" else "change log"
            self.env.event(at, "warning", t["vm"], f"a damaged {what} arrived and was not applied (transfer "
                           f"{t['id']}: {e.message}); initial replication starts again from the source",
                           "DamagedTransfer", "none: the data is sent again")
            self.drop_pending(t["vm"])
            self.start_initial(item, at, again=True)
            return
        code = "VhdChainBroken" if e.hint == CHAIN_BROKEN else "DamagedTransfer"
        self.env.needs_resync(t["vm"], at, code, f"a damaged change log arrived and was not applied (transfer "
                                                 f"{t['id']}: {e.message}); the replica misses its writes")

    def _check_replica(self, item: dict) -> None:
        """Raise Damaged unless every replica base is whole (the chain's start), before a log lands."""
        for i, d in enumerate(self.env.vm(item["vm"]).disks):
            replica.check_base(self.base_path(item, i), d.size_bytes, self.labels(item["vm"])[i])

    def arrive(self, t: dict, at: int) -> None:
        item = self.item(t["vm"])
        stage = self.env.path / t["dir"]
        self.db.execute("DELETE FROM transfers WHERE id=?", [t["id"]])
        if item is None or item["state"] == Protection.DISABLING:  # disabled while in flight
            shutil.rmtree(stage, ignore_errors=True)
            return
        if t["kind"] == "initial":
            f = replica.frame_path(stage, 0) or self._held_frame(stage)
            if f is not None:  # None: applied already, by a slice that was then rolled back
                try:
                    blob, checked, written = self._check_arrival(t, stage)[t["disk"]]
                except Damaged as e:
                    self._drop(t, stage, at, e)
                    return
                base = self.base_path(item, t["disk"])
                if isinstance(written, Damaged):  # its records do not fit the base
                    raise written
                if written is None or self.syncs is None:
                    replica.apply_blob(base, blob, self.key_for(t["vm"]), self.labels(t["vm"])[t["disk"]], checked,
                                       self.syncs)
                else:
                    self.syncs.add(base, soon=True)
            # Removed once the slice is committed: a rolled-back slice applies it again.
            self._held.pop(f, None)
            self._dropped.append(stage)
            if self.syncs is not None:
                self.syncs.drop(stage)  # nothing committed claims it: it needs no fsync
            self.db.execute("UPDATE items SET initial_done=initial_done+? WHERE vm=?", [t["raw_bytes"], t["vm"]])
            self.env.resumed(t["vm"], at)
            return
        points = self.store_dir(item) / "points"
        points.mkdir(parents=True, exist_ok=True)
        dest = points / f"p{t['id']}"
        try:
            self._check_replica(item)
        except Damaged as e:
            self._dropped.append(stage)
            self.env.needs_resync(t["vm"], at, "ReplicaInvalid", f"the replica is in an invalid state ({e.message})")
            return
        # dest alone: moved by a slice that was rolled back (checked again: the move may have
        # outlived a power cut that its frames' data did not)
        try:
            if not stage.exists() and not dest.exists():
                raise Damaged("its frames are gone")
            self._check_arrival(t, stage if stage.exists() else dest)
        except Damaged as e:
            self._drop(t, stage, at, e)
            return
        if stage.exists():
            os.replace(stage, dest)
        if self.syncs is None:
            for f in [*dest.iterdir(), points]:
                changelog.fsync_path(f)
        else:
            self.syncs.drop(stage)
            for f in dest.iterdir():
                self.syncs.add(f)
            self.syncs.add(dest)
        kind = "app-consistent" if t["app"] else "crash-consistent"
        store.insert(self.db, "points", {
            "vm": t["vm"], "time": t["point_time"], "kind": kind, "dir": str(dest.relative_to(self.env.path)),
            "size": replica.dir_size(dest), "fingerprints": t["fingerprints"], "last_seq": t["last_seq"],
            "arrived": at,
        })
        self.db.execute("UPDATE items SET last_replication=? WHERE vm=?", [at, t["vm"]])
        self.env.resumed(t["vm"], at)
        if item["state"] == Protection.INITIAL:
            self._finish_initial(item, t["point_time"], at)
        self._retention_due.add(t["vm"])

    def _finish_initial(self, item: dict, point_time: int, at: int) -> None:
        pol = self.policy(item["vm"])
        step, app_h = cadence(pol), pol["app_consistent_h"]
        # continuous replication's batches fall on whole half-minutes (its 5-minute points on the clock's)
        next_app = point_time + app_h * 3600 if app_h else None
        grouped = self.db.execute("SELECT 1 FROM replication_groups WHERE vm=?", [item["vm"]]).fetchone()
        if next_app and grouped:  # a group's app-consistent points share instants: the clock's whole periods
            next_app -= point_time % (app_h * 3600)
        states.move(self.db, item["vm"], Protection.FINALIZING,
                    next_cycle=point_time + step - (point_time % step if pol["batch"] else 0), next_app=next_app)
        self.env.initial_replication_done(item["vm"], at)

    # ---- cycles ---------------------------------------------------------------------------

    def tick(self, now: int) -> None:
        for item in self.items(Protection.INITIAL_PENDING):
            if item["start_at"] is not None and item["start_at"] <= now:
                self.start_initial(item, now)
        for item in self.items(Protection.FINALIZING, Protection.PROTECTED):
            # After a failed attempt the next one is the retry's; an item waiting for its
            # resynchronization makes no attempt at all.
            due = item["retry_at"] if item["failures"] else item["next_cycle"]
            if item["resync_required"] or due is None or due > now:
                continue
            self.env.between_vms()
            problem = self.problem(item["vm"]) or self.env.throttled(item["vm"])
            if problem is not None:
                self.env.attempt_failed(item["vm"], now, problem)
                continue
            pol = self.policy(item["vm"])
            step = cadence(pol)
            nxt = item["next_cycle"]
            while nxt <= now:
                nxt += step
            # A replication group's members freeze together (their points share each instant),
            # so one member's log still on the wire holds the whole group's cycle back.
            in_flight = self.db.execute(
                "SELECT COUNT(*) FROM transfers WHERE kind='delta' AND created < ? AND (vm=? OR vm IN (SELECT vm "
                "FROM replication_groups WHERE name=(SELECT name FROM replication_groups WHERE vm=?)))",
                [now, item["vm"], item["vm"]]).fetchone()[0]
            if in_flight and not pol["batch"]:
                # The last log is still on the wire: this cycle is missed and the log grows (with a
                # cache storage account on the way, batches queue there instead).
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

    def next_event(self, after: int) -> int | None:
        """The next lab time after `after` at which replication has something to start: an
        initial replication, a cycle, a retry, a held transfer's re-send."""
        row = self.db.execute(
            "SELECT MIN(t) FROM (SELECT start_at AS t FROM items WHERE state=? "
            "UNION ALL SELECT CASE WHEN failures > 0 THEN retry_at ELSE next_cycle END FROM items "
            "UNION ALL SELECT hold_until FROM transfers) WHERE t > ?",
            [Protection.INITIAL_PENDING.value, after]).fetchone()
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

    def drop_pending(self, vm_name: str) -> None:
        """Drop the VM's pending change logs and queued shipments (a resynchronization supersedes
        them); tracking goes on in fresh logs. The files go after the commit that marks the item
        for resync: a rolled-back slice must find its logs whole."""
        for t in self.db.query("SELECT dir FROM transfers WHERE vm=?", [vm_name]):
            self._dropped.append(self.env.path / t["dir"])
        self.db.execute("DELETE FROM transfers WHERE vm=?", [vm_name])
        self._emptied += [self.env.disk_path(vm_name, i) for i in range(len(self.env.vm(vm_name).disks))]

    def sweep(self) -> list[Path]:
        """Remove folders a killed process left that nothing claims: staged transfers whose row
        was rolled back, and folded points whose folder outlived the commit. Only the clock's
        holder may call this (it alone stages and folds). Frozen logs are never swept: they
        hold writes not yet shipped."""
        transfers = {r[0] for r in self.db.execute("SELECT id FROM transfers")}
        claimed = {self.env.path / r[0] for r in self.db.execute("SELECT dir FROM points")}
        gone = []
        for vm in self.env.vm_names():
            for outgoing in {self.env.disk_path(vm, 0).parent / "outgoing", self.env.stage_dir(vm)}:
                gone += [d for d, n in _numbered(outgoing, "t") if n not in transfers]
        for account in _subfolders(self.env.path / "storage"):
            for vm_store in _subfolders(account):
                gone += [d for d, n in _numbered(vm_store / "points", "p") if d not in claimed and n not in transfers]
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
            logs = [Path(top) / n for top, _, names in os.walk(root) for n in names if n.endswith((".hrl", ".hrl.frozen"))]
            for log in logs:
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

    def apply_retention(self, item: dict, now: int, folds: _Folds | None = None) -> None:
        """Fold the points retention lets go, outside any slice: one committed step at a time, the
        oldest ones into the base one by one, each run of middle ones into the next kept point.
        With `folds`, the points folded into the base are left for the caller to make durable and
        forget (with other VMs' folds): a fold redone after a kill replays the same absolute writes."""
        assert not self.db.conn.in_transaction, "each fold commits on its own"
        rows = self.point_rows(item["vm"])
        pol = self.policy(item["vm"])
        keep = points_to_keep([PointInfo(r["id"], r["time"], r["kind"] == "app-consistent") for r in rows],
                              now, pol["retention_h"], pol["frequency"] if pol["batch"] else 0)
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
                    for n, old in enumerate(expired):
                        # Only the last one waits for the batch: a base holding a newer point's
                        # writes must claim no older point (built as base + its log, it would
                        # hold writes made after it).
                        batch = folds if n == len(expired) - 1 else None
                        for d, label in enumerate(labels):
                            f = replica.frame_path(self.env.path / old["dir"], d)
                            if f is not None:
                                try:
                                    replica.apply_blob(self.base_path(item, d), f.read_bytes(), key, label,
                                                       None, batch.syncs if batch else None)
                                except Damaged as e:
                                    raise Damaged(f"{f}: {e.message}", file=str(f)) from None
                        if batch is None:
                            self._forget_points([old])
                        else:
                            batch.rows.append(old)
                elif expired:
                    newer = self.env.path / r["dir"]
                    replica.merge_into_next([self.env.path / x["dir"] for x in expired], newer, len(labels),
                                            key, labels)
                    self._forget_points(expired, resized=(r["id"], replica.dir_size(newer)))
                expired = []

    def _forget_points(self, rows: list[dict], resized: tuple[int, int] | None = None) -> None:
        """Commit that folded points are gone, then remove their folders (an orphan at worst)."""
        with store.transaction(self.db):
            self.db.conn.executemany("DELETE FROM points WHERE id=?", [(r["id"],) for r in rows])
            if resized:
                self.db.execute("UPDATE points SET size=? WHERE id=?", [resized[1], resized[0]])
        for r in rows:
            shutil.rmtree(self.env.path / r["dir"], ignore_errors=True)


def _subfolders(folder: Path) -> list[Path]:
    """The folders in `folder` (none when it is missing). os.scandir, not Path.glob: a
    1,000-VM lab's sweep looks into thousands of folders when it takes the clock."""
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_dir()]
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []


def _numbered(folder: Path, prefix: str) -> list[tuple[Path, int]]:
    """(path, N) of the entries named prefix + N in `folder` (a staged transfer t<id>, a point p<id>)."""
    try:
        names = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError, PermissionError):
        return []
    return [(folder / n, int(n[len(prefix):])) for n in names if n.startswith(prefix) and n[len(prefix):].isdigit()]


class _Folds:
    """Points folded into their bases after a slice, for every VM: the bases are fsynced in one
    round, then the points forgotten in one commit."""

    def __init__(self) -> None:
        self.syncs = changelog.Syncs()
        self.rows: list[dict] = []


def _receive_initial(f: Path, key: bytes | None, label: str, size: int, blob: bytes | None,
                     base: Path) -> tuple:
    """_unseal_frame's, and the records written into the replica base (not synced: the slice's
    flush does that if the chunk arrives in the slice; if it does not, its arrival writes them
    again). Its third item: the bytes written, or the Damaged that refused the write. No lab
    state: it runs on the _RECEIVE thread."""
    blob, checked = _unseal_frame(f, key, label, size, blob)
    try:
        return blob, checked, replica.write_records(base, *checked)
    except Damaged as e:
        return blob, checked, e


def _unseal_frame(f: Path, key: bytes | None, label: str, size: int,
                  blob: bytes | None = None) -> tuple[bytes, tuple[bytes, list]]:
    """An arrived frame (`blob`: its bytes, when they were held in memory), with its records
    unsealed and checked (for replica.apply_blob); raise Damaged saying where it was damaged. No
    lab state: it may run on the _RECEIVE thread."""
    blob = f.read_bytes() if blob is None else blob
    try:
        buf = changelog.unseal(blob, key, label)
    except Damaged as e:
        raise Damaged(f"{e.message}; {f.name} was damaged on the way", DAMAGED_ON_THE_WAY) from None
    try:
        return blob, (buf, changelog.checked(buf, size))
    except Damaged as e:
        raise Damaged(f"{label}: {e.message}; the log was damaged before it was shipped", CHAIN_BROKEN) from None
