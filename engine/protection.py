"""Protected items: enable and disable protection, target settings, recovery points, proof.

Commands have a `check_` that Lab.allowed() asks too. The job kinds of this family (Enable,
Finalize and Disable protection) are declared at the end, each step beside what it does.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from . import azure, faults, jobs, physical, rules, scenarios, setup, states, store, vmware, workload
from .clock import format_time
from .disks import fingerprint
from .errors import Damaged, InvalidInput, LabError, Refused, environment
from .jobs import Run, Step
from .model import VM, slug
from .replication import changelog, replica
from .replication.cycle import log_path
from .sites import name_problem
from .states import Protection


def check_item_action(lab, action: str, name: str) -> VM:
    vm = lab.vm(name)
    reason = rules.item_action_reason(action, vm.name, states.current(lab.db, vm.name))
    if reason:
        raise Refused(reason)
    return vm


def item_facts(lab, vm: VM, key_given: bool = True, via_plan: bool = False) -> rules.ItemFacts:
    """The plain facts the rules table judges an item operation on (once per read: Lab.reading)."""
    return lab.remembered(("item_facts", vm.name, key_given, via_plan),
                          lambda: _item_facts(lab, vm, key_given, via_plan))


def _item_facts(lab, vm: VM, key_given: bool, via_plan: bool) -> rules.ItemFacts:
    item = states.item(lab.db, vm.name)
    if item is None:
        return rules.ItemFacts(vm.name, lab.site.lab.scenario, Protection.NOT_PROTECTED.value)
    pol = policy_of(lab, vm)
    has_points = lab.db.execute("SELECT COUNT(*) FROM points WHERE vm=?", [vm.name]).fetchone()[0] > 0
    to_azure = scenarios.TARGETS[item["target_kind"]].picks_size
    group = lab.db.execute("SELECT name FROM replication_groups WHERE vm=?", [vm.name]).fetchone()
    return rules.ItemFacts(
        vm=vm.name, scenario=lab.site.lab.scenario, protection=item["state"], failover=item["failover_state"],
        active=item["active"], source_reachable=faults.site_down(lab, vm) is None, has_points=has_points,
        replication_problem=_replication_problem(lab, vm, item),
        target_name_ok=not to_azure or rules.azure_name_ok(item["target_name"]),
        encrypted=setup.failover_needs_key(pol), key_given=key_given,
        last_failover=item["last_failover"],
        in_group=group[0] if group else "", via_plan=via_plan,
        azure_process_server=bool(vm.physical_site) and vmware.can_fail_back(lab, item))


def _replication_problem(lab, vm: VM, item: dict) -> str:
    """What stops the item's forward replication now (a fault, an unrecoverable error), or ''."""
    if item["active"] != "primary":
        return ""
    if item["resync_required"]:
        return f"{item['error_code']}: resynchronization required"
    p = faults.problem(lab, vm)
    return f"{p.code}: {p.message}" if p else ""


def policy_of(lab, vm: VM) -> dict | None:
    """The replication policy of the VM's container (None until it is configured)."""
    return setup.policy(lab, scenarios.container_of(vm, lab.site).name)


# ---- enable and disable -------------------------------------------------------------------


class _Cannot(Refused):
    """Refused, keeping the list of problems it names (protect() lists them per VM)."""

    def __init__(self, vm: str, problems: list[str]):
        super().__init__(f"cannot enable protection for {vm}:\n  - " + "\n  - ".join(problems),
                         "fix the VM or the options above; nothing was changed")
        self.problems = problems


def free_store(lab, store: Path) -> Path:
    """A replica store folder no item uses and nothing occupies. A store left behind by
    'unprotect --stop-managing' stays where it is: a new protection starts beside it."""
    used = {r[0] for r in lab.db.execute("SELECT store FROM items")}
    candidate, n = store, 1
    while str(candidate) in used or (lab.path / candidate).exists():
        n += 1
        candidate = store.with_name(f"{store.name}-{n}")
    return candidate


