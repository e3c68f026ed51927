"""Physical servers -> Azure (seed 003): the configuration server, process servers, the mobility
service, replication policies and the ports between them.

- The **configuration server** is the protection container of its servers. It is registered with
  the vault like a VMM server (`srlab server register CS01`: a Register configuration server job,
  which also installs the default process server and master target and makes the data-encryption
  key). It coordinates: a mobility service registers with it, and protection is enabled through it.
- The **mobility service** runs on each server: pushed by a process server with the site file's
  push account (`srlab mobility install SERVER --push`), or installed by hand (without --push).
- A **replication policy** is created on its own (`srlab policy create`) with its failback policy,
  then associated with a configuration server (`srlab policy associate NAME --server CS01`).
- **The data path**: the mobility service sends a server's writes to its process server, which
  keeps them in its cache folder (sites/<site>/process-servers/<ps>/cache/), compressed (LZ4) and
  encrypted (AES-GCM with the configuration server's key), until they reach the Azure storage
  account: these are the replication cycle's staged shipments (Surroundings.stage_dir).
  Replication is continuous (rules.V2A_BATCH), as through Azure's cache account.
- **Ports** (seed 003): 443 inbound to the configuration server (management), the process
  server's data port inbound (9443 unless the site file says otherwise), 443 outbound to Azure.
  A `port-blocked` fault on one stops exactly what goes through it (engine.faults).
- A **full cache** throttles the servers of its process server: they keep their changes until
  the cache drains (throttle()).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import jobs, rules, setup, states, store
from .errors import InvalidInput, Refused
from .jobs import Run, Step
from .model import MIB, VM, PhysicalSite, ProcessServer, slug

# ---- the site's components ----------------------------------------------------------------------


def configuration_site(lab, name: str) -> PhysicalSite | None:
    """The physical site whose configuration server is `name` (any case), or None."""
    return next((p for p in lab.site.physical_sites if p.configuration_server.lower() == name.lower()), None)


def site_of(lab, vm: VM) -> PhysicalSite:
    return lab.site.physical_site(vm.physical_site)


def _server(lab, name: str) -> VM:
    vm = lab.vm(name)
    if not vm.physical_site:
        raise InvalidInput(f"{vm.name} is not a physical server (it runs in {vm.location})",
                           "the mobility service goes on the servers of a physical site")
    return vm


def process_server(lab, site: PhysicalSite, name: str | None) -> ProcessServer:
    """The process server named (any case) of a site; its default one for None."""
    servers = site.all_process_servers()
    if name is None:
        return servers[0]
    found = next((p for p in servers if p.name.lower() == name.lower()), None)
    if found is None:
        raise InvalidInput(f"no process server named {name!r} at {site.name}",
                           f"process servers: {', '.join(p.name for p in servers)}")
    return found


def mobility(lab, server: str) -> dict | None:
    return store.row(lab.db, "SELECT * FROM mobility WHERE server=?", [server])


def process_server_of(lab, vm: VM) -> ProcessServer:
    """The process server a server's mobility service sends to (set when it was protected)."""
    row = mobility(lab, vm.name)
    site = site_of(lab, vm)
    return process_server(lab, site, row["process_server"] if row and row["process_server"] else None)


# ---- ports (seed 003) ---------------------------------------------------------------------------

MANAGEMENT_PORT = 443  # inbound to the configuration server
OUTBOUND_PORT = 443  # from the configuration and process servers to Azure


def ports(lab) -> dict[str, str]:
    """Every port a `port-blocked` fault can name: 'SERVER:PORT-in|out' -> what goes through it."""
    out = {}
    for p in lab.site.physical_sites:
        cs = p.configuration_server
        out[f"{cs}:{MANAGEMENT_PORT}-in"] = f"management: mobility services and protection talk to {cs}"
        for ps in p.all_process_servers():
            out[f"{ps.name}:{ps.port}-in"] = f"replication data from the mobility services to process server {ps.name}"
            out[f"{ps.name}:{OUTBOUND_PORT}-out"] = f"process server {ps.name} to Azure storage and the vault"
    return out


