"""Modal dialogs: confirmations that say what an action will do, and forms whose values the
engine validates (its message and hint are shown inline; the dialog stays open to fix them)."""

from __future__ import annotations

from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Select, Static

from engine import LabError

from .host import (CloudProtectionForm, Confirm, DialogRequest, Host, LinkForm, MapNetworkForm, ProtectForm,
                   TargetForm, VmDetails, host_of)
from .render import vm_detail_text
from .state import LabState, fmt_bytes, fmt_time
from .widgets import Column, KeyBar, LabTable

# The seed's target sizes (names only: which one fits is the engine's business).
TARGET_SIZES = ["XS", "S", "M", "L", "XL", "A5", "A6", "A7"]
FREQUENCIES = [("30 seconds", "30s"), ("5 minutes (default)", "5m"), ("15 minutes", "15m")]
LINK_STATES = ["up", "down", "lossy"]


def error_text(err: BaseException) -> Text:
    if isinstance(err, LabError):
        t = Text(err.message, style="bold")
        if err.hint:
            t.append("\n")
            t.append(err.hint)
        return t
    return Text(f"unexpected error: {type(err).__name__}: {err}", style="bold")


def describe_result(result: Any) -> str:
    if isinstance(result, int):
        return f"job {result} started: see Jobs (4)"
    if isinstance(result, list) and result and all(isinstance(x, int) for x in result):
        return f"job(s) {', '.join(map(str, result))} started: see Jobs (4)"
    if isinstance(result, str):
        return result
    return "done"


