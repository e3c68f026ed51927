"""Azure -> Azure (seed 002): Azure VMs replicated from one region to another.

- **Enable replication** (`srlab protect VM --target-region R`): the job creates the target
  resources seed 002 lists, by default from the source's settings with the portal's naming (a
  `-asr` suffix; storage accounts, which take no hyphen, `asr`; one cache storage account per
  source region, `<region>asrcache`), or uses the ones given; a network mapping both ways; the
  Site Recovery extension (mobility service) on the VM. The region gets the A2A replication
  policy on its first protection (rules.A2A_*).
- **Continuous replication through the cache**: there is no copy frequency. Every
  rules.A2A_BATCH lab seconds the VM's writes leave as a batch (an LZ4 frame per disk) into the
  cache storage account of the region it runs in: a real folder, storage/<cache>/<vm>/t<N>/,
  where the bytes wait until Site Recovery carries them across the link to the target storage
  account. Each processed batch is the latest processed recovery point; retention keeps a
  crash-consistent point every 5 minutes in the last hour (points.points_to_keep), the
  app-consistent ones at the policy's frequency, and one an hour after that.
- **Both ways**: each item has two sides (table a2a_sides: region, resource group, network,
  subnet, storage and cache accounts, availability set); it replicates from the side it runs on.
  After a committed failover `srlab reprotect VM` replicates back: the disks on the other side
  seed the new replica and a Resynchronize job sends only the blocks that differ. A failover
  back goes the same way (test or unplanned, any point) and is reprotected again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from . import jobs, rules, setup, states, store
from .errors import Refused
from .jobs import Run, Step
from .model import VM, Region, slug
from .replication import changelog, replica
from .replication.cycle import log_path

RESOURCE_KINDS = ("resource group", "virtual network", "storage account", "availability set")
SIDES = ("primary", "recovery")


@dataclass
class Options:
    """What `srlab protect` may say about an Azure VM's target (None: Site Recovery's default)."""

    target_region: str | None = None
    resource_group: str | None = None
    network: str | None = None
    storage: str | None = None
    cache: str | None = None
    availability_set: str | None = None
    retention_h: int | None = None
    app_consistent_h: int | None = None

    def given(self) -> bool:
        return any(v is not None for v in self.__dict__.values())


@dataclass
class Plan:
    """What enabling replication of one Azure VM will do."""

    sides: dict[str, dict]  # side -> a2a_sides row
    create: list[tuple[str, str, str, str]] = field(default_factory=list)  # (kind, name, region, detail)
    policy: dict | None = None  # the region's policy, when this protection creates it
    problems: list[str] = field(default_factory=list)


# ---- names and the resources there are ---------------------------------------------------------


def _letters(name: str, n: int) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())[:n]


def asr_name(name: str) -> str:
    """The portal's name for a resource Site Recovery creates from a source one."""
    return f"{name}-asr"


def storage_name(name: str) -> str:
    """Storage account names are 3-24 lower-case letters and digits: no hyphen."""
    return _letters(name, 21) + "asr"


def cache_name(region: str) -> str:
    return _letters(region, 16) + "asrcache"


def _site_names(region: Region, kind: str) -> list[str]:
    return {"resource group": region.resource_groups,
            "virtual network": [n.name for n in region.virtual_networks],
            "storage account": [a.name for a in region.storage_accounts],
            "availability set": region.availability_sets}[kind]


def resources(lab, region: str, kind: str) -> list[dict]:
    """A region's resources of a kind: the site file's, then those Site Recovery created."""
    r = lab.site.regions().get(region)
    out = [{"name": n, "made_for": "", "detail": ""} for n in (_site_names(r, kind) if r else [])]
    out += list(lab.db.query("SELECT name, made_for, detail FROM azure_resources WHERE region=? AND kind=? "
                             "ORDER BY created, name", [region, kind]))
    return out


def exists(lab, kind: str, name: str, region: str) -> bool:
    return any(r["name"] == name for r in resources(lab, region, kind))