def port_blocked(lab, name: str) -> bool:
    return lab.db.execute("SELECT 1 FROM faults WHERE kind='port-blocked' AND target=?", [name]).fetchone() is not None


def check_management_port(lab, site: PhysicalSite, what: str) -> None:
    """Refuse when inbound 443 to the configuration server is blocked: `what` needs it."""
    if port_blocked(lab, f"{site.configuration_server}:{MANAGEMENT_PORT}-in"):
        raise Refused(f"{what} cannot reach configuration server {site.configuration_server}: inbound port "
                      f"{MANAGEMENT_PORT} is blocked", "open the port (srlab fault clear port-blocked) and try again")


def data_port(ps: ProcessServer) -> str:
    return f"{ps.name}:{ps.port}-in"


def outbound_port(server: str) -> str:
    return f"{server}:{OUTBOUND_PORT}-out"


# ---- registration -------------------------------------------------------------------------------


def _installed_components(lab, run: Run) -> None:
    site = configuration_site(lab, run.target)
    lab.event(run.t, "info", run.target, f"configuration server installed with the default process server and "
                                         f"master target ({site.name})")


def _connect(lab, run: Run) -> None:
    if port_blocked(lab, outbound_port(run.target)):
        raise Refused(f"configuration server {run.target} cannot reach the vault: outbound port {OUTBOUND_PORT} "
                      "is blocked")


def _register(lab, run: Run) -> None:
    lab.db["servers"].insert({"name": run.target, "kind": "configuration", "registered_at": run.t, "key_file": ""})


def _registered(lab, run: Run) -> None:
    site = configuration_site(lab, run.target)
    extra = [p.name for p in site.all_process_servers()[1:]]
    lab.event(run.t, "info", run.target, "configuration server registered with the vault"
              + (f"; process servers {', '.join(extra)} registered with it" if extra else ""))


jobs.define("register_configuration_server", "Register configuration server", [
    Step("Validate the vault registration key", 20, lambda lab, run: setup._not_yet_registered(lab, run)),
    Step("Install the configuration server, process server and master target", 120, _installed_components),
    Step("Connect to Azure (outbound HTTPS 443)", 20, _connect),
    Step("Register the configuration server with the vault", 40, _register),
    Step("Create the data-encryption key", 10, lambda lab, run: setup._make_key(lab, run)),
    Step("Register the process servers", 20, _registered),
])


def _protected_servers(lab, site: PhysicalSite) -> list[str]:
    return [v.name for v in lab.site.vms if v.physical_site == site.name and states.item(lab.db, v.name)]


def check_unregister(lab, site: PhysicalSite) -> PhysicalSite:
    """Why the configuration server cannot be unregistered now, raised; else its site. Its
    servers' protection must be disabled first (their policy goes with it)."""
    cs = site.configuration_server
    if jobs.running(lab.db, "register_configuration_server", cs):
        raise Refused(f"{cs} is being registered (a Register configuration server job is running)",
                      "wait for it: srlab run --for 5m")
    if jobs.running(lab.db, "unregister_configuration_server", cs):
        raise Refused(f"{cs} is already being unregistered", "wait for it: srlab run --for 5m")
    if not setup.registered(lab, cs):
        raise Refused(f"{cs} is not registered with the vault")
    if protected := _protected_servers(lab, site):
        raise Refused(f"{cs} protects {', '.join(protected)}", "disable their protection first: srlab unprotect "
                      + " ".join(protected))
    if installing := [v.name for v in lab.site.vms if jobs.running(lab.db, "install_mobility", v.name)]:
        raise Refused(f"the mobility service is being installed on {', '.join(installing)}",
                      "wait for it: srlab run --for 5m")
    return site


def _still_unregistrable(lab, run: Run) -> None:
    site = configuration_site(lab, run.target)
    if protected := _protected_servers(lab, site):
        raise Refused(f"{run.target} protects {', '.join(protected)}")