def _plan(lab, name: str, target_size: str | None, target_name: str | None, nic: str | None,
          opts: azure.Options | None = None,
          phys: physical.Options | None = None) -> tuple[dict, list[str], azure.Plan | None]:
    """(the item row protection would create, notes on what a failover will need, an Azure VM's
    plan), or raise with every problem that stops protection."""
    vm = check_item_action(lab, "protect", name)
    if vm.region:
        if phys is not None and phys.given():
            raise InvalidInput(f"{vm.name} is an Azure VM: --policy, --process-server and --group apply to "
                               "physical servers")
        return _plan_a2a(lab, vm, target_size, target_name, nic, opts or azure.Options())
    if opts is not None and opts.given():
        raise InvalidInput(f"{vm.name} runs in {vm.location}: --target-region and the other Azure VM options apply "
                           "to Azure VMs only", "its container's settings say where it goes: srlab resources")
    container = scenarios.container_of(vm, lab.site)
    problems = []
    if vm.physical_site:
        problems += physical.protect_problems(lab, vm, phys or physical.Options())
    elif phys is not None and phys.given():
        raise InvalidInput(f"{vm.name} runs in VMM cloud {vm.cloud}: --policy, --process-server and --group apply "
                           "to physical servers", "its cloud's settings say where it goes: srlab resources")
    pol = policy_of(lab, vm)
    if pol is None and vm.physical_site:
        raise _Cannot(vm.name, problems + [
            f"configuration server {container.name} has no replication policy associated (srlab policy create "
            f"NAME, then srlab policy associate NAME --server {container.name})"])
    if pol is None:
        raise Refused(f"cloud {vm.cloud} is not configured for protection",
                      f"configure it first: srlab cloud configure {vm.cloud!r} --target azure ...")
    target = scenarios.target_of(pol)
    found = target.vm_problems(vm, target_name)
    problems += [str(p) for p in rules.blocking(found)]
    notes = [str(p) for p in found if p.blocks != "protection"]  # e.g. a name Azure refuses: set before failover
    if target_name is not None and target.picks_size and not rules.azure_name_ok(target_name):
        notes = []  # a name given here is refused here
        problems.append(f"--target-name {target_name!r} is not a valid Azure VM name (1-63 letters, digits and "
                        "hyphens, starting and ending with a letter or digit) — give a valid one")
    size = target_size or rules.pick_target_size(vm)
    if target.picks_size:
        if size is None:
            problems.append(f"{rules.no_target_size_reason(vm)} — reduce the VM, or pick a size with --target-size")
        elif msg := rules.target_size_problem(vm, size):
            problems.append(msg)
    if nic and nic not in [n.name for n in vm.nics]:
        problems.append(f"{vm.name} has no NIC named {nic!r} (NICs: {', '.join(n.name for n in vm.nics)})")
    if jobs.running(lab.db, "unprotect_cloud", container.name):
        problems.append(f"the protection settings of {container.name} are being removed")
    as_name = target_name or vm.name
    problems += _name_problems(lab, vm, pol["target"], as_name)
    if problems:
        raise _Cannot(vm.name, problems)
    item = {"vm": vm.name, "target_kind": target.kind, "target": pol["target"],
            "store": str(free_store(lab, target.store_dir(pol, vm))),
            "target_name": as_name, "target_size": (size or "") if target.picks_size else "",
            "nic": rules.chosen_nic(vm, nic), "enabled_at": lab.now}
    return item, notes, None


