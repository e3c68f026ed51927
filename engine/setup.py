"""The vault's setup (seed 004, STEP 2): servers, agents, cloud protection, networks, links;
and its teardown (STEP 4): a cloud's protection settings removed, a server unregistered.

Each command has a `check_` that raises with the reason; Lab.allowed() asks the same check, so
the CLI and the TUI refuse for the same reasons. The job kinds of this family are declared at
the end of the module, each step beside what it does.
"""

from __future__ import annotations

import math
import os
import shlex
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import jobs, rules, scenarios, states, store
from .errors import InvalidInput, Refused
from .jobs import Run, Step
from .model import MBPS_MAX, VM, PhysicalSite, slug
from .replication import changelog
from .replication.link import LINK_STATES

# ---- servers --------------------------------------------------------------------------------


def _server(lab, name: str):
    s = next((s for s in lab.site.vmm_servers if s.name.lower() == name.lower()), None)
    if s is None:
        names = ", ".join(x.name for x in lab.site.vmm_servers) or "none"
        css = ", ".join(p.configuration_server for p in lab.site.physical_sites)
        what = "VMM server or configuration server" if css else "VMM server"
        raise InvalidInput(f"no {what} named {name!r} in this lab",
                           f"VMM servers: {names}" + (f"; configuration servers: {css}" if css else ""))
    return s


def _registrable(lab, name: str) -> tuple[str, str]:
    """(the server's proper name, its Register job kind): a VMM server or a configuration server."""
    from . import physical

    site = physical.configuration_site(lab, name)
    if site is not None:
        return site.configuration_server, "register_configuration_server"
    return _server(lab, name).name, "register_server"


def registered(lab, server: str) -> dict | None:
    return next(lab.db.query("SELECT * FROM servers WHERE name=?", [server]), None)


def check_register_server(lab, name: str) -> tuple[str, str]:
    server, kind = _registrable(lab, name)
    if registered(lab, server):
        raise Refused(f"{server} is already registered with the vault")
    if jobs.running(lab.db, kind, server):
        raise Refused(f"{server} is being registered (a {jobs.KINDS[kind].name} job is running)",
                      "wait for it: srlab run --for 5m")
    return server, kind


def register_server(lab, name: str) -> int:
    """Install the provider on a VMM server, or set up a configuration server (seed 003), and
    register it (creates the data-encryption key)."""
    server, kind = check_register_server(lab, name)
    return jobs.create(lab.db, lab.now, kind, server)


def key_server(lab, vm: VM) -> str:
    """The server whose data-encryption key seals the VM's replication: its VMM server, or the
    configuration server of a physical server."""
    if vm.physical_site:
        return lab.site.physical_site(vm.physical_site).configuration_server
    return lab.site.clouds()[vm.cloud][0].name


def encryption_key(lab, vm: VM) -> bytes:
    server = key_server(lab, vm)
    reg = registered(lab, server)
    path = lab.path / reg["key_file"] if reg and reg["key_file"] else None
    if path is None or not path.is_file():
        raise Refused(f"the data-encryption key of {server} is missing ({path})",
                      "restore the key file made at server registration")
    return path.read_bytes()


# ---- agents ---------------------------------------------------------------------------------


def _host(lab, name: str):
    hosts = lab.site.hosts()
    found = hosts.get(name) or next((v for k, v in hosts.items() if k.lower() == name.lower()), None)
    if found is None:
        raise InvalidInput(f"no Hyper-V host named {name!r} in this lab", f"hosts: {', '.join(hosts) or 'none'}")
    return found


def has_agent(lab, host: str) -> bool:
    return lab.db.execute("SELECT 1 FROM agents WHERE host=?", [host]).fetchone() is not None


def check_install_agent(lab, host: str):
    server, h = _host(lab, host)
    if has_agent(lab, h.name):
        raise Refused(f"the Recovery Services agent is already installed on {h.name}")
    if not registered(lab, server.name):
        raise Refused(f"{h.name}'s VMM server {server.name} is not registered with the vault",
                      f"register it first: srlab server register {server.name}")
    if jobs.running(lab.db, "install_agent", h.name):
        raise Refused(f"the agent is being installed on {h.name}", "wait for it: srlab run --for 5m")
    if jobs.running(lab.db, "unregister_server", server.name):
        raise Refused(f"{h.name}'s VMM server {server.name} is being unregistered")
    return h


