"""Recovery plans' dialogs: create a plan, add VMs to it, add a manual action or a script, and
fail a plan over (test, planned, unplanned; a planned failover of a plan that runs at the
recovery side is its failback, with the sync option), shaped like the VM's failover dialog.

Like every dialog, OK runs one engine command in the engine worker; a refusal stays inline."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, Checkbox, Input, Label, OptionList, Select, SelectionList, Static
from textual.widgets.option_list import Option

from engine import LabError, format_duration, parse_duration

from .dialogs import SYNC_CHOICES, SYNC_WHAT, EngineDialog, key_path
from .host import DialogRequest, PlanActionForm, PlanCreateForm, PlanFailoverForm, PlanVmsForm
from .plan_view import (MAX_GROUPS, PLAN_FAILOVERS, PLAN_POINTS, order_text, plan_back, plan_of, plan_vms,
                        route_text, route_vms, routes)
from .render import recovery_side
from .state import LabState

NEW_GROUP = 0  # the group list's value for "a new group at the end"

ROWS_CSS = """
{cls} #dialog-body {{ max-height: 18; }}
{cls} .row {{ height: 1; }}
{cls} .row > Label {{ width: 18; padding: 0 1 0 0; }}
{cls} .row > Select, {cls} .row > Input {{ width: 1fr; }}
{cls} SelectionList {{ height: auto; max-height: 6; border: none; padding: 0; background: $surface; }}
{cls} SelectionList:focus {{ background-tint: $foreground 5%; }}
"""


def _blank(value: Any) -> bool:
    return value is Select.NULL or value == Select.BLANK


def group_options(plan: dict, new: bool = True) -> list[tuple[str, int]]:
    """A plan's groups for a Select: each with its VMs, then a new group while there is room."""
    out = [(f"group {g['group']}: {', '.join(g['vms']) or '(empty)'}", g["group"]) for g in plan.get("groups", [])]
    if new and len(out) < MAX_GROUPS:
        out.append((f"a new group {len(out) + 1}", NEW_GROUP))
    return out


def into_group(lab, plan: str, group: int) -> int:
    """The group to put things in: `group`, or a new one added at the end."""
    return lab.plan_add_group(plan) if group == NEW_GROUP else group


class PlanCreateDialog(EngineDialog):
    """A new recovery plan: its name, the route its VMs are protected on, the VMs (all start in
    group 1) and an RTO target for drill reports."""

    title_text = "New recovery plan"
    ok_label = "Create"
    DEFAULT_CSS = ROWS_CSS.format(cls="PlanCreateDialog")

    def __init__(self, state: LabState):
        super().__init__()
        self.state = state
        self.routes = routes(state)
        self.labels = {r: self.route_label(r) for r in self.routes}

    def route_label(self, route: tuple[str, str]) -> str:
        source, target = route
        vm = next((self.state.vm(v) for v in route_vms(self.state, source, target)), None)
        return f"{source} → {recovery_side(vm) if vm else target}"

    def body(self) -> ComposeResult:
        if not self.routes:
            yield Static(Text("No VM is protected yet: a plan holds protected VMs (Protected items, e).",
                              style="bold"), classes="line")
            return
        yield Static(Text("A plan fails over its VMs as one job, group by group. Every VM starts in group 1; "
                          "add groups and move VMs in the editor."), classes="line")
        with Horizontal(classes="row"):
            yield Label("Name")
            yield Input("", id="plan-name", compact=True, placeholder="e.g. ThreeTier")
        with Horizontal(classes="row"):
            yield Label("Protected")
            yield Select([(self.labels[r], i) for i, r in enumerate(self.routes)], id="route", allow_blank=False,
                         compact=True, value=0)
        yield Label("VMs (space toggles)")
        yield SelectionList[str](*self.vm_choices(0), id="vms", compact=True)
        with Horizontal(classes="row"):
            yield Label("RTO target")
            yield Input("", id="rto", compact=True, placeholder="e.g. 30m (blank: none)")

    def vm_choices(self, route: int) -> list[tuple[str, str, bool]]:
        source, target = self.routes[route]
        return [(v, v, True) for v in route_vms(self.state, source, target)]

    def on_mount(self) -> None:
        if self.routes:
            self.query_one("#plan-name", Input).focus()
        else:
            self.query_one("#ok", Button).disabled = True

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "route" and not _blank(event.value):
            vms = self.query_one("#vms", SelectionList)
            vms.clear_options()
            vms.add_options(self.vm_choices(int(event.value)))  # type: ignore[arg-type]

    def operation(self):
        if not self.routes:
            raise ValueError("no VM is protected yet")
        name = self.query_one("#plan-name", Input).value.strip()
        if not name:
            raise ValueError("give the plan a name")
        source, target = self.routes[int(self.query_one("#route", Select).value)]  # type: ignore[arg-type]
        vms = list(self.query_one("#vms", SelectionList).selected)
        if not vms:
            raise ValueError("choose at least one VM (space toggles)")
        rto_text = self.query_one("#rto", Input).value.strip()
        try:
            rto = parse_duration(rto_text) if rto_text else None
        except LabError as e:  # the engine's own parsing says what it takes
            raise ValueError(f"RTO target: {e.message}" + (f" ({e.hint})" if e.hint else "")) from None
        return lambda lab: lab.plan_create(name, source, target, vms, rto)