def _name_problems(lab, vm: VM, place: str, as_name: str) -> list[str]:
    """Why the VM cannot be protected under this target name (or at all, being enabled already)."""
    problems = []
    if any(jobs.running(lab.db, k, vm.name) for k in ("enable_protection", "enable_replication_a2a",
                                                      "enable_replication_physical")):
        problems.append(f"protection is already being enabled for {vm.name}")
    if problem := target_name_problem(lab, vm.name, place, as_name):
        problems.append(problem)
    for row in lab.db.query("SELECT name, vm, place, power FROM recovered WHERE name IN (?, ?)",
                            [as_name, f"{as_name}-test"]):
        problems.append(f"a VM named {row['name']} already exists at {row['place']} ({row['power']}; built from "
                        f"{row['vm']}) — give another --target-name")
    return problems


def _plan_a2a(lab, vm: VM, target_size: str | None, target_name: str | None, nic: str | None,
              opts: azure.Options) -> tuple[dict, list[str], azure.Plan]:
    """Enable replication of an Azure VM to another region (seed 002)."""
    problems = [str(p) for p in rules.blocking(scenarios.TARGETS["region"].vm_problems(vm, target_name))]
    if target_size:
        problems.append("--target-size applies to VMs protected to Azure from Hyper-V; an Azure VM keeps its size")
    if nic and nic not in [n.name for n in vm.nics]:
        problems.append(f"{vm.name} has no NIC named {nic!r} (NICs: {', '.join(n.name for n in vm.nics)})")
    chosen = rules.chosen_nic(vm, nic)
    plan = azure.plan(lab, vm, opts, chosen)
    problems += plan.problems
    as_name = target_name or vm.name
    if plan.sides:
        problems += _name_problems(lab, vm, plan.sides["recovery"]["region"], as_name)
    if problems:
        raise _Cannot(vm.name, problems)
    dst = plan.sides["recovery"]
    item = {"vm": vm.name, "target_kind": "region", "target": dst["region"],
            "store": str(free_store(lab, Path("storage") / slug(dst["storage_account"]) / slug(vm.name))),
            "target_name": as_name, "target_size": "", "nic": chosen, "enabled_at": lab.now}
    return item, [], plan


def target_name_problem(lab, vm: str, place: str, name: str) -> str | None:
    """Why `name` cannot name the VM built at the recovery side `place`, or None. Its disks go to
    recovery/<place>/<slug(name)>/ (and <slug(name-test)>/ for a test): no other VM may get the
    same folder there."""
    if problem := name_problem(name):
        return f"target name {name!r} {problem}"
    mine = {slug(name).lower(), slug(f"{name}-test").lower()}
    others = [(r[0], r[1]) for r in lab.db.execute("SELECT vm, target_name FROM items WHERE target=? AND vm != ?",
                                                     [place, vm])]
    others += [(r[0], r[1]) for r in lab.db.execute("SELECT vm, name FROM recovered WHERE place=? AND vm != ?",
                                                      [place, vm])]
    for other, other_name in others:
        if mine & {slug(other_name).lower(), slug(f"{other_name}-test").lower()}:
            return (f"target name {name!r} would share its folder at {place} with {other}'s VM {other_name!r} "
                    "— give another target name")
    return None


def check_protect(lab, name: str, target_size: str | None = None, target_name: str | None = None,
                  nic: str | None = None, opts: azure.Options | None = None,
                  phys: physical.Options | None = None) -> dict:
    """The item row protection would create; raises with every problem found."""
    return _plan(lab, name, target_size, target_name, nic, opts, phys)[0]


def _resolve(lab, names: list[str]) -> tuple[list[str], dict[str, LabError]]:
    """The VMs named, each once (a VM named twice is refused), and the names that name no VM."""
    found, unknown = {}, {}
    for n in names:
        try:
            vm = lab.vm(n)
        except LabError as e:
            unknown[n] = e
            continue
        if vm.name in found:
            also = f" (as {found[vm.name]!r} and {n!r})" if found[vm.name] != n else ""
            raise InvalidInput(f"{vm.name} is named twice{also}", "name each VM once; nothing was changed")
        found[vm.name] = n
    return list(found), unknown