def install_agent(lab, host: str) -> int:
    h = check_install_agent(lab, host)
    return jobs.create(lab.db, lab.now, "install_agent", h.name)


# ---- cloud protection settings (the container's replication policy) ------------------------------


def policy(lab, container: str) -> dict | None:
    """The replication policy of a protection container (a VMM cloud, an Azure region, a
    configuration server), or None until one is set."""
    return store.row(lab.db, "SELECT * FROM protection_settings WHERE container=?", [container])


def failover_needs_key(pol: dict | None) -> bool:
    """Must a failover be given the data-encryption key file? Hyper-V's key stays on premises
    (004); a process server encrypts with its configuration server's key, which the vault holds (003)."""
    return bool(pol and pol["encrypt"] and pol["container_kind"] == "VMM cloud")


def link_of(lab, vm: VM) -> tuple[str, str] | None:
    """(source place, target place) of the VM's replication now, or None before its container has
    a policy. An Azure VM replicates from the region it runs in to the other one (both ways); a
    physical server failing back, from its Azure region to the VMware site."""
    from . import vmware  # it imports this module
    sides = dict(lab.db.execute("SELECT side, region FROM a2a_sides WHERE vm=?", [vm.name]).fetchall())
    if len(sides) == 2:
        row = lab.db.execute("SELECT active FROM items WHERE vm=?", [vm.name]).fetchone()
        here = row[0] if row else "primary"
        return sides[here], sides["recovery" if here == "primary" else "primary"]
    if vm.physical_site and (back := vmware.failback_link(lab, vm.name)):
        return back
    pol = policy(lab, scenarios.container_of(vm, lab.site).name)
    return (vm.location, pol["target"]) if pol else None


def _cloud(lab, name: str):
    clouds = lab.site.clouds()
    key = name if name in clouds else next((c for c in clouds if c.lower() == name.lower()), None)
    if key is None:
        raise InvalidInput(f"no cloud named {name!r} in this lab", f"clouds: {', '.join(clouds) or 'none'}")
    return clouds[key]


def cloud_problems(lab, cloud: str, in_job: bool = False) -> list[str]:
    """What stops any protection settings being saved for this cloud now (`in_job`: asked by
    the Configure protection job itself, which is the running job)."""
    server, c = _cloud(lab, cloud)
    problems = []
    if not registered(lab, server.name):
        problems.append(f"VMM server {server.name} is not registered with the vault "
                        f"(srlab server register {server.name})")
    if "Hyper-V" not in c.capability_profiles:
        problems.append(f"cloud {c.name} has no Hyper-V capability profile; add it in VMM")
    members = [v.name for v in lab.site.vms if v.cloud == c.name]
    if any(states.item(lab.db, m) for m in members):
        problems.append(f"cloud {c.name} has protected VMs; disable their protection before changing its settings")
    if not in_job and jobs.running(lab.db, "configure_cloud", c.name):
        problems.append(f"cloud {c.name} is already being configured")
    if jobs.running(lab.db, "unprotect_cloud", c.name):
        problems.append(f"the protection settings of cloud {c.name} are being removed; wait for that job to end")
    if jobs.running(lab.db, "unregister_server", server.name):
        problems.append(f"VMM server {server.name} is being unregistered")
    return problems


def check_cloud_basics(lab, cloud: str) -> None:
    problems = cloud_problems(lab, cloud)
    if problems:
        raise Refused(problems[0])


