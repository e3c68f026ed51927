"""Failover, commit, failback and reverse replication (seed 004 STEP 3, seed 001, seed 000).

Every operation asks rules.operation_reason() over the item's plain facts first; the job kinds
are declared at the end of the module, each step beside what it does.

The VM at the recovery side is real: its disks are built from a recovery point into
`recovery/<place>/<name>/` (table `recovered`), it runs its workload, and its transactions go on
from the last one its disks hold. Failing back compares fixed chunks of its disks with the
primary's by checksum and sends only the chunks that differ, as LZ4 frames (encrypted where the
policy encrypts). Every failover job ends with a report: the point used, the last transaction
recovered, what the source had written after it, and the RTO.

Simplifications, on purpose: the last log of a planned failover (and of `--shutdown-sync`) is
delivered by the job step itself rather than queued behind the link's bandwidth; "latest" and
"latest processed" name the same point, since every log that arrives is processed at once.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from . import azure, faults, guests, jobs, protection, rules, scenarios, setup, states, store, vmware
from .clock import format_duration, format_time
from .disks import FP_CHUNK, chunk_digests, fingerprint
from .errors import Damaged, InvalidInput, Refused
from .jobs import Run, Step
from .model import VM, slug
from .replication import changelog, replica
from .replication.cycle import log_path
from .states import Failover, Protection

KINDS = ("test", "planned", "unplanned")
SYNC_OPTIONS = {"before": "Synchronize data before failover (minimize downtime)",
                "during": "Synchronize data during failover only (minimize sync)"}

# ---- facts and checks ------------------------------------------------------------------------


def check(lab, op: str, name: str, key_file: str | None = None, need_key: bool = False,
          via_plan: bool = False) -> VM:
    """Raise with the rules table's reason if `op` is not allowed on the VM now. `need_key`:
    the command itself runs now, so an encrypted replica needs the key file (a UI asking
    whether to offer the action leaves it out: its dialog asks for the file)."""
    vm = lab.vm(name)
    if key_file is not None:
        _check_key_file(lab, vm, key_file)
    facts = protection.item_facts(lab, vm, key_file is not None or not need_key, via_plan)
    reason = rules.operation_reason(op, facts)
    if reason:
        raise Refused(reason)
    return vm


def _check_key_file(lab, vm: VM, key_file: str) -> None:
    path = Path(key_file)
    if not path.is_absolute() and not path.exists():
        path = lab.path / path  # as `srlab resources` shows it: relative to the lab
    try:
        given = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read the key file {key_file}: {e.strerror}") from None
    if given != setup.encryption_key(lab, vm):
        raise Refused(f"{key_file} is not the data-encryption key of {vm.name}'s VMM server",
                      "give the key file made when the server was registered (srlab resources shows it)")


def _kind_op(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidInput(f"unknown failover kind {kind!r}", f"use one of: {', '.join(KINDS)}")
    return f"{kind}_failover"


def target_networks(lab, item: dict) -> list[str]:
    """Networks a VM can be attached to at its recovery side."""
    if item["target_kind"] == "region":
        return [r["name"] for r in azure.resources(lab, item["target"], "virtual network")]
    if scenarios.TARGETS[item["target_kind"]].picks_size:
        region = lab.site.regions().get(item["target"])
        return [n.name for n in region.virtual_networks] if region else []
    return [n.name for s in lab.site.vmm_servers for n in s.vm_networks]


def _network(lab, vm: VM, item: dict, requested: str | None, test: bool) -> str:
    if requested in (None, ""):
        if test:
            return ""  # isolated: a test failover must not meet production
        if item["target_kind"] == "region":  # the target side's network (mapped at enable time)
            return azure.target_side(lab, item)["network"]
        nic = next((n for n in vm.nics if n.name == item["nic"]), None)
        row = lab.db.execute("SELECT target FROM network_mappings WHERE source=?",
                             [nic.network if nic else ""]).fetchone()
        return row[0] if row else ""
    if requested.lower() == "none":
        return ""
    names = target_networks(lab, item)
    if requested not in names:
        raise InvalidInput(f"no network named {requested!r} at {vm.name}'s recovery side",
                           f"networks: {', '.join(names) or 'none'}, or none (isolated)")
    return requested


# ---- commands -----------------------------------------------------------------------------------


def failover(lab, names: list[str], kind: str, point: str | None = None, network: str | None = None,
             shutdown_sync: bool = False, sync: str | None = None, key_file: str | None = None,
             via_plan: bool = False) -> list[int]:
    """Start a failover of each VM (all are checked before any starts). A planned failover of a
    VM that runs at the recovery side is its failback, with a sync option."""
    op = _kind_op(kind)
    if sync is not None and sync not in SYNC_OPTIONS:
        raise InvalidInput(f"unknown sync option {sync!r}", "use --sync before or --sync during")
    plans = []
    for name in names:
        vm = check(lab, op, name, key_file, need_key=True, via_plan=via_plan)
        item = states.item(lab.db, vm.name)
        # Azure -> Azure goes both ways alike; a physical server fails back to VMware the same way
        back = item["active"] == "recovery" and item["target_kind"] not in ("region", "vmware")
        if kind == "planned" and point not in (None, "latest"):
            raise InvalidInput("a planned failover always uses the latest data (no data loss); "
                               "--point applies to test and unplanned failovers")
        if sync is not None and not back:
            raise InvalidInput("--sync applies to a failback (a planned failover of a VM that runs at the "
                               "recovery side)")
        if shutdown_sync and kind != "unplanned":
            raise InvalidInput("--shutdown-sync applies to unplanned failovers")
        if not back:
            protection.find_point(lab, vm, point)  # says now if the point does not exist
        data = {"point": point or "latest", "network": _network(lab, vm, item, network, kind == "test"),
                "shutdown_sync": shutdown_sync}
        # the job to run, and the move the item makes as it starts
        if back:
            job_kind = f"failback_{sync or 'before'}"
            move = (Protection.FAILED_OVER if item["state"] == Protection.REVERSE else None, Failover.FAILBACK, {})
        elif kind == "test":  # replication goes on untouched
            job_kind, move = "test_failover", (None, Failover.TEST, {})
        else:
            job_kind, move = f"{kind}_failover", (Protection.FAILED_OVER, Failover.FAILOVER, {"last_failover": kind})
        plans.append((vm, job_kind, data, move))
    if len({p[0].name for p in plans}) < len(plans):
        raise InvalidInput("a VM is named twice")
    ids = []
    with store.transaction(lab.db):
        for vm, job_kind, data, (to, fo, columns) in plans:
            states.move(lab.db, vm.name, to, fo, **columns)
            ids.append(jobs.create(lab.db, lab.now, job_kind, vm.name, data))
            lab.event(lab.now, "info", vm.name, f"{jobs.KINDS[job_kind].name} started")
    return ids


def change_point(lab, name: str, point: str, key_file: str | None = None) -> int:
    vm = check(lab, "change_point", name, key_file, need_key=True)
    protection.find_point(lab, vm, point)
    return jobs.create(lab.db, lab.now, "change_point", vm.name, {"point": point})


def commit(lab, names: list[str]) -> list[int]:
    vms = [check(lab, "commit", n) for n in names]
    with store.transaction(lab.db):
        return [jobs.create(lab.db, lab.now, "commit", vm.name) for vm in vms]


def reprotect(lab, names: list[str], to_vmware: vmware.Failback | None = None) -> list[int]:
    """Reverse replicate: after a failback's commit, primary -> recovery again from an initial
    replication; after a VMM -> VMM failover's commit, recovery cloud -> primary cloud; a physical
    server in Azure towards a VMware VM (`to_vmware`: the process server, master target, datastore)."""
    vms = [check(lab, "reprotect", n) for n in names]
    given = to_vmware is not None and any(v is not None for v in to_vmware.__dict__.values())
    if given and not all(vm.physical_site for vm in vms):
        raise InvalidInput("--process-server, --master-target and --datastore apply to physical servers in Azure")
    failbacks = {vm.name: vmware.plan_failback(lab, vm, to_vmware or vmware.Failback())
                 for vm in vms if vm.physical_site}
    with store.transaction(lab.db):
        ids = []
        for vm in vms:
            item = states.item(lab.db, vm.name)
            committed = item["failover_state"] == Failover.COMMITTED
            if vm.name in failbacks:
                ids.append(jobs.create(lab.db, lab.now, "reprotect_vmware", vm.name, failbacks[vm.name]))
                continue
            kind = "reprotect_a2a" if item["target_kind"] == "region" else (
                "reverse_replicate" if committed else "reprotect")
            ids.append(jobs.create(lab.db, lab.now, kind, vm.name))
        return ids


# ---- the VMs at the recovery side ---------------------------------------------------------------


def recovered(lab, vm: str, role: str | None = None) -> list[dict]:
    q, args = "SELECT * FROM recovered WHERE vm=?", [vm]
    if role:
        q, args = q + " AND role=?", args + [role]
    return list(lab.db.query(q + " ORDER BY name", args))


def goes_home(lab, item: dict) -> bool:
    """An Azure VM's failover into its own region (after a reprotect): its own disks are rebuilt;
    a physical server's failover to VMware: its disks are built as the VMware VM's."""
    return (item["target_kind"] == "region" and item["target"] == lab.vm(item["vm"]).region
            or item["target_kind"] == "vmware")


def _build_home(lab, run: Run, item: dict) -> dict:
    """Rebuild the VM's own disks at the chosen point (built beside them, then each put in place
    by a rename); the VM stays off."""
    vm = lab.vm(run.target)
    work = lab.disk_path(vm.name, 0).parent / f".failover-{run.id}"
    shutil.rmtree(work, ignore_errors=True)
    point, built = protection.build_at_point(lab, vm.name, run.data.get("point"), work)
    if item["target_kind"] == "vmware":  # the server's disks are the VMware VM's from now on
        paths = vmware.vmware_disks(lab, vm)
    else:
        paths = [lab.disk_path(vm.name, i) for i in range(len(vm.disks))]
    for b, p in zip(built, paths):
        os.replace(b, p)
        lab.source_fingerprints.forget(p)
    changelog.fsync_dir(paths[0].parent)
    shutil.rmtree(work, ignore_errors=True)
    scan = guests.scan_disks(paths, vm)
    lab.db.execute("UPDATE vms SET power='off' WHERE name=?", [vm.name])
    fps = [fingerprint(p, d.size_bytes) for p, d in zip(paths, vm.disks)]
    _report(lab, run, point=point["id"], point_time=point["time"], point_kind=point["kind"],
            last_transaction=scan.last_seq, recovered_vm=vm.name, disks=[str(p) for p in paths],
            disk_fingerprints=fps, verified=fps == json.loads(point["fingerprints"]), placement=_placement(lab, item))
    return point


def _placement(lab, item: dict) -> dict:
    """Where an Azure VM lands: the target side's resource group, network, subnet, availability set."""
    if item["target_kind"] != "region":
        return {}
    side = azure.target_side(lab, item)
    return {k: side[k] for k in ("region", "resource_group", "network", "subnet", "availability_set")}