def _all_refused(verb: str, failures: dict[str, LabError], names: list[str]) -> LabError:
    """One error listing every VM's problems in the order named (InvalidInput only when every one
    is a usage error)."""
    lines = []
    order = {n.lower(): i for i, n in reversed(list(enumerate(names)))}
    for name, e in sorted(failures.items(), key=lambda f: order.get(f[0].lower(), len(names))):
        problems = getattr(e, "problems", None) or [e.message + (f" ({e.hint})" if e.hint else "")]
        lines.append(f"{name}:" + "".join(f"\n  - {p}" for p in problems))
    cls = InvalidInput if all(isinstance(e, InvalidInput) for e in failures.values()) else Refused
    return cls(f"cannot {verb} {len(failures)} of {len(names)} VMs:\n" + "\n".join(lines),
               "fix the problems above and try again; nothing was changed")


def protect(lab, names: list[str], target_size: str | None = None, target_name: str | None = None,
            nic: str | None = None, opts: azure.Options | None = None,
            phys: physical.Options | None = None) -> list[int]:
    """Enable protection: one 'Enable protection' job per VM. All are checked before any starts,
    and a refusal names every VM's problems."""
    if target_name and len(names) > 1:
        raise InvalidInput("--target-name applies to one VM at a time")
    vms, failures = _resolve(lab, names)
    plans = []
    for name in vms:
        try:
            plans.append(_plan(lab, name, target_size, target_name, nic, opts, phys))
        except LabError as e:
            failures[name] = e
    if failures:
        if len(names) == 1:
            raise next(iter(failures.values()))
        raise _all_refused("enable protection for", failures, names)
    ids = []
    with store.transaction(lab.db):
        for item, notes, a2a in plans:
            states.enter(lab.db, item)
            vm = lab.vm(item["vm"])
            if vm.physical_site:  # through the configuration server and a process server
                data = physical.enter(lab, vm, phys or physical.Options())
                ids.append(jobs.create(lab.db, lab.now, "enable_replication_physical", vm.name, data))
            elif a2a is None:
                ids.append(jobs.create(lab.db, lab.now, "enable_protection", item["vm"]))
            else:  # the first VM of a region creates its policy; the next ones share it
                a2a.policy = a2a.policy if setup.policy(lab, lab.vm(item["vm"]).region) is None else None
                data = azure.enter(lab, lab.vm(item["vm"]), a2a)
                ids.append(jobs.create(lab.db, lab.now, "enable_replication_a2a", item["vm"], data))
            lab.event(lab.now, "info", item["vm"], "enable protection started")
            for note in notes:
                lab.event(lab.now, "warning", item["vm"], note)
    return ids


def check_unprotect(lab, name: str) -> VM:
    vm = check_item_action(lab, "unprotect", name)
    if reason := rules.operation_reason("disable", item_facts(lab, vm)):
        raise Refused(reason)
    return vm


def unprotect(lab, names: list[str], stop_managing: bool = False) -> list[int]:
    """Disable protection: replication stops, the replica and its points are removed. A VM that
    runs at the recovery side keeps running there with its disks (a migration, seed 004 FAQ).

    stop_managing ("Disable protection and stop managing", for a VMM server that cannot be
    reached): the vault forgets the item at once, without cleaning up at the recovery side; the
    replica store stays on disk (the job's report says where) for the user to delete."""
    vms, failures = _resolve(lab, names)
    checked = []
    for name in vms:
        try:
            checked.append(check_unprotect(lab, name))
        except LabError as e:
            failures[name] = e
    if failures:
        if len(names) == 1:
            raise next(iter(failures.values()))
        raise _all_refused("disable protection for", failures, names)
    kind = "stop_managing" if stop_managing else "disable_protection"
    ids = []
    with store.transaction(lab.db):
        for vm in checked:
            states.move(lab.db, vm.name, Protection.DISABLING)
            ids.append(jobs.create(lab.db, lab.now, kind, vm.name))
            lab.event(lab.now, "info", vm.name, f"{jobs.KINDS[kind].name.lower()} started")
    return ids


