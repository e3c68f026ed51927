"""What is allowed when, and why not. Pure functions over plain values: no I/O, no SQLite.

The CLI's refusals, the TUI's greyed-out actions and their reasons all come from here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .clock import format_duration
from .model import GIB, MIB, VM
from .states import Failover, Protection

# ---- replication policy (seed 004, cloud protection settings) ------------------------------

FREQUENCIES = {"30s": 30, "5m": 300, "15m": 900}
RETENTION_HOURS = range(0, 25)
APP_CONSISTENT_HOURS = range(0, 13)  # 0 = none


def policy_problems(frequency: str, retention_h: int, app_consistent_h: int, start: str) -> list[str]:
    """Problems with a replication policy's values, each naming the rule."""
    out = []
    if frequency not in FREQUENCIES:
        out.append(f"copy frequency must be one of {', '.join(FREQUENCIES)}, not {frequency!r}")
    if retention_h not in RETENTION_HOURS:
        out.append(f"recovery point retention must be 0-24 hours, not {retention_h}")
    if app_consistent_h not in APP_CONSISTENT_HOURS:
        out.append(f"app-consistent snapshot frequency must be 0 (none) to 12 hours, not {app_consistent_h}")
    elif app_consistent_h and app_consistent_h > retention_h:
        out.append(
            f"app-consistent snapshot frequency ({app_consistent_h} h) cannot be longer than the "
            f"recovery point retention ({retention_h} h): no app-consistent point would be kept"
        )
    if start != "now":
        m = re.fullmatch(r"(\d{1,2}):(\d{2})", start)
        if not m or int(m[1]) > 23 or int(m[2]) not in (0, 30):
            out.append(f"initial replication start must be 'now' or a time on a 30-minute boundary (HH:00 or HH:30), not {start!r}")
    return out


# Azure -> Azure (seed 002) has its own replication policy: no copy frequency (writes travel
# continuously, in batches this many lab seconds apart, to the cache storage account), a
# crash-consistent recovery point every 5 minutes, retention and app-consistent snapshots in hours.
A2A_BATCH = 30
A2A_POINT_EVERY = 300
A2A_POLICY_NAME = "24-hour-retention-policy"
A2A_RETENTION_DEFAULT, A2A_APP_CONSISTENT_DEFAULT = 24, 4
A2A_RETENTION_HOURS = range(0, 73)


# Physical servers (seed 003) replicate continuously through a process server, as Azure VMs do
# through their cache: the same batches and points; a policy is made on its own, then associated.
V2A_BATCH, V2A_POINT_EVERY = A2A_BATCH, A2A_POINT_EVERY
V2A_RETENTION_DEFAULT, V2A_APP_CONSISTENT_DEFAULT = 24, 1


def a2a_policy_problems(retention_h: int, app_consistent_h: int, what: str = "Azure VMs") -> list[str]:
    out = []
    if retention_h not in A2A_RETENTION_HOURS:
        out.append(f"recovery point retention must be 0-72 hours for {what}, not {retention_h}")
    if app_consistent_h not in APP_CONSISTENT_HOURS:
        out.append(f"app-consistent snapshot frequency must be 0 (none) to 12 hours, not {app_consistent_h}")
    elif app_consistent_h and app_consistent_h > retention_h:
        out.append(f"app-consistent snapshot frequency ({app_consistent_h} h) cannot be longer than the "
                   f"recovery point retention ({retention_h} h)")
    return out


def v2a_policy_problems(retention_h: int, app_consistent_h: int) -> list[str]:
    return a2a_policy_problems(retention_h, app_consistent_h, "physical servers")


def next_start_time(now: int, start: str) -> int:
    """Lab time of the next HH:MM (UTC) at or after now; 'now' is now."""
    if start == "now":
        return now
    hh, mm = map(int, start.split(":"))
    day = now - now % 86400
    t = day + hh * 3600 + mm * 60
    return t if t >= now else t + 86400


# ---- target sizes (seed 004: XS S M L XL A5 A6 A7) ------------------------------------------

@dataclass(frozen=True)
class TargetSize:
    name: str
    cores: int
    memory_mb: int
    max_data_disks: int  # not in the seeds: the classic A-series limits (A0 1, A1 2, ... A7 16)