def _disassociate(lab, run: Run) -> None:
    _still_unregistrable(lab, run)
    lab.db.execute("DELETE FROM protection_settings WHERE container=?", [run.target])
    lab.db.execute("UPDATE policies SET server='' WHERE server=?", [run.target])


def _unregister(lab, run: Run) -> None:
    _still_unregistrable(lab, run)
    site = configuration_site(lab, run.target)
    reg = setup.registered(lab, run.target)
    lab.db.execute("DELETE FROM servers WHERE name=?", [run.target])
    if reg and reg["key_file"]:
        (lab.path / reg["key_file"]).unlink(missing_ok=True)
    servers = [v.name for v in lab.site.vms if v.physical_site == site.name]
    lab.db.execute(f"DELETE FROM mobility WHERE server IN ({','.join('?' * len(servers))})", servers)
    lab.event(run.t, "info", run.target, "configuration server unregistered; its data-encryption key is deleted, "
              "its policies are no longer associated, and the mobility services registered with it must be "
              "installed again after a new registration")


jobs.define("unregister_configuration_server", "Unregister configuration server", [
    Step("Validate that no server is protected through it", 10, _still_unregistrable),
    Step("Disassociate its replication policies", 20, _disassociate),
    Step("Unregister the configuration server and delete its data-encryption key", 20, _unregister),
])


# ---- the mobility service -----------------------------------------------------------------------


def check_install_mobility(lab, name: str, push: bool = False, in_job: bool = False) -> VM:
    """The server, or raise why the mobility service cannot be installed on it now (`in_job`:
    asked by the Install mobility service job itself, which is the running job)."""
    vm = _server(lab, name)
    site = site_of(lab, vm)
    cs = site.configuration_server
    if not setup.registered(lab, cs):
        raise Refused(f"{vm.name}'s configuration server {cs} is not registered with the vault",
                      f"register it first: srlab server register {cs}")
    if mobility(lab, vm.name):
        raise Refused(f"the mobility service is already installed on {vm.name}")
    if not in_job and jobs.running(lab.db, "install_mobility", vm.name):
        raise Refused(f"the mobility service is being installed on {vm.name}", "wait for it: srlab run --for 5m")
    if push and not site.push_account:
        raise Refused(f"a push install needs an account on the servers: {site.name} has no push_account in the "
                      "site file", "add push_account to the physical site, or install by hand (leave out --push)")
    if push and lab.vm_row(vm.name)["power"] != "running":
        raise Refused(f"{vm.name} is off: the process server pushes the mobility service to a running server",
                      f"start it (srlab vm start {vm.name}) or install by hand (leave out --push)")
    return vm


def install_mobility(lab, names: list[str], push: bool = False) -> list[int]:
    """An Install mobility service job per server (all are checked before any starts)."""
    vms = [check_install_mobility(lab, n, push) for n in names]
    if len({v.name for v in vms}) < len(vms):
        raise InvalidInput("a server is named twice")
    with store.transaction(lab.db):
        return [jobs.create(lab.db, lab.now, "install_mobility", v.name,
                            {"push": push, "process_server": site_of(lab, v).configuration_server})
                for v in vms]


def _mobility_prereq(lab, run: Run) -> None:
    check_install_mobility(lab, run.target, run.data.get("push", False), in_job=True)


def _install(lab, run: Run) -> None:
    vm = lab.vm(run.target)
    site = site_of(lab, vm)
    if run.data.get("push"):
        if lab.vm_row(vm.name)["power"] != "running":
            raise Refused(f"{vm.name} is off: the push install cannot reach it")
        how = f"pushed by process server {run.data['process_server']} with account {site.push_account}"
    else:
        how = "installed by hand with the configuration server's passphrase"
    lab.event(run.t, "info", vm.name, f"mobility service {how}")


