"""Dashboard (key 1): replication health, alerts, running jobs, links, RPO over lab time."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widget import Widget
from textual.widgets import Static

from engine import Failover, JobState, Protection

from ..state import LabState, fault_target_name, fmt_duration, fmt_mbps, fmt_time
from ..widgets import show_text
from .base import Panel

HEALTHS = ("OK", "Warning", "Critical")


class Box(Static):
    """A bordered block of text on the dashboard."""

    DEFAULT_CSS = """
    Box { border: round $primary 50%; padding: 0 1; height: 1fr; }
    """

    def __init__(self, title: str, id: str):
        super().__init__("", id=id)
        self.border_title = title


# Braille cells: 2 dots wide, 4 high. Bit of the dot at (column, row from the top).
_BRAILLE = {(0, 0): 0x01, (0, 1): 0x02, (0, 2): 0x04, (0, 3): 0x40,
            (1, 0): 0x08, (1, 1): 0x10, (1, 2): 0x20, (1, 3): 0x80}
_SCALE = [30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 4 * 3600, 8 * 3600, 86400]


def nice_top(peak: float) -> int:
    """The chart's top: the first round duration at or above the peak."""
    return next((s for s in _SCALE if s >= peak * 1.2), int(peak * 1.2) or 1)


def short_duration(s: int) -> str:
    return f"{s}s" if s < 60 else f"{s // 60}m" if s < 3600 else f"{s // 3600}h"


class RpoPlot(Widget):
    """RPO over lab time as a line (braille dots), 0 at the bottom, a round duration at the top,
    oldest sample on the left, newest on the right."""

    DEFAULT_CSS = """
    RpoPlot { height: 4; color: $accent; }
    """
    GUTTER = 6

    def __init__(self) -> None:
        super().__init__()
        self.data: list[float] = []

    def set_data(self, values: list[float]) -> None:
        if values != self.data:
            self.data = list(values)
            self.refresh()

    def render(self) -> Text:
        vals = self.data
        w = max(1, self.size.width - self.GUTTER)
        h = max(1, self.size.height)
        if not vals:
            return Text("")
        top = nice_top(max(vals))
        xs, ys = 2 * w, 4 * h
        n = len(vals)
        points = [(round(i * (xs - 1) / (n - 1)) if n > 1 else 0, round(min(v, top) / top * (ys - 1)))
                  for i, v in enumerate(vals)]
        dots: set[tuple[int, int]] = set()
        for (x0, y0), (x1, y1) in zip(points, points[1:] or points):
            steps = max(abs(x1 - x0), abs(y1 - y0), 1)
            for k in range(steps + 1):
                dots.add((round(x0 + (x1 - x0) * k / steps), round(y0 + (y1 - y0) * k / steps)))
        lines = []
        for row in range(h):
            cells = []
            for col in range(w):
                bits = 0
                for (dx, dy), bit in _BRAILLE.items():
                    # dot row dy of this cell, counted from the top; y counts from the bottom
                    y = ys - 1 - (row * 4 + dy)
                    if (2 * col + dx, y) in dots:
                        bits |= bit
                cells.append(chr(0x2800 + bits) if bits else " ")
            label = short_duration(top) if row == 0 else ("0" if row == h - 1 else "")
            lines.append(Text.assemble((f"{label:>{self.GUTTER - 1}}", "dim"), ("│", "dim"), "".join(cells)))
        return Text("\n").join(lines)


class RpoChart(Vertical):
    """One cloud's RPO over lab time: a caption line and bars of the worst item's RPO."""

    DEFAULT_CSS = """
    RpoChart { height: 1fr; min-height: 3; max-height: 10; }
    RpoChart > .caption { height: 1; }
    RpoChart > RpoPlot { height: 1fr; }
    """

    def __init__(self, cloud: str):
        super().__init__()
        self.cloud = cloud
        self.caption = Static(Text(cloud), classes="caption")
        self.spark = RpoPlot()

    def compose(self) -> ComposeResult:
        yield self.caption
        yield self.spark

    def show(self, samples: list, colors: dict) -> None:
        values = [float(s[1] or 0) for s in samples]
        cap = Text.assemble((self.cloud, "bold"), "  ")
        if not values:
            cap.append("no samples yet", style="dim")
            self.spark.display = False
        else:
            t0, t1 = samples[0][0], samples[-1][0]
            cap.append(f"RPO now {fmt_duration(values[-1])} · peak {fmt_duration(max(values))}")
            cap.append(f"  {fmt_time(t0, True)} → {fmt_time(t1, True)}, {len(values)} samples", style="dim")
            self.spark.display = True
            self.spark.set_data(values)
        if self.caption.content != cap:
            self.caption.update(cap)