# In order of price, cheapest first: the pick is the first that fits.
TARGET_SIZES = [
    TargetSize("XS", 1, 768, 1),
    TargetSize("S", 1, 1792, 2),
    TargetSize("M", 2, 3584, 4),
    TargetSize("L", 4, 7168, 8),
    TargetSize("A5", 2, 14336, 4),
    TargetSize("XL", 8, 14336, 16),
    TargetSize("A6", 4, 28672, 8),
    TargetSize("A7", 8, 57344, 16),
]
SIZE_NAMES = [s.name for s in TARGET_SIZES]


def vm_memory_mb(vm: VM) -> int:
    """The memory a target must hold: the maximum of dynamic memory when it is on (seed 004)."""
    return max(vm.memory_mb, vm.dynamic_memory_max_mb)


def _data_disks(vm: VM) -> int:
    return sum(1 for d in vm.disks if d.role == "data")


def pick_target_size(vm: VM) -> str | None:
    """The cheapest size that holds the VM's CPUs, data disks and memory (the maximum of dynamic
    memory when it is on). A dynamic-memory maximum beyond every size gets the largest size that
    holds the rest (seed 004: MYWSV01, 1 TB maximum -> A7; change it with set-target). None when
    no size holds the CPUs, the data disks or the startup memory: no_target_size_reason() says why.
    """
    data_disks = _data_disks(vm)
    fits = [s for s in TARGET_SIZES
            if s.cores >= vm.cpus and s.max_data_disks >= data_disks and s.memory_mb >= vm.memory_mb]
    for s in fits:
        if s.memory_mb >= vm_memory_mb(vm):
            return s.name
    if vm.dynamic_memory_max_mb and fits:
        return max(fits, key=lambda s: (s.memory_mb, s.cores, s.max_data_disks)).name
    return None


def no_target_size_reason(vm: VM) -> str | None:
    """Why no size can be picked for the VM (None when one can), naming the limit it passes."""
    if pick_target_size(vm):
        return None
    top = {"cores": max(s.cores for s in TARGET_SIZES), "disks": max(s.max_data_disks for s in TARGET_SIZES),
           "memory": max(s.memory_mb for s in TARGET_SIZES)}
    data_disks = _data_disks(vm)
    out = []
    if vm.cpus > top["cores"]:
        out.append(f"{vm.name} has {vm.cpus} CPUs; no target size has more than {top['cores']}")
    if data_disks > top["disks"]:
        out.append(f"{vm.name} has {data_disks} data disks; no target size takes more than {top['disks']}")
    if vm.memory_mb > top["memory"]:
        memory = "startup memory" if vm.dynamic_memory_max_mb else "memory"
        out.append(f"{vm.name} has {vm.memory_mb} MB of {memory}; no target size has more than {top['memory']} MB")
    if not out:  # each limit is met by some size, but no one size meets them all
        out.append(f"no one target size has {vm.cpus} CPUs, {vm.memory_mb} MB and {data_disks} data disks")
    return "; ".join(out)


def target_size_problem(vm: VM, size: str) -> str | None:
    s = next((x for x in TARGET_SIZES if x.name == size), None)
    if s is None:
        return f"unknown target size {size!r}: choose one of {', '.join(SIZE_NAMES)}"
    data_disks = _data_disks(vm)
    if s.max_data_disks < data_disks:
        return f"size {size} takes at most {s.max_data_disks} data disks; {vm.name} has {data_disks}"
    return None


# ---- VM requirements for protection (seed 004, 仮想マシンの構成要件) ---------------------------

SUPPORTED_OS = (
    "Windows Server 2012 R2", "Windows Server 2012", "Windows Server 2008 R2 SP1",
    "Windows Server 2008 SP2", "CentOS", "openSUSE", "SUSE Linux Enterprise Server",
    "Ubuntu Server", "Other Linux (64-bit)",
)
# Physical servers (seed 003) run the mobility service: these 64-bit Windows and Linux systems.
PHYSICAL_OS = (
    "Windows Server 2016", "Windows Server 2012 R2", "Windows Server 2012", "Windows Server 2008 R2 SP1",
    "Red Hat Enterprise Linux 6", "Red Hat Enterprise Linux 7", "CentOS 6", "CentOS 7",
    "SUSE Linux Enterprise Server 11", "Ubuntu Server 14.04", "Ubuntu Server 16.04", "Oracle Linux 6",
)
_AZURE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")


