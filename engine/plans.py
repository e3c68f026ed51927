"""Recovery plans (seed 004 §3.2): ordered groups of protected VMs, with manual actions and
scripts before and after each group, failed over, committed, failed back and reverse-replicated
as one job, and replication groups whose members share recovery points (seed 003).

A plan's job is a parent job: its steps are made from a snapshot of the plan taken when it
starts (so editing the plan does not change a running job). Each group's step starts one child
job per VM (the very jobs of engine.failover, run in parallel) and the next step waits until
they have run (jobs.CHILDREN). A planned failover shuts the source VMs down group by group in
reverse order first. Manual actions wait for `srlab complete JOB --note TEXT`; scripts run as
real processes with the runbook's context as JSON on stdin and SRLAB_* variables.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from . import failover, jobs, protection, rules, scenarios, setup, states, store
from .clock import format_duration, format_time
from .errors import InvalidInput, Refused
from .jobs import CHILDREN, Run, Step
from .model import VM

MAX_GROUPS = 7  # as the real service: 7 groups, 100 protected items per plan
MAX_ITEMS = 100
SCRIPT_TIMEOUT = 60  # wall seconds a plan's script may run
SCRIPT_SECONDS = 30  # lab time a script step takes
OPERATIONS = ("test", "planned", "unplanned", "commit", "reprotect")

# ---- plans ---------------------------------------------------------------------------------------


def _plan(lab, name: str) -> dict:
    row = next(lab.db.query("SELECT * FROM plans WHERE name=?", [name]), None)
    if row is None:
        names = [r[0] for r in lab.db.execute("SELECT name FROM plans ORDER BY name")]
        raise InvalidInput(f"no recovery plan named {name!r}", f"plans: {', '.join(names) or 'none'}")
    return row


def _members(lab, plan: str) -> list[dict]:
    return list(lab.db.query("SELECT vm, grp FROM plan_items WHERE plan=? ORDER BY grp, vm", [plan]))


def _check_member(lab, plan: dict, vm: VM) -> None:
    """A VM of a plan must be protected from the plan's source to its target (an Azure VM, either way)."""
    item = states.item(lab.db, vm.name)
    if item is None:
        raise Refused(f"{vm.name} is not protected", f"protect it first: srlab protect {vm.name}")
    source = scenarios.container_of(vm, lab.site).name
    if item["target_kind"] == "region":  # an Azure VM reprotected after a failover replicates back: both ways
        frm, to = setup.link_of(lab, vm)
        if {frm, to} != {plan["source"], plan["target"]}:
            raise Refused(f"{vm.name} replicates from {frm} to {to}, not between {plan['source']} and {plan['target']}")
        return
    failing_back = item["target_kind"] == "vmware"  # a physical server on its way from Azure to VMware
    if source != plan["source"] or (item["target"] != plan["target"] and not failing_back):
        raise Refused(f"{vm.name} is protected from {source} to {item['target']}, not from {plan['source']} "
                      f"to {plan['target']}")


def create(lab, name: str, source: str, target: str, vms: list[str], rto_target: int | None = None) -> dict:
    if not name.strip() or len(name) > 64 or any(c in name for c in "/\\\0\n"):
        raise InvalidInput(f"bad plan name {name!r}", "1-64 characters, no slashes or line breaks")
    if lab.db.execute("SELECT 1 FROM plans WHERE name=?", [name]).fetchone():
        raise Refused(f"a recovery plan named {name!r} exists", f"see it with: srlab plan show {name!r}")
    if not vms:
        raise InvalidInput("a recovery plan needs at least one VM (--vm VM)")
    if len(vms) > MAX_ITEMS:
        raise InvalidInput(f"a recovery plan holds at most {MAX_ITEMS} VMs, not {len(vms)}")
    found = [lab.vm(v) for v in vms]
    if len({v.name for v in found}) < len(found):
        raise InvalidInput("a VM is named twice")
    plan = {"name": name, "source": source, "target": target}
    problems = []
    for vm in found:
        try:
            _check_member(lab, plan, vm)
        except Refused as e:
            problems.append(e.message)
    if problems:
        raise Refused(f"cannot create plan {name}:\n  - " + "\n  - ".join(problems), "nothing was changed")
    with store.transaction(lab.db):
        lab.db["plans"].insert({**plan, "groups": 1, "rto_target": rto_target, "created": lab.now})
        for vm in found:
            lab.db["plan_items"].insert({"plan": name, "vm": vm.name, "grp": 1})
        lab.event(lab.now, "info", name, f"recovery plan created: {', '.join(v.name for v in found)} in group 1")
    return show(lab, name)


