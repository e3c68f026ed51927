"""Recovery plans (key 5): the plans, the selected plan's groups (the editor: VMs, groups, manual
actions and scripts) and its newest job's progress, group by group, live.

A plan's failover, commit and reverse replication are actions on the plan, judged by the engine
(Lab.allowed("plan_<op>", plan)) like a VM's; a plan job waiting for a manual action, Complete
test or the start of a failback is completed here with a note, as on Jobs."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Static

from engine import Failover, JobState, StepState

from ..host import (CompleteForm, Confirm, PlanActionForm, PlanCreateForm, PlanFailoverForm, PlanVmsForm,
                    VmDetails)
from ..plan_view import (MAX_GROUPS, children, group_of_vm, order_text, plan_back, plan_jobs, plan_of, plan_vms,
                         route_vms, routes, waiting_job)
from ..state import LabState, fmt_duration
from ..widgets import Column, LabTable, show_text
from .base import Panel, PanelAction

PLAN_COLUMNS = [
    Column("name", "Plan", 14),
    Column("route", "Protected", 0),
    Column("vms", "VMs", 3),
    Column("last", "Last job", 28),
]
PLAN_COLUMNS_WIDE = [
    Column("name", "Plan", 18),
    Column("route", "Protected", 0),
    Column("vms", "VMs", 3),
    Column("groups", "Groups", 6),
    Column("rto", "RTO target", 10),
    Column("last", "Last job", 34),
]
GROUP_COLUMNS = [Column("item", "Group · VM · action", 0)]
WIDE_MIN = 110

EMPTY = Text.assemble(
    ("No recovery plans yet.\n\n", "bold"),
    "A recovery plan fails over several protected VMs as one job: ordered groups (the database "
    "first, then the application tier, then the web front end), with manual actions and scripts "
    "before and after each group.\n\n",
    ("n", "bold"), " creates one from protected VMs.",
)

# a step's (or job's) state as one character
ICONS = {
    StepState.SUCCEEDED: "✓", StepState.FAILED: "✗", StepState.IN_PROGRESS: "▶", StepState.WAITING: "⏸",
    StepState.NOT_STARTED: "·", JobState.CANCELLED: "–",
}
VERBS = ("fail over ", "commit ", "reverse replicate ")  # a group's step: "Group 2: fail over APP01, WEB01"


# a VM's failover state in the editor, in a word or two (Protected items has the engine's full words)
FAILOVER_SHORT = {
    Failover.TEST: "Testing", Failover.FAILOVER: "Failing over", Failover.COMMITTED: "Committed",
    Failover.FAILBACK: "Failing back", Failover.REVERSE_PENDING: "Reverse pend.",
}


def failover_word(state: str | None) -> str:
    if not state:
        return ""
    try:
        return FAILOVER_SHORT.get(Failover(state), state)
    except ValueError:  # a state this app does not know yet: the engine's words
        return state


def step_group(name: str) -> int | None:
    """The group a plan job's step belongs to ("Group 2: ...", "Group 2 manual action: ...")."""
    parts = name.split()
    if len(parts) > 1 and parts[0] == "Group" and parts[1].rstrip(":").isdigit():
        return int(parts[1].rstrip(":"))
    return None


def combined(states: list[str]) -> str:
    """One state for several steps: failed, waiting or running if one is, done if all are."""
    for s in (StepState.FAILED, StepState.WAITING, StepState.IN_PROGRESS):
        if s in states:
            return s
    if states and all(s == StepState.SUCCEEDED for s in states):
        return StepState.SUCCEEDED
    return StepState.IN_PROGRESS if StepState.SUCCEEDED in states else StepState.NOT_STARTED


def operation_name(job: dict) -> str:
    """What a plan job does, in a few words: test failover, planned failover, failback, commit..."""
    rep = job.get("report") or {}
    kind = rep.get("kind")
    if kind is None:
        return str(job.get("name", "")).removeprefix("Recovery plan ")
    if kind == "planned" and rep.get("back"):
        return "failback"
    return {"test": "test failover", "planned": "planned failover", "unplanned": "unplanned failover",
            "commit": "commit", "reprotect": "reverse replicate"}.get(kind, kind)


