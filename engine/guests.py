"""The VMs themselves: power, and the guest's writes to its disk files as lab time passes.

Every write goes to the disk file and, while the VM is tracked, to the disk's change log (the
seeds' .hrl) beside it; replication ships those logs. Writes carry numbered application
transactions (engine.workload), which a scan of any disk can read back.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import faults, protection, rules, states, store, workload
from .errors import InvalidInput, Refused
from .model import VM
from .replication import changelog
from .replication.cycle import log_path

POWER_ACTIONS = {"start": ("running", "", "started"), "stop": ("off", "hard", "turned off"),
                 "shutdown": ("off", "clean", "shut down")}  # action -> (power, how, word)


def check_power(lab, name: str, action: str) -> VM:
    vm = lab.vm(name)
    power = lab.vm_row(vm.name)["power"]
    if action not in POWER_ACTIONS:
        raise InvalidInput(f"unknown power action {action!r}", "use start, stop or shutdown")
    if reason := faults.power_refusal(lab, vm):
        raise Refused(reason)
    if action == "start" and power == "running":
        raise Refused(f"{vm.name} is already running")
    if action == "start" and (reason := rules.operation_reason("start_source", protection.item_facts(lab, vm))):
        raise Refused(reason)
    if action != "start" and power == "off":
        raise Refused(f"{vm.name} is already off", f"start it with: srlab vm start {vm.name}")
    return vm


def vm_power(lab, name: str, action: str) -> str:
    """start | stop (turn off) | shutdown (guest shutdown). Returns the new power state."""
    vm = check_power(lab, name, action)
    new, how, word = POWER_ACTIONS[action]
    with store.transaction(lab.db):
        lab.db.execute(
            "UPDATE vms SET power=?, last_shutdown=CASE WHEN ?='' THEN last_shutdown ELSE ? END WHERE name=?",
            [new, how, how, vm.name],
        )
        lab.event(lab.now, "info", vm.name, f"VM {word}")
        copies = lab.db.execute("SELECT name FROM recovered WHERE vm=? AND role='failover' AND power='running'",
                                [vm.name]).fetchall()
        if action == "start" and copies:  # after an unplanned failover the source may start again
            lab.event(lab.now, "warning", vm.name, f"{copies[0][0]} runs at the recovery side too: two copies "
                                                   "of this VM now write to their own disks")
    return new


def _tracked(lab, vm: str) -> bool:
    item = states.item(lab.db, vm)
    return bool(item and item["tracking"])


def recovered_disks(lab, row: dict) -> list[Path]:
    """The disk files of a VM built at the recovery side (named as the source's)."""
    vm = lab.vm(row["vm"])
    return [lab.path / row["dir"] / lab.disk_path(vm.name, i).name for i in range(len(vm.disks))]


def advance_workloads(lab, t0: int, t1: int) -> int:
    """Apply the guest writes of every running VM, source or recovered, for lab time [t0, t1)."""
    total = 0
    missing = {r[0] for r in lab.db.execute("SELECT target FROM faults WHERE kind='vm-missing'")}
    # Every VM's row, tracking and disk files in three queries, not three per VM (1,000 VMs a slice).
    rows = {r["name"]: r for r in store.rows(lab.db, "SELECT * FROM vms")}
    tracked = {r[0] for r in lab.db.execute("SELECT vm FROM items WHERE tracking")}
    files = {(name, idx): path for name, idx, path in lab.db.execute("SELECT vm, idx, path FROM disks")}
    for vm in lab.site.vms:
        lab.between_vms()
        row = rows[vm.name]
        if row["power"] == "running" and vm.name not in missing:  # a deleted VM writes nothing
            paths = [lab.path / files[vm.name, i] for i in range(len(vm.disks))]
            total += _run(lab, "vms", vm.name, vm, row, paths, vm.name in tracked, t0, t1)
    for row in lab.db.query("SELECT * FROM recovered WHERE power='running' ORDER BY name"):
        total += _run(lab, "recovered", row["name"], lab.vm(row["vm"]), row, recovered_disks(lab, row),
                      bool(row["tracking"]), t0, t1)
    return total


def _run(lab, table: str, name: str, vm: VM, row: dict, paths: list[Path], tracked: bool, t0: int, t1: int) -> int:
    """One VM's writes for [t0, t1). Its transactions go on from seq_offset, the last one the
    disks it started on held."""
    active0 = row["run_seconds"]
    active1 = active0 + (t1 - t0)
    due = row["seq_offset"] + _writes_due(row, vm, active1)
    done = row["writes_done"]
    if due > done:
        _write(lab, vm, row, paths, tracked, done, due, t0 - active0)
    lab.db.execute(f"UPDATE {table} SET run_seconds=?, writes_done=? WHERE name=?", [active1, max(due, done), name])
    return max(0, due - done)


def _writes_due(row: dict, vm: VM, active: int) -> int:
    """Writes made after running `active` seconds: at the site's rate, or at the rate set at
    run time (`srlab vm workload`) from when it was set."""
    rate = row.get("rate_kib")
    if rate is None:
        return workload.writes_due(active, vm)
    return row["rate_base"] + int((active - row["rate_since"]) * rate) // vm.workload.block_kib


def _write_time(row: dict, vm: VM, n: int) -> float:
    """Active seconds at which write n (counted from the VM's first) happens."""
    rate = row.get("rate_kib")
    if rate is None:
        return workload.write_time(n, vm)
    return row["rate_since"] + ((n - row["rate_base"]) * vm.workload.block_kib / rate if rate else 0.0)


def set_rate(lab, name: str, kib_per_s: float) -> dict:
    """Change a VM's write rate from now on (its churn), so that a lab reaches the 50% rule in minutes."""
    vm = lab.vm(name)
    if not 0 <= kib_per_s <= 1_048_576:
        raise InvalidInput(f"--rate must be 0 to 1048576 KiB/s (1 GiB/s), not {kib_per_s:g}")
    with store.transaction(lab.db):
        row = lab.vm_row(vm.name)
        lab.db.execute("UPDATE vms SET rate_kib=?, rate_since=?, rate_base=? WHERE name=?",
                       [kib_per_s, row["run_seconds"], row["writes_done"] - row["seq_offset"], vm.name])
        lab.event(lab.now, "info", vm.name, f"workload rate set to {kib_per_s:g} KiB/s "
                                            f"(the site file says {vm.workload.rate_kib_s:g})")
    return {"vm": vm.name, "rate_kib_s": kib_per_s}


def _write(lab, vm: VM, row: dict, paths: list[Path], tracked: bool, first: int, last: int, lab_offset: int) -> None:
    """Guest writes first..last-1, each also appended to its disk's change log when tracked (the
    records of one call in one append per disk: a log holds them in order all the same)."""
    sizes = [d.size_bytes for d in vm.disks]
    fds = [os.open(p, os.O_RDWR) for p in paths]
    records: list[list[bytes]] = [[] for _ in paths]
    extents: list[list[tuple[int, int]]] = [[] for _ in paths]
    try:
        for n in range(first, last):
            t = lab_offset + int(_write_time(row, vm, n - row["seq_offset"]))
            w = workload.make_write(vm, n, t, sizes)
            os.pwrite(fds[w.disk], w.data, w.offset)
            extents[w.disk].append((w.offset, len(w.data)))
            if tracked:
                records[w.disk].append(changelog.record(w.offset, w.data))
    finally:
        for fd in fds:
            os.close(fd)
        for p, written in zip(paths, extents):
            lab.source_fingerprints.written_many(p, written)
        for p, recs in zip(paths, records) if tracked else ():
            if recs:
                _append(log_path(p), b"".join(recs))


def _append(log: Path, data: bytes) -> None:
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        view = memoryview(data)
        while view:  # one write, unless it is over Linux's 2 GiB a call
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def guest_write(lab, vm_name: str, disk: int, offset: int, data: bytes) -> None:
    """One write by a VM's guest outside its workload (benchmarks, drills): tracked like any other."""
    vm = lab.vm(vm_name)
    path = lab.disk_path(vm.name, disk)
    if offset < 0 or offset + len(data) > vm.disks[disk].size_bytes:
        raise InvalidInput(f"write at {offset} of {len(data)} bytes is outside disk {vm.disks[disk].name}")
    fd = os.open(path, os.O_RDWR)
    try:
        os.pwrite(fd, data, offset)
    finally:
        os.close(fd)
    lab.source_fingerprints.written(path, offset, len(data))
    if _tracked(lab, vm.name):
        with open(log_path(path), "ab") as f:
            f.write(changelog.record(offset, data))


def scan_disks(paths: list[Path], vm: VM) -> workload.TxScan:
    """The application transactions a set of disk files holds (the last one, and how many)."""
    scan = workload.TxScan()
    for p, d in zip(paths, vm.disks):
        s = workload.scan_file(p, d.size_bytes, workload.vm_tag(vm.name))
        scan.count += s.count
        if s.last_seq > scan.last_seq:
            scan.last_seq, scan.last_time = s.last_seq, s.last_time
    return scan