class EngineDialog(ModalScreen):
    """A modal dialog whose OK runs one engine command in the engine worker.

    Refusals (LabError) are shown inline with the engine's message and hint; the dialog stays."""

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="dialog.cancel"),
        Binding("ctrl+s", "submit", "OK", id="dialog.submit"),
    ]

    DEFAULT_CSS = """
    EngineDialog { align: center middle; }
    EngineDialog > #dialog {
        width: 76; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    EngineDialog #dialog-body { height: auto; max-height: 14; }
    EngineDialog .line { height: auto; }
    EngineDialog #dialog-error { color: $error; height: auto; display: none; margin-top: 1; }
    EngineDialog #dialog-error.-shown { display: block; }
    EngineDialog #dialog-buttons { height: 1; margin-top: 1; align-horizontal: right; }
    EngineDialog #dialog-buttons Button { margin-left: 2; min-width: 10; }
    EngineDialog Grid { grid-size: 2; grid-columns: 22 1fr; grid-rows: 1; grid-gutter: 0 0; height: auto; }
    EngineDialog Grid Label { padding: 0 1 0 0; }
    EngineDialog Grid > * { height: 1; }
    """

    title_text = "Confirm"
    ok_label = "OK"

    def __init__(self, title: str | None = None, ok_label: str | None = None):
        super().__init__()
        if title:
            self.title_text = title
        if ok_label:
            self.ok_label = ok_label
        self.pending = False
        self.error: Text | None = None

    @property
    def host(self) -> Host:
        return host_of(self)

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog") as box:
            box.border_title = self.title_text
            box.border_subtitle = "enter/ctrl+s OK · esc cancel"
            with VerticalScroll(id="dialog-body"):
                yield from self.body()
            yield Static("", id="dialog-error")
            with Horizontal(id="dialog-buttons"):
                yield Button(self.ok_label, id="ok", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def body(self) -> ComposeResult:
        yield from ()

    # ---- submit / cancel ---------------------------------------------------------------------

    def operation(self) -> Callable[[Any], Any]:
        """The engine call to run (a function of the lab). Raise ValueError for unparsable input."""
        raise NotImplementedError

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        if event.button.id == "ok":
            self.action_submit()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_submit()

    def action_cancel(self) -> None:
        if not self.pending:
            self.dismiss(None)

    def action_submit(self) -> None:
        if self.pending:
            return
        try:
            op = self.operation()
        except ValueError as e:
            self.show_error(Text(str(e), style="bold"))
            return
        self.pending = True
        self.query_one("#ok", Button).disabled = True
        self.host.engine_call(self.title_text, op, on_done=self._done, on_error=self._failed)

    def _done(self, result: Any) -> None:
        self.pending = False
        self.app.notify(f"{self.title_text}: {describe_result(result)}", title="srlab")
        self.dismiss(result if result is not None else True)

    def _failed(self, err: BaseException) -> None:
        self.pending = False
        self.query_one("#ok", Button).disabled = False
        self.show_error(error_text(err))

    def show_error(self, text: Text) -> None:
        self.error = text
        box = self.query_one("#dialog-error", Static)
        box.update(text)
        box.set_class(True, "-shown")


class ConfirmDialog(EngineDialog):
    """Says what the action will do; OK runs it."""

    def __init__(self, title: str, lines: list[Text], op: Callable[[Any], Any], ok_label: str = "OK"):
        super().__init__(title, ok_label)
        self.lines = lines
        self.op = op

    def body(self) -> ComposeResult:
        for line in self.lines:
            yield Static(line, classes="line")

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def operation(self):
        return self.op


class CloudProtectionDialog(EngineDialog):
    """Configure protection for a cloud: seed 004's replication settings."""

    title_text = "Configure cloud protection"
    ok_label = "Save"

    def __init__(self, cloud: str, state: LabState):
        super().__init__()
        self.cloud = cloud
        res = state.resources or {}
        c = next((c for c in res.get("clouds", []) if c["name"] == cloud), None)
        self.current = (c or {}).get("protection") or {}
        regions = sorted({a.get("region", "") for a in res.get("storage_accounts", [])} - {""})
        region_txt = f" ({', '.join(regions)})" if regions else ""
        self.targets = [(f"Microsoft Azure{region_txt}", "azure")] + [
            (f"recovery cloud {x['name']}", x["name"]) for x in res.get("clouds", []) if x["name"] != cloud
        ]
        self.accounts = [
            (f"{a['name']} ({a.get('region', '')}, {a.get('redundancy', '')})", a["name"])
            for a in res.get("storage_accounts", [])
        ]

    def body(self) -> ComposeResult:
        cur = self.current
        yield Static(Text.assemble("Replication settings for cloud ", (self.cloud, "bold"),
                                   ". Saving starts the job 'Configure protection'."), classes="line")
        with Grid():
            yield Label("Target")
            yield Select(self.targets, id="target", allow_blank=False, compact=True,
                         value=cur.get("target", "azure") if cur.get("target", "azure") in
                         [v for _, v in self.targets] else "azure")
            yield Label("Storage account")
            accounts = [v for _, v in self.accounts]
            yield Select(self.accounts, id="storage", allow_blank=True, compact=True, prompt="(none)",
                         value=cur.get("storage_account") if cur.get("storage_account") in accounts
                         else (accounts[0] if accounts else Select.NULL))
            yield Label("Copy frequency")
            freq = cur.get("frequency", "5m")
            if isinstance(freq, int):
                freq = {30: "30s", 300: "5m", 900: "15m"}.get(freq, "5m")
            yield Select(FREQUENCIES, id="frequency", allow_blank=False, compact=True, value=freq)
            yield Label("Retention (hours)")
            yield Input(str(cur.get("retention_h", 0)), id="retention", compact=True)
            yield Label("App-consistent (h)")
            yield Input(str(cur.get("app_consistent_h", 0)), id="app", compact=True, placeholder="0 = none")
            yield Label("Encrypt data at rest")
            yield Select([("no", False), ("yes (needs the key made at registration)", True)], id="encrypt",
                         allow_blank=False, compact=True, value=bool(cur.get("encrypt", False)))
            yield Label("Start replication")
            yield Input(str(cur.get("start", "now")), id="start", compact=True, placeholder="now or HH:MM")

    def on_mount(self) -> None:
        self.query_one("#target", Select).focus()

    def operation(self):
        target = self.query_one("#target", Select).value
        storage = self.query_one("#storage", Select).value
        storage = None if storage is Select.NULL or storage == Select.BLANK else storage
        frequency = self.query_one("#frequency", Select).value
        retention = _int(self.query_one("#retention", Input).value, "retention")
        app_h = _int(self.query_one("#app", Input).value or "0", "app-consistent frequency")
        encrypt = bool(self.query_one("#encrypt", Select).value)
        start = self.query_one("#start", Input).value.strip() or "now"
        cloud = self.cloud
        return lambda lab: lab.configure_cloud(
            cloud, target, storage_account=storage, frequency=frequency, retention_h=retention,
            app_consistent_h=app_h, encrypt=encrypt, start=start,
        )


def _int(text: str, what: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} must be a whole number of hours, not {text!r}") from None


class MapNetworkDialog(EngineDialog):
    title_text = "Map network"
    ok_label = "Map"

    def __init__(self, source: str, state: LabState):
        super().__init__()
        self.source = source
        nets = (state.resources or {}).get("networks", [])
        azure = [n for n in nets if n.get("side") == "azure"]
        other = [n for n in nets if n.get("side") != "azure" and n["name"] != source]
        self.options = [(f"{n['name']} (Azure, {n.get('place', '')})", n["name"]) for n in azure] + [
            (f"{n['name']} ({n.get('place', '')})", n["name"]) for n in other
        ]

    def body(self) -> ComposeResult:
        yield Static(Text.assemble("VMs on VM network ", (self.source, "bold"),
                                   " connect to the target network after failover."), classes="line")
        with Grid():
            yield Label("Target network")
            yield Select(self.options, id="target", allow_blank=False, compact=True)

    def on_mount(self) -> None:
        self.query_one("#ok", Button).focus()

    def operation(self):
        target = self.query_one("#target", Select).value
        source = self.source
        return lambda lab: lab.map_network(source, target)


class LinkDialog(EngineDialog):
    title_text = "Set link"
    ok_label = "Apply"

    def __init__(self, link: dict):
        super().__init__()
        self.link = link

    def body(self) -> ComposeResult:
        yield Static(Text.assemble("Link ", (f"{self.link['source']} → {self.link['target']}", "bold"),
                                   ": replication data crosses it at its bandwidth."), classes="line")
        with Grid():
            yield Label("Bandwidth (Mbps)")
            yield Input(f"{self.link.get('mbps', '')}", id="mbps", compact=True)
            yield Label("State")
            yield Select([(s, s) for s in LINK_STATES], id="state", allow_blank=False, compact=True,
                         value=self.link.get("state") if self.link.get("state") in LINK_STATES else "up")

    def on_mount(self) -> None:
        self.query_one("#mbps", Input).focus()

    def operation(self):
        raw = self.query_one("#mbps", Input).value.strip()
        try:
            mbps = float(raw)
        except ValueError:
            raise ValueError(f"bandwidth must be a number of Mbps, not {raw!r}") from None
        state = self.query_one("#state", Select).value
        src, dst = self.link["source"], self.link["target"]
        return lambda lab: lab.set_link(src, dst, mbps=mbps, state=state)


class ProtectDialog(EngineDialog):
    """Enable protection on one VM (with target options) or several (bulk)."""

    title_text = "Enable protection"
    ok_label = "Protect"

    def __init__(self, vms: list[str], skipped: list[tuple[str, str]], state: LabState):
        super().__init__()
        self.vms = vms
        self.skipped = skipped
        self.state = state

    def body(self) -> ComposeResult:
        if self.vms:
            yield Static(Text.assemble("Enable protection on ", (", ".join(self.vms), "bold"), "."),
                         classes="line")
            yield Static(Text("Validates each VM, enables replication and starts initial replication at "
                              "the cloud's start time; a 'Finalize protection' job follows when it is done."),
                         classes="line")
        else:
            yield Static(Text("None of the selected VMs can be protected now.", style="bold"), classes="line")
        for vm, why in self.skipped:
            yield Static(Text.assemble(("skipped ", "bold"), (vm, "bold"), ": ", why), classes="line")
        if len(self.vms) == 1:
            with Grid():
                yield Label("Target name")
                yield Input("", id="target-name", compact=True, placeholder=f"{self.vms[0]} (blank: same)")
                yield Label("Target size")
                yield Select([(s, s) for s in TARGET_SIZES], id="target-size", compact=True,
                             prompt="(auto from CPU and memory)")
                yield Label("NIC")
                yield Input("", id="nic", compact=True, placeholder="(blank: the engine picks one)")

    def on_mount(self) -> None:
        ok = self.query_one("#ok", Button)
        ok.disabled = not self.vms
        if self.vms:
            ok.focus()

    def operation(self):
        if not self.vms:
            raise ValueError("nothing to protect")
        names = list(self.vms)
        kw: dict[str, Any] = {}
        if len(names) == 1:
            name = self.query_one("#target-name", Input).value.strip()
            size = self.query_one("#target-size", Select).value
            nic = self.query_one("#nic", Input).value.strip()
            kw = {
                "target_name": name or None,
                "target_size": None if size is Select.NULL or size == Select.BLANK else size,
                "nic": nic or None,
            }
        return lambda lab: lab.protect(names, **kw)


class TargetDialog(EngineDialog):
    title_text = "Set target"
    ok_label = "Apply"

    def __init__(self, vm: str, state: LabState):
        super().__init__()
        self.vm = vm
        self.info = state.vm(vm) or {}

    def body(self) -> ComposeResult:
        yield Static(Text.assemble("Target settings of ", (self.vm, "bold"),
                                   ": the VM failover creates (size sets its cores, memory and cost)."),
                     classes="line")
        size = self.info.get("target_size")
        with Grid():
            yield Label("Target size")
            yield Select([(s, s) for s in TARGET_SIZES], id="target-size", compact=True,
                         prompt="(keep)", value=size if size in TARGET_SIZES else Select.NULL)
            yield Label("Target name")
            yield Input(str(self.info.get("target_name") or ""), id="target-name", compact=True)
            yield Label("NIC")
            yield Input(str(self.info.get("nic") or ""), id="nic", compact=True, placeholder="(keep)")

    def on_mount(self) -> None:
        self.query_one("#target-size", Select).focus()

    def operation(self):
        size = self.query_one("#target-size", Select).value
        size = None if size is Select.NULL or size == Select.BLANK or size == self.info.get("target_size") else size
        name = self.query_one("#target-name", Input).value.strip()
        name = None if not name or name == self.info.get("target_name") else name
        nic = self.query_one("#nic", Input).value.strip()
        nic = None if not nic or nic == self.info.get("nic") else nic
        if size is None and name is None and nic is None:
            raise ValueError("nothing changed: pick a size, or type a new name or NIC")
        vm = self.vm
        return lambda lab: lab.set_target(vm, size=size, target_name=name, nic=nic)


# ---- help --------------------------------------------------------------------------------------


class HelpScreen(ModalScreen):
    """`?`: the keys of the current panel (with why a disabled one is disabled) and the global keys."""

    BINDINGS = [
        Binding("escape,question_mark,q", "close", "Close", id="help.close"),
    ]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 78; max-width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    """

    def __init__(self, text: Text, title: str):
        super().__init__()
        self.text = text
        self.title_text = title

    def compose(self) -> ComposeResult:
        with VerticalScroll() as v:
            v.border_title = self.title_text
            v.border_subtitle = "esc close"
            yield Static(self.text, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


# ---- VM details (enter on a VM) ---------------------------------------------------------------


class VmDetailScreen(Screen):
    """One VM in full: status, target, policy, disks and every recovery point. esc goes back."""

    BINDINGS = [Binding("escape", "back", "Back", id="vm.back")]
    DEFAULT_CSS = """
    VmDetailScreen #vm-summary { height: auto; border: round $primary 50%; padding: 0 1; }
    VmDetailScreen LabTable { height: 1fr; border: round $primary 50%; }
    VmDetailScreen #vm-disks { height: 4; }
    """

    def __init__(self, vm: str):
        super().__init__()
        self.vm = vm

    def compose(self) -> ComposeResult:
        yield Static("", id="vm-summary")
        yield LabTable([Column("name", "Disk", 16), Column("role", "Role", 5), Column("size", "Size", 10),
                        Column("used", "Allocated", 10), Column("file", "File", 0)],
                       id="vm-disks", title="Disks")
        yield LabTable([Column("id", "ID", 5), Column("time", "Time", 19), Column("kind", "Type", 16),
                        Column("size", "Size", 10)], id="vm-points", title="Recovery points")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#vm-summary").border_title = self.vm
        self.update_state(host_of(self).state)
        self.query_one("#vm-points", LabTable).focus()

    def update_state(self, state: LabState) -> None:
        colors = host_of(self).status_colors
        self.query_one("#vm-summary", Static).update(vm_detail_text(state, self.vm, colors, wrap=True, tables=True))
        v = state.vm(self.vm) or {}
        self.query_one("#vm-disks", LabTable).styles.height = len(v.get("disks", [])) + 3
        self.query_one("#vm-disks", LabTable).set_rows(
            (f"disk:{i}", (d["name"], d.get("role", ""), fmt_bytes(d.get("logical_bytes")),
                           fmt_bytes(d.get("allocated_bytes")), str(d.get("path", "")).rsplit("/", 1)[-1]))
            for i, d in enumerate(v.get("disks", []))
        )
        pts = sorted(state.points.get(self.vm, []), key=lambda p: p["time"], reverse=True)
        self.query_one("#vm-points", LabTable).set_rows(
            (f"point:{p['id']}", (str(p["id"]), fmt_time(p["time"]), str(p.get("kind", "")),
                                  fmt_bytes(p.get("size"))))
            for p in pts
        )

    def action_back(self) -> None:
        self.app.pop_screen()


# ---- what the app opens when a panel asks (see tui.host) ---------------------------------------


def dialog_for(request: DialogRequest, state: LabState) -> Screen:
    """The screen that answers a panel's request, built on the current lab state."""
    if isinstance(request, Confirm):
        return ConfirmDialog(request.title, request.lines, request.op, ok_label=request.ok_label)
    if isinstance(request, ProtectForm):
        return ProtectDialog(request.vms, request.skipped, state)
    if isinstance(request, TargetForm):
        return TargetDialog(request.vm, state)
    if isinstance(request, CloudProtectionForm):
        return CloudProtectionDialog(request.cloud, state)
    if isinstance(request, MapNetworkForm):
        return MapNetworkDialog(request.source, state)
    if isinstance(request, LinkForm):
        return LinkDialog(request.link)
    if isinstance(request, VmDetails):
        return VmDetailScreen(request.vm)
    raise TypeError(f"no dialog for {request!r}")


__all__ = [
    "dialog_for",
    "ConfirmDialog", "CloudProtectionDialog", "MapNetworkDialog", "LinkDialog", "ProtectDialog",
    "TargetDialog", "HelpScreen", "VmDetailScreen",
]