def azure_name_ok(name: str) -> bool:
    return bool(_AZURE_NAME.match(name))


@dataclass(frozen=True)
class Problem:
    rule: str
    fix: str
    # What the problem stops: "protection", or only "failover" (seed 004: a VM whose name Azure
    # does not accept can be protected and replicated; its Azure name is set before a failover).
    blocks: str = "protection"

    def __str__(self) -> str:
        return f"{self.rule} — {self.fix}"


def protection_problems(vm: VM, to_azure: bool, target_name: str | None = None) -> list[Problem]:
    """Every requirement the VM fails for protection (seed 004's list), with its fix; each says
    whether it stops protection or only a failover (`blocking()` keeps the former). A physical
    server has no VM generation or disk controller to check: its OS must run the mobility service."""
    out: list[Problem] = []
    physical = bool(vm.physical_site)
    if physical and not any(vm.os.startswith(s) for s in PHYSICAL_OS):
        out.append(Problem(f"{vm.name} runs {vm.os!r}, which the mobility service does not support",
                           f"supported: {', '.join(PHYSICAL_OS)} (64-bit)"))
    if to_azure and vm.generation != 1 and not physical:
        out.append(Problem(f"{vm.name} is a generation {vm.generation} VM; Azure accepts generation 1 only",
                           "protect a generation 1 VM, or protect to a recovery cloud"))
    if vm.bitness != 64:
        out.append(Problem(f"{vm.name} runs a {vm.bitness}-bit guest OS; only 64-bit guests are supported",
                           "use a 64-bit guest OS"))
    if not physical and not any(vm.os.startswith(s) for s in SUPPORTED_OS):
        out.append(Problem(f"guest OS {vm.os!r} is not supported",
                           "set the OS in VMM to a supported one, or to 'Other Linux (64-bit)' for other Linux/FreeBSD"))
    os_disks = [d for d in vm.disks if d.role == "os"]
    data_disks = [d for d in vm.disks if d.role == "data"]
    if len(os_disks) != 1:
        out.append(Problem(f"{vm.name} has {len(os_disks)} OS disks; exactly one is required",
                           "mark exactly one disk as containing the operating system"))
    for d in os_disks:
        if to_azure and d.controller != "ide" and not physical:
            out.append(Problem(f"OS disk {d.name} is on the {d.controller.upper()} controller; it must be on IDE",
                               "attach the OS disk to the IDE controller"))
        if not 20 * MIB <= d.size_bytes <= 127 * GIB:
            out.append(Problem(f"OS disk {d.name} is {d.size_gb:g} GB; it must be 20 MB to 127 GB",
                               "shrink or replace the OS disk"))
    if len(data_disks) > 16:
        out.append(Problem(f"{vm.name} has {len(data_disks)} data disks; at most 16 are allowed",
                           "detach data disks"))
    for d in data_disks:
        if not 20 * MIB <= d.size_bytes <= 1023 * GIB:
            out.append(Problem(f"data disk {d.name} is {d.size_gb:g} GB; it must be 20 MB to 1023 GB",
                               "resize or split the data disk"))
    for d in vm.disks:
        if d.attachment != "virtual":
            out.append(Problem(f"disk {d.name} is a {d.attachment} disk, which cannot be replicated",
                               "use a virtual hard disk (VHD/VHDX) instead"))
    if to_azure:
        for n in vm.nics:
            if n.addressing == "static":
                out.append(Problem(f"NIC {n.name} uses a static IP address; Azure assigns addresses by DHCP",
                                   "switch the NIC to DHCP"))
        name = target_name or vm.name
        if not azure_name_ok(name):
            out.append(Problem(
                f"{name!r} is not a valid Azure VM name (1-63 letters, digits and hyphens, starting and ending with a letter or digit)",
                "protection can go ahead; before a failover give a target name: "
                f"srlab vm set-target {vm.name} --name NAME",
                blocks="failover"))
    return out