def check_set_target(lab, name: str, size: str | None = None, target_name: str | None = None,
                     nic: str | None = None) -> VM:
    vm = check_item_action(lab, "set_target", name)
    item = states.item(lab.db, vm.name)
    target = scenarios.TARGETS[item["target_kind"]]
    if size and not target.picks_size:
        raise Refused("target sizes apply to Azure targets only")
    if size and (msg := rules.target_size_problem(vm, size)):
        raise Refused(msg)
    if target_name is not None and target.picks_size and not rules.azure_name_ok(target_name):
        raise InvalidInput(f"{target_name!r} is not a valid Azure VM name",
                           "1-63 letters, digits and hyphens, starting and ending with a letter or digit")
    if target_name is not None and (problem := target_name_problem(lab, vm.name, item["target"], target_name)):
        raise InvalidInput(problem)
    if nic and nic not in [n.name for n in vm.nics]:
        raise InvalidInput(f"{vm.name} has no NIC named {nic!r}")
    return vm


def set_target(lab, name: str, size: str | None = None, target_name: str | None = None,
               nic: str | None = None) -> VM:
    vm = check_set_target(lab, name, size, target_name, nic)
    if not (size or target_name or nic):
        raise InvalidInput("nothing to change", "give --size, --name and/or --nic")
    with store.transaction(lab.db):
        lab.db.execute("UPDATE items SET target_size=COALESCE(?, target_size), "
                       "target_name=COALESCE(?, target_name), nic=COALESCE(?, nic) WHERE vm=?",
                       [size, target_name, nic, vm.name])
        lab.event(lab.now, "info", vm.name, "target settings changed")
    return vm


# ---- recovery points and proof ------------------------------------------------------------


def points(lab, name: str) -> list[dict]:
    vm = lab.vm(name)
    return [{"id": r["id"], "time": r["time"], "time_text": format_time(r["time"]), "kind": r["kind"],
             "size": r["size"], "last_transaction": r["last_seq"], "arrived": r["arrived"]}
            for r in lab.replication.point_rows(vm.name)]


def find_point(lab, vm: VM, point: str | int | None) -> dict:
    rows = lab.replication.point_rows(vm.name)
    if not rows:
        raise Refused(f"{vm.name} has no recovery points yet ({states.current(lab.db, vm.name)})",
                      "protect it and let lab time pass: srlab run --for 15m")
    if point in (None, "latest", "latest-processed"):  # every arrived log is processed at once
        return rows[-1]
    if point == "latest-app":
        app = [r for r in rows if r["kind"] == "app-consistent"]
        if not app:
            raise Refused(f"{vm.name} has no app-consistent recovery point")
        return app[-1]
    try:
        pid = int(point)
    except (TypeError, ValueError):
        raise InvalidInput(f"bad recovery point {point!r}", "give a point id, 'latest', 'latest-processed' or 'latest-app'") from None
    row = next((r for r in rows if r["id"] == pid), None)
    if row is None:
        raise InvalidInput(f"{vm.name} has no recovery point {pid}",
                           f"retained points: {', '.join(str(r['id']) for r in rows)}")
    return row


def build_at_point(lab, name: str, point: str | int | None, out_dir: Path) -> tuple[dict, list[Path]]:
    """Write the VM's disks as they were at a recovery point into out_dir, one file per disk."""
    vm = lab.vm(name)
    rep = lab.replication
    item = states.item(lab.db, vm.name)
    if item is None:
        find_point(lab, vm, point)  # says why there is nothing to build
    # shared: the clock's process may be folding expired points into this store right now
    with replica.store_lock(rep.store_dir(item), exclusive=False):
        row = find_point(lab, vm, point)
        rows = [r for r in rep.point_rows(vm.name) if (r["time"], r["id"]) <= (row["time"], row["id"])]
        key = rep.key_for(vm.name)
        labels = rep.labels(vm.name)
        out = []
        for i, d in enumerate(vm.disks):
            dest = Path(out_dir) / lab.disk_path(vm.name, i).name
            replica.build_disk(rep.base_path(item, i), [lab.path / r["dir"] for r in rows],
                               i, dest, d.size_bytes, key, labels[i])
            out.append(dest)
    return row, out


