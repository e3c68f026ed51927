"""Recovery plans as the app sees them: plain-data helpers over `LabState.plans` (Lab.plans())
and the plan jobs in `LabState.jobs`, shared by the Recovery plans panel and the plan dialogs.

No widget, no engine call: plain data in, plain data (or `rich.text.Text`) out."""

from __future__ import annotations

from rich.text import Text

from engine import JobState, Protection

from .state import LabState, at_recovery_side

# A plan operation (as Lab.plan_start and Lab.allowed("plan_<op>", plan) take it) and its name.
PLAN_FAILOVERS = [("test", "Test failover"), ("planned", "Planned failover"), ("unplanned", "Unplanned failover")]
# Recovery points a plan fails over to: the real service offers no custom point for plans.
PLAN_POINTS = [("latest processed", "latest-processed"), ("latest", "latest"),
               ("latest app-consistent", "latest-app")]
MAX_GROUPS = 7  # as the real service (and the engine) has it


def plan_of(state: LabState, name: str | None) -> dict | None:
    return next((p for p in state.plans if p["name"] == name), None) if name else None


def plan_vms(plan: dict) -> list[str]:
    return [vm for g in plan.get("groups", []) for vm in g.get("vms", [])]


def group_of_vm(plan: dict, vm: str) -> int | None:
    return next((g["group"] for g in plan.get("groups", []) if vm in g.get("vms", [])), None)


def plan_back(state: LabState, plan: dict) -> bool:
    """Does the plan's workload run at the recovery side now (so its planned failover is its failback)?"""
    return any(at_recovery_side(v) for v in (state.vm(n) for n in plan_vms(plan)) if v)


def source_of(vm: dict) -> str:
    """Where a VM is protected from, as a plan names it: its cloud (or region, or site); a
    physical server's configuration server (seed 003)."""
    policy = vm.get("policy") or {}
    if policy.get("container_kind") == "configuration server" and policy.get("container"):
        return str(policy["container"])
    return str(vm.get("cloud") or vm.get("location") or vm.get("site") or "")


def target_of(vm: dict) -> str:
    """Where a protected VM replicates to, as a plan names it (Azure region or recovery cloud)."""
    return str((vm.get("policy") or {}).get("target") or "")


def routes(state: LabState) -> list[tuple[str, str]]:
    """(source, target) of the protected VMs: what a plan can be made for."""
    out: list[tuple[str, str]] = []
    for v in state.status.get("vms", []):
        if v.get("protection", Protection.NOT_PROTECTED) == Protection.NOT_PROTECTED or not target_of(v):
            continue
        route = (source_of(v), target_of(v))
        if route not in out:
            out.append(route)
    return out


def route_vms(state: LabState, source: str, target: str, exclude: list[str] | tuple = ()) -> list[str]:
    """Protected VMs between `source` and `target` (those a plan of that route may hold)."""
    return [v["name"] for v in state.status.get("vms", [])
            if v.get("protection", Protection.NOT_PROTECTED) != Protection.NOT_PROTECTED
            and (source_of(v), target_of(v)) == (source, target) and v["name"] not in exclude]


def plan_jobs(state: LabState, name: str) -> list[dict]:
    """The plan's jobs (failover, commit, reverse replicate), newest first."""
    return [j for j in state.jobs if j.get("target") == name and str(j.get("kind", "")).startswith("plan_")]


def children(state: LabState, job_id) -> list[dict]:
    """A plan job's per-VM jobs (oldest first)."""
    return sorted((j for j in state.jobs if j.get("parent") == job_id), key=lambda j: j["id"])


def waiting_job(state: LabState, name: str) -> dict | None:
    """The plan's job that waits for action now (a manual action, Complete test, start the failback)."""
    return next((j for j in plan_jobs(state, name) if j.get("state") == JobState.WAITING), None)


def route_text(source: str, target: str, back: bool = False) -> Text:
    t = Text()
    t.append(Text(target if back else source, style="bold"))
    t.append(" → ")
    t.append(Text(source if back else target, style="bold"))
    return t


def order_text(plan: dict) -> Text:
    """The plan's order on one line: each group's VMs, with its actions before and after."""
    t = Text()
    for g in plan.get("groups", []):
        if t:
            t.append(" → ")
        for a in g.get("before", []):
            t.append(Text(f"{action_word(a)}, ", style="dim"))
        t.append(f"{g['group']}: ", style="bold")
        t.append(Text(", ".join(g.get("vms", [])) or "(empty)"))
        for a in g.get("after", []):
            t.append(Text(f", {action_word(a)}", style="dim"))
    return t


def action_word(a: dict) -> str:
    return "manual action" if a.get("kind") == "manual" else "script"