def check_configure_cloud(lab, cloud: str, target: str, storage_account: str | None, frequency: str,
                          retention_h: int, app_consistent_h: int, encrypt: bool, start: str) -> dict:
    server, c = _cloud(lab, cloud)
    problems = cloud_problems(lab, cloud) + rules.policy_problems(frequency, retention_h, app_consistent_h, start)
    kind = scenarios.target_named(target)
    place, more = kind.settings_problems(lab.site, c.name, target, storage_account, encrypt,
                                         lambda h: has_agent(lab, h), lambda s: registered(lab, s))
    problems += more
    reg = registered(lab, server.name)
    if encrypt and kind.encrypts and reg and not reg["key_file"]:
        problems.append(f"encryption needs the data-encryption key made when {server.name} was registered")
    if problems:
        raise Refused(f"cannot configure protection for cloud {c.name}:\n  - " + "\n  - ".join(problems),
                      "fix the settings above and try again; nothing was changed")
    return {"container": c.name, "target_kind": kind.kind, "target": place,
            "storage_account": storage_account or "", "frequency": rules.FREQUENCIES[frequency],
            "retention_h": retention_h, "app_consistent_h": app_consistent_h, "encrypt": int(encrypt),
            "start": start}


def configure_cloud(lab, cloud: str, target: str, storage_account: str | None = None, frequency: str = "5m",
                    retention_h: int = 0, app_consistent_h: int = 0, encrypt: bool = False,
                    start: str = "now") -> int:
    """Set a cloud's replication policy (a 'Configure protection' job)."""
    settings = check_configure_cloud(lab, cloud, target, storage_account, frequency, retention_h,
                                     app_consistent_h, encrypt, start)
    return jobs.create(lab.db, lab.now, "configure_cloud", settings["container"], settings)


# ---- network mapping ------------------------------------------------------------------------


def _networks(lab) -> tuple[set[str], set[str]]:
    vmm = {n.name for s in lab.site.vmm_servers for n in s.vm_networks}
    azure = {n.name for r in lab.site.regions().values() for n in r.virtual_networks}
    return vmm, azure


def check_map_network(lab, source: str, target: str) -> None:
    vmm, azure = _networks(lab)
    if source not in vmm:
        raise InvalidInput(f"no VM network named {source!r}", f"VM networks: {', '.join(sorted(vmm)) or 'none'}")
    if target not in vmm | azure:
        raise InvalidInput(f"no network named {target!r} to map to",
                           f"Azure virtual networks: {', '.join(sorted(azure)) or 'none'}; "
                           f"VM networks: {', '.join(sorted(vmm))}")
    if target == source:
        raise Refused("a network cannot be mapped to itself")
    if reason := _mapping_target_problem(lab, source, target):
        raise Refused(*reason)
    row = lab.db.execute("SELECT target FROM network_mappings WHERE source=?", [source]).fetchone()
    if row:
        raise Refused(f"{source} is already mapped to {row[0]}", f"unmap it first: srlab network unmap {source!r}")


def _mapping_target_problem(lab, source: str, target: str) -> tuple[str, str] | None:
    """Is TARGET at the recovery side for SOURCE? (reason, hint) if not. An Azure virtual network
    must be in the vault's region (seed 004: the vault, storage account and network share one
    region). A VM network must belong to a VMM server that has a cloud to recover into: another
    VMM server, or the source's own server when it manages a second cloud (seed 001)."""
    site = lab.site
    vault = site.vault_region()
    azure = {n.name: r.name for r in site.regions().values() for n in r.virtual_networks}
    vmm = {n.name: s for s in site.vmm_servers for n in s.vm_networks}
    if target in azure:
        if azure[target] != vault:
            here = sorted(n for n, r in azure.items() if r == vault)
            return (f"Azure virtual network {target} is in {azure[target]}; a target network must be in the "
                    f"vault's region {vault}",
                    f"Azure virtual networks in {vault}: {', '.join(here) or 'none'}")
        return None
    src, dst = vmm[source], vmm[target]
    if not dst.clouds:
        return (f"VM network {target} belongs to VMM server {dst.name}, which manages no cloud to recover into",
                "map to a VM network of the recovery site's VMM server")
    if dst is src and len(src.clouds) < 2:
        here = sorted(n for n, r in azure.items() if r == vault)
        return (f"VM network {target} is on the source's own VMM server {src.name}, which has no second cloud: "
                "it is not at a recovery side",
                f"map to an Azure virtual network in {vault} ({', '.join(here) or 'none'}) or to a VM network "
                "of the recovery site's VMM server")
    return None


def map_network(lab, source: str, target: str) -> None:
    check_map_network(lab, source, target)
    with store.transaction(lab.db):
        lab.db["network_mappings"].insert({"source": source, "target": target})
        lab.event(lab.now, "info", source, f"network mapped to {target}")


