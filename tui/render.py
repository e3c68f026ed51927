"""Rich text that panels and dialogs both show: a protection policy, a VM in detail.

Plain data in (a `LabState`, its dicts), `rich.text.Text` out; no widget, no app, no engine call.
User strings (names, notes, errors) go in as `Text`, never parsed as markup.
"""

from __future__ import annotations

from rich.text import Text

from engine import Failover, Protection

from .state import (AZURE_KINDS, SIDE_RESOURCES, LabState, azure_side, azure_vms, fmt_bytes, fmt_duration,
                    fmt_frequency, fmt_time, is_azure_vm, made_for, physical_server, region_info, region_resources,
                    vm_resources, waiting_jobs, waiting_step)


def health_style(health: str, colors: dict) -> str:
    """The style of the engine's replication health (OK, Warning, Critical) in the theme's colours."""
    return {"OK": colors["ok"], "Warning": colors["warning"], "Critical": colors["error"]}.get(health, "")


def health_parts(v: dict, colors: dict, now: int) -> list[tuple[str, Text]]:
    """(label, text) lines of an item's health that needs a word: the health and its reason, the
    recommended action, and while recoverable errors are retried, the attempts and the next one.
    Empty for an item that is OK (or has no replication to judge)."""
    health = str(v.get("health") or "")
    reason = str(v.get("health_reason") or "")
    retry = v.get("retry")
    out: list[tuple[str, Text]] = []
    if reason or (health and health != "OK"):
        t = Text(health or "-", style=f"bold {health_style(health, colors)}")
        if reason:
            t.append(" · ")
            t.append(Text(reason))
        out.append(("Health", t))
    if v.get("health_action"):
        out.append(("Action", Text(str(v["health_action"]))))
    if retry and retry.get("failures"):
        n = int(retry["failures"])
        t = Text()
        nxt = retry.get("next_attempt")
        if nxt is not None:
            t.append(f"next attempt {n + 1} at {fmt_time(nxt, True)}", style="bold")
            if nxt >= now:
                t.append(f" (in {fmt_duration(nxt - now)})")
            t.append(" · ")
        t.append(f"{n} failed")
        if retry.get("first_failure") is not None:
            t.append(f" since {fmt_time(retry['first_failure'], True)}")
        out.append(("Retrying", t))
    return out


def health_text(v: dict, colors: dict, now: int) -> Text:
    """health_parts as a block of lines: the health and its reason, then `Action ...`,
    `Retrying ...` (empty for an item that is OK)."""
    t = Text()
    for label, line in health_parts(v, colors, now):
        if t:
            t.append("\n")
        if label != "Health":
            t.append(f"{label} ", style="bold")
        t.append_text(line)
    return t


def policy_text(p: dict | None) -> Text:
    """A cloud's replication policy on one line: target, account, frequency, retention..."""
    if not p:
        return Text("protection not configured", style="dim")
    target = str(p.get("target", ""))
    if p.get("target_kind") == "region":
        return region_policy_text(p)
    if p.get("target_kind") == "azure" or target == "azure":
        where = f"Azure ({target})" if target and target != "azure" else "Azure"
    else:
        where = f"cloud {target}"
    parts = [f"→ {where}"]
    if p.get("storage_account"):
        parts.append(str(p["storage_account"]))
    parts.append(f"every {fmt_frequency(p.get('frequency'))}")
    parts.append(f"keep {p.get('retention_h', 0)} h")
    app_h = p.get("app_consistent_h") or 0
    parts.append(f"app-consistent {'every ' + str(app_h) + ' h' if app_h else 'none'}")
    parts.append("encrypted" if p.get("encrypt") else "not encrypted")
    if p.get("start") not in (None, "now"):
        parts.append(f"start {p['start']}")
    return Text(" · ".join(parts))


def physical_policy_text(p: dict | None) -> Text:
    """A physical servers' policy (Lab.policies) on one line: how long points are kept, how often
    an app-consistent one is made."""
    if not p:
        return Text("no policy", style="dim")
    app_h = p.get("app_consistent_h") or 0
    app = f"every {app_h} h" if app_h else "none"
    return Text(f"keep {p.get('retention_h', 0)} h · app-consistent {app}")


