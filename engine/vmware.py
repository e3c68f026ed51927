"""Failback of physical servers to VMware (seed 003).

A physical server that failed over to Azure comes back as a VMware VM, never to a physical
server. It needs a process server in Azure (an Azure VM this lab creates: `srlab process-server
deploy`), a VPN (or ExpressRoute) from Azure to the VMware site (a link in the site file), and a
master target on premises (the configuration server's, or a separate one). `srlab reprotect`
seeds the VMware VM's disks on a datastore from the server's own disks (a copy on premises) and
a Resynchronize job sends only the blocks that differ from Azure; then an unplanned failover
builds the VMware VM at a recovery point, and its commit ends the protection: the server runs as
a VMware VM, to be protected to Azure again (engine.physical).

While it fails back, the item's target is the VMware site (target kind "vmware"): replication
reads the VM in Azure, its shipments wait in the Azure process server's cache and cross the VPN
to the master target's replica beside the VMware VM's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import jobs, physical, setup, states, store
from .errors import InvalidInput, Refused
from .jobs import Run, Step
from .model import VM, slug
from .physical import check_management_port, configuration_site, failback_name, policies, site_of
from .replication import changelog, replica
from .replication.cycle import log_path

AZURE_PS = "process server"  # its kind in azure_resources


def azure_process_servers(lab, region: str | None = None) -> list[dict]:
    q = "SELECT name, region, made_for AS server, created FROM azure_resources WHERE kind=?"
    return list(lab.db.query(q + (" AND region=?" if region else "") + " ORDER BY created, name",
                             [AZURE_PS, region] if region else [AZURE_PS]))


def _vpn(lab, region: str) -> str | None:
    """The VMware site a VPN (a link either way) joins to an Azure region, or None."""
    sites = {v.name for v in lab.site.vmware_sites}
    for r in lab.db.query("SELECT source, target FROM links"):
        for a, b in ((r["source"], r["target"]), (r["target"], r["source"])):
            if a == region and b in sites:
                return b
    return None


def check_deploy(lab, name: str, region: str, server: str | None = None) -> tuple[str, str]:
    """(the configuration server it registers with, the region), or raise why not."""
    from .sites import name_problem

    if problem := name_problem(name):
        raise InvalidInput(f"process server name {name!r} {problem}")
    cs, proper = check_deploy_place(lab, region, server)
    sites = lab.site.physical_sites
    taken = {p["name"].lower() for p in azure_process_servers(lab)} | {v.name.lower() for v in lab.site.vms} | {
        p.name.lower() for s in sites for p in s.all_process_servers()}
    if name.lower() in taken:
        raise Refused(f"{name} is taken: a server or VM of this lab has that name", "give another name")
    if jobs.running(lab.db, "deploy_process_server", name):
        raise Refused(f"process server {name} is being deployed", "wait for it: srlab run --for 5m")
    return cs, proper


def check_deploy_place(lab, region: str, server: str | None = None) -> tuple[str, str]:
    """(configuration server, region) a process server in Azure can be deployed for, or raise
    why not (what the app asks before it offers the action on a region)."""
    if not lab.site.physical_sites:
        raise Refused("a process server in Azure fails physical servers back: this lab has no physical site")
    regions = lab.site.regions()
    proper = next((r for r in regions if r.lower() == region.lower()), None)
    if proper is None:
        raise InvalidInput(f"no region named {region!r}", f"regions: {', '.join(regions) or 'none'}")
    sites = lab.site.physical_sites
    if server is not None:
        site = configuration_site(lab, server)
        if site is None:
            raise InvalidInput(f"no configuration server named {server!r}")
    elif len(sites) == 1:
        site = sites[0]
    else:
        raise InvalidInput("give the configuration server it registers with (--server CS)")
    cs = site.configuration_server
    if not setup.registered(lab, cs):
        raise Refused(f"configuration server {cs} is not registered with the vault",
                      f"register it first: srlab server register {cs}")
    if _vpn(lab, proper) is None:
        raise Refused(f"no VPN or ExpressRoute joins {proper} to a VMware site: a process server in Azure registers "
                      "with the configuration server through one", "add a link from the region to the VMware site "
                      "in the site file")
    return cs, proper


def deploy_process_server(lab, name: str, region: str, server: str | None = None) -> int:
    """Create a process server in Azure (an Azure VM) for failback, registered with the
    configuration server through the VPN (a Deploy process server job)."""
    cs, proper = check_deploy(lab, name, region, server)
    return jobs.create(lab.db, lab.now, "deploy_process_server", name, {"region": proper, "server": cs})


def _create_ps_vm(lab, run: Run) -> None:
    lab.event(run.t, "info", run.target, f"process server VM {run.target} created in {run.data['region']} from the "
                                         "Site Recovery gallery image")


def _register_ps(lab, run: Run) -> None:
    site = configuration_site(lab, run.data["server"])
    check_management_port(lab, site, f"process server {run.target} in Azure")
    lab.db["azure_resources"].insert({"kind": AZURE_PS, "name": run.target, "region": run.data["region"],
                                      "made_for": site.configuration_server, "detail": "failback", "created": run.t},
                                     replace=True)
    lab.event(run.t, "info", run.target, f"process server in {run.data['region']} registered with "
                                         f"{site.configuration_server} through the VPN: servers in Azure can fail back")


jobs.define("deploy_process_server", "Deploy process server in Azure", [
    Step("Create the process server VM in Azure", 300, _create_ps_vm),
    Step("Register it with the configuration server (through the VPN)", 60, _register_ps),
])


def check_remove_process_server(lab, name: str) -> dict:
    found = next((p for p in azure_process_servers(lab) if p["name"].lower() == name.lower()), None)
    if found is None:
        names = ", ".join(p["name"] for p in azure_process_servers(lab)) or "none"
        raise InvalidInput(f"no process server in Azure named {name!r}", f"process servers in Azure: {names}")
    using = [r[0] for r in lab.db.execute("SELECT vm FROM failbacks WHERE process_server=?", [found["name"]])]
    if using:
        raise Refused(f"{found['name']} carries the failback of {', '.join(using)}",
                      "remove it once their failback is committed")
    return found


def remove_process_server(lab, name: str) -> None:
    """Delete a process server in Azure (seed 003: once failback is done)."""
    found = check_remove_process_server(lab, name)
    with store.transaction(lab.db):
        lab.db.execute("DELETE FROM azure_resources WHERE kind=? AND name=?", [AZURE_PS, found["name"]])
        lab.event(lab.now, "info", found["name"], f"process server VM deleted from {found['region']}")


def home(lab, vm: VM) -> str:
    """Where a VM runs when it is not failed over: a failed-back physical server's VMware site."""
    if not vm.physical_site:
        return vm.location
    return lab.db.execute("SELECT platform FROM vms WHERE name=?", [vm.name]).fetchone()[0] or vm.location


