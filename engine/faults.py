"""Faults: break things on purpose, and what replication does about them (seed 000, seed 001).

A fault is lab state (table `faults`) until it is cleared or its `--for` time is up. Each kind
says what it touches and whether seed 000 calls its error recoverable or not:
- recoverable (network, target out of space, out of memory): the attempt fails and is retried
  after waits of 1, 2, 4, 8 and 10 minutes, then every 30 minutes (rules.retry_wait), until
  the fault clears; the change log grows beside the disk meanwhile;
- unrecoverable (broken chain, invalid replica, authentication, authorization, VM not found):
  never retried; the item turns Critical with the error, and the admin acts: here, clears the
  cause and resynchronizes (`srlab resync VM`, or the vault's off-hours resync).
Damage kinds (chain-broken, replica-invalid) really damage a file when injected; what finds the
damage (a shipment's checks, the replica's checks, verify) says so. They are not kept as faults.

Replication asks `problem()` before each attempt and `rate_factor()` for each link; the 50% rule
(`watch_logs`) drops a change log that grew to half its disk and asks for a resynchronization.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import xxhash

from . import physical, rules, scenarios, setup, states, store, vmware
from .clock import format_duration, format_time
from .errors import InvalidInput, LabError, Refused
from .model import VM
from .replication import changelog
from .replication.cycle import frozen_path, log_path
from .states import Protection


@dataclass(frozen=True)
class Kind:
    name: str
    touches: str  # what --target names: link | target | server | vm | host | site | port
    code: str  # the error code of the events and the item (empty: no error, e.g. a slow link)
    recoverable: bool
    message: str  # formatted with {target} (what the fault touches) and {vm}
    action: str  # the recommended admin action
    about: str  # one line for `srlab fault kinds` and the app
    amount: float | None = None  # link-flaky: share of transfers that fail; link-slow: bandwidth kept
    damage: bool = False  # injecting damages a file; nothing stays to clear


_RETRIES = "replication retries on its own (1, 2, 4, 8, 10 minutes, then every 30 minutes)"
_RESYNC = "then resynchronize: srlab resync {vm}"

KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("link-down", "link", "NetworkError", True,
         "the replication link {target} is down: the change log cannot be sent",
         f"restore the network (srlab fault clear link-down); {_RETRIES}",
         "the network between the sites is cut"),
    Kind("link-flaky", "link", "TransferInterrupted", True,
         "a transfer on the link {target} was interrupted and must be sent again",
         f"check the network's reliability; {_RETRIES}",
         "a share of transfers fail on the way (--amount, default 0.3)", amount=0.3),
    Kind("link-slow", "link", "", True,
         "the link {target} carries a fraction of its bandwidth",
         "restore the bandwidth, lengthen the copy frequency, or add bandwidth (srlab link set --mbps)",
         "the link keeps a share of its bandwidth (--amount, default 0.1)", amount=0.1),
    Kind("storage-full", "target", "TargetStorageFull", True,
         "the target storage at {target} is out of space: replicated data cannot be written",
         f"free space or add storage at the target (srlab fault clear storage-full); {_RETRIES}",
         "the target's storage is full"),
    Kind("out-of-memory", "host", "OutOfMemory", True,
         "host {target} is out of memory: the replication tracker cannot run",
         f"free memory on the host (srlab fault clear out-of-memory); {_RETRIES}",
         "a Hyper-V host runs out of memory"),
    Kind("site-disaster", "site", "PrimarySiteUnreachable", True,
         "the primary site {target} is unreachable (VMM server and hosts down; its VMs are off)",
         "fail over with an unplanned failover (seed 001); when the site is back (srlab fault clear "
         f"site-disaster), start the VMs; {_RETRIES}",
         "the whole primary site goes down: VMM server and hosts unreachable, VMs powered off"),
    Kind("auth-failure", "server", "AuthenticationFailed", False,
         "network authentication with the recovery side failed for {target}",
         "renew the credentials or certificate (srlab fault clear auth-failure); " + _RESYNC,
         "the recovery side refuses the server's credentials"),
    Kind("authorization-failure", "server", "AuthorizationFailed", False,
         "the recovery side refused {target} the rights to replicate",
         "grant the rights again (srlab fault clear authorization-failure); " + _RESYNC,
         "the server is no longer allowed to replicate"),
    Kind("vm-missing", "vm", "VmNotFound", False,
         "{target} was not found on its host: it was deleted at the source",
         "restore the VM on its host (srlab fault clear vm-missing); " + _RESYNC,
         "the VM is deleted at the source (standalone Hyper-V)"),
    Kind("outbound-blocked", "vm", "151037", True,
         "{target} cannot reach the Site Recovery service, the authentication endpoint or the cache storage "
         "account: a network security rule blocks its outbound HTTPS (443)",
         "allow outbound 443 from the VM to the Site Recovery service URLs, login.microsoftonline.com and the "
         f"cache storage account (srlab fault clear outbound-blocked); {_RETRIES}",
         "an Azure VM's outbound access is blocked (seed 002: it needs no inbound, only outbound)"),
    Kind("port-blocked", "port", "PortBlocked", True,
         "port {target} is blocked",
         "open the port in the firewall (srlab fault clear port-blocked --target {target}); " + _RETRIES,
         "a firewall blocks one port of seed 003 (SERVER:PORT-in|out): the configuration server's 443 inbound, "
         "a process server's data port inbound, or 443 outbound to Azure"),
    Kind("chain-broken", "vm", "VhdChainBroken", False,
         "the change log of {target} is damaged: the VHD chain is broken",
         "resynchronize: srlab resync {vm}",
         "damages the VM's change log on disk (really): its next shipment is refused", damage=True),
    Kind("replica-invalid", "vm", "ReplicaInvalid", False,
         "the replica of {target} is in an invalid state",
         "resynchronize: srlab resync {vm} (the damaged replica is rebuilt from the source)",
         "damages the VM's replica at the recovery side (really): the next arrival finds it", damage=True),
]}

# The kinds of target a fault must name (the others touch everything they can without one).
NEEDS_TARGET = ("vm", "port")

# Conditions that are not injected faults but stop an item's replication the same way.
KEY_MISSING = "KeyUnavailable"  # the data-encryption key file is gone: its server's items wait
RESYNC_NEEDED = "ResyncRequired"  # the 50% rule
CACHE_FULL = "ProcessServerCacheFull"  # a physical server's process server cannot take more: it is throttled


@dataclass(frozen=True)
class Problem:
    """Why an item's replication cannot go on now."""

    code: str
    message: str
    action: str
    recoverable: bool
    kind: str = ""