def region_policy_text(p: dict | None) -> Text:
    """An Azure region's replication policy (Azure -> Azure) on one line: its name, the target
    region, continuous replication (batches), a crash-consistent point every N, retention..."""
    if not p:
        return Text("no replication policy yet (the first VM protected from here makes it)", style="dim")
    parts = [f"{p.get('name') or p.get('policy_name') or 'policy'}", f"→ {p.get('target', '')}"]
    batch = p.get("batch")
    parts.append(f"continuous, {fmt_frequency(batch)} batches" if batch else "continuous")
    parts.append(f"points every {fmt_frequency(p.get('frequency'))}")
    parts.append(f"keep {p.get('retention_h', 0)} h")
    app_h = p.get("app_consistent_h") or 0
    parts.append(f"app-consistent {'every ' + str(app_h) + ' h' if app_h else 'none'}")
    return Text(" · ".join(parts))


def region_text(state: LabState, name: str) -> Text:
    """An Azure region's detail: its pair, its policy, the VMs whose replication leaves it (a
    reprotected VM's too) and the bytes waiting in their cache, what Site Recovery created there."""
    region = region_info(state, name) or {}
    t = Text()

    def label(word: str) -> None:
        t.append(("\n" if t.plain else "") + f"{word:<12}", style="bold")

    label("Region")
    t.append(Text(f"{name} · paired with {region.get('paired_region') or '-'}"))
    label("Policy")
    vms = [v for v in azure_vms(state) if (v.get("azure") or {}).get("from") == name]
    if region.get("protection") or not vms:
        t.append_text(region_policy_text(region.get("protection")))
    else:
        t.append("none of its own: its VMs replicate back on their home region's policy", style="dim")
    if vms:
        label("From here")
        t.append(Text(" · ".join(f"{v['name']} → {v['azure'].get('to', '')}" for v in vms)))
        label("Cache")
        waiting = sum(int(v["azure"].get("cache_bytes") or 0) for v in vms)
        accounts = sorted({str(v["azure"].get("cache_account") or "") for v in vms} - {""})
        t.append(Text(f"{', '.join(accounts)}: {fmt_bytes(waiting)} waiting from {len(vms)} VM(s)"))
    made = [f"{x['name']} (for {x['made_for']})" for kind in AZURE_KINDS
            for x in region_resources(state, name, kind) if x.get("made_for")]
    label("Created")
    t.append(Text(f"by Site Recovery: {', '.join(made)}") if made else Text("nothing by Site Recovery", style="dim"))
    label("Resources")
    t.append(f"{sum(len(region_resources(state, name, kind)) for kind in AZURE_KINDS)}")
    t.append(" · Resources (3) lists them", style="dim")
    return t


def recovery_side(v: dict) -> str:
    """Where a protected VM fails over to, in the portal's words: Microsoft Azure (region), the
    recovery cloud's name or, for an Azure VM, the region it replicates to now."""
    if v.get("azure"):
        return str(v["azure"].get("to") or "the other region")
    p = v.get("policy") or {}
    target = str(p.get("target") or "")
    if p.get("target_kind") == "azure" or target == "azure":
        return f"Microsoft Azure ({target})" if target and target != "azure" else "Microsoft Azure"
    return target or "the recovery side"


def direction_text(v: dict, back: bool) -> Text:
    """From where to where a failover of `v` moves the workload (a failback: back home)."""
    here = str(v.get("active_location") or v.get("location") or "")
    if v.get("azure"):
        here = str(v["azure"].get("from") or here)
    there = str(v.get("location") or "") if back else recovery_side(v)
    t = Text()
    t.append(Text(here, style="bold"))
    t.append(" → ")
    t.append(Text(there, style="bold"))
    return t