def _scratch(lab, what: str) -> Path:
    """A scratch folder of this process: in the lab (Lab.open sweeps those of dead processes),
    or in the system's temporary folder when the lab is read-only."""
    if lab.read_only:
        return Path(tempfile.mkdtemp(prefix=f"srlab-{what}-{os.getpid()}-"))
    return lab.path / ".scratch" / f"{what}-{os.getpid()}"


def verify(lab, name: str, point: str | int | None = None) -> dict:
    """Build the disks at a point in a scratch folder and compare with the point's fingerprints.
    A damaged replica (a frame that fails its checksums, a base without its footer...) is a
    verdict too: not identical, with the damaged file named."""
    vm = lab.vm(name)
    row = find_point(lab, vm, point)
    scratch = _scratch(lab, "verify")
    shutil.rmtree(scratch, ignore_errors=True)
    disks, damaged, scan = [], [], workload.TxScan()
    try:
        with environment(f"cannot verify {vm.name}"):
            try:
                row, paths = build_at_point(lab, vm.name, point, scratch)
            except Damaged as e:
                damaged.append({"file": e.file, "reason": e.message})
                paths = []
            expected = json.loads(row["fingerprints"])
            for i, (p, d) in enumerate(zip(paths, vm.disks)):
                got = fingerprint(p, d.size_bytes)
                disks.append({"disk": d.name, "expected": expected[i], "actual": got, "identical": got == expected[i]})
            if paths:
                scan = lab.scan_disks(paths, vm)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {"vm": vm.name, "point": row["id"], "time": row["time"], "kind": row["kind"],
            "identical": bool(disks) and not damaged and all(d["identical"] for d in disks), "disks": disks,
            "damaged": damaged, "last_transaction": scan.last_seq, "expected_last_transaction": row["last_seq"]}


_EXPORTING = ".srlab-export-"  # a folder in --out holding an export until it is complete


def export(lab, name: str, point: str | int | None, out_dir: str | Path) -> dict:
    """Write the disks at a point into out_dir. They are built in a hidden folder and put in
    place only when all are complete — a new out_dir by one rename of that folder, an existing
    one file by file —, so a killed export leaves no file that looks finished and is not (the
    hidden folder is removed by the next export there)."""
    out_dir = Path(out_dir).absolute()
    vm = lab.vm(name)
    names = [lab.disk_path(vm.name, i).name for i in range(len(vm.disks))]
    clash = [n for n in names if (out_dir / n).exists() or (out_dir / n).is_symlink()]
    if clash:
        raise Refused(f"{out_dir} already holds {', '.join(clash)}", "choose an empty --out folder")
    row = find_point(lab, vm, point)
    with environment(f"cannot export {vm.name} into {out_dir}"):
        fresh = not out_dir.exists()
        home = out_dir.parent if fresh else out_dir
        home.mkdir(parents=True, exist_ok=True)
        for old in home.glob(f"{_EXPORTING}*"):
            pid = old.name[len(_EXPORTING):]
            if pid.isdigit() and not changelog.process_alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        work = home / f"{_EXPORTING}{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            row, built = build_at_point(lab, vm.name, point, work)
            if fresh:
                os.rename(work, out_dir)
            else:
                for p in built:
                    os.replace(p, out_dir / p.name)
            changelog.fsync_dir(home)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return {"vm": vm.name, "point": row["id"], "time": row["time"], "files": [str(out_dir / p.name) for p in built]}


# ---- job kinds ------------------------------------------------------------------------------