def add_group(lab, name: str) -> int:
    plan = _plan(lab, name)
    if plan["groups"] >= MAX_GROUPS:
        raise Refused(f"plan {name} has {MAX_GROUPS} groups, the most a plan may have")
    with store.transaction(lab.db):
        lab.db.execute("UPDATE plans SET groups=groups+1 WHERE name=?", [name])
    return plan["groups"] + 1


def move_group(lab, name: str, group: int, to: int) -> None:
    """Reorder: the group moves to position `to`; the groups between shift by one."""
    plan = _plan(lab, name)
    _group(plan, group), _group(plan, to)
    order = list(range(1, plan["groups"] + 1))
    order.insert(to - 1, order.pop(group - 1))
    new = {old: i + 1 for i, old in enumerate(order)}
    with store.transaction(lab.db):
        for table in ("plan_items", "plan_actions"):
            lab.db.execute(f"UPDATE {table} SET grp = -grp WHERE plan=?", [name])
            for old, n in new.items():
                lab.db.execute(f"UPDATE {table} SET grp=? WHERE plan=? AND grp=?", [n, name, -old])


def remove_group(lab, name: str, group: int) -> None:
    """Remove an empty group (its actions go with it); the groups after it move up."""
    plan = _plan(lab, name)
    _group(plan, group)
    if lab.db.execute("SELECT 1 FROM plan_items WHERE plan=? AND grp=?", [name, group]).fetchone():
        raise Refused(f"group {group} of plan {name} has VMs", "move them to another group first")
    if plan["groups"] == 1:
        raise Refused(f"group 1 is plan {name}'s only group")
    with store.transaction(lab.db):
        lab.db.execute("DELETE FROM plan_actions WHERE plan=? AND grp=?", [name, group])
        for table in ("plan_items", "plan_actions"):
            lab.db.execute(f"UPDATE {table} SET grp=grp-1 WHERE plan=? AND grp>?", [name, group])
        lab.db.execute("UPDATE plans SET groups=groups-1 WHERE name=?", [name])


def remove_action(lab, name: str, action_id: int) -> None:
    _plan(lab, name)
    with store.transaction(lab.db):
        if not lab.db.execute("DELETE FROM plan_actions WHERE plan=? AND id=?", [name, action_id]).rowcount:
            raise InvalidInput(f"plan {name} has no action {action_id}", f"see them with: srlab plan show {name!r}")


def _group(plan: dict, group: int) -> int:
    if not 1 <= group <= plan["groups"]:
        raise InvalidInput(f"plan {plan['name']} has groups 1-{plan['groups']}, not {group}",
                           f"add one with: srlab plan group add {plan['name']!r}")
    return group


def move(lab, name: str, vm_name: str, group: int) -> None:
    plan = _plan(lab, name)
    vm = lab.vm(vm_name)
    _group(plan, group)
    with store.transaction(lab.db):
        if lab.db.execute("SELECT 1 FROM plan_items WHERE plan=? AND vm=?", [name, vm.name]).fetchone():
            lab.db.execute("UPDATE plan_items SET grp=? WHERE plan=? AND vm=?", [group, name, vm.name])
            return
        if len(_members(lab, name)) >= MAX_ITEMS:
            raise Refused(f"plan {name} holds {MAX_ITEMS} VMs, the most a plan may")
        _check_member(lab, plan, vm)
        lab.db["plan_items"].insert({"plan": name, "vm": vm.name, "grp": group})


def remove(lab, name: str, vm_name: str) -> None:
    _plan(lab, name)
    vm = lab.vm(vm_name)
    if len(_members(lab, name)) == 1:
        raise Refused(f"{vm.name} is the last VM of plan {name}",
                      f"delete the plan instead: srlab plan delete {name!r}")
    with store.transaction(lab.db):
        if not lab.db.execute("DELETE FROM plan_items WHERE plan=? AND vm=?", [name, vm.name]).rowcount:
            raise InvalidInput(f"{vm.name} is not in plan {name}")


