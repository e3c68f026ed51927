"""The lab: the engine's one public face. Commands change the lab; queries describe it."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

from . import (azure, failover, faults, guests, jobs, physical, plans, protection, resync, setup, states,
               status, store, vmware, workload)
from .clock import LAB_TIME_MAX, format_duration, format_time, to_epoch
from .disks import SourceFingerprints, create_disk
from .errors import EnvironmentProblem, InvalidInput, LabError, Refused, SiteFileError, environment, environment_error
from .model import MIB, VM, Site, slug
from .replication import changelog
from .replication.cycle import Replication
from .sites import load_site, parse_site

DB_NAME = "vault.db"
# Work is done in slices of at most this much lab time, each its own transaction.
_SLICE = 60
_RPO_SAMPLE = 60  # the dashboard's RPO history: one sample per cloud every lab minute
_RETENTION_CHECK = 300  # retention also runs this often without new points (during an outage)


def default_content_bytes(vm: VM, disk_index: int) -> int:
    d = vm.disks[disk_index]
    mb = d.content_mb if d.content_mb is not None else (24 if d.role == "os" else 4)
    return min(int(mb * MIB), d.size_bytes)


def is_lab(path: Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


class Lab:
    """One lab directory: vault.db + sites/ (primary-side disks) + storage/ (replica stores).

    The engine's one public face. Each command is a short delegation to the module of its family
    (setup, protection, guests, ...), and every "is this allowed now?" is a lookup in COMMANDS.
    """

    def __init__(self, path: Path, db, site: Site):
        self.path = Path(path)
        self.db = db
        self.site = site
        self.replication = Replication(_Surroundings(self))
        self.source_fingerprints = SourceFingerprints()
        self._clock_fd: int | None = None
        self._interrupted = False  # a run failed part-way: repair the change logs before the next
        self._read_memo: dict | None = None  # inside reading(): facts already worked out in this read
        # Called between VMs inside a slice (workloads, copy cycles): an app on the lab may hold
        # the engine there for a moment, while a key is handled (no lab state is touched by it).
        self.between_vms: Callable[[], None] = _nothing
        if not self.read_only:
            setup.ensure_links(self)

    @property
    def read_only(self) -> bool:
        """Opened on a read-only folder or file system: queries work, nothing changes."""
        return bool(getattr(self.db, "srlab_read_only", False))

    # ---- creating and opening -------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, site_file: str | Path, force: bool = False) -> "Lab":
        """Build the lab in a temporary folder beside `path`, then move it into place.

        A failed init leaves nothing behind; an existing lab is replaced only with force.
        """
        path = Path(path).absolute()
        site = load_site(site_file)
        with environment(f"cannot create the lab at {path}; nothing was created"):
            return cls._create(path, site, site_file, force)

    @classmethod
    def _create(cls, path: Path, site: Site, site_file, force: bool) -> "Lab":
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
            changelog.fsync_dir(path.parent)
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
                for vi, vm in enumerate(site.vms):
                    db["vms"].insert({"name": vm.name, "power": vm.power})
                    for i, d in enumerate(vm.disks):
                        # Paths are ours: slugs, which the site file's validation keeps distinct.
                        rel = Path("sites") / slug(vm.location) / slug(vm.name) / f"{slug(d.name)}.vhd"
                        seed = vm.workload.seed * 1000 + i
                        try:
                            create_disk(root / rel, d.size_bytes, start, default_content_bytes(vm, i), seed)
                        except OSError as e:
                            if e.errno != errno.EFBIG:
                                raise
                            raise InvalidInput(
                                f"vms[{vi}].disks[{i}].size_gb: {d.size_gb:g} GB ({vm.name} disk {d.name}) is more "
                                f"than a file can be on the file system of {root.parent}",
                                "give a smaller size_gb, or put the lab on a file system that allows larger "
                                "files; nothing was created") from None
                        db["disks"].insert(
                            {"vm": vm.name, "idx": i, "name": d.name, "path": str(rel), "size_bytes": d.size_bytes}
                        )
                _insert_event(db, start, "info", site.lab.name, f"lab created from site file ({len(site.vms)} VMs)")
        finally:
            db.conn.close()

    @classmethod
    def open(cls, path: str | Path) -> "Lab":
        """Open a lab. Nothing is written to a vault.db that is not an srlab vault (empty, foreign,
        damaged); a lab on a read-only folder opens read-only (Lab.read_only)."""
        path = Path(path).absolute()
        if not is_lab(path):
            raise Refused(f"no lab at {path}", "create one with: srlab init --site FILE --lab DIR")
        vault = path / DB_NAME
        hint = "restore it from a backup, or replace the lab: srlab init --site FILE --force"
        if problem := store.vault_problem(vault):
            raise EnvironmentProblem(f"{vault} {problem}", hint)
        read_only = not (os.access(path, os.W_OK) and os.access(vault, os.W_OK))
        db = None
        try:
            with environment(f"cannot open the lab at {path}"):
                probe = store.connect(vault, read_only=True)  # a foreign database stays untouched
                try:
                    version = store.schema_version(probe)
                    ours = version > 0 and store.get_meta(probe, "site_text") is not None
                finally:
                    probe.conn.close()
                if not ours:
                    raise EnvironmentProblem(f"{vault} is not an srlab vault (no srlab schema in it)", hint)
                db = store.connect(vault, read_only=read_only)
                if read_only and version < store.SCHEMA_VERSION:
                    raise Refused(f"the lab at {path} is read-only and was made by an older srlab: its vault "
                                  "needs a one-time upgrade", "make it writable once (chmod -R u+w) and open it again")
                store.migrate(db)
                text = store.get_meta(db, "site_text")
            try:
                site = parse_site(text, str(vault))
            except SiteFileError as e:
                raise Refused(f"the lab at {path} was made from a site file this srlab refuses:\n"
                              + "\n".join(f"  {p}" for p in e.problems),
                              "fix the site file and create the lab again: srlab init --site FILE --force") from None
            lab = cls(path, db, site)
        except BaseException:
            if db is not None:
                db.conn.close()
            raise
        lab._sweep_scratch()
        return lab

    def _sweep_scratch(self) -> None:
        """Remove the scratch folders (verify's) of srlab processes that are gone."""
        for d in (self.path / ".scratch").glob("*-*"):
            pid = d.name.rsplit("-", 1)[1]
            if pid.isdigit() and not changelog.process_alive(int(pid)):
                shutil.rmtree(d, ignore_errors=True)

    def close(self) -> None:
        self.release_clock()
        self.db.conn.close()

    def release_clock(self) -> None:
        """Let another process drive this lab's clock (close() does this too)."""
        if self._clock_fd is not None:
            os.close(self._clock_fd)  # releases the flock
            self._clock_fd = None

    def acquire_clock(self) -> bool:
        """Become the one process that advances this lab's clock; False if another one is.

        An exclusive flock on lab/clock.lock, held until close(): a second srlab (TUI or CLI)
        cannot run time forward at the same time, and the TUI then opens as an observer.
        """
        if self._clock_fd is not None:
            return True
        if self.read_only:
            return False  # nothing may change: an observer
        fd = os.open(self.path / "clock.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._clock_fd = fd
        self.replication.sweep()  # what a killed holder left behind
        resync.sweep(self)
        return True

    def clock_holder(self) -> str:
        try:
            return (self.path / "clock.lock").read_text().strip() or "?"
        except OSError:
            return "?"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- basic queries ------------------------------------------------------------------

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

    def replicated_disk(self, vm: str, idx: int) -> Path:
        """The disk file replication reads: the VM's own; after an Azure -> Azure failover (and its
        reprotect), the disk of its copy running in the other region."""
        table, name = failover.source_copy(self, vm)
        own = self.disk_path(vm, idx)
        if table == "vms":
            return own
        return self.path / self.db.execute("SELECT dir FROM recovered WHERE name=?", [name]).fetchone()[0] / own.name

    def vm_row(self, name: str) -> dict:
        return store.row(self.db, "SELECT * FROM vms WHERE name=?", [name])

    def event(self, time: int, level: str, subject: str, message: str, code: str = "", action: str = "") -> None:
        """Record an event; an error or warning from a fault carries its code and the recommended action."""
        _insert_event(self.db, time, level, subject, message, code, action)

    def events(self, limit: int = 100) -> list[dict]:
        return list(self.db.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit]))

    def protection_state(self, vm_name: str) -> str:
        return states.current(self.db, vm_name).value

    def item_status(self, vm: VM) -> dict:
        return status.item_status(self, vm)

    def status(self) -> dict:
        """Everything `srlab status` shows, as plain data (JSON-ready)."""
        return status.status(self)

    def resources(self) -> dict:
        """The vault's setup: servers, agents, clouds and their protection, networks, links."""
        return status.resources(self)

    def rpo_history(self, place: str, limit: int = 1440) -> list[tuple[int, int | None]]:
        return status.rpo_history(self, place, limit)

    def last_transaction(self, name: str) -> workload.TxScan:
        """Scan a VM's source disks for the last application transaction they hold."""
        vm = self.vm(name)
        return self.scan_disks([self.disk_path(vm.name, i) for i in range(len(vm.disks))], vm)

    scan_disks = staticmethod(guests.scan_disks)

    # ---- what is allowed now --------------------------------------------------------------

    @contextlib.contextmanager
    def reading(self):
        """A read of the whole lab that changes nothing (the app's refresh: every action on every
        VM judged): the facts each judgement needs (an item's facts, the fault that stops it) are
        worked out once per VM for the read, not once per action. Never around a change."""
        outer = self._read_memo is not None
        if not outer:
            self._read_memo = {}
        try:
            yield self
        finally:
            if not outer:
                self._read_memo = None

    def remembered(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """compute(), or inside reading() the value it gave earlier in the same read."""
        if self._read_memo is None:
            return compute()
        if key not in self._read_memo:
            self._read_memo[key] = compute()
        return self._read_memo[key]

    @staticmethod
    def actions(subject: str) -> tuple[str, ...]:
        """The actions allowed() judges for a kind of subject: vm, server, host, cloud, network,
        link or job (what a UI offers on a row of that kind)."""
        return tuple(name for name, c in COMMANDS.items() if c.subject == subject)

    def allowed(self, action: str, subject=None) -> str | None:
        """None if `action` on `subject` is allowed now, else why not (the same checks the commands use)."""
        try:
            COMMANDS[action].check(self, subject)
        except LabError as e:
            return e.message
        return None

    # ---- commands: vault setup (engine.setup) ---------------------------------------------

    def register_server(self, name: str) -> int:
        return setup.register_server(self, name)

    def install_agent(self, host: str) -> int:
        return setup.install_agent(self, host)

    def configure_cloud(self, cloud: str, target: str, storage_account: str | None = None, frequency: str = "5m",
                        retention_h: int = 0, app_consistent_h: int = 0, encrypt: bool = False,
                        start: str = "now") -> int:
        """Set a cloud's replication policy (a 'Configure protection' job)."""
        return setup.configure_cloud(self, cloud, target, storage_account, frequency, retention_h,
                                     app_consistent_h, encrypt, start)

    def map_network(self, source: str, target: str) -> None:
        setup.map_network(self, source, target)

    def unmap_network(self, source: str) -> None:
        setup.unmap_network(self, source)

    def unprotect_cloud(self, cloud: str) -> int:
        return setup.unprotect_cloud(self, cloud)

    def unregister_server(self, name: str) -> int:
        return setup.unregister_server(self, name)

    # ---- commands: physical servers (engine.physical, seed 003) ---------------------------

    def install_mobility(self, servers: list[str], push: bool = False) -> list[int]:
        """Install the mobility service on physical servers: pushed by the process server with the
        site's push account, or by hand."""
        return physical.install_mobility(self, servers, push)

    def create_policy(self, name: str, retention_h: int | None = None, app_consistent_h: int | None = None) -> dict:
        """A replication policy for physical servers, and its failback policy."""
        return physical.create_policy(self, name, retention_h, app_consistent_h)

    def associate_policy(self, name: str, server: str, storage_account: str | None = None) -> dict:
        """Associate a replication policy with a configuration server (its servers' protection settings)."""
        return physical.associate(self, name, server, storage_account)

    def policies(self) -> list[dict]:
        return physical.policies(self)

    def components(self) -> list[dict]:
        """Physical sites: configuration server, process servers (cache, ports), master targets, servers."""
        return physical.components(self)

    def deploy_process_server(self, name: str, region: str, server: str | None = None) -> int:
        """A process server in Azure (an Azure VM), for failback to VMware."""
        return vmware.deploy_process_server(self, name, region, server)

    def remove_process_server(self, name: str) -> None:
        vmware.remove_process_server(self, name)

    def ports(self) -> dict[str, str]:
        """The ports a port-blocked fault can name, and what goes through each."""
        return physical.ports(self)

    def set_link(self, source: str | None = None, target: str | None = None, mbps: float | None = None,
                 state: str | None = None) -> dict:
        return setup.set_link(self, source, target, mbps, state)

    # ---- commands: protection (engine.protection) ------------------------------------------

    def protect(self, names: list[str], target_size: str | None = None, target_name: str | None = None,
                nic: str | None = None, target_region: str | None = None, target_resource_group: str | None = None,
                target_network: str | None = None, target_storage: str | None = None,
                cache_storage: str | None = None, target_availability_set: str | None = None,
                retention_h: int | None = None, app_consistent_h: int | None = None, policy: str | None = None,
                process_server: str | None = None, group: str | None = None) -> list[int]:
        """Enable protection (a Hyper-V VM: its cloud's settings say where it goes); an Azure VM
        replicates to another region, through target resources Site Recovery creates by default;
        a physical server through a process server, by its configuration server's policy."""
        opts = azure.Options(target_region, target_resource_group, target_network, target_storage, cache_storage,
                             target_availability_set, retention_h, app_consistent_h)
        return protection.protect(self, names, target_size, target_name, nic, opts,
                                  physical.Options(policy, process_server, group))

    def regions(self) -> list[dict]:
        """Azure regions, their pairs and resources (the site file's and those Site Recovery created)."""
        return azure.regions_view(self)

    def unprotect(self, names: list[str], stop_managing: bool = False) -> list[int]:
        return protection.unprotect(self, names, stop_managing)

    def set_target(self, name: str, size: str | None = None, target_name: str | None = None,
                   nic: str | None = None) -> dict:
        return self.item_status(protection.set_target(self, name, size, target_name, nic))

    def points(self, name: str) -> list[dict]:
        return protection.points(self, name)

    def build_at_point(self, name: str, point: str | int | None, out_dir: Path) -> tuple[dict, list[Path]]:
        return protection.build_at_point(self, name, point, out_dir)

    def verify(self, name: str, point: str | int | None = None) -> dict:
        return protection.verify(self, name, point)

    def export(self, name: str, point: str | int | None, out_dir: str | Path) -> dict:
        return protection.export(self, name, point, out_dir)

    # ---- commands: failover (engine.failover) ----------------------------------------------

    def failover(self, names: list[str], kind: str, point: str | None = None, network: str | None = None,
                 shutdown_sync: bool = False, sync: str | None = None, key_file: str | None = None) -> list[int]:
        """Test, planned or unplanned failover; a planned failover of a VM running at the recovery
        side is its failback (sync 'before' or 'during')."""
        return failover.failover(self, names, kind, point, network, shutdown_sync, sync, key_file)

    @staticmethod
    def report_lines(report: dict | None) -> list[str]:
        """A failover job's (or a recovery plan job's, a resync's) report as plain lines."""
        if report and "plan" in report:
            return plans.report_lines(report)
        if report and "resync" in report:
            return resync.report_lines(report)
        return failover.report_lines(report)

    def change_point(self, name: str, point: str, key_file: str | None = None) -> int:
        return failover.change_point(self, name, point, key_file)

    def commit(self, names: list[str]) -> list[int]:
        return failover.commit(self, names)

    def reprotect(self, names: list[str], process_server: str | None = None, master_target: str | None = None,
                  datastore: str | None = None) -> list[int]:
        """Reverse replicate (after a failback's commit, or a VMM -> VMM failover's commit); a
        physical server in Azure towards a VMware VM, through a process server in Azure and a
        master target, onto a datastore."""
        return failover.reprotect(self, names, vmware.Failback(process_server, master_target, datastore))

    def target_networks(self, name: str) -> list[str]:
        """Networks a protected VM can be attached to at its recovery side."""
        item = states.item(self.db, self.vm(name).name)
        return failover.target_networks(self, item) if item else []

    # ---- commands: resynchronization (engine.resync) -----------------------------------------

    def resync(self, names: list[str]) -> list[int]:
        """Resynchronize: compare the disks with the replica by checksums, send what differs, make
        a new recovery point, then resume delta replication (a Resynchronize job per VM)."""
        return resync.resync(self, names)

    def resync_schedule(self) -> str:
        """The vault's off-hours time (HH:MM, lab time) when items that need a resync start one, or off."""
        return resync.schedule(self)

    def set_resync_schedule(self, value: str) -> str:
        return resync.set_schedule(self, value)

    # ---- commands: recovery plans and replication groups (engine.plans) -------------------

    def plan_create(self, name: str, source: str, target: str, vms: list[str], rto_target: int | None = None) -> dict:
        return plans.create(self, name, source, target, vms, rto_target)

    def plan_add_group(self, name: str) -> int:
        return plans.add_group(self, name)

    def plan_move(self, name: str, vm: str, group: int) -> None:
        plans.move(self, name, vm, group)

    def plan_move_group(self, name: str, group: int, to: int) -> None:
        plans.move_group(self, name, group, to)

    def plan_remove_group(self, name: str, group: int) -> None:
        plans.remove_group(self, name, group)

    def plan_remove_action(self, name: str, action_id: int) -> None:
        plans.remove_action(self, name, action_id)

    def plan_remove(self, name: str, vm: str) -> None:
        plans.remove(self, name, vm)

    def plan_add_action(self, name: str, group: int, phase: str, manual: str | None = None,
                        script: str | None = None) -> int:
        return plans.add_action(self, name, group, phase, manual, script)

    def plan_delete(self, name: str) -> None:
        plans.delete(self, name)

    def plan(self, name: str) -> dict:
        return plans.show(self, name)

    def plans(self) -> list[dict]:
        return plans.listing(self)

    def plan_start(self, name: str, kind: str, point: str | None = None, shutdown_sync: bool = False,
                   sync: str | None = None, key_file: str | None = None) -> int:
        """test / planned / unplanned failover (planned from the recovery side: failback), commit
        or reprotect of a whole plan, as one job."""
        return plans.start(self, name, kind, point, shutdown_sync, sync, key_file)

    def plan_check(self, name: str, kind: str) -> dict:
        """Dry run: what would refuse the operation now, and the RTO its steps would take."""
        return plans.check(self, name, kind)

    def resume_job(self, job_id: int) -> dict:
        return plans.resume(self, job_id)

    def drill_report(self, job_id: int) -> dict:
        return plans.drill_report(self, job_id)

    @staticmethod
    def drill_markdown(report: dict) -> str:
        return plans.drill_markdown(report)

    def create_replication_group(self, name: str, vms: list[str]) -> None:
        plans.create_group(self, name, vms)

    # ---- commands: faults (engine.faults) ---------------------------------------------------

    def fault_inject(self, kind: str, target: str | None = None, duration: int | None = None,
                     amount: float | None = None) -> dict:
        """Break something on purpose: a fault in effect until cleared or `duration` is up."""
        return faults.inject(self, kind, target, duration, amount)

    def fault_clear(self, kind: str | None = None, target: str | None = None) -> list[dict]:
        return faults.clear(self, kind, target)

    def faults(self) -> list[dict]:
        return faults.listing(self)

    @staticmethod
    def fault_kinds() -> list[dict]:
        """Every kind: what its target names, its error code, recoverable or not, its default
        --amount (None: it takes none), whether injecting it damages a file, whether it needs a
        target (else it touches everything it can)."""
        return [{"kind": k.name, "touches": k.touches, "code": k.code, "recoverable": k.recoverable,
                 "about": k.about, "amount": k.amount, "damage": k.damage,
                 "needs_target": k.touches in faults.NEEDS_TARGET} for k in faults.KINDS.values()]

    def fault_targets(self, kind: str) -> list[str]:
        """What `fault_inject(kind, target)` may name in this lab (links, places, servers, hosts, VMs)."""
        return faults.targets(self, kind)

    def events_query(self, vm: str | None = None, since: int | None = None, limit: int = 1000) -> list[dict]:
        """Events, newest first; of one VM (its own and its recovered VMs'), since a lab time."""
        where, args = [], []
        if vm is not None:
            name = self.vm(vm).name
            where.append("(subject=? OR subject IN (SELECT name FROM recovered WHERE vm=?))")
            args += [name, name]
        if since is not None:
            where.append("time >= ?")
            args.append(since)
        sql = "SELECT * FROM events" + (f" WHERE {' AND '.join(where)}" if where else "")
        return list(self.db.query(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]))

    # ---- commands: the VMs (engine.guests) ------------------------------------------------

    def vm_power(self, name: str, action: str) -> str:
        return guests.vm_power(self, name, action)

    def guest_write(self, vm_name: str, disk: int, offset: int, data: bytes) -> None:
        guests.guest_write(self, vm_name, disk, offset, data)

    def vm_workload(self, name: str, rate_kib_s: float) -> dict:
        """Change a VM's write rate (its churn) from now on."""
        return guests.set_rate(self, name, rate_kib_s)

    # ---- jobs -----------------------------------------------------------------------------

    def jobs(self, limit: int = 100) -> list[dict]:
        return jobs.listing(self.db, self.now, limit)

    def job(self, job_id: int) -> dict:
        if not 0 < job_id < 2**63:
            raise InvalidInput(f"no job {job_id}", "list jobs with: srlab jobs")
        j = jobs.detail(self.db, job_id, self.now)
        if j is None:
            raise InvalidInput(f"no job {job_id}", "list jobs with: srlab jobs")
        return j

    def complete_job(self, job_id: int, note: str = "") -> dict:
        """Complete the step a job waits on (a manual action, Complete test); the job carries on."""
        job = _check_complete_job(self, job_id)
        with environment(f"cannot complete job {job['id']}"):
            jobs.complete(self, job["id"], self.now, note)
        if note:
            self.event(self.now, "info", job["target"], f"{job['name']}: completed with note: {note}")
        return self.job(job["id"])

    def run_until_done(self, job_ids: list[int], limit: int = 6 * 3600) -> None:
        """Advance lab time until the jobs end (as a portal waits on its jobs)."""
        deadline = min(self.now + limit, LAB_TIME_MAX)
        while self.now < deadline:
            running = [j for j in job_ids if self.job(j)["state"] == states.JobState.IN_PROGRESS]
            if not running:
                return
            # a job step that ends when its work is done (a resync's compare) says when that may be
            due = min((d for d in (jobs.next_due(self.db), resync.next_due(self)) if d is not None),
                      default=self.now + 1)
            self.run(max(1, min(due, deadline) - self.now))

    # ---- time -----------------------------------------------------------------------------

    def run(self, seconds: int) -> dict:
        """Advance lab time by `seconds`, doing all the work that falls due, as fast as possible."""
        if seconds <= 0:
            raise InvalidInput("run needs a positive duration", "for example: srlab run --for 15m")
        if self.now + seconds > LAB_TIME_MAX:
            left = LAB_TIME_MAX - self.now
            raise Refused(f"lab time would pass {format_time(LAB_TIME_MAX)}, the end of the time srlab supports "
                          f"(the lab is at {format_time(self.now)})",
                          f"run for at most {format_duration(left)}" if left else "create a new lab")
        if self.read_only:
            raise Refused(f"the lab at {self.path} is read-only: lab time cannot move",
                          "make it writable (chmod -R u+w) to run it; reading it works as it is")
        if not self.acquire_clock():
            raise Refused(f"another srlab process (pid {self.clock_holder()}) is advancing this lab's clock",
                          "use that one, close it first, or watch with: srlab tui --observer")
        try:
            if self._interrupted:
                self.replication.repair_logs()
                self._interrupted = False
            return self._run(seconds)
        except BaseException as e:
            self._interrupted = True  # a slice may have left a torn change-log record
            if isinstance(e, (OSError, sqlite3.Error)):
                raise environment_error(e, f"lab time stopped at {format_time(self.now)}") from e
            raise

    def _run(self, seconds: int) -> dict:
        start = self.now
        end = start + seconds
        writes = 0
        t = start
        while t < end:
            nxt = min(end, t + _SLICE)
            for due in (jobs.next_due(self.db), self.replication.next_event(t), faults.next_expiry(self.db)):
                if due is not None and t < due < nxt:
                    nxt = due
            self.replication.begin_slice()
            with store.transaction(self.db):
                faults.expire(self, t)
                writes += guests.advance_workloads(self, t, nxt)
                self.replication.serve_links(t, nxt)
                store.set_meta(self.db, "now", nxt)
                jobs.advance(self, nxt)
                self.replication.tick(nxt)
                failover.reverse_tick(self, nxt)
                resync.tick(self, t, nxt)
                faults.watch_logs(self, nxt)
                if nxt // _RETENTION_CHECK != t // _RETENTION_CHECK:
                    self.replication.retention_check(nxt)
                if nxt // _RPO_SAMPLE != t // _RPO_SAMPLE:
                    status.sample_rpo(self, nxt - nxt % _RPO_SAMPLE)
                self.replication.flush()  # the slice's files are durable before its rows commit
            self.replication.after_commit(nxt)
            t = nxt
        return {"from": start, "to": end, "writes": writes}