def failback_row(lab, vm: str) -> dict | None:
    return store.row(lab.db, "SELECT * FROM failbacks WHERE vm=?", [vm])


def azure_region_of(lab, item: dict) -> str | None:
    """The Azure region a physical server runs in after its failover (None: it runs on premises)."""
    if item is None or item["active"] != "recovery":
        return None
    fb = failback_row(lab, item["vm"])
    return fb["region"] if fb else item["target"]


def can_fail_back(lab, item: dict) -> bool:
    """A process server in Azure where the server runs now (the rules table's fact)."""
    region = azure_region_of(lab, item)
    return bool(region and azure_process_servers(lab, region))


@dataclass
class Failback:
    """What `srlab reprotect` may say about a physical server's failback."""

    process_server: str | None = None
    master_target: str | None = None
    datastore: str | None = None


def plan_failback(lab, vm: VM, opts: Failback) -> dict:
    """The failbacks row reprotecting this server to VMware would make, or raise with the problem."""
    item = states.item(lab.db, vm.name)
    region = azure_region_of(lab, item)
    site = site_of(lab, vm)
    here = azure_process_servers(lab, region)
    if opts.process_server is None:
        if len(here) != 1:
            raise InvalidInput(f"{len(here)} process servers in {region}: give one with --process-server",
                               ", ".join(p["name"] for p in here))
        ps = here[0]
    else:
        ps = next((p for p in azure_process_servers(lab) if p["name"].lower() == opts.process_server.lower()), None)
        if ps is None:
            raise InvalidInput(f"no process server in Azure named {opts.process_server!r}",
                               f"in {region}: {', '.join(p['name'] for p in here) or 'none'}")
        if ps["region"] != region:
            raise Refused(f"process server {ps['name']} is in {ps['region']}; {vm.name} runs in {region}")
    targets = site.all_master_targets()
    mt = opts.master_target or site.configuration_server
    mt = next((m for m in targets if m.lower() == mt.lower()), None)
    if mt is None:
        raise InvalidInput(f"no master target named {opts.master_target!r} at {site.name}",
                           f"master targets: {', '.join(targets)}")
    vmware_name = _vpn(lab, region)
    if vmware_name is None:
        raise Refused(f"no VPN or ExpressRoute joins {region} to a VMware site",
                      "add a link from the region to the VMware site in the site file")
    vmware = next(v for v in lab.site.vmware_sites if v.name == vmware_name)
    stores = [(h.name, d) for h in vmware.hosts for d in h.datastores]
    want = opts.datastore or stores[0][1]
    host, datastore = next(((h, d) for h, d in stores if d.lower() == want.lower()), (None, None))
    if datastore is None:
        raise InvalidInput(f"no datastore named {want!r} at {vmware.name}",
                           f"datastores: {', '.join(d for _, d in stores)}")
    pol = setup.policy(lab, site.configuration_server)
    return {"vm": vm.name, "region": region, "process_server": ps["name"], "master_target": mt,
            "vmware_site": vmware.name, "vcenter": vmware.vcenter, "esxi_host": host, "datastore": datastore,
            "policy": failback_name(pol["policy_name"]) if pol else ""}


