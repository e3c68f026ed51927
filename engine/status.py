"""What the lab looks like now, as plain data (JSON-ready): items, VMs, the vault's resources, RPO.

Read-only queries; `srlab status`, `srlab resources` and the app's panels show these.
"""

from __future__ import annotations

from . import azure, faults, physical, resync, rules, scenarios, setup, states, vmware
from .clock import format_time
from .disks import allocated_bytes_shown
from .model import VM
from .states import Protection


def policy_public(pol: dict) -> dict:
    """A container's replication policy. `batch` > 0: continuous replication (Azure -> Azure), its
    writes sent every `batch` seconds, a crash-consistent point every `frequency` seconds."""
    return {"container": pol["container"], "container_kind": pol["container_kind"], "name": pol["policy_name"],
            "target": pol["target"], "target_kind": pol["target_kind"],
            "storage_account": pol["storage_account"], "frequency": pol["frequency"],
            "retention_h": pol["retention_h"], "app_consistent_h": pol["app_consistent_h"],
            "encrypt": bool(pol["encrypt"]), "key_at_failover": setup.failover_needs_key(pol), "start": pol["start"],
            "batch": pol["batch"]}


def a2a_policy(pol: dict, a2a: dict) -> dict:
    """An Azure VM's policy as it replicates now: reprotected, the same policy on the reverse
    mapping (from the region it runs in to its home region)."""
    return {**policy_public(pol), "container": a2a["from"], "target": a2a["to"]}