# ---- the lab's faults ---------------------------------------------------------------------------


def active(lab) -> list[dict]:
    return store.rows(lab.db, "SELECT * FROM faults ORDER BY id")


def listing(lab) -> list[dict]:
    """The faults in effect, as `srlab fault list` and the app show them."""
    out = []
    for f in active(lab):
        k = KINDS[f["kind"]]
        out.append({"id": f["id"], "kind": f["kind"], "target": f["target"],  # "": everything it can touch
                    "since": f["since"], "until": f["until"], "amount": f["amount"], "code": k.code,
                    "recoverable": k.recoverable, "about": k.about,
                    "touches": sorted(vm.name for vm in lab.site.vms if _touches(lab, f, vm)
                                      and (k.touches in ("site", "vm") or states.item(lab.db, vm.name)))})
    return out


def _links(lab) -> list[tuple[str, str]]:
    return [(r["source"], r["target"]) for r in lab.db.query("SELECT source, target FROM links")]


def targets(lab, kind: str) -> list[str]:
    """What `--target` may name for a kind in this lab."""
    k = KINDS.get(kind)
    if k is None:
        raise InvalidInput(f"no fault kind {kind!r}", f"kinds: {', '.join(KINDS)}")
    return list(dict.fromkeys(_targets_of(lab, k.touches).values()))


def _targets_of(lab, touches: str) -> dict[str, str]:
    """What a kind may name as its target: lower-case name -> name (once per read: Lab.reading)."""
    return lab.remembered(("fault targets", touches), lambda: _all_targets(lab, touches))