def _check_complete_job(lab: Lab, job_id) -> dict:
    try:
        job = lab.job(int(job_id))
    except (TypeError, ValueError):
        raise InvalidInput(f"bad job id {job_id!r}") from None
    if job["state"] != states.JobState.WAITING:
        raise Refused(f"job {job['id']} is {job['state']}; only a job waiting for action can be completed")
    return job


# ---- the command registry: every operation's subject and check -------------------------------


@dataclass(frozen=True)
class Command:
    subject: str  # what it acts on: vm | server | host | cloud | network | link | job | plan | fault | region | process server
    check: Callable[[Lab, Any], Any]  # (lab, subject): raises a LabError saying why not


def _pair(check):
    """For subjects that are pairs: (source, target) of a network mapping or a link."""
    return lambda lab, s: check(lab, *(s or (None, None)))


def _item_op(op: str):
    """An item operation judged by the rules table (rules.OPERATIONS)."""
    return lambda lab, vm: failover.check(lab, op, vm)


def _plan_op(kind: str):
    """A recovery plan operation: refused with the first problem plans.problems() finds."""
    def check(lab, plan):
        if found := plans.problems(lab, plan, kind):
            raise Refused(found[0])
    return check


COMMANDS: dict[str, Command] = {
    "register_server": Command("server", setup.check_register_server),
    "install_mobility": Command("vm", physical.check_install_mobility),
    "push_mobility": Command("vm", partial(physical.check_install_mobility, push=True)),
    "associate_policy": Command("server", physical.check_can_associate),
    "deploy_process_server": Command("region", vmware.check_deploy_place),
    "remove_process_server": Command("process server", vmware.check_remove_process_server),
    "install_agent": Command("host", setup.check_install_agent),
    "configure_cloud": Command("cloud", setup.check_cloud_basics),
    "map_network": Command("network", _pair(setup.check_map_network)),
    "unmap_network": Command("network", setup.check_unmap_network),
    "set_link": Command("link", _pair(setup.find_link)),
    "unprotect_cloud": Command("cloud", setup.check_unprotect_cloud),
    "unregister_server": Command("server", setup.check_unregister_server),
    "protect": Command("vm", protection.check_protect),
    "unprotect": Command("vm", protection.check_unprotect),
    "set_target": Command("vm", protection.check_set_target),
    "vm_start": Command("vm", partial(guests.check_power, action="start")),
    "vm_stop": Command("vm", partial(guests.check_power, action="stop")),
    "vm_shutdown": Command("vm", partial(guests.check_power, action="shutdown")),
    "test_failover": Command("vm", _item_op("test_failover")),
    "planned_failover": Command("vm", _item_op("planned_failover")),
    "unplanned_failover": Command("vm", _item_op("unplanned_failover")),
    "change_point": Command("vm", _item_op("change_point")),
    "commit": Command("vm", _item_op("commit")),
    "reprotect": Command("vm", _item_op("reprotect")),
    "resync": Command("vm", resync.check),
    "complete_job": Command("job", _check_complete_job),
    "fault_inject": Command("fault", lambda lab, s: faults.check_inject(lab, *(s or (None,)))),
    "fault_clear": Command("fault", lambda lab, s: faults.check_clear(lab, *(s or (None,)))),
    "vm_workload": Command("vm", lambda lab, vm: lab.vm(vm)),
    **{f"plan_{k}": Command("plan", _plan_op(k)) for k in plans.OPERATIONS},
}


