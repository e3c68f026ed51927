"""Resources (key 3): servers and agents, clouds and their protection, networks and mappings,
storage accounts, links; and the setup actions of seed 004's STEP 2."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..host import CloudProtectionForm, Confirm, LinkForm, MapNetworkForm
from ..render import policy_text
from ..state import LabState, fmt_mbps, link_subject, rows_by_kind
from ..widgets import Column, LabTable, line_count, show_text
from .base import Panel, PanelAction

COLUMNS = [
    Column("kind", "Kind", 8),
    Column("name", "Name", 24),
    Column("state", "State", 21),
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
        for n in res.get("networks", []):
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
        for a in res.get("storage_accounts", []):
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

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def show_detail(self) -> None:
        pane = self.query_one("#res-detail", Static)
        kind, name = self.cursor_row()
        res = self.state.resources or {}
        t = Text()
        if kind == "cloud":
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