def recovered_text(r: dict, azure: bool = False) -> Text:
    """One VM at the recovery side: a test copy or the failed-over VM, its state and data."""
    net = f"network {r.get('network') or '(isolated)'}"
    if azure and r.get("network") and r.get("subnet"):
        net += f"/{r['subnet']}"
    tx = r.get("last_transaction")
    t = Text(f"{r.get('role', '')} VM {r.get('name', '')} · {r.get('power', '')} · point {r.get('point', '-')} · "
             f"transaction {'-' if tx is None else tx} · {net} · {r.get('place', '')}")
    if azure:  # an Azure VM's: the resource group and availability set it was made in
        extra = [f"group {r['resource_group']}" if r.get("resource_group") else "",
                 f"av set {r['availability_set']}" if r.get("availability_set") else ""]
        t.append(Text("".join(f" · {e}" for e in extra if e)))
    return t


def cache_text(v: dict, colors: dict) -> Text:
    """An Azure VM's cache: its writes waiting in the cache storage account of the region it runs
    in, not yet processed into the target ("cache eastusasrcache: 12.3 KiB waiting")."""
    a = v.get("azure") or {}
    n = a.get("cache_bytes") or 0
    t = Text(f"cache {a.get('cache_account') or '-'}: ")
    t.append(f"{fmt_bytes(n)} waiting", style=f"bold {colors['warning']}" if n else "")
    return t


def side_text(state: LabState, v: dict, region: str) -> Text:
    """One side of an Azure VM: its resource group, network/subnet, storage account and
    availability set in `region`; a resource Site Recovery created ends in * (the Created line
    says for whom)."""
    side = azure_side(v, region)
    t = Text()
    t.append(Text(region, style="bold"))
    t.append(": ")
    parts = []
    for kind, col, word in SIDE_RESOURCES:
        res = str(side.get(col) or "")
        if not res and kind == "availability set":
            continue  # a VM in no availability set has none on either side
        part = Text(f"{word} {res or '-'}")
        if made_for(state, region, kind, res):
            part.append("*", style="bold")
        if kind == "virtual network" and side.get("subnet"):
            part.append(f"/{side['subnet']}")
        parts.append(part)
    return t.append_text(Text(" · ").join(parts))


def created_text(state: LabState, v: dict) -> Text:
    """The resources this Azure VM uses that Site Recovery created, by the VM they were made for
    (a later VM shares what the first one's protection made)."""
    by_maker: dict[str, dict[str, list[str]]] = {}
    for region, kind, word, res in vm_resources(v):
        maker = made_for(state, region, kind, res)
        if maker:
            by_maker.setdefault(maker, {}).setdefault(region, []).append(f"{word} {res}")
    if not by_maker:
        return Text("nothing: it uses resources that were there", style="dim")
    return Text(" · ".join(f"* for {maker}: " + "; ".join(f"{r}: {', '.join(names)}" for r, names in regions.items())
                           for maker, regions in by_maker.items()))