class PlanVmsDialog(EngineDialog):
    """Add protected VMs of the plan's route to one of its groups (or a new one)."""

    title_text = "Add VMs to the plan"
    ok_label = "Add"
    DEFAULT_CSS = ROWS_CSS.format(cls="PlanVmsDialog")

    def __init__(self, plan: str, group: int, state: LabState):
        super().__init__(f"Add VMs to plan {plan}")
        self.plan = plan_of(state, plan) or {"name": plan, "groups": [], "source": "", "target": ""}
        self.group = group
        self.choices = route_vms(state, self.plan["source"], self.plan["target"], plan_vms(self.plan))

    def body(self) -> ComposeResult:
        yield Static(Text.assemble("Protected VMs from ", (self.plan["source"], "bold"), " to ",
                                   (self.plan["target"], "bold"), " that are not in the plan yet."), classes="line")
        if not self.choices:
            yield Static(Text("None: every VM protected on this route is in the plan.", style="bold"),
                         classes="line")
            return
        yield SelectionList[str](*[(v, v, False) for v in self.choices], id="vms", compact=True)
        with Horizontal(classes="row"):
            yield Label("Into")
            options = group_options(self.plan)
            yield Select(options, id="group", allow_blank=False, compact=True,
                         value=self.group if self.group in [v for _, v in options] else options[0][1])

    def on_mount(self) -> None:
        if self.choices:
            self.query_one("#vms", SelectionList).focus()
        else:
            self.query_one("#ok", Button).disabled = True

    def operation(self):
        if not self.choices:
            raise ValueError("no VM to add")
        vms = list(self.query_one("#vms", SelectionList).selected)
        if not vms:
            raise ValueError("choose the VMs to add (space toggles)")
        group = int(self.query_one("#group", Select).value)  # type: ignore[arg-type]
        plan = self.plan["name"]

        def add(lab) -> str:
            g = into_group(lab, plan, group)
            for vm in vms:
                lab.plan_move(plan, vm, g)
            return f"{', '.join(vms)} in group {g}"

        return add


ACTION_KINDS = [("manual action (the job waits for it)", "manual"), ("script (a process, given the context)", "script")]
PHASES = [("after the group", "after"), ("before the group", "before")]


class PlanActionDialog(EngineDialog):
    """Add a manual action or a script before or after a group of the plan."""

    title_text = "Add manual action or script"
    ok_label = "Add"
    DEFAULT_CSS = ROWS_CSS.format(cls="PlanActionDialog")

    def __init__(self, plan: str, group: int, state: LabState):
        super().__init__(f"Add an action to plan {plan}")
        self.plan = plan_of(state, plan) or {"name": plan, "groups": []}
        self.group = group

    def body(self) -> ComposeResult:
        yield Static(Text("A plan's failover stops at a manual action until it is completed with a note (a); "
                          "a script gets the failover's context as JSON on stdin and SRLAB_* variables."),
                     classes="line")
        options = group_options(self.plan, new=False)
        with Horizontal(classes="row"):
            yield Label("Group")
            yield Select(options, id="group", allow_blank=False, compact=True,
                         value=self.group if self.group in [v for _, v in options] else 1)
        with Horizontal(classes="row"):
            yield Label("When")
            yield Select(PHASES, id="phase", allow_blank=False, compact=True, value="after")
        with Horizontal(classes="row"):
            yield Label("Kind")
            yield Select(ACTION_KINDS, id="kind", allow_blank=False, compact=True, value="manual")
        with Horizontal(classes="row"):
            yield Label("Instructions", id="text-label")
            yield Input("", id="text", compact=True, placeholder="what to do, e.g. Check the database")

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "kind":
            script = event.value == "script"
            self.query_one("#text-label", Label).update("Script path" if script else "Instructions")
            self.query_one("#text", Input).placeholder = (
                "an executable file (#! line), e.g. scripts/dns.sh" if script else
                "what to do, e.g. Check the database")

    def operation(self):
        group = int(self.query_one("#group", Select).value)  # type: ignore[arg-type]
        phase = str(self.query_one("#phase", Select).value)
        kind = self.query_one("#kind", Select).value
        text = self.query_one("#text", Input).value.strip()
        if not text:
            raise ValueError("type the script's path" if kind == "script" else "type what the person must do")
        plan = self.plan["name"]
        if kind == "script":
            return lambda lab: lab.plan_add_action(plan, group, phase, script=key_path(lab, text))
        return lambda lab: lab.plan_add_action(plan, group, phase, manual=text)