def add_action(lab, name: str, group: int, phase: str, manual: str | None = None,
               script: str | None = None) -> int:
    plan = _plan(lab, name)
    _group(plan, group)
    if phase not in ("before", "after"):
        raise InvalidInput(f"an action runs before or after its group, not {phase!r}")
    if (manual is None) == (script is None):
        raise InvalidInput("give one of --manual TEXT or --script PATH")
    if manual is not None and not manual.strip():
        raise InvalidInput("a manual action needs its instructions (--manual TEXT)")
    if script is not None:
        path = Path(script).absolute()
        if not path.is_file() or not os.access(path, os.X_OK):
            raise InvalidInput(f"{script} is not an executable file", "chmod +x it, with a #! line")
        script = str(path)
    with store.transaction(lab.db):
        return lab.db["plan_actions"].insert({"plan": name, "grp": group, "phase": phase,
                                              "kind": "manual" if manual is not None else "script",
                                              "text": manual if manual is not None else script}).last_pk


def delete(lab, name: str) -> None:
    _plan(lab, name)
    running = [j for j in lab.db.query("SELECT id FROM jobs WHERE target=? AND kind LIKE 'plan_%' AND state IN (?, ?)",
                                       [name, states.JobState.IN_PROGRESS.value, states.JobState.WAITING.value])]
    if running:
        raise Refused(f"plan {name} has a running job ({running[0]['id']})", "wait for it to end")
    with store.transaction(lab.db):
        lab.db.execute("DELETE FROM plan_actions WHERE plan=?", [name])
        lab.db.execute("DELETE FROM plan_items WHERE plan=?", [name])
        lab.db.execute("DELETE FROM plans WHERE name=?", [name])
        lab.event(lab.now, "info", name, "recovery plan deleted")


def show(lab, name: str) -> dict:
    plan = _plan(lab, name)
    members = _members(lab, name)
    actions = list(lab.db.query("SELECT * FROM plan_actions WHERE plan=? ORDER BY grp, id", [name]))
    groups = []
    for g in range(1, plan["groups"] + 1):
        groups.append({"group": g, "vms": [m["vm"] for m in members if m["grp"] == g],
                       "before": [_action(a) for a in actions if a["grp"] == g and a["phase"] == "before"],
                       "after": [_action(a) for a in actions if a["grp"] == g and a["phase"] == "after"]})
    return {"name": name, "source": plan["source"], "target": plan["target"], "rto_target": plan["rto_target"],
            "groups": groups}


def _action(a: dict) -> dict:
    return {"id": a["id"], "kind": a["kind"], "text": a["text"]}


def listing(lab) -> list[dict]:
    return [show(lab, r[0]) for r in lab.db.execute("SELECT name FROM plans ORDER BY name")]


# ---- replication groups (multi-VM consistency) --------------------------------------------------


def create_group(lab, name: str, vms: list[str]) -> None:
    """Members share recovery points: their logs are frozen at the same instants."""
    found = [lab.vm(v) for v in vms]
    if len(found) < 2:
        raise InvalidInput("a replication group needs at least two VMs")
    items = [states.item(lab.db, v.name) for v in found]
    problems = [f"{v.name} is not protected" for v, i in zip(found, items) if i is None]
    problems += [f"{v.name} is in replication group {r[0]}" for v in found
                 for r in lab.db.execute("SELECT name FROM replication_groups WHERE vm=?", [v.name])]
    if not problems:
        containers = {scenarios.container_of(v, lab.site).name for v in found}
        if len(containers) > 1:
            problems.append(f"the VMs are protected from different places ({', '.join(sorted(containers))})")
        problems += [f"{i['vm']} is {i['state']}: a group forms from protected VMs" for i in items
                     if i["state"] != states.Protection.PROTECTED]
    if problems:
        raise Refused(f"cannot create replication group {name}:\n  - " + "\n  - ".join(problems))
    first = min(i["next_cycle"] for i in items)
    app = [i["next_app"] for i in items if i["next_app"] is not None]
    with store.transaction(lab.db):
        for v in found:
            lab.db["replication_groups"].insert({"name": name, "vm": v.name})
            lab.db.execute("UPDATE items SET next_cycle=?, next_app=? WHERE vm=?", [first, min(app) if app else None,
                                                                                   v.name])
        lab.event(lab.now, "info", name, f"replication group of {', '.join(v.name for v in found)}: "
                                         "their recovery points share each instant")


