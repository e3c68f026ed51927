"""Protected items: enable and disable protection, target settings, recovery points, proof.

A mixin of engine.Lab (see engine.setup for the pattern).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from . import jobs, rules, store
from .disks import fingerprint
from .errors import InvalidInput, Refused
from .clock import format_time
from .model import VM, slug
from .replication import replica


class Protection:
    # ---- protection -----------------------------------------------------------------------

    def _check_protect(self, name: str, target_size: str | None = None, target_name: str | None = None,
                       nic: str | None = None) -> dict:
        vm = self._check_item_action("protect", name)
        if not vm.cloud:
            raise Refused(f"{vm.name} is not in a VMM cloud; srlab protects VMs in VMM clouds so far",
                          "Azure-to-Azure and physical-server protection are not built yet")
        pol = next(self.db.query("SELECT * FROM cloud_protection WHERE cloud=?", [vm.cloud]), None)
        if pol is None:
            raise Refused(f"cloud {vm.cloud} is not configured for protection",
                          f"configure it first: srlab cloud configure {vm.cloud!r} --target azure ...")
        to_azure = pol["target_kind"] == "azure"
        problems = [str(p) for p in rules.protection_problems(vm, to_azure, target_name)]
        size = target_size or rules.pick_target_size(vm)
        if to_azure:
            if size is None:
                problems.append(f"no target size fits {vm.cpus} CPUs and {rules.vm_memory_mb(vm)} MB — "
                                f"reduce the VM or pick a size with --target-size")
            elif msg := rules.target_size_problem(vm, size):
                problems.append(msg)
        if nic and nic not in [n.name for n in vm.nics]:
            problems.append(f"{vm.name} has no NIC named {nic!r} (NICs: {', '.join(n.name for n in vm.nics)})")
        if self._running_job("enable_protection", vm.name):
            problems.append(f"protection is already being enabled for {vm.name}")
        if problems:
            raise Refused(f"cannot enable protection for {vm.name}:\n  - " + "\n  - ".join(problems),
                          "fix the VM or the options above; nothing was changed")
        store_root = pol["storage_account"] if to_azure else pol["target"]
        return {"vm": vm.name, "state": "enabling protection", "target_kind": pol["target_kind"],
                "target": pol["target"], "store": str(Path("storage") / slug(store_root) / slug(vm.name)),
                "target_name": target_name or vm.name, "target_size": (size or "") if to_azure else "",
                "nic": rules.chosen_nic(vm, nic), "enabled_at": self.now}

    def protect(self, names: list[str], target_size: str | None = None, target_name: str | None = None,
                nic: str | None = None) -> list[int]:
        """Enable protection: one 'Enable protection' job per VM. All are checked before any starts."""
        if target_name and len(names) > 1:
            raise InvalidInput("--target-name applies to one VM at a time")
        items = [self._check_protect(n, target_size, target_name, nic) for n in names]
        ids = []
        with store.transaction(self.db):
            for item in items:
                self.db["items"].insert(item)
                ids.append(jobs.create(self.db, self.now, "enable_protection", item["vm"]))
                self.event(self.now, "info", item["vm"], "enable protection started")
        return ids

    def unprotect(self, names: list[str]) -> list[int]:
        """Disable protection: replication stops, the replica and its points are removed."""
        vms = [self._check_item_action("unprotect", n) for n in names]
        ids = []
        with store.transaction(self.db):
            for vm in vms:
                self.db.execute("UPDATE items SET state='disabling protection' WHERE vm=?", [vm.name])
                ids.append(jobs.create(self.db, self.now, "disable_protection", vm.name))
                self.event(self.now, "info", vm.name, "disable protection started")
        return ids

    def _check_set_target(self, name: str, size: str | None, target_name: str | None, nic: str | None) -> VM:
        vm = self._check_item_action("set_target", name)
        item = self.replication.item(vm.name)
        if size and item["target_kind"] != "azure":
            raise Refused("target sizes apply to Azure targets only")
        if size and (msg := rules.target_size_problem(vm, size)):
            raise Refused(msg)
        if target_name is not None and item["target_kind"] == "azure" and not rules.azure_name_ok(target_name):
            raise InvalidInput(f"{target_name!r} is not a valid Azure VM name",
                               "1-63 letters, digits and hyphens, starting and ending with a letter or digit")
        if nic and nic not in [n.name for n in vm.nics]:
            raise InvalidInput(f"{vm.name} has no NIC named {nic!r}")
        if not (size or target_name or nic):
            raise InvalidInput("nothing to change", "give --size, --name and/or --nic")
        return vm

    def set_target(self, name: str, size: str | None = None, target_name: str | None = None,
                   nic: str | None = None) -> dict:
        vm = self._check_set_target(name, size, target_name, nic)
        with store.transaction(self.db):
            self.db.execute("UPDATE items SET target_size=COALESCE(?, target_size), "
                            "target_name=COALESCE(?, target_name), nic=COALESCE(?, nic) WHERE vm=?",
                            [size, target_name, nic, vm.name])
            self.event(self.now, "info", vm.name, "target settings changed")
        return self.item_status(vm)

    def _check_item_action(self, action: str, name: str) -> VM:
        vm = self.vm(name)
        reason = rules.item_action_reason(action, vm.name, self.protection_state(vm.name))
        if reason:
            raise Refused(reason)
        return vm

    # ---- recovery points and proof ----------------------------------------------------------

    def points(self, name: str) -> list[dict]:
        vm = self.vm(name)
        return [{"id": r["id"], "time": r["time"], "time_text": format_time(r["time"]), "kind": r["kind"],
                 "size": r["size"], "last_transaction": r["last_seq"], "arrived": r["arrived"]}
                for r in self.replication.point_rows(vm.name)]

    def _point(self, vm: VM, point: str | int | None) -> dict:
        rows = self.replication.point_rows(vm.name)
        if not rows:
            raise Refused(f"{vm.name} has no recovery points yet ({self.protection_state(vm.name)})",
                          "protect it and let lab time pass: srlab run --for 15m")
        if point in (None, "latest"):
            return rows[-1]
        if point == "latest-app":
            app = [r for r in rows if r["kind"] == "app-consistent"]
            if not app:
                raise Refused(f"{vm.name} has no app-consistent recovery point")
            return app[-1]
        try:
            pid = int(point)
        except (TypeError, ValueError):
            raise InvalidInput(f"bad recovery point {point!r}", "give a point id, 'latest' or 'latest-app'") from None
        row = next((r for r in rows if r["id"] == pid), None)
        if row is None:
            raise InvalidInput(f"{vm.name} has no recovery point {pid}",
                               f"retained points: {', '.join(str(r['id']) for r in rows)}")
        return row

    def build_at_point(self, name: str, point: str | int | None, out_dir: Path) -> tuple[dict, list[Path]]:
        """Write the VM's disks as they were at a recovery point into out_dir, one file per disk."""
        vm = self.vm(name)
        item = self.replication.item(vm.name)
        if item is None:
            self._point(vm, point)  # says why there is nothing to build
        # shared: the clock's process may be folding expired points into this store right now
        with replica.store_lock(self.replication.store_dir(item), exclusive=False):
            row = self._point(vm, point)
            rows = [r for r in self.replication.point_rows(vm.name)
                    if (r["time"], r["id"]) <= (row["time"], row["id"])]
            key = self.replication.key_for(vm.name)
            labels = self.replication.labels(vm.name)
            out = []
            for i, d in enumerate(vm.disks):
                dest = Path(out_dir) / self.disk_path(vm.name, i).name
                replica.build_disk(self.replication.base_path(item, i), [self.path / r["dir"] for r in rows],
                                   i, dest, d.size_bytes, key, labels[i])
                out.append(dest)
        return row, out

    def verify(self, name: str, point: str | int | None = None) -> dict:
        """Build the disks at a point in a scratch folder and compare with the point's fingerprints."""
        vm = self.vm(name)
        scratch = self.path / ".scratch" / f"verify-{os.getpid()}"
        shutil.rmtree(scratch, ignore_errors=True)
        try:
            row, paths = self.build_at_point(vm.name, point, scratch)
            expected = json.loads(row["fingerprints"])
            disks = []
            for i, (p, d) in enumerate(zip(paths, vm.disks)):
                got = fingerprint(p, d.size_bytes)
                disks.append({"disk": d.name, "expected": expected[i], "actual": got, "identical": got == expected[i]})
            scan = self._scan(paths, vm)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return {"vm": vm.name, "point": row["id"], "time": row["time"], "kind": row["kind"],
                "identical": all(d["identical"] for d in disks), "disks": disks,
                "last_transaction": scan.last_seq, "expected_last_transaction": row["last_seq"]}

    def export(self, name: str, point: str | int | None, out_dir: str | Path) -> dict:
        out_dir = Path(out_dir)
        vm = self.vm(name)
        clash = [self.disk_path(vm.name, i).name for i in range(len(vm.disks))
                 if (out_dir / self.disk_path(vm.name, i).name).exists()]
        if clash:
            raise Refused(f"{out_dir} already holds {', '.join(clash)}", "choose an empty --out folder")
        out_dir.mkdir(parents=True, exist_ok=True)
        row, paths = self.build_at_point(vm.name, point, out_dir)
        return {"vm": vm.name, "point": row["id"], "time": row["time"], "files": [str(p) for p in paths]}