def vmware_folder(row: dict) -> Path:
    """The VMware VM's folder on its datastore (relative to the lab): its disks, and the master
    target's replica beside them."""
    return Path("sites") / slug(row["vmware_site"]) / slug(row["datastore"]) / slug(row["vm"])


def _failback_prereq(lab, run: Run) -> None:
    item = states.item(lab.db, run.target)
    if item is None or item["failover_state"] != states.Failover.COMMITTED:
        raise Refused(f"{run.target} is no longer a committed failover")
    if not azure_process_servers(lab, run.data["region"]):
        raise Refused(f"no process server in {run.data['region']} any more")


def _failback_policy(lab, run: Run) -> None:
    pol = next((p for p in policies(lab) if p["name"] == run.data["policy"]), None)
    what = (f"failback policy {pol['name']}: recovery points kept {pol['retention_h']} h" if pol
            else "the configuration server's policy")
    lab.event(run.t, "info", run.target, f"{what}; {run.data['region']} -> {run.data['vmware_site']} through process "
                                         f"server {run.data['process_server']} and master target "
                                         f"{run.data['master_target']}")


def _seed_vmware_vm(lab, run: Run) -> None:
    """The VMware VM's replica is seeded from the server's own disks (a copy on premises, by the
    master target); the server is off for good. A Resynchronize job then sends only the blocks
    that differ from the VM in Azure."""
    from . import resync  # it imports this module (through protection): asked at run time

    vm = lab.vm(run.target)
    if lab.vm_row(vm.name)["power"] == "running":
        lab.db.execute("UPDATE vms SET power='off', last_shutdown='hard' WHERE name=?", [vm.name])
        lab.event(run.t, "warning", vm.name, f"the physical server {vm.name} was running: turned off (a server "
                                             "that failed over to Azure fails back as a VMware VM only)")
    store_dir = vmware_folder(run.data) / "replica"
    lab.db.execute("DELETE FROM failbacks WHERE vm=?", [vm.name])
    disks_dir = lab.disk_path(vm.name, 0).parent.relative_to(lab.path)
    lab.db["failbacks"].insert({**run.data, "disks_dir": str(disks_dir), "created": run.t})
    lab.db.execute("UPDATE items SET target_kind='vmware', target=?, store=? WHERE vm=?",
                   [run.data["vmware_site"], str(store_dir), vm.name])
    item = states.item(lab.db, vm.name)
    for i, d in enumerate(vm.disks):
        base = lab.replication.base_path(item, i)
        replica.seed_base(lab.disk_path(vm.name, i), base, d.size_bytes, run.t)
    changelog.fsync_dir(base.parent)
    lab.db.execute("UPDATE recovered SET tracking=1 WHERE vm=? AND role='failover'", [vm.name])
    for i in range(len(vm.disks)):
        log_path(lab.replicated_disk(vm.name, i)).write_bytes(b"")
    lab.event(run.t, "info", vm.name, f"VMware VM {vm.name} prepared on {run.data['esxi_host']} "
              f"({run.data['datastore']}) by master target {run.data['master_target']}, its disks seeded from the "
              f"physical server's on premises")
    resync.begin(lab, vm.name, run.t, f"failback {run.data['region']} -> {run.data['vmware_site']}: only the "
                                      "blocks that differ from the disks on premises travel")


jobs.define("reprotect_vmware", "Reprotect (to VMware)", [
    Step("Prerequisites check", 20, _failback_prereq),
    Step("Use the failback policy", 10, _failback_policy),
    Step("Prepare the VMware VM from the server's disks (master target)", 60, _seed_vmware_vm),
    Step("Updating provider state", 10),
])