def group_of(lab, vm: str) -> str:
    row = lab.db.execute("SELECT name FROM replication_groups WHERE vm=?", [vm]).fetchone()
    return row[0] if row else ""


# ---- plan operations ---------------------------------------------------------------------------


def _op(kind: str) -> str:
    if kind not in OPERATIONS:
        raise InvalidInput(f"unknown plan operation {kind!r}", f"use one of: {', '.join(OPERATIONS)}")
    return {"test": "test_failover", "planned": "planned_failover", "unplanned": "unplanned_failover"}.get(kind, kind)


def problems(lab, name: str, kind: str) -> list[str]:
    """What refuses each VM of the plan for this operation now (the rules table), and plan rules."""
    plan = _plan(lab, name)
    op = _op(kind)
    out = []
    members = _members(lab, name)
    if not members:
        out.append(f"plan {name} has no VMs")
    in_plan = {m["vm"] for m in members}
    for m in members:
        vm = lab.vm(m["vm"])
        try:
            _check_member(lab, plan, vm)
        except Refused as e:
            out.append(e.message)
            continue
        if reason := rules.operation_reason(op, protection.item_facts(lab, vm, via_plan=True)):
            out.append(reason)
        group = group_of(lab, vm.name)
        missing = [r[0] for r in lab.db.execute("SELECT vm FROM replication_groups WHERE name=?", [group])
                   if r[0] not in in_plan] if group else []
        if missing:
            out.append(f"{vm.name} shares recovery points with {', '.join(missing)} (replication group {group}): "
                       "put them in the plan too")
    return out


def _steps(data: dict) -> list[Step]:
    """The plan job's steps, from the plan's snapshot in the job's data."""
    kind, groups = data["kind"], data["groups"]
    out = [Step("Prerequisites check for the plan", 10, _prerequisites)]
    if kind == "planned" and not data.get("back"):
        for g in reversed(groups):  # the source side shuts down in reverse order
            if g["vms"]:
                out.append(Step(f"Group {g['group']}: shut down {', '.join(g['vms'])}", 60, _shut_down))
    actions = kind in ("test", "planned", "unplanned")  # a plan's actions belong to its failovers
    # A failback that syncs before failing over syncs every group while the VMs keep running,
    # waits for the user, then fails the groups over in order.
    sync_first = data.get("back") and (data.get("sync") or "before") == "before"
    if sync_first:
        for g in groups:
            if g["vms"]:
                out.append(Step(f"Group {g['group']}: synchronize {', '.join(g['vms'])}", 0, _start_group))
                out.append(Step(f"Group {g['group']}: wait for {', '.join(g['vms'])} to synchronize", CHILDREN,
                                _finished))
        out.append(Step("Start the failover (complete this step when ready)", None))
    for g in groups:
        out += [_action_step(g["group"], a) for a in g["before"] if actions]
        if g["vms"]:
            vms = ", ".join(g["vms"])
            if sync_first:
                out.append(Step(f"Group {g['group']}: fail over {vms}", 0, _complete_group))
            else:
                verb = {"commit": "commit", "reprotect": "reverse replicate"}.get(kind, "fail over")
                out.append(Step(f"Group {g['group']}: {verb} {vms}", 0, _start_group))
            out.append(Step(f"Group {g['group']}: wait for {vms}", CHILDREN, _group_done))
        out += [_action_step(g["group"], a) for a in g["after"] if actions]
    if kind == "test":
        out += [Step("Complete test", None, _complete_children), Step("Clean up the test VMs", CHILDREN, _finished)]
    return out


def _action_step(group: int, a: dict) -> Step:
    if a["kind"] == "manual":
        return Step(f"Group {group} manual action: {a['text']}", None, _manual_done)
    return Step(f"Group {group} script: {Path(a['text']).name}", SCRIPT_SECONDS, _run_script)