def _all_targets(lab, touches: str) -> dict[str, str]:
    site = lab.site
    names: list[str] = []
    if touches == "link":
        names = [f"{s}->{t}" for s, t in _links(lab)] + sorted({p for link in _links(lab) for p in link})
    elif touches == "target":
        names = sorted({t for _, t in _links(lab)}) + list(site.storage_accounts())
    elif touches in ("server", "site"):
        names = [s.name for s in site.vmm_servers] + list(site.clouds())
        names += [p.configuration_server for p in site.physical_sites] + [p.name for p in site.physical_sites]
        if touches == "site":
            names += list(site.regions())
    elif touches == "host":
        names = list(site.hosts()) + [v.name for v in site.vms]
    elif touches == "port":
        names = list(physical.ports(lab))
    elif touches == "vm":
        names = [v.name for v in site.vms]
    return {n.lower(): n for n in names}


def _touches(lab, f: dict, vm: VM) -> bool:
    """Does fault row `f` touch VM `vm`'s replication (or, for a site, the VM itself)?"""
    k, target = KINDS[f["kind"]], f["target"]
    if k.touches == "port":
        return bool(vm.physical_site) and _port_leg(lab, f, vm) is not None
    if k.touches == "vm":
        return target == vm.name
    if k.touches == "host":
        return not target or target in (vm.host, vm.name)
    if k.touches == "site" and vm.region:  # an Azure region down: the VMs running in it
        return not target or target == vm.region
    if k.touches in ("server", "site") and vm.physical_site:  # a datacenter or its configuration server
        cs = lab.site.physical_site(vm.physical_site).configuration_server
        return not target or target in (cs, vm.physical_site)
    if k.touches in ("server", "site"):
        if not vm.cloud:
            return False
        server = lab.site.clouds()[vm.cloud][0].name
        if k.touches == "site" and not target:  # every protected cloud: the primary sides
            return lab.db.execute("SELECT 1 FROM protection_settings WHERE container=?", [vm.cloud]).fetchone() is not None
        return not target or target in (server, vm.cloud)
    link = _link_of(lab, vm)
    if link is None:
        return False
    if k.touches == "target":
        pol = setup.policy(lab, scenarios.container_of(vm, lab.site).name)
        return not target or target in (link[1], pol["storage_account"] if pol else None)
    return not target or target in (f"{link[0]}->{link[1]}", *link)


def _link_of(lab, vm: VM) -> tuple[str, str] | None:
    return setup.link_of(lab, vm)


def check_inject(lab, kind: str, target: str | None = None, duration: int | None = None,
                 amount: float | None = None) -> tuple[Kind, str]:
    """(the kind, the target's proper name), or raise saying what is wrong."""
    k = KINDS.get(kind)
    if k is None:
        raise InvalidInput(f"no fault kind {kind!r}", f"kinds: {', '.join(KINDS)}")
    if duration is not None and duration <= 0:
        raise InvalidInput("--for needs a positive duration", "for example: --for 3h")
    if duration is not None and k.damage:
        raise InvalidInput(f"{kind} damages a file once: it has no duration", "leave out --for")
    if amount is not None and (k.amount is None or not 0 < amount < 1):
        raise InvalidInput(f"--amount is a share between 0 and 1 for link-flaky and link-slow, not {amount:g} "
                           f"for {kind}" if k.amount is not None else f"{kind} takes no --amount")
    names = _targets_of(lab, k.touches)
    if target:
        proper = names.get(target.lower().replace(" -> ", "->"))
        if proper is None:
            raise InvalidInput(f"{kind} touches a {k.touches}; {target!r} is not one in this lab",
                               f"{k.touches}s: {', '.join(names.values()) or 'none'}")
        target = proper
    elif k.touches in NEEDS_TARGET:
        what = "VM" if k.touches == "vm" else "SERVER:PORT-in|out"
        raise InvalidInput(f"{kind} needs --target {what}", f"{k.touches}s: {', '.join(names.values()) or 'none'}")
    if not k.damage and lab.db.execute("SELECT 1 FROM faults WHERE kind=? AND target=?",
                                       [kind, target or ""]).fetchone():
        raise Refused(f"fault {kind} on {target or 'everything'} is already in effect",
                      f"clear it first: srlab fault clear {kind}")
    if k.damage:
        _damage_target(lab, k, target)  # raises if there is nothing to damage
    if k.touches == "site" and not target and not any(_touches(lab, {"kind": kind, "target": ""}, v)
                                                      for v in lab.site.vms):
        raise Refused("no cloud is protected yet: name the site to take down (--target VMM-SERVER|CLOUD)")
    return k, target or ""


