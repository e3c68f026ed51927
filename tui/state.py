"""What the app knows about the lab: one plain-data snapshot, read in the engine thread.

The UI thread never calls the lab. Every engine call (commands and these queries) runs in a
Textual thread worker under one lock (see SrlabApp.engine_call); the worker reads a fresh
`LabState` with `collect()` and hands it to the UI, which diffs it into its tables. Decisions
about what is allowed come from `Lab.allowed()` here too, so the footer can grey out an action
and say why without touching the lab from the UI thread.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol

from engine import JobState, Lab, LabError, Protection, format_duration, format_time

# The kinds of subject the app shows rows of. Which actions apply to each is the engine's
# business (Lab.actions(kind)); the app only knows how to name each row as a subject.
SUBJECT_KINDS = ("job", "vm", "server", "host", "cloud", "network", "link", "plan", "region", "process server")

JOB_LIMIT = 100
EVENT_LIMIT = 300


@dataclass
class LabState:
    """Everything the panels show, as plain data. Built only in the engine thread."""

    now: int = 0
    status: dict = field(default_factory=lambda: {"name": "", "scenario": "", "now": 0, "now_text": "", "vms": []})
    resources: dict = field(default_factory=dict)
    jobs: list[dict] = field(default_factory=list)
    job_details: dict[Any, dict] = field(default_factory=dict)
    points: dict[str, list[dict]] = field(default_factory=dict)
    # protected VM -> the networks it can join at its recovery side (Lab.target_networks)
    networks: dict[str, list[str]] = field(default_factory=dict)
    # job id -> its failover report as the engine words it (Lab.report_lines); only jobs with one
    reports: dict[Any, list[str]] = field(default_factory=dict)
    events: list[dict] = field(default_factory=list)
    rpo_history: dict[str, list] = field(default_factory=dict)
    # recovery plans (Lab.plans): name, source, target, rto_target, groups with VMs and actions
    plans: list[dict] = field(default_factory=list)
    # the kinds of fault the lab can inject (Lab.fault_kinds) and the faults in effect (Lab.faults)
    fault_kinds: list[dict] = field(default_factory=list)
    fault_targets: dict[str, list[str]] = field(default_factory=dict)  # touches -> Lab.fault_targets
    faults: list[dict] = field(default_factory=list)
    # Azure regions, their pairs and resources, Site Recovery's marked made_for (Lab.regions)
    regions: list[dict] = field(default_factory=list)
    # physical sites (seed 003): the ports a port-blocked fault can name, and what goes through each
    ports: dict[str, str] = field(default_factory=dict)
    # VM -> its guest workload's write rate now, KiB per lab second
    workloads: dict[str, float] = field(default_factory=dict)
    # subject kind -> the actions the engine judges for it (Lab.actions)
    actions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # (action, subject) -> None when allowed, else the engine's reason
    allowed: dict[tuple[str, str | None], str | None] = field(default_factory=dict)
    # engine queries that failed unexpectedly (shown in the help screen, never a traceback)
    problems: list[str] = field(default_factory=list)
    loaded: bool = False
    # False in the first, quick read (collect_first): the lab to show, not yet what is allowed
    judged: bool = True

    def vm(self, name: str) -> dict | None:
        vms = self.status.get("vms", [])
        index = self.__dict__.get("_vm_index")
        if index is None or index[0] is not vms:  # (by name: a 1,000-VM lab is looked up often)
            index = (vms, {v["name"]: v for v in vms})
            self.__dict__["_vm_index"] = index
        return index[1].get(name)

    def reason(self, action: str, subject: str | None) -> str | None:
        """The engine's reason why `action` on `subject` is not allowed now, or None."""
        return self.allowed.get((action, subject))


def at_recovery_side(vm: dict) -> bool:
    """Does the VM's workload run at the recovery side now (so a planned failover is its failback)?
    Never an Azure VM's: Azure -> Azure is symmetric, the region it runs in is its source (after a
    failover and a reprotect it fails over back the same way)."""
    return bool(vm.get("active_location")) and vm.get("active_location") != vm.get("location") \
        and not vm.get("azure")


def waiting_jobs(st: LabState, vm: str | None = None) -> list[dict]:
    """Jobs waiting for action (on `vm`, when given), newest first."""
    return [j for j in st.jobs if j.get("state") == JobState.WAITING and (vm is None or j.get("target") == vm)]


