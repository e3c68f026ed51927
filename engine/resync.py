"""Resynchronization (seed 000, "synchronize replication"): when delta replication cannot go on
(a log dropped by the 50% rule, a damaged log or replica, an unrecoverable error cleared), the
item is marked "resynchronization required"; a resync compares the source disks with the
replica by checksums and sends only what differs, ends with a new consistent recovery point,
then delta replication resumes. It starts at the vault's off-hours time (default 22:00 lab
time, `srlab resync --schedule`) for every item that needs one, or when an admin asks
(`srlab resync VM`, any protected VM).

How it stays consistent while the VM keeps writing:
- at its start (the Prerequisites check step) the replica's disks are built at its latest
  point that builds (damaged points are dropped, a damaged base is started afresh), the VM's
  pending log and queued shipments are dropped and tracking goes on in a fresh log;
- chunks are compared over lab time (READ_RATE) and the differing blocks travel within the
  link's bandwidth, staged at the recovery side one durable file per slice; the cursor and the
  counts are in the `resyncs` row, so a killed process or a fault resumes where it stopped;
- at the end the log is frozen: the new point's frame is the differing blocks followed by
  every write made since the start. Each record is an absolute write, and every block was read
  after the start, so replaying it on the compared point gives the source at that instant.

The bytes (two-level checksums, the staged files' names) are in engine.replication.resync.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import faults, jobs, protection, rules, states, store
from .clock import format_time
from .disks import allocated_bytes
from .errors import Damaged, InvalidInput, LabError, Refused
from .jobs import Run, Step
from .model import VM
from .replication import changelog, replica
from .replication import resync as chunks
from .replication.cycle import cadence
from .replication.link import bytes_per_second
from .states import Protection

# Bytes of disk each side reads and checksums per lab second: a disk's sequential read rate. A
# 1 GiB disk compares in about 5 lab seconds, a 127 GB one in about 11 lab minutes.
READ_RATE = 200 * 1000 * 1000
SCHEDULE_KEY = "resync_schedule"
DEFAULT_SCHEDULE = "22:00"  # the vault's off-hours time, lab time (UTC)
_DAY = 86400
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")

# The job's steps (their index), as a portal names them.
PREPARE, COMPARE, POINT, RESUME = range(4)


# ---- what stops it -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _LinkDown:
    code: str = "NetworkError"
    message: str = "the replication link carries nothing (down, or its target's storage is full)"
    action: str = "bring the link up: srlab link set --state up"


def blocking(lab, vm: VM):
    """What stops the VM's replication now (a fault, the link down, a missing key), or None:
    an object with .code, .message, .action (engine.faults)."""
    return faults.problem(lab, vm)


def check(lab, name: str) -> VM:
    """Raise with the reason if the VM cannot be resynchronized now."""
    vm = lab.vm(name)
    reason = rules.operation_reason("resync", protection.item_facts(lab, vm))
    if reason:
        raise Refused(reason)
    p = blocking(lab, vm)
    if p is not None:
        raise Refused(f"{vm.name} cannot be resynchronized while {p.message} ({p.code})",
                      f"first: {p.action}")
    return vm


# ---- commands ------------------------------------------------------------------------------------


def resync(lab, names: list[str]) -> list[int]:
    """Start a Resynchronize job for each VM (all are checked before any starts)."""
    vms: list[VM] = []
    for name in names:
        vm = check(lab, name)
        if any(v.name == vm.name for v in vms):
            raise InvalidInput(f"{vm.name} is named twice", "name each VM once; nothing was changed")
        vms.append(vm)
    with store.transaction(lab.db):
        return [begin(lab, vm.name, lab.now, "started by the administrator") for vm in vms]


def begin(lab, vm: str, at: int, why: str) -> int:
    """The item stops delta replication at once; the job's first step starts the compare. (An
    Azure -> Azure reprotect starts one too: its new replica is seeded from the other side.)"""
    states.move(lab.db, vm, Protection.RESYNC)
    job = jobs.create(lab.db, at, "resync", vm, {"why": why})
    lab.event(at, "info", vm, f"resynchronization started ({why})")
    return job


def schedule(lab) -> str:
    """The vault's off-hours resync time, HH:MM of lab time (UTC), or 'off'."""
    return store.get_meta(lab.db, SCHEDULE_KEY, DEFAULT_SCHEDULE)