def inject(lab, kind: str, target: str | None = None, duration: int | None = None,
           amount: float | None = None) -> dict:
    """Start a fault now (a damage kind damages its file at once). Returns what was done."""
    k, target = check_inject(lab, kind, target, duration, amount)
    now = lab.now
    label = target or "everything"
    with store.transaction(lab.db):
        if k.damage:
            path = _damage(lab, k, target)
            lab.event(now, "warning", target, f"fault injected: {kind} damaged {path.relative_to(lab.path)}",
                      k.code, k.action.format(vm=target))
            return {"kind": kind, "target": target, "damaged": str(path)}
        until = now + duration if duration else None
        amt = amount if amount is not None else k.amount
        fid = lab.db["faults"].insert({"kind": kind, "target": target, "since": now, "until": until,
                                       "amount": amt}).last_pk
        if k.touches == "site":
            _site_down(lab, {"kind": kind, "target": target}, now)
        lab.event(now, "warning", label, f"fault injected: {kind} on {label}"
                  + (f" for {format_duration(duration)}" if duration else "") + f" ({k.about})", k.code)
    return {"kind": kind, "target": target, "id": fid, "until": until, "amount": amt}


def check_clear(lab, kind: str | None = None, target: str | None = None) -> list[dict]:
    """The fault rows `clear` would remove, or raise."""
    if kind is not None and kind not in KINDS:
        raise InvalidInput(f"no fault kind {kind!r}", f"kinds: {', '.join(KINDS)}")
    rows = [f for f in active(lab) if (kind is None or f["kind"] == kind)
            and (target is None or f["target"].lower() == target.lower())]
    if not rows:
        what = f"{kind or 'fault'}" + (f" on {target}" if target else "")
        raise Refused(f"no {what} is in effect", "list them with: srlab fault list")
    return rows


def clear(lab, kind: str | None = None, target: str | None = None, reason: str = "cleared") -> list[dict]:
    rows = check_clear(lab, kind, target)
    with store.transaction(lab.db):
        for f in rows:
            _end(lab, f, lab.now, reason)
    return rows


def _end(lab, f: dict, at: int, reason: str) -> None:
    lab.db.execute("DELETE FROM faults WHERE id=?", [f["id"]])
    lab.event(at, "info", f["target"] or "everything", f"fault {f['kind']} on {f['target'] or 'everything'} {reason}"
              + ("; the site is back: start its VMs (srlab vm start VM)" if KINDS[f["kind"]].touches == "site" else ""))


def expire(lab, now: int) -> None:
    """End the faults whose --for time is up (inside the slice's transaction)."""
    for f in lab.db.query("SELECT * FROM faults WHERE until IS NOT NULL AND until <= ?", [now]):
        _end(lab, f, f["until"], "cleared (its time was up)")


def next_expiry(db) -> int | None:
    return db.execute("SELECT MIN(until) FROM faults").fetchone()[0]


# ---- damage, for real -------------------------------------------------------------------------


def _damage_target(lab, k: Kind, vm_name: str) -> Path:
    item = states.item(lab.db, vm_name)
    states_ok = (Protection.PROTECTED, Protection.FINALIZING) + ((Protection.INITIAL,) if k.name == "chain-broken" else ())
    if item is None or item["state"] not in states_ok:
        what = "change log" if k.name == "chain-broken" else "replica with a recovery point"
        raise Refused(f"{vm_name} is not replicating: there is no {what} to damage",
                      f"protect it and let initial replication finish first: srlab protect {vm_name}")
    if k.name == "chain-broken":
        return log_path(lab.replicated_disk(vm_name, 0))
    return lab.path / item["store"] / _base_name(lab, vm_name)


def _base_name(lab, vm_name: str) -> str:
    return f"0-{lab.vm(vm_name).disks[0].name}.vhd"