# ---- a plan's failover -------------------------------------------------------------------------

PLAN_WHAT = {
    "test": "A test copy of each VM at the recovery side, group by group; production and replication go on. "
            "The job waits for Complete test.",
    "planned": "Shuts the VMs down group by group in reverse order, synchronizes the latest data, then fails "
               "the groups over in order: no data loss.",
    "unplanned": "Fails the groups over in order from a recovery point: writes after it are lost. For when the "
                 "source is gone.",
}


class PlanFailoverDialog(EngineDialog):
    """Test, planned or unplanned failover of a whole plan (a planned one of a plan that runs at
    the recovery side is its failback): the direction, the kinds (greyed with the engine's reason
    when not allowed now), the groups in order, the dry run's RTO, the recovery point (latest,
    latest processed, latest app-consistent: no custom point for plans) and the kind's options."""

    DEFAULT_CSS = ROWS_CSS.format(cls="PlanFailoverDialog") + """
    PlanFailoverDialog #kinds { height: auto; max-height: 7; border: none; padding: 0; background: $surface; }
    PlanFailoverDialog #kinds:focus { background-tint: $foreground 5%; }
    PlanFailoverDialog #order, PlanFailoverDialog #estimate { height: 1; text-wrap: nowrap; text-overflow: ellipsis; }
    """

    def __init__(self, plan: str, kind: str, state: LabState):
        super().__init__()
        self.plan_name = plan
        self.plan = plan_of(state, plan) or {"name": plan, "groups": [], "source": "", "target": ""}
        self.back = plan_back(state, self.plan)
        self.reasons = {k: state.reason(f"plan_{k}", plan) for k, _ in PLAN_FAILOVERS}
        allowed = [k for k, _ in PLAN_FAILOVERS if not self.reasons[k]]
        self.kind = kind if kind in allowed or not allowed else allowed[0]
        infos = [v for v in (state.vm(n) for n in plan_vms(self.plan)) if v]
        self.recovery = recovery_side(infos[0]) if infos else str(self.plan.get("target", ""))
        self.encrypt = any((v.get("policy") or {}).get("key_at_failover") for v in infos)  # the engine says
        self.checks: dict[str, dict] = {}  # kind -> Lab.plan_check's answer
        self.set_titles()

    def kind_name(self, kind: str) -> str:
        name = dict(PLAN_FAILOVERS)[kind]
        return "Planned failover (failback)" if kind == "planned" and self.back else name

    def set_titles(self) -> None:
        self.title_text = f"{self.kind_name(self.kind)} of plan {self.plan_name}"
        self.ok_label = ("Test failover" if self.kind == "test" else
                         "Fail back" if self.kind == "planned" and self.back else "Fail over")

    def kind_prompt(self, kind: str) -> Text:
        why = self.reasons[kind]
        t = Text("○ " if kind != self.kind else "● ")
        t.append(self.kind_name(kind), style="bold" if not why else "")
        if why:
            t.append("  not now: ")
            t.append(Text(why))
        return t

    def body(self) -> ComposeResult:
        yield Static(route_text(str(self.plan.get("source", "")), self.recovery, self.back), id="direction",
                     classes="line")
        yield Static("", id="what", classes="line")
        yield OptionList(*[Option(self.kind_prompt(k), id=k, disabled=bool(self.reasons[k]))
                           for k, _ in PLAN_FAILOVERS], id="kinds", compact=True)
        yield Static(Text.assemble(("Order  ", "bold"), order_text(self.plan)), id="order")
        yield Static(Text("Dry run …", style="dim"), id="estimate")
        with Horizontal(classes="row", id="point-row"):
            yield Label("Recovery point")
            yield Select(PLAN_POINTS, id="point", allow_blank=False, compact=True, value="latest")
        yield Static(Text("Recovery point: the latest data, synchronized after the shutdown."), id="point-note",
                     classes="line")
        with Horizontal(classes="row", id="shutdown-row"):
            yield Label("Source")
            yield Checkbox("Shut down VMs and synchronize the latest data", id="shutdown-sync", compact=True)
        with Horizontal(classes="row", id="sync-row"):
            yield Label("Synchronize data")
            yield Select(SYNC_CHOICES, id="sync", allow_blank=False, compact=True, value="before")
        with Horizontal(classes="row", id="key-row"):
            yield Label("Encryption key file")
            yield Input("", id="key-file", compact=True, placeholder="the key made at registration")

    def on_mount(self) -> None:
        kinds = self.query_one("#kinds", OptionList)
        kinds.highlighted = kinds.get_option_index(self.kind)
        self.show_kind()
        if all(self.reasons.values()):
            self.query_one("#ok", Button).disabled = True
        self.query_one("#ok", Button).focus()  # enter fails over at once; shift+tab reaches the options

    def show_kind(self) -> None:
        """Show what the chosen kind needs, and only that; ask the engine for its dry run."""
        kind, back = self.kind, self.back
        self.set_titles()
        self.query_one("#dialog", Vertical).border_title = self.title_text
        self.query_one("#ok", Button).label = self.ok_label
        kinds = self.query_one("#kinds", OptionList)
        for k, _ in PLAN_FAILOVERS:
            kinds.replace_option_prompt(k, self.kind_prompt(k))
        self.show_what()
        self.query_one("#point-row").display = kind in ("test", "unplanned") and not back
        self.query_one("#point-note").display = kind == "planned" and not back
        self.query_one("#shutdown-row").display = kind == "unplanned"
        self.query_one("#sync-row").display = kind == "planned" and back
        self.query_one("#key-row").display = self.encrypt and not back
        self.show_estimate()
        if kind not in self.checks:
            plan = self.plan_name
            self.host.engine_call("dry run", lambda lab: lab.plan_check(plan, kind),
                                  on_done=lambda r, k=kind: self.checked(k, r),
                                  on_error=lambda e: None, mutates=False, quiet=True)

    def checked(self, kind: str, result: Any) -> None:
        self.checks[kind] = result
        if self.is_attached:
            self.show_estimate()

    def show_estimate(self) -> None:
        """The dry run of the chosen kind: its first problem, or the RTO its steps would take."""
        c = self.checks.get(self.kind)
        t = Text.assemble(("Dry run  ", "bold"))
        if c is None:
            t.append("…", style="dim")
        elif c.get("problems"):
            t.append(Text(str(c["problems"][0]), style=self.host.status_colors["warning"]))
        else:
            t.append(f"RTO about {format_duration(c.get('rto_seconds') or 0)}")
            if c.get("manual_actions"):
                t.append(f" + {c['manual_actions']} wait(s) for action")
            if c.get("rto_target"):
                t.append(f" · target {format_duration(c['rto_target'])}", style="dim")
        self.query_one("#estimate", Static).update(t)

    def show_what(self) -> None:
        if self.kind == "planned" and self.back:
            what = "Fails the groups back in order. " + SYNC_WHAT.get(str(self.query_one("#sync", Select).value), "")
        else:
            what = PLAN_WHAT[self.kind]
        self.query_one("#what", Static).update(Text(what, style="dim"))

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "sync":
            self.show_what()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()
        if event.option.id and event.option.id != self.kind:
            self.kind = event.option.id
            self.show_kind()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_submit()

    def operation(self):
        kind, back, plan = self.kind, self.back, self.plan_name
        if self.reasons[kind]:
            raise ValueError(self.reasons[kind])
        point = str(self.query_one("#point", Select).value) if kind in ("test", "unplanned") and not back else None
        shutdown_sync = kind == "unplanned" and self.query_one("#shutdown-sync", Checkbox).value
        sync = str(self.query_one("#sync", Select).value) if kind == "planned" and back else None
        key_file = (self.query_one("#key-file", Input).value.strip() or None) if self.encrypt and not back else None
        return lambda lab: lab.plan_start(plan, kind, point=point, shutdown_sync=shutdown_sync, sync=sync,
                                          key_file=key_path(lab, key_file))


# ---- what the app opens when the plans panel asks (see tui.host) -------------------------------


def plan_dialog_for(request: DialogRequest, state: LabState) -> Screen | None:
    """The dialog that answers a recovery plan request, or None (not a plan request)."""
    if isinstance(request, PlanCreateForm):
        return PlanCreateDialog(state)
    if isinstance(request, PlanVmsForm):
        return PlanVmsDialog(request.plan, request.group, state)
    if isinstance(request, PlanActionForm):
        return PlanActionDialog(request.plan, request.group, state)
    if isinstance(request, PlanFailoverForm):
        return PlanFailoverDialog(request.plan, request.kind, state)
    return None


__all__ = ["plan_dialog_for", "PlanCreateDialog", "PlanVmsDialog", "PlanActionDialog", "PlanFailoverDialog"]