def parse_schedule(value: str) -> str:
    """HH:MM (00:00-23:59) or off, normalized; InvalidInput otherwise."""
    text = value.strip().lower()
    if text == "off":
        return text
    m = _HHMM.match(text)
    if not m or int(m[1]) > 23 or int(m[2]) > 59:
        raise InvalidInput(f"bad off-hours time {value!r}", "give HH:MM of lab time (UTC), 00:00-23:59, or off")
    return f"{int(m[1]):02d}:{m[2]}"


def set_schedule(lab, value: str) -> str:
    value = parse_schedule(value)
    with store.transaction(lab.db):
        store.set_meta(lab.db, SCHEDULE_KEY, value)
        lab.event(lab.now, "info", "vault", "automatic resynchronization " + (
            "turned off" if value == "off" else f"at {value} (lab time) for items that need it"))
    return value


def progress(lab, vm: VM) -> int:
    """How far the compare has gone, in percent (100 once every chunk is compared)."""
    row = lab.db.execute("SELECT disk, offset, total FROM resyncs WHERE vm=?", [vm.name]).fetchone()
    if row is None:
        return 0
    disk, offset, total = row
    if disk >= len(vm.disks):
        return 100
    done = sum(d.size_bytes for d in vm.disks[:disk]) + offset
    return min(99, done * 100 // max(1, total))


# ---- job data and report -------------------------------------------------------------------------


def _data(lab, job: int) -> dict:
    return json.loads(lab.db.execute("SELECT data FROM jobs WHERE id=?", [job]).fetchone()[0] or "{}")


def _set_data(lab, job: int, **values) -> dict:
    data = {**_data(lab, job), **values}
    lab.db.execute("UPDATE jobs SET data=? WHERE id=?", [json.dumps(data), job])
    return data


def _report(lab, job: int, **values) -> None:
    row = lab.db.execute("SELECT report FROM jobs WHERE id=?", [job]).fetchone()
    report = json.loads(row[0] or "{}")
    report.setdefault("resync", {}).update(values)
    lab.db.execute("UPDATE jobs SET report=? WHERE id=?", [json.dumps(report), job])


def _row(lab, vm: str) -> dict | None:
    return next(lab.db.query("SELECT * FROM resyncs WHERE vm=?", [vm]), None)


def _resyncing(lab, run: Run) -> dict:
    item = states.item(lab.db, run.target)
    if item is None or item["state"] != Protection.RESYNC:
        now = item["state"] if item else Protection.NOT_PROTECTED.value
        raise Refused(f"{run.target} is no longer being resynchronized (it is {now})")
    return item


# ---- the job's steps -----------------------------------------------------------------------------


def _prepare(lab, run: Run) -> None:
    """Build the replica's disks at its latest point that builds, then start over the change
    tracking: from here on every write is in the (fresh) log."""
    item = _resyncing(lab, run)
    vm = lab.vm(run.target)
    rep = lab.replication
    key, labels = rep.key_for(vm.name), rep.labels(vm.name)  # a missing key fails here, before any change
    work = rep.store_dir(item) / "resync"
    shutil.rmtree(work, ignore_errors=True)  # a resync of this item a killed process left
    work.mkdir(parents=True)
    rows = rep.point_rows(vm.name)
    dropped: list[dict] = []
    fresh = False
    while True:
        try:
            for i, d in enumerate(vm.disks):
                replica.build_disk(rep.base_path(item, i), [lab.path / r["dir"] for r in rows], i, work / f"{i}.vhd",
                                   d.size_bytes, key, labels[i])
            break
        except Damaged as e:
            bad = _damaged_point(lab, rows, e.file)
            what = Path(e.file).relative_to(lab.path) if e.file.startswith(str(lab.path)) else e.file
            why = e.message.removeprefix(f"{e.file}: ")  # the file is named once
            if bad is None:  # the base itself: nothing builds; start from an empty replica
                fresh, gone, rows = True, rows, []
                for i, d in enumerate(vm.disks):
                    replica.create_base(work / f"{i}.vhd", d.size_bytes, run.t)
            else:
                gone, rows = rows[bad:], rows[:bad]
            dropped += gone
            lab.event(run.t, "warning", vm.name, f"resynchronization: {what} is damaged ({why}); "
                      + (f"recovery points {', '.join(str(r['id']) for r in gone)} are dropped, " if gone else "")
                      + ("the replica starts empty (a full copy of the data)" if fresh
                         else "the compare uses the last point before them"), "ReplicaInvalid")
            if fresh:
                break
    changelog.fsync_dir(work)
    # Nothing below raises: the rows go now, their folders once this is committed.
    if dropped:
        lab.db.execute(f"DELETE FROM points WHERE id IN ({','.join('?' * len(dropped))})", [r["id"] for r in dropped])
        for r in dropped:
            rep.remove_after_commit(lab.path / r["dir"])
    base = rows[-1] if rows else None
    lab.db.execute("DELETE FROM resyncs WHERE vm=?", [vm.name])
    lab.db["resyncs"].insert({
        "vm": vm.name, "job": run.id, "started": run.t, "disk": 0, "offset": 0,
        "total": sum(d.size_bytes for d in vm.disks), "compared": 0, "differing": 0, "sent": 0,
        "base_point": base["id"] if base else None, "dir": str(work.relative_to(lab.path))})
    _set_data(lab, run.id, fresh_base=fresh, owed=0, chunks=0, blocks=0, checksum_bytes=0, block_bytes=0,
              log_bytes=0, paused="")
    _report(lab, run.id, base_point=base["id"] if base else None, base_point_time=base["time"] if base else None,
            dropped_points=[r["id"] for r in dropped], fresh_base=fresh, encrypted=key is not None,
            full_copy_bytes=sum(allocated_bytes(lab.replicated_disk(vm.name, i), d.size_bytes)
                                for i, d in enumerate(vm.disks)))
    rep.drop_pending(vm.name)  # the pending log and queued shipments are superseded by the compare


def _damaged_point(lab, rows: list[dict], file: str) -> int | None:
    """The index in `rows` of the point a damaged file belongs to; None: it is the base."""
    for i, r in enumerate(rows):
        d = lab.path / r["dir"]
        if Path(file) == d or Path(file).parent == d:
            return i
    return None


def _compared(lab, run: Run) -> None:
    _resyncing(lab, run)


def _point_created(lab, run: Run) -> None:
    """The new point's shipment has arrived: the recovery point is there (or it was refused)."""
    item = _resyncing(lab, run)
    tid = run.data["transfer"]
    point = next(lab.db.query("SELECT * FROM points WHERE vm=? AND dir=?",
                              [run.target, str(Path(item["store"]) / "points" / f"p{tid}")]), None)
    if point is None:
        raise Damaged(f"the resynchronization's last shipment (transfer {tid}) was not applied: "
                      f"{item['error'] or 'it did not arrive whole'}", "resynchronize again: srlab resync " + run.target)
    _report(lab, run.id, point=point["id"], point_time=point["time"], point_kind=point["kind"],
            last_transaction=point["last_seq"])


def _resume(lab, run: Run) -> None:
    """Delta replication resumes: the item is protected, its errors and retries are over."""
    _resyncing(lab, run)
    rep = lab.replication
    pol = rep.policy(run.target)
    row = _row(lab, run.target)
    data = _data(lab, run.id)
    # A replication group's members freeze together: rejoin the group's next cycle.
    group_next = lab.db.execute(
        "SELECT MIN(next_cycle) FROM items WHERE state=? AND vm IN (SELECT vm FROM replication_groups WHERE "
        "name=(SELECT name FROM replication_groups WHERE vm=?)) AND vm != ?",
        [Protection.PROTECTED.value, run.target, run.target]).fetchone()[0]
    states.move(lab.db, run.target, Protection.PROTECTED, resync_required=0, error="", error_code="", failures=0,
                first_failure=None, retry_at=None, next_cycle=group_next or run.t + cadence(pol) - (run.t % cadence(pol) if pol["batch"] else 0),
                next_app=run.t + pol["app_consistent_h"] * 3600 if pol["app_consistent_h"] else None)
    report = json.loads(lab.db.execute("SELECT report FROM jobs WHERE id=?", [run.id]).fetchone()[0])["resync"]
    full = report["full_copy_bytes"]
    values = {"chunks": data["chunks"], "compared_bytes": row["compared"], "differing_chunks": row["differing"],
              "blocks": data["blocks"], "checksum_bytes": data["checksum_bytes"], "block_bytes": data["block_bytes"],
              "log_bytes": data["log_bytes"], "sent_bytes": row["sent"], "full_copy_bytes": full,
              "share_of_full_copy": round(row["sent"] * 100 / full, 2) if full else None}
    _report(lab, run.id, **values)
    lab.db.execute("DELETE FROM resyncs WHERE vm=?", [run.target])
    rep.remove_after_commit(lab.path / row["dir"])
    share = f" ({values['share_of_full_copy']:g}% of a full copy)" if full else ""
    lab.event(run.t, "info", run.target, f"resynchronization completed: compared {row['compared']:,} bytes "
                                         f"({row['differing']:,} of {data['chunks']:,} chunks differ), sent "
                                         f"{row['sent']:,} bytes{share}; recovery point {report.get('point')}; "
                                         "delta replication resumed")


def _failed(lab, run: Run) -> None:
    """The job failed (or the item left the resync: disabled, failed over): the staged data goes.
    An item still resynchronizing goes back to protected, needing a resync once the compare had
    started (its pending log was dropped then), without delta cycles until one succeeds."""
    row = _row(lab, run.target)
    if row is not None:
        lab.db.execute("DELETE FROM resyncs WHERE vm=?", [run.target])
        lab.replication.remove_after_commit(lab.path / row["dir"])
    item = states.item(lab.db, run.target)
    if item is None:
        return
    if item["state"] != Protection.RESYNC:
        if row is not None and item["state"] == Protection.FAILED_OVER:
            # the replica misses what the compare had found: should the failover fail, it resyncs
            lab.db.execute("UPDATE items SET resync_required=1 WHERE vm=?", [run.target])
        return
    if row is None:
        states.move(lab.db, run.target, Protection.PROTECTED)
        return
    msg = item["error"] or f"the resynchronization failed: {run.data.get('error', '')}"
    states.move(lab.db, run.target, Protection.PROTECTED, resync_required=1, error=msg,
                error_code=item["error_code"] or "ResyncFailed")


jobs.define("resync", "Resynchronize", [
    Step("Prerequisites check", 20, _prepare),
    Step("Compare checksums and send differences", jobs.WORK, _compared),
    Step("Create recovery point", jobs.WORK, _point_created),
    Step("Resume delta replication", 10, _resume),
], on_fail=_failed)


# ---- over lab time -------------------------------------------------------------------------------


def tick(lab, t0: int, t1: int) -> None:
    """One slice of lab time [t0, t1): start the off-hours resyncs due, advance every resync."""
    _start_due(lab, t0, t1)
    for row in list(lab.db.query("SELECT * FROM resyncs ORDER BY vm")):
        step = jobs.current_step(lab.db, row["job"])
        item = states.item(lab.db, row["vm"])
        if step is None:  # its job is over: nothing claims the staged data
            lab.db.execute("DELETE FROM resyncs WHERE vm=?", [row["vm"]])
            lab.replication.remove_after_commit(lab.path / row["dir"])
        elif item is None or item["state"] != Protection.RESYNC:
            jobs.work_done(lab, row["job"], t1)  # the step's check fails the job, which cleans up
        elif step == COMPARE:
            _compare(lab, row, lab.vm(row["vm"]), t0, t1)
        elif step == POINT and lab.db.execute("SELECT 1 FROM transfers WHERE id=?",
                                              [_data(lab, row["job"])["transfer"]]).fetchone() is None:
            jobs.work_done(lab, row["job"], t1)  # arrived (or dropped as damaged: the step says which)


def _start_due(lab, t0: int, t1: int) -> None:
    """At the vault's off-hours time, every item marked for resync that nothing blocks starts one."""
    at = schedule(lab)
    if at == "off":
        return
    h, m = map(int, at.split(":"))
    due = t0 - t0 % _DAY + h * 3600 + m * 60
    if due <= t0:
        due += _DAY
    if due > t1:
        return
    for item in states.items(lab.db, Protection.PROTECTED):
        if not item["resync_required"]:
            continue
        try:
            check(lab, item["vm"])
        except LabError as e:
            lab.event(t1, "warning", item["vm"], f"off-hours resynchronization ({at}) not started: {e.message}",
                      item["error_code"], e.hint)
            continue
        begin(lab, item["vm"], t1, f"automatic, at the vault's off-hours time {at}")


def _link_rate(lab, vm: VM) -> float:
    source, target = lab.replication.link_of(vm.name)
    link = lab.db.execute("SELECT mbps, state FROM links WHERE source=? AND target=?", [source, target]).fetchone()
    if link is None:
        return 0.0
    factor = getattr(faults, "rate_factor", None)
    return bytes_per_second(link[0], link[1]) * (factor(lab, source, target) if factor else 1.0)


def _compare(lab, row: dict, vm: VM, t0: int, t1: int) -> None:
    """Compare chunks for this slice's share of lab time (the disks' read rate), within the link's
    bandwidth; stage the differing blocks durably before the cursor moves past them."""
    job = row["job"]
    data = _data(lab, job)
    rate = _link_rate(lab, vm)
    p = blocking(lab, vm)
    if p is None and rate <= 0:
        p = _LinkDown()
    if p is not None:
        if data.get("paused") != p.code:  # said once
            _set_data(lab, job, paused=p.code)
            lab.event(t1, "warning", vm.name, f"resynchronization paused at {progress(lab, vm)}%: {p.message}",
                      p.code, p.action)
        return
    if data.get("paused"):
        data = _set_data(lab, job, paused="")
        lab.event(t1, "info", vm.name, f"resynchronization resumed at {progress(lab, vm)}%")
    seconds = t1 - max(t0, row["started"])
    if seconds <= 0:
        return
    allowance = rate * seconds - data["owed"]  # a batch that overdrew the last slice is paid first
    read_left = READ_RATE * seconds
    rep = lab.replication
    key, labels = rep.key_for(vm.name), rep.labels(vm.name)
    work = lab.path / row["dir"]
    disk, offset = row["disk"], row["offset"]
    spent = compared = differing = n_chunks = blocks = sums = staged = 0
    while disk < len(vm.disks) and read_left > 0 and allowance - spent > 0:
        size = vm.disks[disk].size_bytes
        with open(lab.replicated_disk(vm.name, disk), "rb") as fs, open(work / f"{disk}.vhd", "rb") as fd:
            b = chunks.compare(fs.fileno(), fd.fileno(), size, offset, read_left, int(allowance - spent))
        name = work / chunks.staged_name(disk, offset, key is not None)
        if b.records:
            blob = changelog.seal(bytes(b.records), key, labels[disk])
            changelog.write_durable(name, blob)
            spent += len(blob)
            staged += len(blob)
        else:
            name.unlink(missing_ok=True)  # left by a rolled-back slice that found more
        spent += b.checksum_bytes
        sums += b.checksum_bytes
        read_left -= b.end - offset
        compared += b.end - offset
        differing += b.differing
        n_chunks += b.chunks
        blocks += b.blocks
        disk, offset = (disk + 1, 0) if b.end >= size else (disk, b.end)
    lab.db.execute("UPDATE resyncs SET disk=?, offset=?, compared=compared+?, differing=differing+?, sent=sent+? "
                   "WHERE vm=?", [disk, offset, compared, differing, spent, vm.name])
    owed = max(0, int(data["owed"] + spent - rate * seconds))
    _set_data(lab, job, owed=owed, chunks=data["chunks"] + n_chunks, blocks=data["blocks"] + blocks,
              checksum_bytes=data["checksum_bytes"] + sums, block_bytes=data["block_bytes"] + staged)
    if disk >= len(vm.disks) and owed == 0:  # every chunk compared, and its blocks across the link
        _finish_compare(lab, _row(lab, vm.name), vm, t1)


def _staged(work: Path) -> list[tuple[int, int, Path]]:
    found = []
    for f in work.iterdir():
        where = chunks.parse_staged(f.name)
        if where is not None:
            found.append((*where, f))
    return sorted(found)


def _finish_compare(lab, row: dict, vm: VM, t1: int) -> None:
    """Every chunk is compared: the new point's frame per disk = the staged differing blocks,
    then the log of every write since the start (frozen now). Only the log still travels. A
    staged file that fails its checks is never applied: its chunks are compared again."""
    rep = lab.replication
    item = states.item(lab.db, vm.name)
    key, labels = rep.key_for(vm.name), rep.labels(vm.name)
    work = lab.path / row["dir"]
    diffs = [bytearray() for _ in vm.disks]
    for disk, offset, f in _staged(work):
        try:
            buf = changelog.unseal(f.read_bytes(), key, labels[disk])
            changelog.check(buf, vm.disks[disk].size_bytes)
        except Damaged as e:
            # Compared again from there: the batch that starts there writes this file anew.
            lab.db.execute("UPDATE resyncs SET disk=?, offset=? WHERE vm=?", [disk, offset, vm.name])
            lab.event(t1, "warning", vm.name, f"resynchronization: staged file {f.relative_to(lab.path)} fails its "
                      f"checks ({e.message}); not applied: comparing again from {labels[disk]} at {offset:,}",
                      "DamagedTransfer")
            return
        diffs[disk] += buf
    job = row["job"]
    if _data(lab, job).get("fresh_base"):  # the damaged base starts afresh; no point claims it now
        for i, d in enumerate(vm.disks):
            replica.create_base(rep.base_path(item, i), d.size_bytes, t1)
    logs = rep.freeze_logs(vm.name)
    wire = sum(len(changelog.seal(buf, key, labels[i])) for i, buf in enumerate(logs))
    tid = rep.ship(vm.name, t1, [bytes(diffs[i]) + logs[i] for i in range(len(vm.disks))], app=False, on_wire=wire)
    lab.db.execute("UPDATE resyncs SET sent=sent+? WHERE vm=?", [wire, vm.name])
    _set_data(lab, job, transfer=tid, log_bytes=wire)
    jobs.work_done(lab, job, t1)


def next_due(lab) -> int | None:
    """When the next resync step that waits for its work may end: the compare at the disks' read
    rate, the new point when its shipment may have crossed the link; while nothing moves (a
    fault, a link down), a minute from now, to look again."""
    due = []
    for row in lab.db.query("SELECT * FROM resyncs"):
        step = jobs.current_step(lab.db, row["job"])
        vm = lab.vm(row["vm"])
        rate = _link_rate(lab, vm)
        if step == COMPARE:
            left = sum(d.size_bytes for d in vm.disks[row["disk"]:]) - row["offset"]
            owed = _data(lab, row["job"])["owed"]
            wait = max(-(-left // READ_RATE), int(-(-owed // rate))) if rate > 0 else 60
        elif step == POINT:
            t = lab.db.execute("SELECT wire_bytes - sent_bytes FROM transfers WHERE id=?",
                               [_data(lab, row["job"]).get("transfer")]).fetchone()
            wait = 60 if rate <= 0 else int(-(-(t[0] if t else 0) // rate))
        else:
            continue
        due.append(lab.now + max(1, wait))
    return min(due, default=None)


def sweep(lab) -> list[Path]:
    """Remove the staged folders no resync claims (a killed process left them after the commit
    that ended their resync). Only the clock's holder may call this."""
    claimed = {lab.path / r[0] for r in lab.db.execute("SELECT dir FROM resyncs")}
    gone = [d for d in (lab.path / "storage").glob("*/*/resync") if d not in claimed]
    for d in gone:
        shutil.rmtree(d, ignore_errors=True)
    return gone


# ---- the report ----------------------------------------------------------------------------------


def report_lines(report: dict | None) -> list[str]:
    """A Resynchronize job's report as plain lines (the CLI and the app show these)."""
    r = (report or {}).get("resync")
    if not r:
        return []
    out = []
    if r.get("fresh_base"):
        out.append("compared against an empty replica: its base was damaged (a full copy of the data)")
    elif r.get("base_point") is not None:
        out.append(f"compared against recovery point {r['base_point']} ({format_time(r['base_point_time'])})")
    if r.get("dropped_points"):
        out.append(f"recovery points {', '.join(map(str, r['dropped_points']))} dropped: damaged, they could not be built")
    if "chunks" in r:
        out.append(f"compared {r['chunks']:,} chunks of 1 MiB ({r['compared_bytes']:,} bytes): {r['differing_chunks']:,} "
                   f"differ, in {r['blocks']:,} blocks of 4 KiB")
        out.append(f"sent {r['sent_bytes']:,} bytes: {r['checksum_bytes']:,} of checksums, {r['block_bytes']:,} of "
                   f"differing blocks, {r['log_bytes']:,} of writes made meanwhile (LZ4"
                   + (", encrypted)" if r.get("encrypted") else ")"))
        if r.get("share_of_full_copy") is not None:
            out.append(f"{r['share_of_full_copy']:g}% of a full copy ({r['full_copy_bytes']:,} bytes allocated): "
                       f"{max(0, r['full_copy_bytes'] - r['sent_bytes']):,} bytes saved")
    if "point" in r:
        out.append(f"new recovery point {r['point']} ({r['point_kind']}, {format_time(r['point_time'])}), last "
                   f"transaction {r['last_transaction']}; delta replication resumed")
    return out
