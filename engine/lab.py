"""The lab: the engine's one public face. Commands change the lab; queries describe it."""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import jobs, rules, store, workload
from .clock import format_time, to_epoch
from .disks import SourceFingerprints, allocated_bytes, create_disk
from .errors import InvalidInput, LabError, Refused
from .model import MIB, VM, Site, slug
from .replication import changelog
from .replication.cycle import Replication, log_path
from .protection import Protection
from .setup import VaultSetup
from .sites import load_site, parse_site

DB_NAME = "vault.db"
# Work is done in slices of at most this much lab time, each its own transaction.
_SLICE = 60
_RPO_SAMPLE = 60  # the dashboard's RPO history: one sample per cloud every lab minute


# Which actions apply to which kind of subject (the UIs ask Lab.actions()).
ACTIONS_BY_SUBJECT = {
    "vm": ("protect", "unprotect", "set_target", "vm_start", "vm_stop", "vm_shutdown"),
    "server": ("register_server",),
    "host": ("install_agent",),
    "cloud": ("configure_cloud",),
    "network": ("map_network", "unmap_network"),
    "link": ("set_link",),
    "job": ("complete_job",),
}


def default_content_bytes(vm: VM, disk_index: int) -> int:
    d = vm.disks[disk_index]
    mb = d.content_mb if d.content_mb is not None else (24 if d.role == "os" else 4)
    return min(int(mb * MIB), d.size_bytes)


def is_lab(path: Path) -> bool:
    return (Path(path) / DB_NAME).is_file()