def _build(lab, run: Run, role: str) -> dict:
    """Build the VM's disks at the chosen point into the recovery side; the VM stays off."""
    vm = lab.vm(run.target)
    item = states.item(lab.db, vm.name)
    if role == "failover" and goes_home(lab, item):
        return _build_home(lab, run, item)
    name = (item["target_name"] or vm.name) + ("-test" if role == "test" else "")
    before = next(lab.db.query("SELECT network FROM recovered WHERE name=?", [name]), {"network": ""})
    folder = Path("recovery") / slug(item["target"]) / slug(name)
    shutil.rmtree(lab.path / folder, ignore_errors=True)
    point, paths = protection.build_at_point(lab, vm.name, run.data.get("point"), lab.path / folder)
    scan = guests.scan_disks(paths, vm)
    built = [fingerprint(p, d.size_bytes) for p, d in zip(paths, vm.disks)]
    lab.db.execute("DELETE FROM recovered WHERE name=?", [name])
    place = _placement(lab, item)
    network = run.data.get("network", before["network"])  # a change of point keeps the VM's network
    if place:  # another network than the target side's (a test's): its first subnet; no availability set for a test
        nets = azure.subnets(lab, item["target"], network) if network else []
        place.update(network=network, subnet=place["subnet"] if place["subnet"] in nets else next(iter(nets), ""),
                     availability_set=place["availability_set"] if role == "failover" else "")
    lab.db["recovered"].insert({"name": name, "vm": vm.name, "role": role, "place": item["target"],
                                "network": network, "dir": str(folder), "point": point["id"],
                                "power": "off", "seq_offset": scan.last_seq, "writes_done": scan.last_seq,
                                "created": run.t, **{k: place.get(k, "") for k in
                                                     ("resource_group", "subnet", "availability_set")}})
    _report(lab, run, point=point["id"], point_time=point["time"], point_kind=point["kind"],
            last_transaction=scan.last_seq, recovered_vm=name, disks=[str(p) for p in paths],
            disk_fingerprints=built, verified=built == json.loads(point["fingerprints"]),
            **({"placement": place} if place else {}))
    return point


