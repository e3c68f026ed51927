"""Protected items (key 2): clouds, then their VMs with the seed's columns, plus RPO and a detail pane."""

from __future__ import annotations

import re

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from engine import Failover, Protection

from ..host import (ChangePointForm, Confirm, ExportForm, FailoverForm, ProtectForm, ReprotectForm, TargetForm,
                    VmDetails, WorkloadForm)
from ..render import (health_style, physical_policy_text, policy_text, proof_text, recovery_side, region_text,
                      vm_detail_text)
from ..state import (LabState, at_recovery_side, azure_vms, fmt_duration, fmt_frequency, lab_policies,
                     physical_server, physical_site_named, region_info)
from ..widgets import Column, LabTable, line_count, show_text
from .base import Panel, PanelAction

# A wider terminal's spare columns go to the name, the active location, the status and the
# failover column (the cloud's policy shows there), by these weights.
WIDE = [
    Column("mark", " ", 1),
    Column("name", "Name", 18, grow=2),
    Column("location", "Active location", 18, grow=2),
    Column("health", "Health", 8),
    Column("status", "Status", 28, grow=3),
    Column("size", "Size", 4),
    Column("failover", "Failover", 15, grow=2),
    Column("rpo", "RPO", 8),
]
COMPACT = [
    Column("mark", " ", 1),
    Column("name", "Name", 12, grow=1),
    Column("health", "Health", 8),
    Column("status", "Status", 15, grow=1),
    Column("size", "Size", 4),
    Column("failover", "Failover", 15, grow=1),
    Column("rpo", "RPO", 7),
]
WIDE_MIN = 110  # terminal columns from which the wide layout (with active location) is used

# The failover column's short words (the detail pane shows the engine's full state name).
FAILOVER_SHORT = {
    Failover.READY: Failover.READY.value,
    Failover.TEST: "Testing",
    Failover.FAILOVER: "Failing over",
    Failover.COMMIT_PENDING: Failover.COMMIT_PENDING.value,
    Failover.COMMITTED: "Committed",
    Failover.FAILBACK: "Failing back",
    Failover.REVERSE_PENDING: "Reverse pending",
}

_PCT = re.compile(r"\s*\d+(\.\d+)?%$")


# The status column's short words when the terminal is narrow (the detail pane shows the full ones).
PROTECTION_SHORT = {
    Protection.ENABLING: "enabling",
    Protection.INITIAL_PENDING: "initial pending",
    Protection.INITIAL: "initial",
    Protection.FINALIZING: "finalizing",
    Protection.REVERSE: "reverse repl.",
    Protection.RESYNC: "resync",
    Protection.DISABLING: "disabling",
}


def status_words(vm: dict, compact: bool) -> str:
    """The engine's protection state; when narrow, in a word or two, with the initial
    replication's percentage first."""
    text = str(vm.get("protection", ""))
    progress = vm.get("progress")
    if compact:
        bare = _PCT.sub("", text)
        try:
            text = PROTECTION_SHORT.get(Protection(bare), bare)
        except ValueError:  # a state this app does not know yet: the engine's words
            text = bare
        if progress is not None:
            text = f"{progress:>3}% {text}"
    return text


def vm_cells(says: tuple, colors: dict, before: tuple | None) -> list[Text]:
    """A VM row's eight cells (the wide layout's) from what each says (mark, name, location,
    health, status, size, failover, RPO). A cell that says what it said `before` (says, cells)
    is the very same Text: at 60x every VM changes every refresh, mostly its RPO only."""
    out = []
    for i, text in enumerate(says):
        if before is not None and before[0][i] == text:
            out.append(before[1][i])
        elif i == 0:
            out.append(Text("●", style=f"bold {colors['accent']}") if text else Text(" "))
        elif i == 3:
            out.append(Text(text, style=health_style(text, colors)))
        elif i in (1, 2, 4):
            out.append(Text(text, no_wrap=True, overflow="ellipsis"))
        else:
            out.append(Text(text))
    return out


def failover_cell(state: str | None) -> str:
    """The failover column: the state in a word or two."""
    if not state:
        return ""
    try:
        return FAILOVER_SHORT.get(Failover(state), state)
    except ValueError:  # a state this app does not know yet: the engine's words
        return state