def _damage(lab, k: Kind, vm_name: str) -> Path:
    """chain-broken: a record whose data fails its checksum at the end of the first disk's change
    log (as a torn-then-overwritten sector would leave). replica-invalid: the replica base's VHD
    footer is overwritten. Both are found by srlab's own checks, never by this module."""
    path = _damage_target(lab, k, vm_name)
    if k.name == "chain-broken":
        rec = bytearray(changelog.record(0, b"\0" * 4096))
        rec[-1] ^= 0xFF
        with open(path, "ab") as f:
            f.write(rec)
            f.flush()
            os.fsync(f.fileno())
    else:
        with open(path, "r+b") as f:
            f.seek(-changelog.FOOTER, os.SEEK_END)
            f.write(b"\xde\xad" * (changelog.FOOTER // 2))
            f.flush()
            os.fsync(f.fileno())
    return path


# ---- what a fault does to replication ----------------------------------------------------------


def problem(lab, vm: VM, faults: list[dict] | None = None, leg: str = "source") -> Problem | None:
    """What stops the VM's replication now (the first fault that touches it), or None.

    Azure -> Azure (seed 002) has two legs: the VM sends its writes to the cache storage account
    in its own region ("source"), and Site Recovery carries them across to the target region
    ("link"). A fault of the link or the target stops only the second: batches wait in the cache."""
    if faults is None:  # the lab's faults now: once per VM and leg in a read (Lab.reading)
        return lab.remembered(("problem", vm.name, leg), lambda: _problem(lab, vm, active(lab), leg))
    return _problem(lab, vm, faults, leg)


def _port_leg(lab, f: dict, vm: VM) -> str | None:
    """The leg of a physical server's replication a blocked port stops: its process server's data
    port the first ("source": server -> process server), its 443 outbound the second ("link":
    the cache -> Azure). None: not this server's (the configuration server's 443 stops management)."""
    if vmware.failback_link(lab, vm.name):  # failing back from Azure: no process server on premises on the way
        return None
    ps = physical.process_server_of(lab, vm)
    if f["target"] in ("", physical.data_port(ps)):
        return "source"
    if f["target"] == physical.outbound_port(ps.name):
        return "link"
    return None


def _port_problem(lab, f: dict, vm: VM, leg: str) -> Problem | None:
    if _port_leg(lab, f, vm) != leg:
        return None
    ps = physical.process_server_of(lab, vm)
    k = KINDS["port-blocked"]
    if leg == "source":
        message = (f"the mobility service on {vm.name} cannot send replication data to process server {ps.name}: "
                   f"inbound port {ps.port} is blocked; its changes wait on the server")
    else:
        message = (f"process server {ps.name} cannot send to Azure storage: outbound port {physical.OUTBOUND_PORT} "
                   f"is blocked; {vm.name}'s data waits in its cache")
    return Problem(k.code, message, k.action.format(target=f["target"] or "SERVER:PORT"), True, k.name)


def _problem(lab, vm: VM, faults: list[dict], leg: str) -> Problem | None:
    # Azure VMs send to a cache account, physical servers to a process server's cache: two legs.
    two_legs = bool(vm.region or vm.physical_site)
    for f in faults:
        k = KINDS[f["kind"]]
        if k.touches == "port":
            if vm.physical_site and (p := _port_problem(lab, f, vm, leg)):
                return p
            continue
        if two_legs and (k.touches in ("link", "target")) != (leg == "link"):
            continue
        if k.code and k.name != "link-flaky" and _touches(lab, f, vm):
            target = f["target"] or (_describe(lab, k, vm))
            return Problem(k.code, k.message.format(target=target, vm=vm.name), k.action.format(vm=vm.name),
                           k.recoverable, k.name)
    link = _link_of(lab, vm)
    if link and (not two_legs or leg == "link"):
        row = lab.db.execute("SELECT state FROM links WHERE source=? AND target=?", list(link)).fetchone()
        if row and row[0] == "down":
            k = KINDS["link-down"]
            return Problem(k.code, k.message.format(target=f"{link[0]} -> {link[1]}"),
                           f"bring the link up (srlab link set --state up); {_RETRIES}", True, "link-down")
    pol = setup.policy(lab, scenarios.container_of(vm, lab.site).name)
    if pol and pol["encrypt"]:
        try:
            setup.encryption_key(lab, vm)
        except LabError as e:
            return Problem(KEY_MISSING, e.message, f"{e.hint}; {_RETRIES}", True)
    return None


def _describe(lab, k: Kind, vm: VM) -> str:
    """The thing a fault without a target touches, named for this VM."""
    link = _link_of(lab, vm) or ("?", "?")
    return {"link": f"{link[0]} -> {link[1]}", "target": link[1], "host": vm.host, "vm": vm.name,
            "server": lab.site.clouds()[vm.cloud][0].name if vm.cloud else vm.location,
            "site": vm.cloud or vm.location}[k.touches]


def throttled(lab, vm: VM) -> Problem | None:
    """A physical server whose process server's cache is full sends nothing more (its changes
    wait on it); replication asks before each attempt to ship."""
    why = physical.throttle(lab, vm)
    return Problem(CACHE_FULL, why[0], why[1], True) if why else None


def rate_factor(lab, source: str, target: str) -> float:
    """The share of a link's bandwidth that carries data now: 0 while it is down or its target's
    storage is full, the fault's share while it is slow."""
    factor = 1.0
    for f in active(lab):
        k, t = KINDS[f["kind"]], f["target"]
        if k.touches == "link" and (not t or t in (f"{source}->{target}", source, target)):
            if k.name == "link-down":
                return 0.0
            if k.name == "link-slow":
                factor *= f["amount"]
        if k.name == "storage-full" and (not t or t == target or _account_of(lab, source) == t):
            return 0.0
    return factor


def _account_of(lab, source: str) -> str | None:
    pol = setup.policy(lab, source) if source in lab.site.clouds() else None
    return pol["storage_account"] if pol else None


def transfer_lost(lab, source: str, target: str, transfer_id: int, attempt: int) -> Problem | None:
    """Does a flaky link lose this transfer on this attempt (then why)? Reproducible: the same
    lab loses the same transfers."""
    for f in active(lab):
        t = f["target"]
        if f["kind"] == "link-flaky" and (not t or t in (f"{source}->{target}", source, target)):
            if xxhash.xxh64_intdigest(f"{transfer_id}/{attempt}".encode()) % 10_000 < f["amount"] * 10_000:
                k = KINDS["link-flaky"]
                return Problem(k.code, k.message.format(target=f"{source} -> {target}"), k.action, True, k.name)
            return None
    return None


def vm_missing(lab, vm_name: str) -> bool:
    return lab.db.execute("SELECT 1 FROM faults WHERE kind='vm-missing' AND target=?", [vm_name]).fetchone() is not None


def site_down(lab, vm: VM) -> dict | None:
    """The site-disaster fault that holds the VM's site down, if any."""
    return next((f for f in active(lab) if f["kind"] == "site-disaster" and _touches(lab, f, vm)), None)


def _site_down(lab, f: dict, now: int) -> None:
    """The site's VMs go off at once (hard: their last writes stay on the disks, unshipped)."""
    for vm in lab.site.vms:
        if _touches(lab, f, vm) and lab.vm_row(vm.name)["power"] == "running":
            lab.db.execute("UPDATE vms SET power='off', last_shutdown='hard' WHERE name=?", [vm.name])
            lab.event(now, "error", vm.name, f"{vm.name} went down with its site", KINDS["site-disaster"].code)


def power_refusal(lab, vm: VM) -> str | None:
    """Why the VM cannot be started or stopped now because of a fault, or None."""
    if vm_missing(lab, vm.name):
        return f"{vm.name} was deleted at the source (fault vm-missing): restore it first (srlab fault clear vm-missing)"
    f = site_down(lab, vm)
    if f:
        return (f"{vm.name}'s site is down (fault site-disaster): its host {vm.host} cannot be reached; "
                "fail over with an unplanned failover, or clear the fault (srlab fault clear site-disaster)")
    return None


# ---- retry logic (seed 000) ---------------------------------------------------------------------


def attempt_failed(lab, vm_name: str, now: int, p: Problem) -> int | None:
    """Record a failed replication attempt: a recoverable error is retried (returns the retry
    time); an unrecoverable one turns the item Critical, never retried (returns None)."""
    if not p.recoverable:
        need_resync(lab, vm_name, now, p.code, p.message, p.action)
        return None
    item = states.item(lab.db, vm_name)
    failures = item["failures"] + 1
    first = item["first_failure"] if item["failures"] else now
    retry_at = now + rules.retry_wait(failures)
    lab.db.execute("UPDATE items SET failures=?, first_failure=?, retry_at=?, error_code=? WHERE vm=?",
                   [failures, first, retry_at, p.code, vm_name])
    lab.event(now, "warning", vm_name,
              f"replication attempt {failures} failed: {p.message}; next attempt at {format_time(retry_at)} "
              f"(in {format_duration(retry_at - now)})", p.code, p.action)
    return retry_at


def resumed(lab, vm_name: str, now: int) -> None:
    """A shipment arrived after failed attempts: the retry state is over."""
    item = states.item(lab.db, vm_name)
    if item is None or not item["failures"]:
        return
    lab.db.execute("UPDATE items SET failures=0, first_failure=NULL, retry_at=NULL, error_code='' WHERE vm=?",
                   [vm_name])
    lab.event(now, "info", vm_name, f"replication resumed after {item['failures']} failed attempt(s) "
                                    f"(the first at {format_time(item['first_failure'])})")


def need_resync(lab, vm_name: str, at: int, code: str, message: str, action: str = "") -> None:
    """The item is Critical and needs a resynchronization: its pending change log and queued
    shipments are of no use any more (the resync compares the disks), so they are dropped and
    tracking goes on in a fresh log. Said once in the events."""
    row = states.item(lab.db, vm_name)
    message = f"{message}: resynchronization required"
    if row is None or (row["resync_required"] and row["error"] == message):
        return
    action = action or f"resynchronize: srlab resync {vm_name} (or wait for the vault's off-hours resync)"
    lab.db.execute("UPDATE items SET error=?, error_code=?, resync_required=1, failures=0, first_failure=NULL, "
                   "retry_at=NULL WHERE vm=?", [message, code, vm_name])
    lab.replication.drop_pending(vm_name)
    lab.event(at, "error", vm_name, message, code, action)


def watch_logs(lab, now: int) -> None:
    """The 50% rule (seed 000): a disk whose pending change log reached half the disk's size is
    marked for resynchronization and its log dropped (shipping it would cost more than a resync)."""
    for item in states.items(lab.db, Protection.PROTECTED, Protection.FINALIZING):
        if not item["tracking"]:
            continue
        vm = lab.vm(item["vm"])
        for i, d in enumerate(vm.disks):
            disk = lab.replicated_disk(vm.name, i)
            pending = _size(log_path(disk)) + _size(frozen_path(disk))
            if pending * 2 >= d.size_bytes:
                if item["resync_required"]:  # waiting for its resync: keep the log from growing
                    lab.replication.drop_pending(vm.name)
                    break
                need_resync(lab, vm.name, now, RESYNC_NEEDED,
                            f"the change log of {vm.name}/{d.name} reached {pending:,} bytes, 50% of the disk's "
                            f"{d.size_bytes:,}: shipping it would cost more than a resynchronization")
                break


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


# ---- health: OK / Warning / Critical, with the reason and what to do ---------------------------


def health_facts(lab, item: dict, rpo: int | None, frequency: int, vm: VM) -> rules.HealthFacts:
    p = None
    if item["state"] in (Protection.INITIAL, Protection.PROTECTED, Protection.FINALIZING):
        p = problem(lab, vm)
        if p is None and (vm.region or vm.physical_site) and (p := problem(lab, vm, leg="link")):
            if vm.region:  # its writes wait in the cache
                p = Problem(p.code, f"{p.message}; writes wait in the cache storage account", p.action,
                            p.recoverable, p.kind)
        p = p or throttled(lab, vm)
    return rules.HealthFacts(
        protection=item["state"], rpo=rpo, frequency=frequency, error=item["error"],
        error_code=item["error_code"], resync_required=bool(item["resync_required"]), failures=item["failures"],
        first_failure=format_time(item["first_failure"]) if item["first_failure"] else "",
        retry_at=format_time(item["retry_at"]) if item["retry_at"] else "",
        problem=p.message if p else "", problem_code=p.code if p else "", problem_action=p.action if p else "",
        vm=vm.name, interval="crash-consistent point intervals" if vm.region or vm.physical_site else "copy intervals")
