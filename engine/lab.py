"""The lab: the engine's one public face. Commands change the lab; queries describe it."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from . import store, workload
from .clock import format_time, to_epoch
from .disks import allocated_bytes, create_disk
from .errors import InvalidInput, Refused
from .model import MIB, VM, Site
from .sites import load_site, parse_site

DB_NAME = "vault.db"
# Work is done in slices of at most this much lab time, each its own transaction.
_SLICE = 300


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "x"


def default_content_bytes(vm: VM, disk_index: int) -> int:
    d = vm.disks[disk_index]
    mb = d.content_mb if d.content_mb is not None else (24 if d.role == "os" else 4)
    return min(int(mb * MIB), d.size_bytes)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def is_lab(path: Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


class Lab:
    """One lab directory: vault.db + sites/ (primary-side disks) + storage/ (replica stores)."""

    def __init__(self, path: Path, db, site: Site):
        self.path = Path(path)
        self.db = db
        self.site = site

    # ---- creating and opening -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, site_file: str | Path, force: bool = False) -> "Lab":
        """Build the lab in a temporary folder beside `path`, then move it into place.

        A failed init leaves nothing behind; an existing lab is replaced only with force.
        """
        path = Path(path).absolute()
        site = load_site(site_file)
        if path.exists():
            if not path.is_dir():
                raise Refused(f"{path} exists and is not a directory", "choose another --lab")
            if is_lab(path) and not force:
                raise Refused(
                    f"a lab already exists at {path}",
                    "use --force to replace it (its disks and replicas are deleted), or choose another --lab",
                )
            if not is_lab(path) and any(path.iterdir()):
                raise Refused(
                    f"{path} is not empty and is not a lab", "choose an empty or new directory for --lab"
                )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.parent / f".{path.name}.init-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            cls._build(tmp, site, Path(site_file).read_text(encoding="utf-8"))
            old = None
            if path.exists():
                old = path.parent / f".{path.name}.old-{os.getpid()}"
                os.rename(path, old)
            os.rename(tmp, path)
            _fsync_dir(path.parent)
            if old:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return cls.open(path)

    @staticmethod
    def _build(root: Path, site: Site, site_text: str) -> None:
        (root / "sites").mkdir()
        (root / "storage").mkdir()
        db = store.connect(root / DB_NAME)
        try:
            store.migrate(db)
            start = to_epoch(site.lab.start)
            with store.transaction(db):
                store.set_meta(db, "site_text", site_text)
                store.set_meta(db, "now", start)
                store.set_meta(db, "created", start)
                for vm in site.vms:
                    db["vms"].insert({"name": vm.name, "power": vm.power})
                    for i, d in enumerate(vm.disks):
                        rel = Path("sites") / _slug(vm.location) / _slug(vm.name) / f"{_slug(d.name)}.vhd"
                        seed = vm.workload.seed * 1000 + i
                        create_disk(root / rel, d.size_bytes, start, default_content_bytes(vm, i), seed)
                        db["disks"].insert(
                            {"vm": vm.name, "idx": i, "name": d.name, "path": str(rel), "size_bytes": d.size_bytes}
                        )
                _event(db, start, "info", site.lab.name, f"lab created from site file ({len(site.vms)} VMs)")
        finally:
            db.conn.close()

    @classmethod
    def open(cls, path: str | Path) -> "Lab":
        path = Path(path).absolute()
        if not is_lab(path):
            raise Refused(f"no lab at {path}", "create one with: srlab init --site FILE --lab DIR")
        db = store.connect(path / DB_NAME)
        store.migrate(db)
        site = parse_site(store.get_meta(db, "site_text"), str(path / DB_NAME))
        return cls(path, db, site)

    def close(self) -> None:
        self.db.conn.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- queries ------------------------------------------------------------------------

    @property
    def now(self) -> int:
        return store.get_meta(self.db, "now")

    def vm(self, name: str) -> VM:
        vm = self.site.vm(name) or next((v for v in self.site.vms if v.name.lower() == name.lower()), None)
        if vm is None:
            names = ", ".join(v.name for v in self.site.vms)
            raise InvalidInput(f"no VM named {name!r} in this lab", f"VMs: {names}")
        return vm

    def disk_path(self, vm: str, idx: int) -> Path:
        row = self.db.execute("SELECT path FROM disks WHERE vm=? AND idx=?", [vm, idx]).fetchone()
        return self.path / row[0]

    def vm_row(self, name: str) -> dict:
        return next(self.db.query("SELECT * FROM vms WHERE name=?", [name]))

    def status(self) -> dict:
        """Everything `srlab status` shows, as plain data (JSON-ready)."""
        vms = []
        for vm in self.site.vms:
            row = self.vm_row(vm.name)
            disks = []
            for i, d in enumerate(vm.disks):
                p = self.disk_path(vm.name, i)
                disks.append(
                    {
                        "name": d.name,
                        "role": d.role,
                        "path": str(p),
                        "format": "vhd-fixed",
                        "declared": f"{d.format} {d.type}",
                        "logical_bytes": d.size_bytes,
                        "allocated_bytes": allocated_bytes(p, d.size_bytes),
                    }
                )
            vms.append(
                {
                    "name": vm.name,
                    "site": self._site_of(vm),
                    "cloud": vm.cloud,
                    "location": vm.location,
                    "host": vm.host,
                    "os": vm.os,
                    "power": row["power"],
                    "writes": row["writes_done"],
                    "protection": "not protected",
                    "disks": disks,
                }
            )
        return {
            "lab": str(self.path),
            "name": self.site.lab.name,
            "scenario": self.site.lab.scenario,
            "now": self.now,
            "now_text": format_time(self.now),
            "vms": vms,
        }

    def _site_of(self, vm: VM) -> str:
        if vm.cloud:
            return self.site.clouds()[vm.cloud][0].name
        return vm.region or vm.physical_site

    def last_transaction(self, name: str) -> workload.TxScan:
        """Scan a VM's source disks for the last application transaction they hold."""
        vm = self.vm(name)
        scan = workload.TxScan()
        for i, d in enumerate(vm.disks):
            s = workload.scan_file(self.disk_path(vm.name, i), d.size_bytes, workload.vm_tag(vm.name))
            scan.count += s.count
            if s.last_seq > scan.last_seq:
                scan.last_seq, scan.last_time = s.last_seq, s.last_time
        return scan

    def events(self, limit: int = 100) -> list[dict]:
        return list(self.db.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit]))

    # ---- commands -----------------------------------------------------------------------

    def run(self, seconds: int) -> dict:
        """Advance lab time by `seconds`, doing all the work that falls due, as fast as possible."""
        if seconds <= 0:
            raise InvalidInput("run needs a positive duration", "for example: srlab run --for 15m")
        start = self.now
        end = start + seconds
        writes = 0
        t = start
        while t < end:
            nxt = min(end, t + _SLICE)
            with store.transaction(self.db):
                writes += self._advance_workloads(t, nxt)
                store.set_meta(self.db, "now", nxt)
            t = nxt
        return {"from": start, "to": end, "writes": writes}

    def _advance_workloads(self, t0: int, t1: int) -> int:
        """Apply every running VM's guest writes for lab time [t0, t1)."""
        total = 0
        for vm in self.site.vms:
            row = self.vm_row(vm.name)
            if row["power"] != "running":
                continue
            active0 = row["run_seconds"]
            active1 = active0 + (t1 - t0)
            due = workload.writes_due(active1, vm)
            done = row["writes_done"]
            if due > done:
                self._write(vm, done, due, t0 - active0)
                total += due - done
            self.db.execute(
                "UPDATE vms SET run_seconds=?, writes_done=? WHERE name=?", [active1, max(due, done), vm.name]
            )
        return total

    def _write(self, vm: VM, first: int, last: int, lab_offset: int) -> None:
        """Guest writes first..last-1; lab time of a write = its active time + lab_offset."""
        sizes = [d.size_bytes for d in vm.disks]
        fds = [os.open(self.disk_path(vm.name, i), os.O_RDWR) for i in range(len(vm.disks))]
        try:
            for n in range(first, last):
                t = lab_offset + int(workload.write_time(n, vm))
                w = workload.make_write(vm, n, t, sizes)
                os.pwrite(fds[w.disk], w.data, w.offset)
                self._on_guest_write(vm, w)
        finally:
            for fd in fds:
                os.close(fd)

    def _on_guest_write(self, vm: VM, w: workload.Write) -> None:
        """Hook for change tracking (protected disks record every write)."""

    def vm_power(self, name: str, action: str) -> str:
        """start | stop (turn off) | shutdown (guest shutdown). Returns the new power state."""
        vm = self.vm(name)
        power = self.vm_row(vm.name)["power"]
        if action == "start":
            if power == "running":
                raise Refused(f"{vm.name} is already running")
            new, how = "running", ""
        elif action in ("stop", "shutdown"):
            if power == "off":
                raise Refused(f"{vm.name} is already off", f"start it with: srlab vm start {vm.name}")
            new, how = "off", "clean" if action == "shutdown" else "hard"
        else:
            raise InvalidInput(f"unknown power action {action!r}", "use start, stop or shutdown")
        with store.transaction(self.db):
            self.db.execute(
                "UPDATE vms SET power=?, last_shutdown=CASE WHEN ?='' THEN last_shutdown ELSE ? END WHERE name=?",
                [new, how, how, vm.name],
            )
            word = {"start": "started", "stop": "turned off", "shutdown": "shut down"}[action]
            _event(self.db, self.now, "info", vm.name, f"VM {word}")
        return new


def _event(db, time: int, level: str, subject: str, message: str) -> None:
    db["events"].insert({"time": time, "level": level, "subject": subject, "message": message})