def _nothing() -> None:
    pass


class _Surroundings:
    """What replication sees of the lab (engine.replication.cycle.Surroundings)."""

    def __init__(self, lab: Lab):
        self._lab = lab
        self.path, self.db = lab.path, lab.db
        self.vm, self.disk_path, self.event = lab.vm, lab.replicated_disk, lab.event

    def vm_names(self) -> list[str]:
        return [v.name for v in self._lab.site.vms]

    def policy(self, vm: str) -> dict:
        return protection.policy_of(self._lab, self._lab.vm(vm))

    def link_of(self, vm: str) -> tuple[str, str]:
        return setup.link_of(self._lab, self._lab.vm(vm))

    def stage_dir(self, vm: str) -> Path:
        """Where a VM's shipments wait: an Azure VM's in the cache storage account of its region, a
        physical server's in its process server's cache."""
        v = self._lab.vm(vm)
        if v.physical_site:  # failing back: the cache of the process server in Azure
            return self.path / (vmware.failback_cache(self._lab, vm) or physical.cache_dir(self._lab, v))
        cache = azure.cache_dir(self._lab, vm)
        return self.path / cache if cache else self._lab.disk_path(vm, 0).parent / "outgoing"

    def encryption_key(self, vm: str) -> bytes:
        return setup.encryption_key(self._lab, self._lab.vm(vm))

    def writes_done(self, vm: str) -> int:
        table, name = failover.source_copy(self._lab, vm)  # an Azure VM's copy in the other region, after reprotect
        return self._lab.db.execute(f"SELECT writes_done FROM {table} WHERE name=?", [name]).fetchone()[0]

    def source_fingerprint(self, disk: Path, size: int):
        return self._lab.source_fingerprints.fingerprint(disk, size)

    def initial_replication_done(self, vm: str, at: int) -> None:
        protection.initial_replication_done(self._lab, vm, at)

    def problem(self, vm: str, leg: str = "source"):
        return faults.problem(self._lab, self._lab.vm(vm), leg=leg)

    def throttled(self, vm: str):
        return faults.throttled(self._lab, self._lab.vm(vm))

    def attempt_failed(self, vm: str, now: int, problem) -> int | None:
        return faults.attempt_failed(self._lab, vm, now, problem)

    def transfer_lost(self, vm: str, source: str, target: str, transfer_id: int):
        failures = self._lab.db.execute("SELECT failures FROM items WHERE vm=?", [vm]).fetchone()
        return faults.transfer_lost(self._lab, source, target, transfer_id, failures[0] if failures else 0)

    def between_vms(self) -> None:
        self._lab.between_vms()

    def resumed(self, vm: str, now: int) -> None:
        faults.resumed(self._lab, vm, now)

    def needs_resync(self, vm: str, at: int, code: str, message: str) -> None:
        faults.need_resync(self._lab, vm, at, code, message)

    def rate_factor(self, source: str, target: str) -> float:
        return faults.rate_factor(self._lab, source, target)


def _insert_event(db, time: int, level: str, subject: str, message: str, code: str = "", action: str = "") -> None:
    store.insert(db, "events", {"time": time, "level": level, "subject": subject, "message": message, "code": code,
                               "action": action})