def check_unmap_network(lab, source: str) -> None:
    if not lab.db.execute("SELECT 1 FROM network_mappings WHERE source=?", [source]).fetchone():
        raise Refused(f"{source!r} is not mapped", "see mappings with: srlab resources")


def unmap_network(lab, source: str) -> None:
    check_unmap_network(lab, source)
    with store.transaction(lab.db):
        lab.db.execute("DELETE FROM network_mappings WHERE source=?", [source])
        lab.event(lab.now, "info", source, "network mapping removed")


# ---- links ----------------------------------------------------------------------------------


def ensure_links(lab) -> None:
    with store.transaction(lab.db):
        for link in lab.site.links:
            lab.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, ?, ?)",
                           [link.source, link.target, link.mbps, link.state])


def find_link(lab, source: str | None, target: str | None) -> dict:
    """The link named (SOURCE, TARGET), or the lab's only link when none is named."""
    all_links = list(lab.db.query("SELECT * FROM links"))
    links = [l for l in all_links if l["source"] == source and l["target"] == target] if source or target else all_links
    if not links:
        if source:
            raise InvalidInput(f"no link {source!r} -> {target!r}",
                               "links: " + ", ".join(f"{l['source']} -> {l['target']}" for l in all_links))
        raise InvalidInput("this lab has no links yet", "a link is made when a cloud is configured")
    if len(links) > 1:
        raise InvalidInput("this lab has several links: name one (SOURCE TARGET)")
    return links[0]


def check_link_values(mbps: float | None, state: str | None) -> None:
    if mbps is not None and not (math.isfinite(mbps) and 0 < mbps <= MBPS_MAX):
        raise InvalidInput(f"bandwidth must be greater than 0 and at most {MBPS_MAX:.0f} Mbps (1 Tbps), not {mbps}")
    if state is not None and state not in LINK_STATES:
        raise InvalidInput(f"link state must be one of {', '.join(LINK_STATES)}, not {state!r}")
    if mbps is None and state is None:
        raise InvalidInput("nothing to change", "give --mbps N and/or --state up|down|lossy")


def set_link(lab, source: str | None = None, target: str | None = None, mbps: float | None = None,
             state: str | None = None) -> dict:
    link = find_link(lab, source, target)
    check_link_values(mbps, state)
    with store.transaction(lab.db):
        lab.db.execute("UPDATE links SET mbps=COALESCE(?, mbps), state=COALESCE(?, state) "
                       "WHERE source=? AND target=?", [mbps, state, link["source"], link["target"]])
        lab.event(lab.now, "info", f"{link['source']} -> {link['target']}",
                  f"link set to {mbps or link['mbps']:g} Mbps, {state or link['state']}")
    return next(lab.db.query("SELECT * FROM links WHERE source=? AND target=?", [link["source"], link["target"]]))


# ---- teardown (seed 004 STEP 4): a cloud's protection removed, then its server unregistered -------


def _protected_members(lab, cloud: str) -> list[str]:
    return [v.name for v in lab.site.vms if v.cloud == cloud and states.item(lab.db, v.name)]


def _unprotect_cloud_blockers(lab, cloud: str) -> list[tuple[str, str]]:
    """What stops a cloud's protection settings being removed: (reason, hint) each."""
    out = []
    protected = _protected_members(lab, cloud)
    if protected:
        out.append((f"cloud {cloud} has protected VMs: {', '.join(protected)}",
                    f"disable their protection first: srlab unprotect {' '.join(map(shlex.quote, protected))}"))
    if jobs.running(lab.db, "configure_cloud", cloud):
        out.append((f"cloud {cloud} is being configured (a Configure protection job is running)",
                    "wait for it to end: srlab run --for 5m"))
    return out


def check_unprotect_cloud(lab, cloud: str):
    server, c = _cloud(lab, cloud)
    if jobs.running(lab.db, "unprotect_cloud", c.name):
        raise Refused(f"the protection settings of cloud {c.name} are already being removed",
                      "wait for it: srlab run --for 5m")
    blockers = _unprotect_cloud_blockers(lab, c.name)
    if blockers:
        raise Refused(*blockers[0])
    if policy(lab, c.name) is None:
        raise Refused(f"cloud {c.name} has no protection settings", "see each cloud's settings with: srlab resources")
    return c


