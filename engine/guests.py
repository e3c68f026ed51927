"""The VMs themselves: power, and the guest's writes to its disk files as lab time passes.

Every write goes to the disk file and, while the VM is tracked, to the disk's change log (the
seeds' .hrl) beside it; replication ships those logs. Writes carry numbered application
transactions (engine.workload), which a scan of any disk can read back.
"""

from __future__ import annotations

import os
from pathlib import Path

from . import states, store, workload
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
    if action == "start" and power == "running":
        raise Refused(f"{vm.name} is already running")
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
    return new


def _tracked(lab, vm: str) -> bool:
    item = states.item(lab.db, vm)
    return bool(item and item["tracking"])


def advance_workloads(lab, t0: int, t1: int) -> int:
    """Apply every running VM's guest writes for lab time [t0, t1)."""
    total = 0
    for vm in lab.site.vms:
        row = lab.vm_row(vm.name)
        if row["power"] != "running":
            continue
        active0 = row["run_seconds"]
        active1 = active0 + (t1 - t0)
        due = workload.writes_due(active1, vm)
        done = row["writes_done"]
        if due > done:
            _write(lab, vm, done, due, t0 - active0)
            total += due - done
        lab.db.execute("UPDATE vms SET run_seconds=?, writes_done=? WHERE name=?", [active1, max(due, done), vm.name])
    return total


def _write(lab, vm: VM, first: int, last: int, lab_offset: int) -> None:
    """Guest writes first..last-1, each also appended to its disk's change log when tracked."""
    sizes = [d.size_bytes for d in vm.disks]
    paths = [lab.disk_path(vm.name, i) for i in range(len(vm.disks))]
    tracked = _tracked(lab, vm.name)
    fds = [os.open(p, os.O_RDWR) for p in paths]
    logs = [open(log_path(p), "ab") for p in paths] if tracked else []
    try:
        for n in range(first, last):
            t = lab_offset + int(workload.write_time(n, vm))
            w = workload.make_write(vm, n, t, sizes)
            os.pwrite(fds[w.disk], w.data, w.offset)
            lab.source_fingerprints.written(paths[w.disk], w.offset, len(w.data))
            if tracked:
                logs[w.disk].write(changelog.record(w.offset, w.data))
    finally:
        for fd in fds:
            os.close(fd)
        for f in logs:
            f.close()


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