def vm_detail_text(state: LabState, name: str, colors: dict, wrap: bool = False, tables: bool = False,
                   disks: bool | None = None, health: bool = True, brief: bool = False) -> Text:
    """The detail pane of a VM: status, health with its reason and what to do, target settings,
    policy, disks, replication, points, errors.

    `tables`: the details screen shows the points (and, unless `disks`, the disks) as tables,
    so leave them out here. `health`: the health lines (the details screen shows them apart).
    `brief`: no line that says nothing new (Points when the table shows them, Errors: none)."""
    show_disks = (not tables) if disks is None else disks
    v = state.vm(name)
    t = Text()
    if v is None:
        return Text("gone", style="dim")

    def label(s: str) -> None:
        if t:
            t.append("\n")
        t.append(f"{s:<12}", style="bold")

    az = v.get("azure")
    azure_vm = is_azure_vm(state, v)
    label("VM")
    phys = physical_server(state, name)
    if azure_vm:
        t.append(Text(f"{v.get('os', '')} · Azure VM in {v.get('location', '')} · {v.get('power', '')}"))
    elif phys is not None:  # seed 003: a physical server, its mobility service and process server
        site, srv = phys
        mob = str(srv.get("mobility") or "")
        vmware = {w["name"] for w in (state.resources or {}).get("vmware_sites", [])}
        what = (f"VMware VM on {v['active_location']} (failed back; was a physical server of {site['site']})"
                if v.get("active_location") in vmware else f"physical server of {site['site']}")
        t.append(Text(f"{v.get('os', '')} · {what} · {v.get('power', '')} · mobility "
                      + (f"{mob} ({srv['method']})" if srv.get("method") else mob)
                      + (f" → {srv['process_server']}" if srv.get("process_server") else "")))
    else:
        t.append(Text(f"{v.get('os', '')} · host {v.get('host', '') or '-'} · {v.get('power', '')}"))
    if v.get("active_location"):
        t.append(Text(f" · active location {v['active_location']}"))
    label("Status")
    t.append(Text(str(v.get("protection", ""))))
    if v.get("health"):
        t.append(" · ")
        t.append(str(v["health"]), style=health_style(v["health"], colors))
    if v.get("failover_state"):
        t.append(Text(f" · failover {v['failover_state']}"))
    if health:
        for what, line in health_parts(v, colors, state.now):
            label(what)
            t.append_text(line)
    if az:  # Azure -> Azure: the two regions, the cache, the resources each side uses
        label("Replication")
        t.append(Text(f"{az.get('from', '')} → {az.get('to', '')}", style="bold"))
        if v.get("protection") == Protection.FAILED_OVER:  # it runs where it failed over, nothing replicates
            t.append(Text(f" · stopped: it runs in {v.get('active_location') or az.get('from', '')}"
                          + (" (reprotect replicates it back)" if v.get("failover_state") == Failover.COMMITTED
                             else " (commit, then reprotect)"), style="dim"))
        else:
            t.append(" · ")
            t.append_text(cache_text(v, colors))
        rpo = v.get("rpo_seconds")
        t.append(Text(f" · RPO {fmt_duration(rpo) if rpo is not None else '-'} · "
                      f"last {fmt_time(v.get('last_replication'))}"))
        label("Target")
        t.append_text(side_text(state, v, str(az.get("to", ""))))
        label("Source")
        t.append_text(side_text(state, v, str(az.get("from", ""))))
        label("Created")
        t.append_text(created_text(state, v))
    elif azure_vm:  # not protected yet: where it would go
        label("Replication")
        region = region_info(state, str(v.get("location", ""))) or {}
        pol = region.get("protection")
        to = (pol or {}).get("target") or region.get("paired_region")
        t.append("not enabled", style="dim")
        if to:
            t.append(Text(f" · protect replicates it to {to}"
                          + (" (the region's policy)" if pol else " (the paired region)")))
    if azure_vm:
        label("Target VM")
        tgt = [f"name {v.get('target_name') or '-'}"]
        if v.get("target_size"):
            tgt.append(f"size {v['target_size']}")
        if v.get("nic"):
            tgt.append(f"NIC {v['nic']}")
    else:
        label("Target")
        tgt = [f"name {v.get('target_name') or '-'}", f"size {v.get('target_size') or '-'}"]
        if v.get("target_network"):
            tgt.append(f"network {v['target_network']}")
        if v.get("nic"):
            tgt.append(f"NIC {v['nic']}")
    t.append(Text(" · ".join(tgt)))
    label("Policy")
    if v.get("policy") is None and azure_vm:  # not protected yet: its region's, which protection would use
        pol = (region_info(state, str(v.get("location", ""))) or {}).get("protection")
        t.append_text(region_policy_text(pol))
        if pol:
            t.append(" (the region's)", style="dim")
    elif v.get("policy") is None and phys is not None:  # not protected yet: its configuration server's policy
        site = phys[0]
        pol = next((p for p in (state.resources or {}).get("policies", []) if p["name"] == site.get("policy")), None)
        if pol is None:
            t.append(Text(f"none: {site['configuration_server']} has no policy associated", style="dim"))
        else:
            t.append_text(Text(f"{pol['name']} · → Azure · ").append_text(physical_policy_text(pol)))
            t.append(f" ({site['configuration_server']}'s)", style="dim")
    elif v.get("policy") is None:  # not protected yet: the cloud's settings, which protection would use
        cloud = next((c for c in (state.resources or {}).get("clouds", []) if c["name"] == v.get("cloud")), None)
        if cloud and cloud.get("protection"):
            t.append_text(policy_text(cloud["protection"]))
            t.append(" (the cloud's)", style="dim")
        else:
            t.append_text(policy_text(None))
    else:
        t.append_text(policy_text(v["policy"]))
    if show_disks:
        label("Disks")
        t.append(Text(" · ".join(
            f"{d['name']} {fmt_bytes(d.get('logical_bytes'))} ({fmt_bytes(d.get('allocated_bytes'))} used)"
            for d in v.get("disks", [])
        )))
    path = v.get("path") if v.get("protection") not in (None, Protection.NOT_PROTECTED) else None
    if path:  # a physical server: its process server, where its data goes, what waits in the cache
        label("Data path")
        t.append(Text(f"{path.get('process_server', '')} → {path.get('to', '')} · "
                      f"{fmt_bytes(path.get('waiting_bytes') or 0)} waiting in {path.get('cache_dir', '')}"))
    if not azure_vm:
        label("Replication")
        rpo = v.get("rpo_seconds")
        t.append(Text(f"last {fmt_time(v.get('last_replication'))} · RPO {fmt_duration(rpo) if rpo is not None else '-'}"))
    pts = state.points.get(name, [])
    if tables:
        if not brief:  # (brief: the table's title counts them)
            label("Points")
            t.append(f"{len(pts)} retained" if pts else "none yet", style="" if pts else "dim")
    elif not pts:
        label("Points")
        t.append("none yet", style="dim")
    else:
        label("Points")
        latest = sorted(pts, key=lambda p: p["time"], reverse=True)
        t.append(f"{len(pts)} · ")
        t.append(Text(" · ".join(
            f"{fmt_time(p['time'], True)} {'app' if str(p.get('kind', '')).startswith('app') else 'crash'}"
            for p in latest[:6]
        ) + (" …" if len(latest) > 6 else "")))
    for r in v.get("recovered") or []:
        label("Recovered")
        t.append_text(recovered_text(r, azure=azure_vm))
    for j in waiting_jobs(state, name):
        label("Waiting")
        t.append(Text(f"job {j['id']} waits for action: {waiting_step(state, j['id']) or j.get('name', '')}",
                      style=f"bold {colors['warning']}"))
        t.append(" (complete it on Jobs)", style="dim")
    errs = v.get("errors") or []
    # an error the health's reason already says (here, or in the details screen's health box)
    said = (health or brief) and all(str(e) in str(v.get("health_reason") or "") for e in errs)
    if errs and not said:
        label("Errors")
        t.append(Text("; ".join(str(e) for e in errs[-3:]), style=colors["error"]))
    elif not errs and not brief:
        label("Errors")
        t.append("none", style="dim")
    if not wrap:  # the pane: one line per item, cut at the edge (enter shows it all)
        t.no_wrap = True
        t.overflow = "ellipsis"
    return t