def subnets(lab, region: str, network: str) -> list[str]:
    r = lab.site.regions().get(region)
    net = next((n for n in (r.virtual_networks if r else []) if n.name == network), None)
    if net is not None:
        return list(net.subnets)
    row = lab.db.execute("SELECT detail FROM azure_resources WHERE kind='virtual network' AND name=? AND region=?",
                         [network, region]).fetchone()
    return row[0].split(" ", 1)[1].split(",") if row and " " in row[0] else []


def _storage_region(lab, name: str) -> str | None:
    found = lab.site.storage_accounts().get(name)
    if found:
        return found[0].name
    row = lab.db.execute("SELECT region FROM azure_resources WHERE kind='storage account' AND name=?", [name]).fetchone()
    return row[0] if row else None


def sides(lab, vm: str) -> dict[str, dict]:
    return {r["side"]: r for r in store.rows(lab.db, "SELECT * FROM a2a_sides WHERE vm=?", [vm])}


def target_side(lab, item: dict) -> dict:
    """The side the item replicates (and fails over) to: the one in its target region."""
    s = sides(lab, item["vm"])
    return s["primary"] if s["primary"]["region"] == item["target"] else s["recovery"]


def other(side: str) -> str:
    return "recovery" if side == "primary" else "primary"


def cache_dir(lab, vm: str) -> str:
    """Where the VM's batches wait now: the cache account of the region it runs in."""
    item = states.item(lab.db, vm)
    side = sides(lab, vm).get(item["active"] if item else "primary")
    return f"storage/{slug(side['cache_account'])}/{slug(vm)}" if side else ""


def cache_bytes(lab, vm: str) -> int:
    """Bytes of the VM's batches waiting in the cache storage account (not yet processed)."""
    row = lab.db.execute("SELECT COALESCE(SUM(wire_bytes - sent_bytes), 0) FROM transfers WHERE vm=?", [vm]).fetchone()
    return int(row[0])


# ---- enable replication ------------------------------------------------------------------------


def _check_given(lab, kind: str, name: str | None, region: str, flag: str, problems: list[str]) -> None:
    if name is not None and not exists(lab, kind, name, region):
        there = ", ".join(r["name"] for r in resources(lab, region, kind)) or "none"
        problems.append(f"no {kind} named {name!r} in {region} ({there}) — give one of them to {flag}, or leave "
                        f"{flag} out and Site Recovery creates one")