def failback_link(lab, vm: str) -> tuple[str, str] | None:
    """(Azure region, VMware site) of a server failing back, or None."""
    fb = failback_row(lab, vm)
    item = states.item(lab.db, vm) if fb else None
    return (fb["region"], fb["vmware_site"]) if item and item["target_kind"] == "vmware" else None


def failback_cache(lab, vm: str) -> Path | None:
    """Where a failing-back server's shipments wait: the Azure process server's cache."""
    fb = failback_row(lab, vm)
    if fb is None or failback_link(lab, vm) is None:
        return None
    return Path("recovery") / slug(fb["region"]) / slug(fb["process_server"]) / "cache" / slug(vm)


def vmware_disks(lab, vm: VM) -> list[Path]:
    """The failed-back server's disks: in its VMware VM's folder (the disks rows move there)."""
    fb = failback_row(lab, vm.name)
    folder = vmware_folder(fb)
    out = []
    for i in range(len(vm.disks)):
        p = folder / lab.disk_path(vm.name, i).name
        lab.db.execute("UPDATE disks SET path=? WHERE vm=? AND idx=?", [str(p), vm.name, i])
        out.append(lab.path / p)
    (lab.path / folder).mkdir(parents=True, exist_ok=True)
    return out


def commit_failback(lab, run: Run, item: dict) -> None:
    """The failback is committed: the server runs as a VMware VM; the replica, the VM in Azure and
    the physical server's disks are gone; protection ends (enable replication to Azure again)."""
    fb = failback_row(lab, run.target)
    lab.replication.remove_replica(item)
    for row in lab.db.query("SELECT * FROM recovered WHERE vm=?", [run.target]):
        lab.db.execute("DELETE FROM recovered WHERE name=?", [row["name"]])
        lab.replication.remove_after_commit(lab.path / row["dir"])
    old = lab.path / fb["disks_dir"]
    if old.exists() and old != lab.disk_path(run.target, 0).parent:  # the VMware VM's disks are elsewhere now
        lab.replication.remove_after_commit(old)
    runs_on = f"VMware VM on {fb['esxi_host']} ({fb['datastore']}), vCenter {fb['vcenter']}"
    lab.db.execute("UPDATE vms SET platform=? WHERE name=?", [fb["vmware_site"], run.target])
    lab.db.execute("DELETE FROM failbacks WHERE vm=?", [run.target])
    physical.forget(lab, run.target)
    states.move(lab.db, run.target, states.Protection.DISABLING)
    states.move(lab.db, run.target, states.Protection.NOT_PROTECTED)
    pol = setup.policy(lab, site_of(lab, lab.vm(run.target)).configuration_server)
    lab.event(run.t, "info", run.target, f"failback committed: {run.target} runs as a {runs_on}; the VM in Azure and "
              f"the physical server's disks are deleted. Enable replication to Azure again: srlab protect "
              f"{run.target}" + (f" --policy {pol['policy_name']}" if pol else ""))


def data_path(lab, vm: VM, item: dict) -> dict:
    """The way a physical server's data goes now: through its process server on premises to the
    storage account, or, failing back, through the process server in Azure to the VMware site;
    where it waits and how much waits there."""
    fb = failback_row(lab, vm.name) if item["target_kind"] == "vmware" else None
    waiting = lab.db.execute("SELECT COALESCE(SUM(wire_bytes), 0) FROM transfers WHERE vm=?", [vm.name]).fetchone()[0]
    if fb:
        return {"kind": "failback", "process_server": f"{fb['process_server']} (Azure)",
                "to": f"{fb['vmware_site']} ({fb['datastore']})", "cache_dir": str(failback_cache(lab, vm.name)),
                "waiting_bytes": int(waiting), "azure_process_server": fb["process_server"],
                "master_target": fb["master_target"], "vmware_site": fb["vmware_site"], "esxi_host": fb["esxi_host"],
                "datastore": fb["datastore"], "policy": fb["policy"], "region": fb["region"]}
    ps = physical.process_server_of(lab, vm)
    pol = setup.policy(lab, site_of(lab, vm).configuration_server)
    return {"kind": "replication", "process_server": ps.name, "to": pol["storage_account"],
            "cache_dir": str(physical.cache_dir(lab, vm)), "waiting_bytes": int(waiting), "region": pol["target"],
            "policy": pol["policy_name"]}