def waiting_step(st: LabState, job_id: Any) -> str | None:
    """The name of the step a job waits on ("Complete test", "Start the failover ..."), if any."""
    steps = st.job_details.get(job_id, {}).get("steps", [])
    return next((s.get("name") for s in steps if s.get("state") == JobState.WAITING), None)


def job_ids_of(result: Any) -> list[int]:
    """The jobs a command started, from what it returned: a job id, a list of them, or a job
    (complete_job returns the job it completed)."""
    if isinstance(result, bool):
        return []
    if isinstance(result, int):
        return [result]
    if isinstance(result, list) and result and all(isinstance(x, int) and not isinstance(x, bool) for x in result):
        return list(result)
    if isinstance(result, dict) and isinstance(result.get("id"), int) and "state" in result and "steps" in result:
        return [result["id"]]
    return []


def clock_holder_gone(lab: Lab) -> bool:
    """Has the process named as the lab's clock holder gone (so an observer may take over)?"""
    holder = lab.clock_holder()
    if not holder.isdigit():
        return False
    pid = int(holder)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError, ValueError):
        return False
    return False


def _try(fn, default):
    try:
        return fn()
    except LabError:
        return default


# ---- Azure -> Azure (seed 002) -------------------------------------------------------------------

# Lab.regions()'s kinds of resource, and the word the app shows for each (Resources' Kind column)
AZURE_KINDS = {"resource group": "group", "virtual network": "vnet", "storage account": "storage",
               "availability set": "av set"}
# the columns of a side of an Azure VM (status vm["azure"]["sides"]) that name a resource, by kind
SIDE_RESOURCES = [("resource group", "resource_group", "group"), ("virtual network", "network", "network"),
                  ("storage account", "storage_account", "storage"),
                  ("availability set", "availability_set", "av set")]


def region_names(st: LabState) -> list[str]:
    return [r["name"] for r in (st.resources or {}).get("regions", [])]


def is_azure_vm(st: LabState, v: dict) -> bool:
    """An Azure VM (Azure -> Azure): it runs in an Azure region, in no VMM cloud. Status says so
    (vm["azure"]) once it is protected; before, its location is one of the lab's regions."""
    if v.get("azure"):
        return True
    return not v.get("cloud") and not v.get("host") and v.get("location") in region_names(st)


def azure_vms(st: LabState) -> list[dict]:
    return [v for v in st.status.get("vms", []) if is_azure_vm(st, v)]


def is_azure_lab(st: LabState) -> bool:
    """A lab of Azure VMs replicated between regions: the app shows its regions and their resources."""
    return bool(azure_vms(st))


def region_info(st: LabState, name: str) -> dict | None:
    """A region as Lab.resources() has it (name, paired_region, protection), else None."""
    return next((r for r in (st.resources or {}).get("regions", []) if r["name"] == name), None)


def region_resources(st: LabState, region: str, kind: str) -> list[dict]:
    """A region's resources of a kind (Lab.regions): name, made_for (a VM: Site Recovery made it)."""
    r = next((r for r in st.regions if r["name"] == region), None)
    return list(((r or {}).get("resources") or {}).get(kind, []))


def made_for(st: LabState, region: str, kind: str, name: str) -> str:
    """The VM Site Recovery created this resource for, or "" (the site file's, or unknown)."""
    if not name:
        return ""
    return next((str(x.get("made_for") or "") for x in region_resources(st, region, kind) if x["name"] == name), "")


def azure_side(v: dict, region: str) -> dict:
    """An Azure VM's side in `region` (its resource group, network, subnet, storage...), or {}."""
    sides = ((v.get("azure") or {}).get("sides") or {}).values()
    return next((s for s in sides if s.get("region") == region), {})


def vm_resources(v: dict) -> list[tuple[str, str, str, str]]:
    """(region, kind, word, name) of what an Azure VM uses: both sides' group, network, storage
    and availability set, and the cache of the region it replicates from now (the other side's
    cache is only a name until a reprotect makes it)."""
    az = v.get("azure") or {}
    out = []
    for region in (str(az.get("to", "")), str(az.get("from", ""))):  # the target side first
        side = azure_side(v, region)
        cols = SIDE_RESOURCES + ([("storage account", "cache_account", "cache")] if region == az.get("from") else [])
        out += [(region, kind, word, str(side[col])) for kind, col, word in cols if side.get(col)]
    return out