def _enabling(lab, run: Run) -> dict:
    item = states.item(lab.db, run.target)
    if item is None:
        raise Refused(f"{run.target} is no longer being protected")
    return item


def _check_requirements(lab, run: Run) -> None:
    item = _enabling(lab, run)
    problems = rules.blocking(scenarios.TARGETS[item["target_kind"]].vm_problems(lab.vm(run.target),
                                                                                  item["target_name"]))
    if problems:
        raise Refused(str(problems[0]))


def _validate_target(lab, run: Run) -> None:
    item = _enabling(lab, run)
    scenarios.TARGETS[item["target_kind"]].check_reachable(lab.site, lab.replication.policy(run.target))
    (lab.path / item["store"]).mkdir(parents=True, exist_ok=True)


def _create_replica(lab, run: Run) -> None:
    lab.replication.create_replica(_enabling(lab, run), run.t)


def _schedule_initial(lab, run: Run) -> None:
    _enabling(lab, run)
    # Replication.tick starts initial replication at this time ("now" or the policy's HH:MM).
    start = rules.next_start_time(run.t, lab.replication.policy(run.target)["start"])
    states.move(lab.db, run.target, Protection.INITIAL_PENDING, start_at=start)


def _enable_failed(lab, run: Run) -> None:
    # The VM goes back to not protected; nothing half-made stays behind.
    item = states.item(lab.db, run.target)
    if item:
        shutil.rmtree(lab.path / item["store"], ignore_errors=True)
        azure.forget(lab, run.target)
        physical.forget(lab, run.target)
        states.move(lab.db, run.target, Protection.NOT_PROTECTED)


jobs.define("enable_protection", "Enable protection", [
    Step("Enable protection operations", 20, _check_requirements),
    Step("Validating replication target", 30, _validate_target),
    Step("Enable replication", 60, _create_replica),
    Step("Starting initial replication", 30, _schedule_initial),
    Step("Updating provider state", 20),
], on_fail=_enable_failed)


azure.define_enable(_check_requirements, _create_replica, _schedule_initial, _enable_failed)
physical.define_enable(_check_requirements, _validate_target, _create_replica, _schedule_initial, _enable_failed)


def initial_replication_done(lab, vm: str, at: int) -> None:
    """Replication reports the first recovery point: the Finalize protection job starts."""
    lab.event(at, "info", vm, "initial replication completed; first recovery point made")
    jobs.create(lab.db, at, "finalize_protection", vm)


def _protected(lab, run: Run) -> None:
    if states.current(lab.db, run.target) == Protection.FINALIZING:
        states.move(lab.db, run.target, Protection.PROTECTED)
        lab.event(run.t, "info", run.target, "protected: delta replication running")


jobs.define("finalize_protection", "Finalize protection", [
    Step("Apply the first delta replication", 20),
    Step("Set post-replication settings", 30),
    Step("Updating provider state", 10, _protected),
])


def _stop_replication(lab, run: Run) -> None:
    lab.replication.stop(run.target)
    lab.db.execute("UPDATE recovered SET tracking=0 WHERE vm=?", [run.target])  # reverse replication too


def _remove_replica(lab, run: Run) -> None:
    lab.replication.remove_replica(states.item(lab.db, run.target))


def _release_recovered(lab, vm: str) -> list[dict]:
    """The VMs built at the recovery side by a failover stay as they are (running or not) with
    their disks: the vault no longer manages them. Their role says so ('migrated' when the
    workload runs there, else 'unmanaged'), so no later failover of the VM takes them for its own."""
    item = states.item(lab.db, vm)
    role = "migrated" if item and item["active"] == "recovery" else "unmanaged"
    rows = list(lab.db.query("SELECT * FROM recovered WHERE vm=? AND role='failover'", [vm]))
    for row in rows:
        lab.db.execute("UPDATE recovered SET role=?, tracking=0 WHERE name=?", [role, row["name"]])
        for i in range(len(lab.vm(vm).disks)):  # reverse replication's change logs, if any
            log_path(lab.path / row["dir"] / lab.disk_path(vm, i).name).unlink(missing_ok=True)
    return rows