def is_failover(job: dict) -> bool:
    """A plan's failover (test, planned, unplanned, failback), which has an RTO; not its commit
    or reverse replication."""
    return (job.get("report") or {}).get("kind") in ("test", "planned", "unplanned")


def progress_lines(state: LabState, job: dict, colors: dict) -> list[Text]:
    """A plan job, group by group: each group's state and ready time, each VM's own job and the
    step it is at, the manual actions and scripts (the one waiting says how to go on)."""
    detail = state.job_details.get(job["id"], {})
    steps = detail.get("steps", [])
    rep = job.get("report") or detail.get("report") or {}
    groups = rep.get("groups", {})
    failover = is_failover(job)
    kids = children(state, job["id"])
    style = {StepState.SUCCEEDED: colors["ok"], StepState.FAILED: colors["error"],
             StepState.WAITING: f"bold {colors['warning']}", StepState.IN_PROGRESS: colors["accent"],
             StepState.NOT_STARTED: "dim"}

    def icon(s: str) -> Text:
        return Text(ICONS.get(s, "·") + " ", style=style.get(s, ""))

    out: list[Text] = []
    shut = [s for s in steps if ": shut down " in s.get("name", "")]
    done_shut = False
    for i, s in enumerate(steps):
        name, st = str(s.get("name", "")), str(s.get("state", ""))
        g = step_group(name)
        if ": shut down " in name:
            if not done_shut:
                done_shut = True
                order = ", ".join(str(step_group(x["name"])) for x in shut)
                out.append(icon(combined([x["state"] for x in shut])) + Text(f"Shut down, reverse order: {order}"))
            continue
        if g is not None and name.startswith(f"Group {g}: wait for "):
            continue
        if g is not None and name.startswith(f"Group {g}: "):
            nxt = steps[i + 1]["state"] if i + 1 < len(steps) else st
            gst = combined([st, nxt])
            line = icon(gst) + Text(f"Group {g}", style="bold")
            rg = groups.get(str(g), {})
            if "running" in rg:
                line.append(f" · ready, RTO {fmt_duration(rg.get('rto_seconds'))}" if failover
                            else f" · done after {fmt_duration(rg.get('rto_seconds'))}", style="dim")
            out.append(line)
            what = name.split(": ", 1)[1]
            for verb in VERBS:
                what = what.removeprefix(verb)
            ids = set(rg.get("jobs", []))
            for vm in [v.strip() for v in what.split(",") if v.strip()]:
                child = next((c for c in reversed(kids) if c.get("target") == vm and (not ids or c["id"] in ids)),
                             None)
                out.append(vm_line(state, vm, child, icon))
            continue
        if g is not None:  # "Group 1 manual action: TEXT", "Group 3 script: NAME"
            text = name.split(" ", 2)[2] if name.count(" ") >= 2 else name
            out.append(Text("  ") + icon(st) + Text(text.replace("manual action: ", "manual: ", 1)))
            continue
        out.append(icon(st) + Text(name))
    return out


def vm_line(state: LabState, vm: str, child: dict | None, icon) -> Text:
    """One VM of a group: its own job's state and the step it is at."""
    if child is None:
        return Text("  ") + icon(StepState.NOT_STARTED) + Text(vm)
    cst = str(child.get("state", ""))
    steps = state.job_details.get(child["id"], {}).get("steps", [])
    at = next((s for s in steps if s.get("state") in (StepState.IN_PROGRESS, StepState.WAITING)), None)
    line = Text("  ") + icon(cst if cst != JobState.SUCCEEDED else StepState.SUCCEEDED) + Text(vm)
    if at is not None:
        n = steps.index(at) + 1
        line.append(Text(f" · {at.get('name', '')} ({n}/{len(steps)})"))
    elif cst != JobState.SUCCEEDED:
        line.append(Text(f" · {cst}"))
    return line