def used_by(st: LabState) -> dict[tuple[str, str, str], list[str]]:
    """(region, kind, name) -> the Azure VMs that use that resource (the cache included)."""
    out: dict[tuple[str, str, str], list[str]] = {}
    for v in azure_vms(st):
        for region, kind, _word, name in vm_resources(v):
            users = out.setdefault((region, kind, name), [])
            if v["name"] not in users:
                users.append(v["name"])
    return out


def link_subject(link: dict) -> str:
    """The subject the engine names a link by in allowed('set_link', ...)."""
    return f"{link['source']}->{link['target']}"


def default_map_target(networks: list[dict], source: str) -> str | None:
    """The target the map dialog proposes first: an Azure network, else another VM network."""
    azure = [n["name"] for n in networks if n.get("side") == "azure"]
    other = [n["name"] for n in networks if n.get("side") != "azure" and n["name"] != source]
    return (azure + other)[0] if azure + other else None


# ---- physical servers -> Azure (seed 003) ---------------------------------------------------------


def physical_sites(st: LabState) -> list[dict]:
    """The lab's physical sites as Lab.resources()["physical"] has them: the configuration
    server, its process servers (cache use, ports), master targets and servers."""
    return list((st.resources or {}).get("physical") or [])


def is_physical_lab(st: LabState) -> bool:
    return bool(physical_sites(st))


def physical_server(st: LabState, name: str) -> tuple[dict, dict] | None:
    """(its physical site, the server as components() has it: mobility service, process server),
    or None for a VM that is no physical server."""
    for site in physical_sites(st):
        for s in site.get("servers", []):
            if s["name"] == name:
                return site, s
    return None


def physical_site_named(st: LabState, name: str) -> dict | None:
    """A physical site by its name or its configuration server's."""
    return next((p for p in physical_sites(st) if name in (p["site"], p["configuration_server"])), None)


def lab_policies(st: LabState, kind: str | None = None) -> list[dict]:
    """Replication policies of physical servers (and their failback policies), as created."""
    return [p for p in (st.resources or {}).get("policies", []) if kind is None or p.get("kind") == kind]


def azure_process_servers(st: LabState, region: str | None = None) -> list[dict]:
    """Process servers in Azure (deployed for failback): name, region, made_for (the
    configuration server they register with), created."""
    return [x for x in (st.resources or {}).get("created_by_site_recovery", [])
            if x.get("kind") == "process server" and (region is None or x.get("region") == region)]


def linked_places(st: LabState, place: str) -> list[str]:
    """The places a link (a VPN, ExpressRoute...) joins to `place`, as Lab.resources() lists the
    links: for display only (whether failback can go through one is Lab.allowed's answer)."""
    out = []
    for link in (st.resources or {}).get("links", []):
        for a, b in ((link["source"], link["target"]), (link["target"], link["source"])):
            if a == place and b not in out:
                out.append(b)
    return out


def linked_vmware_site(st: LabState, region: str) -> str | None:
    """For display: the VMware site a link joins to Azure region `region` (the VPN), or None."""
    sites = {w["name"] for w in (st.resources or {}).get("vmware_sites", [])}
    return next((p for p in linked_places(st, region) if p in sites), None)


def failback_path(v: dict) -> dict | None:
    """A physical server failing back to VMware: its data path as Lab.status() gives it (kind
    "failback": process server in Azure, master target, VMware site, ESXi host, datastore,
    failback policy), else None."""
    path = v.get("path") or {}
    return path if path.get("kind") == "failback" else None


def fmt_cache(n: int | float | None, limit: int | float | None) -> str:
    """A process server's cache use: "12.3 MiB of 32 MiB"."""
    return f"{fmt_bytes(n)} of {fmt_bytes(limit).replace('.0 ', ' ')}"


def rows_by_kind(st: LabState) -> list[tuple[str, str, Any]]:
    """Every row the app can act on: (subject kind, key the UI looks it up by, subject as the
    engine takes it)."""
    res = st.resources or {}
    rows: list[tuple[str, str, Any]] = [("job", str(j["id"]), j["id"]) for j in st.jobs]
    rows += [("vm", v["name"], v["name"]) for v in st.status.get("vms", [])]
    rows += [("server", s["name"], s["name"]) for s in res.get("servers", [])]
    rows += [("host", h["name"], h["name"]) for h in res.get("hosts", [])]
    rows += [("cloud", c["name"], c["name"]) for c in res.get("clouds", [])]
    rows += [("network", n["name"], n["name"]) for n in res.get("networks", []) if n.get("side") != "azure"]
    rows += [("link", link_subject(x), (x["source"], x["target"])) for x in res.get("links", [])]
    rows += [("plan", p["name"], p["name"]) for p in st.plans]
    if res.get("physical"):  # seed 003: a process server in Azure is deployed in a region, for failback
        rows += [("region", r["name"], r["name"]) for r in res.get("regions", [])]
        rows += [("process server", p["name"], p["name"]) for p in azure_process_servers(st)]
    return rows