def blocking(problems: list[Problem]) -> list[Problem]:
    """The problems that stop protection (the others only stop a failover until fixed)."""
    return [p for p in problems if p.blocks == "protection"]


def chosen_nic(vm: VM, requested: str | None = None) -> str:
    """With several NICs one is used at the target: the requested one, else the first."""
    if requested:
        return requested
    return vm.nics[0].name if vm.nics else ""


# ---- replication health ---------------------------------------------------------------------

# Not in the seeds beyond "not replicated within the copy interval -> Critical": srlab's
# thresholds, counted in copy intervals, so they scale with the policy.
HEALTH_WARNING_INTERVALS = 3
HEALTH_CRITICAL_INTERVALS = 6


# The book's remedy when changes are not replicated within the copy frequency (004 §2.9).
SLOW_REMEDY = ("lengthen the copy frequency (30s -> 5m -> 15m: srlab cloud configure CLOUD --frequency 15m); "
               "if 15 minutes does not clear it, the link lacks bandwidth: add some (srlab link set --mbps N)")


def health(rpo: int | None, frequency: int, failed: bool = False) -> str:
    if failed:
        return "Critical"
    if rpo is None:
        return "OK"
    if rpo > HEALTH_CRITICAL_INTERVALS * frequency:
        return "Critical"
    if rpo > HEALTH_WARNING_INTERVALS * frequency:
        return "Warning"
    return "OK"


@dataclass(frozen=True)
class HealthFacts:
    """An item's replication, as plain values (engine.faults gathers them)."""

    vm: str
    protection: str
    rpo: int | None  # None: no point to judge by (yet, or failed over)
    frequency: int
    error: str = ""  # an unrecoverable error (or a resync needed)
    error_code: str = ""
    resync_required: bool = False
    failures: int = 0  # failed attempts in a row (recoverable errors being retried)
    first_failure: str = ""
    retry_at: str = ""
    problem: str = ""  # what stops replication now, if anything
    problem_code: str = ""
    problem_action: str = ""
    interval: str = "copy intervals"  # what `frequency` is: an Azure VM has no copies, only points


def item_health(f: HealthFacts) -> tuple[str, str, str]:
    """(OK | Warning | Critical | "", the reason, the recommended action). "" when there is no
    replication to judge (failed over)."""
    if f.protection == Protection.RESYNC:  # what it clears is on its way out
        return "Warning", "resynchronization in progress" + (f" (it clears {f.error_code})" if f.error_code else ""), (
            "wait for its Resynchronize job to end (srlab jobs)")
    if f.error:
        return "Critical", f"{f.error_code}: {f.error}", (
            f"clear the cause if it is still there, then resynchronize: srlab resync {f.vm}"
            if f.resync_required else "see the events: srlab events --vm " + f.vm)
    if f.protection in (Protection.FAILED_OVER, Protection.DISABLING):
        return "", "", ""
    if f.protection == Protection.INITIAL and f.problem:
        return "Warning", f"initial replication paused: {f.problem_code}: {f.problem}", f.problem_action
    retrying = (f"{f.failures} failed attempt(s) since {f.first_failure} ({f.error_code}); next attempt at "
                f"{f.retry_at}" if f.failures else "")
    cause = f"{f.problem_code}: {f.problem}" if f.problem else retrying
    for level, intervals in (("Critical", HEALTH_CRITICAL_INTERVALS), ("Warning", HEALTH_WARNING_INTERVALS)):
        if f.rpo is not None and f.protection == Protection.PROTECTED and f.rpo > intervals * f.frequency:
            why = (f"no recovery point for {format_duration(f.rpo)}, more than {intervals} {f.interval} "
                   f"({format_duration(f.frequency)})")
            return level, f"{why}: {cause}" if cause else why, (f.problem_action if f.problem else SLOW_REMEDY)
    if f.failures:
        return "Warning", f"replication is retrying: {retrying}" + (f": {f.problem}" if f.problem else ""), (
            f.problem_action or "none: the next attempt should succeed")
    if f.problem:
        return "Warning", f"{f.problem_code}: {f.problem}", f.problem_action
    return "OK", "", ""


def worst_health(healths: list[str]) -> str:
    order = {"Critical": 3, "Warning": 2, "OK": 1, "": 0}
    return max(healths, key=order.__getitem__, default="")


