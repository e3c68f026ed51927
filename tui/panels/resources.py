"""Resources (key 3): servers and agents, clouds and their protection, networks and mappings,
storage accounts, links; and the setup actions of seed 004's STEP 2. A lab of physical servers
(seed 003) shows the path their data takes: the configuration server, its process servers (their
cache and ports), master targets, each server's mobility service, the policies, the regions with
their process servers in Azure and the VMware site failback goes to; and its setup actions."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.widgets import DataTable, Static

from ..host import (AssociatePolicyForm, CloudProtectionForm, Confirm, CreatePolicyForm, DeployProcessServerForm,
                    LinkForm, MapNetworkForm)
from ..render import physical_policy_text, policy_text, region_policy_text, region_text
from ..state import (AZURE_KINDS, LabState, azure_process_servers, azure_vms, failback_path, fmt_bytes, fmt_cache,
                     fmt_day_time, fmt_mbps, is_azure_lab, is_physical_lab, lab_policies, link_subject,
                     linked_vmware_site, physical_server, physical_site_named, physical_sites, rows_by_kind, used_by)
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


# Physical servers (seed 003): short names, cache use in the state column; the details get the room
PHYSICAL_COLUMNS = [
    Column("kind", "Kind", 7),
    Column("name", "Name", 18, grow=1),
    Column("state", "State", 19),
    Column("details", "Details", 0, grow=4),
]

# the actions of a lab of physical servers (seed 003): not offered in a lab without one
PHYSICAL_ACTIONS = {"push_mobility", "install_mobility", "create_policy", "associate_policy", "deploy_process_server",
                    "remove_process_server"}
# the kinds of row of a VMM site's setup: a lab of physical servers without them is not offered their actions
VMM_KINDS = {"host", "cloud", "network"}


def lower(title: str) -> str:
    """An action's title inside a sentence: "Deploy process server in Azure" -> "deploy process server in Azure"."""
    return title[:1].lower() + title[1:]


def path_text(ps: dict, account: str, colors: dict) -> Text:
    """The path a physical server's data takes through a process server, a blocked port marked
    where it stops: mobility service → PS02 (9443 in) → its cache (LZ4 + AES-GCM) → 443 out → Azure storage."""
    blocked = {p.split(":", 1)[-1] for p in ps.get("ports_blocked") or []}
    bad = f"bold {colors['warning']}"
    t = Text(f"mobility service → {ps['name']} (")
    t.append(f"{ps.get('port')} in", style=bad if f"{ps.get('port')}-in" in blocked else "")
    if f"{ps.get('port')}-in" in blocked:
        t.append(" BLOCKED", style=bad)
    t.append(") → its cache (LZ4 + AES-GCM) → ")
    t.append("443 out" + (" BLOCKED" if "443-out" in blocked else ""), style=bad if "443-out" in blocked else "")
    t.append(Text(f" → Azure storage{' ' + account if account else ''}"))
    return t