def action_subject(action: str, subject: Any, networks: list[dict]) -> Any:
    """The subject `action` is judged for, from its row's subject. map_network is judged for a
    (source, target) pair: the map dialog's default target."""
    if action == "map_network":
        return (subject, default_map_target(networks, subject))
    return subject


def judged(st: LabState) -> list[tuple[str, str, Any]]:
    """(action, key, subject) for every action the engine lists for every row's kind."""
    nets = (st.resources or {}).get("networks", [])
    return [(action, key, action_subject(action, subject, nets))
            for kind, key, subject in rows_by_kind(st) for action in st.actions.get(kind, ())]


# ---- faults ------------------------------------------------------------------------------------

def fault_subject(f: dict) -> str:
    """The key the app judges clearing a fault in effect by (its id)."""
    return f"fault:{f['id']}"


def fault_target_name(f: dict) -> str:
    """A fault's target as the app shows it: `everything` for one without a target."""
    return str(f.get("target") or "everything")


def inject_subject(kind: str, target: str) -> str:
    """The key the app judges injecting `kind` on `target` by ("": everything it can touch)."""
    return f"{kind}:{target}"


def kind_subject(kind: str) -> str:
    """The key the app judges clearing every fault of a kind by."""
    return f"kind:{kind}"


def fault_target(f: dict) -> str:
    """The target to clear a fault in effect by: "" for one on everything it can touch."""
    return str(f.get("target") or "")


def fault_targets(st: LabState, touches: str) -> list[str]:
    """What a fault kind that touches a `touches` (link, target, server, site, host, vm) may name
    as its target in this lab (Lab.fault_targets), as `srlab fault inject --target` takes it."""
    return st.fault_targets.get(touches, [])


def judge_faults(lab: Lab, st: LabState) -> None:
    """Whether each kind can be injected now (a kind that needs a target: on at least one) and each
    fault in effect cleared, in the engine's words, into st.allowed."""
    def ask(action: str, subject: tuple) -> str | None:
        try:
            return lab.allowed(action, subject)
        except LabError as e:
            return e.message
        except Exception as e:  # an engine bug must not take the UI down
            st.problems.append(f"allowed({action!r}, {subject!r}): {type(e).__name__}: {e}")
            return None

    for k in st.fault_kinds:
        kind = k["kind"]
        # on everything it can touch (a kind that needs a target, a VM or a port: on each); when that is refused,
        # on each thing it can touch, so the kind is offered while any target can take it
        whole = not k.get("needs_target")
        why = {"": ask("fault_inject", (kind, None, None, None))} if whole else {}
        if not whole or why[""]:
            for target in fault_targets(st, str(k.get("touches", ""))):
                why[target] = ask("fault_inject", (kind, target, None, None))
        for target, r in why.items():
            st.allowed[("fault_inject", inject_subject(kind, target))] = r
        refused = [r for r in why.values() if r]
        if len(refused) < len(why):
            st.allowed[("fault_inject", kind)] = None
        elif whole:
            st.allowed[("fault_inject", kind)] = why[""]
        else:
            what = "VM" if k.get("touches") == "vm" else str(k.get("touches", "target"))
            st.allowed[("fault_inject", kind)] = (f"no {what} can take it now: " + "; ".join(refused[:2])
                                                  + (" …" if len(refused) > 2 else "")) if refused else \
                f"this lab has no {what}"
        st.allowed[("fault_clear", kind_subject(kind))] = ask("fault_clear", (kind, None))
    for f in st.faults:
        st.allowed[("fault_clear", fault_subject(f))] = ask("fault_clear", (f["kind"], fault_target(f)))
    st.allowed[("fault_clear", None)] = ask("fault_clear", (None, None))