def start(lab, name: str, kind: str, point: str | None = None, shutdown_sync: bool = False,
          sync: str | None = None, key_file: str | None = None) -> int:
    """Start a plan operation: test / planned / unplanned failover (planned from the recovery
    side is the failback), commit or reprotect, as one job."""
    plan = _plan(lab, name)
    if point not in (None, "latest", "latest-processed", "latest-app"):
        raise InvalidInput("a plan fails over to latest, latest-processed or latest-app (a custom point is chosen "
                           "per VM: srlab failover VM --point ID)")
    found = problems(lab, name, kind)
    if found:
        raise Refused(f"cannot run {kind} on plan {name}:\n  - " + "\n  - ".join(found), "nothing was changed")
    members = _members(lab, name)
    returning = any(states.item(lab.db, m["vm"])["active"] == "recovery" for m in members)
    back = returning and kind == "planned"
    snapshot = show(lab, name)
    data = {"kind": kind, "back": back, "returning": returning, "point": point, "shutdown_sync": shutdown_sync, "sync": sync,
            "key_file": key_file, "groups": snapshot["groups"], "rto_target": plan["rto_target"]}
    job_kind = {"commit": "plan_commit", "reprotect": "plan_reprotect"}.get(kind, "plan_failover")
    with store.transaction(lab.db):
        job = jobs.create(lab.db, lab.now, job_kind, name, data)
        lab.event(lab.now, "info", name, f"recovery plan: {kind}{' (failback)' if back else ''} started")
    return job


# ---- the plan job's steps ----------------------------------------------------------------------------


def _report(lab, run: Run) -> dict:
    return json.loads(lab.db.execute("SELECT report FROM jobs WHERE id=?", [run.id]).fetchone()[0] or "{}")


def _save(lab, run: Run, report: dict) -> None:
    lab.db.execute("UPDATE jobs SET report=? WHERE id=?", [json.dumps(report), run.id])


def _current(lab, run: Run) -> tuple[str, dict | None]:
    step = lab.db.execute("SELECT s.name FROM jobs j JOIN job_steps s ON s.job=j.id AND s.idx=j.step WHERE j.id=?",
                          [run.id]).fetchone()[0]
    group = None
    if step.startswith("Group "):
        n = int(step.split()[1].rstrip(":"))
        group = next(g for g in run.data["groups"] if g["group"] == n)
    return step, group


def _prerequisites(lab, run: Run) -> None:
    found = problems(lab, run.target, run.data["kind"])
    if found:
        raise Refused(found[0])
    _save(lab, run, {"plan": run.target, "kind": run.data["kind"], "back": run.data["back"], "groups": {}})


def _shut_down(lab, run: Run) -> None:
    _, group = _current(lab, run)
    for vm in group["vms"]:
        if lab.vm_row(vm)["power"] == "running":
            lab.db.execute("UPDATE vms SET power='off', last_shutdown='clean' WHERE name=?", [vm])
            lab.event(run.t, "info", vm, f"shut down by recovery plan {run.target} (group {group['group']})")


def _start_group(lab, run: Run) -> None:
    _, group = _current(lab, run)
    kind, d = run.data["kind"], run.data
    if kind == "commit":
        ids = failover.commit(lab, group["vms"])
    elif kind == "reprotect":
        ids = failover.reprotect(lab, group["vms"])
    else:
        ids = []
        for vm in group["vms"]:
            ids += failover.failover(lab, [vm], kind, _consistent_point(lab, vm, kind, d.get("point")), None,
                                     d.get("shutdown_sync", False), d.get("sync"), d.get("key_file"), via_plan=True)
    lab.db.execute(f"UPDATE jobs SET parent=? WHERE id IN ({','.join('?' * len(ids))})", [run.id, *ids])
    report = _report(lab, run)
    report["groups"][str(group["group"])] = {"jobs": ids, "started": run.t}
    _save(lab, run, report)