def _register_mobility(lab, run: Run) -> None:
    vm = lab.vm(run.target)
    site = site_of(lab, vm)
    check_management_port(lab, site, f"the mobility service on {vm.name}")
    lab.db["mobility"].insert({"server": vm.name, "method": "push" if run.data.get("push") else "manual",
                               "installed_at": run.t, "process_server": ""}, replace=True)
    lab.event(run.t, "info", vm.name, f"mobility service registered with configuration server "
                                      f"{site.configuration_server}")


jobs.define("install_mobility", "Install mobility service", [
    Step("Prerequisites check", 10, _mobility_prereq),
    Step("Install the mobility service", 90, _install),
    Step("Register with the configuration server (HTTPS 443)", 20, _register_mobility),
])


# ---- replication policies -----------------------------------------------------------------------


def policies(lab) -> list[dict]:
    return list(lab.db.query("SELECT * FROM policies ORDER BY created, name"))


def _policy(lab, name: str) -> dict:
    found = next((p for p in policies(lab) if p["name"].lower() == name.lower()), None)
    if found is None:
        names = ", ".join(p["name"] for p in policies(lab) if p["kind"] == "replication") or "none"
        raise InvalidInput(f"no replication policy named {name!r}", f"policies: {names} (srlab policy create NAME)")
    return found


def failback_name(name: str) -> str:
    return f"{name}-failback"


def check_create_policy(lab, name: str, retention_h: int, app_consistent_h: int) -> None:
    from .sites import name_problem

    if not lab.site.physical_sites:
        raise Refused("replication policies made on their own are for physical servers: this lab has no physical "
                      "site", "a VMM cloud's policy is set with: srlab cloud configure CLOUD ...")
    if problem := name_problem(name):
        raise InvalidInput(f"policy name {name!r} {problem}")
    problems = rules.v2a_policy_problems(retention_h, app_consistent_h)
    if problems:
        raise InvalidInput(f"cannot create policy {name}:\n  - " + "\n  - ".join(problems))
    taken = {p["name"].lower() for p in policies(lab)}
    for n in (name, failback_name(name)):
        if n.lower() in taken:
            raise Refused(f"a policy named {n} exists already", "give another name")


def create_policy(lab, name: str, retention_h: int | None = None, app_consistent_h: int | None = None) -> dict:
    """A replication policy and its failback policy (seed 003: made with it)."""
    ret = rules.V2A_RETENTION_DEFAULT if retention_h is None else retention_h
    app = rules.V2A_APP_CONSISTENT_DEFAULT if app_consistent_h is None else app_consistent_h
    if retention_h is not None and app_consistent_h is None:
        app = min(app, ret)
    check_create_policy(lab, name, ret, app)
    with store.transaction(lab.db):
        for n, kind in ((name, "replication"), (failback_name(name), "failback")):
            lab.db["policies"].insert({"name": n, "kind": kind, "retention_h": ret, "app_consistent_h": app,
                                       "created": lab.now, "server": ""})
        lab.event(lab.now, "info", name, f"replication policy {name} created (recovery points kept {ret} h, "
                  + (f"app-consistent every {app} h" if app else "no app-consistent snapshots")
                  + f"), with its failback policy {failback_name(name)}")
    return _policy(lab, name)


def _storage_account(lab, given: str | None) -> tuple[str, str]:
    """(account, region): the one given, else the vault region's first geo-redundant one."""
    accounts = lab.site.storage_accounts()
    vault = lab.site.vault_region()
    if given is None:
        given = next((n for n, (r, a) in accounts.items() if r.name == vault and a.redundancy == "geo"), None)
        if given is None:
            raise Refused(f"no geo-redundant storage account in the vault's region {vault}",
                          "add one to the site file, or give --storage-account")
    if given not in accounts:
        raise InvalidInput(f"no storage account named {given!r}", f"accounts: {', '.join(accounts) or 'none'}")
    region, acct = accounts[given]
    if region.name != vault:
        raise Refused(f"storage account {given} is in {region.name}; it must be in the vault's region {vault}")
    if acct.redundancy != "geo":
        raise Refused(f"storage account {given} is {acct.redundancy}ly redundant; it must be geo-redundant")
    return given, region.name