def plan(lab, vm: VM, opts: Options, nic_name: str) -> Plan:
    """The sides, the resources to create and the policy for protecting an Azure VM; every
    problem found is in .problems."""
    regions = lab.site.regions()
    source = regions[vm.region]
    problems: list[str] = []
    pol = setup.policy(lab, vm.region)
    vault = lab.site.vault_region()
    if vault == vm.region:
        problems.append(f"the vault is in {vault}, where {vm.name} runs: the vault must be in another region "
                        "(set lab.vault_region in the site file to the target region)")
    target = opts.target_region or (pol["target"] if pol else source.paired_region)
    if not target:
        problems.append(f"{vm.region} has no paired region in this lab: give --target-region")
    elif target not in regions:
        problems.append(f"no region named {target!r} in this lab (regions: {', '.join(regions)})")
    elif target == vm.region:
        problems.append(f"{vm.name} runs in {target}: the target region must be another one")
    elif pol and pol["target"] != target:
        problems.append(f"the VMs of {vm.region} replicate to {pol['target']} (its replication policy's "
                        f"mapping): give --target-region {pol['target']!r}")
    new_policy = None
    if pol is None:
        ret = rules.A2A_RETENTION_DEFAULT if opts.retention_h is None else opts.retention_h
        app = rules.A2A_APP_CONSISTENT_DEFAULT if opts.app_consistent_h is None else opts.app_consistent_h
        if opts.retention_h is not None and opts.app_consistent_h is None:
            app = min(app, ret)  # a shorter retention brings the default snapshot frequency down with it
        problems += rules.a2a_policy_problems(ret, app)
        new_policy = {"container": vm.region, "container_kind": "Azure region", "policy_name": rules.A2A_POLICY_NAME,
                      "target_kind": "region", "target": target or "", "storage_account": "",
                      "frequency": rules.A2A_POINT_EVERY, "retention_h": ret, "app_consistent_h": app, "encrypt": 0,
                      "start": "now", "batch": rules.A2A_BATCH, "configured_at": lab.now}
    else:
        for given, have, flag in ((opts.retention_h, pol["retention_h"], "--retention"),
                                  (opts.app_consistent_h, pol["app_consistent_h"], "--app-consistent")):
            if given is not None and given != have:
                problems.append(f"the replication policy of {vm.region} ({pol['policy_name']}) has {flag} "
                                f"{have}: every VM of the region shares it — leave {flag} out")
    if target not in regions or target == vm.region:  # nothing below can be judged without it
        return Plan({}, problems=problems)
    nic = next((n for n in vm.nics if n.name == nic_name), None)
    net = next((n for n in source.virtual_networks if nic and n.name == nic.network), None)
    src = {"vm": vm.name, "side": "primary", "region": vm.region,
           "resource_group": vm.resource_group or next(iter(source.resource_groups), ""),
           "network": net.name if net else "", "subnet": (nic.subnet or net.subnets[0]) if net else "",
           "storage_account": vm.storage_account or next((a.name for a in source.storage_accounts), ""),
           "cache_account": opts.cache or cache_name(vm.region), "availability_set": vm.availability_set}
    _check_given(lab, "resource group", opts.resource_group, target, "--target-resource-group", problems)
    _check_given(lab, "virtual network", opts.network, target, "--target-network", problems)
    _check_given(lab, "storage account", opts.storage, target, "--target-storage", problems)
    _check_given(lab, "availability set", opts.availability_set, target, "--target-availability-set", problems)
    if opts.cache is not None and _storage_region(lab, opts.cache) != vm.region:
        where = _storage_region(lab, opts.cache)
        problems.append(f"cache storage account {opts.cache!r} " + (f"is in {where}" if where else "does not exist")
                        + f": the cache must be a storage account in the source region {vm.region}")
    if opts.availability_set is not None and not vm.availability_set:
        problems.append(f"{vm.name} is in no availability set: --target-availability-set applies to VMs in one")
    mapped = lab.db.execute("SELECT target FROM network_mappings WHERE source=?", [src["network"]]).fetchone()
    network = opts.network or (mapped[0] if mapped else (asr_name(net.name) if net else ""))
    if mapped and opts.network and opts.network != mapped[0]:
        problems.append(f"virtual network {src['network']} is mapped to {mapped[0]}: give --target-network "
                        f"{mapped[0]!r}, or unmap it first (srlab network unmap {src['network']!r})")
    dst = {"vm": vm.name, "side": "recovery", "region": target,
           "resource_group": opts.resource_group or asr_name(src["resource_group"] or _letters(vm.region, 20)),
           "network": network, "subnet": src["subnet"],
           "storage_account": opts.storage or storage_name(src["storage_account"] or vm.name),
           "cache_account": cache_name(target),
           "availability_set": opts.availability_set or (asr_name(vm.availability_set) if vm.availability_set else "")}
    create = []
    if not exists(lab, "storage account", src["cache_account"], vm.region):
        create.append(("storage account", src["cache_account"], vm.region, "cache"))
    for kind, col, detail in (("resource group", "resource_group", ""),
                              ("virtual network", "network", f"{net.address_space} {','.join(net.subnets)}" if net else ""),
                              ("storage account", "storage_account", "target"),
                              ("availability set", "availability_set", "")):
        if dst[col] and not exists(lab, kind, dst[col], target):
            create.append((kind, dst[col], target, detail))
    if dst["network"] and dst["subnet"] and exists(lab, "virtual network", dst["network"], target) \
            and dst["subnet"] not in subnets(lab, target, dst["network"]):
        dst["subnet"] = next(iter(subnets(lab, target, dst["network"])), "")
    return Plan({"primary": src, "recovery": dst}, create, new_policy, problems)