class RecoveryPlans(Panel):
    DEFAULT_CSS = """
    RecoveryPlans #plan-body { height: 1fr; }
    RecoveryPlans #plan-groups { width: 2fr; height: 1fr; }
    RecoveryPlans #plan-progress-box { width: 3fr; height: 1fr; border: round $primary 40%; padding: 0 1; }
    RecoveryPlans #plan-progress.-steps { text-wrap: nowrap; text-overflow: ellipsis; }
    """
    PANEL_ID = "plans"
    TITLE = "Recovery plans"
    SHORT_TITLE = "Plans"
    KEY = "5"
    ACTIONS = [
        PanelAction("new_plan", "n", "New", "New recovery plan",
                    "create a plan from protected VMs of one cloud (all in group 1; then edit it)"),
        PanelAction("edit", "enter", "Edit", "Edit plan / VM details",
                    "move into the plan's groups to edit them (esc comes back); there, a VM's details",
                    mutates=False, key_display="⏎", priority=True),
        PanelAction("plan_test", "f", "Test", "Plan test failover",
                    "test failover of the whole plan, group by group; it waits for Complete test"),
        PanelAction("plan_planned", "F,shift+f", "Planned", "Plan planned failover / failback",
                    "shut the VMs down in reverse group order, sync, fail over in order (no data loss); "
                    "on a plan running at the recovery side: fail it back", key_display="F"),
        PanelAction("plan_unplanned", "U,shift+u", "Unplanned", "Plan unplanned failover",
                    "fail the groups over in order from a recovery point (the source may be gone)",
                    key_display="U"),
        PanelAction("plan_commit", "C,shift+c", "Commit", "Plan commit",
                    "commit the failover or failback of every VM of the plan", key_display="C"),
        PanelAction("plan_reprotect", "R,shift+r", "Reprotect", "Plan reverse replicate (reprotect)",
                    "after a committed failover or failback: replicate every VM of the plan the other way",
                    key_display="R"),
        PanelAction("complete", "a", "Complete", "Complete plan's manual action / test",
                    "complete the step the plan's job waits for (a manual action, Complete test, start the "
                    "failback), with a note"),
        PanelAction("resume", "r", "Resume", "Resume failed plan job",
                    "after fixing what failed (a script): run the plan's failed job again from its failed step"),
        PanelAction("add_vm", "v", "Add VM", "Add VMs to plan",
                    "add protected VMs of the plan's cloud to a group (or a new one)"),
        PanelAction("remove_vm", "x", "Remove", "Remove VM from plan",
                    "take the VM under the cursor out of the plan (in the editor)"),
        PanelAction("move_up", "shift+up", "Up", "Move VM to the previous group",
                    "the VM under the cursor fails over one group earlier (in the editor)", key_display="⇧↑"),
        PanelAction("move_down", "shift+down", "Down", "Move VM to the next group",
                    "the VM under the cursor fails over one group later; past the last group, a new one "
                    "(in the editor)", key_display="⇧↓"),
        PanelAction("add_group", "N,shift+n", "Group", "Add group to plan", "add an empty group at the end of the plan",
                    key_display="N"),
        PanelAction("group_earlier", "left_square_bracket", "Earlier", "Move the group earlier",
                    "the group under the cursor (its VMs and actions) fails over one place earlier (in the editor)",
                    key_display="["),
        PanelAction("group_later", "right_square_bracket", "Later", "Move the group later",
                    "the group under the cursor fails over one place later (in the editor)", key_display="]"),
        PanelAction("remove_group", "X,shift+x", "Drop group", "Remove the empty group",
                    "remove the empty group under the cursor and its actions (in the editor)", key_display="X"),
        PanelAction("add_action", "m", "Action", "Add manual action / script",
                    "a manual action (the job waits for it) or a script, before or after a group"),
        PanelAction("delete_plan", "ctrl+d", "Delete", "Delete recovery plan",
                    "delete the plan (its VMs stay protected; its jobs stay in Jobs)", key_display="^d"),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.compact = True
        self.row_group: dict[str, int] = {}  # editor row key -> its group
        self.active_line: tuple | None = None  # (job, line) the progress pane last scrolled to

    def compose(self) -> ComposeResult:
        yield LabTable(PLAN_COLUMNS, id="plans-table", title="Recovery plans")
        with Horizontal(id="plan-body"):
            yield LabTable(GROUP_COLUMNS, id="plan-groups", title="Groups")
            with VerticalScroll(id="plan-progress-box"):
                yield Static("", id="plan-progress")

    def on_mount(self) -> None:
        self.query_one("#plan-progress-box").border_title = "Progress"

    def on_resize(self) -> None:
        compact = self.app.size.width < WIDE_MIN
        if compact != self.compact:
            self.compact = compact
            self.plans_table.set_columns(PLAN_COLUMNS if compact else PLAN_COLUMNS_WIDE)
            self.update_state(self.state)

    # ---- what is selected --------------------------------------------------------------------

    @property
    def plans_table(self) -> LabTable:
        return self.query_one("#plans-table", LabTable)

    @property
    def groups_table(self) -> LabTable:
        return self.query_one("#plan-groups", LabTable)

    def selected_name(self) -> str | None:
        key = self.plans_table.cursor_key
        return key[5:] if key and key.startswith("plan:") else None

    def selected(self) -> dict | None:
        return plan_of(self.state, self.selected_name())

    def editing(self) -> bool:
        return self.app.focused is self.groups_table

    def cursor_vm(self) -> str | None:
        key = self.groups_table.cursor_key
        return key[3:] if key and key.startswith("vm:") else None

    def cursor_group(self) -> int:
        key = self.groups_table.cursor_key
        return self.row_group.get(key or "", 1)

    def select_plan(self, name: str) -> None:
        table = self.plans_table
        if f"plan:{name}" in table.row_keys:
            table.move_cursor(row=table.get_row_index(f"plan:{name}"), animate=False)
        self.show_detail()

    # ---- content -----------------------------------------------------------------------------

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        rows = []
        for p in state.plans:
            jobs = plan_jobs(state, p["name"])
            last = Text("")
            if jobs:
                j = jobs[0]
                op = operation_name(j).removesuffix(" failover").replace("reverse replicate", "reprotect")
                last = Text(f"{op}: {j.get('state', '')}", style=job_style(str(j.get("state")), colors))
            cells = [Text(p["name"]), Text(f"{p['source']} → {p['target']}"), Text(str(len(plan_vms(p))),
                                                                                justify="right")]
            if not self.compact:
                cells += [Text(str(len(p["groups"])), justify="right"),
                          Text(fmt_duration(p["rto_target"]) if p.get("rto_target") else "-")]
            rows.append((f"plan:{p['name']}", (*cells, last)))
        if not rows:
            rows.append(("none", (Text(""), Text("none yet: n creates one", style="dim"))))
        table = self.plans_table
        table.set_rows(rows)
        table.styles.height = max(4, min(7, len(rows) + 3))
        self.show_detail()

    def show_detail(self) -> None:
        plan = self.selected()
        self.show_groups(plan)
        self.show_progress(plan)

    def show_groups(self, plan: dict | None) -> None:
        table = self.groups_table
        rows, sticky, self.row_group = [], set(), {}
        if plan is not None:
            table.base_title = f"{plan['name']}: groups in order"
            for g in plan["groups"]:
                n = g["group"]
                key = f"group:{n}"
                sticky.add(key)
                self.row_group[key] = n
                count = f"{len(g['vms'])} VM{'s' if len(g['vms']) != 1 else ''}"
                rows.append((key, (Text.assemble((f"▾ Group {n}", "bold"), (f"  {count}", "dim")),)))
                rows += self.action_rows(n, "before", g["before"])
                for vm in g["vms"]:
                    v = self.state.vm(vm) or {}
                    self.row_group[f"vm:{vm}"] = n
                    state = failover_word(v.get("failover_state"))
                    rows.append((f"vm:{vm}", (Text.assemble(f"   {vm}  ", (state, "dim")),)))
                rows += self.action_rows(n, "after", g["after"])
        else:
            table.base_title = "Groups"
        table.set_filter(table.filter_text)  # the title, with the filter
        table.sticky = sticky
        table.set_rows(rows)

    def action_rows(self, group: int, phase: str, actions: list[dict]) -> list[tuple[str, tuple]]:
        """The editor's rows of a group's manual actions and scripts (a script by its file name)."""
        rows = []
        for a in actions:
            key = f"action:{a['id']}"
            self.row_group[key] = group
            what = a["text"] if a["kind"] == "manual" else a["text"].rsplit("/", 1)[-1]
            rows.append((key, (Text.assemble("   ", (f"{phase}, {a['kind']}: ", "dim"), Text(what)),)))
        return rows

    def show_progress(self, plan: dict | None) -> None:
        box = self.query_one("#plan-progress-box", VerticalScroll)
        pane = self.query_one("#plan-progress", Static)
        colors = self.host.status_colors
        if plan is None:
            box.border_title = "Recovery plans"
            pane.set_class(False, "-steps")
            show_text(pane, EMPTY if not self.state.plans else Text("no plan selected", style="dim"))
            return
        jobs = plan_jobs(self.state, plan["name"])
        if not jobs:
            box.border_title = "Progress"
            t = Text.assemble(("No job yet. ", "bold"), "f test failover · F planned · U unplanned\n\n",
                              ("Order  ", "bold"), order_text(plan))
            if plan.get("rto_target"):
                t.append(f"\nRTO target  {fmt_duration(plan['rto_target'])}")
            pane.set_class(False, "-steps")
            show_text(pane, t)
            return
        job = jobs[0]
        jst = str(job.get("state", ""))
        box.border_title = f"Job {job['id']}: {operation_name(job)}"
        head = Text.assemble((jst, job_style(jst, colors)), f" · {fmt_duration(job.get('duration'))}")
        if jst == JobState.WAITING:
            head.append(" · a: complete", style=f"bold {colors['warning']}")
        lines = [head, *progress_lines(self.state, job, colors)]
        rep = job.get("report") or {}
        if rep.get("rto_seconds") is not None and jst == JobState.SUCCEEDED and is_failover(job):
            rto = Text.assemble(("RTO ", "bold"), fmt_duration(rep["rto_seconds"]))
            if plan.get("rto_target"):
                within = rep["rto_seconds"] <= plan["rto_target"]
                rto.append(f"; target {fmt_duration(plan['rto_target'])}: {'within' if within else 'MISSED'}",
                           style=colors["ok"] if within else colors["error"])
            lines.append(rto)
        error = self.state.job_details.get(job["id"], {}).get("error") or job.get("error")
        if error and jst == JobState.FAILED:
            lines.append(Text.assemble(("✗ ", colors["error"]), Text(str(error), style=colors["error"])))
            lines.append(Text("fix it, then r resumes the job at its failed step", style="dim"))
        pane.set_class(True, "-steps")  # one line per step, cut at the edge
        show_text(pane, Text("\n").join(lines))
        # keep the step at work in sight
        at = next((i for i, t in enumerate(lines) if t.plain.lstrip()[:1] in ("▶", "⏸", "✗")), None)
        if at is not None and (job["id"], at) != self.active_line:
            self.active_line = (job["id"], at)
            box.scroll_to(y=max(0, at - 2), animate=False)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.data_table.id == "plans-table":
            self.show_detail()
        self.host.refresh_bindings()

    def on_descendant_focus(self, _event) -> None:
        self.host.refresh_bindings()

    # ---- actions: enabled, or why not ----------------------------------------------------------

    def reason(self, action_id: str) -> str | None:
        plan = self.selected()
        if action_id == "new_plan":
            return None if routes(self.state) else "no VM is protected yet: protect VMs on Protected items (2) first"
        if plan is None:
            return "no recovery plan yet: n creates one" if not self.state.plans else "no plan selected"
        name = plan["name"]
        if action_id.startswith("plan_"):
            return self.state.reason(action_id, name)
        if action_id == "edit":
            if self.editing():
                return None if self.cursor_vm() else "in the editor, enter on a VM shows its details"
            return None
        if action_id == "complete":
            job = waiting_job(self.state, name)
            return None if job else f"no job of plan {name} waits for action"
        if action_id == "resume":
            jobs = plan_jobs(self.state, name)
            if not jobs or jobs[0].get("state") != JobState.FAILED:
                return f"only a failed plan job can be resumed; plan {name}'s last job is " + (
                    str(jobs[0].get("state")) if jobs else "none")
            return None
        if action_id == "add_vm":
            if not route_vms(self.state, plan["source"], plan["target"], plan_vms(plan)):
                return f"every VM protected from {plan['source']} to {plan['target']} is in the plan"
            return None
        if action_id == "add_group":
            if len(plan["groups"]) >= MAX_GROUPS:
                return f"plan {name} has {MAX_GROUPS} groups, the most a plan may have"
            return None
        if action_id in ("add_action", "delete_plan"):
            return None
        if action_id in ("group_earlier", "group_later", "remove_group"):
            if not self.editing():
                return "in the plan's groups (enter), put the cursor on a group"
            g = self.cursor_group()
            if action_id == "remove_group" and plan["groups"][g - 1]["vms"]:
                return f"group {g} has VMs: move them to another group first"
            if action_id == "remove_group" and len(plan["groups"]) == 1:
                return "a plan keeps at least one group"
            edge = {"group_earlier": 1, "group_later": len(plan["groups"])}.get(action_id)
            if edge == g:
                return f"group {g} is already the {'first' if g == 1 else 'last'}"
            return None
        # the editor's actions: on the VM under the cursor
        vm = self.cursor_vm() if self.editing() else None
        if vm is None:
            return "in the plan's groups (enter), put the cursor on a VM"
        g = group_of_vm(plan, vm) or 1
        if action_id == "remove_vm":
            return None if len(plan_vms(plan)) > 1 else f"{vm} is the last VM of plan {name}: delete the plan instead"
        if action_id == "move_up":
            return None if g > 1 else f"{vm} is in group 1, the first"
        if action_id == "move_down":
            last = len(plan["groups"])
            if g < last:
                return None
            if len(plan["groups"][g - 1]["vms"]) == 1:
                return f"{vm} is alone in the last group"
            return None if last < MAX_GROUPS else f"{vm} is in group {MAX_GROUPS}, the last a plan may have"
        return None

    # ---- editing -----------------------------------------------------------------------------

    def action_new_plan(self) -> None:
        def done(result) -> None:
            if isinstance(result, dict) and result.get("name"):
                self.select_plan(result["name"])
                self.groups_table.focus()

        self.show_dialog(PlanCreateForm(), done)

    def action_edit(self) -> None:
        if self.editing():
            vm = self.cursor_vm()
            if vm:
                self.show_dialog(VmDetails(vm))
            return
        if self.selected() is not None:
            self.groups_table.focus()

    def back(self) -> bool:
        """esc from the editor goes back to the plan list."""
        if self.editing():
            self.plans_table.focus()
            return True
        return False

    def filter_table(self) -> LabTable | None:
        return self.groups_table if self.editing() else self.plans_table

    def action_add_vm(self) -> None:
        name = self.selected_name()
        if name:
            self.show_dialog(PlanVmsForm(name, self.cursor_group() if self.editing() else 1))

    def action_add_action(self) -> None:
        name = self.selected_name()
        if name:
            self.show_dialog(PlanActionForm(name, self.cursor_group() if self.editing() else 1))

    def action_add_group(self) -> None:
        name = self.selected_name()
        if name:
            self.host.engine_call("add group", lambda lab: lab.plan_add_group(name),
                                  on_done=lambda n: self.app.notify(f"plan {name}: group {n} added", title="srlab"))

    def _move_group(self, step: int) -> None:
        plan = self.selected()
        if plan is None or not self.editing():
            return
        name, g = plan["name"], self.cursor_group()
        to = min(max(1, g + step), len(plan["groups"]))
        if to != g:
            self.host.engine_call("move group", lambda lab: lab.plan_move_group(name, g, to))

    def action_group_earlier(self) -> None:
        self._move_group(-1)

    def action_group_later(self) -> None:
        self._move_group(1)

    def action_remove_group(self) -> None:
        plan = self.selected()
        if plan is None or not self.editing():
            return
        name, g = plan["name"], self.cursor_group()
        self.host.engine_call("remove group", lambda lab: lab.plan_remove_group(name, g),
                              on_done=lambda _r: self.app.notify(f"plan {name}: group {g} removed", title="srlab"))

    def _move(self, step: int) -> None:
        plan, vm = self.selected(), self.cursor_vm()
        if plan is None or vm is None:
            return
        name, g, last = plan["name"], group_of_vm(plan, vm) or 1, len(plan["groups"])

        def move(lab) -> int:
            to = g + step
            if to > last:
                to = lab.plan_add_group(name)
            lab.plan_move(name, vm, to)
            return to

        self.host.engine_call("move VM", move)

    def action_move_up(self) -> None:
        self._move(-1)

    def action_move_down(self) -> None:
        self._move(1)

    def action_remove_vm(self) -> None:
        name, vm = self.selected_name(), self.cursor_vm()
        if name and vm:
            self.host.engine_call(
                "remove VM", lambda lab: lab.plan_remove(name, vm),
                on_done=lambda _r: self.app.notify(f"{vm} removed from plan {name} (v adds it back)", title="srlab"))

    def action_delete_plan(self) -> None:
        plan = self.selected()
        if plan is None:
            return
        name = plan["name"]
        lines = [Text.assemble("Delete recovery plan ", (name, "bold"), "."),
                 Text(f"Its VMs ({', '.join(plan_vms(plan))}) stay protected; its jobs stay on Jobs. "
                      "There is no undo.")]
        self.show_dialog(Confirm("Delete recovery plan", lines, lambda lab: lab.plan_delete(name), ok_label="Delete"))

    # ---- failover ----------------------------------------------------------------------------

    def action_plan_test(self) -> None:
        self._failover("test")

    def action_plan_planned(self) -> None:
        self._failover("planned")

    def action_plan_unplanned(self) -> None:
        self._failover("unplanned")

    def _failover(self, kind: str) -> None:
        name = self.selected_name()
        if name:
            self.show_dialog(PlanFailoverForm(name, kind))

    def action_plan_commit(self) -> None:
        plan = self.selected()
        if plan is None:
            return
        name = plan["name"]
        back = plan_back(self.state, plan)
        lines = [
            Text.assemble("Commit the ", ("failover" if back else "failback", ""), " of plan ", (name, "bold"),
                          ": every VM of it, group by group."),
            Text("After the commit the recovery points can no longer be changed, and there is no cancel."
                 if back else "Then reverse replicate the plan (R) so that its VMs are protected again."),
        ]
        self.show_dialog(Confirm("Commit plan", lines, lambda lab: lab.plan_start(name, "commit"), ok_label="Commit"))

    def action_plan_reprotect(self) -> None:
        plan = self.selected()
        if plan is None:
            return
        name = plan["name"]
        back = plan_back(self.state, plan)
        lines = [
            Text.assemble("Reverse replicate every VM of plan ", (name, "bold"), ", group by group."),
            Text("They keep running where they are and replicate back, ready to fail back with a planned failover."
                 if back else "Replication starts over with an initial replication; the VMs are protected again "
                 "when it ends."),
        ]
        self.show_dialog(Confirm("Reverse replicate plan", lines, lambda lab: lab.plan_start(name, "reprotect"),
                                 ok_label="Reprotect"))

    def action_complete(self) -> None:
        name = self.selected_name()
        job = waiting_job(self.state, name) if name else None
        if job is not None:
            self.show_dialog(CompleteForm(job["id"]))

    def action_resume(self) -> None:
        name = self.selected_name()
        jobs = plan_jobs(self.state, name) if name else []
        if not jobs:
            return
        job = jobs[0]
        failed = next((s.get("name") for s in self.state.job_details.get(job["id"], {}).get("steps", [])
                       if s.get("state") == StepState.FAILED), "its failed step")
        jid = job["id"]
        lines = [Text.assemble("Resume job ", (str(jid), "bold"), " of plan ", (str(name), "bold"), " at ",
                               Text(str(failed), style="bold"), "."),
                 Text("Fix what made it fail first (a script's error is in the progress pane).")]
        self.show_dialog(Confirm("Resume plan job", lines, lambda lab: lab.resume_job(jid), ok_label="Resume"))


def job_style(state: str, colors: dict) -> str:
    return {
        JobState.SUCCEEDED: colors["ok"],
        JobState.FAILED: colors["error"],
        JobState.CANCELLED: "dim",
        JobState.WAITING: f"bold {colors['warning']}",
        JobState.IN_PROGRESS: colors["accent"],
    }.get(state, "")  # type: ignore[call-overload]