# ---- retry logic (seed 000): recoverable errors are retried with waits of 1, 2, 4, 8 and 10
# minutes after the first failed attempt, then every 30 minutes, until the error clears.

RETRY_WAITS = (60, 120, 240, 480, 600)
RETRY_EVERY = 1800


def retry_wait(failures: int) -> int:
    """The wait before the next attempt after `failures` failed attempts in a row (>= 1)."""
    return RETRY_WAITS[failures - 1] if failures <= len(RETRY_WAITS) else RETRY_EVERY


# ---- what is allowed when --------------------------------------------------------------------

# What a user may do with an item in each protection state (engine.states names them).
ITEM_ACTIONS: dict[str, dict[Protection | str, str | None]] = {
    # action -> {state: None if allowed else the reason; "*": any other state}
    "protect": {
        Protection.NOT_PROTECTED: None,
        "*": "{vm} is already {state}",
    },
    "set_target": {
        Protection.NOT_PROTECTED: "{vm} is not protected: enable protection first",
        "*": None,
    },
    "unprotect": {
        Protection.NOT_PROTECTED: "{vm} is not protected",
        Protection.ENABLING: "{vm} is being enabled: wait for its Enable protection job to end",
        Protection.DISABLING: "{vm} is already being disabled",
        "*": None,
    },
}


def item_action_reason(action: str, vm: str, state: str) -> str | None:
    table = ITEM_ACTIONS[action]
    reason = table.get(state, table.get("*"))
    return reason.format(vm=vm, state=str(state)) if reason else None


# ---- failover: what each item operation needs (seed 004 §3.3-3.6, seeds 000-003) --------------

# The failover kinds each scenario offers (DESIGN §2).
FAILOVER_KINDS = {
    "hyperv-to-azure": ("test", "planned", "unplanned"),
    "vmm-to-vmm": ("test", "planned", "unplanned"),
    "azure-to-azure": ("test", "unplanned"),
    "physical-to-azure": ("test", "unplanned"),
}
# Where a failback is a reprotect, then a failover like the first one (not a planned failover back).
REPROTECT_TO_FAIL_BACK = ("azure-to-azure", "physical-to-azure")
# What a scenario protects, in a sentence.
MACHINES = {"hyperv-to-azure": "Hyper-V VMs", "vmm-to-vmm": "Hyper-V VMs in VMM clouds",
            "azure-to-azure": "Azure VMs", "physical-to-azure": "physical servers"}
# How an item comes home after a committed failover, per scenario.
FAILBACK = {
    "hyperv-to-azure": "planned failover back with a sync option",  # 004 §3.6
    "vmm-to-vmm": "reverse replicate, then planned failover back",  # 001
    "azure-to-azure": "reprotect the other way",  # 002
    "physical-to-azure": "fail back to VMware VMs only",  # 003
}


@dataclass(frozen=True)
class ItemFacts:
    """Plain facts about one item, gathered by the engine; the rules below judge only these."""

    vm: str
    scenario: str
    protection: str
    failover: str = ""
    active: str = "primary"  # primary | recovery: where the workload runs
    source_reachable: bool = True
    replication_problem: str = ""  # a fault that stops the item's replication now (engine.faults)
    has_points: bool = False
    target_name_ok: bool = True
    encrypted: bool = False
    key_given: bool = True  # a key file was given (or none is needed)
    last_failover: str = ""  # planned | unplanned
    in_group: str = ""  # the replication group it shares recovery points with
    via_plan: bool = False  # the operation comes from a recovery plan
    azure_process_server: bool = False  # a physical server in Azure: a process server there can fail it back

    @property
    def back(self) -> bool:
        """Is a planned failover now a failback (the workload runs at the recovery side)? Never
        where failback is a reprotect to a target of its own: for Azure -> Azure (symmetric, after
        a reprotect the region it runs in is the source), or a physical server (it fails back to
        VMware by a reprotect and an unplanned failover, 003)."""
        return self.active == "recovery" and self.scenario not in REPROTECT_TO_FAIL_BACK


def _is(*states):
    return lambda f: f.failover in states


def _kind_missing(kind):
    return lambda f: kind not in FAILOVER_KINDS.get(f.scenario, ())