def _left_running(rows: list[dict]) -> str:
    return "".join(f"; {r['name']} stays at {r['place']} ({r['power']}), its disks in {r['dir']}: "
                   "delete them when no longer needed" for r in rows)


def _forget_item(lab, run: Run) -> None:
    rows = _release_recovered(lab, run.target)
    azure.forget(lab, run.target)
    physical.forget(lab, run.target)
    states.move(lab.db, run.target, Protection.NOT_PROTECTED)
    lab.event(run.t, "info", run.target, "protection disabled; replica removed" + _left_running(rows))


jobs.define("disable_protection", "Disable protection", [
    Step("Stop replication", 20, _stop_replication),
    Step("Remove the replica and its recovery points", 30, _remove_replica),
    Step("Updating provider state", 10, _forget_item),
])


UNMANAGED_NOTE = "UNMANAGED.txt"


def _leave_replica(lab, item: dict, at: int) -> Path:
    """Leave the replica store as it is for the user: a note says what it holds, and its points
    move from points/ (which the vault's housekeeping owns) to recovery-points/. Safe to redo."""
    vm = lab.vm(item["vm"])
    store_dir = lab.path / item["store"]
    rows = lab.replication.point_rows(vm.name)
    pol = lab.replication.policy(vm.name)
    lines = [f"This replica store of {vm.name} was left by 'srlab unprotect {vm.name} --stop-managing' at "
             f"{format_time(at)}.",
             "The vault no longer manages it: srlab does not read, clean or delete it. Delete this folder "
             "when you no longer need it.", "",
             "Base disks (the replica before the points below): "
             + ", ".join(f"{i}-{d.name}.vhd" for i, d in enumerate(vm.disks)),
             "Recovery points, oldest first: each folder holds one LZ4 frame of change-log records per disk "
             "(N.hrl.lz4), applied to the base in this order:"]
    lines += [f"  recovery-points/{Path(r['dir']).name}  {format_time(r['time'])}  {r['kind']}  "
              f"last transaction {r['last_seq']}" for r in rows] or ["  (none)"]
    if pol and pol["encrypt"]:
        lines.append("The frames are encrypted (AES-GCM, .enc) with the data-encryption key made at server "
                     "registration (srlab resources shows its file).")
    (store_dir / UNMANAGED_NOTE).write_text("\n".join(lines) + "\n")
    points, kept = store_dir / "points", store_dir / "recovery-points"
    if points.exists() and not kept.exists():
        os.replace(points, kept)
    return store_dir


def _stop_managing(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    # A committed failover already merged the replica into the VM it built: nothing is left then.
    left = _leave_replica(lab, item, run.t) if (lab.path / item["store"]).is_dir() else None
    lab.db.execute("DELETE FROM points WHERE vm=?", [run.target])
    rows = _release_recovered(lab, run.target)
    azure.forget(lab, run.target)
    physical.forget(lab, run.target)
    states.move(lab.db, run.target, Protection.NOT_PROTECTED)
    report = {"replica_left": str(left), "note": str(left / UNMANAGED_NOTE)} if left else {"replica_left": ""}
    lab.db.execute("UPDATE jobs SET report=? WHERE id=?", [json.dumps(report), run.id])
    where = f"its replica is left at {left} (see {UNMANAGED_NOTE} there)" if left else "it had no replica left"
    lab.event(run.t, "warning", run.target, f"protection disabled and the VM no longer managed; {where}"
              + _left_running(rows))


jobs.define("stop_managing", "Disable protection and stop managing", [
    Step("Stop replication", 20, _stop_replication),
    Step("Stop managing the virtual machine", 10, _stop_managing),
])