def _remove_recovered(lab, row: dict) -> None:
    lab.db.execute("DELETE FROM recovered WHERE name=?", [row["name"]])
    shutil.rmtree(lab.path / row["dir"], ignore_errors=True)


def _report(lab, run: Run, **values) -> None:
    """Add to the job's report (what the failover kept, lost and cost)."""
    row = lab.db.execute("SELECT report FROM jobs WHERE id=?", [run.id]).fetchone()
    report = json.loads(row[0] or "{}")
    report.update(values)
    lab.db.execute("UPDATE jobs SET report=? WHERE id=?", [json.dumps(report), run.id])


def _job_report(lab, run: Run) -> dict:
    return json.loads(lab.db.execute("SELECT report FROM jobs WHERE id=?", [run.id]).fetchone()[0] or "{}")


def source_copy(lab, vm: str) -> tuple[str, str]:
    """(table, name) of the copy replication reads: the VM itself, or after an Azure -> Azure
    reprotect its copy running in the other region."""
    row = lab.db.execute("SELECT r.name FROM items i JOIN recovered r ON r.vm = i.vm AND r.role = 'failover' "
                         "WHERE i.vm=? AND i.active='recovery' AND i.target_kind IN ('region', 'vmware')",
                         [vm]).fetchone()
    return ("recovered", row[0]) if row else ("vms", vm)