def _consistent_point(lab, vm: str, kind: str, point: str | None) -> str | None:
    """A replication group's members recover to the newest instant they all have a point at
    (the latest multi-VM consistent point); others to the point asked for."""
    group = group_of(lab, vm)
    if not group or kind == "planned" or point == "latest-app":
        return point
    members = [r[0] for r in lab.db.execute("SELECT vm FROM replication_groups WHERE name=?", [group])]
    pol = lab.replication.policy(vm)
    every = pol["frequency"] if pol["batch"] else 0
    times = [_lasting_times(lab, m, every) for m in members]
    shared = set.intersection(*times)
    if not shared:
        raise Refused(f"replication group {group} has no recovery point shared by all its members yet")
    return str(lab.db.execute("SELECT id FROM points WHERE vm=? AND time=?", [vm, max(shared)]).fetchone()[0])


def _lasting_times(lab, vm: str, every: int) -> set[int]:
    """The times of a VM's points that stay until a plan's failover builds them. Continuous
    replication (`every`: its crash-consistent point interval) folds each batch into the next
    one unless it is the first of its interval or app-consistent."""
    rows = lab.db.execute("SELECT time, kind FROM points WHERE vm=? ORDER BY time", [vm]).fetchall()
    if not every:
        return {t for t, _ in rows}
    out, seen = set(), set()
    for t, kind in rows:
        if kind == "app-consistent" or t // every not in seen:
            out.add(t)
        seen.add(t // every)
    return out


def _group_done(lab, run: Run) -> None:
    """The group's child jobs have run: fail if one failed; record each VM's outcome."""
    _, group = _current(lab, run)
    report = _report(lab, run)
    g = report["groups"][str(group["group"])]
    vms = {}
    for jid in g["jobs"]:
        child = next(lab.db.query("SELECT * FROM jobs WHERE id=?", [jid]))
        if child["state"] == states.JobState.FAILED:
            raise Refused(f"{child['name']} failed: {child['error']}")
        vms[child["target"]] = {"job": jid, **json.loads(child["report"] or "{}")}
    g.update(vms=vms, running=run.t, rto_seconds=run.t - _started(lab, run))
    report["rto_seconds"] = run.t - _started(lab, run)
    _save(lab, run, report)
    lab.event(run.t, "info", run.target, f"group {group['group']} ready: {', '.join(group['vms'])}")


def _started(lab, run: Run) -> int:
    return lab.db.execute("SELECT started FROM jobs WHERE id=?", [run.id]).fetchone()[0]


def _manual_done(lab, run: Run) -> None:
    step, _ = _current(lab, run)
    report = _report(lab, run)
    report.setdefault("manual_actions", []).append({"step": step, "note": run.data.get("note", ""), "at": run.t})
    _save(lab, run, report)


def _context(lab, run: Run, group: dict) -> dict:
    """What a runbook script is told: the operation, its direction, the group, and each source
    VM's recovered VM with its network."""
    recovered = {}
    for g in run.data["groups"]:
        for vm in g["vms"]:
            rows = failover.recovered(lab, vm, "test" if run.data["kind"] == "test" else "failover")
            recovered[vm] = {"recovered_vm": rows[0]["name"], "network": rows[0]["network"],
                             "place": rows[0]["place"]} if rows else None
    return {"plan": run.target, "kind": run.data["kind"],
            "direction": "recovery to primary" if run.data.get("returning", run.data["back"]) else "primary to recovery",
            "group": group["group"], "vms": recovered, "lab_time": format_time(run.t)}


def _run_script(lab, run: Run) -> None:
    step, group = _current(lab, run)
    path = next(a["text"] for a in group["before"] + group["after"] if step.endswith(Path(a["text"]).name))
    context = _context(lab, run, group)
    env = {**os.environ, "SRLAB_PLAN": run.target, "SRLAB_KIND": run.data["kind"],
           "SRLAB_DIRECTION": context["direction"], "SRLAB_GROUP": str(group["group"])}
    try:
        done = subprocess.run([path], input=json.dumps(context), capture_output=True, text=True, env=env,
                              timeout=SCRIPT_TIMEOUT, cwd=lab.path)
    except subprocess.TimeoutExpired:
        raise Refused(f"script {path} ran longer than {SCRIPT_TIMEOUT} s",
                      f"fix it, then resume the job: srlab resume {run.id}") from None
    except OSError as e:
        raise Refused(f"script {path} could not run: {e.strerror}", f"fix it, then: srlab resume {run.id}") from None
    output = (done.stdout + done.stderr).strip()
    report = _report(lab, run)
    report.setdefault("scripts", []).append({"step": step, "exit": done.returncode, "output": output[-4000:]})
    if done.returncode != 0:
        raise Refused(f"script {Path(path).name} exited {done.returncode}: {output[-500:] or '(no output)'}",
                      f"fix it, then resume the job: srlab resume {run.id}")
    _save(lab, run, report)


def _complete_group(lab, run: Run) -> None:
    """Failback, synced before: the group's VMs now shut down, send their last changes, start home."""
    _, group = _current(lab, run)
    for jid in _report(lab, run)["groups"][str(group["group"])]["jobs"]:
        if lab.job(jid)["state"] == states.JobState.WAITING:
            jobs.complete(lab, jid, run.t, run.data.get("note", ""))


def _complete_children(lab, run: Run) -> None:
    """The user completes the plan's waiting step: every child job waiting on it carries on."""
    for child in jobs.children(lab.db, run.id):
        if child["state"] == states.JobState.WAITING:
            jobs.complete(lab, child["id"], run.t, run.data.get("note", ""))
    if run.data.get("note"):
        report = _report(lab, run)
        report["note"] = run.data["note"]
        _save(lab, run, report)


def _finished(lab, run: Run) -> None:
    failed = [c for c in jobs.children(lab.db, run.id) if c["state"] == states.JobState.FAILED]
    if failed:
        raise Refused(f"{failed[0]['name']} failed: {failed[0]['error']}")


jobs.define("plan_failover", "Recovery plan failover", _steps)
jobs.define("plan_commit", "Recovery plan commit", _steps)
jobs.define("plan_reprotect", "Recovery plan reverse replicate", _steps)


def resume(lab, job_id: int) -> dict:
    job = lab.job(job_id)
    if job["state"] != states.JobState.FAILED or not job["kind"].startswith("plan_"):
        raise Refused(f"job {job_id} is {job['state']}; only a failed recovery plan job can be resumed")
    jobs.resume(lab, job_id, lab.now)
    lab.event(lab.now, "info", job["target"], f"job {job_id} resumed at its failed step")
    return lab.job(job_id)


# ---- dry run and the drill report ------------------------------------------------------------------


def check(lab, name: str, kind: str) -> dict:
    """What would refuse the plan operation now, and the RTO its steps would take."""
    plan = show(lab, name)
    found = problems(lab, name, kind)
    back = kind == "planned" and any(states.item(lab.db, vm)["active"] == "recovery"
                                     for g in plan["groups"] for vm in g["vms"] if states.item(lab.db, vm))
    data = {"kind": kind, "back": back, "sync": "during", "groups": plan["groups"]}
    child = jobs.KINDS["failback_during" if back else f"{kind}_failover"] if kind in ("test", "planned", "unplanned") \
        else jobs.KINDS[kind]
    per_vm = sum(s.seconds or 0 for s in child.steps_for({})) if child else 0
    rto, manual = 0, 0
    for s in _steps(data):
        if s.seconds == CHILDREN:
            rto += per_vm if s.action is _group_done else 0
        elif s.seconds is None:
            manual += s.action is _manual_done
        else:
            rto += s.seconds
    return {"plan": name, "kind": kind, "problems": found, "rto_seconds": rto, "manual_actions": manual,
            "rto_target": plan["rto_target"]}


def drill_report(lab, job_id: int) -> dict:
    """What an auditor asks after a DR drill, from a plan job or a VM's failover job."""
    job = lab.job(job_id)
    rep = job["report"] or {}
    out = {"job": job_id, "name": job["name"], "state": job["state"], "started": format_time(job["started"]),
           "ended": format_time(job["ended"]) if job["ended"] else None, "vms": []}
    if job["kind"].startswith("plan_"):
        plan = next(lab.db.query("SELECT rto_target FROM plans WHERE name=?", [job["target"]]), None)
        out.update(plan=job["target"], kind=rep.get("kind"), rto_seconds=rep.get("rto_seconds"),
                   rto_target=plan["rto_target"] if plan else None,
                   manual_actions=rep.get("manual_actions", []), scripts=rep.get("scripts", []))
        for g, grp in sorted(rep.get("groups", {}).items(), key=lambda x: int(x[0])):
            for vm, r in grp.get("vms", {}).items():
                out["vms"].append(_vm_line(lab, vm, r, int(g), grp))
    else:
        out.update(kind=job["kind"], rto_seconds=rep.get("rto_seconds"))
        out["vms"].append(_vm_line(lab, job["target"], rep, None, {"started": job["started"]}))
    return out


def _vm_line(lab, vm: str, r: dict, group: int | None, grp: dict) -> dict:
    child = lab.job(r["job"]) if "job" in r else None
    return {"vm": vm, "group": group, "point": r.get("point"), "point_time": r.get("point_time"),
            "rpo_at_failover": max(0, (child["started"] if child else grp["started"]) - r["point_time"])
            if r.get("point_time") else None,
            "last_transaction": r.get("last_transaction"), "transactions_lost": r.get("transactions_lost"),
            "data_loss_seconds": r.get("data_loss_seconds"), "rto_seconds": r.get("rto_seconds"),
            "started": grp.get("started"), "running": grp.get("running"), "verified": r.get("verified"),
            "recovered_vm": r.get("recovered_vm")}


def drill_markdown(d: dict) -> str:
    lines = [f"# DR drill report: {d['name']}", "",
             f"- job {d['job']}: {d['state']}, {d['started']} to {d['ended'] or '(running)'}",
             f"- operation: {d.get('kind')}"]
    if d.get("rto_seconds") is not None:
        target = d.get("rto_target")
        verdict = "" if target is None else (" — within" if d["rto_seconds"] <= target else " — MISSED") + \
            f" the target of {format_duration(target)}"
        lines.append(f"- RTO: {format_duration(d['rto_seconds'])}{verdict}")
    lines += ["", "| group | VM | recovered as | point | RPO at failover | last transaction | lost | RTO "
              "| disks verified |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for v in d["vms"]:
        lost = "-" if v["transactions_lost"] is None else (
            f"{v['transactions_lost']} ({format_duration(v['data_loss_seconds'] or 0)})")
        lines.append(f"| {v['group'] or '-'} | {v['vm']} | {v['recovered_vm'] or '-'} | {v['point'] or '-'} "
                     f"({format_time(v['point_time']) if v['point_time'] else '-'}) | "
                     f"{format_duration(v['rpo_at_failover']) if v['rpo_at_failover'] is not None else '-'} | "
                     f"{v['last_transaction'] if v['last_transaction'] is not None else '-'} | {lost} | "
                     f"{format_duration(v['rto_seconds']) if v['rto_seconds'] is not None else '-'} | "
                     f"{ {True: 'identical to the point', False: 'DIFFER', None: '-'}[v['verified']] } |")
    for a in d.get("manual_actions", []):
        lines.append(f"\n- manual action at {format_time(a['at'])}: {a['step']} — note: {a['note'] or '(none)'}")
    for s in d.get("scripts", []):
        lines.append(f"\n- {s['step']}: exit {s['exit']}\n\n```\n{s['output']}\n```")
    return "\n".join(lines) + "\n"


def report_lines(report: dict) -> list[str]:
    """A plan job's report as plain lines: each group's VMs, when they ran, and what was lost."""
    out = []
    for g, grp in sorted(report.get("groups", {}).items(), key=lambda x: int(x[0])):
        if "running" not in grp:
            out.append(f"group {g}: started {format_time(grp['started'])}")
            continue
        out.append(f"group {g}: ready {format_time(grp['running'])}, RTO {format_duration(grp['rto_seconds'])}")
        for vm, r in grp.get("vms", {}).items():
            if "transactions_lost" in r:
                out.append(f"  {vm}: point {r.get('point', '-')}, last transaction {r['last_transaction']}, "
                           f"{r['transactions_lost']} lost"
                           + ("; disks verified" if r.get("verified") or r.get("identical") else ""))
    if report.get("rto_seconds") is not None:
        out.append(f"plan RTO {format_duration(report['rto_seconds'])} (start to the last group ready)")
    out += [f"{a['step']}: note {a['note'] or '(none)'}" for a in report.get("manual_actions", [])]
    out += [f"{s['step']}: exit {s['exit']}" for s in report.get("scripts", [])]
    return out