def refreshed_status(lab: Lab, old: dict) -> dict:
    """Lab.status() as it is now, cheaply: each VM's power, writes and protection read again,
    its disks' allocated bytes and its VMs at the recovery side taken from `old` (reading the
    allocation of every disk is most of what Lab.status() costs)."""
    vms = []
    for v in old.get("vms", []):
        vm = lab.vm(v["name"])
        row = lab.vm_row(vm.name)
        vms.append({**v, "power": row["power"], "writes": row["writes_done"], **lab.item_status(vm)})
    now = lab.now
    return {**old, "now": now, "now_text": format_time(now), "vms": vms}


def keep_unchanged(new: dict, old: dict | None) -> dict:
    """Lab.status() with each VM that reads as it did in `old` kept as the very same dict: the
    app sees an unchanged VM by identity and leaves its row alone."""
    before = {v["name"]: v for v in (old or {}).get("vms", [])}
    new["vms"] = [v if (was := before.get(v["name"])) is None or was != v else was for v in new.get("vms", [])]
    return new


class Changes(Protocol):
    """What changed in the lab since the last read (the engine's engine.changes.Changes)."""

    def table(self, *names: str) -> bool: ...

    def vms(self, vms: set[str]) -> set[str] | None: ...


class Everything:
    """Changes when nothing says what changed: everything did."""

    def table(self, *names: str) -> bool:
        return True

    def vms(self, vms: set[str]) -> set[str] | None:
        return None


# the facts of a VM's status the actions are judged by (not its counters, RPO or progress)
VM_FACTS = ("power", "protection", "health", "failover_state", "active_location", "error_code", "target_size",
            "target_name", "nic", "target_network")


def dirty_vms(st: LabState, last: LabState, changes: Changes) -> set[str] | None:
    """The VMs to read and judge again after `changes`; None: all of them (a change not about
    one VM: a fault, a link, a policy, a job on a cloud...)."""
    changed = changes.vms({v["name"] for v in st.status.get("vms", [])})
    if changed is None:
        return None
    before = {v["name"]: v for v in last.status.get("vms", [])}
    moved = {v["name"] for v in st.status.get("vms", [])
             if (b := before.get(v["name"])) is None or any(v.get(k) != b.get(k) for k in VM_FACTS)}
    return changed | moved


def collect(lab: Lab, reuse: LabState | None = None, last: LabState | None = None,
            changes: Changes | None = None) -> LabState:
    """Read the whole lab state. Call with the engine lock held, in a worker thread. With
    `reuse` (a state read a moment ago), the VMs' disk allocation and recovery-side VMs are
    taken from it (see refreshed_status): what the clock's slices read between full reads.
    With `last` (the state read last), VMs that did not change are its very dicts; with
    `changes` too (what changed since `last`, as the engine notes it: engine.changes), only what
    changed is read and judged again.
    One read (Lab.reading): each VM's facts are worked out once for all the actions judged."""
    with lab.reading():
        st = _collect(lab, reuse, last if last is not None and last.loaded and changes is not None else None,
                      changes or Everything())
    if last is not None and last.loaded:
        keep_unchanged(st.status, last.status)
    return st