class Resources(Panel):
    PANEL_ID = "resources"
    TITLE = "Resources"
    KEY = "3"
    ACTIONS = [
        PanelAction("register_server", "r", "Register", "Register server",
                    "register the VMM server (installs the provider) or the configuration server (installs it with its "
                    "process server and master target) with the vault; makes the data-encryption key",
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
        # physical servers (seed 003)
        PanelAction("push_mobility", "M,shift+m", "Push", "Install mobility service (push)",
                    "the process server pushes the mobility service to a running server with the site's push "
                    "account (a job)", key_display="M", kind="vm"),
        PanelAction("install_mobility", "I,shift+i", "Manual", "Install mobility service (manual)",
                    "install the mobility service on a server by hand, with the configuration server's passphrase "
                    "(a job)", key_display="I", kind="vm"),
        PanelAction("create_policy", "n", "Policy", "Create policy",
                    "a replication policy for physical servers (retention, app-consistent frequency), made with "
                    "its failback policy", kind="policy"),
        PanelAction("associate_policy", "a", "Associate", "Associate policy",
                    "associate a replication policy (and its failback policy) with the configuration server: its "
                    "servers replicate to the storage account", kind="server"),
        PanelAction("deploy_process_server", "d", "Deploy PS", "Deploy process server in Azure",
                    "a process server in an Azure region (an Azure VM), registered with the configuration server "
                    "through the VPN: servers in Azure fail back through it (a job)", kind="region"),
        PanelAction("remove_process_server", "x", "Remove PS", "Remove process server in Azure",
                    "delete a process server in Azure once no failback goes through it", kind="process server"),
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
        if is_physical_lab(state):
            table.set_columns(PHYSICAL_COLUMNS)
        if azure:  # Azure -> Azure: each region, its pair and policy, then its resources
            table.set_columns(AZURE_COLUMNS)
            rows += self.region_rows(state)
            table.sticky = {k for k, _ in rows if k.startswith("region:")}
            title = "Regions and their resources" + (f" · vault in {res['vault_region']}"
                                                     if res.get("vault_region") else "")
            if table.base_title != title:
                table.base_title = title
                table.set_filter(table.filter_text)

        if is_physical_lab(state):
            rows += self.physical_rows(state, st)
        shown = {p["configuration_server"] for p in physical_sites(state)}
        for s in res.get("servers", []):
            if s["name"] in shown:
                continue
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
        vmware = {w["name"] for w in res.get("vmware_sites", [])}
        for link in res.get("links", []):
            state_txt = str(link.get("state", ""))
            vpn = link["source"] in vmware or link["target"] in vmware
            rows.append((f"link:{link_subject(link)}", (
                "link", Text(f"{link['source']} → {link['target']}", no_wrap=True, overflow="ellipsis"),
                st(f"{fmt_mbps(link.get('mbps'))} {state_txt}", state_txt == "up"),
                Text("VPN: failback to VMware" if vpn else "replication link"),
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

    def physical_rows(self, state: LabState, st) -> list[tuple[str, tuple]]:
        """Seed 003: each physical site's configuration server, its process servers (cache use,
        data port, what waits and what reached Azure, blocked ports), master targets and servers
        (mobility service, the process server they send to); the policies; each region with its
        process servers in Azure; the VMware sites failback goes to."""
        colors = self.host.status_colors
        res = state.resources or {}
        servers = {s["name"]: s for s in res.get("servers", [])}
        rows: list[tuple[str, tuple]] = []

        def name(text: str, level: int = 0) -> Text:
            return Text("  " * level + text, no_wrap=True, overflow="ellipsis")

        for site in physical_sites(state):
            cs = site["configuration_server"]
            reg = servers.get(cs, {})
            state_txt = st("registered" if site.get("registered") else "not registered", bool(site.get("registered")))
            if site.get("management_blocked"):
                state_txt = st("443 in BLOCKED", False)  # (registered or not: the detail says)
            details = [f"configuration server of {site['site']}",
                       f"policy {site['policy']}" if site.get("policy") else "no policy associated"]
            if reg.get("key_file"):
                details.append(f"key {reg['key_file']}")
            rows.append((f"server:{cs}", ("server", name(cs), state_txt, Text(" · ".join(details)))))
            for ps in site.get("process_servers", []):
                full = bool(ps.get("full"))
                use = fmt_cache(ps.get("bytes"), ps.get("limit"))
                limit = fmt_bytes(ps.get("limit")).replace(".0 ", " ")
                cell = Text(f"FULL {fmt_bytes(ps.get('bytes')).split()[0]}/{limit}"
                            if full else use, style=f"bold {colors['error']}" if full else "", no_wrap=True,
                            overflow="ellipsis")
                if not site.get("registered"):  # registering the configuration server installs them
                    cell = st("not installed yet", None)
                d = Text()
                if ps.get("ports_blocked"):  # first: what stops it
                    d.append(f"blocked {', '.join(p.split(':', 1)[-1] for p in ps['ports_blocked'])} · ",
                             style=f"bold {colors['warning']}")
                d.append(f"{'on the CS' if ps.get('on') == 'the configuration server' else 'own server'} · "
                         f"{ps.get('port')} in · {ps.get('shipments', 0)} waiting · "
                         f"{fmt_bytes(ps.get('sent_last_hour'))} to Azure in 1 h")
                rows.append((f"ps:{ps['name']}", ("process", name(ps["name"], 1), cell, d)))
            for mt in site.get("master_targets", []):
                rows.append((f"mt:{mt}", ("master", name(mt, 1), Text("master target" if site.get("registered") else
                                                                      "not installed yet", style="dim"),
                                          Text("on the configuration server" if mt == cs else "its own server")
                                          + Text(" · writes failback data to VMware", style="dim"))))
            for srv in site.get("servers", []):
                mob = srv.get("mobility")
                cell = (st(f"mobility ({srv.get('method') or 'installed'})", True) if mob == "installed" else
                        Text("mobility installing", style=f"bold {colors['accent']}") if mob == "installing" else
                        st("no mobility service", None))
                if srv.get("failing_back"):  # its data goes from the VM in Azure to VMware, not through a PS here
                    cell = Text("failing back", style=f"bold {colors['accent']}", no_wrap=True, overflow="ellipsis")
                d = Text("through Azure to VMware · " if srv.get("failing_back") else
                         f"→ {srv['process_server']} · " if srv.get("process_server") else "")
                d.append(Text(f"{srv.get('protection', '')} · {srv.get('os', '')}"))
                rows.append((f"vm:{srv['name']}", ("server", name(srv["name"], 1), cell, d)))
        if not lab_policies(state):
            rows.append(("policy:", ("policy", Text("none yet", style="dim"), st("n creates one", None),
                                     Text("a replication policy, made with its failback policy", style="dim"))))
        for pol in lab_policies(state):
            rows.append((f"policy:{pol['name']}", (
                "policy", name(pol["name"]),
                st(f"→ {pol['server']}", True) if pol.get("server") else st("not associated", None),
                Text(f"{pol.get('kind', '')} · ") + physical_policy_text(pol),
            )))
        for r in res.get("regions", []):
            here = azure_process_servers(state, r["name"])
            vpn = linked_vmware_site(state, r["name"])  # (display)
            d = [f"paired with {r.get('paired_region') or '-'}",
                 f"VPN to {vpn}" if vpn else "no VPN to a VMware site"]
            if not here:
                d.append("no process server in Azure")
            rows.append((f"region:{r['name']}", (
                "region", name(r["name"]),
                Text("vault region" if r["name"] == res.get("vault_region") else "Azure region", style="dim"),
                Text(" · ".join(d)),
            )))
            for x in here:
                rows.append((f"process server:{x['name']}", (
                    "process", name(x["name"], 1),
                    Text("in Azure (failback)", style=f"bold {colors['accent']}", no_wrap=True, overflow="ellipsis"),
                    Text(f"registered with {x.get('made_for', '')} · deployed {fmt_day_time(x.get('created'))}"),
                )))
        for w in res.get("vmware_sites", []):
            hosts = w.get("hosts", [])
            rows.append((f"vmware:{w['name']}", (
                "vmware", name(w["name"]), Text(f"vCenter {w.get('vcenter', '')}"),
                Text(f"VMware site: physical servers fail back here as VMware VMs · {len(hosts)} ESXi host(s)"),
            )))
            for h in hosts:
                ds = h.get("datastores", [])
                rows.append((f"esxi:{w['name']}/{h['name']}", (
                    "esxi", name(h["name"], 1), Text(f"{len(ds)} datastore(s)", style="dim"),
                    Text(", ".join(ds)),
                )))
        return rows

    def physical_detail(self, kind: str, name: str) -> Text | None:
        """The detail of a physical lab's row: what it is and where the data goes through it;
        None for a row of another kind."""
        state = self.state
        res = state.resources or {}
        colors = self.host.status_colors
        t = Text()

        def label(word: str) -> None:
            t.append(("\n" if t.plain else "") + f"{word:<12}", style="bold")

        def account(site: dict) -> str:
            """The storage account the site's servers replicate to: its associated policy's ('' before)."""
            return str(site.get("storage_account") or "")

        if kind == "server" and physical_site_named(state, name):
            site = physical_site_named(state, name)
            reg = next((s for s in res.get("servers", []) if s["name"] == name), {})
            label("Config srv")
            t.append(Text(f"{name} of {site['site']} · "))
            t.append("registered" if site.get("registered") else "not registered",
                     style=colors["ok"] if site.get("registered") else colors["warning"])
            if reg.get("key_file"):
                t.append(Text(f" · data-encryption key {reg['key_file']}"))
            label("Management")
            if site.get("management_blocked"):
                t.append("443 in BLOCKED", style=f"bold {colors['warning']}")
                why = state.ports.get(f"{name}:443-in", "mobility services and protection cannot reach it")
                t.append(Text(f": {why}"))
            else:
                t.append(Text(f"443 in open · {state.ports.get(f'{name}:443-in', 'management')}"))
            label("Policy")
            pol = next((p for p in lab_policies(state, "replication") if p["name"] == site.get("policy")), None)
            if pol:
                t.append(Text(f"{pol['name']} · "))
                t.append_text(physical_policy_text(pol))
                if account(site):
                    t.append(Text(f" → {account(site)}"))
            else:
                t.append("none associated: its servers cannot be protected yet (a associates one)", style="dim")
            label("Components")
            pss = [p["name"] for p in site.get("process_servers", [])]
            mts = ", ".join(site.get("master_targets", []))
            t.append(Text(f"process servers {', '.join(pss)} · master targets {mts}"
                          + (f" · push account {site['push_account']}" if site.get("push_account") else
                             " · no push account (install by hand)")))
            return t
        if kind == "ps":
            for site in physical_sites(state):
                ps = next((p for p in site.get("process_servers", []) if p["name"] == name), None)
                if ps is None:
                    continue
                label("Process srv")
                t.append(Text(f"{name} on {ps.get('on', '')} · serves "
                              f"{', '.join(ps.get('servers') or []) or 'no protected server yet'} · cache in "
                              f"{ps.get('cache_dir', '')}"))
                for port in ps.get("ports_blocked") or []:  # first: what stops it (a short terminal shows 3 lines)
                    label("Blocked")
                    t.append(Text(f"{port}: {state.ports.get(port, '')}", style=colors["warning"]))
                label("Data path")
                t.append_text(path_text(ps, account(site), colors))
                label("Cache")
                full = bool(ps.get("full"))
                t.append(fmt_cache(ps.get("bytes"), ps.get("limit")), style=f"bold {colors['error']}" if full else "")
                if full:
                    t.append(" FULL: its servers are throttled, they keep their changes until it drains",
                             style=f"bold {colors['error']}")
                raw = ps.get("raw_bytes") or 0
                t.append(Text(f" · {ps.get('shipments', 0)} waiting"
                              + (f" ({fmt_bytes(raw)} uncompressed)" if raw else "")
                              + f" · sent {fmt_bytes(ps.get('sent_last_hour'))} to Azure in the last hour"))
                return t
        if kind == "mt":
            site = next((p for p in physical_sites(state) if name in p.get("master_targets", [])), None)
            if site is not None:
                label("Master tgt")
                t.append(Text(f"{name} of {site['site']}, "
                              + ("on the configuration server (the default)" if name == site["configuration_server"]
                                 else "on its own server (for heavy failback traffic)")))
                label("Failback")
                t.append(Text("receives a failing-back server's data from the process server in Azure (through the "
                              "VPN) and writes the VMware VM's disks on a datastore; reprotect (Protected items, R) "
                              "picks it"))
                return t
        if kind == "vm":
            found = physical_server(state, name)
            if found is not None:
                site, srv = found
                v = state.vm(name) or {}
                vmware = {w["name"] for w in res.get("vmware_sites", [])}
                label("Server")
                t.append(Text(f"{name} · {srv.get('os', '')} · "
                              + (f"VMware VM on {v['active_location']} (failed back)" if v.get("active_location")
                                 in vmware else f"physical server of {site['site']}") + f" · {v.get('power', '')}"))
                label("Mobility")
                mob = srv.get("mobility")
                if mob == "installed":
                    how = ("pushed by the process server" + (f" with {site['push_account']}" if site.get("push_account")
                                                             else "") if srv.get("method") == "push" else "by hand")
                    t.append("installed", style=colors["ok"])
                    t.append(Text(f" ({how}), registered with {site['configuration_server']}"))
                elif mob == "installing":
                    t.append("being installed (Jobs, 4)", style=colors["accent"])
                else:
                    t.append("not installed", style=colors["warning"])
                    t.append(" · M pushes it, I installs it by hand", style="dim")
                label("Sends to")
                ps = next((p for p in site.get("process_servers", []) if p["name"] == srv.get("process_server")), None)
                fb = failback_path(v)
                if fb:  # failing back: from the VM in Azure, through the process server there
                    t.append(Text(f"(the VM in Azure) → {fb.get('process_server', '')} → VPN → master target "
                                  f"{fb.get('master_target', '')} → {fb.get('vmware_site', '')} "
                                  f"({fb.get('esxi_host', '')}, {fb.get('datastore', '')})"))
                elif ps is not None:
                    t.append_text(path_text(ps, account(site), colors))
                else:
                    t.append("no process server yet: protect it (Protected items, e) to choose one", style="dim")
                label("Protection")
                t.append(Text(f"{srv.get('protection', '')}" + (f" · active location {v['active_location']}"
                                                                if v.get("active_location") else "")))
                return t
        if kind == "policy":
            pol = next((p for p in lab_policies(state) if p["name"] == name), None)
            if pol is not None:
                label("Policy")
                t.append(Text(f"{name} · {pol.get('kind', '')} · "))
                t.append_text(physical_policy_text(pol))
                label("Associated")
                t.append(Text(f"with {pol['server']}") if pol.get("server") else Text("with no configuration server (a "
                                                                                      "associates it)", style="dim"))
                label("Created")
                t.append(Text(fmt_day_time(pol.get("created"))))
                t.append(" · used when a server fails back to VMware (reprotect)" if pol.get("kind") == "failback"
                         else " · with its failback policy", style="dim")
                return t
        if kind == "region" and is_physical_lab(state):
            r = next((r for r in res.get("regions", []) if r["name"] == name), {})
            label("Region")
            t.append(Text(f"{name} · paired with {r.get('paired_region') or '-'}"
                          + (" · the vault's region" if name == res.get("vault_region") else "")))
            vpn = linked_vmware_site(state, name)  # (display: whether failback can go from here is the engine's)
            label("VPN")
            t.append(Text(f"to {vpn}: a process server here registers with the configuration server through it")
                     if vpn else Text("none to a VMware site", style="dim"))
            why = state.reason("deploy_process_server", name)
            if why:
                label("Deploy PS")
                t.append(Text(f"not now: {why}", style="dim"))
            label("Process srv")
            here = azure_process_servers(state, name)
            t.append(Text(", ".join(f"{x['name']} (for {x.get('made_for', '')})" for x in here)) if here else
                     Text("none in Azure: d deploys one (failback needs it)", style="dim"))
            return t
        if kind == "process server":
            x = next((x for x in azure_process_servers(state) if x["name"] == name), None)
            if x is not None:
                label("Process srv")
                t.append(Text(f"{name} in Azure ({x.get('region', '')}) · registered with {x.get('made_for', '')} "
                              f"through the VPN · deployed {fmt_day_time(x.get('created'))}"))
                label("Failback")
                vpn = linked_vmware_site(state, str(x.get("region", "")))  # (display)
                t.append(Text(f"a server in Azure → {name} (cache) → VPN → master target → VMware VM on "
                              f"{vpn or 'the VMware site'}"))
                return t
        if kind == "vmware":
            w = next((w for w in res.get("vmware_sites", []) if w["name"] == name), None)
            if w is not None:
                label("VMware")
                t.append(Text(f"{name} · vCenter {w.get('vcenter', '')}"))
                label("Hosts")
                t.append(Text(" · ".join(f"{h['name']} ({', '.join(h.get('datastores', []))})"
                                         for h in w.get("hosts", []))))
                label("Failback")
                t.append(Text("a physical server that failed over to Azure comes back here as a VMware VM, never to "
                              "a physical server"))
                return t
        if kind == "esxi":
            site_name, _, host = name.partition("/")
            w = next((w for w in res.get("vmware_sites", []) if w["name"] == site_name), {})
            h = next((h for h in w.get("hosts", []) if h["name"] == host), {})
            label("ESXi host")
            t.append(Text(f"{host} of {site_name} (vCenter {w.get('vcenter', '')})"))
            label("Datastores")
            t.append(Text(", ".join(h.get("datastores", [])) or "-"))
            t.append(" · reprotect puts a failing-back VM's disks on one", style="dim")
            return t
        return None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()
        self.host.refresh_bindings()

    def show_detail(self) -> None:
        pane = self.query_one("#res-detail", Static)
        kind, name = self.cursor_row()
        res = self.state.resources or {}
        t = Text()
        phys = self.physical_detail(kind, name) if kind and is_physical_lab(self.state) else None
        if phys is not None:
            t = phys
        elif kind == "region":
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
        mine = [a for a in self.ACTIONS if a.kind == kind and self.applies(a.id)]
        ok = [a for a in mine if not self.disabled_reason(a.id)]
        no = [a for a in mine if self.disabled_reason(a.id)]
        t = Text()
        if ok:
            t.append("keys here: ", style="dim")
            t.append(", ".join(f"{a.key_display or a.key} {lower(a.title)}" for a in ok))
        if no:
            if t:
                t.append(" · ", style="dim")
            t.append("not now: " + "; ".join(f"{lower(a.title)} ({self.disabled_reason(a.id)})" for a in no),
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
        """The subjects (as the UI keys them) of every row of that kind (the VMs here: the
        physical servers, whose mobility service this panel installs)."""
        if kind == "vm":
            return [s["name"] for p in physical_sites(self.state) for s in p.get("servers", [])]
        return [key for k, key, _subject in rows_by_kind(self.state) if k == kind]

    def applies(self, action_id: str) -> bool:
        """Can this lab ever have a subject for the action? The physical servers' actions are
        not offered in a lab without a physical site, nor a VMM site's in a lab of physical
        servers without its hosts, clouds and VM networks (they stay in ? and the palette)."""
        if action_id in PHYSICAL_ACTIONS:
            return is_physical_lab(self.state)
        kind = (self.action_by_id(action_id) or PanelAction("", "", "", "", "")).kind
        return not (kind in VMM_KINDS and is_physical_lab(self.state) and not self.candidates(kind))

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in self._action_ids and not self.applies(action):
            return False  # not in the key bar; pressed anyway, the app says why (disabled_reason)
        return super().check_action(action, parameters)

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
        if action_id in PHYSICAL_ACTIONS and not is_physical_lab(self.state):
            return "this lab has no physical servers (seed 003)"
        if action_id == "create_policy":
            return None  # (the engine judges the name and the values in the form)
        subject = self.subject(action_id)
        if subject is None:
            return {"process server": "no process server in Azure: d deploys one (on a region)"}.get(
                self.kind_of(action_id), f"this lab has no {self.kind_of(action_id)} for that")
        why = self.state.reason(action_id, subject)
        if why is None and action_id == "associate_policy" and not self.free_policies():
            return "no replication policy to associate: create one first (n)"
        return why

    def free_policies(self) -> list[str]:
        """The replication policies no configuration server has yet."""
        return [p["name"] for p in lab_policies(self.state, "replication") if not p.get("server")]

    # ---- actions -----------------------------------------------------------------------------

    def action_register_server(self) -> None:
        name = self.subject("register_server")
        site = physical_site_named(self.state, name) if name else None
        if site is not None:  # seed 003: a configuration server
            lines = [
                Text.assemble("Register configuration server ", (name, "bold"), " of ", (site["site"], "bold"),
                              " with the vault."),
                Text("Installs the configuration server with its default process server and master target, "
                     "connects to Azure (443 out), registers the site's other process servers and creates the "
                     "vault's data-encryption key file inside the lab."),
                Text("Runs as a job: see Jobs (4)."),
            ]
            self.show_dialog(Confirm("Register configuration server", lines, lambda lab: lab.register_server(name),
                                     ok_label="Register"))
            return
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

    # ---- physical servers (seed 003) ---------------------------------------------------------

    def _mobility(self, action_id: str, push: bool) -> None:
        server = self.subject(action_id)
        found = physical_server(self.state, server) if server else None
        if not server or found is None:
            return
        site, _srv = found
        how = (f"Process server {site['configuration_server']} pushes it to the running server with the site's push "
               f"account {site.get('push_account') or ''}." if push else
               "You install it on the server by hand, with the configuration server's passphrase.")
        lines = [
            Text.assemble("Install the mobility service on ", (server, "bold"), "."),
            Text(how),
            Text(f"It registers with configuration server {site['configuration_server']} (HTTPS 443 in); then the "
                 "server can be protected. Runs as a job: see Jobs (4)."),
        ]
        self.show_dialog(Confirm("Install mobility service (push)" if push else "Install mobility service (manual)",
                                 lines, lambda lab: lab.install_mobility([server], push=push),
                                 ok_label="Push" if push else "Install"))

    def action_push_mobility(self) -> None:
        self._mobility("push_mobility", True)

    def action_install_mobility(self) -> None:
        self._mobility("install_mobility", False)

    def action_create_policy(self) -> None:
        self.show_dialog(CreatePolicyForm())

    def action_associate_policy(self) -> None:
        server = self.subject("associate_policy")
        if server:
            self.show_dialog(AssociatePolicyForm(server))

    def action_deploy_process_server(self) -> None:
        region = self.subject("deploy_process_server")
        if region:
            self.show_dialog(DeployProcessServerForm(region))

    def action_remove_process_server(self) -> None:
        name = self.subject("remove_process_server")
        x = next((x for x in azure_process_servers(self.state) if x["name"] == name), None)
        if x is None:
            return
        lines = [
            Text.assemble("Remove process server ", (name, "bold"), " from ", (str(x.get("region", "")), "bold"), "."),
            Text("Its Azure VM is deleted. Servers in Azure need a process server there to fail back to VMware: "
                 "deploy one again (d) before their reprotect."),
        ]
        self.show_dialog(Confirm("Remove process server", lines, lambda lab: lab.remove_process_server(name),
                                 ok_label="Remove"))

    def action_set_link(self) -> None:
        subject = self.subject("set_link")
        link = next((x for x in (self.state.resources or {}).get("links", []) if link_subject(x) == subject), None)
        if link is not None:
            self.show_dialog(LinkForm(link))