class ProtectedItems(Panel):
    PANEL_ID = "protected"
    TITLE = "Protected items"
    SHORT_TITLE = "Protected"
    KEY = "2"
    ACTIONS = [
        PanelAction("mark", "space", "Mark", "Mark / unmark VM",
                    "mark several VMs for a bulk action (enable protection)", mutates=False, key_display="␣"),
        PanelAction("protect", "e", "Protect", "Enable protection",
                    "enable protection on the marked VMs, or on the VM under the cursor"),
        PanelAction("set_target", "s", "Target", "Set target size / name",
                    "change the target size, name or NIC used at failover"),
        PanelAction("unprotect", "ctrl+d", "Disable", "Disable protection",
                    "stop replicating the VM; its replica and recovery points are removed", key_display="^d"),
        PanelAction("vm_start", "o", "Start", "Start VM", "power the VM on: its guest writes as lab time passes"),
        PanelAction("vm_shutdown", "d", "Shutdown", "Shut down VM", "shut the guest OS down cleanly"),
        PanelAction("vm_stop", "x", "Off", "Turn off VM", "turn the VM off at once (like pulling the plug)"),
        PanelAction("details", "enter", "Details", "VM details",
                    "the VM's disks, policy, recovery points and errors", mutates=False, key_display="⏎",
                    priority=True),
        PanelAction("test_failover", "f", "Test", "Test failover",
                    "a copy of the VM at the recovery side from a recovery point, in an isolated network; "
                    "production goes on; the job waits for Complete test (Jobs)"),
        PanelAction("planned_failover", "F,shift+f", "Planned", "Planned failover / failback",
                    "shut the VM down, synchronize the latest data, start it at the recovery side (no data "
                    "loss); on a VM running at the recovery side: fail it back", key_display="F"),
        PanelAction("unplanned_failover", "U,shift+u", "Unplanned", "Unplanned failover",
                    "start the VM at the recovery side from a recovery point: the source may be gone, "
                    "writes after the point are lost", key_display="U"),
        PanelAction("change_point", "P,shift+p", "Point", "Change recovery point",
                    "while commit is pending: rebuild the failed-over VM from another recovery point",
                    key_display="P"),
        PanelAction("commit", "C,shift+c", "Commit", "Commit failover",
                    "end the failover: its recovery point can no longer be changed", key_display="C"),
        PanelAction("reprotect", "R,shift+r", "Reprotect", "Reverse replicate (reprotect)",
                    "after a committed failover or failback: replicate the other way again", key_display="R"),
        PanelAction("resync", "r", "Resync", "Resynchronize",
                    "compare the VM's disks with its replica by checksums, send only the chunks that differ, make "
                    "a new recovery point, then resume delta replication (a Resynchronize job; srlab resync)"),
        # v, X and w are not in the key bar (two lines at 80 columns are full): ? and ctrl+p list them,
        # and VM details (enter) has them in its key bar
        PanelAction("verify", "v", "Verify", "Verify latest recovery point",
                    "build the VM's disks at its latest recovery point from the replica and compare them with "
                    "the source's fingerprints (srlab verify); the result shows in the details", mutates=False,
                    show=False),
        PanelAction("export", "X,shift+x", "Export", "Export latest recovery point",
                    "write the VM's disks at its latest recovery point into a folder (srlab export)",
                    mutates=False, key_display="X", show=False),
        PanelAction("vm_workload", "w", "Workload", "Set workload rate",
                    "the VM's guest write rate (KiB per lab second) from now on: its churn (srlab vm workload)",
                    show=False),
    ]

    def __init__(self, **kw):
        super().__init__(**kw)
        self.marked: set[str] = set()
        self.compact = True
        # VM -> (its status dict, marked, layout, its row, what its cells say, its eight cells): an
        # unchanged VM keeps its row
        self._rows: dict[str, tuple] = {}

    def compose(self) -> ComposeResult:
        yield LabTable(COMPACT, id="items", title="Clouds and their VMs")
        yield Static("", id="item-detail")

    def on_mount(self) -> None:
        self.query_one("#item-detail").border_title = "Details"

    def on_resize(self) -> None:
        self._layout(self.app.size.width)
        self.fit()

    def fit(self) -> None:
        """The table as tall as its rows (up to what leaves the details their lines), the
        details the rest: a short table does not leave empty rows above a cut-off pane."""
        pane = self.query_one("#item-detail", Static)
        self.fit_table(self.table, pane, line_count(pane) + 2)

    def _layout(self, width: int) -> None:
        compact = width < WIDE_MIN
        table = self.query_one("#items", LabTable)
        if compact != self.compact or not table.columns:
            self.compact = compact
            table.set_columns(COMPACT if compact else WIDE)
            self.update_state(self.state)

    # ---- rows --------------------------------------------------------------------------------

    @property
    def table(self) -> LabTable:
        return self.query_one("#items", LabTable)

    def cursor_vm(self) -> str | None:
        key = self.table.cursor_key
        if key and key.startswith("vm:"):
            return key[3:]
        return None

    def targets(self) -> list[str]:
        """VMs a bulk action applies to: the marked ones, else the one under the cursor."""
        vms = [v["name"] for v in self.state.status.get("vms", [])]
        marked = [n for n in vms if n in self.marked]
        if marked:
            return marked
        vm = self.cursor_vm()
        return [vm] if vm else []

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        table = self.table
        vms = state.status.get("vms", [])
        clouds: list[str] = []
        for c in (state.resources or {}).get("clouds", []):
            clouds.append(c["name"])
        for v in vms:
            place = v.get("cloud") or v.get("location") or v.get("site") or ""
            if place not in clouds:
                clouds.append(place)
        cloud_policy = {c["name"]: c.get("protection") for c in (state.resources or {}).get("clouds", [])}
        # Azure -> Azure: a VM's group is its region, whose policy says where its VMs replicate to
        regions = {v.get("location") for v in azure_vms(state)}
        by_place: dict[str, list[dict]] = {c: [] for c in clouds}
        for v in vms:  # (one pass: a 1,000-VM lab has 1,000 VMs in one cloud)
            by_place[v.get("cloud") or v.get("location") or v.get("site") or ""].append(v)
        rows = []
        sticky = set()
        cache, self._rows = self._rows, {}
        how = (self.compact, tuple(colors.items()))
        for cloud in clouds:
            members = by_place[cloud]
            key = f"cloud:{cloud}"
            sticky.add(key)
            n_prot = sum(1 for v in members
                         if v.get("protection", Protection.NOT_PROTECTED) != Protection.NOT_PROTECTED)
            head = Text(f"▾ {cloud}", style="bold", no_wrap=True, overflow="ellipsis")
            # the item count under Status, the cloud's policy in short under Failover
            count = Text(f"{n_prot}/{len(members)} protected" if self.compact else
                         f"protection on {n_prot}/{len(members)}", style="dim")
            pol = cloud_policy.get(cloud)
            where = "" if cloud not in cloud_policy else "not configured" if not pol else (
                f"→ {'Azure' if pol.get('target_kind') == 'azure' else pol.get('target', '')}"
                f" · {fmt_frequency(pol.get('frequency'))}")
            if cloud not in cloud_policy and cloud in regions:
                region = region_info(state, cloud) or {}
                rpol = region.get("protection")
                where = f"→ {rpol.get('target', '')}" if rpol else f"pair {region.get('paired_region') or '-'}"
            site = physical_site_named(state, cloud) if cloud not in cloud_policy else None
            if site is not None:  # a physical site: its configuration server's policy
                where = (f"→ Azure · {site['policy']}" if site.get("policy") else
                         f"{site['configuration_server']}: no policy")
            cells = ["", head, "", "", count, "", Text(where, style="dim"), ""]
            if self.compact:
                del cells[2]
            rows.append((key, tuple(cells)))
            for v in members:
                name = v["name"]
                marked = name in self.marked
                was = cache.get(name)
                if was is not None and was[1] == marked and was[2] == how and was[0] is v:
                    self._rows[name] = was  # the VM did not change: the same row (the table skips it)
                    rows.append((f"vm:{name}", was[3]))
                    continue
                rpo = v.get("rpo_seconds")
                says = (marked, f" {name}", str(v.get("active_location") or ""), str(v.get("health") or ""),
                        status_words(v, self.compact), str(v.get("target_size") or ""),
                        failover_cell(v.get("failover_state")), fmt_duration(rpo) if rpo is not None else "")
                before = (was[4], was[5]) if was is not None and was[2] == how else None
                if before is not None and before[0] == says:
                    row, cells = was[3], was[5]  # it says the same: the same row
                else:
                    cells = vm_cells(says, colors, before)
                    row = tuple(c for i, c in enumerate(cells) if not (self.compact and i == 2))
                self._rows[name] = (v, marked, how, row, says, cells)
                rows.append((f"vm:{name}", row))
        table.sticky = sticky
        title = "Regions and their VMs" if regions and not cloud_policy else "Clouds and their VMs"
        if table.base_title != title:
            table.base_title = title
            table.set_filter(table.filter_text)
        table.set_rows(rows)
        self.show_detail()

    # ---- detail pane -------------------------------------------------------------------------

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def show_detail(self) -> None:
        pane = self.query_one("#item-detail", Static)
        key = self.table.cursor_key
        text = Text()
        if key is None:
            text.append("no VMs", style="dim")
            pane.border_title = "Details"
        elif key.startswith("cloud:") and any(v.get("location") == key[6:] for v in azure_vms(self.state)):
            pane.border_title = f"Region {key[6:]}"
            text = region_text(self.state, key[6:])
        elif key.startswith("cloud:") and physical_site_named(self.state, key[6:]):
            site = physical_site_named(self.state, key[6:])
            pane.border_title = f"Physical site {site['site']}"
            text = self.site_text(site)
        elif key.startswith("cloud:"):
            cloud = key[6:]
            pane.border_title = f"Cloud {cloud}"
            res = self.state.resources or {}
            c = next((c for c in res.get("clouds", []) if c["name"] == cloud), None)
            text.append("Protection  ", style="bold")
            text.append_text(policy_text(c.get("protection") if c else None))
            if c and c.get("server"):
                text.append("\nServer      ", style="bold")
                text.append(Text(str(c["server"])))
            maps = res.get("mappings", [])
            if maps:
                text.append("\nNetworks    ", style="bold")
                text.append(", ".join(f"{m['source']} → {m['target']}" for m in maps))
        else:
            name = key[3:]
            pane.border_title = f"{name}"
            text = vm_detail_text(self.state, name, self.host.status_colors)
            proof = self.host.proofs.get(name)
            if proof:
                text.append("\n")
                text.append_text(proof_text(proof, self.host.status_colors))
        show_text(pane, text)
        self.fit()

    def site_text(self, site: dict) -> Text:
        """A physical site's row: its configuration server, its policy, its process servers."""
        text = Text()
        cs = site["configuration_server"]
        text.append("Config srv  ", style="bold")
        text.append(Text(f"{cs} · {'registered' if site.get('registered') else 'not registered'}"
                         + (" · inbound 443 blocked" if site.get("management_blocked") else "")))
        text.append("\nPolicy      ", style="bold")
        pol = next((p for p in lab_policies(self.state, "replication") if p["name"] == site.get("policy")), None)
        if pol is None:
            text.append("none associated (Resources, a)", style="dim")
        else:
            text.append(Text(f"{pol['name']} · → Azure · "))
            text.append_text(physical_policy_text(pol))
            fb = next((p for p in lab_policies(self.state, "failback") if p.get("server") == cs), None)
            if fb is not None:
                text.append(Text(f" · failback policy {fb['name']}"))
        text.append("\nProcess     ", style="bold")
        text.append(Text(" · ".join(f"{p['name']} → {', '.join(p.get('servers') or []) or 'none'}"
                                    for p in site.get("process_servers", []))))
        return text

    # ---- actions -----------------------------------------------------------------------------

    def reason(self, action_id: str) -> str | None:
        if action_id == "details":
            return None if self.cursor_vm() else "move the cursor to a VM"
        if action_id == "mark":
            return None if self.cursor_vm() else "move the cursor to a VM to mark it"
        if action_id in ("verify", "export"):
            vm = self.cursor_vm()
            if not vm:
                return "move the cursor to a VM"
            return None if self.state.points.get(vm) else f"{vm} has no recovery point yet"
        targets = self.targets() if action_id == "protect" else [self.cursor_vm()] if self.cursor_vm() else []
        if not targets:
            return "move the cursor to a VM (or mark VMs with space)"
        reasons = [self.state.reason(action_id, t) for t in targets]
        if all(reasons):
            return reasons[0] if len(targets) == 1 else "; ".join(
                f"{t}: {r}" for t, r in zip(targets, reasons))
        return None

    def action_mark(self) -> None:
        vm = self.cursor_vm()
        if not vm:
            return
        if vm in self.marked:
            self.marked.discard(vm)
        else:
            self.marked.add(vm)
        self.update_state(self.state)  # the cursor stays on the VM (down moves on)
        self.host.refresh_bindings()

    def action_protect(self) -> None:
        targets = self.targets()
        ok = [t for t in targets if not self.state.reason("protect", t)]
        skipped = [(t, self.state.reason("protect", t)) for t in targets if self.state.reason("protect", t)]

        def done(result) -> None:
            if result is not None:
                self.marked.clear()
                self.update_state(self.state)

        self.show_dialog(ProtectForm(ok, skipped), done)

    def action_set_target(self) -> None:
        vm = self.cursor_vm()
        if vm:
            self.show_dialog(TargetForm(vm))

    def _power(self, action: str) -> None:
        vm = self.cursor_vm()
        if not vm:
            return
        verb = {"vm_start": "start", "vm_stop": "stop", "vm_shutdown": "shutdown"}[action]
        what = {
            "start": f"Start {vm}. Its guest workload writes to its disks as lab time passes.",
            "shutdown": f"Shut down the guest OS of {vm} cleanly.",
            "stop": f"Turn {vm} off at once, like pulling the plug: writes in flight are lost.",
        }[verb]
        title = {"start": "Start VM", "shutdown": "Shut down VM", "stop": "Turn off VM"}[verb]
        self.show_dialog(Confirm(title, [Text(what)], lambda lab: lab.vm_power(vm, verb), ok_label=title,
                                 danger=verb == "stop"))

    def action_unprotect(self) -> None:
        vm = self.cursor_vm()
        if not vm:
            return
        lines = [
            Text.assemble("Disable protection of ", (vm, "bold"), "."),
            Text("Replication stops; the replica in the target storage and every recovery point of "
                 "this VM are removed. The VM itself keeps running as it is."),
        ]
        self.show_dialog(Confirm("Disable protection", lines, lambda lab: lab.unprotect([vm]), ok_label="Disable",
                                 danger=True))

    def action_vm_start(self) -> None:
        self._power("vm_start")

    def action_vm_stop(self) -> None:
        self._power("vm_stop")

    def action_vm_shutdown(self) -> None:
        self._power("vm_shutdown")

    def action_details(self) -> None:
        vm = self.cursor_vm()
        if vm:
            self.show_dialog(VmDetails(vm))

    # ---- failover ----------------------------------------------------------------------------

    def _failover(self, kind: str) -> None:
        vm = self.cursor_vm()
        if vm:
            self.show_dialog(FailoverForm(vm, kind))

    def action_test_failover(self) -> None:
        self._failover("test")

    def action_planned_failover(self) -> None:
        self._failover("planned")

    def action_unplanned_failover(self) -> None:
        self._failover("unplanned")

    def action_change_point(self) -> None:
        vm = self.cursor_vm()
        if vm:
            self.show_dialog(ChangePointForm(vm))

    def action_commit(self) -> None:
        vm = self.cursor_vm()
        v = self.state.vm(vm) if vm else None
        if not vm or v is None:
            return
        if v.get("azure"):
            lines = [
                Text.assemble("Commit the failover of ", (vm, "bold"), ": it runs in ",
                              (str(v.get("active_location", "")), "bold"), "."),
                Text.assemble("After the commit its recovery point can no longer be changed. Then reprotect it "
                              "(R) to replicate it to ", (str(v["azure"].get("to") or "the other region"), "bold"),
                              ": it can fail over back the same way."),
            ]
        elif physical_server(self.state, vm) is not None and v.get("active_location") in {
                w["name"] for w in (self.state.resources or {}).get("vmware_sites", [])}:
            lines = [  # seed 003: the failback to VMware ends here
                Text.assemble("Commit the failback of ", (vm, "bold"), ": it runs as a VMware VM on ",
                              (str(v.get("active_location", "")), "bold"), "."),
                Text("The VM in Azure and the physical server's disks are deleted and protection ends: protect it "
                     "again (e) to replicate the VMware VM to Azure."),
            ]
        elif at_recovery_side(v):
            lines = [
                Text.assemble("Commit the failover of ", (vm, "bold"), ": it runs at ",
                              (str(v.get("active_location", "")), "bold"), "."),
                Text("After the commit its recovery point can no longer be changed, and there is no cancel "
                     "(to start over: disable protection and enable it again)."),
            ]
        else:
            lines = [
                Text.assemble("Commit the failback of ", (vm, "bold"), ": it runs at ",
                              (str(v.get("location", "")), "bold"), " again."),
                Text("Then reverse replicate it (Reprotect) so that it is protected again."),
            ]
        self.show_dialog(Confirm("Commit", lines, lambda lab: lab.commit([vm]), ok_label="Commit"))

    def action_reprotect(self) -> None:
        vm = self.cursor_vm()
        v = self.state.vm(vm) if vm else None
        if not vm or v is None:
            return
        if v.get("azure"):
            self.show_dialog(Confirm("Reverse replicate", self.azure_reprotect_lines(vm, v),
                                     lambda lab: lab.reprotect([vm]), ok_label="Reprotect"))
            return
        if physical_server(self.state, vm) is not None and at_recovery_side(v):  # to VMware, through Azure's PS
            self.show_dialog(ReprotectForm(vm))
            return
        here = str(v.get("active_location") or v.get("location") or "")
        there = str(v.get("location", "")) if at_recovery_side(v) else recovery_side(v)
        lines = [
            Text.assemble("Reverse replicate ", (vm, "bold"), ": replication ", (here, "bold"), " → ",
                          (there, "bold"), "."),
            Text("Replication starts over with an initial replication; the item is protected again when it "
                 "ends." if not at_recovery_side(v) else
                 "The VM keeps running where it is and replicates back, ready to fail back with a planned "
                 "failover."),
        ]
        self.show_dialog(Confirm("Reverse replicate", lines, lambda lab: lab.reprotect([vm]),
                                 ok_label="Reprotect"))

    @staticmethod
    def azure_reprotect_lines(vm: str, v: dict) -> list[Text]:
        """Reprotect an Azure VM after its committed failover: it replicates back the other way."""
        az = v["azure"]
        here = str(v.get("active_location") or az.get("from") or "")
        there = str(az.get("to") or "")
        if here == there:  # (status names the sides as they replicate now; after a failover "to" is home)
            there = str(v.get("location") or "")
        return [
            Text.assemble("Reverse replicate ", (vm, "bold"), ": replication ", (here, "bold"), " → ",
                          (there, "bold"), ", through the cache storage account in ", (here, "bold"), "."),
            Text.assemble("A Reprotect job creates what is missing and takes the disks in ", (there, "bold"),
                          " as the replica; a Resynchronize job then sends only the blocks that differ. Then ",
                          (vm, "bold"), " can fail over back (test or unplanned)."),
        ]

    # ---- resync, workload ---------------------------------------------------------------------

    def action_resync(self) -> None:
        vm = self.cursor_vm()
        v = self.state.vm(vm) if vm else None
        if not vm or v is None:
            return
        lines = [
            Text.assemble("Resynchronize ", (vm, "bold"), ": its disks and the replica at ",
                          (recovery_side(v), "bold"), " are compared chunk by chunk (checksums on both sides); "
                          "only the chunks that differ are sent."),
            Text("Delta replication stops until a new consistent recovery point is made, then resumes. The "
                 "Resynchronize job (Jobs, 4) shows its steps and, at the end, what was compared and sent."),
        ]
        if v.get("health_reason"):
            lines.append(Text.assemble(("Now: ", "bold"), Text(str(v["health_reason"]))))
        self.show_dialog(Confirm("Resynchronize", lines, lambda lab: lab.resync([vm]), ok_label="Resync"))

    def action_vm_workload(self) -> None:
        vm = self.cursor_vm()
        if vm:
            self.show_dialog(WorkloadForm(vm))

    # ---- the proof: verify, export ---------------------------------------------------------

    def action_verify(self) -> None:
        vm = self.cursor_vm()
        if vm:
            self.host.prove(vm, "verify", "latest")

    def action_export(self) -> None:
        vm = self.cursor_vm()
        pts = self.state.points.get(vm, []) if vm else []
        if vm and pts:
            latest = max(pts, key=lambda p: p["time"])
            self.show_dialog(ExportForm(vm, str(latest["id"])))