def enter(lab, vm: VM, p: Plan) -> dict:
    """In protect's transaction: the item's sides, and the region's policy if this creates it.
    Returns the Enable replication job's data (the resources its step creates)."""
    if p.policy is not None:
        lab.db["protection_settings"].insert(p.policy, pk="container", replace=True)
        pol = p.policy
        app = f"app-consistent every {pol['app_consistent_h']} h" if pol["app_consistent_h"] else \
            "no app-consistent snapshots"
        lab.event(lab.now, "info", vm.region, f"replication policy {pol['policy_name']} created and associated with "
                  f"{vm.region} -> {pol['target']}: recovery points kept {pol['retention_h']} h, {app}")
    lab.db.execute("DELETE FROM a2a_sides WHERE vm=?", [vm.name])
    for row in p.sides.values():
        lab.db["a2a_sides"].insert(row)
    return {"create": [list(c) for c in p.create]}


def _create_resources(lab, run: Run) -> None:
    """Create what the plan listed (what exists by now is used as it is), the network mapping both
    ways, and the link between the regions."""
    made = []
    for kind, name, region, detail in run.data.get("create", []):
        if not exists(lab, kind, name, region):
            lab.db["azure_resources"].insert({"kind": kind, "name": name, "region": region, "made_for": run.target,
                                              "detail": "" if detail in ("cache", "target") else detail,
                                              "created": run.t})
            made.append(f"{kind} {name} ({region})")
    s = sides(lab, run.target)
    src, dst = s["primary"], s["recovery"]
    if src["network"] and dst["network"]:
        for a, b in ((src["network"], dst["network"]), (dst["network"], src["network"])):
            lab.db.execute("INSERT OR IGNORE INTO network_mappings VALUES (?, ?)", [a, b])
    ensure_link(lab, src["region"], dst["region"])
    lab.event(run.t, "info", run.target, ("target resources created by Site Recovery: " + "; ".join(made))
              if made else "target resources: every one exists already")


def ensure_link(lab, source: str, target: str) -> None:
    """The link between two regions (the Azure backbone): the site file's, else as fast as the
    other way, else 1 Gbps."""
    back = lab.db.execute("SELECT mbps FROM links WHERE source=? AND target=?", [target, source]).fetchone()
    lab.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, ?, 'up')", [source, target, back[0] if back else 1000])


def _install_extension(lab, run: Run) -> None:
    lab.event(run.t, "info", run.target, "Site Recovery extension (mobility service) installed on the VM")


def _registered(lab, run: Run) -> None:
    lab.event(run.t, "info", run.target, "the VM is registered with Site Recovery: continuous replication "
                                         "configured (writes go to the cache storage account)")


def define_enable(check, create_replica, schedule_initial, failed) -> None:
    """The Enable replication job of an Azure VM (engine.protection gives its shared steps)."""
    jobs.define("enable_replication_a2a", "Enable replication", [
        Step("Prerequisites check", 20, check),
        Step("Create target resources", 40, _create_resources),
        Step("Install the Site Recovery extension (mobility service)", 60, _install_extension),
        Step("Register the virtual machine with Site Recovery", 20, _registered),
        Step("Enable replication", 30, create_replica),
        Step("Starting initial replication", 20, schedule_initial),
        Step("Updating provider state", 10),
    ], on_fail=failed)


def forget(lab, vm: str) -> None:
    """Protection disabled: the item's sides go (the resources Site Recovery created stay, as in Azure)."""
    lab.db.execute("DELETE FROM a2a_sides WHERE vm=?", [vm])


# ---- reprotect: replicate back, sending only what differs -------------------------------------