def _copy_row(lab, vm: str) -> dict:
    table, name = source_copy(lab, vm)
    return next(lab.db.query(f"SELECT * FROM {table} WHERE name=?", [name]))


def _source_row(lab, item: dict) -> dict:
    """The row of the copy a failover came from: while commit is pending (a change of point) the
    workload runs at the target already, so the source is the other side."""
    if item["failover_state"] == Failover.COMMIT_PENDING and item["target_kind"] in ("region", "vmware"):
        if goes_home(lab, item):
            return next(lab.db.query("SELECT * FROM recovered WHERE vm=? AND role='failover'", [item["vm"]]))
        return lab.vm_row(item["vm"])
    if item["failover_state"] == Failover.COMMIT_PENDING:
        return lab.vm_row(item["vm"])
    return _copy_row(lab, item["vm"])


def _started(lab, run: Run, role: str) -> None:
    """The recovered VM starts: the RTO ends here; the report says what was lost."""
    item = states.item(lab.db, run.target)
    home = role == "failover" and goes_home(lab, item)
    if home:  # its own disks, its transactions going on from the last one they hold
        last = _job_report(lab, run)["last_transaction"]
        lab.db.execute("UPDATE vms SET power='running', run_seconds=0, rate_since=0, rate_base=0, seq_offset=?, "
                       "writes_done=? WHERE name=?", [last, last, run.target])
        vmware_vm = item["target_kind"] == "vmware"
        row = {"name": run.target, "place": item["target"] if vmware_vm else lab.vm(run.target).region}
    else:
        row = recovered(lab, run.target, role)[0]
        lab.db.execute("UPDATE recovered SET power='running' WHERE name=?", [row["name"]])
    report = _job_report(lab, run)
    src = _source_row(lab, item)
    source_last = report.get("source_last_transaction", src["writes_done"])
    lost = max(0, source_last - report["last_transaction"])
    stopped = report.get("source_stopped_at", run.t)
    _report(lab, run, source_last_transaction=source_last, transactions_lost=lost,
            data_loss_seconds=max(0, stopped - report["point_time"]) if lost else 0,
            rto_seconds=run.t - lab.db.execute("SELECT started FROM jobs WHERE id=?", [run.id]).fetchone()[0])
    lab.event(run.t, "info", run.target, f"{row['name']} is running at {row['place']} from recovery point "
                                         f"{report['point']} (last transaction {report['last_transaction']}, "
                                         f"{lost} lost)")


# ---- the data path home: compare chunks, send what differs ---------------------------------------


SUB = 4096  # within a chunk whose checksums differ, only the 4 KiB blocks that differ travel


def sync_disks(src: Path, dst: Path, size: int, key: bytes | None, label: str) -> dict:
    """Make dst's data equal to src's, sending only what differs: 64 KiB chunks are compared by
    checksum, and in a chunk that differs only its differing 4 KiB blocks are sent, as one LZ4
    frame (sealed like a replication log). Returns bytes compared and sent."""
    a, b = chunk_digests(src, size), chunk_digests(dst, size)
    differ = sorted(i for i in a.keys() | b.keys() if a.get(i) != b.get(i))
    buf = bytearray()
    with open(src, "rb") as fs, open(dst, "rb") as fd:
        for i in differ:
            off = i * FP_CHUNK
            n = min(FP_CHUNK, size - off)
            new = os.pread(fs.fileno(), n, off) if i in a else bytes(n)
            old = os.pread(fd.fileno(), n, off)
            for j in range(0, n, SUB):
                if new[j:j + SUB] != old[j:j + SUB]:
                    buf += changelog.record(off + j, new[j:j + SUB])
    blob = changelog.seal(bytes(buf), key, label)
    replica.apply_blob(dst, blob, key, label)
    return {"compared": (len(a) + len(b)) * FP_CHUNK, "chunks_differing": len(differ),
            "changed": len(buf), "sent": len(blob) if differ else 0}