def item_status(lab, vm: VM) -> dict:
    """Protection columns of one VM, as the seed's protected-items list shows them."""
    item = states.item(lab.db, vm.name)
    home = vmware.home(lab, vm)
    if item is None:
        return {"protection": Protection.NOT_PROTECTED.value, "health": "", "active_location": home,
                "failover_state": "", "target_size": rules.pick_target_size(vm) or "", "target_name": "",
                "target_network": "",
                "nic": "", "rpo_seconds": None, "last_replication": None, "progress": None, "policy": None,
                "errors": [], "health_reason": "", "health_action": "", "error_code": "", "retry": None,
                "azure": None, "path": None}
    now = lab.now
    pol = lab.replication.policy(vm.name)
    latest = lab.db.execute("SELECT MAX(time) FROM points WHERE vm=?", [vm.name]).fetchone()[0]
    state = Protection(item["state"])
    rpo = rpo_seconds(state, latest, item["last_replication"], now)
    progress = None
    text = state.value
    if state == Protection.INITIAL:
        total = max(1, item["initial_total"])
        progress = 100 if item["initial_done_at"] else min(99, item["initial_done"] * 100 // total)
        text = f"{state} {progress}%"
    elif state == Protection.RESYNC:
        progress = resync.progress(lab, vm)
        text = f"{state} {progress}%"
    elif state == Protection.INITIAL_PENDING:
        text = f"{state} (starts {format_time(item['start_at'])})"
    # Failed over: no replication to judge (the portal says "not applicable").
    health, reason, action = rules.item_health(faults.health_facts(lab, item, rpo, pol["frequency"], vm))
    nic = next((n for n in vm.nics if n.name == item["nic"]), None)
    mapped = lab.db.execute("SELECT target FROM network_mappings WHERE source=?",
                            [nic.network if nic else ""]).fetchone()
    target = scenarios.TARGETS[item["target_kind"]]
    active = home if item["active"] == "primary" else ("Microsoft Azure" if target.picks_size else item["target"])
    if item["target_kind"] == "vmware":  # a physical server failing back: from Azure, to a VMware VM
        active = item["target"] if item["active"] == "primary" else "Microsoft Azure"
    a2a = azure.item_view(lab, vm)
    if a2a:
        active = a2a["sides"][item["active"]]["region"]
        mapped = (a2a["sides"][azure.other(item["active"])]["network"],)  # the other side's, not a mapping
    return {
        "protection": text,
        "health": health,
        "target_network": mapped[0] if mapped else "",
        "active_location": active,
        "failover_state": item["failover_state"],
        "target_size": item["target_size"],
        "target_name": item["target_name"],
        "nic": item["nic"],
        "rpo_seconds": rpo,
        "last_replication": item["last_replication"],
        "progress": progress,
        "policy": a2a_policy(pol, a2a) if a2a else policy_public(pol),
        "errors": [item["error"]] if item["error"] else [],
        "health_reason": reason,
        "health_action": action,
        "error_code": item["error_code"],
        "retry": {"failures": item["failures"], "first_failure": item["first_failure"], "next_attempt": item["retry_at"]}
        if item["failures"] else None,
        "azure": a2a,  # Azure -> Azure: its two sides, the resources created for it, the cache's bytes
        "path": vmware.data_path(lab, vm, item) if vm.physical_site else None,  # a physical server's
    }


def recovered_vms(lab, vm: VM) -> list[dict]:
    """The VMs built from this one at the recovery side (test or failover), with their disks."""
    out = []
    for r in lab.db.query("SELECT * FROM recovered WHERE vm=? ORDER BY name", [vm.name]):
        out.append({"name": r["name"], "role": r["role"], "place": r["place"], "network": r["network"] or "(isolated)",
                    "power": r["power"], "point": r["point"], "last_transaction": r["writes_done"],
                    "resource_group": r["resource_group"], "subnet": r["subnet"],
                    "availability_set": r["availability_set"],
                    "disks": [str(lab.path / r["dir"] / lab.disk_path(vm.name, i).name) for i in range(len(vm.disks))]})
    return out


def _site_of(lab, vm: VM) -> str:
    if vm.cloud:
        return lab.site.clouds()[vm.cloud][0].name
    return vm.region or vm.physical_site


def status(lab) -> dict:
    """Everything `srlab status` shows."""
    vms = []
    for vm in lab.site.vms:
        row = lab.vm_row(vm.name)
        disks = []
        for i, d in enumerate(vm.disks):
            p = lab.disk_path(vm.name, i)
            disks.append({
                "name": d.name, "role": d.role, "path": str(p), "format": "vhd-fixed",
                "declared": f"{d.format} {d.type}", "logical_bytes": d.size_bytes,
                "allocated_bytes": allocated_bytes_shown(p, d.size_bytes),
            })
        vms.append({
            "name": vm.name, "site": _site_of(lab, vm), "cloud": vm.cloud, "location": vm.location,
            "container": scenarios.container_of(vm, lab.site).name,  # what its protection hangs off
            "host": vm.host, "os": vm.os, "generation": vm.generation, "cpus": vm.cpus,
            "memory_mb": vm.memory_mb, "power": row["power"], "writes": row["writes_done"],
            "workload_rate_kib_s": row["rate_kib"] if row["rate_kib"] is not None else vm.workload.rate_kib_s,
            "disks": disks, **item_status(lab, vm), "recovered": recovered_vms(lab, vm),
        })
    return {"lab": str(lab.path), "name": lab.site.lab.name, "scenario": lab.site.lab.scenario,
            "now": lab.now, "now_text": format_time(lab.now), "vms": vms, "faults": faults.listing(lab),
            "containers": container_health(vms)}


def container_health(vms: list[dict]) -> list[dict]:
    """Health per container (VMM cloud...): the worst of its items', with the worst item's reason."""
    out = []
    for name in sorted({v["container"] for v in vms if v["health"]}):
        mine = [v for v in vms if v["container"] == name and v["health"]]
        worst = rules.worst_health([v["health"] for v in mine])
        bad = [v for v in mine if v["health"] == worst and worst != "OK"]
        reason = (f"{bad[0]['name']}: {bad[0]['health_reason']}" + (f" (and {len(bad) - 1} more)" if len(bad) > 1 else "")
                  if bad else "")
        out.append({"name": name, "health": worst, "reason": reason, "action": bad[0]["health_action"] if bad else "",
                    "items": len(mine)})
    return out


def resources(lab) -> dict:
    """The vault's setup: servers, agents, clouds and their protection, networks, links."""
    db, site = lab.db, lab.site
    servers = {r["name"]: r for r in db.query("SELECT * FROM servers")}
    out = {"vault_region": site.vault_region(), "servers": [], "hosts": [], "clouds": [],
           "networks": [], "mappings": [], "storage_accounts": [], "links": [], "regions": []}
    for s in site.vmm_servers:
        reg = servers.get(s.name)
        out["servers"].append({"name": s.name, "kind": "VMM server", "registered": reg is not None,
                               "key_file": reg["key_file"] if reg else ""})
        out["hosts"] += [{"name": h.name, "server": s.name, "agent_installed": setup.has_agent(lab, h.name)}
                         for h in s.hosts]
        for c in s.clouds:
            pol = setup.policy(lab, c.name)
            out["clouds"].append({"name": c.name, "server": s.name, "hosts": c.hosts,
                                  "protection": policy_public(pol) if pol else None})
        out["networks"] += [{"name": n.name, "side": "vmm", "place": s.name} for n in s.vm_networks]
    for p in site.physical_sites:
        reg = servers.get(p.configuration_server)
        out["servers"].append({"name": p.configuration_server, "kind": "configuration server",
                               "registered": reg is not None, "key_file": reg["key_file"] if reg else ""})
    out["physical"] = physical.components(lab)
    out["vmware_sites"] = [{"name": w.name, "vcenter": w.vcenter,
                            "hosts": [{"name": h.name, "datastores": h.datastores} for h in w.hosts]}
                           for w in site.vmware_sites]
    out["policies"] = physical.policies(lab)
    leaving = azure.replicating_from(lab)
    for r in site.regions().values():
        out["networks"] += [{"name": n.name, "side": "azure", "place": r.name} for n in r.virtual_networks]
        out["storage_accounts"] += [{"name": a.name, "region": r.name, "redundancy": a.redundancy}
                                    for a in r.storage_accounts]
        pol = setup.policy(lab, r.name)
        out["regions"].append({"name": r.name, "paired_region": r.paired_region,
                               "protection": policy_public(pol) if pol else None,
                               "replicating": leaving.get(r.name, [])})
    made = list(db.query("SELECT kind, name, region, made_for, detail, created FROM azure_resources "
                         "ORDER BY created, region, kind, name"))
    out["networks"] += [{"name": m["name"], "side": "azure", "place": m["region"], "made_for": m["made_for"]}
                        for m in made if m["kind"] == "virtual network"]
    out["storage_accounts"] += [{"name": m["name"], "region": m["region"], "redundancy": "local",
                                 "made_for": m["made_for"]} for m in made if m["kind"] == "storage account"]
    out["created_by_site_recovery"] = made
    out["mappings"] = list(db.query("SELECT source, target FROM network_mappings ORDER BY source"))
    out["links"] = list(db.query("SELECT source, target, mbps, state FROM links ORDER BY source, target"))
    out["resync_schedule"] = resync.schedule(lab)  # the vault's off-hours resync time, or off
    return out


# ---- RPO history (the dashboard's sparkline), one sample per container every lab minute -------

def rpo_seconds(state: Protection, latest: int | None, last_replication: int | None, now: int) -> int | None:
    """An item's RPO now: the age of its latest recovery point (none failed over); replicating
    back (reverse), the age of its last replication."""
    if state == Protection.REVERSE and last_replication is not None:
        return now - last_replication
    return now - latest if latest is not None and state != Protection.FAILED_OVER else None


def sample_rpo(lab, t: int) -> None:
    """The worst RPO of each container with a protected VM (one query for all items: this runs
    every lab minute)."""
    now = lab.now
    worst: dict[str, int] = {}
    protected: set[str] = set()
    for vm, state, last_replication, latest in lab.db.execute(
            "SELECT vm, state, last_replication, (SELECT MAX(time) FROM points p WHERE p.vm=i.vm) FROM items i"):
        name = scenarios.container_of(lab.vm(vm), lab.site).name
        state = Protection(state)
        if state == Protection.PROTECTED:
            protected.add(name)
        rpo = rpo_seconds(state, latest, last_replication, now)
        if rpo is not None:
            worst[name] = max(worst.get(name, rpo), rpo)
    for name in protected:
        lab.db.execute("INSERT OR REPLACE INTO rpo_samples VALUES (?, ?, ?)", [name, t, worst.get(name)])


def rpo_history(lab, place: str, limit: int = 1440) -> list[tuple[int, int | None]]:
    rows = lab.db.execute("SELECT time, rpo FROM rpo_samples WHERE place=? ORDER BY time DESC LIMIT ?",
                          [place, limit]).fetchall()
    return [(t, r) for t, r in reversed(rows)]
