"""Rich text that panels and dialogs both show: a protection policy, a VM in detail.

Plain data in (a `LabState`, its dicts), `rich.text.Text` out; no widget, no app, no engine call.
User strings (names, notes, errors) go in as `Text`, never parsed as markup.
"""

from __future__ import annotations

from rich.text import Text

from .state import LabState, fmt_bytes, fmt_duration, fmt_frequency, fmt_time, waiting_jobs, waiting_step


def health_style(health: str, colors: dict) -> str:
    """The style of the engine's replication health (OK, Warning, Critical) in the theme's colours."""
    return {"OK": colors["ok"], "Warning": colors["warning"], "Critical": colors["error"]}.get(health, "")


def policy_text(p: dict | None) -> Text:
    """A cloud's replication policy on one line: target, account, frequency, retention..."""
    if not p:
        return Text("protection not configured", style="dim")
    target = str(p.get("target", ""))
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


def recovery_side(v: dict) -> str:
    """Where a protected VM fails over to, in the portal's words: Microsoft Azure (region) or
    the recovery cloud's name."""
    p = v.get("policy") or {}
    target = str(p.get("target") or "")
    if p.get("target_kind") == "azure" or target == "azure":
        return f"Microsoft Azure ({target})" if target and target != "azure" else "Microsoft Azure"
    return target or "the recovery side"


def direction_text(v: dict, back: bool) -> Text:
    """From where to where a failover of `v` moves the workload (a failback: back home)."""
    here = str(v.get("active_location") or v.get("location") or "")
    there = str(v.get("location") or "") if back else recovery_side(v)
    t = Text()
    t.append(Text(here, style="bold"))
    t.append(" → ")
    t.append(Text(there, style="bold"))
    return t


def recovered_text(r: dict) -> Text:
    """One VM at the recovery side: a test copy or the failed-over VM, its state and data."""
    net = f"network {r.get('network') or '(isolated)'}"
    tx = r.get("last_transaction")
    return Text(f"{r.get('role', '')} VM {r.get('name', '')} · {r.get('power', '')} · point {r.get('point', '-')} · "
                f"transaction {'-' if tx is None else tx} · {net} · {r.get('place', '')}")


def vm_detail_text(state: LabState, name: str, colors: dict, wrap: bool = False, tables: bool = False,
                   disks: bool | None = None) -> Text:
    """The detail pane of a VM: target settings, policy, disks, replication, points, errors.

    `tables`: the details screen shows the points (and, unless `disks`, the disks) as tables,
    so leave them out here."""
    show_disks = (not tables) if disks is None else disks
    v = state.vm(name)
    t = Text()
    if v is None:
        return Text("gone", style="dim")

    def label(s: str) -> None:
        if t:
            t.append("\n")
        t.append(f"{s:<12}", style="bold")

    label("VM")
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
    label("Target")
    tgt = [f"name {v.get('target_name') or '-'}", f"size {v.get('target_size') or '-'}"]
    if v.get("target_network"):
        tgt.append(f"network {v['target_network']}")
    if v.get("nic"):
        tgt.append(f"NIC {v['nic']}")
    t.append(Text(" · ".join(tgt)))
    label("Policy")
    if v.get("policy") is None:  # not protected yet: the cloud's settings, which protection would use
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
    label("Replication")
    rpo = v.get("rpo_seconds")
    t.append(Text(f"last {fmt_time(v.get('last_replication'))} · RPO {fmt_duration(rpo) if rpo is not None else '-'}"))
    pts = state.points.get(name, [])
    label("Points")
    if tables:
        t.append(f"{len(pts)} retained" if pts else "none yet", style="" if pts else "dim")
    elif not pts:
        t.append("none yet", style="dim")
    else:
        latest = sorted(pts, key=lambda p: p["time"], reverse=True)
        t.append(f"{len(pts)} · ")
        t.append(Text(" · ".join(
            f"{fmt_time(p['time'], True)} {'app' if str(p.get('kind', '')).startswith('app') else 'crash'}"
            for p in latest[:6]
        ) + (" …" if len(latest) > 6 else "")))
    for r in v.get("recovered") or []:
        label("Recovered")
        t.append_text(recovered_text(r))
    for j in waiting_jobs(state, name):
        label("Waiting")
        t.append(Text(f"job {j['id']} waits for action: {waiting_step(state, j['id']) or j.get('name', '')}",
                      style=f"bold {colors['warning']}"))
        t.append(" (complete it on Jobs)", style="dim")
    label("Errors")
    errs = v.get("errors") or []
    if errs:
        t.append(Text("; ".join(str(e) for e in errs[-3:]), style=colors["error"]))
    else:
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