def check_associate(lab, name: str, server: str, storage_account: str | None = None) -> dict:
    pol = _policy(lab, name)
    if pol["kind"] != "replication":
        raise Refused(f"{pol['name']} is a failback policy: it is associated with its replication policy")
    cs = check_can_associate(lab, server, pol["name"])
    account, region = _storage_account(lab, storage_account)
    return {"container": cs, "container_kind": "configuration server", "policy_name": pol["name"],
            "target_kind": "azure", "target": region, "storage_account": account,
            "frequency": rules.V2A_POINT_EVERY, "retention_h": pol["retention_h"],
            "app_consistent_h": pol["app_consistent_h"], "encrypt": 1, "start": "now", "batch": rules.V2A_BATCH}


def check_can_associate(lab, server: str, policy: str | None = None) -> str:
    """The configuration server's name, or raise why no policy (or not this one) can be
    associated with it now."""
    site = configuration_site(lab, server)
    if site is None:
        names = ", ".join(p.configuration_server for p in lab.site.physical_sites) or "none"
        raise InvalidInput(f"no configuration server named {server!r}", f"configuration servers: {names}")
    cs = site.configuration_server
    if not setup.registered(lab, cs):
        raise Refused(f"configuration server {cs} is not registered with the vault",
                      f"register it first: srlab server register {cs}")
    have = setup.policy(lab, cs)
    if have is not None and have["policy_name"] == policy:
        raise Refused(f"{policy} is already associated with {cs}")
    if have is not None:
        raise Refused(f"{cs} has replication policy {have['policy_name']} associated; srlab keeps one policy per "
                      "configuration server")
    return cs


def associate(lab, name: str, server: str, storage_account: str | None = None) -> dict:
    """Associate a replication policy (and its failback policy) with a configuration server: the
    container's protection settings; its servers replicate to the storage account."""
    row = check_associate(lab, name, server, storage_account)
    site = configuration_site(lab, server)
    with store.transaction(lab.db):
        lab.db["protection_settings"].insert({**row, "configured_at": lab.now}, pk="container", replace=True)
        lab.db.execute("UPDATE policies SET server=? WHERE name IN (?, ?)",
                       [row["container"], row["policy_name"], failback_name(row["policy_name"])])
        lab.db.execute("INSERT OR IGNORE INTO links VALUES (?, ?, 100, 'up')", [site.name, row["target"]])
        lab.event(lab.now, "info", row["container"], f"policy {row['policy_name']} and its failback policy "
                  f"associated with {row['container']}: its servers replicate to {row['storage_account']} "
                  f"({row['target']})")
    return row


# ---- protection through a process server --------------------------------------------------------


@dataclass
class Options:
    """What `srlab protect` says about a physical server's replication."""

    policy: str | None = None
    process_server: str | None = None
    group: str | None = None

    def given(self) -> bool:
        return any(v is not None for v in self.__dict__.values())


def protect_problems(lab, vm: VM, opts: Options) -> list[str]:
    """What stops protecting a physical server with these options (the policy's own absence is
    the caller's: it has no policy to plan with)."""
    site = site_of(lab, vm)
    cs = site.configuration_server
    problems = []
    if not mobility(lab, vm.name):
        problems.append(f"the mobility service is not installed on {vm.name} (srlab mobility install {vm.name} "
                        "--push)")
    pol = setup.policy(lab, cs)
    if opts.policy is not None and pol is not None and pol["policy_name"].lower() != opts.policy.lower():
        problems.append(f"{cs} has policy {pol['policy_name']} associated, not {opts.policy!r}")
    if opts.process_server is not None:
        try:
            process_server(lab, site, opts.process_server)
        except InvalidInput as e:
            problems.append(e.message)
    if opts.group is not None:
        from .sites import name_problem

        if problem := name_problem(opts.group):
            problems.append(f"group name {opts.group!r} {problem}")
        members = [r[0] for r in lab.db.execute("SELECT vm FROM replication_groups WHERE name=?", [opts.group])]
        other = next((m for m in members if lab.vm(m).physical_site != vm.physical_site), None)
        if other:
            problems.append(f"replication group {opts.group} holds {other}, which another configuration server "
                            "protects")
    if port_blocked(lab, f"{cs}:{MANAGEMENT_PORT}-in"):
        problems.append(f"configuration server {cs} cannot be reached: inbound port {MANAGEMENT_PORT} is blocked")
    return problems


