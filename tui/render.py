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
    if health:
        for what, line in health_parts(v, colors, state.now):
            label(what)
            t.append_text(line)
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
        t.append_text(recovered_text(r))
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