def _collect(lab: Lab, reuse: LabState | None, last: LabState | None, changes: Changes) -> LabState:
    st = LabState()
    st.status = lab.status() if reuse is None or not reuse.loaded else refreshed_status(lab, reuse.status)
    st.now = st.status.get("now", lab.now)
    dirty = dirty_vms(st, last, changes) if last is not None else None
    st.resources = _try(lab.resources, {})
    if last is not None and not changes.table("jobs", "job_steps"):
        st.jobs, st.job_details, st.reports = last.jobs, last.job_details, last.reports
    else:
        _collect_jobs(lab, st)
    st.events = lab.events(EVENT_LIMIT)  # (one query: the engine notes no change to its log)
    st.plans = _try(lab.plans, [])
    st.regions = _try(lab.regions, []) if st.resources.get("regions") else []
    st.fault_kinds = _try(lab.fault_kinds, [])
    st.fault_targets = {k["touches"]: _try(lambda k=k: lab.fault_targets(k["kind"]), []) for k in st.fault_kinds}
    st.faults = _try(lab.faults, [])
    st.ports = _try(lab.ports, {}) if st.resources.get("physical") else {}
    for vm in st.status.get("vms", []):
        name = vm["name"]
        if vm.get("protection", Protection.NOT_PROTECTED) == Protection.NOT_PROTECTED:
            continue
        if dirty is not None and name not in dirty and name in last.points:
            st.points[name], st.networks[name] = last.points[name], last.networks.get(name, [])
            continue
        st.points[name] = _try(lambda: lab.points(name), [])
        st.networks[name] = _try(lambda: lab.target_networks(name), [])
    # what each VM's protection hangs off (a cloud, a region, a configuration server): the RPO is sampled per one
    clouds = sorted({v["container"] for v in st.status.get("vms", []) if v.get("container")})
    for cloud in clouds:
        st.rpo_history[cloud] = list(_try(lambda: lab.rpo_history(cloud), []))
    st.actions = {kind: tuple(lab.actions(kind)) for kind in SUBJECT_KINDS}
    vm_keys = {v["name"] for v in st.status.get("vms", [])}
    for action, key, subject in judged(st):
        if dirty is not None and key in vm_keys and key not in dirty and (action, key) in last.allowed:
            st.allowed[(action, key)] = last.allowed[(action, key)]  # nothing it is judged by changed
            continue
        try:
            st.allowed[(action, key)] = lab.allowed(action, subject)
        except LabError as e:
            st.allowed[(action, key)] = e.message
        except Exception as e:  # an engine bug must not take the UI down; the command itself will tell
            st.allowed[(action, key)] = None
            st.problems.append(f"allowed({action!r}, {subject!r}): {type(e).__name__}: {e}")
    judge_faults(lab, st)
    st.workloads = {v["name"]: float(v["workload_rate_kib_s"]) for v in st.status.get("vms", [])
                    if v.get("workload_rate_kib_s") is not None}
    st.loaded = True
    return st


def collect_first(lab: Lab) -> LabState:
    """The first read, quick: what the panels show (VMs, resources, jobs, events), without the
    recovery points, the networks and the judgement of every action (most of a 1,000-VM read)."""
    with lab.reading():
        st = LabState(judged=False)
        st.status = lab.status()
        st.now = st.status.get("now", lab.now)
        st.resources = _try(lab.resources, {})
        _collect_jobs(lab, st)
        st.events = lab.events(EVENT_LIMIT)
        st.plans = _try(lab.plans, [])
        st.faults = _try(lab.faults, [])
        st.loaded = True
    return st


def _collect_jobs(lab: Lab, st: LabState) -> None:
    st.jobs = _try(lambda: lab.jobs(limit=JOB_LIMIT), [])
    for j in st.jobs:
        d = _try(lambda: lab.job(j["id"]), None)
        if d is not None:
            st.job_details[j["id"]] = d
            if d.get("report"):
                try:
                    st.reports[j["id"]] = list(lab.report_lines(d["report"]))
                except Exception as e:  # an engine bug must not take the UI down
                    st.problems.append(f"report_lines(job {j['id']}): {type(e).__name__}: {e}")


# ---- formatting (display only) -------------------------------------------------------------


_NUMBER = re.compile(r"\d{1,15}(\.\d{1,6})?|\.\d{1,6}")


def number_text(text: str, what: str, unit: str) -> float:
    """A number as a person types it (100, 2.5): "inf", "1e309", 400 digits or "0x10" are refused
    here, before the engine (which says what range it takes) is asked. ValueError says why."""
    t = text.strip()
    if not _NUMBER.fullmatch(t):
        shown = t if len(t) <= 20 else t[:20] + "…"
        raise ValueError(f"{what} must be a number of {unit} (like 100 or 2.5), not {shown!r}")
    return float(t)


def fmt_time(epoch: int | None, short: bool = False) -> str:
    if epoch is None:
        return "-"
    dt = datetime.fromtimestamp(epoch, timezone.utc)
    return dt.strftime("%H:%M:%S" if short else "%Y-%m-%d %H:%M:%S")


def fmt_day_time(epoch: int | None) -> str:
    if epoch is None:
        return "-"
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%m-%d %H:%M:%S")


def fmt_duration(seconds: float | None) -> str:
    return "-" if seconds is None else format_duration(seconds)


def fmt_bytes(n: int | float | None) -> str:
    if n is None:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n}"


def fmt_frequency(seconds: Any) -> str:
    if isinstance(seconds, str):
        return seconds
    if seconds is None:
        return "-"
    return fmt_duration(seconds).replace(" 00s", "")


def fmt_mbps(mbps) -> str:
    if isinstance(mbps, (int, float)):
        return f"{mbps:g} Mbps"
    return "-" if mbps is None else f"{mbps} Mbps"