class Dashboard(Panel):
    PANEL_ID = "dashboard"
    TITLE = "Dashboard"
    KEY = "1"
    ACTIONS = []
    can_focus = True

    def compose(self) -> ComposeResult:
        with Horizontal(id="dash-top"):
            yield Box("Replication health", id="dash-health")
            yield Box("Jobs", id="dash-jobs")
        yield Box("Alerts", id="dash-alerts")
        yield Box("Links", id="dash-links")
        with Vertical(id="dash-rpo") as v:
            v.border_title = "RPO over lab time (worst item per cloud)"
            yield Static(Text("no samples yet", style="dim"), id="dash-rpo-empty")

    def update_state(self, state: LabState) -> None:
        colors = self.host.status_colors
        vms = state.status.get("vms", [])
        protected = [v for v in vms if v.get("protection", Protection.NOT_PROTECTED) != Protection.NOT_PROTECTED]
        counts = {h: sum(1 for v in protected if v.get("health") == h) for h in HEALTHS}
        symbol = {"OK": ("●", colors["ok"]), "Warning": ("▲", colors["warning"]), "Critical": ("✖", colors["error"])}
        health = Text()
        for i, h in enumerate(HEALTHS):
            sym, style = symbol[h]
            health.append(f"{'   ' if i else ''}{sym} {h} ", style=style)
            health.append(f"{counts[h]}", style="bold")
        # each cloud's health: the worst of its items', with the worst item's reason (the engine's)
        for c in state.status.get("containers", []):
            sym, style = symbol.get(c.get("health", ""), ("·", "dim"))
            health.append("\n")
            health.append(f"{sym} ", style=style)
            health.append(Text(str(c["name"]), style="bold"))
            health.append(f" {c.get('health', '')}", style=style)
            if c.get("reason"):
                health.append(": ")
                health.append(Text(str(c["reason"])))
        enabling = [v for v in protected if v.get("progress") is not None]
        if enabling:
            health.append("\n")
            health.append(", ".join(f"{v['name']} {v['progress']}% "
                                    f"{'resync' if v.get('protection', '').startswith(Protection.RESYNC) else 'initial'}"
                                    for v in enabling))
        failing = [v for v in protected if v.get("failover_state") not in (None, Failover.NONE, Failover.READY)]
        if failing:
            health.append("\nfailover: ")
            health.append(Text(", ".join(f"{v['name']} {v['failover_state']}" for v in failing)))
        health.append("\n")
        health.append(f"{len(protected)} protected item(s), {len(vms) - len(protected)} VM(s) not protected",
                      style="dim")
        health.no_wrap = True
        health.overflow = "ellipsis"
        self._set("#dash-health", health)

        # Jobs
        running = [j for j in state.jobs if j.get("state") == JobState.IN_PROGRESS]
        waiting = [j for j in state.jobs if j.get("state") == JobState.WAITING]
        jobs = Text()
        jobs.append(f"{len(running)}", style="bold")
        jobs.append(" in progress · ")
        jobs.append(f"{len(waiting)}", style=f"bold {colors['warning']}" if waiting else "bold")
        jobs.append(" waiting for action")
        failed = [j for j in state.jobs[:20] if j.get("state") == JobState.FAILED]
        if failed:
            jobs.append(" · ")
            jobs.append(f"{len(failed)} failed", style=colors["error"])
        shown = (waiting + running)[:3] or state.jobs[:3]
        if shown and not (waiting + running):
            jobs.append("\nlatest:", style="dim")
        for j in shown:
            jobs.append("\n")
            jobs.append(Text(str(j["name"]), style="bold"))
            jobs.append(f"  {j['state']}", style=f"{colors['warning']}" if j["state"] == JobState.WAITING
                        else "dim")
        jobs.no_wrap = True
        jobs.overflow = "ellipsis"
        self._set("#dash-jobs", jobs)

        # Alerts: items whose health is not OK, with the engine's reason; the faults in effect;
        # the errors of VMs whose health does not already say them
        alerts = Text()
        bad = sorted((v for v in protected if v.get("health") in ("Warning", "Critical")),
                     key=lambda v: v["health"] != "Critical")
        for v in bad:
            style = colors["warning"] if v["health"] == "Warning" else colors["error"]
            if alerts:
                alerts.append("\n")
            alerts.append(f"{v['health']}: ", style=f"bold {style}")
            alerts.append(Text(v["name"], style="bold"))
            alerts.append(": ")
            alerts.append(Text(str(v.get("health_reason") or f"RPO {fmt_duration(v.get('rpo_seconds'))}")))
        for f in state.faults:
            if alerts:
                alerts.append("\n")
            alerts.append("Fault ", style=f"bold {colors['warning']}")
            alerts.append(Text(f"{f['kind']} on {fault_target_name(f)}", style="bold"))
            alerts.append(Text(f" since {fmt_time(f.get('since'), True)}"
                               + (f" until {fmt_time(f['until'], True)}" if f.get("until") is not None else "")
                               + (f": {', '.join(f['touches'])}" if f.get("touches") else "")))
        for v in vms:
            if v in bad:
                continue
            for err in (v.get("errors") or [])[:1]:
                if alerts:
                    alerts.append("\n")
                alerts.append(Text(v["name"], style="bold"))
                alerts.append(": ")
                alerts.append(Text(str(err)))
        if not alerts:
            alerts.append("every item healthy, no fault in effect, no errors", style="dim")
        self._set("#dash-alerts", alerts)

        # Links
        links = Text()
        res_links = (state.resources or {}).get("links", [])
        for link in res_links:
            if links:
                links.append("\n")
            links.append(Text(link["source"]))
            links.append(" → ")
            links.append(Text(link["target"]))
            links.append(f"  {fmt_mbps(link.get('mbps'))}  ")
            st = str(link.get("state", ""))
            links.append(st, style=colors["ok"] if st == "up" else colors["error"])
        if not links:
            links.append("no links", style="dim")
        self._set("#dash-links", links)
        self.query_one("#dash-links").styles.height = max(1, len(res_links)) + 2

        # RPO charts, one per cloud
        box = self.query_one("#dash-rpo", Vertical)
        empty = self.query_one("#dash-rpo-empty", Static)
        clouds = sorted(state.rpo_history) if state.rpo_history else []
        empty.display = not clouds
        existing = {c.cloud: c for c in box.query(RpoChart)}
        for cloud in clouds:
            chart = existing.get(cloud)
            if chart is None:
                chart = RpoChart(cloud)
                box.mount(chart)
                chart.call_after_refresh(chart.show, state.rpo_history[cloud], colors)
            else:
                chart.show(state.rpo_history[cloud], colors)

    def _set(self, selector: str, text: Text) -> None:
        show_text(self.query_one(selector, Static), text)