def enter(lab, vm: VM, opts: Options) -> dict:
    """In protect's transaction: the process server the mobility service sends to, the group."""
    ps = process_server(lab, site_of(lab, vm), opts.process_server)
    lab.db.execute("UPDATE mobility SET process_server=? WHERE server=?", [ps.name, vm.name])
    if opts.group is not None:
        lab.db.execute("DELETE FROM replication_groups WHERE vm=?", [vm.name])
        lab.db["replication_groups"].insert({"name": opts.group, "vm": vm.name})
    return {"process_server": ps.name, "group": opts.group or ""}


def _configure_mobility(lab, run: Run) -> None:
    vm = lab.vm(run.target)
    site = site_of(lab, vm)
    check_management_port(lab, site, f"the mobility service on {vm.name}")
    ps = process_server_of(lab, vm)
    lab.event(run.t, "info", vm.name, f"mobility service sends replication data to process server {ps.name} "
                                      f"(port {ps.port}); cache {cache_dir(lab, vm)}")


def define_enable(check, validate_target, create_replica, schedule_initial, failed) -> None:
    """The Enable replication job of a physical server (engine.protection gives its shared steps)."""
    jobs.define("enable_replication_physical", "Enable replication", [
        Step("Prerequisites check", 20, check),
        Step("Validating replication target", 30, validate_target),
        Step("Configure the mobility service (via the configuration server)", 30, _configure_mobility),
        Step("Enable replication", 30, create_replica),
        Step("Starting initial replication", 20, schedule_initial),
        Step("Updating provider state", 10),
    ], on_fail=failed)


def forget(lab, vm: str) -> None:
    """Protection ended (disabled, or a failback committed): the mobility service stays installed,
    pointed at no process server; the replication group given at protection is left (protect
    again with --group to rejoin it)."""
    lab.db.execute("UPDATE mobility SET process_server='' WHERE server=?", [vm])
    if lab.vm(vm).physical_site:
        lab.db.execute("DELETE FROM replication_groups WHERE vm=?", [vm])


# ---- the process server's cache -----------------------------------------------------------------


def cache_root(site: PhysicalSite, ps: ProcessServer) -> Path:
    return Path("sites") / slug(site.name) / "process-servers" / slug(ps.name) / "cache"


def cache_dir(lab, vm: VM) -> Path:
    """Where a server's shipments wait: its process server's cache (relative to the lab)."""
    return cache_root(site_of(lab, vm), process_server_of(lab, vm)) / slug(vm.name)


def _served(lab, site: PhysicalSite, ps: ProcessServer) -> list[str]:
    """The protected servers whose mobility service sends to this process server (not those
    failing back from Azure: their data goes through a process server there)."""
    default = ps.name == site.configuration_server
    return [r[0] for r in lab.db.execute(
        "SELECT m.server FROM mobility m JOIN items i ON i.vm = m.server WHERE i.target_kind='azure' AND "
        "(m.process_server=?" + (" OR m.process_server='')" if default else ")"), [ps.name])
        if lab.vm(r[0]).physical_site == site.name]