def unprotect_cloud(lab, cloud: str) -> int:
    """Remove a cloud's protection settings (a 'Remove protection settings' job). Its VMs'
    protection must be disabled first; the cloud's links and the vault's network mappings stay."""
    c = check_unprotect_cloud(lab, cloud)
    with store.transaction(lab.db):
        job = jobs.create(lab.db, lab.now, "unprotect_cloud", c.name)
        lab.event(lab.now, "info", c.name, "removing the cloud's protection settings")
    return job


def _unprotect_all(clouds: list[str]) -> str:
    return "; ".join(f"srlab cloud unprotect {shlex.quote(c)}" for c in clouds)


def _unregister_blockers(lab, server) -> list[tuple[str, str]]:
    """What stops a VMM server being unregistered: (reason, hint) each."""
    out = []
    configured = [c.name for c in server.clouds
                  if policy(lab, c.name) or jobs.running(lab.db, "configure_cloud", c.name)]
    if configured:
        many = len(configured) > 1
        out.append((f"{server.name}'s cloud{'s' if many else ''} {', '.join(configured)} "
                    f"{'have' if many else 'has'} protection settings",
                    "remove them first: " + _unprotect_all(configured)))
    mine = {c.name for c in server.clouds}
    using = [r["container"] for r in lab.db.query("SELECT container, target FROM protection_settings WHERE target_kind='cloud'")
             if r["target"] in mine and r["container"] not in mine]
    if using:
        out.append((f"{server.name} manages the recovery cloud of {', '.join(using)}",
                    "remove those settings first: " + _unprotect_all(using)))
    installing = [h.name for h in server.hosts if jobs.running(lab.db, "install_agent", h.name)]
    if installing:
        out.append((f"the agent is being installed on {', '.join(installing)}", "wait for it: srlab run --for 5m"))
    return out


def check_unregister_server(lab, name: str):
    from . import physical

    if (site := physical.configuration_site(lab, name)) is not None:
        return physical.check_unregister(lab, site)
    s = _server(lab, name)
    if jobs.running(lab.db, "register_server", s.name):
        raise Refused(f"{s.name} is being registered (a Register server job is running)",
                      "wait for it: srlab run --for 5m")
    if jobs.running(lab.db, "unregister_server", s.name):
        raise Refused(f"{s.name} is already being unregistered", "wait for it: srlab run --for 5m")
    if not registered(lab, s.name):
        raise Refused(f"{s.name} is not registered with the vault")
    blockers = _unregister_blockers(lab, s)
    if blockers:
        raise Refused(*blockers[0])
    return s


def unregister_server(lab, name: str) -> int:
    """Unregister a VMM server (an 'Unregister server' job): its row, its hosts' agents and its
    data-encryption key file go. Its clouds' protection settings must be removed first."""
    s = check_unregister_server(lab, name)
    server, kind = ((s.configuration_server, "unregister_configuration_server") if isinstance(s, PhysicalSite)
                    else (s.name, "unregister_server"))
    with store.transaction(lab.db):
        job = jobs.create(lab.db, lab.now, kind, server)
        lab.event(lab.now, "info", server, "unregistering the server from the vault")
    return job


# ---- job kinds ------------------------------------------------------------------------------


def _not_yet_registered(lab, run: Run) -> None:
    if registered(lab, run.target):
        raise Refused(f"{run.target} is already registered")


def _register(lab, run: Run) -> None:
    lab.db["servers"].insert({"name": run.target, "kind": "vmm", "registered_at": run.t, "key_file": ""})


def _make_key(lab, run: Run) -> None:
    # The seed's DataEncryptionCertificate: needed to fail over encrypted data.
    key = Path("keys") / f"{slug(run.target)}-DataEncryptionCertificate.key"
    changelog.write_durable(lab.path / key, AESGCM.generate_key(bit_length=256))
    os.chmod(lab.path / key, 0o600)
    lab.db.execute("UPDATE servers SET key_file=? WHERE name=?", [str(key), run.target])