def _reprotect_prereq(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    if item is None or item["failover_state"] != states.Failover.COMMITTED:
        raise Refused(f"{run.target} is no longer a committed failover")


def _reverse_resources(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    s = sides(lab, run.target)
    here, there = s[item["active"]], s[other(item["active"])]
    made = []
    if not exists(lab, "storage account", here["cache_account"], here["region"]):
        lab.db["azure_resources"].insert({"kind": "storage account", "name": here["cache_account"],
                                          "region": here["region"], "made_for": run.target, "detail": "",
                                          "created": run.t})
        made.append(f"storage account {here['cache_account']} ({here['region']}, the cache)")
    ensure_link(lab, here["region"], there["region"])
    lab.event(run.t, "info", run.target, f"reprotect: {here['region']} -> {there['region']}"
              + (f"; created {', '.join(made)}" if made else ""))


def _seed_replica(lab, run: Run) -> None:
    """The disks on the other side become the new replica's base; a Resynchronize job then sends
    only the blocks that differ (the VM keeps running and its writes are tracked from now on)."""
    from . import failover, guests, protection, resync  # they import this module: asked at run time

    item = states.item(lab.db, run.target)
    vm = lab.vm(run.target)
    here = item["active"]
    there = sides(lab, vm.name)[other(here)]
    copy = failover.recovered(lab, vm.name, "failover")
    if here == "primary":  # the copy in the other region becomes the replica: it is off and goes
        seeds = guests.recovered_disks(lab, copy[0]) if copy else []
    else:  # the VM's own disks become the replica: it stays off until it fails back
        if lab.vm_row(vm.name)["power"] == "running":
            lab.db.execute("UPDATE vms SET power='off', last_shutdown='hard' WHERE name=?", [vm.name])
            lab.event(run.t, "warning", vm.name, f"{vm.name} was running in {vm.region}: turned off, its disks "
                                                 "become the replica")
        seeds = [lab.disk_path(vm.name, i) for i in range(len(vm.disks))]
    store_dir = protection.free_store(lab, Path("storage") / slug(there["storage_account"]) / slug(vm.name))
    lab.db.execute("UPDATE items SET target=?, store=? WHERE vm=?", [there["region"], str(store_dir), vm.name])
    item = states.item(lab.db, vm.name)
    for i, d in enumerate(vm.disks):
        base = lab.replication.base_path(item, i)
        replica.seed_base(seeds[i] if i < len(seeds) else None, base, d.size_bytes, run.t)
    changelog.fsync_dir(base.parent)
    if here == "primary":
        for row in copy:
            lab.db.execute("DELETE FROM recovered WHERE name=?", [row["name"]])
            lab.replication.remove_after_commit(lab.path / row["dir"])
        lab.db.execute("UPDATE items SET tracking=1 WHERE vm=?", [vm.name])
    else:
        lab.db.execute("UPDATE recovered SET tracking=1 WHERE vm=? AND role='failover'", [vm.name])
    for i in range(len(vm.disks)):
        p = lab.replicated_disk(vm.name, i)
        log_path(p).write_bytes(b"")
    resync.begin(lab, vm.name, run.t, f"reprotect {lab.replication.link_of(vm.name)[0]} -> {there['region']}: "
                                      "only the blocks that differ from the disks there travel")


jobs.define("reprotect_a2a", "Reprotect", [
    Step("Prerequisites check", 20, _reprotect_prereq),
    Step("Create target resources", 20, _reverse_resources),
    Step("Prepare the disks on the other side as the replica", 30, _seed_replica),
    Step("Updating provider state", 10),
])


# ---- what status and the app show --------------------------------------------------------------


def item_view(lab, vm: VM) -> dict | None:
    """An Azure VM's replication: the two sides, the resources created for it, the cache's bytes."""
    s = sides(lab, vm.name)
    if not s:
        return None
    item = states.item(lab.db, vm.name)
    here = item["active"] if item else "primary"
    made = list(lab.db.query("SELECT kind, name, region FROM azure_resources WHERE made_for=? ORDER BY created, kind",
                             [vm.name]))
    return {"from": s[here]["region"], "to": s[other(here)]["region"], "sides": s, "created": made,
            "cache_account": s[here]["cache_account"], "cache_dir": cache_dir(lab, vm.name),
            "cache_bytes": cache_bytes(lab, vm.name)}


def replicating_from(lab) -> dict[str, list[str]]:
    """Region -> the Azure VMs whose replication leaves it now (a reprotected VM's from its
    recovery region), in one query."""
    out: dict[str, list[str]] = {}
    for r in lab.db.query("SELECT s.vm, s.region FROM a2a_sides s JOIN items i ON i.vm = s.vm "
                          "WHERE s.side = i.active ORDER BY s.vm"):
        out.setdefault(r["region"], []).append(r["vm"])
    return out


def regions_view(lab) -> list[dict]:
    """Each region, its pair and its resources (the site file's and those Site Recovery made)."""
    out = []
    for r in lab.site.regions().values():
        out.append({"name": r.name, "paired_region": r.paired_region,
                    "resources": {k: resources(lab, r.name, k) for k in RESOURCE_KINDS}})
    return out