def _waiting(lab, served: list[str]) -> tuple[int, int, int]:
    """(bytes as they wait: compressed and encrypted, bytes before compression, shipments) of
    these servers' shipments not yet in Azure."""
    if not served:
        return 0, 0, 0
    return lab.db.execute(f"SELECT COALESCE(SUM(wire_bytes), 0), COALESCE(SUM(raw_bytes), 0), COUNT(*) FROM transfers "
                          f"WHERE vm IN ({','.join('?' * len(served))})", served).fetchone()


def cache_use(lab, site: PhysicalSite, ps: ProcessServer) -> dict:
    """The cache's bytes, its limit, what waits and what reached Azure in the last lab hour
    (the recovery points' compressed bytes: its throughput)."""
    served = _served(lab, site, ps)
    waiting, raw, shipments = _waiting(lab, served)
    sent = lab.db.execute(f"SELECT COALESCE(SUM(size), 0) FROM points WHERE arrived > ? AND vm IN "
                          f"({','.join('?' * len(served))})", [lab.now - 3600, *served]).fetchone()[0] if served else 0
    limit = int(ps.cache_mb * MIB)
    return {"bytes": int(waiting), "raw_bytes": int(raw), "shipments": int(shipments), "limit": limit,
            "full": waiting >= limit, "servers": served, "sent_last_hour": int(sent)}


def throttle(lab, vm: VM) -> tuple[str, str] | None:
    """(message, action) when the server's process server cache is full: it keeps its changes."""
    item = states.item(lab.db, vm.name) if vm.physical_site else None
    if item is None or item["target_kind"] != "azure":  # failing back: an Azure process server's cache
        return None
    site, ps = site_of(lab, vm), process_server_of(lab, vm)
    waiting = _waiting(lab, _served(lab, site, ps))[0]
    if waiting < ps.cache_mb * MIB:
        return None
    return (f"process server {ps.name}'s cache is full ({waiting / MIB:.2f} of {ps.cache_mb:g} MB): "
            f"{vm.name} is throttled and keeps its changes until the cache drains",
            f"let the cache drain to Azure (is outbound 443 of {ps.name} open, the link up?), give the process "
            "server a larger cache, or move servers to another process server")


# ---- what status and the app show ---------------------------------------------------------------


def components(lab) -> list[dict]:
    """Each physical site's configuration server, process servers (cache use, ports), master
    targets and servers (their mobility service), for status and the app."""
    out = []
    for site in lab.site.physical_sites:
        cs = site.configuration_server
        reg = setup.registered(lab, cs)
        pol = setup.policy(lab, cs)
        pss = []
        for ps in site.all_process_servers():
            use = cache_use(lab, site, ps)
            pss.append({"name": ps.name, "on": "the configuration server" if ps.name == cs else "its own server",
                        "port": ps.port, "cache_dir": str(cache_root(site, ps)), **use,
                        "ports_blocked": [p for p in (data_port(ps), outbound_port(ps.name)) if port_blocked(lab, p)]})
        servers = []
        for vm in (v for v in lab.site.vms if v.physical_site == site.name):
            m = mobility(lab, vm.name)
            installing = jobs.running(lab.db, "install_mobility", vm.name)
            item = states.item(lab.db, vm.name)
            back = item is not None and item["target_kind"] == "vmware"  # its data goes through Azure now
            servers.append({"name": vm.name, "os": vm.os,
                            "mobility": "installed" if m else ("installing" if installing else "not installed"),
                            "method": m["method"] if m else "",
                            "process_server": "" if back else (m or {}).get("process_server", ""),
                            "failing_back": back, "protection": states.current(lab.db, vm.name).value})
        out.append({"site": site.name, "configuration_server": cs, "registered": reg is not None,
                    "management_blocked": port_blocked(lab, f"{cs}:{MANAGEMENT_PORT}-in"),
                    "policy": pol["policy_name"] if pol else "", "push_account": site.push_account,
                    "storage_account": pol["storage_account"] if pol else "", "region": pol["target"] if pol else "",
                    "process_servers": pss, "master_targets": site.all_master_targets(), "servers": servers})
    return out