def proof_text(r: dict, colors: dict) -> Text:
    """What srlab verify (or export) said about a VM's disks at a recovery point."""
    t = Text()
    when = f"point {r.get('point')} ({fmt_time(r.get('time'))}{', ' + str(r['kind']) if r.get('kind') else ''})"
    if r.get("what") == "export":
        t.append("Exported ", style="bold")
        t.append(Text(f"{when} into {r.get('out', '')}:"))
        for f in r.get("files", []):
            t.append("\n  ")
            t.append(Text(str(f)))
        return t
    ok = bool(r.get("identical"))
    t.append("Verified ", style="bold")
    t.append(Text(f"{when}: "))
    t.append("identical" if ok else "NOT identical", style=f"bold {colors['ok'] if ok else colors['error']}")
    t.append(Text(f"; last transaction {r.get('last_transaction')} (the source had written "
                  f"{r.get('expected_last_transaction')})"))
    for d in r.get("damaged", []):
        t.append("\n  DAMAGED ", style=f"bold {colors['error']}")
        t.append(Text(f"{d.get('file') or ''}: {d.get('reason', '')}"))
    for d in r.get("disks", []):
        t.append("\n  ")
        t.append(Text(f"{d.get('disk')}: "))
        t.append("identical" if d.get("identical") else "DIFFERENT",
                 style=colors["ok"] if d.get("identical") else f"bold {colors['error']}")
        t.append(Text(f" ({d.get('actual')})", style="dim"))
    return t