def _sync_home(lab, run: Run, phase: str) -> None:
    """Send what differs from the recovered VM's disks to the primary VM's (which becomes the
    replica: it is turned off, and what its own copy wrote since the failover is discarded)."""
    vm = lab.vm(run.target)
    row = recovered(lab, vm.name, "failover")[0]
    if lab.vm_row(vm.name)["power"] == "running":
        lab.db.execute("UPDATE vms SET power='off', last_shutdown='hard' WHERE name=?", [vm.name])
        lab.event(run.t, "warning", vm.name, f"the primary copy was running beside {row['name']}: turned off; "
                                             "its own writes since the failover are overwritten")
    key = lab.replication.key_for(vm.name)
    total = {"compared": 0, "sent": 0, "chunks_differing": 0}
    for i, (src, d) in enumerate(zip(guests.recovered_disks(lab, row), vm.disks)):
        got = sync_disks(src, lab.disk_path(vm.name, i), d.size_bytes, key, f"{vm.name}/{d.name}")
        lab.source_fingerprints.forget(lab.disk_path(vm.name, i))
        for k in total:
            total[k] += got[k]
    report = _job_report(lab, run)
    report.setdefault("sync", {})[phase] = total
    _report(lab, run, sync=report["sync"])
    lab.event(run.t, "info", vm.name, f"{phase}: compared {total['compared']} bytes, sent {total['sent']}")


# ---- job steps ----------------------------------------------------------------------------------


def _prerequisites(lab, run: Run) -> None:
    if states.item(lab.db, run.target) is None:
        raise Refused(f"{run.target} is no longer protected")


def _create_test_vm(lab, run: Run) -> None:
    _build(lab, run, "test")


def _start_test_vm(lab, run: Run) -> None:
    _started(lab, run, "test")


def _test_completed(lab, run: Run) -> None:
    _report(lab, run, note=run.data.get("note", ""))


def _clean_up_test(lab, run: Run) -> None:
    for row in recovered(lab, run.target, "test"):
        _remove_recovered(lab, row)
    states.move(lab.db, run.target, failover=Failover.READY)
    lab.event(run.t, "info", run.target, "test failover completed; the test VM and its disks are deleted")


def _test_failed(lab, run: Run) -> None:
    for row in recovered(lab, run.target, "test"):
        _remove_recovered(lab, row)
    if states.item(lab.db, run.target):
        states.move(lab.db, run.target, failover=Failover.READY)


jobs.define("test_failover", "Test failover", [
    Step("Prerequisites check for test failover", 20, _prerequisites),
    Step("Create the test virtual machine from the recovery point", 60, _create_test_vm),
    Step("Start the test virtual machine", 30, _start_test_vm),
    Step("Complete test", None, _test_completed),
    Step("Clean up the test virtual machine", 30, _clean_up_test),
], on_fail=_test_failed)


def _shut_down_and_sync(lab, run: Run) -> None:
    """Shut the source down, ship its last log and apply it: the newest point holds every write."""
    vm = lab.vm(run.target)
    table, name = source_copy(lab, vm.name)
    if _copy_row(lab, vm.name)["power"] == "running":
        lab.db.execute(f"UPDATE {table} SET power='off' WHERE name=?", [name])
        if table == "vms":
            lab.db.execute("UPDATE vms SET last_shutdown='clean' WHERE name=?", [name])
        lab.event(run.t, "info", name, "VM shut down for failover")
    rep = lab.replication
    rep.freeze(vm.name, run.t, app=True)  # shut down cleanly: the point is app-consistent
    _process_all(lab, vm.name, run.t)
    fps = [fingerprint(lab.replicated_disk(vm.name, i), d.size_bytes) for i, d in enumerate(vm.disks)]
    _report(lab, run, source_stopped_at=run.t, source_last_transaction=_copy_row(lab, vm.name)["writes_done"],
            source_fingerprints=fps)
    _stop_forward(lab, vm.name)


def _process_all(lab, vm: str, at: int) -> None:
    """Deliver every shipment still queued (the cache's batches, for an Azure VM) at once."""
    for t in list(lab.db.query("SELECT * FROM transfers WHERE vm=? ORDER BY id", [vm])):
        lab.replication.arrive(t, at)


def _stop_forward(lab, vm: str) -> None:
    lab.replication.stop(vm)
    lab.db.execute("UPDATE items SET next_cycle=NULL, next_app=NULL WHERE vm=?", [vm])
    lab.db.execute("UPDATE recovered SET tracking=0 WHERE vm=? AND role='failover'", [vm])  # an A2A copy's


def _create_vm(lab, run: Run) -> None:
    point = _build(lab, run, "failover")
    report = _job_report(lab, run)
    if "source_fingerprints" in report:  # the source was shut down and synced: prove nothing was lost
        _report(lab, run, zero_data_loss_proven=report["disk_fingerprints"] == report["source_fingerprints"]
                and point["last_seq"] == report["source_last_transaction"])