_NOT_PROTECTED = (lambda f: f.protection == Protection.NOT_PROTECTED, "{vm} is not protected")
_TEST_RUNNING = (_is(Failover.TEST),
                 "{vm} has a test failover running: complete it first (srlab complete JOB --note TEXT)")
_IN_PROGRESS = (_is(Failover.FAILOVER, Failover.FAILBACK), "{vm} is busy: {failover}; wait for its job to end")
_NO_POINT = (lambda f: not f.back and not f.has_points,
             "{vm} has no recovery point yet: wait for initial replication to finish")
_NO_KEY = (lambda f: not f.back and f.encrypted and not f.key_given,
           "{vm}'s replicas are encrypted: give the data-encryption key file made at server registration "
           "(--key-file PATH)")
_GROUPED = (lambda f: f.in_group and not f.via_plan,
            "{vm} shares recovery points with replication group {in_group}: fail the group over together, "
            "through a recovery plan (srlab plan failover PLAN)")
_BAD_NAME = (lambda f: not f.back and not f.target_name_ok,
             "{vm}'s target name is not a valid Azure VM name: set one first (srlab vm set-target {vm} --name NAME)")

# operation -> ordered (refused if, reason); the first that holds is the reason. Reasons are
# formatted with the facts ({vm}, {failover}, {scenario}, ...).
OPERATIONS: dict[str, list[tuple]] = {
    "test_failover": [
        _NOT_PROTECTED, _TEST_RUNNING, _IN_PROGRESS,
        # during a resync the retained points stay: a test (or a disaster's unplanned failover) uses them
        (lambda f: f.protection not in (Protection.PROTECTED, Protection.RESYNC, Protection.REVERSE)
         or f.failover != Failover.READY,
         "{vm} is {protection} ({failover}): test failover needs a protected item that is Ready"),
        _NO_POINT, _BAD_NAME, _NO_KEY, _GROUPED,
    ],
    "planned_failover": [
        (lambda f: f.scenario == "physical-to-azure" and f.active == "recovery",
         "{vm} runs in Azure: a physical server never fails back to a physical server, only to a VMware VM "
         "(srlab reprotect {vm}, then an unplanned failover)"),
        (_kind_missing("planned"), "planned failover is not supported for {machines}: use unplanned failover"),
        _NOT_PROTECTED, _TEST_RUNNING, _IN_PROGRESS,
        (_is(Failover.COMMIT_PENDING), "{vm} waits for commit: commit it (srlab commit {vm}) or change its recovery point"),
        (_is(Failover.REVERSE_PENDING), "{vm} is back on the primary site: reverse replicate it first "
                                             "(srlab reprotect {vm})"),
        (lambda f: f.back and f.scenario == "vmm-to-vmm" and f.protection != Protection.REVERSE,
         "{vm} runs in the recovery cloud without replication back: reverse replicate first (srlab reprotect {vm})"),
        (lambda f: not f.back and f.protection == Protection.RESYNC,
         "{vm} is being resynchronized: a planned failover needs delta replication running; wait for its "
         "Resynchronize job to end (srlab jobs), or use unplanned failover"),
        (lambda f: not f.back and (f.protection != Protection.PROTECTED or f.failover != Failover.READY),
         "{vm} is {protection} ({failover}): planned failover needs a protected item that is Ready"),
        (lambda f: not f.back and not f.source_reachable,
         "planned failover needs the source site reachable: use unplanned failover"),
        (lambda f: not f.back and f.replication_problem,
         "{vm} cannot replicate now ({replication_problem}): a planned failover sends the last changes first; "
         "clear the fault or use unplanned failover"),
        _NO_POINT, _BAD_NAME, _NO_KEY, _GROUPED,
    ],
    "unplanned_failover": [
        _NOT_PROTECTED, _TEST_RUNNING, _IN_PROGRESS,
        (lambda f: f.failover == Failover.COMMITTED and f.scenario == "azure-to-azure",
         "{vm} runs in the other region without replication: reprotect it first (srlab reprotect {vm})"),
        (lambda f: f.failover == Failover.COMMITTED and f.scenario == "physical-to-azure",
         "{vm} runs in Azure without replication: reprotect it to VMware first (srlab reprotect {vm})"),
        (lambda f: f.back or f.failover in (Failover.COMMIT_PENDING, Failover.COMMITTED),
         "unplanned failover is not offered while {vm} runs at the recovery side ({failover}): "
         "fail back with a planned failover"),
        (_is(Failover.REVERSE_PENDING), "{vm} is back on the primary site: reverse replicate it first "
                                             "(srlab reprotect {vm})"),
        (lambda f: f.protection not in (Protection.PROTECTED, Protection.RESYNC) or f.failover != Failover.READY,
         "{vm} is {protection} ({failover}): unplanned failover needs a protected item that is Ready"),
        _NO_POINT, _BAD_NAME, _NO_KEY, _GROUPED,
    ],
    "commit": [
        _NOT_PROTECTED,
        (lambda f: f.failover != Failover.COMMIT_PENDING,
         "commit is possible only while commit is pending; {vm} is {failover}"),
    ],
    "change_point": [
        _NOT_PROTECTED,
        (lambda f: f.failover != Failover.COMMIT_PENDING,
         "the recovery point can be changed only while commit is pending; {vm} is {failover}"),
        (lambda f: not f.back and f.scenario not in REPROTECT_TO_FAIL_BACK,
         "{vm} was failed back to the primary site: there are no recovery points to choose"),
        _NO_KEY,
    ],
    "cancel_failover": [
        _NOT_PROTECTED,
        (_is(Failover.COMMIT_PENDING), "a failover cannot be cancelled once commit is pending: disable protection and "
                                "enable it again (004 FAQ)"),
        (_is(Failover.FAILOVER, Failover.FAILBACK),
         "a failover in progress runs to its end: then commit it or change its recovery point"),
        (lambda f: True, "{vm} has no failover to cancel ({failover})"),
    ],
    "reprotect": [
        _NOT_PROTECTED,
        (lambda f: f.failover == Failover.COMMITTED and f.scenario == "hyperv-to-azure",
         "{vm} runs in Azure: fail it back first (srlab failover {vm} --kind planned --sync before|during)"),
        (lambda f: f.failover == Failover.COMMITTED and f.scenario == "physical-to-azure"
         and not f.azure_process_server,
         "physical servers fail back to VMware VMs only, through a process server in Azure and a master target "
         "on premises: deploy the process server first (srlab process-server deploy NAME --region REGION)"),
        (lambda f: f.failover not in (Failover.REVERSE_PENDING, Failover.COMMITTED),
         "reverse replication follows a committed failover; {vm} is {failover}"),
    ],
    "start_source": [
        (lambda f: f.protection == Protection.REVERSE or f.failover == Failover.FAILBACK,
         "{vm}'s primary copy is the replica of the VM at the recovery side now: it starts when it fails back"),
        (lambda f: f.back and f.last_failover == "planned",
         "{vm} runs at the recovery side after a planned failover: its source stays off until it fails back"),
    ],
    "disable": [
        _NOT_PROTECTED, _IN_PROGRESS,
        (_is(Failover.TEST), "{vm} has a test failover running: complete it first"),
    ],
    # A protected VM can always be resynchronized (one that needs none sends little).
    "resync": [
        _NOT_PROTECTED,
        (lambda f: f.protection == Protection.RESYNC,
         "{vm} is already being resynchronized: wait for its Resynchronize job to end (srlab jobs)"),
        _IN_PROGRESS,
        (lambda f: f.protection == Protection.DISABLING, "{vm} is being disabled: there is nothing to resynchronize"),
        (lambda f: f.back or f.protection in (Protection.FAILED_OVER, Protection.REVERSE),
         "{vm} is {protection} ({failover}): nothing replicates from its primary site to resynchronize"),
        (lambda f: f.protection != Protection.PROTECTED,
         "{vm} is {protection}: a resynchronization needs a protected item (initial replication makes the "
         "first replica)"),
    ],
}


def operation_reason(op: str, f: ItemFacts) -> str | None:
    """None if the operation is allowed on the item with these facts, else why not."""
    for refused, reason in OPERATIONS[op]:
        if refused(f):
            facts = {**f.__dict__, "failover": f.failover or "not failed over", "machines": MACHINES[f.scenario]}
            return reason.format(**facts)
    return None
