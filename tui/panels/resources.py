"""Resources (key 3): servers and agents, clouds and their protection, networks and mappings,
storage accounts, links; and the setup actions of seed 004's STEP 2."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..host import CloudProtectionForm, Confirm, LinkForm, MapNetworkForm
from ..render import policy_text, region_policy_text, region_text
from ..state import (AZURE_KINDS, LabState, azure_vms, fmt_day_time, fmt_mbps, is_azure_lab, link_subject,
                     rows_by_kind, used_by)
from ..widgets import Column, LabTable, line_count, show_text
from .base import Panel, PanelAction

COLUMNS = [
    Column("kind", "Kind", 8),
    Column("name", "Name", 24),
    Column("state", "State", 21),
    Column("details", "Details", 0),
]
# Azure -> Azure: the resources' names are shorter than a VMM server's objects; the details get the room
AZURE_COLUMNS = [
    Column("kind", "Kind", 7),
    Column("name", "Name", 19),
    Column("state", "State", 17),
    Column("details", "Details", 0),
]



class Resources(Panel):
    PANEL_ID = "resources"
    TITLE = "Resources"
    KEY = "3"
    ACTIONS = [
        PanelAction("register_server", "r", "Register", "Register server",
                    "register the VMM server with the vault (installs the provider; makes the data-encryption key)",
                    kind="server"),
        PanelAction("install_agent", "i", "Agent", "Install agent",
                    "install the Recovery Services agent on a Hyper-V host", kind="host"),
        PanelAction("configure_cloud", "c", "Configure", "Configure cloud protection",
                    "the cloud's replication policy: target, storage account, frequency, retention...",
                    kind="cloud"),
        PanelAction("map_network", "m", "Map", "Map network", "map a VM network to a target network",
                    kind="network"),
        PanelAction("unmap_network", "u", "Unmap", "Unmap network", "remove a VM network's mapping",
                    kind="network"),
        PanelAction("set_link", "l", "Link", "Set link", "change a link's bandwidth or state (up, down, lossy)",
                    kind="link"),
    ]

    def compose(self) -> ComposeResult:
        yield LabTable(COLUMNS, id="resources-table", title="Vault resources")
        yield Static("", id="res-detail")

    def on_mount(self) -> None:
        self.query_one("#res-detail").border_title = "Selected"

    @property
    def table(self) -> LabTable:
        return self.query_one("#resources-table", LabTable)

    # ---- rows --------------------------------------------------------------------------------

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        res = state.resources or {}
        rows = []
        ok, bad, dim = colors["ok"], colors["warning"], "dim"

        def st(text: str, good: bool | None) -> Text:
            return Text(text, style=ok if good else (bad if good is False else dim), no_wrap=True,
                        overflow="ellipsis")

        azure = is_azure_lab(state)
        table = self.table
        table.sticky = set()
        if azure:  # Azure -> Azure: each region, its pair and policy, then its resources
            table.set_columns(AZURE_COLUMNS)
            rows += self.region_rows(state)
            table.sticky = {k for k, _ in rows if k.startswith("region:")}
            title = "Regions and their resources" + (f" · vault in {res['vault_region']}"
                                                     if res.get("vault_region") else "")
            if table.base_title != title:
                table.base_title = title
                table.set_filter(table.filter_text)

        for s in res.get("servers", []):
            rows.append((f"server:{s['name']}", (
                "server", s["name"],
                st("registered" if s.get("registered") else "not registered", bool(s.get("registered"))),
                Text(f"{s.get('kind', '')}" + (f" · key {s['key_file']}" if s.get("key_file") else "")),
            )))
        for h in res.get("hosts", []):
            rows.append((f"host:{h['name']}", (
                "host", h["name"],
                st("agent installed" if h.get("agent_installed") else "no agent", bool(h.get("agent_installed"))),
                Text(f"Hyper-V host on {h.get('server', '')}"),
            )))
        for c in res.get("clouds", []):
            p = c.get("protection")
            rows.append((f"cloud:{c['name']}", (
                "cloud", c["name"],
                st("protection configured" if p else "not configured", bool(p)),
                policy_text(p) if p else Text(f"VMM cloud on {c.get('server', '')}", style="dim"),
            )))
        maps = {m["source"]: m["target"] for m in res.get("mappings", [])}
        for n in [] if azure else res.get("networks", []):
            side = n.get("side", "vmm")
            if side == "azure":
                key = f"azurenet:{n['name']}"
                used = [s for s, t in maps.items() if t == n["name"]]
                rows.append((key, (
                    "network", n["name"],
                    st("mapping target" if used else "not a target yet", True if used else None),
                    Text(f"Azure virtual network · {n.get('place', '')}"
                         + (f" · mapped from {', '.join(used)}" if used else "")),
                )))
            else:
                target = maps.get(n["name"])
                rows.append((f"network:{n['name']}", (
                    "network", n["name"],
                    st(f"→ {target}" if target else "not mapped", bool(target)),
                    Text(f"VM network · {n.get('place', '')}"),
                )))
        for a in [] if azure else res.get("storage_accounts", []):
            rows.append((f"storage:{a['name']}", (
                "storage", a["name"],
                Text(str(a.get("redundancy", ""))),
                Text(f"storage account · {a.get('region', '')}"),
            )))
        for link in res.get("links", []):
            state_txt = str(link.get("state", ""))
            rows.append((f"link:{link_subject(link)}", (
                "link", Text(f"{link['source']} → {link['target']}", no_wrap=True, overflow="ellipsis"),
                st(f"{fmt_mbps(link.get('mbps'))} {state_txt}", state_txt == "up"),
                Text("replication link"),
            )))
        if not rows:
            rows.append(("none", ("", Text("no resources", style="dim"), "", "")))
        self.table.set_rows(rows)
        self.show_detail()

    def region_rows(self, state: LabState) -> list[tuple[str, tuple]]:
        """Azure -> Azure: a row per region (its pair, its policy), then a row per resource in it
        (the site file's, then those Site Recovery created: "created for WEB01"), with the VMs
        that use it."""
        colors = self.host.status_colors
        res = state.resources or {}
        policies = {r["name"]: r.get("protection") for r in res.get("regions", [])}
        back = {r["name"]: r.get("replicating") for r in res.get("regions", []) if not r.get("protection")}
        maps = {m["source"]: m["target"] for m in res.get("mappings", [])}
        redundancy = {(a["name"], a.get("region")): a.get("redundancy", "") for a in res.get("storage_accounts", [])}
        users = used_by(state)
        caches = {(v["azure"].get("from"), v["azure"].get("cache_account")) for v in azure_vms(state) if v.get("azure")}
        rows: list[tuple[str, tuple]] = []
        for r in state.regions:
            name = r["name"]
            pol = policies.get(name)
            rows.append((f"region:{name}", (
                "region", Text(f"▾ {name}", style="bold", no_wrap=True, overflow="ellipsis"),
                Text(f"→ {pol.get('target', '')}" if pol else f"pair {r.get('paired_region') or '-'}",
                     style=colors["ok"] if pol else "dim", no_wrap=True, overflow="ellipsis"),
                region_policy_text(pol) if pol else Text(
                    f"paired with {r.get('paired_region') or '-'} · "
                    + (f"{', '.join(back[name])} replicate(s) back on their home region's policy" if back.get(name)
                       else "no policy yet"), style="dim"),
            )))
            for kind, word in AZURE_KINDS.items():
                for x in (r.get("resources") or {}).get(kind, []):
                    made = str(x.get("made_for") or "")
                    detail = [kind]
                    if kind == "storage account":
                        if (name, x["name"]) in caches or x.get("detail") == "cache":
                            detail = ["cache storage account"]
                        if redundancy.get((x["name"], name)):
                            detail.append(str(redundancy[(x["name"], name)]))
                    elif x.get("detail"):
                        detail.append(str(x["detail"]))
                    if kind == "virtual network" and maps.get(x["name"]):
                        detail.append(f"mapped to {maps[x['name']]}")
                    who = users.get((name, kind, x["name"]))
                    if who:
                        detail.append(f"used by {', '.join(who)}")
                    rows.append((f"azure:{name}/{kind}/{x['name']}", (
                        word, Text(f"  {x['name']}", no_wrap=True, overflow="ellipsis"),
                        Text(f"created for {made}", style=f"bold {colors['accent']}", no_wrap=True,
                             overflow="ellipsis") if made else Text("in the site", style="dim"),
                        Text(" · ".join(detail)),
                    )))
        return rows

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def show_detail(self) -> None:
        pane = self.query_one("#res-detail", Static)
        kind, name = self.cursor_row()
        res = self.state.resources or {}
        t = Text()
        if kind == "region":
            t = region_text(self.state, name)
        elif kind == "azure":
            row = self.table.get_row(f"{kind}:{name}") if self.table.cursor_key else []
            region, rkind, rname = (name.split("/", 2) + ["", ""])[:3]
            t.append(Text(f"{rkind} {rname}", style="bold"))
            t.append(Text(f" in {region}" + (f" · {row[2].plain}" if len(row) > 2 else "")))
            if len(row) > 3 and row[3].plain:
                t.append("\n")
                t.append(Text(row[3].plain))
            made = next((x for x in res.get("created_by_site_recovery", []) if x.get("name") == rname
                         and x.get("region") == region and x.get("kind") == rkind), None)
            if made:
                t.append("\n")
                t.append(Text(f"Site Recovery created it {fmt_day_time(made.get('created'))} (enable replication "
                              f"of {made.get('made_for', '')})"))
        elif kind == "cloud":
            c = next((c for c in res.get("clouds", []) if c["name"] == name), None)
            t.append("Cloud ", style="bold")
            t.append(Text(name))
            t.append("\n")
            t.append_text(policy_text(c.get("protection") if c else None))
        elif kind:
            row = self.table.get_row(f"{kind}:{name}") if self.table.cursor_key else []
            t.append(Text(" · ".join(c.plain for c in row if c.plain)))
        hint = self.row_hint(kind)
        if hint:
            if t:
                t.append("\n")
            t.append_text(hint)
        show_text(pane, t)
        self.fit_table(self.table, pane, line_count(pane) + 2, most=5)

    def on_resize(self) -> None:
        self.fit_table(self.table, self.query_one("#res-detail", Static),
                       line_count(self.query_one("#res-detail", Static)) + 2, most=5)

    def row_hint(self, kind: str | None) -> Text:
        """The keys that act on this row now; the others of its kind, with why not."""
        ok = [a for a in self.ACTIONS if a.kind == kind and not self.disabled_reason(a.id)]
        no = [a for a in self.ACTIONS if a.kind == kind and self.disabled_reason(a.id)]
        t = Text()
        if ok:
            t.append("keys here: ", style="dim")
            t.append(", ".join(f"{a.key} {a.title.lower()}" for a in ok))
        if no:
            if t:
                t.append(" · ", style="dim")
            t.append("not now: " + "; ".join(f"{a.title.lower()} ({self.disabled_reason(a.id)})" for a in no),
                     style="dim")
        return t

    # ---- subjects of actions -----------------------------------------------------------------

    def cursor_row(self) -> tuple[str | None, str]:
        key = self.table.cursor_key
        if not key or ":" not in key:
            return None, ""
        kind, name = key.split(":", 1)
        return kind, name

    def kind_of(self, action_id: str) -> str:
        action = self.action_by_id(action_id)
        assert action is not None and action.kind is not None, action_id
        return action.kind

    def candidates(self, kind: str) -> list[str]:
        """The subjects (as the UI keys them) of every row of that kind."""
        return [key for k, key, _subject in rows_by_kind(self.state) if k == kind]

    def subject(self, action_id: str) -> str | None:
        """The row under the cursor if it is of the action's kind; else the first candidate the
        engine allows (so `r` on any row registers the one unregistered server), else the first."""
        kind = self.kind_of(action_id)
        ck, cn = self.cursor_row()
        if ck == kind:
            return cn
        cands = self.candidates(kind)
        for c in cands:
            if not self.state.reason(action_id, c):
                return c
        return cands[0] if cands else None

    def reason(self, action_id: str) -> str | None:
        subject = self.subject(action_id)
        if subject is None:
            return f"this lab has no {self.kind_of(action_id)} for that"
        return self.state.reason(action_id, subject)

    # ---- actions -----------------------------------------------------------------------------

    def action_register_server(self) -> None:
        name = self.subject("register_server")
        lines = [
            Text.assemble("Register ", (name, "bold"), " with the vault."),
            Text("Installs the Site Recovery provider on the server and creates the vault's "
                 "data-encryption key file (the seed's certificate) inside the lab."),
            Text("Runs as a job: see Jobs (4)."),
        ]
        self.show_dialog(Confirm("Register server", lines, lambda lab: lab.register_server(name), ok_label="Register"))

    def action_install_agent(self) -> None:
        host = self.subject("install_agent")
        lines = [
            Text.assemble("Install the Recovery Services agent on Hyper-V host ", (host, "bold"), "."),
            Text("Every host of a cloud needs the agent before the cloud can be protected."),
        ]
        self.show_dialog(Confirm("Install agent", lines, lambda lab: lab.install_agent(host), ok_label="Install"))

    def action_configure_cloud(self) -> None:
        cloud = self.subject("configure_cloud")
        self.show_dialog(CloudProtectionForm(cloud))

    def action_map_network(self) -> None:
        source = self.subject("map_network")
        self.show_dialog(MapNetworkForm(source))

    def action_unmap_network(self) -> None:
        source = self.subject("unmap_network")
        lines = [Text.assemble("Remove the mapping of VM network ", (source, "bold"), ".")]
        self.show_dialog(Confirm("Unmap network", lines, lambda lab: lab.unmap_network(source), ok_label="Unmap"))

    def action_set_link(self) -> None:
        subject = self.subject("set_link")
        link = next((x for x in (self.state.resources or {}).get("links", []) if link_subject(x) == subject), None)
        if link is not None:
            self.show_dialog(LinkForm(link))