def _start_vm(lab, run: Run) -> None:
    _started(lab, run, "failover")
    item = states.item(lab.db, run.target)  # Azure -> Azure goes both ways: to the other side
    states.move(lab.db, run.target, failover=Failover.COMMIT_PENDING,
                active="primary" if item["active"] == "recovery" else "recovery")


def _failover_failed(lab, run: Run) -> None:
    """Before the VM started at the recovery side: back to protected (replication was stopped
    only if the source was already shut down; the next enable restarts it)."""
    item = states.item(lab.db, run.target)
    for row in recovered(lab, run.target, "failover"):
        _remove_recovered(lab, row)
    if item and item["failover_state"] == Failover.FAILOVER:
        stopped = "" if item["tracking"] else ("replication was stopped by the failed failover: "
                                               "disable and enable protection to restart it")
        states.move(lab.db, run.target, Protection.PROTECTED, error=stopped)  # where it ran: still there


jobs.define("planned_failover", "Planned failover", [
    Step("Prerequisites check for failover", 20, _prerequisites),
    Step("Shut down the virtual machine", 60),
    Step("Synchronize the latest data", 30, _shut_down_and_sync),
    Step("Create the virtual machine at the recovery side", 60, _create_vm),
    Step("Start the virtual machine", 30, _start_vm),
], on_fail=_failover_failed)


def _unplanned_source(lab, run: Run) -> None:
    vm = lab.vm(run.target)
    facts = protection.item_facts(lab, vm)
    if run.data.get("shutdown_sync"):
        if facts.source_reachable and not facts.replication_problem:
            _shut_down_and_sync(lab, run)
            return
        why = "the source is unreachable" if not facts.source_reachable else f"{facts.replication_problem}"
        lab.event(run.t, "warning", run.target, f"{why}: failing over without its latest data")
    elif states.item(lab.db, vm.name)["target_kind"] in ("region", "vmware") and run.data.get("point") == "latest":
        # Latest (lowest RPO): Site Recovery first processes what waits in the cache, if it can reach it
        waiting = azure.cache_bytes(lab, vm.name)
        if waiting and facts.source_reachable:
            _process_all(lab, vm.name, run.t)
            lab.event(run.t, "info", vm.name, f"latest (lowest RPO): {waiting:,} bytes waiting in the cache "
                                              "processed into a recovery point first")
        elif waiting:
            lab.event(run.t, "warning", vm.name, f"the cache in {lab.replication.link_of(vm.name)[0]} cannot be "
                      f"reached: {waiting:,} bytes in it are lost; failing over to the latest processed point")
    _report(lab, run, source_stopped_at=run.t, source_last_transaction=_copy_row(lab, run.target)["writes_done"])
    _stop_forward(lab, run.target)


jobs.define("unplanned_failover", "Unplanned failover", [
    Step("Prerequisites check for failover", 20, _prerequisites),
    Step("Shut down the virtual machine and synchronize the latest data", 60, _unplanned_source),
    Step("Create the virtual machine at the recovery side", 60, _create_vm),
    Step("Start the virtual machine", 30, _start_vm),
], on_fail=_failover_failed)


def _stop_recovered(lab, run: Run) -> None:
    if goes_home(lab, states.item(lab.db, run.target)):  # an Azure VM back in its own region
        lab.db.execute("UPDATE vms SET power='off' WHERE name=?", [run.target])
        return
    for row in recovered(lab, run.target, "failover"):
        lab.db.execute("UPDATE recovered SET power='off' WHERE name=?", [row["name"]])


def _rebuild(lab, run: Run) -> None:
    _build(lab, run, "failover")


def _restart(lab, run: Run) -> None:
    _started(lab, run, "failover")


jobs.define("change_point", "Change recovery point", [
    Step("Shut down the virtual machine", 20, _stop_recovered),
    Step("Rebuild the disks from the recovery point", 60, _rebuild),
    Step("Start the virtual machine", 30, _restart),
])