class Lab(VaultSetup, Protection):
    """One lab directory: vault.db + sites/ (primary-side disks) + storage/ (replica stores)."""

    def __init__(self, path: Path, db, site: Site):
        self.path = Path(path)
        self.db = db
        self.site = site
        self.replication = Replication(self)
        self.source_fingerprints = SourceFingerprints()
        self._clock_fd: int | None = None
        self._ensure_links()

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
                for vm in site.vms:
                    db["vms"].insert({"name": vm.name, "power": vm.power})
                    for i, d in enumerate(vm.disks):
                        rel = Path("sites") / slug(vm.location) / slug(vm.name) / f"{slug(d.name)}.vhd"
                        seed = vm.workload.seed * 1000 + i
                        create_disk(root / rel, d.size_bytes, start, default_content_bytes(vm, i), seed)
                        db["disks"].insert(
                            {"vm": vm.name, "idx": i, "name": d.name, "path": str(rel), "size_bytes": d.size_bytes}
                        )
                _insert_event(db, start, "info", site.lab.name, f"lab created from site file ({len(site.vms)} VMs)")
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

    def vm_row(self, name: str) -> dict:
        return next(self.db.query("SELECT * FROM vms WHERE name=?", [name]))

    def event(self, time: int, level: str, subject: str, message: str) -> None:
        _insert_event(self.db, time, level, subject, message)

    def events(self, limit: int = 100) -> list[dict]:
        return list(self.db.query("SELECT * FROM events ORDER BY id DESC LIMIT ?", [limit]))

    # ---- status ---------------------------------------------------------------------------

    def protection_state(self, vm_name: str) -> str:
        item = self.replication.item(vm_name)
        return item["state"] if item else "not protected"

    def item_status(self, vm: VM) -> dict:
        """Protection columns of one VM, as the seed's protected-items list shows them."""
        item = self.replication.item(vm.name)
        if item is None:
            return {"protection": "not protected", "health": "", "active_location": vm.location,
                    "failover_state": "", "target_size": rules.pick_target_size(vm) or "", "target_name": "",
                    "target_network": "",
                    "nic": "", "rpo_seconds": None, "last_replication": None, "progress": None, "policy": None,
                    "errors": []}
        now = self.now
        pol = self.replication.policy(vm.name)
        latest = self.db.execute("SELECT MAX(time) FROM points WHERE vm=?", [vm.name]).fetchone()[0]
        rpo = now - latest if latest is not None else None
        progress = None
        text = item["state"]
        if item["state"] == "initial replication in progress":
            total = max(1, item["initial_total"])
            progress = 100 if item["initial_done_at"] else min(99, item["initial_done"] * 100 // total)
            text = f"initial replication in progress {progress}%"
        elif item["state"] == "initial replication pending":
            text = f"initial replication pending (starts {format_time(item['start_at'])})"
        source, target = self.replication.link_of(vm.name)
        link = next(self.db.query("SELECT state FROM links WHERE source=? AND target=?", [source, target]), None)
        health = rules.health(rpo if item["state"] == "protected" else None, pol["frequency"],
                              failed=bool(item["error"]))
        if health == "OK" and link and link["state"] == "down" and item["state"] != "protected":
            health = "Warning"  # initial replication cannot progress
        nic = next((n for n in vm.nics if n.name == item["nic"]), None)
        mapped = self.db.execute("SELECT target FROM network_mappings WHERE source=?",
                                 [nic.network if nic else ""]).fetchone()
        return {
            "protection": text,
            "health": health,
            "target_network": mapped[0] if mapped else "",
            "active_location": vm.location,
            "failover_state": item["failover_state"],
            "target_size": item["target_size"],
            "target_name": item["target_name"],
            "nic": item["nic"],
            "rpo_seconds": rpo,
            "last_replication": item["last_replication"],
            "progress": progress,
            "policy": self._policy_public(pol),
            "errors": [item["error"]] if item["error"] else [],
        }

    def status(self) -> dict:
        """Everything `srlab status` shows, as plain data (JSON-ready)."""
        vms = []
        for vm in self.site.vms:
            row = self.vm_row(vm.name)
            disks = []
            for i, d in enumerate(vm.disks):
                p = self.disk_path(vm.name, i)
                disks.append({
                    "name": d.name, "role": d.role, "path": str(p), "format": "vhd-fixed",
                    "declared": f"{d.format} {d.type}", "logical_bytes": d.size_bytes,
                    "allocated_bytes": allocated_bytes(p, d.size_bytes),
                })
            vms.append({
                "name": vm.name, "site": self._site_of(vm), "cloud": vm.cloud, "location": vm.location,
                "host": vm.host, "os": vm.os, "generation": vm.generation, "cpus": vm.cpus,
                "memory_mb": vm.memory_mb, "power": row["power"], "writes": row["writes_done"],
                "disks": disks, **self.item_status(vm),
            })
        return {"lab": str(self.path), "name": self.site.lab.name, "scenario": self.site.lab.scenario,
                "now": self.now, "now_text": format_time(self.now), "vms": vms}

    def _site_of(self, vm: VM) -> str:
        if vm.cloud:
            return self.site.clouds()[vm.cloud][0].name
        return vm.region or vm.physical_site

    def _policy_public(self, pol: dict) -> dict:
        return {"target": pol["target"], "target_kind": pol["target_kind"],
                "storage_account": pol["storage_account"], "frequency": pol["frequency"],
                "retention_h": pol["retention_h"], "app_consistent_h": pol["app_consistent_h"],
                "encrypt": bool(pol["encrypt"]), "start": pol["start"]}

    def resources(self) -> dict:
        """The vault's setup: servers, agents, clouds and their protection, networks, links."""
        servers = {r["name"]: r for r in self.db.query("SELECT * FROM servers")}
        agents = {r["host"] for r in self.db.query("SELECT host FROM agents")}
        prot = {r["cloud"]: r for r in self.db.query("SELECT * FROM cloud_protection")}
        out = {"vault_region": self.site.vault_region(), "servers": [], "hosts": [], "clouds": [],
               "networks": [], "mappings": [], "storage_accounts": [], "links": []}
        for s in self.site.vmm_servers:
            reg = servers.get(s.name)
            out["servers"].append({"name": s.name, "kind": "VMM server", "registered": reg is not None,
                                   "key_file": reg["key_file"] if reg else ""})
            out["hosts"] += [{"name": h.name, "server": s.name, "agent_installed": h.name in agents}
                             for h in s.hosts]
            out["clouds"] += [{"name": c.name, "server": s.name, "hosts": c.hosts,
                               "protection": self._policy_public(prot[c.name]) if c.name in prot else None}
                              for c in s.clouds]
            out["networks"] += [{"name": n.name, "side": "vmm", "place": s.name} for n in s.vm_networks]
        for p in self.site.physical_sites:
            out["servers"].append({"name": p.configuration_server, "kind": "configuration server",
                                   "registered": p.configuration_server in servers, "key_file": ""})
        for r in self.site.regions().values():
            out["networks"] += [{"name": n.name, "side": "azure", "place": r.name} for n in r.virtual_networks]
            out["storage_accounts"] += [{"name": a.name, "region": r.name, "redundancy": a.redundancy}
                                        for a in r.storage_accounts]
        out["mappings"] = list(self.db.query("SELECT source, target FROM network_mappings ORDER BY source"))
        out["links"] = list(self.db.query("SELECT source, target, mbps, state FROM links ORDER BY source, target"))
        return out

    def last_transaction(self, name: str) -> workload.TxScan:
        """Scan a VM's source disks for the last application transaction they hold."""
        vm = self.vm(name)
        return self._scan([self.disk_path(vm.name, i) for i in range(len(vm.disks))], vm)

    @staticmethod
    def _scan(paths: list[Path], vm: VM) -> workload.TxScan:
        scan = workload.TxScan()
        for p, d in zip(paths, vm.disks):
            s = workload.scan_file(p, d.size_bytes, workload.vm_tag(vm.name))
            scan.count += s.count
            if s.last_seq > scan.last_seq:
                scan.last_seq, scan.last_time = s.last_seq, s.last_time
        return scan

    # ---- jobs -----------------------------------------------------------------------------

    def jobs(self, limit: int = 100) -> list[dict]:
        return jobs.listing(self.db, self.now, limit)

    def job(self, job_id: int) -> dict:
        j = jobs.detail(self.db, job_id, self.now)
        if j is None:
            raise InvalidInput(f"no job {job_id}", "list jobs with: srlab jobs")
        return j

    def _check_complete_job(self, job_id) -> dict:
        try:
            job = self.job(int(job_id))
        except (TypeError, ValueError):
            raise InvalidInput(f"bad job id {job_id!r}") from None
        if job["state"] != "waiting for action":
            raise Refused(f"job {job['id']} is {job['state']}; only a job waiting for action can be completed")
        return job

    def complete_job(self, job_id: int, note: str = "") -> dict:
        """Complete the step a job waits on (a manual action, Complete test); the job carries on."""
        job = self._check_complete_job(job_id)
        jobs.complete(self.db, job["id"], self.now, self._perform_step, note)
        if note:
            self.event(self.now, "info", job["target"], f"{job['name']}: completed with note: {note}")
        return self.job(job["id"])

    def run_until_done(self, job_ids: list[int], limit: int = 6 * 3600) -> None:
        """Advance lab time until the jobs end (as a portal waits on its jobs)."""
        deadline = self.now + limit
        while self.now < deadline:
            running = [j for j in job_ids if self.job(j)["state"] == "in progress"]
            if not running:
                return
            due = jobs.next_due(self.db) or self.now + 1
            self.run(max(1, min(due, deadline) - self.now))

    # ---- time -----------------------------------------------------------------------------

    def run(self, seconds: int) -> dict:
        """Advance lab time by `seconds`, doing all the work that falls due, as fast as possible."""
        if seconds <= 0:
            raise InvalidInput("run needs a positive duration", "for example: srlab run --for 15m")
        if not self.acquire_clock():
            raise Refused(f"another srlab process (pid {self.clock_holder()}) is advancing this lab's clock",
                          "use that one, close it first, or watch with: srlab tui --observer")
        start = self.now
        end = start + seconds
        writes = 0
        t = start
        while t < end:
            nxt = min(end, t + _SLICE)
            for due in (jobs.next_due(self.db), self.replication.next_event()):
                if due is not None and t < due < nxt:
                    nxt = due
            self.replication.begin_slice()
            with store.transaction(self.db):
                writes += self._advance_workloads(t, nxt)
                self.replication.serve_links(t, nxt)
                store.set_meta(self.db, "now", nxt)
                jobs.advance(self.db, nxt, self._perform_step, self._job_failed)
                self.replication.tick(nxt)
                if nxt // _RPO_SAMPLE != t // _RPO_SAMPLE:
                    self._sample_rpo(nxt - nxt % _RPO_SAMPLE)
            self.replication.after_commit(nxt)
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
        """Guest writes first..last-1, each also appended to its disk's change log when tracked."""
        sizes = [d.size_bytes for d in vm.disks]
        paths = [self.disk_path(vm.name, i) for i in range(len(vm.disks))]
        item = self.replication.item(vm.name)
        tracked = bool(item and item["tracking"])
        fds = [os.open(p, os.O_RDWR) for p in paths]
        logs = [open(log_path(p), "ab") for p in paths] if tracked else []
        try:
            for n in range(first, last):
                t = lab_offset + int(workload.write_time(n, vm))
                w = workload.make_write(vm, n, t, sizes)
                os.pwrite(fds[w.disk], w.data, w.offset)
                self.source_fingerprints.written(paths[w.disk], w.offset, len(w.data))
                if tracked:
                    logs[w.disk].write(changelog.record(w.offset, w.data))
        finally:
            for fd in fds:
                os.close(fd)
            for f in logs:
                f.close()

    def guest_write(self, vm_name: str, disk: int, offset: int, data: bytes) -> None:
        """One write by a VM's guest outside its workload (benchmarks, drills): tracked like any other."""
        vm = self.vm(vm_name)
        path = self.disk_path(vm.name, disk)
        if offset < 0 or offset + len(data) > vm.disks[disk].size_bytes:
            raise InvalidInput(f"write at {offset} of {len(data)} bytes is outside disk {vm.disks[disk].name}")
        fd = os.open(path, os.O_RDWR)
        try:
            os.pwrite(fd, data, offset)
        finally:
            os.close(fd)
        self.source_fingerprints.written(path, offset, len(data))
        item = self.replication.item(vm.name)
        if item and item["tracking"]:
            with open(log_path(path), "ab") as f:
                f.write(changelog.record(offset, data))

    def _sample_rpo(self, t: int) -> None:
        for cloud in {self.vm(i["vm"]).cloud for i in self.replication.items("protected")}:
            rpos = [s["rpo_seconds"] for s in (self.item_status(v) for v in self.site.vms if v.cloud == cloud)
                    if s["rpo_seconds"] is not None]
            self.db.execute("INSERT OR REPLACE INTO rpo_samples VALUES (?, ?, ?)",
                            [cloud, t, max(rpos) if rpos else None])

    def rpo_history(self, cloud: str, limit: int = 1440) -> list[tuple[int, int | None]]:
        rows = self.db.execute("SELECT time, rpo FROM rpo_samples WHERE place=? ORDER BY time DESC LIMIT ?",
                               [cloud, limit]).fetchall()
        return [(t, r) for t, r in reversed(rows)]

    # ---- power ----------------------------------------------------------------------------

    def _check_power(self, name: str, action: str) -> VM:
        vm = self.vm(name)
        power = self.vm_row(vm.name)["power"]
        if action not in ("start", "stop", "shutdown"):
            raise InvalidInput(f"unknown power action {action!r}", "use start, stop or shutdown")
        if action == "start" and power == "running":
            raise Refused(f"{vm.name} is already running")
        if action != "start" and power == "off":
            raise Refused(f"{vm.name} is already off", f"start it with: srlab vm start {vm.name}")
        return vm

    def vm_power(self, name: str, action: str) -> str:
        """start | stop (turn off) | shutdown (guest shutdown). Returns the new power state."""
        vm = self._check_power(name, action)
        new = "running" if action == "start" else "off"
        how = {"start": "", "stop": "hard", "shutdown": "clean"}[action]
        with store.transaction(self.db):
            self.db.execute(
                "UPDATE vms SET power=?, last_shutdown=CASE WHEN ?='' THEN last_shutdown ELSE ? END WHERE name=?",
                [new, how, how, vm.name],
            )
            word = {"start": "started", "stop": "turned off", "shutdown": "shut down"}[action]
            self.event(self.now, "info", vm.name, f"VM {word}")
        return new

    # ---- what is allowed now --------------------------------------------------------------

    @staticmethod
    def actions(subject: str) -> tuple[str, ...]:
        """The actions Lab.allowed() judges for a kind of subject: vm, server, host, cloud,
        network, link or job (what a UI offers on a row of that kind)."""
        return ACTIONS_BY_SUBJECT.get(subject, ())

    def allowed(self, action: str, subject=None) -> str | None:
        """None if `action` on `subject` is allowed now, else why not (the same checks the commands use)."""
        checks = {
            "register_server": self._check_register_server,
            "install_agent": self._check_install_agent,
            "configure_cloud": self._check_cloud_basics,
            "map_network": lambda s: self._check_map_network(*s),
            "unmap_network": self._check_unmap_network,
            "protect": self._check_protect,
            "unprotect": lambda s: self._check_item_action("unprotect", s),
            "set_target": lambda s: self._check_item_action("set_target", s),
            "complete_job": self._check_complete_job,
            "vm_start": lambda s: self._check_power(s, "start"),
            "vm_stop": lambda s: self._check_power(s, "stop"),
            "vm_shutdown": lambda s: self._check_power(s, "shutdown"),
            "set_link": lambda s: self._check_set_link(*(s or (None, None)), mbps=1, state=None),
        }
        try:
            checks[action](subject)
        except LabError as e:
            return e.message
        return None

    # ---- job steps: what each step does when it completes ----------------------------------

    def _perform_step(self, kind: str, step: int, target: str, data: dict, t: int, job_id: int) -> None:
        if kind == "register_server":
            if step == 0 and self._registered(target):
                raise Refused(f"{target} is already registered")
            if step == 1:
                self.db["servers"].insert({"name": target, "kind": "vmm", "registered_at": t, "key_file": ""})
            if step == 2:
                # The seed's DataEncryptionCertificate: needed to fail over encrypted data.
                key = Path("keys") / f"{slug(target)}-DataEncryptionCertificate.key"
                changelog.write_durable(self.path / key, AESGCM.generate_key(bit_length=256))
                os.chmod(self.path / key, 0o600)
                self.db.execute("UPDATE servers SET key_file=? WHERE name=?", [str(key), target])
            if step == 3:
                self.event(t, "info", target, "server registered with the vault")
        elif kind == "install_agent":
            if step == 2:
                self.db["agents"].insert({"host": target, "installed_at": t})
                self.event(t, "info", target, "Recovery Services agent installed")
        elif kind == "configure_cloud":
            if step == 0:
                problems = self._cloud_problems(target)
                problems = [p for p in problems if "already being configured" not in p]
                if problems:
                    raise Refused(problems[0])
            if step == 2:
                data = {**data, "configured_at": t}
                self.db["cloud_protection"].insert(data, replace=True)
                vm = next((v for v in self.site.vms if v.cloud == target), None)
                source = vm.location if vm else target
                # A link the site file did not describe gets a default 100 Mbps.
                self.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, 100, 'up')", [source, data["target"]])
                self.event(t, "info", target, f"protection configured: replicate to {data['target']} "
                                              f"every {data['frequency']}s, keep {data['retention_h']} h")
        elif kind == "enable_protection":
            self._enable_step(step, target, t)
        elif kind == "finalize_protection":
            if step == 2 and self.protection_state(target) == "finalizing protection":
                self.db.execute("UPDATE items SET state='protected', failover_state='Ready' WHERE vm=?", [target])
                self.event(t, "info", target, "protected: delta replication running")
        elif kind == "disable_protection":
            item = self.replication.item(target)
            if step == 0:
                self.replication.stop(target)
            elif step == 1:
                self.replication.remove_replica(item)
            elif step == 2:
                self.db.execute("DELETE FROM items WHERE vm=?", [target])
                self.event(t, "info", target, "protection disabled; replica removed")

    def _enable_step(self, step: int, vm_name: str, t: int) -> None:
        item = self.replication.item(vm_name)
        if item is None:
            raise Refused(f"{vm_name} is no longer being protected")
        if step == 0:
            problems = rules.protection_problems(self.vm(vm_name), item["target_kind"] == "azure",
                                                 item["target_name"])
            if problems:
                raise Refused(str(problems[0]))
        elif step == 1:
            if item["target_kind"] == "azure":
                pol = self.replication.policy(vm_name)
                if pol["storage_account"] not in self.site.storage_accounts():
                    raise Refused(f"storage account {pol['storage_account']} is not reachable")
            (self.path / item["store"]).mkdir(parents=True, exist_ok=True)
        elif step == 2:
            self.replication.create_replica(item, t)
        elif step == 3:
            # Replication.tick starts initial replication at this time ("now" or the policy's HH:MM).
            start = rules.next_start_time(t, self.replication.policy(vm_name)["start"])
            self.db.execute("UPDATE items SET state='initial replication pending', start_at=? WHERE vm=?",
                            [start, vm_name])

    def _job_failed(self, kind: str, target: str, t: int, error: str) -> None:
        self.event(t, "error", target, f"job failed: {error}")
        if kind == "enable_protection":
            # The VM goes back to not protected; nothing half-made stays behind.
            item = self.replication.item(target)
            if item:
                shutil.rmtree(self.path / item["store"], ignore_errors=True)
                self.db.execute("DELETE FROM items WHERE vm=?", [target])


def _insert_event(db, time: int, level: str, subject: str, message: str) -> None:
    db["events"].insert({"time": time, "level": level, "subject": subject, "message": message})