def _registered_event(lab, run: Run) -> None:
    lab.event(run.t, "info", run.target, "server registered with the vault")


jobs.define("register_server", "Register server", [
    Step("Validate the vault registration key", 20, _not_yet_registered),
    Step("Register the server with the vault", 40, _register),
    Step("Create the data-encryption key", 10, _make_key),
    Step("Synchronize cloud metadata", 30, _registered_event),
])


def _agent_installed(lab, run: Run) -> None:
    lab.db["agents"].insert({"host": run.target, "installed_at": run.t})
    lab.event(run.t, "info", run.target, "Recovery Services agent installed")


jobs.define("install_agent", "Install Recovery Services agent", [
    Step("Check prerequisites", 10),
    Step("Install the agent", 60),
    Step("Connect the agent to the provider", 20, _agent_installed),
])


def _validate_settings(lab, run: Run) -> None:
    problems = cloud_problems(lab, run.target, in_job=True)
    if problems:
        raise Refused(problems[0])


def _save_settings(lab, run: Run) -> None:
    data = {**run.data, "configured_at": run.t}
    data["container"] = data.pop("cloud", None) or data["container"]  # a job started before schema 8
    lab.db["protection_settings"].insert(data, pk="container", replace=True)
    vm = next((v for v in lab.site.vms if v.cloud == run.target), None)
    source = vm.location if vm else run.target
    # A link the site file did not describe gets a default 100 Mbps.
    lab.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, 100, 'up')", [source, data["target"]])
    lab.event(run.t, "info", run.target, f"protection configured: replicate to {data['target']} "
                                         f"every {data['frequency']}s, keep {data['retention_h']} h")


jobs.define("configure_cloud", "Configure protection", [
    Step("Validate protection settings", 20, _validate_settings),
    Step("Configure Hyper-V Replica on the cloud's hosts", 60),
    Step("Save the cloud's protection settings", 10, _save_settings),
])


def _still_removable(lab, run: Run) -> None:
    blockers = _unprotect_cloud_blockers(lab, run.target)
    if blockers:
        raise Refused(blockers[0][0])


def _remove_settings(lab, run: Run) -> None:
    _still_removable(lab, run)  # nothing may have been protected meanwhile
    lab.db.execute("DELETE FROM protection_settings WHERE container=?", [run.target])
    lab.event(run.t, "info", run.target, "protection settings removed: the cloud has no replication policy")


jobs.define("unprotect_cloud", "Remove protection settings", [
    Step("Validate that no VM of the cloud is protected", 10, _still_removable),
    Step("Remove Hyper-V Replica settings from the cloud's hosts", 30),
    Step("Remove the cloud's protection settings", 10, _remove_settings),
])


def _still_unregistrable(lab, run: Run) -> None:
    blockers = _unregister_blockers(lab, _server(lab, run.target))
    if blockers:
        raise Refused(blockers[0][0])


def _forget_agents(lab, run: Run) -> None:
    _still_unregistrable(lab, run)
    hosts = [h.name for h in _server(lab, run.target).hosts]
    lab.db.execute(f"DELETE FROM agents WHERE host IN ({','.join('?' * len(hosts))})", hosts)


def _unregister(lab, run: Run) -> None:
    _still_unregistrable(lab, run)
    reg = registered(lab, run.target)
    lab.db.execute("DELETE FROM servers WHERE name=?", [run.target])
    if reg and reg["key_file"]:  # a rerun of this step after a kill finds the file gone: fine
        (lab.path / reg["key_file"]).unlink(missing_ok=True)
    s = _server(lab, run.target)
    hosts = ", ".join(h.name for h in s.hosts)
    lab.event(run.t, "info", run.target,
              f"server unregistered; its data-encryption key {reg['key_file'] if reg else ''} is deleted. "
              f"Uninstall the provider from {s.name}" + (f" and the agent from {hosts}" if hosts else ""))


jobs.define("unregister_server", "Unregister server", [
    Step("Validate that no cloud of the server has protection settings", 10, _still_unregistrable),
    Step("Remove the agents of the server's hosts from the vault", 20, _forget_agents),
    Step("Unregister the server and delete its data-encryption key", 20, _unregister),
])