def _commit(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    if item["target_kind"] == "vmware":  # a physical server back as a VMware VM: protection ends
        vmware.commit_failback(lab, run, item)
    elif item["active"] == "recovery" or item["target_kind"] == "region":
        # The VM runs on disks built from the point: the replica and its points are done with.
        lab.replication.remove_replica(item)
        states.move(lab.db, run.target, failover=Failover.COMMITTED)
        lab.event(run.t, "info", run.target, "failover committed; recovery points merged into the VM's disks")
    else:
        for row in recovered(lab, run.target, "failover"):
            _remove_recovered(lab, row)
        states.move(lab.db, run.target, failover=Failover.REVERSE_PENDING)
        lab.event(run.t, "info", run.target, "failback committed; the VM at the recovery side is deleted")


jobs.define("commit", "Commit", [
    Step("Commit the failover", 30, _commit),
    Step("Updating provider state", 10),
])


def _step_started(lab, run: Run) -> int:
    return lab.db.execute("SELECT s.started FROM job_steps s JOIN jobs j ON s.job = j.id AND s.idx = j.step "
                          "WHERE j.id=?", [run.id]).fetchone()[0]


def _shut_down_recovered(lab, run: Run) -> None:
    _report(lab, run, down_since=_step_started(lab, run))
    for row in recovered(lab, run.target, "failover"):
        lab.db.execute("UPDATE recovered SET power='off', tracking=0 WHERE name=?", [row["name"]])
        for p in guests.recovered_disks(lab, row):
            log_path(p).unlink(missing_ok=True)
    lab.db.execute("UPDATE items SET next_cycle=NULL WHERE vm=?", [run.target])


def _sync_before(lab, run: Run) -> None:
    _sync_home(lab, run, "synchronize before failover")


def _sync_last(lab, run: Run) -> None:
    _sync_home(lab, run, "synchronize the last changes")


def _sync_during(lab, run: Run) -> None:
    _sync_home(lab, run, "synchronize during failover")


def _start_home(lab, run: Run) -> None:
    """The primary VM starts on its synchronized disks, its transactions going on from the
    recovered VM's last one."""
    vm = lab.vm(run.target)
    row = recovered(lab, vm.name, "failover")[0]
    last = guests.scan_disks([lab.disk_path(vm.name, i) for i in range(len(vm.disks))], vm).last_seq
    start = lab.db.execute("SELECT started FROM jobs WHERE id=?", [run.id]).fetchone()[0]
    lab.db.execute("UPDATE vms SET power='running', run_seconds=0, rate_since=0, rate_base=0, seq_offset=?, "
                   "writes_done=? WHERE name=?",
                   [row["writes_done"], row["writes_done"], vm.name])
    fps_home = [fingerprint(lab.disk_path(vm.name, i), d.size_bytes) for i, d in enumerate(vm.disks)]
    fps_away = [fingerprint(p, d.size_bytes) for p, d in zip(guests.recovered_disks(lab, row), vm.disks)]
    _report(lab, run, recovered_vm=row["name"], last_transaction=last, source_last_transaction=row["writes_done"],
            transactions_lost=max(0, row["writes_done"] - last), identical=fps_home == fps_away,
            rto_seconds=run.t - start, downtime_seconds=run.t - _job_report(lab, run)["down_since"])
    states.move(lab.db, vm.name, failover=Failover.COMMIT_PENDING, active="primary")
    lab.event(run.t, "info", vm.name, f"running on the primary site again (last transaction {last})")


def _failback_failed(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    if item and item["failover_state"] == Failover.FAILBACK:
        for row in recovered(lab, run.target, "failover"):
            lab.db.execute("UPDATE recovered SET power='running' WHERE name=?", [row["name"]])
        states.move(lab.db, run.target, failover=Failover.COMMITTED)


jobs.define("failback_before", "Planned failover (failback)", [
    Step("Prerequisites check for failover", 20, _prerequisites),
    Step(SYNC_OPTIONS["before"], 120, _sync_before),
    Step("Start the failover (complete this step when ready)", None),
    Step("Shut down the virtual machine", 60, _shut_down_recovered),
    Step("Synchronize the last changes", 30, _sync_last),
    Step("Start the virtual machine on the primary site", 30, _start_home),
], on_fail=_failback_failed)

jobs.define("failback_during", "Planned failover (failback)", [
    Step("Prerequisites check for failover", 20, _prerequisites),
    Step("Shut down the virtual machine", 60, _shut_down_recovered),
    Step(SYNC_OPTIONS["during"], 120, _sync_during),
    Step("Start the virtual machine on the primary site", 30, _start_home),
], on_fail=_failback_failed)


def _restart_replication(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    lab.replication.remove_replica(item)
    lab.replication.create_replica(item, run.t)
    states.move(lab.db, run.target, Protection.INITIAL_PENDING, start_at=run.t, active="primary",
                last_failover="")
    lab.event(run.t, "info", run.target, "reverse replication: replicating to the recovery side again, "
                                         "starting with initial replication")


jobs.define("reprotect", "Reverse replicate", [
    Step("Prerequisites check", 20, _prerequisites),
    Step("Start replication to the recovery side", 30, _restart_replication),
    Step("Updating provider state", 10),
])


def _sync_primary(lab, run: Run) -> None:
    _sync_home(lab, run, "synchronize the primary VM's disks")


def _start_reverse(lab, run: Run) -> None:
    row = recovered(lab, run.target, "failover")[0]
    for p in guests.recovered_disks(lab, row):
        log_path(p).write_bytes(b"")
    lab.db.execute("UPDATE recovered SET tracking=1 WHERE name=?", [row["name"]])
    freq = lab.replication.policy(run.target)["frequency"]
    states.move(lab.db, run.target, Protection.REVERSE, next_cycle=run.t + freq)
    lab.event(run.t, "info", run.target, f"reverse replication: {row['name']} replicates to the primary cloud")


jobs.define("reverse_replicate", "Reverse replicate", [
    Step("Prerequisites check", 20, _prerequisites),
    Step("Synchronize the primary VM's disks (only what differs)", 120, _sync_primary),
    Step("Start replication to the primary cloud", 20, _start_reverse),
])


def reverse_tick(lab, now: int) -> None:
    """VMM -> VMM reverse replication: at each copy interval the recovered VM's logs are
    frozen, sealed and applied to the primary VM's disks (kept off until it fails back)."""
    for item in states.items(lab.db, Protection.REVERSE):
        if item["next_cycle"] is None or item["next_cycle"] > now:
            continue
        vm = lab.vm(item["vm"])
        problem = faults.problem(lab, vm)
        if problem is not None and problem.recoverable:  # the way back is cut too: retried as any attempt
            retry = faults.attempt_failed(lab, vm.name, now, problem)
            lab.db.execute("UPDATE items SET next_cycle=? WHERE vm=?", [retry, vm.name])
            continue
        key = lab.replication.key_for(vm.name)
        freq = lab.replication.policy(vm.name)["frequency"]
        for row in recovered(lab, vm.name, "failover"):
            for i, (p, d) in enumerate(zip(guests.recovered_disks(lab, row), vm.disks)):
                log = log_path(p)
                frozen = p.with_suffix(".hrl.frozen")
                if frozen.exists():  # a killed process froze it: ship it with what came since
                    changelog.write_durable(frozen, frozen.read_bytes() + (log.read_bytes() if log.exists() else b""))
                elif log.exists():
                    os.replace(log, frozen)
                log.write_bytes(b"")
                if frozen.exists():
                    label = f"{vm.name}/{d.name}"
                    try:
                        replica.apply_blob(lab.disk_path(vm.name, i),
                                           changelog.seal(frozen.read_bytes(), key, label), key, label)
                    except Damaged as e:  # never applied; the item says so, the clock goes on
                        lab.db.execute("UPDATE items SET error=? WHERE vm=?", [
                            f"{e.message}; reverse replication needs a resynchronization", vm.name])
                        lab.event(now, "error", vm.name, f"reverse replication: {e.message}")
                    frozen.unlink()
        nxt = item["next_cycle"]
        while nxt <= now:
            nxt += freq
        lab.db.execute("UPDATE items SET next_cycle=?, last_replication=? WHERE vm=?", [nxt, now, vm.name])
        faults.resumed(lab, vm.name, now)



def report_lines(report: dict | None) -> list[str]:
    """A failover job's report as plain lines (the CLI and the app show these)."""
    if not report:
        return []
    out = []
    if "point" in report:
        out.append(f"recovery point {report['point']} ({report['point_kind']}, {format_time(report['point_time'])})"
                   f" -> {report.get('recovered_vm', '')}")
    if p := report.get("placement"):
        out.append(f"in {p['region']}: resource group {p['resource_group']}, network {p['network'] or '(isolated)'}"
                   + (f", subnet {p['subnet']}" if p["subnet"] else "")
                   + (f", availability set {p['availability_set']}" if p["availability_set"] else ""))
        out.append("disks " + ("equal to" if report.get("verified") else "DIFFER from")
                   + " the source's at the recovery point (fingerprints)")
    for phase, s in report.get("sync", {}).items():
        out.append(f"{phase}: compared {s['compared']:,} bytes, {s['chunks_differing']} chunks differ, "
                   f"sent {s['sent']:,} bytes")
    if "last_transaction" in report and "transactions_lost" in report:
        out.append(f"last transaction recovered {report['last_transaction']}; the source had written "
                   f"{report['source_last_transaction']}: {report['transactions_lost']} lost"
                   + (f" ({format_duration(report['data_loss_seconds'])} of lab time)"
                      if report.get("data_loss_seconds") else ""))
    if "zero_data_loss_proven" in report:
        out.append("zero data loss: " + ("proven, the recovered disks' fingerprints equal the source's at shutdown"
                                         if report["zero_data_loss_proven"] else "NOT proven (fingerprints differ)"))
    if "identical" in report:
        out.append("primary disks " + ("identical to" if report["identical"] else "DIFFER from")
                   + " the recovered VM's (fingerprints)")
    if "rto_seconds" in report:
        out.append(f"RTO {format_duration(report['rto_seconds'])} (job start to VM running)"
                   + (f"; downtime {format_duration(report['downtime_seconds'])}"
                      if "downtime_seconds" in report else ""))
    if report.get("note"):
        out.append(f"note: {report['note']}")
    return out
