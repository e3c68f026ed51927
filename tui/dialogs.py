"""Modal dialogs: confirmations that say what an action will do, and forms whose values the
engine validates (its message and hint are shown inline; the dialog stays open to fix them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Checkbox, DataTable, Input, Label, OptionList, Select, Static
from textual.widgets.option_list import Option

from engine import LabError, parse_duration

from .host import (AssociatePolicyForm, ChangePointForm, CloudProtectionForm, CommandOutput, CompleteForm, Confirm,
                   CreatePolicyForm, DeployProcessServerForm, DialogRequest, ExportForm, FailoverForm, FaultForm, Host,
                   LinkForm, MapNetworkForm, ProtectForm, ReprotectForm, RunForForm, TargetForm, VmDetails,
                   WorkloadForm, host_of)
from .render import (direction_text, health_text, physical_policy_text, proof_text, recovered_text, recovery_side,
                     region_policy_text, vm_detail_text)
from .state import (LabState, at_recovery_side, azure_process_servers, failback_path, fault_targets, fmt_bytes,
                    fmt_cache, fmt_day_time, fmt_time, inject_subject, is_azure_vm, job_ids_of, lab_policies,
                    linked_vmware_site, number_text, physical_server, physical_sites, region_info, region_names,
                    region_resources, waiting_step)
from .widgets import AppBar, Column, KeyBar, LabTable

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
    if isinstance(result, dict) and "id" in result and "state" in result:
        return f"job {result['id']} is {result['state']}: see Jobs (4)"
    ids = job_ids_of(result)
    if len(ids) == 1:
        return f"job {ids[0]} started: see Jobs (4)"
    if ids:
        return f"job(s) {', '.join(map(str, ids))} started: see Jobs (4)"
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
        yield AppBar()
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
        except LabError as e:  # the engine's own parsing (a duration) refused it
            self.show_error(error_text(e))
            return
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

    def __init__(self, title: str, lines: list[Text], op: Callable[[Any], Any], ok_label: str = "OK",
                 danger: bool = False):
        super().__init__(title, ok_label)
        self.lines = lines
        self.op = op
        self.danger = danger

    def body(self) -> ComposeResult:
        for line in self.lines:
            yield Static(line, classes="line")
        if self.danger:
            yield Static(Text(f"This cannot be undone: enter cancels; shift+tab then enter, or ctrl+s, "
                              f"{self.ok_label.lower()}s.", style="dim"), classes="line")

    def on_mount(self) -> None:
        # what cannot be undone starts on Cancel, so one enter never does it
        self.query_one("#cancel" if self.danger else "#ok", Button).focus()

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
    text = text.strip()
    if not text.isdigit() or len(text) > 6:
        shown = text if len(text) <= 20 else text[:20] + "…"
        raise ValueError(f"{what} must be a whole number of hours, not {shown!r}")
    return int(text)


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
        self.query_one("#target", Select).focus()

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
        mbps = number_text(self.query_one("#mbps", Input).value, "bandwidth", "Mbps")
        state = self.query_one("#state", Select).value
        src, dst = self.link["source"], self.link["target"]
        return lambda lab: lab.set_link(src, dst, mbps=mbps, state=state)


class ProtectDialog(EngineDialog):
    """Enable protection on one VM (with target options) or several (bulk). Azure VMs (Azure ->
    Azure) get the target region and its resources instead: each field left blank is what Site
    Recovery creates (or the region's own: its cache account, its network mapping). Physical
    servers (seed 003) get the policy (the configuration server's), the process server their
    mobility service sends to, and a replication group whose servers share recovery points."""

    title_text = "Enable protection"
    ok_label = "Protect"

    def __init__(self, vms: list[str], skipped: list[tuple[str, str]], state: LabState):
        super().__init__()
        self.vms = vms
        self.skipped = skipped
        self.state = state
        infos = [state.vm(n) or {} for n in vms]
        self.azure = bool(vms) and all(is_azure_vm(state, v) for v in infos)
        found = [physical_server(state, n) for n in vms]
        sites = {f[0]["site"] for f in found if f is not None}
        # physical servers of one site (a mix asks for nothing more: the engine says what is wrong)
        self.physical = bool(vms) and all(found) and len(sites) == 1
        if self.physical:
            self.site = found[0][0]
            self.title_text = "Enable replication"
            self.policies = lab_policies(state, "replication")
        if self.azure:
            self.title_text = "Enable replication"
            self.source = str(infos[0].get("location") or "")
            region = region_info(state, self.source) or {}
            self.policy = region.get("protection")
            targets = [r for r in region_names(state) if r != self.source]
            self.target = str((self.policy or {}).get("target") or region.get("paired_region") or
                              (targets[0] if targets else ""))
            self.targets = [(f"{r} (paired region)" if r == region.get("paired_region") else r, r) for r in targets]

    def body(self) -> ComposeResult:
        if self.vms and self.azure:
            yield from self.azure_body()
        elif self.vms and self.physical:
            yield from self.physical_body()
        elif self.vms:
            yield Static(Text.assemble("Enable protection on ", (", ".join(self.vms), "bold"), "."),
                         classes="line")
            yield Static(Text("Validates each VM, enables replication and starts initial replication at "
                              "the cloud's start time; a 'Finalize protection' job follows when it is done."),
                         classes="line")
        else:
            yield Static(Text("None of the selected VMs can be protected now.", style="bold"), classes="line")
        for vm, why in self.skipped:
            yield Static(Text.assemble(("skipped ", "bold"), (vm, "bold"), ": ", why), classes="line")
        if len(self.vms) == 1 and not self.azure and not self.physical:
            with Grid():
                yield Label("Target name")
                yield Input("", id="target-name", compact=True, placeholder=f"{self.vms[0]} (blank: same)")
                yield Label("Target size")
                yield Select([(s, s) for s in TARGET_SIZES], id="target-size", compact=True,
                             prompt="(auto from CPU and memory)")
                yield Label("NIC")
                yield Input("", id="nic", compact=True, placeholder="(blank: the engine picks one)")

    # ---- physical servers (seed 003) -------------------------------------------------------------

    def physical_body(self) -> ComposeResult:
        site = self.site
        cs = site["configuration_server"]
        yield Static(Text.assemble("Replicate ", (", ".join(self.vms), "bold"), " to Azure through configuration "
                                   "server ", (cs, "bold"), ": the mobility service sends each write to the process "
                                   "server, whose cache compresses and encrypts it on its way to Azure storage."),
                     classes="line")
        policies = [(f"{p['name']} ({physical_policy_text(p).plain})"
                     + ("" if p.get("server") == cs else f", associated with {p['server']}" if p.get("server")
                        else ", not associated"), p["name"]) for p in self.policies]
        mine = site.get("policy") or ""
        pss = [(f"{p['name']} ({'on the CS' if p.get('on') == 'the configuration server' else 'own server'}, "
                f"cache {fmt_cache(p.get('bytes'), p.get('limit'))}" + (", FULL" if p.get("full") else "") + ")",
                p["name"]) for p in site.get("process_servers", [])]
        with Grid():
            yield Label("Policy")
            blank = f"(none associated with {cs}: Resources, a)" if not mine else "(the configuration server's)"
            yield Select(policies, id="ph-policy", compact=True, prompt=blank,
                         value=mine if mine in [v for _, v in policies] else Select.NULL)
            yield Label("Process server")
            yield Select(pss, id="ph-ps", allow_blank=False, compact=True)
            yield Label("Replication group")
            yield Input("", id="ph-group", compact=True,
                        placeholder="(none) a name: its servers share recovery points")
            if len(self.vms) == 1:
                yield Label("Target name")
                yield Input("", id="target-name", compact=True, placeholder=f"{self.vms[0]} (blank: same)")
                yield Label("Target size")
                yield Select([(s, s) for s in TARGET_SIZES], id="target-size", compact=True,
                             prompt="(auto from CPU and memory)")

    def physical_kw(self) -> dict[str, Any]:
        policy = self.query_one("#ph-policy", Select).value
        ps = self.query_one("#ph-ps", Select).value
        group = self.query_one("#ph-group", Input).value.strip()
        kw: dict[str, Any] = {
            "policy": policy if isinstance(policy, str) and policy else None,
            "process_server": ps if isinstance(ps, str) and ps else None,
            "group": group or None,
        }
        if len(self.vms) == 1:
            name = self.query_one("#target-name", Input).value.strip()
            size = self.query_one("#target-size", Select).value
            kw["target_name"] = name or None
            kw["target_size"] = None if size is Select.NULL or size == Select.BLANK else size
        return kw

    # ---- Azure -> Azure ------------------------------------------------------------------------

    def azure_body(self) -> ComposeResult:
        yield Static(Text.assemble("Replicate ", (", ".join(self.vms), "bold"), " from ", (self.source, "bold"),
                                   " to another region. A field left blank: Site Recovery creates it."),
                     classes="line")
        with Grid():
            yield Label("Target region")
            yield Select(self.targets, id="az-region", allow_blank=False, compact=True,
                         value=self.target if self.target in [r for _, r in self.targets] else Select.NULL)
            for kind, label, blank in AZURE_FIELDS:
                yield Label(label)
                yield Select(self.resource_options(kind), id=AZURE_FIELD_IDS[kind], compact=True, prompt=blank)
            if self.policy is None:
                yield Label("Retention (hours)")
                yield Input("", id="az-retention", compact=True, placeholder="blank: the default policy's")
                yield Label("App-consistent (h)")
                yield Input("", id="az-app", compact=True, placeholder="blank: the default; 0 = none")
        if self.policy is not None:
            yield Static(Text.assemble(("Policy ", "bold"), f"of {self.source} (its VMs share it): ",
                                       region_policy_text(self.policy)), classes="line")

    def resource_options(self, kind: str) -> list[tuple[str, str]]:
        """The resources of a kind one may pick: the target region's (the cache: the source's)."""
        region = self.source if kind == CACHE else self.current_target()
        out = []
        for x in region_resources(self.state, region, "storage account" if kind == CACHE else kind):
            made = f" (created for {x['made_for']})" if x.get("made_for") else ""
            out.append((f"{x['name']}{made}", x["name"]))
        return out

    def current_target(self) -> str:
        try:
            value = self.query_one("#az-region", Select).value
        except Exception:  # not composed yet
            return self.target
        return str(value) if isinstance(value, str) else self.target

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "az-region":
            return
        for kind, _label, _blank in AZURE_FIELDS:
            if kind == CACHE:
                continue
            box = self.query_one(f"#{AZURE_FIELD_IDS[kind]}", Select)
            keep = box.value
            options = self.resource_options(kind)
            box.set_options(options)
            if keep in [v for _, v in options]:
                box.value = keep

    def azure_kw(self) -> dict[str, Any]:
        def picked(kind: str) -> str | None:
            v = self.query_one(f"#{AZURE_FIELD_IDS[kind]}", Select).value
            return v if isinstance(v, str) and v else None

        kw: dict[str, Any] = {
            "target_region": self.current_target() or None,
            "target_resource_group": picked("resource group"),
            "target_network": picked("virtual network"),
            "target_storage": picked("storage account"),
            "cache_storage": picked(CACHE),
            "target_availability_set": picked("availability set"),
        }
        if self.policy is None:
            ret = self.query_one("#az-retention", Input).value.strip()
            app = self.query_one("#az-app", Input).value.strip()
            kw["retention_h"] = _int(ret, "retention") if ret else None
            kw["app_consistent_h"] = _int(app, "app-consistent frequency") if app else None
        return kw

    def on_mount(self) -> None:
        ok = self.query_one("#ok", Button)
        ok.disabled = not self.vms
        if self.azure:
            self.query_one("#az-region", Select).focus()
        elif self.physical:
            self.query_one("#ph-policy", Select).focus()
        elif len(self.vms) == 1:
            self.query_one("#target-name", Input).focus()  # the first field: typing goes there
        elif self.vms:
            ok.focus()

    def operation(self):
        if not self.vms:
            raise ValueError("nothing to protect")
        names = list(self.vms)
        kw: dict[str, Any] = {}
        if self.azure:
            kw = self.azure_kw()
        elif self.physical:
            kw = self.physical_kw()
        elif len(names) == 1:
            name = self.query_one("#target-name", Input).value.strip()
            size = self.query_one("#target-size", Select).value
            nic = self.query_one("#nic", Input).value.strip()
            kw = {
                "target_name": name or None,
                "target_size": None if size is Select.NULL or size == Select.BLANK else size,
                "nic": nic or None,
            }
        return lambda lab: lab.protect(names, **kw)


# Azure -> Azure: the protect dialog's resource fields (kind as Lab.regions() names it, label, what
# a blank field means); the cache is a storage account in the source region
CACHE = "cache"
AZURE_FIELDS = [
    ("resource group", "Resource group", "(blank: Site Recovery creates one)"),
    ("virtual network", "Virtual network", "(blank: the mapped one, else a new one)"),
    ("storage account", "Storage account", "(blank: Site Recovery creates one)"),
    (CACHE, "Cache storage", "(blank: the region's cache account)"),
    ("availability set", "Availability set", "(blank: one like the source's, if any)"),
]
AZURE_FIELD_IDS = {"resource group": "az-group", "virtual network": "az-network", "storage account": "az-storage",
                   CACHE: "az-cache", "availability set": "az-avset"}


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


# ---- physical servers (seed 003) ---------------------------------------------------------------


class CreatePolicyDialog(EngineDialog):
    """A replication policy for physical servers, as `srlab policy create NAME [--retention H]
    [--app-consistent H]` makes it: with its failback policy. The engine judges the values."""

    title_text = "Create replication policy"
    ok_label = "Create"

    def body(self) -> ComposeResult:
        yield Static(Text("A replication policy for physical servers: how long recovery points are kept and how "
                          "often an app-consistent one is made. Its failback policy (NAME-failback) is made with "
                          "it. Associate it with a configuration server (a) to protect its servers."), classes="line")
        with Grid():
            yield Label("Name")
            yield Input("", id="policy-name", compact=True, placeholder="like Gold")
            yield Label("Retention (hours)")
            yield Input("", id="retention", compact=True, placeholder="blank: the default")
            yield Label("App-consistent (h)")
            yield Input("", id="app", compact=True, placeholder="blank: the default; 0 = none")

    def on_mount(self) -> None:
        self.query_one("#policy-name", Input).focus()

    def operation(self):
        name = self.query_one("#policy-name", Input).value.strip()
        if not name:
            raise ValueError("give the policy a name")
        ret = self.query_one("#retention", Input).value.strip()
        app = self.query_one("#app", Input).value.strip()
        retention_h = _int(ret, "retention") if ret else None
        app_h = _int(app, "app-consistent frequency") if app else None
        return lambda lab: lab.create_policy(name, retention_h=retention_h, app_consistent_h=app_h)

    def _done(self, result: Any) -> None:
        self.pending = False
        r = result if isinstance(result, dict) else {}
        self.app.notify(f"{r.get('name', 'policy')} created (keep {r.get('retention_h', '-')} h, app-consistent "
                        f"{r.get('app_consistent_h') or 'none'} h) with its failback policy", title="srlab",
                        markup=False)
        self.dismiss(result if result is not None else True)


class AssociatePolicyDialog(EngineDialog):
    """Associate a replication policy with a configuration server (`srlab policy associate NAME
    --server CS [--storage-account A]`): its servers replicate to the storage account."""

    title_text = "Associate policy"
    ok_label = "Associate"

    def __init__(self, server: str, state: LabState):
        super().__init__(f"Associate policy with {server}")
        self.server = server
        pols = lab_policies(state, "replication")
        free = [p for p in pols if not p.get("server")]
        self.policies = [(f"{p['name']} ({physical_policy_text(p).plain})"
                          + (f", associated with {p['server']}" if p.get("server") else ""), p["name"])
                         for p in free + [p for p in pols if p.get("server")]]
        res = state.resources or {}
        self.vault = str(res.get("vault_region") or "")
        self.accounts = [(f"{a['name']} ({a.get('region', '')}, {a.get('redundancy', '')})", a["name"])
                         for a in res.get("storage_accounts", []) if not a.get("made_for")]

    def body(self) -> ComposeResult:
        yield Static(Text.assemble("The policy (and its failback policy) becomes the protection settings of "
                                   "configuration server ", (self.server, "bold"), ": its servers replicate to the "
                                   "storage account", (f" in the vault's region {self.vault}" if self.vault else ""),
                                   "."), classes="line")
        if not self.policies:
            yield Static(Text("No replication policy yet: create one first (n).", style="bold"), classes="line")
        with Grid():
            yield Label("Policy")
            yield Select(self.policies, id="policy", allow_blank=False, compact=True)
            yield Label("Storage account")
            yield Select(self.accounts, id="storage", compact=True,
                         prompt="(the vault region's geo-redundant one)")

    def on_mount(self) -> None:
        if not self.policies:
            self.query_one("#ok", Button).disabled = True
            self.query_one("#cancel", Button).focus()
        else:
            self.query_one("#policy", Select).focus()

    def operation(self):
        policy = self.query_one("#policy", Select).value
        if not isinstance(policy, str) or not policy:
            raise ValueError("create a replication policy first (n)")
        storage = self.query_one("#storage", Select).value
        storage = storage if isinstance(storage, str) and storage else None
        server = self.server
        return lambda lab: lab.associate_policy(policy, server, storage_account=storage)

    def _done(self, result: Any) -> None:
        self.pending = False
        r = result if isinstance(result, dict) else {}
        self.app.notify(f"{r.get('policy_name', 'the policy')} associated with {r.get('container', self.server)}: its "
                        f"servers replicate to {r.get('storage_account', '')} ({r.get('target', '')})", title="srlab",
                        markup=False)
        self.dismiss(result if result is not None else True)


class DeployProcessServerDialog(EngineDialog):
    """A process server in Azure, for failback to VMware (`srlab process-server deploy NAME
    --region R`): an Azure VM registered with the configuration server through the VPN."""

    ok_label = "Deploy"

    def __init__(self, region: str, state: LabState):
        super().__init__(f"Deploy process server in {region}")
        self.place = region
        self.sites = physical_sites(state)
        self.vpn = linked_vmware_site(state, region)  # (display: whether it can go is the engine's answer)
        taken = {x["name"].lower() for x in azure_process_servers(state)}
        self.suggested = next(f"PSAZ{i:02d}" for i in range(1, 100) if f"psaz{i:02d}" not in taken)

    def body(self) -> ComposeResult:
        cs = ", ".join(p["configuration_server"] for p in self.sites) or "the configuration server"
        yield Static(Text.assemble("An Azure VM in ", (self.place, "bold"), " from the Site Recovery image, "
                                   "registered with ", (cs, "bold"), " through the VPN",
                                   (f" to {self.vpn}" if self.vpn else ""), ". Servers that failed over to ",
                                   (self.place, "bold"), " fail back to VMware through it (reprotect, then "
                                   "unplanned failover). Runs as a job: see Jobs (4)."), classes="line")
        with Grid():
            yield Label("Name")
            yield Input(self.suggested, id="ps-name", compact=True, placeholder="like PSAZ01")
            if len(self.sites) > 1:
                yield Label("Configuration server")
                yield Select([(p["configuration_server"], p["configuration_server"]) for p in self.sites],
                             id="ps-server", allow_blank=False, compact=True)

    def on_mount(self) -> None:
        box = self.query_one("#ps-name", Input)
        box.focus()
        box.select_all()

    def operation(self):
        name = self.query_one("#ps-name", Input).value.strip()
        if not name:
            raise ValueError("give the process server a name")
        server = None
        if len(self.sites) > 1:
            v = self.query_one("#ps-server", Select).value
            server = v if isinstance(v, str) else None
        region = self.place
        return lambda lab: lab.deploy_process_server(name, region, server=server)


class PhysicalReprotectDialog(EngineDialog):
    """Reprotect a physical server that runs in Azure (after its failover's commit) towards a
    VMware VM (`srlab reprotect SERVER --process-server PS --master-target MT --datastore DS`):
    through a process server in Azure and a master target on premises, onto a datastore. Blank
    fields are the engine's defaults."""

    title_text = "Reprotect to VMware"
    ok_label = "Reprotect"

    def __init__(self, vm: str, state: LabState):
        super().__init__(f"Reprotect {vm} to VMware")
        self.vm = vm
        self.info = state.vm(vm) or {}
        found = physical_server(state, vm)
        self.site = found[0] if found else {}
        self.azure_region = str((self.info.get("policy") or {}).get("target") or "")
        here = azure_process_servers(state, self.azure_region) or azure_process_servers(state)
        self.process_servers = [(f"{x['name']} ({x.get('region', '')})", x["name"]) for x in here]
        cs = str(self.site.get("configuration_server") or "")
        self.master_targets = [(f"{m} (on the configuration server)" if m == cs else f"{m} (its own server)", m)
                               for m in self.site.get("master_targets", [])]
        self.vmware = linked_vmware_site(state, self.azure_region) if self.azure_region else None  # (display)
        sites = list((state.resources or {}).get("vmware_sites", []))  # (a datastore it cannot take: the engine says)
        self.datastores = [(f"{d} (ESXi {h['name']}, {w['name']})", d) for w in sites for h in w.get("hosts", [])
                           for d in h.get("datastores", [])]

    def body(self) -> ComposeResult:
        here = str(self.info.get("active_location") or "Microsoft Azure")
        there = self.vmware or "the VMware site"
        source = f"{here} ({self.azure_region})" if self.azure_region else here
        yield Static(Text.assemble("Replication ", (source, "bold"), " → ", (f"{there} (a VMware VM)", "bold"), "."),
                     id="direction", classes="line")
        yield Static(Text.assemble("A physical server fails back to a VMware VM only. The master target seeds the "
                                   "VMware VM's disks on the datastore from ", (self.vm, "bold"), "'s own disks on "
                                   "premises; a Resynchronize job then sends only what differs from Azure. Then fail "
                                   "it over (U) and commit."), classes="line")
        with Grid():
            yield Label("Process server")
            yield Select(self.process_servers, id="rp-ps", compact=True,
                         value=self.process_servers[0][1] if len(self.process_servers) == 1 else Select.NULL,
                         prompt="(deploy one: Resources, d)" if not self.process_servers else "(choose one)")
            yield Label("Master target")
            yield Select(self.master_targets, id="rp-mt", compact=True, prompt="(the configuration server's)")
            yield Label("Datastore")
            yield Select(self.datastores, id="rp-ds", compact=True, prompt="(the VMware site's first)")

    def on_mount(self) -> None:
        # every field has the engine's default: enter reprotects with them (a Select under the
        # cursor would open its list on enter instead); shift+tab goes back to the fields
        self.query_one("#ok", Button).focus()

    def operation(self):
        def picked(box: str) -> str | None:
            v = self.query_one(box, Select).value
            return v if isinstance(v, str) and v else None

        vm, ps, mt, ds = self.vm, picked("#rp-ps"), picked("#rp-mt"), picked("#rp-ds")
        return lambda lab: lab.reprotect([vm], process_server=ps, master_target=mt, datastore=ds)


# ---- failover (seed 004 STEP 3) ----------------------------------------------------------------

# (kind as Lab.failover takes it, its name in the portal's words)
FAILOVER_KINDS = [("test", "Test failover"), ("planned", "Planned failover"), ("unplanned", "Unplanned failover")]
# the failback's sync options (seed 004 §3.6)
SYNC_CHOICES = [("before failover (minimize downtime)", "before"),
                ("during failover only (minimize sync)", "during")]
SYNC_WHAT = {
    "before": "Syncs while the VM runs; then the job waits until you start the failover.",
    "during": "Shuts the VM down at once, syncs, then fails over: less to sync, more downtime.",
}
DEFAULT_NET, NO_NET = "=default", "=none"  # the network list's values besides "net:NAME"
POINT_COLUMNS = [Column("id", "Point", 21), Column("time", "Time", 14), Column("kind", "Type", 16),
                 Column("tx", "Last trans.", 11)]


def key_path(lab, key_file: str | None) -> str | None:
    """The key file as typed: a relative path that is not there from here is taken from the lab's
    folder, where registration made it (Resources shows it so: keys/SC01-...key)."""
    if not key_file:
        return None
    path = Path(key_file).expanduser()
    if not path.is_absolute() and not path.exists() and (Path(lab.path) / path).exists():
        return str(Path(lab.path) / path)
    return str(path)


def is_app_point(p: dict) -> bool:
    return str(p.get("kind", "")).startswith("app")


def point_rows(points: list[dict], in_use: Any = None, cache: bool = False) -> list[tuple[str, tuple]]:
    """The recovery point table: latest and latest app-consistent by name (resolved when the job
    runs, so a point that arrives meanwhile counts), then every retained point, newest first.
    `cache` (an Azure VM): latest processes the cache first (lowest RPO); latest processed is
    the newest point already processed."""
    pts = sorted(points, key=lambda p: p["time"], reverse=True)

    def cells(label, p: dict | None) -> tuple:
        if p is None:
            return (label, Text("none retained", style="dim"), "", "")
        tx = p.get("last_transaction")
        return (label, fmt_day_time(p["time"]), str(p.get("kind", "")), "-" if tx is None else str(tx))

    rows = [("latest", cells("latest (cache first)" if cache else "latest", pts[0] if pts else None))]
    if cache:
        rows.append(("latest-processed", cells("latest processed", pts[0] if pts else None)))
    app = next((p for p in pts if is_app_point(p)), None)
    if app is not None:
        rows.append(("latest-app", cells("latest app-consistent", app)))
    for p in pts:
        label = Text(str(p["id"]))
        if in_use is not None and str(p["id"]) == str(in_use):
            label.append(" in use", style="bold")
        rows.append((str(p["id"]), cells(label, p)))
    return rows


class PointsTable(LabTable):
    """A dialog's recovery point list (its height is in srlab.tcss); enter on it confirms the
    dialog, as enter does in every dialog."""


class FailoverDialog(EngineDialog):
    """Test, planned or unplanned failover of one VM (a planned one of a VM that runs at the
    recovery side is its failback): the direction, the kinds (greyed with the engine's reason
    when not allowed now), every retained recovery point, the network and the options."""

    DEFAULT_CSS = """
    FailoverDialog #dialog-body { max-height: 18; }
    FailoverDialog #kinds { height: auto; max-height: 7; border: none; padding: 0; background: $surface; }
    FailoverDialog #kinds:focus { background-tint: $foreground 5%; }
    FailoverDialog .row { height: 1; }
    FailoverDialog .row > Label { width: 22; padding: 0 1 0 0; }
    FailoverDialog .row > Select, FailoverDialog .row > Input { width: 1fr; }
    FailoverDialog #point-note { height: auto; }
    """

    def __init__(self, vm: str, kind: str, state: LabState):
        super().__init__()
        self.vm = vm
        self.info = state.vm(vm) or {}
        # a physical server failing back fails over to the VMware VM from a point, as to Azure
        fb = failback_path(self.info)
        self.to_vmware = f"{fb['vmware_site']} ({fb['datastore']})" if fb else None
        self.back = at_recovery_side(self.info) and not self.to_vmware
        self.reasons = {k: state.reason(f"{k}_failover", vm) for k, _ in FAILOVER_KINDS}
        allowed = [k for k, _ in FAILOVER_KINDS if not self.reasons[k]]
        self.kind = kind if kind in allowed or not allowed else allowed[0]
        self.points = state.points.get(vm, [])
        self.networks = state.networks.get(vm, [])
        self.encrypt = bool((self.info.get("policy") or {}).get("key_at_failover"))  # the engine says
        # the server that made the key: the VM's VMM server, or a physical server's configuration server
        owners = (self.info.get("site"), (self.info.get("policy") or {}).get("container"))
        server = next((s for s in (state.resources or {}).get("servers", []) if s["name"] in owners), None)
        self.key_hint = (server or {}).get("key_file") or ""
        self.azure = bool(self.info.get("azure"))
        self.set_titles()

    def update_state(self, state: LabState) -> None:
        """Points made while the dialog is open join the table (the cursor stays on its row)."""
        self.points = state.points.get(self.vm, self.points)
        if self.is_mounted:
            self.query_one("#points", LabTable).set_rows(point_rows(self.points, cache=self.azure))

    def kind_name(self, kind: str) -> str:
        name = dict(FAILOVER_KINDS)[kind]
        return "Planned failover (failback)" if kind == "planned" and self.back else name

    def set_titles(self) -> None:
        self.title_text = f"{self.kind_name(self.kind)} of {self.vm}"
        self.ok_label = ("Test failover" if self.kind == "test" else
                         "Fail back" if self.kind == "planned" and self.back else "Fail over")

    def network_options(self) -> list[tuple[str, str]]:
        default = ("isolated, no network" if self.kind == "test" else
                   f"the mapped network, {self.info.get('target_network') or 'none'}")
        return [(f"default: {default}", DEFAULT_NET), ("isolated (no network)", NO_NET)] + [
            (n, f"net:{n}") for n in self.networks]

    def kind_prompt(self, kind: str) -> Text:
        why = self.reasons[kind]
        t = Text("○ " if kind != self.kind else "● ")
        t.append(self.kind_name(kind), style="bold" if not why else "")
        if why:
            t.append("  not now: ")
            t.append(Text(why))
        return t

    def body(self) -> ComposeResult:
        if self.to_vmware:
            yield Static(Text.assemble((str(self.info.get("active_location") or ""), "bold"), " → ",
                                       (f"{self.to_vmware}, a VMware VM", "bold")), id="direction", classes="line")
        else:
            yield Static(direction_text(self.info, self.back), id="direction", classes="line")
        yield Static("", id="what", classes="line")
        yield OptionList(*[Option(self.kind_prompt(k), id=k, disabled=bool(self.reasons[k]))
                           for k, _ in FAILOVER_KINDS], id="kinds", compact=True)
        table = PointsTable(POINT_COLUMNS, id="points", title="Recovery point")
        yield table
        yield Static(Text("Recovery point: the latest data, synchronized after the shutdown."), id="point-note",
                     classes="line")
        with Horizontal(classes="row", id="network-row"):
            yield Label("Network")
            yield Select(self.network_options(), id="network", allow_blank=False, compact=True, value=DEFAULT_NET)
        with Horizontal(classes="row", id="shutdown-row"):
            yield Label("Source")
            yield Checkbox("Shut down VMs and synchronize the latest data", id="shutdown-sync", compact=True)
        with Horizontal(classes="row", id="sync-row"):
            yield Label("Synchronize data")
            yield Select(SYNC_CHOICES, id="sync", allow_blank=False, compact=True, value="before")
        with Horizontal(classes="row", id="key-row"):
            yield Label("Encryption key file")
            yield Input("", id="key-file", compact=True,
                        placeholder=f"made at registration: {self.key_hint}" if self.key_hint else "its path")

    def on_mount(self) -> None:
        self.query_one("#points", LabTable).set_rows(point_rows(self.points, cache=self.azure))
        kinds = self.query_one("#kinds", OptionList)
        kinds.highlighted = kinds.get_option_index(self.kind)
        self.show_kind()
        if not any(not r for r in self.reasons.values()):
            self.query_one("#ok", Button).disabled = True
        table = self.query_one("#points", LabTable)
        (table if table.display else self.query_one("#ok", Button)).focus()

    def show_kind(self) -> None:
        """Show what the chosen kind needs, and only that."""
        kind, back = self.kind, self.back
        self.set_titles()
        self.query_one("#dialog", Vertical).border_title = self.title_text
        self.query_one("#ok", Button).label = self.ok_label
        kinds = self.query_one("#kinds", OptionList)
        for k, _ in FAILOVER_KINDS:
            kinds.replace_option_prompt(k, self.kind_prompt(k))
        self.show_what()
        picks_point = kind in ("test", "unplanned") and not back
        self.query_one("#points").display = picks_point
        self.query_one("#point-note").display = kind == "planned" and not back
        self.query_one("#network-row").display = not (kind == "planned" and back) and not self.to_vmware
        net = self.query_one("#network", Select)
        keep = net.value
        net.set_options(self.network_options())
        net.value = keep if keep != Select.NULL else DEFAULT_NET
        self.query_one("#shutdown-row").display = kind == "unplanned"
        self.query_one("#sync-row").display = kind == "planned" and back
        self.query_one("#key-row").display = self.encrypt and not back

    def show_what(self) -> None:
        """One line on what the chosen kind (and sync option) does."""
        if self.kind == "planned" and self.back:
            what = SYNC_WHAT.get(str(self.query_one("#sync", Select).value), "")
        elif self.azure and self.kind in ("test", "unplanned"):
            az = self.info["azure"]
            there = str(az.get("to") or "the other region")
            what = (f"A copy in {there}; production and replication go on." if self.kind == "test" else
                    f"{self.vm} starts in {there} from the point: writes after it are lost.")
            what += (f" latest processes the cache's {fmt_bytes(az.get('cache_bytes') or 0)} first "
                     f"({az.get('cache_account', '')}): the lowest RPO.")
        elif self.to_vmware and self.kind == "unplanned":
            what = f"{self.vm} is built as a VMware VM on {self.to_vmware} from the point; then commit it."
        else:
            what = {
                "test": "A copy at the recovery side; production and replication go on.",
                "planned": "Shuts the VM down and synchronizes the latest data first: no data loss.",
                "unplanned": "From the point: writes after it are lost. For when the source is gone.",
            }[self.kind]
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

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_submit()

    def operation(self):
        kind, back, vm = self.kind, self.back, self.vm
        if self.reasons[kind]:
            raise ValueError(self.reasons[kind])
        point = None
        if kind in ("test", "unplanned") and not back:
            point = self.query_one("#points", LabTable).cursor_key
            if point is None:
                raise ValueError(f"{vm} has no recovery point to fail over to")
        chosen = self.query_one("#network", Select).value
        network = (None if kind == "planned" and back or chosen == DEFAULT_NET else "none" if chosen == NO_NET
                   else str(chosen).removeprefix("net:"))
        shutdown_sync = kind == "unplanned" and self.query_one("#shutdown-sync", Checkbox).value
        sync = self.query_one("#sync", Select).value if kind == "planned" and back else None
        key_file = self.query_one("#key-file", Input).value.strip() or None if self.encrypt and not back else None
        return lambda lab: lab.failover([vm], kind, point=point, network=network, shutdown_sync=shutdown_sync,
                                        sync=sync, key_file=key_path(lab, key_file))


class ChangePointDialog(EngineDialog):
    """While commit is pending: rebuild the failed-over VM from another recovery point."""

    title_text = "Change recovery point"
    ok_label = "Change point"
    DEFAULT_CSS = """
    ChangePointDialog #dialog-body { max-height: 18; }
    ChangePointDialog .row { height: 1; }
    ChangePointDialog .row > Label { width: 22; padding: 0 1 0 0; }
    ChangePointDialog .row > Input { width: 1fr; }
    """

    def __init__(self, vm: str, state: LabState):
        super().__init__(f"Change recovery point of {vm}")
        self.vm = vm
        self.info = state.vm(vm) or {}
        self.points = state.points.get(vm, [])
        self.in_use = next((r for r in self.info.get("recovered") or [] if r.get("role") != "test"), None)
        self.encrypt = bool((self.info.get("policy") or {}).get("key_at_failover"))  # the engine says

    def body(self) -> ComposeResult:
        where = str(self.info.get("active_location") or "") if self.info.get("azure") else recovery_side(self.info)
        yield Static(Text.assemble("Rebuild ", (self.vm, "bold"), " at ", (where, "bold"),
                                   " from another point: it stops, its disks are built from the point and it "
                                   "starts again; writes after the point are lost."), classes="line")
        if self.in_use:
            yield Static(Text.assemble(("Now: ", "bold"), recovered_text(self.in_use)), classes="line")
        yield PointsTable(POINT_COLUMNS, id="points", title="Recovery point")
        if self.encrypt:
            with Horizontal(classes="row"):
                yield Label("Encryption key file")
                yield Input("", id="key-file", compact=True, placeholder="the key made at registration")

    def update_state(self, state: LabState) -> None:
        """Points made while the dialog is open join the table (the cursor stays on its row)."""
        self.points = state.points.get(self.vm, self.points)
        if self.is_mounted:
            self.query_one("#points", LabTable).set_rows(
                point_rows(self.points, (self.in_use or {}).get("point"), cache=bool(self.info.get("azure"))))

    def on_mount(self) -> None:
        table = self.query_one("#points", LabTable)
        in_use = (self.in_use or {}).get("point")
        table.set_rows(point_rows(self.points, in_use, cache=bool(self.info.get("azure"))))
        if in_use is not None and str(in_use) in table.row_keys:
            table.move_cursor(row=table.get_row_index(str(in_use)), animate=False)
        table.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_submit()

    def operation(self):
        point = self.query_one("#points", LabTable).cursor_key
        if point is None:
            raise ValueError(f"{self.vm} has no recovery point to choose")
        key_file = self.query_one("#key-file", Input).value.strip() or None if self.encrypt else None
        vm = self.vm
        return lambda lab: lab.change_point(vm, point, key_file=key_path(lab, key_file))


class CompleteDialog(EngineDialog):
    """Complete the step a job waits on (Complete test, start the failback...), with a note that
    goes into the job's report and the events."""

    title_text = "Complete"
    ok_label = "Complete"
    DEFAULT_CSS = """
    CompleteDialog .row { height: 1; margin-top: 1; }
    CompleteDialog .row > Label { width: 8; }
    CompleteDialog .row > Input { width: 1fr; }
    """

    def __init__(self, job_id: Any, state: LabState):
        self.job_id = job_id
        self.job = next((j for j in state.jobs if j["id"] == job_id), {"id": job_id, "name": ""})
        self.step = waiting_step(state, job_id)
        steps = [s.get("name", "") for s in state.job_details.get(job_id, {}).get("steps", [])]
        self.after = steps[steps.index(self.step) + 1:] if self.step in steps else []
        super().__init__(self.step or "Complete")

    def body(self) -> ComposeResult:
        yield Static(Text.assemble("Job ", (str(self.job_id), "bold"), " ", Text(str(self.job.get("name", ""))),
                                   " waits for action: ", (self.step or "nothing now", "bold"), "."),
                     classes="line")
        if self.after:
            yield Static(Text("Then: " + "; ".join(self.after) + ".", style="dim"), classes="line")
        with Horizontal(classes="row"):
            yield Label("Note")
            yield Input("", id="note", compact=True, placeholder="what you checked (kept in the report and events)")

    def on_mount(self) -> None:
        self.query_one("#note", Input).focus()

    def operation(self):
        jid, note = self.job_id, self.query_one("#note", Input).value.strip()
        return lambda lab: lab.complete_job(jid, note)


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
        yield AppBar()
        with VerticalScroll() as v:
            v.border_title = self.title_text
            v.border_subtitle = "esc close"
            yield Static(self.text, id="help-text")

    def action_close(self) -> None:
        self.dismiss(None)


class RunForDialog(EngineDialog):
    """Run lab time for a duration, as `srlab run --for` does (the engine parses and bounds it)."""

    title_text = "Run lab time"
    ok_label = "Run"
    DEFAULT_CSS = """
    RunForDialog .row { height: 1; margin-top: 1; }
    RunForDialog .row > Label { width: 10; }
    RunForDialog .row > Input { width: 1fr; }
    """

    def body(self) -> ComposeResult:
        yield Static(Text("Advance lab time by a duration, doing all the work that falls due, as fast as the "
                          "machine can (srlab run --for)."), classes="line")
        with Horizontal(classes="row"):
            yield Label("Duration")
            yield Input("2h", id="duration", compact=True, placeholder="90s, 15m, 2h, 1d, 1h30m")

    def on_mount(self) -> None:
        box = self.query_one("#duration", Input)
        box.focus()
        box.select_all()

    def operation(self):
        seconds = parse_duration(self.query_one("#duration", Input).value)  # InvalidInput: shown inline
        return lambda lab: lab.run(seconds)


class FaultDialog(EngineDialog):
    """Inject a fault, as `srlab fault inject KIND [--target X] [--for D] [--amount A]` does: the
    target (the lab's names for what the kind touches; blank: everything it can touch), how long
    (blank: until cleared) and, for the kinds that take one, how much. The engine judges it."""

    ok_label = "Inject"

    def __init__(self, kind: str, state: LabState):
        super().__init__(f"Inject fault {kind}")
        self.kind = kind
        self.info = next((k for k in state.fault_kinds if k["kind"] == kind), {"kind": kind})
        self.touches = str(self.info.get("touches", ""))
        self.damage = bool(self.info.get("damage"))
        self.takes_amount = self.info.get("amount") is not None
        names = fault_targets(state, self.touches)
        if not self.info.get("needs_target"):  # blank: everything it can touch (a VM or a port needs naming)
            names = [""] + names
        # the targets the engine takes now first; the others say so (injecting one says why not)
        refused = {n for n in names if state.reason("fault_inject", inject_subject(kind, n))}
        self.ports = {n: state.ports[n] for n in names if n in state.ports}
        self.targets = [((n or "everything it can touch") + (" (not now)" if n in refused else ""), n)
                        for n in [n for n in names if n not in refused] + [n for n in names if n in refused]]

    def body(self) -> ComposeResult:
        k = self.info
        yield Static(Text.assemble((self.kind, "bold"), ": ", Text(str(k.get("about", "")))), classes="line")
        what = [f"touches a {self.touches}"]
        if k.get("code"):
            what.append(f"error {k['code']}")
        what.append("retried until it clears" if k.get("recoverable") else "never retried: Critical, then resync")
        yield Static(Text(" · ".join(what), style="dim"), classes="line")
        if self.damage:
            yield Static(Text("It really damages a file now (nothing stays to clear): what reads it next finds "
                              "the damage, and a resync repairs the item.", style="dim"), classes="line")
        with Grid():
            yield Label("Target")
            yield Select(self.targets, id="target", allow_blank=False, compact=True)
            if not self.damage:
                yield Label("For (lab time)")
                yield Input("", id="duration", compact=True, placeholder="until cleared, or 90s, 15m, 3h")
            if self.takes_amount:
                yield Label("Amount (0-1)")
                yield Input("", id="amount", compact=True, placeholder="the kind's default; a share, like 0.5")
        if self.ports:
            yield Static("", id="port-note", classes="line")

    def on_mount(self) -> None:
        self.query_one("#target", Select).focus()
        self.show_port()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "target":
            self.show_port()

    def show_port(self) -> None:
        """A port-blocked fault: what goes through the port chosen (Lab.ports)."""
        if not self.ports:
            return
        target = self.query_one("#target", Select).value
        about = self.ports.get(target) if isinstance(target, str) else None
        self.query_one("#port-note", Static).update(
            Text.assemble(("through it: ", "bold"), Text(about or "-"), style="dim" if not about else ""))

    def operation(self):
        target = self.query_one("#target", Select).value
        target = None if target in (Select.NULL, Select.BLANK, "") else str(target)
        duration = None
        if not self.damage:
            text = self.query_one("#duration", Input).value.strip()
            duration = parse_duration(text) if text else None  # InvalidInput: shown inline
        amount = None
        if self.takes_amount:
            text = self.query_one("#amount", Input).value.strip()
            amount = number_text(text, "the amount", "a share between 0 and 1") if text else None
        kind = self.kind
        return lambda lab: lab.fault_inject(kind, target, duration, amount)

    def _done(self, result: Any) -> None:
        self.pending = False
        r = result if isinstance(result, dict) else {}
        where = r.get("target") or "everything it can touch"
        if r.get("damaged"):
            said = f"{self.kind} damaged {r['damaged']}"
        else:
            until = r.get("until")
            said = f"{self.kind} on {where}" + (f" until {fmt_time(until)}" if until else " until cleared")
        self.app.notify(said, title="fault injected", severity="warning", markup=False)
        self.dismiss(result if result is not None else True)


class WorkloadDialog(EngineDialog):
    """A VM's guest write rate (its churn) from now on, as `srlab vm workload VM --rate` sets it."""

    ok_label = "Set"
    DEFAULT_CSS = """
    WorkloadDialog .row { height: 1; margin-top: 1; }
    WorkloadDialog .row > Label { width: 16; }
    WorkloadDialog .row > Input { width: 1fr; }
    """

    def __init__(self, vm: str, state: LabState):
        super().__init__(f"Workload of {vm}")
        self.vm = vm
        self.rate = state.workloads.get(vm)

    def body(self) -> ComposeResult:
        now = f"{self.rate:g} KiB/s" if self.rate is not None else "its site file's rate"
        yield Static(Text.assemble("The guest of ", (self.vm, "bold"), f" writes {now} of lab time while it runs. "
                                   "A higher rate fills the change log faster: during an outage, the 50% rule "
                                   "(resynchronization required) comes sooner."), classes="line")
        with Horizontal(classes="row"):
            yield Label("Rate (KiB/s)")
            yield Input("" if self.rate is None else f"{self.rate:g}", id="rate", compact=True,
                        placeholder="KiB per lab second, like 2048")

    def on_mount(self) -> None:
        box = self.query_one("#rate", Input)
        box.focus()
        box.select_all()

    def operation(self):
        rate = number_text(self.query_one("#rate", Input).value, "the rate", "KiB per second")
        vm = self.vm
        return lambda lab: lab.vm_workload(vm, rate)

    def _done(self, result: Any) -> None:
        self.pending = False
        self.app.notify(f"{self.vm} writes {result.get('rate_kib_s', 0):g} KiB/s from now on"
                        if isinstance(result, dict) else f"{self.vm}: workload set", title="workload", markup=False)
        self.dismiss(result if result is not None else True)


class ExportDialog(EngineDialog):
    """Write a VM's disks at a recovery point into a folder, as `srlab export` does."""

    title_text = "Export recovery point"
    ok_label = "Export"
    DEFAULT_CSS = """
    ExportDialog .row { height: 1; margin-top: 1; }
    ExportDialog .row > Label { width: 10; }
    ExportDialog .row > Input { width: 1fr; }
    """

    def __init__(self, vm: str, point: str, state: LabState):
        super().__init__(f"Export {vm} at a recovery point")
        self.vm = vm
        self.point = point
        pts = state.points.get(vm, [])
        self.point_info = next((p for p in pts if str(p["id"]) == str(point)), None)

    def body(self) -> ComposeResult:
        p = self.point_info
        what = (f"point {p['id']} ({fmt_time(p['time'])}, {p.get('kind', '')}, last transaction "
                f"{p.get('last_transaction', '-')})" if p else f"point {self.point}")
        yield Static(Text.assemble("Write the disks of ", (self.vm, "bold"), " at ", (what, "bold"),
                                   " into a folder (fixed VHD, the source's file names) for your own tools: "
                                   "qemu-img compare, a checksum."), classes="line")
        with Horizontal(classes="row"):
            yield Label("Folder")
            yield Input(f"export-{self.vm}-{self.point}", id="out", compact=True, placeholder="a new or empty folder")

    def on_mount(self) -> None:
        self.query_one("#out", Input).focus()

    def operation(self):
        out = self.query_one("#out", Input).value.strip()
        if not out:
            raise ValueError("give the folder to write the disks into")
        vm, point = self.vm, self.point
        return lambda lab: dict(lab.export(vm, point, out), what="export", out=out)

    def _done(self, result: Any) -> None:
        self.host.proofs[self.vm] = result
        self.host.refresh_state()
        self.pending = False
        self.app.notify(f"{self.vm} at point {result.get('point')}: {len(result.get('files', []))} disk file(s) "
                        f"written to {result.get('out')}", title="export", markup=False)
        self.dismiss(result)


class CommandOutputScreen(ModalScreen):
    """What a `:` command printed, as the command line prints it, and its exit code."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close", id="output.close")]
    DEFAULT_CSS = """
    CommandOutputScreen { align: center middle; }
    CommandOutputScreen > #output-box {
        width: 100%; height: auto; max-height: 100%;
        border: round $accent; background: $surface; padding: 0 1;
    }
    CommandOutputScreen #output-scroll { height: auto; max-height: 100%; overflow-x: auto; }
    CommandOutputScreen #output-text { width: auto; }
    """

    def __init__(self, request: CommandOutput):
        super().__init__()
        self.request = request

    def compose(self) -> ComposeResult:
        r = self.request
        yield AppBar()
        with Vertical(id="output-box") as box:
            box.border_title = Text(f"srlab {r.line}")
            meaning = {0: "done", 1: "refused by the lab's rules", 2: "bad input"}.get(r.code, "error")
            box.border_subtitle = Text(f"exit {r.code}: {meaning} · esc close")
            with VerticalScroll(id="output-scroll"):
                yield Static(self.text(), id="output-text")

    def text(self) -> Text:
        r = self.request
        t = Text(r.out.rstrip("\n"))
        if r.err.strip():
            if t:
                t.append("\n")
            t.append(r.err.rstrip("\n"), style="bold red" if r.code else "")
        if not t:
            t = Text("(nothing printed)", style="dim")
        t.no_wrap = True
        return t

    def on_mount(self) -> None:
        self.query_one("#output-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)


# ---- VM details (enter on a VM) ---------------------------------------------------------------


class VmDetailScreen(Screen):
    """One VM in full: status, target, policy, disks and every recovery point with its last
    transaction; `v` verifies the point under the cursor, `e` exports it (the proof shows below).
    esc goes back."""

    BINDINGS = [
        Binding("escape", "back", "Back", id="vm.back"),
        Binding("v", "verify", "Verify point", id="vm.verify"),
        Binding("e", "export", "Export point", id="vm.export"),
    ]
    DEFAULT_CSS = """
    VmDetailScreen #vm-summary { height: auto; border: round $primary 50%; padding: 0 1; }
    VmDetailScreen #vm-summary.-compact { text-wrap: nowrap; text-overflow: ellipsis; }
    VmDetailScreen LabTable { height: 1fr; border: round $primary 50%; }
    VmDetailScreen #vm-disks { height: 4; }
    VmDetailScreen #vm-points { min-height: 5; }
    VmDetailScreen #vm-proof { height: auto; max-height: 8; border: round $primary 50%; padding: 0 1; }
    VmDetailScreen #vm-health { height: auto; max-height: 8; border: round $primary 50%; padding: 0 1; }
    """
    TALL = 36  # terminal lines from which the disks get a table of their own

    def __init__(self, vm: str):
        super().__init__()
        self.vm = vm
        self.compact = True

    def on_resize(self) -> None:
        compact = self.app.size.height < self.TALL
        if compact != self.compact:
            self.compact = compact
            self.update_state(host_of(self).state)

    def compose(self) -> ComposeResult:
        yield AppBar()
        yield Static("", id="vm-summary")
        yield Static("", id="vm-health")
        yield LabTable([Column("name", "Disk", 16, grow=1), Column("role", "Role", 5), Column("size", "Size", 10),
                        Column("used", "Allocated", 10), Column("file", "File", 0)],
                       id="vm-disks", title="Disks")
        yield LabTable([Column("id", "ID", 5), Column("time", "Time", 19), Column("kind", "Type", 16),
                        Column("size", "Size", 10), Column("tx", "Last transaction", 16, grow=1)],
                       id="vm-points", title="Recovery points")
        yield Static("", id="vm-proof")
        yield KeyBar()

    def on_mount(self) -> None:
        self.query_one("#vm-summary").border_title = self.vm
        self.query_one("#vm-proof").border_title = "Proof"
        self.query_one("#vm-health").border_title = "Health"
        self.compact = self.app.size.height < self.TALL
        self.update_state(host_of(self).state)
        self.query_one("#vm-points", LabTable).focus()

    def show(self, vm: str) -> None:
        """Show `vm` instead, as a new screen would (the app keeps one: see SrlabApp.show_dialog)."""
        self.vm = vm
        self.query_one("#vm-summary").border_title = vm
        self.compact = self.app.size.height < self.TALL
        self.update_state(host_of(self).state)
        for table in self.query(LabTable):
            table.move_cursor(row=0, animate=False)
            table.scroll_home(animate=False)
        self.set_focus(self.query_one("#vm-points", LabTable))

    def update_state(self, state: LabState) -> None:
        colors = host_of(self).status_colors
        # a short terminal: the disks are a line of the summary, and its lines end in an ellipsis
        summary = self.query_one("#vm-summary", Static)
        summary.set_class(self.compact, "-compact")
        v = state.vm(self.vm) or {}
        # the health's reason, what to do and the retries, wrapped: read in full at 80 columns too
        # (the summary leaves out what says nothing new to make room for it)
        health = health_text(v, colors, state.now)
        summary.update(vm_detail_text(state, self.vm, colors, wrap=not self.compact, tables=True, disks=self.compact,
                                      health=False, brief=bool(health)))
        box = self.query_one("#vm-health", Static)
        box.display = bool(health)
        if health:
            box.update(health)
        self.query_one("#vm-disks", LabTable).display = not self.compact
        self.query_one("#vm-disks", LabTable).styles.height = len(v.get("disks", [])) + 3
        self.query_one("#vm-disks", LabTable).set_rows(
            (f"disk:{i}", (d["name"], d.get("role", ""), fmt_bytes(d.get("logical_bytes")),
                           fmt_bytes(d.get("allocated_bytes")), str(d.get("path", "")).rsplit("/", 1)[-1]))
            for i, d in enumerate(v.get("disks", []))
        )
        pts = sorted(state.points.get(self.vm, []), key=lambda p: p["time"], reverse=True)
        points = self.query_one("#vm-points", LabTable)
        title = f"Recovery points ({len(pts)} retained)" if health else "Recovery points"
        if points.base_title != title:  # (the summary leaves out its Points line when health shows)
            points.base_title = title
            points.set_filter(points.filter_text)
        points.set_rows(
            (f"point:{p['id']}", (str(p["id"]), fmt_time(p["time"]), str(p.get("kind", "")),
                                  fmt_bytes(p.get("size")),
                                  "-" if p.get("last_transaction") is None else str(p["last_transaction"])))
            for p in pts
        )
        proof = host_of(self).proofs.get(self.vm)
        box = self.query_one("#vm-proof", Static)
        box.display = bool(proof)  # (the key bar says v verifies, e exports)
        if proof:
            box.update(proof_text(proof, colors))

    def point(self) -> str | None:
        key = self.query_one("#vm-points", LabTable).cursor_key
        return key.removeprefix("point:") if key and key.startswith("point:") else None

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("verify", "export"):
            return True if self.point() else None
        return True

    def action_verify(self) -> None:
        point = self.point()
        if point:
            host_of(self).prove(self.vm, "verify", point)

    def action_export(self) -> None:
        point = self.point()
        if point:
            self.app.push_screen(ExportDialog(self.vm, point, host_of(self).state))

    def action_back(self) -> None:
        self.app.pop_screen()


# ---- what the app opens when a panel asks (see tui.host) ---------------------------------------


def dialog_for(request: DialogRequest, state: LabState) -> Screen:
    """The screen that answers a panel's request, built on the current lab state."""
    if isinstance(request, Confirm):
        return ConfirmDialog(request.title, request.lines, request.op, ok_label=request.ok_label,
                             danger=request.danger)
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
    if isinstance(request, FailoverForm):
        return FailoverDialog(request.vm, request.kind, state)
    if isinstance(request, ChangePointForm):
        return ChangePointDialog(request.vm, state)
    if isinstance(request, CompleteForm):
        return CompleteDialog(request.job_id, state)
    if isinstance(request, VmDetails):
        return VmDetailScreen(request.vm)
    if isinstance(request, ExportForm):
        return ExportDialog(request.vm, request.point, state)
    if isinstance(request, RunForForm):
        return RunForDialog()
    if isinstance(request, FaultForm):
        return FaultDialog(request.kind, state)
    if isinstance(request, WorkloadForm):
        return WorkloadDialog(request.vm, state)
    if isinstance(request, CommandOutput):
        return CommandOutputScreen(request)
    if isinstance(request, CreatePolicyForm):
        return CreatePolicyDialog()
    if isinstance(request, AssociatePolicyForm):
        return AssociatePolicyDialog(request.server, state)
    if isinstance(request, DeployProcessServerForm):
        return DeployProcessServerDialog(request.region, state)
    if isinstance(request, ReprotectForm):
        return PhysicalReprotectDialog(request.vm, state)
    raise TypeError(f"no dialog for {request!r}")


__all__ = [
    "dialog_for",
    "ConfirmDialog", "CloudProtectionDialog", "MapNetworkDialog", "LinkDialog", "ProtectDialog",
    "TargetDialog", "FailoverDialog", "ChangePointDialog", "CompleteDialog", "HelpScreen", "VmDetailScreen",
    "RunForDialog", "ExportDialog", "CommandOutputScreen", "FaultDialog", "WorkloadDialog",
    "CreatePolicyDialog", "AssociatePolicyDialog", "DeployProcessServerDialog", "PhysicalReprotectDialog",
]
